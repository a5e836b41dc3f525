/*
 * check_queues.c - the two queues under concurrency, white-box: the global MPSC queue (many
 * producers, consumers taking turns) and the work-stealing deque (owner push/pop, stealers
 * taking halves). Every element must come out exactly once, and "empty" must never be reported
 * while elements remain.
 */
#include "helpers.h"

#include "deque.h"
#include "inject.h"

static struct mvx__task *tasks_new(size_t n)
{
    struct mvx__task *t = calloc(n, sizeof *t);
    ck_assert_ptr_nonnull(t);
    return t;
}

START_TEST(inject_is_fifo_and_knows_when_it_is_empty)
{
    struct mvx__inject *q = aligned_alloc(64, sizeof *q);
    mvx__inject_init(q);
    struct mvx__task *t = tasks_new(4);
    ck_assert(!mvx__inject_maybe_nonempty(q));
    ck_assert_ptr_null(mvx__inject_pop(q));
    for (int i = 0; i < 3; i++)
        mvx__inject_push(q, &t[i]);
    ck_assert(mvx__inject_maybe_nonempty(q));
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_eq(mvx__inject_pop(q), &t[i]);
    ck_assert_ptr_null(mvx__inject_pop(q));
    ck_assert(!mvx__inject_maybe_nonempty(q));
    /* A chain goes in as one push, in order. */
    atomic_store(&t[0].next, &t[1]);
    atomic_store(&t[1].next, &t[2]);
    mvx__inject_push_chain(q, &t[0], &t[2]);
    mvx__inject_push(q, &t[3]);
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_eq(mvx__inject_pop(q), &t[i]);
    ck_assert(!mvx__inject_maybe_nonempty(q));
    free(t);
    free(q);
}
END_TEST

/* ---- many producers, consumers taking turns through the try-lock ---- */

enum { PRODUCERS = 3 };
#define PER_PRODUCER scaled(200000)

struct inject_run {
    struct mvx__inject *q;
    struct mvx__task *tasks;
    atomic_uchar *seen;
    atomic_int producers_left;
    atomic_long popped;
    pthread_barrier_t barrier;
};

static void *producer(void *arg)
{
    struct inject_run *r = arg;
    static atomic_int next_id;
    int id = atomic_fetch_add(&next_id, 1) % PRODUCERS;
    pthread_barrier_wait(&r->barrier);
    unsigned seed = (unsigned)id * 7919u + 1;
    for (int i = 0; i < PER_PRODUCER; i++) {
        mvx__inject_push(r->q, &r->tasks[id * PER_PRODUCER + i]);
        /* Keep the queue nearly empty, so that the consumer keeps taking its last node and
         * re-queueing the stub while other producers push. (The narrowest interleaving there
         * needs preemption at two exact points; check_race's many-spawners test provokes it.) */
        seed = seed * 1103515245 + 12345;
        for (unsigned spin = (seed >> 16) % 64; spin > 0; spin--)
            mvx__cpu_relax();
    }
    atomic_fetch_sub(&r->producers_left, 1);
    return NULL;
}

static void consume_some(struct inject_run *r)
{
    if (!mvx__inject_try_lock(r->q))
        return;
    struct mvx__task *t;
    for (int i = 0; i < 4 && (t = mvx__inject_pop(r->q)) != NULL; i++) {
        long idx = t - r->tasks;
        ck_assert_int_eq(atomic_exchange(&r->seen[idx], 1), 0); /* exactly once */
        atomic_fetch_add(&r->popped, 1);
    }
    mvx__inject_unlock(r->q);
}

static void *consumer(void *arg)
{
    struct inject_run *r = arg;
    pthread_barrier_wait(&r->barrier);
    /* Like a worker: keep going while producers run, then until the queue says it is empty. */
    while (atomic_load(&r->producers_left) > 0 || mvx__inject_maybe_nonempty(r->q))
        consume_some(r);
    return NULL;
}

START_TEST(inject_never_reports_empty_while_tasks_remain)
{
    struct inject_run r = {0};
    r.q = aligned_alloc(64, sizeof *r.q);
    mvx__inject_init(r.q);
    r.tasks = tasks_new(PRODUCERS * PER_PRODUCER);
    r.seen = calloc(PRODUCERS * PER_PRODUCER, 1);
    atomic_store(&r.producers_left, PRODUCERS);
    pthread_barrier_init(&r.barrier, NULL, PRODUCERS + 2);
    pthread_t th[PRODUCERS + 2];
    for (int i = 0; i < PRODUCERS; i++)
        pthread_create(&th[i], NULL, producer, &r);
    for (int i = PRODUCERS; i < PRODUCERS + 2; i++)
        pthread_create(&th[i], NULL, consumer, &r);
    for (int i = 0; i < PRODUCERS + 2; i++)
        pthread_join(th[i], NULL);
    /* Both consumers stopped because the queue said "empty": it must have been. */
    ck_assert_int_eq(atomic_load(&r.popped), PRODUCERS * PER_PRODUCER);
    ck_assert(!mvx__inject_maybe_nonempty(r.q));
    pthread_barrier_destroy(&r.barrier);
    free(r.seen);
    free(r.tasks);
    free(r.q);
}
END_TEST

/* ---- the deque: owner push/pop against stealers ---- */

enum { STEALERS = 2 };
#define DEQUE_TASKS scaled(400000)

struct deque_run {
    struct mvx__deque *q;
    struct mvx__task *tasks;
    atomic_uchar *seen;
    atomic_long taken;
    atomic_bool owner_done;
    pthread_barrier_t barrier;
};

static void take(struct deque_run *r, struct mvx__task *t)
{
    long idx = t - r->tasks;
    ck_assert_int_ge(idx, 0);
    ck_assert_int_lt(idx, DEQUE_TASKS);
    ck_assert_int_eq(atomic_exchange(&r->seen[idx], 1), 0);
    atomic_fetch_add(&r->taken, 1);
}

static void *stealer(void *arg)
{
    struct deque_run *r = arg;
    struct mvx__task *buf[MVX__DEQUE_CAP / 2];
    pthread_barrier_wait(&r->barrier);
    while (!atomic_load(&r->owner_done) || mvx__deque_len(r->q) > 0) {
        unsigned k = mvx__deque_steal(r->q, buf, MVX__DEQUE_CAP / 2);
        for (unsigned i = 0; i < k; i++)
            take(r, buf[i]);
    }
    return NULL;
}

START_TEST(deque_hands_out_every_task_exactly_once)
{
    struct deque_run r = {0};
    r.q = aligned_alloc(64, sizeof *r.q);
    mvx__deque_init(r.q);
    r.tasks = tasks_new(DEQUE_TASKS);
    r.seen = calloc(DEQUE_TASKS, 1);
    pthread_barrier_init(&r.barrier, NULL, STEALERS + 1);
    pthread_t th[STEALERS];
    for (int i = 0; i < STEALERS; i++)
        pthread_create(&th[i], NULL, stealer, &r);
    pthread_barrier_wait(&r.barrier);
    unsigned seed = 12345;
    for (int i = 0; i < DEQUE_TASKS; i++) {
        struct mvx__task *first, *last;
        unsigned n = mvx__deque_push(r.q, &r.tasks[i], &first, &last);
        if (n) { /* overflow: the chain is ours to hand on; here we just take it */
            unsigned count = 0;
            for (struct mvx__task *t = first;; t = atomic_load(&t->next)) {
                take(&r, t);
                count++;
                if (t == last)
                    break;
            }
            ck_assert_uint_eq(count, n);
        }
        seed = seed * 1103515245 + 12345;
        if ((seed >> 16) % 3 == 0) {
            struct mvx__task *t = mvx__deque_pop(r.q);
            if (t)
                take(&r, t);
        }
    }
    struct mvx__task *t;
    while ((t = mvx__deque_pop(r.q)) != NULL)
        take(&r, t);
    atomic_store(&r.owner_done, true);
    for (int i = 0; i < STEALERS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&r.taken), DEQUE_TASKS);
    ck_assert_uint_eq(mvx__deque_len(r.q), 0);
    pthread_barrier_destroy(&r.barrier);
    free(r.seen);
    free(r.tasks);
    free(r.q);
}
END_TEST

START_TEST(deque_overflow_moves_half_and_the_new_task)
{
    struct mvx__deque *q = aligned_alloc(64, sizeof *q);
    mvx__deque_init(q);
    struct mvx__task *t = tasks_new(MVX__DEQUE_CAP + 1);
    struct mvx__task *first, *last;
    for (unsigned i = 0; i < MVX__DEQUE_CAP; i++)
        ck_assert_uint_eq(mvx__deque_push(q, &t[i], &first, &last), 0);
    ck_assert_uint_eq(mvx__deque_room(q), 0);
    ck_assert_uint_eq(mvx__deque_push(q, &t[MVX__DEQUE_CAP], &first, &last),
                      MVX__DEQUE_CAP / 2 + 1);
    ck_assert_ptr_eq(first, &t[0]);             /* the oldest half... */
    ck_assert_ptr_eq(last, &t[MVX__DEQUE_CAP]); /* ...then the new task */
    ck_assert_uint_eq(mvx__deque_len(q), MVX__DEQUE_CAP / 2);
    ck_assert_ptr_eq(mvx__deque_pop(q), &t[MVX__DEQUE_CAP / 2]); /* FIFO continues */
    free(t);
    free(q);
}
END_TEST

static Suite *queues_suite(void)
{
    Suite *s = suite_create("queues");
    TCase *tc = tcase_create("queues");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, inject_is_fifo_and_knows_when_it_is_empty);
    tcase_add_test(tc, inject_never_reports_empty_while_tasks_remain);
    tcase_add_test(tc, deque_hands_out_every_task_exactly_once);
    tcase_add_test(tc, deque_overflow_moves_half_and_the_new_task);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(queues_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
