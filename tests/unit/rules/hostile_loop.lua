-- Hostile fixture: never returns (stopped by the instruction or the time limit).
return {
    name = "hostile_loop",
    description = "infinite loop",
    check = function (proposal, ctx)
        while true do end
    end,
}
