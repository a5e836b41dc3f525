/*
 * common.h - internal helpers shared by every source file. Internal: not installed, may change.
 */
#ifndef MVX_COMMON_H
#define MVX_COMMON_H

#define MVX_BUILDING_LIBRARY 1
#include "config.h"
#include "moduvex.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MVX_CACHE_LINE  64
#define MVX_LIKELY(x)   __builtin_expect(!!(x), 1)
#define MVX_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MVX_NOINLINE    __attribute__((noinline))
#define MVX_UNUSED      __attribute__((unused))
/* The hottest thread-locals: initial-exec avoids __tls_get_addr; they are a few bytes, well inside
 * the static TLS surplus glibc keeps for dlopen()ed libraries. */
#define MVX_TLS _Thread_local __attribute__((tls_model("initial-exec")))

#define mvx__relaxed memory_order_relaxed
#define mvx__acquire memory_order_acquire
#define mvx__release memory_order_release
#define mvx__acq_rel memory_order_acq_rel
#define mvx__seq_cst memory_order_seq_cst

static inline void mvx__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Records a message for mvx_last_error() and returns `code`, so call sites read
 * `return mvx__error(MVX_EINVAL, "mvx_spawn: vtable is NULL");`. */
int mvx__error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic clock in nanoseconds. */
int64_t mvx__now_ns(void);
/* The absolute deadline for a relative timeout, INT64_MAX for an infinite one. */
int64_t mvx__deadline(int64_t timeout_ns);

#endif
