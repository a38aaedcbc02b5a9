-- Cases for exec_args.lua.  ctx.action is the declared spec the gate fills in
-- (mesh_config_param_json): its kind, and each parameter's allow_dash, which the
-- config puts there only when it is true.
local EXEC = { action = { name = "run_check", kind = "exec" } }

-- An exec action as a config would declare it: host and file plain, flag with
-- allow_dash: true, mode with allow_dash spelled out as false.
local SPEC = {
    name = "run_check", kind = "exec",
    params = {
        host = { type = "string", required = true, max_length = 1100 },
        file = { type = "string", required = false, max_length = 256 },
        flag = { type = "string", required = false, max_length = 256, allow_dash = true },
        mode = { type = "string", required = false, max_length = 256, allow_dash = false },
        port = { type = "integer", required = false, min = 1, max = 65535 },
    },
}
local DECLARED = { action = SPEC }

local function run(params)
    return { action = "run_check", params = params }
end

-- A case against the declared spec.
local function declared(name, params, expect, reason)
    return { name = name, proposal = run(params), ctx = DECLARED, expect = expect,
             reason = reason }
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

        -- Against a declared exec spec: what safe_arg refuses is refused.
        declared("spec: plain words", { host = "web-1", file = "app.log", port = 443 },
                 "accept"),
        declared("spec: spaces", { host = "web 1 --force" }, "reject",
                 "^params.host \"web 1 %-%-force\" contains a space"),
        declared("spec: a double quote", { host = "web\"1" }, "reject",
                 "metacharacter '\"'"),
        declared("spec: a single quote", { host = "web'1" }, "reject", "metacharacter '''"),
        declared("spec: $(id)", { host = "$(id)" }, "reject", "metacharacter '%$'"),
        declared("spec: backticks", { host = "`id`" }, "reject", "metacharacter '`'"),
        declared("spec: a semicolon", { host = "web-1;reboot" }, "reject",
                 "metacharacter ';'"),
        declared("spec: a pipe in the middle", { host = "a|b" }, "reject", "metacharacter '|'"),
        declared("spec: a leading dash without allow_dash", { host = "-rf" }, "reject",
                 "^params.host \"%-rf\" starts with '%-'"),
        declared("spec: allow_dash false is no allow_dash", { mode = "--fast" }, "reject",
                 "^params.mode \"%-%-fast\" starts with '%-'"),
        declared("spec: allow_dash on one param is not on another",
                 { flag = "-v", host = "--all" }, "reject", "^params.host"),
        declared("spec: a short option with allow_dash", { host = "web-1", flag = "-v" },
                 "accept"),
        declared("spec: a long option with allow_dash", { host = "web-1", flag = "--verbose" },
                 "accept"),
        declared("spec: an option with a value with allow_dash", { flag = "--unit=web.service" },
                 "accept"),
        declared("spec: a dash in the middle without allow_dash", { host = "web-1-a" },
                 "accept"),
        declared("spec: allow_dash lets only the dash through", { flag = "-x;id" }, "reject",
                 "^params.flag %(after its leading %-%) \"x;id\" contains the shell " ..
                 "metacharacter ';'"),
        declared("spec: allow_dash and a space", { flag = "--a b" }, "reject",
                 "^params.flag %(after its leading %-%-%) \"a b\" contains a space"),
        declared("spec: allow_dash and command substitution", { flag = "--x=$(id)" }, "reject",
                 "metacharacter '%$'"),
        declared("spec: allow_dash takes at most two dashes", { flag = "---x" }, "reject",
                 "\"%-x\" starts with '%-'"),
        declared("spec: allow_dash and a bare dash", { flag = "-" }, "reject", "is empty"),
        declared("spec: allow_dash and ..", { flag = "--root=../.." }, "reject",
                 "contains '%.%.'"),
        declared("spec: ..", { file = "../../etc/shadow" }, "reject",
                 "^params.file \"%.%./%.%./etc/shadow\" contains '%.%.'"),
        declared("spec: .. inside a word", { file = "logs..old" }, "reject", "contains '%.%.'"),
        declared("spec: a newline", { host = "web-1\nreboot" }, "reject",
                 "a control character"),
        declared("spec: a tab", { host = "web\t1" }, "reject", "a control character"),
        declared("spec: a non-ASCII byte", { host = "w\u{e9}b" }, "reject", "non%-ASCII"),
        declared("spec: an empty string", { host = "" }, "reject", "^params.host is empty$"),
        declared("spec: 1024 bytes", { host = string.rep("a", 1024) }, "accept"),
        declared("spec: a very long value", { host = string.rep("a", 1025) }, "reject",
                 "is longer than 1024 bytes"),
        declared("spec: a number", { host = "web-1", port = 8080 }, "accept"),
        declared("spec: a real number and a boolean", { ratio = 0.5, dry_run = true },
                 "accept"),
        declared("spec: a list param", { args = { "status", "web-1", "key=value" } }, "accept"),
        declared("spec: a list param with a bad item", { args = { "status", "$(id)" } },
                 "reject", "^params.args%[2%] \"%$%(id%)\" contains the shell metacharacter"),
        declared("spec: a list param with an option", { args = { "status", "-f" } }, "reject",
                 "^params.args%[2%] \"%-f\" starts with '%-'"),
        declared("spec: a list param with a number", { args = { "status", 3 } }, "reject",
                 "^params.args%[2%] must be a string, not an integer"),
        declared("spec: a list under allow_dash", { flag = { "-v", "--all", "web-1" } },
                 "accept"),
        declared("spec: a list under allow_dash, a bad item", { flag = { "-v", "-a;b" } },
                 "reject", "^params.flag%[2%] %(after its leading %-%) \"a;b\""),
    },
}
