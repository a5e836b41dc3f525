/*
 * worker.c - the worker run loop.
 *
 * Where a worker looks for its next task, in order:
 *   1. every global_queue_interval polls (31 by default), the global queue first (fairness: local
 *      work cannot starve tasks spawned from outside, which is what starves tokio 1.24 and oneTBB
 *      in busy2);
 *   2. its LIFO slot (the task most recently spawned or woken here: message passing stays on one
 *      core), at most LIFO_MAX times in a row before the slot's task goes to the back of the queue;
 *      unless disable_lifo_slot is set, which sends those tasks to the back of the queue at once;
 *   3. its own queue;
 *   4. the global queue, taking a batch into its own queue;
 *   5. as a searcher: steal half of another worker's queue;
 *   6. spin while spinning pays (an adaptive budget), then sleep (idle.c).
 * A task that woke itself during its poll (a yield) goes to the back of the queue, not the LIFO
 * slot, so that yielding lets the others run.
 */
#include "worker.h"
#include "threadsched.h"
#include <stdio.h>
#include <string.h>

#define LIFO_MAX        3
#define INJECT_BATCH    128

MVX_TLS struct mvx__worker *mvx__tl_worker;

void mvx__worker_push_back(struct mvx__worker *w, struct mvx__task *t)
{
    struct mvx__task *first, *last;
    unsigned overflow = mvx__deque_push(&w->deque, t, &first, &last);
    if (overflow)
        mvx__global_push(w->rt, first, last, overflow);
}

/* A task that yielded, or used up its LIFO turns, goes behind everything queued so far: behind
 * the global queue's tasks when there are any (spawned from outside, they would otherwise wait
 * for the next fairness tick while this one runs again and again), else at the back of the
 * local queue, which costs no shared write. */
static void push_behind_everything(struct mvx__worker *w, struct mvx__task *t)
{
    if (mvx__inject_maybe_nonempty(&w->rt->inject))
        mvx__global_push(w->rt, t, t, 1);
    else
        mvx__worker_push_back(w, t);
    mvx__idle_notify(w->rt); /* someone idle could take it */
}

/* The LIFO slot. Only the owner puts a task there; the owner and a shutdown sweep take it out
 * (mvx__worker_take_lifo). The owner pays for an atomic exchange only when the slot is full: an
 * empty slot cannot change under it, since nobody else fills it. */
static inline struct mvx__task *lifo_put(struct mvx__worker *w, struct mvx__task *t)
{
    if (!atomic_load_explicit(&w->lifo, mvx__relaxed)) {
        atomic_store_explicit(&w->lifo, t, mvx__release);
        return NULL;
    }
    return atomic_exchange_explicit(&w->lifo, t, mvx__acq_rel);
}

static inline struct mvx__task *lifo_take(struct mvx__worker *w)
{
    if (!atomic_load_explicit(&w->lifo, mvx__relaxed))
        return NULL;
    return atomic_exchange_explicit(&w->lifo, NULL, mvx__acquire);
}

struct mvx__task *mvx__worker_take_lifo(struct mvx__worker *w)
{
    return atomic_exchange_explicit(&w->lifo, NULL, mvx__acq_rel);
}

void mvx__worker_schedule(struct mvx__worker *w, struct mvx__task *t, bool yield)
{
    if (yield) {
        push_behind_everything(w, t);
        return;
    }
    if (MVX_UNLIKELY(w->rt->lifo_disabled)) {
        mvx__worker_push_back(w, t);
        mvx__idle_notify(w->rt); /* someone idle could steal it */
        return;
    }
    struct mvx__task *prev = lifo_put(w, t);
    if (prev) {
        mvx__worker_push_back(w, prev);
        mvx__idle_notify(w->rt); /* someone idle could steal it */
    }
}

/* Takes the consumer lock of the global queue and moves up to a batch into the local queue.
 * Returns the first task, or NULL. */
static struct mvx__task *take_from_global(struct mvx__worker *w)
{
    struct mvx__inject *q = &w->rt->inject;
    if (!mvx__inject_maybe_nonempty(q) || !mvx__inject_try_lock(q))
        return NULL;
    struct mvx__task *first = mvx__inject_pop(q);
    unsigned n = 0;
    if (first) {
        unsigned room = mvx__deque_room(&w->deque);
        unsigned max = room < INJECT_BATCH ? room : INJECT_BATCH;
        struct mvx__task *t;
        while (n < max && (t = mvx__inject_pop(q)) != NULL) {
            mvx__worker_push_back(w, t);
            n++;
        }
        mvx__backlog_took(&w->rt->backlog, n + 1);
    }
    mvx__inject_unlock(q);
    if (!first)
        return NULL;
    mvx__stat_add(&w->remote_tasks, n + 1);
    if (n)
        mvx__idle_notify(w->rt);
    return first;
}

static struct mvx__task *steal_work(struct mvx__worker *w)
{
    struct mvx_runtime *rt = w->rt;
    unsigned n = rt->nworkers;
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 17;
    w->rng ^= w->rng << 5;
    unsigned start = w->rng % n;
    struct mvx__task *buf[MVX__DEQUE_CAP / 2];
    for (unsigned i = 0; i < n; i++) {
        struct mvx__worker *v = rt->workers[(start + i) % n];
        if (v == w)
            continue;
        unsigned room = mvx__deque_room(&w->deque);
        unsigned max = room < MVX__DEQUE_CAP / 2 ? room : MVX__DEQUE_CAP / 2;
        if (max == 0)
            break;
        unsigned k = mvx__deque_steal(&v->deque, buf, max);
        if (k) {
            for (unsigned j = 1; j < k; j++)
                mvx__worker_push_back(w, buf[j]);
            mvx__stat_inc(&w->steals);
            mvx__stat_add(&w->stolen_tasks, k);
            return buf[0];
        }
    }
    return take_from_global(w);
}

static struct mvx__task *next_local(struct mvx__worker *w)
{
    struct mvx__task *t;
    /* A countdown, not a modulo: the interval is a setting, and a division costs more. */
    if (--w->global_left == 0) {
        w->global_left = w->rt->global_interval;
        if ((t = take_from_global(w)) != NULL)
            return t;
    }
    if ((t = lifo_take(w)) != NULL)
        return t;
    if ((t = mvx__deque_pop(&w->deque)) != NULL)
        return t;
    return take_from_global(w);
}

/* Found work: a searcher stops counting as one, or notifications would keep waiting for it to
 * find the work they announce while it runs a task. The last searcher hands the search on, but
 * only when there is more work than the task it took (a batch it moved into its queue, more in
 * the global queue or elsewhere): one wake per burst, not one per task. A task that trickles in
 * alone wakes one worker, which runs it and sleeps again, instead of that worker waking a second
 * one to find nothing. No wake-up is lost: this worker stops searching, then looks (both
 * sequentially consistent); a producer pushes, then reads the search count. Either this look
 * sees the push, or the producer sees nobody searching and notifies itself. */
static void stop_searching(struct mvx__worker *w)
{
    w->searching = false;
    if (mvx__idle_leave_search(w->rt) &&
        (mvx__deque_len(&w->deque) > 0 || mvx__idle_work_visible(w)))
        mvx__idle_notify(w->rt);
}

/* A worker about to complete a task with nothing queued locally counts itself searching
 * first: the completion may wake a thread blocked on the task's handle, which then spawns its
 * next task at once, before this worker is back in search(). Counted as busy at that moment, the
 * worker would make that spawn wake a sleeping peer: a futex round trip, and a third thread on
 * the cores, for a task this worker takes a few nanoseconds later. Counted as searching, the
 * spawn leaves the wake-up to it. It is searching in fact: completing is the last thing it does
 * before it looks for work (and run() stops searching should the completion hand it a task
 * through the LIFO slot). */
void mvx__worker_completing(struct mvx__task *t)
{
    struct mvx__worker *w = mvx__tl_worker;
    /* Only for the task of run() itself, not one of a local set driven from inside a poll. */
    if (!w || w->running != t || w->searching || atomic_load_explicit(&w->lifo, mvx__relaxed) ||
        mvx__deque_len(&w->deque) > 0)
        return;
    if (mvx__idle_try_search(w->rt))
        w->searching = true;
}

static struct mvx__task *search(struct mvx__worker *w)
{
    if (!w->searching) {
        if (!mvx__idle_try_search(w->rt))
            return NULL;
        w->searching = true;
    }
    return steal_work(w);
}

/* Runs t, then whatever it put in the LIFO slot, up to LIFO_MAX times. */
static void run(struct mvx__worker *w, struct mvx__task *t)
{
    struct mvx_runtime *rt = w->rt;
    for (unsigned lifo_polls = 0;; lifo_polls++) {
        w->running = t;
        mvx__task_run(t);
        w->running = NULL;
        mvx__stat_inc(&w->polls);
        if ((t = lifo_take(w)) == NULL)
            return;
        if (w->searching) /* mvx__worker_completing, then the completion woke a task here */
            stop_searching(w);
        if (atomic_load_explicit(&rt->phase, mvx__relaxed) != MVX__PHASE_RUNNING ||
            mvx__worker_reclaimed(w)) {
            push_behind_everything(w, t);
            return;
        }
        if (lifo_polls == LIFO_MAX) {
            /* The cap keeps message-passing pairs from starving what else is queued. With
             * nothing queued here or globally there is nobody to protect: keep going, on this
             * core. Handing the task over instead would let an idle worker steal it, and a
             * chain of tasks would bounce between cores. */
            if (mvx__deque_len(&w->deque) > 0 || mvx__inject_maybe_nonempty(&rt->inject)) {
                push_behind_everything(w, t);
                return;
            }
            lifo_polls = 0;
        }
    }
}

/* Shutdown: cancel everything this worker still holds. Cancelling can wake or spawn onto this
 * worker again (drop callbacks), hence the loop. */
static void drain(struct mvx__worker *w)
{
    for (;;) {
        struct mvx__task *t = lifo_take(w);
        if (!t && (t = mvx__deque_pop(&w->deque)) == NULL)
            return;
        mvx__task_cancel_popped(t);
    }
}

/* The loop: until shutdown, or for a substitute until its blocked thread wants w back. */
static void work(struct mvx__worker *w)
{
    struct mvx_runtime *rt = w->rt;
    while (atomic_load_explicit(&rt->phase, mvx__acquire) == MVX__PHASE_RUNNING &&
           !mvx__worker_reclaimed(w)) {
        struct mvx__task *t = next_local(w);
        if (!t)
            t = search(w);
        if (!t) {
            mvx__idle_sleep(w);
            continue;
        }
        if (w->searching)
            stop_searching(w);
        run(w, t);
        mvx__timer_tick(&w->timer_left, w);
    }
}

static void name_thread(struct mvx__worker *w)
{
    char name[32];
    snprintf(name, sizeof name, "%s-%u", w->rt->thread_name, w->index);
    name[15] = '\0'; /* the kernel keeps 15 bytes */
    pthread_setname_np(pthread_self(), name);
}

void *mvx__worker_main(void *arg)
{
    struct mvx__worker *w = arg;
    struct mvx_runtime *rt = w->rt;
    mvx__tl_worker = w;
    mvx__tl_heap = w->heap;
    w->global_left = rt->global_interval;
    name_thread(w);
    mvx__thread_ask_slice(rt->worker_slice_ns);
    if (rt->on_thread_start)
        rt->on_thread_start(rt->hook_data, w->index);
    work(w);
    drain(w);
    mvx__slot_flush_remote();
    if (rt->on_thread_stop)
        rt->on_thread_stop(rt->hook_data, w->index);
    mvx__tl_worker = NULL;
    mvx__tl_heap = NULL;
    /* From here on every free into this heap is an orphan free holding an arena reference. */
    mvx__heap_close(w->heap);
    atomic_store_explicit(&w->exited, true, mvx__release);
    mvx__arena_unref(&rt->arena); /* may free rt: touch nothing after this */
    return NULL;
}

void mvx__worker_substitute(struct mvx__worker *w, _Atomic uint32_t *role)
{
    struct mvx__worker *outer_worker = mvx__tl_worker;
    struct mvx__heap *outer_heap = mvx__tl_heap;
    _Atomic uint32_t *outer_role = atomic_load_explicit(&w->role, mvx__relaxed);
    mvx__tl_worker = w;
    mvx__tl_heap = w->heap;
    atomic_store_explicit(&w->role, role, mvx__seq_cst);
    work(w);
    mvx__slot_flush_remote(); /* this thread may idle in the blocking pool for long */
    /* The blocked thread resumes in the middle of a poll, where a worker is not searching. */
    if (w->searching)
        stop_searching(w);
    atomic_store_explicit(&w->role, outer_role, mvx__relaxed);
    mvx__tl_worker = outer_worker;
    mvx__tl_heap = outer_heap;
}
