-- Cases for change_freeze.lua: a year-end freeze from 2025-12-19T18:00:00Z to
-- 2026-01-05T06:00:00Z and a weekly window on Sundays from 02:00 to 04:00 UTC.
local SCALE = { action = "scale_out", params = { service = "web", replicas = 2 } }

return {
    rule = "change_freeze.lua",
    cases = {
        { name = "an ordinary Wednesday", proposal = SCALE, expect = "accept",
          ctx = { now = mesh.time("2025-12-17T10:00:00Z") } },
        { name = "the first second of the freeze", proposal = SCALE, expect = "reject",
          ctx = { now = mesh.time("2025-12-19T18:00:00Z") },
          reason = "^year%-end freeze from 2025%-12%-19T18:00:00Z to 2026%-01%-05T06:00:00Z: "
                   .. "no scale_out now" },
        { name = "the last second before the freeze", proposal = SCALE, expect = "accept",
          ctx = { now = mesh.time("2025-12-19T17:59:59Z") } },
        { name = "the freeze ends", proposal = SCALE, expect = "accept",
          ctx = { now = mesh.time("2026-01-05T06:00:00Z") } },
        { name = "escalate during the freeze", expect = "accept",
          proposal = { action = "escalate", params = {} },
          ctx = { now = mesh.time("2025-12-25T12:00:00Z") } },
        { name = "the weekly window", proposal = SCALE, expect = "reject",
          ctx = { now = mesh.time("2025-11-30T02:30:00Z") },
          reason = "weekly patch window %(day 7 of the week, 02:00 to 04:00 UTC%)" },
        { name = "just after the weekly window", proposal = SCALE, expect = "accept",
          ctx = { now = mesh.time("2025-11-30T04:00:00Z") } },
        { name = "the same hour on a Saturday", proposal = SCALE, expect = "accept",
          ctx = { now = mesh.time("2025-11-29T02:30:00Z") } },
        { name = "fractional event time", proposal = SCALE, expect = "reject",
          ctx = { now = mesh.time("2025-11-30T03:59:59Z") + 0.5 } },
        { name = "no event time", proposal = SCALE, expect = "reject", ctx = {},
          reason = "ctx.now" },
    },
}
