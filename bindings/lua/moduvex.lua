-- moduvex for Lua 5.4: the API (moduvex/api.lua) over the C module moduvex.core.
return require("moduvex.api")(require("moduvex.core"))
