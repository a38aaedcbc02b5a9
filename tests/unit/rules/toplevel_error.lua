-- Fixture: the chunk itself raises on line 2.
local x = nil + 1
return { name = "toplevel", description = "never gets here", check = function () return true end }
