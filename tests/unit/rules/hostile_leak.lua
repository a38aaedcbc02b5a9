-- Hostile fixture: tries to keep state from one evaluation to the next through
-- globals, the string table and the string metatable's methods.
loaded = (loaded or 0) + 1
return {
    name = "hostile_leak",
    description = "state carried between evaluations",
    check = function (proposal, ctx)
        calls = (calls or 0) + 1
        local seen = string.remembered or "nothing"
        string.remembered = "evaluation " .. calls
        string.upper = function () return "poisoned" end
        return false, string.format("loaded=%d calls=%d seen=%s upper=%s", loaded, calls,
                                    seen, ("x"):upper())
    end,
}
