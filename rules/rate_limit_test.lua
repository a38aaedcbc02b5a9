-- Cases for rate_limit.lua: scale_out at most 2 per 1800 s per target,
-- restart_service 1 per 3600 s, escalate 10 per 3600 s, others 3 per 3600 s.
local NOW = 1700000000

local function at(action, target, ago)
    return { action = action, target = target, at = NOW - ago }
end

local function scale(service)
    return { action = "scale_out", params = { service = service, replicas = 2 } }
end

return {
    rule = "rate_limit.lua",
    ctx = { now = NOW, history = {} },
    cases = {
        { name = "nothing done yet", proposal = scale("web"), expect = "accept" },
        { name = "once before", proposal = scale("web"),
          ctx = { history = { at("scale_out", "web", 600) } }, expect = "accept" },
        { name = "twice in the window", proposal = scale("web"),
          ctx = { history = { at("scale_out", "web", 1700), at("scale_out", "web", 600) } },
          expect = "reject",
          reason = "^scale_out on web already ran 2 times in the last 1800 s %(at most 2%)" },
        { name = "twice, but one before the window", proposal = scale("web"),
          ctx = { history = { at("scale_out", "web", 1801), at("scale_out", "web", 600) } },
          expect = "accept" },
        { name = "the window includes its first second", proposal = scale("web"),
          ctx = { history = { at("scale_out", "web", 1800), at("scale_out", "web", 600) } },
          expect = "reject" },
        { name = "other targets do not count", proposal = scale("web"),
          ctx = { history = { at("scale_out", "api", 100), at("scale_out", "api", 50),
                              at("scale_out", "db", 10) } }, expect = "accept" },
        { name = "other actions do not count", proposal = scale("web"),
          ctx = { history = { at("restart_service", "web", 100), at("note", "web", 50) } },
          expect = "accept" },
        { name = "one restart per hour",
          proposal = { action = "restart_service", params = { service = "web" } },
          ctx = { history = { at("restart_service", "web", 3000) } }, expect = "reject",
          reason = "restart_service on web already ran 1 times" },
        { name = "escalations without a target",
          proposal = { action = "escalate", params = {} },
          ctx = { history = { at("escalate", nil, 10), at("escalate", nil, 20) } },
          expect = "accept" },
        { name = "events after now are not history yet", proposal = scale("web"),
          ctx = { history = { at("scale_out", "web", -5), at("scale_out", "web", -10) } },
          expect = "accept" },
        { name = "a malformed history is an error", proposal = scale("web"),
          ctx = { history = { { action = "scale_out", target = "web" } } }, expect = "error",
          reason = "ctx.history%[1%].at must be a number" },
        { name = "no event time is an error", proposal = scale("web"), ctx = { now = false },
          expect = "error", reason = "ctx.now must be a number" },
    },
}
