-- Cases for confidence_floor.lua.
return {
    rule = "confidence_floor.lua",
    cases = {
        { name = "confident", proposal = { action = "scale_out", confidence = 0.82 },
          expect = "accept" },
        { name = "exactly at the floor", proposal = { action = "scale_out", confidence = 0.6 },
          expect = "accept" },
        { name = "below the floor", proposal = { action = "scale_out", confidence = 0.3 },
          expect = "reject", reason = "^confidence 0.3 is below the floor 0.6$" },
        { name = "no confidence", proposal = { action = "scale_out" }, expect = "reject",
          reason = "confidence is absent" },
        { name = "confidence as a string", proposal = { action = "scale_out", confidence = "0.9" },
          expect = "reject", reason = "absent" },
        { name = "escalate needs none", proposal = { action = "escalate" }, expect = "accept" },
        { name = "escalate with a low one", proposal = { action = "escalate", confidence = 0.1 },
          expect = "accept" },
    },
}
