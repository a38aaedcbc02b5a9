-- Fixture: always rejects with a reason.
return {
    name = "reject",
    description = "always rejects",
    check = function (proposal, ctx)
        return false, "not today: " .. tostring(proposal.action)
    end,
}
