/*
 * arena.h - task memory: per-thread slab heaps over 64 KiB pages. Internal.
 *
 * Every task of a runtime lives in one slot of one page of that runtime's arena, so the arena is
 * also the registry of live tasks: shutdown walks the pages instead of keeping a locked list.
 *
 *   arena (one per runtime)
 *     segments: 2 MiB mmap()s, each cut into 32 pages of 64 KiB aligned to 64 KiB
 *     heaps:    one per worker, one per outside thread that spawned (leased through a
 *               thread-local cache, returned to the arena's pool at thread exit)
 *   page:  a header, then equal slots of one size class; owned by one heap
 *   heap:  per class a free list and a page being carved, touched only by its owner;
 *          plus per class `remote`, a lock-free stack where other threads push the slots they
 *          free; taken whole when the free list runs dry, it is a free list as it stands
 *
 * Allocation and owner frees take no atomic operation; a free from another thread is one CAS (on
 * a worker, one per 32 such frees).
 *
 * Lifetime: a runtime's memory must outlive every task reference (wakers, join handles). A heap
 * is closed by its last owner (a worker when it exits, mvx_runtime_release for outside heaps):
 * closing first adds the slots that may be live (carved, less those on free lists) to the
 * arena's references, then swaps each `remote` for a CLOSED mark and gives back the references
 * of the slots those stacks held. Frees that find the
 * mark are "orphan" frees: each releases one reference on the arena (mvx__arena_orphan), and the
 * arena is destroyed when the last one goes.
 */
#ifndef MVX_ARENA_H
#define MVX_ARENA_H

#include "common.h"

#include <pthread.h>

#define MVX__PAGE_SIZE     ((size_t)65536)
#define MVX__PAGE_HEADER   64
#define MVX__SEGMENT_PAGES 32
#define MVX__SLOT_MAX      16384
#define MVX__NCLASSES      33

struct mvx__task;
struct mvx__arena;

/* The last vtable validated for a spawn from this heap's thread, with its layout: repeated
 * spawns of one task type skip validation. Keyed by the vtable's address and contents (a vtable
 * changed in place is validated again) and by the spawn flags. */
struct mvx__spawn_plan {
    const mvx_task_vtable *vt;
    mvx_task_vtable copy;
    uint8_t flags_in, flags;
    int cls;
    uint16_t state_off;
    uint32_t output_off;
};

struct mvx__heap {
    struct mvx__arena *arena;
    struct mvx__task *free[MVX__NCLASSES];   /* owner only */
    struct mvx__page *carve[MVX__NCLASSES];  /* owner only: page with uncarved slots */
    uint64_t carved;                         /* owner only: slots ever cut from pages */
    struct mvx__spawn_plan plans[4];         /* owner only: the last task types spawned */
    unsigned next_plan;                      /* owner only: the entry replaced next */
    struct mvx__heap *all_next;              /* arena->heaps list (arena lock) */
    struct mvx__heap *pool_next;             /* arena->pool of unleased outside heaps */
    bool worker_owned;                       /* closed by its worker, not by release */
    _Alignas(MVX_CACHE_LINE) struct mvx__task *_Atomic remote[MVX__NCLASSES]; /* remote frees */
};

struct mvx__arena {
    pthread_mutex_t lock; /* segments, heaps list, pool */
    uint64_t id;          /* process-unique, never reused: thread caches match on it */
    char **segments;
    size_t nsegments, cap_segments;
    unsigned next_page; /* next unused page of the newest segment */
    struct mvx__heap *heaps;
    struct mvx__heap *pool;
    struct mvx__arena *registry_next;
    /* References keeping the arena alive: see mvx__arena_orphan(). */
    _Alignas(MVX_CACHE_LINE) _Atomic int64_t refs;
    void (*destroy)(struct mvx__arena *); /* called when refs reaches 0 */
};

/* The heap the calling worker thread owns, or NULL: frees into it need no atomic operation. */
extern MVX_TLS struct mvx__heap *mvx__tl_heap;

int mvx__arena_init(struct mvx__arena *arena, int64_t refs, void (*destroy)(struct mvx__arena *));
/* Unmaps every segment and frees every heap. Only once nothing references the arena. */
void mvx__arena_fini(struct mvx__arena *arena);

struct mvx__heap *mvx__heap_new(struct mvx__arena *arena);
/* The calling thread's heap in `arena` for threads that are not its workers: leased on first use,
 * cached per thread. NULL when out of memory. */
struct mvx__heap *mvx__arena_thread_heap(struct mvx__arena *arena);

/* Size class for an allocation of `size` bytes, or -1 when above MVX__SLOT_MAX. */
int mvx__size_class(size_t size);
/* A slot of class `cls` from `heap`, which the calling thread must own; NULL when out of memory.
 * The slot's state word is 0 (free); the caller initialises it and publishes the state last. */
struct mvx__task *mvx__heap_alloc(struct mvx__heap *heap, int cls);
/* A page: its header, then equal slots of one size class; owned by one heap. */
struct mvx__page {
    struct mvx__heap *heap;
    _Atomic uint32_t slot_size; /* 0 until the page is assigned; published last */
    uint32_t nslots;
    uint32_t bump; /* owner only: slots carved so far */
    uint8_t cls;
};

static inline struct mvx__page *mvx__page_of(const void *p)
{
    return (struct mvx__page *)((uintptr_t)p & ~(uintptr_t)(MVX__PAGE_SIZE - 1));
}

/* Returns a slot to another thread's heap: one CAS onto its remote stack, or, on a worker
 * thread, onto a chain that is pushed with one CAS per REMOTE_BATCH slots (arena.c). */
void mvx__slot_free_remote(struct mvx__task *slot);
/* Pushes the calling thread's gathered remote frees. A worker calls it when it runs out of work,
 * before it stops being one, and before it blocks in place. */
void mvx__slot_flush_remote(void);

/* Closes a heap whose owner is gone: its still-live slots become references on the arena, each
 * released by the free that finds the heap closed. The caller must hold its own reference. */
void mvx__heap_close(struct mvx__heap *heap);
/* Closes every heap in the pool or leased to outside threads: mvx_runtime_release. Removes the
 * arena from the thread-cache registry first. */
void mvx__arena_close_outside_heaps(struct mvx__arena *arena);
/* Drops one reference (n references) on the arena; destroys it at zero. */
void mvx__arena_unref(struct mvx__arena *arena);
void mvx__arena_unref_n(struct mvx__arena *arena, int64_t n);

/* Calls visit(slot, arg) for every slot whose state word is not 0, in every assigned page.
 * Slots may be allocated and freed meanwhile: visit must use atomic operations on the state. */
void mvx__arena_walk(struct mvx__arena *arena, void (*visit)(struct mvx__task *, void *),
                     void *arg);

#include "task.h"

/* Returns a slot to its heap. Any thread; the owner's own frees take no atomic operation. */
static inline void mvx__slot_free(struct mvx__task *t)
{
    struct mvx__page *page = mvx__page_of(t);
    struct mvx__heap *h = page->heap;
    if (h != mvx__tl_heap) {
        mvx__slot_free_remote(t);
        return;
    }
    atomic_store_explicit(&t->state, 0, mvx__relaxed);
    atomic_store_explicit(&t->next, h->free[page->cls], mvx__relaxed);
    h->free[page->cls] = t;
}

#endif
