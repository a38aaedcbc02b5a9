-- Fixture: exercises the mesh helper table; every assertion failure is an error.
return {
    name = "helpers",
    description = "mesh helpers",
    check = function (proposal, ctx)
        assert(mesh.one_of("b", { "a", "b" }) == true, "one_of hit")
        assert(mesh.one_of("c", { "a", "b" }) == false, "one_of miss")
        assert(mesh.one_of(nil, { "a" }) == false, "one_of nil")
        assert(mesh.one_of(2, { 1, 2.0 }) == true, "one_of numbers compare by value")

        assert(mesh.in_range(5, 1, 5) == true, "in_range inclusive")
        assert(mesh.in_range(0.5, 0, 1) == true, "in_range float")
        assert(mesh.in_range(6, 1, 5) == false, "in_range above")
        assert(mesh.in_range("3", 1, 5) == false, "in_range no coercion")
        assert(mesh.in_range(0/0, 0, 1) == false, "in_range NaN")

        assert(mesh.matches("web-1", "[a-z]+%-%d+") == true, "matches whole")
        assert(mesh.matches("web-1x", "[a-z]+%-%d+") == false, "matches anchored at end")
        assert(mesh.matches("1web-1", "[a-z]+%-%d+") == false, "matches anchored at start")
        assert(mesh.matches("aaa", "a-") == true, "a lazy pattern is stretched to the end")
        assert(mesh.matches("aab", "a*") == false, "a prefix match is not a match")
        assert(mesh.matches("aaa", "a-$") == true, "explicit anchors are kept")
        assert(mesh.matches("^x", "%^x") == true, "escaped caret")
        assert(mesh.matches("5$", "%d%$") == true, "escaped dollar is literal")
        assert(mesh.matches(42, "%d+") == false, "non-string subject")

        local keys = mesh.sorted_keys({ zeta = 1, alpha = 2, [2] = 3, [1] = 4, Beta = 5 })
        assert(#keys == 5, "sorted_keys count")
        assert(keys[1] == 1 and keys[2] == 2, "numbers first")
        assert(keys[3] == "Beta" and keys[4] == "alpha" and keys[5] == "zeta", "bytewise")
        assert(#mesh.sorted_keys({}) == 0, "empty table")
        return true
    end,
}
