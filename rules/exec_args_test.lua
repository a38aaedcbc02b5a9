-- Cases for exec_args.lua.  ctx.action is the declared spec the gate fills in; only
-- its kind matters here.
local EXEC = { action = { name = "run_check", kind = "exec" } }

local function run(params)
    return { action = "run_check", params = params }
end

return {
    rule = "exec_args.lua",
    ctx = EXEC,
    cases = {
        { name = "plain words", proposal = run({ host = "web-1.example.com", port = 8080 }),
          expect = "accept" },
        { name = "a list of plain words",
          proposal = run({ args = { "status", "web-1", "key=value" } }), expect = "accept" },
        { name = "no params", proposal = run({}), expect = "accept" },
        { name = "an option", proposal = run({ host = "-rf" }), expect = "reject",
          reason = "^params.host \"%-rf\" starts with '%-'" },
        { name = "a shell metacharacter", proposal = run({ host = "web;reboot" }),
          expect = "reject", reason = "contains the shell metacharacter ';'" },
        { name = "command substitution", proposal = run({ host = "$(id)" }), expect = "reject",
          reason = "metacharacter '%$'" },
        { name = "a path out of the directory", proposal = run({ file = "../../etc/shadow" }),
          expect = "reject", reason = "contains '%.%.'" },
        { name = "a space", proposal = run({ host = "web 1" }), expect = "reject",
          reason = "only printable ASCII" },
        { name = "a bad item in a list", proposal = run({ args = { "ok", "a|b" } }),
          expect = "reject", reason = "^params.args%[2%] \"a|b\"" },
        { name = "the first bad parameter in key order",
          proposal = run({ zeta = "-z", alpha = "a;" }), expect = "reject",
          reason = "^params.alpha" },
        { name = "other kinds are not checked",
          proposal = { action = "scale_out", params = { service = "-x" } },
          ctx = { action = { name = "scale_out", kind = "kafka" } }, expect = "accept" },
        { name = "no declared spec", proposal = run({ host = "-x" }), ctx = { action = false },
          expect = "accept" },
    },
}
