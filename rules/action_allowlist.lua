-- action_allowlist: which actions a model may propose on this site, and the exact
-- shape of each one's parameters.
--
-- The config declares what an agent can do and checks the basic types (the gate's
-- builtin check).  This rule is the site's policy on top: only the actions in
-- ACTIONS, each with a parameter schema (mesh.schema, a JSON-Schema subset) that may
-- be stricter than the config, plus the limits a schema cannot express:
--
--   * scale_out may add at most MAX_REPLICAS replicas, unless the detector is nearly
--     certain (ctx.incident.score >= OVERRIDE_SCORE);
--   * restart_service never touches a PROTECTED service.
--
-- To change the policy, edit the tables; the logic need not change.

local MAX_REPLICAS = 5
local OVERRIDE_SCORE = 0.999
local PROTECTED = { "database", "meshd" }

local SERVICE = { type = "string", pattern = "^[a-z][a-z0-9-]*$", maxLength = 63 }

local ACTIONS = {
    scale_out = {
        type = "object", required = { "service", "replicas" }, additionalProperties = false,
        properties = { service = SERVICE, replicas = { type = "integer", minimum = 1 } },
    },
    escalate = {
        type = "object", additionalProperties = false,
        properties = { summary = { type = "string", maxLength = 500 } },
    },
    restart_service = {
        type = "object", required = { "service" }, additionalProperties = false,
        properties = { service = SERVICE },
    },
    note = {
        type = "object", required = { "text" }, additionalProperties = false,
        properties = { text = { type = "string", minLength = 1, maxLength = 200 } },
    },
    note_host = {
        type = "object", required = { "host", "reason" }, additionalProperties = false,
        properties = {
            host = { type = "string", pattern = "^[a-z0-9][a-z0-9-]*$", maxLength = 63 },
            reason = { type = "string", pattern = "^[a-z0-9_-]+$", maxLength = 64 },
        },
    },
}

return {
    name = "action_allowlist",
    description = "only allow-listed actions with well-formed parameters; bounded scale_out; "
                  .. "no restart of protected services",

    check = function (proposal, ctx)
        local action = proposal.action
        local schema = ACTIONS[action]
        if not schema then
            return false, string.format("action %q is not in this site's allow-list (%s)",
                                        tostring(action),
                                        table.concat(mesh.sorted_keys(ACTIONS), ", "))
        end
        local ok, why = mesh.schema(proposal.params, schema, "params")
        if not ok then
            return false, action .. ": " .. why
        end
        local params = proposal.params

        if action == "scale_out" and params.replicas > MAX_REPLICAS then
            local score = ctx.incident and ctx.incident.score
            if not (type(score) == "number" and score >= OVERRIDE_SCORE) then
                return false, string.format(
                    "scale_out to %d replicas exceeds %d; allowed only when the incident "
                    .. "score is at least %g (it is %s)",
                    params.replicas, MAX_REPLICAS, OVERRIDE_SCORE, tostring(score))
            end
        elseif action == "restart_service" and mesh.one_of(params.service, PROTECTED) then
            return false, string.format("service %q is protected from restart_service",
                                        params.service)
        end
        return true
    end,
}
