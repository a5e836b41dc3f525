/*
 * deque.c - see deque.h for the algorithm.
 */
#include "deque.h"
#include "task.h"

static inline uint64_t pack(uint32_t steal, uint32_t real)
{
    return ((uint64_t)steal << 32) | real;
}
static inline uint32_t steal_of(uint64_t h)
{
    return (uint32_t)(h >> 32);
}
static inline uint32_t real_of(uint64_t h)
{
    return (uint32_t)h;
}

void mvx__deque_init(struct mvx__deque *q)
{
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    for (unsigned i = 0; i < MVX__DEQUE_CAP; i++)
        atomic_init(&q->buf[i], NULL);
}

unsigned mvx__deque_len(const struct mvx__deque *q)
{
    uint64_t h = atomic_load_explicit(&q->head, mvx__acquire);
    uint32_t tail = atomic_load_explicit(&q->tail, mvx__acquire);
    return tail - real_of(h);
}

unsigned mvx__deque_room(const struct mvx__deque *q)
{
    uint64_t h = atomic_load_explicit(&q->head, mvx__acquire);
    uint32_t tail = atomic_load_explicit(&q->tail, mvx__relaxed);
    return MVX__DEQUE_CAP - (tail - steal_of(h));
}

/* Owner, queue full: claims the older half in one CAS so that stealers cannot take it meanwhile,
 * and links it, then t, into a chain. Returns 0 if a stealer got in the way (the caller retries:
 * the steal made room). */
static unsigned push_overflow(struct mvx__deque *q, uint64_t h, uint32_t tail, struct mvx__task *t,
                              struct mvx__task **first, struct mvx__task **last)
{
    const uint32_t half = MVX__DEQUE_CAP / 2;
    uint32_t real = real_of(h);
    if (steal_of(h) != real || tail - real != MVX__DEQUE_CAP)
        return 0;
    if (!atomic_compare_exchange_strong_explicit(&q->head, &h, pack(real + half, real + half),
                                                 mvx__release, mvx__relaxed))
        return 0;
    struct mvx__task *prev = NULL;
    for (uint32_t i = 0; i < half; i++) {
        struct mvx__task *x =
            atomic_load_explicit(&q->buf[(real + i) & MVX__DEQUE_MASK], mvx__relaxed);
        if (prev)
            atomic_store_explicit(&prev->next, x, mvx__relaxed);
        else
            *first = x;
        prev = x;
    }
    atomic_store_explicit(&prev->next, t, mvx__relaxed);
    atomic_store_explicit(&t->next, NULL, mvx__relaxed);
    *last = t;
    return half + 1;
}

unsigned mvx__deque_push(struct mvx__deque *q, struct mvx__task *t,
                         struct mvx__task **overflow_first, struct mvx__task **overflow_last)
{
    uint32_t tail = atomic_load_explicit(&q->tail, mvx__relaxed);
    for (;;) {
        uint64_t h = atomic_load_explicit(&q->head, mvx__acquire);
        if (tail - steal_of(h) < MVX__DEQUE_CAP) {
            atomic_store_explicit(&q->buf[tail & MVX__DEQUE_MASK], t, mvx__relaxed);
            atomic_store_explicit(&q->tail, tail + 1, mvx__release);
            return 0;
        }
        if (steal_of(h) != real_of(h)) {
            /* A stealer is copying out; it will free room in a moment. Hand t itself over. */
            atomic_store_explicit(&t->next, NULL, mvx__relaxed);
            *overflow_first = *overflow_last = t;
            return 1;
        }
        unsigned n = push_overflow(q, h, tail, t, overflow_first, overflow_last);
        if (n)
            return n;
    }
}

struct mvx__task *mvx__deque_pop(struct mvx__deque *q)
{
    uint64_t h = atomic_load_explicit(&q->head, mvx__acquire);
    uint32_t tail = atomic_load_explicit(&q->tail, mvx__relaxed);
    for (;;) {
        uint32_t real = real_of(h), steal = steal_of(h);
        if (real == tail)
            return NULL;
        uint64_t next = steal == real ? pack(real + 1, real + 1) : pack(steal, real + 1);
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, next, mvx__acq_rel, mvx__acquire))
            return atomic_load_explicit(&q->buf[real & MVX__DEQUE_MASK], mvx__relaxed);
    }
}

unsigned mvx__deque_steal(struct mvx__deque *q, struct mvx__task **out, unsigned max)
{
    uint64_t h = atomic_load_explicit(&q->head, mvx__acquire);
    uint32_t real, n;
    for (;;) {
        real = real_of(h);
        if (steal_of(h) != real)
            return 0; /* another steal in progress */
        uint32_t tail = atomic_load_explicit(&q->tail, mvx__acquire);
        n = tail - real;
        n -= n / 2;
        if (n > max)
            n = max;
        if (n == 0 || n > MVX__DEQUE_CAP)
            return 0; /* empty, or a stale tail read across a wrap */
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, pack(real, real + n), mvx__acq_rel,
                                                  mvx__acquire))
            break;
    }
    for (uint32_t i = 0; i < n; i++)
        out[i] = atomic_load_explicit(&q->buf[(real + i) & MVX__DEQUE_MASK], mvx__relaxed);
    /* Done copying: let the owner reuse the slots. The owner may have popped meanwhile (moving
     * real on), so CAS only the steal half into place. */
    h = atomic_load_explicit(&q->head, mvx__acquire);
    for (;;) {
        uint64_t done = pack(real_of(h), real_of(h));
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, done, mvx__acq_rel, mvx__acquire))
            break;
    }
    return n;
}
