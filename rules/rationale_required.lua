-- rationale_required: every proposal must say why, in words.
--
-- The rationale is what an auditor reads first, and what tells a reviewer whether
-- the model understood the incident.  It must be a string of at least MIN_WORDS
-- words and MIN_CHARS characters (UTF-8), and at most MAX_CHARS.  Padding does not
-- count: words are runs of letters and digits (mesh.words).

local MIN_WORDS = 4
local MIN_CHARS = 20
local MAX_CHARS = 2000

return {
    name = "rationale_required",
    description = "a rationale of at least 4 words and 20 characters",

    check = function (proposal, ctx)
        local rationale = proposal.rationale
        if type(rationale) ~= "string" then
            return false, "a rationale is required: say in a sentence why this action "
                          .. "addresses the incident"
        end
        local chars = utf8.len(rationale) or #rationale
        if chars > MAX_CHARS then
            return false, string.format("the rationale is %d characters; at most %d",
                                        chars, MAX_CHARS)
        end
        local words = mesh.words(rationale)
        if words < MIN_WORDS or chars < MIN_CHARS then
            return false, string.format("the rationale is too short (%d words, %d characters; "
                                        .. "at least %d and %d): say why this action "
                                        .. "addresses the incident", words, chars,
                                        MIN_WORDS, MIN_CHARS)
        end
        return true
    end,
}
