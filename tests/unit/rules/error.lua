-- Fixture: raises on every evaluation.
return {
    name = "error",
    description = "always raises",
    check = function (proposal, ctx)
        error("rule bug")
    end,
}
