-- Coroutine tasks of a local set: await of every kind of handle, errors, cancellation, driving.
local H = require("helper")
local mvx, lib = H.mvx, H.lib

describe("local sets", function()
    local rt, set, add, sleep, gate
    before_each(function()
        rt = H.runtime()
        set = assert(rt:local_set())
        add = rt:func(lib.t_add_i32, "i32(i32,i32)")
        sleep = rt:func(lib.t_sleep_ms, "void(u32)")
        gate = H.gate(rt)
    end)
    after_each(function()
        H.open_gate(rt)
        rt:close()
    end)

    it("runs a coroutine task with arguments and returns its results", function()
        local h = set:spawn(function(a, b, c) return a + b, c, nil end, 1, 2, "x")
        assert.are.same({ true, 3, "x", nil }, { set:run_until(h) })
        assert.are.same({ true, 3, "x" }, { h:join() })
        assert.is_true(h:finished())
    end)
    it("awaits worker, blocking, call and local handles", function()
        local h = set:spawn(function()
            local a = add:spawn(1, 2):await()
            sleep:spawn_blocking(5):await()
            local inner = set:spawn(function() return a * 10 end)
            local b = inner:await()
            local ok, c = add:spawn(b, 1):join()
            return a, b, ok, c
        end)
        assert.are.same({ true, 3, 30, true, 31 }, { set:run_until(h) })
    end)
    it("awaits inside pcall, iterators and nested functions", function()
        local function results(hs)
            local i = 0
            return function()
                i = i + 1
                if hs[i] then return i, hs[i]:await() end
            end
        end
        local h = set:spawn(function()
            local ok, v = pcall(function() return add:spawn(4, 4):await() end)
            local sum = 0
            for _, x in results({ add:spawn(1, 0), add:spawn(2, 0), add:spawn(3, 0) }) do
                sum = sum + x
            end
            local function deep(n) if n == 0 then return add:spawn(7, 0):await() end return deep(n - 1) end
            local okerr, err = pcall(function() return sleep:spawn_blocking(1):await() + nil end)
            return ok, v, sum, deep(5), okerr, type(err)
        end)
        assert.are.same({ true, true, 8, 6, 7, false, "string" }, { set:run_until(h) })
    end)
    it("a failing task reports its error value and the process keeps running", function()
        local value = { reason = "because" }
        local h1 = set:spawn(function() error(value) end)
        local h2 = set:spawn(function() local x = nil; return x.field end)
        local ok, err = set:run_until(h1)
        assert.is_false(ok)
        assert.are.equal("EFAILED", err.name)
        assert.are.equal(value, err.value)
        assert.is_string(err.message)
        local ok2, err2 = h2:join()
        assert.is_false(ok2)
        assert.matches("index", err2.message)
        assert.has_error(function() h1:await() end)
        -- awaiting a failed task raises its error in the awaiting task, catchable there
        local h3 = set:spawn(function()
            local ok3, e3 = pcall(h1.await, h1)
            return ok3, e3.value
        end)
        assert.are.same({ true, false, value }, { set:run_until(h3) })
    end)
    it("refuses a task's own coroutine.yield with a clear error", function()
        local h = set:spawn(function() coroutine.yield("mine") return 1 end)
        local ok, err = set:run_until(h)
        assert.is_false(ok)
        assert.matches("coroutine.yield", err.message)
        -- coroutines of the task's own still work
        local h2 = set:spawn(function()
            local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
            return gen() + gen() + gen()
        end)
        assert.are.same({ true, 6 }, { set:run_until(h2) })
    end)
    it("join inside a task yields: other tasks run meanwhile", function()
        -- slow waits for a job that only fast lets finish: were join to block the thread,
        -- fast would never run
        local order = {}
        local slow = set:spawn(function()
            gate:spawn_blocking():join()
            order[#order + 1] = "slow"
        end)
        local fast = set:spawn(function()
            for i = 1, 3 do add:spawn(i, 0):await() end
            order[#order + 1] = "fast"
            rt:func(lib.t_gate_open, "void()"):spawn():await()
        end)
        set:run()
        assert.are.same({ "fast", "slow" }, order)
        assert.is_true(slow:finished() and fast:finished())
    end)
    it("join outside any task: EDEADLK for a task only this thread runs", function()
        local h = set:spawn(function() return 1 end)
        local ok, err = h:join()
        assert.is_false(ok)
        assert.are.equal("EDEADLK", err.name)
        assert.are.equal(0, select("#", h:try()))
        set:run()
        assert.are.same({ true, 1 }, { h:join() })
    end)
    it("join with a timeout inside a task", function()
        local h = set:spawn(function()
            local j = gate:spawn_blocking()
            local ok, err = j:join(0.01)
            rt:func(lib.t_gate_open, "void()"):spawn():await()
            return ok, err.name, (j:join())
        end)
        assert.are.same({ true, false, "ETIMEDOUT", true }, { set:run_until(h) })
    end)
    it("run_until with a timeout returns ETIMEDOUT and the task continues", function()
        local h = set:spawn(function() return gate:spawn_blocking():await() end)
        local ok, err = set:run_until(h, 0.01)
        assert.is_false(ok)
        assert.are.equal("ETIMEDOUT", err.name)
        H.open_gate(rt)
        assert.are.same({ true, 7 }, { set:run_until(h) })
        -- a C handle as the target
        local c = sleep:spawn_blocking(20)
        assert.is_true((set:run_until(c)))
    end)
    it("step returns the polls it ran", function()
        assert.are.equal(0, set:step())
        set:spawn(function() end)
        set:spawn(function() end)
        assert.are.equal(2, set:step())
        local h = set:spawn(function() gate:spawn_blocking():await() end)
        assert.are.equal(1, set:step()) -- now waiting for the pool
        H.open_gate(rt)
        local polls = 0
        while not h:finished() do polls = polls + set:step(1) end
        assert.are.equal(1, polls)
        assert.are.equal(0, set:pending())
    end)
    it("driving a set from inside a task raises", function()
        local h = set:spawn(function() return pcall(set.step, set) end)
        local ok, pok, perr = set:run_until(h)
        assert.is_true(ok)
        assert.is_false(pok)
        assert.matches("inside a task", perr)
    end)
    it("a C task joins a coroutine task", function()
        local release
        local co = set:spawn(function()
            add:spawn(1, 1):await()
            release = true
            return "done"
        end)
        local joiner = rt:func(lib.t_join, "i32(ptr,u32)"):spawn_blocking(co:pointer(), 5000)
        set:run()
        assert.is_true(release)
        assert.are.same({ true, 0 }, { joiner:join() }) -- mvx_join_wait's 0: completed
    end)
    it("abort from Lua cancels a waiting coroutine task", function()
        local reached = false
        local h = set:spawn(function()
            gate:spawn_blocking():await()
            reached = true
        end)
        set:step()
        h:abort()
        local ok, err = set:run_until(h)
        assert.is_false(ok)
        assert.are.equal("ECANCELLED", err.name)
        assert.is_false(reached)
    end)
    it("abort from a C task cancels a coroutine task", function()
        local h = set:spawn(function() gate:spawn_blocking():await() return "not reached" end)
        set:step()
        local aborter = rt:func(lib.t_abort, "i32(ptr)"):spawn(h:pointer())
        local ok, err = set:run_until(h)
        assert.is_false(ok)
        assert.are.equal("ECANCELLED", err.name)
        assert.is_true((aborter:join()))
    end)
    if H.has_close then
        it("cancelling closes the task's pending <close> variables on the owner thread", function()
            local log = {}
            local body = H.load54([[
                local log, gate, mvx = ...
                return function()
                    local guard <close> = setmetatable({}, { __close = function()
                        log[#log + 1] = mvx.thread_id()
                    end })
                    gate:spawn_blocking():await()
                end
            ]])(log, gate, mvx)
            local h = set:spawn(body)
            set:step()
            rt:func(lib.t_abort, "i32(ptr)"):spawn(h:pointer()) -- aborted on a worker
            local ok, err = set:run_until(h)
            assert.is_false(ok)
            assert.are.equal("ECANCELLED", err.name)
            assert.are.same({ mvx.thread_id() }, log)
        end)
        it("<close> on a coroutine task's handle cancels it", function()
            local h = H.load54([[
                local set, gate = ...
                local h <close> = set:spawn(function() gate:spawn_blocking():await() end)
                set:step()
                return h
            ]])(set, gate)
            local ok, err = set:run_until(h)
            assert.is_false(ok)
            assert.are.equal("ECANCELLED", err.name)
        end)
    end
    it("many tasks await the same handle", function()
        local j = sleep:spawn_blocking(20)
        local hs = {}
        for i = 1, 10 do hs[i] = set:spawn(function() j:await() return i end) end
        set:run()
        for i = 1, 10 do assert.are.same({ true, i }, { hs[i]:join() }) end
    end)
    it("raises on bad arguments", function()
        assert.has_error(function() set:spawn(42) end)
        assert.has_error(function() set:run_until(42) end)
        assert.has_error(function() set:run_until(set:spawn(function() end), "soon") end)
    end)
end)
