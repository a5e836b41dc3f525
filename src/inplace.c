/*
 * inplace.c - mvx_block_in_place: a worker thread leaves its worker to a substitute while it
 * blocks.
 *
 * The calling thread T is a worker W in the middle of a poll. It hands W over to a substitute S,
 * a job on the blocking pool that runs W's loop (mvx__worker_substitute) with W's queue, LIFO
 * slot and heap, steps out of the worker role itself (no worker, no heap: what fn spawns or wakes
 * goes to the global queue), runs fn, and takes W back. A substitute rather than "move the queue
 * to the global queue": with one worker nobody else would run it, and fn often waits for exactly
 * those tasks. The handoff word, in a record shared by T and S (two references, since S may
 * start only after T is done, or never):
 *
 *              S starts                   T: fn returned               S: loop ends
 *   OFFERED ------------> ADOPTED ---------------------------> RECLAIM ------------> RETURNED
 *      |                                                                        (futex-woken T)
 *      +--- T: fn returned before S started -----> RECLAIM (S, if it ever starts, does nothing)
 *
 * While S runs W, T touches nothing of W; ownership passes with the CAS to ADOPTED (acquire) and
 * comes back with the store of RETURNED (release). S also ends at shutdown; T then finds W
 * returned and its worker loop drains it after the poll.
 */
#include "blocking.h"
#include "futex.h"
#include "local.h"
#include "worker.h"

#include <stdlib.h>

struct handoff {
    _Atomic uint32_t role; /* MVX__ROLE_*, also T's futex */
    _Atomic uint32_t refs; /* T's and the job's */
    struct mvx__worker *w;
};

static void handoff_unref(struct handoff *h)
{
    if (atomic_fetch_sub_explicit(&h->refs, 1, mvx__acq_rel) == 1)
        free(h);
}

static int substitute_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    (void)output;
    struct handoff *h = *(struct handoff **)state;
    uint32_t expected = MVX__ROLE_OFFERED;
    if (atomic_compare_exchange_strong_explicit(&h->role, &expected, MVX__ROLE_ADOPTED,
                                                mvx__seq_cst, mvx__acquire)) {
        /* its tasks' wake-ups may preempt, as a worker's */
        mvx__blocking_sched_as_worker(h->w->rt, true);
        mvx__worker_substitute(h->w, &h->role);
        mvx__blocking_sched_as_worker(h->w->rt, false);
        atomic_store_explicit(&h->role, MVX__ROLE_RETURNED, mvx__seq_cst);
        mvx__futex_wake(&h->role, 1); /* the record lives on: we hold a reference */
    }
    return MVX_POLL_READY;
}

static void substitute_drop(void *state)
{
    handoff_unref(*(struct handoff **)state);
}

static const mvx_task_vtable substitute_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = substitute_poll,
    .drop = substitute_drop,
    .state_size = sizeof(struct handoff *),
    .state_align = _Alignof(struct handoff *),
};

/* Offers w to a substitute; NULL if none can be asked for. */
static struct handoff *offer(struct mvx__worker *w)
{
    struct handoff *h = malloc(sizeof *h);
    if (!h)
        return NULL;
    atomic_init(&h->role, MVX__ROLE_OFFERED);
    atomic_init(&h->refs, 2);
    h->w = w;
    if (mvx_spawn_blocking(w->rt, &substitute_vt, &h, NULL) != 0) {
        free(h);
        return NULL;
    }
    return h;
}

/* Takes w back from its substitute, waiting for the substitute's current poll if needed. */
static void reclaim(struct handoff *h)
{
    uint32_t r = MVX__ROLE_OFFERED;
    if (!atomic_compare_exchange_strong_explicit(&h->role, &r, MVX__ROLE_RECLAIM, mvx__seq_cst,
                                                 mvx__acquire)) {
        if (r == MVX__ROLE_ADOPTED &&
            atomic_compare_exchange_strong_explicit(&h->role, &r, MVX__ROLE_RECLAIM, mvx__seq_cst,
                                                    mvx__acquire))
            mvx__idle_wake_worker(h->w); /* it may sleep; seq_cst pairs with idle_sleep's look */
        while ((r = atomic_load_explicit(&h->role, mvx__acquire)) != MVX__ROLE_RETURNED)
            mvx__futex_wait(&h->role, r, INT64_MAX);
    }
    handoff_unref(h);
}

MVX_EXTERN int mvx_block_in_place(void (*fn)(void *arg), void *arg)
{
    if (!fn)
        return mvx__error(MVX_EINVAL, "mvx_block_in_place: fn is NULL");
    if (mvx__local_current_runtime())
        return mvx__error(MVX_EPERM, "mvx_block_in_place: called from a task of a local set "
                                     "(or mvx_block_on), which cannot move to another thread");
    struct mvx__worker *w = mvx__tl_worker;
    if (!w) {
        fn(arg);
        return 0;
    }
    struct mvx_runtime *rt = w->rt;
    struct mvx__task *lifo = mvx__worker_take_lifo(w);
    if (lifo) /* the LIFO slot cannot be stolen: make its task stealable */
        mvx__worker_push_back(w, lifo);
    struct handoff *h = offer(w);
    if (mvx__deque_len(&w->deque) > 0)
        mvx__idle_notify(rt); /* someone idle may steal before the substitute starts */

    struct mvx__heap *heap = mvx__tl_heap;
    struct mvx_runtime *outer_blocking = mvx__tl_blocking_rt;
    mvx__slot_flush_remote(); /* fn may block for long */
    mvx__tl_worker = NULL;
    mvx__tl_heap = NULL; /* the substitute owns w->heap now: our frees into it are remote */
    mvx__tl_blocking_rt = rt; /* mvx_runtime_current(), and no shutdown from here (EDEADLK) */
    fn(arg);
    mvx__tl_blocking_rt = outer_blocking;
    if (h)
        reclaim(h);
    mvx__tl_heap = heap;
    mvx__tl_worker = w;
    return 0;
}
