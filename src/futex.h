/*
 * futex.h - the one place that sleeps: wait on a 32-bit word until it changes or a deadline passes.
 * Internal.
 */
#ifndef MVX_FUTEX_H
#define MVX_FUTEX_H

#include "common.h"

/* Sleeps while *word == expected, until woken or `deadline_ns` (mvx__now_ns() clock; INT64_MAX for
 * none) passes. Returns false on timeout; true otherwise, which includes spurious wake-ups. */
bool mvx__futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t deadline_ns);
/* Wakes up to `n` threads sleeping on word. */
void mvx__futex_wake(_Atomic uint32_t *word, int n);

#endif
