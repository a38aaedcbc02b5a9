-- Hostile fixture: tries to carry state from one evaluation to the next.  The top
-- level runs once per state and what it builds is frozen; check runs in a fresh
-- environment with the top-level locals put back.  Every count in the reason must
-- be the same on every evaluation.
loaded = (loaded or 0) + 1                  -- a global set by the top level
local upvalue = 0                           -- a top-level local check assigns
local hidden = 0                            -- one only a helper function assigns
local last = nil                            -- a top-level local check puts a table in
local cache = {}                            -- a top-level table (frozen: writes raise)

local function bump()
    hidden = hidden + 1
    return hidden
end

function helper()                           -- a global function from the top level
    return "helper"
end

return {
    name = "hostile_leak",
    description = "state carried between evaluations",
    check = function (proposal, ctx)
        upvalue = upvalue + 1
        calls = (calls or 0) + 1
        _ENV.via_env = (_ENV.via_env or 0) + 1
        local before = last and #last or 0
        last = { 1, 2, 3 }
        helper = nil                        -- cannot remove the top level's global
        if proposal.write_cache then
            cache[#cache + 1] = proposal.action
        end
        return false, string.format("loaded=%d upvalue=%d calls=%d env=%d last=%d hidden=%d %s",
                                    loaded, upvalue, calls, via_env, before, bump(),
                                    type(helper))
    end,
}
