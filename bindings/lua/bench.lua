-- bench.lua: the Lua binding beside what a Lua programmer would use instead, in one run, with
-- the line format of bench/compare (bench=... impl=... median_ns=... per_task_ns=...).
--   lua_call_await    spawn a trivial C call task and await it from a coroutine, one at a time;
--                     luv: uv.new_work round trip; cqueues: a message round trip to a
--                     cqueues.thread over its socket
--   lua_task_join     spawn a coroutine task into the set and join it (from a task), one at a
--                     time; cqueues: cq:wrap a coroutine and wait for it on a condition
--   lua_blocking_fanout  1,000 blocking C calls (usleep 1 ms) fanned out and awaited; luv: 1,000
--                     uv.new_work jobs (uv.sleep(1)) on its thread pool
-- Implementations are interleaved iteration by iteration. Environment: MVX_BENCH_ITERS (15),
-- MVX_BENCH_WARMUP (3), MVX_BENCH_THREADS (worker threads, 2), MVX_BENCH_ONLY (a comma list of
-- benchmark names; default all), MVX_LUA_TESTLIB (the C functions), UV_THREADPOOL_SIZE (luv's
-- pool, 4 by default; make lua-bench sets it to 512, the size of moduvex's default pool, so that
-- both may use as many threads). moduvex runs with the library's default pool (512 threads at
-- most, started on demand); the fanout lines end with pool_threads=, the pool threads each
-- implementation had after its last iteration.
local jit = rawget(_G, "jit")
local mvx = jit and require("moduvex.ffi") or require("moduvex")
local interp = jit and "luajit" or "lua5.4"
local have_luv, uv = pcall(require, "luv")
local have_cq, cqueues = pcall(require, "cqueues")

local ITERS = tonumber(os.getenv("MVX_BENCH_ITERS")) or 15
local THREADS = tonumber(os.getenv("MVX_BENCH_THREADS")) or 2
local WARMUP = tonumber(os.getenv("MVX_BENCH_WARMUP")) or 3
local now = mvx.now

local rt = assert(mvx.runtime({ workers = THREADS })) -- the default blocking pool
local lib = assert(mvx.open(assert(os.getenv("MVX_LUA_TESTLIB"), "MVX_LUA_TESTLIB unset")))
local noop = rt:func(lib.t_noop, "i32()")
local sleep = rt:func(lib.t_sleep_ms, "void(u32)")
local set = rt:local_set()

-- ---- implementations: each returns a function running one iteration ----
local impls = { lua_call_await = {}, lua_task_join = {}, lua_blocking_fanout = {} }
local ops = { lua_call_await = 1000, lua_task_join = 1000, lua_blocking_fanout = 1000 }
local order = {}

local function add(bench, name, fn, pool_threads)
    impls[bench][#impls[bench] + 1] = { name = name, fn = fn, samples = {}, pool = pool_threads }
end

add("lua_call_await", "moduvex-" .. interp, function(n)
    set:run_until(set:spawn(function()
        for _ = 1, n do noop:spawn():await() end
    end))
end)
local function empty() end
add("lua_task_join", "moduvex-" .. interp, function(n)
    set:run_until(set:spawn(function()
        for _ = 1, n do set:spawn(empty):await() end
    end))
end)
add("lua_task_join", "coroutine-" .. interp, function(n) -- the floor: no scheduler at all
    for _ = 1, n do coroutine.wrap(empty)() end
end)
add("lua_blocking_fanout", "moduvex-" .. interp, function(n)
    set:run_until(set:spawn(function()
        local hs = {}
        for i = 1, n do hs[i] = sleep:spawn_blocking(1) end
        for i = 1, n do hs[i]:await() end
    end))
end, function() return rt:blocking_stats().threads end)

if have_luv then
    local done
    local work = uv.new_work(function(x) return x end, function() done = true end)
    add("lua_call_await", "luv-" .. interp, function(n)
        for _ = 1, n do
            done = false
            work:queue(1)
            while not done do uv.run("once") end
        end
    end)
    local left
    local sleeper = uv.new_work(function() require("luv").sleep(1) end,
        function() left = left - 1 end)
    add("lua_blocking_fanout", "luv-" .. interp, function(n)
        left = n
        for _ = 1, n do sleeper:queue() end
        while left > 0 do uv.run("once") end
    end, function() return tonumber(os.getenv("UV_THREADPOOL_SIZE")) or 4 end)
end

if have_cq then
    local thread = require("cqueues.thread")
    local condition = require("cqueues.condition")
    local cq = cqueues.new()
    local thr, sock = thread.start(function(s)
        while true do
            local line = s:read("*l")
            if not line or line == "q" then break end
            s:write(line, "\n")
            s:flush()
        end
    end)
    sock:setmode("bn", "bn") -- no buffering delay: flush each message
    add("lua_call_await", "cqueues-thread-" .. interp, function(n)
        cq:wrap(function()
            for _ = 1, n do
                sock:write("x\n")
                sock:flush()
                sock:read("*l")
            end
        end)
        assert(cq:loop())
    end)
    add("lua_task_join", "cqueues-" .. interp, function(n)
        cq:wrap(function()
            for _ = 1, n do
                local cv, finished = condition.new(), false
                cq:wrap(function() finished = true cv:signal() end)
                if not finished then cv:wait() end
            end
        end)
        assert(cq:loop())
    end)
    order.cq_close = function()
        sock:write("q\n")
        sock:flush()
        thr:join()
    end
end

-- ---- the run ----
local function median(t)
    table.sort(t)
    local n = #t
    if n % 2 == 1 then return t[(n + 1) / 2] end
    return (t[n / 2] + t[n / 2 + 1]) / 2
end

local function run_bench(bench)
    local list, n = impls[bench], ops[bench]
    local iters = bench == "lua_blocking_fanout" and math.max(3, math.floor(ITERS / 3)) or ITERS
    for it = 1, WARMUP + iters do
        for _, impl in ipairs(list) do
            collectgarbage()
            local t0 = now()
            impl.fn(n)
            local dt = (now() - t0) * 1e9
            if it > WARMUP then impl.samples[#impl.samples + 1] = dt end
        end
    end
    local best_peer
    for _, impl in ipairs(list) do
        local s = impl.samples
        local med = median(s)
        impl.median = med
        print(string.format("bench=%s impl=%s threads=%d iters=%d median_ns=%.0f min_ns=%.0f per_task_ns=%.1f%s",
            bench, impl.name, THREADS, #s, med, s[1], med / n,
            impl.pool and " pool_threads=" .. impl.pool() or ""))
        if not impl.name:match("^moduvex") and not impl.name:match("^coroutine") then
            if not best_peer or med < best_peer.median then best_peer = impl end
        end
    end
    if best_peer then
        print(string.format("ratio bench=%s moduvex/%s=%.2f (target <= 0.70)", bench, best_peer.name,
            list[1].median / best_peer.median))
    end
end

-- MVX_BENCH_ONLY: a comma list of benchmark names (default: all).
local only = os.getenv("MVX_BENCH_ONLY")
local function selected(bench)
    return not only or ("," .. only .. ","):find("," .. bench .. ",", 1, true) ~= nil
end
for _, bench in ipairs({ "lua_call_await", "lua_task_join", "lua_blocking_fanout" }) do
    if selected(bench) then run_bench(bench) end
end
if order.cq_close then order.cq_close() end
rt:close()
