-- The rules of the binding: the owner thread, no FFI callbacks, anchors, __gc and state close.
local H = require("helper")
local mvx, lib = H.mvx, H.lib

describe("rules", function()
    local rt, set, add, sleep
    before_each(function()
        rt = H.runtime()
        set = assert(rt:local_set())
        add = rt:func(lib.t_add_i32, "i32(i32,i32)")
        sleep = rt:func(lib.t_sleep_ms, "void(u32)")
    end)
    after_each(function() rt:close() end)

    it("runs every task's Lua code on the owner thread while workers complete its awaits", function()
        local me, seen = mvx.thread_id(), {}
        for i = 1, 50 do
            set:spawn(function()
                seen[#seen + 1] = mvx.thread_id()
                add:spawn(i, i):await()
                seen[#seen + 1] = mvx.thread_id()
                sleep:spawn_blocking(1):await()
                seen[#seen + 1] = mvx.thread_id()
            end)
        end
        set:run()
        assert.are.equal(150, #seen)
        for _, id in ipairs(seen) do assert.are.equal(me, id) end
        -- the C tasks did run elsewhere
        local where = rt:func(lib.t_id_ptr, "ptr(ptr)") -- any call: worker thread
        assert.is_true((where:spawn(nil):join()))
    end)

    if H.jit then
        it("makes no FFI callback: no Lua function ever reaches C", function()
            local real = require("ffi")
            local seen, calls, raw = {}, 0, setmetatable({}, { __mode = "k" })
            local function check(where, ...)
                for i = 1, select("#", ...) do
                    local v = select(i, ...)
                    if type(v) == "function" and not raw[v] then seen[#seen + 1] = where end
                end
            end
            local function wrap_ns(ns)
                return setmetatable({}, { __index = function(_, k)
                    local f = ns[k]
                    if type(f) ~= "cdata" then return f end
                    local w = function(...)
                        calls = calls + 1
                        check(k, ...)
                        return f(...)
                    end
                    raw[w] = f
                    return w
                end })
            end
            local proxy = setmetatable({
                cast = function(ct, v)
                    if raw[v] then v = raw[v] end
                    check("ffi.cast", v)
                    return real.cast(ct, v)
                end,
                new = function(ct, ...) check("ffi.new", ...) return real.new(ct, ...) end,
                load = function(...) return wrap_ns(real.load(...)) end,
                C = wrap_ns(real.C),
            }, { __index = real })
            local saved_ffi, saved_mod = package.loaded.ffi, package.loaded["moduvex.ffi"]
            package.loaded.ffi, package.loaded["moduvex.ffi"] = proxy, nil
            local ok, m = pcall(require, "moduvex.ffi")
            package.loaded.ffi, package.loaded["moduvex.ffi"] = saved_ffi, saved_mod
            assert(ok, m)
            -- a workload through the instrumented module: calls, sets, awaits, cancels
            local r = assert(m.runtime({ workers = 2 }))
            local l = assert(m.open(os.getenv("MVX_LUA_TESTLIB")))
            local s = r:local_set()
            local a = r:func(l.t_add_i32, "i32(i32,i32)")
            local slow = r:func(l.t_slow_len, "size(ptr,u32)")
            r:func(l.t_gate_close, "void()"):spawn():join()
            local gated = r:func(l.t_gate_wait, "i32()")
            local victim = s:spawn(function() gated:spawn_blocking():await() end)
            local h = s:spawn(function()
                local x = a:spawn(1, 2):await()
                local y = s:spawn(function() return slow:spawn_blocking("four", 1):await() end):await()
                victim:abort()
                return x + y
            end)
            assert.are.same({ true, 7 }, { s:run_until(h) })
            assert.are.equal("ECANCELLED", select(2, s:run_until(victim)).name)
            r:func(l.t_gate_open, "void()"):spawn():join()
            r:close()
            assert.is_true(calls > 20) -- the proxy really saw the module's C calls
            assert.are.same({}, seen)
        end)
    end

    it("anchors coroutines until their task finishes", function()
        local done = 0
        for _ = 1, 20 do
            set:spawn(function()
                local t = setmetatable({}, { __mode = "v" })
                add:spawn(1, 1):await()
                done = done + 1
                return t
            end) -- the handles are dropped at once
        end
        collectgarbage()
        collectgarbage()
        set:run()
        assert.are.equal(20, done)
    end)

    it("__gc never blocks: a runtime, a set and handles collected with a job stuck", function()
        local gate_wait = rt:func(lib.t_gate_wait, "i32()")
        rt:func(lib.t_gate_close, "void()"):spawn():join()
        do
            local r = H.runtime({ workers = 1, max_blocking = 2 })
            local s = r:local_set()
            local stuck = r:func(lib.t_gate_wait, "i32()"):spawn_blocking()
            s:spawn(function() return stuck:await() end)
            s:step()
        end
        collectgarbage() -- would hang here if a finalizer waited for the stuck job
        collectgarbage()
        rt:func(lib.t_gate_open, "void()"):spawn():join()
        assert.are.same({ true, 7 }, { gate_wait:spawn_blocking():join() })
    end)

    it("closing the Lua state with tasks pending is safe", function()
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write([[
            local mvx = rawget(_G, "jit") and require("moduvex.ffi") or require("moduvex")
            local lib = assert(mvx.open(os.getenv("MVX_LUA_TESTLIB")))
            local rt = assert(mvx.runtime({ workers = 2, max_blocking = 8 }))
            local set = rt:local_set()
            rt:func(lib.t_gate_close, "void()"):spawn():join()
            local gate = rt:func(lib.t_gate_wait, "i32()")
            local len = rt:func(lib.t_slow_len, "size(ptr,u32)")
            for i = 1, 10 do
                set:spawn(function()
                    gate:spawn_blocking():await()
                end)
                set:spawn(function() len:spawn_blocking(string.rep("z", 100 * i), 20):await() end)
            end
            local other = set:spawn(function() return 1 end)
            set:step()
            io.write("end\n")
        ]])
        f:close()
        local p = io.popen(H.interpreter() .. " " .. script .. " 2>&1; echo \"exit=$?\"")
        local out = p:read("*a")
        p:close()
        os.remove(script)
        assert.are.equal("end\nexit=0\n", out)
    end)

    it("exiting with a runtime still shutting down never unloads the library under its threads", function()
        -- lua_close() collects the runtime (a shutdown that does not wait) and then unloads the
        -- modules: libmoduvex must stay mapped while its threads exit. A race: run it often.
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write([[
            local mvx = rawget(_G, "jit") and require("moduvex.ffi") or require("moduvex")
            local rt = assert(mvx.runtime({ workers = 2 }))
            local set = rt:local_set()
            set:spawn(function() end)
        ]])
        f:close()
        local p = io.popen("i=0; while [ $i -lt 40 ]; do " .. H.interpreter() .. " " .. script ..
            " || echo \"exit=$?\"; i=$((i + 1)); done 2>&1; echo end")
        local out = p:read("*a")
        p:close()
        os.remove(script)
        assert.are.equal("end\n", out)
    end)

    it("a failing task never exits the process, whatever it raises", function()
        local values = { "text", 42, { t = true }, false }
        local hs = {}
        for i, v in ipairs(values) do hs[i] = set:spawn(function() error(v, 0) end) end
        hs[#hs + 1] = set:spawn(function() error() end) -- nil
        set:run()
        for i, v in ipairs(values) do
            local ok, err = hs[i]:join()
            assert.is_false(ok)
            assert.are.equal(v, err.value)
        end
        assert.is_false((hs[#hs]:join()))
    end)
end)
