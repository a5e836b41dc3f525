/*
 * threadsched.c - fair policy and time slice of the calling thread, through sched_setattr(2),
 * which glibc does not wrap. The slice is EEVDF's per-thread request (Linux 6.12 and later:
 * sched_attr.sched_runtime for a fair policy): a shorter slice leaves the thread's share of the
 * CPU as it was but gives it an earlier virtual deadline, so that when it wakes it runs at once
 * instead of after the slice of whatever thread holds its CPU.
 */
#include "common.h"
#include "threadsched.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The first version of the kernel's struct sched_attr (SCHED_ATTR_SIZE_VER0, 48 bytes). */
struct sched_attr_v0 {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

#define RESET_ON_FORK 0x01 /* SCHED_FLAG_RESET_ON_FORK, the one flag a fair policy keeps */

int mvx__thread_policy(void)
{
    int policy;
    struct sched_param param;
    return pthread_getschedparam(pthread_self(), &policy, &param) == 0 ? policy : -1;
}

bool mvx__thread_set_fair(int policy, uint64_t slice_ns)
{
#ifdef SYS_sched_setattr
    struct sched_attr_v0 attr;
    memset(&attr, 0, sizeof attr);
    if (syscall(SYS_sched_getattr, 0, &attr, sizeof attr, 0) == 0) {
        attr.size = sizeof attr;
        attr.sched_policy = (uint32_t)policy;
        attr.sched_flags &= RESET_ON_FORK;
        attr.sched_priority = 0;
        attr.sched_runtime = slice_ns;
        attr.sched_deadline = attr.sched_period = 0;
        return syscall(SYS_sched_setattr, 0, &attr, 0) == 0;
    }
#else
    (void)slice_ns;
#endif
    struct sched_param param = {.sched_priority = 0};
    return pthread_setschedparam(pthread_self(), policy, &param) == 0;
}

void mvx__thread_ask_slice(int64_t slice_ns)
{
    int policy = mvx__thread_policy();
    if (slice_ns > 0 && (policy == SCHED_OTHER || policy == SCHED_BATCH))
        mvx__thread_set_fair(policy, (uint64_t)slice_ns);
}
