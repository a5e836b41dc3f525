/*
 * local.h - local task sets. Internal.
 */
#ifndef MVX_LOCAL_H
#define MVX_LOCAL_H

#include "inject.h"
#include "task.h"

struct mvx_local_set;

/* Queues a SCHEDULED task of the set and tells the owner. Any thread. */
void mvx__local_schedule(struct mvx_local_set *set, struct mvx__task *t);
/* A local task finished on the owner thread: stop tracking it. */
void mvx__local_forget(struct mvx__task *t);
/* The runtime of the local set the calling thread is driving, or NULL. */
struct mvx_runtime *mvx__local_current_runtime(void);
/* Whether the calling thread owns the local set `sched`; compares pointers only, so `sched`
 * may already be freed. */
bool mvx__local_is_owner(const struct mvx__sched *sched);

#endif
