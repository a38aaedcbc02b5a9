-- Hostile fixture: a loop around a call that raises; with no way to catch it, the
-- first error ends the evaluation.  kind = "close" adds a to-be-closed variable
-- whose handler loops forever while the error unwinds; kind = "close_after_limit"
-- loops in the body first, so the handler runs after the limit is already hit.
local function boom()
    error("inner failure")
end

return {
    name = "hostile_error_loop",
    description = "loop around an erroring call",
    check = function (proposal, ctx)
        if proposal.kind == "close" or proposal.kind == "close_after_limit" then
            local guard <close> = setmetatable({}, {
                __close = function () while true do end end,
            })
            if proposal.kind == "close_after_limit" then
                while true do end
            end
        end
        while true do
            boom()
        end
    end,
}
