/*
 * waker.c - the waker API: thin dispatch through the waker's vtable, so that a task waker and a
 * foreign one (another executor's) are used the same way.
 *
 * A vtable is validated where a waker enters the library (clone, which mvx_join_poll and
 * mvx_local_set_new go through first); wake and drop only skip a NULL callback, so that a bad
 * waker never crashes and the hot paths pay one test.
 */
#include "task.h"

bool mvx__waker_vtable_ok(const char *fn, const mvx_waker_vtable *vt)
{
    if (vt == &mvx__task_waker_vt)
        return true;
    if (vt->size < sizeof(mvx_waker_vtable)) {
        mvx__error(MVX_EINVAL, "%s: waker vtable size is %zu, expected at least %zu", fn, vt->size,
                   sizeof(mvx_waker_vtable));
        return false;
    }
    if (!vt->clone || !vt->wake || !vt->wake_by_ref || !vt->drop) {
        mvx__error(MVX_EINVAL, "%s: a waker vtable callback is NULL", fn);
        return false;
    }
    return true;
}

MVX_EXTERN int mvx_waker_clone(const mvx_waker *waker, mvx_waker *out)
{
    if (!waker || !out)
        return mvx__error(MVX_EINVAL, "mvx_waker_clone: waker or out is NULL");
    if (!waker->vtable) { /* the empty waker clones to the empty waker */
        out->vtable = NULL;
        out->data = NULL;
        return 0;
    }
    if (!mvx__waker_vtable_ok("mvx_waker_clone", waker->vtable))
        return MVX_EINVAL;
    out->data = waker->vtable->clone(waker->data);
    out->vtable = waker->vtable;
    return 0;
}

/* Empties *waker (it becomes {NULL, NULL}) and returns what it held; NULL vtable if nothing. */
static mvx_waker take(mvx_waker *waker)
{
    mvx_waker w = {NULL, NULL};
    if (waker && waker->vtable) {
        w = *waker;
        waker->vtable = NULL;
        waker->data = NULL;
    }
    return w;
}

MVX_EXTERN void mvx_waker_wake(mvx_waker *waker)
{
    mvx_waker w = take(waker);
    if (w.vtable && w.vtable->wake)
        w.vtable->wake(w.data);
}

MVX_EXTERN void mvx_waker_wake_by_ref(const mvx_waker *waker)
{
    if (waker && waker->vtable && waker->vtable->wake_by_ref)
        waker->vtable->wake_by_ref(waker->data);
}

MVX_EXTERN void mvx_waker_drop(mvx_waker *waker)
{
    mvx_waker w = take(waker);
    if (w.vtable && w.vtable->drop)
        w.vtable->drop(w.data);
}

MVX_EXTERN int mvx_waker_will_wake(const mvx_waker *a, const mvx_waker *b)
{
    return a && b && a->vtable == b->vtable && a->data == b->data;
}

MVX_EXTERN const mvx_waker_vtable *mvx_task_waker_vtable(void)
{
    return &mvx__task_waker_vt;
}
