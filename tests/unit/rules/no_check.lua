-- Fixture: a rule table without check.
return { name = "no_check", description = "forgot the function" }
