-- approve_restarts: a restart runs unattended only when the detector is all but
-- certain; otherwise a human approves it first.
--
-- The example of a rule that asks for approval instead of refusing.  It never
-- rejects: for an action of kind "exec" (ctx.action.kind) named in ACTIONS, when the
-- incident's score (ctx.incident.score) is below THRESHOLD, or absent, it calls
-- mesh.require_approval with a reason and accepts.  If every other check accepts too,
-- the decision records "approval": {"required": true, "reason", "rules"}, and meshd
-- holds the action until someone runs `meshctl approve` (or `deny`; after the
-- action's approval_timeout_s the agent's fallback runs instead).  If another check
-- refuses the proposal, there is nothing to approve and the request is dropped.
--
-- Actions of other kinds are left alone (they run nothing on this host), and so are
-- actions not listed.  To change the policy, edit the two values below.

local ACTIONS = { "restart_service" }   -- exec actions that may need a human, by name
local THRESHOLD = 0.999                 -- an incident score at least this: no human needed

return {
    name = "approve_restarts",
    description = "restarts (exec) wait for a human's approval unless the incident score "
                  .. "is at least 0.999",

    check = function (proposal, ctx)
        local spec = ctx.action
        if not (spec and spec.kind == "exec") or not mesh.one_of(proposal.action, ACTIONS) then
            return true
        end
        local score = ctx.incident and ctx.incident.score
        if mesh.in_range(score, THRESHOLD, math.huge) then
            return true
        end
        local what = proposal.action
        local target = proposal.params.service or proposal.params.unit
        if type(target) == "string" then
            what = string.format("%s of %q", what, target:sub(1, 64))
        end
        if type(score) == "number" then
            mesh.require_approval(string.format(
                "%s: the incident score %s is below %s, so a human decides whether it runs",
                what, tostring(score), tostring(THRESHOLD)))
        else
            mesh.require_approval(string.format(
                "%s: the incident has no score, so a human decides whether it runs", what))
        end
        return true
    end,
}
