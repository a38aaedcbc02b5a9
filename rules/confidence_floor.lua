-- confidence_floor: do not act on a proposal the model itself is unsure of.
--
-- The model reports its confidence in [0, 1] with every proposal.  Below FLOOR, or
-- when it says nothing, the proposal is rejected; the reask tells the model why, and
-- the fallback (escalate) applies if no confident proposal comes.  Actions in EXEMPT
-- ask a human anyway, so they need no confidence.

local FLOOR = 0.6
local EXEMPT = { "escalate" }

return {
    name = "confidence_floor",
    description = "reject proposals with confidence absent or below 0.6 (escalate is exempt)",

    check = function (proposal, ctx)
        if mesh.one_of(proposal.action, EXEMPT) then
            return true
        end
        local confidence = proposal.confidence
        if type(confidence) ~= "number" then
            return false, string.format("confidence is absent; the floor is %g", FLOOR)
        end
        if confidence < FLOOR then
            return false, string.format("confidence %g is below the floor %g",
                                        confidence, FLOOR)
        end
        return true
    end,
}
