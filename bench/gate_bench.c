/*  gate_bench - what the Lua sandbox costs: the shipped rules as one chain, on a
 *  realistic proposal and ctx, three ways in one run.
 *
 *  1. gate:     mesh_gate_check, as an agent calls it: the builtin check, the chain in
 *               a pooled vm (fresh environment per rule, read-only input views,
 *               limits armed), the verdicts recorded as JSON.
 *  2. vm:       the chain alone (mesh_vm_eval), without builtin and records.
 *  3. baseline: the same rule files in a plain lua_State with every library, no hook,
 *               no allocator cap, each rule's table made once and its check called
 *               directly (lua_pcall) on input tables converted once, outside the
 *               clock.  This is the cheapest a host could do, so the ratio is the
 *               whole cost of isolation.
 *
 *  The three run in turns, a round of each (S_ROUNDS rounds), so that a slower
 *  stretch of a shared host falls on all three alike and the ratios stay fair.
 *  Prints evaluations per second on one core (one thread), p50/p99/max latency per
 *  chain, and the memory of one sandbox state.  Figures and the command are recorded
 *  in docs/perf/gates.md.  Usage: gate_bench [N] (default 200000), from the repository
 *  root.  Latencies include the clock reads (about 20 ns each).
 */
#include "gate.h"
#include "internal.h"
#include "sandbox.h"
#include "vm.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *s_rules[] = {
    "rules/action_allowlist.lua", "rules/exec_args.lua", "rules/rate_limit.lua",
    "rules/blast_radius.lua", "rules/confidence_floor.lua", "rules/change_freeze.lua",
    "rules/rationale_required.lua",
};
#define S_RULES (sizeof s_rules / sizeof s_rules [0])

static const char *s_proposal =
    "{\"action\": \"scale_out\", \"params\": {\"service\": \"web\", \"replicas\": 3},"
    " \"confidence\": 0.86, \"rationale\": \"CPU on the web series is far above its baseline;"
    " more replicas spread the load.\"}";

//  What agents/reason.c gives the gate: incident, event, history of 20 actions.
static json_t *
s_ctx (void)
{
    double now = 1764151200.25;         //  a Wednesday, no freeze
    json_t *window = json_array ();
    for (int i = 0; i < 16; i++)
        json_array_append_new (window, json_real (41.0 + (i % 5) * 0.7 + (i == 15) * 56));
    json_t *history = json_array ();
    const char *targets[] = { "api", "search", "checkout", "api", "web" };
    for (int i = 0; i < 20; i++)
        json_array_append_new (history, json_pack ("{s:s, s:s, s:f}", "action",
                                                   i % 4 ? "scale_out" : "escalate", "target",
                                                   targets [i % 5], "at",
                                                   now - 86400 + i * 3000.0));
    return json_pack ("{s:s, s:f, s:{s:s, s:f, s:f, s:s, s:f, s:f, s:f, s:I, s:o, s:I, s:I,"
                      " s:{s:s, s:i, s:I}}, s:{s:s, s:s, s:f, s:I}, s:n, s:o}",
                      "agent", "ops", "now", now,
                      "incident", "series", "web-1/cpu", "value", 97.5, "score", 0.9991,
                      "detector", "ewma", "mean", 41.2, "stddev", 3.1, "z", 18.2,
                      "n", (json_int_t) 5000, "window", window,
                      "started_at", (json_int_t) now, "ts_ms", (json_int_t) (now * 1000),
                      "trigger", "topic", "metrics", "partition", 2, "offset",
                      (json_int_t) 4711,
                      "event", "host", "web-1", "metric", "cpu", "value", 97.5, "ts",
                      (json_int_t) (now * 1000),
                      "action", "history", history);
}

//  agents/reason.c sets ctx.action to the declared spec of the proposed action before
//  it calls the gate; so does the bench.
static void
s_set_action (json_t *ctx)
{
    json_object_set_new (ctx, "action", json_pack (
        "{s:s, s:s, s:{s:{s:s, s:b, s:i, s:s}, s:{s:s, s:b, s:i, s:i}}}",
        "name", "scale_out", "kind", "kafka", "params",
        "service", "type", "string", "required", 1, "max_length", 64, "pattern",
        "[a-z][a-z0-9-]{0,62}",
        "replicas", "type", "integer", "required", 1, "min", 1, "max", 10));
}

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

//  CPU time of this thread: evaluations per CPU second is the figure per core, and it
//  does not drop when other processes share the machine.
static int64_t
s_cpu_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
s_cmp (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double per_cpu_second, per_second, p50_us, p99_us, max_us;
} s_figures_t;

//  Run each of the COUNT ways N times, in S_ROUNDS rounds taken in turns (a round of
//  the first, of the second, ..., then the next round); latencies of every call, and
//  per way the median of its rounds' rates (a round that another process slowed down
//  does not set the figure).
#define S_ROUNDS 9
#define S_WAYS 3

typedef struct {
    void (*one) (void *);
    void *arg;
    int64_t *lat;                       //  N entries
    double cpu_rate[S_ROUNDS], wall_rate[S_ROUNDS];
} s_way_t;

static double
s_median (double *v)
{
    for (int i = 0; i < S_ROUNDS; i++)
        for (int j = i + 1; j < S_ROUNDS; j++)
            if (v [j] < v [i]) {
                double t = v [i]; v [i] = v [j]; v [j] = t;
            }
    return v [S_ROUNDS / 2];
}

static void
s_measure (s_way_t *ways, int count, size_t n, s_figures_t *figures)
{
    size_t per_round = n / S_ROUNDS;
    for (int r = 0; r < S_ROUNDS; r++)
        for (int w = 0; w < count; w++) {
            s_way_t *way = &ways [w];
            int64_t *lat = way->lat + (size_t) r * per_round;
            int64_t t0 = s_now_ns (), c0 = s_cpu_ns ();
            for (size_t i = 0; i < per_round; i++) {
                int64_t start = s_now_ns ();
                way->one (way->arg);
                lat [i] = s_now_ns () - start;
            }
            way->cpu_rate [r] = per_round / ((s_cpu_ns () - c0) / 1e9);
            way->wall_rate [r] = per_round / ((s_now_ns () - t0) / 1e9);
        }
    size_t k = per_round * S_ROUNDS;
    for (int w = 0; w < count; w++) {
        s_way_t *way = &ways [w];
        qsort (way->lat, k, sizeof (int64_t), s_cmp);
        figures [w] = (s_figures_t) {
            .per_cpu_second = s_median (way->cpu_rate),
            .per_second = s_median (way->wall_rate),
            .p50_us = way->lat [k / 2] / 1e3,
            .p99_us = way->lat [(size_t) (k * 0.99)] / 1e3,
            .max_us = way->lat [k - 1] / 1e3,
        };
    }
}

static void
s_print (const char *name, s_figures_t f)
{
    printf ("%-36s %10.0f %10.0f %7.2f %7.2f %8.1f\n", name, f.per_cpu_second, f.per_second,
            f.p50_us, f.p99_us, f.max_us);
}

//  --- the plain baseline ---------------------------------------------------------------

//  Push JSON as plain Lua tables (null: nil in objects, mesh.null in arrays).
static void
s_push_plain (lua_State *L, json_t *v, bool in_array)
{
    switch (json_typeof (v)) {
        case JSON_OBJECT: {
            lua_createtable (L, 0, (int) json_object_size (v));
            const char *k;
            json_t *m;
            json_object_foreach (v, k, m) {
                if (json_is_null (m))
                    continue;
                s_push_plain (L, m, false);
                lua_setfield (L, -2, k);
            }
            break;
        }
        case JSON_ARRAY: {
            lua_createtable (L, (int) json_array_size (v), 0);
            for (size_t i = 0; i < json_array_size (v); i++) {
                s_push_plain (L, json_array_get (v, i), true);
                lua_rawseti (L, -2, (lua_Integer) i + 1);
            }
            break;
        }
        case JSON_STRING:  lua_pushstring (L, json_string_value (v)); break;
        case JSON_INTEGER: lua_pushinteger (L, json_integer_value (v)); break;
        case JSON_REAL:    lua_pushnumber (L, json_real_value (v)); break;
        case JSON_TRUE:    lua_pushboolean (L, 1); break;
        case JSON_FALSE:   lua_pushboolean (L, 0); break;
        default:
            if (in_array)
                lua_pushlightuserdata (L, NULL);
            else
                lua_pushnil (L);
    }
}

typedef struct {
    lua_State *L;
    int checks, proposal;               //  stack indexes
    size_t accepted;
} s_plain_t;

static void
s_plain_one (void *arg)
{
    s_plain_t *b = arg;
    lua_State *L = b->L;
    for (size_t r = 0; r < S_RULES; r++) {
        lua_pushvalue (L, b->checks + (int) r);
        lua_pushvalue (L, b->proposal);
        lua_pushvalue (L, b->proposal + 1);
        if (lua_pcall (L, 2, 2, 0) == LUA_OK && lua_toboolean (L, -2))
            b->accepted++;
        lua_settop (L, b->proposal + 1);
    }
}

//  The plain state with the rule files loaded and the inputs converted, warmed up.
static void
s_baseline_new (s_plain_t *b, json_t *proposal, json_t *ctx)
{
    lua_State *L = luaL_newstate ();
    luaL_openlibs (L);
    lua_getglobal (L, "string");
    lua_getfield (L, -1, "find");
    mesh_meshlib_push (L);
    lua_setglobal (L, "mesh");
    lua_pop (L, 1);
    *b = (s_plain_t) { .L = L, .checks = lua_gettop (L) + 1 };
    for (size_t i = 0; i < S_RULES; i++) {
        if (luaL_loadfile (L, s_rules [i]) != LUA_OK || lua_pcall (L, 0, 1, 0) != LUA_OK) {
            fprintf (stderr, "baseline: %s\n", lua_tostring (L, -1));
            exit (1);
        }
        lua_getfield (L, -1, "check");
        lua_remove (L, -2);
    }
    b->proposal = lua_gettop (L) + 1;
    s_push_plain (L, proposal, false);
    s_push_plain (L, ctx, false);
    for (int i = 0; i < 1000; i++)
        s_plain_one (b);
    if (b->accepted != 1000 * S_RULES) {
        fprintf (stderr, "baseline: %zu checks accepted\n", b->accepted);
        exit (1);
    }
    b->accepted = 0;
}

//  --- the sandboxed chain -------------------------------------------------------------

static mesh_param_spec_t s_scale_params[] = {
    { .name = (char *) "service", .type = MESH_PARAM_STRING, .required = true,
      .pattern = (char *) "[a-z][a-z0-9-]{0,62}", .max_length = 64 },
    { .name = (char *) "replicas", .type = MESH_PARAM_INTEGER, .required = true,
      .has_min = true, .min = 1, .has_max = true, .max = 10 },
};
static mesh_param_spec_t s_escalate_params[] = {
    { .name = (char *) "summary", .type = MESH_PARAM_STRING, .required = false,
      .max_length = 500 },
};
static mesh_action_spec_t s_actions[] = {
    { .name = (char *) "scale_out", .kind = MESH_ACTION_KAFKA, .topic = (char *) "ops",
      .params = s_scale_params, .param_count = 2 },
    { .name = (char *) "escalate", .kind = MESH_ACTION_LOG, .params = s_escalate_params,
      .param_count = 1 },
};
static char *s_agent_actions[] = { (char *) "scale_out", (char *) "escalate" };

typedef struct {
    mesh_gate_t *gate;
    mesh_vm_t *vm;
    json_t *proposal, *ctx;
    mesh_verdict_t verdicts[S_RULES];
    char *reasons[S_RULES];
} s_chain_t;

static void
s_gate_one (void *arg)
{
    s_chain_t *c = arg;
    json_t *verdicts = json_array ();
    mesh_gate_check (c->gate, c->proposal, c->ctx, verdicts, NULL);
    json_decref (verdicts);
}

static void
s_vm_one (void *arg)
{
    s_chain_t *c = arg;
    mesh_vm_eval (c->vm, c->proposal, c->ctx, c->verdicts, c->reasons, NULL);
}

//  The research note's reproducer: backtracking in C, which no instruction hook sees.
//  The worst of TRIES evaluations, in milliseconds, and the verdict.
static double
s_reproducer (int tries, char **reason_p)
{
    const char *src = "return { name = \"backtrack\", description = \"reproducer\", "
                      "check = function () return string.find(string.rep(\"a\", 20000), "
                      "\".-.-.-.-b$\") ~= nil end }";
    mesh_sandbox_t *rule = mesh_sandbox_load_buffer ("backtrack.lua", src, strlen (src), NULL,
                                                     NULL);
    double worst = 0;
    for (int i = 0; i < tries; i++) {
        free (*reason_p);
        *reason_p = NULL;
        int64_t t0 = s_now_ns ();
        mesh_sandbox_eval (rule, NULL, NULL, reason_p);
        double ms = (s_now_ns () - t0) / 1e6;
        if (ms > worst)
            worst = ms;
    }
    mesh_sandbox_destroy (&rule);
    return worst;
}

int
main (int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t) atol (argv [1]) : 200000;
    if (n < 1000)
        n = 1000;
    json_t *proposal = json_loads (s_proposal, 0, NULL);
    json_t *ctx = s_ctx ();
    s_set_action (ctx);

    mesh_config_t cfg = {
        .lua_instructions = 1000000, .lua_memory = 8 << 20, .lua_time_ms = 50,
        .actions = s_actions, .action_count = 2,
        .global_rules = (char **) s_rules, .global_rule_count = S_RULES,
    };
    mesh_agent_config_t agent = {
        .name = (char *) "ops", .actions = s_agent_actions, .action_count = 2,
    };
    char *err = NULL;
    s_chain_t c = { .proposal = proposal, .ctx = ctx };
    c.gate = mesh_gate_new (&cfg, &agent, &err);
    if (!c.gate) {
        fprintf (stderr, "gate_bench: %s\n", err);
        return 1;
    }
    //  Warm up, and make sure the chain accepts (a rejecting chain would be cheaper).
    for (int i = 0; i < 1000; i++) {
        json_t *verdicts = json_array ();
        if (!mesh_gate_check (c.gate, proposal, ctx, verdicts, NULL)) {
            char *text = json_dumps (verdicts, JSON_COMPACT);
            fprintf (stderr, "gate_bench: the chain does not accept: %s\n", text);
            return 1;
        }
        json_decref (verdicts);
    }
    //  The chain alone, in a vm of its own.
    mesh_sandbox_t *rules[S_RULES];
    for (size_t i = 0; i < S_RULES; i++)
        if (!(rules [i] = mesh_sandbox_load (s_rules [i], NULL, &err))) {
            fprintf (stderr, "gate_bench: %s\n", err);
            return 1;
        }
    c.vm = mesh_vm_new (rules, S_RULES, NULL);
    for (int i = 0; i < 1000; i++)
        s_vm_one (&c);
    s_plain_t plain;
    s_baseline_new (&plain, proposal, ctx);

    s_way_t ways[S_WAYS] = {
        { .one = s_gate_one, .arg = &c, .lat = malloc (n * sizeof (int64_t)) },
        { .one = s_vm_one, .arg = &c, .lat = malloc (n * sizeof (int64_t)) },
        { .one = s_plain_one, .arg = &plain, .lat = malloc (n * sizeof (int64_t)) },
    };
    s_figures_t figures[S_WAYS];
    s_measure (ways, S_WAYS, n, figures);
    s_figures_t gate_f = figures [0], vm_f = figures [1], plain_f = figures [2];
    if (plain.accepted != (n / S_ROUNDS) * S_ROUNDS * S_RULES) {
        fprintf (stderr, "baseline: %zu checks accepted\n", plain.accepted);
        return 1;
    }
    lua_close (plain.L);
    size_t state_bytes = mesh_gate_state_memory (c.gate);
    size_t built_bytes = mesh_vm_baseline (c.vm);
    size_t vm_bytes = mesh_vm_memory (c.vm);
    size_t live_bytes = mesh_vm_collect (c.vm);

    char *reason = NULL;
    double reproducer_ms = s_reproducer (20, &reason);

    printf ("gate_bench: %zu rules in one chain, %zu evaluations in %d rounds, one thread\n",
            S_RULES, n, S_ROUNDS);
    printf ("%-36s %10s %10s %7s %7s %8s\n", "chains", "per CPU-s", "per wall-s", "p50 us",
            "p99 us", "max us");
    s_print ("gate (builtin + sandbox + records)", gate_f);
    s_print ("sandboxed chain alone (vm)", vm_f);
    s_print ("baseline: plain Lua, no protection", plain_f);
    printf ("cost of isolation (per CPU-s): baseline/gate %.2fx, baseline/vm %.2fx\n",
            plain_f.per_cpu_second / gate_f.per_cpu_second,
            plain_f.per_cpu_second / vm_f.per_cpu_second);
    printf ("memory per state: %zu KiB as built (libraries + %zu rules, top levels run), "
            "%zu KiB live after the run, %zu KiB held with garbage not yet collected "
            "(gate's state: %zu KiB)\n", built_bytes / 1024, S_RULES, live_bytes / 1024,
            vm_bytes / 1024, state_bytes / 1024);
    printf ("backtracking reproducer (find .-.-.-.-b$ in 20000 bytes): %.3f ms at worst, %s\n",
            reproducer_ms, reason ? reason : "(no reason)");
    printf ("target: >= 100000 chains per CPU-second and p99 < 50 us: gate %s, vm %s\n",
            gate_f.per_cpu_second >= 100000 && gate_f.p99_us < 50 ? "met" : "NOT MET",
            vm_f.per_cpu_second >= 100000 && vm_f.p99_us < 50 ? "met" : "NOT MET");

    free (reason);
    mesh_vm_destroy (&c.vm);
    for (size_t i = 0; i < S_RULES; i++)
        mesh_sandbox_destroy (&rules [i]);
    mesh_gate_destroy (&c.gate);
    json_decref (proposal);
    json_decref (ctx);
    for (int w = 0; w < S_WAYS; w++)
        free (ways [w].lat);
    return 0;
}
