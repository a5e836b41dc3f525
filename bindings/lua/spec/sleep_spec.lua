-- mvx.sleep: inside a coroutine task it awaits a sleep task (mvx_spawn_sleep) through the set's
-- notifier; outside any task it blocks the thread. Never early, cancelled with its task.
local H = require("helper")
local mvx, lib = H.mvx, H.lib

-- mvx.now() is seconds as a double; allow one nanosecond of rounding in "never early".
local EPS = 1e-9

describe("mvx.sleep", function()
    local rt, set
    before_each(function()
        rt = H.runtime()
        set = assert(rt:local_set())
    end)
    after_each(function() rt:close() end)

    it("is never early outside a task (it blocks the thread)", function()
        math.randomseed(12)
        for _ = 1, 20 do
            local d = math.random() * 0.003
            local t0 = mvx.now()
            assert.is_nil(mvx.sleep(d))
            assert.is_true(mvx.now() - t0 >= d - EPS)
        end
    end)

    it("is never early inside tasks, many at once, with random deadlines", function()
        math.randomseed(34)
        local early, done = {}, 0
        for i = 1, 200 do
            set:spawn(function()
                for _ = 1, 3 do
                    local d = math.random() * 0.02
                    local t0 = mvx.now()
                    mvx.sleep(d)
                    local slept = mvx.now() - t0
                    if slept < d - EPS then early[#early + 1] = { i, d, slept } end
                end
                done = done + 1
            end)
        end
        set:run()
        assert.are.equal(200, done)
        assert.are.same({}, early)
    end)

    it("wakes concurrent sleepers in deadline order", function()
        -- Deadlines 4 ms apart, taken in random order; the set wakes its due sleepers in
        -- deadline order whatever the machine's timing (a late worker firing timers together
        -- included). Absolute deadlines, so that when each task starts does not matter.
        local rt1 = H.runtime()
        local set1 = rt1:local_set()
        local n = 25
        local slots = {}
        for i = 1, n do slots[i] = i end
        math.randomseed(56)
        for i = n, 2, -1 do
            local j = math.random(i)
            slots[i], slots[j] = slots[j], slots[i]
        end
        local order = {}
        local base = mvx.now() + 0.05
        for i = 1, n do
            set1:spawn(function()
                mvx.sleep(math.max(0, base + slots[i] * 0.004 - mvx.now()))
                order[#order + 1] = slots[i]
            end)
        end
        set1:run()
        rt1:close()
        local expected = {}
        for i = 1, n do expected[i] = i end
        assert.are.same(expected, order)
    end)

    it("sleepers with the same deadline wake in the order they fell asleep", function()
        local order = {}
        local h0 = set:spawn(function()
            local hs = {}
            for i = 1, 10 do
                -- spawned from here, they start one after the other in this step
                hs[i] = set:spawn(function() mvx.sleep(0.003) order[#order + 1] = i end)
            end
            for i = 1, 10 do hs[i]:await() end
        end)
        set:run_until(h0)
        assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, order)
    end)

    it("returns in a task after the deadline, also inside pcall and nested functions", function()
        local h = set:spawn(function(d)
            local t0 = mvx.now()
            local ok = pcall(function() mvx.sleep(d) end)
            local function deep(k) if k == 0 then return mvx.sleep(d) end return deep(k - 1) end
            deep(3)
            return ok, mvx.now() - t0 >= 2 * d - EPS
        end, 0.005)
        assert.are.same({ true, true, true }, { set:run_until(h) })
    end)

    it("sleep(0) in a task lets the set's other ready tasks run first", function()
        local log = {}
        set:spawn(function()
            log[#log + 1] = "a1"
            mvx.sleep(0)
            log[#log + 1] = "a2"
        end)
        set:spawn(function() log[#log + 1] = "b" end)
        set:run()
        assert.are.same({ "a1", "b", "a2" }, log)
    end)

    it("other tasks run while one sleeps", function()
        local add = rt:func(lib.t_add_i32, "i32(i32,i32)")
        local log = {}
        local sleeper = set:spawn(function()
            mvx.sleep(100)
            log[#log + 1] = "not reached"
        end)
        set:spawn(function()
            for i = 1, 5 do log[#log + 1] = add:spawn(i, 0):await() end
            sleeper:abort() -- it is still asleep
        end)
        set:run()
        assert.are.same({ 1, 2, 3, 4, 5 }, log)
        assert.are.equal("ECANCELLED", select(2, sleeper:join()).name)
    end)

    it("set:run_until(h, secs) with a sleeping task times out cleanly", function()
        local h = set:spawn(function()
            mvx.sleep(0.2)
            return "woke"
        end)
        local ok, err = set:run_until(h, 0.001)
        assert.is_false(ok)
        assert.are.equal("ETIMEDOUT", err.name)
        assert.is_false(h:finished())
        assert.are.same({ true, "woke" }, { set:run_until(h) })
    end)

    it("aborting a sleeping task cancels it", function()
        local reached = false
        local h = set:spawn(function()
            mvx.sleep(100)
            reached = true
        end)
        set:step()
        h:abort()
        local ok, err = set:run_until(h) -- would wait 100 s if the sleep were not cancelled
        assert.is_false(ok)
        assert.are.equal("ECANCELLED", err.name)
        assert.is_false(reached)
        assert.are.equal(0, set:pending())
    end)

    it("a C task's abort cancels a sleeping task", function()
        local h = set:spawn(function() mvx.sleep(100) return "not reached" end)
        set:step()
        local aborter = rt:func(lib.t_abort, "i32(ptr)"):spawn(h:pointer())
        local ok, err = set:run_until(h)
        assert.is_false(ok)
        assert.are.equal("ECANCELLED", err.name)
        assert.is_true((aborter:join()))
    end)

    if H.has_close then
        it("aborting a sleeping task closes its <close> variables on the owner thread", function()
            local log = {}
            local body = H.load54([[
                local log, mvx = ...
                return function()
                    local guard <close> = setmetatable({}, { __close = function()
                        log[#log + 1] = mvx.thread_id()
                    end })
                    mvx.sleep(100)
                    log[#log + 1] = "not reached"
                end
            ]])(log, mvx)
            local h = set:spawn(body)
            set:step()
            rt:func(lib.t_abort, "i32(ptr)"):spawn(h:pointer()) -- aborted on a worker
            local ok, err = set:run_until(h)
            assert.is_false(ok)
            assert.are.equal("ECANCELLED", err.name)
            assert.are.same({ mvx.thread_id() }, log)
        end)
    end

    it("a sleep across rt:close() is cancelled, not left pending", function()
        local rt2 = H.runtime()
        local set2 = rt2:local_set()
        local h = set2:spawn(function() mvx.sleep(100) return "not reached" end)
        local other = set2:spawn(function() mvx.sleep(100) end)
        set2:step()
        rt2:close()
        local ok, err = set2:run_until(h) -- would wait 100 s if the sleep outlived the runtime
        assert.is_false(ok)
        assert.are.equal("ECANCELLED", err.name)
        set2:run()
        assert.are.equal("ECANCELLED", select(2, other:join()).name)
        assert.are.equal(0, set2:pending())
    end)

    it("raises on bad arguments, inside and outside a task", function()
        for _, bad in ipairs({ -1, -1e-9, 0 / 0, "1", {}, true }) do
            assert.has_error(function() mvx.sleep(bad) end)
        end
        assert.has_error(function() mvx.sleep() end)
        local h = set:spawn(function()
            local results = {}
            for _, bad in ipairs({ -1, 0 / 0, "0.1", false }) do
                local ok, err = pcall(mvx.sleep, bad)
                results[#results + 1] = not ok and type(err) == "string" and
                    err:find("seconds must be a number", 1, true) ~= nil
            end
            return (table.unpack or unpack)(results)
        end)
        assert.are.same({ true, true, true, true, true }, { set:run_until(h) })
    end)

    it("inside a coroutine of the task's own it blocks, as await does", function()
        local h = set:spawn(function()
            local t0 = mvx.now()
            coroutine.wrap(function() mvx.sleep(0.002) end)()
            return mvx.now() - t0 >= 0.002 - EPS
        end)
        assert.are.same({ true, true }, { set:run_until(h) })
    end)
end)
