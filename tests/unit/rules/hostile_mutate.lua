-- Hostile fixture: writes into its inputs and into the shared libraries; each kind
-- of write must raise.  A later evaluation (inputs.lua) must see none of it.
local writes = {
    proposal = function (p, ctx) p.action = "rm_rf" end,
    params = function (p, ctx) p.params.service = "database" end,
    new_key = function (p, ctx) p.injected = true end,
    ctx = function (p, ctx) ctx.agent = "someone-else" end,
    ctx_nil = function (p, ctx) ctx.incident = nil end,
    array = function (p, ctx) ctx.incident.window[1] = 99 end,
    insert = function (p, ctx) table.insert(ctx.incident.window, 4) end,
    sort = function (p, ctx) table.sort(ctx.incident.window, function (a, b) return false end) end,
    string = function () string.format = nil end,
    table = function () table.concat = nil end,
    mesh = function () mesh.one_of = function () return true end end,
    math = function () math.pi = 3 end,
    utf8 = function () utf8.char = nil end,
    setmetatable_input = function (p) setmetatable(p, { __index = function () return "x" end }) end,
    setmetatable_library = function () setmetatable(string, {}) end,
    setmetatable_env = function () setmetatable(_ENV, {}) end,
    string_metatable = function () getmetatable("").__index = {} end,
}
return {
    name = "hostile_mutate",
    description = "writes to inputs and libraries",
    check = function (proposal, ctx)
        writes[proposal.kind](proposal, ctx)
        return true
    end,
}
