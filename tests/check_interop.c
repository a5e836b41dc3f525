/*
 * check_interop.c - notifiers (a completion queue behind one fd) and promises (tasks completed
 * from outside). Races start their threads on a barrier; every round counts outcomes and drops.
 */
#include "helpers.h"

#include <fcntl.h>
#include <poll.h>

static mvx_runtime *rt;

static void setup(void)
{
    reset_counters();
    atomic_store(&g_payload_drops, 0);
    rt = new_runtime(2);
}
static void teardown(void)
{
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}

/* Whether the fd polls readable right now. */
static bool fd_readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 0);
    ck_assert_int_ge(r, 0);
    return r == 1 && (p.revents & POLLIN);
}

static int drain_all(mvx_notifier *n, uint64_t *tokens, size_t max)
{
    int k = mvx_notifier_drain(n, tokens, max);
    ck_assert_int_ge(k, 0);
    return k;
}

/* ---- notifier basics ---- */

START_TEST(notifier_fd_is_nonblocking_cloexec_and_quiet_when_new)
{
    mvx_notifier *n;
    ck_assert_int_eq(mvx_notifier_new(&n), 0);
    int fd = mvx_notifier_fd(n);
    ck_assert_int_ge(fd, 0);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ck_assert(!fd_readable(fd));
    uint64_t t;
    ck_assert_int_eq(mvx_notifier_drain(n, &t, 1), 0);
    ck_assert_int_eq(mvx_notifier_wait(n, 1 * MS), MVX_ETIMEDOUT);
    mvx_notifier_free(n);
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1); /* closed by free */
}
END_TEST

START_TEST(notifier_rejects_bad_arguments)
{
    mvx_notifier *n;
    mvx_waker w;
    uint64_t t;
    mvx_notifier_stats st = {.size = 1};
    ck_assert_int_eq(mvx_notifier_new(NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_notifier_fd(NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_notifier_waker(NULL, 1, &w), MVX_EINVAL);
    ck_assert_int_eq(mvx_notifier_drain(NULL, &t, 1), MVX_EINVAL);
    ck_assert_int_eq(mvx_notifier_wait(NULL, 0), MVX_EINVAL);
    ck_assert_int_eq(mvx_notifier_new(&n), 0);
    ck_assert_int_eq(mvx_notifier_waker(n, 1, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_notifier_drain(n, NULL, 4), MVX_EINVAL);
    ck_assert_int_eq(mvx_notifier_stats_get(n, &st), MVX_EINVAL);
    ck_assert_int_eq(mvx_notifier_stats_get(n, NULL), MVX_EINVAL);
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "mvx_notifier_stats_get"));
    mvx_notifier_free(n);
    mvx_notifier_free(NULL);
}
END_TEST

START_TEST(a_wake_delivers_its_token_and_the_fd_follows_the_queue)
{
    mvx_notifier *n;
    mvx_waker w;
    uint64_t t[4] = {0};
    ck_assert_int_eq(mvx_notifier_new(&n), 0);
    ck_assert_int_eq(mvx_notifier_waker(n, 42, &w), 0);
    mvx_waker_wake_by_ref(&w);
    ck_assert(fd_readable(mvx_notifier_fd(n)));
    ck_assert_int_eq(mvx_notifier_wait(n, 0), 0);
    ck_assert_int_eq(drain_all(n, t, 4), 1);
    ck_assert_uint_eq(t[0], 42);
    ck_assert(!fd_readable(mvx_notifier_fd(n)));
    ck_assert_int_eq(drain_all(n, t, 4), 0);
    mvx_waker_wake(&w); /* consumes w */
    ck_assert_ptr_null(w.vtable);
    ck_assert_int_eq(drain_all(n, t, 4), 1);
    ck_assert_uint_eq(t[0], 42);
    mvx_notifier_free(n);
}
END_TEST

START_TEST(wakes_of_one_waker_and_its_clones_coalesce_until_drained)
{
    mvx_notifier *n;
    mvx_waker w, c;
    uint64_t t[8];
    ck_assert_int_eq(mvx_notifier_new(&n), 0);
    ck_assert_int_eq(mvx_notifier_waker(n, 5, &w), 0);
    ck_assert_int_eq(mvx_waker_clone(&w, &c), 0);
    for (int i = 0; i < 10; i++) {
        mvx_waker_wake_by_ref(&w);
        mvx_waker_wake_by_ref(&c);
    }
    mvx_notifier_stats st = {.size = sizeof st};
    ck_assert_int_eq(mvx_notifier_stats_get(n, &st), 0);
    ck_assert_uint_eq(st.fd_writes, 1);
    ck_assert_int_eq(drain_all(n, t, 8), 1);
    mvx_waker_wake_by_ref(&c);
    ck_assert_int_eq(drain_all(n, t, 8), 1);
    ck_assert_uint_eq(t[0], 5);
    mvx_waker_drop(&w);
    mvx_waker_drop(&c);
    mvx_notifier_free(n);
}
END_TEST

START_TEST(separate_wakers_deliver_separately_in_wake_order)
{
    mvx_notifier *n;
    enum { K = 50 };
    mvx_waker w[K];
    uint64_t t[K];
    ck_assert_int_eq(mvx_notifier_new(&n), 0);
    for (int i = 0; i < K; i++)
        ck_assert_int_eq(mvx_notifier_waker(n, (uint64_t)(i % 2 ? 9 : 1000 + i), &w[i]), 0);
    for (int i = K - 1; i >= 0; i--) /* woken in reverse creation order */
        mvx_waker_wake_by_ref(&w[i]);
    ck_assert_int_eq(drain_all(n, t, K), K);
    for (int i = 0; i < K; i++) {
        int src = K - 1 - i;
        ck_assert_uint_eq(t[i], (uint64_t)(src % 2 ? 9 : 1000 + src));
    }
    for (int i = 0; i < K; i++)
        mvx_waker_drop(&w[i]);
    mvx_notifier_free(n);
}
END_TEST

START_TEST(a_partial_drain_leaves_the_rest_pending_and_the_fd_readable)
{
    mvx_notifier *n;
    mvx_waker w[5];
    uint64_t t[5];
    ck_assert_int_eq(mvx_notifier_new(&n), 0);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(mvx_notifier_waker(n, (uint64_t)i, &w[i]), 0);
        mvx_waker_wake_by_ref(&w[i]);
    }
    ck_assert_int_eq(drain_all(n, t, 2), 2);
    ck_assert_uint_eq(t[0], 0);
    ck_assert_uint_eq(t[1], 1);
    ck_assert(fd_readable(mvx_notifier_fd(n)));
    ck_assert_int_eq(drain_all(n, t, 0), 0);
    ck_assert(fd_readable(mvx_notifier_fd(n)));
    mvx_waker_wake_by_ref(&w[0]); /* after the rest */
    ck_assert_int_eq(drain_all(n, t, 5), 4);
    ck_assert_uint_eq(t[0], 2);
    ck_assert_uint_eq(t[3], 0);
    ck_assert(!fd_readable(mvx_notifier_fd(n)));
    for (int i = 0; i < 5; i++)
        mvx_waker_drop(&w[i]);
    mvx_notifier_free(n);
}
END_TEST

/* ---- wake storms ---- */

enum { STORM_THREADS = 4, STORM_WAKERS = 64 };
#define STORM_ROUNDS scaled(20000)

struct storm {
    mvx_notifier *n;
    mvx_waker w[STORM_THREADS * STORM_WAKERS];
    atomic_uint_fast64_t seq[STORM_THREADS * STORM_WAKERS];  /* bumped before each wake */
    uint64_t seen[STORM_THREADS * STORM_WAKERS];             /* consumer: seq at delivery */
    uint64_t delivered[STORM_THREADS * STORM_WAKERS];
    pthread_barrier_t start;
    atomic_int producers_left;
    int stuck, invented;
};

static void *storm_producer(void *arg)
{
    struct storm *s = ((void **)arg)[0];
    int id = (int)(intptr_t)((void **)arg)[1];
    unsigned rng = 12345u + (unsigned)id;
    pthread_barrier_wait(&s->start);
    for (int i = 0; i < STORM_ROUNDS; i++) {
        rng = rng * 1103515245u + 12345u;
        int k = id * STORM_WAKERS + (int)((rng >> 8) % STORM_WAKERS);
        atomic_fetch_add_explicit(&s->seq[k], 1, memory_order_release);
        mvx_waker_wake_by_ref(&s->w[k]);
        if ((i & 1023) == 0)
            sched_yield();
    }
    atomic_fetch_sub(&s->producers_left, 1);
    return NULL;
}

static void storm_take(struct storm *s, const uint64_t *t, int k)
{
    for (int i = 0; i < k; i++) {
        if (t[i] >= STORM_THREADS * STORM_WAKERS) {
            s->invented++;
            continue;
        }
        s->delivered[t[i]]++;
        s->seen[t[i]] = atomic_load_explicit(&s->seq[t[i]], memory_order_acquire);
    }
}

/* The consumer sleeps in poll(2) on the fd, as a host would: a readiness lost while tokens are
 * pending would leave it asleep with work queued (the 2 s poll timeout with tokens pending). */
static void *storm_consumer(void *arg)
{
    struct storm *s = arg;
    uint64_t t[37];
    pthread_barrier_wait(&s->start);
    while (atomic_load(&s->producers_left) > 0) {
        struct pollfd p = {mvx_notifier_fd(s->n), POLLIN, 0};
        int r = poll(&p, 1, 2000);
        if (r == 0 && atomic_load(&s->producers_left) > 0) {
            int k = mvx_notifier_drain(s->n, t, 37);
            if (k > 0)
                s->stuck++;
            storm_take(s, t, k);
            continue;
        }
        int k;
        while ((k = mvx_notifier_drain(s->n, t, 37)) > 0)
            storm_take(s, t, k);
    }
    return NULL;
}

START_TEST(wake_storms_from_many_threads_lose_and_invent_no_token)
{
    struct storm *s = calloc(1, sizeof *s);
    ck_assert_int_eq(mvx_notifier_new(&s->n), 0);
    for (int i = 0; i < STORM_THREADS * STORM_WAKERS; i++)
        ck_assert_int_eq(mvx_notifier_waker(s->n, (uint64_t)i, &s->w[i]), 0);
    pthread_barrier_init(&s->start, NULL, STORM_THREADS + 1);
    atomic_store(&s->producers_left, STORM_THREADS);
    pthread_t th[STORM_THREADS], consumer;
    void *args[STORM_THREADS][2];
    pthread_create(&consumer, NULL, storm_consumer, s);
    for (int i = 0; i < STORM_THREADS; i++) {
        args[i][0] = s;
        args[i][1] = (void *)(intptr_t)i;
        pthread_create(&th[i], NULL, storm_producer, args[i]);
    }
    for (int i = 0; i < STORM_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_join(consumer, NULL);
    /* Quiescent: the fd must say exactly whether tokens are pending. */
    uint64_t t[STORM_THREADS * STORM_WAKERS];
    bool readable = fd_readable(mvx_notifier_fd(s->n));
    int k = drain_all(s->n, t, STORM_THREADS * STORM_WAKERS);
    ck_assert_msg(readable == (k > 0), "fd readable %d with %d tokens pending", readable, k);
    storm_take(s, t, k);
    ck_assert(!fd_readable(mvx_notifier_fd(s->n)));
    ck_assert_int_eq(s->invented, 0);
    ck_assert_int_eq(s->stuck, 0);
    uint64_t wakes = 0, deliveries = 0;
    for (int i = 0; i < STORM_THREADS * STORM_WAKERS; i++) {
        uint64_t seq = atomic_load(&s->seq[i]);
        wakes += seq;
        deliveries += s->delivered[i];
        /* every wake was followed by a delivery that saw it */
        ck_assert_msg(s->seen[i] == seq, "waker %d: woken %llu times, last delivery saw %llu", i,
                      (unsigned long long)seq, (unsigned long long)s->seen[i]);
        ck_assert_uint_le(s->delivered[i], seq); /* a delivery per wake at most */
        mvx_waker_drop(&s->w[i]);
    }
    ck_assert_uint_eq(wakes, (uint64_t)STORM_THREADS * STORM_ROUNDS);
    mvx_notifier_stats st = {.size = sizeof st};
    ck_assert_int_eq(mvx_notifier_stats_get(s->n, &st), 0);
    ck_assert_uint_eq(st.tokens, deliveries);
    ck_assert_uint_le(st.fd_writes, wakes);
    mvx_notifier_free(s->n);
    pthread_barrier_destroy(&s->start);
    free(s);
}
END_TEST

/* Rounds of wakes, all threads released together, then a check at rest: readiness on an empty
 * queue would show as readable with 0 tokens, readiness lost as unreadable with tokens. */
struct rest_round {
    mvx_waker *w;
    pthread_barrier_t *start;
    int count;
};
static void *rest_waker(void *arg)
{
    struct rest_round *r = arg;
    pthread_barrier_wait(r->start);
    for (int i = 0; i < r->count; i++)
        mvx_waker_wake_by_ref(&r->w[i]);
    return NULL;
}
START_TEST(fd_readiness_matches_the_queue_whenever_no_wake_is_in_flight)
{
    mvx_notifier *n;
    ck_assert_int_eq(mvx_notifier_new(&n), 0);
    enum { W = 3, PER = 4 };
    mvx_waker w[W][PER];
    for (int i = 0; i < W; i++)
        for (int j = 0; j < PER; j++)
            ck_assert_int_eq(mvx_notifier_waker(n, (uint64_t)(i * PER + j), &w[i][j]), 0);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, W + 1);
    uint64_t t[W * PER];
    for (int round = 0; round < 2000; round++) {
        pthread_t th[W];
        struct rest_round rr[W];
        for (int i = 0; i < W; i++) {
            rr[i] = (struct rest_round){w[i], &start, 1 + (round + i) % PER};
            pthread_create(&th[i], NULL, rest_waker, &rr[i]);
        }
        pthread_barrier_wait(&start);
        /* drain while the wakes land */
        int early = drain_all(n, t, (size_t)(round % 3));
        (void)early;
        for (int i = 0; i < W; i++)
            pthread_join(th[i], NULL);
        if (round % 2) { /* at rest, before the final drain: pending tokens keep the fd readable */
            bool readable = fd_readable(mvx_notifier_fd(n));
            int k = drain_all(n, t, W * PER);
            if (k > 0)
                ck_assert_msg(readable, "round %d: %d tokens pending, fd not readable", round, k);
        } else {
            drain_all(n, t, W * PER);
        }
        ck_assert_msg(!fd_readable(mvx_notifier_fd(n)), "round %d: readable after a full drain",
                      round);
    }
    pthread_barrier_destroy(&start);
    for (int i = 0; i < W; i++)
        for (int j = 0; j < PER; j++)
            mvx_waker_drop(&w[i][j]);
    mvx_notifier_free(n);
}
END_TEST

/* ---- lifetime ---- */

START_TEST(wakers_outlive_a_freed_notifier_and_do_nothing)
{
    mvx_notifier *n;
    mvx_waker w, c;
    ck_assert_int_eq(mvx_notifier_new(&n), 0);
    ck_assert_int_eq(mvx_notifier_waker(n, 1, &w), 0);
    mvx_waker_wake_by_ref(&w); /* queued when freed: discarded */
    mvx_notifier_free(n);
    mvx_waker_wake_by_ref(&w);
    ck_assert_int_eq(mvx_waker_clone(&w, &c), 0);
    mvx_waker_wake(&c);
    mvx_waker_drop(&w); /* the last reference: memory goes now (ASan/LSan check) */

    /* A waker held by a join handle of a task that finishes after the free. */
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_notifier_new(&n), 0);
    ck_assert_int_eq(mvx_notifier_waker(n, 2, &w), 0);
    ck_assert_int_eq(mvx_spawn(rt, &mailbox_vt, &m, &jh), 0);
    ck_assert_int_eq(mvx_join_poll(jh, &w), MVX_EAGAIN);
    mvx_waker_drop(&w);
    mvx_notifier_free(n);
    wait_until_int(&m.polls, 1, 5 * SEC);
    mailbox_deliver(&m);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    mvx_join_release(jh);
    mailbox_fini(&m);
}
END_TEST

struct free_race {
    mvx_waker w[8];
    pthread_barrier_t start;
};
static void *free_race_waker(void *arg)
{
    struct free_race *fr = arg;
    pthread_barrier_wait(&fr->start);
    for (int i = 0; i < 2000; i++) {
        mvx_waker c;
        mvx_waker_wake_by_ref(&fr->w[i % 8]);
        if (mvx_waker_clone(&fr->w[i % 8], &c) == 0)
            mvx_waker_wake(&c);
    }
    return NULL;
}
START_TEST(freeing_the_notifier_while_threads_wake_it_is_safe)
{
    for (int round = 0; round < 100; round++) {
        mvx_notifier *n;
        struct free_race fr;
        ck_assert_int_eq(mvx_notifier_new(&n), 0);
        for (int i = 0; i < 8; i++)
            ck_assert_int_eq(mvx_notifier_waker(n, (uint64_t)i, &fr.w[i]), 0);
        pthread_barrier_init(&fr.start, NULL, 3);
        pthread_t a, b;
        pthread_create(&a, NULL, free_race_waker, &fr);
        pthread_create(&b, NULL, free_race_waker, &fr);
        pthread_barrier_wait(&fr.start);
        uint64_t t[8];
        drain_all(n, t, (size_t)(round % 9));
        mvx_notifier_free(n);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        for (int i = 0; i < 8; i++)
            mvx_waker_drop(&fr.w[i]);
        pthread_barrier_destroy(&fr.start);
    }
}
END_TEST

/* ---- join handles through a notifier ---- */

START_TEST(join_handles_of_worker_tasks_report_through_the_fd)
{
    mvx_notifier *n;
    ck_assert_int_eq(mvx_notifier_new(&n), 0);
    enum { K = 200 };
    mvx_join_handle *jh[K];
    int done[K] = {0};
    for (int i = 0; i < K; i++) {
        struct yielder y = {i % 5, i};
        ck_assert_int_eq(mvx_spawn(rt, &yielder_vt, &y, &jh[i]), 0);
        mvx_waker w;
        ck_assert_int_eq(mvx_notifier_waker(n, (uint64_t)i, &w), 0);
        int r = mvx_join_poll(jh[i], &w);
        mvx_waker_drop(&w);
        if (r == 0)
            done[i] = 1;
        else
            ck_assert_int_eq(r, MVX_EAGAIN);
    }
    int finished = 0;
    for (int i = 0; i < K; i++)
        finished += done[i];
    uint64_t t[K];
    while (finished < K) {
        ck_assert_int_eq(mvx_notifier_wait(n, 10 * SEC), 0);
        int k = drain_all(n, t, K);
        for (int i = 0; i < k; i++) {
            ck_assert_uint_lt(t[i], K);
            ck_assert_int_eq(done[t[i]], 0); /* one token per completion */
            ck_assert_int_eq(mvx_join_try(jh[t[i]]), 0);
            done[t[i]] = 1;
            finished++;
        }
    }
    for (int i = 0; i < K; i++) {
        int out = -1;
        ck_assert_int_eq(mvx_join_take(jh[i], &out, sizeof out, NULL), 0);
        ck_assert_int_eq(out, i);
        mvx_join_release(jh[i]);
    }
    mvx_notifier_free(n);
}
END_TEST

/* ---- promises ---- */

static atomic_int g_cancel_wakes;
static mvx_join_handle *_Atomic g_cancel_watch; /* its outcome is read when the waker fires */
static atomic_int g_outcome_at_wake;
static void *cw_clone(void *d)
{
    return d;
}
static void cw_wake(void *d)
{
    (void)d;
    mvx_join_handle *jh = atomic_load(&g_cancel_watch);
    if (jh)
        atomic_store(&g_outcome_at_wake, mvx_join_try(jh));
    atomic_fetch_add(&g_cancel_wakes, 1);
}
static void cw_drop(void *d)
{
    (void)d;
}
static const mvx_waker_vtable cancel_waker_vt = {sizeof(mvx_waker_vtable), cw_clone, cw_wake,
                                                 cw_wake, cw_drop};
static const mvx_waker cancel_waker = {&cancel_waker_vt, NULL};

START_TEST(a_resolved_promise_completes_its_join_handle)
{
    mvx_promise *p;
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn_promise(rt, sizeof(int), _Alignof(int), count_output_drop, &p, &jh),
                     0);
    ck_assert_int_eq(mvx_join_try(jh), MVX_EAGAIN);
    ck_assert_int_eq(mvx_join_wait(jh, 1 * MS), MVX_ETIMEDOUT);
    ck_assert_int_eq(mvx_promise_is_cancelled(p), 0);
    int v = 41;
    ck_assert_int_eq(mvx_promise_resolve(p, &v), 0);
    ck_assert_int_eq(mvx_promise_resolve(p, &v), MVX_EALREADY);
    ck_assert_int_eq(mvx_promise_fail(p, 1, "late", NULL, NULL), MVX_EALREADY);
    ck_assert_int_eq(mvx_promise_on_cancel(p, &cancel_waker), MVX_EALREADY);
    ck_assert_int_eq(mvx_join_abort(jh), 0); /* too late: the output stays */
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    int out = 0;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(out, 41);
    ck_assert_int_eq(mvx_promise_is_cancelled(p), 0);
    mvx_promise_release(p);
    mvx_join_release(jh);
    ck_assert_int_eq(atomic_load(&g_output_drops), 0); /* taken */
}
END_TEST

START_TEST(a_failed_promise_hands_over_code_message_and_payload)
{
    mvx_promise *p;
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn_promise(rt, 0, 0, NULL, &p, &jh), 0);
    int *payload = malloc(sizeof *payload);
    *payload = 9;
    ck_assert_int_eq(mvx_promise_fail(p, 123, "goroutine panicked", payload, payload_drop), 0);
    int *other = malloc(sizeof *other);
    ck_assert_int_eq(mvx_promise_fail(p, 1, "again", other, payload_drop), MVX_EALREADY);
    free(other); /* still ours */
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), MVX_EFAILED);
    mvx_failure f = {.size = sizeof f};
    ck_assert_int_eq(mvx_join_take(jh, NULL, 0, &f), MVX_EFAILED);
    ck_assert_int_eq(f.code, 123);
    ck_assert_str_eq(f.message, "goroutine panicked");
    ck_assert_ptr_eq(f.payload, payload);
    mvx_failure_clear(&f);
    ck_assert_int_eq(atomic_load(&g_payload_drops), 1);
    mvx_join_release(jh);
    mvx_promise_release(p);
}
END_TEST

START_TEST(an_aborted_promise_tells_its_producer_and_refuses_the_output)
{
    mvx_promise *p;
    mvx_join_handle *jh;
    atomic_store(&g_cancel_wakes, 0);
    ck_assert_int_eq(mvx_spawn_promise(rt, sizeof(int), 0, count_output_drop, &p, &jh), 0);
    ck_assert_int_eq(mvx_promise_on_cancel(p, &cancel_waker), 0);
    ck_assert_int_eq(mvx_promise_on_cancel(p, &cancel_waker), 0); /* replaces: one wake */
    atomic_store(&g_outcome_at_wake, 0);
    atomic_store(&g_cancel_watch, jh);
    ck_assert_int_eq(mvx_join_abort(jh), 0);
    atomic_store(&g_cancel_watch, NULL);
    /* the producer, once told, already sees the task cancelled */
    ck_assert_int_eq(atomic_load(&g_outcome_at_wake), MVX_ECANCELLED);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), MVX_ECANCELLED);
    ck_assert_int_eq(mvx_promise_is_cancelled(p), 1);
    ck_assert_int_eq(atomic_load(&g_cancel_wakes), 1);
    int v = 3;
    ck_assert_int_eq(mvx_promise_resolve(p, &v), MVX_ECANCELLED);
    int *payload = malloc(sizeof *payload);
    ck_assert_int_eq(mvx_promise_fail(p, 1, "x", payload, payload_drop), MVX_ECANCELLED);
    free(payload);
    ck_assert_int_eq(mvx_promise_on_cancel(p, &cancel_waker), 0); /* woken at once */
    ck_assert_int_eq(atomic_load(&g_cancel_wakes), 2);
    mvx_promise_release(p);
    mvx_join_release(jh);
    ck_assert_int_eq(atomic_load(&g_output_drops), 0);
    ck_assert_int_eq(atomic_load(&g_payload_drops), 0);
}
END_TEST

START_TEST(releasing_an_unresolved_promise_cancels_its_task)
{
    mvx_promise *p;
    mvx_join_handle *jh;
    atomic_store(&g_cancel_wakes, 0);
    ck_assert_int_eq(mvx_spawn_promise(rt, 8, 8, NULL, &p, &jh), 0);
    ck_assert_int_eq(mvx_promise_on_cancel(p, &cancel_waker), 0);
    mvx_promise_release(p);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), MVX_ECANCELLED);
    ck_assert_int_eq(atomic_load(&g_cancel_wakes), 1);
    mvx_join_release(jh);
    /* Detached and resolved: the output is dropped at once. */
    ck_assert_int_eq(mvx_spawn_promise(rt, sizeof(int), 0, count_output_drop, &p, NULL), 0);
    int v = 1;
    ck_assert_int_eq(mvx_promise_resolve(p, &v), 0);
    ck_assert_int_eq(atomic_load(&g_output_drops), 1);
    mvx_promise_release(p);
}
END_TEST

START_TEST(promise_spawn_rejects_bad_arguments_and_a_shut_down_runtime)
{
    mvx_promise *p;
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn_promise(NULL, 4, 0, NULL, &p, &jh), MVX_EINVAL);
    ck_assert_int_eq(mvx_spawn_promise(rt, 4, 0, NULL, NULL, &jh), MVX_EINVAL);
    ck_assert_int_eq(mvx_spawn_promise(rt, 4, 3, NULL, &p, &jh), MVX_EINVAL);
    ck_assert_int_eq(mvx_spawn_promise(rt, MVX_INLINE_MAX + 1, 0, NULL, &p, &jh), MVX_EINVAL);
    ck_assert_int_eq(mvx_promise_resolve(NULL, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_promise_fail(NULL, 0, NULL, NULL, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_promise_on_cancel(NULL, &cancel_waker), MVX_EINVAL);
    ck_assert_int_eq(mvx_promise_is_cancelled(NULL), 0);
    mvx_promise_release(NULL);
    ck_assert_int_eq(mvx_spawn_promise(rt, 4, 0, NULL, &p, &jh), 0);
    ck_assert_int_eq(mvx_promise_resolve(p, NULL), MVX_EINVAL); /* size 4, no output */
    ck_assert_int_eq(mvx_promise_on_cancel(p, &(mvx_waker){NULL, NULL}), MVX_EINVAL);
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 5 * SEC), 0);
    ck_assert_int_eq(mvx_join_try(jh), MVX_ECANCELLED); /* shutdown cancelled it */
    ck_assert_int_eq(mvx_promise_is_cancelled(p), 1);
    ck_assert_int_eq(mvx_spawn_promise(rt, 4, 0, NULL, &p, &jh), MVX_ESHUTDOWN);
    mvx_promise_release(p);
    mvx_join_release(jh);
}
END_TEST

/* A C task awaiting a promise: it polls the promise's join handle with its own waker. */
struct awaiter {
    mvx_join_handle *jh;
};
static int awaiter_poll(void *state, mvx_context *cx, void *output)
{
    struct awaiter *a = state;
    int r = mvx_join_poll(a->jh, mvx_context_waker(cx));
    if (r == MVX_EAGAIN)
        return MVX_POLL_PENDING;
    int v = -1;
    if (r == 0)
        mvx_join_take(a->jh, &v, sizeof v, NULL);
    *(int *)output = r == 0 ? v + 1 : r;
    return MVX_POLL_READY;
}
static void awaiter_drop(void *state)
{
    mvx_join_release(((struct awaiter *)state)->jh);
    atomic_fetch_add(&g_drops, 1);
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
struct resolver_arg {
    mvx_promise *p;
    int value;
};
static void *resolver_thread(void *arg)
{
    struct resolver_arg *ra = arg;
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL); /* after the task has parked on the handle, most of the time */
    ck_assert_int_eq(mvx_promise_resolve(ra->p, &ra->value), 0);
    return NULL;
}
START_TEST(a_c_task_awaits_a_promise_resolved_on_another_thread)
{
    enum { K = 32 };
    mvx_join_handle *tasks[K];
    pthread_t th[K];
    struct resolver_arg ra[K];
    for (int i = 0; i < K; i++) {
        struct awaiter a;
        ck_assert_int_eq(mvx_spawn_promise(rt, sizeof(int), 0, NULL, &ra[i].p, &a.jh), 0);
        ra[i].value = 100 * i;
        ck_assert_int_eq(mvx_spawn(rt, &awaiter_vt, &a, &tasks[i]), 0);
        pthread_create(&th[i], NULL, resolver_thread, &ra[i]);
    }
    for (int i = 0; i < K; i++) {
        int out = 0;
        ck_assert_int_eq(mvx_join_wait(tasks[i], 10 * SEC), 0);
        ck_assert_int_eq(mvx_join_take(tasks[i], &out, sizeof out, NULL), 0);
        ck_assert_int_eq(out, 100 * i + 1);
        mvx_join_release(tasks[i]);
        pthread_join(th[i], NULL);
        mvx_promise_release(ra[i].p);
    }
    ck_assert_int_eq(atomic_load(&g_drops), K);
}
END_TEST

/* resolve, fail, abort, promise release and shutdown, all at once: one outcome, each resource
 * dropped exactly once, the cancel waker woken exactly when the outcome is a cancellation. */
struct outcome_race {
    mvx_promise *p;
    mvx_join_handle *jh;
    pthread_barrier_t start;
    int mode;
    atomic_int resolved, failed;
    atomic_int output_drops, payload_drops, cancel_wakes;
};
static struct outcome_race *g_race;
static void race_output_drop(void *out)
{
    (void)out;
    atomic_fetch_add(&g_race->output_drops, 1);
}
static void race_payload_drop(void *p)
{
    atomic_fetch_add(&((struct outcome_race *)p)->payload_drops, 1);
}
static void *rcw_clone(void *d)
{
    return d;
}
static void rcw_wake(void *d)
{
    atomic_fetch_add(&((struct outcome_race *)d)->cancel_wakes, 1);
}
static void rcw_drop(void *d)
{
    (void)d;
}
static const mvx_waker_vtable race_cancel_vt = {sizeof(mvx_waker_vtable), rcw_clone, rcw_wake,
                                                rcw_wake, rcw_drop};
static void *race_resolve(void *arg)
{
    struct outcome_race *r = arg;
    pthread_barrier_wait(&r->start);
    int v = 7;
    if (mvx_promise_resolve(r->p, &v) == 0)
        atomic_fetch_add(&r->resolved, 1);
    return NULL;
}
static void *race_fail(void *arg)
{
    struct outcome_race *r = arg;
    pthread_barrier_wait(&r->start);
    if (mvx_promise_fail(r->p, 5, "lost", r, race_payload_drop) == 0)
        atomic_fetch_add(&r->failed, 1);
    return NULL;
}
static void *race_cancel(void *arg)
{
    struct outcome_race *r = arg;
    pthread_barrier_wait(&r->start);
    if (r->mode == 0)
        mvx_join_abort(r->jh);
    else
        mvx_join_release(r->jh); /* detaches: no cancellation by itself */
    return NULL;
}
START_TEST(resolve_fail_abort_and_release_racing_have_one_outcome)
{
    static struct outcome_race r; /* static: the output drop finds it through g_race */
    g_race = &r;
    for (int round = 0; round < 3000; round++) {
        memset(&r, 0, sizeof r);
        r.mode = round % 2;
        ck_assert_int_eq(mvx_spawn_promise(rt, sizeof(int), 0, race_output_drop, &r.p, &r.jh), 0);
        mvx_waker cw = {&race_cancel_vt, &r};
        ck_assert_int_eq(mvx_promise_on_cancel(r.p, &cw), 0);
        pthread_barrier_init(&r.start, NULL, 3);
        pthread_t a, b, c;
        pthread_create(&a, NULL, race_resolve, &r);
        pthread_create(&b, NULL, race_fail, &r);
        pthread_create(&c, NULL, race_cancel, &r);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        pthread_join(c, NULL);
        pthread_barrier_destroy(&r.start);
        int winners = atomic_load(&r.resolved) + atomic_load(&r.failed);
        int outcome = r.mode == 0 ? mvx_join_try(r.jh) : 99;
        if (r.mode == 0) {
            ck_assert_int_ne(outcome, MVX_EAGAIN);
            if (outcome == MVX_ECANCELLED) {
                ck_assert_int_eq(winners, 0);
                ck_assert_int_eq(atomic_load(&r.cancel_wakes), 1);
            } else {
                ck_assert_int_eq(winners, 1);
                ck_assert_int_eq(outcome, atomic_load(&r.resolved) ? 0 : MVX_EFAILED);
                ck_assert_int_eq(atomic_load(&r.cancel_wakes), 0);
            }
            mvx_join_release(r.jh);
        } else {
            ck_assert_int_eq(winners, 1); /* release alone cancels nothing */
        }
        mvx_promise_release(r.p);
        /* whoever won, each resource went exactly once */
        ck_assert_int_eq(atomic_load(&r.output_drops), atomic_load(&r.resolved));
        ck_assert_int_eq(atomic_load(&r.payload_drops), atomic_load(&r.failed));
    }
}
END_TEST

struct shutdown_race {
    mvx_runtime *rt;
    mvx_promise *p[16];
    pthread_barrier_t start;
    atomic_int resolved;
};
static void *shutdown_race_resolver(void *arg)
{
    struct shutdown_race *s = arg;
    pthread_barrier_wait(&s->start);
    for (int i = 0; i < 16; i++) {
        int v = i;
        if (mvx_promise_resolve(s->p[i], &v) == 0)
            atomic_fetch_add(&s->resolved, 1);
    }
    return NULL;
}
START_TEST(shutdown_racing_resolution_cancels_exactly_the_unresolved)
{
    for (int round = 0; round < 200; round++) {
        reset_counters();
        struct shutdown_race s;
        memset(&s, 0, sizeof s);
        s.rt = new_runtime(1);
        mvx_join_handle *jh[16];
        for (int i = 0; i < 16; i++)
            ck_assert_int_eq(mvx_spawn_promise(s.rt, sizeof(int), 0, count_output_drop, &s.p[i],
                                               &jh[i]),
                             0);
        pthread_barrier_init(&s.start, NULL, 2);
        pthread_t th;
        pthread_create(&th, NULL, shutdown_race_resolver, &s);
        pthread_barrier_wait(&s.start);
        ck_assert_int_eq(mvx_runtime_shutdown(s.rt, 5 * SEC), 0);
        pthread_join(th, NULL);
        int completed = 0, cancelled = 0;
        for (int i = 0; i < 16; i++) {
            int r = mvx_join_try(jh[i]);
            if (r == 0) {
                completed++;
            } else {
                ck_assert_int_eq(r, MVX_ECANCELLED);
                cancelled++;
            }
            mvx_join_release(jh[i]); /* drops untaken outputs */
            mvx_promise_release(s.p[i]);
        }
        ck_assert_int_eq(completed, atomic_load(&s.resolved));
        ck_assert_int_eq(completed + cancelled, 16);
        ck_assert_int_eq(atomic_load(&g_output_drops), completed);
        pthread_barrier_destroy(&s.start);
        ck_assert_int_eq(mvx_runtime_release(s.rt), 0);
    }
}
END_TEST

START_TEST(promises_and_their_handles_outlive_the_runtime)
{
    mvx_runtime *r2 = new_runtime(1);
    mvx_promise *p, *q;
    mvx_join_handle *jp, *jq;
    ck_assert_int_eq(mvx_spawn_promise(r2, sizeof(int), 0, count_output_drop, &p, &jp), 0);
    ck_assert_int_eq(mvx_spawn_promise(r2, sizeof(int), 0, count_output_drop, &q, &jq), 0);
    int v = 5;
    ck_assert_int_eq(mvx_promise_resolve(q, &v), 0);
    ck_assert_int_eq(mvx_runtime_release(r2), 0); /* cancels p; q stays complete */
    ck_assert_int_eq(mvx_promise_resolve(p, &v), MVX_ECANCELLED);
    ck_assert_int_eq(mvx_join_wait(jp, 0), MVX_ECANCELLED);
    ck_assert_int_eq(mvx_join_wait(jq, 0), 0);
    mvx_promise_release(p);
    mvx_promise_release(q);
    mvx_join_release(jp);
    mvx_join_release(jq); /* the untaken output: dropped here; memory goes with this */
    ck_assert_int_eq(atomic_load(&g_output_drops), 1);
}
END_TEST

static Suite *interop_suite(void)
{
    Suite *s = suite_create("interop");
    TCase *tn = tcase_create("notifier");
    tcase_add_checked_fixture(tn, setup, teardown);
    tcase_set_timeout(tn, 180);
    tcase_add_test(tn, notifier_fd_is_nonblocking_cloexec_and_quiet_when_new);
    tcase_add_test(tn, notifier_rejects_bad_arguments);
    tcase_add_test(tn, a_wake_delivers_its_token_and_the_fd_follows_the_queue);
    tcase_add_test(tn, wakes_of_one_waker_and_its_clones_coalesce_until_drained);
    tcase_add_test(tn, separate_wakers_deliver_separately_in_wake_order);
    tcase_add_test(tn, a_partial_drain_leaves_the_rest_pending_and_the_fd_readable);
    tcase_add_test(tn, wake_storms_from_many_threads_lose_and_invent_no_token);
    tcase_add_test(tn, fd_readiness_matches_the_queue_whenever_no_wake_is_in_flight);
    tcase_add_test(tn, wakers_outlive_a_freed_notifier_and_do_nothing);
    tcase_add_test(tn, freeing_the_notifier_while_threads_wake_it_is_safe);
    tcase_add_test(tn, join_handles_of_worker_tasks_report_through_the_fd);
    suite_add_tcase(s, tn);
    TCase *tp = tcase_create("promise");
    tcase_add_checked_fixture(tp, setup, teardown);
    tcase_set_timeout(tp, 180);
    tcase_add_test(tp, a_resolved_promise_completes_its_join_handle);
    tcase_add_test(tp, a_failed_promise_hands_over_code_message_and_payload);
    tcase_add_test(tp, an_aborted_promise_tells_its_producer_and_refuses_the_output);
    tcase_add_test(tp, releasing_an_unresolved_promise_cancels_its_task);
    tcase_add_test(tp, promise_spawn_rejects_bad_arguments_and_a_shut_down_runtime);
    tcase_add_test(tp, a_c_task_awaits_a_promise_resolved_on_another_thread);
    tcase_add_test(tp, resolve_fail_abort_and_release_racing_have_one_outcome);
    tcase_add_test(tp, shutdown_racing_resolution_cancels_exactly_the_unresolved);
    tcase_add_test(tp, promises_and_their_handles_outlive_the_runtime);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(interop_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
