-- Fixture: mesh.require_approval, driven by the proposal's rationale.
--   "ask"          asks ("a human looks at ACTION") and accepts
--   "ask twice"    asks twice and accepts: the first reason stands
--   "ask reject"   asks, then rejects
--   "ask error"    asks, then raises
--   "ask number"   misuse: a number for a reason
--   "ask table"    misuse: a table for a reason
--   "ask nothing"  misuse: no reason at all
--   "ask empty"    misuse: an empty reason
--   "ask long"     a reason of 1000 bytes with a newline and a tab in it
--   "ask pcall"    a misuse caught by pcall, then accepts without asking
--   anything else: accepts without asking
return {
    name = "approval",
    description = "asks for approval as the rationale says",
    check = function (proposal, ctx)
        local how = proposal.rationale
        if how == "ask" then
            mesh.require_approval("a human looks at " .. proposal.action)
        elseif how == "ask twice" then
            mesh.require_approval("first reason")
            mesh.require_approval("second reason")
        elseif how == "ask reject" then
            mesh.require_approval("not needed after all")
            return false, "refused anyway"
        elseif how == "ask error" then
            mesh.require_approval("not needed either")
            error("broke after asking")
        elseif how == "ask number" then
            mesh.require_approval(42)
        elseif how == "ask table" then
            mesh.require_approval({ "why" })
        elseif how == "ask nothing" then
            mesh.require_approval()
        elseif how == "ask empty" then
            mesh.require_approval("")
        elseif how == "ask long" then
            mesh.require_approval("line one\nline\ttwo " .. string.rep("x", 1000))
        elseif how == "ask pcall" then
            local ok = pcall(mesh.require_approval, 42)
            if ok then
                return false, "a number was taken for a reason"
            end
        end
        return true
    end,
}
