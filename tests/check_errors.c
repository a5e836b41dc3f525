/*
 * check_errors.c - every error code on bad input, and the texts that describe them: NULLs and
 * invalid arguments give MVX_EINVAL with a message, never a crash.
 */
#include "helpers.h"

#include <stdio.h>
#include <sys/resource.h>

START_TEST(version_matches_the_header)
{
    ck_assert_int_eq(mvx_version(), MVX_VERSION_HEX);
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", MVX_VERSION_MAJOR, MVX_VERSION_MINOR,
             MVX_VERSION_PATCH);
    ck_assert_str_eq(mvx_version_string(), expected);
}
END_TEST

START_TEST(every_code_has_a_description_and_a_name)
{
    static const struct {
        int code;
        const char *name;
    } codes[] = {
#define CODE_ENTRY(name, value, text) {MVX_##name, "MVX_" #name},
        MVX_ERRNO_MAP(CODE_ENTRY)
#undef CODE_ENTRY
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        ck_assert_int_lt(codes[i].code, 0);
        ck_assert_str_ne(mvx_strerror(codes[i].code), "unknown error");
        ck_assert_str_eq(mvx_err_name(codes[i].code), codes[i].name);
        for (size_t j = 0; j < i; j++)
            ck_assert_int_ne(codes[i].code, codes[j].code);
    }
    ck_assert_str_eq(mvx_strerror(0), "success");
    ck_assert_str_eq(mvx_err_name(0), "MVX_OK");
    ck_assert_str_eq(mvx_strerror(-12345), "unknown error");
    ck_assert_str_eq(mvx_err_name(42), "MVX_UNKNOWN");
    ck_assert_str_eq(mvx_strerror(MVX_ESHUTDOWN), "runtime is shut down");
}
END_TEST

START_TEST(last_error_names_the_function_and_the_problem)
{
    ck_assert_int_eq(mvx_spawn(NULL, &empty_vt, NULL, NULL), MVX_EINVAL);
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "mvx_spawn"));
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "rt is NULL"));
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "MVX_EINVAL"));
}
END_TEST

START_TEST(runtime_functions_reject_null)
{
    ck_assert_int_eq(mvx_runtime_config_init(NULL, 0), MVX_EINVAL);
    ck_assert_int_eq(mvx_runtime_new(NULL, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_runtime_shutdown(NULL, 0), MVX_EINVAL);
    ck_assert_int_eq(mvx_runtime_release(NULL), MVX_EINVAL);
    ck_assert_uint_eq(mvx_runtime_worker_count(NULL), 0);
    mvx_worker_stats st = {.size = sizeof st};
    ck_assert_int_eq(mvx_runtime_worker_stats(NULL, 0, &st), MVX_EINVAL);
    ck_assert_int_eq(mvx_block_on(NULL, &empty_vt, NULL, NULL, 0, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_local_set_new(NULL, NULL, NULL), MVX_EINVAL);
}
END_TEST

START_TEST(bad_configs_are_rejected)
{
    mvx_runtime_config cfg;
    size_t first_release = offsetof(mvx_runtime_config, hook_data) + sizeof(void *);
    ck_assert_int_eq(mvx_runtime_config_init(&cfg, first_release - 1), MVX_EINVAL);
    mvx_runtime_config_init(&cfg, sizeof cfg);
    mvx_runtime *rt = (mvx_runtime *)0x1;
    cfg.worker_threads = 100000;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), MVX_EINVAL);
    ck_assert_ptr_null(rt);
    cfg.worker_threads = 1;
    cfg.stack_size = 100;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), MVX_EINVAL);
    cfg.stack_size = 0;
    cfg.blocking_flags = MVX_BLOCKING_INHERIT_SCHED << 1;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), MVX_EINVAL);
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "blocking_flags 0x2 has unknown bits"));
    cfg.blocking_flags = 0;
    cfg.worker_slice_ns = 99999; /* below the kernel's shortest slice */
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), MVX_EINVAL);
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "worker_slice_ns 99999 is outside"));
    cfg.worker_slice_ns = 100000001;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), MVX_EINVAL);
    ck_assert_ptr_null(rt);
    cfg.worker_slice_ns = 0;
    cfg.size = 8;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), MVX_EINVAL);
}
END_TEST

/* A program built against the first release passes smaller structs: they still work, and the
 * fields they do not know take their defaults. */
START_TEST(structs_of_the_first_release_size_are_accepted)
{
    mvx_runtime_config cfg;
    memset(&cfg, 0xee, sizeof cfg); /* garbage beyond the old size must not be read */
    size_t old_config = offsetof(mvx_runtime_config, hook_data) + sizeof(void *);
    ck_assert_int_eq(mvx_runtime_config_init(&cfg, old_config), 0);
    ck_assert_uint_eq(cfg.size, old_config);
    ck_assert_uint_eq(cfg.max_blocking_threads, 0xeeeeeeeeu); /* untouched */
    cfg.worker_threads = 1;
    mvx_runtime *rt;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), 0);
    mvx_task_vtable vt = yielder_vt;
    vt.size = offsetof(mvx_task_vtable, poll_signature);
    vt.poll_signature = (const mvx_signature *)0x1; /* beyond size: never read */
    struct yielder y = {2, 5};
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &vt, &y, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    mvx_join_release(jh);
    mvx_blocking_stats st = {.size = sizeof st};
    mvx_join_handle *b;
    ck_assert_int_eq(mvx_spawn_blocking(rt, &vt, &y, &b), 0);
    ck_assert_int_eq(mvx_join_wait(b, 5 * SEC), MVX_EFAILED); /* it yields: pending */
    mvx_join_release(b);
    for (int tries = 0; st.completed != 1 && tries < 5000; tries++) { /* counted just after */
        ck_assert_int_eq(mvx_runtime_blocking_stats(rt, &st), 0);
        usleep(1000);
    }
    ck_assert_uint_eq(st.completed, 1);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

START_TEST(bad_vtables_are_rejected)
{
    mvx_runtime *rt = new_runtime(1);
    mvx_task_vtable vt = yielder_vt;
    struct yielder y = {0, 0};
    mvx_join_handle *jh = (mvx_join_handle *)0x1;
    ck_assert_int_eq(mvx_spawn(rt, NULL, &y, &jh), MVX_EINVAL);
    vt.size = offsetof(mvx_task_vtable, poll_signature) - 1;
    ck_assert_int_eq(mvx_spawn(rt, &vt, &y, &jh), MVX_EINVAL);
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "vtable->size"));
    vt = yielder_vt;
    vt.poll = NULL;
    ck_assert_int_eq(mvx_spawn(rt, &vt, &y, &jh), MVX_EINVAL);
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "poll is NULL"));
    vt = yielder_vt;
    vt.state_align = 3;
    ck_assert_int_eq(mvx_spawn(rt, &vt, &y, &jh), MVX_EINVAL);
    vt.state_align = 64;
    ck_assert_int_eq(mvx_spawn(rt, &vt, &y, &jh), MVX_EINVAL);
    vt = yielder_vt;
    vt.output_align = 6;
    ck_assert_int_eq(mvx_spawn(rt, &vt, &y, &jh), MVX_EINVAL);
    vt = yielder_vt;
    vt.state_size = MVX_INLINE_MAX + 1;
    ck_assert_int_eq(mvx_spawn(rt, &vt, &y, &jh), MVX_EINVAL);
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "MVX_INLINE_MAX"));
    vt = yielder_vt;
    ck_assert_int_eq(mvx_spawn(rt, &vt, NULL, &jh), MVX_EINVAL); /* inline state from NULL */
    ck_assert_ptr_eq(jh, (mvx_join_handle *)0x1);                /* untouched on failure */
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}
END_TEST

/* The largest inline state is accepted and copied whole. */
static int big_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    unsigned char *s = state;
    unsigned sum = 0;
    for (int i = 0; i < MVX_INLINE_MAX - 8; i++)
        sum += s[i];
    *(unsigned *)output = sum;
    return MVX_POLL_READY;
}
static const mvx_task_vtable big_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = big_poll,
    .state_size = MVX_INLINE_MAX - 8,
    .state_align = 1,
    .output_size = 8,
    .output_align = 8,
};

START_TEST(the_largest_inline_state_is_accepted)
{
    mvx_runtime *rt = new_runtime(1);
    static unsigned char state[MVX_INLINE_MAX];
    for (int i = 0; i < MVX_INLINE_MAX; i++)
        state[i] = 1;
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &big_vt, state, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    uint64_t out = 0;
    ck_assert_int_eq(mvx_join_take(jh, &out, 8, NULL), 0);
    ck_assert_uint_eq((unsigned)out, MVX_INLINE_MAX - 8);
    mvx_join_release(jh);
    mvx_runtime_release(rt);
}
END_TEST

START_TEST(join_and_waker_functions_reject_null)
{
    int out;
    ck_assert_int_eq(mvx_join_wait(NULL, 0), MVX_EINVAL);
    ck_assert_int_eq(mvx_join_try(NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_join_poll(NULL, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_join_take(NULL, &out, sizeof out, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_join_abort(NULL), MVX_EINVAL);
    mvx_waker w = {NULL, NULL}, out_w;
    ck_assert_int_eq(mvx_waker_clone(NULL, &out_w), MVX_EINVAL);
    out_w.vtable = mvx_task_waker_vtable();
    out_w.data = &out;
    ck_assert_int_eq(mvx_waker_clone(&w, &out_w), 0); /* the empty waker clones to itself */
    ck_assert_ptr_null(out_w.vtable);
    ck_assert_ptr_null(out_w.data);
    mvx_waker_wake(NULL);
    mvx_waker_wake(&w);
    mvx_waker_wake_by_ref(&w);
    mvx_waker_drop(NULL);
    mvx_waker_drop(&w);
    ck_assert_int_eq(mvx_waker_will_wake(NULL, &w), 0);
    ck_assert_int_eq(mvx_context_fail(NULL, 1, "x", NULL, NULL), MVX_EINVAL);
    ck_assert_ptr_null(mvx_context_waker(NULL));
    mvx_failure_clear(NULL);
    ck_assert_ptr_nonnull(mvx_task_waker_vtable());
}
END_TEST

START_TEST(join_poll_without_a_waker_is_einval)
{
    mvx_runtime *rt = new_runtime(1);
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    mvx_spawn(rt, &mailbox_vt, &m, &jh);
    mvx_waker none = {NULL, NULL};
    ck_assert_int_eq(mvx_join_poll(jh, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_join_poll(jh, &none), MVX_EINVAL);
    mvx_failure f = {.size = 1}; /* size too small */
    mvx_join_abort(jh);
    mvx_join_wait(jh, 5 * SEC);
    int out;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, &f), MVX_ECANCELLED);
    mvx_join_release(jh);
    mailbox_fini(&m);
    mvx_runtime_release(rt);
}
END_TEST

START_TEST(failure_struct_with_a_bad_size_is_einval)
{
    mvx_runtime *rt = new_runtime(1);
    atomic_store(&g_payload_drops, 0);
    mvx_join_handle *jh;
    mvx_spawn(rt, &failer_vt, NULL, &jh);
    mvx_join_wait(jh, 5 * SEC);
    mvx_failure f = {.size = 4};
    int out;
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, &f), MVX_EINVAL);
    mvx_join_release(jh);
    ck_assert_int_eq(atomic_load(&g_payload_drops), 1);
    mvx_runtime_release(rt);
}
END_TEST

START_TEST(stats_reject_a_bad_worker_or_size)
{
    mvx_runtime *rt = new_runtime(2);
    mvx_worker_stats st = {.size = sizeof st};
    ck_assert_int_eq(mvx_runtime_worker_stats(rt, 2, &st), MVX_EINVAL);
    ck_assert_int_eq(mvx_runtime_worker_stats(rt, 0, NULL), MVX_EINVAL);
    st.size = 3;
    ck_assert_int_eq(mvx_runtime_worker_stats(rt, 0, &st), MVX_EINVAL);
    mvx_runtime_release(rt);
}
END_TEST

START_TEST(block_on_rejects_a_mismatched_output)
{
    mvx_runtime *rt = new_runtime(1);
    struct yielder y = {0, 1};
    char out[16];
    ck_assert_int_eq(mvx_block_on(rt, &yielder_vt, &y, out, 16, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_block_on(rt, &yielder_vt, &y, NULL, sizeof(int), NULL), MVX_EINVAL);
    mvx_runtime_release(rt);
}
END_TEST

START_TEST(local_set_functions_reject_null)
{
    ck_assert_int_eq(mvx_local_spawn(NULL, &empty_vt, NULL, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_local_set_run_until_idle(NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_local_set_run_until(NULL, NULL, 0), MVX_EINVAL);
    ck_assert_int_eq(mvx_local_set_free(NULL), MVX_EINVAL);
    mvx_runtime *rt = new_runtime(1);
    mvx_local_set *set;
    ck_assert_int_eq(mvx_local_set_new(rt, NULL, &set), 0);
    ck_assert_int_eq(mvx_local_set_run_until(set, NULL, 0), MVX_EINVAL);
    ck_assert_int_eq(mvx_local_spawn(set, NULL, NULL, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_local_set_free(set), 0);
    mvx_runtime_release(rt);
}
END_TEST

/* Poll misbehaving: the runtime turns it into a failure with a clear message. */
static int bad_return_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    return 17;
}
static int silent_fail_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    return MVX_POLL_FAILED;
}
static int fail_then_ready_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    mvx_context_fail(cx, 5, "changed my mind", malloc(4), payload_drop);
    *(int *)output = 3;
    return MVX_POLL_READY;
}
static const mvx_task_vtable bad_return_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = bad_return_poll,
    .drop = count_drop,
};
static const mvx_task_vtable silent_fail_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = silent_fail_poll,
    .drop = count_drop,
};
static const mvx_task_vtable fail_then_ready_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = fail_then_ready_poll,
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

START_TEST(invalid_poll_results_become_failures)
{
    mvx_runtime *rt = new_runtime(1);
    reset_counters();
    atomic_store(&g_payload_drops, 0);
    mvx_join_handle *a, *b, *c;
    mvx_spawn(rt, &bad_return_vt, NULL, &a);
    mvx_spawn(rt, &silent_fail_vt, NULL, &b);
    mvx_spawn(rt, &fail_then_ready_vt, NULL, &c);
    ck_assert_int_eq(mvx_join_wait(a, 5 * SEC), MVX_EFAILED);
    ck_assert_int_eq(mvx_join_wait(b, 5 * SEC), MVX_EFAILED);
    ck_assert_int_eq(mvx_join_wait(c, 5 * SEC), 0);
    mvx_failure f = {.size = sizeof f};
    mvx_join_take(a, NULL, 0, &f);
    ck_assert_int_eq(f.code, MVX_EINVAL);
    ck_assert_ptr_nonnull(strstr(f.message, "17"));
    mvx_failure_clear(&f);
    f.size = sizeof f;
    mvx_join_take(b, NULL, 0, &f);
    ck_assert_int_eq(f.code, MVX_EFAILED);
    ck_assert_ptr_null(f.payload);
    mvx_failure_clear(&f);
    int out = 0;
    ck_assert_int_eq(mvx_join_take(c, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(out, 3);
    ck_assert_int_eq(atomic_load(&g_payload_drops), 1); /* the discarded description */
    ck_assert_int_eq(atomic_load(&g_drops), 2);
    mvx_join_release(a);
    mvx_join_release(b);
    mvx_join_release(c);
    mvx_runtime_release(rt);
}
END_TEST

/* Out of memory: with the address space capped, the arena cannot map its next segment. Spawning
 * fails with MVX_ENOMEM, leaves the caller's state alone, and the runtime keeps working once
 * memory is back. Sanitizer runtimes reserve terabytes of shadow memory: skipped under them. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

START_TEST(spawn_reports_enomem_when_memory_runs_out)
{
#ifdef UNDER_SANITIZER
    return;
#endif
    reset_counters();
    mvx_runtime *rt = new_runtime(1);
    enum { MAX_TASKS = 4000000 };
    mvx_join_handle **jh = malloc(MAX_TASKS * sizeof *jh); /* before the cap */
    for (long i = 0; i < MAX_TASKS; i += 512)
        jh[i] = NULL; /* touch it */
    struct rlimit old;
    getrlimit(RLIMIT_AS, &old);
    /* Cap the address space 16 MiB above what is mapped now. */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    struct rlimit cap = {pages * (unsigned long)sysconf(_SC_PAGESIZE) + (16ul << 20), old.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &cap), 0);
    int r = 0;
    long spawned = 0; /* pending forever, kept alive by their handles */
    while (spawned < MAX_TASKS && (r = mvx_spawn(rt, &forever_vt, NULL, &jh[spawned])) == 0)
        spawned++;
    setrlimit(RLIMIT_AS, &old);
    ck_assert_int_eq(r, MVX_ENOMEM);
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "out of memory"));
    ck_assert_int_gt(spawned, 100000); /* it ran out only after filling the 16 MiB */
    ck_assert_int_eq(mvx_spawn(rt, &empty_vt, NULL, NULL), 0); /* memory back: works again */
    for (long i = 0; i < spawned; i++)
        mvx_join_release(jh[i]); /* each now unreachable: cancelled */
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    ck_assert_int_eq(atomic_load(&g_drops), spawned + 1);
    free(jh);
}
END_TEST

/* A worker thread that cannot start: MVX_ESYSTEM, and nothing left running. */
START_TEST(runtime_new_reports_esystem_when_a_thread_cannot_start)
{
#ifdef UNDER_SANITIZER
    return;
#endif
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    cfg.worker_threads = 2;
    cfg.stack_size = (size_t)1 << 46; /* 64 TiB of stack cannot be mapped */
    mvx_runtime *rt = (mvx_runtime *)0x1;
    int r = mvx_runtime_new(&cfg, &rt);
    ck_assert_int_eq(r, MVX_ESYSTEM);
    ck_assert_ptr_null(rt);
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "could not start worker"));
}
END_TEST

/* ---- payloads: payload_drop is never called for a NULL payload ---- */
static atomic_int g_null_payload_drops;
static void null_counting_drop(void *p)
{
    if (!p)
        atomic_fetch_add(&g_null_payload_drops, 1);
    free(p);
}
static int fail_without_payload_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)output;
    mvx_context_fail(cx, 5, "no payload", NULL, null_counting_drop);
    return MVX_POLL_FAILED;
}
static const mvx_task_vtable fail_without_payload_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = fail_without_payload_poll,
};
static int fail_with_payload_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)output;
    mvx_context_fail(cx, 6, "payload", malloc(4), null_counting_drop);
    return MVX_POLL_FAILED;
}
static const mvx_task_vtable fail_with_payload_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = fail_with_payload_poll,
};

START_TEST(payload_drop_is_never_called_for_a_null_payload)
{
    atomic_store(&g_null_payload_drops, 0);
    mvx_runtime *rt = new_runtime(1);
    /* A caller that keeps the payload sets it to NULL before clearing, as the header says. */
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &fail_with_payload_vt, NULL, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 10 * SEC), MVX_EFAILED);
    mvx_failure f = {.size = sizeof f};
    ck_assert_int_eq(mvx_join_take(jh, NULL, 0, &f), MVX_EFAILED);
    void *kept = f.payload;
    ck_assert_ptr_nonnull(kept);
    f.payload = NULL;
    mvx_failure_clear(&f);
    free(kept);
    mvx_join_release(jh);
    /* A failure described with a NULL payload and a destructor, taken or never taken. */
    ck_assert_int_eq(mvx_spawn(rt, &fail_without_payload_vt, NULL, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 10 * SEC), MVX_EFAILED);
    f = (mvx_failure){.size = sizeof f};
    ck_assert_int_eq(mvx_join_take(jh, NULL, 0, &f), MVX_EFAILED);
    mvx_failure_clear(&f);
    mvx_join_release(jh);
    ck_assert_int_eq(mvx_spawn(rt, &fail_without_payload_vt, NULL, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 10 * SEC), MVX_EFAILED);
    mvx_join_release(jh);
    mvx_runtime_release(rt);
    int null_drops = atomic_load(&g_null_payload_drops);
    ck_assert_int_eq(null_drops, 0);
}
END_TEST

/* mvx_block_on validates every argument before running the task: on MVX_EINVAL nothing ran and
 * the caller still owns the state. */
START_TEST(block_on_rejects_a_small_failure_struct_before_running)
{
    reset_counters();
    mvx_runtime *rt = new_runtime(1);
    int out;
    mvx_failure f = {.size = 1};
    ck_assert_int_eq(mvx_block_on(rt, &failer_vt, NULL, &out, sizeof out, &f), MVX_EINVAL);
    ck_assert_ptr_nonnull(strstr(mvx_last_error(), "failure->size"));
    int drops = atomic_load(&g_drops);
    ck_assert_int_eq(drops, 0);
    mvx_runtime_release(rt);
}
END_TEST

/* strdup fails on a thread while this is set: the library's copy of a failure message. The
 * executable's definition takes the place of libc's for the shared library too. */
static _Thread_local int g_fail_strdup;
char *strdup(const char *s)
{
    if (g_fail_strdup)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    return p ? memcpy(p, s, n) : NULL;
}

struct fail_twice {
    int first, second;
};
static int fail_twice_poll(void *state, mvx_context *cx, void *output)
{
    (void)output;
    struct fail_twice *ft = state;
    ft->first = mvx_context_fail(cx, 1, "first", NULL, NULL);
    g_fail_strdup = 1;
    int payload = 0;
    ft->second = mvx_context_fail(cx, 2, "second", &payload, null_counting_drop);
    g_fail_strdup = 0;
    return MVX_POLL_FAILED;
}
static const mvx_task_vtable fail_twice_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = fail_twice_poll,
};

/* Out of memory copying the message: MVX_ENOMEM with nothing changed (the first description
 * stands, the new payload stays the caller's). */
START_TEST(context_fail_reports_enomem_and_changes_nothing)
{
    atomic_store(&g_null_payload_drops, 0);
    mvx_runtime *rt = new_runtime(1);
    struct fail_twice ft = {-100, -100};
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &fail_twice_vt, &ft, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 10 * SEC), MVX_EFAILED);
    ck_assert_int_eq(ft.first, 0);
    ck_assert_int_eq(ft.second, MVX_ENOMEM);
    mvx_failure f = {.size = sizeof f};
    ck_assert_int_eq(mvx_join_take(jh, NULL, 0, &f), MVX_EFAILED);
    ck_assert_int_eq(f.code, 1);
    ck_assert_str_eq(f.message, "first");
    ck_assert_ptr_null(f.payload);
    mvx_failure_clear(&f);
    mvx_join_release(jh);
    mvx_runtime_release(rt);
}
END_TEST

/* Waker vtables are validated where a waker enters the library: MVX_EINVAL, never a crash. */
static const mvx_waker_vtable bad_waker_vts[] = {
    {sizeof(mvx_waker_vtable), NULL, fw_wake, fw_wake_by_ref, fw_drop},
    {sizeof(mvx_waker_vtable), fw_clone, NULL, fw_wake_by_ref, fw_drop},
    {sizeof(mvx_waker_vtable), fw_clone, fw_wake, NULL, fw_drop},
    {sizeof(mvx_waker_vtable), fw_clone, fw_wake, fw_wake_by_ref, NULL},
    {0, fw_clone, fw_wake, fw_wake_by_ref, fw_drop},
    {sizeof(mvx_waker_vtable) - 1, fw_clone, fw_wake, fw_wake_by_ref, fw_drop},
};

START_TEST(bad_waker_vtables_are_einval)
{
    mvx_runtime *rt = new_runtime(1);
    struct mailbox m;
    mailbox_init(&m);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn(rt, &mailbox_vt, &m, &jh), 0);
    struct flag_waker *fw = flag_waker_new();
    for (size_t i = 0; i < sizeof bad_waker_vts / sizeof bad_waker_vts[0]; i++) {
        mvx_waker w = {&bad_waker_vts[i], fw}, out = {NULL, NULL};
        ck_assert_int_eq(mvx_waker_clone(&w, &out), MVX_EINVAL);
        ck_assert_ptr_nonnull(strstr(mvx_last_error(), "mvx_waker_clone"));
        ck_assert_ptr_null(out.vtable);
        ck_assert_int_eq(mvx_join_poll(jh, &w), MVX_EINVAL);
        mvx_local_set *set = NULL;
        ck_assert_int_eq(mvx_local_set_new(rt, &w, &set), MVX_EINVAL);
        ck_assert_ptr_null(set);
        ck_assert_int_eq(atomic_load(&fw->refs), 1); /* never cloned */
    }
    mvx_join_abort(jh);
    ck_assert_int_eq(mvx_join_wait(jh, 10 * SEC), MVX_ECANCELLED);
    mvx_join_release(jh);
    flag_waker_put(fw);
    mailbox_fini(&m);
    mvx_runtime_release(rt);
}
END_TEST

static Suite *errors_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("errors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, version_matches_the_header);
    tcase_add_test(tc, every_code_has_a_description_and_a_name);
    tcase_add_test(tc, last_error_names_the_function_and_the_problem);
    tcase_add_test(tc, runtime_functions_reject_null);
    tcase_add_test(tc, bad_configs_are_rejected);
    tcase_add_test(tc, structs_of_the_first_release_size_are_accepted);
    tcase_add_test(tc, bad_vtables_are_rejected);
    tcase_add_test(tc, the_largest_inline_state_is_accepted);
    tcase_add_test(tc, join_and_waker_functions_reject_null);
    tcase_add_test(tc, join_poll_without_a_waker_is_einval);
    tcase_add_test(tc, failure_struct_with_a_bad_size_is_einval);
    tcase_add_test(tc, stats_reject_a_bad_worker_or_size);
    tcase_add_test(tc, block_on_rejects_a_mismatched_output);
    tcase_add_test(tc, local_set_functions_reject_null);
    tcase_add_test(tc, invalid_poll_results_become_failures);
    tcase_add_test(tc, spawn_reports_enomem_when_memory_runs_out);
    tcase_add_test(tc, runtime_new_reports_esystem_when_a_thread_cannot_start);
    tcase_add_test(tc, payload_drop_is_never_called_for_a_null_payload);
    tcase_add_test(tc, block_on_rejects_a_small_failure_struct_before_running);
    tcase_add_test(tc, context_fail_reports_enomem_and_changes_nothing);
    tcase_add_test(tc, bad_waker_vtables_are_einval);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(errors_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
