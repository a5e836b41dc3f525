/*
 * notifier.c - a completion queue behind one eventfd: wakes become tokens a host pulls.
 *
 * Each waker made by mvx_notifier_waker() is an entry {token, refs, queued, next}, shared by its
 * clones. Waking an entry that is not queued pushes it onto the notifier's `incoming` stack (a
 * CAS; producers only push and the consumer only takes the whole stack, so there is no ABA);
 * waking a queued one does nothing: that is the coalescing. The consumer moves the stack, reversed
 * into wake order, behind its private FIFO `ready`, and delivers from there.
 *
 * The fd. The waker whose push finds the stack empty writes the eventfd, then bumps `fd_writes`;
 * a drain that sees fd_writes changed since it last read the fd reads it (clearing it) before it
 * takes the stack, and writes it again if tokens remain in `ready`. Every push that lands after a
 * drain's take is preceded by that read, and the first such push writes: so once no wake is in
 * flight, the fd is readable exactly while tokens are pending. A wake racing a drain can leave
 * the fd readable with nothing pending, until the next drain.
 *
 * Lifetime. The notifier's memory (`struct mvx_notifier`) holds one reference for its owner and
 * one per entry; entries hold one per waker copy plus one while queued. mvx_notifier_free() sets
 * `closed`, then waits until no wake is between its check of `closed` and the end of its push
 * (`active`, a Dekker pair with seq_cst on both sides), so that afterwards nothing is pushed and
 * the fd can be closed: wakes after that find `closed` and do nothing.
 */
#include "common.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct entry {
    struct mvx_notifier *n;
    uint64_t token;
    _Atomic uint32_t refs;   /* waker copies, plus one while queued */
    _Atomic uint32_t queued; /* on `incoming` or `ready`: further wakes coalesce */
    struct entry *next;      /* link while queued (written by the pusher, then the consumer) */
};

struct mvx_notifier {
    _Alignas(MVX_CACHE_LINE) struct entry *_Atomic incoming; /* pushed by wakes, newest first */
    _Atomic uint64_t fd_writes;
    _Atomic uint32_t active; /* wakes past their `closed` check */
    _Atomic uint32_t closed;
    _Atomic uint32_t refs;
    int fd;
    /* Consumer only. */
    _Alignas(MVX_CACHE_LINE) struct entry *ready, *ready_tail; /* taken, not yet delivered */
    uint64_t fd_writes_seen;
    _Atomic uint64_t drains, tokens; /* written by the consumer, read by stats */
};

static void notifier_unref(struct mvx_notifier *n)
{
    if (atomic_fetch_sub_explicit(&n->refs, 1, mvx__acq_rel) == 1)
        free(n);
}

static void entry_unref(struct entry *e)
{
    if (atomic_fetch_sub_explicit(&e->refs, 1, mvx__acq_rel) == 1) {
        struct mvx_notifier *n = e->n;
        free(e);
        notifier_unref(n);
    }
}

static void write_fd(struct mvx_notifier *n)
{
    uint64_t one = 1;
    /* Only EAGAIN (the counter at its maximum, already readable) can fail here. */
    ssize_t r = write(n->fd, &one, sizeof one);
    (void)r;
    atomic_fetch_add_explicit(&n->fd_writes, 1, mvx__release);
}

/* ---- the waker ---- */

static void entry_wake_by_ref(void *data)
{
    struct entry *e = data;
    if (atomic_exchange_explicit(&e->queued, 1, mvx__acq_rel))
        return; /* queued already: this wake is delivered by the drain that takes it */
    struct mvx_notifier *n = e->n;
    atomic_fetch_add_explicit(&n->active, 1, mvx__seq_cst);
    if (atomic_load_explicit(&n->closed, mvx__seq_cst)) {
        /* Freed: never delivered. `queued` stays set, so later wakes stop at the exchange. */
        atomic_fetch_sub_explicit(&n->active, 1, mvx__release);
        return;
    }
    atomic_fetch_add_explicit(&e->refs, 1, mvx__relaxed); /* the queue's */
    struct entry *head = atomic_load_explicit(&n->incoming, mvx__relaxed);
    do
        e->next = head;
    while (!atomic_compare_exchange_weak_explicit(&n->incoming, &head, e, mvx__release,
                                                  mvx__relaxed));
    if (!head)
        write_fd(n); /* the stack was empty: the consumer may be about to sleep on the fd */
    atomic_fetch_sub_explicit(&n->active, 1, mvx__release);
}

static void *entry_clone(void *data)
{
    atomic_fetch_add_explicit(&((struct entry *)data)->refs, 1, mvx__relaxed);
    return data;
}

static void entry_drop(void *data)
{
    entry_unref(data);
}

static void entry_wake(void *data)
{
    entry_wake_by_ref(data);
    entry_unref(data);
}

static const mvx_waker_vtable entry_waker_vt = {
    sizeof(mvx_waker_vtable), entry_clone, entry_wake, entry_wake_by_ref, entry_drop,
};

/* ---- the notifier ---- */

MVX_EXTERN int mvx_notifier_new(mvx_notifier **out)
{
    if (!out)
        return mvx__error(MVX_EINVAL, "mvx_notifier_new: out is NULL");
    *out = NULL;
    struct mvx_notifier *n = aligned_alloc(MVX_CACHE_LINE, sizeof *n);
    if (!n)
        return mvx__error(MVX_ENOMEM, "mvx_notifier_new: out of memory");
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(n);
        return mvx__error(e == ENOMEM ? MVX_ENOMEM : MVX_ESYSTEM,
                          "mvx_notifier_new: eventfd failed (errno %d)", e);
    }
    atomic_init(&n->incoming, NULL);
    atomic_init(&n->fd_writes, 0);
    atomic_init(&n->active, 0);
    atomic_init(&n->closed, 0);
    atomic_init(&n->refs, 1);
    n->fd = fd;
    n->ready = n->ready_tail = NULL;
    n->fd_writes_seen = 0;
    atomic_init(&n->drains, 0);
    atomic_init(&n->tokens, 0);
    *out = n;
    return 0;
}

MVX_EXTERN int mvx_notifier_fd(const mvx_notifier *n)
{
    if (!n)
        return mvx__error(MVX_EINVAL, "mvx_notifier_fd: n is NULL");
    return n->fd;
}

MVX_EXTERN int mvx_notifier_waker(mvx_notifier *n, uint64_t token, mvx_waker *out)
{
    if (!n || !out)
        return mvx__error(MVX_EINVAL, "mvx_notifier_waker: n or out is NULL");
    if (atomic_load_explicit(&n->closed, mvx__relaxed))
        return mvx__error(MVX_EINVAL, "mvx_notifier_waker: the notifier is freed");
    struct entry *e = malloc(sizeof *e);
    if (!e)
        return mvx__error(MVX_ENOMEM, "mvx_notifier_waker: out of memory");
    e->n = n;
    e->token = token;
    atomic_init(&e->refs, 1);
    atomic_init(&e->queued, 0);
    e->next = NULL;
    atomic_fetch_add_explicit(&n->refs, 1, mvx__relaxed);
    out->vtable = &entry_waker_vt;
    out->data = e;
    return 0;
}

/* Consumer: moves everything pushed so far behind `ready`, in wake order. */
static void take_incoming(struct mvx_notifier *n)
{
    struct entry *e = atomic_exchange_explicit(&n->incoming, NULL, mvx__acquire);
    struct entry *first = NULL, *last = e;
    while (e) { /* reverse: the stack is newest first */
        struct entry *next = e->next;
        e->next = first;
        first = e;
        e = next;
    }
    if (!first)
        return;
    if (n->ready_tail)
        n->ready_tail->next = first;
    else
        n->ready = first;
    n->ready_tail = last;
}

MVX_EXTERN int mvx_notifier_drain(mvx_notifier *n, uint64_t *tokens, size_t max)
{
    if (!n || (!tokens && max > 0))
        return mvx__error(MVX_EINVAL, "mvx_notifier_drain: n or tokens is NULL");
    if (max > INT32_MAX)
        max = INT32_MAX;
    uint64_t writes = atomic_load_explicit(&n->fd_writes, mvx__acquire);
    if (writes != n->fd_writes_seen) {
        uint64_t value;
        ssize_t r = read(n->fd, &value, sizeof value); /* clears readiness; EAGAIN: was clear */
        (void)r;
        n->fd_writes_seen = writes;
    }
    take_incoming(n);
    size_t count = 0;
    while (count < max && n->ready) {
        struct entry *e = n->ready;
        n->ready = e->next;
        if (!n->ready)
            n->ready_tail = NULL;
        tokens[count++] = e->token;
        /* Off every list before `queued` clears: a wake from here on pushes it again. An
         * exchange, to acquire what the wakes that coalesced into this entry published. */
        atomic_exchange_explicit(&e->queued, 0, mvx__acq_rel);
        entry_unref(e);
    }
    if (n->ready)
        write_fd(n); /* more than max: stay readable */
    atomic_store_explicit(&n->drains, atomic_load_explicit(&n->drains, mvx__relaxed) + 1,
                          mvx__relaxed);
    atomic_store_explicit(&n->tokens, atomic_load_explicit(&n->tokens, mvx__relaxed) + count,
                          mvx__relaxed);
    return (int)count;
}

MVX_EXTERN int mvx_notifier_wait(mvx_notifier *n, int64_t timeout_ns)
{
    if (!n)
        return mvx__error(MVX_EINVAL, "mvx_notifier_wait: n is NULL");
    int64_t deadline = mvx__deadline(timeout_ns);
    for (;;) {
        if (n->ready || atomic_load_explicit(&n->incoming, mvx__acquire))
            return 0;
        struct pollfd p = {n->fd, POLLIN, 0};
        struct timespec ts, *tsp = NULL;
        if (deadline != INT64_MAX) {
            int64_t left = deadline - mvx__now_ns();
            if (left < 0)
                left = 0;
            ts.tv_sec = left / 1000000000;
            ts.tv_nsec = left % 1000000000;
            tsp = &ts;
        }
        int r = ppoll(&p, 1, tsp, NULL);
        if (r > 0)
            return 0;
        if (r == 0)
            return mvx__error(MVX_ETIMEDOUT, "mvx_notifier_wait: timed out");
        if (errno != EINTR)
            return mvx__error(MVX_ESYSTEM, "mvx_notifier_wait: ppoll failed (errno %d)", errno);
    }
}

MVX_EXTERN int mvx_notifier_stats_get(const mvx_notifier *n, mvx_notifier_stats *stats)
{
    if (!n || !stats)
        return mvx__error(MVX_EINVAL, "mvx_notifier_stats_get: n or stats is NULL");
    if (stats->size < sizeof(mvx_notifier_stats))
        return mvx__error(MVX_EINVAL, "mvx_notifier_stats_get: stats->size %zu is below %zu",
                          stats->size, sizeof(mvx_notifier_stats));
    stats->fd_writes = atomic_load_explicit(&n->fd_writes, mvx__relaxed);
    stats->drains = atomic_load_explicit(&n->drains, mvx__relaxed);
    stats->tokens = atomic_load_explicit(&n->tokens, mvx__relaxed);
    return 0;
}

MVX_EXTERN void mvx_notifier_free(mvx_notifier *n)
{
    if (!n)
        return;
    atomic_store_explicit(&n->closed, 1, mvx__seq_cst);
    /* A wake past its check is a few instructions from done, unless preempted: yield to it. */
    while (atomic_load_explicit(&n->active, mvx__seq_cst) != 0)
        sched_yield();
    take_incoming(n);
    for (struct entry *e = n->ready, *next; e; e = next) {
        next = e->next;
        entry_unref(e); /* the queue's reference; `queued` stays set: no more pushes */
    }
    n->ready = n->ready_tail = NULL;
    close(n->fd);
    n->fd = -1;
    notifier_unref(n);
}
