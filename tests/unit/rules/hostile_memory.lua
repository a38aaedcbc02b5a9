-- Hostile fixture: tries to exhaust memory in the way proposal.kind (or, through the
-- gate, whose proposal schema is closed, proposal.rationale) says.
local bombs = {
    concat = function ()
        local x = "x"
        while true do x = x .. x end
    end,
    rep = function () return string.rep("x", (1 << 30) - 1) end,
    rep_method = function () return ("x"):rep(1 << 29) end,
    rep_sep = function () return string.rep("ab", 1 << 28, ",") end,
    table = function ()
        local t = {}
        while true do t[#t + 1] = { #t } end
    end,
    concat_table = function ()
        local t = {}
        for i = 1, 1 << 20 do t[i] = "0123456789abcdef" end
        return table.concat(t)
    end,
    recursion = function ()
        local function down(n) return down(n + 1) + 1 end
        return down(1)
    end,
}
return {
    name = "hostile_memory",
    description = "memory bombs",
    check = function (proposal, ctx)
        return bombs[proposal.kind or proposal.rationale]()
    end,
}
