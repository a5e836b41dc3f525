/*
 * task.c - the task state machine (diagram in task.h): spawn layout, poll, completion,
 * cancellation, references and wakes. Every transition is one atomic read-modify-write of the
 * state word.
 */
#include "task.h"
#include "arena.h"
#include "futex.h"
#include "local.h"
#include "runtime.h"
#include "signature.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- layout ---- */

static size_t align_up(size_t n, size_t align)
{
    return (n + align - 1) & ~(align - 1);
}

static bool valid_align(size_t a)
{
    return a == 0 || (a <= 16 && (a & (a - 1)) == 0);
}

/* The first release's vtable ends before the optional signature fields. */
#define VTABLE_MIN_SIZE       offsetof(mvx_task_vtable, poll_signature)
#define VTABLE_HAS(vt, field) ((vt)->size >= offsetof(mvx_task_vtable, field) + sizeof((vt)->field))

int mvx__check_vtable(const char *fn, const mvx_task_vtable *vt, const void *state, uint8_t *flags)
{
    if (!vt)
        return mvx__error(MVX_EINVAL, "%s: vtable is NULL", fn);
    if (vt->size < VTABLE_MIN_SIZE)
        return mvx__error(MVX_EINVAL, "%s: vtable->size is %zu, expected at least %zu", fn,
                          vt->size, VTABLE_MIN_SIZE);
    if (!vt->poll)
        return mvx__error(MVX_EINVAL, "%s: vtable->poll is NULL", fn);
    if (!valid_align(vt->state_align) || !valid_align(vt->output_align))
        return mvx__error(MVX_EINVAL, "%s: alignments must be 0 or a power of two up to 16", fn);
    if (vt->state_size > MVX_INLINE_MAX || vt->output_size > MVX_INLINE_MAX ||
        vt->state_size + vt->output_size > MVX_INLINE_MAX)
        return mvx__error(MVX_EINVAL,
                          "%s: state_size + output_size is above MVX_INLINE_MAX (%d); pass large "
                          "states by pointer (state_size 0)",
                          fn, MVX_INLINE_MAX);
    if (vt->state_size > 0 && !state)
        return mvx__error(MVX_EINVAL, "%s: state is NULL but vtable->state_size is %zu", fn,
                          vt->state_size);
    if (VTABLE_HAS(vt, drop_signature) && (vt->poll_signature || vt->drop_signature)) {
        int r = mvx__check_foreign_signatures(fn, vt);
        if (r)
            return r;
        *flags |= (vt->poll_signature ? MVX__TASK_FFI_POLL : 0) |
                  (vt->drop_signature ? MVX__TASK_FFI_DROP : 0);
    }
    return 0;
}

int mvx__task_layout(const char *fn, const mvx_task_vtable *vt, bool local,
                     struct mvx__task_layout *out)
{
    size_t state_align = vt->state_align ? vt->state_align : 16;
    size_t output_align = vt->output_align ? vt->output_align : 16;
    if (vt->state_size == 0 && state_align < sizeof(void *))
        state_align = sizeof(void *);
    /* The state area also holds the failure record pointer once the state is dropped. */
    if (state_align < _Alignof(void *))
        state_align = _Alignof(void *);
    size_t off = sizeof(struct mvx__task) + (local ? sizeof(struct mvx__local_links) : 0);
    size_t state_off = align_up(off, state_align);
    size_t state_len = vt->state_size < sizeof(void *) ? sizeof(void *) : vt->state_size;
    size_t output_off = align_up(state_off + state_len, output_align);
    size_t size = align_up(output_off + vt->output_size, 16);
    if (size > MVX__SLOT_MAX)
        return mvx__error(MVX_EINVAL, "%s: task of %zu bytes is too large to allocate inline", fn,
                          size);
    out->size = size;
    out->state_off = (uint16_t)state_off;
    out->output_off = (uint32_t)output_off;
    return 0;
}

/* ---- freeing ---- */

static void free_failure(struct mvx__failure_rec *rec);

void mvx__task_dealloc(struct mvx__task *t)
{
    uint64_t s = atomic_load_explicit(&t->state, mvx__acquire);
    if (s & MVX__JOIN_WAKER)
        mvx_waker_drop(&t->join_waker);
    if (MVX_UNLIKELY(t->flags & MVX__TASK_CALL)) {
        struct mvx_signature *sig = mvx__signature_of_call_vt(t->vt);
        mvx__slot_free(t);
        mvx_signature_release(sig);
        return;
    }
    mvx__slot_free(t);
}

void mvx__task_ref_inc(struct mvx__task *t)
{
    atomic_fetch_add_explicit(&t->state, MVX__REF_ONE, mvx__relaxed);
}

bool mvx__task_try_ref(struct mvx__task *t)
{
    uint64_t cur = atomic_load_explicit(&t->state, mvx__relaxed);
    do {
        if (mvx__refs(cur) == 0)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&t->state, &cur, cur + MVX__REF_ONE,
                                                    mvx__acquire, mvx__relaxed));
    return true;
}

/* The last reference to a task that never finished is gone: nothing can wake it any more. Its
 * scheduler cancels it, on a thread allowed to drop its state. */
static MVX_NOINLINE void resurrect_for_cancel(struct mvx__task *t, uint64_t s)
{
    /* refs is 0, so this thread is the only one that can touch the word. Two references: the
     * queue's, and ours while we schedule. */
    uint64_t next = (s & ~MVX__LIFECYCLE) | MVX__SCHEDULED | MVX__CANCEL | 2 * MVX__REF_ONE;
    atomic_store_explicit(&t->state, next, mvx__release);
    mvx__schedule(t, false);
    mvx__task_ref_dec(t);
}

void mvx__task_ref_dec(struct mvx__task *t)
{
    uint64_t old = atomic_fetch_sub_explicit(&t->state, MVX__REF_ONE, mvx__acq_rel);
    if (MVX_LIKELY(mvx__refs(old) != 1))
        return;
    if (mvx__is_terminal(old))
        mvx__task_dealloc(t);
    else
        resurrect_for_cancel(t, old - MVX__REF_ONE);
}

/* ---- wakes ---- */

void mvx__task_wake_by_ref(struct mvx__task *t)
{
    uint64_t cur = atomic_load_explicit(&t->state, mvx__relaxed);
    for (;;) {
        uint64_t next;
        switch (mvx__lifecycle(cur)) {
        case MVX__IDLE:
            next = (cur | MVX__SCHEDULED) + MVX__REF_ONE; /* the queue's reference */
            break;
        case MVX__RUNNING:
            if (cur & MVX__NOTIFIED)
                return;
            next = cur | MVX__NOTIFIED;
            break;
        default: /* already scheduled, or finished: nothing to do */
            return;
        }
        if (atomic_compare_exchange_weak_explicit(&t->state, &cur, next, mvx__acq_rel,
                                                  mvx__relaxed)) {
            if (mvx__lifecycle(cur) == MVX__IDLE)
                mvx__schedule(t, false);
            return;
        }
    }
}

void mvx__task_wake_by_val(struct mvx__task *t)
{
    /* The caller's reference keeps the task, and so its scheduler, alive while it is handed over;
     * only then is it dropped. */
    mvx__task_wake_by_ref(t);
    mvx__task_ref_dec(t);
}

void mvx__task_request_cancel(struct mvx__task *t)
{
    uint64_t cur = atomic_load_explicit(&t->state, mvx__relaxed);
    for (;;) {
        if (mvx__is_terminal(cur) || (cur & MVX__CANCEL))
            return;
        uint64_t next = cur | MVX__CANCEL;
        bool idle = mvx__lifecycle(cur) == MVX__IDLE;
        if (idle)
            next = (next | MVX__SCHEDULED) + MVX__REF_ONE;
        if (atomic_compare_exchange_weak_explicit(&t->state, &cur, next, mvx__acq_rel,
                                                  mvx__relaxed)) {
            if (idle)
                mvx__schedule(t, false);
            return;
        }
    }
}

/* ---- finishing: complete or cancelled ---- */

static void drop_state(struct mvx__task *t)
{
    if (MVX_UNLIKELY(t->flags & MVX__TASK_FFI_DROP))
        mvx__ffi_drop(t->vt, mvx__task_state(t));
    else if (t->vt->drop)
        t->vt->drop(mvx__task_state(t));
}

static inline void drop_state_unless_gone(struct mvx__task *t, const struct mvx_context *cx)
{
    if (MVX_LIKELY(!cx->state_gone))
        drop_state(t);
}

/* The native signature takes the direct call; a foreign one goes through its prepared cif. */
static inline int poll_task(struct mvx__task *t, struct mvx_context *cx)
{
    if (MVX_UNLIKELY(t->flags & MVX__TASK_FFI_POLL))
        return mvx__ffi_poll(t->vt, mvx__task_state(t), cx, mvx__task_output(t));
    return t->vt->poll(mvx__task_state(t), cx, mvx__task_output(t));
}

static inline void drop_outcome(struct mvx__task *t, bool failed)
{
    if (failed)
        free_failure(*(struct mvx__failure_rec **)mvx__task_state_area(t));
    else if (t->vt->output_drop)
        t->vt->output_drop(mvx__task_output(t));
}

static void notify_joiner(struct mvx__task *t, uint64_t old)
{
    if (old & MVX__JOIN_WAKER)
        mvx_waker_wake_by_ref(&t->join_waker);
    if (old & MVX__JOIN_BLOCKED)
        mvx__futex_wake(mvx__task_futex(t), INT32_MAX);
}

/* Moves a task whose state this thread owns (RUNNING, or SCHEDULED and popped) to `lifecycle`
 * (COMPLETE or CANCELLED), after its state was dropped. The queue's reference is given up in the
 * same RMW unless this thread still needs the task afterwards (a joiner to wake, an output to
 * drop). */
static void finish(struct mvx__task *t, uint64_t lifecycle, bool failed)
{
    if (t->flags & MVX__TASK_LOCAL)
        mvx__local_forget(t);
    bool has_outcome = lifecycle == MVX__COMPLETE;
    uint64_t cur = atomic_load_explicit(&t->state, mvx__acquire);
    bool outcome_dropped = false;
    if (has_outcome && !(cur & MVX__JOIN)) {
        /* No join handle now, so never one: nobody will take the output. */
        drop_outcome(t, failed);
        outcome_dropped = true;
    }
    uint64_t next;
    bool drop_after, keep_ref;
    do {
        next = (cur & ~(MVX__LIFECYCLE | MVX__NOTIFIED)) | lifecycle | (failed ? MVX__FAILED : 0);
        drop_after = has_outcome && !outcome_dropped && !(cur & MVX__JOIN);
        keep_ref = (cur & (MVX__JOIN_WAKER | MVX__JOIN_BLOCKED)) || drop_after;
        if (!keep_ref)
            next -= MVX__REF_ONE;
    } while (
        !atomic_compare_exchange_weak_explicit(&t->state, &cur, next, mvx__acq_rel, mvx__acquire));
    if (drop_after)
        drop_outcome(t, failed);
    notify_joiner(t, cur);
    if (keep_ref)
        mvx__task_ref_dec(t);
    else if (mvx__refs(next) == 0)
        mvx__task_dealloc(t);
}

void mvx__task_cancel_popped(struct mvx__task *t)
{
    drop_state(t);
    finish(t, MVX__CANCELLED, false);
}

/* ---- failures ---- */

/* Used when the failure record itself cannot be allocated. */
static struct mvx__failure_rec oom_failure = {MVX_ENOMEM, NULL, NULL, NULL};
const char mvx__oom_message[] = "out of memory while recording a task failure";

static void free_failure(struct mvx__failure_rec *rec)
{
    if (rec == &oom_failure)
        return;
    free(rec->message);
    if (rec->payload_drop && rec->payload)
        rec->payload_drop(rec->payload);
    free(rec);
}

/* The fail_* fields are valid only while cx->failed is set. */
static void discard_fail(struct mvx_context *cx)
{
    if (!cx->failed)
        return;
    free(cx->fail_message);
    if (cx->fail_drop && cx->fail_payload)
        cx->fail_drop(cx->fail_payload);
    cx->failed = false;
    cx->fail_message = NULL;
    cx->fail_payload = NULL;
    cx->fail_drop = NULL;
}

/* `poll_result` is what poll returned; anything but MVX_POLL_FAILED is a misuse described in
 * the record (MVX_POLL_PENDING only reaches here from a blocking job). */
static struct mvx__failure_rec *make_failure(struct mvx_context *cx, int poll_result)
{
    struct mvx__failure_rec *rec = malloc(sizeof *rec);
    if (!rec) {
        discard_fail(cx);
        return &oom_failure;
    }
    if (poll_result != MVX_POLL_FAILED) {
        discard_fail(cx);
        char buf[96];
        if (poll_result == MVX_POLL_PENDING && cx->state_gone)
            snprintf(buf, sizeof buf, "poll returned MVX_POLL_PENDING after "
                                      "mvx_context_forget_state");
        else if (poll_result == MVX_POLL_PENDING)
            snprintf(buf, sizeof buf, "a blocking task's poll returned MVX_POLL_PENDING");
        else
            snprintf(buf, sizeof buf, "poll returned %d, which is not an MVX_POLL_* value",
                     poll_result);
        rec->code = MVX_EINVAL;
        rec->message = strdup(buf);
    } else if (cx->failed) {
        rec->code = cx->fail_code;
        rec->message = cx->fail_message ? cx->fail_message : strdup("task panicked");
        cx->fail_message = NULL;
    } else {
        rec->code = MVX_EFAILED;
        rec->message =
            strdup("task panicked (poll returned MVX_POLL_FAILED without a description)");
    }
    bool described = poll_result == MVX_POLL_FAILED && cx->failed;
    rec->payload = described ? cx->fail_payload : NULL;
    rec->payload_drop = described ? cx->fail_drop : NULL;
    if (!rec->message) {
        if (rec->payload_drop && rec->payload)
            rec->payload_drop(rec->payload);
        free(rec);
        return &oom_failure;
    }
    return rec;
}

MVX_EXTERN int mvx_context_fail(mvx_context *cx, int code, const char *message, void *payload,
                                void (*payload_drop)(void *payload))
{
    if (!cx)
        return mvx__error(MVX_EINVAL, "mvx_context_fail: cx is NULL");
    char *copy = NULL;
    if (message && !(copy = strdup(message)))
        return mvx__error(MVX_ENOMEM, "mvx_context_fail: out of memory copying the message");
    discard_fail(cx);
    cx->failed = true;
    cx->fail_code = code;
    cx->fail_message = copy;
    cx->fail_payload = payload;
    cx->fail_drop = payload_drop;
    return 0;
}

MVX_EXTERN int mvx_context_forget_state(mvx_context *cx)
{
    if (!cx)
        return mvx__error(MVX_EINVAL, "mvx_context_forget_state: cx is NULL");
    cx->state_gone = true;
    return 0;
}

MVX_EXTERN const mvx_waker *mvx_context_waker(mvx_context *cx)
{
    return cx ? &cx->waker : NULL;
}

MVX_EXTERN void mvx_failure_clear(mvx_failure *f)
{
    if (!f)
        return;
    if (f->message != mvx__oom_message)
        free(f->message);
    if (f->payload_drop && f->payload) /* destructors need not accept NULL */
        f->payload_drop(f->payload);
    f->message = NULL;
    f->payload = NULL;
    f->payload_drop = NULL;
}

/* ---- running ---- */

enum after_pending { AP_IDLE, AP_YIELD, AP_CANCEL };

static enum after_pending transition_after_pending(struct mvx__task *t)
{
    uint64_t cur = atomic_load_explicit(&t->state, mvx__acquire);
    for (;;) {
        uint64_t next;
        enum after_pending act;
        if (cur & MVX__CANCEL)
            return AP_CANCEL; /* still RUNNING: this thread owns the state */
        if (cur & MVX__NOTIFIED) {
            next = (cur & ~(MVX__LIFECYCLE | MVX__NOTIFIED)) | MVX__SCHEDULED;
            act = AP_YIELD;
        } else if (mvx__refs(cur) == 1) {
            return AP_CANCEL; /* only the poller's reference: nothing can ever wake it */
        } else {
            next = (cur & ~MVX__LIFECYCLE) - MVX__REF_ONE; /* IDLE is 0 */
            act = AP_IDLE;
        }
        if (atomic_compare_exchange_weak_explicit(&t->state, &cur, next, mvx__acq_rel,
                                                  mvx__acquire))
            return act;
    }
}

/* SCHEDULED -> RUNNING, then one poll, whose result goes to *r. Returns false when the task
 * was cancelled instead (CANCEL found at the transition): nothing is left to do. */
static inline bool start_and_poll(struct mvx__task *t, struct mvx_context *cx, int *r)
{
    /* SCHEDULED -> RUNNING is +1 on the lifecycle, and NOTIFIED is never set while SCHEDULED. */
    uint64_t old =
        atomic_fetch_add_explicit(&t->state, MVX__RUNNING - MVX__SCHEDULED, mvx__acquire);
    if (old & MVX__CANCEL) {
        mvx__task_cancel_popped(t);
        return false;
    }
    cx->waker.vtable = &mvx__task_waker_vt;
    cx->waker.data = t;
    cx->task = t;
    cx->failed = false; /* the other fail_* fields are set by mvx_context_fail */
    cx->state_gone = false;
    *r = poll_task(t, cx);
    return true;
}

void mvx__task_run(struct mvx__task *t)
{
    struct mvx_context cx;
    int r;
    if (!start_and_poll(t, &cx, &r))
        return;
    if (MVX_LIKELY(r == MVX_POLL_PENDING) && MVX_LIKELY(!cx.state_gone)) {
        if (MVX_UNLIKELY(cx.failed))
            discard_fail(&cx);
        switch (transition_after_pending(t)) {
        case AP_IDLE:
            return;
        case AP_YIELD:
            mvx__schedule(t, true);
            return;
        case AP_CANCEL:
            mvx__task_cancel_popped(t);
            return;
        }
    }
    if (r == MVX_POLL_READY) {
        if (MVX_UNLIKELY(cx.failed))
            discard_fail(&cx);
        drop_state_unless_gone(t, &cx);
        mvx__worker_completing(t);
        finish(t, MVX__COMPLETE, false);
        return;
    }
    struct mvx__failure_rec *rec = make_failure(&cx, r);
    drop_state_unless_gone(t, &cx);
    *(struct mvx__failure_rec **)mvx__task_state_area(t) = rec;
    mvx__worker_completing(t);
    finish(t, MVX__COMPLETE, true);
}

void mvx__task_run_once(struct mvx__task *t)
{
    struct mvx_context cx;
    int r;
    if (!start_and_poll(t, &cx, &r))
        return;
    bool aborted = atomic_load_explicit(&t->state, mvx__acquire) & MVX__CANCEL;
    if (r == MVX_POLL_READY) {
        if (MVX_UNLIKELY(cx.failed))
            discard_fail(&cx);
        drop_state_unless_gone(t, &cx);
        if (aborted) {
            drop_outcome(t, false);
            finish(t, MVX__CANCELLED, false);
        } else {
            finish(t, MVX__COMPLETE, false);
        }
        return;
    }
    struct mvx__failure_rec *rec = make_failure(&cx, r);
    drop_state_unless_gone(t, &cx);
    if (aborted) {
        free_failure(rec);
        finish(t, MVX__CANCELLED, false);
        return;
    }
    *(struct mvx__failure_rec **)mvx__task_state_area(t) = rec;
    finish(t, MVX__COMPLETE, true);
}

/* ---- tasks completed from outside ---- */

int mvx__task_claim(struct mvx__task *t)
{
    uint64_t cur = atomic_load_explicit(&t->state, mvx__acquire);
    for (;;) {
        uint64_t life = mvx__lifecycle(cur);
        if (life == MVX__RUNNING || life == MVX__COMPLETE)
            return MVX_EALREADY;
        if (life != MVX__IDLE || (cur & MVX__CANCEL))
            return MVX_ECANCELLED;
        /* IDLE is 0; the new reference is the one finish() gives up, as a queue's would be. */
        if (atomic_compare_exchange_weak_explicit(&t->state, &cur,
                                                  (cur | MVX__RUNNING) + MVX__REF_ONE,
                                                  mvx__acq_rel, mvx__acquire))
            return 0;
    }
}

void mvx__task_complete_claimed(struct mvx__task *t, struct mvx__failure_rec *rec)
{
    drop_state(t);
    if (rec)
        *(struct mvx__failure_rec **)mvx__task_state_area(t) = rec;
    finish(t, MVX__COMPLETE, rec != NULL);
}

struct mvx__failure_rec *mvx__failure_new(int code, const char *message, void *payload,
                                          void (*payload_drop)(void *))
{
    struct mvx__failure_rec *rec = malloc(sizeof *rec);
    if (!rec)
        return NULL;
    rec->message = strdup(message ? message : "task failed");
    if (!rec->message) {
        free(rec);
        return NULL;
    }
    rec->code = code;
    rec->payload = payload;
    rec->payload_drop = payload_drop;
    return rec;
}

void mvx__failure_free_unused(struct mvx__failure_rec *rec)
{
    free(rec->message);
    free(rec);
}

/* ---- the waker of a task ---- */

static void *task_waker_clone(void *data)
{
    mvx__task_ref_inc(data);
    return data;
}
static void task_waker_wake(void *data)
{
    mvx__task_wake_by_val(data);
}
static void task_waker_wake_by_ref(void *data)
{
    mvx__task_wake_by_ref(data);
}
static void task_waker_drop(void *data)
{
    mvx__task_ref_dec(data);
}

const mvx_waker_vtable mvx__task_waker_vt = {
    sizeof(mvx_waker_vtable), task_waker_clone, task_waker_wake,
    task_waker_wake_by_ref,   task_waker_drop,
};

void mvx__schedule(struct mvx__task *t, bool yield)
{
    switch (t->sched->kind) {
    case MVX__SCHED_RUNTIME:
        mvx__runtime_schedule((struct mvx_runtime *)t->sched, t, yield);
        return;
    case MVX__SCHED_LOCAL:
        mvx__local_schedule((struct mvx_local_set *)t->sched, t);
        return;
    case MVX__SCHED_PROMISE:
        /* A promise runs no code and is never woken: only a cancellation (abort, shutdown, the
         * last reference) schedules it, and nothing needs a worker for that. Every caller of
         * mvx__schedule holds a reference of its own, so the task outlives the cancel. */
        mvx__task_cancel_popped(t);
        mvx__promise_cancelled(t);
        return;
    default:
        /* A blocking job is never idle, so never scheduled again: its single poll decides. An
         * abort or wake finds it queued, running or finished. */
        return;
    }
}

void mvx__failure_move(struct mvx__task *t, mvx_failure *out)
{
    struct mvx__failure_rec *rec = *(struct mvx__failure_rec **)mvx__task_state_area(t);
    out->code = rec->code;
    out->message = rec->message ? rec->message : (char *)mvx__oom_message;
    out->payload = rec->payload;
    out->payload_drop = rec->payload_drop;
    if (rec != &oom_failure)
        free(rec);
}

void mvx__task_drop_outcome(struct mvx__task *t, uint64_t s)
{
    drop_outcome(t, (s & MVX__FAILED) != 0);
}

void mvx__task_ref_dec_flags(struct mvx__task *t, uint64_t flags)
{
    uint64_t old = atomic_fetch_sub_explicit(&t->state, MVX__REF_ONE | flags, mvx__acq_rel);
    if (mvx__refs(old) == 1)
        mvx__task_dealloc(t); /* only called on finished tasks */
}
