-- Hostile fixture: probes each of which must end in an error (or a limit), never in
-- an accept; the test names the verdict and reason it expects for each.
local probes = {
    -- non-determinism that must be refused
    format_p = function () return string.format("%p", {}) end,
    os_time = function () return os.time() end,
    os_clock = function () return os.clock() end,
    -- an error object whose metamethods would run if the host touched it
    error_object = function ()
        error(setmetatable({}, {
            __tostring = function () while true do end end,
            __index = function () while true do end end,
            __concat = function () while true do end end,
        }))
    end,
    error_tostring_loop = function ()
        local e = setmetatable({}, { __tostring = function () while true do end end })
        return tostring(e)
    end,
    -- C loops the count hook cannot see
    backtracking = function ()
        return string.find(string.rep("a", 20000), ".-.-.-.-b$")
    end,
    backtracking_match = function () return ("a"):rep(5000):match("(a*)*b") end,
    backtracking_gsub = function () return ("x"):rep(3000):gsub("x-x-y", "") end,
    backtracking_gmatch = function ()
        for w in ("ab"):rep(2000):gmatch("a.-b.-c") do end
    end,
    backtracking_matches = function () return mesh.matches(("a"):rep(1000), ".-.-.-b") end,
    rep_empty = function () return string.rep("", 1e15) == "" and string.rep("", 1e15, "") end,
    move = function () return table.move({}, 1, 1e15, 2) end,
    insert_len = function ()
        local t = setmetatable({}, { __len = function () return 1e15 end })
        table.insert(t, 1, "x")
    end,
    remove_len = function ()
        local t = setmetatable({}, { __len = function () return 1e15 end })
        table.remove(t, 1)
    end,
    concat_len = function ()
        local t = setmetatable({}, { __index = tostring })
        return table.concat(t, "", 1, 1e15)
    end,
    unpack = function () return table.unpack({}, 1, 1e7) end,
    format_width = function () return string.format("%999999d", 1) end,
    next_big = function ()
        local t = {}
        for i = 1, 5000 do t["k" .. i] = i end
        local k = next(t)
        while k do k = next(t, k) end
    end,
    -- coroutines and friends are absent
    coroutine_wrap = function () return coroutine.wrap(function () end) end,
    close_hijack = function ()
        local guard <close> = setmetatable({}, { __close = function () return true end })
        error("unwinding")
    end,
    gc_late = function ()
        local mt = {}
        local t = setmetatable({}, mt)
        mt.__gc = function () while true do end end   -- refused: the metatable is guarded
        return true
    end,
    regex_backref = function () return mesh.regex("aa", "(a)\\1") end,
    regex_nested = function () return mesh.regex("a", "((a{1,100}){1,100}){1,100}") end,
    schema_typo = function ()
        return mesh.schema({ a = 1 }, { type = "object", properties = { a = { maximun = 3 } } })
    end,
}
return {
    name = "hostile_probes",
    description = "probes that must be stopped",
    check = function (proposal, ctx)
        local result = probes[proposal.probe]()
        if proposal.probe == "gc_late" or proposal.probe == "rep_empty" then
            return result == true or result == "", "finished"
        end
        return true
    end,
}
