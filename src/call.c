/*
 * call.c - call tasks: "call this C function with these arguments" as a task whose output is
 * the return value, invoked through the signature's prepared ffi_cif.
 *
 * The task's state is a small head (function and signature) followed by the packed argument
 * block; its vtable lives inside the signature (sig->call_vt), so each signature describes the
 * layout of its call tasks. A call task holds a reference on its signature until the task is
 * freed, not just until its state is dropped: the join handle still reads the vtable.
 */
#include "runtime.h"
#include "signature.h"

#include <string.h>

struct call_head {
    void (*fn)(void);
    struct mvx_signature *sig;
    void *owned; /* mvx_spawn_call_owned: freed with the state */
    void (*owned_free)(void *owned);
};
#define CALL_ARGS_OFFSET 32
_Static_assert(sizeof(struct call_head) <= CALL_ARGS_OFFSET, "call head too big");

static int call_task_poll(void *state, mvx_context *cx, void *output)
{
    (void)cx;
    struct call_head *h = state;
    struct mvx_signature *sig = h->sig;
    char *block = (char *)state + CALL_ARGS_OFFSET;
    void *values[MVX__SIG_MAX_ARGS];
    for (unsigned i = 0; i < sig->nargs; i++)
        values[i] = block + sig->arg_offset[i];
    if (mvx__signature_widened_return(sig->ret)) {
        ffi_arg wide;
        ffi_call(&sig->cif, h->fn, &wide, values);
        memcpy(output, &wide, sig->ret->size); /* little-endian: the low bytes */
    } else {
        ffi_call(&sig->cif, h->fn, output, values);
    }
    return MVX_POLL_READY;
}

/* The state is dropped once, after the call ran or when the task is cancelled before it ran: the
 * owned block (argument memory, such as a binding's copies of strings) goes with it. */
static void call_task_drop(void *state)
{
    struct call_head *h = state;
    if (h->owned_free)
        h->owned_free(h->owned);
}

void mvx__call_vtable_init(struct mvx_signature *sig)
{
    size_t ret_align = sig->ret->alignment ? sig->ret->alignment : 1;
    sig->call_vt = (mvx_task_vtable){
        .size = sizeof(mvx_task_vtable),
        .poll = call_task_poll,
        .drop = call_task_drop,
        .state_size = CALL_ARGS_OFFSET + sig->args_size,
        .state_align = 16,
        .output_size = sig->ret == &ffi_type_void ? 0 : sig->ret->size,
        .output_align = ret_align > 16 ? 16 : ret_align,
    };
}

static int spawn_call(const char *name, mvx_runtime *rt, void (*fn)(void),
                      const mvx_signature *signature, void *const *args, unsigned flags,
                      void *owned, void (*owned_free)(void *), mvx_join_handle **join)
{
    struct mvx_signature *sig = (struct mvx_signature *)signature;
    if (!rt || !fn || !sig || (sig->nargs && !args))
        return mvx__error(MVX_EINVAL, "%s: rt, fn, sig or args is NULL", name);
    if (flags & ~MVX_CALL_BLOCKING)
        return mvx__error(MVX_EINVAL, "%s: unknown flags %#x", name, flags);
    for (unsigned i = 0; i < sig->nargs; i++)
        if (!args[i])
            return mvx__error(MVX_EINVAL, "%s: args[%u] is NULL", name, i);
    if (sig->call_vt.state_size > CALL_ARGS_OFFSET + MVX__CALL_MAX_ARG_BYTES)
        return mvx__error(MVX_EINVAL, "%s: the arguments take %zu bytes, above %d", name,
                          sig->args_size, MVX__CALL_MAX_ARG_BYTES);
    _Alignas(16) char state[CALL_ARGS_OFFSET + MVX__CALL_MAX_ARG_BYTES];
    struct call_head *h = (struct call_head *)(void *)state;
    h->fn = fn;
    h->sig = sig;
    h->owned = owned;
    h->owned_free = owned_free;
    for (unsigned i = 0; i < sig->nargs; i++)
        memcpy(state + CALL_ARGS_OFFSET + sig->arg_offset[i], args[i], sig->args[i]->size);
    struct mvx__sched *where = (flags & MVX_CALL_BLOCKING) ? &rt->blocking.base : &rt->base;
    mvx__signature_ref(sig); /* the task's, dropped when it is freed */
    int r = mvx__spawn(name, rt, where, &sig->call_vt, state, join, MVX__TASK_CALL);
    if (r)
        mvx_signature_release(sig);
    return r;
}

MVX_EXTERN int mvx_spawn_call(mvx_runtime *rt, void (*fn)(void), const mvx_signature *signature,
                              void *const *args, unsigned flags, mvx_join_handle **join)
{
    return spawn_call("mvx_spawn_call", rt, fn, signature, args, flags, NULL, NULL, join);
}

MVX_EXTERN int mvx_spawn_call_owned(mvx_runtime *rt, void (*fn)(void),
                                    const mvx_signature *signature, void *const *args,
                                    unsigned flags, void *owned, void (*owned_free)(void *owned),
                                    mvx_join_handle **join)
{
    return spawn_call("mvx_spawn_call_owned", rt, fn, signature, args, flags, owned, owned_free,
                      join);
}
