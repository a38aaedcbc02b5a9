-- Fixture: pcall and xpcall catch errors, never limits.
local probes = {
    caught = function ()
        local ok, err = pcall(error, "boom")
        return not ok and err == "boom"
    end,
    caught_values = function ()
        local ok, a, b = pcall(function (x) return x, 2 end, 1)
        return ok and a == 1 and b == 2
    end,
    xpcall_caught = function ()
        local ok, err = xpcall(function () error("boom", 0) end,
                               function (m) return "handled " .. m end)
        return not ok and err == "handled boom"
    end,
    read_only = function (proposal)
        local ok, err = pcall(function () proposal.x = 1 end)
        return not ok and err:find("^pcall%.lua:%d+: ") ~= nil
    end,
    instructions = function ()
        pcall(function () while true do end end)
        return true
    end,
    loop_around = function ()
        while true do pcall(function () while true do end end) end
    end,
    memory = function ()
        pcall(string.rep, "x", 1 << 30)
        return true
    end,
    memory_table = function ()
        pcall(function () local t = {} for i = 1, 1e9 do t[i] = i end end)
        return true
    end,
    xpcall_limit = function ()
        xpcall(function () while true do end end, function () while true do end end)
        return true
    end,
}

return {
    name = "pcall",
    description = "pcall and xpcall around errors and limits",
    check = function (proposal)
        return probes[proposal.probe](proposal) == true, "probe returned something else"
    end,
}
