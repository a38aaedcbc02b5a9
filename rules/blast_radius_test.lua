-- Cases for blast_radius.lua: at most 3 distinct services changed per hour.
local NOW = 1700000000

local function at(action, target, ago)
    return { action = action, target = target, at = NOW - ago }
end

local THREE = { at("scale_out", "web", 3000), at("restart_service", "api", 2000),
                at("scale_out", "db", 100) }

return {
    rule = "blast_radius.lua",
    ctx = { now = NOW, history = THREE },
    cases = {
        { name = "a fourth service", expect = "reject",
          proposal = { action = "scale_out", params = { service = "search", replicas = 2 } },
          reason = "^3 services were already changed in the last 3600 s %(api, db, web%); "
                   .. "search would be one more than the 3 allowed" },
        { name = "a service already touched",
          proposal = { action = "scale_out", params = { service = "web", replicas = 2 } },
          expect = "accept" },
        { name = "restarts count as changes", expect = "reject",
          proposal = { action = "restart_service", params = { service = "cache" } } },
        { name = "room for one more", expect = "accept",
          proposal = { action = "scale_out", params = { service = "search", replicas = 2 } },
          ctx = { history = { at("scale_out", "web", 3000), at("scale_out", "db", 100) } } },
        { name = "older changes are outside the window", expect = "accept",
          proposal = { action = "scale_out", params = { service = "search", replicas = 2 } },
          ctx = { history = { at("scale_out", "web", 3601), at("restart_service", "api", 2000),
                              at("scale_out", "db", 100) } } },
        { name = "escalations and notes do not count", expect = "accept",
          proposal = { action = "scale_out", params = { service = "search", replicas = 2 } },
          ctx = { history = { at("escalate", nil, 10), at("note", "x", 20),
                              at("note", "y", 30), at("scale_out", "web", 40) } } },
        { name = "escalate is never limited", expect = "accept",
          proposal = { action = "escalate", params = {} } },
        { name = "an empty history", expect = "accept", ctx = { history = {} },
          proposal = { action = "scale_out", params = { service = "web", replicas = 2 } } },
    },
}
