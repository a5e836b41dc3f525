/*
 * arena.c - task memory and the registry of live tasks; see arena.h.
 */
#include "arena.h"
#include "task.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

_Static_assert(sizeof(struct mvx__page) <= MVX__PAGE_HEADER, "page header too big");

#define SEGMENT_SIZE (MVX__PAGE_SIZE * MVX__SEGMENT_PAGES)
#define CLOSED       ((struct mvx__task *)(uintptr_t)1)

static const uint16_t class_size[MVX__NCLASSES] = {
    64,   80,   96,   112,  128,  160,  192,  224,   256,   320,   384,
    448,  512,  640,  768,  896,  1024, 1280, 1536,  1792,  2048,  2560,
    3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384,
};

MVX_TLS struct mvx__heap *mvx__tl_heap;

#define page_of mvx__page_of

int mvx__size_class(size_t size)
{
    for (int c = 0; c < MVX__NCLASSES; c++)
        if (size <= class_size[c])
            return c;
    return -1;
}

/* ---- the registry of arenas, for thread-exit returns of leased heaps ---- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mvx__arena *registry;
static _Atomic uint64_t next_arena_id = 1;

static void registry_remove(struct mvx__arena *arena)
{
    pthread_mutex_lock(&registry_lock);
    for (struct mvx__arena **p = &registry; *p; p = &(*p)->registry_next) {
        if (*p == arena) {
            *p = arena->registry_next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

int mvx__arena_init(struct mvx__arena *arena, int64_t refs, void (*destroy)(struct mvx__arena *))
{
    memset(arena, 0, sizeof *arena);
    if (pthread_mutex_init(&arena->lock, NULL) != 0)
        return MVX_ESYSTEM;
    arena->id = atomic_fetch_add(&next_arena_id, 1);
    arena->next_page = MVX__SEGMENT_PAGES;
    atomic_init(&arena->refs, refs);
    arena->destroy = destroy;
    pthread_mutex_lock(&registry_lock);
    arena->registry_next = registry;
    registry = arena;
    pthread_mutex_unlock(&registry_lock);
    return 0;
}

void mvx__arena_fini(struct mvx__arena *arena)
{
    registry_remove(arena);
    for (size_t i = 0; i < arena->nsegments; i++)
        munmap(arena->segments[i], SEGMENT_SIZE);
    free(arena->segments);
    for (struct mvx__heap *h = arena->heaps, *next; h; h = next) {
        next = h->all_next;
        free(h);
    }
    pthread_mutex_destroy(&arena->lock);
}

struct mvx__heap *mvx__heap_new(struct mvx__arena *arena)
{
    struct mvx__heap *h = aligned_alloc(MVX_CACHE_LINE, sizeof *h);
    if (!h)
        return NULL;
    memset(h, 0, sizeof *h);
    h->arena = arena;
    for (int c = 0; c < MVX__NCLASSES; c++)
        atomic_init(&h->remote[c], NULL);
    pthread_mutex_lock(&arena->lock);
    h->all_next = arena->heaps;
    arena->heaps = h;
    pthread_mutex_unlock(&arena->lock);
    return h;
}

/* ---- pages ---- */

static char *segment_new(void)
{
    /* Over-map by one page so that an aligned 2 MiB run can be cut out of it. */
    size_t len = SEGMENT_SIZE + MVX__PAGE_SIZE;
    char *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *seg = (char *)(((uintptr_t)raw + MVX__PAGE_SIZE - 1) & ~(uintptr_t)(MVX__PAGE_SIZE - 1));
    if (seg > raw)
        munmap(raw, (size_t)(seg - raw));
    size_t tail = (size_t)(raw + len - (seg + SEGMENT_SIZE));
    if (tail)
        munmap(seg + SEGMENT_SIZE, tail);
    return seg;
}

static MVX_NOINLINE struct mvx__page *page_new(struct mvx__heap *h, int cls)
{
    struct mvx__arena *arena = h->arena;
    char *mem = NULL;
    pthread_mutex_lock(&arena->lock);
    if (arena->next_page == MVX__SEGMENT_PAGES) {
        if (arena->nsegments == arena->cap_segments) {
            size_t cap = arena->cap_segments ? 2 * arena->cap_segments : 16;
            char **segs = realloc(arena->segments, cap * sizeof *segs);
            if (!segs)
                goto out;
            arena->segments = segs;
            arena->cap_segments = cap;
        }
        char *seg = segment_new();
        if (!seg)
            goto out;
        arena->segments[arena->nsegments++] = seg;
        arena->next_page = 0;
    }
    mem = arena->segments[arena->nsegments - 1] + (size_t)arena->next_page++ * MVX__PAGE_SIZE;
out:
    pthread_mutex_unlock(&arena->lock);
    if (!mem)
        return NULL;
    struct mvx__page *page = (struct mvx__page *)mem;
    page->heap = h;
    page->cls = (uint8_t)cls;
    page->nslots = (uint32_t)((MVX__PAGE_SIZE - MVX__PAGE_HEADER) / class_size[cls]);
    page->bump = 0;
    atomic_store_explicit(&page->slot_size, class_size[cls], mvx__release);
    return page;
}

/* ---- allocation ---- */

struct mvx__task *mvx__heap_alloc(struct mvx__heap *h, int cls)
{
    struct mvx__task *t = h->free[cls];
    if (MVX_UNLIKELY(!t) && atomic_load_explicit(&h->remote[cls], mvx__relaxed))
        t = atomic_exchange_explicit(&h->remote[cls], NULL, mvx__acquire); /* all of them */
    if (MVX_LIKELY(t != NULL)) {
        struct mvx__task *next = atomic_load_explicit(&t->next, mvx__relaxed);
        h->free[cls] = next;
        /* The list is a chain through the slots, most of them last written by another core (a
         * remote free): fetching the next one now, for writing, overlaps its cache miss with
         * this task's spawn instead of stalling the next allocation on it. */
        if (next)
            __builtin_prefetch(next, 1, 3);
        return t;
    }
    struct mvx__page *page = h->carve[cls];
    if (!page || page->bump == page->nslots) {
        page = page_new(h, cls);
        if (!page)
            return NULL;
        h->carve[cls] = page;
    }
    t = (struct mvx__task *)((char *)page + MVX__PAGE_HEADER +
                             (size_t)page->bump++ * class_size[cls]);
    h->carved++;
    return t;
}

/* Pushes the chain first..last of n slots of class cls onto h's remote stack: one CAS. A closed
 * heap's slots are references on the arena instead (mvx__heap_close). */
static void push_remote(struct mvx__heap *h, int cls, struct mvx__task *first,
                        struct mvx__task *last, unsigned n)
{
    struct mvx__task *_Atomic *stack = &h->remote[cls];
    struct mvx__task *head = atomic_load_explicit(stack, mvx__relaxed);
    do {
        if (head == CLOSED) {
            mvx__arena_unref_n(h->arena, n);
            return;
        }
        atomic_store_explicit(&last->next, head, mvx__relaxed);
    } while (!atomic_compare_exchange_weak_explicit(stack, &head, first, mvx__release,
                                                    mvx__relaxed));
}

/* A worker's remote frees, gathered per heap and class and pushed REMOTE_BATCH at a time: the
 * stack's cache line is written by every worker that frees into the heap and by its owner, so
 * one CAS per slot is one transfer of that line between cores per task (a spawn from outside
 * is freed on a worker, always remotely). The chain is pushed when full, when a free goes to
 * another heap or class, and when the worker runs out of work (mvx__slot_flush_remote). Its
 * slots are free (state 0) to the arena's walk; a heap closed meanwhile counts them as live,
 * and the push that finds it closed gives their references back. */
#define REMOTE_BATCH 32

static MVX_TLS struct {
    struct mvx__heap *heap;
    int cls;
    unsigned n;
    struct mvx__task *first, *last;
} tl_batch;

void mvx__slot_flush_remote(void)
{
    if (tl_batch.n) {
        push_remote(tl_batch.heap, tl_batch.cls, tl_batch.first, tl_batch.last, tl_batch.n);
        tl_batch.n = 0;
    }
}

void mvx__slot_free_remote(struct mvx__task *t)
{
    struct mvx__page *page = page_of(t);
    struct mvx__heap *h = page->heap;
    int cls = page->cls;
    atomic_store_explicit(&t->state, 0, mvx__relaxed);
    if (!mvx__tl_heap) { /* not a worker: nothing would flush a batch */
        push_remote(h, cls, t, t, 1);
        return;
    }
    if (tl_batch.n && (tl_batch.heap != h || tl_batch.cls != cls))
        mvx__slot_flush_remote();
    if (tl_batch.n == 0) {
        tl_batch.heap = h;
        tl_batch.cls = cls;
        tl_batch.last = t;
        tl_batch.first = NULL;
    }
    atomic_store_explicit(&t->next, tl_batch.first, mvx__relaxed);
    tl_batch.first = t;
    if (++tl_batch.n == REMOTE_BATCH)
        mvx__slot_flush_remote();
}

/* ---- closing and lifetime ---- */

static int64_t chain_length(struct mvx__task *t)
{
    int64_t n = 0;
    for (; t; t = atomic_load_explicit(&t->next, mvx__relaxed))
        n++;
    return n;
}

void mvx__heap_close(struct mvx__heap *h)
{
    /* Count every slot that may still be live into the arena's references first: from the
     * moment a remote stack reads CLOSED, frees release references, and they must release ones
     * already added (a free between closing and adding could otherwise free the arena under
     * us). Then give back those of the slots the stacks still held. */
    int64_t maybe_live = (int64_t)h->carved;
    for (int c = 0; c < MVX__NCLASSES; c++)
        maybe_live -= chain_length(h->free[c]);
    atomic_fetch_add_explicit(&h->arena->refs, maybe_live, mvx__relaxed);
    int64_t freed = 0;
    for (int c = 0; c < MVX__NCLASSES; c++)
        freed += chain_length(atomic_exchange_explicit(&h->remote[c], CLOSED, mvx__acq_rel));
    atomic_fetch_sub_explicit(&h->arena->refs, freed, mvx__acq_rel);
}

void mvx__arena_close_outside_heaps(struct mvx__arena *arena)
{
    registry_remove(arena); /* no thread exit returns a heap to this arena from now on */
    pthread_mutex_lock(&arena->lock);
    for (struct mvx__heap *h = arena->heaps; h; h = h->all_next)
        if (!h->worker_owned)
            mvx__heap_close(h);
    pthread_mutex_unlock(&arena->lock);
}

void mvx__arena_unref_n(struct mvx__arena *arena, int64_t n)
{
    if (atomic_fetch_sub_explicit(&arena->refs, n, mvx__acq_rel) == n)
        arena->destroy(arena);
}

void mvx__arena_unref(struct mvx__arena *arena)
{
    mvx__arena_unref_n(arena, 1);
}

/* ---- the walk ---- */

void mvx__arena_walk(struct mvx__arena *arena, void (*visit)(struct mvx__task *, void *), void *arg)
{
    /* Copy segment pointers in chunks under the lock, walk them without it: visit may run task
     * drop callbacks. Segments are never unmapped while the arena lives. */
    char *chunk[32];
    for (size_t done = 0;;) {
        size_t n = 0;
        pthread_mutex_lock(&arena->lock);
        while (n < 32 && done + n < arena->nsegments) {
            chunk[n] = arena->segments[done + n];
            n++;
        }
        pthread_mutex_unlock(&arena->lock);
        if (n == 0)
            return;
        done += n;
        for (size_t s = 0; s < n; s++) {
            for (unsigned p = 0; p < MVX__SEGMENT_PAGES; p++) {
                struct mvx__page *page = (struct mvx__page *)(chunk[s] + p * MVX__PAGE_SIZE);
                uint32_t size = atomic_load_explicit(&page->slot_size, mvx__acquire);
                if (!size)
                    continue;
                char *slot = (char *)page + MVX__PAGE_HEADER;
                for (uint32_t i = 0; i < page->nslots; i++, slot += size) {
                    struct mvx__task *t = (struct mvx__task *)slot;
                    if (atomic_load_explicit(&t->state, mvx__relaxed) != 0)
                        visit(t, arg);
                }
            }
        }
    }
}

/* ---- per-thread heaps for threads that are not workers ---- */

#define TCACHE_WAYS 4
struct tcache_entry {
    uint64_t arena_id;
    struct mvx__heap *heap;
};
static MVX_TLS struct tcache_entry tcache[TCACHE_WAYS];
static pthread_key_t tcache_key;
static pthread_once_t tcache_once = PTHREAD_ONCE_INIT;
static bool tcache_key_created;

/* Gives a leased heap back to its arena's pool, if that arena still exists. */
static void heap_return(uint64_t arena_id, struct mvx__heap *h)
{
    pthread_mutex_lock(&registry_lock);
    for (struct mvx__arena *a = registry; a; a = a->registry_next) {
        if (a->id == arena_id) {
            pthread_mutex_lock(&a->lock);
            h->pool_next = a->pool;
            a->pool = h;
            pthread_mutex_unlock(&a->lock);
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

static void tcache_thread_exit(void *unused)
{
    (void)unused;
    for (int i = 0; i < TCACHE_WAYS; i++) {
        if (tcache[i].arena_id)
            heap_return(tcache[i].arena_id, tcache[i].heap);
        tcache[i].arena_id = 0;
        tcache[i].heap = NULL;
    }
}

static void tcache_key_create(void)
{
    tcache_key_created = pthread_key_create(&tcache_key, tcache_thread_exit) == 0;
}

/* When the library is dlclose()d, its key destructor must not outlive its code. */
__attribute__((destructor)) static void tcache_unload(void)
{
    if (tcache_key_created)
        pthread_key_delete(tcache_key);
}

static MVX_NOINLINE struct mvx__heap *thread_heap_lease(struct mvx__arena *arena)
{
    pthread_once(&tcache_once, tcache_key_create);
    pthread_mutex_lock(&arena->lock);
    struct mvx__heap *h = arena->pool;
    if (h)
        arena->pool = h->pool_next;
    pthread_mutex_unlock(&arena->lock);
    if (!h && !(h = mvx__heap_new(arena)))
        return NULL;
    int way = TCACHE_WAYS - 1;
    for (int i = 0; i < TCACHE_WAYS; i++) {
        if (!tcache[i].arena_id) {
            way = i;
            break;
        }
    }
    if (tcache[way].arena_id)
        heap_return(tcache[way].arena_id, tcache[way].heap);
    tcache[way].arena_id = arena->id;
    tcache[way].heap = h;
    if (tcache_key_created)
        pthread_setspecific(tcache_key, tcache);
    return h;
}

struct mvx__heap *mvx__arena_thread_heap(struct mvx__arena *arena)
{
    for (int i = 0; i < TCACHE_WAYS; i++)
        if (tcache[i].arena_id == arena->id)
            return tcache[i].heap;
    return thread_heap_lease(arena);
}
