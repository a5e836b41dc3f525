/*
 * check_runtime.c - runtimes: configuration, worker threads, spawning from inside and outside,
 * stats, spinning and parking when idle, block_on, fairness, wake storms, shutdown (100k pending
 * tasks, a stuck poll, spawns racing it) and release.
 */
#include "helpers.h"

#include <sched.h>
#include <stdio.h>
#include <sys/resource.h>

static void setup(void)
{
    reset_counters();
}

START_TEST(default_worker_count_is_the_available_cpus)
{
    mvx_runtime *rt;
    ck_assert_int_eq(mvx_runtime_new(NULL, &rt), 0);
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    unsigned cpus = (unsigned)CPU_COUNT(&set);
    ck_assert_uint_ge(mvx_runtime_worker_count(rt), 1);
    ck_assert_uint_le(mvx_runtime_worker_count(rt), cpus);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

START_TEST(config_init_fills_defaults)
{
    mvx_runtime_config cfg;
    memset(&cfg, 0xab, sizeof cfg);
    ck_assert_int_eq(mvx_runtime_config_init(&cfg, sizeof cfg), 0);
    ck_assert_uint_eq(cfg.size, sizeof cfg);
    ck_assert_uint_eq(cfg.worker_threads, 0);
    ck_assert_ptr_null(cfg.thread_name);
    ck_assert_uint_eq(cfg.stack_size, 0);
    ck_assert_ptr_null(cfg.on_thread_start);
    ck_assert_int_eq(cfg.spin_ns, MVX_SPIN_ADAPTIVE);
    ck_assert_int_eq(cfg.spawn_backlog_ns, 0); /* 0: the default backpressure */
    ck_assert_uint_eq(cfg.blocking_flags, 0); /* pool threads run as SCHED_BATCH */
    ck_assert_int_eq(cfg.worker_slice_ns, 0); /* 0: 100 us */
    /* A caller whose struct ends before spin_ns: the field is not touched. */
    memset(&cfg, 0xab, sizeof cfg);
    size_t old = offsetof(mvx_runtime_config, spin_ns);
    ck_assert_int_eq(mvx_runtime_config_init(&cfg, old), 0);
    ck_assert_uint_eq(cfg.size, old);
    ck_assert_int_eq(cfg.blocking_keep_alive_ns, 0);
    unsigned char tail[sizeof cfg.spin_ns];
    memcpy(tail, &cfg.spin_ns, sizeof tail);
    for (size_t i = 0; i < sizeof tail; i++)
        ck_assert_uint_eq(tail[i], 0xab);
}
END_TEST

struct hooks {
    atomic_int started, stopped;
    char names[4][16];
    atomic_uint index_mask;
};
static void on_start(void *data, unsigned index)
{
    struct hooks *h = data;
    if (index < 4)
        pthread_getname_np(pthread_self(), h->names[index], sizeof h->names[index]);
    atomic_fetch_or(&h->index_mask, 1u << index);
    atomic_fetch_add(&h->started, 1);
}
static void on_stop(void *data, unsigned index)
{
    (void)index;
    atomic_fetch_add(&((struct hooks *)data)->stopped, 1);
}

START_TEST(workers_are_named_and_run_the_hooks)
{
    struct hooks h = {0};
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    cfg.worker_threads = 3;
    cfg.thread_name = "pool";
    cfg.stack_size = 256 * 1024;
    cfg.on_thread_start = on_start;
    cfg.on_thread_stop = on_stop;
    cfg.hook_data = &h;
    mvx_runtime *rt;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), 0);
    wait_until_int(&h.started, 3, 5 * SEC);
    ck_assert_uint_eq(atomic_load(&h.index_mask), 7);
    ck_assert_str_eq(h.names[0], "pool-0");
    ck_assert_str_eq(h.names[2], "pool-2");
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    ck_assert_int_eq(atomic_load(&h.stopped), 3);
}
END_TEST

/* What each of two workers ran under when its start hook ran. */
struct slices_seen {
    struct sched_seen worker[2];
    atomic_int started;
};
static void record_sched(void *data, unsigned index)
{
    struct slices_seen *s = data;
    s->worker[index] = sched_of_this_thread();
    atomic_fetch_add(&s->started, 1);
}
struct slice_run {
    int64_t worker_slice_ns; /* the setting */
    int policy;              /* of the thread creating the runtime, SCHED_OTHER or SCHED_IDLE */
    uint64_t own_slice_ns;   /* asked for by that thread; 0: the kernel's default */
    uint64_t own_seen_ns;    /* what that thread then had (SCHED_IDLE keeps the default) */
    struct slices_seen seen;
};
/* On a fresh thread: takes rs's policy and slice, then runs a runtime of two workers. */
static void *run_workers_for_slices(void *arg)
{
    struct slice_run *rs = arg;
    struct sched_param param = {.sched_priority = 0};
    ck_assert_int_eq(pthread_setschedparam(pthread_self(), rs->policy, &param), 0);
    ck_assert(set_thread_slice(rs->own_slice_ns));
    rs->own_seen_ns = thread_slice_ns();
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    cfg.worker_threads = 2;
    cfg.worker_slice_ns = rs->worker_slice_ns;
    cfg.on_thread_start = record_sched;
    cfg.hook_data = &rs->seen;
    mvx_runtime *rt;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), 0);
    wait_until_int(&rs->seen.started, 2, 30 * SEC);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    return NULL;
}
#define CREATORS_SLICE UINT64_MAX /* check_worker_slices: expect the creating thread's own */
static void check_worker_slices(int64_t setting, int policy, uint64_t own, uint64_t expected)
{
    struct slice_run rs = {.worker_slice_ns = setting, .policy = policy, .own_slice_ns = own};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, run_workers_for_slices, &rs), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    if (expected == CREATORS_SLICE)
        expected = rs.own_seen_ns;
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(rs.seen.worker[i].policy, policy);
        ck_assert_uint_eq(rs.seen.worker[i].slice_ns, expected);
    }
}

START_TEST(workers_ask_for_the_configured_time_slice)
{
    uint64_t kernel_default = kernel_default_slice();
    if (!kernel_default)
        return; /* no slice per thread on this kernel (before Linux 6.12): nothing to see */
    check_worker_slices(0, SCHED_OTHER, 0, WORKER_SLICE_DEFAULT_NS);
    check_worker_slices(3000000, SCHED_OTHER, 0, 3000000);
    /* Negative: the slice inherited from the creating thread, whatever it is. */
    check_worker_slices(-1, SCHED_OTHER, 0, kernel_default);
    check_worker_slices(-1, SCHED_OTHER, 7000000, 7000000);
    /* A policy that is not SCHED_OTHER or SCHED_BATCH is the host's choice: left whole. */
    check_worker_slices(0, SCHED_IDLE, 7000000, CREATORS_SLICE);
    if (batch_allowed())
        check_worker_slices(0, SCHED_BATCH, 0, WORKER_SLICE_DEFAULT_NS);
}
END_TEST

START_TEST(long_thread_names_are_cut_to_15_bytes)
{
    struct hooks h = {0};
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    cfg.worker_threads = 1;
    cfg.thread_name = "a-very-long-thread-name-prefix";
    cfg.on_thread_start = on_start;
    cfg.hook_data = &h;
    mvx_runtime *rt;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), 0);
    wait_until_int(&h.started, 1, 5 * SEC);
    ck_assert_str_eq(h.names[0], "a-very-long-thr");
    mvx_runtime_release(rt);
}
END_TEST

/* Spawn from inside a task goes to the worker's own queue: counted as a local spawn, and the
 * child never passes through the global queue. */
struct spawner {
    int children;
};
static int spawner_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct spawner *s = state;
    mvx_runtime *rt = mvx_runtime_current();
    for (int i = 0; i < s->children; i++) {
        struct yielder y = {0, i};
        if (mvx_spawn(rt, &yielder_vt, &y, NULL) != 0)
            return MVX_POLL_FAILED;
    }
    return MVX_POLL_READY;
}
static const mvx_task_vtable spawner_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = spawner_poll,
    .state_size = sizeof(struct spawner),
    .state_align = _Alignof(struct spawner),
};

/* A worker counts a poll right after the poll that completed the task (its joiner may have
 * returned already): waits until the first `workers` workers' polls add up to at least `want`
 * or timeout_ns passes, and returns their sum. */
static uint64_t polls_counted(mvx_runtime *rt, unsigned workers, uint64_t want, int64_t timeout_ns)
{
    int64_t deadline = test_now_ns() + timeout_ns;
    for (;; usleep(1000)) {
        uint64_t polls = 0;
        for (unsigned w = 0; w < workers; w++) {
            mvx_worker_stats st = {.size = sizeof st};
            ck_assert_int_eq(mvx_runtime_worker_stats(rt, w, &st), 0);
            polls += st.polls;
        }
        if (polls >= want || test_now_ns() > deadline)
            return polls;
    }
}

START_TEST(spawn_from_a_task_stays_on_its_worker)
{
    mvx_runtime *rt = new_runtime(1);
    struct spawner s = {100};
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &spawner_vt, &s, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    wait_until_int(&g_output_drops, 100, 5 * SEC);
    polls_counted(rt, 1, 101, SEC);
    mvx_worker_stats st = {.size = sizeof st};
    ck_assert_int_eq(mvx_runtime_worker_stats(rt, 0, &st), 0);
    ck_assert_uint_eq(st.local_spawns, 100);
    ck_assert_uint_eq(st.remote_tasks, 1); /* only the spawner came from outside */
    ck_assert_uint_ge(st.polls, 101);
    mvx_join_release(jh);
    mvx_runtime_release(rt);
}
END_TEST

static int current_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    *(mvx_runtime **)output = mvx_runtime_current();
    return MVX_POLL_READY;
}
static const mvx_task_vtable current_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = current_poll,
    .output_size = sizeof(void *),
    .output_align = _Alignof(void *),
};

START_TEST(current_runtime_is_set_only_inside_tasks)
{
    mvx_runtime *rt = new_runtime(2);
    ck_assert_ptr_null(mvx_runtime_current());
    mvx_join_handle *jh;
    mvx_spawn(rt, &current_vt, NULL, &jh);
    mvx_join_wait(jh, 5 * SEC);
    mvx_runtime *seen = NULL;
    mvx_join_take(jh, &seen, sizeof seen, NULL);
    ck_assert_ptr_eq(seen, rt);
    mvx_join_release(jh);
    seen = NULL;
    ck_assert_int_eq(mvx_block_on(rt, &current_vt, NULL, &seen, sizeof seen, NULL), 0);
    ck_assert_ptr_eq(seen, rt); /* block_on's task runs here, yet belongs to rt */
    ck_assert_ptr_null(mvx_runtime_current());
    mvx_runtime_release(rt);
}
END_TEST

START_TEST(stats_count_polls_and_parks)
{
    mvx_runtime *rt = new_runtime(2);
    struct yielder y = {99, 0};
    mvx_join_handle *jh;
    mvx_spawn(rt, &yielder_vt, &y, &jh);
    mvx_join_wait(jh, 5 * SEC);
    ck_assert_uint_eq(polls_counted(rt, 2, 100, SEC), 100);
    mvx_join_release(jh);
    mvx_runtime_release(rt);
}
END_TEST

/* ---- spinning and parking (idle.c, spin.h) ---- */

static mvx_runtime *new_runtime_spinning(unsigned workers, int64_t spin_ns, size_t config_size)
{
    mvx_runtime_config cfg;
    ck_assert_int_eq(mvx_runtime_config_init(&cfg, config_size), 0);
    cfg.worker_threads = workers;
    if (config_size == sizeof cfg)
        cfg.spin_ns = spin_ns;
    mvx_runtime *rt = NULL;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), 0);
    return rt;
}

#define IDLE_WORKERS 4
struct idle_snap {
    uint64_t polls[IDLE_WORKERS], parks[IDLE_WORKERS], spins[IDLE_WORKERS], found[IDLE_WORKERS];
};
static void idle_snap(mvx_runtime *rt, struct idle_snap *s)
{
    for (unsigned w = 0; w < IDLE_WORKERS; w++) {
        mvx_worker_stats st = {.size = sizeof st};
        ck_assert_int_eq(mvx_runtime_worker_stats(rt, w, &st), 0);
        s->polls[w] = st.polls;
        s->parks[w] = st.parks;
        s->spins[w] = st.spins;
        s->found[w] = st.spins_found;
    }
}
static uint64_t idle_sum(const uint64_t *v)
{
    uint64_t n = 0;
    for (unsigned w = 0; w < IDLE_WORKERS; w++)
        n += v[w];
    return n;
}
/* Snaps once the polls of a burst of `polls` tasks are all counted (10 s at most), and checks
 * that there are exactly that many. */
static void idle_snap_counted(mvx_runtime *rt, struct idle_snap *s, uint64_t polls)
{
    polls_counted(rt, IDLE_WORKERS, polls, 10 * SEC);
    idle_snap(rt, s);
    ck_assert_uint_eq(idle_sum(s->polls), polls);
}

/* A burst of the kind that makes spinning pay: round trips from this thread (the next spawn
 * comes microseconds after the worker went idle), then a batch. */
static void idle_burst(mvx_runtime *rt)
{
    for (int i = 0; i < 3000; i++) {
        mvx_join_handle *jh;
        ck_assert_int_eq(mvx_spawn(rt, &empty_vt, NULL, &jh), 0);
        ck_assert_int_eq(mvx_join_wait(jh, 10 * SEC), 0);
        mvx_join_release(jh);
    }
    mvx_join_handle *jh[1000];
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(mvx_spawn(rt, &empty_vt, NULL, &jh[i]), 0);
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(mvx_join_wait(jh[i], 10 * SEC), 0);
        mvx_join_release(jh[i]);
    }
}

/* Waits until no worker's counters move for three looks 100 ms apart: a worker that spins or
 * retries counts a spin round at least every spin budget (50 us), one that sleeps counts
 * nothing, so still counters mean every worker is parked. Fails if that takes over 30 s: the
 * workers never go to sleep. */
static void idle_wait_all_parked(mvx_runtime *rt, struct idle_snap *now)
{
    struct idle_snap prev;
    idle_snap(rt, &prev);
    int still = 0;
    for (int looks = 0; still < 3; looks++) {
        ck_assert_msg(looks < 300, "the workers are still active 30 s after the burst");
        usleep(100000);
        idle_snap(rt, now);
        still = memcmp(now, &prev, sizeof prev) == 0 ? still + 1 : 0;
        prev = *now;
    }
}

/* The adaptive policy spins while spinning finds work, and an idle runtime goes to sleep: after
 * the burst every worker is parked within a few spin rounds (its budget halves with every spin
 * that finds nothing), instead of spinning on. */
START_TEST(an_idle_runtime_parks_every_worker_within_a_few_spin_rounds)
{
    mvx_runtime *rt =
        new_runtime_spinning(IDLE_WORKERS, MVX_SPIN_ADAPTIVE, sizeof(mvx_runtime_config));
    idle_burst(rt);
    struct idle_snap after_burst, parked;
    idle_snap_counted(rt, &after_burst, 4000);
    ck_assert_uint_gt(idle_sum(after_burst.found), 0); /* spinning paid during the burst */
    idle_wait_all_parked(rt, &parked);
    for (unsigned w = 0; w < IDLE_WORKERS; w++) {
        ck_assert_uint_gt(parked.parks[w], 0);
        ck_assert_uint_le(parked.spins[w] - after_burst.spins[w], 8);
        ck_assert_uint_eq(parked.polls[w], after_burst.polls[w]);
    }
    /* Asleep means asleep: nothing moves while nothing happens. */
    usleep(200000);
    struct idle_snap later;
    idle_snap(rt, &later);
    ck_assert_mem_eq(&later, &parked, sizeof later);
    /* And a sleeping runtime still wakes for work. */
    idle_burst(rt);
    idle_snap_counted(rt, &later, 8000);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

/* spin_ns = 0: no worker spins, ever; everything still runs. */
START_TEST(spin_ns_zero_never_spins)
{
    mvx_runtime *rt = new_runtime_spinning(IDLE_WORKERS, 0, sizeof(mvx_runtime_config));
    idle_burst(rt);
    struct idle_snap s;
    idle_wait_all_parked(rt, &s);
    ck_assert_uint_eq(idle_sum(s.polls), 4000);
    for (unsigned w = 0; w < IDLE_WORKERS; w++)
        ck_assert_uint_eq(s.spins[w] - s.found[w], 0); /* at most retries that saw work at once */
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

/* A fixed spin spins on every idle round, yet an idle runtime still parks (one spin each). And
 * a caller built before spin_ns existed gets the adaptive default. */
START_TEST(fixed_spin_and_old_config_size_park_when_idle)
{
    mvx_runtime *rt = new_runtime_spinning(IDLE_WORKERS, 20000, sizeof(mvx_runtime_config));
    idle_burst(rt);
    struct idle_snap after_burst, parked;
    idle_snap(rt, &after_burst);
    ck_assert_uint_gt(idle_sum(after_burst.spins), 0);
    idle_wait_all_parked(rt, &parked);
    for (unsigned w = 0; w < IDLE_WORKERS; w++)
        ck_assert_uint_le(parked.spins[w] - after_burst.spins[w], 8);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);

    rt = new_runtime_spinning(IDLE_WORKERS, 0, offsetof(mvx_runtime_config, spin_ns));
    idle_burst(rt);
    idle_snap(rt, &after_burst);
    ck_assert_uint_gt(idle_sum(after_burst.found), 0); /* adaptive: it spun, and it paid */
    idle_wait_all_parked(rt, &parked);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

/* A caller built against 1.0's mvx_worker_stats (ending at parks) gets those fields, and
 * nothing is written past its struct. */
START_TEST(stats_of_the_first_release_size_are_filled_without_the_spin_counters)
{
    mvx_runtime *rt = new_runtime(1);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &empty_vt, NULL, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 10 * SEC), 0);
    mvx_join_release(jh);
    mvx_worker_stats st;
    memset(&st, 0xab, sizeof st);
    st.size = offsetof(mvx_worker_stats, spins);
    ck_assert_int_eq(mvx_runtime_worker_stats(rt, 0, &st), 0);
    for (int tries = 0; tries < 1000 && st.polls != 1; tries++) {
        usleep(1000);
        ck_assert_int_eq(mvx_runtime_worker_stats(rt, 0, &st), 0);
    }
    ck_assert_uint_eq(st.polls, 1);
    unsigned char tail[sizeof st - offsetof(mvx_worker_stats, spins)];
    memcpy(tail, &st.spins, sizeof tail);
    for (size_t i = 0; i < sizeof tail; i++)
        ck_assert_uint_eq(tail[i], 0xab);
    st.size = offsetof(mvx_worker_stats, parks);
    ck_assert_int_eq(mvx_runtime_worker_stats(rt, 0, &st), MVX_EINVAL);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

/* ---- block_on ---- */

/* ---- whom an outside spawn wakes (idle.c) ---- */

/* The first two CPUs this thread may run on; false where there are fewer. */
static bool two_cpus(int cpu[2])
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return false;
    int found = 0;
    for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &set))
            cpu[found++] = c;
    return found == 2;
}
static bool pin_this_thread(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0 && sched_getcpu() == cpu;
}
struct pinned_workers {
    int cpu[2];
    atomic_int started, pinned;
};
static void pin_worker(void *data, unsigned index)
{
    struct pinned_workers *p = data;
    if (pin_this_thread(p->cpu[index]))
        atomic_fetch_add(&p->pinned, 1);
    atomic_fetch_add(&p->started, 1);
}
static int cpu_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    *(int *)output = sched_getcpu();
    return MVX_POLL_READY;
}
static const mvx_task_vtable cpu_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = cpu_poll,
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};
static uint64_t parks_of_both(mvx_runtime *rt)
{
    uint64_t n = 0;
    for (unsigned w = 0; w < 2; w++) {
        mvx_worker_stats st = {.size = sizeof st};
        ck_assert_int_eq(mvx_runtime_worker_stats(rt, w, &st), 0);
        n += st.parks;
    }
    return n;
}
struct near_wake_run {
    struct pinned_workers workers;
    int mismatches, rounds;
    bool skipped;
};
/* On a thread of its own, as it pins itself. */
static void *spawn_from_either_cpu(void *arg)
{
    struct near_wake_run *run = arg;
    struct pinned_workers *p = &run->workers;
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    cfg.worker_threads = 2;
    cfg.spin_ns = 0; /* a worker with nothing to do parks at once */
    cfg.on_thread_start = pin_worker;
    cfg.hook_data = p;
    mvx_runtime *rt;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), 0);
    wait_until_int(&p->started, 2, 30 * SEC);
    run->skipped = atomic_load(&p->pinned) != 2 || !pin_this_thread(p->cpu[0]);
    /* Both workers start by parking, and each round's worker parks again after its task. */
    uint64_t parked = 2;
    /* Which CPU spawns, round by round: an irregular order, so that no rotation matches it. */
    const unsigned order = 0xb38du;
    for (int round = 0; !run->skipped && round < 16; round++) {
        int cpu = p->cpu[(order >> round) & 1];
        ck_assert(pin_this_thread(cpu));
        for (int waited = 0; parks_of_both(rt) < parked; waited++) {
            ck_assert_msg(waited < 10000, "the workers did not park within 10 s");
            usleep(1000);
        }
        usleep(1000); /* both have slept far longer than MVX__WAKE_NEAR_AFTER_NS */
        mvx_join_handle *jh;
        ck_assert_int_eq(mvx_spawn(rt, &cpu_vt, NULL, &jh), 0);
        ck_assert_int_eq(mvx_join_wait(jh, 30 * SEC), 0);
        int ran_on = -1;
        ck_assert_int_eq(mvx_join_take(jh, &ran_on, sizeof ran_on, NULL), 0);
        mvx_join_release(jh);
        run->mismatches += ran_on != cpu;
        run->rounds++;
        parked++;
    }
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    return NULL;
}

/* A thread outside the runtime that spawns after the workers have slept a while wakes the one
 * that sleeps on its own CPU: the kernel wakes a thread where it last ran, and the spawner's CPU
 * is the one about to be free (docs/scheduler.md). With the workers pinned one per CPU, the task
 * runs on the spawner's CPU every time; waking in turns would miss about half the rounds. */
START_TEST(an_outside_spawn_wakes_the_worker_asleep_on_its_cpu)
{
    struct near_wake_run run = {0};
    if (!two_cpus(run.workers.cpu)) {
        fprintf(stderr, "skipped: fewer than 2 CPUs to pin workers to\n");
        return;
    }
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, spawn_from_either_cpu, &run), 0);
    pthread_join(th, NULL);
    if (run.skipped) {
        fprintf(stderr, "skipped: threads cannot be pinned to CPUs %d and %d here\n",
                run.workers.cpu[0], run.workers.cpu[1]);
        return;
    }
    ck_assert_int_eq(run.rounds, 16);
    ck_assert_int_eq(run.mismatches, 0);
}
END_TEST

START_TEST(block_on_runs_a_task_on_the_calling_thread)
{
    mvx_runtime *rt = new_runtime(2);
    struct yielder y = {5, 31};
    int out = 0;
    ck_assert_int_eq(mvx_block_on(rt, &yielder_vt, &y, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(out, 31);
    ck_assert_int_eq(atomic_load(&g_polls), 6);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    mvx_runtime_release(rt);
}
END_TEST

/* block_on's task spawns onto the workers and awaits all of them. */
struct fan_out {
    mvx_join_handle *children[64];
    bool spawned;
    int next;
    int sum;
};
static int fan_out_poll(void *state, mvx_context *cx, void *output)
{
    struct fan_out *f = state;
    if (!f->spawned) { /* once: this poll runs again whenever a child it awaits finishes */
        f->spawned = true;
        for (int i = 0; i < 64; i++) {
            struct yielder y = {i % 4, i};
            mvx_spawn(mvx_runtime_current(), &yielder_vt, &y, &f->children[i]);
        }
    }
    while (f->next < 64) {
        int r = mvx_join_poll(f->children[f->next], mvx_context_waker(cx));
        if (r == MVX_EAGAIN)
            return MVX_POLL_PENDING;
        int v = 0;
        mvx_join_take(f->children[f->next], &v, sizeof v, NULL);
        mvx_join_release(f->children[f->next]);
        f->sum += v;
        f->next++;
    }
    *(int *)output = f->sum;
    return MVX_POLL_READY;
}
static const mvx_task_vtable fan_out_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = fan_out_poll,
    .state_size = sizeof(struct fan_out),
    .state_align = _Alignof(struct fan_out),
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

START_TEST(block_on_awaits_tasks_running_on_the_workers)
{
    mvx_runtime *rt = new_runtime(2);
    struct fan_out f = {0};
    int out = 0;
    ck_assert_int_eq(mvx_block_on(rt, &fan_out_vt, &f, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(out, 63 * 64 / 2);
    mvx_runtime_release(rt);
    int drops = atomic_load(&g_drops);
    ck_assert_int_eq(drops, 64); /* the children, each spawned once */
}
END_TEST

START_TEST(block_on_reports_a_failure)
{
    mvx_runtime *rt = new_runtime(1);
    atomic_store(&g_payload_drops, 0);
    int out;
    mvx_failure f = {.size = sizeof f};
    ck_assert_int_eq(mvx_block_on(rt, &failer_vt, NULL, &out, sizeof out, &f), MVX_EFAILED);
    ck_assert_int_eq(f.code, 77);
    mvx_failure_clear(&f);
    ck_assert_int_eq(atomic_load(&g_payload_drops), 1);
    mvx_runtime_release(rt);
}
END_TEST

struct nested {
    mvx_runtime *rt;
    int block_on, shutdown, release;
};
static int nested_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct nested *n = state;
    n->block_on = mvx_block_on(n->rt, &empty_vt, NULL, NULL, 0, NULL);
    n->shutdown = mvx_runtime_shutdown(n->rt, 0);
    n->release = mvx_runtime_release(n->rt);
    return MVX_POLL_READY;
}
static const mvx_task_vtable nested_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = nested_poll,
};

START_TEST(blocking_calls_from_a_worker_are_edeadlk)
{
    mvx_runtime *rt = new_runtime(1);
    struct nested n = {rt, 0, 0, 0};
    mvx_join_handle *jh;
    mvx_spawn(rt, &nested_vt, &n, &jh);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    ck_assert_int_eq(n.block_on, MVX_EDEADLK);
    ck_assert_int_eq(n.shutdown, MVX_EDEADLK);
    ck_assert_int_eq(n.release, MVX_EDEADLK);
    mvx_join_release(jh);
    mvx_runtime_release(rt);
}
END_TEST

/* ---- fairness ---- */

/* Chains that stall and spawn their successor forever: a remote task must still run (tokio 1.24
 * and oneTBB starve it). */
static atomic_int g_chain_stop;
static const mvx_task_vtable chain_vt_ref;
static int chain_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    if (atomic_load(&g_chain_stop))
        return MVX_POLL_READY;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * SEC + (t1.tv_nsec - t0.tv_nsec) < 10000);
    mvx_spawn(mvx_runtime_current(), &chain_vt_ref, NULL, NULL);
    return MVX_POLL_READY;
}

static const mvx_task_vtable chain_vt_ref = {
    .size = sizeof(mvx_task_vtable),
    .poll = chain_poll,
};

START_TEST(remote_tasks_run_while_every_worker_runs_a_chain)
{
    atomic_store(&g_chain_stop, 0);
    mvx_runtime *rt = new_runtime(2);
    for (int i = 0; i < 2; i++)
        mvx_spawn(rt, &chain_vt_ref, NULL, NULL);
    usleep(20000);
    for (int round = 0; round < 5; round++) {
        mvx_join_handle *jh[100];
        for (int i = 0; i < 100; i++)
            ck_assert_int_eq(mvx_spawn(rt, &empty_vt, NULL, &jh[i]), 0);
        for (int i = 0; i < 100; i++) {
            ck_assert_int_eq(mvx_join_wait(jh[i], 5 * SEC), 0);
            mvx_join_release(jh[i]);
        }
    }
    atomic_store(&g_chain_stop, 1);
    mvx_runtime_release(rt);
}
END_TEST

/* A worker busy in a long poll must not keep the others asleep: new tasks run meanwhile. */
START_TEST(a_long_poll_does_not_stop_the_other_workers)
{
    mvx_runtime *rt = new_runtime(2);
    for (int round = 0; round < 5; round++) {
        struct gate g = {0};
        atomic_store(&g.result, MVX_POLL_READY);
        mvx_join_handle *stuck;
        mvx_spawn(rt, &gate_vt, &g, &stuck);
        gate_wait_entered(&g, 1);
        usleep(20000); /* the idle worker goes to sleep */
        for (int i = 0; i < 20; i++) {
            mvx_join_handle *jh;
            mvx_spawn(rt, &empty_vt, NULL, &jh);
            ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
            mvx_join_release(jh);
        }
        atomic_store(&g.open, 1);
        ck_assert_int_eq(mvx_join_wait(stuck, 5 * SEC), 0);
        mvx_join_release(stuck);
    }
    mvx_runtime_release(rt);
}
END_TEST

/* ---- backpressure on floods spawned from outside ---- */

/* Busy for about 20 us: a worker drains such tasks far slower than a thread spawns them. */
static int slow_poll(void *state, mvx_context *cx, void *output)
{
    (void)state, (void)cx, (void)output;
    int64_t until = test_now_ns() + 20000;
    while (test_now_ns() < until)
        ;
    return MVX_POLL_READY;
}
static const mvx_task_vtable slow_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = slow_poll,
    .drop = count_drop,
    .state_size = 1,
};

static long voluntary_switches(void)
{
    struct rusage ru;
    ck_assert_int_eq(getrusage(RUSAGE_THREAD, &ru), 0);
    return ru.ru_nvcsw;
}

/* An outside thread spawning far faster than the one worker runs the tasks sleeps inside the
 * spawn calls (the workers fall behind by more than spawn_backlog_ns), and loses nothing. */
START_TEST(a_flood_spawned_from_outside_waits_for_the_workers)
{
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    cfg.worker_threads = 1;
    cfg.spawn_backlog_ns = 50000;
    mvx_runtime *rt;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), 0);
    /* Not scaled down under valgrind: the marks are 64 pushes apart, and a few hundred tasks
     * give the spawner too few chances to see an old one. */
    int n = 4000;
    char state = 0;
    long before = voluntary_switches();
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(mvx_spawn(rt, &slow_vt, &state, NULL), 0);
    ck_assert_int_gt(voluntary_switches(), before);
    wait_until_int(&g_drops, n, 30 * SEC);
    mvx_runtime_release(rt);
    ck_assert_int_eq(atomic_load(&g_drops), n);
}
END_TEST

/* Workers that take nothing (every one in a long poll) must not stall a spawner that the
 * polls may be waiting for: the flood goes through, and everything runs once they return. */
START_TEST(a_flood_spawned_from_outside_does_not_wait_for_stuck_workers)
{
    mvx_runtime *rt = new_runtime(2);
    struct gate g[2] = {0};
    mvx_join_handle *stuck[2];
    for (int i = 0; i < 2; i++) {
        atomic_store(&g[i].result, MVX_POLL_READY);
        ck_assert_int_eq(mvx_spawn(rt, &gate_vt, &g[i], &stuck[i]), 0);
    }
    gate_wait_entered(&g[0], 1);
    gate_wait_entered(&g[1], 1);
    int n = scaled(50000);
    for (int round = 0; round < 2; round++) {
        /* In round 1 the workers are stuck from the start; in round 2, after a stall the
         * spawner gave up on, they run and get stuck again, so waiting must resume and give up
         * again. */
        for (int i = 0; i < n; i++)
            ck_assert_int_eq(mvx_spawn(rt, &empty_vt, NULL, NULL), 0);
        for (int i = 0; i < 2; i++)
            atomic_store(&g[i].open, 1);
        for (int i = 0; i < 2; i++) {
            ck_assert_int_eq(mvx_join_wait(stuck[i], 10 * SEC), 0);
            mvx_join_release(stuck[i]);
        }
        wait_until_int(&g_drops, (round + 1) * (n + 2), 30 * SEC);
        if (round == 0) {
            for (int i = 0; i < 2; i++) {
                atomic_store(&g[i].entered, 0);
                ck_assert_int_eq(mvx_spawn(rt, &gate_vt, &g[i], &stuck[i]), 0);
            }
            gate_wait_entered(&g[0], 1);
            gate_wait_entered(&g[1], 1);
        }
    }
    mvx_runtime_release(rt);
    ck_assert_int_eq(atomic_load(&g_drops), 2 * (n + 2));
}
END_TEST

/* ---- wake storms ---- */

struct storm {
    struct mailbox *m;
    pthread_barrier_t *barrier;
};
static void *storm_thread(void *arg)
{
    struct storm *s = arg;
    pthread_barrier_wait(s->barrier);
    for (int i = 0; i < scaled(20000); i++)
        mailbox_wake_only(s->m);
    return NULL;
}

START_TEST(wake_storm_from_many_threads_loses_nothing)
{
    mvx_runtime *rt = new_runtime(2);
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_spawn(rt, &mailbox_vt, &m, &jh);
    while (atomic_load(&m.polls) == 0)
        sched_yield();
    enum { N = 6 };
    pthread_t th[N];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N);
    struct storm s = {&m, &barrier};
    for (int i = 0; i < N; i++)
        pthread_create(&th[i], NULL, storm_thread, &s);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int64_t waited = 0; atomic_load(&m.polls) < 2; waited += MS) {
        ck_assert_int_lt(waited, 5 * SEC); /* woken at least once */
        usleep(1000);
    }
    ck_assert_int_le(atomic_load(&m.polls), 1 + N * scaled(20000)); /* never more than the wakes */
    mailbox_deliver(&m);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    mvx_join_release(jh);
    mailbox_fini(&m);
    pthread_barrier_destroy(&barrier);
    mvx_runtime_release(rt);
}
END_TEST

struct spawn_thread_arg {
    mvx_runtime *rt;
    pthread_barrier_t *barrier;
};
static void *spawn_thread(void *arg)
{
    struct spawn_thread_arg *a = arg;
    pthread_barrier_wait(a->barrier);
    for (int i = 0; i < scaled(5000); i++) {
        struct yielder y = {i % 2, i};
        mvx_join_handle *jh;
        ck_assert_int_eq(mvx_spawn(a->rt, &yielder_vt, &y, &jh), 0);
        if (i % 3 == 0) {
            ck_assert_int_eq(mvx_join_wait(jh, 10 * SEC), 0);
            int out;
            ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), 0);
            ck_assert_int_eq(out, i);
        }
        mvx_join_release(jh);
    }
    return NULL;
}

START_TEST(spawns_from_many_threads_all_complete)
{
    mvx_runtime *rt = new_runtime(2);
    enum { N = 4 };
    pthread_t th[N];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N);
    struct spawn_thread_arg a = {rt, &barrier};
    for (int i = 0; i < N; i++)
        pthread_create(&th[i], NULL, spawn_thread, &a);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    wait_until_int(&g_drops, N * scaled(5000), 10 * SEC);
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 5 * SEC), 0);
    ck_assert_int_eq(atomic_load(&g_drops), N * scaled(5000));
    pthread_barrier_destroy(&barrier);
    mvx_runtime_release(rt);
}
END_TEST

START_TEST(two_runtimes_side_by_side)
{
    mvx_runtime *a = new_runtime(1), *b = new_runtime(2);
    mvx_join_handle *ja, *jb;
    struct yielder y = {3, 1};
    mvx_spawn(a, &yielder_vt, &y, &ja);
    mvx_spawn(b, &yielder_vt, &y, &jb);
    ck_assert_int_eq(mvx_join_wait(ja, 5 * SEC), 0);
    ck_assert_int_eq(mvx_join_wait(jb, 5 * SEC), 0);
    mvx_join_release(ja);
    mvx_join_release(jb);
    mvx_runtime_release(a);
    mvx_runtime_release(b);
}
END_TEST

/* ---- shutdown ---- */

START_TEST(shutdown_cancels_100k_pending_tasks_once_each)
{
    const int N = scaled(100000);
    mvx_runtime *rt = new_runtime(2);
    mvx_join_handle **jh = malloc(N * sizeof *jh);
    struct mailbox m;
    mailbox_init(&m);
    for (int i = 0; i < N; i++) {
        /* Half wait on nothing with a handle (idle after one poll), half yield forever. */
        const mvx_task_vtable *vt = i % 2 ? &forever_vt : &yielder_vt;
        struct yielder y = {1 << 30, 0};
        ck_assert_int_eq(mvx_spawn(rt, vt, &y, &jh[i]), 0);
    }
    mvx_join_handle *waited;
    mvx_spawn(rt, &mailbox_vt, &m, &waited);
    struct flag_waker *fw = flag_waker_new();
    mvx_waker w = {&flag_waker_vt, fw};
    mvx_join_poll(waited, &w);
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 30 * SEC), 0);
    ck_assert_int_eq(atomic_load(&g_drops), N + 1);
    ck_assert_int_eq(atomic_load(&fw->wakes), 1); /* its waiter was told */
    flag_waker_put(fw);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(mvx_join_try(jh[i]), MVX_ECANCELLED);
        mvx_join_release(jh[i]);
    }
    ck_assert_int_eq(mvx_join_try(waited), MVX_ECANCELLED);
    mvx_join_release(waited);
    struct yielder y = {0, 0};
    ck_assert_int_eq(mvx_spawn(rt, &yielder_vt, &y, NULL), MVX_ESHUTDOWN);
    mailbox_fini(&m);
    free(jh);
    mvx_runtime_release(rt);
    ck_assert_int_eq(atomic_load(&g_drops), N + 1);
}
END_TEST

START_TEST(shutdown_gives_up_on_a_stuck_poll_and_reports_it)
{
    mvx_runtime *rt = new_runtime(2);
    struct gate g = {0};
    atomic_store(&g.result, MVX_POLL_PENDING);
    mvx_join_handle *jh;
    mvx_spawn(rt, &gate_vt, &g, &jh);
    gate_wait_entered(&g, 1);
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 50 * MS), 1);
    ck_assert_int_eq(mvx_join_try(jh), MVX_EAGAIN);
    atomic_store(&g.open, 1); /* the poll returns pending: cancelled right after */
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), MVX_ECANCELLED);
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 5 * SEC), 0);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    mvx_join_release(jh);
    mvx_runtime_release(rt);
}
END_TEST

/* Spawns two children (the second stays in this worker's LIFO slot, where nobody can steal it),
 * then blocks at the gate. */
static int gate_parent_poll(void *state, mvx_context *cx, void *output)
{
    struct gate *g = state;
    if (atomic_load(&g->entered) == 0) {
        for (int i = 0; i < 2; i++) {
            struct yielder y = {0, i};
            mvx_spawn(mvx_runtime_current(), &yielder_vt, &y, NULL);
        }
    }
    return gate_poll(state, cx, output);
}
static const mvx_task_vtable gate_parent_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = gate_parent_poll,
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

/* The other worker exits while this one is stuck; when the poll returns, the task left in the
 * LIFO slot is requeued and the worker must still wind down (it once spun forever trying to
 * wake the exited worker). */
START_TEST(stuck_worker_with_a_task_in_its_lifo_slot_still_shuts_down)
{
    struct hooks h = {0};
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    cfg.worker_threads = 2;
    cfg.on_thread_stop = on_stop;
    cfg.hook_data = &h;
    mvx_runtime *rt;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), 0);
    struct gate g = {0};
    atomic_store(&g.result, MVX_POLL_READY);
    mvx_join_handle *jh;
    mvx_spawn(rt, &gate_parent_vt, &g, &jh);
    gate_wait_entered(&g, 1);
    usleep(100000); /* the other worker runs the first child, spins, then falls asleep */
    int left = mvx_runtime_shutdown(rt, 200 * MS);
    ck_assert_int_ge(left, 1);
    ck_assert_int_le(left, 2);
    atomic_store(&g.open, 1);
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 10 * SEC), 0);
    ck_assert_int_eq(atomic_load(&h.stopped), 2); /* both workers wound down */
    ck_assert_int_eq(mvx_join_wait(jh, 0), 0);
    ck_assert_int_eq(atomic_load(&g_drops), 2); /* both children: run or cancelled */
    mvx_join_release(jh);
    mvx_runtime_release(rt);
}
END_TEST

START_TEST(release_after_a_timed_out_shutdown_does_not_wait)
{
    mvx_runtime *rt = new_runtime(1);
    struct gate *g = calloc(1, sizeof *g);
    atomic_store(&g->result, MVX_POLL_READY);
    ck_assert_int_eq(mvx_spawn(rt, &gate_vt, g, NULL), 0);
    gate_wait_entered(g, 1);
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 0), 1);
    ck_assert_int_eq(mvx_runtime_release(rt), 0); /* returns while the poll is stuck */
    atomic_store(&g->open, 1);                    /* the worker finishes and frees rt */
    wait_until_int(&g_drops, 1, 5 * SEC);
    usleep(20000);
    free(g);
}
END_TEST

START_TEST(waiters_blocked_in_join_wait_are_woken_by_shutdown)
{
    mvx_runtime *rt = new_runtime(1);
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_spawn(rt, &mailbox_vt, &m, &jh);
    ck_assert_int_eq(mvx_join_wait(jh, 30 * MS), MVX_ETIMEDOUT);
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 5 * SEC), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), MVX_ECANCELLED);
    mvx_join_release(jh);
    mailbox_fini(&m);
    mvx_runtime_release(rt);
}
END_TEST

struct racer {
    mvx_runtime *rt;
    pthread_barrier_t *barrier;
    atomic_int *spawned;
};
static void *spawn_until_shutdown(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->barrier);
    for (;;) {
        struct yielder y = {3, 0};
        int res = mvx_spawn(r->rt, &yielder_vt, &y, NULL);
        if (res == MVX_ESHUTDOWN)
            return NULL;
        ck_assert_int_eq(res, 0);
        atomic_fetch_add(r->spawned, 1);
    }
}

START_TEST(spawns_racing_shutdown_are_run_or_cancelled_never_lost)
{
    for (int round = 0; round < 20; round++) {
        reset_counters();
        mvx_runtime *rt = new_runtime(2);
        atomic_int spawned = 0;
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, 3);
        struct racer r = {rt, &barrier, &spawned};
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, spawn_until_shutdown, &r);
        pthread_barrier_wait(&barrier);
        usleep(2000);
        ck_assert_int_eq(mvx_runtime_shutdown(rt, 10 * SEC), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        ck_assert_int_eq(atomic_load(&g_drops), atomic_load(&spawned));
        pthread_barrier_destroy(&barrier);
        mvx_runtime_release(rt);
        ck_assert_int_eq(atomic_load(&g_drops), atomic_load(&spawned));
    }
}
END_TEST

/* Spawns B, then C (C takes the LIFO slot, B goes to the queue), then blocks at the gate. */
struct lifo_parent {
    struct gate g;
    mvx_join_handle *b, *c;
};
static int lifo_parent_poll(void *state, mvx_context *cx, void *output)
{
    struct lifo_parent *p = state;
    if (atomic_load(&p->g.entered) == 0) {
        struct yielder y = {0, 1};
        ck_assert_int_eq(mvx_spawn(mvx_runtime_current(), &yielder_vt, &y, &p->b), 0);
        ck_assert_int_eq(mvx_spawn(mvx_runtime_current(), &yielder_vt, &y, &p->c), 0);
    }
    return gate_poll(&p->g, cx, output);
}
static const mvx_task_vtable lifo_parent_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = lifo_parent_poll,
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

/* Shutdown cancels every task that is not running, the one in a busy worker's LIFO slot too:
 * only the parent, stuck in its poll, is left. */
START_TEST(shutdown_cancels_the_task_in_a_busy_workers_lifo_slot)
{
    mvx_runtime *rt = new_runtime(1);
    struct lifo_parent p = {0};
    atomic_store(&p.g.result, MVX_POLL_READY);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &lifo_parent_vt, &p, &jh), 0);
    gate_wait_entered(&p.g, 1);
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 200 * MS), 1);
    ck_assert_int_eq(mvx_join_try(p.b), MVX_ECANCELLED);
    ck_assert_int_eq(mvx_join_try(p.c), MVX_ECANCELLED);
    int drops = atomic_load(&g_drops), polls = atomic_load(&g_polls);
    ck_assert_int_eq(drops, 2);
    ck_assert_int_eq(polls, 1); /* only the parent's */
    atomic_store(&p.g.open, 1);
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 10 * SEC), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 0), 0);
    mvx_join_release(p.b);
    mvx_join_release(p.c);
    mvx_join_release(jh);
    mvx_runtime_release(rt);
}
END_TEST

START_TEST(release_without_shutdown_shuts_down)
{
    mvx_runtime *rt = new_runtime(2);
    for (int i = 0; i < 1000; i++)
        mvx_spawn(rt, &forever_vt, NULL, NULL);
    struct mailbox m;
    mailbox_init(&m);
    mvx_spawn(rt, &mailbox_vt, &m, NULL);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    ck_assert_int_eq(atomic_load(&g_drops), 1001);
    mailbox_fini(&m); /* drops the last waker after the runtime is gone */
}
END_TEST

static Suite *runtime_suite(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("runtime");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, default_worker_count_is_the_available_cpus);
    tcase_add_test(tc, config_init_fills_defaults);
    tcase_add_test(tc, workers_are_named_and_run_the_hooks);
    tcase_add_test(tc, long_thread_names_are_cut_to_15_bytes);
    tcase_add_test(tc, workers_ask_for_the_configured_time_slice);
    tcase_add_test(tc, spawn_from_a_task_stays_on_its_worker);
    tcase_add_test(tc, current_runtime_is_set_only_inside_tasks);
    tcase_add_test(tc, stats_count_polls_and_parks);
    tcase_add_test(tc, an_idle_runtime_parks_every_worker_within_a_few_spin_rounds);
    tcase_add_test(tc, spin_ns_zero_never_spins);
    tcase_add_test(tc, fixed_spin_and_old_config_size_park_when_idle);
    tcase_add_test(tc, stats_of_the_first_release_size_are_filled_without_the_spin_counters);
    tcase_add_test(tc, an_outside_spawn_wakes_the_worker_asleep_on_its_cpu);
    tcase_add_test(tc, block_on_runs_a_task_on_the_calling_thread);
    tcase_add_test(tc, block_on_awaits_tasks_running_on_the_workers);
    tcase_add_test(tc, block_on_reports_a_failure);
    tcase_add_test(tc, blocking_calls_from_a_worker_are_edeadlk);
    tcase_add_test(tc, remote_tasks_run_while_every_worker_runs_a_chain);
    tcase_add_test(tc, a_long_poll_does_not_stop_the_other_workers);
    tcase_add_test(tc, a_flood_spawned_from_outside_waits_for_the_workers);
    tcase_add_test(tc, a_flood_spawned_from_outside_does_not_wait_for_stuck_workers);
    tcase_add_test(tc, wake_storm_from_many_threads_loses_nothing);
    tcase_add_test(tc, spawns_from_many_threads_all_complete);
    tcase_add_test(tc, two_runtimes_side_by_side);
    tcase_add_test(tc, shutdown_cancels_100k_pending_tasks_once_each);
    tcase_add_test(tc, shutdown_gives_up_on_a_stuck_poll_and_reports_it);
    tcase_add_test(tc, stuck_worker_with_a_task_in_its_lifo_slot_still_shuts_down);
    tcase_add_test(tc, release_after_a_timed_out_shutdown_does_not_wait);
    tcase_add_test(tc, waiters_blocked_in_join_wait_are_woken_by_shutdown);
    tcase_add_test(tc, spawns_racing_shutdown_are_run_or_cancelled_never_lost);
    tcase_add_test(tc, shutdown_cancels_the_task_in_a_busy_workers_lifo_slot);
    tcase_add_test(tc, release_without_shutdown_shuts_down);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(runtime_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
