/*
 * task.h - the task header and its state machine. Internal: layout and bits may change.
 *
 * One allocation per task (a slot of the arena) holds, in order:
 *   struct mvx__task   56 bytes: state word, queue link, vtable, scheduler, join waker, offsets
 *   local links        16 bytes, local-set tasks only
 *   state area         the inline state copy, or the state pointer; at least 8 bytes, because
 *                      once the state is dropped it holds the failure record of a failed task
 *   output             vtable->output_size bytes
 * A join handle is the task pointer itself: mvx_join_handle * == struct mvx__task *.
 *
 * THE STATE WORD (64 bits, every transition one atomic read-modify-write)
 *
 *   bits 0-2  lifecycle   IDLE, SCHEDULED, RUNNING, COMPLETE, CANCELLED
 *   bit  3    NOTIFIED    woken while RUNNING: poll again after this poll (reference defect 1)
 *   bit  4    CANCEL      cancellation requested (reference defect 2: a request, not a state)
 *   bit  5    JOIN        the join handle exists
 *   bit  6    JOIN_WAKER  join_waker holds a waker the completer must wake (reference defect 4:
 *                         an ownership handshake instead of a mutex, see below)
 *   bit  7    JOIN_BLOCKED a thread sleeps on this word's futex in mvx_join_wait
 *   bit  8    FAILED      with COMPLETE: the outcome is a failure record, not an output
 *   bits 32-63 refcount   holders: the join handle, each waker, the queue entry/poller
 *
 * The low 32 bits (everything but the refcount) are the futex that mvx_join_wait sleeps on.
 *
 *                 spawn
 *                   |
 *                   v        pop (CANCEL set: drop state)              poll -> READY/FAILED
 *   +------> SCHEDULED ----------------------------------+          +--> COMPLETE (+FAILED)
 *   |          |    ^                                    v          |
 *   |     pop  |    | pending with NOTIFIED       CANCELLED <-------+-- pending with CANCEL
 *   |          v    | (yield: back of the queue)         ^          |
 *   |        RUNNING ------------------------------------|----------+
 *   |          |  ^ wake: set NOTIFIED                   |
 *   | wake,    |  |                                      |
 *   | abort    v  pending, no NOTIFIED/CANCEL             |
 *   +-------- IDLE -------------------------------------+ last reference dropped:
 *                     (scheduled with CANCEL, so its scheduler drops the state)
 *
 * Ownership: whoever moves the task into RUNNING (or pops it while SCHEDULED) owns the state
 * and the output slot until the next transition; the state is dropped exactly once, right before
 * the move to COMPLETE or CANCELLED. After COMPLETE the output belongs to the join handle if JOIN
 * was set when the task completed, else the completer drops it.
 *
 * Join waker handshake (JOIN_WAKER): while it is clear, only the join handle touches join_waker;
 * while it is set, the completer may read it, so the join handle must clear it (a CAS that fails
 * once the task is finished) before replacing it. After completion the waker stays until the
 * task is freed.
 *
 * THE MODEL: src/task-state.pml models these transitions (task.c, join.c) for spin, with the
 * poller, a waker, an aborter and the join handle as concurrent actors; `make model` checks that
 * the state is dropped once, a wake after a pending poll leads to another poll, there is one
 * outcome, the refcount never underflows and the task is freed once. The model must change with
 * the code: a change to a transition here is a change there too, checked with `make model`.
 */
#ifndef MVX_TASK_H
#define MVX_TASK_H

#include "common.h"

#include <string.h>

enum {
    MVX__IDLE = 0,
    MVX__SCHEDULED = 1,
    MVX__RUNNING = 2,
    MVX__COMPLETE = 3,
    MVX__CANCELLED = 4,
};

#define MVX__LIFECYCLE    ((uint64_t)0x7)
#define MVX__NOTIFIED     ((uint64_t)1 << 3)
#define MVX__CANCEL       ((uint64_t)1 << 4)
#define MVX__JOIN         ((uint64_t)1 << 5)
#define MVX__JOIN_WAKER   ((uint64_t)1 << 6)
#define MVX__JOIN_BLOCKED ((uint64_t)1 << 7)
#define MVX__FAILED       ((uint64_t)1 << 8)
#define MVX__REF_SHIFT    32
#define MVX__REF_ONE      ((uint64_t)1 << MVX__REF_SHIFT)

/* task->flags */
#define MVX__TASK_INLINE   0x1 /* the state area holds the state itself, not a pointer to it */
#define MVX__TASK_LOCAL    0x2 /* scheduled by a local set; local links follow the header */
#define MVX__TASK_CALL     0x4 /* a call task: holds a reference on the signature owning its vtable */
#define MVX__TASK_FFI_POLL 0x8  /* vt->poll has vt->poll_signature: called through libffi */
#define MVX__TASK_FFI_DROP 0x10 /* vt->drop has vt->drop_signature */
#define MVX__TASK_BLOCKING 0x20 /* a blocking-pool job: sched is the runtime's pool */

/* What a task's scheduler field points at: a runtime or a local set. */
enum { MVX__SCHED_RUNTIME = 1, MVX__SCHED_LOCAL = 2, MVX__SCHED_BLOCKING = 3, MVX__SCHED_PROMISE = 4 };
struct mvx__sched {
    uint8_t kind;
};

struct mvx__task {
    _Atomic uint64_t state;
    struct mvx__task *_Atomic next; /* queue link (inject, local set) or free-list link */
    const mvx_task_vtable *vt;
    /* Dereference only while the task is unfinished: a local set is freed once its tasks have
     * finished, even if some are still referenced (a runtime outlives its tasks). */
    struct mvx__sched *sched;
    mvx_waker join_waker;
    uint32_t output_off;
    uint16_t state_off;
    uint8_t flags;
    uint8_t taken; /* join handle only: output or failure moved out */
};
_Static_assert(sizeof(struct mvx__task) == 56, "task header must stay 56 bytes");

struct mvx__local_links {
    struct mvx__task *prev, *next;
};

/* A failed task's outcome, stored in the state area once the state is dropped. */
struct mvx__failure_rec {
    int code;
    char *message;
    void *payload;
    void (*payload_drop)(void *);
};

struct mvx_context {
    mvx_waker waker;
    struct mvx__task *task;
    bool failed;
    bool state_gone; /* mvx_context_forget_state: poll dropped the state itself */
    int fail_code;
    char *fail_message;
    void *fail_payload;
    void (*fail_drop)(void *);
};

static inline uint64_t mvx__lifecycle(uint64_t s)
{
    return s & MVX__LIFECYCLE;
}
static inline bool mvx__is_terminal(uint64_t s)
{
    return mvx__lifecycle(s) >= MVX__COMPLETE;
}
static inline uint64_t mvx__refs(uint64_t s)
{
    return s >> MVX__REF_SHIFT;
}
static inline _Atomic uint32_t *mvx__task_futex(struct mvx__task *t)
{
    /* The low half of the state word, little-endian; see configure.ac's endianness check. */
    return (_Atomic uint32_t *)(void *)&t->state;
}
static inline struct mvx__local_links *mvx__task_links(struct mvx__task *t)
{
    return (struct mvx__local_links *)(void *)((char *)t + sizeof(struct mvx__task));
}
static inline void *mvx__task_state_area(struct mvx__task *t)
{
    return (char *)t + t->state_off;
}
static inline void *mvx__task_state(struct mvx__task *t)
{
    void *area = mvx__task_state_area(t);
    return (t->flags & MVX__TASK_INLINE) ? area : *(void **)area;
}
static inline void *mvx__task_output(struct mvx__task *t)
{
    return (char *)t + t->output_off;
}

/* Layout of a task for a vtable: allocation size and offsets. */
struct mvx__task_layout {
    size_t size;
    uint32_t output_off;
    uint16_t state_off;
};
/* Computes the layout; returns 0 or an MVX_EINVAL recorded with `fn` in the message. */
int mvx__task_layout(const char *fn, const mvx_task_vtable *vt, bool local,
                     struct mvx__task_layout *out);

/* Validates the spawn arguments shared by every spawn function; adds the FFI flags the vtable
 * asks for to *flags. */
int mvx__check_vtable(const char *fn, const mvx_task_vtable *vt, const void *state, uint8_t *flags);

/* Initialises a freshly allocated slot as a task in `lifecycle` (SCHEDULED: the reference is the
 * queue's; IDLE: a promise's) and publishes its state word. */
static inline void mvx__task_init_as(struct mvx__task *t, const mvx_task_vtable *vt, void *state,
                                     const struct mvx__task_layout *layout,
                                     struct mvx__sched *sched, uint8_t flags, bool joinable,
                                     uint64_t lifecycle)
{
    atomic_store_explicit(&t->next, NULL, mvx__relaxed);
    t->vt = vt;
    t->sched = sched;
    t->join_waker.vtable = NULL;
    t->join_waker.data = NULL;
    t->output_off = layout->output_off;
    t->state_off = layout->state_off;
    t->taken = 0;
    void *area = (char *)t + layout->state_off;
    if (vt->state_size > 0) {
        if (state != area) /* a promise builds its state in place */
            memcpy(area, state, vt->state_size);
        flags |= MVX__TASK_INLINE;
    } else {
        *(void **)area = state;
    }
    t->flags = flags;
    uint64_t s = lifecycle | MVX__REF_ONE;
    if (joinable)
        s += MVX__JOIN | MVX__REF_ONE;
    /* Release: the arena walk and other threads see a fully built task once they see the state. */
    atomic_store_explicit(&t->state, s, mvx__release);
}

/* Initialises a freshly allocated slot as a SCHEDULED task and publishes its state word. */
static inline void mvx__task_init(struct mvx__task *t, const mvx_task_vtable *vt, void *state,
                    const struct mvx__task_layout *layout, struct mvx__sched *sched, uint8_t flags,
                    bool joinable)
{
    mvx__task_init_as(t, vt, state, layout, sched, flags, joinable, MVX__SCHEDULED);
}


/* Runs a task its caller popped from a queue (it is SCHEDULED and the caller holds the queue's
 * reference): one poll, or the cancellation if CANCEL is set. */
void mvx__task_run(struct mvx__task *t);
/* Runs a popped blocking-pool job: one poll that must finish it (pending counts as a failure).
 * If it was aborted while running, its output is dropped and it ends CANCELLED. */
void mvx__task_run_once(struct mvx__task *t);
/* Tasks completed from outside (promise.c). claim moves an IDLE task to RUNNING, taking the
 * poller's reference, so that the caller owns its state and output slot as a poll would: 0, or
 * MVX_EALREADY (running or complete: claimed before), MVX_ECANCELLED (cancelled or asked to be).
 * complete_claimed drops the state and completes the claimed task, with the failure `rec` when
 * not NULL. */
int mvx__task_claim(struct mvx__task *t);
void mvx__task_complete_claimed(struct mvx__task *t, struct mvx__failure_rec *rec);
/* A failure record owning a copy of message ("task failed" for NULL); NULL when out of memory
 * (payload untouched). Freed by the task, or by mvx__failure_free. */
struct mvx__failure_rec *mvx__failure_new(int code, const char *message, void *payload,
                                          void (*payload_drop)(void *));
/* A promise task was cancelled (it is CANCELLED now): wakes its producer's cancel waker. */
void mvx__promise_cancelled(struct mvx__task *t);
/* Frees a record that was never handed to a task, without dropping its payload. */
void mvx__failure_free_unused(struct mvx__failure_rec *rec);
/* Cancels a popped task without polling it (shutdown, local set teardown). */
void mvx__task_cancel_popped(struct mvx__task *t);

/* References. ref_dec frees the task, or schedules an unreachable idle task for cancellation. */
void mvx__task_ref_inc(struct mvx__task *t);
void mvx__task_ref_dec(struct mvx__task *t);
/* Drops a reference of a finished task and clears `flags` (which must be set) in one RMW. */
void mvx__task_ref_dec_flags(struct mvx__task *t, uint64_t flags);
/* Takes a reference unless the count is already 0 (the slot is free or being freed). */
bool mvx__task_try_ref(struct mvx__task *t);

/* Wakes: IDLE -> SCHEDULED, RUNNING -> NOTIFIED, anything else nothing. */
void mvx__task_wake_by_ref(struct mvx__task *t);
void mvx__task_wake_by_val(struct mvx__task *t);
/* Sets CANCEL; an IDLE task is scheduled so that its scheduler drops it. */
void mvx__task_request_cancel(struct mvx__task *t);

/* The join handle's side of the outcome of a COMPLETE task whose JOIN was set at completion:
 * move the failure record into *out (and free the record), or drop the outcome never taken. */
void mvx__failure_move(struct mvx__task *t, mvx_failure *out);
void mvx__task_drop_outcome(struct mvx__task *t, uint64_t state);
/* Frees a task whose last reference is gone. */
void mvx__task_dealloc(struct mvx__task *t);
extern const char mvx__oom_message[];

/* Hands a SCHEDULED task (with a queue reference) to its scheduler. Defined in sched.c. */
void mvx__schedule(struct mvx__task *t, bool yield);

extern const mvx_waker_vtable mvx__task_waker_vt;

/* Whether a caller's waker vtable has the size and callbacks the header requires; records an
 * MVX_EINVAL message naming `fn` if not. */
bool mvx__waker_vtable_ok(const char *fn, const mvx_waker_vtable *vt);

#endif
