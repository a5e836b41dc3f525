/*
 * check_local.c - local task sets: tasks pinned to their owner thread, woken from anywhere,
 * awaiting runtime tasks, notify wakers, owner-only operations, teardown.
 */
#include "helpers.h"

static mvx_runtime *rt;
static mvx_local_set *set;

static void setup(void)
{
    reset_counters();
    rt = new_runtime(2);
    ck_assert_int_eq(mvx_local_set_new(rt, NULL, &set), 0);
}
static void teardown(void)
{
    if (set)
        ck_assert_int_eq(mvx_local_set_free(set), 0);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}

/* Records the thread each poll and drop ran on. */
static pthread_t g_poll_thread, g_drop_thread;
static atomic_int g_foreign_thread_calls;
static int where_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    if (!pthread_equal(pthread_self(), g_poll_thread))
        atomic_fetch_add(&g_foreign_thread_calls, 1);
    atomic_fetch_add(&g_polls, 1);
    return MVX_POLL_PENDING; /* never completes; keeps no waker but has a handle */
}
static void where_drop(void *state)
{
    (void)state;
    if (!pthread_equal(pthread_self(), g_drop_thread))
        atomic_fetch_add(&g_foreign_thread_calls, 1);
    atomic_fetch_add(&g_drops, 1);
}
static const mvx_task_vtable where_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = where_poll,
    .drop = where_drop,
};

START_TEST(tasks_run_only_while_the_owner_drives_the_set)
{
    struct yielder y = {3, 5};
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_local_spawn(set, &yielder_vt, &y, &jh), 0);
    usleep(20000);
    ck_assert_int_eq(atomic_load(&g_polls), 0); /* no worker touched it */
    ck_assert_int_eq(mvx_local_set_run_until_idle(set), 4);
    ck_assert_int_eq(mvx_join_try(jh), 0);
    ck_assert_int_eq(mvx_local_set_run_until_idle(set), 0);
    mvx_join_release(jh);
}
END_TEST

START_TEST(polls_and_drops_happen_on_the_owner_thread)
{
    atomic_store(&g_foreign_thread_calls, 0);
    g_poll_thread = g_drop_thread = pthread_self();
    mvx_join_handle *jh[100];
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(mvx_local_spawn(set, &where_vt, NULL, &jh[i]), 0);
    mvx_local_set_run_until_idle(set);
    for (int i = 0; i < 50; i++)
        mvx_join_abort(jh[i]); /* from here; the rest are cancelled by free */
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 5 * SEC), 0); /* does not drop local tasks */
    ck_assert_int_eq(atomic_load(&g_drops), 0);
    ck_assert_int_eq(mvx_local_set_free(set), 0);
    set = NULL;
    ck_assert_int_eq(atomic_load(&g_drops), 100);
    ck_assert_int_eq(atomic_load(&g_foreign_thread_calls), 0);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(mvx_join_try(jh[i]), MVX_ECANCELLED);
        mvx_join_release(jh[i]);
    }
}
END_TEST

struct waker_thread {
    struct mailbox *m;
    int64_t delay;
};
static void *deliver_from_thread(void *arg)
{
    struct waker_thread *w = arg;
    struct timespec ts = {0, w->delay};
    nanosleep(&ts, NULL);
    mailbox_deliver(w->m);
    return NULL;
}

START_TEST(run_until_sleeps_until_another_thread_wakes_a_task)
{
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_local_spawn(set, &mailbox_vt, &m, &jh);
    struct waker_thread w = {&m, 30 * MS};
    pthread_t th;
    pthread_create(&th, NULL, deliver_from_thread, &w);
    ck_assert_int_eq(mvx_local_set_run_until(set, jh, 10 * SEC), 0);
    ck_assert_int_eq(atomic_load(&m.polls), 2);
    pthread_join(th, NULL);
    mvx_join_release(jh);
    mailbox_fini(&m);
}
END_TEST

START_TEST(run_until_times_out)
{
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_local_spawn(set, &mailbox_vt, &m, &jh);
    ck_assert_int_eq(mvx_local_set_run_until(set, jh, 20 * MS), MVX_ETIMEDOUT);
    ck_assert_int_eq(atomic_load(&m.polls), 1);
    mvx_join_abort(jh);
    ck_assert_int_eq(mvx_local_set_run_until(set, jh, 5 * SEC), MVX_ECANCELLED);
    mvx_join_release(jh);
    mailbox_fini(&m);
}
END_TEST

/* A local task (a Lua coroutine, say) awaits a task running on the workers. */
struct local_awaiter {
    mvx_runtime *rt;
    mvx_join_handle *remote;
    int polls;
};
static int local_awaiter_poll(void *state, mvx_context *cx, void *output)
{
    struct local_awaiter *a = state;
    a->polls++;
    if (!a->remote) {
        struct yielder y = {50, 8};
        if (mvx_spawn(a->rt, &yielder_vt, &y, &a->remote) != 0)
            return MVX_POLL_FAILED;
    }
    int r = mvx_join_poll(a->remote, mvx_context_waker(cx));
    if (r == MVX_EAGAIN)
        return MVX_POLL_PENDING;
    mvx_join_take(a->remote, output, sizeof(int), NULL);
    mvx_join_release(a->remote);
    a->remote = NULL;
    return MVX_POLL_READY;
}
static const mvx_task_vtable local_awaiter_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = local_awaiter_poll,
    .state_size = sizeof(struct local_awaiter),
    .state_align = _Alignof(struct local_awaiter),
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

START_TEST(local_task_awaits_a_runtime_task)
{
    struct local_awaiter a = {rt, NULL, 0};
    mvx_join_handle *jh;
    mvx_local_spawn(set, &local_awaiter_vt, &a, &jh);
    ck_assert_int_eq(mvx_local_set_run_until(set, jh, 10 * SEC), 0);
    int out = 0;
    mvx_join_take(jh, &out, sizeof out, NULL);
    ck_assert_int_eq(out, 8);
    mvx_join_release(jh);
}
END_TEST

START_TEST(run_until_drives_the_set_while_waiting_for_a_runtime_task)
{
    struct yielder ly = {20, 1};
    mvx_join_handle *local, *remote;
    mvx_local_spawn(set, &yielder_vt, &ly, &local);
    struct mailbox m;
    mailbox_init(&m);
    mvx_spawn(rt, &mailbox_vt, &m, &remote);
    struct waker_thread w = {&m, 20 * MS};
    pthread_t th;
    pthread_create(&th, NULL, deliver_from_thread, &w);
    ck_assert_int_eq(mvx_local_set_run_until(set, remote, 10 * SEC), 0);
    ck_assert_int_eq(mvx_join_try(local), 0); /* ran meanwhile */
    pthread_join(th, NULL);
    mvx_join_release(local);
    mvx_join_release(remote);
    mailbox_fini(&m);
}
END_TEST

START_TEST(notify_waker_fires_when_a_task_becomes_ready)
{
    struct flag_waker *fw = flag_waker_new();
    mvx_waker w = {&flag_waker_vt, fw};
    mvx_local_set *s2;
    ck_assert_int_eq(mvx_local_set_new(rt, &w, &s2), 0);
    ck_assert_int_eq(atomic_load(&fw->refs), 2);
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_local_spawn(s2, &mailbox_vt, &m, &jh);
    ck_assert_int_eq(atomic_load(&fw->wakes), 1); /* spawned while nobody drives the set */
    mvx_local_spawn(s2, &empty_vt, NULL, NULL);
    ck_assert_int_eq(atomic_load(&fw->wakes), 1); /* coalesced until the owner runs the set */
    mvx_local_set_run_until_idle(s2);
    struct waker_thread wt = {&m, 0};
    pthread_t th;
    pthread_create(&th, NULL, deliver_from_thread, &wt);
    pthread_join(th, NULL);
    ck_assert_int_eq(atomic_load(&fw->wakes), 2); /* a wake from another thread */
    mvx_local_set_run_until_idle(s2);
    ck_assert_int_eq(mvx_join_try(jh), 0);
    mvx_join_release(jh);
    ck_assert_int_eq(mvx_local_set_free(s2), 0);
    ck_assert_int_eq(atomic_load(&fw->refs), 1);
    flag_waker_put(fw);
    mailbox_fini(&m);
}
END_TEST

struct foreign_call {
    mvx_local_set *set;
    mvx_join_handle *jh;
    int run, run_until, free_result, spawn, wait;
};
static void *call_from_other_thread(void *arg)
{
    struct foreign_call *f = arg;
    f->run = mvx_local_set_run_until_idle(f->set);
    f->run_until = mvx_local_set_run_until(f->set, f->jh, 0);
    f->free_result = mvx_local_set_free(f->set);
    struct yielder y = {0, 1};
    f->spawn = mvx_local_spawn(f->set, &yielder_vt, &y, NULL); /* allowed from any thread */
    f->wait = mvx_join_wait(f->jh, 20 * MS);                   /* allowed: the owner may run it */
    return NULL;
}

START_TEST(only_the_owner_drives_or_frees_the_set)
{
    struct mailbox m;
    mailbox_init(&m);
    struct foreign_call f = {set, NULL, 0, 0, 0, 0, 0};
    mvx_local_spawn(set, &mailbox_vt, &m, &f.jh);
    pthread_t th;
    pthread_create(&th, NULL, call_from_other_thread, &f);
    pthread_join(th, NULL);
    ck_assert_int_eq(f.run, MVX_EPERM);
    ck_assert_int_eq(f.run_until, MVX_EPERM);
    ck_assert_int_eq(f.free_result, MVX_EPERM);
    ck_assert_int_eq(f.spawn, 0);
    ck_assert_int_eq(f.wait, MVX_ETIMEDOUT);
    ck_assert_int_eq(mvx_join_wait(f.jh, 0), MVX_ETIMEDOUT);
    ck_assert_int_eq(mvx_join_wait(f.jh, 10 * MS), MVX_EDEADLK); /* the owner would run it */
    ck_assert_int_eq(mvx_local_set_run_until_idle(set), 2);
    mvx_join_release(f.jh);
    mailbox_fini(&m);
}
END_TEST

/* A set's task that drives another set, whose task frees the first: the first set's task is
 * still running below on this thread's stack, so the free could never finish. MVX_EPERM, as
 * for a free from the set's own task. */
struct free_outer {
    mvx_local_set *outer, *inner;
    int free_result;
};
static int free_outer_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct free_outer *f = state;
    f->free_result = mvx_local_set_free(f->outer);
    return MVX_POLL_READY;
}
static const mvx_task_vtable free_outer_vt = {.size = sizeof(mvx_task_vtable),
                                              .poll = free_outer_poll};
static int drive_inner_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct free_outer *f = state;
    ck_assert_int_eq(mvx_local_spawn(f->inner, &free_outer_vt, f, NULL), 0);
    ck_assert_int_eq(mvx_local_set_run_until_idle(f->inner), 1);
    return MVX_POLL_READY;
}
static const mvx_task_vtable drive_inner_vt = {.size = sizeof(mvx_task_vtable),
                                               .poll = drive_inner_poll};

START_TEST(free_from_a_set_that_a_task_of_the_set_drives_is_eperm)
{
    struct free_outer f = {set, NULL, -1};
    ck_assert_int_eq(mvx_local_set_new(rt, NULL, &f.inner), 0);
    ck_assert_int_eq(mvx_local_spawn(set, &drive_inner_vt, &f, NULL), 0);
    ck_assert_int_eq(mvx_local_set_run_until_idle(set), 1);
    ck_assert_int_eq(f.free_result, MVX_EPERM);
    ck_assert_int_eq(mvx_local_set_free(f.inner), 0);
}
END_TEST

/* Waiting, while driving one set, for a task of another set of the same owner would wait
 * forever (the owner is busy here): MVX_EDEADLK, as mvx_join_wait answers. */
START_TEST(run_until_a_task_of_another_set_of_this_thread_is_edeadlk)
{
    mvx_local_set *other;
    ck_assert_int_eq(mvx_local_set_new(rt, NULL, &other), 0);
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_local_spawn(other, &mailbox_vt, &m, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 10 * MS), MVX_EDEADLK);
    ck_assert_int_eq(mvx_local_set_run_until(set, jh, 50 * MS), MVX_EDEADLK);
    ck_assert_int_eq(mvx_local_set_run_until(set, jh, MVX_TIMEOUT_INFINITE), MVX_EDEADLK);
    ck_assert_int_eq(mvx_local_set_run_until(set, jh, 0), MVX_ETIMEDOUT);
    ck_assert_int_eq(atomic_load(&m.polls), 0);
    mailbox_deliver(&m);
    ck_assert_int_eq(mvx_local_set_run_until(other, jh, 10 * SEC), 0);
    mvx_join_release(jh);
    ck_assert_int_eq(mvx_local_set_free(other), 0);
    mailbox_fini(&m);
}
END_TEST

START_TEST(free_cancels_queued_and_idle_tasks_and_wakes_waiters)
{
    mvx_join_handle *queued, *idle;
    struct mailbox m;
    mailbox_init(&m);
    mvx_local_spawn(set, &mailbox_vt, &m, &idle);
    mvx_local_set_run_until_idle(set);
    struct yielder y = {0, 1};
    mvx_local_spawn(set, &yielder_vt, &y, &queued);
    struct flag_waker *fw = flag_waker_new();
    mvx_waker w = {&flag_waker_vt, fw};
    mvx_join_poll(idle, &w);
    ck_assert_int_eq(mvx_local_set_free(set), 0);
    set = NULL;
    ck_assert_int_eq(atomic_load(&g_drops), 2);
    ck_assert_int_eq(atomic_load(&fw->wakes), 1);
    ck_assert_int_eq(mvx_join_try(idle), MVX_ECANCELLED);
    ck_assert_int_eq(mvx_join_try(queued), MVX_ECANCELLED);
    mailbox_deliver(&m); /* a late wake of a task of a freed set does nothing */
    mvx_join_release(idle);
    mvx_join_release(queued);
    mailbox_fini(&m);
    flag_waker_put(fw);
}
END_TEST

START_TEST(spawn_after_shutdown_is_eshutdown)
{
    mvx_runtime_shutdown(rt, 5 * SEC);
    struct yielder y = {0, 1};
    ck_assert_int_eq(mvx_local_spawn(set, &yielder_vt, &y, NULL), MVX_ESHUTDOWN);
    mvx_local_set *s2;
    ck_assert_int_eq(mvx_local_set_new(rt, NULL, &s2), MVX_ESHUTDOWN);
}
END_TEST

/* Several threads wake local tasks while the owner drives: nothing lost, all on the owner. */
struct hammer {
    struct mailbox *boxes;
    int n;
    pthread_barrier_t *barrier;
};
static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;
    pthread_barrier_wait(h->barrier);
    for (int round = 0; round < 200; round++)
        for (int i = 0; i < h->n; i++)
            mailbox_wake_only(&h->boxes[i]);
    for (int i = 0; i < h->n; i++)
        mailbox_deliver(&h->boxes[i]);
    return NULL;
}

START_TEST(remote_wakes_while_the_owner_drives_lose_nothing)
{
    enum { N = 32 };
    struct mailbox boxes[N];
    mvx_join_handle *jh[N];
    for (int i = 0; i < N; i++) {
        mailbox_init(&boxes[i]);
        mvx_local_spawn(set, &mailbox_vt, &boxes[i], &jh[i]);
    }
    mvx_local_set_run_until_idle(set);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 3);
    struct hammer h = {boxes, N, &barrier};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, hammer_thread, &h);
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(mvx_local_set_run_until(set, jh[i], 10 * SEC), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        mvx_join_release(jh[i]);
        mailbox_fini(&boxes[i]);
    }
    pthread_barrier_destroy(&barrier);
    ck_assert_int_eq(atomic_load(&g_drops), N);
}
END_TEST

/* The owner frees the set while two threads keep waking its idle tasks, or drop their wakers,
 * the last reference of each. A wake that won its CAS may still be pushing when free looks; a
 * dropped last reference queues the task for cancel from that thread, while free may be
 * scheduling it too. Either way free must cancel every task exactly once and return (a lost
 * push hangs it; a task queued twice is cancelled twice or takes another with it). */
struct free_hammer {
    struct mailbox *boxes;
    int n;
    bool drop; /* drop the wakers (each thread its half) instead of waking */
    int half;
    atomic_int *arrived; /* a spinning barrier: a futex one releases its threads tens of us apart */
    atomic_int *freed;
    int delay; /* spins before the first wake: free meets them at another point each round */
};
static void *free_hammer_thread(void *arg)
{
    struct free_hammer *h = arg;
    atomic_fetch_add(h->arrived, 1);
    while (atomic_load(h->arrived) < 3)
        sched_yield(); /* lets valgrind's one-at-a-time scheduler run the others */
    for (volatile int spin = 0; spin < h->delay; spin++) {
    }
    if (h->drop) {
        for (int i = h->half; i < h->n; i += 2) {
            pthread_mutex_lock(&h->boxes[i].lock);
            mvx_waker_drop(&h->boxes[i].waker);
            pthread_mutex_unlock(&h->boxes[i].lock);
        }
        return NULL;
    }
    for (int round = 0; round < 50 || !atomic_load(h->freed); round++)
        for (int i = 0; i < h->n; i++)
            mailbox_wake_only(&h->boxes[i]);
    return NULL;
}

static void free_while_two_threads_hammer(bool drop)
{
    enum { N = 16 };
    int rounds = scaled(500);
    for (int round = 0; round < rounds; round++) {
        reset_counters();
        if (!set)
            ck_assert_int_eq(mvx_local_set_new(rt, NULL, &set), 0);
        struct mailbox boxes[N];
        mvx_join_handle *jh[N];
        for (int i = 0; i < N; i++) {
            mailbox_init(&boxes[i]);
            ck_assert_int_eq(mvx_local_spawn(set, &mailbox_vt, &boxes[i], &jh[i]), 0);
        }
        ck_assert_int_eq(mvx_local_set_run_until_idle(set), N); /* each parked, waker stored */
        if (drop)
            for (int i = 0; i < N; i++) {
                mvx_join_release(jh[i]); /* the stored waker holds the last reference */
                jh[i] = NULL;
            }
        atomic_int arrived = 0, freed = 0;
        struct free_hammer h[2];
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            h[i] = (struct free_hammer){boxes, N, drop, i, &arrived, &freed, (round % 20) * 50};
            pthread_create(&th[i], NULL, free_hammer_thread, &h[i]);
        }
        atomic_fetch_add(&arrived, 1);
        while (atomic_load(&arrived) < 3)
            sched_yield();
        ck_assert_int_eq(mvx_local_set_free(set), 0);
        set = NULL;
        ck_assert_int_eq(atomic_load(&g_drops), N);
        atomic_store(&freed, 1);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        ck_assert_int_eq(atomic_load(&g_drops), N);
        for (int i = 0; i < N; i++) {
            if (jh[i]) {
                ck_assert_int_eq(mvx_join_try(jh[i]), MVX_ECANCELLED);
                mvx_join_release(jh[i]);
            }
            mailbox_fini(&boxes[i]);
        }
    }
}

START_TEST(free_while_other_threads_wake_its_tasks_cancels_each_once)
{
    free_while_two_threads_hammer(false);
}
END_TEST

START_TEST(free_while_other_threads_drop_its_tasks_last_wakers_cancels_each_once)
{
    free_while_two_threads_hammer(true);
}
END_TEST

static Suite *local_suite(void)
{
    Suite *s = suite_create("local");
    TCase *tc = tcase_create("local");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tasks_run_only_while_the_owner_drives_the_set);
    tcase_add_test(tc, polls_and_drops_happen_on_the_owner_thread);
    tcase_add_test(tc, run_until_sleeps_until_another_thread_wakes_a_task);
    tcase_add_test(tc, run_until_times_out);
    tcase_add_test(tc, local_task_awaits_a_runtime_task);
    tcase_add_test(tc, run_until_drives_the_set_while_waiting_for_a_runtime_task);
    tcase_add_test(tc, notify_waker_fires_when_a_task_becomes_ready);
    tcase_add_test(tc, only_the_owner_drives_or_frees_the_set);
    tcase_add_test(tc, run_until_a_task_of_another_set_of_this_thread_is_edeadlk);
    tcase_add_test(tc, free_from_a_set_that_a_task_of_the_set_drives_is_eperm);
    tcase_add_test(tc, free_cancels_queued_and_idle_tasks_and_wakes_waiters);
    tcase_add_test(tc, spawn_after_shutdown_is_eshutdown);
    tcase_add_test(tc, remote_wakes_while_the_owner_drives_lose_nothing);
    tcase_add_test(tc, free_while_other_threads_wake_its_tasks_cancels_each_once);
    tcase_add_test(tc, free_while_other_threads_drop_its_tasks_last_wakers_cancels_each_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(local_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
