-- action_allowlist: per-action policy beyond the schema declared in the config.
--
-- The built-in check has already made sure the proposal names one of the agent's
-- declared actions with well-typed parameters.  This rule says which of those this
-- site lets a model choose at all, and adds the limits a schema cannot express:
--
--   * only the actions in ALLOWED, whatever else the config declares;
--   * scale_out may add at most MAX_REPLICAS replicas, unless the detector is
--     nearly certain (incident score >= OVERRIDE_SCORE);
--   * restart_service never touches a PROTECTED service.
--
-- Edit the tables below to change the policy; the logic need not change.

local ALLOWED = { "scale_out", "escalate", "restart_service", "note" }
local PROTECTED = { "database", "meshd" }
local MAX_REPLICAS = 5
local OVERRIDE_SCORE = 0.999

return {
    name = "action_allowlist",
    description = "only allow-listed actions; bounded scale_out; no restart of protected services",

    check = function (proposal, ctx)
        local action = proposal.action
        if not mesh.one_of(action, ALLOWED) then
            return false, string.format("action %q is not in this site's allow-list (%s)",
                                        tostring(action), table.concat(ALLOWED, ", "))
        end
        local params = proposal.params or {}

        if action == "scale_out" then
            local replicas = params.replicas
            if math.type(replicas) ~= "integer" then
                return false, "scale_out needs an integer replicas"
            end
            local score = ctx and ctx.incident and ctx.incident.score
            local certain = type(score) == "number" and score >= OVERRIDE_SCORE
            if replicas > MAX_REPLICAS and not certain then
                return false, string.format(
                    "scale_out to %d replicas exceeds %d; allowed only when the incident "
                    .. "score is at least %g (it is %s)",
                    replicas, MAX_REPLICAS, OVERRIDE_SCORE, tostring(score))
            end
        elseif action == "restart_service" then
            if mesh.one_of(params.service, PROTECTED) then
                return false, string.format("service %q is protected from restart_service",
                                            params.service)
            end
        end
        return true
    end,
}
