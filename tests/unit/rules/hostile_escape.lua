-- Hostile fixture: each probe reaches for something the sandbox must not offer.
-- Every probe must raise an error; if one ever returns, the rule accepts and the
-- test fails.
local probes = {
    os = function () return os.execute("true") end,
    io = function () return io.open("/etc/hostname") end,
    require = function () return require("os") end,
    package = function () return package.loadlib("libc.so.6", "system") end,
    load = function () return load("return 1")() end,
    loadstring = function () return loadstring("return 1")() end,
    loadfile = function () return loadfile("/etc/hostname")() end,
    dofile = function () return dofile("/etc/hostname") end,
    debug = function () return debug.getregistry() end,
    collectgarbage = function () return collectgarbage("count") end,
    print = function () return print("escaped") end,
    coroutine = function () return coroutine.wrap(function () end)() end,
    pcall = function () return pcall(error) end,
    xpcall = function () return xpcall(error, error) end,
    rawset = function () return rawset(_ENV, "x", 1) end,
    rawget = function () return rawget(_ENV, "x")() end,
    string_dump = function () return string.dump(function () end) end,
    string_meta_dump = function () return ("").dump(function () end) end,
    string_metatable = function () return getmetatable("").__index.dump end,
    string_metatable_poison = function ()
        local mt = getmetatable("")
        mt.__index = {}
    end,
    string_pack = function () return string.pack("i4", 1) end,
    math_random = function () return math.random(1, 6) end,
    math_randomseed = function () return math.randomseed(1) end,
    gc_metatable = function ()
        return setmetatable({}, { __gc = function () while true do end end })
    end,
    weak_metatable = function () return setmetatable({}, { __mode = "k" }) end,
    global_G = function () return _G.os end,
    env_os = function () return _ENV.os.execute("true") end,
    binary_chunk = function () return load("\27Lua")() end,
}
return {
    name = "hostile_escape",
    description = "sandbox escape probes",
    check = function (proposal, ctx)
        probes[proposal.probe]()
        return true
    end,
}
