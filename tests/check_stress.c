/*
 * check_stress.c - millions of spawn / wake / abort / join / release interleavings from several
 * threads at once, for MVX_STRESS_SECONDS (default 20).
 *
 * Exactly-once accounting: every task gets an id; spawning marks its slot alive, the drop
 * callback must find it alive and marks it dead (a second drop or a drop of a never-spawned id
 * fails), and at the end every spawned task must have been dropped once. Outputs: every READY
 * produces one, which must be taken or dropped exactly once.
 * Watchdog: every blocking join waits at most WATCHDOG_NS; a timeout is a lost wake-up.
 * The operations-per-second figure is printed to the test log.
 */
#include "helpers.h"

#include <stdio.h>

#define WATCHDOG_NS (15 * SEC)
#define IDS         (1u << 22)

static atomic_uchar alive[IDS];
static atomic_uint next_id;
static atomic_long spawned, dropped, bad_drops, outputs_made, outputs_taken, outputs_dropped;
static atomic_long ops, lost_wakeups;

static unsigned new_id(void)
{
    unsigned id = atomic_fetch_add(&next_id, 1) & (IDS - 1);
    unsigned char was = atomic_exchange(&alive[id], 1);
    if (was)
        atomic_fetch_add(&bad_drops, 1); /* 4M tasks in flight: cannot happen */
    atomic_fetch_add(&spawned, 1);
    return id;
}
static void drop_id(unsigned id)
{
    if (atomic_exchange(&alive[id], 0) != 1)
        atomic_fetch_add(&bad_drops, 1);
    atomic_fetch_add(&dropped, 1);
}
static void output_drop(void *out)
{
    (void)out;
    atomic_fetch_add(&outputs_dropped, 1);
}

/* ---- task types ---- */

struct simple {
    unsigned id;
    int left; /* yields before completing; -1: pending forever; -2: fail */
};
static void simple_drop(void *state)
{
    drop_id(((struct simple *)state)->id);
}
static int simple_poll(void *state, mvx_context *cx, void *output)
{
    struct simple *s = state;
    if (s->left == -1)
        return MVX_POLL_PENDING;
    if (s->left == -2) {
        mvx_context_fail(cx, 1, "stress", malloc(8), free);
        return MVX_POLL_FAILED;
    }
    if (s->left-- > 0) {
        mvx_waker_wake_by_ref(mvx_context_waker(cx));
        return MVX_POLL_PENDING;
    }
    *(unsigned *)output = s->id;
    atomic_fetch_add(&outputs_made, 1);
    return MVX_POLL_READY;
}
static const mvx_task_vtable simple_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = simple_poll,
    .drop = simple_drop,
    .output_drop = output_drop,
    .state_size = sizeof(struct simple),
    .state_align = _Alignof(struct simple),
    .output_size = sizeof(unsigned),
    .output_align = _Alignof(unsigned),
};

/* A refcounted mailbox woken from another thread. */
struct box {
    atomic_int refs;
    pthread_mutex_t lock;
    mvx_waker waker;
    atomic_int ready;
    unsigned id;
};
static void box_unref(struct box *b)
{
    if (atomic_fetch_sub(&b->refs, 1) == 1) {
        mvx_waker_drop(&b->waker);
        pthread_mutex_destroy(&b->lock);
        free(b);
    }
}
static void box_drop(void *state)
{
    struct box *b = state;
    drop_id(b->id);
    pthread_mutex_lock(&b->lock);
    mvx_waker w = b->waker; /* the task's own waker: dropped outside the lock */
    b->waker.vtable = NULL;
    pthread_mutex_unlock(&b->lock);
    mvx_waker_drop(&w);
    box_unref(b);
}
static int box_poll(void *state, mvx_context *cx, void *output)
{
    struct box *b = state;
    if (!atomic_load(&b->ready)) {
        mvx_waker old, fresh;
        mvx_waker_clone(mvx_context_waker(cx), &fresh);
        pthread_mutex_lock(&b->lock);
        old = b->waker;
        b->waker = fresh;
        pthread_mutex_unlock(&b->lock);
        mvx_waker_drop(&old);
        if (!atomic_load(&b->ready))
            return MVX_POLL_PENDING;
    }
    *(unsigned *)output = b->id;
    atomic_fetch_add(&outputs_made, 1);
    return MVX_POLL_READY;
}
static const mvx_task_vtable box_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = box_poll,
    .drop = box_drop,
    .output_drop = output_drop,
    .output_size = sizeof(unsigned),
    .output_align = _Alignof(unsigned),
};
static void box_deliver(struct box *b, bool by_value)
{
    atomic_store(&b->ready, 1);
    pthread_mutex_lock(&b->lock);
    mvx_waker w = {NULL, NULL};
    if (by_value) {
        w = b->waker;
        b->waker.vtable = NULL;
    } else {
        mvx_waker_wake_by_ref(&b->waker);
    }
    pthread_mutex_unlock(&b->lock);
    mvx_waker_wake(&w);
}

/* A parent that spawns children on its worker and awaits each join handle. */
struct parent {
    unsigned id;
    int n, next;
    mvx_join_handle *kids[4];
};
static void parent_drop(void *state)
{
    struct parent *p = state;
    for (int i = p->next; i < p->n; i++)
        if (p->kids[i]) {
            if (i % 2)
                mvx_join_abort(p->kids[i]);
            mvx_join_release(p->kids[i]);
        }
    drop_id(p->id);
}
static int parent_poll(void *state, mvx_context *cx, void *output)
{
    struct parent *p = state;
    if (p->n == 0) {
        p->n = 1 + (int)(p->id % 4);
        for (int i = 0; i < p->n; i++) {
            struct simple s = {new_id(), (int)(p->id + (unsigned)i) % 3};
            if (mvx_spawn(mvx_runtime_current(), &simple_vt, &s, &p->kids[i]) != 0) {
                drop_id(s.id); /* never spawned: account for it ourselves */
                p->kids[i] = NULL;
            }
        }
    }
    while (p->next < p->n) {
        mvx_join_handle *k = p->kids[p->next];
        if (k) {
            int r = mvx_join_poll(k, mvx_context_waker(cx));
            if (r == MVX_EAGAIN)
                return MVX_POLL_PENDING;
            unsigned v;
            if (r == 0 && mvx_join_take(k, &v, sizeof v, NULL) == 0)
                atomic_fetch_add(&outputs_taken, 1);
            mvx_join_release(k);
            p->kids[p->next] = NULL;
        }
        p->next++;
    }
    *(unsigned *)output = p->id;
    atomic_fetch_add(&outputs_made, 1);
    return MVX_POLL_READY;
}
static const mvx_task_vtable parent_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = parent_poll,
    .drop = parent_drop,
    .output_drop = output_drop,
    .state_size = sizeof(struct parent),
    .state_align = _Alignof(struct parent),
    .output_size = sizeof(unsigned),
    .output_align = _Alignof(unsigned),
};

/* ---- cross-thread hand-off of boxes to deliver ---- */

#define HANDOFF 1024
static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static struct box *handoff[HANDOFF];
static int handoff_len;

static bool handoff_push(struct box *b)
{
    pthread_mutex_lock(&handoff_lock);
    bool ok = handoff_len < HANDOFF;
    if (ok)
        handoff[handoff_len++] = b;
    pthread_mutex_unlock(&handoff_lock);
    return ok;
}
static struct box *handoff_pop(void)
{
    pthread_mutex_lock(&handoff_lock);
    struct box *b = handoff_len ? handoff[--handoff_len] : NULL;
    pthread_mutex_unlock(&handoff_lock);
    return b;
}

/* ---- the driver threads ---- */

struct driver {
    mvx_runtime *rt;
    int64_t deadline;
    unsigned seed;
    pthread_barrier_t *barrier;
};

static unsigned rnd(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* A foreign waker on the heap: a finished task keeps its join waker until it is freed, which
 * may be after the handle is released. */
struct heap_waker {
    atomic_int refs;
};
static void *hw_clone(void *d)
{
    atomic_fetch_add(&((struct heap_waker *)d)->refs, 1);
    return d;
}
static void hw_drop(void *d)
{
    if (atomic_fetch_sub(&((struct heap_waker *)d)->refs, 1) == 1)
        free(d);
}
static void hw_wake_by_ref(void *d)
{
    (void)d;
}
static void hw_wake(void *d)
{
    hw_drop(d);
}
static const mvx_waker_vtable heap_waker_vt = {
    sizeof(mvx_waker_vtable), hw_clone, hw_wake, hw_wake_by_ref, hw_drop,
};

/* Waits (with the watchdog) and takes or drops the outcome. */
static void finish_handle(mvx_join_handle *jh, unsigned *seed)
{
    int r;
    switch (rnd(seed) % 4) {
    case 0: { /* async registration, then block */
        struct heap_waker *hw = malloc(sizeof *hw);
        atomic_init(&hw->refs, 1);
        mvx_waker w = {&heap_waker_vt, hw};
        r = mvx_join_poll(jh, &w);
        mvx_waker_drop(&w);
        if (r == MVX_EAGAIN)
            r = mvx_join_wait(jh, WATCHDOG_NS);
        atomic_fetch_add(&ops, 2);
        mvx_join_release(jh);
        if (r == MVX_ETIMEDOUT)
            atomic_fetch_add(&lost_wakeups, 1);
        return;
    }
    case 1: /* abort, then wait */
        mvx_join_abort(jh);
        atomic_fetch_add(&ops, 1);
        /* fall through */
    default:
        r = mvx_join_wait(jh, WATCHDOG_NS);
        atomic_fetch_add(&ops, 1);
        if (r == MVX_ETIMEDOUT) {
            atomic_fetch_add(&lost_wakeups, 1);
        } else if (r == 0) {
            unsigned v;
            if (mvx_join_take(jh, &v, sizeof v, NULL) == 0)
                atomic_fetch_add(&outputs_taken, 1);
        } else if (r == MVX_EFAILED && rnd(seed) % 2) {
            mvx_failure f = {.size = sizeof f};
            mvx_join_take(jh, NULL, 0, &f);
            mvx_failure_clear(&f);
        }
        mvx_join_release(jh);
        atomic_fetch_add(&ops, 1);
    }
}

static void one_round(struct driver *d)
{
    mvx_join_handle *jh = NULL;
    unsigned pick = rnd(&d->seed) % 100;
    if (pick < 35) { /* yielding tasks */
        struct simple s = {new_id(), (int)(rnd(&d->seed) % 4)};
        bool detach = rnd(&d->seed) % 5 == 0;
        if (mvx_spawn(d->rt, &simple_vt, &s, detach ? NULL : &jh) != 0) {
            drop_id(s.id);
            return;
        }
        atomic_fetch_add(&ops, 1);
        if (jh)
            finish_handle(jh, &d->seed);
    } else if (pick < 65) { /* tasks woken from another thread */
        struct box *b = calloc(1, sizeof *b);
        pthread_mutex_init(&b->lock, NULL);
        atomic_store(&b->refs, 2); /* the task's and the deliverer's */
        b->id = new_id();
        if (mvx_spawn(d->rt, &box_vt, b, &jh) != 0) {
            drop_id(b->id);
            box_unref(b);
            box_unref(b);
            return;
        }
        atomic_fetch_add(&ops, 1);
        if (!handoff_push(b)) {
            box_deliver(b, true);
            box_unref(b);
        }
        struct box *other = handoff_pop();
        if (other) {
            box_deliver(other, rnd(&d->seed) % 2);
            box_unref(other);
            atomic_fetch_add(&ops, 1);
        }
        if (rnd(&d->seed) % 4 == 0) {
            mvx_join_release(jh); /* detach: its deliverer still completes it */
            atomic_fetch_add(&ops, 1);
        } else {
            finish_handle(jh, &d->seed);
        }
    } else if (pick < 85) { /* a parent awaiting children spawned from inside it */
        struct parent p = {new_id(), 0, 0, {NULL}};
        if (mvx_spawn(d->rt, &parent_vt, &p, &jh) != 0) {
            drop_id(p.id);
            return;
        }
        atomic_fetch_add(&ops, 1);
        finish_handle(jh, &d->seed);
    } else if (pick < 93) { /* pending forever: aborted, or released and so unreachable */
        struct simple s = {new_id(), -1};
        if (mvx_spawn(d->rt, &simple_vt, &s, &jh) != 0) {
            drop_id(s.id);
            return;
        }
        atomic_fetch_add(&ops, 1);
        if (rnd(&d->seed) % 2) {
            mvx_join_abort(jh);
            if (mvx_join_wait(jh, WATCHDOG_NS) == MVX_ETIMEDOUT)
                atomic_fetch_add(&lost_wakeups, 1);
        }
        mvx_join_release(jh);
        atomic_fetch_add(&ops, 2);
    } else { /* failures */
        struct simple s = {new_id(), -2};
        if (mvx_spawn(d->rt, &simple_vt, &s, &jh) != 0) {
            drop_id(s.id);
            return;
        }
        atomic_fetch_add(&ops, 1);
        finish_handle(jh, &d->seed);
    }
}

static void *driver_main(void *arg)
{
    struct driver *d = arg;
    pthread_barrier_wait(d->barrier);
    struct timespec now;
    do {
        for (int i = 0; i < 64; i++)
            one_round(d);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec * SEC + now.tv_nsec < d->deadline && atomic_load(&lost_wakeups) == 0);
    return NULL;
}

static int stress_seconds(void)
{
    const char *env = getenv("MVX_STRESS_SECONDS");
    int seconds = env ? atoi(env) : 20;
    return seconds > 0 ? seconds : 20;
}

START_TEST(millions_of_interleavings_drop_everything_exactly_once)
{
    int seconds = stress_seconds();
    mvx_runtime *rt = new_runtime(2);
    enum { N = 4 };
    pthread_t th[N];
    struct driver d[N];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++) {
        d[i] = (struct driver){rt, t0.tv_sec * SEC + t0.tv_nsec + seconds * SEC,
                               0x9e3779b9u * (unsigned)(i + 1), &barrier};
        pthread_create(&th[i], NULL, driver_main, &d[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_int_eq(atomic_load(&lost_wakeups), 0);
    /* Boxes still waiting for a deliverer: deliver them, so everything can finish. */
    struct box *b;
    while ((b = handoff_pop()) != NULL) {
        box_deliver(b, true);
        box_unref(b);
    }
    ck_assert_int_eq(mvx_runtime_shutdown(rt, 30 * SEC), 0);
    ck_assert_int_eq(mvx_runtime_release(rt), 0);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr,
            "stress: %ld operations in %.1f s = %.0f ops/s; %ld tasks spawned, %ld dropped; "
            "outputs: %ld made, %ld taken, %ld dropped\n",
            atomic_load(&ops), secs, (double)atomic_load(&ops) / secs, atomic_load(&spawned),
            atomic_load(&dropped), atomic_load(&outputs_made), atomic_load(&outputs_taken),
            atomic_load(&outputs_dropped));
    ck_assert_int_eq(atomic_load(&bad_drops), 0);
    ck_assert_int_eq(atomic_load(&dropped), atomic_load(&spawned));
    ck_assert_int_eq(atomic_load(&outputs_made),
                     atomic_load(&outputs_taken) + atomic_load(&outputs_dropped));
    ck_assert_int_gt(atomic_load(&ops), 1000);
    pthread_barrier_destroy(&barrier);
}
END_TEST

static Suite *stress_suite(void)
{
    Suite *s = suite_create("stress");
    TCase *tc = tcase_create("stress");
    tcase_set_timeout(tc, 600 + stress_seconds()); /* long soaks (make soak) included */
    tcase_add_test(tc, millions_of_interleavings_drop_everything_exactly_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stress_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
