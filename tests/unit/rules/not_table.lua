-- Fixture: a chunk that returns something other than a rule table.
return 42
