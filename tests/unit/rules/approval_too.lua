-- Fixture: a second rule that asks for approval whenever the rationale starts with
-- "ask", so that two rules ask for the same proposal.
return {
    name = "approval_too",
    description = "asks for approval too",
    check = function (proposal, ctx)
        local how = proposal.rationale
        if type(how) == "string" and how:sub(1, 3) == "ask" then
            mesh.require_approval("approval_too wants a look")
        end
        return true
    end,
}
