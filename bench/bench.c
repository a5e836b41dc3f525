/*
 * bench.c - moduvex-bench: the scheduler workloads of ../shared/peers/README.md (tokio's
 * benches/rt_multi_threaded.rs, same parameters, plus spawn_join_latency and pending_memory) on
 * the public ABI only, printing the peers' one-line format with impl=moduvex; and trickle (tasks
 * arriving slowly: CPU per task, start latency, idle CPU), in the peers' format too, and
 * trickle_floor (the same loop with no runtime: the harness's own cost, under every trickle result).
 *
 * Plus the timer workloads (timer_churn, timer_fire, timer_fire_long, timer_memory,
 * timer_idle_cpu, timer_busy_lateness; see ../shared/peers/README.md, bench/compare/README.md and
 * docs/timers.md); poll_direct, poll_ffi and ffi_call: the cost of a poll through the native
 * signature, through a foreign one (libffi), and of one bare ffi_call, all in the same run; and
 * the interop paths:
 * notifier_round_trip (a wake on a worker seen by a thread in poll(2)), notifier_storm (wakes
 * under load, with how many wakes each fd write carried) and promise_round_trip.
 *
 * Usage: moduvex-bench [workload ...]     (all when none is named)
 * Env:   MVX_BENCH_THREADS (default 2), MVX_BENCH_ITERS (default 30), MVX_TRICKLE_PERIOD_US
 *        (trickle's spawn period, default 1000), MVX_SPIN_NS (mvx_runtime_config.spin_ns; unset:
 *        the default, the adaptive policy), MVX_WORKER_SLICE_NS (.worker_slice_ns; unset: the
 *        default, 100 us; -1 keeps the inherited slice)
 */
#include <moduvex.h>

#include <ffi.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#define NUM_SPAWN 10000
#define STALL_NS  10000
#define WARMUP    5

static unsigned threads = 2;
static int iters = 30;

/* ------------------------------------------------------------------------------------------- */
/* Timing and reporting                                                                        */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void check(int r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "moduvex-bench: %s: %s (%s)\n", what, mvx_strerror(r), mvx_last_error());
        exit(1);
    }
}

static mvx_runtime *new_runtime(void)
{
    mvx_runtime_config cfg;
    check(mvx_runtime_config_init(&cfg, sizeof cfg), "config");
    cfg.worker_threads = threads;
    const char *spin = getenv("MVX_SPIN_NS");
    if (spin && *spin)
        cfg.spin_ns = atoll(spin);
    const char *slice = getenv("MVX_WORKER_SLICE_NS");
    if (slice && *slice)
        cfg.worker_slice_ns = atoll(slice);
    mvx_runtime *rt;
    check(mvx_runtime_new(&cfg, &rt), "mvx_runtime_new");
    return rt;
}

static double last_per_task_ns; /* of the latest report() */

static void report(const char *name, int ops, int64_t *ns)
{
    qsort(ns, (size_t)iters, sizeof *ns, cmp_i64);
    int64_t median = (ns[(iters - 1) / 2] + ns[iters / 2]) / 2;
    printf("bench=%s impl=moduvex threads=%u iters=%d median_ns=%lld min_ns=%lld "
           "per_task_ns=%.1f\n",
           name, threads, iters, (long long)median, (long long)ns[0], (double)median / ops);
    fflush(stdout);
    last_per_task_ns = (double)median / ops;
}

/* Runs f(arg) WARMUP times, then `iters` timed times, and reports. Returns false (and reports
 * nothing) if f says so, for the starvation watchdog. */
static bool bench(const char *name, int ops, bool (*f)(void *), void *arg)
{
    for (int i = 0; i < WARMUP; i++)
        if (!f(arg))
            return false;
    int64_t *ns = malloc((size_t)iters * sizeof *ns);
    for (int i = 0; i < iters; i++) {
        int64_t t = now_ns();
        if (!f(arg)) {
            free(ns);
            return false;
        }
        ns[i] = now_ns() - t;
    }
    report(name, ops, ns);
    free(ns);
    return true;
}

/* Keeps the worker busy for STALL_NS while letting the OS run other threads. */
static void stall(void)
{
    int64_t end = now_ns() + STALL_NS;
    while (now_ns() < end)
        sched_yield();
}

/* ------------------------------------------------------------------------------------------- */
/* Small task types                                                                            */

static int empty_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    return MVX_POLL_READY;
}
static const mvx_task_vtable empty_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = empty_poll,
};

/* A shared countdown: the task that brings it to zero posts the semaphore. */
/* `left` has a cache line to itself: every task writes it, and a spawner reading a neighbour
 * (its runtime pointer, say) would miss on each spawn; the peers' counters are apart too. */
struct countdown {
    _Alignas(64) atomic_int left;
    _Alignas(64) sem_t done;
};
static void countdown_hit(struct countdown *c)
{
    if (atomic_fetch_sub_explicit(&c->left, 1, memory_order_relaxed) == 1)
        sem_post(&c->done);
}
static int countdown_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    countdown_hit(state);
    return MVX_POLL_READY;
}
static const mvx_task_vtable countdown_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = countdown_poll,
};

/* ------------------------------------------------------------------------------------------- */
/* spawn_many_local: 10,000 spawns from the thread driving block_on                            */

static void print_stats(mvx_runtime *rt);

struct local_ctx {
    mvx_runtime *rt;
    struct countdown c;
};
static int spawn_many_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct local_ctx *l = *(struct local_ctx **)state;
    for (int i = 0; i < NUM_SPAWN; i++)
        check(mvx_spawn(l->rt, &countdown_vt, &l->c, NULL), "mvx_spawn");
    sem_wait(&l->c.done); /* blocks this thread, as tokio's std channel recv does */
    return MVX_POLL_READY;
}
static const mvx_task_vtable spawn_many_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = spawn_many_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
};
static bool spawn_many_local_iter(void *arg)
{
    struct local_ctx *l = arg;
    atomic_store(&l->c.left, NUM_SPAWN);
    check(mvx_block_on(l->rt, &spawn_many_vt, &l, NULL, 0, NULL), "mvx_block_on");
    return true;
}
static void spawn_many_local(void)
{
    struct local_ctx l = {.rt = new_runtime()};
    sem_init(&l.c.done, 0, 0);
    bench("spawn_many_local", NUM_SPAWN, spawn_many_local_iter, &l);
    if (getenv("MVX_BENCH_STATS"))
        print_stats(l.rt);
    mvx_runtime_release(l.rt);
    sem_destroy(&l.c.done);
}

/* ------------------------------------------------------------------------------------------- */
/* spawn_many_remote_*: spawn from outside, then await every join handle                       */

struct remote_ctx {
    mvx_runtime *rt;
    int n;
    mvx_join_handle **handles;
};
static bool spawn_remote_and_join(void *arg)
{
    struct remote_ctx *r = arg;
    for (int i = 0; i < r->n; i++)
        check(mvx_spawn(r->rt, &empty_vt, NULL, &r->handles[i]), "mvx_spawn");
    for (int i = 0; i < r->n; i++) {
        check(mvx_join_wait(r->handles[i], MVX_TIMEOUT_INFINITE), "mvx_join_wait");
        mvx_join_release(r->handles[i]);
    }
    return true;
}

static void spawn_many_remote_idle(void)
{
    struct remote_ctx r = {new_runtime(), NUM_SPAWN, malloc(NUM_SPAWN * sizeof(void *))};
    bench("spawn_many_remote_idle", NUM_SPAWN, spawn_remote_and_join, &r);
    mvx_runtime_release(r.rt);
    free(r.handles);
}

/* busy1's background: yield, then stall, while the flag is up. */
static atomic_bool background_on;
static int yield_stall_poll(void *state, mvx_context *cx, void *output)
{
    (void)output;
    bool *yielded = state;
    if (*yielded)
        stall();
    if (!atomic_load_explicit(&background_on, memory_order_relaxed))
        return MVX_POLL_READY;
    *yielded = true;
    mvx_waker_wake_by_ref(mvx_context_waker(cx));
    return MVX_POLL_PENDING;
}
static const mvx_task_vtable yield_stall_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = yield_stall_poll,
    .state_size = sizeof(bool),
    .state_align = _Alignof(bool),
};

static void spawn_many_remote_busy1(void)
{
    struct remote_ctx r = {new_runtime(), NUM_SPAWN, malloc(NUM_SPAWN * sizeof(void *))};
    atomic_store(&background_on, true);
    for (unsigned i = 0; i < 2 * threads; i++) {
        bool yielded = false;
        check(mvx_spawn(r.rt, &yield_stall_vt, &yielded, NULL), "mvx_spawn");
    }
    bench("spawn_many_remote_busy1", NUM_SPAWN, spawn_remote_and_join, &r);
    atomic_store(&background_on, false);
    mvx_runtime_release(r.rt);
    free(r.handles);
}

/* busy2's background: chains of tasks that stall, then spawn their successor. */
static const mvx_task_vtable chain_vt;
static int chain_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    if (atomic_load_explicit(&background_on, memory_order_relaxed)) {
        stall();
        mvx_spawn(mvx_runtime_current(), &chain_vt, NULL, NULL);
    }
    return MVX_POLL_READY;
}
static const mvx_task_vtable chain_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = chain_poll,
};

/* The watchdog: an iteration over 5 s means the remote tasks starve; stop the chains. */
struct busy2_ctx {
    struct remote_ctx r;
    atomic_bool starved;
    atomic_llong iteration_start;
};
static void *busy2_watchdog(void *arg)
{
    struct busy2_ctx *b = arg;
    while (atomic_load(&background_on)) {
        usleep(100000);
        long long t = atomic_load(&b->iteration_start);
        if (t && now_ns() - t > 5000000000LL) {
            atomic_store(&b->starved, true);
            atomic_store(&background_on, false);
        }
    }
    return NULL;
}
static bool busy2_iter(void *arg)
{
    struct busy2_ctx *b = arg;
    atomic_store(&b->iteration_start, now_ns());
    spawn_remote_and_join(&b->r);
    atomic_store(&b->iteration_start, 0);
    return !atomic_load(&b->starved);
}

static void spawn_many_remote_busy2(void)
{
    enum { N = 1000 };
    struct busy2_ctx b = {.r = {new_runtime(), N, malloc(N * sizeof(void *))}};
    atomic_store(&background_on, true);
    pthread_t dog;
    pthread_create(&dog, NULL, busy2_watchdog, &b);
    for (unsigned i = 0; i < threads; i++)
        check(mvx_spawn(b.r.rt, &chain_vt, NULL, NULL), "mvx_spawn");
    if (!bench("spawn_many_remote_busy2", N, busy2_iter, &b))
        fprintf(stderr, "spawn_many_remote_busy2: remote tasks starved for 5 s, no result\n");
    atomic_store(&background_on, false);
    pthread_join(dog, NULL);
    mvx_runtime_release(b.r.rt);
    free(b.r.handles);
}

/* ------------------------------------------------------------------------------------------- */
/* yield_many: 200 tasks from outside, each yields 1,000 times, then signals                  */

struct yielder {
    int left;
    sem_t *done;
};
static int yielder_poll(void *state, mvx_context *cx, void *output)
{
    (void)output;
    struct yielder *y = state;
    if (y->left-- > 0) {
        mvx_waker_wake_by_ref(mvx_context_waker(cx));
        return MVX_POLL_PENDING;
    }
    sem_post(y->done);
    return MVX_POLL_READY;
}
static const mvx_task_vtable yielder_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = yielder_poll,
    .state_size = sizeof(struct yielder),
    .state_align = _Alignof(struct yielder),
};

struct yield_ctx {
    mvx_runtime *rt;
    sem_t done;
};
static bool yield_many_iter(void *arg)
{
    struct yield_ctx *y = arg;
    for (int i = 0; i < 200; i++) {
        struct yielder s = {1000, &y->done};
        check(mvx_spawn(y->rt, &yielder_vt, &s, NULL), "mvx_spawn");
    }
    for (int i = 0; i < 200; i++)
        sem_wait(&y->done);
    return true;
}
static void yield_many(void)
{
    struct yield_ctx y = {.rt = new_runtime()};
    sem_init(&y.done, 0, 0);
    bench("yield_many", 200 * 1000, yield_many_iter, &y);
    mvx_runtime_release(y.rt);
    sem_destroy(&y.done);
}

/* ------------------------------------------------------------------------------------------- */
/* ping_pong: a oneshot channel built on the public waker API                                  */

/* One value-less oneshot. The receiver's waker slot follows the join-waker handshake: while
 * RX_WAKER is clear only the receiver touches `waker`; once set, the sender may take it. */
#define ONESHOT_RX_WAKER 1u
#define ONESHOT_SENT     2u
struct oneshot {
    atomic_uint state;
    mvx_waker waker;
};
static void oneshot_send(struct oneshot *o)
{
    unsigned s = atomic_fetch_or_explicit(&o->state, ONESHOT_SENT, memory_order_acq_rel);
    if (s & ONESHOT_RX_WAKER)
        mvx_waker_wake(&o->waker); /* ours now: the receiver never touches it after SENT */
}
/* true when the value is there; otherwise the task's waker is registered. */
static bool oneshot_poll(struct oneshot *o, mvx_context *cx)
{
    unsigned s = atomic_load_explicit(&o->state, memory_order_acquire);
    if (s & ONESHOT_SENT)
        return true;
    const mvx_waker *w = mvx_context_waker(cx);
    if (s & ONESHOT_RX_WAKER) {
        if (mvx_waker_will_wake(&o->waker, w))
            return false;
        if (!atomic_compare_exchange_strong_explicit(&o->state, &s, s & ~ONESHOT_RX_WAKER,
                                                     memory_order_acq_rel, memory_order_acquire))
            return true; /* SENT meanwhile: the sender owns the waker */
        mvx_waker_drop(&o->waker);
    }
    mvx_waker_clone(w, &o->waker);
    if (atomic_fetch_or_explicit(&o->state, ONESHOT_RX_WAKER, memory_order_acq_rel) &
        ONESHOT_SENT) {
        mvx_waker_drop(&o->waker); /* never seen by the sender */
        return true;
    }
    return false;
}
/* The receiver drops its side: a waker never taken by a sender is dropped. */
static void oneshot_drop_rx(struct oneshot *o)
{
    unsigned s = atomic_load_explicit(&o->state, memory_order_acquire);
    if ((s & ONESHOT_RX_WAKER) && !(s & ONESHOT_SENT) &&
        atomic_compare_exchange_strong_explicit(&o->state, &s, s & ~ONESHOT_RX_WAKER,
                                                memory_order_acq_rel, memory_order_acquire))
        mvx_waker_drop(&o->waker);
}

/* The two channels of one ping, shared by the ping task and its partner. */
struct pair {
    atomic_int refs;
    struct oneshot to_partner, to_ping;
};
static void pair_unref(struct pair *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        free(p);
}

static int partner_poll(void *state, mvx_context *cx, void *output)
{
    (void)output;
    struct pair *p = *(struct pair **)state;
    if (!oneshot_poll(&p->to_partner, cx))
        return MVX_POLL_PENDING;
    oneshot_send(&p->to_ping);
    return MVX_POLL_READY;
}
static void partner_drop(void *state)
{
    struct pair *p = *(struct pair **)state;
    oneshot_drop_rx(&p->to_partner);
    pair_unref(p);
}
static const mvx_task_vtable partner_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = partner_poll,
    .drop = partner_drop,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
};

struct ping {
    struct pair *pair;
    struct countdown *c;
};
static int ping_poll(void *state, mvx_context *cx, void *output)
{
    (void)output;
    struct ping *p = state;
    if (!p->pair) {
        p->pair = calloc(1, sizeof *p->pair);
        atomic_init(&p->pair->refs, 2);
        struct pair *shared = p->pair;
        check(mvx_spawn(mvx_runtime_current(), &partner_vt, &shared, NULL), "mvx_spawn");
        oneshot_send(&p->pair->to_partner);
    }
    if (!oneshot_poll(&p->pair->to_ping, cx))
        return MVX_POLL_PENDING;
    countdown_hit(p->c);
    return MVX_POLL_READY;
}
static void ping_drop(void *state)
{
    struct ping *p = state;
    if (p->pair) {
        oneshot_drop_rx(&p->pair->to_ping);
        pair_unref(p->pair);
    }
}
static const mvx_task_vtable ping_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = ping_poll,
    .drop = ping_drop,
    .state_size = sizeof(struct ping),
    .state_align = _Alignof(struct ping),
};

static int ping_spawner_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct countdown *c = *(struct countdown **)state;
    for (int i = 0; i < 1000; i++) {
        struct ping p = {NULL, c};
        check(mvx_spawn(mvx_runtime_current(), &ping_vt, &p, NULL), "mvx_spawn");
    }
    return MVX_POLL_READY;
}
static const mvx_task_vtable ping_spawner_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = ping_spawner_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
};

/* The block_on task of ping_pong and chained_spawn: spawn the starter, wait for the signal. */
struct starter {
    const mvx_task_vtable *vt;
    void *arg;
    size_t arg_size;
    struct countdown *c;
    mvx_runtime *rt;
};
static int starter_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct starter *s = *(struct starter **)state;
    check(mvx_spawn(s->rt, s->vt, s->arg, NULL), "mvx_spawn");
    sem_wait(&s->c->done);
    return MVX_POLL_READY;
}
static const mvx_task_vtable starter_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = starter_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
};
static bool starter_iter(void *arg)
{
    struct starter *s = arg;
    check(mvx_block_on(s->rt, &starter_vt, &s, NULL, 0, NULL), "mvx_block_on");
    return true;
}

static bool ping_pong_iter(void *arg)
{
    struct starter *s = arg;
    atomic_store(&s->c->left, 1000);
    return starter_iter(arg);
}
static void ping_pong(void)
{
    struct countdown c;
    sem_init(&c.done, 0, 0);
    struct countdown *cp = &c;
    struct starter s = {&ping_spawner_vt, &cp, sizeof cp, &c, new_runtime()};
    bench("ping_pong", 1000, ping_pong_iter, &s);
    mvx_runtime_release(s.rt);
    sem_destroy(&c.done);
}

/* ------------------------------------------------------------------------------------------- */
/* chained_spawn: each task spawns the next one                                                */

struct link {
    int left;
    struct countdown *c;
};
static const mvx_task_vtable link_vt;
static int link_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct link *l = state;
    if (l->left == 0) {
        countdown_hit(l->c);
    } else {
        struct link next = {l->left - 1, l->c};
        check(mvx_spawn(mvx_runtime_current(), &link_vt, &next, NULL), "mvx_spawn");
    }
    return MVX_POLL_READY;
}
static const mvx_task_vtable link_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = link_poll,
    .state_size = sizeof(struct link),
    .state_align = _Alignof(struct link),
};
static bool chained_iter(void *arg)
{
    struct starter *s = arg;
    atomic_store(&s->c->left, 1);
    return starter_iter(arg);
}
static void chained_spawn(void)
{
    struct countdown c;
    sem_init(&c.done, 0, 0);
    struct link first = {1000, &c};
    struct starter s = {&link_vt, &first, sizeof first, &c, new_runtime()};
    bench("chained_spawn", 1000, chained_iter, &s);
    mvx_runtime_release(s.rt);
    sem_destroy(&c.done);
}

/* ------------------------------------------------------------------------------------------- */
/* spawn_join_latency: spawn one empty task and block on its handle, 10,000 times              */

static bool latency_iter(void *arg)
{
    mvx_runtime *rt = arg;
    for (int i = 0; i < 10000; i++) {
        mvx_join_handle *jh;
        check(mvx_spawn(rt, &empty_vt, NULL, &jh), "mvx_spawn");
        check(mvx_join_wait(jh, MVX_TIMEOUT_INFINITE), "mvx_join_wait");
        mvx_join_release(jh);
    }
    return true;
}
static void spawn_join_latency(void)
{
    mvx_runtime *rt = new_runtime();
    bench("spawn_join_latency", 10000, latency_iter, rt);
    mvx_runtime_release(rt);
}

/* ------------------------------------------------------------------------------------------- */
/* pending_memory: 1,000,000 tasks parked forever, then all aborted                            */

static atomic_long live;
static int pending_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    bool *counted = state;
    if (!*counted) {
        *counted = true;
        atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    }
    return MVX_POLL_PENDING; /* like std::future::pending(): keeps no waker */
}
static void pending_drop(void *state)
{
    if (*(bool *)state)
        atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
}
static const mvx_task_vtable pending_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = pending_poll,
    .drop = pending_drop,
    .state_size = sizeof(bool),
    .state_align = _Alignof(bool),
};

static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0)
            kb = atol(line + n);
    if (f)
        fclose(f);
    return kb;
}

/* Resets VmHWM, so that the peak measured next is this workload's alone. */
static void reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static void wait_live(long target)
{
    while (atomic_load(&live) != target)
        usleep(100);
}

static void pending_memory(void)
{
    enum { TASKS = 1000000 };
    mvx_runtime *rt = new_runtime();
    reset_peak_rss();
    long before = status_kb("VmRSS:");
    mvx_join_handle **handles = malloc(TASKS * sizeof *handles);
    for (int i = 0; i < TASKS; i++) {
        bool counted = false;
        check(mvx_spawn(rt, &pending_vt, &counted, &handles[i]), "mvx_spawn");
    }
    wait_live(TASKS);
    long peak = status_kb("VmHWM:");
    int64_t t = now_ns();
    for (int i = 0; i < TASKS; i++)
        mvx_join_abort(handles[i]);
    for (int i = 0; i < TASKS; i++)
        mvx_join_release(handles[i]);
    wait_live(0);
    int64_t abort_ns = now_ns() - t;
    free(handles);
    long grown = peak > before ? peak - before : 0;
    printf("bench=pending_memory impl=moduvex threads=%u tasks=%d bytes_per_task=%ld "
           "abort_all_ns=%lld\n",
           threads, TASKS, grown * 1024 / TASKS, (long long)abort_ns);
    fflush(stdout);
    mvx_runtime_release(rt);
}


/* ------------------------------------------------------------------------------------------- */
/* Timers                                                                                      */

static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static uint64_t bench_rng = 0x2545F4914F6CDD1Du;
static uint64_t rnd(void)
{
    bench_rng ^= bench_rng << 13;
    bench_rng ^= bench_rng >> 7;
    bench_rng ^= bench_rng << 17;
    return bench_rng;
}

/* timer_churn: one task on a worker arms and cancels one timer CHURN times (network timeouts that
 * never fire), deadlines 60 s out, 1,024 different ones. */
#define CHURN 1000000
static int churn_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)output;
    mvx_timer t;
    check(mvx_timer_init(&t, mvx_runtime_current()), "mvx_timer_init");
    int64_t base = mvx_now() + (int64_t)60 * 1000000000; /* never reached on a slow machine */
    const mvx_waker *w = mvx_context_waker(cx);
    for (int i = 0; i < CHURN; i++) {
        if (mvx_timer_arm(&t, base + (int64_t)(i & 1023) * 977, w) != MVX_EAGAIN)
            check(MVX_EINVAL, "mvx_timer_arm");
        mvx_timer_cancel(&t);
    }
    mvx_timer_fini(&t);
    return MVX_POLL_READY;
}
static const mvx_task_vtable churn_vt = {.size = sizeof(mvx_task_vtable), .poll = churn_poll};
static bool churn_iter(void *arg)
{
    mvx_join_handle *jh;
    check(mvx_spawn(arg, &churn_vt, NULL, &jh), "mvx_spawn");
    check(mvx_join_wait(jh, MVX_TIMEOUT_INFINITE), "mvx_join_wait");
    mvx_join_release(jh);
    return true;
}
static void timer_churn(void)
{
    mvx_runtime *rt = new_runtime();
    bench("timer_churn", CHURN, churn_iter, rt);
    mvx_runtime_release(rt);
}

/* A task that sleeps until its deadline on a timer, then records how late it woke. */
struct late {
    mvx_timer timer;
    int64_t deadline;
    int64_t *lateness;
    atomic_int *left;
};
static int late_poll(void *state, mvx_context *cx, void *output)
{
    (void)output;
    struct late *l = state;
    if (mvx_timer_arm(&l->timer, l->deadline, mvx_context_waker(cx)) != 0)
        return MVX_POLL_PENDING;
    *l->lateness = mvx_now() - l->deadline;
    atomic_fetch_sub_explicit(l->left, 1, memory_order_release);
    return MVX_POLL_READY;
}
static void late_drop(void *state)
{
    mvx_timer_fini(&((struct late *)state)->timer);
}
static const mvx_task_vtable late_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = late_poll,
    .drop = late_drop,
    .state_size = sizeof(struct late),
    .state_align = _Alignof(struct late),
};

/* Spawns n sleepers of random min_ms-max_ms ms from this thread at once, waits for all; fills
 * lateness[0..n). */
static void run_sleepers(mvx_runtime *rt, int n, int min_ms, int max_ms, int64_t *lateness)
{
    atomic_int left = n;
    for (int i = 0; i < n; i++) {
        int64_t d = (int64_t)min_ms * 1000000 +
                    (int64_t)(rnd() % ((uint64_t)(max_ms - min_ms) * 1000000));
        struct late l = {.deadline = mvx_now() + d,
                         .lateness = &lateness[i],
                         .left = &left};
        check(mvx_timer_init(&l.timer, rt), "mvx_timer_init");
        check(mvx_spawn(rt, &late_vt, &l, NULL), "mvx_spawn");
    }
    while (atomic_load_explicit(&left, memory_order_acquire) > 0)
        usleep(1000);
}

static void report_lateness(const char *name, int n, int64_t *lateness, int64_t cpu)
{
    qsort(lateness, (size_t)n, sizeof *lateness, cmp_i64);
    printf("bench=%s impl=moduvex threads=%u timers=%d p50_late_ns=%lld p99_late_ns=%lld "
           "max_late_ns=%lld cpu_per_timer_ns=%lld\n",
           name, threads, n, (long long)lateness[n / 2], (long long)lateness[n * 99 / 100],
           (long long)lateness[n - 1], (long long)(cpu / n));
    fflush(stdout);
}

/* timer_fire: 100,000 sleeps of random 1-100 ms spawned at once; min(iters, 3) rounds pooled.
 * timer_fire_long: the same with 300-1,000 ms, sleeps that wait in a wheel level above the first
 * before they fire. */
#define FIRE_TIMERS 100000
static void fire_sleepers(const char *name, int min_ms, int max_ms)
{
    mvx_runtime *rt = new_runtime();
    int rounds = iters < 3 ? iters : 3;
    int64_t *lateness = malloc((size_t)rounds * FIRE_TIMERS * sizeof *lateness);
    int64_t cpu = cpu_ns();
    for (int r = 0; r < rounds; r++)
        run_sleepers(rt, FIRE_TIMERS, min_ms, max_ms, lateness + (size_t)r * FIRE_TIMERS);
    cpu = cpu_ns() - cpu;
    report_lateness(name, rounds * FIRE_TIMERS, lateness, cpu);
    free(lateness);
    mvx_runtime_release(rt);
}
static void timer_fire(void)
{
    fire_sleepers("timer_fire", 1, 100);
}
static void timer_fire_long(void)
{
    fire_sleepers("timer_fire_long", 300, 1000);
}

/* timer_busy_lateness: 10,000 sleeps of random 1-50 ms while busy1's background runs. */
static void timer_busy_lateness(void)
{
    enum { N = 10000 };
    mvx_runtime *rt = new_runtime();
    atomic_store(&background_on, true);
    for (unsigned i = 0; i < 2 * threads; i++) {
        bool yielded = false;
        check(mvx_spawn(rt, &yield_stall_vt, &yielded, NULL), "mvx_spawn");
    }
    int64_t *lateness = malloc(N * sizeof *lateness);
    int64_t cpu = cpu_ns();
    run_sleepers(rt, N, 1, 50, lateness);
    cpu = cpu_ns() - cpu;
    atomic_store(&background_on, false);
    report_lateness("timer_busy_lateness", N, lateness, cpu);
    free(lateness);
    mvx_runtime_release(rt);
}

/* timer_memory: 1,000,000 pending sleep tasks (an hour out), bytes of RSS each. */
static uint64_t total_polls(mvx_runtime *rt)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < mvx_runtime_worker_count(rt); i++) {
        mvx_worker_stats st = {.size = sizeof st};
        check(mvx_runtime_worker_stats(rt, i, &st), "mvx_runtime_worker_stats");
        n += st.polls;
    }
    return n;
}
static void timer_memory(void)
{
    enum { TASKS = 1000000 };
    mvx_runtime *rt = new_runtime();
    reset_peak_rss();
    long before = status_kb("VmRSS:");
    mvx_join_handle **handles = malloc(TASKS * sizeof *handles);
    int64_t deadline = mvx_now() + (int64_t)3600 * 1000000000;
    uint64_t polls = total_polls(rt);
    for (int i = 0; i < TASKS; i++)
        check(mvx_spawn_sleep(rt, deadline + (int64_t)(rnd() % 1000000000), &handles[i]),
              "mvx_spawn_sleep");
    while (total_polls(rt) < polls + TASKS) /* every sleep armed its timer */
        usleep(1000);
    long peak = status_kb("VmHWM:");
    /* The handles array is the caller's, as in pending_memory. */
    long grown = peak > before ? peak - before : 0;
    int64_t t = now_ns();
    for (int i = 0; i < TASKS; i++)
        mvx_join_abort(handles[i]);
    for (int i = 0; i < TASKS; i++) {
        check(mvx_join_wait(handles[i], MVX_TIMEOUT_INFINITE) == MVX_ECANCELLED ? 0 : MVX_EINVAL,
              "aborted sleep");
        mvx_join_release(handles[i]);
    }
    int64_t abort_ns = now_ns() - t;
    free(handles);
    printf("bench=timer_memory impl=moduvex threads=%u tasks=%d bytes_per_task=%ld "
           "abort_all_ns=%lld\n",
           threads, TASKS, grown * 1024 / TASKS, (long long)abort_ns);
    fflush(stdout);
    mvx_runtime_release(rt);
}

/* timer_idle_cpu: process CPU over one idle second with 1,000 sleeps armed 1 s apart. */
static void timer_idle_cpu(void)
{
    enum { N = 1000 };
    mvx_runtime *rt = new_runtime();
    mvx_join_handle **handles = malloc(N * sizeof *handles);
    int64_t now = mvx_now();
    uint64_t polls = total_polls(rt);
    for (int i = 0; i < N; i++)
        check(mvx_spawn_sleep(rt, now + (int64_t)(i + 1) * 1000000000 + 500000000, &handles[i]),
              "mvx_spawn_sleep");
    while (total_polls(rt) < polls + N)
        usleep(1000);
    usleep(200000); /* let the workers settle into their park */
    int64_t cpu = cpu_ns(), t = now_ns();
    usleep(1000000);
    cpu = cpu_ns() - cpu;
    t = now_ns() - t;
    printf("bench=timer_idle_cpu impl=moduvex threads=%u timers=%d wall_ns=%lld cpu_ns=%lld\n",
           threads, N, (long long)t, (long long)cpu);
    fflush(stdout);
    for (int i = 0; i < N; i++) {
        mvx_join_abort(handles[i]);
        mvx_join_release(handles[i]);
    }
    free(handles);
    mvx_runtime_release(rt);
}

/* ------------------------------------------------------------------------------------------- */
/* trickle: empty tasks from the main thread, one every MVX_TRICKLE_PERIOD_US (default 1 ms)   */

static int env_int(const char *name, int def);

/* MVX_BENCH_STATS set: each worker's counters, on stderr. */
static void print_stats(mvx_runtime *rt)
{
    for (unsigned i = 0; i < mvx_runtime_worker_count(rt); i++) {
        mvx_worker_stats st = {.size = sizeof st};
        check(mvx_runtime_worker_stats(rt, i, &st), "mvx_runtime_worker_stats");
        fprintf(stderr,
                "worker %u: polls %llu remote %llu steals %llu parks %llu spins %llu "
                "spins_found %llu\n",
                i, (unsigned long long)st.polls, (unsigned long long)st.remote_tasks,
                (unsigned long long)st.steals, (unsigned long long)st.parks,
                (unsigned long long)st.spins, (unsigned long long)st.spins_found);
    }
}

struct trickle_task {
    int64_t spawned; /* now_ns() right before mvx_spawn */
    int64_t *start;  /* where the task writes its spawn-to-start latency */
};
static atomic_int trickle_ran;
static int trickle_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct trickle_task *t = state;
    *t->start = now_ns() - t->spawned;
    atomic_fetch_add_explicit(&trickle_ran, 1, memory_order_release);
    return MVX_POLL_READY;
}
static const mvx_task_vtable trickle_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = trickle_poll,
    .state_size = sizeof(struct trickle_task),
    .state_align = _Alignof(struct trickle_task),
};

/* What the runtime costs while work arrives slowly: 2,000 tasks on absolute deadlines after a
 * 100 ms settle, then an idle second. With MVX_BENCH_ITERS=1 (the CI's smoke run) 100 tasks and
 * an idle 100 ms, scaled to a second. With floor set, the same loop spawns nothing and starts no
 * runtime (trickle_floor): what the harness itself costs on this machine, each clock_nanosleep
 * of the period and the idle second, the floor under every implementation's trickle numbers. */
static void trickle_pass(bool floor)
{
    int tasks = iters == 1 ? 100 : 2000;
    int64_t idle_ns = iters == 1 ? 100000000 : 1000000000;
    int64_t period = (int64_t)env_int("MVX_TRICKLE_PERIOD_US", 1000) * 1000;
    mvx_runtime *rt = NULL;
    int64_t *lat = NULL;
    if (!floor) {
        rt = new_runtime();
        struct timespec settle = {0, 100000000};
        nanosleep(&settle, NULL);
        lat = calloc((size_t)tasks, sizeof *lat);
        atomic_store(&trickle_ran, 0);
    }
    int64_t c0 = cpu_ns();
    int64_t start = now_ns();
    for (int i = 0; i < tasks; i++) {
        int64_t next = start + period * i;
        struct timespec ts = {next / 1000000000, next % 1000000000};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
        }
        if (floor)
            continue;
        struct trickle_task t = {now_ns(), &lat[i]};
        check(mvx_spawn(rt, &trickle_vt, &t, NULL), "mvx_spawn");
    }
    while (!floor && atomic_load_explicit(&trickle_ran, memory_order_acquire) < tasks)
        usleep(100);
    int64_t c1 = cpu_ns();
    struct timespec idle = {idle_ns / 1000000000, idle_ns % 1000000000};
    nanosleep(&idle, NULL);
    int64_t c2 = cpu_ns();
    long long cpu_per_task = (long long)((c1 - c0) / tasks);
    long long idle_per_s = (long long)((c2 - c1) * 1000000000 / idle_ns);
    if (floor) {
        printf("bench=trickle_floor impl=moduvex threads=0 tasks=%d period_ns=%lld "
               "cpu_per_task_ns=%lld idle_cpu_ns_per_s=%lld\n",
               tasks, (long long)period, cpu_per_task, idle_per_s);
        fflush(stdout);
        return;
    }
    qsort(lat, (size_t)tasks, sizeof *lat, cmp_i64);
    printf("bench=trickle impl=moduvex threads=%u tasks=%d period_ns=%lld cpu_per_task_ns=%lld "
           "start_p50_ns=%lld start_p99_ns=%lld idle_cpu_ns_per_s=%lld\n",
           threads, tasks, (long long)period, cpu_per_task, (long long)lat[tasks / 2],
           (long long)lat[tasks * 99 / 100], idle_per_s);
    fflush(stdout);
    free(lat);
    if (getenv("MVX_BENCH_STATS"))
        print_stats(rt);
    mvx_runtime_release(rt);
}
static void trickle(void)
{
    trickle_pass(false);
}
static void trickle_floor(void)
{
    trickle_pass(true);
}

/* ------------------------------------------------------------------------------------------- */
/* poll_direct / poll_ffi / ffi_call                                                           */

/* A task woken and re-polled POLLS times (it wakes itself), driven by block_on on this thread so
 * that no hand-off between threads is measured, once with the native poll signature and once
 * with the same body behind a foreign one called through libffi; and the floor: one bare
 * ffi_call with a prepared cif of that signature. */
#define POLLS 100000

static int repoll_poll(void *state, mvx_context *cx, void *output)
{
    (void)output;
    int *left = state;
    if (--*left > 0) {
        mvx_waker_wake_by_ref(mvx_context_waker(cx));
        return MVX_POLL_PENDING;
    }
    return MVX_POLL_READY;
}
static int32_t repoll_poll_foreign(void *state, void *cx, void *output)
{
    return repoll_poll(state, cx, output);
}
static const mvx_task_vtable repoll_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = repoll_poll,
    .state_size = sizeof(int),
    .state_align = _Alignof(int),
};
static mvx_task_vtable repoll_ffi_vt; /* repoll_vt plus a poll signature, built at run time */

struct poll_ctx {
    mvx_runtime *rt;
    const mvx_task_vtable *vt;
};
static bool repoll_iter(void *arg)
{
    struct poll_ctx *p = arg;
    int left = POLLS;
    check(mvx_block_on(p->rt, p->vt, &left, NULL, 0, NULL), "mvx_block_on");
    return true;
}

static int32_t trivial(void *a, void *b, void *c)
{
    return a == b && b == c;
}
static ffi_cif bare_cif;
static bool bare_iter(void *arg)
{
    (void)arg;
    void *x = NULL, *y = &x, *z = &y;
    void *values[3] = {&x, &y, &z};
    ffi_arg r;
    for (int i = 0; i < POLLS; i++)
        ffi_call(&bare_cif, FFI_FN(trivial), &r, values);
    return true;
}

static void poll_paths(void)
{
    mvx_signature *sig;
    check(mvx_signature_parse("i32(ptr,ptr,ptr)", 16, &sig), "mvx_signature_parse");
    repoll_ffi_vt = repoll_vt;
    repoll_ffi_vt.poll = (mvx_poll_fn)(void (*)(void))repoll_poll_foreign;
    repoll_ffi_vt.poll_signature = sig;
    static ffi_type *args[3] = {&ffi_type_pointer, &ffi_type_pointer, &ffi_type_pointer};
    if (ffi_prep_cif(&bare_cif, FFI_DEFAULT_ABI, 3, &ffi_type_sint32, args) != FFI_OK)
        check(MVX_EINVAL, "ffi_prep_cif");
    struct poll_ctx direct = {new_runtime(), &repoll_vt};
    struct poll_ctx foreign = {direct.rt, &repoll_ffi_vt};
    bench("poll_direct", POLLS, repoll_iter, &direct);
    double direct_ns = last_per_task_ns;
    bench("poll_ffi", POLLS, repoll_iter, &foreign);
    double ffi_ns = last_per_task_ns;
    bench("ffi_call", POLLS, bare_iter, NULL);
    fprintf(stderr, "poll_paths: the ffi path adds %.1f ns per poll = %.2fx one bare ffi_call\n",
            ffi_ns - direct_ns, (ffi_ns - direct_ns) / last_per_task_ns);
    mvx_runtime_release(direct.rt);
    mvx_signature_release(sig);
}

/* ------------------------------------------------------------------------------------------- */
/* Interop: notifier_round_trip, notifier_storm, promise_round_trip                            */

/* A task that wakes the notifier waker it carries (by value: the task owns it). */
static int wake_notifier_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx, (void)output;
    mvx_waker_wake(state);
    return MVX_POLL_READY;
}
static const mvx_task_vtable wake_notifier_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = wake_notifier_poll,
    .state_size = sizeof(mvx_waker),
    .state_align = _Alignof(mvx_waker),
};

struct notifier_bench {
    mvx_runtime *rt;
    mvx_notifier *n;
    mvx_waker w;
};

static void wait_readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, -1) != 1)
        ;
}

/* One round trip: a task on a worker wakes the waker; this thread sleeps in poll(2) on the fd
 * until it is readable, then drains the token. */
static bool notifier_round_trip_iter(void *arg)
{
    struct notifier_bench *b = arg;
    int fd = mvx_notifier_fd(b->n);
    for (int i = 0; i < 1000; i++) {
        mvx_waker w;
        check(mvx_waker_clone(&b->w, &w), "mvx_waker_clone");
        check(mvx_spawn(b->rt, &wake_notifier_vt, &w, NULL), "mvx_spawn");
        uint64_t token;
        do
            wait_readable(fd);
        while (mvx_notifier_drain(b->n, &token, 1) != 1);
    }
    return true;
}
static void notifier_round_trip(void)
{
    struct notifier_bench b = {new_runtime(), NULL, {NULL, NULL}};
    check(mvx_notifier_new(&b.n), "mvx_notifier_new");
    check(mvx_notifier_waker(b.n, 1, &b.w), "mvx_notifier_waker");
    bench("notifier_round_trip", 1000, notifier_round_trip_iter, &b);
    mvx_waker_drop(&b.w);
    mvx_notifier_free(b.n);
    mvx_runtime_release(b.rt);
}

/* Under load: `threads` tasks wake 64 wakers each, 2,000 times, while this thread drains from a
 * poll(2) loop; per wake ns, and how many wakes each fd write carried. */
enum { STORM_WAKERS = 64, STORM_WAKES = 2000 };
struct storm_task {
    mvx_waker *w;
    atomic_int *left;
};
static int storm_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx, (void)output;
    struct storm_task *s = state;
    for (int i = 0; i < STORM_WAKES; i++)
        mvx_waker_wake_by_ref(&s->w[i % STORM_WAKERS]);
    atomic_fetch_sub(s->left, 1);
    return MVX_POLL_READY;
}
static const mvx_task_vtable storm_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = storm_poll,
    .state_size = sizeof(struct storm_task),
    .state_align = _Alignof(struct storm_task),
};
struct storm_bench {
    mvx_runtime *rt;
    mvx_notifier *n;
    mvx_waker *w; /* threads * STORM_WAKERS */
    uint64_t tokens;
};
static bool notifier_storm_iter(void *arg)
{
    struct storm_bench *b = arg;
    atomic_int left = (int)threads;
    for (unsigned t = 0; t < threads; t++) {
        struct storm_task st = {b->w + (size_t)t * STORM_WAKERS, &left};
        check(mvx_spawn(b->rt, &storm_vt, &st, NULL), "mvx_spawn");
    }
    uint64_t tokens[256];
    int fd = mvx_notifier_fd(b->n);
    int k;
    for (;;) {
        bool done = atomic_load(&left) == 0;
        while ((k = mvx_notifier_drain(b->n, tokens, 256)) > 0)
            b->tokens += (uint64_t)k;
        if (done)
            return true;
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, 1);
    }
}
static void notifier_storm(void)
{
    struct storm_bench b = {new_runtime(), NULL, NULL, 0};
    check(mvx_notifier_new(&b.n), "mvx_notifier_new");
    b.w = malloc(threads * STORM_WAKERS * sizeof *b.w);
    for (unsigned i = 0; i < threads * STORM_WAKERS; i++)
        check(mvx_notifier_waker(b.n, i, &b.w[i]), "mvx_notifier_waker");
    bench("notifier_storm", (int)(threads * STORM_WAKES), notifier_storm_iter, &b);
    mvx_notifier_stats st = {.size = sizeof st};
    check(mvx_notifier_stats_get(b.n, &st), "mvx_notifier_stats_get");
    uint64_t wakes = (uint64_t)(WARMUP + iters) * threads * STORM_WAKES;
    printf("bench=notifier_storm_coalescing impl=moduvex threads=%u wakes=%llu fd_writes=%llu "
           "tokens=%llu wakes_per_fd_write=%.1f wakes_per_token=%.1f\n",
           threads, (unsigned long long)wakes, (unsigned long long)st.fd_writes,
           (unsigned long long)b.tokens, (double)wakes / (double)(st.fd_writes ? st.fd_writes : 1),
           (double)wakes / (double)(b.tokens ? b.tokens : 1));
    fflush(stdout);
    for (unsigned i = 0; i < threads * STORM_WAKERS; i++)
        mvx_waker_drop(&b.w[i]);
    free(b.w);
    mvx_notifier_free(b.n);
    mvx_runtime_release(b.rt);
}

/* A promise spawned, resolved by another thread, and joined here: the producer thread resolves
 * whatever promise it is handed through a one-slot mailbox. */
struct promise_bench {
    mvx_runtime *rt;
    mvx_promise *_Atomic slot;
    atomic_bool stop;
};
static void *promise_producer(void *arg)
{
    struct promise_bench *b = arg;
    while (!atomic_load(&b->stop)) {
        mvx_promise *p = atomic_exchange(&b->slot, NULL);
        if (!p) {
            sched_yield();
            continue;
        }
        uint64_t v = 7;
        check(mvx_promise_resolve(p, &v), "mvx_promise_resolve");
        mvx_promise_release(p);
    }
    return NULL;
}
static bool promise_round_trip_iter(void *arg)
{
    struct promise_bench *b = arg;
    for (int i = 0; i < 1000; i++) {
        mvx_promise *p;
        mvx_join_handle *jh;
        check(mvx_spawn_promise(b->rt, sizeof(uint64_t), 0, NULL, &p, &jh), "mvx_spawn_promise");
        atomic_store(&b->slot, p);
        check(mvx_join_wait(jh, MVX_TIMEOUT_INFINITE), "mvx_join_wait");
        uint64_t v;
        check(mvx_join_take(jh, &v, sizeof v, NULL), "mvx_join_take");
        mvx_join_release(jh);
    }
    return true;
}
static void promise_round_trip(void)
{
    struct promise_bench b = {new_runtime(), NULL, false};
    pthread_t producer;
    pthread_create(&producer, NULL, promise_producer, &b);
    bench("promise_round_trip", 1000, promise_round_trip_iter, &b);
    atomic_store(&b.stop, true);
    pthread_join(producer, NULL);
    mvx_runtime_release(b.rt);
}

/* ------------------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*run)(void);
} workloads[] = {
    {"spawn_many_local", spawn_many_local},
    {"spawn_many_remote_idle", spawn_many_remote_idle},
    {"spawn_many_remote_busy1", spawn_many_remote_busy1},
    {"spawn_many_remote_busy2", spawn_many_remote_busy2},
    {"yield_many", yield_many},
    {"ping_pong", ping_pong},
    {"chained_spawn", chained_spawn},
    {"spawn_join_latency", spawn_join_latency},
    {"pending_memory", pending_memory},
    {"timer_churn", timer_churn},
    {"timer_fire", timer_fire},
    {"timer_fire_long", timer_fire_long},
    {"timer_memory", timer_memory},
    {"timer_idle_cpu", timer_idle_cpu},
    {"timer_busy_lateness", timer_busy_lateness},
    {"trickle", trickle},
    {"trickle_floor", trickle_floor},
    /* One entry runs all three, so that they share a run: poll_direct, poll_ffi, ffi_call. */
    {"poll_paths", poll_paths},
    {"notifier_round_trip", notifier_round_trip},
    {"notifier_storm", notifier_storm},
    {"promise_round_trip", promise_round_trip},
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    int n = v ? atoi(v) : 0;
    return n > 0 ? n : def;
}

int main(int argc, char **argv)
{
    threads = (unsigned)env_int("MVX_BENCH_THREADS", 2);
    iters = env_int("MVX_BENCH_ITERS", 30);
    for (int a = 1; a < argc; a++) {
        bool known = false;
        for (size_t w = 0; w < NWORKLOADS; w++)
            known |= strcmp(argv[a], workloads[w].name) == 0;
        if (!known) {
            fprintf(stderr, "unknown workload: %s\n", argv[a]);
            return 2;
        }
    }
    for (size_t w = 0; w < NWORKLOADS; w++) {
        bool wanted = argc == 1;
        for (int a = 1; a < argc; a++)
            wanted |= strcmp(argv[a], workloads[w].name) == 0;
        if (wanted)
            workloads[w].run();
    }
    return 0;
}
