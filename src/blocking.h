/*
 * blocking.h - the blocking pool: threads apart from the workers for jobs that may block.
 * Internal.
 */
#ifndef MVX_BLOCKING_H
#define MVX_BLOCKING_H

#include "task.h"

#include <pthread.h>

struct mvx_runtime;
struct mvx__blocking_thread;

struct mvx__blocking {
    struct mvx__sched base; /* kind MVX__SCHED_BLOCKING: blocking tasks point here */
    struct mvx_runtime *rt;
    pthread_mutex_t lock;          /* everything below */
    pthread_cond_t work;           /* idle threads wait for a job */
    pthread_cond_t gone;           /* shutdown waits for threads to exit */
    struct mvx__task *head, *tail; /* queued jobs, FIFO, linked through task->next */
    unsigned threads, idle, running, queued, max;
    unsigned signalled;    /* idle threads signalled that have not returned from their wait */
    unsigned starting;     /* threads started that have not taken the lock yet */
    int64_t keep_alive_ns; /* < 0: forever */
    bool batch;            /* threads switch from SCHED_OTHER to SCHED_BATCH */
    uint64_t completed;
    bool shutdown;                       /* no new jobs; threads exit once idle */
    bool detach;                         /* released: exiting threads detach themselves */
    struct mvx__blocking_thread *exited; /* exited, not joined yet */
};

extern MVX_TLS struct mvx_runtime *mvx__tl_blocking_rt;

int mvx__blocking_init(struct mvx__blocking *pool, struct mvx_runtime *rt, unsigned max,
                       int64_t keep_alive_ns, bool batch);
void mvx__blocking_fini(struct mvx__blocking *pool);
/* Initialises a freshly allocated task as a pool job and queues it, starting a thread if none
 * is idle and the maximum allows. Fails, freeing the slot, with MVX_ESHUTDOWN once shut down,
 * or MVX_ENOMEM/MVX_ESYSTEM when the pool has no thread and none could be started. */
int mvx__blocking_submit(const char *fn, struct mvx__blocking *pool, struct mvx__task *t,
                         const mvx_task_vtable *vt, void *state,
                         const struct mvx__task_layout *layout, uint8_t flags,
                         mvx_join_handle **join);
/* mvx_join_abort of a job (MVX__TASK_BLOCKING): a queued one is taken off the queue and
 * cancelled here, at once; a running one finishes and ends CANCELLED. */
void mvx__blocking_abort(struct mvx__task *t);
/* Shutdown, first step: no new jobs; queued ones are cancelled (states dropped here). */
void mvx__blocking_close(struct mvx__blocking *pool);
/* Shutdown, second step: waits until `deadline_ns` for the threads; returns the jobs still
 * running. */
unsigned mvx__blocking_wait(struct mvx__blocking *pool, int64_t deadline_ns);
/* On a pool thread: a job that runs a worker's loop (a substitute, inplace.c) schedules like a
 * worker of rt while it does (true: SCHED_OTHER, the workers' slice), then goes back to
 * SCHED_BATCH and the default slice (false), if the thread was in SCHED_BATCH by its pool's
 * choice. */
void mvx__blocking_sched_as_worker(const struct mvx_runtime *rt, bool as_worker);
/* The runtime is released: threads still running detach themselves when they finish. */
void mvx__blocking_release(struct mvx__blocking *pool);

#endif
