-- Fixture: always accepts; evaluated after every hostile rule to show the sandbox
-- still works.
return {
    name = "accept",
    description = "always accepts",
    check = function (proposal, ctx)
        return true
    end,
}
