-- Shared by every spec: the module under test (moduvex.ffi under LuaJIT, moduvex under Lua 5.4),
-- the C test library and a few helpers.
local H = {}
H.jit = rawget(_G, "jit") ~= nil
H.mvx = H.jit and require("moduvex.ffi") or require("moduvex")
H.lib = assert(H.mvx.open(assert(os.getenv("MVX_LUA_TESTLIB"), "MVX_LUA_TESTLIB unset")))
H.has_close = not H.jit and _VERSION == "Lua 5.4" -- <close> variables, coroutine.close

function H.runtime(opts)
    return assert(H.mvx.runtime(opts or { workers = 2, max_blocking = 64 }))
end

-- A gate in the test library: blocking jobs of gate(rt) wait at it until H.open_gate(rt).
-- Tests that need a job to stay unfinished use it instead of a sleep, so that no outcome
-- depends on timing; after_each opens it before closing the runtime.
function H.gate(rt)
    rt:func(H.lib.t_gate_close, "void()"):spawn():join()
    return rt:func(H.lib.t_gate_wait, "i32()")
end
function H.open_gate(rt)
    rt:func(H.lib.t_gate_open, "void()"):spawn():join()
end

-- Loads Lua 5.4-only source (<close>) without breaking the parse of this file under LuaJIT.
function H.load54(src, env)
    return assert(load(src, "=spec54", "t", setmetatable(env or {}, { __index = _G })))
end

-- The interpreter running the specs, for child processes.
function H.interpreter()
    return H.jit and (os.getenv("LUAJIT") or "luajit") or (os.getenv("LUA54") or "lua5.4")
end
return H
