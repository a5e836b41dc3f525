/*
 * threadsched.h - the scheduling class of the library's own threads: their fair policy
 * (SCHED_OTHER or SCHED_BATCH) and the time slice they ask of the kernel.
 */
#ifndef MVX_THREADSCHED_H
#define MVX_THREADSCHED_H

#include <stdbool.h>
#include <stdint.h>

/* mvx_runtime_config.worker_slice_ns: the default (0) and the range the kernel accepts. */
#define MVX__WORKER_SLICE_DEFAULT_NS INT64_C(100000)
#define MVX__SLICE_MIN_NS INT64_C(100000)
#define MVX__SLICE_MAX_NS INT64_C(100000000)

/* The calling thread's policy (SCHED_*), or -1 if it cannot be read. */
int mvx__thread_policy(void);

/* Puts the calling thread in the fair policy `policy` (SCHED_OTHER or SCHED_BATCH), asking for
 * a time slice of slice_ns (0: the kernel's default), its nice value kept. Kernels before 6.12
 * have no per-thread slice and ignore slice_ns; without sched_setattr only the policy changes.
 * False if the kernel refused (a sandbox): nothing changed then. */
bool mvx__thread_set_fair(int policy, uint64_t slice_ns);

/* A worker's start (see worker_slice_ns in moduvex.h): a thread in a fair policy asks for
 * slice_ns (positive), keeping its policy; other threads, and any for slice_ns <= 0, are left
 * as they are. */
void mvx__thread_ask_slice(int64_t slice_ns);

#endif
