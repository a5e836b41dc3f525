/*
 * blocking.c - the blocking pool.
 *
 * A job is a task whose poll runs once on a pool thread (mvx__task_run_once). Unlike the
 * workers, the pool uses a mutex and condition variables: its jobs are few and long, and a
 * thread start costs far more than the lock. Threads are started on demand up to `max`, jobs
 * queue in order beyond that, and a thread that stays idle for keep_alive exits.
 *
 * Wake-ups are passed on: a spawn wakes (or starts) a thread only when none is already on its
 * way, and each thread that takes a job from the queue wakes or starts up to two more while jobs
 * are left without one. A wake-up costs the thread that makes it a futex call and, often, its
 * CPU to the thread it wakes; when jobs are submitted one by one, as 10,000 usleep(1 ms) calls
 * from a Go loop are, those costs on the submitting thread were the whole loop's speed (measured:
 * 10,000 such calls took 210 ms with a wake-up per spawn, 100 ms passed on). A burst still
 * reaches n idle threads in about log2(n) wake-ups.
 *
 * Threads are joinable: an exiting thread puts itself on `exited`, and whoever next takes the
 * lock on a spawn or shutdown path joins it, so no thread outlives the library's code when a
 * host dlclose()s it after a clean shutdown. Each thread holds a reference on the runtime's arena
 * (like a worker) so that a job still running after a timed-out shutdown keeps the runtime alive.
 */
#include "blocking.h"
#include "arena.h"
#include "runtime.h"
#include "threadsched.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct mvx__blocking_thread {
    pthread_t thread;
    struct mvx__blocking *pool;
    struct mvx__blocking_thread *next;
    bool inherited_batch; /* started by a pool thread in SCHED_BATCH by its pool's choice */
};

MVX_TLS struct mvx_runtime *mvx__tl_blocking_rt;

int mvx__blocking_init(struct mvx__blocking *pool, struct mvx_runtime *rt, unsigned max,
                       int64_t keep_alive_ns, bool batch)
{
    pool->base.kind = MVX__SCHED_BLOCKING;
    pool->rt = rt;
    pool->max = max;
    pool->keep_alive_ns = keep_alive_ns;
    pool->batch = batch;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return MVX_ESYSTEM;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    /* Adaptive: a burst of submissions and hundreds of threads finishing their jobs together
     * take the lock for a few instructions each; a waiter that spins briefly avoids a futex
     * sleep and wake-up (two context switches each) per hand-off. */
    pthread_mutexattr_t ma;
    if (pthread_mutexattr_init(&ma) != 0) {
        pthread_condattr_destroy(&ca);
        return MVX_ESYSTEM;
    }
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    int r = pthread_mutex_init(&pool->lock, &ma) || pthread_cond_init(&pool->work, &ca) ||
            pthread_cond_init(&pool->gone, &ca);
    pthread_mutexattr_destroy(&ma);
    pthread_condattr_destroy(&ca);
    return r ? MVX_ESYSTEM : 0;
}

void mvx__blocking_fini(struct mvx__blocking *pool)
{
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->work);
    pthread_cond_destroy(&pool->gone);
}

static struct timespec abs_time(int64_t deadline_ns)
{
    struct timespec ts = {deadline_ns / 1000000000, deadline_ns % 1000000000};
    return ts;
}

/* Takes the list of exited threads; the caller joins them after unlocking. */
static struct mvx__blocking_thread *take_exited(struct mvx__blocking *pool)
{
    struct mvx__blocking_thread *list = pool->exited;
    pool->exited = NULL;
    return list;
}

static void join_all(struct mvx__blocking_thread *list)
{
    while (list) {
        struct mvx__blocking_thread *next = list->next;
        pthread_join(list->thread, NULL);
        free(list);
        list = next;
    }
}

static int start_thread(const char *fn, struct mvx__blocking *pool);

/* With the lock held, after a job was queued or taken: makes sure that the jobs still queued
 * have threads on their way, summoning up to `limit` more (an idle thread, else a new one).
 * Returns how many idle threads to signal once the lock is given up. */
static unsigned summon(struct mvx__blocking *pool, unsigned limit)
{
    unsigned signals = 0;
    while (limit-- && pool->queued > pool->signalled + pool->starting) {
        if (pool->idle > pool->signalled) {
            pool->signalled++;
            signals++;
        } else if (pool->threads < pool->max && start_thread("mvx_spawn_blocking", pool) == 0) {
            pool->starting++;
        } else {
            break;
        }
    }
    return signals;
}

static void signal_idle(struct mvx__blocking *pool, unsigned signals)
{
    while (signals--)
        pthread_cond_signal(&pool->work);
}

/* SCHED_BATCH (see blocking_flags in moduvex.h): a pool thread whose call returns does
 * not preempt whoever runs on its CPU. Jobs are calls that block for long; the submitting
 * threads (a host's, the workers) are the ones whose latency counts, and a thread preempted
 * while it holds the pool's lock stalls every thread that wakes after it. For the same reason
 * the thread asks for the kernel's default time slice, not the short one it inherits when a
 * worker starts it (worker_slice_ns). Only from SCHED_OTHER: a host that chose another policy
 * for its threads keeps it. Failure (a sandbox refusing the call) leaves the thread as it was. */
static MVX_TLS bool tl_batch; /* this pool thread is in SCHED_BATCH by its pool's choice */

/* inherited: the thread was started by a pool thread in SCHED_BATCH by that choice (a burst's
 * threads start each other), so SCHED_BATCH is ours to leave and resume, not a host's policy. */
static void run_as_batch(bool inherited)
{
    int policy = mvx__thread_policy();
    if (policy == SCHED_OTHER || (policy == SCHED_BATCH && inherited))
        tl_batch = mvx__thread_set_fair(SCHED_BATCH, 0);
}

void mvx__blocking_sched_as_worker(const struct mvx_runtime *rt, bool as_worker)
{
    if (!tl_batch)
        return;
    if (as_worker)
        mvx__thread_set_fair(SCHED_OTHER, rt->worker_slice_ns > 0 ? (uint64_t)rt->worker_slice_ns
                                                                 : 0);
    else
        mvx__thread_set_fair(SCHED_BATCH, 0);
}

static void *pool_main(void *arg)
{
    struct mvx__blocking_thread *self = arg;
    struct mvx__blocking *pool = self->pool;
    struct mvx_runtime *rt = pool->rt;
    char name[32];
    snprintf(name, sizeof name, "%s-blk", rt->thread_name);
    name[15] = '\0';
    pthread_setname_np(pthread_self(), name);
    if (pool->batch)
        run_as_batch(self->inherited_batch);
    mvx__tl_blocking_rt = rt;

    pthread_mutex_lock(&pool->lock);
    if (pool->starting)
        pool->starting--;
    for (;;) {
        struct mvx__task *t = pool->head;
        if (t) {
            pool->head = atomic_load_explicit(&t->next, mvx__relaxed);
            if (!pool->head)
                pool->tail = NULL;
            pool->queued--;
            pool->running++;
            unsigned signals = summon(pool, 2);
            pthread_mutex_unlock(&pool->lock);
            signal_idle(pool, signals);
            mvx__task_run_once(t);
            pthread_mutex_lock(&pool->lock);
            pool->running--;
            pool->completed++;
            continue;
        }
        if (pool->shutdown)
            break;
        pool->idle++;
        int r;
        if (pool->keep_alive_ns < 0) {
            r = pthread_cond_wait(&pool->work, &pool->lock);
        } else {
            struct timespec ts = abs_time(mvx__deadline(pool->keep_alive_ns));
            r = pthread_cond_timedwait(&pool->work, &pool->lock, &ts);
        }
        pool->idle--;
        if (pool->signalled) /* this thread, or one that timed out as it was signalled */
            pool->signalled--;
        if (r == ETIMEDOUT && !pool->head)
            break;
    }
    pool->threads--;
    if (pool->detach) {
        pthread_detach(pthread_self());
        free(self);
    } else {
        self->next = pool->exited;
        pool->exited = self;
    }
    pthread_cond_broadcast(&pool->gone);
    pthread_mutex_unlock(&pool->lock);
    mvx__tl_blocking_rt = NULL;
    mvx__arena_unref(&rt->arena); /* may free rt: touch nothing after this */
    return NULL;
}

/* With the lock held: starts one more thread. 0, or the error recorded for `fn`. */
static int start_thread(const char *fn, struct mvx__blocking *pool)
{
    struct mvx__blocking_thread *th = malloc(sizeof *th);
    if (!th)
        return mvx__error(MVX_ENOMEM, "%s: out of memory starting a blocking-pool thread", fn);
    th->pool = pool;
    th->inherited_batch = tl_batch;
    atomic_fetch_add_explicit(&pool->rt->arena.refs, 1, mvx__relaxed);
    if (pthread_create(&th->thread, NULL, pool_main, th) != 0) {
        atomic_fetch_sub_explicit(&pool->rt->arena.refs, 1, mvx__relaxed);
        free(th);
        return mvx__error(MVX_ESYSTEM, "%s: could not start a blocking-pool thread", fn);
    }
    pool->threads++;
    return 0;
}

MVX_EXTERN int mvx_spawn_blocking(mvx_runtime *rt, const mvx_task_vtable *vtable, void *state,
                                  mvx_join_handle **join)
{
    return mvx__spawn("mvx_spawn_blocking", rt, rt ? &rt->blocking.base : NULL, vtable, state, join,
                      0);
}

int mvx__blocking_submit(const char *fn, struct mvx__blocking *pool, struct mvx__task *t,
                         const mvx_task_vtable *vt, void *state,
                         const struct mvx__task_layout *layout, uint8_t flags,
                         mvx_join_handle **join)
{
    pthread_mutex_lock(&pool->lock);
    int r = 0;
    if (pool->shutdown)
        r = mvx__error(MVX_ESHUTDOWN, "%s: the runtime is shut down", fn);
    /* A pool with no thread at all must start one, or nobody would ever run the job: the spawn
     * fails instead. Otherwise a thread is summoned after the job is queued (see summon), or
     * one running takes it once its current job is done. */
    if (r == 0 && pool->threads == 0 && (r = start_thread(fn, pool)) == 0)
        pool->starting++;
    if (r) {
        /* Never published (its state word is still 0): nobody else has seen it. */
        pthread_mutex_unlock(&pool->lock);
        mvx__slot_free(t);
        return r;
    }
    mvx__task_init(t, vt, state, layout, &pool->base, flags | MVX__TASK_BLOCKING, join != NULL);
    if (join)
        *join = (mvx_join_handle *)t;
    atomic_store_explicit(&t->next, NULL, mvx__relaxed);
    if (pool->tail)
        atomic_store_explicit(&pool->tail->next, t, mvx__relaxed);
    else
        pool->head = t;
    pool->tail = t;
    pool->queued++;
    unsigned signals = 0;
    if (!pool->signalled && !pool->starting)
        signals = summon(pool, 1);
    struct mvx__blocking_thread *exited = take_exited(pool);
    pthread_mutex_unlock(&pool->lock);
    /* After the unlock: a thread woken while we still held the lock would block on it at once
     * (another sleep and wake per job), and the futex call would lengthen the critical section
     * that every finishing job and every spawn waits for. A waiter re-checks the queue, so a
     * wake that finds the job already taken by a thread that was finishing is only spurious. */
    signal_idle(pool, signals);
    join_all(exited);
    return 0;
}

MVX_EXTERN int mvx_runtime_blocking_stats(mvx_runtime *rt, mvx_blocking_stats *stats)
{
    if (!rt || !stats)
        return mvx__error(MVX_EINVAL, "mvx_runtime_blocking_stats: rt or stats is NULL");
    if (stats->size < sizeof(mvx_blocking_stats))
        return mvx__error(MVX_EINVAL, "mvx_runtime_blocking_stats: stats->size %zu is below %zu",
                          stats->size, sizeof(mvx_blocking_stats));
    struct mvx__blocking *pool = &rt->blocking;
    pthread_mutex_lock(&pool->lock);
    stats->threads = pool->threads;
    stats->idle_threads = pool->idle;
    stats->running = pool->running;
    stats->queued = pool->queued;
    stats->completed = pool->completed;
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

void mvx__blocking_close(struct mvx__blocking *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->shutdown = true;
    struct mvx__task *queued = pool->head;
    pool->head = pool->tail = NULL;
    pool->queued = 0;
    pthread_cond_broadcast(&pool->work);
    pthread_mutex_unlock(&pool->lock);
    while (queued) { /* never started: cancelled, their states dropped here */
        struct mvx__task *next = atomic_load_explicit(&queued->next, mvx__relaxed);
        mvx__task_cancel_popped(queued);
        queued = next;
    }
}

void mvx__blocking_abort(struct mvx__task *t)
{
    mvx__task_request_cancel(t); /* a running job: its output is dropped when it returns */
    struct mvx__blocking *pool = (struct mvx__blocking *)t->sched;
    pthread_mutex_lock(&pool->lock);
    struct mvx__task *prev = NULL, *q = pool->head;
    while (q && q != t) {
        prev = q;
        q = atomic_load_explicit(&q->next, mvx__relaxed);
    }
    if (q) {
        struct mvx__task *next = atomic_load_explicit(&t->next, mvx__relaxed);
        if (prev)
            atomic_store_explicit(&prev->next, next, mvx__relaxed);
        else
            pool->head = next;
        if (pool->tail == t)
            pool->tail = prev;
        pool->queued--;
        pool->completed++;
    }
    pthread_mutex_unlock(&pool->lock);
    if (q) /* taken off the queue: ours to cancel, as a pool thread would have */
        mvx__task_cancel_popped(t);
}

unsigned mvx__blocking_wait(struct mvx__blocking *pool, int64_t deadline_ns)
{
    pthread_mutex_lock(&pool->lock);
    struct timespec ts = abs_time(deadline_ns);
    while (pool->threads > 0) {
        int r = deadline_ns == INT64_MAX ? pthread_cond_wait(&pool->gone, &pool->lock)
                                         : pthread_cond_timedwait(&pool->gone, &pool->lock, &ts);
        if (r == ETIMEDOUT)
            break;
    }
    unsigned running = pool->running;
    struct mvx__blocking_thread *exited = take_exited(pool);
    pthread_mutex_unlock(&pool->lock);
    join_all(exited);
    return running;
}

void mvx__blocking_release(struct mvx__blocking *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->detach = true;
    struct mvx__blocking_thread *exited = take_exited(pool);
    pthread_mutex_unlock(&pool->lock);
    join_all(exited);
}
