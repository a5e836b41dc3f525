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

-- Loads Lua 5.4-only source (<close>) without breaking the parse of this file under LuaJIT.
function H.load54(src, env)
    return assert(load(src, "=spec54", "t", setmetatable(env or {}, { __index = _G })))
end

-- The interpreter running the specs, for child processes.
function H.interpreter()
    return H.jit and (os.getenv("LUAJIT") or "luajit") or (os.getenv("LUA54") or "lua5.4")
end
return H
