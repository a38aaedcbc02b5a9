-- Fixture: exercises the mesh library part by part (proposal.part); every failed
-- assertion is an error naming what failed.  ctx is the test's ctx (a JSON view):
--   { now = 1700000000, history = [ {action, target, at}, ... ] } (see test_sandbox.c)
local parts = {}

function parts.membership()
    assert(mesh.one_of("b", { "a", "b" }) == true, "one_of hit")
    assert(mesh.one_of(nil, { "a" }) == false, "one_of nil")
    local ok, why = mesh.allowed("rm", { "scale_out", "escalate" }, "action")
    assert(ok == false and why == 'action "rm" is not allowed; allowed: scale_out, escalate', why)
    assert(mesh.allowed("escalate", { "scale_out", "escalate" }) == true, "allowed hit")
    assert(mesh.in_range(1, 1, 1) and not mesh.in_range(1.5, 2, 3), "in_range")
end

function parts.patterns()
    assert(mesh.matches("web-1", "[a-z]+%-%d+"), "matches")
    assert(not mesh.matches("web-1 ", "[a-z]+%-%d+"), "matches is anchored")
    assert(mesh.regex("web-12", "[a-z]+-[0-9]+"), "regex whole")
    assert(not mesh.regex("xweb-12", "[a-z]+-[0-9]{1}"), "regex anchored")
    assert(not mesh.regex(42, "[0-9]+"), "regex needs a string")
    assert(not mesh.regex("ok\0; rm -rf", "[a-z]+"), "regex refuses NUL")
    assert(mesh.regex("a", "a|b") and mesh.regex("b", "a|b"), "regex alternation is grouped")
    -- the string library, bounded but whole
    assert(("a,b,c"):gsub(",", ";") == "a;b;c", "gsub")
    assert(select(2, ("hello world"):find("o w", 1, true)) == 7, "plain find")
    assert(("hello"):find("l") == 3 and ("hello"):find("") == 1, "find without specials")
    assert(("hello"):find("x") == nil and ("hi"):find("i", 5) == nil, "find misses")
    assert(("key=value"):match("^(%w+)=(%w+)$") == "key", "match")
    local words = 0
    for _ in ("one two three"):gmatch("%a+") do words = words + 1 end
    assert(words == 3, "gmatch")
    assert(string.rep("ab", 3, ",") == "ab,ab,ab" and string.rep("x", 0) == "", "rep")
    assert(string.format("%5.1f|%s|%q", 1.25, "s", "q") == "  1.2|s|\"q\"", "format")
end

function parts.schema()
    local S = {
        type = "object", required = { "service", "replicas" }, additionalProperties = false,
        properties = {
            service = { type = "string", pattern = "^[a-z][a-z0-9-]*$", maxLength = 8 },
            replicas = { type = "integer", minimum = 1, maximum = 10 },
            mode = { enum = { "fast", "safe" } },
            tags = { type = "array", items = { type = "string", minLength = 1 }, maxItems = 2 },
            ratio = { type = "number", exclusiveMinimum = 0, exclusiveMaximum = 1 },
            fixed = { const = "yes" },
            note = { type = { "string", "null" } },
        },
    }
    local function check(value, want)
        local ok, why = mesh.schema(value, S, "params")
        if want == true then
            assert(ok == true and why == nil, "expected a match, got: " .. tostring(why))
        else
            assert(ok == false and why == want, "expected " .. want .. ", got: " .. tostring(why))
        end
    end
    check({ service = "web", replicas = 3 }, true)
    check({ service = "web", replicas = 3.0, mode = "safe", tags = { "a" }, ratio = 0.5,
            fixed = "yes", note = mesh.null }, true)
    check({ service = "web" }, "params.replicas: is missing (required)")
    check({ service = "Web", replicas = 3 },
          'params.service: "Web" does not match the pattern ^[a-z][a-z0-9-]*$')
    check({ service = "web", replicas = 11 }, "params.replicas: is 11, above the maximum 10")
    check({ service = "web", replicas = 0 }, "params.replicas: is 0, below the minimum 1")
    check({ service = "web", replicas = 2.5 }, "params.replicas: must be an integer, not a number")
    check({ service = "web", replicas = "3" }, "params.replicas: must be an integer, not a string")
    check({ service = "webserver1", replicas = 1 },
          "params.service: is 10 characters long, longer than the maximum 8")
    check({ service = "web", replicas = 1, force = true },
          "params.force: is not allowed (not a declared property)")
    check({ service = "web", replicas = 1, mode = "slow" },
          'params.mode: must be one of: "fast", "safe"')
    check({ service = "web", replicas = 1, tags = { "a", "" } },
          "params.tags[2]: is 0 characters long, shorter than the minimum 1")
    check({ service = "web", replicas = 1, tags = { "a", "b", "c" } },
          "params.tags: has 3 items, more than the maximum 2")
    check({ service = "web", replicas = 1, tags = { x = 1 } },
          "params.tags: must be an array, not an object")
    check({ service = "web", replicas = 1, ratio = 1 }, "params.ratio: is 1, must be less than 1")
    check({ service = "web", replicas = 1, fixed = "no" }, 'params.fixed: must be "yes"')
    check({ service = "web", replicas = 1, note = 5 },
          "params.note: must be string or null, not an integer")
    check("web", "params: must be an object, not a string")
    check(nil, "params: must be an object, not nothing (nil)")
    -- the first problem in a fixed order: required, then properties by name
    check({ replicas = 99, service = "BAD" }, "params.replicas: is 99, above the maximum 10")
    -- inputs (views) validate like plain tables
    local P = { type = "object", required = { "action" },
                properties = { action = { type = "string" }, params = { type = "object" } } }
    assert(mesh.schema(ctx_proposal, P, "proposal"), "a view validates")
    assert(mesh.schema(ctx_history, { type = "array", items = { type = "object",
           required = { "action", "at" } } }, "history"), "an array view validates")
end

function parts.safe_args()
    local function bad(arg, want)
        local ok, why = mesh.safe_arg(arg, "params.path")
        assert(ok == false and why == want, "expected " .. want .. ", got: " .. tostring(why))
    end
    assert(mesh.safe_arg("web-1.example.com") == true, "a plain word")
    assert(mesh.safe_arg("key=value:80/path_x,y@z+1%") == true, "printable non-meta")
    bad("", "params.path is empty")
    bad("-rf", 'params.path "-rf" starts with \'-\' (it could be read as an option)')
    bad("../etc", 'params.path "../etc" contains \'..\'')
    bad("a;b", 'params.path "a;b" contains the shell metacharacter \';\'')
    bad("$(id)", 'params.path "$(id)" contains the shell metacharacter \'$\'')
    bad("a b", 'params.path "a b" contains a space, a control character or a non-ASCII '
               .. 'byte (only printable ASCII is allowed)')
    bad("caf\xc3\xa9", 'params.path "caf\\xc3\\xa9" contains a space, a control character or '
                       .. 'a non-ASCII byte (only printable ASCII is allowed)')
    bad(7, "params.path must be a string, not an integer")
    assert(mesh.safe_args({ "a", "b" }) == true, "safe_args")
    local ok, why = mesh.safe_args({ "a", "|b" }, "params.args")
    assert(not ok and why == 'params.args[2] "|b" contains the shell metacharacter \'|\'', why)
    ok, why = mesh.safe_args("a b")
    assert(not ok and why == "args must be a list of strings, not a string", why)
end

function parts.history()
    local now = 1700000000
    -- the fixture history: scale_out web at now-100, now-4000; scale_out api at
    -- now-50; restart_service db at now-10; escalate (no target) at now-5;
    -- scale_out web at now+10 (after now: never counted)
    local views = { now = now, history = ctx_history }
    local plain = { now = now, history = {} }
    for i, e in ipairs(ctx_history) do
        plain.history[i] = { action = e.action, target = e.target, at = e.at }
    end
    for _, c in ipairs({ views, plain }) do
        assert(mesh.count_recent(c, 3600, { action = "scale_out", target = "web" }) == 1, "web 1h")
        assert(mesh.count_recent(c, 7200, { action = "scale_out", target = "web" }) == 2, "web 2h")
        assert(mesh.count_recent(c, 3600, { action = "scale_out" }) == 2, "any target")
        assert(mesh.count_recent(c, 3600) == 4, "everything in the hour")
        assert(mesh.count_recent(c, 0) == 0, "an empty span")
        assert(mesh.count_recent(c, 3600, { action = { "restart_service", "escalate" } }) == 2,
               "a list of actions")
        local n, targets = mesh.distinct_targets(c, 3600, { action = { "scale_out",
                                                            "restart_service" } })
        assert(n == 3 and table.concat(targets, ",") == "api,db,web", "distinct targets")
    end
    assert(mesh.count_recent({ now = now }, 60) == 0, "no history")
end

function parts.history_malformed()
    return mesh.count_recent({ now = 1, history = { { action = "x" } } }, 60)
end

function parts.history_no_now()
    return mesh.count_recent({ history = {} }, 60)
end

function parts.time()
    local t = mesh.time("2024-02-29T13:45:30Z")
    assert(t == 1709214330, "mesh.time")
    local u = mesh.utc(t + 0.75)
    assert(u.year == 2024 and u.month == 2 and u.day == 29 and u.hour == 13 and u.min == 45
           and u.sec == 30 and u.wday == 4 and u.yday == 60, "mesh.utc")
    assert(mesh.time("1970-01-01") == 0 and mesh.utc(0).wday == 4, "the epoch was a Thursday")
    local d = mesh.utc(-1)
    assert(d.year == 1969 and d.month == 12 and d.day == 31 and d.hour == 23 and d.sec == 59,
           "before the epoch")
    assert(mesh.utc(mesh.time("2025-12-28")).wday == 7, "a Sunday")
end

function parts.sorted()
    local keys = mesh.sorted_keys({ zeta = 1, alpha = 2, [2] = 3, [1] = 4, Beta = 5 })
    assert(table.concat(keys, ",") == "1,2,Beta,alpha,zeta", "sorted_keys")
    local seen = {}
    for k, v in mesh.sorted_pairs({ b = 2, a = 1, c = 3 }) do seen[#seen + 1] = k .. v end
    assert(table.concat(seen, ",") == "a1,b2,c3", "sorted_pairs")
    local t = { 5, 3, 9, 1 }
    table.sort(t)
    assert(table.concat(t, ",") == "1,3,5,9", "table.sort")
    table.sort(t, function (a, b) return a > b end)
    assert(table.concat(t, ",") == "9,5,3,1", "table.sort with a comparator")
end

return {
    name = "mesh_lib",
    description = "the mesh library",
    check = function (proposal, ctx)
        ctx_history = ctx.history
        ctx_proposal = proposal
        parts[proposal.part]()
        return true
    end,
}
