-- Hostile fixture: builds its reason from everything Lua would let vary between two
-- runs on the same inputs: pairs and next order over a table of many string keys
-- (Debian's Lua seeds string hashing per state), tostring of a table and a function
-- (addresses), string.format with %s of them, and table.sort of equal elements.
return {
    name = "hostile_determinism",
    description = "non-determinism probes",
    check = function (proposal, ctx)
        local t = {}
        for i = 1, 40 do t["key" .. i] = i end
        t[3] = "three"
        t[1.5] = "one and a half"
        local order = {}
        for k in pairs(t) do order[#order + 1] = tostring(k) end
        local first = next(t)
        local records = {}
        for i = 1, 120 do records[i] = { group = i % 3, id = i } end
        table.sort(records, function (a, b) return a.group < b.group end)
        local ids = {}
        for i = 1, 12 do ids[i] = records[i].id end
        local what = string.format("%s %s %s", tostring({}), tostring(print or tostring),
                                   string.format("%s", {}))
        return false, table.concat(order, ",") .. " | " .. tostring(first) .. " | "
                      .. table.concat(ids, ",") .. " | " .. what .. " | "
                      .. tostring(mesh.null)
    end,
}
