-- moduvex.ffi: moduvex for LuaJIT, pure Lua over ffi.cdef, with the API of the Lua 5.4 C module
-- (moduvex/api.lua is shared). No FFI callback at all: the library never calls into Lua; every
-- completion is pulled from a notifier by the thread driving the set. Finalizers are C functions
-- of the library (mvx_join_release, ...) except the runtime's, which shuts down without waiting.
local ffi = require("ffi")

ffi.cdef [[
typedef struct mvx_runtime mvx_runtime;
typedef struct mvx_join_handle mvx_join_handle;
typedef struct mvx_signature mvx_signature;
typedef struct mvx_notifier mvx_notifier;
typedef struct mvx_promise mvx_promise;
typedef struct mvx_waker_vtable mvx_waker_vtable;
typedef struct mvx_waker { const mvx_waker_vtable *vtable; void *data; } mvx_waker;
typedef struct mvx_runtime_config {
    size_t size; unsigned worker_threads; const char *thread_name; size_t stack_size;
    void (*on_thread_start)(void *, unsigned); void (*on_thread_stop)(void *, unsigned);
    void *hook_data; unsigned max_blocking_threads; int64_t blocking_keep_alive_ns;
} mvx_runtime_config;
typedef struct mvx_blocking_stats {
    size_t size; unsigned threads, idle_threads, running, queued; uint64_t completed;
} mvx_blocking_stats;
int mvx_runtime_blocking_stats(mvx_runtime *rt, mvx_blocking_stats *stats);
typedef struct mvx_failure {
    size_t size; int code; char *message; void *payload; void (*payload_drop)(void *);
} mvx_failure;
const char *mvx_version_string(void);
const char *mvx_strerror(int code);
const char *mvx_err_name(int code);
const char *mvx_last_error(void);
int mvx_runtime_config_init(mvx_runtime_config *config, size_t config_size);
int mvx_runtime_new(const mvx_runtime_config *config, mvx_runtime **out);
int mvx_runtime_shutdown(mvx_runtime *rt, int64_t timeout_ns);
int mvx_runtime_release(mvx_runtime *rt);
unsigned mvx_runtime_worker_count(const mvx_runtime *rt);
int mvx_join_wait(mvx_join_handle *join, int64_t timeout_ns);
int mvx_join_try(mvx_join_handle *join);
int mvx_join_poll(mvx_join_handle *join, const mvx_waker *waker);
int mvx_join_take(mvx_join_handle *join, void *output, size_t output_size, mvx_failure *failure);
int mvx_join_abort(mvx_join_handle *join);
int mvx_join_is_finished(const mvx_join_handle *join);
void mvx_join_release(mvx_join_handle *join);
void mvx_failure_clear(mvx_failure *failure);
void mvx_waker_drop(mvx_waker *waker);
void mvx_waker_wake_by_ref(const mvx_waker *waker);
int mvx_signature_parse(const char *text, size_t length, mvx_signature **out);
void mvx_signature_release(mvx_signature *sig);
int mvx_signature_arg_count(const mvx_signature *sig);
size_t mvx_signature_return_size(const mvx_signature *sig);
int mvx_spawn_call_owned(mvx_runtime *rt, void (*fn)(void), const mvx_signature *sig,
                         void *const *args, unsigned flags, void *owned,
                         void (*owned_free)(void *owned), mvx_join_handle **join);
int mvx_notifier_new(mvx_notifier **out);
int mvx_notifier_fd(const mvx_notifier *n);
int mvx_notifier_waker(mvx_notifier *n, uint64_t token, mvx_waker *out);
int mvx_notifier_drain(mvx_notifier *n, uint64_t *tokens, size_t max);
int mvx_notifier_wait(mvx_notifier *n, int64_t timeout_ns);
void mvx_notifier_free(mvx_notifier *n);
int mvx_spawn_promise(mvx_runtime *rt, size_t output_size, size_t output_align,
                      void (*output_drop)(void *output), mvx_promise **promise,
                      mvx_join_handle **join);
int mvx_promise_resolve(mvx_promise *promise, const void *output);
int mvx_promise_fail(mvx_promise *promise, int code, const char *message, void *payload,
                     void (*payload_drop)(void *payload));
int mvx_promise_is_cancelled(const mvx_promise *promise);
int mvx_promise_on_cancel(mvx_promise *promise, const mvx_waker *waker);
void mvx_promise_release(mvx_promise *promise);
int64_t mvx_now(void);
int mvx_spawn_sleep(mvx_runtime *rt, int64_t deadline_ns, mvx_join_handle **join);
void *malloc(size_t);
void free(void *);
void *dlopen(const char *filename, int flags);
void *dlsym(void *handle, const char *symbol);
char *dlerror(void);
struct mvx_lua_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk, struct mvx_lua_timespec *ts);
int clock_nanosleep(int clk, int flags, const struct mvx_lua_timespec *t, struct mvx_lua_timespec *rem);
unsigned long pthread_self(void);
]]

local C = ffi.C
local libname = os.getenv("MODUVEX_LIBRARY") or "libmoduvex.so.1"
local L = ffi.load(libname)
-- lua_close() unloads the library while the threads of a runtime collected at exit may still be
-- on their way out (its finalizer shuts down without waiting): keep it mapped for good
-- (RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE).
C.dlopen(libname, 0x1006)
local new, cast, gc, istype, typeof = ffi.new, ffi.cast, ffi.gc, ffi.istype, ffi.typeof
local tonumber = tonumber
local INF = -1LL

local core = { flavor = "luajit", EAGAIN = -6 }

local function fail(code)
    return nil, code, ffi.string(L.mvx_last_error())
end

local function secs_to_ns(s)
    if s == nil or s < 0 then return INF end
    if s > 9.2e9 then return 0x7fffffffffffffffLL end
    return ffi.cast("int64_t", s * 1e9)
end

function core.errname(code) return ffi.string(L.mvx_err_name(code)) end
function core.strerror(code) return ffi.string(L.mvx_strerror(code)) end
function core.version() return ffi.string(L.mvx_version_string()) end
local ts = new("struct mvx_lua_timespec")
function core.now()
    C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
function core.thread_id() return tonumber(C.pthread_self()) end

-- The absolute mvx_now() deadline secs (a number >= 0, checked by api.lua) from now, rounded up
-- to the nanosecond so that a sleep is never early; INT64_MAX for "never". As core.c.
local INT64_MAX = 0x7fffffffffffffffLL
local function deadline_after(secs)
    local now = L.mvx_now()
    if not (secs < 9.2e9) then return INT64_MAX end
    local ns = math.ceil(secs * 1e9)
    if ns > INT64_MAX - now then return INT64_MAX end
    return now + ns
end
local sleep_ts = new("struct mvx_lua_timespec")
function core.sleep_block(secs) -- blocks the calling thread (outside any task)
    local d = deadline_after(secs)
    sleep_ts.tv_sec, sleep_ts.tv_nsec = d / 1000000000, d % 1000000000
    -- CLOCK_MONOTONIC, TIMER_ABSTIME: never early; EINTR only resumes the same wait.
    while C.clock_nanosleep(1, 1, sleep_ts, nil) == 4 do end
end

-- ---- runtime ----
local function runtime_gc(rt) -- never waits: see core.c
    L.mvx_runtime_shutdown(rt, 0)
    L.mvx_runtime_release(rt)
end
function core.runtime_new(workers, name, max_blocking)
    local cfg = new("mvx_runtime_config")
    L.mvx_runtime_config_init(cfg, ffi.sizeof(cfg))
    cfg.worker_threads = workers or 0
    cfg.thread_name = name -- copied by the library
    cfg.max_blocking_threads = max_blocking or 0
    local out = new("mvx_runtime*[1]")
    local r = L.mvx_runtime_new(cfg, out)
    if r ~= 0 then return fail(r) end
    return gc(out[0], runtime_gc)
end
function core.runtime_close(rt, secs)
    gc(rt, nil)
    L.mvx_runtime_shutdown(rt, secs_to_ns(secs))
    L.mvx_runtime_release(rt)
end
function core.worker_count(rt) return tonumber(L.mvx_runtime_worker_count(rt)) end
local bstats = new("mvx_blocking_stats")
function core.blocking_stats(rt)
    bstats.size = ffi.sizeof(bstats)
    L.mvx_runtime_blocking_stats(rt, bstats)
    return bstats.threads, bstats.idle_threads, bstats.running, bstats.queued,
        tonumber(bstats.completed)
end

-- ---- libraries ----
function core.open(name)
    local h = C.dlopen(name, 2) -- RTLD_NOW | RTLD_LOCAL
    if h == nil then return nil, ffi.string(C.dlerror()) end
    return h
end
function core.sym(h, name)
    C.dlerror()
    local p = C.dlsym(h, name)
    if p == nil then
        local e = C.dlerror()
        return nil, e ~= nil and ffi.string(e) or "symbol is NULL"
    end
    return p
end
local voidp = typeof("void *")
function core.is_fnptr(v)
    return type(v) == "cdata" and ffi.cast(voidp, v) ~= nil
end

-- ---- signatures and call tasks ----
local T_I8, T_U8, T_I16, T_U16, T_I32, T_U32, T_I64, T_U64, T_SIZE, T_F32, T_F64, T_PTR =
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
local ptr_of = {
    typeof("int8_t *"), typeof("uint8_t *"), typeof("int16_t *"), typeof("uint16_t *"),
    typeof("int32_t *"), typeof("uint32_t *"), typeof("int64_t *"), typeof("uint64_t *"),
    typeof("size_t *"), typeof("float *"), typeof("double *"), typeof("void **"),
}
local ranges = { { -128, 255 }, { -128, 255 }, { -32768, 65535 }, { -32768, 65535 },
    { -2147483648, 4294967295 }, { -2147483648, 4294967295 } }

local function sig_gc_ptr(out) return gc(out[0], L.mvx_signature_release) end
function core.sig_new(text, offs, arg_size, leaves, rleaves)
    local out = new("mvx_signature*[1]")
    local r = L.mvx_signature_parse(text, #text, out)
    if r ~= 0 then return fail(r) end
    local s = { ptr = sig_gc_ptr(out) }
    s.nargs = L.mvx_signature_arg_count(s.ptr)
    s.ret_size = tonumber(L.mvx_signature_return_size(s.ptr))
    if #offs ~= s.nargs then
        error("signature \"" .. text .. "\": layout has " .. #offs .. " arguments, the library " ..
            s.nargs)
    end
    if arg_size > 4096 or s.ret_size > 4096 then error("signature \"" .. text .. "\": too large") end
    s.offs, s.leaves, s.rleaves = offs, leaves, rleaves
    s.nleaves, s.nret = #leaves / 2, #rleaves / 2
    return s
end

local block = new("double[512]") -- 4096 bytes, aligned: argument values, copied at spawn
local block_bytes = cast("uint8_t *", block)
local argv = new("void *[32]")
local out_block = new("double[512]")
local out_bytes = cast("uint8_t *", out_block)
-- A pointer cast from a cdata does not keep it alive: anchor the scratch blocks for good.
core._anchors = { block, out_block }
local jh_out = new("mvx_join_handle*[1]")
local fnptr_t = typeof("void (*)(void)")
local c_free = cast("void (*)(void *)", C.free)
local int64_t, uint64_t = typeof("int64_t"), typeof("uint64_t")

local function write_leaf(i, code, p, v, strings)
    if code <= T_U32 then
        if type(v) ~= "number" or v % 1 ~= 0 then
            error("bad argument #" .. i .. ": integer expected, got " .. type(v), 4)
        end
        local r = ranges[code]
        if v < r[1] or v > r[2] then error("bad argument #" .. i .. ": " .. v .. " out of range", 4) end
        cast(ptr_of[code], p)[0] = v
    elseif code <= T_SIZE then
        if type(v) == "number" then
            if v % 1 ~= 0 then error("bad argument #" .. i .. ": integer expected", 4) end
        elseif not (istype(int64_t, v) or istype(uint64_t, v)) then
            error("bad argument #" .. i .. ": integer expected, got " .. type(v), 4)
        end
        cast(ptr_of[code], p)[0] = v
    elseif code <= T_F64 then
        if type(v) ~= "number" then error("bad argument #" .. i .. ": number expected", 4) end
        cast(ptr_of[code], p)[0] = v
    else
        local tv = type(v)
        if v == nil then
            cast("void **", p)[0] = nil
        elseif tv == "string" then
            strings[#strings + 1] = { i = i, p = p, s = v }
            cast("void **", p)[0] = nil
        elseif tv == "cdata" then
            cast("void **", p)[0] = cast(voidp, v)
        else
            error("bad argument #" .. i .. ": pointer (nil, cdata or string) expected, got " .. tv, 4)
        end
    end
end

-- Strings passed for ptr are copied into one malloc'd block the task owns.
local function own_strings(strings)
    local total = 0
    for _, e in ipairs(strings) do total = total + #e.s + 1 end
    local owned = C.malloc(total)
    if owned == nil then error("out of memory", 3) end
    local cur = cast("uint8_t *", owned)
    for _, e in ipairs(strings) do
        ffi.copy(cur, e.s, #e.s + 1)
        cast("void **", e.p)[0] = cur
        cur = cur + #e.s + 1
    end
    return owned
end

local no_strings = {}
function core.spawn_call(rt, fn, s, blocking, ...)
    local n = select("#", ...)
    if n ~= s.nleaves then
        error("wrong number of arguments: " .. n .. " values for " .. s.nleaves, 3)
    end
    local leaves = s.leaves
    local strings = no_strings
    for i = 1, n do
        local code = leaves[2 * i]
        if code == T_PTR and type((select(i, ...))) == "string" then
            if strings == no_strings then strings = {} end
        end
        write_leaf(i, code, block_bytes + leaves[2 * i - 1], (select(i, ...)), strings)
    end
    local offs = s.offs
    for i = 1, s.nargs do argv[i - 1] = block_bytes + offs[i] end
    local owned
    if strings ~= no_strings then owned = own_strings(strings) end
    local r = L.mvx_spawn_call_owned(rt, cast(fnptr_t, fn), s.ptr, argv, blocking and 1 or 0,
        owned, owned and c_free or nil, jh_out)
    if r ~= 0 then
        if owned then C.free(owned) end
        return fail(r)
    end
    return gc(jh_out[0], L.mvx_join_release)
end

-- A sleep task that completes once mvx_now() reaches deadline (seconds on that clock, as
-- core.now(); rounded up to the nanosecond). As core.c.
function core.spawn_sleep(rt, deadline)
    local at = deadline * 1e9
    local d
    if not (at < 9.2e18) then d = INT64_MAX elseif at <= 0 then d = 0 else d = math.ceil(at) end
    local r = L.mvx_spawn_sleep(rt, d, jh_out)
    if r ~= 0 then return fail(r) end
    return gc(jh_out[0], L.mvx_join_release)
end

-- ---- join handles ----
function core.join_wait(jh, secs) return L.mvx_join_wait(jh, secs_to_ns(secs)) end
function core.join_try(jh) return L.mvx_join_try(jh) end
function core.join_finished(jh) return L.mvx_join_is_finished(jh) ~= 0 end
function core.join_abort(jh) L.mvx_join_abort(jh) end
function core.join_ptr(jh) return jh end
function core.join_poll(jh, w) return L.mvx_join_poll(jh, w) end
function core.join_release(jh)
    gc(jh, nil)
    L.mvx_join_release(jh)
end

local TWO53 = 2 ^ 53
local function read_leaf(code, p)
    local v = cast(ptr_of[code], p)[0]
    if code <= T_U32 or code == T_F32 or code == T_F64 then return tonumber(v) end
    if code <= T_SIZE then
        -- a number where a double keeps every bit, else the int64 cdata
        if code == T_I64 then
            if v >= -TWO53 and v <= TWO53 then return tonumber(v) end
        elseif v <= TWO53 then
            return tonumber(v)
        end
        return v
    end
    if v == nil then return nil end
    return v
end

local failure = new("mvx_failure")
local function take_values(s, i)
    if i > s.nret then return end
    local rl = s.rleaves
    return read_leaf(rl[2 * i], out_bytes + rl[2 * i - 1]), take_values(s, i + 1)
end
function core.join_take(jh, s)
    failure.size = ffi.sizeof(failure)
    local r = L.mvx_join_take(jh, (s and s.ret_size > 0) and out_block or nil, s and s.ret_size or 0,
        failure)
    if r == -8 then
        local code, msg = failure.code, failure.message ~= nil and ffi.string(failure.message) or ""
        L.mvx_failure_clear(failure)
        return r, code, msg
    end
    if r ~= 0 or not s then return r end
    return r, take_values(s, 1)
end

-- ---- notifiers, wakers, promises ----
function core.notifier_new()
    local out = new("mvx_notifier*[1]")
    local r = L.mvx_notifier_new(out)
    if r ~= 0 then return fail(r) end
    return gc(out[0], L.mvx_notifier_free)
end
function core.notifier_fd(n) return L.mvx_notifier_fd(n) end
function core.notifier_waker(n, token)
    local w = new("mvx_waker[1]")
    local r = L.mvx_notifier_waker(n, token, w)
    if r ~= 0 then return fail(r) end
    return gc(w, L.mvx_waker_drop)
end
function core.waker_wake(w) L.mvx_waker_wake_by_ref(w) end
function core.waker_drop(w) L.mvx_waker_drop(w) end -- zeroes it: the finalizer then does nothing
local tokens = new("uint64_t[64]")
function core.notifier_drain(n, t)
    local k = L.mvx_notifier_drain(n, tokens, 64)
    for i = 0, k - 1 do t[i + 1] = tonumber(tokens[i]) end
    return k < 0 and 0 or k
end
function core.notifier_wait(n, secs) return L.mvx_notifier_wait(n, secs_to_ns(secs)) end

local p_out = new("mvx_promise*[1]")
-- The promise, with the set's cancel waker registered on it; as core.c.
function core.promise_new(rt, cancel)
    local r = L.mvx_spawn_promise(rt, 0, 0, nil, p_out, jh_out)
    if r ~= 0 then return fail(r) end
    local p, jh = p_out[0], jh_out[0]
    r = L.mvx_promise_on_cancel(p, cancel)
    if r ~= 0 then
        L.mvx_promise_release(p)
        L.mvx_join_release(jh)
        return fail(r)
    end
    return gc(p, L.mvx_promise_release), gc(jh, L.mvx_join_release)
end
function core.promise_release(p)
    gc(p, nil)
    L.mvx_promise_release(p)
end
-- resolve and fail also release the promise: the task is finished either way.
function core.promise_resolve(p)
    local r = L.mvx_promise_resolve(p, nil)
    core.promise_release(p)
    return r
end
function core.promise_fail(p, code, msg)
    local r = L.mvx_promise_fail(p, code, msg, nil, nil)
    core.promise_release(p)
    return r
end
function core.promise_cancelled(p) return L.mvx_promise_is_cancelled(p) ~= 0 end

local M = require("moduvex.api")(core)
M.ffi_library = L
return M
