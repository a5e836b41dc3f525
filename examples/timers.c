/*
 * timers.c - a periodic task and a timeout on moduvex's timers.
 *
 * The periodic task keeps one mvx_timer in its state and re-arms it for the next period each
 * time it fires (deadlines stay on the grid start + k * period, so they do not drift); the
 * watcher awaits a sleep task with mvx_join_poll_until and gives up at its deadline.
 */
#include <moduvex.h>

#include <stdio.h>
#include <stdlib.h>

#define MS ((int64_t)1000000)

struct periodic {
    mvx_timer timer;
    int64_t next; /* the next tick's deadline */
    int64_t period;
    int ticks_left;
};

static int periodic_poll(void *state, mvx_context *cx, void *output)
{
    struct periodic *p = state;
    /* 0: the deadline has passed, a tick; MVX_EAGAIN: armed, we are woken at the deadline. */
    while (mvx_timer_arm(&p->timer, p->next, mvx_context_waker(cx)) == 0) {
        printf("tick %d, %.2f ms late\n", p->ticks_left, (double)(mvx_now() - p->next) / MS);
        p->next += p->period;
        if (--p->ticks_left == 0) {
            *(int *)output = 0;
            return MVX_POLL_READY;
        }
    }
    return MVX_POLL_PENDING;
}

static void periodic_drop(void *state)
{
    mvx_timer_fini(&((struct periodic *)state)->timer);
}

static const mvx_task_vtable periodic_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = periodic_poll,
    .drop = periodic_drop,
    .state_size = sizeof(struct periodic),
    .state_align = _Alignof(struct periodic),
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

/* Awaits `target` for at most `deadline`: its outcome, or MVX_ETIMEDOUT. */
struct watcher {
    mvx_join_handle *target;
    mvx_timer timer;
    int64_t deadline;
};

static int watcher_poll(void *state, mvx_context *cx, void *output)
{
    struct watcher *w = state;
    int r = mvx_join_poll_until(w->target, &w->timer, w->deadline, mvx_context_waker(cx));
    if (r == MVX_EAGAIN)
        return MVX_POLL_PENDING;
    *(int *)output = r;
    return MVX_POLL_READY;
}

static void watcher_drop(void *state)
{
    mvx_timer_fini(&((struct watcher *)state)->timer);
}

static const mvx_task_vtable watcher_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = watcher_poll,
    .drop = watcher_drop,
    .state_size = sizeof(struct watcher),
    .state_align = _Alignof(struct watcher),
    .output_size = sizeof(int),
    .output_align = _Alignof(int),
};

static void check(int r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "%s: %s (%s)\n", what, mvx_strerror(r), mvx_last_error());
        exit(1);
    }
}

int main(void)
{
    mvx_runtime *rt;
    check(mvx_runtime_new(NULL, &rt), "mvx_runtime_new");

    /* Five ticks, 10 ms apart. The timer is initialised here and moved into the task's state,
     * which is allowed while it is not armed. */
    struct periodic p = {.next = mvx_now() + 10 * MS, .period = 10 * MS, .ticks_left = 5};
    check(mvx_timer_init(&p.timer, rt), "mvx_timer_init");
    mvx_join_handle *ticker;
    check(mvx_spawn(rt, &periodic_vt, &p, &ticker), "mvx_spawn");

    /* A sleep of an hour, awaited with a 30 ms timeout. */
    mvx_join_handle *nap, *watch;
    check(mvx_spawn_sleep(rt, mvx_now() + 3600 * 1000 * MS, &nap), "mvx_spawn_sleep");
    struct watcher w = {.target = nap, .deadline = mvx_now() + 30 * MS};
    check(mvx_timer_init(&w.timer, rt), "mvx_timer_init");
    check(mvx_spawn(rt, &watcher_vt, &w, &watch), "mvx_spawn");

    int out;
    check(mvx_join_wait(ticker, MVX_TIMEOUT_INFINITE), "periodic task");
    check(mvx_join_wait(watch, MVX_TIMEOUT_INFINITE), "watcher");
    check(mvx_join_take(watch, &out, sizeof out, NULL), "mvx_join_take");
    printf("awaiting the hour-long sleep: %s\n", mvx_err_name(out)); /* MVX_ETIMEDOUT */
    mvx_join_abort(nap); /* cancels its timer */
    printf("after abort: %s\n", mvx_err_name(mvx_join_wait(nap, MVX_TIMEOUT_INFINITE)));

    mvx_join_release(ticker);
    mvx_join_release(watch);
    mvx_join_release(nap);
    mvx_runtime_release(rt);
    return out == MVX_ETIMEDOUT ? 0 : 1;
}
