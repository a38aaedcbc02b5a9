-- Hostile fixture: tries to swallow the limit error with pcall (absent: an error).
return {
    name = "hostile_pcall_loop",
    description = "pcall around an infinite loop",
    check = function (proposal, ctx)
        while true do
            pcall(function () while true do end end)
        end
    end,
}
