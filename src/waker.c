/*
 * waker.c - the waker API: thin dispatch through the waker's vtable, so that a task waker and a
 * foreign one (another executor's) are used the same way.
 */
#include "task.h"

MVX_EXTERN int mvx_waker_clone(const mvx_waker *waker, mvx_waker *out)
{
    if (!waker || !out || !waker->vtable)
        return mvx__error(MVX_EINVAL, "mvx_waker_clone: waker, its vtable or out is NULL");
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
    if (w.vtable)
        w.vtable->wake(w.data);
}

MVX_EXTERN void mvx_waker_wake_by_ref(const mvx_waker *waker)
{
    if (waker && waker->vtable)
        waker->vtable->wake_by_ref(waker->data);
}

MVX_EXTERN void mvx_waker_drop(mvx_waker *waker)
{
    mvx_waker w = take(waker);
    if (w.vtable)
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
