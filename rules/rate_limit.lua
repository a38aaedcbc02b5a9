-- rate_limit: the same action on the same target at most so many times per window.
--
-- A model that keeps seeing the same anomaly would keep proposing the same fix;
-- if the fix did not help the first times, repeating it will not either.  Counted
-- in event time from the agent's recent action history (ctx.history, entries
-- {action, target, at}; target is the action's service parameter) up to ctx.now,
-- so a replay of the decision counts the same.  The proposed action itself is not
-- in the history yet: LIMIT prior actions in the window means this one is refused.

local LIMITS = {
    scale_out = { count = 2, window = 1800 },
    restart_service = { count = 1, window = 3600 },
    escalate = { count = 10, window = 3600 },
}
local DEFAULT = { count = 3, window = 3600 }

return {
    name = "rate_limit",
    description = "at most N of one action on one target per window of event time",

    check = function (proposal, ctx)
        local limit = LIMITS[proposal.action] or DEFAULT
        local target = proposal.params.service
        local done = mesh.count_recent(ctx, limit.window,
                                       { action = proposal.action, target = target })
        if done >= limit.count then
            return false, string.format(
                "%s%s already ran %d times in the last %d s (at most %d); wait for it to "
                .. "take effect, or escalate", proposal.action,
                target and (" on " .. target) or "", done, limit.window, limit.count)
        end
        return true
    end,
}
