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

local ALSO = {}             -- e.g. { "run_playbook" }: actions checked whatever their kind

return {
    name = "exec_args",
    description = "parameters of exec actions are safe command arguments",

    check = function (proposal, ctx)
        local spec = ctx.action
        local kind = spec and spec.kind
        if kind ~= "exec" and not mesh.one_of(proposal.action, ALSO) then
            return true
        end
        for name, value in pairs(proposal.params) do   -- in key order: one first failure
            local ok, why = true, nil
            if type(value) == "table" then
                ok, why = mesh.safe_args(value, "params." .. name)
            elseif type(value) == "string" then
                ok, why = mesh.safe_arg(value, "params." .. name)
            end
            if not ok then
                return false, why
            end
        end
        return true
    end,
}
