/*  overrun - hostile rules written to overrun the time limit, one per function that
 *  does its work in C, and how far past the limit each evaluation ends.
 *
 *  Every rule gets a 2 MiB string (p.big) in its proposal and spends it on one
 *  function: a single call where the call alone is the cost (patterns with a
 *  201-member class; on 999,990 bytes where the pattern is unanchored, the most the
 *  static pattern bound lets through), or a loop of calls.  Limits: time_ms 50,
 *  instructions high enough (1e12) that the clock is what must stop them, memory
 *  64 MiB.  Each rule is evaluated S_RUNS times; the table shows the worst wall
 *  time, that over time_ms, and the verdict.  The target is a ratio of at most 2
 *  (the bound is 2 x time_ms + 5 ms).  The CPU time of the thread is shown
 *  beside the wall time: on a shared host a preempted evaluation's wall time grows
 *  with the wait, which no limit can prevent; the CPU column shows what the rule
 *  itself got to run.  Figures and the command are recorded
 *  in docs/performance.md.  Usage: overrun [RUNS] (default 5), from the repository
 *  root.
 */
#include "sandbox.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_RUNS      5
#define S_TIME_MS   50
#define S_BIG       (2 * 1024 * 1024)

static const struct {
    const char *name, *body;
} s_rules[] = {
    { "find [class] (1 call)",   "return p.big:sub(1, 999990):find(MISS) == nil" },
    { "match ^[class]* (1 call)", "return p.big:match('^' .. HIT .. '*') == nil" },
    { "gmatch [class]",          "for _ in p.big:sub(1, 999990):gmatch(HIT) do end return true" },
    { "gsub [class] (1 call)",   "return p.big:sub(1, 999990):gsub(HIT, '') and true" },
    { "find plain",              "local s = p.big while true do s:find('b', 1, true) end" },
    { "find no specials",        "local s = p.big while true do s:find('ab') end" },
    { "utf8.len",                "local s = p.big while true do utf8.len(s) end" },
    { "utf8.codepoint",          "local s = p.big while true do utf8.codepoint(s, 1, 65536) end" },
    { "upper",                   "local s = p.big while true do s:upper() end" },
    { "lower",                   "local s = p.big while true do s:lower() end" },
    { "reverse",                 "local s = p.big while true do s:reverse() end" },
    { "string.byte",             "local s = p.big while true do s:byte(1, 65536) end" },
    { "table.unpack",            "local t = {} for i = 1, 65536 do t[i] = i end "
                                 "while true do table.unpack(t) end" },
    { "sub",                     "local s = p.big while true do s:sub(2) end" },
    { "rep",                     "while true do ('x'):rep(S_BIG) end" },
    { "rep (1-byte turns)",      "while true do ('x'):rep(S_BIG, '') end" },
    { "format %s",               "local s = p.big while true do string.format('%s', s) end" },
    { "table.concat",            "local t = {} for i = 1, 64 do t[i] = p.big:sub(1, 32768) end "
                                 "while true do table.concat(t) end" },
    { "mesh.regex (costly)",     "local s = p.big:sub(1, 4096) "
                                 "while true do mesh.regex(s, '(a{1,30}){1,30}') end" },
    { "mesh.regex (simple)",     "local s = p.big:sub(1, 4096) "
                                 "while true do mesh.regex(s, '[a-z]+') end" },
    { "mesh.matches",            "local s = p.big:sub(1, 999990) "
                                 "while true do mesh.matches(s, HIT .. '+') end" },
};
#define S_COUNT (sizeof s_rules / sizeof s_rules [0])

static double
s_ms (const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1e3 + (b->tv_nsec - a->tv_nsec) / 1e6;
}

int
main (int argc, char **argv)
{
    int runs = argc > 1 ? atoi (argv [1]) : S_RUNS;
    if (runs < 1)
        runs = S_RUNS;
    mesh_sandbox_limits_t limits = { 1000000000000L, 64 << 20, S_TIME_MS };
    char *big = malloc (S_BIG);
    memset (big, 'a', S_BIG);
    json_t *proposal = json_object ();
    json_object_set_new (proposal, "big", json_stringn (big, S_BIG));
    free (big);
    printf ("hostile rules against time_ms %d (instructions 1e12, memory 64 MiB), worst of "
            "%d runs\n\n", S_TIME_MS, runs);
    printf ("%-26s %10s %8s %10s %8s  %s\n", "function", "wall ms", "ratio", "cpu ms", "ratio",
            "verdict");
    double worst_ratio = 0, worst_cpu_ratio = 0;
    const char *worst_name = "";
    int failures = 0;
    for (size_t i = 0; i < S_COUNT; i++) {
        char src[1024];
        snprintf (src, sizeof src,
                  "local MISS = '[' .. string.rep('b', 200) .. ']'\n"
                  "local HIT = '[' .. string.rep('b', 200) .. 'a]'\n"
                  "local S_BIG = %d\n"
                  "return { name = 'overrun', description = 'hostile', check = function (p)\n"
                  "%s\nend }\n", S_BIG, s_rules [i].body);
        char *err = NULL;
        mesh_sandbox_t *rule = mesh_sandbox_load_buffer ("overrun.lua", src, strlen (src),
                                                         &limits, &err);
        if (!rule) {
            printf ("%-26s cannot load: %s\n", s_rules [i].name, err);
            free (err);
            failures++;
            continue;
        }
        double worst = 0, worst_cpu = 0;
        char *reason = NULL;
        mesh_verdict_t verdict = MESH_VERDICT_ACCEPT;
        for (int r = 0; r < runs; r++) {
            struct timespec a, b, ca, cb;
            free (reason);
            reason = NULL;
            clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ca);
            clock_gettime (CLOCK_MONOTONIC, &a);
            verdict = mesh_sandbox_eval (rule, proposal, NULL, &reason);
            clock_gettime (CLOCK_MONOTONIC, &b);
            clock_gettime (CLOCK_THREAD_CPUTIME_ID, &cb);
            if (s_ms (&a, &b) > worst)
                worst = s_ms (&a, &b);
            if (s_ms (&ca, &cb) > worst_cpu)
                worst_cpu = s_ms (&ca, &cb);
        }
        double ratio = worst / S_TIME_MS;
        printf ("%-26s %10.1f %8.2f %10.1f %8.2f  %s%s%s\n", s_rules [i].name, worst, ratio,
                worst_cpu, worst_cpu / S_TIME_MS, mesh_verdict_name (verdict),
                reason ? ": " : "", reason ? reason : "");
        if (worst_cpu / S_TIME_MS > worst_cpu_ratio)
            worst_cpu_ratio = worst_cpu / S_TIME_MS;
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            worst_name = s_rules [i].name;
        }
        free (reason);
        mesh_sandbox_destroy (&rule);
    }
    json_decref (proposal);
    printf ("\nworst ratio %.2f wall (%s), %.2f cpu; target <= 2 (2 x time_ms + 5 ms = %.2f)\n",
            worst_ratio, worst_name, worst_cpu_ratio, (2.0 * S_TIME_MS + 5) / S_TIME_MS);
    return failures ? 1 : 0;
}
