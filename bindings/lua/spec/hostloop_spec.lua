-- Embedding a set in a host loop through set:pollfd(): luv's uv.new_poll and cqueues.poll(set).
local H = require("helper")
local mvx, lib = H.mvx, H.lib

local have_luv, uv = pcall(require, "luv")
local have_cq, cqueues = pcall(require, "cqueues")

describe("host loops", function()
    local rt, set, add, sleep
    before_each(function()
        rt = H.runtime()
        set = assert(rt:local_set())
        add = rt:func(lib.t_add_i32, "i32(i32,i32)")
        sleep = rt:func(lib.t_sleep_ms, "void(u32)")
    end)
    after_each(function() rt:close() end)

    it("speaks the cqueues polling protocol", function()
        assert.is_number(set:pollfd())
        assert.is_true(set:pollfd() >= 0)
        assert.are.equal("r", set:events())
        assert.is_nil(set:timeout())
        set:spawn(function() end)
        assert.are.equal(0, set:timeout()) -- a ready task: poll without waiting
        set:step()
        assert.is_nil(set:timeout())
    end)

    -- Tasks that await workers and the pool, and, while the host polls, new work started from
    -- outside the set between one step() and the next poll (a spawn, and a worker completing
    -- right after step() returned). Each must come back through the fd.
    local handles
    local function workload(results)
        handles = {}
        for i = 1, 20 do
            handles[i] = set:spawn(function()
                local x = add:spawn(i, 1):await()
                sleep:spawn_blocking(2):await()
                results[#results + 1] = x
            end)
        end
    end
    -- Called after each step(), outside the loop: returns true once everything is done.
    local function after_step(results, state)
        state.steps = state.steps + 1
        if state.steps == 1 then
            -- a task spawned from outside the loop, after step(): only the fd can tell the host
            set:spawn(function()
                local v = add:spawn(100, 0):await()
                results[#results + 1] = v
            end)
        elseif set:pending() == 0 and not state.last then
            -- a C handle awaited by a task, completing while the host sits in poll
            state.last = true
            local h = sleep:spawn_blocking(30)
            set:spawn(function() h:await() results[#results + 1] = -1 end)
        end
        return state.last and set:pending() == 0
    end
    local function check(results)
        for _, h in ipairs(handles) do
            local ok, err = h:join()
            assert.is_true(ok, tostring(err))
        end
        table.sort(results)
        local want = { -1 }
        for i = 1, 20 do want[#want + 1] = i + 1 end
        want[#want + 1] = 100
        assert.are.same(want, results)
    end

    if have_luv then
        it("runs in luv's loop through uv.new_poll(set:pollfd())", function()
            local results, state = {}, { steps = 0 }
            workload(results)
            local poll = uv.new_poll(set:pollfd())
            -- a timer so that the first step runs without a wake
            local kick = uv.new_timer()
            local function step()
                set:step()
                if after_step(results, state) then
                    poll:stop()
                    poll:close()
                end
            end
            kick:start(0, 0, function() kick:close() step() end)
            poll:start("r", function(err) assert(not err, err) step() end)
            uv.run("default")
            check(results)
        end)
    end

    if have_luv then
        it("sleeping tasks wake luv's loop through the fd, no host timer needed", function()
            local woke = {}
            for i = 1, 10 do
                set:spawn(function()
                    local t0 = mvx.now()
                    mvx.sleep(0.002 * i)
                    woke[#woke + 1] = mvx.now() - t0 >= 0.002 * i - 1e-9
                end)
            end
            local poll = uv.new_poll(set:pollfd())
            poll:start("r", function(err)
                assert(not err, err)
                set:step()
                if set:pending() == 0 then poll:close() end
            end)
            set:step() -- every task starts its sleep; from here on only the fd wakes the loop
            assert.is_nil(set:timeout())
            uv.run("default")
            assert.are.equal(10, #woke)
            for i = 1, 10 do assert.is_true(woke[i]) end
        end)
    end

    if have_cq then
        it("runs in cqueues through cqueues.poll(set)", function()
            local results, state = {}, { steps = 0 }
            workload(results)
            local cq = cqueues.new()
            cq:wrap(function()
                repeat
                    set:step()
                    if after_step(results, state) then break end
                    cqueues.poll(set)
                until false
            end)
            local ok, err = cq:loop()
            assert(ok, err)
            check(results)
        end)
    end

    it("has luv and cqueues to test with", function()
        assert.is_true(have_luv, "lua-luv is not installed")
        assert.is_true(have_cq, "lua-cqueues is not installed")
    end)
end)
