-- Fixture: returns what proposal.kind asks for, to exercise the verdict contract.
local results = {
    ["nil"] = function () return nil end,
    nothing = function () end,
    one = function () return 1 end,
    string_true = function () return "true" end,
    table = function () return {} end,
    false_no_reason = function () return false end,
    false_empty_reason = function () return false, "" end,
    false_number_reason = function () return false, 42 end,
    true_extra = function () return true, "ignored" end,
    long_reason = function () return false, string.rep("é", 1000) end,
    control_reason = function () return false, "line1\nline2\0end\255" end,
    error_string = function () error("boom") end,
    error_table = function () error({ code = 1 }) end,
    error_nil = function () error() end,
}
return {
    name = "returns",
    description = "returns what it is asked to",
    check = function (proposal, ctx)
        return results[proposal.kind]()
    end,
}
