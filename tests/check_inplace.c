/*
 * check_inplace.c - mvx_block_in_place: the worker's queued tasks (LIFO slot included) run on a
 * substitute while the caller blocks, with one worker too; elsewhere it just calls fn; local sets
 * refuse it; the worker comes back; a substitute schedules like a worker (not SCHED_BATCH, the
 * workers' time slice); the disable_lifo_slot and global_queue_interval settings.
 */
#include "helpers.h"

/* ---- a task that completes with 1 once `open` is set, keeping a waker meanwhile ---- */
static atomic_int g_open;
static atomic_int g_batch_polls; /* value_poll calls on a thread in SCHED_BATCH */
static _Atomic uint64_t g_want_slice; /* the slice value_poll expects; 0: none checked */
static atomic_int g_off_slice_polls; /* value_poll calls on a thread with another slice */

static int value_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    atomic_fetch_add(&g_polls, 1);
    if (sched_getscheduler(0) == SCHED_BATCH)
        atomic_fetch_add(&g_batch_polls, 1);
    uint64_t want = atomic_load(&g_want_slice);
    if (want && thread_slice_ns() != want)
        atomic_fetch_add(&g_off_slice_polls, 1);
    *(int *)output = 1;
    return MVX_POLL_READY;
}
static const mvx_task_vtable value_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = value_poll,
    .drop = count_drop,
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

/* What fn saw and did, inside mvx_block_in_place. */
struct inside {
    mvx_runtime *rt;
    mvx_join_handle *wait_for[2]; /* handles fn waits for (may be NULL) */
    int waited[2];
    int spawned_outcome; /* of a task fn spawned and waited for */
    mvx_runtime *current;
    pthread_t thread;
    int calls;
};

static void inside_fn(void *arg)
{
    struct inside *in = arg;
    in->calls++;
    in->thread = pthread_self();
    in->current = mvx_runtime_current();
    for (int i = 0; i < 2; i++)
        if (in->wait_for[i])
            in->waited[i] = mvx_join_wait(in->wait_for[i], 20 * SEC);
    if (in->rt) {
        mvx_join_handle *jh;
        ck_assert_int_eq(mvx_spawn(in->rt, &value_vt, NULL, &jh), 0);
        in->spawned_outcome = mvx_join_wait(jh, 20 * SEC);
        mvx_join_release(jh);
    }
}

/* A task that spawns two children (one lands in the LIFO slot, one in the queue), then blocks in
 * place until both have run: with one worker only a substitute can run them. */
struct blocker {
    mvx_runtime *rt;
    struct inside in;
    int rc;
    pthread_t worker;
};
static int blocker_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct blocker *b = *(struct blocker **)state;
    b->worker = pthread_self();
    ck_assert_int_eq(mvx_spawn(b->rt, &value_vt, NULL, &b->in.wait_for[0]), 0);
    ck_assert_int_eq(mvx_spawn(b->rt, &value_vt, NULL, &b->in.wait_for[1]), 0);
    b->in.rt = b->rt;
    b->rc = mvx_block_in_place(inside_fn, &b->in);
    /* The worker is ours again: spawning goes to its queue and it runs the child next. */
    ck_assert_ptr_eq(mvx_runtime_current(), b->rt);
    return MVX_POLL_READY;
}
static const mvx_task_vtable blocker_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = blocker_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
};

/* Runs a blocker on rt and checks what it saw. */
static void run_blocker(mvx_runtime *rt)
{
    struct blocker b = {.rt = rt};
    struct blocker *bp = &b;
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &blocker_vt, &bp, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 30 * SEC), 0);
    mvx_join_release(jh);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_int_eq(b.in.calls, 1);
    ck_assert(pthread_equal(b.in.thread, b.worker)); /* fn ran on the calling thread */
    ck_assert_ptr_eq(b.in.current, rt);
    ck_assert_int_eq(b.in.waited[0], 0);
    ck_assert_int_eq(b.in.waited[1], 0);
    ck_assert_int_eq(b.in.spawned_outcome, 0);
    for (int i = 0; i < 2; i++)
        mvx_join_release(b.in.wait_for[i]);
}

static void check_blocker(unsigned workers)
{
    reset_counters();
    mvx_runtime *rt = new_runtime(workers);
    run_blocker(rt);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    ck_assert_int_eq(atomic_load(&g_drops), 3);
}

START_TEST(one_worker_queued_tasks_run_while_the_worker_blocks)
{
    check_blocker(1);
}
END_TEST

START_TEST(two_workers_queued_tasks_run_while_the_worker_blocks)
{
    check_blocker(2);
}
END_TEST

START_TEST(outside_a_worker_it_just_calls_fn)
{
    struct inside in = {0};
    ck_assert_int_eq(mvx_block_in_place(inside_fn, &in), 0);
    ck_assert_int_eq(in.calls, 1);
    ck_assert(pthread_equal(in.thread, pthread_self()));
    ck_assert_ptr_null(in.current);
    ck_assert_int_eq(mvx_block_in_place(NULL, &in), MVX_EINVAL);
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "fn is NULL"));
}
END_TEST

/* From a blocking job: runs fn there. From a local task or block_on: MVX_EPERM, fn not called. */
static int inplace_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    struct inside *in = *(struct inside **)state;
    *(int *)output = mvx_block_in_place(inside_fn, in);
    return MVX_POLL_READY;
}
static const mvx_task_vtable inplace_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = inplace_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

START_TEST(a_blocking_job_just_calls_fn)
{
    mvx_runtime *rt = new_runtime(1);
    struct inside in = {0};
    struct inside *ip = &in;
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn_blocking(rt, &inplace_vt, &ip, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 20 * SEC), 0);
    int rc = -100;
    ck_assert_int_eq(mvx_join_take(jh, &rc, sizeof rc, NULL), 0);
    mvx_join_release(jh);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(in.calls, 1);
    ck_assert_ptr_eq(in.current, rt);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

START_TEST(local_sets_and_block_on_refuse_it)
{
    mvx_runtime *rt = new_runtime(1);
    struct inside in = {0};
    struct inside *ip = &in;
    int rc = -100;
    ck_assert_int_eq(mvx_block_on(rt, &inplace_vt, &ip, &rc, sizeof rc, NULL), 0);
    ck_assert_int_eq(rc, MVX_EPERM);
    mvx_local_set *set;
    ck_assert_int_eq(mvx_local_set_new(rt, NULL, &set), 0);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_local_spawn(set, &inplace_vt, &ip, &jh), 0);
    ck_assert_int_eq(mvx_local_set_run_until(set, jh, 20 * SEC), 0);
    rc = -100;
    ck_assert_int_eq(mvx_join_take(jh, &rc, sizeof rc, NULL), 0);
    ck_assert_int_eq(rc, MVX_EPERM);
    mvx_join_release(jh);
    ck_assert_int_eq(in.calls, 0);
    ck_assert_int_eq(mvx_local_set_free(set), 0);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

/* Many tasks on two workers block in place at once (barrier-free but overlapping: each fn spawns
 * and waits), so that handoffs, substitutes and reclaims race each other. */
#define MANY 200
static int many_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    struct inside in = {.rt = *(mvx_runtime **)state};
    ck_assert_int_eq(mvx_block_in_place(inside_fn, &in), 0);
    *(int *)output = in.spawned_outcome == 0 && in.calls == 1;
    return MVX_POLL_READY;
}
static const mvx_task_vtable many_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = many_poll,
    .drop = count_drop,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

START_TEST(concurrent_handoffs_lose_nothing)
{
    reset_counters();
    mvx_runtime *rt = new_runtime(2);
    mvx_join_handle *jh[MANY];
    for (int i = 0; i < MANY; i++)
        ck_assert_int_eq(mvx_spawn(rt, &many_vt, &rt, &jh[i]), 0);
    for (int i = 0; i < MANY; i++) {
        ck_assert_int_eq(mvx_join_wait(jh[i], 60 * SEC), 0);
        int ok = 0;
        ck_assert_int_eq(mvx_join_take(jh[i], &ok, sizeof ok, NULL), 0);
        ck_assert_int_eq(ok, 1);
        mvx_join_release(jh[i]);
    }
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    ck_assert_int_eq(atomic_load(&g_drops), 2 * MANY); /* the tasks and what their fn spawned */
}
END_TEST

/* Shutdown while a task blocks in place: the substitute stops, the runtime shuts down once fn
 * returns and the poll ends. */
static atomic_int g_inside, g_release;
static void wait_fn(void *arg)
{
    (void)arg;
    atomic_store(&g_inside, 1);
    while (!atomic_load(&g_release))
        usleep(1000);
}
static int waiter_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    ck_assert_int_eq(mvx_block_in_place(wait_fn, NULL), 0);
    return MVX_POLL_READY;
}
static const mvx_task_vtable waiter_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = waiter_poll,
    .drop = count_drop,
};
static void *release_later(void *arg)
{
    (void)arg;
    usleep(20000);
    atomic_store(&g_release, 1);
    return NULL;
}

START_TEST(shutdown_during_block_in_place)
{
    reset_counters();
    atomic_store(&g_inside, 0);
    atomic_store(&g_release, 0);
    mvx_runtime *rt = new_runtime(1);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &waiter_vt, NULL, &jh), 0);
    ck_assert_int_eq(mvx_spawn(rt, &forever_vt, NULL, NULL), 0);
    wait_until_int(&g_inside, 1, 20 * SEC);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, release_later, NULL), 0);
    ck_assert_int_eq(mvx_runtime_shutdown(rt, MVX_TIMEOUT_INFINITE), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(mvx_join_wait(jh, 0), 0); /* it completed: its poll returned ready */
    mvx_join_release(jh);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    ck_assert_int_eq(atomic_load(&g_drops), 2);
}
END_TEST

/* Two tasks waking each other through the LIFO slot never leave the substitute's run loop on
 * their own: the worker must still come back when fn returns. */
struct pingpong {
    pthread_mutex_t lock;
    mvx_waker w[2];
    atomic_int polls;
    atomic_int stop;
};
static struct pingpong g_pp;
static int pp_poll(void *state, mvx_context *cx, void *output)
{
    (void)output;
    int me = *(int *)state;
    mvx_waker other = {NULL, NULL};
    pthread_mutex_lock(&g_pp.lock);
    mvx_waker_drop(&g_pp.w[me]);
    mvx_waker_clone(mvx_context_waker(cx), &g_pp.w[me]);
    if (g_pp.w[1 - me].vtable)
        mvx_waker_clone(&g_pp.w[1 - me], &other);
    pthread_mutex_unlock(&g_pp.lock);
    atomic_fetch_add(&g_pp.polls, 1);
    if (atomic_load(&g_pp.stop)) {
        mvx_waker_wake(&other);
        return MVX_POLL_READY;
    }
    mvx_waker_wake(&other); /* it goes to the LIFO slot and runs next */
    return MVX_POLL_PENDING;
}
static const mvx_task_vtable pp_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = pp_poll,
    .drop = count_drop,
    .state_size = sizeof(int),
    .state_align = _Alignof(int),
};
static void until_100_polls(void *arg)
{
    (void)arg;
    while (atomic_load(&g_pp.polls) < 100) /* the substitute runs the pair */
        usleep(100);
}
static int pp_blocker_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    mvx_runtime *rt = *(mvx_runtime **)state;
    mvx_join_handle **jh = output;
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(mvx_spawn(rt, &pp_vt, &i, &jh[i]), 0);
    ck_assert_int_eq(mvx_block_in_place(until_100_polls, NULL), 0);
    return MVX_POLL_READY;
}
static const mvx_task_vtable pp_blocker_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = pp_blocker_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
    .output_size = 2 * sizeof(void *),
    .output_align = _Alignof(void *),
};

START_TEST(the_worker_comes_back_from_a_busy_substitute)
{
    reset_counters();
    memset(&g_pp, 0, sizeof g_pp);
    pthread_mutex_init(&g_pp.lock, NULL);
    mvx_runtime *rt = new_runtime(1);
    mvx_join_handle *b, *pp[2];
    ck_assert_int_eq(mvx_spawn(rt, &pp_blocker_vt, &rt, &b), 0);
    ck_assert_int_eq(mvx_join_wait(b, 30 * SEC), 0); /* fails if the worker never came back */
    ck_assert_int_eq(mvx_join_take(b, pp, sizeof pp, NULL), 0);
    mvx_join_release(b);
    atomic_store(&g_pp.stop, 1);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(mvx_join_wait(pp[i], 30 * SEC), 0);
        mvx_join_release(pp[i]);
    }
    for (int i = 0; i < 2; i++)
        mvx_waker_drop(&g_pp.w[i]);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    ck_assert_int_eq(atomic_load(&g_drops), 2);
    pthread_mutex_destroy(&g_pp.lock);
}
END_TEST

/* ---- settings ---- */

/* With the LIFO slot disabled, tasks spawned by a task run in spawn order (FIFO); with it, the
 * last one spawned runs first. */
static atomic_int g_order[4];
static atomic_int g_next;
static int record_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    g_order[atomic_fetch_add(&g_next, 1)] = *(int *)state;
    return MVX_POLL_READY;
}
static const mvx_task_vtable record_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = record_poll,
    .state_size = sizeof(int),
    .state_align = _Alignof(int),
};
static int spawn3_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    mvx_runtime *rt = *(mvx_runtime **)state;
    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(mvx_spawn(rt, &record_vt, &i, NULL), 0);
    return MVX_POLL_READY;
}
static const mvx_task_vtable spawn3_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = spawn3_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
};

static void run_order(int disable_lifo, int expect_first)
{
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    ck_assert_uint_eq(cfg.global_queue_interval, 0);
    ck_assert_int_eq(cfg.disable_lifo_slot, 0);
    cfg.worker_threads = 1;
    cfg.disable_lifo_slot = disable_lifo;
    cfg.global_queue_interval = 7;
    mvx_runtime *rt;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), 0);
    atomic_store(&g_next, 0);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &spawn3_vt, &rt, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 20 * SEC), 0);
    mvx_join_release(jh);
    wait_until_int(&g_next, 3, 20 * SEC);
    ck_assert_int_eq(atomic_load(&g_order[0]), expect_first);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}

START_TEST(disable_lifo_slot_runs_spawned_tasks_in_order)
{
    run_order(0, 3); /* the LIFO slot: the last spawned runs first */
    run_order(1, 1);
    ck_assert_int_eq(atomic_load(&g_order[1]), 2);
    ck_assert_int_eq(atomic_load(&g_order[2]), 3);
}
END_TEST

/* A blocking job that has a second pool thread started from its own (by a job it waits for),
 * then holds its thread until `release`: the second thread is then the pool's only idle one. */
struct holder {
    mvx_runtime *rt;
    atomic_int ready, release;
    int inner_policy;
};
static int holder_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct holder *h = *(struct holder **)state;
    h->inner_policy = blocking_job_policy(h->rt);
    atomic_store(&h->ready, 1);
    while (!atomic_load(&h->release))
        usleep(1000);
    return MVX_POLL_READY;
}
static const mvx_task_vtable holder_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = holder_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
};

/* Waits until one of the pool's `threads` threads waits for a job (a thread counts as idle a
 * moment after its job has returned). */
static void wait_one_idle_thread(mvx_runtime *rt, unsigned threads)
{
    mvx_blocking_stats st = {.size = sizeof st};
    for (int64_t deadline = test_now_ns() + 30 * SEC;; usleep(1000)) {
        ck_assert_int_eq(mvx_runtime_blocking_stats(rt, &st), 0);
        if (st.idle_threads == 1 || test_now_ns() > deadline)
            break;
    }
    ck_assert_uint_eq(st.idle_threads, 1);
    ck_assert_uint_eq(st.threads, threads);
}

/* The blocking pool's threads run as SCHED_BATCH, but a substitute runs a worker's tasks: it
 * schedules like a worker while it does, and its thread goes back to SCHED_BATCH after. With
 * `started_by_the_pool`, the substitute's thread is one that another pool thread started (as
 * the threads of a burst start each other), so it inherited SCHED_BATCH instead of switching. */
static void check_substitute_policy(bool started_by_the_pool)
{
    reset_counters();
    atomic_store(&g_batch_polls, 0);
    atomic_store(&g_off_slice_polls, 0);
    bool batch_ok = batch_allowed();
    int batch = batch_ok ? SCHED_BATCH : SCHED_OTHER;
    uint64_t kernel_default = kernel_default_slice(); /* 0: no slice per thread here */
    atomic_store(&g_want_slice, kernel_default ? WORKER_SLICE_DEFAULT_NS : 0);
    mvx_runtime *rt = new_runtime(1);
    struct holder h = {.rt = rt};
    struct holder *hp = &h;
    mvx_join_handle *held = NULL;
    unsigned threads = 1;
    if (started_by_the_pool) {
        ck_assert_int_eq(mvx_spawn_blocking(rt, &holder_vt, &hp, &held), 0);
        wait_until_int(&h.ready, 1, 30 * SEC);
        ck_assert_int_eq(h.inner_policy, batch);
        threads = 2;
        wait_one_idle_thread(rt, threads); /* the inner job's thread, for the substitute */
    }
    run_blocker(rt);
    /* With one worker, blocked in fn, only the substitute could run the three children. */
    ck_assert_int_eq(atomic_load(&g_polls), 3);
    ck_assert_int_eq(atomic_load(&g_batch_polls), 0);
    ck_assert_int_eq(atomic_load(&g_off_slice_polls), 0); /* the workers' slice */
    /* The substitute's thread goes idle once its job has returned: it then runs the next job. */
    wait_one_idle_thread(rt, threads);
    struct sched_seen next = blocking_job_sched(rt);
    ck_assert_int_eq(next.policy, batch);
    if (kernel_default && batch_ok)
        ck_assert_uint_eq(next.slice_ns, kernel_default);
    atomic_store(&g_want_slice, 0);
    if (held) {
        atomic_store(&h.release, 1);
        ck_assert_int_eq(mvx_join_wait(held, 30 * SEC), 0);
        mvx_join_release(held);
    }
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}

START_TEST(a_substitute_schedules_like_a_worker_then_its_thread_goes_back_to_batch)
{
    check_substitute_policy(false);
    check_substitute_policy(true);
}
END_TEST

static Suite *inplace_suite(void)
{
    Suite *s = suite_create("inplace");
    TCase *tc = tcase_create("inplace");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, one_worker_queued_tasks_run_while_the_worker_blocks);
    tcase_add_test(tc, two_workers_queued_tasks_run_while_the_worker_blocks);
    tcase_add_test(tc, outside_a_worker_it_just_calls_fn);
    tcase_add_test(tc, a_blocking_job_just_calls_fn);
    tcase_add_test(tc, local_sets_and_block_on_refuse_it);
    tcase_add_test(tc, concurrent_handoffs_lose_nothing);
    tcase_add_test(tc, shutdown_during_block_in_place);
    tcase_add_test(tc, the_worker_comes_back_from_a_busy_substitute);
    tcase_add_test(tc, disable_lifo_slot_runs_spawned_tasks_in_order);
    tcase_add_test(tc, a_substitute_schedules_like_a_worker_then_its_thread_goes_back_to_batch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(inplace_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
