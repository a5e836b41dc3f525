/*
 * check_ffi.c - signatures and libffi: every type of the signature language round-trips through
 * call tasks with extreme values, call tasks from several threads and on the blocking pool,
 * foreign-signature poll and drop callbacks, and malformed signatures rejected with a message.
 */
#include "helpers.h"

#include <float.h>
#include <math.h>
#include <stdio.h>

static mvx_runtime *rt;

static void setup(void)
{
    reset_counters();
    rt = new_runtime(2);
}
static void teardown(void)
{
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
}

static mvx_signature *sig_of(const char *text)
{
    mvx_signature *sig = NULL;
    int r = mvx_signature_parse(text, strlen(text), &sig);
    ck_assert_msg(r == 0, "parse \"%s\": %s", text, mvx_last_error());
    return sig;
}

/* Calls fn through a call task on rt and takes the return value into out. */
static void call(const char *text, void (*fn)(void), void **args, void *out, size_t out_size,
                 unsigned flags)
{
    mvx_signature *sig = sig_of(text);
    ck_assert_uint_eq(mvx_signature_return_size(sig), out_size);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn_call(rt, fn, sig, args, flags, &jh), 0);
    mvx_signature_release(sig); /* the task keeps its own reference */
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    ck_assert_int_eq(mvx_join_take(jh, out, out_size, NULL), 0);
    mvx_join_release(jh);
}

/* ---- one identity function per type ---- */

#define IDENTITY(name, type)                                                                       \
    static type name(type x)                                                                       \
    {                                                                                              \
        return x;                                                                                  \
    }
IDENTITY(id_i8, int8_t)
IDENTITY(id_u8, uint8_t)
IDENTITY(id_i16, int16_t)
IDENTITY(id_u16, uint16_t)
IDENTITY(id_i32, int32_t)
IDENTITY(id_u32, uint32_t)
IDENTITY(id_i64, int64_t)
IDENTITY(id_u64, uint64_t)
IDENTITY(id_size, size_t)
IDENTITY(id_f32, float)
IDENTITY(id_f64, double)
IDENTITY(id_ptr, void *)

#define ROUND_TRIP(sigtext, fn, type, value)                                                       \
    do {                                                                                           \
        type in = (value);                                                                         \
        type out;                                                                                  \
        memset(&out, 0xa5, sizeof out);                                                            \
        void *args[] = {&in};                                                                      \
        call(sigtext, (void (*)(void))fn, args, &out, sizeof out, 0);                              \
        ck_assert_msg(memcmp(&in, &out, sizeof in) == 0, "%s did not round-trip", sigtext);        \
    } while (0)

START_TEST(every_integer_type_round_trips_at_its_extremes)
{
    ROUND_TRIP("i8(i8)", id_i8, int8_t, INT8_MIN);
    ROUND_TRIP("i8(i8)", id_i8, int8_t, INT8_MAX);
    ROUND_TRIP("u8(u8)", id_u8, uint8_t, UINT8_MAX);
    ROUND_TRIP("i16(i16)", id_i16, int16_t, INT16_MIN);
    ROUND_TRIP("u16(u16)", id_u16, uint16_t, UINT16_MAX);
    ROUND_TRIP("i32(i32)", id_i32, int32_t, INT32_MIN);
    ROUND_TRIP("u32(u32)", id_u32, uint32_t, UINT32_MAX);
    ROUND_TRIP("i64(i64)", id_i64, int64_t, INT64_MIN);
    ROUND_TRIP("i64(i64)", id_i64, int64_t, INT64_MAX);
    ROUND_TRIP("u64(u64)", id_u64, uint64_t, UINT64_MAX);
    ROUND_TRIP("size(size)", id_size, size_t, SIZE_MAX);
    ROUND_TRIP("ptr(ptr)", id_ptr, void *, (void *)&rt);
    ROUND_TRIP("ptr(ptr)", id_ptr, void *, NULL);
}
END_TEST

START_TEST(floating_point_round_trips_nan_infinity_and_denormals)
{
    ROUND_TRIP("f64(f64)", id_f64, double, NAN);
    ROUND_TRIP("f64(f64)", id_f64, double, -INFINITY);
    ROUND_TRIP("f64(f64)", id_f64, double, DBL_TRUE_MIN); /* the smallest denormal */
    ROUND_TRIP("f64(f64)", id_f64, double, -0.0);
    ROUND_TRIP("f64(f64)", id_f64, double, DBL_MAX);
    ROUND_TRIP("f32(f32)", id_f32, float, NAN);
    ROUND_TRIP("f32(f32)", id_f32, float, FLT_TRUE_MIN);
    ROUND_TRIP("f32(f32)", id_f32, float, -FLT_MAX);
    double in = NAN, out = 0;
    void *args[] = {&in};
    call("f64(f64)", (void (*)(void))id_f64, args, &out, sizeof out, 0);
    ck_assert(isnan(out));
}
END_TEST

/* A three-field struct by value, in and out. */
struct triple {
    int32_t a;
    double b;
    uint8_t c;
};
static struct triple twist(struct triple t, int8_t k)
{
    struct triple r = {t.a + k, t.b * 2, (uint8_t)(t.c ^ 0xff)};
    return r;
}

START_TEST(a_three_field_struct_passes_by_value)
{
    struct triple in = {INT32_MIN + 5, DBL_TRUE_MIN, 0x0f}, out;
    int8_t k = -5;
    void *args[] = {&in, &k};
    call("{i32,f64,u8}({i32,f64,u8},i8)", (void (*)(void))twist, args, &out, sizeof out, 0);
    ck_assert_int_eq(out.a, INT32_MIN);
    ck_assert(out.b == 2 * DBL_TRUE_MIN);
    ck_assert_uint_eq(out.c, 0xf0);
}
END_TEST

/* Every type at once, mixed, with nested structs. */
struct inner {
    uint16_t x;
    float y;
};
struct outer {
    struct inner in;
    int64_t z;
};
static double mix(int8_t a, uint8_t b, int16_t c, uint16_t d, int32_t e, uint32_t f, int64_t g,
                  uint64_t h, size_t i, float j, double k, void *l, struct outer m)
{
    return (double)a + b + c + d + e + f + (double)g + (double)h + (double)i + j + k +
           (l ? 1000 : 0) + m.in.x + m.in.y + (double)m.z;
}

START_TEST(a_call_with_every_type_and_nested_structs)
{
    int8_t a = -1;
    uint8_t b = 2;
    int16_t c = -3;
    uint16_t d = 4;
    int32_t e = -5;
    uint32_t f = 6;
    int64_t g = -7;
    uint64_t h = 8;
    size_t i = 9;
    float j = 0.5f;
    double k = 0.25;
    void *l = &k;
    struct outer m = {{10, 0.125f}, 11};
    void *args[] = {&a, &b, &c, &d, &e, &f, &g, &h, &i, &j, &k, &l, &m};
    double out = 0;
    call("f64(i8, u8, i16, u16, i32, u32, i64, u64, size, f32, f64, ptr, {{u16,f32},i64})",
         (void (*)(void))mix, args, &out, sizeof out, 0);
    ck_assert(out == mix(a, b, c, d, e, f, g, h, i, j, k, l, m));
}
END_TEST

static int void_calls;
static void bump(void)
{
    __atomic_add_fetch(&void_calls, 1, __ATOMIC_RELAXED);
}

START_TEST(void_functions_and_no_arguments)
{
    void_calls = 0;
    mvx_signature *sig = sig_of("void()");
    ck_assert_int_eq(mvx_signature_arg_count(sig), 0);
    ck_assert_uint_eq(mvx_signature_return_size(sig), 0);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn_call(rt, bump, sig, NULL, 0, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    ck_assert_int_eq(mvx_join_take(jh, NULL, 0, NULL), 0);
    mvx_join_release(jh);
    ck_assert_int_eq(void_calls, 1);
    mvx_signature *same = sig_of("void ( void )");
    ck_assert_int_eq(mvx_signature_arg_count(same), 0);
    mvx_signature_release(same);
    mvx_signature_release(sig);
}
END_TEST

/* ---- 10,000 call tasks from several threads, on workers and on the blocking pool ---- */

static uint64_t square(uint32_t x)
{
    return (uint64_t)x * x;
}

struct caller {
    mvx_signature *sig;
    int index;
    pthread_barrier_t *barrier;
};
static void *call_many(void *arg)
{
    struct caller *c = arg;
    enum { N = 2500 };
    mvx_join_handle **jh = malloc(N * sizeof *jh);
    pthread_barrier_wait(c->barrier);
    for (int i = 0; i < N; i++) {
        uint32_t x = (uint32_t)(c->index * N + i);
        void *args[] = {&x};
        unsigned flags = (i % 10 == 0) ? MVX_CALL_BLOCKING : 0;
        ck_assert_int_eq(mvx_spawn_call(rt, (void (*)(void))square, c->sig, args, flags, &jh[i]),
                         0);
    }
    for (int i = 0; i < N; i++) {
        uint64_t out = 0;
        ck_assert_int_eq(mvx_join_wait(jh[i], 10 * SEC), 0);
        ck_assert_int_eq(mvx_join_take(jh[i], &out, sizeof out, NULL), 0);
        uint64_t x = (uint64_t)(c->index * N + i);
        ck_assert_uint_eq(out, x * x);
        mvx_join_release(jh[i]);
    }
    free(jh);
    return NULL;
}

START_TEST(ten_thousand_call_tasks_from_four_threads)
{
    mvx_signature *sig = sig_of("u64(u32)");
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 4);
    struct caller c[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (struct caller){sig, i, &barrier};
        pthread_create(&th[i], NULL, call_many, &c[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    mvx_signature_release(sig);
}
END_TEST

static void copy_later(char *dst, const char *src)
{
    strcpy(dst, src);
}

START_TEST(pointed_to_memory_stays_the_callers_and_arguments_are_copied)
{
    char dst[16] = {0};
    char src[] = "moduvex";
    char *d = dst, *s = src;
    void *args[] = {&d, &s};
    mvx_signature *sig = sig_of("void(ptr,ptr)");
    mvx_join_handle *jh;
    ck_assert_int_eq(
        mvx_spawn_call(rt, (void (*)(void))copy_later, sig, args, MVX_CALL_BLOCKING, &jh), 0);
    d = s = NULL; /* the pointer values were copied at spawn */
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    ck_assert_str_eq(dst, "moduvex");
    mvx_join_release(jh);
    mvx_signature_release(sig);
}
END_TEST

static atomic_int owned_frees;
static void free_owned(void *owned)
{
    ck_assert_ptr_nonnull(owned);
    free(owned);
    atomic_fetch_add(&owned_frees, 1);
}
static void sleep_ms(uint32_t ms)
{
    usleep(ms * 1000u);
}
static size_t length_of(const char *s)
{
    return strlen(s);
}

START_TEST(owned_argument_memory_is_freed_once_after_the_call_or_on_cancel)
{
    atomic_store(&owned_frees, 0);
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    cfg.worker_threads = 1;
    cfg.max_blocking_threads = 1; /* the second job queues behind the first */
    mvx_runtime *one;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &one), 0);
    mvx_signature *len_sig = sig_of("size(ptr)"), *sleep_sig = sig_of("void(u32)");
    char *copy = strdup("the caller's copy");
    void *len_args[] = {&copy};
    uint32_t ms = 50;
    void *sleep_args[] = {&ms};
    mvx_join_handle *sleeper, *queued, *ran;
    ck_assert_int_eq(mvx_spawn_call(one, (void (*)(void))sleep_ms, sleep_sig, sleep_args,
                                    MVX_CALL_BLOCKING, &sleeper), 0);
    char *copy2 = strdup("never read");
    void *queued_args[] = {&copy2};
    ck_assert_int_eq(mvx_spawn_call_owned(one, (void (*)(void))length_of, len_sig, queued_args,
                                          MVX_CALL_BLOCKING, copy2, free_owned, &queued), 0);
    ck_assert_int_eq(mvx_join_abort(queued), 0); /* queued behind the sleeper: never runs */
    ck_assert_int_eq(mvx_join_wait(queued, 5 * SEC), MVX_ECANCELLED);
    ck_assert_int_eq(atomic_load(&owned_frees), 1);
    ck_assert_int_eq(mvx_spawn_call_owned(one, (void (*)(void))length_of, len_sig, len_args, 0,
                                          copy, free_owned, &ran), 0);
    size_t n = 0;
    ck_assert_int_eq(mvx_join_wait(ran, 5 * SEC), 0);
    ck_assert_int_eq(mvx_join_take(ran, &n, sizeof n, NULL), 0);
    ck_assert_uint_eq(n, strlen("the caller's copy"));
    ck_assert_int_eq(atomic_load(&owned_frees), 2);
    ck_assert_int_eq(mvx_join_wait(sleeper, 5 * SEC), 0);
    /* A failed spawn leaves the block with the caller. */
    ck_assert_int_eq(mvx_spawn_call_owned(one, NULL, len_sig, len_args, 0, copy, free_owned, NULL),
                     MVX_EINVAL);
    mvx_runtime_shutdown(one, 5 * SEC);
    char *kept = strdup("kept");
    void *kept_args[] = {&kept};
    ck_assert_int_eq(mvx_spawn_call_owned(one, (void (*)(void))length_of, len_sig, kept_args, 0,
                                          kept, free_owned, NULL), MVX_ESHUTDOWN);
    ck_assert_int_eq(atomic_load(&owned_frees), 2);
    free(kept);
    mvx_join_release(sleeper);
    mvx_join_release(queued);
    mvx_join_release(ran);
    mvx_signature_release(len_sig);
    mvx_signature_release(sleep_sig);
    ck_assert_int_eq(mvx_runtime_release(one), 0);
}
END_TEST

START_TEST(spawn_call_rejects_bad_arguments)
{
    mvx_signature *sig = sig_of("u64(u32)");
    uint32_t x = 1;
    void *args[] = {&x};
    void *null_args[] = {NULL};
    ck_assert_int_eq(mvx_spawn_call(NULL, (void (*)(void))square, sig, args, 0, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_spawn_call(rt, NULL, sig, args, 0, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_spawn_call(rt, (void (*)(void))square, NULL, args, 0, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_spawn_call(rt, (void (*)(void))square, sig, NULL, 0, NULL), MVX_EINVAL);
    ck_assert_int_eq(mvx_spawn_call(rt, (void (*)(void))square, sig, null_args, 0, NULL),
                     MVX_EINVAL);
    ck_assert_int_eq(mvx_spawn_call(rt, (void (*)(void))square, sig, args, 0x80, NULL), MVX_EINVAL);
    ck_assert_ptr_null(mvx_signature_ref(NULL));
    ck_assert_int_eq(mvx_signature_arg_count(NULL), MVX_EINVAL);
    ck_assert_uint_eq(mvx_signature_return_size(NULL), 0);
    mvx_signature_release(NULL);
    ck_assert_int_eq(mvx_signature_parse(NULL, 3, &sig), MVX_EINVAL);
    mvx_signature_release(sig);
}
END_TEST

/* ---- foreign-signature poll and drop callbacks ---- */

/* A binding's poll: returns int8_t, takes (state, cx) only; yields `left` times. */
struct foreign_state {
    int left;
    int polls;
    int *drops;
};
static int8_t foreign_poll(void *state, void *cx)
{
    struct foreign_state *f = state;
    f->polls++;
    if (f->left-- > 0) {
        mvx_waker_wake_by_ref(mvx_context_waker((mvx_context *)cx));
        return MVX_POLL_PENDING;
    }
    return MVX_POLL_READY;
}
/* Its drop returns a value, which the runtime ignores. */
static uint64_t foreign_drop(void *state)
{
    struct foreign_state *f = state;
    __atomic_add_fetch(f->drops, 1, __ATOMIC_RELAXED);
    return 0xdeadbeef;
}
/* A foreign poll that writes an output: (state, cx, output) -> int64_t. */
static int64_t foreign_poll_out(void *state, void *cx, void *output)
{
    (void)cx;
    *(int64_t *)output = *(int64_t *)state * 3;
    return MVX_POLL_READY;
}

START_TEST(foreign_poll_and_drop_drive_a_task_through_wakes)
{
    mvx_signature *poll_sig = sig_of("i8(ptr,ptr)");
    mvx_signature *drop_sig = sig_of("u64(ptr)");
    const mvx_task_vtable vt = {
        .size = sizeof(mvx_task_vtable),
        .poll = (mvx_poll_fn)(void (*)(void))foreign_poll,
        .drop = (void (*)(void *))(void (*)(void))foreign_drop,
        .state_size = sizeof(struct foreign_state),
        .state_align = _Alignof(struct foreign_state),
        .poll_signature = poll_sig,
        .drop_signature = drop_sig,
    };
    int drops = 0;
    mvx_join_handle *jh[50];
    for (int i = 0; i < 50; i++) {
        struct foreign_state s = {i % 7, 0, &drops};
        ck_assert_int_eq(mvx_spawn(rt, &vt, &s, &jh[i]), 0);
    }
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(mvx_join_wait(jh[i], 5 * SEC), 0);
        mvx_join_release(jh[i]);
    }
    ck_assert_int_eq(__atomic_load_n(&drops, __ATOMIC_SEQ_CST), 50);
    /* The same through the blocking pool and a local set. */
    mvx_local_set *set;
    mvx_local_set_new(rt, NULL, &set);
    struct foreign_state s = {3, 0, &drops};
    mvx_join_handle *local;
    ck_assert_int_eq(mvx_local_spawn(set, &vt, &s, &local), 0);
    ck_assert_int_eq(mvx_local_set_run_until(set, local, 5 * SEC), 0);
    mvx_join_release(local);
    mvx_local_set_free(set);
    ck_assert_int_eq(drops, 51);
    mvx_signature_release(poll_sig);
    mvx_signature_release(drop_sig);
}
END_TEST

START_TEST(foreign_poll_writes_the_output)
{
    mvx_signature *poll_sig = sig_of("i64(ptr,ptr,ptr)");
    const mvx_task_vtable vt = {
        .size = sizeof(mvx_task_vtable),
        .poll = (mvx_poll_fn)(void (*)(void))foreign_poll_out,
        .state_size = sizeof(int64_t),
        .state_align = 8,
        .output_size = sizeof(int64_t),
        .output_align = 8,
        .poll_signature = poll_sig,
    };
    int64_t in = -14, out = 0;
    ck_assert_int_eq(mvx_block_on(rt, &vt, &in, &out, sizeof out, NULL), 0);
    ck_assert_int_eq(out, -42);
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn_blocking(rt, &vt, &in, &jh), 0);
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    mvx_join_take(jh, &out, sizeof out, NULL);
    ck_assert_int_eq(out, -42);
    mvx_join_release(jh);
    mvx_signature_release(poll_sig);
}
END_TEST

START_TEST(foreign_signatures_that_cannot_be_callbacks_are_rejected)
{
    const char *bad_polls[] = {"f64(ptr,ptr)", "void(ptr)", "i32(ptr,ptr,ptr,ptr)", "i32(i32)",
                               "{i32}(ptr)"};
    for (size_t i = 0; i < sizeof bad_polls / sizeof bad_polls[0]; i++) {
        mvx_signature *sig = sig_of(bad_polls[i]);
        mvx_task_vtable vt = {
            .size = sizeof vt,
            .poll = empty_poll,
            .poll_signature = sig,
        };
        ck_assert_msg(mvx_spawn(rt, &vt, NULL, NULL) == MVX_EINVAL, "%s accepted", bad_polls[i]);
        ck_assert_ptr_nonnull(strstr(mvx_last_error(), "poll_signature"));
        mvx_signature_release(sig);
    }
    mvx_signature *sig = sig_of("void(ptr,ptr)");
    mvx_task_vtable vt = {
        .size = sizeof vt, .poll = empty_poll, .drop = count_drop, .drop_signature = sig};
    ck_assert_int_eq(mvx_spawn(rt, &vt, NULL, NULL), MVX_EINVAL);
    vt.drop = NULL;
    ck_assert_int_eq(mvx_spawn(rt, &vt, NULL, NULL), MVX_EINVAL); /* signature without drop */
    mvx_signature_release(sig);
}
END_TEST

/* ---- malformed signatures ---- */

static void expect_malformed(const char *text, size_t len, const char *in_message)
{
    mvx_signature *sig = (mvx_signature *)0x1;
    int r = mvx_signature_parse(text, len, &sig);
    ck_assert_msg(r == MVX_EINVAL, "accepted: %.*s", (int)(len > 40 ? 40 : len), text);
    ck_assert_ptr_null(sig);
    const char *msg = mvx_last_error();
    ck_assert_msg(strstr(msg, in_message) != NULL, "message \"%s\" lacks \"%s\"", msg, in_message);
}

START_TEST(malformed_signatures_say_where_and_what_was_expected)
{
    expect_malformed("", 0, "empty");
    expect_malformed("i33(i32)", 8, "at byte 0: unknown type 'i33'");
    expect_malformed("i32(ptr,x)", 10, "at byte 8: unknown type 'x'");
    expect_malformed("i32(ptr", 7, "at byte 7: expected ',' or ')', found the end");
    expect_malformed("i32 ptr)", 8, "expected '(' after the return type");
    expect_malformed("i32(ptr))", 9, "at byte 8: expected nothing after the closing ')'");
    expect_malformed("{i32,f64(ptr)", 13, "expected ',' or '}'");
    expect_malformed("{}(ptr)", 7, "at byte 1: expected void, i8");
    expect_malformed("i32(ptr,)", 9, "at byte 8: expected void, i8");
    expect_malformed("i32(i32,void)", 13, "void is only allowed as the return type");
    expect_malformed("{void}()", 8, "void cannot be a struct member");
    expect_malformed("i32(\x01)", 6, "found byte 0x01");
    expect_malformed("{{{{{{{{{i8}}}}}}}}}()", 22, "nest at most 8 deep");
    char nul[] = "i32(ptr\0,u64)";
    expect_malformed(nul, sizeof nul - 1, "at byte 7: a NUL byte");
    char *big = malloc(10 * 1024 + 1);
    memset(big, ' ', 10 * 1024);
    memcpy(big, "i32(", 4);
    big[10 * 1024 - 1] = ')';
    expect_malformed(big, 10 * 1024, "10240 bytes long");
    /* 33 arguments: one over the limit. */
    char many[512] = "void(";
    for (int i = 0; i < 33; i++)
        strcat(many, i ? ",i8" : "i8");
    strcat(many, ")");
    expect_malformed(many, strlen(many), "at most 32 arguments");
    free(big);
}
END_TEST

START_TEST(a_signature_outlives_its_release_while_tasks_use_it)
{
    mvx_signature *sig = sig_of("u64(u32)");
    ck_assert_ptr_eq(mvx_signature_ref(sig), sig);
    mvx_signature_release(sig); /* back to one reference */
    struct gate g = {0};
    atomic_store(&g.result, MVX_POLL_READY);
    mvx_join_handle *blocker;
    mvx_spawn_blocking(rt, &gate_vt, &g, &blocker); /* keep the pool's only busy thread busy */
    uint32_t x = 12;
    void *args[] = {&x};
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn_call(rt, (void (*)(void))square, sig, args, 0, &jh), 0);
    mvx_signature_release(sig); /* the task's reference keeps it alive */
    uint64_t out = 0;
    ck_assert_int_eq(mvx_join_wait(jh, 5 * SEC), 0);
    ck_assert_int_eq(mvx_join_take(jh, &out, sizeof out, NULL), 0);
    ck_assert_uint_eq(out, 144);
    mvx_join_release(jh); /* frees the task and then the signature */
    atomic_store(&g.open, 1);
    mvx_join_wait(blocker, 5 * SEC);
    mvx_join_release(blocker);
}
END_TEST

static Suite *ffi_suite(void)
{
    Suite *s = suite_create("ffi");
    TCase *tc = tcase_create("ffi");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_integer_type_round_trips_at_its_extremes);
    tcase_add_test(tc, floating_point_round_trips_nan_infinity_and_denormals);
    tcase_add_test(tc, a_three_field_struct_passes_by_value);
    tcase_add_test(tc, a_call_with_every_type_and_nested_structs);
    tcase_add_test(tc, void_functions_and_no_arguments);
    tcase_add_test(tc, ten_thousand_call_tasks_from_four_threads);
    tcase_add_test(tc, pointed_to_memory_stays_the_callers_and_arguments_are_copied);
    tcase_add_test(tc, spawn_call_rejects_bad_arguments);
    tcase_add_test(tc, owned_argument_memory_is_freed_once_after_the_call_or_on_cancel);
    tcase_add_test(tc, foreign_poll_and_drop_drive_a_task_through_wakes);
    tcase_add_test(tc, foreign_poll_writes_the_output);
    tcase_add_test(tc, foreign_signatures_that_cannot_be_callbacks_are_rejected);
    tcase_add_test(tc, malformed_signatures_say_where_and_what_was_expected);
    tcase_add_test(tc, a_signature_outlives_its_release_while_tasks_use_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ffi_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
