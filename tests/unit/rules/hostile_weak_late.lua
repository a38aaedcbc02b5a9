-- Hostile fixture: makes a table weak after setmetatable, so that whether its value
-- survives depends on the collector.  The guard refuses the late __mode.
return {
    name = "hostile_weak_late",
    description = "__mode set on a metatable already in use",
    check = function (proposal)
        local mt = {}
        local cache = setmetatable({}, mt)
        mt.__mode = "v"
        cache[1] = {}
        for i = 1, 20000 do local _ = { i } end       -- enough garbage for a cycle
        if cache[1] == nil then return false, "collected" end
        return true
    end,
}
