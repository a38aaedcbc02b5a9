-- Hostile fixture: tries to carry state from one evaluation to the next through a
-- global set by the top level, a top-level local captured by check (an upvalue), a
-- global set by check, and a table kept in a local of the chunk.  The reason reports
-- what this evaluation found: every count must be 1, every evaluation.
loaded = (loaded or 0) + 1
local upvalue = 0
local cache = {}
return {
    name = "hostile_leak",
    description = "state carried between evaluations",
    check = function (proposal, ctx)
        upvalue = upvalue + 1
        calls = (calls or 0) + 1
        cache[#cache + 1] = proposal.action
        _ENV.via_env = (_ENV.via_env or 0) + 1
        return false, string.format("loaded=%d upvalue=%d calls=%d cache=%d env=%d", loaded,
                                    upvalue, calls, #cache, via_env)
    end,
}
