/*
 * check_task.c - the task state machine, transition by transition, looking at the state word
 * (white-box: linked with the library's objects). Local sets make it deterministic: their tasks
 * run only when the test thread drives them. Also the reference design's own unit tests and its
 * four defects, each with a test that fails on the reference behaviour.
 */
#include "helpers.h"

#include "task.h"

#include <malloc.h>

static uint64_t state_of(mvx_join_handle *jh)
{
    return atomic_load(&((struct mvx__task *)jh)->state);
}
static unsigned life(mvx_join_handle *jh)
{
    return (unsigned)mvx__lifecycle(state_of(jh));
}
static uint64_t refs(mvx_join_handle *jh)
{
    return mvx__refs(state_of(jh));
}

struct fixture {
    mvx_runtime *rt;
    mvx_local_set *set;
};
static struct fixture fx;

static void setup(void)
{
    reset_counters();
    fx.rt = new_runtime(1);
    ck_assert_int_eq(mvx_local_set_new(fx.rt, NULL, &fx.set), 0);
}
static void teardown(void)
{
    ck_assert_int_eq(mvx_local_set_free(fx.set), 0);
    ck_assert_int_eq(mvx_runtime_release(fx.rt), 0);
}

/* ---- reference design: the initial state and the shared header ---- */

START_TEST(initial_state_is_scheduled)
{
    struct yielder y = {0, 1};
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_local_spawn(fx.set, &yielder_vt, &y, &jh), 0);
    ck_assert_uint_eq(life(jh), MVX__SCHEDULED);
    ck_assert_uint_eq(refs(jh), 2); /* queue + join handle */
    ck_assert(state_of(jh) & MVX__JOIN);
    ck_assert(!(state_of(jh) & (MVX__NOTIFIED | MVX__CANCEL | MVX__JOIN_WAKER)));
    mvx_join_release(jh);
    ck_assert_uint_eq(refs(jh), 1); /* the queue's: the task is still alive */
    ck_assert_int_eq(mvx_local_set_run_until_idle(fx.set), 1);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    ck_assert_int_eq(atomic_load(&g_output_drops), 1); /* detached: nobody takes the output */
}
END_TEST

START_TEST(task_and_join_handle_share_one_header)
{
    struct mailbox m;
    mailbox_init(&m);
    struct yielder y = {0, 3};
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_local_spawn(fx.set, &mailbox_vt, &m, &jh), 0);
    /* The handle is the task: its state word is the task's and the scheduler is the set. */
    struct mvx__task *t = (struct mvx__task *)jh;
    ck_assert_ptr_eq(t->vt, &mailbox_vt);
    ck_assert_ptr_eq(t->sched, (struct mvx__sched *)fx.set);
    mvx_local_set_run_until_idle(fx.set);
    ck_assert_ptr_eq(m.seen_state, &m); /* pointer states are handed over as is */
    mvx_join_handle *jh2;
    ck_assert_int_eq(mvx_local_spawn(fx.set, &yielder_vt, &y, &jh2), 0);
    mvx_local_set_run_until_idle(fx.set);
    int out = 0;
    ck_assert_int_eq(mvx_join_take(jh2, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(out, 3);
    mvx_join_abort(jh);
    mvx_local_set_run_until_idle(fx.set);
    mvx_join_release(jh);
    mvx_join_release(jh2);
    mailbox_fini(&m);
}
END_TEST

/* Defect 3: one allocation per spawn holds header, inline state and output. */
static void *g_seen_state, *g_seen_output;
static int where_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    g_seen_state = state;
    g_seen_output = output;
    *(uint64_t *)output = *(uint64_t *)state * 2;
    return MVX_POLL_READY;
}
static const mvx_task_vtable where_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = where_poll,
    .state_size = 24,
    .state_align = 8,
    .output_size = sizeof(uint64_t),
    .output_align = 8,
};

START_TEST(state_and_output_live_inside_the_task_allocation)
{
    uint64_t state[3] = {21, 0, 0};
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_local_spawn(fx.set, &where_vt, state, &jh), 0);
    state[0] = 999; /* the task has its own copy */
    mvx_local_set_run_until_idle(fx.set);
    char *base = (char *)jh;
    ck_assert_ptr_ne(g_seen_state, state);
    ck_assert((char *)g_seen_state > base && (char *)g_seen_state < base + 128);
    ck_assert((char *)g_seen_output >= (char *)g_seen_state + 24 &&
              (char *)g_seen_output < base + 128);
    uint64_t out = 0;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), 0);
    ck_assert_uint_eq(out, 42);
    mvx_join_release(jh);
}
END_TEST

START_TEST(spawning_does_not_call_malloc)
{
    struct yielder y = {0, 1};
    mvx_join_handle *jh[1000];
    /* Warm up: the first spawns lease a heap and carve pages. */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(mvx_local_spawn(fx.set, &yielder_vt, &y, &jh[i]), 0);
    mvx_local_set_run_until_idle(fx.set);
    for (int i = 0; i < 1000; i++)
        mvx_join_release(jh[i]);
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(mvx_local_spawn(fx.set, &yielder_vt, &y, &jh[i]), 0);
    struct mallinfo2 after = mallinfo2();
    ck_assert_uint_eq(after.uordblks, before.uordblks);
    mvx_local_set_run_until_idle(fx.set);
    for (int i = 0; i < 1000; i++)
        mvx_join_release(jh[i]);
}
END_TEST

/* ---- SCHEDULED -> RUNNING -> IDLE -> SCHEDULED ---- */

START_TEST(pending_poll_goes_idle_and_wake_schedules)
{
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_local_spawn(fx.set, &mailbox_vt, &m, &jh), 0);
    ck_assert_int_eq(mvx_local_set_run_until_idle(fx.set), 1);
    ck_assert_uint_eq(life(jh), MVX__IDLE);
    ck_assert_uint_eq(refs(jh), 2); /* join handle + the waker in the mailbox */
    mailbox_wake_only(&m);
    ck_assert_uint_eq(life(jh), MVX__SCHEDULED);
    ck_assert_uint_eq(refs(jh), 3); /* + the queue */
    mailbox_wake_only(&m);          /* a second wake while scheduled changes nothing */
    ck_assert_uint_eq(refs(jh), 3);
    ck_assert_int_eq(mvx_local_set_run_until_idle(fx.set), 1);
    ck_assert_uint_eq(life(jh), MVX__IDLE);
    mailbox_deliver(&m);
    ck_assert_int_eq(mvx_local_set_run_until_idle(fx.set), 1);
    ck_assert_uint_eq(life(jh), MVX__COMPLETE);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    ck_assert_uint_eq(refs(jh), 1); /* only the join handle: the waker was consumed */
    mvx_join_release(jh);
    mailbox_fini(&m);
}
END_TEST

START_TEST(waker_clone_and_drop_move_the_refcount)
{
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_local_spawn(fx.set, &mailbox_vt, &m, &jh);
    mvx_local_set_run_until_idle(fx.set);
    mvx_waker copies[10];
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(mvx_waker_clone(&m.waker, &copies[i]), 0);
    ck_assert_uint_eq(refs(jh), 12);
    ck_assert(mvx_waker_will_wake(&copies[3], &m.waker));
    for (int i = 0; i < 10; i++)
        mvx_waker_drop(&copies[i]);
    ck_assert_ptr_null(copies[0].vtable);
    ck_assert_uint_eq(refs(jh), 2);
    mvx_join_abort(jh);
    mvx_local_set_run_until_idle(fx.set);
    mvx_join_release(jh);
    mailbox_fini(&m);
}
END_TEST

/* ---- defect 1: a wake during RUNNING is not lost ---- */

static uint64_t g_state_in_poll;
static int self_wake_poll(void *state, mvx_context *cx, void *output)
{
    int *polls = state;
    (void)output;
    if ((*polls)++ == 0) {
        mvx_waker_wake_by_ref(mvx_context_waker(cx));
        g_state_in_poll = atomic_load(&((struct mvx__task *)mvx_context_waker(cx)->data)->state);
        return MVX_POLL_PENDING;
    }
    return MVX_POLL_READY;
}
static const mvx_task_vtable self_wake_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = self_wake_poll,
    .drop = count_drop,
    .state_size = sizeof(int),
    .state_align = _Alignof(int),
};

START_TEST(wake_while_running_sets_notified_and_repolls)
{
    int polls = 0;
    mvx_join_handle *jh;
    mvx_local_spawn(fx.set, &self_wake_vt, &polls, &jh);
    ck_assert_int_eq(mvx_local_set_run_until_idle(fx.set), 2);
    ck_assert_uint_eq(mvx__lifecycle(g_state_in_poll), MVX__RUNNING);
    ck_assert(g_state_in_poll & MVX__NOTIFIED);
    ck_assert_int_eq(mvx_join_try(jh), 0);
    mvx_join_release(jh);
}
END_TEST

/* The same from another thread, on a worker: the reference design loses this wake and the task
 * hangs forever; here the wait must succeed. */
struct cross_wake {
    atomic_int polls;
    atomic_int stored;
    atomic_int woken;
    mvx_waker waker;
};
static int cross_wake_poll(void *state, mvx_context *cx, void *output)
{
    struct cross_wake *c = state;
    (void)output;
    if (atomic_fetch_add(&c->polls, 1) > 0)
        return MVX_POLL_READY;
    mvx_waker_clone(mvx_context_waker(cx), &c->waker);
    atomic_store(&c->stored, 1);
    while (!atomic_load(&c->woken)) /* stay RUNNING until the other thread has woken us */
        sched_yield();
    return MVX_POLL_PENDING;
}
static const mvx_task_vtable cross_wake_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = cross_wake_poll,
};

START_TEST(wake_from_another_thread_while_running_is_not_lost)
{
    for (int round = 0; round < 50; round++) {
        struct cross_wake c = {0};
        mvx_join_handle *jh;
        ck_assert_int_eq(mvx_spawn(fx.rt, &cross_wake_vt, &c, &jh), 0);
        while (!atomic_load(&c.stored))
            sched_yield();
        mvx_waker_wake(&c.waker);
        atomic_store(&c.woken, 1);
        ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
        ck_assert_int_eq(atomic_load(&c.polls), 2);
        mvx_join_release(jh);
    }
}
END_TEST

/* ---- defect 2: abort is a request, honoured in every state ---- */

START_TEST(abort_of_idle_task_schedules_it_for_cancellation)
{
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_local_spawn(fx.set, &mailbox_vt, &m, &jh);
    mvx_local_set_run_until_idle(fx.set);
    ck_assert_uint_eq(life(jh), MVX__IDLE);
    ck_assert_int_eq(mvx_join_abort(jh), 0);
    ck_assert_uint_eq(life(jh), MVX__SCHEDULED);
    ck_assert(state_of(jh) & MVX__CANCEL);
    ck_assert_int_eq(atomic_load(&g_drops), 0); /* dropped by the scheduler, not by abort */
    ck_assert_int_eq(mvx_local_set_run_until_idle(fx.set), 1);
    ck_assert_uint_eq(life(jh), MVX__CANCELLED);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    ck_assert_int_eq(atomic_load(&m.polls), 1); /* cancelled without another poll */
    ck_assert_int_eq(mvx_join_try(jh), MVX_ECANCELLED);
    mvx_join_release(jh);
    mailbox_fini(&m);
}
END_TEST

START_TEST(abort_of_scheduled_task_cancels_before_its_first_poll)
{
    struct yielder y = {5, 1};
    mvx_join_handle *jh;
    mvx_local_spawn(fx.set, &yielder_vt, &y, &jh);
    ck_assert_int_eq(mvx_join_abort(jh), 0);
    ck_assert_uint_eq(life(jh), MVX__SCHEDULED);
    mvx_local_set_run_until_idle(fx.set);
    ck_assert_uint_eq(life(jh), MVX__CANCELLED);
    ck_assert_int_eq(atomic_load(&g_polls), 0);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    ck_assert_int_eq(mvx_join_wait(jh, 0), MVX_ECANCELLED);
    mvx_join_release(jh);
}
END_TEST

START_TEST(abort_of_running_task_cancels_it_after_pending)
{
    struct gate g = {0};
    atomic_store(&g.result, MVX_POLL_PENDING);
    atomic_store(&g.wake_self_first, 1); /* even a pending wake does not save it */
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(fx.rt, &gate_vt, &g, &jh), 0);
    gate_wait_entered(&g, 1);
    ck_assert_uint_eq(life(jh), MVX__RUNNING);
    ck_assert_int_eq(mvx_join_abort(jh), 0);
    ck_assert_uint_eq(life(jh), MVX__RUNNING); /* the reference design loses this abort */
    ck_assert(state_of(jh) & MVX__CANCEL);
    atomic_store(&g.open, 1);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), MVX_ECANCELLED);
    ck_assert_int_eq(atomic_load(&g.entered), 1);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    mvx_join_release(jh);
}
END_TEST

START_TEST(running_task_that_completes_first_keeps_its_output)
{
    struct gate g = {0};
    atomic_store(&g.result, MVX_POLL_READY);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(fx.rt, &gate_vt, &g, &jh), 0);
    gate_wait_entered(&g, 1);
    mvx_join_abort(jh);
    atomic_store(&g.open, 1);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    int out = 0;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(out, 5);
    mvx_join_release(jh);
    ck_assert_int_eq(atomic_load(&g_output_drops), 0);
}
END_TEST

START_TEST(abort_of_completed_task_has_no_effect)
{
    struct yielder y = {1, 9};
    mvx_join_handle *jh;
    mvx_local_spawn(fx.set, &yielder_vt, &y, &jh);
    mvx_local_set_run_until_idle(fx.set);
    ck_assert_uint_eq(life(jh), MVX__COMPLETE);
    uint64_t before = state_of(jh);
    ck_assert_int_eq(mvx_join_abort(jh), 0);
    ck_assert_uint_eq(state_of(jh), before);
    int out = 0;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(out, 9);
    mvx_join_release(jh);
}
END_TEST

START_TEST(repeated_aborts_are_harmless)
{
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_local_spawn(fx.set, &mailbox_vt, &m, &jh);
    mvx_local_set_run_until_idle(fx.set);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(mvx_join_abort(jh), 0);
    ck_assert_uint_eq(refs(jh), 3); /* join, waker, one queue entry: not 100 */
    mvx_local_set_run_until_idle(fx.set);
    for (int i = 0; i < 100; i++)
        mvx_join_abort(jh);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    ck_assert_uint_eq(life(jh), MVX__CANCELLED);
    mvx_join_release(jh);
    mailbox_fini(&m);
}
END_TEST

START_TEST(cancel_drops_the_state_exactly_once)
{
    mvx_join_handle *jh[64];
    struct mailbox m[64];
    for (int i = 0; i < 64; i++) {
        mailbox_init(&m[i]);
        mvx_local_spawn(fx.set, &mailbox_vt, &m[i], &jh[i]);
    }
    mvx_local_set_run_until_idle(fx.set);
    for (int i = 0; i < 64; i++) {
        mvx_join_abort(jh[i]);
        mailbox_wake_only(&m[i]); /* wake after abort: still cancelled, not polled */
    }
    mvx_local_set_run_until_idle(fx.set);
    ck_assert_int_eq(atomic_load(&g_drops), 64);
    ck_assert_int_eq(atomic_load(&g_polls), 64);
    for (int i = 0; i < 64; i++) {
        mailbox_fini(&m[i]);
        mvx_join_release(jh[i]);
    }
    ck_assert_int_eq(atomic_load(&g_drops), 64);
}
END_TEST

START_TEST(join_error_texts_match_the_reference)
{
    ck_assert_str_eq(mvx_strerror(MVX_ECANCELLED), "task was cancelled");
    ck_assert_str_eq(mvx_strerror(MVX_EFAILED), "task panicked");
}
END_TEST

/* ---- unreachable tasks are cancelled ---- */

START_TEST(detached_task_without_waker_is_cancelled_after_pending)
{
    ck_assert_int_eq(mvx_local_spawn(fx.set, &forever_vt, NULL, NULL), 0);
    ck_assert_int_eq(mvx_local_set_run_until_idle(fx.set), 1);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
}
END_TEST

START_TEST(dropping_the_last_waker_of_an_idle_task_cancels_it)
{
    struct mailbox m;
    mailbox_init(&m);
    ck_assert_int_eq(mvx_local_spawn(fx.set, &mailbox_vt, &m, NULL), 0);
    mvx_local_set_run_until_idle(fx.set);
    ck_assert_int_eq(atomic_load(&g_drops), 0); /* its waker is in the mailbox */
    mailbox_fini(&m);                           /* the last reference */
    ck_assert_int_eq(atomic_load(&g_drops), 0); /* scheduled, dropped by the set's owner */
    ck_assert_int_eq(mvx_local_set_run_until_idle(fx.set), 1);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    ck_assert_int_eq(atomic_load(&g_polls), 1);
}
END_TEST

START_TEST(releasing_the_last_handle_of_an_idle_task_cancels_it)
{
    mvx_join_handle *jh;
    mvx_local_spawn(fx.set, &forever_vt, NULL, &jh);
    mvx_local_set_run_until_idle(fx.set);
    ck_assert_uint_eq(life(jh), MVX__IDLE);
    ck_assert_uint_eq(refs(jh), 1);
    mvx_join_release(jh);
    mvx_local_set_run_until_idle(fx.set);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
}
END_TEST

/* ---- defect 4: the join waker is a lock-free handshake ---- */

START_TEST(join_waker_registration_sets_the_bit_and_latest_wins)
{
    struct mailbox m;
    mailbox_init(&m);
    struct flag_waker *a = flag_waker_new(), *b = flag_waker_new();
    mvx_waker wa = {&flag_waker_vt, a}, wb = {&flag_waker_vt, b};
    mvx_join_handle *jh;
    mvx_local_spawn(fx.set, &mailbox_vt, &m, &jh);
    ck_assert_int_eq(mvx_join_poll(jh, &wa), MVX_EAGAIN);
    ck_assert(state_of(jh) & MVX__JOIN_WAKER);
    ck_assert_int_eq(atomic_load(&a->refs), 2);
    ck_assert_int_eq(mvx_join_poll(jh, &wa), MVX_EAGAIN); /* same waker: kept, not re-cloned */
    ck_assert_int_eq(atomic_load(&a->refs), 2);
    ck_assert_int_eq(mvx_join_poll(jh, &wb), MVX_EAGAIN);
    ck_assert_int_eq(atomic_load(&a->refs), 1); /* replaced and dropped */
    ck_assert_int_eq(atomic_load(&b->refs), 2);
    mailbox_deliver(&m);
    mvx_local_set_run_until_idle(fx.set);
    ck_assert_int_eq(atomic_load(&a->wakes), 0);
    ck_assert_int_eq(atomic_load(&b->wakes), 1);
    ck_assert_int_eq(mvx_join_poll(jh, &wa), 0); /* finished: no registration */
    ck_assert_int_eq(atomic_load(&a->refs), 1);
    mvx_join_release(jh);
    ck_assert_int_eq(atomic_load(&b->refs), 1); /* dropped with the task */
    flag_waker_put(a);
    flag_waker_put(b);
    mailbox_fini(&m);
}
END_TEST

struct race {
    pthread_barrier_t barrier;
    mvx_join_handle *jh;
    struct mailbox *m;
};
static void *deliver_after_barrier(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(&r->barrier);
    mailbox_deliver(r->m);
    return NULL;
}

START_TEST(join_waker_registration_racing_completion_never_loses_the_wake)
{
    for (int round = 0; round < 2000; round++) {
        struct mailbox m;
        mailbox_init(&m);
        struct flag_waker *fw = flag_waker_new();
        mvx_waker w = {&flag_waker_vt, fw};
        struct race r = {.m = &m};
        pthread_barrier_init(&r.barrier, NULL, 2);
        ck_assert_int_eq(mvx_spawn(fx.rt, &mailbox_vt, &m, &r.jh), 0);
        while (atomic_load(&m.polls) == 0)
            sched_yield();
        pthread_t th;
        pthread_create(&th, NULL, deliver_after_barrier, &r);
        pthread_barrier_wait(&r.barrier);
        int res = mvx_join_poll(r.jh, &w);
        if (res == MVX_EAGAIN) /* registered before completion: the wake must come */
            wait_until_int(&fw->wakes, 1, 5 * SEC);
        else
            ck_assert_int_eq(res, 0);
        ck_assert_int_eq(mvx_join_wait(r.jh, 5 * SEC), 0);
        pthread_join(th, NULL);
        mvx_join_release(r.jh);
        ck_assert_int_le(atomic_load(&fw->wakes), 1);
        /* If the delivery came before the first poll stored its waker, the mailbox still holds
         * one: a reference that keeps the finished task, and so its join waker, alive. */
        mailbox_fini(&m);
        wait_until_int(&fw->refs, 1, 5 * SEC);
        flag_waker_put(fw);
        pthread_barrier_destroy(&r.barrier);
    }
}
END_TEST

/* ---- yields go to the back of the queue ---- */

static atomic_int g_log[16];
static atomic_int g_log_len;
struct logger {
    int id;
    int yields;
};
static int logger_poll(void *state, mvx_context *cx, void *output)
{
    struct logger *l = state;
    (void)output;
    int i = atomic_fetch_add(&g_log_len, 1);
    if (i < 16)
        atomic_store(&g_log[i], l->id);
    if (l->yields-- > 0) {
        mvx_waker_wake_by_ref(mvx_context_waker(cx));
        return MVX_POLL_PENDING;
    }
    return MVX_POLL_READY;
}
static const mvx_task_vtable logger_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = logger_poll,
    .state_size = sizeof(struct logger),
    .state_align = _Alignof(struct logger),
};

START_TEST(yield_goes_to_the_back_of_the_queue)
{
    atomic_store(&g_log_len, 0);
    struct logger a = {1, 2}, b = {2, 0};
    mvx_join_handle *ja, *jb;
    mvx_local_spawn(fx.set, &logger_vt, &a, &ja);
    mvx_local_spawn(fx.set, &logger_vt, &b, &jb);
    mvx_local_set_run_until_idle(fx.set);
    ck_assert_int_eq(atomic_load(&g_log_len), 4);
    ck_assert_int_eq(g_log[0], 1);
    ck_assert_int_eq(g_log[1], 2); /* b ran before a's second poll */
    ck_assert_int_eq(g_log[2], 1);
    ck_assert_int_eq(g_log[3], 1);
    mvx_join_release(ja);
    mvx_join_release(jb);
}
END_TEST

/* On a worker: a task spawned by a task goes to the LIFO slot and runs next; the task it
 * displaced from the slot goes to the back of the queue. */
struct parent_log {
    mvx_join_handle *a, *b;
};
static int parent_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct parent_log *p = state;
    struct logger la = {1, 2}, lb = {2, 0};
    mvx_spawn(mvx_runtime_current(), &logger_vt, &la, &p->a);
    mvx_spawn(mvx_runtime_current(), &logger_vt, &lb, &p->b);
    return MVX_POLL_READY;
}
static const mvx_task_vtable parent_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = parent_poll,
};

START_TEST(task_spawned_by_a_task_runs_next_from_the_lifo_slot)
{
    atomic_store(&g_log_len, 0);
    struct parent_log p = {0};
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(fx.rt, &parent_vt, &p, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    ck_assert_int_eq(mvx_join_wait(p.a, 5 * SEC), 0);
    ck_assert_int_eq(mvx_join_wait(p.b, 5 * SEC), 0);
    ck_assert_int_eq(atomic_load(&g_log_len), 4);
    /* b was spawned last: LIFO slot, runs first; a yields twice, b never runs twice. */
    ck_assert_int_eq(g_log[0], 2);
    ck_assert_int_eq(g_log[1], 1);
    mvx_join_release(jh);
    mvx_join_release(p.a);
    mvx_join_release(p.b);
}
END_TEST

/* ---- a poll that drops its own state (a binding unwinding a panic through it) ---- */
struct self_dropper {
    int result; /* what poll returns after dropping its state */
    int forget; /* mvx_context_forget_state's result */
};
static int self_dropper_poll(void *state, mvx_context *cx, void *output)
{
    struct self_dropper *sd = *(struct self_dropper **)state;
    (void)output;
    count_drop(state); /* the state is dropped here, inside the poll */
    sd->forget = mvx_context_forget_state(cx);
    return sd->result;
}
static const mvx_task_vtable self_dropper_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = self_dropper_poll,
    .drop = count_drop,
    .state_size = sizeof(void *),
    .state_align = _Alignof(void *),
};

/* After mvx_context_forget_state the runtime never calls drop: the state is dropped once. On a
 * pending return the task fails (it could never be polled again). */
START_TEST(a_poll_that_forgets_its_state_is_not_dropped_again)
{
    int results[] = {MVX_POLL_FAILED, MVX_POLL_READY, MVX_POLL_PENDING};
    int outcomes[] = {MVX_EFAILED, 0, MVX_EFAILED};
    for (int i = 0; i < 3; i++) {
        reset_counters();
        struct self_dropper sd = {results[i], -100}, *p = &sd;
        mvx_join_handle *jh;
        ck_assert_int_eq(mvx_spawn(fx.rt, &self_dropper_vt, &p, &jh), 0);
        ck_assert_int_eq(mvx_join_wait(jh, 10 * SEC), outcomes[i]);
        ck_assert_int_eq(sd.forget, 0);
        if (results[i] == MVX_POLL_PENDING) {
            mvx_failure f = {.size = sizeof f};
            ck_assert_int_eq(mvx_join_take(jh, NULL, 0, &f), MVX_EFAILED);
            ck_assert_int_eq(f.code, MVX_EINVAL);
            ck_assert_ptr_nonnull(strstr(f.message, "mvx_context_forget_state"));
            mvx_failure_clear(&f);
        }
        mvx_join_release(jh);
        int drops = atomic_load(&g_drops);
        ck_assert_int_eq(drops, 1);
    }
    ck_assert_int_eq(mvx_context_forget_state(NULL), MVX_EINVAL);
}
END_TEST

static Suite *task_suite(void)
{
    Suite *s = suite_create("task");
    TCase *tc = tcase_create("states");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, initial_state_is_scheduled);
    tcase_add_test(tc, task_and_join_handle_share_one_header);
    tcase_add_test(tc, state_and_output_live_inside_the_task_allocation);
    tcase_add_test(tc, spawning_does_not_call_malloc);
    tcase_add_test(tc, pending_poll_goes_idle_and_wake_schedules);
    tcase_add_test(tc, waker_clone_and_drop_move_the_refcount);
    tcase_add_test(tc, wake_while_running_sets_notified_and_repolls);
    tcase_add_test(tc, wake_from_another_thread_while_running_is_not_lost);
    tcase_add_test(tc, abort_of_idle_task_schedules_it_for_cancellation);
    tcase_add_test(tc, abort_of_scheduled_task_cancels_before_its_first_poll);
    tcase_add_test(tc, abort_of_running_task_cancels_it_after_pending);
    tcase_add_test(tc, running_task_that_completes_first_keeps_its_output);
    tcase_add_test(tc, abort_of_completed_task_has_no_effect);
    tcase_add_test(tc, repeated_aborts_are_harmless);
    tcase_add_test(tc, cancel_drops_the_state_exactly_once);
    tcase_add_test(tc, join_error_texts_match_the_reference);
    tcase_add_test(tc, detached_task_without_waker_is_cancelled_after_pending);
    tcase_add_test(tc, dropping_the_last_waker_of_an_idle_task_cancels_it);
    tcase_add_test(tc, releasing_the_last_handle_of_an_idle_task_cancels_it);
    tcase_add_test(tc, join_waker_registration_sets_the_bit_and_latest_wins);
    tcase_add_test(tc, join_waker_registration_racing_completion_never_loses_the_wake);
    tcase_add_test(tc, yield_goes_to_the_back_of_the_queue);
    tcase_add_test(tc, task_spawned_by_a_task_runs_next_from_the_lifo_slot);
    tcase_add_test(tc, a_poll_that_forgets_its_state_is_not_dropped_again);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(task_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
