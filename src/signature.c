/*
 * signature.c - the signature language, parsed once into a prepared ffi_cif.
 *
 *   signature := type '(' [ type { ',' type } ] ')'
 *   type      := void | i8 | u8 | i16 | u16 | i32 | u32 | i64 | u64 | size
 *              | f32 | f64 | ptr | '{' type { ',' type } '}'
 *
 * Spaces and tabs may separate tokens; void only as the return type; structs by value may nest
 * up to 8 deep. The parser runs twice: the first pass validates and counts the struct types, the
 * second builds them into one allocation, so a malformed signature allocates nothing.
 */
#include "signature.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 8

struct parser {
    const char *text;
    size_t len, pos;
    /* Second pass: where struct types and their element arrays go. */
    ffi_type *structs;
    ffi_type **elems;
    size_t nstructs, nelems;
    int error; /* 0, or MVX_EINVAL with the message recorded */
};

static const struct {
    const char *name;
    ffi_type *type;
} scalars[] = {
    {"void", &ffi_type_void},   {"i8", &ffi_type_sint8},
    {"u8", &ffi_type_uint8},    {"i16", &ffi_type_sint16},
    {"u16", &ffi_type_uint16},  {"i32", &ffi_type_sint32},
    {"u32", &ffi_type_uint32},  {"i64", &ffi_type_sint64},
    {"u64", &ffi_type_uint64},  {"size", NULL /* set below: size_t */},
    {"f32", &ffi_type_float},   {"f64", &ffi_type_double},
    {"ptr", &ffi_type_pointer},
};

static const char type_list[] =
    "void, i8, u8, i16, u16, i32, u32, i64, u64, size, f32, f64, ptr or '{'";

static int fail(struct parser *p, const char *what)
{
    if (!p->error) {
        char found[32];
        if (p->pos >= p->len)
            snprintf(found, sizeof found, "the end");
        else if ((unsigned char)p->text[p->pos] < 0x20 || (unsigned char)p->text[p->pos] > 0x7e)
            snprintf(found, sizeof found, "byte 0x%02x", (unsigned char)p->text[p->pos]);
        else
            snprintf(found, sizeof found, "'%c'", p->text[p->pos]);
        p->error = mvx__error(MVX_EINVAL, "mvx_signature_parse: at byte %zu: expected %s, found %s",
                              p->pos, what, found);
    }
    return p->error;
}

static void skip_space(struct parser *p)
{
    while (p->pos < p->len && (p->text[p->pos] == ' ' || p->text[p->pos] == '\t'))
        p->pos++;
}

static bool accept(struct parser *p, char c)
{
    skip_space(p);
    if (p->pos < p->len && p->text[p->pos] == c) {
        p->pos++;
        return true;
    }
    return false;
}

static ffi_type *scalar_type(size_t i)
{
    if (!scalars[i].type) /* size */
        return sizeof(size_t) == 8 ? &ffi_type_uint64 : &ffi_type_uint32;
    return scalars[i].type;
}

/* Parses one type; returns it (second pass) or a placeholder (first pass), NULL on error. */
static ffi_type *parse_type(struct parser *p, int depth)
{
    skip_space(p);
    if (accept(p, '{')) {
        if (depth >= MAX_DEPTH) {
            p->pos--;
            fail(p, "a type (structs nest at most 8 deep)");
            return NULL;
        }
        ffi_type *members[MVX__SIG_MAX_ARGS];
        size_t n = 0;
        do {
            if (n == MVX__SIG_MAX_ARGS) {
                fail(p, "'}' (a struct has at most 32 members)");
                return NULL;
            }
            ffi_type *m = parse_type(p, depth + 1);
            if (!m)
                return NULL;
            if (m == &ffi_type_void) {
                fail(p, "a member type: void cannot be a struct member");
                return NULL;
            }
            members[n++] = m;
        } while (accept(p, ','));
        if (!accept(p, '}')) {
            fail(p, "',' or '}'");
            return NULL;
        }
        size_t first = p->nelems;
        p->nelems += n + 1; /* NULL-terminated */
        ffi_type *st = p->structs ? &p->structs[p->nstructs] : &ffi_type_pointer;
        p->nstructs++;
        if (p->structs) {
            memcpy(&p->elems[first], members, n * sizeof *members);
            p->elems[first + n] = NULL;
            st->size = 0;
            st->alignment = 0;
            st->type = FFI_TYPE_STRUCT;
            st->elements = &p->elems[first];
        }
        return st;
    }
    size_t start = p->pos;
    while (p->pos < p->len && ((p->text[p->pos] >= 'a' && p->text[p->pos] <= 'z') ||
                               (p->text[p->pos] >= '0' && p->text[p->pos] <= '9')))
        p->pos++;
    size_t n = p->pos - start;
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        if (n == strlen(scalars[i].name) && memcmp(p->text + start, scalars[i].name, n) == 0)
            return scalar_type(i);
    p->pos = start;
    if (n == 0) {
        fail(p, type_list);
    } else if (!p->error) {
        p->error = mvx__error(MVX_EINVAL,
                              "mvx_signature_parse: at byte %zu: unknown type '%.*s'; "
                              "expected %s",
                              start, (int)(n > 24 ? 24 : n), p->text + start, type_list);
    }
    return NULL;
}

/* Parses the whole signature into ret/args. */
static int parse(struct parser *p, ffi_type **ret, ffi_type **args, unsigned *nargs)
{
    p->pos = 0;
    p->nstructs = p->nelems = 0;
    if (!(*ret = parse_type(p, 0)))
        return p->error;
    if (!accept(p, '('))
        return fail(p, "'(' after the return type");
    *nargs = 0;
    skip_space(p);
    if (!accept(p, ')')) {
        do {
            if (*nargs == MVX__SIG_MAX_ARGS)
                return fail(p, "')' (at most 32 arguments)");
            size_t at = p->pos;
            ffi_type *a = parse_type(p, 0);
            if (!a)
                return p->error;
            if (a == &ffi_type_void) {
                if (*nargs == 0 && accept(p, ')')) /* "i32(void)": no arguments */
                    goto done;
                p->pos = at;
                skip_space(p);
                return fail(p, "an argument type: void is only allowed as the return type");
            }
            args[(*nargs)++] = a;
        } while (accept(p, ','));
        if (!accept(p, ')'))
            return fail(p, "',' or ')'");
    }
done:
    skip_space(p);
    if (p->pos < p->len)
        return fail(p, "nothing after the closing ')'");
    return 0;
}

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

MVX_EXTERN int mvx_signature_parse(const char *text, size_t length, mvx_signature **out)
{
    if (!text || !out)
        return mvx__error(MVX_EINVAL, "mvx_signature_parse: text or out is NULL");
    *out = NULL;
    if (length == 0)
        return mvx__error(MVX_EINVAL,
                          "mvx_signature_parse: the signature is empty; expected for example "
                          "\"i32(ptr,u64,f64)\"");
    if (length > MVX__SIG_MAX_TEXT)
        return mvx__error(MVX_EINVAL,
                          "mvx_signature_parse: the signature is %zu bytes long, above the limit "
                          "of %d",
                          length, MVX__SIG_MAX_TEXT);
    const char *nul = memchr(text, '\0', length);
    if (nul)
        return mvx__error(MVX_EINVAL,
                          "mvx_signature_parse: at byte %zu: a NUL byte inside the "
                          "signature (length %zu)",
                          (size_t)(nul - text), length);
    struct parser p = {.text = text, .len = length};
    struct mvx_signature probe;
    int r = parse(&p, &probe.ret, probe.args, &probe.nargs);
    if (r)
        return r;
    struct mvx_signature *sig = calloc(1, sizeof *sig);
    ffi_type *owned = p.nstructs
                          ? calloc(1, p.nstructs * sizeof(ffi_type) + p.nelems * sizeof(ffi_type *))
                          : NULL;
    if (!sig || (p.nstructs && !owned)) {
        free(sig);
        free(owned);
        return mvx__error(MVX_ENOMEM, "mvx_signature_parse: out of memory");
    }
    p.structs = owned;
    p.elems = owned ? (ffi_type **)(void *)(owned + p.nstructs) : NULL;
    parse(&p, &sig->ret, sig->args, &sig->nargs); /* cannot fail: the first pass passed */
    sig->owned = owned;
    sig->nowned = p.nstructs;
    if (ffi_prep_cif(&sig->cif, FFI_DEFAULT_ABI, sig->nargs, sig->ret, sig->args) != FFI_OK) {
        free(owned);
        free(sig);
        return mvx__error(MVX_EINVAL, "mvx_signature_parse: libffi cannot call \"%.*s\"",
                          (int)(length > 64 ? 64 : length), text);
    }
    /* Argument block layout for call tasks; libffi has sized the structs now. */
    size_t off = 0, max_align = 1;
    for (unsigned i = 0; i < sig->nargs; i++) {
        size_t a = sig->args[i]->alignment ? sig->args[i]->alignment : 1;
        off = align_up(off, a);
        sig->arg_offset[i] = off;
        off += sig->args[i]->size;
        if (a > max_align)
            max_align = a;
    }
    sig->args_size = off;
    atomic_init(&sig->refs, 1);
    mvx__call_vtable_init(sig);
    *out = sig;
    return 0;
}

struct mvx_signature *mvx__signature_ref(struct mvx_signature *sig)
{
    atomic_fetch_add_explicit(&sig->refs, 1, mvx__relaxed);
    return sig;
}

MVX_EXTERN mvx_signature *mvx_signature_ref(mvx_signature *sig)
{
    return sig ? mvx__signature_ref(sig) : NULL;
}

MVX_EXTERN void mvx_signature_release(mvx_signature *sig)
{
    if (sig && atomic_fetch_sub_explicit(&sig->refs, 1, mvx__acq_rel) == 1) {
        free(sig->owned);
        free(sig);
    }
}

MVX_EXTERN int mvx_signature_arg_count(const mvx_signature *sig)
{
    return sig ? (int)sig->nargs : mvx__error(MVX_EINVAL, "mvx_signature_arg_count: sig is NULL");
}

MVX_EXTERN size_t mvx_signature_return_size(const mvx_signature *sig)
{
    return sig && sig->ret != &ffi_type_void ? sig->ret->size : 0;
}

bool mvx__signature_widened_return(const ffi_type *t)
{
    switch (t->type) {
    case FFI_TYPE_UINT8:
    case FFI_TYPE_SINT8:
    case FFI_TYPE_UINT16:
    case FFI_TYPE_SINT16:
    case FFI_TYPE_UINT32:
    case FFI_TYPE_SINT32:
    case FFI_TYPE_INT:
        return t->size < sizeof(ffi_arg);
    default:
        return false;
    }
}

/* ---- foreign-signature poll and drop callbacks ---- */

int mvx__check_foreign_signatures(const char *fn, const mvx_task_vtable *vt)
{
    const mvx_signature *ps = vt->poll_signature, *ds = vt->drop_signature;
    if (ps) {
        bool integral = false;
        switch (ps->ret->type) {
        case FFI_TYPE_UINT8:
        case FFI_TYPE_SINT8:
        case FFI_TYPE_UINT16:
        case FFI_TYPE_SINT16:
        case FFI_TYPE_UINT32:
        case FFI_TYPE_SINT32:
        case FFI_TYPE_UINT64:
        case FFI_TYPE_SINT64:
        case FFI_TYPE_INT:
            integral = true;
            break;
        default:
            break;
        }
        if (!integral || ps->nargs > 3)
            return mvx__error(MVX_EINVAL,
                              "%s: vtable->poll_signature must return an integer and "
                              "take at most 3 pointers (state, cx, output)",
                              fn);
        for (unsigned i = 0; i < ps->nargs; i++)
            if (ps->args[i] != &ffi_type_pointer)
                return mvx__error(MVX_EINVAL, "%s: vtable->poll_signature argument %u is not ptr",
                                  fn, i);
    }
    if (ds && !vt->drop)
        return mvx__error(MVX_EINVAL, "%s: vtable->drop_signature without vtable->drop", fn);
    if (ds && (ds->nargs > 1 || (ds->nargs == 1 && ds->args[0] != &ffi_type_pointer) ||
               ds->ret->type == FFI_TYPE_STRUCT))
        return mvx__error(MVX_EINVAL,
                          "%s: vtable->drop_signature must take at most one pointer "
                          "(state) and return void or a scalar",
                          fn);
    return 0;
}

int mvx__ffi_poll(const mvx_task_vtable *vt, void *state, mvx_context *cx, void *output)
{
    struct mvx_signature *sig = (struct mvx_signature *)vt->poll_signature;
    void *values[3] = {&state, &cx, &output};
    ffi_arg result = 0;
    ffi_call(&sig->cif, FFI_FN(vt->poll), &result, values);
    return (int)(ffi_sarg)result;
}

void mvx__ffi_drop(const mvx_task_vtable *vt, void *state)
{
    struct mvx_signature *sig = (struct mvx_signature *)vt->drop_signature;
    void *values[1] = {&state};
    ffi_arg ignored[2]; /* room for any return type the signature may declare */
    ffi_call(&sig->cif, FFI_FN(vt->drop), ignored, values);
}
