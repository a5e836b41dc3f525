/*
 * glue.h - the C side of the Go binding: each helper makes the library calls of one Go
 * operation and, when one fails, copies mvx_last_error() in the same C call (the message is
 * thread-local and the goroutine may move to another thread between two cgo calls). Results come
 * back by value so that no Go pointer has to be passed for them (cgo arguments escape).
 */
#ifndef MODUVEX_GO_GLUE_H
#define MODUVEX_GO_GLUE_H

#include <moduvex.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct gomvx_res {
    int rc;      /* 0 or an MVX_E* code */
    int outcome; /* for spawns: the join outcome at registration (MVX_EAGAIN: pending) */
    void *p;     /* the object made (runtime, notifier, join handle, function, buffer) */
    void *q;     /* a second one (a promise's join handle, a call's completion word) */
    size_t n;    /* a size or an fd */
    int code;    /* a failure's code */
    char *msg;   /* malloc'd copy of mvx_last_error() or a failure's message; the caller frees */
    uint64_t small; /* gomvx_take_small: the output's bytes, in memory order */
} gomvx_res;

/* The output of a task made by Runtime.Go: malloc'd bytes (NULL when len is 0). A C joiner that
 * takes it with mvx_join_take owns data and frees it with free(). */
typedef struct gomvx_bytes {
    void *data;
    size_t len;
} gomvx_bytes;

gomvx_res gomvx_runtime_new(unsigned workers, const char *name, unsigned max_blocking,
                            int set_max_blocking);
gomvx_res gomvx_runtime_close(mvx_runtime *rt);
gomvx_res gomvx_notifier_new(void);
gomvx_res gomvx_signature_parse(const char *text, size_t len);
gomvx_res gomvx_lookup(const char *lib, const char *sym);
/* The calls made per Call take their C objects (runtime, function, signature, join handle,
 * completion word) as uintptr_t: cgo checks a void * or opaque struct pointer argument for Go
 * pointers at run time, in a closure that made one allocation per cgo call. The arguments'
 * packed block is at buf or, when buf is NULL, in small0 and small1 (a block of up to 16 bytes,
 * most calls', travels by value: Go need not allocate it). */
gomvx_res gomvx_call(uintptr_t rt, uintptr_t fn, uintptr_t sig, const unsigned char *buf,
                     uint64_t small0, uint64_t small1, const uint32_t *offsets, unsigned nargs,
                     unsigned flags);
/* The states of a call's completion word (glue.c), read and armed by Go. */
enum { GOMVX_PENDING = 0, GOMVX_ARMED = 1, GOMVX_DONE = 2 };
/* Arms a call's completion word (.q of gomvx_call) to queue `token` on n when the call finishes:
 * armed is 1 (the token will come; at_ns: CLOCK_MONOTONIC when armed), 0 (finished already: none
 * will), or an MVX_E* code (no waker could be made). At most once per word, while Go's reference
 * holds it. gomvx_done_ns then says when the armed word was woken (0: not yet). */
typedef struct gomvx_armed {
    int armed;
    int64_t at_ns;
} gomvx_armed;
gomvx_armed gomvx_arm(uintptr_t done, mvx_notifier *n, uint64_t token);
int64_t gomvx_done_ns(uintptr_t done);
/* Releases a join handle and, for a call, Go's reference on its completion word (.q of
 * gomvx_call; 0 for other handles). */
void gomvx_release(uintptr_t jh, uintptr_t done);
gomvx_res gomvx_watch(mvx_join_handle *jh, mvx_notifier *n, uint64_t token);
gomvx_res gomvx_take(mvx_join_handle *jh, void *out, size_t size);
gomvx_res gomvx_take_none(uintptr_t jh); /* gomvx_take of an output of size 0 */
/* gomvx_take of an output of at most 8 bytes, returned in .small: no Go memory is passed (cgo's
 * check of a void * argument allocated per call). */
gomvx_res gomvx_take_small(uintptr_t jh, size_t size);
gomvx_res gomvx_take_bytes(mvx_join_handle *jh);
gomvx_res gomvx_promise_new(mvx_runtime *rt, mvx_notifier *n, uint64_t done_token,
                            uint64_t cancel_token);
gomvx_res gomvx_promise_resolve(mvx_promise *p, const void *data, size_t len);
gomvx_res gomvx_promise_fail(mvx_promise *p, int code, const char *msg);

#endif
