-- moduvex/api.lua: the Lua API of moduvex, shared by the Lua 5.4 C module (moduvex.lua over
-- moduvex.core) and the LuaJIT FFI module (moduvex/ffi.lua). `core` is the thin layer over
-- libmoduvex; everything here is plain Lua 5.1-5.4.
--
-- A coroutine task is a promise (mvx_spawn_promise): C tasks and other threads join it like any
-- task, and this file resolves it when the coroutine returns. Each set has one notifier; every
-- completion that concerns the set (a C handle a task awaits, a cancellation of one of its
-- tasks) arrives as a token on it, pulled by the thread that drives the set. No C code ever
-- calls into Lua. See README.md ("How it works").
return function(core)
    local M = {}
    local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
    local co_status, co_running, co_close = coroutine.status, coroutine.running, coroutine.close
    local unpack = table.unpack or unpack
    local pack = table.pack or function(...) return { n = select("#", ...), ... } end
    local now = core.now
    local EAGAIN = core.EAGAIN

    -- ---- errors ----------------------------------------------------------------------------
    local codes = {
        EINVAL = -1, ENOMEM = -2, ESHUTDOWN = -3, EDEADLK = -4, ETIMEDOUT = -5, EAGAIN = -6,
        ECANCELLED = -7, EFAILED = -8, ETAKEN = -9, EPERM = -10, ESYSTEM = -11, EALREADY = -12,
    }
    M.errors = codes
    local EDEADLK, ETIMEDOUT, ECANCELLED, EFAILED = codes.EDEADLK, codes.ETIMEDOUT,
        codes.ECANCELLED, codes.EFAILED

    local Error = {}
    Error.__index = Error
    Error.__tostring = function(e) return "moduvex: " .. e.name .. ": " .. e.message end
    M.Error = Error
    local function new_error(code, message, value)
        local name = core.errname(code):gsub("^MVX_", "")
        if message == nil or message == "" then message = core.strerror(code) end
        return setmetatable({ name = name, code = code, message = message, value = value }, Error)
    end
    M.new_error = new_error

    local function fail_result(code, message, value)
        return { n = 2, false, new_error(code, message, value) }
    end

    -- ---- signatures: the layout the core needs, computed once per text ---------------------
    local scalars = { -- code, size (= alignment)
        i8 = { 1, 1 }, u8 = { 2, 1 }, i16 = { 3, 2 }, u16 = { 4, 2 }, i32 = { 5, 4 },
        u32 = { 6, 4 }, i64 = { 7, 8 }, u64 = { 8, 8 }, size = { 9, 8 }, f32 = { 10, 4 },
        f64 = { 11, 8 }, ptr = { 12, 8 },
    }
    local function align_up(x, a) return math.floor((x + a - 1) / a) * a end

    -- Returns a list of argument types and the return type ("void" -> false), or nil when the
    -- text is malformed (the library's parser then says where).
    local function parse_sig(text)
        local pos = 1
        local function skip() pos = text:find("[^ \t]", pos) or #text + 1 end
        local function ty(depth)
            skip()
            if depth > 8 then return nil end
            if text:sub(pos, pos) == "{" then
                pos = pos + 1
                local members, size, align = {}, 0, 1
                repeat
                    local m = ty(depth + 1)
                    if not m or m == "void" then return nil end
                    local off = align_up(size, m.align)
                    members[#members + 1] = { off = off, t = m }
                    size = off + m.size
                    if m.align > align then align = m.align end
                    skip()
                    local c = text:sub(pos, pos)
                    pos = pos + 1
                until c ~= ","
                if text:sub(pos - 1, pos - 1) ~= "}" then return nil end
                return { members = members, size = align_up(size, align), align = align }
            end
            local word = text:match("^[%a_][%w_]*", pos)
            if not word then return nil end
            pos = pos + #word
            if word == "void" then return "void" end
            local s = scalars[word]
            if not s then return nil end
            return { code = s[1], size = s[2], align = s[2] }
        end
        local ret = ty(0)
        if not ret then return nil end
        skip()
        if text:sub(pos, pos) ~= "(" then return nil end
        pos = pos + 1
        local args = {}
        skip()
        if text:sub(pos, pos) == ")" then
            pos = pos + 1
        else
            repeat
                local a = ty(0)
                if not a then return nil end
                if a == "void" then
                    if #args > 0 then return nil end
                else
                    args[#args + 1] = a
                end
                skip()
                local c = text:sub(pos, pos)
                pos = pos + 1
            until c ~= ","
            if text:sub(pos - 1, pos - 1) ~= ")" then return nil end
        end
        skip()
        if pos <= #text then return nil end
        return args, ret ~= "void" and ret
    end

    -- Appends (offset, code) pairs of t's scalars at base to leaves.
    local function flatten_type(t, base, leaves)
        if t.code then
            leaves[#leaves + 1] = base
            leaves[#leaves + 1] = t.code
        else
            for _, m in ipairs(t.members) do flatten_type(m.t, base + m.off, leaves) end
        end
    end

    local sig_cache = {}
    local function get_sig(text)
        local s = sig_cache[text]
        if s then return s end
        if type(text) ~= "string" then error("moduvex: signature string expected", 3) end
        local args, ret = parse_sig(text)
        if not args then
            local _, code, msg = core.sig_new(text, {}, 0, {}, {})
            error("moduvex: bad signature \"" .. text .. "\": " .. tostring(msg or code), 3)
        end
        local offs, size, leaves, flat = {}, 0, {}, true
        for i, a in ipairs(args) do
            local off = align_up(size, a.align)
            offs[i] = off
            size = off + a.size
            flatten_type(a, off, leaves)
            if not a.code then flat = false end
        end
        local rleaves = {}
        if ret then flatten_type(ret, 0, rleaves) end
        local c, code, msg = core.sig_new(text, offs, size, leaves, rleaves)
        if not c then error("moduvex: bad signature \"" .. text .. "\": " .. tostring(msg), 3) end
        s = { core = c, args = args, ret = ret, flat = flat, struct_ret = ret and not ret.code }
        sig_cache[text] = s
        return s
    end

    -- Struct arguments arrive as tables (array part, in member order); the core takes scalars.
    local function flatten_value(t, v, out, argn)
        if t.code then
            out[#out + 1] = v
            return
        end
        if type(v) ~= "table" then
            error("moduvex: bad argument #" .. argn .. ": table expected for a struct", 4)
        end
        for i, m in ipairs(t.members) do flatten_value(m.t, v[i], out, argn) end
    end
    local function flatten_args(s, ...)
        local out = {}
        local n = select("#", ...)
        if n ~= #s.args then
            error("moduvex: " .. #s.args .. " arguments expected, got " .. n, 4)
        end
        for i = 1, n do flatten_value(s.args[i], (select(i, ...)), out, i) end
        return unpack(out, 1, #out)
    end
    local function rebuild(t, vals, i)
        if t.code then return vals[i], i + 1 end
        local r = {}
        for k, m in ipairs(t.members) do r[k], i = rebuild(m.t, vals, i) end
        return r, i
    end

    -- ---- handles -----------------------------------------------------------------------------
    local Handle = {}
    Handle.__index = Handle
    M.Handle = Handle
    local current -- the task whose coroutine the set is resuming now, if any

    -- The packed result of a finished C task (code from try/wait/poll), taken once and kept.
    local function c_result(h, code)
        local res = h.res
        if res then return res end
        if code == 0 or code == EFAILED or code == nil then
            local s = h.sig
            local r = pack(core.join_take(h.jh, s and s.core))
            local c = r[1]
            if c == EAGAIN then return nil end -- (code nil: a guess that it finished)
            if c == 0 then
                if s and s.struct_ret then
                    res = { n = 2, true, (rebuild(s.ret, r, 2)) }
                else
                    r[1] = true
                    res = r
                end
            elseif c == EFAILED then
                res = fail_result(EFAILED, r[3])
                res[2].failure_code = r[2]
            else
                res = fail_result(c)
            end
        else
            res = fail_result(code)
        end
        h.res = res
        return res
    end

    local function running_task()
        -- Inside a coroutine of the task's own (a coroutine.wrap in its body) we are not in the
        -- task: nothing there can yield to the set.
        local c = current
        if c and co_running() == c.co then return c end
    end

    local function make_ready(set, task)
        if task.queued or task.done then return end
        task.queued = true
        local t = set.rtail + 1
        set.rtail = t
        set.ready[t] = task
        if not set.driving and not set.kicked then
            -- Made ready from outside the loop (a spawn, a close): make the fd readable, or a
            -- host loop polling it would never come back to run the task.
            set.kicked = true
            core.waker_wake(set.kick)
        end
    end

    -- Makes ready the waiters of h that belong to set (the others learn of it through their
    -- own set's notifier).
    local function wake_waiters(h, set)
        local w = h.waiter -- the first waiter: no list for the common case of one
        if w and w.set == set then
            h.waiter = nil
            make_ready(set, w)
        end
        local ws = h.waiters
        if not ws then return end
        local keep
        for i = 1, #ws do
            local w = ws[i]
            if w.set == set then
                make_ready(set, w)
            else
                keep = keep or {}
                keep[#keep + 1] = w
            end
        end
        h.waiters = keep
    end

    -- Registers a notifier waker of `set` on h's join handle (once per handle and set): when the
    -- task finishes, the token comes out of set's notifier and wakes h's waiters there.
    local function watch(set, h)
        local w = h.watch
        if w then
            if w.set ~= set then
                error("moduvex: this handle is already awaited from another set", 4)
            end
            return EAGAIN
        end
        -- Wakers are reused: one whose token came out (or whose handle let it go) may serve
        -- another handle. A late wake through a stale clone only wakes waiters spuriously, and
        -- they look again.
        local pool = set.wakers
        w = pool[#pool]
        if w then
            pool[#pool] = nil
        else
            local token = set.next_token
            set.next_token = token + 1
            local waker, code, msg = core.notifier_waker(set.n, token)
            if not waker then error("moduvex: " .. tostring(new_error(code, msg)), 4) end
            w = { set = set, token = token, waker = waker }
        end
        local c = core.join_poll(h.jh, w.waker)
        if c ~= EAGAIN then
            pool[#pool + 1] = w
            return c
        end
        h.watch = w
        set.tokens[w.token] = h
        return EAGAIN
    end
    local function unwatch(h)
        local w = h.watch
        if w then
            local set = w.set
            set.tokens[w.token] = nil
            set.wakers[#set.wakers + 1] = w
            h.watch = nil
        end
    end

    local function add_waiter(h, task)
        local w = h.waiter
        if not w then
            h.waiter = task
        elseif w ~= task then
            local ws = h.waiters
            if ws then ws[#ws + 1] = task else h.waiters = { task } end
        end
    end

    local AWAIT = {} -- what a task yields to its set while it awaits
    local OK = { n = 1, true } -- the result of every task that returned nothing

    local function add_timer(set, task, deadline)
        task.deadline = deadline
        set.timers[task] = true
    end

    local function await_in_task(task, h, secs)
        local deadline = secs and secs >= 0 and now() + secs
        local woken = false
        while true do
            local res = h.res
            if res then return unpack(res, 1, res.n) end
            local other = h.task
            if not (other and other.set == task.set) then
                if not h.jh then return false, new_error(ECANCELLED, "the handle is closed") end
                if woken and not h.watch then
                    -- Its token came: it most likely finished, so take the result at once (one
                    -- C call instead of a poll and a take).
                    res = c_result(h, nil)
                    if res then return unpack(res, 1, res.n) end
                end
                local c = watch(task.set, h)
                if c ~= EAGAIN then
                    unwatch(h)
                    res = c_result(h, c)
                    return unpack(res, 1, res.n)
                end
            end
            if deadline and now() >= deadline then return false, new_error(ETIMEDOUT) end
            add_waiter(h, task)
            if deadline then add_timer(task.set, task, deadline) end
            co_yield(AWAIT)
            woken = true
            if deadline then task.set.timers[task] = nil end
        end
    end

    function Handle:join(secs)
        local res = self.res
        if res then return unpack(res, 1, res.n) end
        if secs ~= nil and type(secs) ~= "number" then
            error("moduvex: join: seconds must be a number", 2)
        end
        local jh = self.jh
        if not jh then error("moduvex: the handle is closed", 2) end
        local task = running_task()
        if task then return await_in_task(task, self, secs) end
        if self.task then
            -- A coroutine task: it runs only while this thread drives its set.
            local c = core.join_try(jh)
            if c == EAGAIN then
                return false, new_error(EDEADLK, "join: this coroutine task runs only while its " ..
                    "set is driven by this thread (use set:run_until(h) or await it from a task)")
            end
            res = c_result(self, c)
            return unpack(res, 1, res.n)
        end
        local c = core.join_wait(jh, secs)
        if c == ETIMEDOUT or c == EDEADLK then return false, new_error(c) end
        res = c_result(self, c)
        return unpack(res, 1, res.n)
    end

    local function raise_or_return(ok, ...)
        if ok then return ... end
        error((...), 0)
    end
    function Handle:await(secs)
        local res = self.res
        if not res then
            local task = secs == nil and running_task()
            local other = self.task
            if not (task and other and other.set == task.set and self.jh) then
                return raise_or_return(self:join(secs))
            end
            -- A task of the same set: it makes us ready when it finishes, no C call needed.
            repeat
                add_waiter(self, task)
                co_yield(AWAIT)
                res = self.res
            until res
        end
        if res[1] then return unpack(res, 2, res.n) end
        error(res[2], 0)
    end

    function Handle:try()
        local res = self.res
        if res then return unpack(res, 1, res.n) end
        if self.task or not self.jh then return end
        local c = core.join_try(self.jh)
        if c == EAGAIN then return end
        res = c_result(self, c)
        return unpack(res, 1, res.n)
    end

    function Handle:finished()
        if self.res then return true end
        if self.task then return false end
        return self.jh ~= nil and core.join_finished(self.jh)
    end

    function Handle:abort()
        if self.jh and not self.res then core.join_abort(self.jh) end
    end

    -- The mvx_join_handle * (lightuserdata or cdata), for C functions that abort or join it.
    function Handle:pointer()
        if not self.jh then error("moduvex: the handle is closed", 2) end
        return core.join_ptr(self.jh)
    end

    function Handle:close()
        local jh = self.jh
        if not jh then return end
        if not self.res then
            core.join_abort(jh)
            if not self.task then
                self.res = fail_result(ECANCELLED, "the handle was closed")
            end
        end
        unwatch(self)
        self.jh = nil
        core.join_release(jh)
        -- Waiters in other sets are woken by their own set when the task ends.
        local ws = self.waiters
        if self.res then
            local w = self.waiter
            if w then make_ready(w.set, w) end
            self.waiter = nil
            if ws then for i = 1, #ws do make_ready(ws[i].set, ws[i]) end end
            self.waiters = nil
        end
    end
    Handle.__close = Handle.close

    local function new_handle(jh, sig)
        return setmetatable({ jh = jh, sig = sig }, Handle)
    end

    -- ---- runtimes, libraries, functions ------------------------------------------------------
    local Runtime = {}
    Runtime.__index = Runtime
    M.Runtime = Runtime

    local function check_opt_int(v, name, lo, hi)
        if v == nil then return nil end
        if type(v) ~= "number" or v % 1 ~= 0 or v < lo or v > hi then
            error("moduvex.runtime: " .. name .. " must be an integer from " .. lo .. " to " ..
                hi, 3)
        end
        return v
    end

    function M.runtime(opts)
        if opts == nil then opts = {} end
        if type(opts) ~= "table" then error("moduvex.runtime: options table expected", 2) end
        local workers = check_opt_int(opts.workers, "workers", 0, 1024)
        local max_blocking = check_opt_int(opts.max_blocking, "max_blocking", 0, 1000000)
        local name = opts.thread_name
        if name ~= nil and type(name) ~= "string" then
            error("moduvex.runtime: thread_name must be a string", 2)
        end
        local rt, code, msg = core.runtime_new(workers, name, max_blocking)
        if not rt then return nil, new_error(code, msg) end
        return setmetatable({ core = rt }, Runtime)
    end

    local function rt_core(rt)
        local c = rt.core
        if not c then error("moduvex: the runtime is closed", 3) end
        return c
    end

    -- Shuts down (waiting up to secs for running tasks; nil: until they finish) and releases.
    function Runtime:close(secs)
        local c = self.core
        if c then
            self.core = nil
            core.runtime_close(c, secs)
        end
    end
    Runtime.__close = function(self) self:close() end

    function Runtime:workers() return core.worker_count(rt_core(self)) end
    -- A snapshot of the blocking pool: threads (alive), idle, running, queued, completed.
    function Runtime:blocking_stats()
        local threads, idle, running, queued, completed = core.blocking_stats(rt_core(self))
        return { threads = threads, idle = idle, running = running, queued = queued,
            completed = completed }
    end

    local Lib = {}
    function Lib.__index(self, name)
        local m = Lib[name]
        if m then return m end
        local p = core.sym(rawget(self, "_h"), name)
        if p then rawset(self, name, p) end
        return p
    end
    function Lib:sym(name)
        if type(name) ~= "string" then error("moduvex: symbol name expected", 2) end
        local p, err = core.sym(rawget(self, "_h"), name)
        if not p then return nil, err end
        return p
    end
    M.Lib = Lib

    -- Opens a shared library (dlopen; nil: the program itself). It is never closed: tasks may
    -- still be calling into it.
    function M.open(name)
        if name ~= nil and type(name) ~= "string" then
            error("moduvex.open: library name expected", 2)
        end
        local h, err = core.open(name)
        if not h then return nil, err end
        return setmetatable({ _h = h }, Lib)
    end

    local Func = {}
    Func.__index = Func
    M.Func = Func

    function Runtime:func(fn, text)
        rt_core(self)
        if not core.is_fnptr(fn) then
            error("moduvex: rt:func: function pointer expected (lib.symbol), got " .. type(fn), 2)
        end
        return setmetatable({ rt = self, fn = fn, sig = get_sig(text) }, Func)
    end

    local function spawn_call(f, blocking, ...)
        local s = f.sig
        local jh, code, msg
        if s.flat then
            jh, code, msg = core.spawn_call(rt_core(f.rt), f.fn, s.core, blocking, ...)
        else
            jh, code, msg = core.spawn_call(rt_core(f.rt), f.fn, s.core, blocking,
                flatten_args(s, ...))
        end
        if not jh then return nil, new_error(code, msg) end
        return new_handle(jh, s)
    end
    function Func:spawn(...) return spawn_call(self, false, ...) end
    function Func:spawn_blocking(...) return spawn_call(self, true, ...) end

    -- ---- local sets: coroutine tasks and the loop that drives them ---------------------------
    local SPIN_MAX, SPIN_MIN = 200e-6, 2e-6 -- the driving loop's spin (see wait)
    local Set = {}
    Set.__index = Set
    M.Set = Set

    function Runtime:local_set()
        rt_core(self)
        local n, code, msg = core.notifier_new()
        if not n then return nil, new_error(code, msg) end
        local kick
        kick, code, msg = core.notifier_waker(n, 0) -- token 0: "look at the ready queue"
        if not kick then return nil, new_error(code, msg) end
        -- Token 1: "a task was cancelled". One waker for all the set's tasks (each promise keeps
        -- a clone, which costs no allocation): cancellations are rare, so on that token the set
        -- asks each live task's promise.
        local cancel
        cancel, code, msg = core.notifier_waker(n, 1)
        if not cancel then return nil, new_error(code, msg) end
        return setmetatable({
            rt = self, n = n, kick = kick, ntasks = 0, ready = {}, rhead = 1, rtail = 0,
            timers = {}, tokens = {}, next_token = 2, buf = {}, driving = false, kicked = false,
            cancel = cancel, live = {}, wakers = {}, spin = SPIN_MAX,
            sleepers = {}, nsleepers = 0, sleep_seq = 0, nap = false, nap_at = 0,
            sleep_dirty = false,
        }, Set)
    end

    function Set:spawn(fn, ...)
        if type(fn) ~= "function" then
            error("moduvex: set:spawn: function expected, got " .. type(fn), 2)
        end
        -- The promise, with the set's cancel waker registered on it (one C call).
        local p, jh, msg = core.promise_new(rt_core(self.rt), self.cancel)
        if not p then return nil, new_error(jh, msg) end
        -- The task record is its handle too (h.task == h): one table per task.
        -- (Every field it will get, so that the table is sized once.)
        local task = setmetatable({ co = co_create(fn), p = p, jh = jh, set = self, task = false,
            queued = false, done = false, waiter = false }, Handle)
        task.task = task
        if select("#", ...) > 0 then task.args = pack(...) end
        self.live[task] = true -- the anchor: the set keeps its unfinished tasks
        self.ntasks = self.ntasks + 1
        make_ready(self, task)
        return task
    end

    local function task_done(set, task, res)
        task.done = true
        if not task.res then task.res = res end
        set.live[task] = nil
        set.ntasks = set.ntasks - 1
        set.timers[task] = nil
        task.co = nil
        task.p = nil -- released by promise_resolve, promise_fail or cancel_task
        wake_waiters(task, set)
    end

    local function cancel_task(set, task)
        -- Closing the coroutine runs its pending <close> variables, here on the owner thread.
        local cerr
        if co_close then
            local ok, e = co_close(task.co)
            if not ok then cerr = e end
        end
        local e = task.sleep
        if e then -- a sleeper no more: the set's sleep task is cancelled once none is left
            task.sleep = nil
            e.cancelled = true
            set.nsleepers = set.nsleepers - 1
            set.sleep_dirty = true
        end
        core.promise_release(task.p)
        task_done(set, task, fail_result(ECANCELLED, nil, cerr))
    end

    local function finish(set, task, ok, ...)
        local res
        if ok then
            res = select("#", ...) == 0 and OK or pack(true, ...)
            if core.promise_resolve(task.p) == ECANCELLED then -- (and releases it)
                res = fail_result(ECANCELLED)
            end
        else
            local v = ...
            local e = new_error(EFAILED, tostring(v), v)
            e.traceback = debug.traceback(task.co, e.message)
            res = { n = 2, false, e }
            core.promise_fail(task.p, EFAILED, e.message)
        end
        task_done(set, task, res)
    end

    local function after_resume(set, task, ok, ...)
        current = nil
        if ok and ... == AWAIT then return end -- (a task cannot return AWAIT: it is local here)
        if co_status(task.co) == "dead" then return finish(set, task, ok, ...) end
        -- The task yielded for its own purposes: its coroutine belongs to the set, so refuse.
        if co_close then co_close(task.co) end
        finish(set, task, false, "moduvex: coroutine.yield() in a task of a set: a task's " ..
            "coroutine is driven by its set; await handles with h:await(), or run your own " ..
            "coroutines inside the task")
    end

    local function run_task(set, task)
        task.queued = false
        if task.done then return end
        if core.promise_cancelled(task.p) then return cancel_task(set, task) end
        current = task
        local args = task.args
        if args then
            task.args = nil
            return after_resume(set, task, co_resume(task.co, unpack(args, 1, args.n)))
        end
        return after_resume(set, task, co_resume(task.co))
    end

    -- ---- mvx.sleep: the set's sleepers ----
    -- Sleeping tasks wait in a binary heap of the set, ordered by (deadline, arrival), and the
    -- set keeps one sleep task of the library (mvx_spawn_sleep, "the nap") armed for the earliest
    -- deadline, awaited through the notifier like any handle: its token wakes the driving loop
    -- or the host loop polling the fd. On that token the set makes every sleeper whose deadline
    -- has passed ready, in deadline order, and arms the nap for the next. So sleepers resume in
    -- deadline order whatever the workers' timing (a worker that fires two timers late, in one
    -- batch, may complete their tasks in either order), cost one heap entry each rather than a
    -- task, and a cancelled sleeper costs nothing once the last one is gone (the nap is aborted).
    local function heap_less(a, b)
        return a.at < b.at or (a.at == b.at and a.seq < b.seq)
    end
    local function heap_push(hp, e)
        local i = #hp + 1
        hp[i] = e
        while i > 1 do
            local parent = (i - i % 2) / 2
            if not heap_less(hp[i], hp[parent]) then break end
            hp[i], hp[parent] = hp[parent], hp[i]
            i = parent
        end
    end
    local function heap_pop(hp)
        local n = #hp
        local top = hp[1]
        hp[1] = hp[n]
        hp[n] = nil
        n = n - 1
        local i = 1
        while true do
            local l, r, m = 2 * i, 2 * i + 1, i
            if l <= n and heap_less(hp[l], hp[m]) then m = l end
            if r <= n and heap_less(hp[r], hp[m]) then m = r end
            if m == i then break end
            hp[i], hp[m] = hp[m], hp[i]
            i = m
        end
        return top
    end

    local function drop_nap(set)
        local nap = set.nap
        if nap then
            set.nap = false
            nap:close() -- aborts it: its timer is cancelled
        end
    end

    -- A sleeper leaves the heap's count and its task becomes ready (woken, or with e.err).
    local function release_sleeper(set, e)
        e.task.sleep = nil
        set.nsleepers = set.nsleepers - 1
        make_ready(set, e.task)
    end

    -- Wakes the sleepers that are due, in order, and keeps the nap armed for the next one.
    local function service_sleepers(set)
        set.sleep_dirty = false
        local hp = set.sleepers
        while true do
            local t = now()
            while hp[1] and (hp[1].cancelled or hp[1].at <= t) do
                local e = heap_pop(hp)
                if not e.cancelled then
                    e.woken = true
                    release_sleeper(set, e)
                end
            end
            local top = hp[1]
            if not top then
                drop_nap(set)
                return
            end
            local nap = set.nap
            if nap and set.nap_at <= top.at then
                -- Armed early enough; watch it again if a stale token took its watch.
                if watch(set, nap) == EAGAIN then return end
                drop_nap(set) -- it fired (or was cancelled): arm another
            else
                drop_nap(set)
                local rt = set.rt.core
                local jh, code, msg
                if rt then jh, code, msg = core.spawn_sleep(rt, top.at) end
                if not jh then
                    -- The runtime is shut down: nothing can wake the sleepers any more.
                    local err = new_error(code or codes.ESHUTDOWN, msg or "the runtime is closed")
                    while hp[1] do
                        local e = heap_pop(hp)
                        if not e.cancelled then
                            e.err = err
                            release_sleeper(set, e)
                        end
                    end
                    return
                end
                nap = new_handle(jh)
                set.nap, set.nap_at = nap, top.at
                if watch(set, nap) == EAGAIN then return end
                drop_nap(set) -- already due: wake and look again
            end
        end
    end

    -- Moves the notifier's tokens and expired timers into the ready queue.
    -- Returns the number of tokens taken.
    local function pull(set)
        set.kicked = false
        local buf, tokens = set.buf, set.tokens
        local taken = 0
        while true do
            local k = core.notifier_drain(set.n, buf)
            taken = taken + k
            for i = 1, k do
                local id = buf[i]
                local h = tokens[id]
                if h then -- a watched handle finished
                    unwatch(h)
                    wake_waiters(h, set)
                    if h == set.nap then set.sleep_dirty = true end
                elseif id == 1 then -- some task was cancelled: run_task finds which
                    for task in pairs(set.live) do
                        if core.promise_cancelled(task.p) then make_ready(set, task) end
                    end
                end
            end
            if k < 64 then break end
        end
        if set.sleep_dirty then service_sleepers(set) end
        if next(set.timers) then
            local t = now()
            for task in pairs(set.timers) do
                if task.deadline <= t then
                    set.timers[task] = nil
                    make_ready(set, task)
                end
            end
        end
        return taken
    end

    local function check_driver(set)
        if getmetatable(set) ~= Set then error("moduvex: set expected", 3) end
        if running_task() then
            error("moduvex: a set cannot be driven from inside a task (await instead)", 3)
        end
    end

    -- Runs ready tasks until none is ready; returns the number of polls (resumes).
    local function run_ready(set)
        local polls = 0
        set.driving = true
        while true do
            pull(set)
            if set.rhead > set.rtail then break end
            local ready = set.ready
            while set.rhead <= set.rtail do
                local i = set.rhead
                local task = ready[i]
                ready[i] = nil
                -- Back to index 1 once empty: the queue stays a small array.
                if i == set.rtail then set.rhead, set.rtail = 1, 0 else set.rhead = i + 1 end
                run_task(set, task)
                polls = polls + 1
            end
        end
        set.rhead, set.rtail = 1, 0
        set.driving = false
        return polls
    end

    -- Seconds until the earliest timer, 0 if it has passed, nil if none.
    local function next_timer(set)
        local d
        for task in pairs(set.timers) do
            if not d or task.deadline < d then d = task.deadline end
        end
        if d then
            d = d - now()
            return d > 0 and d or 0
        end
    end

    -- How long a driving loop polls before it sleeps on the fd. nil: adaptive (below); a
    -- number: that many seconds every time (0: never spin).
    M.spin_seconds = nil
    -- Adaptive spin, as the library's own sleepers do (src/spin.h): each set keeps a budget
    -- that follows whether spinning pays. A spin that finds a token after t keeps at least 4 t;
    -- one that runs out, followed by a sleep that a token ended g after the spin began, doubles
    -- (at least 2 g) when g <= SPIN_MAX (a longer spin would have caught it), else halves (0
    -- below SPIN_MIN: a set that awaits slow work sleeps at once). SPIN_MAX covers a parked
    -- worker's wake-up on small VMs (tens of microseconds): a round trip the driver catches
    -- spinning keeps the worker's own spin paying too, where two sleeps per round trip would
    -- make both sides give up spinning.
    local function spin_learn(set, found, gap)
        local b = set.spin
        if found then
            if 4 * gap > b then b = 4 * gap end
        elseif gap <= SPIN_MAX then
            b = 2 * (b > gap and b or gap)
        else
            b = b / 2
            set.spin = b < SPIN_MIN and 0 or b
            return
        end
        set.spin = b < SPIN_MIN and SPIN_MIN or b > SPIN_MAX and SPIN_MAX or b
    end

    -- Waits until a token arrives (or secs, or the next timer, pass). Spins first, draining
    -- without a system call: a worker's completion often comes within microseconds, and a sleep
    -- plus a wake-up through the kernel costs far more.
    local function wait(set, secs)
        local t = next_timer(set)
        if t and (not secs or t < secs) then secs = t end
        if secs == 0 then return end
        local fixed = M.spin_seconds
        local spin = fixed or set.spin
        if secs and spin > secs then spin = secs end
        local t0 = now()
        if spin > 0 then
            set.driving = true
            repeat
                if pull(set) > 0 or set.rhead <= set.rtail then
                    set.driving = false
                    if not fixed then spin_learn(set, true, now() - t0) end
                    return
                end
            until now() - t0 > spin
            set.driving = false
            if secs then
                secs = secs - spin
                if secs <= 0 then return end
            end
        end
        local r = core.notifier_wait(set.n, secs)
        if not fixed then spin_learn(set, false, r == 0 and now() - t0 or math.huge) end
    end

    -- mvx.sleep(secs): inside a coroutine task, a sleeper of its set (see "the set's
    -- sleepers"); outside any task, blocks the thread (clock_nanosleep). Never early: a sleeper
    -- is woken only once now() has reached its deadline. sleep(0) in a task lets the set's
    -- other ready tasks run first.
    function M.sleep(secs)
        if type(secs) ~= "number" or secs ~= secs or secs < 0 then
            error("moduvex.sleep: seconds must be a number >= 0, got " ..
                (type(secs) == "number" and tostring(secs) or type(secs)), 2)
        end
        local task = running_task()
        if not task then return core.sleep_block(secs) end
        local set = task.set
        if secs == 0 then
            make_ready(set, task)
            co_yield(AWAIT)
            return
        end
        if not set.rt.core then error(new_error(codes.ESHUTDOWN, "the runtime is closed"), 2) end
        local seq = set.sleep_seq + 1
        set.sleep_seq = seq
        local e = { at = now() + secs, seq = seq, task = task }
        heap_push(set.sleepers, e)
        set.nsleepers = set.nsleepers + 1
        set.sleep_dirty = true
        task.sleep = e
        repeat co_yield(AWAIT) until e.woken or e.err
        if e.err then error(e.err, 2) end
    end

    function Set:step(secs)
        check_driver(self)
        local polls = run_ready(self)
        if polls == 0 and secs and secs > 0 then
            wait(self, secs)
            polls = run_ready(self)
        end
        return polls
    end

    -- Drives the set until every task of it has finished.
    function Set:run()
        check_driver(self)
        while true do
            run_ready(self)
            if self.ntasks == 0 then return end
            wait(self, nil)
        end
    end

    function Set:run_until(h, secs)
        check_driver(self)
        if getmetatable(h) ~= Handle then error("moduvex: run_until: handle expected", 2) end
        if secs ~= nil and type(secs) ~= "number" then
            error("moduvex: run_until: seconds must be a number", 2)
        end
        local deadline = secs and secs >= 0 and now() + secs
        while true do
            run_ready(self)
            if h.res then return unpack(h.res, 1, h.res.n) end
            if not h.jh then error("moduvex: the handle is closed", 2) end
            if not (h.task and h.task.set == self) then
                local c = watch(self, h)
                if c ~= EAGAIN then
                    unwatch(h)
                    local res = c_result(h, c)
                    return unpack(res, 1, res.n)
                end
            end
            local left
            if deadline then
                left = deadline - now()
                if left <= 0 then return false, new_error(ETIMEDOUT) end
            end
            wait(self, left)
        end
    end

    -- The cqueues polling protocol, also what luv's uv.new_poll needs.
    function Set:pollfd() return core.notifier_fd(self.n) end
    function Set:events() return "r" end
    function Set:timeout()
        if self.rhead <= self.rtail then return 0 end
        return next_timer(self)
    end
    -- The number of unfinished tasks.
    function Set:pending() return self.ntasks end

    M.version = core.version
    M.flavor = core.flavor
    M.thread_id = core.thread_id
    M.now = now
    M.Error = Error
    return M
end
