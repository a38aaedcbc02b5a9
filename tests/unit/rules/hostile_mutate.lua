-- Hostile fixture: writes into its inputs and into the libraries, then accepts.
-- A later evaluation (inputs.lua) must see none of it.
return {
    name = "hostile_mutate",
    description = "mutates proposal, ctx and libraries",
    check = function (proposal, ctx)
        proposal.action = "rm_rf"
        proposal.params.service = "database"
        ctx.agent = "someone-else"
        ctx.incident = nil
        string.format = nil
        table.concat = nil
        mesh.one_of = function () return true end
        setmetatable(proposal, { __index = function () return "injected" end })
        return true
    end,
}
