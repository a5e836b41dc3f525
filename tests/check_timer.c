/*
 * check_timer.c - the time driver through the public API: timers armed from tasks and from
 * outside, never early, cancel before and racing the fire, re-arming, sleep tasks, the join
 * timeout, shutdown and release, a million armed timers, and deadlines at every wheel level.
 */
#include "helpers.h"

#include <stdio.h>

static mvx_runtime *rt;

static void setup(void)
{
    reset_counters();
    rt = new_runtime(2);
}
static void teardown(void)
{
    if (rt)
        ck_assert_int_eq(mvx_runtime_release(rt), 0);
    rt = NULL;
}

static uint64_t rng_state = 88172645463325252u;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- a waker that checks the instant it is woken against a deadline ---- */
static atomic_int g_early, g_woken;
struct deadline_waker {
    atomic_int refs;
    atomic_int wakes;
    atomic_int order; /* g_woken's count after its latest wake */
    int64_t deadline;
};
static void *dw_clone(void *d)
{
    atomic_fetch_add(&((struct deadline_waker *)d)->refs, 1);
    return d;
}
static void dw_wake_by_ref(void *d)
{
    struct deadline_waker *dw = d;
    if (mvx_now() < dw->deadline)
        atomic_fetch_add(&g_early, 1);
    atomic_fetch_add(&dw->wakes, 1);
    atomic_store(&dw->order, atomic_fetch_add(&g_woken, 1) + 1);
}
static void dw_drop(void *d)
{
    atomic_fetch_sub(&((struct deadline_waker *)d)->refs, 1);
}
static void dw_wake(void *d)
{
    dw_wake_by_ref(d);
    dw_drop(d);
}
static const mvx_waker_vtable deadline_waker_vt = {
    sizeof(mvx_waker_vtable), dw_clone, dw_wake, dw_wake_by_ref, dw_drop,
};

static void wait_int_at_least(atomic_int *v, int n)
{
    struct timespec ts = {0, 200000};
    for (int64_t waited = 0; atomic_load(v) < n; waited += 200000) {
        ck_assert_msg(waited < 60 * SEC, "timed out waiting for %d (now %d)", n, atomic_load(v));
        nanosleep(&ts, NULL);
    }
}

/* ---- a task that sleeps on its own timer and checks every wake-up ---- */
struct napper {
    mvx_timer timer;
    int64_t deadline;
    int rearm; /* re-arm this many times (alternately later and earlier) before settling */
};
static atomic_int g_napper_early;
static int napper_poll(void *state, mvx_context *cx, void *output)
{
    (void)output;
    struct napper *n = state;
    atomic_fetch_add(&g_polls, 1);
    while (n->rearm > 0) {
        int64_t d = n->deadline + ((n->rearm & 1) ? 900 * MS : 300 * MS);
        n->rearm--;
        if (mvx_timer_arm(&n->timer, d, mvx_context_waker(cx)) != MVX_EAGAIN)
            atomic_fetch_add(&g_napper_early, 1000000); /* reported as a failure */
    }
    int r = mvx_timer_arm(&n->timer, n->deadline, mvx_context_waker(cx));
    if (r == MVX_EAGAIN)
        return MVX_POLL_PENDING;
    if (mvx_now() < n->deadline)
        atomic_fetch_add(&g_napper_early, 1);
    *(int64_t *)output = mvx_now();
    return MVX_POLL_READY;
}
static void napper_drop(void *state)
{
    mvx_timer_fini(&((struct napper *)state)->timer);
    atomic_fetch_add(&g_drops, 1);
}
static const mvx_task_vtable napper_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = napper_poll,
    .drop = napper_drop,
    .state_size = sizeof(struct napper),
    .state_align = _Alignof(struct napper),
    .output_size = sizeof(int64_t),
    .output_align = _Alignof(int64_t),
};

static mvx_join_handle *spawn_napper(int64_t deadline, int rearm)
{
    struct napper n;
    ck_assert_int_eq(mvx_timer_init(&n.timer, rt), 0);
    n.deadline = deadline;
    n.rearm = rearm;
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &napper_vt, &n, &jh), 0);
    return jh;
}

/* ---- never early ---- */

START_TEST(ten_thousand_random_deadlines_never_fire_early)
{
    enum { N = 10000 };
    atomic_store(&g_early, 0);
    atomic_store(&g_woken, 0);
    mvx_timer *timers = calloc(N, sizeof *timers);
    struct deadline_waker *dws = calloc(N, sizeof *dws);
    int armed = 0, bad = 0;
    /* No ck_assert in the loops: each one is a write to Check's pipe. */
    for (int i = 0; i < N; i++) {
        /* From 1 ms in the past to 40 ms ahead, at ns granularity: every offset in a tick. */
        dws[i].deadline = mvx_now() - MS + (int64_t)(rnd() % (uint64_t)(41 * MS));
        atomic_init(&dws[i].refs, 1);
        mvx_waker w = {&deadline_waker_vt, &dws[i]};
        bad += mvx_timer_init(&timers[i], rt) != 0;
        int r = mvx_timer_arm(&timers[i], dws[i].deadline, &w);
        bad += r != 0 && r != MVX_EAGAIN;
        bad += r == 0 && mvx_now() < dws[i].deadline; /* "expired" only once it has */
        armed += r == MVX_EAGAIN;
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_int_gt(armed, N / 2);
    wait_int_at_least(&g_woken, armed);
    ck_assert_int_eq(atomic_load(&g_early), 0);
    for (int i = 0; i < N; i++) {
        bad += atomic_load(&dws[i].wakes) > 1;
        bad += mvx_timer_cancel(&timers[i]) != 0; /* fired or never armed */
        mvx_timer_fini(&timers[i]);
        bad += atomic_load(&dws[i].refs) != 1; /* every clone released */
    }
    ck_assert_int_eq(bad, 0);
    free(timers);
    free(dws);

    /* The same from tasks on the workers: each checks the instant it is woken. */
    atomic_store(&g_napper_early, 0);
    mvx_join_handle **jh = malloc(N * sizeof *jh);
    for (int i = 0; i < N; i++)
        jh[i] = spawn_napper(mvx_now() - MS + (int64_t)(rnd() % (uint64_t)(41 * MS)), 0);
    for (int i = 0; i < N; i++) {
        bad += mvx_join_wait(jh[i], MVX_TIMEOUT_INFINITE) != 0;
        mvx_join_release(jh[i]);
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(atomic_load(&g_napper_early), 0);
    ck_assert_int_eq(atomic_load(&g_drops), N);
    free(jh);
}
END_TEST

START_TEST(sleep_tasks_complete_at_their_deadlines)
{
    enum { N = 2000 };
    mvx_join_handle **jh = malloc(N * sizeof *jh);
    int64_t *deadline = malloc(N * sizeof *deadline);
    int64_t now = mvx_now();
    int bad = 0;
    for (int i = 0; i < N; i++) {
        deadline[i] = now + (int64_t)(rnd() % (uint64_t)(20 * MS));
        bad += mvx_spawn_sleep(rt, deadline[i], &jh[i]) != 0;
    }
    for (int i = 0; i < N; i++) {
        bad += mvx_join_wait(jh[i], MVX_TIMEOUT_INFINITE) != 0;
        bad += mvx_now() < deadline[i];
        bad += mvx_join_take(jh[i], NULL, 0, NULL) != 0;
        mvx_join_release(jh[i]);
    }
    ck_assert_int_eq(bad, 0);
    /* A detached sleep and one in the past. */
    ck_assert_int_eq(mvx_spawn_sleep(rt, now + MS, NULL), 0);
    mvx_join_handle *past;
    ck_assert_int_eq(mvx_spawn_sleep(rt, 0, &past), 0);
    ck_assert_int_eq(mvx_join_wait(past, MVX_TIMEOUT_INFINITE), 0);
    mvx_join_release(past);
    free(jh);
    free(deadline);
}
END_TEST

/* ---- cancel ---- */

START_TEST(cancel_before_the_deadline_means_no_wake)
{
    struct flag_waker *fw = flag_waker_new();
    struct deadline_waker later = {.deadline = mvx_now() + 20 * MS};
    atomic_init(&later.refs, 1);
    atomic_store(&g_woken, 0);
    atomic_store(&g_early, 0);
    mvx_timer a, b;
    ck_assert_int_eq(mvx_timer_init(&a, rt), 0);
    ck_assert_int_eq(mvx_timer_init(&b, rt), 0);
    mvx_waker wa = {&flag_waker_vt, fw}, wb = {&deadline_waker_vt, &later};
    ck_assert_int_eq(mvx_timer_arm(&a, later.deadline - 10 * MS, &wa), MVX_EAGAIN);
    ck_assert_int_eq(mvx_timer_arm(&b, later.deadline, &wb), MVX_EAGAIN);
    ck_assert_int_eq(mvx_timer_cancel(&a), 1);
    ck_assert_int_eq(mvx_timer_cancel(&a), 0); /* once */
    wait_int_at_least(&g_woken, 1);            /* b fired: a's deadline is long past */
    ck_assert_int_eq(atomic_load(&fw->wakes), 0);
    ck_assert_int_eq(atomic_load(&fw->refs), 2); /* the cancelled timer keeps its waker */
    mvx_timer_fini(&a);
    ck_assert_int_eq(atomic_load(&fw->refs), 1);
    ck_assert_int_eq(mvx_timer_cancel(&b), 0); /* fired */
    mvx_timer_fini(&b);
    /* The wake by value drops its reference after counting the wake (TSan's runs saw 2). */
    wait_until_int(&later.refs, 1, 30 * SEC);
    flag_waker_put(fw);
}
END_TEST

struct race {
    pthread_barrier_t go;
    mvx_timer *timer;
    _Atomic int64_t deadline;
    atomic_int result;
    atomic_bool stop;
};

static void *canceller(void *arg)
{
    struct race *r = arg;
    for (;;) {
        pthread_barrier_wait(&r->go);
        if (atomic_load(&r->stop))
            return NULL;
        /* Cancel around the deadline: sometimes before the fire, sometimes during, after. */
        int64_t at = atomic_load(&r->deadline) + (int64_t)(rnd() % 400000) - 100000;
        while (mvx_now() < at)
            ;
        atomic_store(&r->result, mvx_timer_cancel(r->timer));
        pthread_barrier_wait(&r->go);
    }
}

START_TEST(cancel_racing_the_fire_has_exactly_one_outcome)
{
    enum { N = 1000 };
    struct race r;
    pthread_barrier_init(&r.go, NULL, 2);
    atomic_init(&r.stop, false);
    mvx_timer *timers = calloc(N, sizeof *timers);
    struct flag_waker **fws = calloc(N, sizeof *fws);
    pthread_t th;
    pthread_create(&th, NULL, canceller, &r);
    int cancelled = 0, fired = 0;
    int *outcome = calloc(N, sizeof *outcome);
    for (int i = 0; i < N; i++) {
        fws[i] = flag_waker_new();
        mvx_waker w = {&flag_waker_vt, fws[i]};
        ck_assert_int_eq(mvx_timer_init(&timers[i], rt), 0);
        int64_t d = mvx_now() + 1000000 + (int64_t)(rnd() % 300000);
        if (mvx_timer_arm(&timers[i], d, &w) != MVX_EAGAIN) {
            /* Passed already (a slow, loaded machine): nothing to race; woken never. */
            outcome[i] = 1;
            cancelled++;
            continue;
        }
        r.timer = &timers[i];
        atomic_store(&r.deadline, d);
        pthread_barrier_wait(&r.go); /* the canceller starts */
        pthread_barrier_wait(&r.go); /* and has cancelled */
        outcome[i] = atomic_load(&r.result);
        if (outcome[i] == 1) {
            cancelled++;
        } else {
            ck_assert_int_eq(atomic_load(&r.result), 0);
            fired++;
            wait_until_int(&fws[i]->wakes, 1, 30 * SEC); /* "fired": woken, exactly once */
        }
    }
    atomic_store(&r.stop, true);
    pthread_barrier_wait(&r.go);
    pthread_join(th, NULL);
    /* A sentinel due after every deadline above: once it fired, no cancelled timer can. */
    struct deadline_waker sentinel = {.deadline = mvx_now() + 2 * MS};
    atomic_init(&sentinel.refs, 1);
    atomic_store(&g_woken, 0);
    mvx_timer s;
    ck_assert_int_eq(mvx_timer_init(&s, rt), 0);
    mvx_waker sw = {&deadline_waker_vt, &sentinel};
    ck_assert_int_eq(mvx_timer_arm(&s, sentinel.deadline, &sw), MVX_EAGAIN);
    wait_int_at_least(&g_woken, 1);
    mvx_timer_fini(&s);
    for (int i = 0; i < N; i++) {
        /* Cancelled first: never woken. Fired first: woken exactly once. */
        ck_assert_int_eq(atomic_load(&fws[i]->wakes), outcome[i] == 1 ? 0 : 1);
        mvx_timer_fini(&timers[i]);
        wait_until_int(&fws[i]->refs, 1, 30 * SEC); /* a wake by value drops after counting */
        flag_waker_put(fws[i]);
    }
    ck_assert_int_eq(cancelled + fired, N);
    free(outcome);
    pthread_barrier_destroy(&r.go);
    free(timers);
    free(fws);
    fprintf(stderr, "cancel race: %d cancelled first, %d fired first\n", cancelled, fired);
}
END_TEST

/* ---- re-arming ---- */

START_TEST(rearm_in_a_loop_fires_once_at_the_last_deadline)
{
    /* From a task: 1,000 re-arms in one poll, back and forth, then the real deadline. */
    atomic_store(&g_napper_early, 0);
    mvx_join_handle *jh = spawn_napper(mvx_now() + 5 * MS, 1000);
    ck_assert_int_eq(mvx_join_wait(jh, MVX_TIMEOUT_INFINITE), 0);
    ck_assert_int_eq(atomic_load(&g_napper_early), 0);
    mvx_join_release(jh);

    /* From outside: 10,000 re-arms with moving deadlines and alternating wakers. */
    struct flag_waker *f1 = flag_waker_new(), *f2 = flag_waker_new();
    mvx_waker w1 = {&flag_waker_vt, f1}, w2 = {&flag_waker_vt, f2};
    mvx_timer t;
    ck_assert_int_eq(mvx_timer_init(&t, rt), 0);
    int64_t base = mvx_now() + 10 * SEC;
    int bad = 0;
    for (int i = 0; i < 10000; i++)
        bad += mvx_timer_arm(&t, base + (int64_t)(rnd() % (uint64_t)SEC), (i & 1) ? &w1 : &w2) !=
               MVX_EAGAIN;
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(atomic_load(&f1->refs), 2); /* the last arm used w1 */
    ck_assert_int_eq(atomic_load(&f2->refs), 1);
    ck_assert_int_eq(mvx_timer_arm(&t, mvx_now() + 2 * MS, &w2), MVX_EAGAIN);
    wait_until_int(&f2->wakes, 1, 30 * SEC);
    ck_assert_int_eq(atomic_load(&f1->wakes), 0);
    ck_assert_int_eq(mvx_timer_cancel(&t), 0);
    /* Re-armed after the fire: fires again. */
    ck_assert_int_eq(mvx_timer_arm(&t, mvx_now() + MS, &w1), MVX_EAGAIN);
    wait_until_int(&f1->wakes, 1, 30 * SEC);
    mvx_timer_fini(&t);
    /* A wake by value drops its reference just after counting the wake. */
    wait_until_int(&f1->refs, 1, 30 * SEC);
    wait_until_int(&f2->refs, 1, 30 * SEC);
    ck_assert_int_eq(atomic_load(&f2->wakes), 1);
    flag_waker_put(f1);
    flag_waker_put(f2);
}
END_TEST

/* ---- sleep abort, the join timeout ---- */

START_TEST(abort_cancels_a_sleep_task)
{
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn_sleep(rt, mvx_now() + 3600 * SEC, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * MS), MVX_ETIMEDOUT);
    ck_assert_int_eq(mvx_join_abort(jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, MVX_TIMEOUT_INFINITE), MVX_ECANCELLED);
    mvx_join_release(jh);
}
END_TEST

struct awaiter {
    mvx_join_handle *target;
    mvx_timer timer;
    int64_t deadline;
};
static int awaiter_poll(void *state, mvx_context *cx, void *output)
{
    struct awaiter *a = state;
    int r = mvx_join_poll_until(a->target, &a->timer, a->deadline, mvx_context_waker(cx));
    if (r == MVX_EAGAIN)
        return MVX_POLL_PENDING;
    if (r == MVX_ETIMEDOUT)
        ck_assert(mvx_now() >= a->deadline);
    *(int *)output = r;
    return MVX_POLL_READY;
}
static void awaiter_drop(void *state)
{
    mvx_timer_fini(&((struct awaiter *)state)->timer);
}
static const mvx_task_vtable awaiter_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = awaiter_poll,
    .drop = awaiter_drop,
    .state_size = sizeof(struct awaiter),
    .state_align = _Alignof(struct awaiter),
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

static int await_with_deadline(mvx_join_handle *target, int64_t deadline)
{
    struct awaiter a = {target, {{0}}, deadline};
    ck_assert_int_eq(mvx_timer_init(&a.timer, rt), 0);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &awaiter_vt, &a, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, MVX_TIMEOUT_INFINITE), 0);
    int out = 0;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), 0);
    mvx_join_release(jh);
    return out;
}

START_TEST(join_poll_until_gives_the_outcome_or_times_out)
{
    mvx_join_handle *slow, *fast;
    ck_assert_int_eq(mvx_spawn_sleep(rt, mvx_now() + 3600 * SEC, &slow), 0);
    ck_assert_int_eq(await_with_deadline(slow, mvx_now() + 3 * MS), MVX_ETIMEDOUT);
    ck_assert_int_eq(mvx_join_is_finished(slow), 0); /* the timeout does not cancel it */
    ck_assert_int_eq(mvx_spawn_sleep(rt, mvx_now() + 2 * MS, &fast), 0);
    ck_assert_int_eq(await_with_deadline(fast, mvx_now() + 3600 * SEC), 0);
    ck_assert_int_eq(await_with_deadline(fast, 0), 0); /* finished wins over a past deadline */
    mvx_join_abort(slow);
    ck_assert_int_eq(await_with_deadline(slow, mvx_now() + 3600 * SEC), MVX_ECANCELLED);
    mvx_join_release(slow);
    mvx_join_release(fast);
}
END_TEST

/* ---- shutdown and release ---- */

START_TEST(timers_across_shutdown_and_release)
{
    enum { N = 100 };
    mvx_join_handle *sleeps[N], *nappers[N];
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(mvx_spawn_sleep(rt, mvx_now() + 3600 * SEC, &sleeps[i]), 0);
        nappers[i] = spawn_napper(mvx_now() + 3600 * SEC, 0);
    }
    struct flag_waker *fw = flag_waker_new();
    mvx_waker w = {&flag_waker_vt, fw};
    mvx_timer armed, idle;
    ck_assert_int_eq(mvx_timer_init(&armed, rt), 0);
    ck_assert_int_eq(mvx_timer_init(&idle, rt), 0);
    ck_assert_int_eq(mvx_timer_arm(&armed, mvx_now() + 20 * MS, &w), MVX_EAGAIN);
    wait_int_at_least(&g_polls, N); /* every napper armed its timer */
    ck_assert_int_eq(mvx_runtime_shutdown(rt, MVX_TIMEOUT_INFINITE), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(mvx_join_wait(sleeps[i], 0), MVX_ECANCELLED);
        ck_assert_int_eq(mvx_join_wait(nappers[i], 0), MVX_ECANCELLED);
        mvx_join_release(sleeps[i]);
        mvx_join_release(nappers[i]);
    }
    ck_assert_int_eq(atomic_load(&g_drops), N);
    ck_assert_int_eq(mvx_timer_arm(&idle, mvx_now() + MS, &w), MVX_ESHUTDOWN);
    ck_assert_int_eq(mvx_spawn_sleep(rt, mvx_now() + MS, NULL), MVX_ESHUTDOWN);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    rt = NULL;
    /* The runtime is gone: the armed timer never fires, and both free safely. */
    struct timespec ts = {0, 40 * MS};
    nanosleep(&ts, NULL);
    ck_assert_int_eq(atomic_load(&fw->wakes), 0);
    ck_assert_int_eq(mvx_timer_cancel(&armed), 1);
    mvx_timer_fini(&armed);
    mvx_timer_fini(&idle);
    mvx_timer_fini(&idle); /* finalised: zeroed, a no-op */
    ck_assert_int_eq(atomic_load(&fw->refs), 1);
    flag_waker_put(fw);
}
END_TEST

/* ---- scale ---- */

START_TEST(a_million_armed_then_cancelled_leaks_nothing)
{
    enum { N = 1000000 };
    mvx_timer *timers = malloc(N * sizeof *timers);
    struct flag_waker *fw = flag_waker_new();
    mvx_waker w = {&flag_waker_vt, fw};
    int64_t base = mvx_now() + 60 * SEC;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        bad += mvx_timer_init(&timers[i], rt) != 0;
        bad += mvx_timer_arm(&timers[i], base + (int64_t)(rnd() % (uint64_t)(3600 * SEC)), &w) !=
               MVX_EAGAIN;
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(atomic_load(&fw->refs), N + 1);
    for (int i = 0; i < N; i++)
        bad += mvx_timer_cancel(&timers[i]) != 1;
    ck_assert_int_eq(bad, 0);
    for (int i = 0; i < N; i++)
        mvx_timer_fini(&timers[i]);
    ck_assert_int_eq(atomic_load(&fw->refs), 1);
    ck_assert_int_eq(atomic_load(&fw->wakes), 0);
    flag_waker_put(fw);
    free(timers);
}
END_TEST

/* ---- wheel boundaries ---- */

/* The span of one slot at level `level` of the wheel: ticks of 2^17 ns at level 0 (a ring of
 * 2,048 over the current block of 1,024 ticks and the next), 64 times the level below above it
 * (src/timer.c). */
static int64_t level_span(int level)
{
    return (int64_t)1 << (level ? 17 + 10 + 6 * (level - 1) : 17);
}

START_TEST(deadlines_at_every_wheel_level_far_past_and_now)
{
    struct flag_waker *fw = flag_waker_new();
    mvx_waker w = {&flag_waker_vt, fw};
    mvx_timer t;
    ck_assert_int_eq(mvx_timer_init(&t, rt), 0);
    /* Past and now: expired at once, nothing stored. */
    const int64_t past[] = {INT64_MIN, -1, 0, 1, mvx_now() - SEC, mvx_now() - 1, mvx_now()};
    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
        ck_assert_int_eq(mvx_timer_arm(&t, past[i], &w), 0);
        ck_assert_int_eq(mvx_timer_cancel(&t), 0);
    }
    /* Each level's first and last tick, and far future. The nearest may fire before the cancel
     * on a slow machine (or under TSan): then it must wake exactly once. */
    int fired_first = 0;
    for (int level = 0; level < 7; level++) {
        int64_t span = level_span(level);
        int64_t now = mvx_now();
        int64_t slots = level ? 64 : 2048;
        int64_t last = level < 6 ? now + slots * span - 1 : now + 2 * span; /* no overflow */
        const int64_t d[] = {now + span - 1, now + span, now + span + 1, last};
        for (size_t i = 0; i < 4; i++) {
            int r = mvx_timer_arm(&t, d[i], &w);
            ck_assert(r == MVX_EAGAIN || (r == 0 && d[i] - now < SEC));
            if (r == 0)
                continue;
            r = mvx_timer_cancel(&t);
            ck_assert(r == 1 || (r == 0 && d[i] - now < SEC));
            fired_first += r == 0;
        }
    }
    int64_t now = mvx_now();
    const int64_t far[] = {INT64_MAX, INT64_MAX - 1, now + (int64_t)100 * 365 * 24 * 3600 * SEC};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(mvx_timer_arm(&t, far[i], &w), MVX_EAGAIN);
        ck_assert_int_eq(mvx_timer_cancel(&t), 1);
    }
    wait_until_int(&fw->wakes, fired_first, 30 * SEC);
    mvx_timer_fini(&t);
    ck_assert_int_eq(atomic_load(&fw->refs), 1);
    ck_assert_int_eq(atomic_load(&fw->wakes), fired_first);
    flag_waker_put(fw);

    /* Fired for real on levels 0 and 1 (cascading once: two blocks out or more is beyond level
     * 0), each checked against its deadline; level 2 starts 8.6 s out. */
    enum { K = 12 };
    struct deadline_waker dws[K];
    mvx_timer ts[K];
    atomic_store(&g_early, 0);
    atomic_store(&g_woken, 0);
    now = mvx_now();
    for (int i = 0; i < K; i++) {
        int level = i % 2;
        int64_t span = level_span(level);
        dws[i].deadline = now + span * (1 + i / 2 + level) + i;
        atomic_init(&dws[i].refs, 1);
        atomic_init(&dws[i].wakes, 0);
        mvx_waker dw = {&deadline_waker_vt, &dws[i]};
        ck_assert_int_eq(mvx_timer_init(&ts[i], rt), 0);
        int r = mvx_timer_arm(&ts[i], dws[i].deadline, &dw);
        if (r == 0) {
            /* Due already (level 0 is 131 us out: a slow or sanitized run gets there first):
             * "expired" at once is the contract, never early. Counted as its firing. */
            ck_assert(mvx_now() >= dws[i].deadline);
            dw_wake_by_ref(&dws[i]);
        } else {
            ck_assert_int_eq(r, MVX_EAGAIN);
        }
    }
    wait_int_at_least(&g_woken, K);
    ck_assert_int_eq(atomic_load(&g_early), 0);
    for (int i = 0; i < K; i++) {
        ck_assert_int_eq(atomic_load(&dws[i].wakes), 1);
        /* A wake by value drops its reference after counting the wake: dws lives on this stack,
         * so wait for that drop before the frame goes. */
        wait_until_int(&dws[i].refs, 1, 30 * SEC);
        mvx_timer_fini(&ts[i]);
    }
}
END_TEST

/* Level 0 holds the current block of 1,024 ticks (134 ms) and the next; a timer armed further
 * out waits in a level above. The next block's level-1 slot is moved down before that block
 * starts, but not across a group of 64 blocks (8.6 s): there the next block sits in a level-2
 * slot, and a level-0 timer and one still in level 2 are both candidates for the next fire. The
 * earlier must fire first (this catches a wheel that looks at level 0 before the levels above).
 * One worker, so every timer is in its wheel; the order of the wakes, not their timing, is
 * asserted. Waits up to 8.6 s for the end of a group. */
START_TEST(a_timer_waiting_above_level_0_fires_before_a_later_one_in_it)
{
    mvx_runtime *one = new_runtime(1);
    atomic_store(&g_early, 0);
    atomic_store(&g_woken, 0);
    /* Start in the second-last block of a group, so that the blocks below are known: ticks of
     * 2^17 ns, blocks of 2^10 ticks, groups of 64 blocks, on the mvx_now() clock. */
    const int64_t block = (int64_t)1 << 27, group = block << 6;
    int64_t next_group = (mvx_now() / group + 1) * group;
    if (next_group - mvx_now() < 2 * block - 5 * MS)
        next_group += group;
    while (mvx_now() < next_group - 2 * block + MS)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    /* above: in the next group's first block, two blocks out: above level 0 (level 2); step: in
     * the group's last block, moving the wheel into it when it fires, which makes above's block
     * the next one (not moved down: another group); below: armed then, 20 ms after above in the
     * same block, so into level 0. */
    struct deadline_waker above = {.deadline = next_group + 50 * MS},
                          step = {.deadline = next_group - block + 50 * MS},
                          below = {.deadline = next_group + 70 * MS};
    struct deadline_waker *dws[] = {&above, &step, &below};
    mvx_timer ts[3];
    for (int i = 0; i < 3; i++) {
        atomic_init(&dws[i]->refs, 1);
        ck_assert_int_eq(mvx_timer_init(&ts[i], one), 0);
    }
    mvx_waker wa = {&deadline_waker_vt, &above}, ws = {&deadline_waker_vt, &step},
              wb = {&deadline_waker_vt, &below};
    ck_assert_int_eq(mvx_timer_arm(&ts[0], above.deadline, &wa), MVX_EAGAIN);
    ck_assert_int_eq(mvx_timer_arm(&ts[1], step.deadline, &ws), MVX_EAGAIN);
    wait_int_at_least(&g_woken, 1);
    ck_assert_int_eq(atomic_load(&step.wakes), 1);
    int r = mvx_timer_arm(&ts[2], below.deadline, &wb);
    if (r == 0) {
        /* A slow run (valgrind) got past it: expired at once, counted as its fire once above's
         * (due earlier, so it fires before) came; the order is then not the wheel's. */
        wait_until_int(&above.wakes, 1, 30 * SEC);
        dw_wake_by_ref(&below);
    }
    wait_int_at_least(&g_woken, 3);
    ck_assert_int_eq(atomic_load(&g_early), 0);
    ck_assert_int_eq(atomic_load(&above.wakes), 1);
    ck_assert_int_eq(atomic_load(&below.wakes), 1);
    ck_assert_msg(atomic_load(&above.order) < atomic_load(&below.order),
                  "the timer 20 ms later fired first (orders %d, %d)", atomic_load(&above.order),
                  atomic_load(&below.order));
    for (int i = 0; i < 3; i++) {
        wait_until_int(&dws[i]->refs, 1, 30 * SEC);
        mvx_timer_fini(&ts[i]);
    }
    ck_assert_int_eq(mvx_runtime_release(one), 0);
}
END_TEST

/* ---- a busy worker looks at its timers after each long poll ---- */

/* A task that busy-waits 50 us per poll and yields, so its worker never idles: only the run
 * loop's look between polls can fire that worker's timers. It numbers its polls and notes the
 * last one to end before `due` (a watched timer's deadline). */
struct long_polls {
    atomic_bool stop;
    atomic_int polls;
    _Atomic int64_t due;
    atomic_int last_before; /* the number of the last poll that ended before due */
    atomic_int at_fire;     /* polls when the watched timer fired */
};
static int long_poll(void *state, mvx_context *cx, void *output)
{
    (void)output;
    struct long_polls *lp = *(struct long_polls **)state;
    int64_t end = mvx_now() + 50000;
    while (mvx_now() < end)
        ;
    int n = atomic_fetch_add(&lp->polls, 1) + 1;
    int64_t due = atomic_load(&lp->due);
    if (due && mvx_now() < due)
        atomic_store(&lp->last_before, n);
    if (atomic_load(&lp->stop))
        return MVX_POLL_READY;
    mvx_waker_wake_by_ref(mvx_context_waker(cx));
    return MVX_POLL_PENDING;
}
static const mvx_task_vtable long_poll_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = long_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
};
static struct long_polls *g_long_polls;
static void at_fire_wake_by_ref(void *d)
{
    (void)d;
    atomic_store(&g_long_polls->at_fire, atomic_load(&g_long_polls->polls));
}
static void *at_fire_clone(void *d)
{
    return d;
}
static void at_fire_drop(void *d)
{
    (void)d;
}
static const mvx_waker_vtable at_fire_waker_vt = {
    sizeof(mvx_waker_vtable), at_fire_clone, at_fire_wake_by_ref, at_fire_wake_by_ref,
    at_fire_drop,
};

/* Counted in polls, not timed: a timer whose deadline passes while its worker runs 50 us polls
 * fires after the poll during which it passed: not up to 16 polls later (the fixed interval the
 * run loop's look had, 0.8 ms here), nor at the start of its tick (up to 131 us, 2.6 polls,
 * after the deadline). A long timer keeps the wheel non-empty, so the worker has learnt its
 * polls' length before the watched timers are armed; four of them, each 10 ms ahead. */
START_TEST(a_busy_worker_fires_a_timer_after_the_poll_its_deadline_passed_in)
{
    mvx_runtime *one = new_runtime(1);
    struct long_polls lp = {0};
    g_long_polls = &lp;
    struct long_polls *lpp = &lp;
    mvx_join_handle *busy;
    ck_assert_int_eq(mvx_spawn(one, &long_poll_vt, &lpp, &busy), 0);
    mvx_timer keeper, watched;
    ck_assert_int_eq(mvx_timer_init(&keeper, one), 0);
    ck_assert_int_eq(mvx_timer_init(&watched, one), 0);
    mvx_waker none = {&at_fire_waker_vt, NULL};
    ck_assert_int_eq(mvx_timer_arm(&keeper, mvx_now() + 3600 * SEC, &none), MVX_EAGAIN);
    wait_int_at_least(&lp.polls, 100);
    for (int i = 0; i < 4; i++) {
        atomic_store(&lp.due, 0);
        atomic_store(&lp.last_before, 0);
        atomic_store(&lp.at_fire, 0);
        int64_t deadline = mvx_now() + 10 * MS;
        atomic_store(&lp.due, deadline);
        ck_assert_int_eq(mvx_timer_arm(&watched, deadline, &none), MVX_EAGAIN);
        wait_int_at_least(&lp.at_fire, 1);
        /* 1 when it fires after the poll in which the deadline passed, 0 when the deadline
         * passed between that poll's end and the look after it. */
        int last_before = atomic_load(&lp.last_before), at_fire = atomic_load(&lp.at_fire);
        ck_assert_msg(last_before > 0 && at_fire - last_before <= 2,
                      "timer %d fired after %d polls that ended past its deadline", i,
                      at_fire - last_before);
    }
    ck_assert_int_eq(mvx_timer_cancel(&keeper), 1);
    atomic_store(&lp.stop, true);
    ck_assert_int_eq(mvx_join_wait(busy, MVX_TIMEOUT_INFINITE), 0);
    mvx_join_release(busy);
    mvx_timer_fini(&keeper);
    mvx_timer_fini(&watched);
    ck_assert_int_eq(mvx_runtime_release(one), 0);
}
END_TEST

/* A task that sleeps on its timer beside long_poll tasks, and notes at each fire how many of
 * their polls had ended past its deadline (lp.polls - lp.last_before) when it ran; it re-arms
 * itself `rearm` more times, each `gap` ns after it ran. Every poll runs on the one worker. */
struct busy_sleeper {
    mvx_timer timer;
    struct long_polls *lp;
    int64_t deadline, gap;
    int rearm;
    atomic_int *worst; /* the most polls past a deadline seen */
    atomic_int *done;
};
static int busy_sleeper_poll(void *state, mvx_context *cx, void *output)
{
    (void)output;
    struct busy_sleeper *bs = state;
    for (;;) {
        if (mvx_timer_arm(&bs->timer, bs->deadline, mvx_context_waker(cx)) == MVX_EAGAIN)
            return MVX_POLL_PENDING;
        int late_polls = atomic_load(&bs->lp->polls) - atomic_load(&bs->lp->last_before);
        if (late_polls > atomic_load(bs->worst))
            atomic_store(bs->worst, late_polls);
        if (bs->rearm-- == 0) {
            atomic_fetch_add(bs->done, 1);
            return MVX_POLL_READY;
        }
        bs->deadline = mvx_now() + bs->gap;
        /* Every poll so far ended before the new deadline; long_poll moves it on from here. */
        atomic_store(&bs->lp->last_before, atomic_load(&bs->lp->polls));
        atomic_store(&bs->lp->due, bs->deadline);
    }
}
static void busy_sleeper_drop(void *state)
{
    mvx_timer_fini(&((struct busy_sleeper *)state)->timer);
}
static const mvx_task_vtable busy_sleeper_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = busy_sleeper_poll,
    .drop = busy_sleeper_drop,
    .state_size = sizeof(struct busy_sleeper),
    .state_align = _Alignof(struct busy_sleeper),
};

/* One worker running `busy` long_poll tasks (queued behind one another, each yielding), a long
 * timer keeping its wheel non-empty, and the polls learnt; then `sleepers` busy_sleeper tasks
 * due together 10 ms out, re-arming `rearm` times `gap` ns after they ran. Returns the most
 * long polls that ended past a deadline before its sleeper ran. */
static int polls_past_deadline(int busy, int sleepers, int rearm, int64_t gap)
{
    mvx_runtime *one = new_runtime(1);
    struct long_polls lp = {0};
    struct long_polls *lpp = &lp;
    mvx_join_handle *busy_jh[4], *sleeper_jh[8];
    ck_assert(busy <= 4 && sleepers <= 8);
    for (int i = 0; i < busy; i++)
        ck_assert_int_eq(mvx_spawn(one, &long_poll_vt, &lpp, &busy_jh[i]), 0);
    mvx_timer keeper;
    ck_assert_int_eq(mvx_timer_init(&keeper, one), 0);
    mvx_waker none = {&at_fire_waker_vt, NULL};
    ck_assert_int_eq(mvx_timer_arm(&keeper, mvx_now() + 3600 * SEC, &none), MVX_EAGAIN);
    wait_int_at_least(&lp.polls, 100);
    atomic_int worst = 0, done = 0;
    int64_t deadline = mvx_now() + 10 * MS;
    atomic_store(&lp.last_before, atomic_load(&lp.polls));
    atomic_store(&lp.due, deadline);
    for (int i = 0; i < sleepers; i++) {
        struct busy_sleeper bs = {.lp = &lp, .deadline = deadline, .gap = gap, .rearm = rearm,
                                  .worst = &worst, .done = &done};
        ck_assert_int_eq(mvx_timer_init(&bs.timer, one), 0);
        ck_assert_int_eq(mvx_spawn(one, &busy_sleeper_vt, &bs, &sleeper_jh[i]), 0);
    }
    wait_int_at_least(&done, sleepers);
    for (int i = 0; i < sleepers; i++) {
        ck_assert_int_eq(mvx_join_wait(sleeper_jh[i], MVX_TIMEOUT_INFINITE), 0);
        mvx_join_release(sleeper_jh[i]);
    }
    ck_assert_int_eq(mvx_timer_cancel(&keeper), 1);
    atomic_store(&lp.stop, true);
    for (int i = 0; i < busy; i++) {
        ck_assert_int_eq(mvx_join_wait(busy_jh[i], MVX_TIMEOUT_INFINITE), 0);
        mvx_join_release(busy_jh[i]);
    }
    mvx_timer_fini(&keeper);
    ck_assert_int_eq(mvx_runtime_release(one), 0);
    return atomic_load(&worst);
}

/* Counted in polls: tasks that a busy worker's timers wake run next, before the tasks queued
 * there already. Four sleepers fire in one look while three long tasks are queued; with the
 * woken tasks pushed behind them (the LIFO slot holds one), three would wait for all three. 1:
 * each ran after the poll in which its deadline passed; 0: the deadline passed at the look. */
START_TEST(tasks_a_busy_workers_timers_wake_run_before_its_queued_ones)
{
    int worst = polls_past_deadline(3, 4, 0, 0);
    ck_assert_msg(worst <= 1, "a woken sleeper waited for %d long polls", worst);
}
END_TEST

/* Counted in polls: a short poll between long ones does not make the worker skip its look after
 * the next long one. A sleeper re-arms itself 20 us after each fire, so its deadline passes
 * during the long poll that follows; when the look after its short poll took the short gap as
 * a reason to look every other poll, the sleeper waited for a second long poll every time. */
START_TEST(a_short_poll_between_long_ones_keeps_the_look_after_each)
{
    int worst = polls_past_deadline(1, 1, 20, 20000);
    ck_assert_msg(worst <= 1, "the sleeper waited for %d long polls", worst);
}
END_TEST

/* ---- a busy worker fires the timers of a peer stuck in a long poll ---- */

/* long_poll's 50 us polls, with a timer an hour out on the wheel of whichever worker polls it
 * (re-made when the task moves): the busy look runs only while a worker's own wheel holds
 * timers. */
struct keeper_poll {
    struct long_polls *lp;
    mvx_timer keeper;
    pthread_t on;
    bool armed;
};
static int keeper_poll(void *state, mvx_context *cx, void *output)
{
    struct keeper_poll *kp = state;
    if (!kp->armed || !pthread_equal(kp->on, pthread_self())) {
        if (kp->armed) {
            mvx_timer_cancel(&kp->keeper);
            mvx_timer_fini(&kp->keeper);
        }
        ck_assert_int_eq(mvx_timer_init(&kp->keeper, mvx_runtime_current()), 0);
        mvx_waker none = {&at_fire_waker_vt, NULL};
        mvx_timer_arm(&kp->keeper, mvx_now() + 3600 * SEC, &none);
        kp->on = pthread_self();
        kp->armed = true;
    }
    return long_poll(&kp->lp, cx, output);
}
static void keeper_drop(void *state)
{
    struct keeper_poll *kp = state;
    if (kp->armed)
        mvx_timer_fini(&kp->keeper);
}
static const mvx_task_vtable keeper_poll_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = keeper_poll,
    .drop = keeper_drop,
    .state_size = sizeof(struct keeper_poll),
    .state_align = _Alignof(struct keeper_poll),
};

/* A task that arms a timer on its worker's wheel, due in 20 ms, then keeps that worker in one
 * poll until the timer has fired (at most 2 s). */
static atomic_bool g_stuck_started, g_watched_fired;
static void stuck_fire_wake(void *d)
{
    at_fire_wake_by_ref(d);
    atomic_store(&g_watched_fired, true);
}
static const mvx_waker_vtable stuck_fire_vt = {
    sizeof(mvx_waker_vtable), at_fire_clone, stuck_fire_wake, stuck_fire_wake, at_fire_drop,
};
static int stuck_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct long_polls *lp = *(struct long_polls **)state;
    mvx_timer watched;
    ck_assert_int_eq(mvx_timer_init(&watched, mvx_runtime_current()), 0);
    int64_t deadline = mvx_now() + 20 * MS;
    atomic_store(&lp->last_before, atomic_load(&lp->polls));
    atomic_store(&lp->due, deadline);
    mvx_waker w = {&stuck_fire_vt, NULL};
    ck_assert_int_eq(mvx_timer_arm(&watched, deadline, &w), MVX_EAGAIN);
    atomic_store(&g_stuck_started, true);
    while (!atomic_load(&g_watched_fired) && mvx_now() < deadline + 2 * SEC)
        ;
    mvx_timer_cancel(&watched);
    mvx_timer_fini(&watched);
    return MVX_POLL_READY;
}
static const mvx_task_vtable stuck_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = stuck_poll,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
};

/* Counted in polls: a timer whose worker is stuck in a long poll is fired by the busy peer's
 * next look once its deadline passes, not after the 1 ms grace (20 of the peer's 50 us polls)
 * nor once the stuck poll ends. */
START_TEST(a_busy_worker_fires_the_timers_of_a_peer_stuck_in_a_long_poll)
{
    mvx_runtime *two = new_runtime(2);
    struct long_polls lp = {0};
    g_long_polls = &lp;
    atomic_store(&g_stuck_started, false);
    atomic_store(&g_watched_fired, false);
    struct keeper_poll kp = {.lp = &lp};
    mvx_join_handle *busy, *stuck;
    ck_assert_int_eq(mvx_spawn(two, &keeper_poll_vt, &kp, &busy), 0);
    wait_int_at_least(&lp.polls, 50);
    struct long_polls *lpp = &lp;
    ck_assert_int_eq(mvx_spawn(two, &stuck_vt, &lpp, &stuck), 0);
    while (!atomic_load(&g_stuck_started))
        usleep(100);
    /* The busy task now runs on the other worker: it makes polls while the first is stuck. */
    int base = atomic_load(&lp.polls);
    wait_int_at_least(&lp.polls, base + 20);
    ck_assert_msg(mvx_now() < atomic_load(&lp.due), "setup took longer than the deadline");
    ck_assert_int_eq(mvx_join_wait(stuck, MVX_TIMEOUT_INFINITE), 0);
    mvx_join_release(stuck);
    int last_before = atomic_load(&lp.last_before), at_fire = atomic_load(&lp.at_fire);
    ck_assert_msg(atomic_load(&g_watched_fired), "the stuck worker's timer never fired");
    ck_assert_msg(last_before > 0 && at_fire - last_before <= 2,
                  "the timer fired after %d of the peer's polls past its deadline",
                  at_fire - last_before);
    atomic_store(&lp.stop, true);
    ck_assert_int_eq(mvx_join_wait(busy, MVX_TIMEOUT_INFINITE), 0);
    mvx_join_release(busy);
    ck_assert_int_eq(mvx_runtime_release(two), 0);
}
END_TEST

/* A parked worker its timers wake once per 131 us tick coalesces them: it sleeps to the next
 * 262 us boundary and fires two ticks' slots per wake-up (timer.c, with_slack). Counted in parks,
 * not timed: one sleep due in each of 200 consecutive ticks, all armed before the first is due;
 * one wake-up per tick would park about 200 times, coalesced about 100. A loaded machine that
 * wakes the worker late only coalesces more. */
START_TEST(a_worker_its_timers_wake_every_tick_wakes_once_per_two)
{
    enum { N = 200 };
    const int64_t tick = INT64_C(1) << 17;
    mvx_runtime *one = new_runtime(1);
    mvx_join_handle *jh[N];
    int64_t slow = 1000 / scaled(1000); /* valgrind: 20 */
    int64_t first = mvx_now() + 50 * MS * slow;
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(mvx_spawn_sleep(one, first + i * tick, &jh[i]), 0);
    mvx_worker_stats st = {.size = sizeof st};
    for (int tries = 0;; tries++) { /* each sleep's first poll armed its timer */
        ck_assert_int_eq(mvx_runtime_worker_stats(one, 0, &st), 0);
        if (st.polls >= N)
            break;
        ck_assert_int_lt(tries, 40000 * slow);
        usleep(100);
    }
    ck_assert_msg(mvx_now() < first,
                  "arming took longer than the first deadline: nothing to count");
    uint64_t parks_before = st.parks;
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(mvx_join_wait(jh[i], MVX_TIMEOUT_INFINITE), 0);
        mvx_join_release(jh[i]);
    }
    ck_assert_int_eq(mvx_runtime_worker_stats(one, 0, &st), 0);
    uint64_t parks = st.parks - parks_before;
    ck_assert_msg(parks <= 3 * N / 4, "%llu parks for %d ticks with a timer each",
                  (unsigned long long)parks, N);
    ck_assert_int_eq(mvx_runtime_release(one), 0);
}
END_TEST

/* ---- errors ---- */

START_TEST(bad_arguments_are_einval)
{
    mvx_timer t, zero;
    memset(&zero, 0, sizeof zero);
    struct flag_waker *fw = flag_waker_new();
    mvx_waker w = {&flag_waker_vt, fw}, none = {NULL, NULL};
    ck_assert_int_eq(mvx_timer_init(NULL, rt), MVX_EINVAL);
    ck_assert_int_eq(mvx_timer_init(&t, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_timer_arm(NULL, 0, &w), MVX_EINVAL);
    ck_assert_int_eq(mvx_timer_arm(&zero, mvx_now() + SEC, &w), MVX_EINVAL);
    ck_assert_int_eq(mvx_timer_init(&t, rt), 0);
    ck_assert_int_eq(mvx_timer_arm(&t, mvx_now() + SEC, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_timer_arm(&t, mvx_now() + SEC, &none), MVX_EINVAL);
    ck_assert_int_eq(mvx_timer_cancel(NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_timer_cancel(&zero), 0);
    ck_assert_int_eq(mvx_spawn_sleep(NULL, 0, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_join_poll_until(NULL, &t, 0, &w), MVX_EINVAL);
    mvx_timer_fini(NULL);
    mvx_timer_fini(&zero);
    mvx_timer_fini(&t);
    ck_assert_int_eq(atomic_load(&fw->refs), 1);
    flag_waker_put(fw);
}
END_TEST

static Suite *timer_suite(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = tcase_create("timer");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, ten_thousand_random_deadlines_never_fire_early);
    tcase_add_test(tc, sleep_tasks_complete_at_their_deadlines);
    tcase_add_test(tc, cancel_before_the_deadline_means_no_wake);
    tcase_add_test(tc, cancel_racing_the_fire_has_exactly_one_outcome);
    tcase_add_test(tc, rearm_in_a_loop_fires_once_at_the_last_deadline);
    tcase_add_test(tc, abort_cancels_a_sleep_task);
    tcase_add_test(tc, join_poll_until_gives_the_outcome_or_times_out);
    tcase_add_test(tc, timers_across_shutdown_and_release);
    tcase_add_test(tc, a_million_armed_then_cancelled_leaks_nothing);
    tcase_add_test(tc, deadlines_at_every_wheel_level_far_past_and_now);
    tcase_add_test(tc, a_timer_waiting_above_level_0_fires_before_a_later_one_in_it);
    tcase_add_test(tc, a_busy_worker_fires_a_timer_after_the_poll_its_deadline_passed_in);
    tcase_add_test(tc, tasks_a_busy_workers_timers_wake_run_before_its_queued_ones);
    tcase_add_test(tc, a_short_poll_between_long_ones_keeps_the_look_after_each);
    tcase_add_test(tc, a_busy_worker_fires_the_timers_of_a_peer_stuck_in_a_long_poll);
    tcase_add_test(tc, a_worker_its_timers_wake_every_tick_wakes_once_per_two);
    tcase_add_test(tc, bad_arguments_are_einval);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(timer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
