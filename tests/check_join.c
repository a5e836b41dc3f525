/*
 * check_join.c - join handles through the public API: wait, try, async poll, take, abort,
 * is-finished, release (detach), failures and their payloads, join from another task.
 */
#include "helpers.h"

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

START_TEST(wait_then_take_gives_the_output)
{
    struct yielder y = {10, 42};
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &yielder_vt, &y, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, MVX_TIMEOUT_INFINITE), 0);
    ck_assert_int_eq(mvx_join_is_finished(jh), 1);
    int out = 0;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(out, 42);
    ck_assert_int_eq(atomic_load(&g_polls), 11);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    mvx_join_release(jh);
    ck_assert_int_eq(atomic_load(&g_output_drops), 0); /* taken: the caller owns it */
}
END_TEST

START_TEST(output_size_is_the_vtables)
{
    struct yielder y = {0, 7};
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &yielder_vt, &y, &jh), 0);
    ck_assert_uint_eq(mvx_join_output_size(jh), yielder_vt.output_size);
    ck_assert_int_eq(mvx_join_wait(jh, MVX_TIMEOUT_INFINITE), 0);
    ck_assert_uint_eq(mvx_join_output_size(jh), sizeof(int)); /* still readable once finished */
    mvx_join_release(jh);
    ck_assert_uint_eq(mvx_join_output_size(NULL), 0);
}
END_TEST

START_TEST(wait_times_out_and_succeeds_later)
{
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &mailbox_vt, &m, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 20 * MS), MVX_ETIMEDOUT);
    ck_assert_int_eq(mvx_join_wait(jh, 0), MVX_ETIMEDOUT);
    ck_assert_int_eq(mvx_join_is_finished(jh), 0);
    mailbox_deliver(&m);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    mvx_join_release(jh);
    mailbox_fini(&m);
}
END_TEST

struct delayed {
    struct mailbox *m;
    int64_t delay_ns;
};
static void *deliver_later(void *arg)
{
    struct delayed *d = arg;
    struct timespec ts = {0, d->delay_ns};
    nanosleep(&ts, NULL);
    mailbox_deliver(d->m);
    return NULL;
}

START_TEST(blocked_wait_is_woken_by_completion)
{
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &mailbox_vt, &m, &jh), 0);
    struct delayed d = {&m, 50 * MS}; /* beyond the wait's spin: it really sleeps */
    pthread_t th;
    pthread_create(&th, NULL, deliver_later, &d);
    ck_assert_int_eq(mvx_join_wait(jh, 10 * SEC), 0);
    pthread_join(th, NULL);
    mvx_join_release(jh);
    mailbox_fini(&m);
}
END_TEST

START_TEST(try_reports_eagain_until_finished)
{
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_spawn(rt, &mailbox_vt, &m, &jh);
    ck_assert_int_eq(mvx_join_try(jh), MVX_EAGAIN);
    int out;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), MVX_EAGAIN);
    mailbox_deliver(&m);
    mvx_join_wait(jh, 5 * SEC);
    ck_assert_int_eq(mvx_join_try(jh), 0);
    mvx_join_release(jh);
    mailbox_fini(&m);
}
END_TEST

START_TEST(poll_registers_a_foreign_waker_woken_once)
{
    struct mailbox m;
    mailbox_init(&m);
    struct flag_waker *fw = flag_waker_new();
    mvx_waker w = {&flag_waker_vt, fw};
    mvx_join_handle *jh;
    mvx_spawn(rt, &mailbox_vt, &m, &jh);
    ck_assert_int_eq(mvx_join_poll(jh, &w), MVX_EAGAIN);
    ck_assert_int_eq(atomic_load(&fw->refs), 2);
    ck_assert_int_eq(atomic_load(&fw->wakes), 0);
    mailbox_deliver(&m);
    wait_until_int(&fw->wakes, 1, 5 * SEC);
    ck_assert_int_eq(mvx_join_poll(jh, &w), 0);
    ck_assert_int_eq(atomic_load(&fw->wakes), 1);
    mvx_join_release(jh);
    wait_until_int(&fw->refs, 1, 5 * SEC); /* dropped with the task */
    flag_waker_put(fw);
    mailbox_fini(&m);
}
END_TEST

START_TEST(release_drops_a_registered_waker_of_an_unfinished_task)
{
    struct mailbox m;
    mailbox_init(&m);
    struct flag_waker *fw = flag_waker_new();
    mvx_waker w = {&flag_waker_vt, fw};
    mvx_join_handle *jh;
    mvx_spawn(rt, &mailbox_vt, &m, &jh);
    ck_assert_int_eq(mvx_join_poll(jh, &w), MVX_EAGAIN);
    mvx_join_release(jh);
    ck_assert_int_eq(atomic_load(&fw->refs), 1); /* taken back and dropped at once */
    mailbox_deliver(&m);
    wait_until_int(&g_drops, 1, 5 * SEC);
    ck_assert_int_eq(atomic_load(&fw->wakes), 0);
    flag_waker_put(fw);
    mailbox_fini(&m);
}
END_TEST

START_TEST(take_twice_reports_taken)
{
    struct yielder y = {0, 1};
    mvx_join_handle *jh;
    mvx_spawn(rt, &yielder_vt, &y, &jh);
    mvx_join_wait(jh, 5 * SEC);
    int out;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), MVX_ETAKEN);
    mvx_join_release(jh);
}
END_TEST

START_TEST(take_with_the_wrong_size_is_einval)
{
    struct yielder y = {0, 1};
    mvx_join_handle *jh;
    mvx_spawn(rt, &yielder_vt, &y, &jh);
    mvx_join_wait(jh, 5 * SEC);
    char out[8];
    ck_assert_int_eq(mvx_join_take(jh, out, 8, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_join_take(jh, NULL, sizeof(int), NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_join_take(jh, out, sizeof(int), NULL), 0); /* still there */
    mvx_join_release(jh);
}
END_TEST

START_TEST(cancelled_task_has_no_output)
{
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_spawn(rt, &mailbox_vt, &m, &jh);
    mvx_join_abort(jh);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), MVX_ECANCELLED);
    int out;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), MVX_ECANCELLED);
    mvx_join_release(jh);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    ck_assert_int_eq(atomic_load(&g_output_drops), 0);
    mailbox_fini(&m);
}
END_TEST

START_TEST(abort_wakes_a_blocked_waiter_with_cancelled)
{
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_spawn(rt, &mailbox_vt, &m, &jh);
    struct flag_waker *fw = flag_waker_new();
    mvx_waker w = {&flag_waker_vt, fw};
    ck_assert_int_eq(mvx_join_poll(jh, &w), MVX_EAGAIN);
    mvx_join_abort(jh);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), MVX_ECANCELLED);
    wait_until_int(&fw->wakes, 1, 5 * SEC);
    mvx_join_release(jh);
    mailbox_fini(&m);
    flag_waker_put(fw);
}
END_TEST

START_TEST(failure_carries_code_message_and_payload)
{
    mvx_join_handle *jh;
    mvx_spawn(rt, &failer_vt, NULL, &jh);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), MVX_EFAILED);
    ck_assert_int_eq(atomic_load(&g_drops), 1); /* a failed task's state is dropped too */
    int out;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), MVX_EFAILED);
    mvx_failure f = {.size = sizeof f};
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, &f), MVX_EFAILED);
    ck_assert_int_eq(f.code, 77);
    ck_assert_str_eq(f.message, "it broke");
    ck_assert_ptr_nonnull(f.payload);
    ck_assert_int_eq(*(int *)f.payload, 1234);
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, &f), MVX_ETAKEN);
    mvx_join_release(jh);
    ck_assert_int_eq(atomic_load(&g_payload_drops), 0); /* ours now */
    mvx_failure_clear(&f);
    ck_assert_int_eq(atomic_load(&g_payload_drops), 1);
    ck_assert_ptr_null(f.message);
    ck_assert_int_eq(atomic_load(&g_output_drops), 0);
}
END_TEST

START_TEST(failure_never_taken_is_dropped_with_the_handle)
{
    mvx_join_handle *jh;
    mvx_spawn(rt, &failer_vt, NULL, &jh);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), MVX_EFAILED);
    mvx_join_release(jh);
    ck_assert_int_eq(atomic_load(&g_payload_drops), 1);
}
END_TEST

START_TEST(failure_of_a_detached_task_is_dropped_at_once)
{
    ck_assert_int_eq(mvx_spawn(rt, &failer_vt, NULL, NULL), 0);
    wait_until_int(&g_payload_drops, 1, 5 * SEC);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
}
END_TEST

START_TEST(output_never_taken_is_dropped_on_release)
{
    struct yielder y = {0, 1};
    mvx_join_handle *jh;
    mvx_spawn(rt, &yielder_vt, &y, &jh);
    mvx_join_wait(jh, 5 * SEC);
    ck_assert_int_eq(atomic_load(&g_output_drops), 0);
    mvx_join_release(jh);
    ck_assert_int_eq(atomic_load(&g_output_drops), 1);
}
END_TEST

START_TEST(detached_task_keeps_running_and_drops_its_output)
{
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_spawn(rt, &mailbox_vt, &m, &jh);
    mvx_join_release(jh); /* detach while pending */
    ck_assert_int_eq(atomic_load(&g_drops), 0);
    mailbox_deliver(&m);
    wait_until_int(&g_output_drops, 1, 5 * SEC);
    ck_assert_int_eq(atomic_load(&g_drops), 1);
    mailbox_fini(&m);
}
END_TEST

START_TEST(spawn_without_a_handle_detaches)
{
    for (int i = 0; i < 1000; i++) {
        struct yielder y = {i % 3, i};
        ck_assert_int_eq(mvx_spawn(rt, &yielder_vt, &y, NULL), 0);
    }
    wait_until_int(&g_output_drops, 1000, 10 * SEC);
    ck_assert_int_eq(atomic_load(&g_drops), 1000);
}
END_TEST

START_TEST(release_of_null_is_a_no_op)
{
    mvx_join_release(NULL);
    ck_assert_int_eq(mvx_join_is_finished(NULL), 0);
}
END_TEST

/* A task awaiting another task's join handle with mvx_join_poll and its own waker. */
struct awaiter {
    mvx_join_handle *child;
    int polls;
};
static int awaiter_poll(void *state, mvx_context *cx, void *output)
{
    struct awaiter *a = state;
    a->polls++;
    int r = mvx_join_poll(a->child, mvx_context_waker(cx));
    if (r == MVX_EAGAIN)
        return MVX_POLL_PENDING;
    int v = -1;
    if (r == 0)
        mvx_join_take(a->child, &v, sizeof v, NULL);
    mvx_join_release(a->child);
    a->child = NULL;
    *(int *)output = v * 2;
    return MVX_POLL_READY;
}
static void awaiter_drop(void *state)
{
    struct awaiter *a = state;
    if (a->child)
        mvx_join_release(a->child);
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

START_TEST(a_task_awaits_another_tasks_join_handle)
{
    struct mailbox m;
    mailbox_init(&m);
    struct awaiter a = {0};
    mvx_spawn(rt, &mailbox_vt, &m, &a.child);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &awaiter_vt, &a, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 50 * MS), MVX_ETIMEDOUT);
    mailbox_deliver(&m);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    int out = 0;
    mvx_join_take(jh, &out, sizeof out, NULL);
    ck_assert_int_eq(out, 14);
    mvx_join_release(jh);
    mailbox_fini(&m);
}
END_TEST

/* A worker blocking on a task of its own runtime would deadlock: EDEADLK instead. */
struct blocker {
    mvx_join_handle *other;
    int result;
};
static int blocker_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct blocker *b = state;
    b->result = mvx_join_wait(b->other, MVX_TIMEOUT_INFINITE);
    return MVX_POLL_READY;
}
static const mvx_task_vtable blocker_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = blocker_poll,
};

START_TEST(blocking_wait_from_a_worker_is_edeadlk)
{
    struct mailbox m;
    mailbox_init(&m);
    struct blocker b = {0};
    mvx_spawn(rt, &mailbox_vt, &m, &b.other);
    mvx_join_handle *jh;
    mvx_spawn(rt, &blocker_vt, &b, &jh);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    ck_assert_int_eq(b.result, MVX_EDEADLK);
    mvx_join_abort(b.other);
    /* The mailbox task may be in its first poll on the other worker: the mailbox outlives it. */
    ck_assert_int_eq(mvx_join_wait(b.other, 5 * SEC), MVX_ECANCELLED);
    mvx_join_release(b.other);
    mvx_join_release(jh);
    mailbox_fini(&m);
}
END_TEST

START_TEST(handles_outlive_the_runtime)
{
    struct yielder y = {0, 11};
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *done, *pending;
    mvx_spawn(rt, &yielder_vt, &y, &done);
    mvx_spawn(rt, &mailbox_vt, &m, &pending);
    mvx_join_wait(done, 5 * SEC);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    rt = new_runtime(1); /* for teardown */
    int out = 0;
    ck_assert_int_eq(mvx_join_take(done, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(out, 11);
    ck_assert_int_eq(mvx_join_wait(pending, 0), MVX_ECANCELLED);
    mailbox_deliver(&m); /* waking a cancelled task of a released runtime: nothing happens */
    mvx_join_release(done);
    mvx_join_release(pending);
    mailbox_fini(&m);
    ck_assert_int_eq(atomic_load(&g_drops), 2);
}
END_TEST

static Suite *join_suite(void)
{
    Suite *s = suite_create("join");
    TCase *tc = tcase_create("join");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, wait_then_take_gives_the_output);
    tcase_add_test(tc, wait_times_out_and_succeeds_later);
    tcase_add_test(tc, blocked_wait_is_woken_by_completion);
    tcase_add_test(tc, try_reports_eagain_until_finished);
    tcase_add_test(tc, poll_registers_a_foreign_waker_woken_once);
    tcase_add_test(tc, release_drops_a_registered_waker_of_an_unfinished_task);
    tcase_add_test(tc, take_twice_reports_taken);
    tcase_add_test(tc, take_with_the_wrong_size_is_einval);
    tcase_add_test(tc, cancelled_task_has_no_output);
    tcase_add_test(tc, abort_wakes_a_blocked_waiter_with_cancelled);
    tcase_add_test(tc, failure_carries_code_message_and_payload);
    tcase_add_test(tc, failure_never_taken_is_dropped_with_the_handle);
    tcase_add_test(tc, failure_of_a_detached_task_is_dropped_at_once);
    tcase_add_test(tc, output_never_taken_is_dropped_on_release);
    tcase_add_test(tc, detached_task_keeps_running_and_drops_its_output);
    tcase_add_test(tc, spawn_without_a_handle_detaches);
    tcase_add_test(tc, release_of_null_is_a_no_op);
    tcase_add_test(tc, a_task_awaits_another_tasks_join_handle);
    tcase_add_test(tc, blocking_wait_from_a_worker_is_edeadlk);
    tcase_add_test(tc, handles_outlive_the_runtime);
    tcase_add_test(tc, output_size_is_the_vtables);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(join_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
