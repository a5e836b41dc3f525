/*
 * cpu.c - how many CPUs this process may use: the affinity mask, capped by a cgroup CPU quota
 * (v2 cpu.max, or v1 cpu.cfs_quota_us / cpu.cfs_period_us), rounded up, at least 1.
 */
#include "runtime.h"

#include <sched.h>
#include <stdio.h>
#include <unistd.h>

static long read_quota_cpus(void)
{
    long quota = -1, period = 0;
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        char q[32];
        if (fscanf(f, "%31s %ld", q, &period) == 2 && q[0] != 'm')
            sscanf(q, "%ld", &quota);
        fclose(f);
    } else if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r")) != NULL) {
        if (fscanf(f, "%ld", &quota) != 1)
            quota = -1;
        fclose(f);
        if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r")) != NULL) {
            if (fscanf(f, "%ld", &period) != 1)
                period = 0;
            fclose(f);
        }
    }
    if (quota <= 0 || period <= 0)
        return -1;
    return (quota + period - 1) / period;
}

unsigned mvx__available_cpus(void)
{
    long n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    long quota = read_quota_cpus();
    if (quota > 0 && quota < n)
        n = quota;
    return n > 0 ? (unsigned)n : 1;
}
