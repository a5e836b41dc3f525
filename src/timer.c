/*
 * timer.c - the time driver (timer.h): per-worker hierarchical wheels, the public timer, sleep
 * tasks and the join timeout. Design: docs/timers.md.
 *
 * The wheel. Time is cut into ticks of 2^17 ns (131 us); a timer due at `deadline` belongs to
 * tick when = ceil(deadline / tick), so a slot's timers are never early when the slot is fired at
 * its start. A tick is read as digits: the low 10 bits (a block of 1,024 ticks, 134 ms), then
 * 6-bit digits. Level 0 has 2,048 slots of one tick, a ring over two blocks: it holds every timer
 * due in the block of `elapsed` (the tick processed last) or in the next one. Six levels above it
 * have 64 slots each, every slot 64 times as long as one of the level below; level l holds the
 * later timers whose tick first differs from elapsed in digit l, in the slot of that digit, as in
 * tokio's wheel. Firing a higher level's slot re-inserts (cascades) its timers into lower levels;
 * each timer moves down at most six times: firing is amortised O(1). Level 0 spans two blocks
 * because a cascade is a burst: it visits every timer of a slot at once, each a cache miss, while
 * the slot's earliest timers are already due. With one block there, every block boundary moved
 * all of the next block's timers at once (up to 50,000 per wheel in a flood of 1-100 ms sleeps)
 * and fired the first of them milliseconds late (docs/timers.md); now a timer armed less than a
 * block ahead never cascades, wherever the boundary falls, and the next block's level-1 slot is
 * moved down in chunks before its block starts (precascade). A slot is processed when its earliest
 * tick comes (slot_due), not at its start: a parked worker wakes once per deadline, where waking
 * at each slot start would cost one more wake-up per level its timers cascade through. The
 * levels reach 2^46 ticks (292 years); later deadlines are clamped to the wheel's end and
 * re-inserted until due.
 */
#include "timer.h"
#include "runtime.h"
#include "worker.h"

#include <sched.h>
#include <string.h>
#include <time.h>

#define TICK_SHIFT 17
#define L0_BITS    10 /* a block: the ticks of one level-1 slot; level 0 rings over two */
#define LEVEL_BITS 6  /* log2(MVX__WHEEL_SLOTS) */
#define BLOCK_TICKS (UINT64_C(1) << L0_BITS)
#define WHEEL_BITS (L0_BITS + LEVEL_BITS * (MVX__WHEEL_LEVELS - 1))
#define WHEEL_TICKS_MASK ((UINT64_C(1) << WHEEL_BITS) - 1)
_Static_assert(MVX__WHEEL_L0_SLOTS == 2u << L0_BITS && MVX__WHEEL_SLOTS == 1u << LEVEL_BITS,
               "level 0 is two blocks; the levels above, 6-bit digits");

/* Level l's digit: where it starts in a tick, how many slots it has, where its slots start in
 * the wheel's arrays. */
static inline unsigned level_shift(unsigned l)
{
    return l ? L0_BITS + LEVEL_BITS * (l - 1) : 0;
}
static inline unsigned level_slots(unsigned l)
{
    return l ? MVX__WHEEL_SLOTS : MVX__WHEEL_L0_SLOTS;
}
static inline unsigned level_base(unsigned l)
{
    return l ? MVX__WHEEL_L0_SLOTS + MVX__WHEEL_SLOTS * (l - 1) : 0;
}
/* A peer fires a busy owner's overdue wheel once it is this late. */
#define STEAL_GRACE_NS 1000000
#define FIRE_BATCH 64

static inline struct mvx__timer *timer_of(mvx_timer *t)
{
    return (struct mvx__timer *)(void *)t;
}
static inline struct mvx__wheel *wheel_of(uintptr_t home)
{
    return (struct mvx__wheel *)(home & ~MVX__TIMER_BITS);
}

MVX_EXTERN int64_t mvx_now(void)
{
    return mvx__now_ns();
}

/* The clock read at every arm would cost as much as the arm itself (a 40 ns vDSO call on this
 * class of VM); the coarse clock costs 4 ns and never runs ahead of the precise one, but lags it
 * by a tick or more (4 ms at HZ=250, more on a loaded VM), so deadlines within COARSE_SLACK_NS of
 * it get the precise read. A deadline that passed but is later than the coarse clock plus that
 * is armed and fires at once, which only costs its waker a round trip. */
#define COARSE_SLACK_NS ((int64_t)50 * 1000000)

static inline int64_t coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool deadline_passed(int64_t deadline)
{
    int64_t coarse = coarse_now();
    if (deadline <= coarse)
        return true;
    return deadline - coarse <= COARSE_SLACK_NS && deadline <= mvx__now_ns();
}

/* ---- the lock ---- */

static inline void wheel_lock(struct mvx__wheel *wh)
{
    if (MVX_LIKELY(!atomic_exchange_explicit(&wh->lock, 1, mvx__acquire)))
        return;
    for (unsigned i = 1;; i++) {
        if (!atomic_load_explicit(&wh->lock, mvx__relaxed) &&
            !atomic_exchange_explicit(&wh->lock, 1, mvx__acquire))
            return;
        if ((i & 127) == 0)
            sched_yield(); /* the holder may be off the CPU */
        else
            mvx__cpu_relax();
    }
}
static inline bool wheel_trylock(struct mvx__wheel *wh)
{
    return !atomic_load_explicit(&wh->lock, mvx__relaxed) &&
           !atomic_exchange_explicit(&wh->lock, 1, mvx__acquire);
}
static inline void wheel_unlock(struct mvx__wheel *wh)
{
    atomic_store_explicit(&wh->lock, 0, mvx__release);
}

/* ---- the wheel (all under its lock) ---- */

void mvx__wheel_init(struct mvx__wheel *wh, struct mvx__worker *owner)
{
    memset(wh, 0, sizeof *wh);
    wh->owner = owner;
    wh->elapsed = (uint64_t)mvx__now_ns() >> TICK_SHIFT;
    atomic_init(&wh->near_min, INT64_MAX);
    atomic_init(&wh->next_fire, INT64_MAX);
}

static inline uint64_t tick_of(int64_t deadline)
{
    uint64_t d = (uint64_t)deadline;
    return (d >> TICK_SHIFT) + ((d & ((UINT64_C(1) << TICK_SHIFT) - 1)) != 0);
}

/* The level a timer due at tick `when` (> elapsed) goes to: level 0 for the current block of
 * 1,024 ticks and the next one (its 2,048 slots are a ring over the two), else the level of the
 * highest digit in which `when` differs from elapsed. */
static inline unsigned level_for(uint64_t elapsed, uint64_t when)
{
    if ((when >> L0_BITS) <= (elapsed >> L0_BITS) + 1)
        return 0;
    unsigned bit = (unsigned)(63 - __builtin_clzll(elapsed ^ when));
    return 1 + (bit - L0_BITS) / LEVEL_BITS;
}

/* The next occupied slot: its index in the wheel's arrays, its start and when it is due (ticks);
 * false if the wheel is empty. Candidates: level 0's first slot from elapsed on (the current
 * block's half, then the next block's), and each level's first occupied slot above. Within a
 * level the lowest index is the earliest, but the levels are not ordered among themselves: a
 * slot above can hold timers of the block elapsed has reached through level 0 (it was armed
 * before that block became level 0's), due before or after level 0's next. */
static bool next_slot(const struct mvx__wheel *wh, unsigned *index, uint64_t *start, uint64_t *due)
{
    enum { HALF_WORDS = MVX__WHEEL_L0_SLOTS / 2 / 64 };
    uint64_t block = wh->elapsed >> L0_BITS;
    unsigned half = (unsigned)(block & 1) * HALF_WORDS;
    bool found = false;
    /* The current half from elapsed's word on, then the whole next half. */
    unsigned from = (unsigned)((wh->elapsed & (BLOCK_TICKS - 1)) >> 6);
    for (unsigned k = from; k < 2 * HALF_WORDS && !found; k++) {
        unsigned word = k < HALF_WORDS ? half + k : (half ^ HALF_WORDS) + k - HALF_WORDS;
        if (!wh->occupied[word])
            continue;
        unsigned i = word * 64 + (unsigned)__builtin_ctzll(wh->occupied[word]);
        *index = i;
        *start = ((block + (k >= HALF_WORDS)) << L0_BITS) | (i & (BLOCK_TICKS - 1));
        *due = *start;
        found = true;
    }
    for (unsigned l = 1; l < MVX__WHEEL_LEVELS; l++) {
        uint64_t bits = wh->occupied[MVX__WHEEL_L0_SLOTS / 64 + l - 1];
        if (!bits)
            continue;
        unsigned i = level_base(l) + (unsigned)__builtin_ctzll(bits);
        uint64_t slot = i - level_base(l);
        uint64_t above = ~((UINT64_C(1) << level_shift(l + 1)) - 1);
        uint64_t s = (wh->elapsed & above) | (slot << level_shift(l));
        uint64_t d = wh->slot_due[i] > s ? wh->slot_due[i] : s;
        if (!found || d < *due) {
            *index = i;
            *start = s;
            *due = d;
            found = true;
        }
    }
    return found;
}

static inline int64_t ns_of_tick(uint64_t tick)
{
    return tick >= ((uint64_t)INT64_MAX >> TICK_SHIFT) ? INT64_MAX : (int64_t)(tick << TICK_SHIFT);
}

static void wheel_unlink(struct mvx__wheel *wh, struct mvx__timer *t)
{
    *t->pprev = t->next;
    if (t->next) {
        t->next->pprev = t->pprev;
    } else {
        size_t i = (size_t)(t->pprev - &wh->slots[0]);
        if (i < MVX__WHEEL_ALL_SLOTS && !*t->pprev)
            wh->occupied[i / 64] &= ~(UINT64_C(1) << (i % 64));
    }
    wh->count--;
}

/* Moving the next block down. The timers of the block after elapsed's sit in one level-1 slot
 * if they were armed more than a block ahead; they would cascade at once when it comes, each a
 * cache miss while the block's first timers are due. Instead each wheel_process moves a chunk of
 * them into level 0 (their block is level 0's next), and from PRECASCADE_MARGIN before the block
 * starts, the rest. The last block of a group of 64 is not covered: the next block is then in a
 * level-2 slot with 63 others. */
#define PRECASCADE_CHUNK  256
#define PRECASCADE_MARGIN 128 /* ticks: 16.8 ms */

/* The level-1 slot of the block after elapsed's, if it is in elapsed's group and occupied; else
 * 0 (level 1's slots come after level 0's, so 0 is none of them). */
static unsigned next_block_slot(const struct mvx__wheel *wh)
{
    uint64_t next_block = (wh->elapsed >> L0_BITS) + 1;
    if ((next_block >> LEVEL_BITS) != (wh->elapsed >> (L0_BITS + LEVEL_BITS)))
        return 0;
    unsigned i = level_base(1) + (unsigned)(next_block & (MVX__WHEEL_SLOTS - 1));
    return wh->occupied[i / 64] & (UINT64_C(1) << (i % 64)) ? i : 0;
}

static inline uint64_t next_block_start(const struct mvx__wheel *wh)
{
    return ((wh->elapsed >> L0_BITS) + 1) << L0_BITS;
}

static void publish_next(struct mvx__wheel *wh)
{
    unsigned i;
    uint64_t start, due;
    int64_t next = next_slot(wh, &i, &start, &due) ? ns_of_tick(due) : INT64_MAX;
    if (next_block_slot(wh)) {
        int64_t move_by = ns_of_tick(next_block_start(wh) - PRECASCADE_MARGIN);
        if (move_by < next)
            next = move_by;
    }
    atomic_store_explicit(&wh->next_fire, next, mvx__seq_cst);
}

/* Links t (unlinked) at tick `when` > elapsed; returns when its slot is due, in ns. */
static int64_t wheel_insert(struct mvx__wheel *wh, struct mvx__timer *t, uint64_t when)
{
    uint64_t last = wh->elapsed | WHEEL_TICKS_MASK;
    if (MVX_UNLIKELY(when <= wh->elapsed))
        when = wh->elapsed + 1; /* not reached: callers fire those */
    if (when > last)
        when = last > wh->elapsed ? last : wh->elapsed + 1; /* beyond the wheel: re-inserted */
    unsigned l = level_for(wh->elapsed, when);
    if (MVX_UNLIKELY(l >= MVX__WHEEL_LEVELS))
        l = MVX__WHEEL_LEVELS - 1; /* past 2^46 ticks of uptime only */
    unsigned i = level_base(l) + (unsigned)((when >> level_shift(l)) & (level_slots(l) - 1));
    struct mvx__timer **head = &wh->slots[i];
    t->next = *head;
    if (t->next)
        t->next->pprev = &t->next;
    *head = t;
    t->pprev = head;
    uint64_t bit = UINT64_C(1) << (i % 64);
    if (!(wh->occupied[i / 64] & bit) || when < wh->slot_due[i])
        wh->slot_due[i] = when;
    wh->occupied[i / 64] |= bit;
    wh->count++;
    if (l == 0 && when == atomic_load_explicit(&wh->near_tick, mvx__relaxed) &&
        t->deadline < atomic_load_explicit(&wh->near_min, mvx__relaxed))
        atomic_store_explicit(&wh->near_min, t->deadline, mvx__relaxed);
    return ns_of_tick(wh->slot_due[i]);
}

/* Moves a chunk of the next block's level-1 slot into level 0, or all of it once the block is
 * PRECASCADE_MARGIN away. */
static void precascade(struct mvx__wheel *wh, uint64_t now_tick)
{
    unsigned i = next_block_slot(wh);
    if (!i)
        return;
    bool all = now_tick + PRECASCADE_MARGIN >= next_block_start(wh);
    struct mvx__timer *t;
    for (unsigned n = 0; (all || n < PRECASCADE_CHUNK) && (t = wh->slots[i]) != NULL; n++) {
        wheel_unlink(wh, t);
        wheel_insert(wh, t, tick_of(t->deadline)); /* its block is the next: level 0 */
    }
}

/* A fired timer (unlinked): its waker, moved out, and LINKED cleared. */
static mvx_waker take_waker(struct mvx__timer *t)
{
    mvx_waker waker = t->waker;
    t->waker.vtable = NULL;
    t->waker.data = NULL;
    /* Release: the user who sees LINKED clear may touch the waker field. */
    atomic_store_explicit(&t->home,
                          atomic_load_explicit(&t->home, mvx__relaxed) & ~MVX__TIMER_LINKED,
                          mvx__release);
    return waker;
}

static void flush(mvx_waker *batch, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        mvx_waker_wake(&batch[i]);
}

/* Fires every timer due at `now`, cascading what is due for it. The lock is taken by the caller
 * and held on return; it is let go while a full batch of wakers is woken, and `processing` keeps
 * any other thread from processing meanwhile (elapsed must not move under this loop). Returns
 * the count. */
static unsigned wheel_process(struct mvx__wheel *wh, int64_t now)
{
    if (wh->processing)
        return 0; /* another thread is at it, between two batches */
    wh->processing = true;
    uint64_t now_tick = (uint64_t)now >> TICK_SHIFT;
    mvx_waker batch[FIRE_BATCH];
    unsigned n = 0, fired = 0;
    unsigned i;
    uint64_t start, due;
    while (next_slot(wh, &i, &start, &due) && due <= now_tick) {
        if (start > wh->elapsed)
            wh->elapsed = start;
        struct mvx__timer *t;
        while ((t = wh->slots[i]) != NULL) {
            wheel_unlink(wh, t);
            if (t->deadline > now && tick_of(t->deadline) > wh->elapsed) {
                wheel_insert(wh, t, tick_of(t->deadline)); /* a lower level: later than now */
                continue;
            }
            batch[n++] = take_waker(t);
            fired++;
            if (n == FIRE_BATCH) {
                /* Wake outside the lock: a wake can run a drop callback that frees a timer. */
                publish_next(wh);
                wheel_unlock(wh);
                flush(batch, n);
                n = 0;
                wheel_lock(wh);
            }
        }
    }
    if (wh->count == 0 && now_tick > wh->elapsed)
        wh->elapsed = now_tick; /* nothing linked: catch up, for precise levels */
    precascade(wh, now_tick);
    publish_next(wh);
    wh->processing = false;
    if (n) {
        wheel_unlock(wh);
        flush(batch, n);
        wheel_lock(wh);
    }
    return fired;
}

/* A busy look within the current tick: the slot of the tick after now's (its start is
 * still ahead, so wheel_process leaves it) holds timers whose deadlines may have passed already;
 * fires those (tick: that tick), at most FIRE_BATCH into batch, and returns the count. A wheel fires a slot once
 * its tick starts, so a timer waits up to a tick (131 us) past its deadline, half of one on
 * average: that is the price of a parked worker waking once per slot, not per deadline, but a
 * worker that is awake anyway and looks at the clock every few microseconds (mvx__timer_check)
 * can fire each timer at its deadline. near_min keeps the slot from being walked at every look:
 * it is walked when the tick changes, and again only once its earliest deadline has passed. The
 * lock is held: the owner's look, or a peer's covering it (cover_late_peers). */
static unsigned fire_near(struct mvx__wheel *wh, int64_t now, uint64_t tick, mvx_waker *batch)
{
    if (wh->processing)
        return 0;
    unsigned i = level_base(0) + (unsigned)((tick >> level_shift(0)) & (level_slots(0) - 1));
    int64_t min = INT64_MAX;
    unsigned n = 0;
    atomic_store_explicit(&wh->near_tick, tick, mvx__relaxed);
    for (struct mvx__timer *t = wh->slots[i], *next; t; t = next) {
        next = t->next;
        if (t->deadline > now || n == FIRE_BATCH) {
            min = t->deadline < min ? t->deadline : min;
            continue;
        }
        wheel_unlink(wh, t);
        batch[n++] = take_waker(t);
    }
    atomic_store_explicit(&wh->near_min, min, mvx__relaxed);
    if (n)
        publish_next(wh);
    return n;
}

/* ---- the park path ---- */

static bool steal_candidate(struct mvx__worker *w, struct mvx__worker *v, int64_t *due)
{
    if (v == w || atomic_load_explicit(&v->sleep, mvx__relaxed) != MVX__AWAKE)
        return false; /* a sleeping owner wakes for its own deadline */
    int64_t next = atomic_load_explicit(&v->wheel.next_fire, mvx__relaxed);
    if (next == INT64_MAX)
        return false;
    *due = next > INT64_MAX - STEAL_GRACE_NS ? INT64_MAX : next + STEAL_GRACE_NS;
    return true;
}

/* How long a worker covering a peer's overdue wheel sleeps at least, when the peer's wheel is
 * already due but mvx__timer_fire_due could not take it: the peer holds its lock (it is arming or
 * firing, or was preempted doing so). Parking until a deadline already past would return at once,
 * and the worker would loop through futex calls, burning the CPU the peer needs to finish. */
#define COVER_RETRY_NS 100000

/* Timer slack for a sleeper its timers keep waking: when its next deadline is due within
 * PARK_SLACK_WITHIN_NS of the one that last ended its sleep, it sleeps to the next multiple of
 * PARK_GRID_NS (two ticks) instead, so that one wake-up fires two ticks' slots. Timer-dense
 * loads (every worker woken once per 131 us tick) thus wake their workers half as often, at up
 * to a tick more lateness; a lone timer, or timers further apart, still wake it at their slot.
 * See docs/timers.md ("Parking"). */
#define PARK_GRID_NS         (INT64_C(1) << (TICK_SHIFT + 1))
#define PARK_SLACK_WITHIN_NS (2 * PARK_GRID_NS)

static int64_t with_slack(const struct mvx__worker *w, int64_t own)
{
    if (own > INT64_MAX - PARK_GRID_NS || own - w->timer_woke_at >= PARK_SLACK_WITHIN_NS)
        return own;
    return (own + PARK_GRID_NS - 1) & ~(PARK_GRID_NS - 1);
}

int64_t mvx__timer_park_deadline(struct mvx__worker *w)
{
    int64_t own = with_slack(w, atomic_load_explicit(&w->wheel.next_fire, mvx__seq_cst));
    int64_t deadline = own;
    struct mvx_runtime *rt = w->rt;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        int64_t due;
        if (steal_candidate(w, rt->workers[i], &due) && due < deadline)
            deadline = due;
    }
    if (deadline < own) {
        int64_t retry = mvx__now_ns() + COVER_RETRY_NS;
        if (deadline < retry)
            deadline = retry < own ? retry : own;
    }
    return deadline;
}

/* Fires what is due at now (0: read the clock, only if anything could be due). */
static bool fire_due(struct mvx__worker *w, int64_t now)
{
    struct mvx_runtime *rt = w->rt;
    int64_t first = atomic_load_explicit(&w->wheel.next_fire, mvx__relaxed);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        int64_t due;
        if (steal_candidate(w, rt->workers[i], &due) && due < first)
            first = due;
    }
    if (first == INT64_MAX)
        return false;
    if (!now)
        now = mvx__now_ns();
    if (now < first)
        return false;
    unsigned fired = 0;
    struct mvx__wheel *own = &w->wheel;
    if (atomic_load_explicit(&own->next_fire, mvx__relaxed) <= now) {
        wheel_lock(own);
        fired += wheel_process(own, now);
        wheel_unlock(own);
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct mvx__worker *v = rt->workers[i];
        int64_t due;
        if (steal_candidate(w, v, &due) && due <= now && wheel_trylock(&v->wheel)) {
            fired += wheel_process(&v->wheel, now);
            wheel_unlock(&v->wheel);
        }
    }
    return fired > 0;
}

bool mvx__timer_fire_due(struct mvx__worker *w)
{
    return fire_due(w, 0);
}

/* Whether the current tick's level-0 slot may hold a timer due at now: it has not been walked in
 * this tick, or its earliest deadline since (near_min, only ever too early) has passed. */
static inline bool near_may_be_due(struct mvx__wheel *wh, int64_t now, uint64_t tick)
{
    return atomic_load_explicit(&wh->near_tick, mvx__relaxed) != tick ||
           atomic_load_explicit(&wh->near_min, mvx__relaxed) <= now;
}

/* Under wh's lock, for a busy look: fires its slots whose tick has started, if any is due, and,
 * if near, its current tick's deadlines that have passed, whose wakers go to batch (to be woken
 * outside the lock: a wake can run a drop callback that frees a timer). */
static unsigned fire_busy_locked(struct mvx__wheel *wh, int64_t now, uint64_t tick, bool near,
                                 mvx_waker *batch)
{
    if (atomic_load_explicit(&wh->next_fire, mvx__relaxed) <= now)
        wheel_process(wh, now);
    return near ? fire_near(wh, now, tick, batch) : 0;
}

/* A busy worker's look also fires what is due on the wheel of an awake peer that has not looked
 * at its own for MVX__TIMER_CHECK_NS: one in a long poll, or preempted (8 workers on 2 CPUs:
 * most of them, at any moment). Its timers would otherwise wait for it to come back, or for the
 * 1 ms grace after which a parking peer covers a busy owner's overdue slots (steal_candidate);
 * a peer that looks in time fires its own. The tasks they wake run here. late_peer_due: whether
 * v is such a peer with something due (its slots, or its current tick's deadlines);
 * cover_late_peers fires them, under a trylock: a peer that holds its lock is looking after it
 * itself. */
static bool late_peer_due(struct mvx__worker *w, struct mvx__worker *v, int64_t now, uint64_t tick)
{
    struct mvx__wheel *vh = &v->wheel;
    if (v == w || atomic_load_explicit(&v->sleep, mvx__relaxed) != MVX__AWAKE ||
        now - atomic_load_explicit(&vh->looked_at, mvx__relaxed) < MVX__TIMER_CHECK_NS)
        return false;
    int64_t next = atomic_load_explicit(&vh->next_fire, mvx__relaxed);
    return next <= now || (next != INT64_MAX && near_may_be_due(vh, now, tick));
}
static bool late_peers_due(struct mvx__worker *w, int64_t now, uint64_t tick)
{
    struct mvx_runtime *rt = w->rt;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (late_peer_due(w, rt->workers[i], now, tick))
            return true;
    return false;
}
static void cover_late_peers(struct mvx__worker *w, int64_t now, uint64_t tick)
{
    struct mvx_runtime *rt = w->rt;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct mvx__wheel *vh = &rt->workers[i]->wheel;
        if (!late_peer_due(w, rt->workers[i], now, tick) || !wheel_trylock(vh))
            continue;
        mvx_waker batch[FIRE_BATCH];
        unsigned n = fire_busy_locked(vh, now, tick, near_may_be_due(vh, now, tick), batch);
        wheel_unlock(vh);
        flush(batch, n);
    }
}

/* A look wakes its timers' tasks ahead of the worker's queue: it takes a queue of up to
 * HOLD_MAX tasks out, fires, and pushes them back behind the woken ones. Otherwise the LIFO slot
 * takes the last woken and the others wait behind every task queued (yielders among them):
 * timer_busy_lateness's p50 at 2 workers 11-15 us with this, 6.7-7.6 with SHORT_GAPS_TO_GROW
 * too (docs/timers.md). Returns the count taken. */
#define HOLD_MAX 16
static unsigned hold_queue(struct mvx__worker *w, struct mvx__task **held)
{
    unsigned k = 0;
    if (mvx__deque_len(&w->deque) <= HOLD_MAX)
        while (k < HOLD_MAX && (held[k] = mvx__deque_pop(&w->deque)) != NULL)
            k++;
    return k;
}

/* A busy worker looks at the clock for due timers between polls, about every
 * MVX__TIMER_CHECK_NS of running, whatever its tasks do: the number of polls between two looks
 * halves when the last gap was longer than that and grows by one (to MVX__TIMER_CHECK_MAX) after
 * SHORT_GAPS_TO_GROW gaps in a row under half, so long polls get a look after each and short
 * ones share one clock read among 16. A fixed 16 polls made a timer wait that long on top of
 * its tick: with 10 us polls, 160 us (timer_busy_lateness, docs/timers.md). Growing after a
 * single short gap let a woken sleeper's own short poll among 10 us ones put the next look two
 * polls away. The gap, not the mean poll: one long poll in a run of short ones delays the look
 * as much as many long ones. Only while the wheel holds timers; an empty wheel costs the
 * countdown. */
#define SHORT_GAPS_TO_GROW 4
void mvx__timer_check(struct mvx__worker *w)
{
    if (atomic_load_explicit(&w->wheel.next_fire, mvx__relaxed) == INT64_MAX) {
        w->timer_left = w->timer_every = MVX__TIMER_CHECK_MAX;
        w->timer_checked_at = 0; /* the next look has no gap to learn from */
        w->timer_short_gaps = 0;
        return;
    }
    int64_t now = mvx__now_ns();
    if (w->timer_checked_at) {
        int64_t gap = now - w->timer_checked_at;
        if (gap > MVX__TIMER_CHECK_NS) {
            w->timer_every = (w->timer_every + 1) / 2;
            w->timer_short_gaps = 0;
        } else if (gap < MVX__TIMER_CHECK_NS / 2 && w->timer_every < MVX__TIMER_CHECK_MAX &&
                   ++w->timer_short_gaps == SHORT_GAPS_TO_GROW) {
            w->timer_every++;
            w->timer_short_gaps = 0;
        }
    }
    w->timer_left = w->timer_every;
    w->timer_checked_at = now;
    struct mvx__wheel *wh = &w->wheel;
    uint64_t tick = ((uint64_t)now >> TICK_SHIFT) + 1; /* the current tick's slot */
    atomic_store_explicit(&wh->looked_at, now, mvx__relaxed);
    bool slots_due = atomic_load_explicit(&wh->next_fire, mvx__relaxed) <= now;
    bool near_due = near_may_be_due(wh, now, tick);
    bool peers_due = late_peers_due(w, now, tick);
    if (!slots_due && !near_due && !peers_due)
        return;
    struct mvx__task *held[HOLD_MAX];
    unsigned k = hold_queue(w, held);
    if (slots_due || near_due) {
        mvx_waker batch[FIRE_BATCH];
        wheel_lock(wh);
        unsigned n = fire_busy_locked(wh, now, tick, near_due, batch);
        wheel_unlock(wh);
        flush(batch, n);
    }
    if (peers_due)
        cover_late_peers(w, now, tick);
    for (unsigned i = 0; i < k; i++)
        mvx__worker_push_back(w, held[i]);
}

/* ---- the public timer ---- */

static struct mvx__wheel *pick_wheel(struct mvx_runtime *rt)
{
    struct mvx__worker *w = mvx__tl_worker;
    if (w && w->rt == rt)
        return &w->wheel;
    static _Atomic unsigned rotor;
    unsigned i = atomic_fetch_add_explicit(&rotor, 1, mvx__relaxed) % rt->nworkers;
    return &rt->workers[i]->wheel;
}

static void timer_setup(struct mvx__timer *t, struct mvx_runtime *rt, uintptr_t bits)
{
    memset(t, 0, sizeof *t);
    atomic_init(&t->home, (uintptr_t)pick_wheel(rt) | bits);
}

MVX_EXTERN int mvx_timer_init(mvx_timer *timer, mvx_runtime *rt)
{
    if (!timer || !rt)
        return mvx__error(MVX_EINVAL, "mvx_timer_init: timer or rt is NULL");
    atomic_fetch_add_explicit(&rt->arena.refs, 1, mvx__relaxed);
    timer_setup(timer_of(timer), rt, 0);
    return 0;
}

/* Unlinks t if it is linked (in any wheel); true if it was. */
static bool timer_unlink(struct mvx__timer *t)
{
    uintptr_t home = atomic_load_explicit(&t->home, mvx__acquire);
    if (!(home & MVX__TIMER_LINKED))
        return false;
    struct mvx__wheel *wh = wheel_of(home);
    wheel_lock(wh);
    home = atomic_load_explicit(&t->home, mvx__relaxed);
    bool linked = home & MVX__TIMER_LINKED;
    if (linked) {
        wheel_unlink(wh, t);
        atomic_store_explicit(&t->home, home & ~MVX__TIMER_LINKED, mvx__relaxed);
    }
    wheel_unlock(wh);
    return linked;
}

/* A wheel's next deadline came earlier from a thread that is not its worker: that worker may be
 * asleep with a later one. */
static void kick_owner(struct mvx__wheel *wh)
{
    struct mvx__worker *w = wh->owner;
    if (w != mvx__tl_worker && atomic_load_explicit(&w->sleep, mvx__seq_cst) == MVX__SLEEPING)
        mvx__idle_wake_worker(w);
}

MVX_EXTERN int mvx_timer_arm(mvx_timer *timer, int64_t deadline_ns, const mvx_waker *waker)
{
    if (MVX_UNLIKELY(!timer || !waker || !waker->vtable))
        return mvx__error(MVX_EINVAL, "mvx_timer_arm: timer, waker or its vtable is NULL");
    struct mvx__timer *t = timer_of(timer);
    uintptr_t home = atomic_load_explicit(&t->home, mvx__acquire);
    if (MVX_UNLIKELY(!home))
        return mvx__error(MVX_EINVAL, "mvx_timer_arm: the timer is not initialised");
    struct mvx__wheel *wh = wheel_of(home);
    struct mvx_runtime *rt = wh->owner->rt;
    if (MVX_UNLIKELY(atomic_load_explicit(&rt->phase, mvx__relaxed) != MVX__PHASE_RUNNING)) {
        timer_unlink(t);
        return mvx__error(MVX_ESHUTDOWN, "mvx_timer_arm: the runtime is shut down");
    }
    if (deadline_passed(deadline_ns)) {
        timer_unlink(t);
        return 0;
    }
    /* The target: this worker's wheel, or the current one when armed from outside. */
    struct mvx__worker *self = mvx__tl_worker;
    struct mvx__wheel *target = self && self->rt == rt ? &self->wheel : wh;
    if (target != wh) {
        timer_unlink(t);
        home = (uintptr_t)target | (home & MVX__TIMER_NOREF);
        atomic_store_explicit(&t->home, home, mvx__relaxed);
    }
    wheel_lock(target);
    home = atomic_load_explicit(&t->home, mvx__relaxed);
    if (home & MVX__TIMER_LINKED) {
        if (t->deadline == deadline_ns && mvx_waker_will_wake(&t->waker, waker)) {
            wheel_unlock(target);
            return MVX_EAGAIN; /* a repeated poll: nothing changes */
        }
        wheel_unlink(target, t);
        home &= ~MVX__TIMER_LINKED;
        atomic_store_explicit(&t->home, home, mvx__relaxed);
    }
    if (!mvx_waker_will_wake(&t->waker, waker)) {
        /* Unlinked, so the fields are this thread's: swap wakers outside the lock (a drop can
         * run a task's drop callback, which may free another timer of this wheel). */
        wheel_unlock(target);
        mvx_waker_drop(&t->waker);
        mvx_waker_clone(waker, &t->waker);
        wheel_lock(target);
    }
    uint64_t when = tick_of(deadline_ns);
    if (when <= target->elapsed) {
        wheel_unlock(target); /* processed past it meanwhile: it has passed */
        return 0;
    }
    t->deadline = deadline_ns;
    int64_t slot_ns = wheel_insert(target, t, when);
    atomic_store_explicit(&t->home, home | MVX__TIMER_LINKED, mvx__relaxed);
    bool earlier = slot_ns < atomic_load_explicit(&target->next_fire, mvx__relaxed);
    if (earlier)
        atomic_store_explicit(&target->next_fire, slot_ns, mvx__seq_cst);
    wheel_unlock(target);
    if (earlier)
        kick_owner(target);
    return MVX_EAGAIN;
}

MVX_EXTERN int mvx_timer_cancel(mvx_timer *timer)
{
    if (!timer)
        return mvx__error(MVX_EINVAL, "mvx_timer_cancel: timer is NULL");
    return timer_unlink(timer_of(timer)) ? 1 : 0;
}

MVX_EXTERN void mvx_timer_fini(mvx_timer *timer)
{
    if (!timer)
        return;
    struct mvx__timer *t = timer_of(timer);
    uintptr_t home = atomic_load_explicit(&t->home, mvx__acquire);
    if (!home)
        return;
    timer_unlink(t);
    mvx_waker_drop(&t->waker);
    struct mvx_runtime *rt = wheel_of(home)->owner->rt;
    atomic_store_explicit(&t->home, 0, mvx__relaxed);
    if (!(home & MVX__TIMER_NOREF))
        mvx__arena_unref(&rt->arena);
}

/* ---- sleep tasks ---- */

struct sleep_state {
    mvx_timer timer;
    int64_t deadline;
};

static int sleep_poll(void *state, mvx_context *cx, void *output)
{
    (void)output;
    struct sleep_state *s = state;
    /* Shut down (MVX_ESHUTDOWN): stay pending; the shutdown cancels the task. */
    return mvx_timer_arm(&s->timer, s->deadline, &cx->waker) == 0 ? MVX_POLL_READY
                                                                   : MVX_POLL_PENDING;
}

static void sleep_drop(void *state)
{
    mvx_timer_fini(&((struct sleep_state *)state)->timer);
}

static const mvx_task_vtable sleep_vt = {
    .size = sizeof(mvx_task_vtable),
    .poll = sleep_poll,
    .drop = sleep_drop,
    .state_size = sizeof(struct sleep_state),
    .state_align = _Alignof(struct sleep_state),
};

MVX_EXTERN int mvx_spawn_sleep(mvx_runtime *rt, int64_t deadline_ns, mvx_join_handle **join)
{
    if (!rt)
        return mvx__error(MVX_EINVAL, "mvx_spawn_sleep: rt is NULL");
    /* The task holds no reference of its own on rt: a runtime outlives its unfinished tasks,
     * and the state (with the timer) is dropped before the task finishes. */
    struct sleep_state s;
    timer_setup(timer_of(&s.timer), rt, MVX__TIMER_NOREF);
    s.deadline = deadline_ns;
    return mvx__spawn("mvx_spawn_sleep", rt, &rt->base, &sleep_vt, &s, join, 0);
}

/* ---- the join timeout ---- */

MVX_EXTERN int mvx_join_poll_until(mvx_join_handle *join, mvx_timer *timer, int64_t deadline_ns,
                                   const mvx_waker *waker)
{
    if (!join || !timer || !waker || !waker->vtable)
        return mvx__error(MVX_EINVAL, "mvx_join_poll_until: join, timer or waker is NULL");
    int r = mvx_join_poll(join, waker);
    if (r != MVX_EAGAIN) {
        mvx_timer_cancel(timer);
        return r;
    }
    r = mvx_timer_arm(timer, deadline_ns, waker);
    if (r == 0) {
        /* The deadline won, unless the task finished in between. */
        r = mvx_join_try(join);
        return r == MVX_EAGAIN ? mvx__error(MVX_ETIMEDOUT, "mvx_join_poll_until: timed out") : r;
    }
    return r;
}
