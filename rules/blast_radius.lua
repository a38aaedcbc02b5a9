-- blast_radius: at most MAX_TARGETS distinct services changed per WINDOW.
--
-- One bad input, or a confused model, should not touch every service in the fleet.
-- Counting the distinct targets of the changing actions in the agent's recent
-- history (event time, up to ctx.now), a proposal that would add a new target
-- beyond MAX_TARGETS is refused; more changes to a service already touched do not
-- widen the radius (rate_limit bounds those).  Escalations change nothing.

local MAX_TARGETS = 3
local WINDOW = 3600
local CHANGES = { "scale_out", "restart_service" }

return {
    name = "blast_radius",
    description = "at most 3 distinct services changed per hour of event time",

    check = function (proposal, ctx)
        if not mesh.one_of(proposal.action, CHANGES) then
            return true
        end
        local target = proposal.params.service
        local count, targets = mesh.distinct_targets(ctx, WINDOW, { action = CHANGES })
        if mesh.one_of(target, targets) or count < MAX_TARGETS then
            return true
        end
        return false, string.format(
            "%d services were already changed in the last %d s (%s); %s would be one more "
            .. "than the %d allowed: escalate instead", count, WINDOW,
            table.concat(targets, ", "), tostring(target), MAX_TARGETS)
    end,
}
