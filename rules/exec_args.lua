-- exec_args: the parameters of a command must be plain words.
--
-- An exec action runs a fixed argv template with the proposal's parameters filled
-- in, without a shell; even so, a model (or an injection in the incident data it
-- quotes) must not smuggle in an option ("-rf"), a path out of a directory ("../"),
-- or anything a shell, a script or a log reader would take as syntax.  For every
-- action of kind "exec" (ctx.action.kind, the declared spec), and for the actions
-- listed in ALSO whatever their kind, each string parameter and each string in a
-- list parameter must pass mesh.safe_arg: printable ASCII without spaces, no shell
-- metacharacters, no leading '-', no '..'.  Numbers and booleans pass as they are.
--
-- A parameter the config declares with allow_dash: true (ctx.action.params.NAME.
-- allow_dash) may start with '-' or '--': an option is what the operator meant it to
-- carry.  Only the leading dash is let through: what follows it must still be a safe
-- argument, so "--verbose" passes and "-x;id", "--a b", "---x" or a bare "-" do not.

local ALSO = {}             -- e.g. { "run_playbook" }: actions checked whatever their kind

-- VALUE (a string) as an argument of a parameter that allows a leading dash when DASH.
local function safe(value, label, dash)
    if dash and type(value) == "string" then
        local lead, rest = value:match("^(%-%-?)(.*)$")
        if lead then
            return mesh.safe_arg(rest, label .. " (after its leading " .. lead .. ")")
        end
    end
    return mesh.safe_arg(value, label)
end

return {
    name = "exec_args",
    description = "parameters of exec actions are safe command arguments",

    check = function (proposal, ctx)
        local spec = ctx.action
        local kind = spec and spec.kind
        if kind ~= "exec" and not mesh.one_of(proposal.action, ALSO) then
            return true
        end
        local declared = spec and spec.params
        for name, value in pairs(proposal.params) do   -- in key order: one first failure
            local param = declared and declared[name]
            local dash = type(param) == "table" and param.allow_dash == true
            local label = "params." .. name
            local ok, why = true, nil
            if type(value) == "table" and not dash then
                ok, why = mesh.safe_args(value, label)
            elseif type(value) == "table" then
                for i, item in ipairs(value) do
                    ok, why = safe(item, label .. "[" .. i .. "]", true)
                    if not ok then break end
                end
            elseif type(value) == "string" then
                ok, why = safe(value, label, dash)
            end
            if not ok then
                return false, why
            end
        end
        return true
    end,
}
