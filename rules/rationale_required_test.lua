-- Cases for rationale_required.lua: at least 4 words and 20 characters, at most 2000.
local function with(rationale)
    return { action = "scale_out", params = { service = "web", replicas = 2 },
             rationale = rationale }
end

return {
    rule = "rationale_required.lua",
    cases = {
        { name = "a sentence", expect = "accept",
          proposal = with("CPU on the web series is far above its baseline.") },
        { name = "no rationale", proposal = with(nil), expect = "reject",
          reason = "^a rationale is required" },
        { name = "a rationale that is not a string", proposal = with(42), expect = "reject",
          reason = "required" },
        { name = "four words are enough", proposal = with("because load is high"),
          expect = "accept" },
        { name = "three words", proposal = with("load is high"), expect = "reject",
          reason = "too short %(3 words, 12 characters" },
        { name = "padding is not words", proposal = with("ok ........................."),
          expect = "reject", reason = "%(1 words" },
        { name = "non-ASCII counts by character", expect = "accept",
          proposal = with("Läuft über dem Grundwert, daher mehr Replikas") },
        { name = "too long", proposal = with(string.rep("word ", 401)), expect = "reject",
          reason = "is 2005 characters; at most 2000" },
    },
}
