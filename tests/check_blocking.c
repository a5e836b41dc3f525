/*
 * check_blocking.c - the blocking pool: jobs run once on pool threads, the pool grows to its
 * maximum and queues beyond it, shrinks when idle, aborts cancel queued jobs and drop the output
 * of running ones, shutdown reports jobs left running, the async workers never wait, and pool
 * threads run under SCHED_BATCH unless told to keep the policy they inherit.
 */
#include "helpers.h"

#include <stdio.h>

static mvx_runtime *pool_runtime(unsigned workers, unsigned max_blocking, int64_t keep_alive)
{
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    cfg.worker_threads = workers;
    cfg.max_blocking_threads = max_blocking;
    cfg.blocking_keep_alive_ns = keep_alive;
    mvx_runtime *rt;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), 0);
    return rt;
}

static mvx_blocking_stats stats_of(mvx_runtime *rt)
{
    mvx_blocking_stats st = {.size = sizeof st};
    ck_assert_int_eq(mvx_runtime_blocking_stats(rt, &st), 0);
    return st;
}

static void setup(void)
{
    reset_counters();
    atomic_store(&g_payload_drops, 0);
}

/* Records where it ran and what mvx_runtime_current() said there. */
struct where {
    char thread[16];
    mvx_runtime *current;
};
static int where_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    struct where *w = *(struct where **)state;
    pthread_getname_np(pthread_self(), w->thread, sizeof w->thread);
    w->current = mvx_runtime_current();
    usleep(1000); /* it may block */
    *(int *)output = 99;
    return MVX_POLL_READY;
}
static const mvx_task_vtable where_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = where_poll,
    .drop = count_drop,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

START_TEST(a_job_runs_once_on_a_pool_thread)
{
    mvx_runtime *rt = pool_runtime(1, 0, 0);
    struct where w = {{0}, NULL};
    struct where *wp = &w;
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn_blocking(rt, &where_vt, &wp, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    int out = 0;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(out, 99);
    ck_assert_str_eq(w.thread, "mvx-worker-blk");
    ck_assert_ptr_eq(w.current, rt);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    mvx_join_release(jh);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

START_TEST(the_pool_grows_to_its_maximum_then_queues)
{
    mvx_runtime *rt = pool_runtime(1, 4, 0);
    struct gate g[8];
    mvx_join_handle *jh[8];
    memset(g, 0, sizeof g);
    for (int i = 0; i < 8; i++) {
        atomic_store(&g[i].result, MVX_POLL_READY);
        ck_assert_int_eq(mvx_spawn_blocking(rt, &gate_vt, &g[i], &jh[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        gate_wait_entered(&g[i], 1);
    usleep(20000);
    mvx_blocking_stats st = stats_of(rt);
    ck_assert_uint_eq(st.threads, 4);
    ck_assert_uint_eq(st.running, 4);
    ck_assert_uint_eq(st.queued, 4);
    for (int i = 4; i < 8; i++)
        ck_assert_int_eq(atomic_load(&g[i].entered), 0); /* in order: the first four run */
    for (int i = 0; i < 8; i++)
        atomic_store(&g[i].open, 1);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(mvx_join_wait(jh[i], 5 * SEC), 0);
        mvx_join_release(jh[i]);
    }
    ck_assert_uint_le(stats_of(rt).threads, 4);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

/* A burst onto a pool of idle threads: the submitter wakes only the first thread, and each
 * thread that takes a job wakes more (blocking.c, summon). Every job must still start while all
 * the others are blocked, none waiting for a running one to finish; and a burst beyond the idle
 * threads starts new ones up to the maximum. */
enum { BURST_IDLE = 8, BURST_MAX = 12 };
static void run_burst(mvx_runtime *rt, int n)
{
    struct gate g[BURST_MAX];
    mvx_join_handle *jh[BURST_MAX];
    memset(g, 0, sizeof g);
    for (int i = 0; i < n; i++) {
        atomic_store(&g[i].result, MVX_POLL_READY);
        ck_assert_int_eq(mvx_spawn_blocking(rt, &gate_vt, &g[i], &jh[i]), 0);
    }
    for (int i = 0; i < n; i++) /* no gate is open: a job left waiting times out here */
        wait_until_int(&g[i].entered, 1, 10 * SEC);
    mvx_blocking_stats st = stats_of(rt);
    ck_assert_uint_eq(st.running, (unsigned)n);
    ck_assert_uint_eq(st.queued, 0);
    for (int i = 0; i < n; i++)
        atomic_store(&g[i].open, 1);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(mvx_join_wait(jh[i], 5 * SEC), 0);
        mvx_join_release(jh[i]);
    }
}

START_TEST(a_burst_starts_every_job_at_once_on_idle_threads_and_new_ones)
{
    mvx_runtime *rt = pool_runtime(1, BURST_MAX, -1); /* idle threads stay */
    run_burst(rt, BURST_IDLE);                        /* leaves BURST_IDLE threads idle */
    int64_t until = test_now_ns() + 10 * SEC;
    while (stats_of(rt).idle_threads < BURST_IDLE && test_now_ns() < until)
        usleep(1000);
    ck_assert_uint_eq(stats_of(rt).threads, BURST_IDLE);
    run_burst(rt, BURST_IDLE); /* every thread idle: all woken */
    run_burst(rt, BURST_MAX);  /* and four more started */
    ck_assert_uint_eq(stats_of(rt).threads, BURST_MAX);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

START_TEST(idle_pool_threads_exit_after_the_keep_alive)
{
    mvx_runtime *rt = pool_runtime(1, 8, 30 * MS);
    mvx_join_handle *jh[3];
    struct gate g[3];
    memset(g, 0, sizeof g);
    for (int i = 0; i < 3; i++) {
        atomic_store(&g[i].result, MVX_POLL_READY);
        mvx_spawn_blocking(rt, &gate_vt, &g[i], &jh[i]);
    }
    for (int i = 0; i < 3; i++)
        gate_wait_entered(&g[i], 1);
    ck_assert_uint_eq(stats_of(rt).threads, 3);
    for (int i = 0; i < 3; i++) {
        atomic_store(&g[i].open, 1);
        mvx_join_wait(jh[i], 5 * SEC);
        mvx_join_release(jh[i]);
    }
    for (int waited = 0; stats_of(rt).threads > 0; waited++) {
        ck_assert_int_lt(waited, 500);
        usleep(10000);
    }
    ck_assert_uint_eq(stats_of(rt).completed, 3);
    /* And the pool grows again on demand. */
    struct where w;
    struct where *wp = &w;
    mvx_join_handle *again;
    mvx_spawn_blocking(rt, &where_vt, &wp, &again);
    ck_assert_int_eq(mvx_join_wait(again, 5 * SEC), 0);
    mvx_join_release(again);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

/* "A job not started yet is cancelled" means at once: its waiters do not wait for the job
 * running ahead of it. */
START_TEST(aborting_a_queued_job_cancels_it_at_once)
{
    mvx_runtime *rt = pool_runtime(1, 1, 0);
    struct gate first = {0}, second = {0};
    atomic_store(&first.result, MVX_POLL_READY);
    atomic_store(&second.result, MVX_POLL_READY);
    mvx_join_handle *a, *b;
    ck_assert_int_eq(mvx_spawn_blocking(rt, &gate_vt, &first, &a), 0);
    ck_assert_int_eq(mvx_spawn_blocking(rt, &gate_vt, &second, &b), 0);
    gate_wait_entered(&first, 1);
    ck_assert_uint_eq(stats_of(rt).queued, 1);
    ck_assert_int_eq(mvx_join_abort(b), 0);
    ck_assert_int_eq(mvx_join_try(b), MVX_ECANCELLED); /* the first job is still running */
    int drops = atomic_load(&g_drops);
    ck_assert_int_eq(drops, 1);
    ck_assert_uint_eq(stats_of(rt).queued, 0);
    ck_assert_int_eq(mvx_join_abort(b), 0); /* again: harmless */
    ck_assert_int_eq(mvx_join_try(a), MVX_EAGAIN);
    atomic_store(&first.open, 1);
    ck_assert_int_eq(mvx_join_wait(a, 5 * SEC), 0);
    ck_assert_int_eq(atomic_load(&second.entered), 0);
    mvx_join_release(a);
    mvx_join_release(b);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    ck_assert_int_eq(atomic_load(&g_drops), 2);
}
END_TEST

struct aborter {
    pthread_barrier_t barrier;
    mvx_join_handle *jh;
};
static void *abort_after_barrier(void *arg)
{
    struct aborter *a = arg;
    pthread_barrier_wait(&a->barrier);
    mvx_join_abort(a->jh);
    return NULL;
}

/* An abort of a queued job races the pool thread taking it off the queue: one of them wins,
 * the state is dropped once, the outcome is consistent and every output is accounted for. */
START_TEST(abort_racing_the_pool_thread_for_a_queued_job_drops_it_once)
{
    mvx_runtime *rt = pool_runtime(1, 1, -1);
    for (int round = 0; round < 300; round++) {
        reset_counters();
        struct gate first = {0};
        atomic_store(&first.result, MVX_POLL_READY);
        struct yielder y = {0, 1};
        mvx_join_handle *a, *b;
        ck_assert_int_eq(mvx_spawn_blocking(rt, &gate_vt, &first, &a), 0);
        ck_assert_int_eq(mvx_spawn_blocking(rt, &yielder_vt, &y, &b), 0);
        gate_wait_entered(&first, 1);
        struct aborter ab = {.jh = b};
        pthread_barrier_init(&ab.barrier, NULL, 2);
        pthread_t th;
        pthread_create(&th, NULL, abort_after_barrier, &ab);
        pthread_barrier_wait(&ab.barrier);
        atomic_store(&first.open, 1); /* the pool thread goes for b as the abort does */
        pthread_join(th, NULL);
        pthread_barrier_destroy(&ab.barrier);
        ck_assert_int_eq(mvx_join_wait(a, 5 * SEC), 0);
        int r = mvx_join_wait(b, 5 * SEC);
        ck_assert(r == 0 || r == MVX_ECANCELLED);
        int out = 0;
        if (r == 0) {
            ck_assert_int_eq(mvx_join_take(b, &out, sizeof out, NULL), 0);
            ck_assert_int_eq(out, 1);
        }
        bool b_ran = atomic_load(&g_polls) == 2; /* the gate's poll and b's */
        mvx_join_release(a);
        mvx_join_release(b);
        int drops = atomic_load(&g_drops), output_drops = atomic_load(&g_output_drops);
        ck_assert_int_eq(drops, 2);
        /* a's output, never taken; b's if it ran but the abort came first */
        ck_assert_int_eq(output_drops, 1 + (b_ran && r == MVX_ECANCELLED));
    }
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

START_TEST(abort_cancels_a_job_that_has_not_started)
{
    mvx_runtime *rt = pool_runtime(1, 1, 0);
    struct gate first = {0}, second = {0};
    atomic_store(&first.result, MVX_POLL_READY);
    atomic_store(&second.result, MVX_POLL_READY);
    mvx_join_handle *a, *b;
    mvx_spawn_blocking(rt, &gate_vt, &first, &a);
    mvx_spawn_blocking(rt, &gate_vt, &second, &b);
    gate_wait_entered(&first, 1);
    ck_assert_uint_eq(stats_of(rt).queued, 1);
    ck_assert_int_eq(mvx_join_abort(b), 0);
    atomic_store(&first.open, 1);
    ck_assert_int_eq(mvx_join_wait(a, 5 * SEC), 0);
    ck_assert_int_eq(mvx_join_wait(b, 5 * SEC), MVX_ECANCELLED);
    ck_assert_int_eq(atomic_load(&second.entered), 0); /* never ran */
    ck_assert_int_eq(atomic_load(&g_drops), 2);
    mvx_join_release(a);
    mvx_join_release(b);
    ck_assert_int_eq(atomic_load(&g_output_drops), 1); /* a's, never taken; b had none */
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

START_TEST(abort_of_a_running_job_drops_its_output)
{
    mvx_runtime *rt = pool_runtime(1, 2, 0);
    struct gate g = {0};
    atomic_store(&g.result, MVX_POLL_READY);
    mvx_join_handle *jh;
    mvx_spawn_blocking(rt, &gate_vt, &g, &jh);
    gate_wait_entered(&g, 1);
    mvx_join_abort(jh);
    atomic_store(&g.open, 1);                                     /* it runs to its end... */
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), MVX_ECANCELLED); /* ...and its output goes */
    ck_assert_int_eq(atomic_load(&g_output_drops), 1);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    mvx_join_release(jh);
    ck_assert_int_eq(atomic_load(&g_output_drops), 1);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

START_TEST(shutdown_reports_a_job_still_running_and_cancels_the_queue)
{
    mvx_runtime *rt = pool_runtime(1, 1, 0);
    struct gate *running = calloc(1, sizeof *running);
    struct gate queued = {0};
    atomic_store(&running->result, MVX_POLL_READY);
    mvx_join_handle *a, *b;
    mvx_spawn_blocking(rt, &gate_vt, running, &a);
    mvx_spawn_blocking(rt, &gate_vt, &queued, &b);
    gate_wait_entered(running, 1);
    int64_t t0 = test_now_ns();
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 50 * MS), 1);
    ck_assert_int_lt(test_now_ns() - t0, 2 * SEC); /* returned instead of hanging */
    ck_assert_int_eq(mvx_join_try(b), MVX_ECANCELLED);
    ck_assert_int_eq(atomic_load(&queued.entered), 0);
    ck_assert_int_eq(mvx_join_try(a), MVX_EAGAIN);
    struct yielder y = {0, 0};
    ck_assert_int_eq(mvx_spawn_blocking(rt, &yielder_vt, &y, NULL), MVX_ESHUTDOWN);
    atomic_store(&running->open, 1);
    ck_assert_int_eq(mvx_join_wait(a, 5 * SEC), 0); /* a running job finishes with its output */
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 5 * SEC), 0);
    mvx_join_release(a);
    mvx_join_release(b);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    free(running);
}
END_TEST

START_TEST(release_does_not_wait_for_a_running_job)
{
    mvx_runtime *rt = pool_runtime(1, 1, 0);
    struct gate *g = calloc(1, sizeof *g);
    atomic_store(&g->result, MVX_POLL_READY);
    mvx_spawn_blocking(rt, &gate_vt, g, NULL);
    gate_wait_entered(g, 1);
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 0), 1);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    atomic_store(&g->open, 1); /* the pool thread finishes, then frees the runtime */
    wait_until_int(&g_output_drops, 1, 5 * SEC);
    usleep(20000);
    free(g);
}
END_TEST

START_TEST(a_blocked_pool_does_not_stall_the_workers)
{
    mvx_runtime *rt = pool_runtime(1, 2, 0);
    struct gate g[2];
    memset(g, 0, sizeof g);
    mvx_join_handle *jh[2];
    for (int i = 0; i < 2; i++) {
        atomic_store(&g[i].result, MVX_POLL_READY);
        mvx_spawn_blocking(rt, &gate_vt, &g[i], &jh[i]);
        gate_wait_entered(&g[i], 1);
    }
    for (int i = 0; i < 100; i++) { /* the pool is full and stuck; async tasks still run */
        struct yielder y = {3, i};
        mvx_join_handle *t;
        mvx_spawn(rt, &yielder_vt, &y, &t);
        ck_assert_int_eq(mvx_join_wait(t, 5 * SEC), 0);
        mvx_join_release(t);
    }
    for (int i = 0; i < 2; i++) {
        atomic_store(&g[i].open, 1);
        mvx_join_wait(jh[i], 5 * SEC);
        mvx_join_release(jh[i]);
    }
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

START_TEST(pending_from_a_job_is_a_failure_and_failures_carry_payloads)
{
    mvx_runtime *rt = pool_runtime(1, 2, 0);
    mvx_join_handle *pending, *failed;
    mvx_spawn_blocking(rt, &forever_vt, NULL, &pending);
    mvx_spawn_blocking(rt, &failer_vt, NULL, &failed);
    ck_assert_int_eq(mvx_join_wait(pending, 5 * SEC), MVX_EFAILED);
    ck_assert_int_eq(mvx_join_wait(failed, 5 * SEC), MVX_EFAILED);
    mvx_failure f = {.size = sizeof f};
    mvx_join_take(pending, NULL, 0, &f);
    ck_assert_int_eq(f.code, MVX_EINVAL);
    ck_assert_ptr_nonnull(strstr(f.message, "MVX_POLL_PENDING"));
    mvx_failure_clear(&f);
    f.size = sizeof f;
    int out;
    mvx_join_take(failed, &out, sizeof out, &f);
    ck_assert_int_eq(f.code, 77);
    ck_assert_int_eq(*(int *)f.payload, 1234);
    mvx_failure_clear(&f);
    ck_assert_int_eq(atomic_load(&g_payload_drops), 1);
    ck_assert_int_eq(atomic_load(&g_drops), 2);
    mvx_join_release(pending);
    mvx_join_release(failed);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

/* A job spawned from a task, awaited by that task. */
struct parent {
    mvx_join_handle *child;
};
static int parent_poll(void *state, mvx_context *cx, void *output)
{
    struct parent *p = state;
    if (!p->child) {
        struct yielder y = {0, 21};
        if (mvx_spawn_blocking(mvx_runtime_current(), &yielder_vt, &y, &p->child) != 0)
            return MVX_POLL_FAILED;
    }
    int r = mvx_join_poll(p->child, mvx_context_waker(cx));
    if (r == MVX_EAGAIN)
        return MVX_POLL_PENDING;
    int v = 0;
    mvx_join_take(p->child, &v, sizeof v, NULL);
    mvx_join_release(p->child);
    p->child = NULL;
    *(int *)output = 2 * v;
    return MVX_POLL_READY;
}
static const mvx_task_vtable parent_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = parent_poll,
    .state_size = sizeof(struct parent),
    .state_align = _Alignof(struct parent),
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

START_TEST(a_task_awaits_a_blocking_job)
{
    mvx_runtime *rt = pool_runtime(2, 0, 0);
    struct parent p = {NULL};
    mvx_join_handle *jh;
    mvx_spawn(rt, &parent_vt, &p, &jh);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    int out = 0;
    mvx_join_take(jh, &out, sizeof out, NULL);
    ck_assert_int_eq(out, 42);
    mvx_join_release(jh);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

/* Shutting the runtime down from one of its own blocking jobs would wait for that job. */
struct self_stop {
    mvx_runtime *rt;
    int shutdown, release;
};
static int self_stop_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct self_stop *s = *(struct self_stop **)state;
    s->shutdown = mvx_runtime_shutdown(s->rt, MVX_TIMEOUT_INFINITE);
    s->release = mvx_runtime_release(s->rt);
    return MVX_POLL_READY;
}
static const mvx_task_vtable self_stop_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = self_stop_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
};

START_TEST(shutdown_from_a_blocking_job_of_the_same_runtime_is_edeadlk)
{
    mvx_runtime *rt = pool_runtime(1, 1, 0);
    struct self_stop s = {rt, 0, 0};
    struct self_stop *sp = &s;
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn_blocking(rt, &self_stop_vt, &sp, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    ck_assert_int_eq(s.shutdown, MVX_EDEADLK);
    ck_assert_int_eq(s.release, MVX_EDEADLK);
    mvx_join_release(jh);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

START_TEST(blocking_functions_reject_bad_arguments)
{
    ck_assert_int_eq(mvx_spawn_blocking(NULL, &empty_vt, NULL, NULL), MVX_EINVAL);
    mvx_runtime *rt = pool_runtime(1, 0, 0);
    ck_assert_int_eq(mvx_spawn_blocking(rt, NULL, NULL, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_runtime_blocking_stats(rt, NULL), MVX_EINVAL);
    mvx_blocking_stats st = {.size = 2};
    ck_assert_int_eq(mvx_runtime_blocking_stats(rt, &st), MVX_EINVAL);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

/* A pool thread that cannot be started while the pool has none: the spawn fails with
 * MVX_ESYSTEM, nothing is queued and the caller keeps its state (the job would otherwise wait
 * for a thread that may never come). The default stack is made too large to map; sanitizer
 * runtimes reserve terabytes of shadow memory and size stacks themselves: skipped under them. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

static int32_t answer(void)
{
    return 42;
}

START_TEST(a_spawn_fails_when_no_pool_thread_can_start)
{
#ifdef UNDER_SANITIZER
    return;
#endif
    mvx_runtime *rt = pool_runtime(1, 4, 0);
    pthread_attr_t def, huge;
    ck_assert_int_eq(pthread_getattr_default_np(&def), 0);
    ck_assert_int_eq(pthread_getattr_default_np(&huge), 0);
    ck_assert_int_eq(pthread_attr_setstacksize(&huge, (size_t)1 << 46), 0);
    ck_assert_int_eq(pthread_setattr_default_np(&huge), 0);
    mvx_signature *sig;
    ck_assert_int_eq(mvx_signature_parse("i32()", 5, &sig), 0);
    mvx_join_handle *jh = NULL, *call = NULL;
    struct yielder y = {0, 3};
    int r = mvx_spawn_blocking(rt, &yielder_vt, &y, &jh);
    int rc = mvx_spawn_call(rt, (void (*)(void))answer, sig, NULL, MVX_CALL_BLOCKING, &call);
    ck_assert_int_eq(pthread_setattr_default_np(&def), 0);
    ck_assert_int_eq(r, MVX_ESYSTEM);
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "could not start"));
    ck_assert_int_eq(rc, MVX_ESYSTEM);
    ck_assert_ptr_null(jh);
    ck_assert_ptr_null(call);
    mvx_blocking_stats st = stats_of(rt);
    ck_assert_uint_eq(st.threads, 0);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_int_eq(atomic_load(&g_drops), 0); /* the state is still ours */
    /* Threads can start again: so do jobs. */
    ck_assert_int_eq(mvx_spawn_blocking(rt, &yielder_vt, &y, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    int out = 0;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(out, 3);
    mvx_join_release(jh);
    ck_assert_int_eq(
        mvx_spawn_call(rt, (void (*)(void))answer, sig, NULL, MVX_CALL_BLOCKING, &call), 0);
    ck_assert_int_eq(mvx_join_wait(call, 5 * SEC), 0);
    mvx_join_release(call);
    mvx_signature_release(sig);
    pthread_attr_destroy(&def);
    pthread_attr_destroy(&huge);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
}
END_TEST

/* Submitters racing idle pool threads: the wake-up is signalled after the submitter unlocks, so
 * a thread finishing its job may take the job an idle one is being woken for; every job must
 * still run exactly once, none may wait for a wake-up that never comes, and the pool stays
 * within its maximum. */
enum { RACE_SUBMITTERS = 4, RACE_JOBS = 500, RACE_POOL = 3 };
static int counted_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx, (void)output;
    atomic_fetch_add(*(atomic_int **)state, 1);
    return MVX_POLL_READY;
}
static const mvx_task_vtable counted_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = counted_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
};
struct race_submitter {
    mvx_runtime *rt;
    pthread_barrier_t *start;
    atomic_int *ran;
    mvx_join_handle *jh[RACE_JOBS];
};
static void *race_submit(void *arg)
{
    struct race_submitter *s = arg;
    pthread_barrier_wait(s->start);
    for (int i = 0; i < RACE_JOBS; i++) {
        ck_assert_int_eq(mvx_spawn_blocking(s->rt, &counted_vt, &s->ran, &s->jh[i]), 0);
        if (i % 16 == 0)
            sched_yield(); /* let the pool threads go idle again between bursts */
    }
    return NULL;
}

START_TEST(submitters_racing_idle_threads_run_every_job_once)
{
    /* Idle threads never time out: a lost wake-up leaves a job queued for good. */
    mvx_runtime *rt = pool_runtime(1, RACE_POOL, -1);
    atomic_int ran = 0;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACE_SUBMITTERS);
    static struct race_submitter subs[RACE_SUBMITTERS];
    pthread_t th[RACE_SUBMITTERS];
    for (int k = 0; k < RACE_SUBMITTERS; k++) {
        subs[k] = (struct race_submitter){.rt = rt, .start = &start, .ran = &ran};
        ck_assert_int_eq(pthread_create(&th[k], NULL, race_submit, &subs[k]), 0);
    }
    for (int k = 0; k < RACE_SUBMITTERS; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < RACE_SUBMITTERS; k++)
        for (int i = 0; i < RACE_JOBS; i++) {
            ck_assert_int_eq(mvx_join_wait(subs[k].jh[i], 10 * SEC), 0);
            mvx_join_release(subs[k].jh[i]);
        }
    ck_assert_int_eq(atomic_load(&ran), RACE_SUBMITTERS * RACE_JOBS);
    mvx_blocking_stats st = stats_of(rt);
    ck_assert_uint_le(st.threads, RACE_POOL);
    pthread_barrier_destroy(&start);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

/* A fresh runtime of one worker whose pool has no thread yet. */
static mvx_runtime *one_worker_runtime(uint64_t blocking_flags)
{
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    cfg.worker_threads = 1;
    cfg.blocking_flags = blocking_flags;
    mvx_runtime *rt;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), 0);
    return rt;
}

/* Spawns a sched_seen_vt job from the calling thread on a fresh runtime, so that the job's thread
 * is the pool's first, started by this thread (inheriting its policy). */
static int pool_thread_policy(uint64_t blocking_flags)
{
    mvx_runtime *rt = one_worker_runtime(blocking_flags);
    int policy = blocking_job_policy(rt);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    return policy;
}

static void *policy_from_an_idle_thread(void *arg)
{
    struct sched_param param = {.sched_priority = 0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) != 0)
        return NULL; /* refused here: nothing to check */
    *(int *)arg = pool_thread_policy(0);
    return NULL;
}

START_TEST(pool_threads_run_as_batch_unless_told_to_inherit)
{
    ck_assert_int_eq(sched_getscheduler(0), SCHED_OTHER);
    int batch = batch_allowed() ? SCHED_BATCH : SCHED_OTHER;
    ck_assert_int_eq(pool_thread_policy(0), batch);
    ck_assert_int_eq(pool_thread_policy(MVX_BLOCKING_INHERIT_SCHED), SCHED_OTHER);
    /* A thread started under another policy keeps it. */
    int from_idle = SCHED_IDLE;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, policy_from_an_idle_thread, &from_idle), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(from_idle, SCHED_IDLE);
}
END_TEST

/* A task on a worker that submits a sched_seen_vt job, so that the job's thread is started by
 * the worker (the pool has none yet); its output is the job's handle (NULL: the spawn failed). */
static int submit_from_a_worker_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    mvx_join_handle *jh = NULL;
    if (mvx_spawn_blocking(*(mvx_runtime **)state, &sched_seen_vt, NULL, &jh) != 0)
        jh = NULL;
    *(mvx_join_handle **)output = jh;
    return MVX_POLL_READY;
}
static const mvx_task_vtable submit_from_a_worker_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = submit_from_a_worker_poll,
    .state_size = sizeof(mvx_runtime *),
    .state_align = _Alignof(mvx_runtime *),
    .output_size = sizeof(mvx_join_handle *),
    .output_align = _Alignof(mvx_join_handle *),
};
static struct sched_seen pool_thread_started_by_a_worker(uint64_t blocking_flags)
{
    mvx_runtime *rt = one_worker_runtime(blocking_flags);
    mvx_join_handle *submit, *job = NULL;
    ck_assert_int_eq(mvx_spawn(rt, &submit_from_a_worker_vt, &rt, &submit), 0);
    ck_assert_int_eq(mvx_join_wait(submit, 30 * SEC), 0);
    ck_assert_int_eq(mvx_join_take(submit, &job, sizeof job, NULL), 0);
    mvx_join_release(submit);
    ck_assert_ptr_nonnull(job);
    struct sched_seen seen = take_sched_seen(job);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    return seen;
}

/* A worker asks for a short time slice (worker_slice_ns); a pool thread it starts inherits it,
 * and asks for the kernel's default again when it goes to SCHED_BATCH. */
START_TEST(pool_threads_started_by_a_worker_ask_for_the_default_slice)
{
    uint64_t kernel_default = kernel_default_slice();
    if (!kernel_default)
        return; /* no slice per thread on this kernel: nothing to tell apart */
    if (batch_allowed()) {
        struct sched_seen batch = pool_thread_started_by_a_worker(0);
        ck_assert_int_eq(batch.policy, SCHED_BATCH);
        ck_assert_uint_eq(batch.slice_ns, kernel_default);
    }
    struct sched_seen inherited = pool_thread_started_by_a_worker(MVX_BLOCKING_INHERIT_SCHED);
    ck_assert_int_eq(inherited.policy, SCHED_OTHER);
    ck_assert_uint_eq(inherited.slice_ns, WORKER_SLICE_DEFAULT_NS);
}
END_TEST

static Suite *blocking_suite(void)
{
    Suite *s = suite_create("blocking");
    TCase *tc = tcase_create("blocking");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_job_runs_once_on_a_pool_thread);
    tcase_add_test(tc, the_pool_grows_to_its_maximum_then_queues);
    tcase_add_test(tc, a_burst_starts_every_job_at_once_on_idle_threads_and_new_ones);
    tcase_add_test(tc, idle_pool_threads_exit_after_the_keep_alive);
    tcase_add_test(tc, abort_cancels_a_job_that_has_not_started);
    tcase_add_test(tc, abort_of_a_running_job_drops_its_output);
    tcase_add_test(tc, shutdown_reports_a_job_still_running_and_cancels_the_queue);
    tcase_add_test(tc, release_does_not_wait_for_a_running_job);
    tcase_add_test(tc, a_blocked_pool_does_not_stall_the_workers);
    tcase_add_test(tc, pending_from_a_job_is_a_failure_and_failures_carry_payloads);
    tcase_add_test(tc, a_task_awaits_a_blocking_job);
    tcase_add_test(tc, shutdown_from_a_blocking_job_of_the_same_runtime_is_edeadlk);
    tcase_add_test(tc, blocking_functions_reject_bad_arguments);
    tcase_add_test(tc, aborting_a_queued_job_cancels_it_at_once);
    tcase_add_test(tc, abort_racing_the_pool_thread_for_a_queued_job_drops_it_once);
    tcase_add_test(tc, a_spawn_fails_when_no_pool_thread_can_start);
    tcase_add_test(tc, submitters_racing_idle_threads_run_every_job_once);
    tcase_add_test(tc, pool_threads_run_as_batch_unless_told_to_inherit);
    tcase_add_test(tc, pool_threads_started_by_a_worker_ask_for_the_default_slice);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(blocking_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
