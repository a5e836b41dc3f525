/*
 * signature.h - C function signatures parsed into prepared libffi call interfaces. Internal.
 */
#ifndef MVX_SIGNATURE_H
#define MVX_SIGNATURE_H

#include "common.h"

#include <ffi.h>

#define MVX__SIG_MAX_ARGS       32
#define MVX__SIG_MAX_TEXT       1024
#define MVX__CALL_MAX_ARG_BYTES 4096

struct mvx_signature {
    _Atomic uint32_t refs;
    unsigned nargs;
    ffi_cif cif;
    ffi_type *ret;
    ffi_type *args[MVX__SIG_MAX_ARGS];
    /* Call tasks (mvx_spawn_call): the packed argument block and where each argument sits. */
    size_t arg_offset[MVX__SIG_MAX_ARGS];
    size_t args_size;
    /* The vtable of call tasks with this signature: its state is the function pointer and the
     * argument block, its output the return value. Tasks refer to it, so a call task holds a
     * reference on the signature until the task is freed. */
    mvx_task_vtable call_vt;
    /* Struct types built for this signature, freed with it. */
    ffi_type *owned;
    size_t nowned;
};

struct mvx_signature *mvx__signature_ref(struct mvx_signature *sig);
/* Fills sig->call_vt (call.c). */
void mvx__call_vtable_init(struct mvx_signature *sig);
/* Foreign-signature callbacks of a vtable: checked at spawn, called through libffi. */
int mvx__check_foreign_signatures(const char *fn, const mvx_task_vtable *vt);
int mvx__ffi_poll(const mvx_task_vtable *vt, void *state, mvx_context *cx, void *output);
void mvx__ffi_drop(const mvx_task_vtable *vt, void *state);
/* Whether the return type is an integer narrower than ffi_arg, which libffi widens. */
bool mvx__signature_widened_return(const ffi_type *t);
/* The signature that owns a call task's vtable. */
static inline struct mvx_signature *mvx__signature_of_call_vt(const mvx_task_vtable *vt)
{
    return (struct mvx_signature *)((char *)vt - offsetof(struct mvx_signature, call_vt));
}

#endif
