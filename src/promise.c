/*
 * promise.c - tasks completed from outside.
 *
 * A promise is a task that is never polled. It is spawned IDLE, holding two references: the
 * promise's (mvx_promise * is the task pointer, as a join handle is) and the join handle's. The
 * outcome is decided by the task's state word as for every task:
 *
 *   IDLE --resolve/fail: claim (CAS to RUNNING)--> RUNNING --output or failure--> COMPLETE
 *     |
 *     +--abort, shutdown, promise release, last reference: CANCEL, scheduled--> CANCELLED
 *
 * Whoever moves the word first wins; a resolve that finds the task RUNNING or COMPLETE returns
 * MVX_EALREADY, one that finds CANCEL returns MVX_ECANCELLED. A cancellation schedules the task
 * like any idle task, and the promise's scheduler cancels it on the spot (task.c), then wakes the
 * producer's cancel waker (mvx__promise_cancelled), once the task is CANCELLED.
 *
 * The state, inline in the task, holds the task's own vtable (output size and drop vary per
 * promise, and the vtable must live as long as the task) and the cancel waker under a small
 * spinlock. It stays readable after it is "dropped" because the promise's reference keeps the
 * slot; its first word is left free for the failure record a failed task keeps there.
 */
#include "arena.h"
#include "runtime.h"
#include "task.h"
#include "worker.h"

#include <sched.h>
#include <string.h>

struct promise_state {
    void *failure_slot; /* a failed task's record goes here (task.h: the state area) */
    mvx_task_vtable vt;
    _Atomic uint32_t lock;
    bool resolving; /* claimed by resolve or fail */
    bool cancelled; /* dropped without being claimed */
    mvx_waker on_cancel;
};

static inline struct mvx__task *task_of(const mvx_promise *p)
{
    return (struct mvx__task *)p;
}
static inline struct promise_state *state_of(const mvx_promise *p)
{
    return mvx__task_state_area(task_of(p));
}

static void lock(struct promise_state *ps)
{
    while (atomic_exchange_explicit(&ps->lock, 1, mvx__acquire))
        while (atomic_load_explicit(&ps->lock, mvx__relaxed))
            sched_yield(); /* held for a few instructions; the holder may be preempted */
}
static void unlock(struct promise_state *ps)
{
    atomic_store_explicit(&ps->lock, 0, mvx__release);
}

static int promise_poll(void *state, mvx_context *cx, void *output)
{
    /* Unreachable: a promise is only ever scheduled to be cancelled. */
    (void)state, (void)cx, (void)output;
    return MVX_POLL_PENDING;
}

/* The state is dropped: by the resolver, whose outcome makes the cancel waker useless, or by a
 * cancellation, which keeps it for mvx__promise_cancelled: woken from here the producer could
 * look at the task before it is CANCELLED. */
static void promise_drop(void *state)
{
    struct promise_state *ps = state;
    mvx_waker w = {NULL, NULL};
    lock(ps);
    if (ps->resolving) {
        w = ps->on_cancel;
        ps->on_cancel = (mvx_waker){NULL, NULL};
    } else {
        ps->cancelled = true;
    }
    unlock(ps);
    mvx_waker_drop(&w);
}

void mvx__promise_cancelled(struct mvx__task *t)
{
    struct promise_state *ps = mvx__task_state_area(t);
    lock(ps);
    mvx_waker w = ps->on_cancel;
    ps->on_cancel = (mvx_waker){NULL, NULL};
    unlock(ps);
    mvx_waker_wake(&w);
}

static bool valid_align(size_t a)
{
    return a == 0 || (a <= 16 && (a & (a - 1)) == 0);
}

MVX_EXTERN int mvx_spawn_promise(mvx_runtime *rt, size_t output_size, size_t output_align,
                                 void (*output_drop)(void *output), mvx_promise **promise,
                                 mvx_join_handle **join)
{
    if (!rt || !promise)
        return mvx__error(MVX_EINVAL, "mvx_spawn_promise: rt or promise is NULL");
    if (!valid_align(output_align))
        return mvx__error(MVX_EINVAL,
                          "mvx_spawn_promise: output_align must be 0 or a power of two up to 16");
    if (output_size > MVX_INLINE_MAX)
        return mvx__error(MVX_EINVAL, "mvx_spawn_promise: output_size %zu is above %d",
                          output_size, MVX_INLINE_MAX);
    struct promise_state st = {
        .vt = {.size = sizeof(mvx_task_vtable),
               .poll = promise_poll,
               .drop = promise_drop,
               .output_drop = output_drop,
               .state_size = sizeof(struct promise_state),
               .state_align = _Alignof(struct promise_state),
               .output_size = output_size,
               .output_align = output_align},
    };
    struct mvx__task_layout layout;
    int r = mvx__task_layout("mvx_spawn_promise", &st.vt, false, &layout);
    if (r)
        return r;
    if (atomic_load_explicit(&rt->phase, mvx__relaxed) != MVX__PHASE_RUNNING)
        return mvx__error(MVX_ESHUTDOWN, "mvx_spawn_promise: the runtime is shut down");
    struct mvx__worker *w = mvx__tl_worker;
    struct mvx__heap *heap = w && w->rt == rt ? w->heap : mvx__arena_thread_heap(&rt->arena);
    struct mvx__task *t = heap ? mvx__heap_alloc(heap, mvx__size_class(layout.size)) : NULL;
    if (!t)
        return mvx__error(MVX_ENOMEM, "mvx_spawn_promise: out of memory");
    struct promise_state *ps = (void *)((char *)t + layout.state_off);
    memcpy(ps, &st, sizeof st);
    mvx__task_init_as(t, &ps->vt, ps, &layout, &rt->promise_sched, 0, join != NULL, MVX__IDLE);
    *promise = (mvx_promise *)t;
    if (join)
        *join = (mvx_join_handle *)t;
    /* A shutdown that began meanwhile may have swept the arena before this task was in it. */
    if (MVX_UNLIKELY(atomic_load_explicit(&rt->phase, mvx__seq_cst) != MVX__PHASE_RUNNING))
        mvx__task_request_cancel(t);
    return 0;
}

/* Claims the task for an outcome, marking the state so that its drop tells nobody. */
static int claim(const char *fn, mvx_promise *p)
{
    int r = mvx__task_claim(task_of(p));
    if (r == MVX_EALREADY)
        return mvx__error(r, "%s: the promise was resolved or failed before", fn);
    if (r == MVX_ECANCELLED)
        return mvx__error(r, "%s: the promise's task was cancelled", fn);
    struct promise_state *ps = state_of(p);
    lock(ps);
    ps->resolving = true;
    unlock(ps);
    return 0;
}

MVX_EXTERN int mvx_promise_resolve(mvx_promise *promise, const void *output)
{
    if (!promise)
        return mvx__error(MVX_EINVAL, "mvx_promise_resolve: promise is NULL");
    struct mvx__task *t = task_of(promise);
    size_t size = t->vt->output_size;
    if (size && !output)
        return mvx__error(MVX_EINVAL, "mvx_promise_resolve: output is NULL, size is %zu", size);
    int r = claim("mvx_promise_resolve", promise);
    if (r)
        return r;
    if (size)
        memcpy(mvx__task_output(t), output, size);
    mvx__task_complete_claimed(t, NULL);
    return 0;
}

MVX_EXTERN int mvx_promise_fail(mvx_promise *promise, int code, const char *message, void *payload,
                                void (*payload_drop)(void *payload))
{
    if (!promise)
        return mvx__error(MVX_EINVAL, "mvx_promise_fail: promise is NULL");
    /* Allocated before the claim, so that running out of memory changes nothing. */
    struct mvx__failure_rec *rec = mvx__failure_new(code, message, payload, payload_drop);
    if (!rec)
        return mvx__error(MVX_ENOMEM, "mvx_promise_fail: out of memory");
    int r = claim("mvx_promise_fail", promise);
    if (r) {
        mvx__failure_free_unused(rec); /* the payload stays the caller's */
        return r;
    }
    mvx__task_complete_claimed(task_of(promise), rec);
    return 0;
}

MVX_EXTERN int mvx_promise_is_cancelled(const mvx_promise *promise)
{
    if (!promise)
        return 0;
    uint64_t s = atomic_load_explicit(&task_of(promise)->state, mvx__acquire);
    return mvx__lifecycle(s) == MVX__CANCELLED || ((s & MVX__CANCEL) && !mvx__is_terminal(s));
}

MVX_EXTERN int mvx_promise_on_cancel(mvx_promise *promise, const mvx_waker *waker)
{
    if (!promise || !waker || !waker->vtable)
        return mvx__error(MVX_EINVAL, "mvx_promise_on_cancel: promise or waker is NULL");
    mvx_waker clone;
    int r = mvx_waker_clone(waker, &clone);
    if (r)
        return r;
    struct promise_state *ps = state_of(promise);
    lock(ps);
    if (ps->resolving) {
        unlock(ps);
        mvx_waker_drop(&clone);
        return mvx__error(MVX_EALREADY, "mvx_promise_on_cancel: the promise was resolved");
    }
    if (ps->cancelled) {
        unlock(ps);
        mvx_waker_wake(&clone);
        return 0;
    }
    mvx_waker old = ps->on_cancel;
    ps->on_cancel = clone;
    unlock(ps);
    mvx_waker_drop(&old);
    return 0;
}

MVX_EXTERN void mvx_promise_release(mvx_promise *promise)
{
    if (!promise)
        return;
    struct mvx__task *t = task_of(promise);
    mvx__task_request_cancel(t); /* nothing when resolved (terminal) */
    mvx__task_ref_dec(t);
}
