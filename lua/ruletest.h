/*  ruletest - tests for rule authors: `meshctl rules test` and `meshctl rules check`.
 *
 *  A test file, NAME_test.lua beside the rule, returns
 *
 *      { rule = "NAME.lua",                 -- relative to the test file
 *        ctx = { ... },                     -- optional: defaults for every case's ctx
 *        limits = { instructions = N, memory = BYTES, time_ms = MS },   -- optional
 *        cases = {
 *          { name = "unique words", proposal = { ... }, ctx = { ... },
 *            expect = "accept" | "reject" | "error" | "limit",
 *            reason = "a Lua pattern the reason must contain",         -- optional
 *            approval = "a Lua pattern" },                             -- optional
 *          ... } }
 *
 *  The test file itself runs in the sandbox; its tables become JSON (as a model's
 *  proposal and the agent's ctx are), and each case goes through the real sandbox,
 *  exactly as the gate evaluates the rule.  A case's ctx is the default ctx with the
 *  case's keys put over it, key by key.  An accept case with `approval` expects the
 *  rule to ask for a human's approval (mesh.require_approval) with a reason containing
 *  that pattern; an accept case without it expects no such request.  docs/rules.md has
 *  the guide.
 */
#ifndef MESH_RULETEST_H
#define MESH_RULETEST_H

#include <stdio.h>

//  Run the cases of the test file at PATH.  Prints "PASS FILE: case" or "FAIL FILE:
//  case: expected X, got Y (reason)" per case to OUT, and one FAIL line if the file
//  or its rule cannot be used; adds to *passed and *failed.
void mesh_ruletest_file (const char *path, FILE *out, int *passed, int *failed);
//  The same for every *_test.lua in DIR, in name order; a directory without any
//  counts as one failure.
void mesh_ruletest_dir (const char *dir, FILE *out, int *passed, int *failed);
//  Load each rule file (a directory: every *.lua in it but the *_test.lua) in the
//  sandbox; prints "FILE:LINE: message" (or "FILE: message") per problem to OUT.
//  Returns the number of files with a problem.
int mesh_ruletest_check (char **paths, int count, FILE *out, int *checked);

//  `meshctl rules ARGV...`: "test [DIR|FILE]..." (default rules/), ending with the
//  line "N passed, M failed"; or "check FILE|DIR...".  Returns the exit code: 0 all
//  passed (or no problem), 1 a failure (or a problem), 64 usage.
int mesh_ruletest_main (int argc, char **argv, FILE *out, FILE *err);

#endif
