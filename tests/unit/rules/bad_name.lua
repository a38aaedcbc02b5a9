-- Fixture: a name that cannot label a metric or a record.
return { name = "has spaces", description = "bad name", check = function () return true end }
