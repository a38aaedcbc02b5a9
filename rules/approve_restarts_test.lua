-- Cases for approve_restarts.lua.  The rule never rejects: each case says whether it
-- accepts with a request for approval (approval = a pattern its reason must contain)
-- or accepts plainly (no approval key: no request).
local RESTART = { name = "restart_service", kind = "exec",
                  params = { service = { type = "string", required = true, max_length = 64 } } }

local function restart(service)
    return { action = "restart_service", params = { service = service } }
end

local function scored(score)
    return { incident = { series = "web-1/cpu", score = score } }
end

return {
    rule = "approve_restarts.lua",
    ctx = { action = RESTART, incident = { series = "web-1/cpu", score = 0.97 } },
    cases = {
        { name = "a restart on a likely incident waits for a human",
          proposal = restart("web"), expect = "accept",
          approval = "^restart_service of \"web\": the incident score 0.97 is below 0.999, "
                     .. "so a human decides whether it runs$" },
        { name = "just below the threshold", proposal = restart("web"), ctx = scored(0.9989),
          expect = "accept", approval = "score 0.9989 is below 0.999" },
        { name = "a score of 0", proposal = restart("api"), ctx = scored(0), expect = "accept",
          approval = "^restart_service of \"api\": the incident score 0 is below" },
        { name = "at the threshold it runs unattended", proposal = restart("web"),
          ctx = scored(0.999), expect = "accept" },
        { name = "above it too", proposal = restart("web"), ctx = scored(1), expect = "accept" },
        { name = "no score: a human decides", proposal = restart("web"),
          ctx = { incident = { series = "web-1/cpu" } }, expect = "accept",
          approval = "the incident has no score" },
        { name = "no incident: a human decides", proposal = restart("web"),
          ctx = { incident = false }, expect = "accept", approval = "has no score" },
        { name = "a score that is not a number", proposal = restart("web"),
          ctx = scored("1"), expect = "accept", approval = "has no score" },
        { name = "a unit instead of a service",
          proposal = { action = "restart_service", params = { unit = "web.service" } },
          expect = "accept", approval = "^restart_service of \"web.service\": " },
        { name = "no target named",
          proposal = { action = "restart_service", params = {} }, expect = "accept",
          approval = "^restart_service: the incident score" },
        { name = "a long target is cut in the reason",
          proposal = restart(string.rep("s", 100)), expect = "accept",
          approval = "^restart_service of \"" .. string.rep("s", 64) .. "\": " },
        { name = "another exec action is not asked about",
          proposal = { action = "run_check", params = { host = "web-1" } },
          ctx = { action = { name = "run_check", kind = "exec" } }, expect = "accept" },
        { name = "restart_service of another kind is left alone",
          proposal = restart("web"),
          ctx = { action = { name = "restart_service", kind = "log" } }, expect = "accept" },
        { name = "no declared spec", proposal = restart("web"), ctx = { action = false },
          expect = "accept" },
    },
}
