-- change_freeze: no automatic changes during freeze windows, judged by event time.
--
-- Two kinds of window: dated ones (FREEZES, in UTC), and a weekly one (WEEKLY, in
-- UTC: while another team patches hosts, changes would race them).  The time is
-- ctx.now, the triggering event's time, never a clock: a replay of the decision
-- falls in the same window.  Actions in ALLOWED change nothing and pass anyway.
-- The dates are parsed once, at the top level (it runs when the rule set loads).

local FREEZES = {
    { from = "2025-12-19T18:00:00Z", to = "2026-01-05T06:00:00Z", why = "year-end freeze" },
}
for _, f in ipairs(FREEZES) do                  -- the top level runs once: parse here
    f.starts, f.ends = mesh.time(f.from), mesh.time(f.to)
end
-- Sunday (wday 7) from 02:00 to 04:00 UTC.
local WEEKLY = { { wday = 7, from_hour = 2, to_hour = 4, why = "weekly patch window" } }
local ALLOWED = { "escalate", "note" }

return {
    name = "change_freeze",
    description = "no changes in freeze windows (event time); escalate and note allowed",

    check = function (proposal, ctx)
        if mesh.one_of(proposal.action, ALLOWED) then
            return true
        end
        local now = ctx.now
        if type(now) ~= "number" then
            return false, "ctx.now (the event time) is missing, so the freeze cannot be checked"
        end
        for _, f in ipairs(FREEZES) do
            if now >= f.starts and now < f.ends then
                return false, string.format("%s from %s to %s: no %s now; escalate instead",
                                            f.why, f.from, f.to, proposal.action)
            end
        end
        local t = mesh.utc(now)
        for _, w in ipairs(WEEKLY) do
            if t.wday == w.wday and t.hour >= w.from_hour and t.hour < w.to_hour then
                return false, string.format("%s (day %d of the week, %02d:00 to %02d:00 UTC): "
                                            .. "no %s now; escalate instead", w.why, w.wday,
                                            w.from_hour, w.to_hour, proposal.action)
            end
        end
        return true
    end,
}
