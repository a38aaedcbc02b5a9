-- Fixture for the gate: what ctx.action and proposal.params look like to a rule.
return {
    name = "ctx_action",
    description = "ctx.action is the declared spec of the proposed action",
    check = function (proposal, ctx)
        if type(proposal.params) ~= "table" then
            return false, "params missing"
        end
        local action = ctx.action
        if type(action) ~= "table" or action.name ~= proposal.action then
            return false, "ctx.action does not name the proposed action"
        end
        if action.name == "scale_out" then
            local replicas = action.params.replicas
            if replicas.type ~= "integer" or replicas.max ~= 20
               or math.type(replicas.min) ~= "integer" then
                return false, "scale_out spec not as declared"
            end
            if action.params.service.pattern ~= "[a-z][a-z0-9-]*" then
                return false, "service pattern not as declared"
            end
        end
        return true
    end,
}
