// oneTBB side of moduvex's scheduler comparison (bench/compare).
//
// Ports the subset of the workloads (see ../README.md) that fits
// tbb::task_arena + tbb::task_group; yield_many, ping_pong and pending_memory
// need tasks that yield or suspend and are reported as not runnable.
//
// Mapping:
//   runtime      a task_arena of `threads` workers, no slot kept for the main
//                thread (global_control allows threads + 1 so all can run);
//   remote spawn arena.enqueue(group.defer(f))  (the arena's shared queue);
//   local spawn  group.run(f) from inside a task (that worker's own deque);
//   join         group.wait() on the main thread, which stays outside the
//                arena; there are no per-task join handles;
//   yield        a task re-enqueueing itself.
//
// Build: g++ -O2 -std=c++17 bench.cpp -o tbb-bench -ltbb -pthread
// Usage: tbb-bench [workload ...] with MVX_BENCH_THREADS (default 2) and
// MVX_BENCH_ITERS (default 30); result lines on stdout, notes on stderr.
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;
using std::chrono::nanoseconds;

constexpr const char* kImpl = "tbb";
constexpr int kWarmupIters = 5;
constexpr auto kStall = std::chrono::microseconds(10);
constexpr auto kStarvationLimit = std::chrono::seconds(5);

struct Config {
    int threads = 2;
    int iters = 30;
};
Config cfg;

int positive_env(const char* name, int fallback) {
    const char* text = std::getenv(name);
    if (!text) return fallback;
    char* end = nullptr;
    long v = std::strtol(text, &end, 10);
    return (end != text && v > 0 && v < 1000000) ? int(v) : fallback;
}

// Iteration times in ns, ascending.
using Samples = std::vector<int64_t>;

int64_t median_of(const Samples& s) {
    size_t n = s.size();
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

// kWarmupIters untimed calls of body, then cfg.iters timed ones.
template <class Body>
Samples time_iters(Body&& body) {
    for (int i = 0; i < kWarmupIters; ++i) body();
    Samples s;
    s.reserve(cfg.iters);
    for (int i = 0; i < cfg.iters; ++i) {
        auto start = steady::now();
        body();
        s.push_back(std::chrono::duration_cast<nanoseconds>(steady::now() - start).count());
    }
    std::sort(s.begin(), s.end());
    return s;
}

// per_iter: tasks (or operations) in one iteration.
void emit(const char* workload, int per_iter, const Samples& s) {
    int64_t med = median_of(s);
    std::printf("bench=%s impl=%s threads=%d iters=%d median_ns=%lld min_ns=%lld per_task_ns=%.1f\n",
                workload, kImpl, cfg.threads, cfg.iters, (long long)med, (long long)s.front(),
                double(med) / per_iter);
    std::fflush(stdout);
}

template <class Body>
void measure(const char* workload, int per_iter, Body&& body) {
    emit(workload, per_iter, time_iters(std::forward<Body>(body)));
}

// Busy for kStall on this thread, handing the CPU to the OS on every turn.
void stall() {
    auto until = steady::now() + kStall;
    while (steady::now() < until) sched_yield();
}

// The runtime of one workload: the worker arena plus two task groups, one for
// the measured tasks and one for background load.
class Runtime {
public:
    Runtime()
        : limit_(tbb::global_control::max_allowed_parallelism, size_t(cfg.threads) + 1),
          arena_(cfg.threads, /*reserved_for_masters=*/0) {
        arena_.initialize();
    }

    ~Runtime() {
        work.wait();
        background.wait();
    }

    // Spawn from outside the arena (or a re-enqueue from inside it).
    template <class F>
    void enqueue(tbb::task_group& group, F&& f) {
        arena_.enqueue(group.defer(std::forward<F>(f)));
    }

    // n empty remote tasks, then wait for all of them from the main thread.
    void spawn_remote_then_join(int n) {
        for (int i = 0; i < n; ++i) enqueue(work, [] {});
        work.wait();
    }

    tbb::task_group work;
    tbb::task_group background;

private:
    tbb::global_control limit_;
    tbb::task_arena arena_;
};

// Set while background load should keep running.
std::atomic<bool> load_on{false};

// ------------------------------------------------------------------ workloads

// A worker task spawns the 10,000 tasks into its own deque; each decrements a
// shared counter; the group wait on the main thread is the completion signal.
void spawn_many_local() {
    constexpr int kTasks = 10000;
    Runtime rt;
    std::atomic<int> left{0};
    measure("spawn_many_local", kTasks, [&] {
        left.store(kTasks, std::memory_order_relaxed);
        rt.enqueue(rt.work, [&] {
            for (int i = 0; i < kTasks; ++i)
                rt.work.run([&left] { left.fetch_sub(1, std::memory_order_relaxed); });
        });
        rt.work.wait();
    });
}

void spawn_many_remote_idle() {
    constexpr int kTasks = 10000;
    Runtime rt;
    measure("spawn_many_remote_idle", kTasks, [&] { rt.spawn_remote_then_join(kTasks); });
}

// busy1 background task: stall, then "yield" by going to the back of the
// arena queue again.
struct Spinner {
    Runtime* rt;
    void operator()() const {
        if (!load_on.load(std::memory_order_relaxed)) return;
        stall();
        rt->enqueue(rt->background, Spinner{rt});
    }
};

void spawn_many_remote_busy1() {
    constexpr int kTasks = 10000;
    Runtime rt;
    load_on = true;
    for (int i = 0; i < 2 * cfg.threads; ++i) rt.enqueue(rt.background, Spinner{&rt});
    measure("spawn_many_remote_busy1", kTasks, [&] { rt.spawn_remote_then_join(kTasks); });
    load_on = false;
    rt.background.wait();
}

// busy2 chain link: stall, then spawn the successor into this worker's deque.
struct ChainLink {
    Runtime* rt;
    void operator()() const {
        if (!load_on.load(std::memory_order_relaxed)) return;
        stall();
        rt->background.run(ChainLink{rt});
    }
};

// Runs on_starve on its own thread when beat() has not been called for
// kStarvationLimit.
class Watchdog {
public:
    explicit Watchdog(std::function<void()> on_starve)
        : thread_([this, on_starve] {
              std::unique_lock<std::mutex> lock(mutex_);
              while (!finished_) {
                  uint64_t seen = beats_;
                  bool woke = cv_.wait_for(lock, kStarvationLimit,
                                           [&] { return finished_ || beats_ != seen; });
                  if (!woke) {
                      fired_ = true;
                      on_starve();
                      return;
                  }
              }
          }) {}

    void beat() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ++beats_;
        }
        cv_.notify_one();
    }

    // Stops the watchdog; true if it fired.
    bool finish() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            finished_ = true;
        }
        cv_.notify_one();
        thread_.join();
        return fired_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    uint64_t beats_ = 0;
    bool finished_ = false;
    bool fired_ = false;
    std::thread thread_;  // last: starts once the members above exist
};

// A worker takes its own deque before the arena queue, so with every worker
// on a chain the remote tasks may never run: past kStarvationLimit the
// watchdog stops the chains and no line is printed.
void spawn_many_remote_busy2() {
    constexpr int kTasks = 1000;
    Runtime rt;
    load_on = true;
    for (int i = 0; i < cfg.threads; ++i) rt.enqueue(rt.background, ChainLink{&rt});
    Watchdog dog([] { load_on = false; });
    Samples s = time_iters([&] {
        rt.spawn_remote_then_join(kTasks);
        dog.beat();
    });
    bool starved = dog.finish();
    load_on = false;
    rt.background.wait();
    if (starved)
        std::fprintf(stderr, "spawn_many_remote_busy2 (tbb): remote tasks got no worker for %lld s; no result\n",
                     (long long)kStarvationLimit.count());
    else
        emit("spawn_many_remote_busy2", kTasks, s);
}

// Link `left` of the chain: spawn the rest from this worker.
struct Chained {
    Runtime* rt;
    int left;
    void operator()() const {
        if (left > 0) rt->work.run(Chained{rt, left - 1});
    }
};

void chained_spawn() {
    constexpr int kLinks = 1000;
    Runtime rt;
    measure("chained_spawn", kLinks, [&] {
        rt.enqueue(rt.work, Chained{&rt, kLinks});
        rt.work.wait();
    });
}

// From the main thread, 10,000 times: enqueue one empty task and wait for it.
void spawn_join_latency() {
    constexpr int kTrips = 10000;
    Runtime rt;
    measure("spawn_join_latency", kTrips, [&] {
        for (int i = 0; i < kTrips; ++i) rt.spawn_remote_then_join(1);
    });
}

// Process CPU time (user + system, every thread) in ns.
int64_t cpu_ns() {
    rusage r;
    getrusage(RUSAGE_SELF, &r);
    auto us = [](const timeval& t) { return int64_t(t.tv_sec) * 1000000 + t.tv_usec; };
    return (us(r.ru_utime) + us(r.ru_stime)) * 1000;
}

// What the runtime costs while work arrives slowly: from the main thread,
// 2,000 empty tasks, one every MVX_TRICKLE_PERIOD_US (default 1000) on
// absolute deadlines, after a 100 ms settle; reports the process CPU per task,
// the spawn-to-start latency (p50, p99) and the CPU of the idle second after.
// With MVX_BENCH_ITERS=1 (a smoke run): 100 tasks, 100 ms idle.
void trickle() {
    const bool smoke = cfg.iters == 1;
    const int tasks = smoke ? 100 : 2000;
    const auto idle = std::chrono::milliseconds(smoke ? 100 : 1000);
    const auto period = std::chrono::microseconds(positive_env("MVX_TRICKLE_PERIOD_US", 1000));
    Runtime rt;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::vector<int64_t> started(tasks);
    std::atomic<int> ran{0};
    int64_t cpu0 = cpu_ns();
    auto t0 = steady::now();
    for (int i = 0; i < tasks; ++i) {
        std::this_thread::sleep_until(t0 + i * period);
        auto spawned = steady::now();
        rt.enqueue(rt.work, [&started, &ran, i, spawned] {
            started[i] = std::chrono::duration_cast<nanoseconds>(steady::now() - spawned).count();
            ran.fetch_add(1, std::memory_order_release);
        });
    }
    while (ran.load(std::memory_order_acquire) < tasks)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    int64_t cpu1 = cpu_ns();
    std::this_thread::sleep_for(idle);
    int64_t cpu2 = cpu_ns();
    rt.work.wait();
    std::sort(started.begin(), started.end());
    std::printf("bench=trickle impl=%s threads=%d tasks=%d period_ns=%lld cpu_per_task_ns=%lld "
                "start_p50_ns=%lld start_p99_ns=%lld idle_cpu_ns_per_s=%lld\n",
                kImpl, cfg.threads, tasks, (long long)nanoseconds(period).count(),
                (long long)((cpu1 - cpu0) / tasks), (long long)started[tasks / 2],
                (long long)started[tasks * 99 / 100],
                (long long)((cpu2 - cpu1) * 1000000000 / nanoseconds(idle).count()));
    std::fflush(stdout);
}

struct Workload {
    const char* name;
    void (*run)();  // null: not expressible with task_group tasks
};

const Workload kWorkloads[] = {
    {"spawn_many_local", spawn_many_local},
    {"spawn_many_remote_idle", spawn_many_remote_idle},
    {"spawn_many_remote_busy1", spawn_many_remote_busy1},
    {"spawn_many_remote_busy2", spawn_many_remote_busy2},
    {"yield_many", nullptr},
    {"ping_pong", nullptr},
    {"chained_spawn", chained_spawn},
    {"spawn_join_latency", spawn_join_latency},
    {"pending_memory", nullptr},
    {"trickle", trickle},
};

const Workload* find(const char* name) {
    for (const Workload& w : kWorkloads)
        if (std::strcmp(w.name, name) == 0) return &w;
    return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
    cfg.threads = positive_env("MVX_BENCH_THREADS", 2);
    cfg.iters = positive_env("MVX_BENCH_ITERS", 30);

    std::vector<const Workload*> chosen;
    for (int i = 1; i < argc; ++i) {
        const Workload* w = find(argv[i]);
        if (!w) {
            std::string known;
            for (const Workload& k : kWorkloads) known += std::string(" ") + k.name;
            std::fprintf(stderr, "tbb: unknown workload %s; known:%s\n", argv[i], known.c_str());
            return 2;
        }
        chosen.push_back(w);
    }
    if (chosen.empty())
        for (const Workload& w : kWorkloads) chosen.push_back(&w);

    for (const Workload* w : chosen) {
        if (w->run)
            w->run();
        else
            std::fprintf(stderr, "%s (tbb): not portable to task_group tasks (they cannot yield or suspend); skipped\n",
                         w->name);
    }
    return 0;
}
