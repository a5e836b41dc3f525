/*
 * core.c - moduvex.core, the Lua 5.4 half of the Lua binding: thin wrappers over libmoduvex that
 * moduvex/api.lua (shared with the LuaJIT FFI module, moduvex/ffi.lua) builds the API on.
 *
 * Nothing here ever runs Lua on another thread or calls Lua from C: the only wakers handed to the
 * library are notifier wakers, so every completion reaches Lua as a token pulled from the
 * notifier by the owner thread (see README.md). __gc methods release and never wait.
 *
 * Conventions of every function: bad arguments raise; runtime failures return nil (or false),
 * the MVX_E* code and mvx_last_error()'s message.
 */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <moduvex.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Leaf type codes, shared with api.lua. */
enum { T_I8 = 1, T_U8, T_I16, T_U16, T_I32, T_U32, T_I64, T_U64, T_SIZE, T_F32, T_F64, T_PTR };

#define MAX_LEAVES 512
#define MAX_ARGS 32
#define MAX_BLOCK 4096

typedef struct leaf {
    uint16_t off;
    uint8_t code;
} leaf;

typedef struct sig_ud {
    mvx_signature *sig;
    int nargs, nleaves, nret;
    size_t arg_size, ret_size;
    uint16_t arg_off[MAX_ARGS];
    leaf *leaves; /* nleaves argument leaves, then nret return leaves */
} sig_ud;

typedef struct rt_ud {
    mvx_runtime *rt;
} rt_ud;
/* A join handle; for a coroutine task also its promise (one userdata per task). */
typedef struct jh_ud {
    mvx_join_handle *jh;
    mvx_promise *p;
} jh_ud;
typedef struct notifier_ud {
    mvx_notifier *n;
} notifier_ud;
typedef struct waker_ud {
    mvx_waker w;
} waker_ud;

/* The metatables, also upvalues 1..NUV of every function of the module: checking a userdata's
 * type is then one metatable comparison, not a registry lookup by name (luaL_checkudata hashes
 * and compares the name on every call, on the hot path of every task). */
enum { UV_RT = 1, UV_SIG, UV_JH, UV_NOTIFIER, UV_WAKER, NUV = UV_WAKER };
static const char *const uv_name[NUV + 1] = {
    NULL, "moduvex.core.runtime", "moduvex.core.signature", "moduvex.core.join",
    "moduvex.core.notifier", "moduvex.core.waker",
};

static int fail(lua_State *L, int code)
{
    lua_pushnil(L);
    lua_pushinteger(L, code);
    lua_pushstring(L, mvx_last_error());
    return 3;
}

static void *new_ud(lua_State *L, size_t size, int uv)
{
    void *p = lua_newuserdatauv(L, size, 0);
    memset(p, 0, size);
    lua_pushvalue(L, lua_upvalueindex(uv));
    lua_setmetatable(L, -2);
    return p;
}

static void *check_ud(lua_State *L, int idx, int uv)
{
    void *p = lua_touserdata(L, idx);
    if (p && lua_getmetatable(L, idx)) {
        int same = lua_rawequal(L, -1, lua_upvalueindex(uv));
        lua_pop(L, 1);
        if (same)
            return p;
    }
    luaL_typeerror(L, idx, uv_name[uv]);
    return NULL;
}

static int64_t secs_to_ns(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return MVX_TIMEOUT_INFINITE;
    lua_Number s = luaL_checknumber(L, idx);
    if (s < 0)
        return MVX_TIMEOUT_INFINITE;
    if (s > 9.2e9)
        return INT64_MAX;
    return (int64_t)(s * 1e9);
}

/* The absolute mvx_now() deadline `secs` (a number >= 0, checked by api.lua) from now, rounded
 * up to the nanosecond so that a sleep is never early; INT64_MAX for "never". */
static int64_t deadline_after(lua_Number secs)
{
    int64_t now = mvx_now();
    if (!(secs < 9.2e9))
        return INT64_MAX;
    int64_t ns = (int64_t)(secs * 1e9);
    if ((lua_Number)ns < secs * 1e9)
        ns++;
    return ns > INT64_MAX - now ? INT64_MAX : now + ns;
}

/* ---- errors and misc ---- */

static int l_errname(lua_State *L)
{
    lua_pushstring(L, mvx_err_name((int)luaL_checkinteger(L, 1)));
    return 1;
}
static int l_strerror(lua_State *L)
{
    lua_pushstring(L, mvx_strerror((int)luaL_checkinteger(L, 1)));
    return 1;
}
static int l_version(lua_State *L)
{
    lua_pushstring(L, mvx_version_string());
    return 1;
}
static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}
static int l_is_fnptr(lua_State *L)
{
    lua_pushboolean(L, lua_type(L, 1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, 1) != NULL);
    return 1;
}
static int l_thread_id(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)(uintptr_t)pthread_self());
    return 1;
}

/* sleep_block(secs): blocks the calling thread until the deadline (outside any task). */
static int l_sleep_block(lua_State *L)
{
    int64_t d = deadline_after(luaL_checknumber(L, 1));
    struct timespec ts = {d / 1000000000, d % 1000000000};
    /* Absolute, on mvx_now()'s clock: never early, and a signal only resumes the same wait. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    return 0;
}

/* ---- runtime ---- */

static int l_runtime_new(lua_State *L)
{
    lua_Integer workers = luaL_optinteger(L, 1, 0);
    const char *name = luaL_optstring(L, 2, NULL);
    lua_Integer max_blocking = luaL_optinteger(L, 3, 0);
    luaL_argcheck(L, workers >= 0 && workers <= 1024, 1, "workers must be 0 to 1024");
    luaL_argcheck(L, max_blocking >= 0 && max_blocking <= 1000000, 3,
                  "max_blocking must be 0 to 1000000");
    mvx_runtime_config cfg;
    mvx_runtime_config_init(&cfg, sizeof cfg);
    cfg.worker_threads = (unsigned)workers;
    cfg.thread_name = name;
    cfg.max_blocking_threads = (unsigned)max_blocking;
    rt_ud *u = new_ud(L, sizeof *u, UV_RT);
    int r = mvx_runtime_new(&cfg, &u->rt);
    return r ? fail(L, r) : 1;
}

static int l_runtime_close(lua_State *L)
{
    rt_ud *u = check_ud(L, 1, UV_RT);
    if (u->rt) {
        mvx_runtime_shutdown(u->rt, secs_to_ns(L, 2));
        mvx_runtime_release(u->rt);
        u->rt = NULL;
    }
    return 0;
}

/* __gc never waits: shut down with a zero timeout (tasks still running finish on their own and
 * the memory goes with the last of them), then give up the reference. */
static int l_runtime_gc(lua_State *L)
{
    rt_ud *u = check_ud(L, 1, UV_RT);
    if (u->rt) {
        mvx_runtime_shutdown(u->rt, 0);
        mvx_runtime_release(u->rt);
        u->rt = NULL;
    }
    return 0;
}

static mvx_runtime *check_rt(lua_State *L, int idx)
{
    rt_ud *u = check_ud(L, idx, UV_RT);
    if (!u->rt)
        luaL_error(L, "the runtime is closed");
    return u->rt;
}

static int l_worker_count(lua_State *L)
{
    lua_pushinteger(L, mvx_runtime_worker_count(check_rt(L, 1)));
    return 1;
}

/* blocking_stats(rt) -> threads, idle, running, queued, completed */
static int l_blocking_stats(lua_State *L)
{
    mvx_blocking_stats st = {.size = sizeof st};
    mvx_runtime_blocking_stats(check_rt(L, 1), &st);
    lua_pushinteger(L, st.threads);
    lua_pushinteger(L, st.idle_threads);
    lua_pushinteger(L, st.running);
    lua_pushinteger(L, st.queued);
    lua_pushinteger(L, (lua_Integer)st.completed);
    return 5;
}

/* ---- libraries and symbols (dlopen'ed libraries are never closed: tasks may still call) ---- */

static int l_open(lua_State *L)
{
    const char *name = luaL_optstring(L, 1, NULL);
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        lua_pushnil(L);
        lua_pushstring(L, dlerror());
        return 2;
    }
    lua_pushlightuserdata(L, h);
    return 1;
}

static int l_sym(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
    void *h = lua_touserdata(L, 1);
    const char *name = luaL_checkstring(L, 2);
    dlerror();
    void *p = dlsym(h, name);
    if (!p) {
        lua_pushnil(L);
        const char *e = dlerror();
        lua_pushstring(L, e ? e : "symbol is NULL");
        return 2;
    }
    lua_pushlightuserdata(L, p);
    return 1;
}

/* ---- signatures ---- */

static const uint8_t leaf_size[] = {0, 1, 1, 2, 2, 4, 4, 8, 8, sizeof(size_t), 4, 8, sizeof(void *)};

/* Reads a flat list of (offset, code) pairs; each leaf must lie within `limit` bytes. */
static int read_leaves(lua_State *L, int idx, leaf *out, int max, size_t limit)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    int n = (int)lua_rawlen(L, idx);
    luaL_argcheck(L, n % 2 == 0 && n / 2 <= max, idx, "bad leaf list");
    for (int i = 0; i < n / 2; i++) {
        lua_rawgeti(L, idx, 2 * i + 1);
        lua_rawgeti(L, idx, 2 * i + 2);
        lua_Integer off = lua_tointeger(L, -2), code = lua_tointeger(L, -1);
        lua_pop(L, 2);
        luaL_argcheck(L, code >= T_I8 && code <= T_PTR, idx, "bad leaf type");
        luaL_argcheck(L, off >= 0 && (size_t)off + leaf_size[code] <= limit, idx,
                      "leaf outside the block");
        out[i].off = (uint16_t)off;
        out[i].code = (uint8_t)code;
    }
    return n / 2;
}

/* sig_new(text, arg_offsets, arg_size, arg_leaves, ret_leaves): the layout comes from api.lua's
 * parser; the library's parser checks the text and prepares the call, and the sizes must agree. */
static int l_sig_new(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer arg_size = luaL_checkinteger(L, 3);
    luaL_argcheck(L, arg_size >= 0 && arg_size <= MAX_BLOCK, 3, "arguments too large");
    sig_ud *u = new_ud(L, sizeof *u, UV_SIG);
    int r = mvx_signature_parse(text, len, &u->sig);
    if (r)
        return fail(L, r);
    u->nargs = mvx_signature_arg_count(u->sig);
    u->ret_size = mvx_signature_return_size(u->sig);
    u->arg_size = (size_t)arg_size;
    if ((int)lua_rawlen(L, 2) != u->nargs)
        return luaL_error(L, "signature \"%s\": layout has %d arguments, the library %d", text,
                          (int)lua_rawlen(L, 2), u->nargs);
    if (u->ret_size > MAX_BLOCK)
        return luaL_error(L, "signature \"%s\": return value too large", text);
    for (int i = 0; i < u->nargs; i++) {
        lua_rawgeti(L, 2, i + 1);
        lua_Integer off = lua_tointeger(L, -1);
        lua_pop(L, 1);
        luaL_argcheck(L, off >= 0 && (size_t)off <= u->arg_size, 2, "bad argument offset");
        u->arg_off[i] = (uint16_t)off;
    }
    u->leaves = malloc(sizeof(leaf) * 2 * MAX_LEAVES);
    if (!u->leaves)
        return luaL_error(L, "out of memory");
    u->nleaves = read_leaves(L, 4, u->leaves, MAX_LEAVES, u->arg_size);
    u->nret = read_leaves(L, 5, u->leaves + u->nleaves, MAX_LEAVES, u->ret_size);
    return 1;
}

static int l_sig_gc(lua_State *L)
{
    sig_ud *u = check_ud(L, 1, UV_SIG);
    mvx_signature_release(u->sig);
    free(u->leaves);
    u->sig = NULL;
    u->leaves = NULL;
    return 0;
}

/* ---- values <-> memory ---- */

static void check_range(lua_State *L, int idx, lua_Integer v, lua_Integer lo, lua_Integer hi)
{
    if (v < lo || v > hi)
        luaL_error(L, "bad argument #%d: %I out of range", idx, v);
}

static lua_Integer check_int(lua_State *L, int idx)
{
    int ok;
    lua_Integer v = lua_tointegerx(L, idx, &ok);
    if (!ok)
        luaL_error(L, "bad argument #%d: integer expected, got %s", idx, luaL_typename(L, idx));
    return v;
}

/* Writes the value at stack index idx as `code` at p; a string for ptr is copied to *strings. */
static void write_leaf(lua_State *L, int idx, int code, char *p, char **strings)
{
    lua_Integer v;
    switch (code) {
    case T_I8: v = check_int(L, idx); check_range(L, idx, v, INT8_MIN, UINT8_MAX); *(int8_t *)p = (int8_t)v; break;
    case T_U8: v = check_int(L, idx); check_range(L, idx, v, INT8_MIN, UINT8_MAX); *(uint8_t *)p = (uint8_t)v; break;
    case T_I16: v = check_int(L, idx); check_range(L, idx, v, INT16_MIN, UINT16_MAX); *(int16_t *)p = (int16_t)v; break;
    case T_U16: v = check_int(L, idx); check_range(L, idx, v, INT16_MIN, UINT16_MAX); *(uint16_t *)p = (uint16_t)v; break;
    case T_I32: v = check_int(L, idx); check_range(L, idx, v, INT32_MIN, UINT32_MAX); *(int32_t *)p = (int32_t)v; break;
    case T_U32: v = check_int(L, idx); check_range(L, idx, v, INT32_MIN, UINT32_MAX); *(uint32_t *)p = (uint32_t)v; break;
    case T_I64: case T_U64: case T_SIZE: v = check_int(L, idx); memcpy(p, &v, 8); break;
    case T_F32: *(float *)p = (float)luaL_checknumber(L, idx); break;
    case T_F64: *(double *)p = (double)luaL_checknumber(L, idx); break;
    case T_PTR: {
        void *ptr;
        switch (lua_type(L, idx)) {
        case LUA_TNIL: ptr = NULL; break;
        case LUA_TLIGHTUSERDATA: ptr = lua_touserdata(L, idx); break;
        case LUA_TSTRING: {
            size_t n;
            const char *s = lua_tolstring(L, idx, &n);
            memcpy(*strings, s, n + 1);
            ptr = *strings;
            *strings += n + 1;
            break;
        }
        default:
            luaL_error(L, "bad argument #%d: pointer (nil, lightuserdata or string) expected, got %s",
                       idx, luaL_typename(L, idx));
            return;
        }
        memcpy(p, &ptr, sizeof ptr);
        break;
    }
    }
}

static void push_leaf(lua_State *L, int code, const char *p)
{
    switch (code) {
    case T_I8: lua_pushinteger(L, *(const int8_t *)p); break;
    case T_U8: lua_pushinteger(L, *(const uint8_t *)p); break;
    case T_I16: lua_pushinteger(L, *(const int16_t *)p); break;
    case T_U16: lua_pushinteger(L, *(const uint16_t *)p); break;
    case T_I32: lua_pushinteger(L, *(const int32_t *)p); break;
    case T_U32: lua_pushinteger(L, *(const uint32_t *)p); break;
    case T_I64: case T_U64: case T_SIZE: {
        int64_t v;
        memcpy(&v, p, 8);
        lua_pushinteger(L, (lua_Integer)v);
        break;
    }
    case T_F32: lua_pushnumber(L, *(const float *)p); break;
    case T_F64: lua_pushnumber(L, *(const double *)p); break;
    case T_PTR: {
        void *ptr;
        memcpy(&ptr, p, sizeof ptr);
        if (ptr)
            lua_pushlightuserdata(L, ptr);
        else
            lua_pushnil(L);
        break;
    }
    }
}

/* ---- call tasks ---- */

/* spawn_call(rt, fn, sig, blocking, leaf values...) -> join | nil, code, message. Strings given
 * for ptr leaves are copied into one block that the task owns (mvx_spawn_call_owned), so they
 * stay valid while the call runs whatever happens to the Lua state. */
static int l_spawn_call(lua_State *L)
{
    mvx_runtime *rt = check_rt(L, 1);
    luaL_checktype(L, 2, LUA_TLIGHTUSERDATA);
    void (*fn)(void) = (void (*)(void))(uintptr_t)lua_touserdata(L, 2);
    sig_ud *s = check_ud(L, 3, UV_SIG);
    unsigned flags = lua_toboolean(L, 4) ? MVX_CALL_BLOCKING : 0;
    int first = 5, given = lua_gettop(L) - 4;
    if (given != s->nleaves)
        return luaL_error(L, "wrong number of arguments: %d values for %d", given, s->nleaves);
    luaL_argcheck(L, fn != NULL, 2, "function pointer is NULL");
    size_t string_bytes = 0;
    for (int i = 0; i < s->nleaves; i++)
        if (s->leaves[i].code == T_PTR && lua_type(L, first + i) == LUA_TSTRING)
            string_bytes += lua_rawlen(L, first + i) + 1;
    _Alignas(16) char block[MAX_BLOCK];
    char *strings = NULL, *cursor = NULL;
    if (string_bytes) {
        /* a userdata first, so that a raising argument check frees it; moved to malloc below */
        cursor = strings = lua_newuserdatauv(L, string_bytes, 0);
    }
    for (int i = 0; i < s->nleaves; i++)
        write_leaf(L, first + i, s->leaves[i].code, block + s->leaves[i].off, &cursor);
    void *args[MAX_ARGS];
    for (int i = 0; i < s->nargs; i++)
        args[i] = block + s->arg_off[i];
    void *owned = NULL;
    if (string_bytes) {
        owned = malloc(string_bytes);
        if (!owned)
            return luaL_error(L, "out of memory");
        memcpy(owned, strings, string_bytes);
        /* re-point the ptr leaves from the userdata to the owned copy */
        for (int i = 0; i < s->nleaves; i++) {
            if (s->leaves[i].code != T_PTR || lua_type(L, first + i) != LUA_TSTRING)
                continue;
            char *p;
            memcpy(&p, block + s->leaves[i].off, sizeof p);
            p = (char *)owned + (p - strings);
            memcpy(block + s->leaves[i].off, &p, sizeof p);
        }
    }
    jh_ud *u = new_ud(L, sizeof *u, UV_JH);
    int r = mvx_spawn_call_owned(rt, fn, s->sig, args, flags, owned, owned ? free : NULL, &u->jh);
    if (r) {
        free(owned);
        return fail(L, r);
    }
    return 1;
}

/* spawn_sleep(rt, deadline) -> join | nil, code, message: a sleep task (mvx_spawn_sleep) that
 * completes once mvx_now() reaches `deadline` (seconds on that clock, as core.now(); rounded up
 * to the nanosecond, so never before it). */
static int l_spawn_sleep(lua_State *L)
{
    mvx_runtime *rt = check_rt(L, 1);
    lua_Number at = luaL_checknumber(L, 2) * 1e9;
    int64_t d = !(at < 9.2e18) ? INT64_MAX : at <= 0 ? 0 : (int64_t)at;
    if ((lua_Number)d < at && d < INT64_MAX)
        d++;
    jh_ud *u = new_ud(L, sizeof *u, UV_JH);
    int r = mvx_spawn_sleep(rt, d, &u->jh);
    return r ? fail(L, r) : 1;
}

/* ---- join handles ---- */

static jh_ud *check_jh(lua_State *L, int idx)
{
    jh_ud *u = check_ud(L, idx, UV_JH);
    if (!u->jh)
        luaL_error(L, "the handle is closed");
    return u;
}

static int l_join_release(lua_State *L)
{
    jh_ud *u = check_ud(L, 1, UV_JH);
    mvx_join_release(u->jh);
    u->jh = NULL;
    return 0;
}
static int l_join_gc(lua_State *L)
{
    jh_ud *u = check_ud(L, 1, UV_JH);
    mvx_promise_release(u->p); /* an unfinished coroutine task's: cancels it */
    mvx_join_release(u->jh);
    u->p = NULL;
    u->jh = NULL;
    return 0;
}

static int l_join_wait(lua_State *L)
{
    lua_pushinteger(L, mvx_join_wait(check_jh(L, 1)->jh, secs_to_ns(L, 2)));
    return 1;
}
static int l_join_try(lua_State *L)
{
    lua_pushinteger(L, mvx_join_try(check_jh(L, 1)->jh));
    return 1;
}
static int l_join_finished(lua_State *L)
{
    lua_pushboolean(L, mvx_join_is_finished(check_jh(L, 1)->jh));
    return 1;
}
static int l_join_abort(lua_State *L)
{
    mvx_join_abort(check_jh(L, 1)->jh);
    return 0;
}
static int l_join_ptr(lua_State *L)
{
    lua_pushlightuserdata(L, check_jh(L, 1)->jh);
    return 1;
}
static int l_join_poll(lua_State *L)
{
    jh_ud *u = check_jh(L, 1);
    waker_ud *w = check_ud(L, 2, UV_WAKER);
    lua_pushinteger(L, mvx_join_poll(u->jh, &w->w));
    return 1;
}

/* take(join [, sig]) -> 0, return leaves... | MVX_EFAILED, code, message | other code */
static int l_join_take(lua_State *L)
{
    jh_ud *u = check_jh(L, 1);
    sig_ud *s = lua_isnoneornil(L, 2) ? NULL : check_ud(L, 2, UV_SIG);
    _Alignas(16) char out[MAX_BLOCK];
    mvx_failure f = {.size = sizeof f};
    int r = mvx_join_take(u->jh, s && s->ret_size ? out : NULL, s ? s->ret_size : 0, &f);
    lua_pushinteger(L, r);
    if (r == MVX_EFAILED) {
        lua_pushinteger(L, f.code);
        lua_pushstring(L, f.message ? f.message : "");
        mvx_failure_clear(&f);
        return 3;
    }
    if (r != 0 || !s)
        return 1;
    luaL_checkstack(L, s->nret, "too many results");
    for (int i = 0; i < s->nret; i++) {
        const leaf *l = &s->leaves[s->nleaves + i];
        push_leaf(L, l->code, out + l->off);
    }
    return 1 + s->nret;
}

/* ---- notifiers and wakers ---- */

static int l_notifier_new(lua_State *L)
{
    notifier_ud *u = new_ud(L, sizeof *u, UV_NOTIFIER);
    int r = mvx_notifier_new(&u->n);
    return r ? fail(L, r) : 1;
}
static int l_notifier_gc(lua_State *L)
{
    notifier_ud *u = check_ud(L, 1, UV_NOTIFIER);
    mvx_notifier_free(u->n);
    u->n = NULL;
    return 0;
}
static mvx_notifier *check_notifier(lua_State *L, int idx)
{
    notifier_ud *u = check_ud(L, idx, UV_NOTIFIER);
    if (!u->n)
        luaL_error(L, "the notifier is freed");
    return u->n;
}
static int l_notifier_fd(lua_State *L)
{
    lua_pushinteger(L, mvx_notifier_fd(check_notifier(L, 1)));
    return 1;
}
static int l_notifier_waker(lua_State *L)
{
    mvx_notifier *n = check_notifier(L, 1);
    lua_Integer token = luaL_checkinteger(L, 2);
    waker_ud *w = new_ud(L, sizeof *w, UV_WAKER);
    int r = mvx_notifier_waker(n, (uint64_t)token, &w->w);
    return r ? fail(L, r) : 1;
}
/* drain(n, t) -> k: tokens into t[1..k] */
static int l_notifier_drain(lua_State *L)
{
    mvx_notifier *n = check_notifier(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    uint64_t tokens[64];
    int k = mvx_notifier_drain(n, tokens, 64);
    for (int i = 0; i < k; i++) {
        lua_pushinteger(L, (lua_Integer)tokens[i]);
        lua_rawseti(L, 2, i + 1);
    }
    lua_pushinteger(L, k < 0 ? 0 : k);
    return 1;
}
static int l_notifier_wait(lua_State *L)
{
    mvx_notifier *n = check_notifier(L, 1);
    lua_pushinteger(L, mvx_notifier_wait(n, secs_to_ns(L, 2)));
    return 1;
}
static int l_waker_wake(lua_State *L)
{
    mvx_waker_wake_by_ref(&((waker_ud *)check_ud(L, 1, UV_WAKER))->w);
    return 0;
}
static int l_waker_gc(lua_State *L)
{
    waker_ud *w = check_ud(L, 1, UV_WAKER);
    mvx_waker_drop(&w->w);
    return 0;
}

/* ---- promises: the promise of a coroutine task lives in its join userdata ---- */

/* promise_new(rt, cancel_waker) -> promise, join (one userdata) | nil, code, message: spawns the
 * promise and registers the set's cancel waker on it (mvx_promise_on_cancel). */
static int l_promise_new(lua_State *L)
{
    mvx_runtime *rt = check_rt(L, 1);
    waker_ud *w = check_ud(L, 2, UV_WAKER);
    jh_ud *u = new_ud(L, sizeof *u, UV_JH);
    int r = mvx_spawn_promise(rt, 0, 0, NULL, &u->p, &u->jh);
    if (r)
        return fail(L, r);
    r = mvx_promise_on_cancel(u->p, &w->w);
    if (r) {
        mvx_promise_release(u->p);
        mvx_join_release(u->jh);
        u->p = NULL;
        u->jh = NULL;
        return fail(L, r);
    }
    lua_pushvalue(L, -1); /* the promise and the handle: one userdata */
    return 2;
}
static jh_ud *check_promise(lua_State *L, int idx)
{
    jh_ud *u = check_ud(L, idx, UV_JH);
    if (!u->p)
        luaL_error(L, "the promise is released");
    return u;
}
static int l_promise_release(lua_State *L)
{
    jh_ud *u = check_ud(L, 1, UV_JH);
    mvx_promise_release(u->p);
    u->p = NULL;
    return 0;
}
/* resolve and fail also release the promise: the task is finished either way. */
static int l_promise_resolve(lua_State *L)
{
    jh_ud *u = check_promise(L, 1);
    lua_pushinteger(L, mvx_promise_resolve(u->p, NULL));
    mvx_promise_release(u->p);
    u->p = NULL;
    return 1;
}
static int l_promise_fail(lua_State *L)
{
    jh_ud *u = check_promise(L, 1);
    lua_pushinteger(L, mvx_promise_fail(u->p, (int)luaL_checkinteger(L, 2),
                                        luaL_optstring(L, 3, NULL), NULL, NULL));
    mvx_promise_release(u->p);
    u->p = NULL;
    return 1;
}
static int l_promise_cancelled(lua_State *L)
{
    lua_pushboolean(L, mvx_promise_is_cancelled(check_promise(L, 1)->p));
    return 1;
}

/* ---- module ---- */

/* Sets the __gc of metatable `uv` (the metatables sit at stack indices 1..NUV). */
static void set_gc(lua_State *L, int uv, lua_CFunction gc)
{
    for (int i = 1; i <= NUV; i++)
        lua_pushvalue(L, i);
    lua_pushcclosure(L, gc, NUV);
    lua_setfield(L, uv, "__gc");
}

int luaopen_moduvex_core(lua_State *L)
{
    /* lua_close() unloads this module, and with it libmoduvex, while the threads of a runtime
     * collected at exit may still be on their way out (its __gc shuts down without waiting):
     * keep the library mapped for good. */
    Dl_info info;
    if (dladdr((void *)(uintptr_t)mvx_runtime_new, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE | RTLD_NOLOAD);
    static const luaL_Reg funcs[] = {
        {"errname", l_errname},
        {"strerror", l_strerror},
        {"version", l_version},
        {"now", l_now},
        {"thread_id", l_thread_id},
        {"is_fnptr", l_is_fnptr},
        {"runtime_new", l_runtime_new},
        {"runtime_close", l_runtime_close},
        {"worker_count", l_worker_count},
        {"blocking_stats", l_blocking_stats},
        {"open", l_open},
        {"sym", l_sym},
        {"sig_new", l_sig_new},
        {"spawn_call", l_spawn_call},
        {"spawn_sleep", l_spawn_sleep},
        {"sleep_block", l_sleep_block},
        {"join_wait", l_join_wait},
        {"join_try", l_join_try},
        {"join_finished", l_join_finished},
        {"join_abort", l_join_abort},
        {"join_ptr", l_join_ptr},
        {"join_poll", l_join_poll},
        {"join_take", l_join_take},
        {"join_release", l_join_release},
        {"notifier_new", l_notifier_new},
        {"notifier_fd", l_notifier_fd},
        {"notifier_waker", l_notifier_waker},
        {"notifier_drain", l_notifier_drain},
        {"notifier_wait", l_notifier_wait},
        {"notifier_free", l_notifier_gc},
        {"waker_drop", l_waker_gc},
        {"waker_wake", l_waker_wake},
        {"promise_new", l_promise_new},
        {"promise_resolve", l_promise_resolve},
        {"promise_fail", l_promise_fail},
        {"promise_cancelled", l_promise_cancelled},
        {"promise_release", l_promise_release},
        {NULL, NULL},
    };
    lua_settop(L, 0);
    for (int i = 1; i <= NUV; i++)
        luaL_newmetatable(L, uv_name[i]); /* at stack index i */
    set_gc(L, UV_RT, l_runtime_gc);
    set_gc(L, UV_SIG, l_sig_gc);
    set_gc(L, UV_JH, l_join_gc);
    set_gc(L, UV_NOTIFIER, l_notifier_gc);
    set_gc(L, UV_WAKER, l_waker_gc);
    luaL_newlibtable(L, funcs);
    for (int i = 1; i <= NUV; i++)
        lua_pushvalue(L, i);
    luaL_setfuncs(L, funcs, NUV);
    lua_pushinteger(L, MVX_EAGAIN);
    lua_setfield(L, -2, "EAGAIN");
    lua_pushstring(L, "lua5.4");
    lua_setfield(L, -2, "flavor");
    return 1;
}
