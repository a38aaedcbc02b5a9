-- Cases for action_allowlist.lua: `meshctl rules test rules/` runs them.
local function scale(service, replicas)
    return { action = "scale_out", params = { service = service, replicas = replicas },
             confidence = 0.9 }
end

return {
    rule = "action_allowlist.lua",
    ctx = { now = 1700000000, incident = { score = 0.97 } },
    cases = {
        { name = "scale_out within bounds", proposal = scale("web", 3), expect = "accept" },
        { name = "scale_out at the bound", proposal = scale("api-2", 5), expect = "accept" },
        { name = "scale_out beyond the bound", proposal = scale("web", 8), expect = "reject",
          reason = "^scale_out to 8 replicas exceeds 5; allowed only when the incident score "
                   .. "is at least 0.999 %(it is 0.97%)$" },
        { name = "beyond the bound when the detector is nearly certain",
          proposal = scale("web", 8), ctx = { incident = { score = 0.9995 } },
          expect = "accept" },
        { name = "beyond the bound with no incident score", proposal = scale("web", 8),
          ctx = { incident = {} }, expect = "reject", reason = "%(it is nil%)" },
        { name = "escalate with a summary",
          proposal = { action = "escalate", params = { summary = "look at web" } },
          expect = "accept" },
        { name = "escalate without params", proposal = { action = "escalate", params = {} },
          expect = "accept" },
        { name = "restart of an ordinary service",
          proposal = { action = "restart_service", params = { service = "web" } },
          expect = "accept" },
        { name = "restart of a protected service",
          proposal = { action = "restart_service", params = { service = "database" } },
          expect = "reject", reason = 'service "database" is protected' },
        { name = "an action the config may declare but this site does not allow",
          proposal = { action = "tune", params = { ratio = 0.5 } }, expect = "reject",
          reason = 'action "tune" is not in this site\'s allow%-list %(escalate, note, '
                   .. 'restart_service, scale_out%)' },
        { name = "an undeclared parameter", expect = "reject",
          proposal = { action = "scale_out",
                       params = { service = "web", replicas = 2, force = true } },
          reason = "^scale_out: params.force: is not allowed" },
        { name = "a missing parameter", proposal = { action = "scale_out",
                                                     params = { service = "web" } },
          expect = "reject", reason = "params.replicas: is missing %(required%)" },
        { name = "a service name with capitals", proposal = scale("Web", 2), expect = "reject",
          reason = "does not match the pattern" },
        { name = "replicas as a real number", proposal = scale("web", 2.5), expect = "reject",
          reason = "params.replicas: must be an integer, not a number" },
        { name = "a note too long", expect = "reject",
          proposal = { action = "note", params = { text = string.rep("x", 201) } },
          reason = "longer than the maximum 200" },
        { name = "no action at all", proposal = { params = {} }, expect = "reject",
          reason = 'action "nil" is not' },
    },
}
