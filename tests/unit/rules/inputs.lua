-- Fixture: checks how JSON inputs look in Lua.  Expects the proposal
--   {"action":"scale_out","params":{"service":"web","replicas":3},"confidence":0.82,
--    "rationale":"cpu","absent":null}
-- and a ctx with agent "cpu-watch", now 1700000000, incident.window [1.5,null,3]
-- and incident.flags {"up":true,"down":false}.
return {
    name = "inputs",
    description = "input conversion",
    check = function (proposal, ctx)
        assert(proposal.action == "scale_out", "action")
        assert(proposal.params.service == "web", "service")
        assert(math.type(proposal.params.replicas) == "integer", "replicas is an integer")
        assert(proposal.params.replicas == 3, "replicas")
        assert(math.type(proposal.confidence) == "float", "confidence is a float")
        assert(proposal.absent == nil, "null member is nil")
        assert(mesh.null ~= nil, "mesh.null exists")
        assert(getmetatable(proposal) == false, "the inputs' metatable is hidden")
        assert(type(proposal) == "table" and type(proposal.params) == "table", "tables")
        assert(rawlen(ctx.incident.window) == 3 and rawlen(proposal) == 0, "rawlen")
        local keys = {}
        for k, v in pairs(proposal.params) do keys[#keys + 1] = k .. "=" .. tostring(v) end
        assert(table.concat(keys, ",") == "replicas=3,service=web", "pairs in key order")
        local k1, v1 = next(proposal)
        assert(k1 == "action" and v1 == "scale_out", "next starts at the first key")
        assert(next(proposal, "rationale") == nil, "next ends after the last key")
        local n = 0
        for i, v in ipairs(ctx.incident.window) do n = n + i end
        assert(n == 6, "ipairs walks the array")
        assert(ctx.agent == "cpu-watch", "ctx.agent")
        assert(math.type(ctx.now) == "integer" and ctx.now == 1700000000, "ctx.now")
        local w = ctx.incident.window
        assert(#w == 3, "array keeps its length")
        assert(w[1] == 1.5 and w[2] == mesh.null and w[3] == 3, "array elements")
        assert(ctx.incident.flags.up == true and ctx.incident.flags.down == false, "booleans")
        assert(string.format("%d", 7) == "7", "string.format intact")
        assert(("abc"):upper() == "ABC", "string methods intact")
        assert(table.concat({ "a", "b" }, ",") == "a,b", "table.concat intact")
        assert(mesh.one_of("x", { "y" }) == false, "mesh.one_of intact")
        assert(loaded == nil and calls == nil, "no globals from earlier evaluations")
        assert(string.remembered == nil and math.pi > 3.14, "no changes to the libraries")
        return true
    end,
}
