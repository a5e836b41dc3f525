/*
 * poll_loop.c - a host with its own event loop (here a plain poll(2) loop that also watches
 * stdin) waits for moduvex tasks without blocking and without running any of its code on a
 * moduvex thread: each join handle gets a notifier waker whose token names it, and the loop
 * drains tokens when the notifier's fd is readable. A promise goes the other way: a task of
 * the runtime awaits a value that the loop produces.
 *
 *     ./examples/poll_loop [tasks]
 */
#include <moduvex.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void die(const char *what, int rc)
{
    fprintf(stderr, "poll_loop: %s: %s (%s)\n", what, mvx_strerror(rc), mvx_last_error());
    exit(1);
}

/* Sums 1..n on a worker, yielding every 1,000 steps so that others get the CPU. */
struct summer {
    uint64_t n, i, sum;
};
static int summer_poll(void *state, mvx_context *cx, void *output)
{
    struct summer *s = state;
    for (int k = 0; k < 1000 && s->i < s->n; k++)
        s->sum += ++s->i;
    if (s->i < s->n) {
        mvx_waker_wake_by_ref(mvx_context_waker(cx));
        return MVX_POLL_PENDING;
    }
    *(uint64_t *)output = s->sum;
    return MVX_POLL_READY;
}
static const mvx_task_vtable summer_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = summer_poll,
    .state_size = sizeof(struct summer),
    .state_align = _Alignof(struct summer),
    .output_size = sizeof(uint64_t),
    .output_align = _Alignof(uint64_t),
};

/* A worker task that awaits the promise's join handle, then doubles its value. */
static int doubler_poll(void *state, mvx_context *cx, void *output)
{
    mvx_join_handle *jh = *(mvx_join_handle **)state;
    int rc = mvx_join_poll(jh, mvx_context_waker(cx));
    if (rc == MVX_EAGAIN)
        return MVX_POLL_PENDING;
    uint64_t v = 0;
    if (rc == 0)
        mvx_join_take(jh, &v, sizeof v, NULL);
    *(uint64_t *)output = 2 * v;
    return MVX_POLL_READY;
}
static void doubler_drop(void *state)
{
    mvx_join_release(*(mvx_join_handle **)state);
}
static const mvx_task_vtable doubler_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = doubler_poll,
    .drop = doubler_drop,
    .state_size = sizeof(mvx_join_handle *),
    .state_align = _Alignof(mvx_join_handle *),
    .output_size = sizeof(uint64_t),
    .output_align = _Alignof(uint64_t),
};

int main(int argc, char **argv)
{
    int tasks = argc > 1 ? atoi(argv[1]) : 8;
    if (tasks < 1 || tasks > 10000)
        tasks = 8;
    mvx_runtime *rt;
    mvx_notifier *n;
    int rc;
    if ((rc = mvx_runtime_new(NULL, &rt)) != 0)
        die("mvx_runtime_new", rc);
    if ((rc = mvx_notifier_new(&n)) != 0)
        die("mvx_notifier_new", rc);

    /* tokens 0..tasks-1: the summers; token `tasks`: the doubler */
    mvx_join_handle **jh = calloc((size_t)tasks + 1, sizeof *jh);
    int pending = 0;
    for (int i = 0; i <= tasks; i++) {
        if (i < tasks) {
            struct summer s = {1000000u * (uint64_t)(i + 1), 0, 0};
            rc = mvx_spawn(rt, &summer_vt, &s, &jh[i]);
        } else {
            mvx_promise *p;
            mvx_join_handle *pj;
            if ((rc = mvx_spawn_promise(rt, sizeof(uint64_t), 0, NULL, &p, &pj)) != 0)
                die("mvx_spawn_promise", rc);
            if ((rc = mvx_spawn(rt, &doubler_vt, &pj, &jh[i])) != 0)
                die("mvx_spawn", rc);
            uint64_t answer = 21; /* produced by the loop's thread, e.g. read from a socket */
            rc = mvx_promise_resolve(p, &answer);
            mvx_promise_release(p);
        }
        if (rc != 0)
            die("spawn", rc);
        mvx_waker w;
        if ((rc = mvx_notifier_waker(n, (uint64_t)i, &w)) != 0)
            die("mvx_notifier_waker", rc);
        rc = mvx_join_poll(jh[i], &w); /* the handle keeps a clone */
        mvx_waker_drop(&w);
        if (rc == MVX_EAGAIN)
            pending++;
        else
            printf("task %d: finished before the loop started\n", i);
    }

    struct pollfd fds[2] = {{mvx_notifier_fd(n), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    while (pending > 0) {
        if (poll(fds, 2, -1) < 0)
            die("poll", MVX_ESYSTEM);
        if (fds[1].revents & (POLLIN | POLLHUP))
            fds[1].fd = -1; /* the loop's other work; here: stop watching stdin */
        if (!(fds[0].revents & POLLIN))
            continue;
        uint64_t tokens[64];
        int k = mvx_notifier_drain(n, tokens, 64);
        for (int j = 0; j < k; j++) {
            int i = (int)tokens[j];
            uint64_t out = 0;
            if ((rc = mvx_join_take(jh[i], &out, sizeof out, NULL)) != 0)
                die("mvx_join_take", rc);
            if (i < tasks)
                printf("task %d: sum 1..%llu = %llu\n", i, 1000000ull * (i + 1),
                       (unsigned long long)out);
            else
                printf("task %d: awaited the loop's promise: 2 * 21 = %llu\n", i,
                       (unsigned long long)out);
            pending--;
        }
    }
    for (int i = 0; i <= tasks; i++)
        mvx_join_release(jh[i]);
    free(jh);
    mvx_notifier_free(n);
    mvx_runtime_release(rt);
    return 0;
}
