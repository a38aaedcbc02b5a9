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

static s_figures_t
s_figures (int64_t *lat, size_t n, int64_t total_ns, int64_t cpu_ns)
{
    qsort (lat, n, sizeof (int64_t), s_cmp);
    s_figures_t f = {
        .per_cpu_second = n / (cpu_ns / 1e9),
        .per_second = n / (total_ns / 1e9),
        .p50_us = lat [n / 2] / 1e3,
        .p99_us = lat [(size_t) (n * 0.99)] / 1e3,
        .max_us = lat [n - 1] / 1e3,
    };
    return f;
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

static s_figures_t
s_baseline (json_t *proposal, json_t *ctx, size_t n, int64_t *lat)
{
    lua_State *L = luaL_newstate ();
    luaL_openlibs (L);
    lua_getglobal (L, "string");
    lua_getfield (L, -1, "find");
    mesh_meshlib_push (L);
    lua_setglobal (L, "mesh");
    lua_pop (L, 1);
    int checks = lua_gettop (L) + 1;
    for (size_t i = 0; i < S_RULES; i++) {
        if (luaL_loadfile (L, s_rules [i]) != LUA_OK || lua_pcall (L, 0, 1, 0) != LUA_OK) {
            fprintf (stderr, "baseline: %s\n", lua_tostring (L, -1));
            exit (1);
        }
        lua_getfield (L, -1, "check");
        lua_remove (L, -2);
    }
    int p = lua_gettop (L) + 1;
    s_push_plain (L, proposal, false);
    s_push_plain (L, ctx, false);
    size_t accepted = 0;
    int64_t t0 = s_now_ns (), c0 = s_cpu_ns ();
    for (size_t i = 0; i < n; i++) {
        int64_t start = s_now_ns ();
        for (size_t r = 0; r < S_RULES; r++) {
            lua_pushvalue (L, checks + (int) r);
            lua_pushvalue (L, p);
            lua_pushvalue (L, p + 1);
            if (lua_pcall (L, 2, 2, 0) == LUA_OK && lua_toboolean (L, -2))
                accepted++;
            lua_settop (L, p + 1);
        }
        lat [i] = s_now_ns () - start;
    }
    int64_t total = s_now_ns () - t0, cpu = s_cpu_ns () - c0;
    if (accepted != n * S_RULES) {
        fprintf (stderr, "baseline: %zu of %zu checks accepted\n", accepted, n * S_RULES);
        exit (1);
    }
    lua_close (L);
    return s_figures (lat, n, total, cpu);
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

int
main (int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t) atol (argv [1]) : 200000;
    if (n < 100)
        n = 100;
    json_t *proposal = json_loads (s_proposal, 0, NULL);
    json_t *ctx = s_ctx ();
    s_set_action (ctx);
    int64_t *lat = malloc (n * sizeof (int64_t));

    mesh_config_t cfg = {
        .lua_instructions = 1000000, .lua_memory = 8 << 20, .lua_time_ms = 50,
        .actions = s_actions, .action_count = 2,
        .global_rules = (char **) s_rules, .global_rule_count = S_RULES,
    };
    mesh_agent_config_t agent = {
        .name = (char *) "ops", .actions = s_agent_actions, .action_count = 2,
    };
    char *err = NULL;
    mesh_gate_t *gate = mesh_gate_new (&cfg, &agent, &err);
    if (!gate) {
        fprintf (stderr, "gate_bench: %s\n", err);
        return 1;
    }
    //  Warm up, and make sure the chain accepts (a rejecting chain would be cheaper).
    for (int i = 0; i < 1000; i++) {
        json_t *verdicts = json_array ();
        mesh_fail_t fail;
        if (!mesh_gate_check (gate, proposal, ctx, verdicts, &fail)) {
            char *text = json_dumps (verdicts, JSON_COMPACT);
            fprintf (stderr, "gate_bench: the chain does not accept: %s\n", text);
            return 1;
        }
        json_decref (verdicts);
    }
    int64_t t0 = s_now_ns (), c0 = s_cpu_ns ();
    for (size_t i = 0; i < n; i++) {
        int64_t start = s_now_ns ();
        json_t *verdicts = json_array ();
        mesh_gate_check (gate, proposal, ctx, verdicts, NULL);
        json_decref (verdicts);
        lat [i] = s_now_ns () - start;
    }
    s_figures_t gate_f = s_figures (lat, n, s_now_ns () - t0, s_cpu_ns () - c0);
    size_t state_bytes = mesh_gate_state_memory (gate);

    //  The chain alone, in a vm of its own, on the ctx as the gate completes it.
    mesh_sandbox_t *rules[S_RULES];
    for (size_t i = 0; i < S_RULES; i++)
        if (!(rules [i] = mesh_sandbox_load (s_rules [i], NULL, &err))) {
            fprintf (stderr, "gate_bench: %s\n", err);
            return 1;
        }
    json_t *full_ctx = json_deep_copy (ctx);
    mesh_vm_t *vm = mesh_vm_new (rules, S_RULES, NULL);
    mesh_verdict_t verdicts[S_RULES];
    char *reasons[S_RULES];
    for (int i = 0; i < 1000; i++)
        mesh_vm_eval (vm, proposal, full_ctx, verdicts, reasons);
    t0 = s_now_ns ();
    c0 = s_cpu_ns ();
    for (size_t i = 0; i < n; i++) {
        int64_t start = s_now_ns ();
        mesh_vm_eval (vm, proposal, full_ctx, verdicts, reasons);
        lat [i] = s_now_ns () - start;
    }
    s_figures_t vm_f = s_figures (lat, n, s_now_ns () - t0, s_cpu_ns () - c0);
    size_t baseline_bytes = mesh_vm_baseline (vm);

    s_figures_t plain_f = s_baseline (proposal, ctx, n, lat);

    printf ("gate_bench: %zu rules in one chain, %zu evaluations, one thread\n", S_RULES, n);
    printf ("%-36s %10s %10s %7s %7s %8s\n", "", "per CPU-s", "per wall-s", "p50 us",
            "p99 us", "max us");
    s_print ("gate (builtin + sandbox + records)", gate_f);
    s_print ("sandboxed chain alone (vm)", vm_f);
    s_print ("baseline: plain Lua, no protection", plain_f);
    printf ("cost of isolation (CPU): baseline/gate %.2fx, baseline/vm %.2fx\n",
            plain_f.per_cpu_second / gate_f.per_cpu_second,
            plain_f.per_cpu_second / vm_f.per_cpu_second);
    printf ("memory per state: %zu KiB in use, %zu KiB as built (libraries + %zu compiled "
            "rules)\n", state_bytes / 1024, baseline_bytes / 1024, S_RULES);
    printf ("target: >= 100000 chains per CPU-second, p99 < 50 us: %s\n",
            gate_f.per_cpu_second >= 100000 && gate_f.p99_us < 50 ? "met" : "NOT MET");

    mesh_vm_destroy (&vm);
    for (size_t i = 0; i < S_RULES; i++)
        mesh_sandbox_destroy (&rules [i]);
    mesh_gate_destroy (&gate);
    json_decref (full_ctx);
    json_decref (proposal);
    json_decref (ctx);
    free (lat);
    return 0;
}
