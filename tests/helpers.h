/*
 * helpers.h - task types and utilities shared by the Check suites. Every task type counts its
 * polls and drops so that tests can assert exactly-once behaviour.
 */
#ifndef MVX_TEST_HELPERS_H
#define MVX_TEST_HELPERS_H

#include "config.h" /* _GNU_SOURCE: pthread_getname_np, sched_getaffinity */

/* Each suite uses a subset of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-const-variable"

#include <check.h>
#include <moduvex.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

/* The round counts of the long tests, divided by MVX_TEST_SCALE (default 1, or 20 under
 * valgrind, which runs one thread at a time and 20-50 times slower). Never below 1. */
static int scaled(int n)
{
    static atomic_int div; /* computed once; test threads may race to compute it, harmlessly */
    int d = atomic_load_explicit(&div, memory_order_relaxed);
    if (!d) {
        const char *e = getenv("MVX_TEST_SCALE");
        d = e && atoi(e) > 0 ? atoi(e) : RUNNING_ON_VALGRIND ? 20 : 1;
        atomic_store_explicit(&div, d, memory_order_relaxed);
    }
    return n / d > 0 ? n / d : 1;
}

#define SEC ((int64_t)1000000000)
#define MS  ((int64_t)1000000)

/* ---- counters every test resets ---- */
static atomic_int g_drops;        /* state drops */
static atomic_int g_output_drops; /* output_drop calls */
static atomic_int g_polls;

static int64_t test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static void reset_counters(void)
{
    atomic_store(&g_drops, 0);
    atomic_store(&g_output_drops, 0);
    atomic_store(&g_polls, 0);
}

static mvx_runtime *new_runtime(unsigned workers)
{
    mvx_runtime_config cfg;
    ck_assert_int_eq(mvx_runtime_config_init(&cfg, sizeof cfg), 0);
    cfg.worker_threads = workers;
    mvx_runtime *rt = NULL;
    ck_assert_int_eq(mvx_runtime_new(&cfg, &rt), 0);
    ck_assert_ptr_nonnull(rt);
    return rt;
}

/* Whether this system lets a thread switch itself to SCHED_BATCH (a sandbox may refuse): where
 * it does not, the blocking pool's threads stay as they were. */
static void *try_batch(void *arg)
{
    struct sched_param param = {.sched_priority = 0};
    *(bool *)arg = pthread_setschedparam(pthread_self(), SCHED_BATCH, &param) == 0;
    return NULL;
}
static bool batch_allowed(void)
{
    bool allowed = false;
    pthread_t probe;
    ck_assert_int_eq(pthread_create(&probe, NULL, try_batch, &allowed), 0);
    ck_assert_int_eq(pthread_join(probe, NULL), 0);
    return allowed;
}

/* The time slice of the calling thread (sched_attr.sched_runtime, EEVDF's per-thread slice on
 * Linux 6.12 and later), and setting it (0: the kernel's default); the first version of the
 * kernel's struct, which glibc does not declare. */
struct test_sched_attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
};
static uint64_t thread_slice_ns(void)
{
    struct test_sched_attr a = {0};
    ck_assert_int_eq(syscall(SYS_sched_getattr, 0, &a, sizeof a, 0), 0);
    return a.runtime;
}
static bool set_thread_slice(uint64_t ns)
{
    struct test_sched_attr a = {0};
    ck_assert_int_eq(syscall(SYS_sched_getattr, 0, &a, sizeof a, 0), 0);
    a.size = sizeof a;
    a.runtime = ns;
    return syscall(SYS_sched_setattr, 0, &a, 0) == 0;
}
/* Whether this kernel keeps a slice per thread, and its default one (a probe thread asks for
 * 3 ms, then for the default). */
static void *probe_slices(void *arg)
{
    uint64_t *out = arg;
    if (set_thread_slice(3000000) && thread_slice_ns() == 3000000 && set_thread_slice(0))
        *out = thread_slice_ns();
    return NULL;
}
static uint64_t kernel_default_slice(void) /* 0: no slice per thread here */
{
    uint64_t slice = 0;
    pthread_t probe;
    ck_assert_int_eq(pthread_create(&probe, NULL, probe_slices, &slice), 0);
    ck_assert_int_eq(pthread_join(probe, NULL), 0);
    return slice;
}
#define WORKER_SLICE_DEFAULT_NS 100000 /* mvx_runtime_config.worker_slice_ns = 0 */

/* A task whose output is the scheduling policy and time slice of the thread that runs it. */
struct sched_seen {
    int policy;
    uint64_t slice_ns;
};
static struct sched_seen sched_of_this_thread(void)
{
    return (struct sched_seen){sched_getscheduler(0), thread_slice_ns()};
}
static int sched_seen_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    *(struct sched_seen *)output = sched_of_this_thread();
    return MVX_POLL_READY;
}
static const mvx_task_vtable sched_seen_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = sched_seen_poll,
    .output_size = sizeof(struct sched_seen),
    .output_align = _Alignof(struct sched_seen),
};
/* Waits for a sched_seen_vt task and takes what it saw. */
static struct sched_seen take_sched_seen(mvx_join_handle *jh)
{
    ck_assert_int_eq(mvx_join_wait(jh, 30 * SEC), 0);
    struct sched_seen seen = {-1, 0};
    ck_assert_int_eq(mvx_join_take(jh, &seen, sizeof seen, NULL), 0);
    mvx_join_release(jh);
    return seen;
}
/* Runs a sched_seen_vt job on rt's blocking pool. */
static struct sched_seen blocking_job_sched(mvx_runtime *rt)
{
    mvx_join_handle *jh;
    ck_assert_int_eq(mvx_spawn_blocking(rt, &sched_seen_vt, NULL, &jh), 0);
    return take_sched_seen(jh);
}

/* The policy a job on rt's blocking pool ran under. */
static int blocking_job_policy(mvx_runtime *rt)
{
    return blocking_job_sched(rt).policy;
}

static void count_drop(void *state)
{
    (void)state;
    atomic_fetch_add(&g_drops, 1);
}
static void count_output_drop(void *output)
{
    (void)output;
    atomic_fetch_add(&g_output_drops, 1);
}

/* ---- "yielder": yields `left` times, then outputs `value` ---- */
struct yielder {
    int left;
    int value;
};
static int yielder_poll(void *state, mvx_context *cx, void *output)
{
    struct yielder *y = state;
    atomic_fetch_add(&g_polls, 1);
    if (y->left-- > 0) {
        mvx_waker_wake_by_ref(mvx_context_waker(cx));
        return MVX_POLL_PENDING;
    }
    *(int *)output = y->value;
    return MVX_POLL_READY;
}
static const mvx_task_vtable yielder_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = yielder_poll,
    .drop = count_drop,
    .output_drop = count_output_drop,
    .state_size = sizeof(struct yielder),
    .state_align = _Alignof(struct yielder),
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

/* ---- "mailbox": a task parked on a waker slot that tests control ---- */
struct mailbox {
    pthread_mutex_t lock;
    mvx_waker waker;  /* the parked task's waker, if any */
    atomic_int ready; /* the task completes once this is set */
    atomic_int polls;
    void *seen_state; /* the state pointer poll received */
};
static void mailbox_init(struct mailbox *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
}
static void mailbox_fini(struct mailbox *m)
{
    mvx_waker_drop(&m->waker);
    pthread_mutex_destroy(&m->lock);
}
/* Sets ready and wakes the task (by value: the stored waker is consumed). */
static void mailbox_deliver(struct mailbox *m)
{
    atomic_store(&m->ready, 1);
    pthread_mutex_lock(&m->lock);
    mvx_waker w = m->waker;
    m->waker.vtable = NULL;
    m->waker.data = NULL;
    pthread_mutex_unlock(&m->lock);
    mvx_waker_wake(&w);
}
static void mailbox_wake_only(struct mailbox *m)
{
    pthread_mutex_lock(&m->lock);
    mvx_waker_wake_by_ref(&m->waker);
    pthread_mutex_unlock(&m->lock);
}
/* State: a pointer to the mailbox (state_size 0). */
static int mailbox_poll(void *state, mvx_context *cx, void *output)
{
    struct mailbox *m = state;
    atomic_fetch_add(&g_polls, 1);
    atomic_fetch_add(&m->polls, 1);
    m->seen_state = state;
    if (atomic_load(&m->ready)) {
        *(int *)output = 7;
        return MVX_POLL_READY;
    }
    pthread_mutex_lock(&m->lock);
    mvx_waker_drop(&m->waker);
    mvx_waker_clone(mvx_context_waker(cx), &m->waker);
    pthread_mutex_unlock(&m->lock);
    if (atomic_load(&m->ready)) { /* delivered while we stored the waker */
        *(int *)output = 7;
        return MVX_POLL_READY;
    }
    return MVX_POLL_PENDING;
}
static const mvx_task_vtable mailbox_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = mailbox_poll,
    .drop = count_drop,
    .output_drop = count_output_drop,
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

/* ---- "forever": pending forever, keeps no waker ---- */
static int forever_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    atomic_fetch_add(&g_polls, 1);
    return MVX_POLL_PENDING;
}
static const mvx_task_vtable forever_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = forever_poll,
    .drop = count_drop,
};

/* ---- "empty": completes at once, no state, no output ---- */
static int empty_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)cx;
    (void)output;
    atomic_fetch_add(&g_polls, 1);
    return MVX_POLL_READY;
}
static const mvx_task_vtable empty_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = empty_poll,
    .drop = count_drop,
};

/* ---- "failer": fails with a code, a message and a payload ---- */
static atomic_int g_payload_drops;
static void payload_drop(void *p)
{
    atomic_fetch_add(&g_payload_drops, 1);
    free(p);
}
static int failer_poll(void *state, mvx_context *cx, void *output)
{
    (void)state;
    (void)output;
    int *payload = malloc(sizeof *payload);
    *payload = 1234;
    mvx_context_fail(cx, 77, "it broke", payload, payload_drop);
    return MVX_POLL_FAILED;
}
static const mvx_task_vtable failer_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = failer_poll,
    .drop = count_drop,
    .output_drop = count_output_drop,
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

/* ---- "gate": blocks inside poll until released, for races with a running task ---- */
struct gate {
    atomic_int entered; /* incremented when poll starts */
    atomic_int open;    /* poll returns once this is set */
    atomic_int result;  /* MVX_POLL_* to return */
    atomic_int wake_self_first;
};
static int gate_poll(void *state, mvx_context *cx, void *output)
{
    struct gate *g = state;
    atomic_fetch_add(&g_polls, 1);
    atomic_fetch_add(&g->entered, 1);
    while (!atomic_load(&g->open))
        sched_yield();
    atomic_store(&g->open, 0);
    if (atomic_load(&g->wake_self_first))
        mvx_waker_wake_by_ref(mvx_context_waker(cx));
    int r = atomic_load(&g->result);
    if (r == MVX_POLL_READY)
        *(int *)output = 5;
    return r;
}
static const mvx_task_vtable gate_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = gate_poll,
    .drop = count_drop,
    .output_drop = count_output_drop,
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};
static void gate_wait_entered(struct gate *g, int n)
{
    while (atomic_load(&g->entered) < n)
        sched_yield();
}

/* ---- a foreign waker: counts wakes; refcounted and freed with its last reference, because a
 * task may drop its join waker after the test has moved on (a completer drops its own reference
 * only after waking the joiner). The test holds one reference: `refs` is 1 when only it is left.
 * ---- */
struct flag_waker {
    atomic_int refs;
    atomic_int wakes;
};
static struct flag_waker *flag_waker_new(void)
{
    struct flag_waker *fw = calloc(1, sizeof *fw);
    atomic_init(&fw->refs, 1);
    return fw;
}
static void *fw_clone(void *d)
{
    atomic_fetch_add(&((struct flag_waker *)d)->refs, 1);
    return d;
}
static void fw_wake_by_ref(void *d)
{
    atomic_fetch_add(&((struct flag_waker *)d)->wakes, 1);
}
static void fw_drop(void *d)
{
    if (atomic_fetch_sub(&((struct flag_waker *)d)->refs, 1) == 1)
        free(d);
}
/* Drops the test's own reference. */
static void flag_waker_put(struct flag_waker *fw)
{
    fw_drop(fw);
}
static void fw_wake(void *d)
{
    fw_wake_by_ref(d);
    fw_drop(d);
}
static const mvx_waker_vtable flag_waker_vt = {
    sizeof(mvx_waker_vtable), fw_clone, fw_wake, fw_wake_by_ref, fw_drop,
};

static void wait_until_int(atomic_int *v, int expected, int64_t timeout_ns)
{
    struct timespec ts = {0, 100000};
    for (int64_t waited = 0; atomic_load(v) != expected; waited += 100000) {
        ck_assert_msg(waited < timeout_ns, "timed out waiting for %d (now %d)", expected,
                      atomic_load(v));
        nanosleep(&ts, NULL);
    }
}

#endif
