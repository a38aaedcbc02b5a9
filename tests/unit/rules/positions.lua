-- Fixture: errors raised from C name the file and line of the rule code.
local function deep (n) return deep(n + 1) + 1 end
local probes = {
    read_only = function (p) p.x = 1 end,                               -- line 4
    bad_argument = function () return ("x"):rep({}) end,                 -- line 5
    stack = function () return deep(1) end,                             -- line 6 (2)
    c_stack = function ()                                               -- line 7
        local t = setmetatable({}, {__index = function (t, k) return t[k] end})
        return t.x                                                      -- line 9
    end,
    level0 = function () error("no position", 0) end,                   -- line 11
    library = function () return string.format("%d", "x") end,          -- line 12
}
return {
    name = "positions",
    description = "errors raised from C",
    check = function (proposal) return probes[proposal.probe](proposal) end,
}
