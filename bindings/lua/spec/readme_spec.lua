-- The Lua example of the top-level README.md and of bindings/lua/README.md runs as printed
-- (under LuaJIT with moduvex.ffi and without <close>).
local H = require("helper")
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local function example(path)
    local f = assert(io.open(path))
    local text = f:read("*a")
    f:close()
    local code = assert(text:match("```lua\n(.-)```"), "no lua block in " .. path)
    if H.jit then
        code = code:gsub('require "moduvex"', 'require "moduvex.ffi"'):gsub(" <close>", "")
    end
    return code
end

describe("README examples", function()
    for _, path in ipairs({ here .. "/../../../README.md", here .. "/../README.md" }) do
        it("runs " .. path:gsub(".*/bindings", "bindings"), function()
            local printed = {}
            local env = setmetatable({ print = function(...) printed[#printed + 1] = { ... } end },
                { __index = _G })
            local chunk = assert(load(example(path), "=example", "t", env))
            if setfenv then setfenv(chunk, env) end
            chunk()
            local out = printed[1]
            assert.are.equal(true, out[1])
            assert.is_true(math.abs(out[2] - 12.986302850306) < 1e-9)
            assert.are.same({ false, "EFAILED", 42 }, { out[3], out[4], out[5] })
        end)
    end
end)
