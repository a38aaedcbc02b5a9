/*  test_config - the config loader: the reference file, defaults, paths, and
 *  one test per class of problem, each asserting the exact LINE:COL it is
 *  reported at and what the message says.
 *
 *  Most tests write a small YAML file into a temporary directory, load it with
 *  the problems going to a memory stream, and look for "LINE:COL: message" in
 *  what was printed.  s_base is a valid config the tests extend at line 17 and
 *  later, so the positions in the assertions can be counted by eye.
 *  Run from the repository root (the reference config is config/meshd.yaml).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "kafka_conf.h"

#include <sys/stat.h>

static char s_dir [64];

static const char *s_base =
    "kafka:\n"                          //  1
    "  brokers: embedded\n"             //  2
    "backends:\n"                       //  3
    "  b:\n"                            //  4
    "    kind: scripted\n"              //  5
    "    file: r.jsonl\n"               //  6
    "actions:\n"                        //  7
    "  esc:\n"                          //  8
    "    kind: log\n"                   //  9
    "agents:\n"                         //  10
    "  - name: a\n"                     //  11
    "    topics: [m]\n"                 //  12
    "    fields: {key: [host]}\n"       //  13
    "    reason: {backend: b}\n"        //  14
    "    actions: [esc]\n"              //  15
    "    fallback: esc\n";              //  16

static int
s_remove (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove (path);
}

static int
s_setup (void **state)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/test_config.XXXXXX");
    return mkdtemp (s_dir) ? 0 : -1;
}

static int
s_teardown (void **state)
{
    return nftw (s_dir, s_remove, 8, FTW_DEPTH | FTW_PHYS);
}

//  Write TEXT (LENGTH bytes) to NAME in the temporary directory; returns the path.
static char *
s_write (const char *name, const char *text, size_t length)
{
    char *path;
    assert_true (asprintf (&path, "%s/%s", s_dir, name) > 0);
    FILE *file = fopen (path, "wb");
    assert_non_null (file);
    assert_int_equal (fwrite (text, 1, length, file), length);
    assert_int_equal (fclose (file), 0);
    return path;
}

//  Load PATH; the printed problems go to *OUT_P (caller frees).
static int
s_load_path (const char *path, mesh_config_t **cfg_p, char **out_p)
{
    size_t size;
    FILE *err = open_memstream (out_p, &size);
    assert_non_null (err);
    int problems = mesh_config_load (path, cfg_p, err);
    fclose (err);
    //  The contract: the config is set exactly when there is no problem.
    if (problems == 0)
        assert_non_null (*cfg_p);
    else
        assert_null (*cfg_p);
    //  One line per problem (plus the "too many" note past the cap).
    size_t lines = 0;
    for (const char *p = *out_p; *p; p++)
        lines += *p == '\n';
    assert_int_equal (lines, (size_t) problems + (problems == 100));
    return problems;
}

static int
s_load (const char *text, mesh_config_t **cfg_p, char **out_p)
{
    char *path = s_write ("c.yaml", text, strlen (text));
    int problems = s_load_path (path, cfg_p, out_p);
    free (path);
    return problems;
}

//  s_base followed by EXTRA.
static int
s_load_base (const char *extra, mesh_config_t **cfg_p, char **out_p)
{
    char *text;
    assert_true (asprintf (&text, "%s%s", s_base, extra) > 0);
    int problems = s_load (text, cfg_p, out_p);
    free (text);
    return problems;
}

//  OUT holds a line with ":WHERE" in it, e.g. ":3:5: daemon.foo: ...".
static void
s_expect (const char *out, const char *where)
{
    char *needle;
    assert_true (asprintf (&needle, ":%s", where) > 0);
    if (!strstr (out, needle))
        fail_msg ("expected '%s' in:\n%s", where, out);
    free (needle);
}

//  Turn the line LINE (with its newline) of TEXT into a comment of the same
//  length, so that the positions of the lines after it do not move.
static void
s_blank (char *text, const char *line)
{
    char *at = strstr (text, line);
    assert_non_null (at);
    at [0] = '#';
    memset (at + 1, ' ', strlen (line) - 2);
}

//  The 1-based line of the first line of FILE containing TEXT.
static int
s_line_of (const char *file, const char *text)
{
    FILE *f = fopen (file, "r");
    assert_non_null (f);
    char line [1024];
    int number = 0, found = 0;
    while (!found && fgets (line, sizeof line, f)) {
        number++;
        if (strstr (line, text))
            found = number;
    }
    fclose (f);
    assert_true (found > 0);
    return found;
}

//  --------------------------------------------------------------------------

static void
test_reference_config (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_path ("config/meshd.yaml", &cfg, &out), 0);
    assert_string_equal (out, "");

    assert_string_equal (cfg->path, "config/meshd.yaml");
    assert_string_equal (cfg->runtime_dir, "/run/meshd");
    assert_string_equal (cfg->state_dir, "/var/lib/meshd");
    assert_string_equal (cfg->decision_log, "/var/lib/meshd/decisions.jsonl");
    assert_null (cfg->agent_binary);
    assert_int_equal (cfg->heartbeat_ms, 1000);
    assert_int_equal (cfg->liveness_timeout_ms, 10000);
    assert_int_equal (cfg->drain_timeout_ms, 10000);
    assert_int_equal (cfg->backoff_initial_ms, 100);
    assert_int_equal (cfg->backoff_max_ms, 30000);
    assert_int_equal (cfg->healthy_after_s, 60);
    assert_int_equal (cfg->restart_intensity, 5);
    assert_int_equal (cfg->restart_period_s, 60);

    assert_string_equal (cfg->brokers, "localhost:9092");
    assert_false (cfg->embedded);
    assert_int_equal (cfg->embedded_topic_count, 0);
    assert_int_equal (cfg->session_timeout_ms, 10000);
    assert_int_equal (cfg->commit_interval_ms, 1000);
    assert_int_equal (cfg->prefetch_messages, 500000);

    assert_int_equal (cfg->lua_instructions, 1000000);
    assert_int_equal (cfg->lua_memory, 8388608);
    assert_int_equal (cfg->lua_time_ms, 50);
    assert_int_equal (cfg->global_rule_count, 1);
    assert_string_equal (cfg->global_rules [0], "config/../rules/action_allowlist.lua");
    assert_int_equal (cfg->global_rule_pos [0].line,
                      s_line_of ("config/meshd.yaml", "rules: [../rules/action_allowlist.lua]"));
    assert_int_equal (cfg->global_rule_pos [0].col, 11);

    assert_int_equal (cfg->backend_count, 2);
    const mesh_backend_config_t *scripted = mesh_config_backend (cfg, "scripted");
    assert_non_null (scripted);
    assert_int_equal (scripted->kind, MESH_BACKEND_SCRIPTED);
    assert_string_equal (scripted->file, "config/demo-responses.jsonl");
    const mesh_backend_config_t *local = mesh_config_backend (cfg, "local");
    assert_non_null (local);
    assert_int_equal (local->kind, MESH_BACKEND_OPENAI);
    assert_string_equal (local->url, "http://127.0.0.1:8080");
    assert_string_equal (local->model, "qwen2.5-1.5b-instruct");
    assert_string_equal (local->api_key_file, "/etc/meshd/llm.key");
    assert_int_equal (local->timeout_ms, 30000);
    assert_int_equal (local->connect_timeout_ms, 2000);
    assert_true (local->temperature == 0);
    assert_true (local->json_schema);
    assert_int_equal (local->flavor, MESH_FLAVOR_AUTO);
    assert_true (local->stream);
    assert_int_equal (local->first_token_timeout_ms, 15000);
    assert_int_equal (local->idle_timeout_ms, 10000);
    assert_int_equal (local->retry_attempts, 3);
    assert_int_equal (local->retry_base_ms, 250);
    assert_int_equal (local->retry_max_ms, 5000);
    assert_int_equal (local->circuit_failures, 5);
    assert_int_equal (local->circuit_open_ms, 30000);
    assert_int_equal (local->probe_interval_s, 300);
    assert_int_equal (local->context_tokens, 0);
    assert_int_equal (local->stop_count, 0);
    assert_true (local->seed);
    assert_null (local->keep_alive);
    assert_null (mesh_config_backend (cfg, "nope"));

    assert_int_equal (cfg->action_count, 2);
    const mesh_action_spec_t *scale = mesh_config_action (cfg, "scale_out");
    assert_non_null (scale);
    assert_int_equal (scale->kind, MESH_ACTION_KAFKA);
    assert_string_equal (scale->topic, "mesh.actions");
    assert_non_null (scale->description);
    assert_int_equal (scale->param_count, 3);
    assert_string_equal (scale->params [0].name, "service");
    assert_int_equal (scale->params [0].type, MESH_PARAM_STRING);
    assert_string_equal (scale->params [0].pattern, "[a-z][a-z0-9-]{0,62}");
    assert_int_equal (scale->params [0].max_length, 64);
    assert_true (scale->params [0].required);
    assert_string_equal (scale->params [1].name, "replicas");
    assert_int_equal (scale->params [1].type, MESH_PARAM_INTEGER);
    assert_true (scale->params [1].has_min && scale->params [1].has_max);
    assert_true (scale->params [1].min == 1 && scale->params [1].max == 10);
    assert_string_equal (scale->params [2].name, "severity");
    assert_false (scale->params [2].required);
    assert_int_equal (scale->params [2].enum_count, 2);
    assert_string_equal (scale->params [2].enum_values [1], "high");
    const mesh_action_spec_t *escalate = mesh_config_action (cfg, "escalate");
    assert_non_null (escalate);
    assert_int_equal (escalate->kind, MESH_ACTION_LOG);
    assert_null (escalate->topic);
    assert_int_equal (escalate->params [0].max_length, 500);
    assert_null (mesh_config_action (cfg, "reboot"));

    assert_int_equal (cfg->agent_count, 1);
    const mesh_agent_config_t *agent = mesh_config_agent (cfg, "cpu-watch");
    assert_ptr_equal (agent, &cfg->agents [0]);
    assert_null (mesh_config_agent (cfg, "other"));
    assert_int_equal (agent->topic_count, 1);
    assert_string_equal (agent->topics [0], "metrics");
    assert_string_equal (agent->group, "meshd.cpu-watch");
    assert_false (agent->observe);
    assert_int_equal (agent->key_field_count, 2);
    assert_string_equal (agent->key_fields [1], "metric");
    assert_string_equal (agent->value_field, "value");
    assert_string_equal (agent->time_field, "ts");
    assert_string_equal (agent->detector.kind, "ewma");
    assert_true (agent->detector.alpha == 0.05);
    assert_int_equal (agent->detector.warmup, 30);
    assert_true (agent->detector.threshold == 0.9995);
    assert_int_equal (agent->detector.max_series, 10000);
    assert_int_equal (agent->incident.cooldown_s, 300);
    assert_string_equal (agent->reason.backend, "local");
    assert_int_equal (agent->reason.backend_count, 1);
    assert_string_equal (agent->reason.backends [0], "local");
    assert_true (agent->reason.escalate_below == 0);
    assert_int_equal (agent->reason.max_steps, 3);
    assert_int_equal (agent->reason.max_tokens, 256);
    assert_int_equal (agent->reason.incident_token_cap, 4000);
    assert_int_equal (agent->reason.budget_tokens, 200000);
    assert_int_equal (agent->reason.budget_window_s, 3600);
    assert_int_equal (agent->reason.queue_size, 64);
    assert_int_equal (agent->reason.workers, 1);
    assert_int_equal (agent->action_count, 2);
    assert_string_equal (agent->fallback, "escalate");
    assert_int_equal (agent->rule_count, 1);
    assert_string_equal (agent->rules [0], "config/../rules/confidence_floor.lua");
    assert_int_equal (agent->rule_pos [0].line,
                      s_line_of ("config/meshd.yaml", "rules: [../rules/confidence_floor.lua]"));
    assert_int_equal (agent->rule_pos [0].col, 13);

    mesh_config_destroy (&cfg);
    assert_null (cfg);
    mesh_config_destroy (&cfg);         //  safe on NULL
    free (out);
}

//  The demo config is another engineer's file; it must load with this loader.
static void
test_demo_config (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_path ("config/demo.yaml", &cfg, &out), 0);
    assert_true (cfg->embedded);
    mesh_config_destroy (&cfg);
    free (out);
}

static void
test_minimal_defaults (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load (s_base, &cfg, &out), 0);

    assert_string_equal (cfg->runtime_dir, "/run/meshd");
    assert_string_equal (cfg->state_dir, "/var/lib/meshd");
    assert_string_equal (cfg->decision_log, "/var/lib/meshd/decisions.jsonl");
    assert_null (cfg->agent_binary);
    assert_int_equal (cfg->heartbeat_ms, 1000);
    assert_int_equal (cfg->liveness_timeout_ms, 10000);
    assert_int_equal (cfg->backoff_initial_ms, 100);
    assert_int_equal (cfg->backoff_max_ms, 30000);
    assert_int_equal (cfg->healthy_after_s, 60);
    assert_int_equal (cfg->restart_intensity, 5);
    assert_int_equal (cfg->restart_period_s, 60);
    assert_int_equal (cfg->drain_timeout_ms, 10000);
    assert_string_equal (cfg->brokers, "embedded");
    assert_true (cfg->embedded);
    assert_int_equal (cfg->embedded_partitions, 4);
    //  No explicit list: every topic the config names.
    assert_int_equal (cfg->embedded_topic_count, 1);
    assert_string_equal (cfg->embedded_topics [0], "m");
    assert_int_equal (cfg->session_timeout_ms, 10000);
    assert_int_equal (cfg->commit_interval_ms, 1000);
    assert_int_equal (cfg->prefetch_messages, 500000);
    assert_int_equal (cfg->lua_instructions, 1000000);
    assert_int_equal (cfg->lua_memory, 8 * 1024 * 1024);
    assert_int_equal (cfg->lua_time_ms, 50);
    assert_int_equal (cfg->global_rule_count, 0);

    const mesh_backend_config_t *backend = mesh_config_backend (cfg, "b");
    assert_non_null (backend);
    assert_int_equal (backend->timeout_ms, 30000);
    assert_int_equal (backend->connect_timeout_ms, 2000);
    assert_true (backend->temperature == 0);
    assert_true (backend->json_schema);
    assert_null (backend->url);
    assert_null (backend->api_key_file);

    const mesh_action_spec_t *action = mesh_config_action (cfg, "esc");
    assert_non_null (action);
    assert_null (action->description);
    assert_int_equal (action->param_count, 0);

    const mesh_agent_config_t *agent = mesh_config_agent (cfg, "a");
    assert_non_null (agent);
    assert_string_equal (agent->group, "meshd.a");
    assert_false (agent->observe);
    assert_string_equal (agent->value_field, "value");
    assert_string_equal (agent->time_field, "ts");
    assert_string_equal (agent->detector.kind, "ewma");
    assert_true (agent->detector.alpha == 0.05);
    assert_int_equal (agent->detector.warmup, 30);
    assert_true (agent->detector.threshold == 0.9995);
    assert_int_equal (agent->detector.max_series, 10000);
    assert_int_equal (agent->incident.cooldown_s, 300);
    assert_int_equal (agent->reason.max_steps, 3);
    assert_int_equal (agent->reason.max_tokens, 256);
    assert_int_equal (agent->reason.incident_token_cap, 4000);
    assert_int_equal (agent->reason.budget_tokens, 200000);
    assert_int_equal (agent->reason.budget_window_s, 3600);
    assert_int_equal (agent->reason.queue_size, 64);
    assert_int_equal (agent->reason.workers, 1);
    assert_int_equal (agent->rule_count, 0);
    mesh_config_destroy (&cfg);
    free (out);
}

//  Explicit values, and a null value meaning "the default".
static void
test_values (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    const char *text =
        "daemon:\n"
        "  agent_binary:\n"
        "  heartbeat_ms: 250\n"
        "kafka:\n"
        "  brokers: \"k1:9092,[::1]:9093\"\n"
        "backends:\n"
        "  llm:\n"
        "    kind: openai\n"
        "    url: https://llm.example:8443/\n"
        "    model: m\n"
        "    temperature: 0.7\n"
        "    json_schema: false\n"
        "    limits: {max_depth: 8, max_keys: 100}\n"
        "actions:\n"
        "  flag: {kind: log, params: {on: {type: boolean}, x: {type: number, min: -0.5}}}\n"
        "agents:\n"
        "  - {name: a.b_c-1, topics: [t1, t2], mode: observe, fields: {key: [h]},\n"
        "     reason: {backend: llm, budget_tokens: 1000000000}, actions: [flag],\n"
        "     fallback: flag, group: g}\n";
    assert_int_equal (s_load (text, &cfg, &out), 0);
    assert_null (cfg->agent_binary);
    assert_int_equal (cfg->heartbeat_ms, 250);
    assert_string_equal (cfg->brokers, "k1:9092,[::1]:9093");
    assert_false (cfg->embedded);
    const mesh_backend_config_t *llm = mesh_config_backend (cfg, "llm");
    assert_string_equal (llm->url, "https://llm.example:8443");    //  trailing / dropped
    assert_true (llm->temperature == 0.7);
    assert_false (llm->json_schema);
    assert_int_equal (llm->limits.max_depth, 8);
    assert_int_equal (llm->limits.max_keys, 100);
    assert_int_equal (llm->limits.max_bytes, 65536);               //  the defaults
    assert_int_equal (llm->limits.max_string, 4096);
    const mesh_action_spec_t *flag = mesh_config_action (cfg, "flag");
    assert_int_equal (flag->params [0].type, MESH_PARAM_BOOLEAN);
    assert_false (flag->params [0].has_min);
    assert_int_equal (flag->params [1].type, MESH_PARAM_NUMBER);
    assert_true (flag->params [1].has_min);
    assert_false (flag->params [1].has_max);
    assert_true (flag->params [1].min == -0.5);
    const mesh_agent_config_t *agent = &cfg->agents [0];
    assert_true (agent->observe);
    assert_string_equal (agent->group, "g");
    assert_int_equal (agent->topic_count, 2);
    assert_true (agent->reason.budget_tokens == 1000000000L);
    mesh_config_destroy (&cfg);
    free (out);
}

static void
test_relative_paths (void **state)
{
    char *sub;
    assert_true (asprintf (&sub, "%s/etc", s_dir) > 0);
    assert_int_equal (mkdir (sub, 0700), 0);
    //  The rule files exist (the loader checks who may write them); /etc/hostname stands
    //  for an absolute one, /bin/sh for an agent binary: both are root's, mode 0644/0755.
    char *rule_dir;
    assert_true (asprintf (&rule_dir, "%s/r", sub) > 0);
    assert_int_equal (mkdir (rule_dir, 0700), 0);
    free (rule_dir);
    free (s_write ("etc/r/one.lua", "", 0));
    free (s_write ("etc/mine.lua", "", 0));
    const char *text =
        "daemon:\n"
        "  runtime_dir: run\n"
        "  state_dir: ../state\n"
        "  agent_binary: /bin/sh\n"
        "gates:\n"
        "  rules: [r/one.lua, /etc/hostname]\n"
        "kafka: {brokers: embedded}\n"
        "backends: {b: {kind: openai, url: 'http://h:1', model: m, api_key_file: key}}\n"
        "actions: {esc: {kind: log}}\n"
        "agents:\n"
        "  - {name: a, topics: [m], fields: {key: [h]}, reason: {backend: b},\n"
        "     actions: [esc], fallback: esc, rules: [mine.lua]}\n";
    char *path = s_write ("etc/c.yaml", text, strlen (text));
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_path (path, &cfg, &out), 0);

    char expect [256];
    snprintf (expect, sizeof expect, "%s/run", sub);
    assert_string_equal (cfg->runtime_dir, expect);
    snprintf (expect, sizeof expect, "%s/../state", sub);
    assert_string_equal (cfg->state_dir, expect);
    snprintf (expect, sizeof expect, "%s/../state/decisions.jsonl", sub);
    assert_string_equal (cfg->decision_log, expect);
    assert_string_equal (cfg->agent_binary, "/bin/sh");
    snprintf (expect, sizeof expect, "%s/r/one.lua", sub);
    assert_string_equal (cfg->global_rules [0], expect);
    assert_string_equal (cfg->global_rules [1], "/etc/hostname");
    assert_int_equal (cfg->global_rule_pos [0].line, 6);
    assert_int_equal (cfg->global_rule_pos [0].col, 11);
    assert_int_equal (cfg->global_rule_pos [1].line, 6);
    assert_int_equal (cfg->global_rule_pos [1].col, 22);
    snprintf (expect, sizeof expect, "%s/key", sub);
    assert_string_equal (cfg->backends [0].api_key_file, expect);
    snprintf (expect, sizeof expect, "%s/mine.lua", sub);
    assert_string_equal (cfg->agents [0].rules [0], expect);
    assert_int_equal (cfg->agents [0].rule_pos [0].line, 12);
    assert_int_equal (cfg->agents [0].rule_pos [0].col, 45);
    mesh_config_destroy (&cfg);
    free (out);

    //  A file name without a directory resolves against ".".
    char cwd [4096];
    assert_non_null (getcwd (cwd, sizeof cwd));
    assert_int_equal (chdir (sub), 0);
    assert_int_equal (s_load_path ("c.yaml", &cfg, &out), 0);
    assert_string_equal (cfg->runtime_dir, "./run");
    assert_string_equal (cfg->global_rules [0], "./r/one.lua");
    mesh_config_destroy (&cfg);
    free (out);
    assert_int_equal (chdir (cwd), 0);
    free (path);
    free (sub);
}

//  --------------------------------------------------------------------------
//  One class of problem per test.

//  events: documented defaults; every limit has an upper bound, refused with its position.
static void
test_event_limits (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_base ("", &cfg, &out), 0);
    const mesh_event_config_t *e = &cfg->agents[0].events;
    assert_int_equal (e->max_bytes, 1048576);
    assert_int_equal (e->max_depth, 64);
    assert_int_equal (e->max_keys, 1024);
    assert_int_equal (e->max_future_skew_s, 300);
    assert_int_equal (e->max_event_age_s, 0);
    assert_int_equal (e->dead_letter_timeout_ms, 5000);
    mesh_config_destroy (&cfg);
    free (out);
    assert_int_equal (s_load_base ("    events: {max_depth: 8, max_keys: 20, max_bytes: 4096,\n"
                                   "             max_future_skew_s: 60, max_event_age_s: 3600}\n",
                                   &cfg, &out), 0);
    e = &cfg->agents[0].events;
    assert_int_equal (e->max_depth, 8);
    assert_int_equal (e->max_keys, 20);
    assert_int_equal (e->max_bytes, 4096);
    assert_int_equal (e->max_future_skew_s, 60);
    assert_int_equal (e->max_event_age_s, 3600);
    mesh_config_destroy (&cfg);
    free (out);
    static const char *const too_big[] = {
        "max_depth: 2049", "max_keys: 1000001", "max_bytes: 67108865",
        "max_future_skew_s: 86401", "max_event_age_s: 31536001", "dead_letter_timeout_ms: 300001",
        "dead_letter_timeout_ms: 99",
    };
    for (size_t i = 0; i < sizeof too_big / sizeof *too_big; i++) {
        char *text;
        assert_true (asprintf (&text, "    events:\n      %s\n", too_big[i]) > 0);
        assert_int_equal (s_load_base (text, &cfg, &out), 1);
        s_expect (out, "18:");
        free (text);
        free (out);
        mesh_config_destroy (&cfg);
    }
}

static void
test_unknown_key (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_base ("    foo: 1\n"
                                   "color: blue\n", &cfg, &out), 2);
    s_expect (out, "17:5: unknown key 'foo' in agents[0] (expected one of: name, topics, group, "
              "mode, fields, detector, incident, reason, actions, fallback, rules, replicas, dead_letter_topic, events)");
    s_expect (out, "18:1: unknown key 'color' at top level (expected one of: daemon, kafka, ");
    free (out);

    //  An inline secret gets a pointer to the right way, and is not repeated.
    const char *text =
        "kafka: {brokers: embedded}\n"
        "backends: {b: {kind: openai, url: 'http://h:1', model: m, api_key: sk-secret}}\n"
        "actions: {esc: {kind: log}}\n"
        "agents: [{name: a, topics: [m], fields: {key: [h]}, reason: {backend: b}, "
        "actions: [esc], fallback: esc}]\n";
    assert_int_equal (s_load (text, &cfg, &out), 1);
    s_expect (out, "2:59: unknown key 'api_key' in backends.b");
    assert_non_null (strstr (out, "api_key_file"));
    assert_null (strstr (out, "sk-secret"));
    free (out);
}

static void
test_wrong_types (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_base ("    group: {a: 1}\n"                           //  17
                                   "    detector:\n"                               //  18
                                   "      warmup: 10x\n"                           //  19
                                   "      max_series: 1.5\n"                       //  20
                                   "      alpha: high\n"                           //  21
                                   "    incident: {cooldown_s: 99999999999999999999}\n"   //  22
                                   "    reason: {backend: b, workers: \"2\"}\n"   //  23
                                   "    topics: metrics\n"                         //  24
                                   "daemon: [1]\n"                                 //  25
                                   "gates: {rules: [[a]]}\n",                      //  26
                                   &cfg, &out), 9);
    s_expect (out, "17:12: agents[0].group: expected a string, got a mapping");
    s_expect (out, "19:15: agents[0].detector.warmup: expected an integer, got '10x'");
    s_expect (out, "20:19: agents[0].detector.max_series: expected an integer, got '1.5'");
    s_expect (out, "21:14: agents[0].detector.alpha: expected a number, got 'high'");
    s_expect (out, "22:28: agents[0].incident.cooldown_s: integer out of range");
    //  Keys given twice: reported, the second not read.
    s_expect (out, "23:5: duplicate key 'reason' in agents[0] (first at 14:5)");
    s_expect (out, "24:5: duplicate key 'topics' in agents[0] (first at 12:5)");
    s_expect (out, "25:9: daemon: expected a mapping (key: value lines), got a sequence");
    s_expect (out, "26:17: gates.rules[0]: expected a string, got a sequence");
    free (out);

    const char *text =
        "kafka: {brokers: embedded}\n"
        "backends: {b: {kind: openai, url: 'http://h:1', model: m, json_schema: yes,\n"
        "               temperature: .inf, timeout_ms: \"100\"}}\n"
        "actions: {esc: {kind: log}}\n"
        "agents: [{name: a, topics: [m], fields: {key: [h]}, reason: {backend: b, "
        "max_steps: 010}, actions: [esc], fallback: esc}]\n";
    assert_int_equal (s_load (text, &cfg, &out), 4);
    s_expect (out, "2:72: backends.b.json_schema: expected true or false, got 'yes'");
    s_expect (out, "3:29: backends.b.temperature: expected a number, got '.inf'");
    s_expect (out, "3:47: backends.b.timeout_ms: expected an integer, got the quoted string '100'");
    s_expect (out, "5:85: agents[0].reason.max_steps: expected a decimal integer without "
              "leading zeros, got '010'");
    free (out);

    //  Output limits have upper bounds, and an unknown one is an error.
    text =
        "kafka: {brokers: embedded}\n"
        "backends: {b: {kind: scripted, file: r.jsonl, limits: {max_depth: 65,\n"
        "    max_bytes: 2000000, max_keys: 0, max_string: 65537, max_width: 3}}}\n"
        "actions: {esc: {kind: log}}\n"
        "agents: [{name: a, topics: [m], fields: {key: [h]}, reason: {backend: b}, "
        "actions: [esc], fallback: esc}]\n";
    free (s_write ("r.jsonl", "", 0));
    assert_true (s_load (text, &cfg, &out) >= 5);
    s_expect (out, "2:67: backends.b.limits.max_depth: must be in [1,64], got 65");
    s_expect (out, "3:16: backends.b.limits.max_bytes: must be in [1,1048576], got 2000000");
    s_expect (out, "3:35: backends.b.limits.max_keys: must be in [1,4096], got 0");
    s_expect (out, "3:50: backends.b.limits.max_string: must be in [1,65536], got 65537");
    if (!strstr (out, "max_width"))
        fail_msg ("unknown limit not reported:\n%s", out);
    free (out);
}

static void
test_out_of_range (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_base ("    detector: {alpha: 1.5, threshold: -0.1, warmup: 1}\n"
                                   "gates: {instructions: 999, memory: 1024, time_ms: 0}\n"
                                   "daemon: {heartbeat_ms: 2000, liveness_timeout_ms: 1000}\n",
                                   &cfg, &out), 7);
    s_expect (out, "17:23: agents[0].detector.alpha: must be in (0,1], got 1.5");
    s_expect (out, "17:39: agents[0].detector.threshold: must be in [0,1], got -0.1");
    s_expect (out, "17:53: agents[0].detector.warmup: must be in [2,1000000], got 1");
    s_expect (out, "18:23: gates.instructions: must be in [1000,1000000000], got 999");
    s_expect (out, "18:36: gates.memory: must be in [65536,4294967296], got 1024");
    s_expect (out, "18:51: gates.time_ms: must be in [1,60000], got 0");
    s_expect (out, "19:51: daemon.liveness_timeout_ms: must be greater than heartbeat_ms (2000)");
    free (out);

    //  A line added to the base's kafka section.
    const char *brokers = "  brokers: embedded\n";
    const char *at = strstr (s_base, brokers) + strlen (brokers);
    char *with;
    assert_true (asprintf (&with, "%.*s  prefetch_messages: 999\n%s", (int) (at - s_base),
                           s_base, at) > 0);
    assert_int_equal (s_load (with, &cfg, &out), 1);
    s_expect (out, "3:22: kafka.prefetch_messages: must be in [1000,10000000], got 999");
    free (out);
    free (with);

    //  The base's reason replaced.
    char *text = strdup (s_base);
    s_blank (text, "    reason: {backend: b}\n");
    char *full;
    assert_true (asprintf (&full, "%s    reason: {backend: b, workers: 17, max_steps: 0, "
                           "max_tokens: 4000}\n", text) > 0);
    assert_int_equal (s_load (full, &cfg, &out), 3);
    s_expect (out, "17:35: agents[0].reason.workers: must be in [1,16], got 17");
    s_expect (out, "17:50: agents[0].reason.max_steps: must be in [1,20], got 0");
    s_expect (out, "17:65: agents[0].reason.incident_token_cap: must be greater than max_tokens "
              "(4000), got 4000");
    free (out);
    free (full);
    free (text);
}

static void
test_syntax_error (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    //  Mis-indented key on line 3: libyaml's mark is 2:1 (0-based), we print 3:2.
    assert_int_equal (s_load ("kafka:\n"
                              "  brokers: embedded\n"
                              " agents: 1\n", &cfg, &out), 1);
    s_expect (out, "3:2: YAML syntax error: did not find expected key (while parsing a block "
              "mapping that starts at 1:1)");
    free (out);

    assert_int_equal (s_load ("kafka: {brokers: embedded\n", &cfg, &out), 1);
    s_expect (out, "2:1: YAML syntax error: did not find expected ',' or '}'");
    free (out);

    //  Not UTF-8: reported at the byte.
    assert_int_equal (s_load ("kafka: {brokers: embedded}\nagents: [\xff]\n", &cfg, &out), 1);
    s_expect (out, "2:10: YAML syntax error: invalid leading UTF-8 octet (byte 0xff)");
    free (out);

    //  A tab cannot indent.
    assert_int_equal (s_load ("kafka:\n\tbrokers: embedded\n", &cfg, &out), 1);
    s_expect (out, "2:1: YAML syntax error: found character that cannot start any token");
    free (out);
}

static void
test_anchor_alias_tag (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_base ("    detector: &d {alpha: 0.1}\n"
                                   "    incident: *d\n", &cfg, &out), 2);
    s_expect (out, "17:15: anchor '&d' is not allowed");
    s_expect (out, "18:15: alias '*d' is not allowed");
    free (out);

    //  A self-referencing alias (a cycle once resolved) is refused without hanging.
    assert_int_equal (s_load ("a: &a [*a]\n", &cfg, &out), 5);
    s_expect (out, "1:1: missing required top-level key 'kafka'");
    s_expect (out, "1:1: unknown key 'a' at top level");
    s_expect (out, "1:4: anchor '&a' is not allowed");
    s_expect (out, "1:8: alias '*a' is not allowed");
    free (out);

    //  Billion laughs: refused at the first anchor and alias, never expanded.
    char bomb [4096] = "kafka: {brokers: embedded}\nx0: &a0 [lol]\n";
    for (int i = 1; i < 10; i++) {
        size_t used = strlen (bomb);
        snprintf (bomb + used, sizeof bomb - used,
                  "x%d: &a%d [*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,*a%d]\n",
                  i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    }
    assert_int_equal (s_load (bomb, &cfg, &out), 100);
    assert_non_null (strstr (out, "too many problems"));
    free (out);

    assert_int_equal (s_load_base ("    group: !!str g\n", &cfg, &out), 1);
    s_expect (out, "17:12: tag 'tag:yaml.org,2002:str' is not allowed");
    free (out);
}

static void
test_duplicate_key (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_base ("kafka:\n"
                                   "  brokers: x:1\n"
                                   "backends:\n"
                                   "  b: {kind: scripted, file: f}\n"
                                   "actions:\n"
                                   "  esc: {kind: log, kind: kafka}\n"
                                   "  esc: {kind: log}\n", &cfg, &out), 3);
    s_expect (out, "17:1: duplicate key 'kafka' at top level (first at 1:1)");
    s_expect (out, "19:1: duplicate key 'backends' at top level (first at 3:1)");
    s_expect (out, "21:1: duplicate key 'actions' at top level (first at 7:1)");
    //  In sections whose keys are chosen names, and inside an entry.
    const char *text =
        "kafka: {brokers: embedded}\n"
        "backends:\n"
        "  b: {kind: scripted, file: f}\n"
        "  b: {kind: scripted, file: g}\n"
        "actions:\n"
        "  esc: {kind: log, kind: kafka, params: {p: {type: string}, p: {type: integer}}}\n"
        "agents: [{name: a, topics: [m, m], fields: {key: [h]}, reason: {backend: b}, "
        "actions: [esc], fallback: esc}]\n";
    free (out);
    assert_int_equal (s_load (text, &cfg, &out), 4);
    s_expect (out, "4:3: duplicate key 'b' in backends (first at 3:3)");
    s_expect (out, "6:20: duplicate key 'kind' in actions.esc (first at 6:9)");
    s_expect (out, "6:61: duplicate key 'p' in actions.esc.params (first at 6:42)");
    s_expect (out, "7:32: agents[0].topics[1]: 'm' is listed twice (first at 7:29)");
    free (out);
}

static void
test_multiple_documents (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_base ("---\n"
                                   "kafka: {brokers: embedded}\n", &cfg, &out), 1);
    s_expect (out, "17:1: a second YAML document starts here");
    free (out);
    //  An explicit start of the one document is fine.
    char *text;
    assert_true (asprintf (&text, "---\n%s...\n", s_base) > 0);
    assert_int_equal (s_load (text, &cfg, &out), 0);
    mesh_config_destroy (&cfg);
    free (out);
    free (text);
}

static void
test_too_large (void **state)
{
    size_t length = 1024 * 1024 + 1;
    char *text = malloc (length);
    assert_non_null (text);
    memcpy (text, s_base, strlen (s_base));
    memset (text + strlen (s_base), '#', length - strlen (s_base));    //  one long comment
    char *path = s_write ("big.yaml", text, length);
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_path (path, &cfg, &out), 1);
    s_expect (out, "1:1: the file is larger than 1 MiB");
    free (out);
    free (path);

    //  Exactly 1 MiB is allowed.
    path = s_write ("max.yaml", text, length - 1);
    assert_int_equal (s_load_path (path, &cfg, &out), 0);
    mesh_config_destroy (&cfg);
    free (out);
    free (path);
    free (text);
}

static void
test_too_deep (void **state)
{
    //  The top-level mapping is level 1; a: [[[...]]] with 63 sequences is 64 levels.
    char text [512];
    for (int depth = 63; depth <= 64; depth++) {
        snprintf (text, sizeof text, "a: ");
        for (int i = 0; i < depth; i++)
            strcat (text, "[");
        for (int i = 0; i < depth; i++)
            strcat (text, "]");
        strcat (text, "\n");
        mesh_config_t *cfg = NULL;
        char *out = NULL;
        if (depth == 63) {
            //  Parsed; then the walker reports what is wrong with the content.
            assert_int_equal (s_load (text, &cfg, &out), 3);
            assert_null (strstr (out, "nesting"));
        }
        else {
            assert_int_equal (s_load (text, &cfg, &out), 1);
            s_expect (out, "1:67: nesting deeper than 64 levels is not allowed");
        }
        free (out);
    }
}

static void
test_cross_references (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    const char *text =
        "kafka: {brokers: embedded}\n"                                      //  1
        "backends:\n"                                                       //  2
        "  s: {kind: scripted}\n"                                           //  3
        "  o: {kind: openai, file: f}\n"                                    //  4
        "actions:\n"                                                        //  5
        "  k: {kind: kafka}\n"                                              //  6
        "  l: {kind: log, topic: t}\n"                                      //  7
        "agents:\n"                                                         //  8
        "  - name: a\n"                                                     //  9
        "    topics: [m]\n"                                                 //  10
        "    fields: {key: [h]}\n"                                          //  11
        "    reason: {backend: nope}\n"                                     //  12
        "    actions: [k, gone]\n"                                          //  13
        "    fallback: l\n"                                                 //  14
        "  - name: a\n"                                                     //  15
        "    topics: [m]\n"                                                 //  16
        "    fields: {key: [h]}\n"                                          //  17
        "    reason: {backend: s}\n"                                        //  18
        "    actions: [l]\n"                                                //  19
        "    fallback: l\n";                                                //  20
    assert_int_equal (s_load (text, &cfg, &out), 10);
    s_expect (out, "3:6: backends.s: kind scripted requires 'file'");
    s_expect (out, "4:6: backends.o: kind openai requires 'url'");
    s_expect (out, "4:6: backends.o: kind openai requires 'model'");
    s_expect (out, "4:27: backends.o.file: only for kind scripted (this backend is openai)");
    s_expect (out, "6:6: actions.k: kind kafka requires 'topic'");
    s_expect (out, "7:25: actions.l.topic: only for kind kafka (this action is log)");
    s_expect (out, "12:23: agents[0].reason.backend: no backend named 'nope' (declared: s, o)");
    s_expect (out, "13:18: agents[0].actions[1]: no action named 'gone' (declared: k, l)");
    s_expect (out, "14:15: agents[0].fallback: 'l' is not one of this agent's actions (k, gone)");
    s_expect (out, "15:11: agents[1].name: 'a' is already the name of agents[0] (at 9:11)");
    free (out);
}

static void
test_params (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    const char *text =
        "kafka: {brokers: embedded}\n"                                      //  1
        "backends: {b: {kind: scripted, file: f}}\n"                        //  2
        "actions:\n"                                                        //  3
        "  act:\n"                                                          //  4
        "    kind: log\n"                                                   //  5
        "    params:\n"                                                     //  6
        "      s: {type: string, pattern: \"[a-\"}\n"                       //  7
        "      i: {type: integer, min: 1.5, max: 0, pattern: x}\n"          //  8
        "      e: {type: string, enum: [ab, b1], pattern: \"[a-z]+\"}\n"    //  9
        "      n: {type: float}\n"                                          //  10
        "      bad-name: {type: boolean}\n"                                 //  11
        "      m: {required: false}\n"                                      //  12
        "      b: {type: boolean, max_length: 3, min: 0}\n"                 //  13
        "agents: [{name: a, topics: [m], fields: {key: [h]}, reason: {backend: b}, "
        "actions: [act], fallback: act}]\n";
    assert_int_equal (s_load (text, &cfg, &out), 10);
    s_expect (out, "7:34: actions.act.params.s.pattern: not a valid POSIX extended regular "
              "expression");
    s_expect (out, "8:31: actions.act.params.i.min: must be a whole number for type integer, "
              "got 1.5");
    s_expect (out, "8:41: actions.act.params.i.max: must be at least min (1.5), got 0");
    s_expect (out, "8:53: actions.act.params.i.pattern: only for type string (this one is "
              "integer)");
    s_expect (out, "9:36: actions.act.params.e.enum[1]: 'b1' does not fit the param's pattern");
    s_expect (out, "10:17: actions.act.params.n.type: must be one of: string, integer, number, "
              "boolean; got 'float'");
    s_expect (out, "11:7: actions.act.params: expected a parameter name matching "
              "[A-Za-z_][A-Za-z0-9_]{0,63}, got 'bad-name'");
    s_expect (out, "12:10: actions.act.params.m: missing required key 'type'");
    s_expect (out, "13:38: actions.act.params.b.max_length: only for type string");
    s_expect (out, "13:46: actions.act.params.b.min: only for type integer or number");
    free (out);
}

static void
test_required (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load ("", &cfg, &out), 2);
    s_expect (out, "1:1: missing required top-level key 'kafka'");
    s_expect (out, "1:1: missing required top-level key 'agents'");
    free (out);

    assert_int_equal (s_load ("kafka:\n"
                              "agents: []\n", &cfg, &out), 2);
    s_expect (out, "1:7: kafka: missing required key 'brokers'");
    s_expect (out, "2:9: agents: at least one agent is required");
    free (out);

    assert_int_equal (s_load ("kafka: {brokers: }\n"
                              "agents:\n"
                              "  - {}\n"
                              "  - name:\n"
                              "    topics: []\n"
                              "    fields: {}\n", &cfg, &out), 13);
    s_expect (out, "1:18: kafka.brokers: a value is required");
    s_expect (out, "3:5: agents[0]: missing required key 'name'");
    s_expect (out, "3:5: agents[0]: missing required key 'reason'");
    s_expect (out, "4:10: agents[1].name: a value is required");
    s_expect (out, "5:13: agents[1].topics: must list at least 1 entry");
    s_expect (out, "6:13: agents[1].fields: missing required key 'key'");
    free (out);
}

static void
test_embedded (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    //  The default topic list: agents' topics and kafka actions' topics, once each.
    const char *text =
        "kafka: {brokers: embedded}\n"
        "backends: {b: {kind: scripted, file: f}}\n"
        "actions: {k: {kind: kafka, topic: out, allow_input_topic: true}, l: {kind: log}}\n"
        "agents:\n"
        "  - {name: a, topics: [m, n], fields: {key: [h]}, reason: {backend: b},"
        " actions: [k], fallback: k}\n"
        "  - {name: b, topics: [n, out], fields: {key: [h]}, reason: {backend: b},"
        " actions: [l], fallback: l}\n";
    assert_int_equal (s_load (text, &cfg, &out), 0);
    assert_int_equal (cfg->embedded_topic_count, 3);
    assert_string_equal (cfg->embedded_topics [0], "m");
    assert_string_equal (cfg->embedded_topics [1], "n");
    assert_string_equal (cfg->embedded_topics [2], "out");
    mesh_config_destroy (&cfg);
    free (out);

    //  An explicit list is kept as written, even empty.
    char *base = strdup (s_base);
    s_blank (base, "kafka:\n");
    s_blank (base, "  brokers: embedded\n");
    char *full;
    assert_true (asprintf (&full, "%skafka:\n  brokers: embedded\n  embedded: {partitions: 2, "
                           "topics: []}\n", base) > 0);
    assert_int_equal (s_load (full, &cfg, &out), 0);
    assert_int_equal (cfg->embedded_partitions, 2);
    assert_int_equal (cfg->embedded_topic_count, 0);
    mesh_config_destroy (&cfg);
    free (out);
    free (full);

    //  The embedded section with a real broker list is an error.
    assert_true (asprintf (&full, "%skafka:\n  brokers: k:9092\n  embedded: {partitions: 2}\n",
                           base) > 0);
    assert_int_equal (s_load (full, &cfg, &out), 1);
    s_expect (out, "19:13: kafka.embedded: only allowed when brokers is \"embedded\"");
    free (out);
    free (full);

    //  Broker lists.
    static const char *const bad [] = { "k", "k:", ":9092", "k:0", "k:65536", "k:9092,",
                                        "k:9092, j:9092", "k:90x", NULL };
    for (int i = 0; bad [i]; i++) {
        assert_true (asprintf (&full, "%skafka: {brokers: \"%s\"}\n", base, bad [i]) > 0);
        assert_int_equal (s_load (full, &cfg, &out), 1);
        s_expect (out, "17:18: kafka.brokers: expected \"embedded\" or \"host:port");
        free (out);
        free (full);
    }
    free (base);
}

static void
test_urls (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    static const struct {
        const char *url, *why;
    } cases [] = {
        { "ftp://h", "an http:// or https:// base URL" },
        { "http://", "a URL with a host" },
        { "http://user:hunter2@h:1", "a URL without credentials" },
        { "http://h:1/v1", "without /v1" },
        { "http://h:1/v1/chat/completions", "without /v1" },
        { "http://h:1/?a=b", "without query" },
        { "http://h 1", "without spaces" },
        { NULL }
    };
    for (int i = 0; cases [i].url; i++) {
        char *text;
        assert_true (asprintf (&text, "kafka: {brokers: embedded}\n"
                               "backends:\n"
                               "  b: {kind: scripted, file: f}\n"
                               "  o: {kind: openai, model: m, url: '%s'}\n"
                               "actions: {esc: {kind: log}}\n"
                               "agents: [{name: a, topics: [m], fields: {key: [h]}, "
                               "reason: {backend: b}, actions: [esc], fallback: esc}]\n",
                               cases [i].url) > 0);
        assert_int_equal (s_load (text, &cfg, &out), 1);
        s_expect (out, "4:36: backends.o.url: expected ");
        assert_non_null (strstr (out, cases [i].why));
        //  A URL is never repeated in a message: it may hold credentials.
        assert_null (strstr (out, "hunter2"));
        assert_null (strstr (out, "h:1"));
        free (out);
        free (text);
    }
}

static void
test_names_and_strings (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_base ("  - name: Upper\n"                               //  17
                                   "    topics: [\"bad topic\", ok.t_-1]\n"          //  18
                                   "    mode: shadow\n"                              //  19
                                   "    fields: {key: [h], value: \"\"}\n"           //  20
                                   "    detector: {kind: zscore}\n"                  //  21
                                   "    reason: {backend: b}\n"                      //  22
                                   "    actions: [esc]\n"                            //  23
                                   "    fallback: \"es\\0c\"\n", &cfg, &out), 6);    //  24
    s_expect (out, "17:11: agents[1].name: expected a name matching [a-z0-9][a-z0-9_.-]{0,47}, "
              "got 'Upper'");
    s_expect (out, "18:14: agents[1].topics[0]: expected a Kafka topic name");
    s_expect (out, "19:11: agents[1].mode: must be one of: act, observe; got 'shadow'");
    s_expect (out, "20:31: agents[1].fields.value: must not be empty");
    s_expect (out, "21:22: agents[1].detector.kind: must be one of: ewma, mad, cusum, seasonal, "
              "knn, ensemble; got 'zscore'");
    s_expect (out, "24:15: agents[1].fallback: must not contain a NUL character");
    free (out);
}

//  All problems come out of one load, sorted by position.
static void
test_many_problems (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_base ("daemon: {heartbeat_ms: 0, restart: {period_s: 0}}\n"
                                   "gates: {time_ms: x}\n", &cfg, &out), 3);
    const char *first = strstr (out, ":17:24: daemon.heartbeat_ms");
    const char *second = strstr (out, ":17:47: daemon.restart.period_s");
    const char *third = strstr (out, ":18:18: gates.time_ms");
    assert_non_null (first);
    assert_true (first < second && second < third);
    free (out);

    //  Past 100, the rest is counted, not printed.
    char *text = malloc (200 * 16 + strlen (s_base) + 1);
    strcpy (text, s_base);
    for (int i = 0; i < 200; i++)
        sprintf (text + strlen (text), "unknown%03d: 1\n", i);
    assert_int_equal (s_load (text, &cfg, &out), 100);
    s_expect (out, "116:1: unknown key 'unknown099'");
    assert_null (strstr (out, "unknown100'"));
    s_expect (out, "117:1: too many problems (200); only the first 100 are shown");
    free (out);
    free (text);
}

static void
test_missing_file (void **state)
{
    mesh_config_t *cfg = (mesh_config_t *) 1;      //  must be reset to NULL
    char *out = NULL;
    char *path;
    assert_true (asprintf (&path, "%s/none.yaml", s_dir) > 0);
    assert_int_equal (s_load_path (path, &cfg, &out), 1);
    s_expect (out, "1:1: cannot open the configuration: No such file or directory");
    free (out);
    //  A directory is not a config either.
    assert_int_equal (s_load_path (s_dir, &cfg, &out), 1);
    s_expect (out, "1:1: the configuration cannot be trusted: ");
    free (out);
    free (path);
    //  ERR may be NULL: the count is still returned.
    assert_int_equal (mesh_config_load ("/nonexistent/meshd.yaml", &cfg, NULL), 1);
    assert_null (cfg);
}


//  kafka.security and kafka.properties.  The config s_kafka_config builds has kafka: at
//  line 17, brokers at 18, and BLOCK from line 19 on.
static int
s_load_kafka (const char *block, mesh_config_t **cfg_p, char **out_p)
{
    char *base = strdup (s_base);
    s_blank (base, "kafka:\n");
    s_blank (base, "  brokers: embedded\n");
    char *full;
    assert_true (asprintf (&full, "%skafka:\n  brokers: k1:9093,k2:9093\n%s", base, block) > 0);
    int problems = s_load (full, cfg_p, out_p);
    free (full);
    free (base);
    return problems;
}

//  A file in the temporary directory with MODE.
static void
s_file (const char *name, const char *text, mode_t mode)
{
    char *path = s_write (name, text, strlen (text));
    assert_int_equal (chmod (path, mode), 0);
    free (path);
}

static void
test_kafka_security (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    s_file ("pw", "s3cret-pw\n", 0600);
    s_file ("pw-public", "s3cret-pw\n", 0644);
    s_file ("ca.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
    s_file ("key.pem", "-----BEGIN PRIVATE KEY-----\n", 0600);
    s_file ("key-public.pem", "-----BEGIN PRIVATE KEY-----\n", 0644);
    s_file ("cert.pem", "-----BEGIN CERTIFICATE-----\n", 0644);
    s_file ("empty", "", 0600);

    //  A complete SASL_SSL + SCRAM setup: every value reaches the struct, paths resolved.
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: sasl_ssl\n"
                                    "    ssl: {ca_file: ca.pem, cert_file: cert.pem, "
                                    "key_file: key.pem, key_password_file: pw}\n"
                                    "    sasl: {mechanism: SCRAM-SHA-512, username: meshd, "
                                    "password_file: pw}\n", &cfg, &out), 0);
    const mesh_kafka_security_t *sec = &cfg->kafka_security;
    assert_true (sec->given);
    assert_int_equal (sec->protocol, MESH_KAFKA_SASL_SSL);
    assert_int_equal (sec->mechanism, MESH_SASL_SCRAM_SHA_512);
    assert_string_equal (sec->username, "meshd");
    assert_true (sec->verify_hostname);
    char expected [128];
    snprintf (expected, sizeof expected, "%s/pw", s_dir);
    assert_string_equal (sec->password_file, expected);
    assert_string_equal (sec->key_password_file, expected);
    snprintf (expected, sizeof expected, "%s/ca.pem", s_dir);
    assert_string_equal (sec->ca_file, expected);
    mesh_config_destroy (&cfg);
    free (out);

    //  Without a security block: plaintext, nothing set.
    assert_int_equal (s_load_kafka ("", &cfg, &out), 0);
    assert_false (cfg->kafka_security.given);
    assert_int_equal (cfg->kafka_security.protocol, MESH_KAFKA_PLAINTEXT);
    mesh_config_destroy (&cfg);
    free (out);

    //  A password written inline is refused, and its value is not repeated.
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: sasl_ssl\n"
                                    "    sasl:\n"
                                    "      mechanism: PLAIN\n"
                                    "      username: meshd\n"
                                    "      password: hunter2\n"
                                    "      password_file: pw\n", &cfg, &out), 1);
    s_expect (out, "24:17: kafka.security.sasl.password: secrets are never written in the "
              "config; put it in a file readable only by meshd and name it with "
              "password_file: PATH, or password_file: {credential: NAME}");
    assert_null (strstr (out, "hunter2"));
    free (out);
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: ssl\n"
                                    "    ssl: {key_file: key.pem, cert_file: cert.pem, "
                                    "key_password: abc}\n", &cfg, &out), 1);
    s_expect (out, "21:65: kafka.security.ssl.key_password: secrets are never written");
    free (out);

    //  A SASL mechanism without a sasl_* protocol; TLS files with plaintext.
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: ssl\n"
                                    "    sasl: {mechanism: PLAIN, username: u, "
                                    "password_file: pw}\n", &cfg, &out), 1);
    s_expect (out, "21:11: kafka.security.sasl: only used with protocol sasl_plaintext or "
              "sasl_ssl (protocol is ssl)");
    free (out);
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: plaintext\n"
                                    "    ssl: {ca_file: ca.pem}\n", &cfg, &out), 1);
    s_expect (out, "21:10: kafka.security.ssl: only used with protocol ssl or sasl_ssl "
              "(protocol is plaintext)");
    free (out);

    //  PLAIN over sasl_plaintext: only when allowed in so many words.
    const char *plain = "  security:\n"
                        "    protocol: sasl_plaintext\n"
                        "    sasl:\n"
                        "      mechanism: PLAIN\n"
                        "      username: meshd\n"
                        "      password_file: pw\n";
    assert_int_equal (s_load_kafka (plain, &cfg, &out), 1);
    s_expect (out, "22:18: kafka.security.sasl.mechanism: PLAIN over sasl_plaintext sends the "
              "password unencrypted; use protocol sasl_ssl, or set allow_plaintext_password: "
              "true");
    free (out);
    char *allowed;
    assert_true (asprintf (&allowed, "%s      allow_plaintext_password: true\n", plain) > 0);
    assert_int_equal (s_load_kafka (allowed, &cfg, &out), 0);
    assert_true (cfg->kafka_security.allow_plaintext_password);
    mesh_config_destroy (&cfg);
    free (out);
    free (allowed);

    //  sasl_* without a mechanism; SCRAM without its username and password file.
    assert_int_equal (s_load_kafka ("  security: {protocol: sasl_ssl}\n", &cfg, &out), 1);
    s_expect (out, "19:13: kafka.security.sasl.mechanism: required with protocol sasl_ssl");
    free (out);
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: sasl_ssl\n"
                                    "    sasl: {mechanism: SCRAM-SHA-256}\n", &cfg, &out), 2);
    s_expect (out, "21:11: kafka.security.sasl.username: required with mechanism "
              "SCRAM-SHA-256");
    s_expect (out, "21:11: kafka.security.sasl.password_file: required with mechanism "
              "SCRAM-SHA-256");
    free (out);
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: sasl_ssl\n"
                                    "    sasl: {mechanism: GSSAPI}\n", &cfg, &out), 1);
    s_expect (out, "21:23: kafka.security.sasl.mechanism: must be one of: PLAIN, SCRAM-SHA-256, "
              "SCRAM-SHA-512, OAUTHBEARER; got 'GSSAPI'");
    free (out);

    //  Files: missing, empty, a secret or key others may read, a key without its
    //  certificate, a key password without a key.
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: sasl_ssl\n"
                                    "    ssl:\n"
                                    "      ca_file: missing.pem\n"
                                    "    sasl:\n"
                                    "      mechanism: SCRAM-SHA-256\n"
                                    "      username: u\n"
                                    "      password_file: pw-public\n", &cfg, &out), 2);
    s_expect (out, "22:16: kafka.security.ssl.ca_file: cannot read ");
    assert_non_null (strstr (out, "missing.pem: No such file or directory"));
    s_expect (out, "26:22: kafka.security.sasl.password_file: ");
    assert_non_null (strstr (out, "pw-public is readable by every user; make it private"));
    free (out);
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: ssl\n"
                                    "    ssl: {key_file: key-public.pem}\n", &cfg, &out), 1);
    s_expect (out, "21:21: kafka.security.ssl.key_file: ");
    assert_non_null (strstr (out, "key-public.pem is readable by every user"));
    free (out);
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: ssl\n"
                                    "    ssl: {key_file: key.pem}\n", &cfg, &out), 1);
    s_expect (out, "21:21: kafka.security.ssl: cert_file and key_file go together");
    free (out);
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: ssl\n"
                                    "    ssl: {key_password_file: pw, ca_file: empty}\n",
                                    &cfg, &out), 2);
    s_expect (out, "21:30: kafka.security.ssl.key_password_file: only used with key_file");
    s_expect (out, "21:43: kafka.security.ssl.ca_file: ");
    assert_non_null (strstr (out, "empty is empty"));
    free (out);

    //  Security settings with the embedded broker.
    char *base = strdup (s_base);
    s_blank (base, "kafka:\n");
    s_blank (base, "  brokers: embedded\n");
    char *full;
    assert_true (asprintf (&full, "%skafka:\n  brokers: embedded\n  security: {protocol: ssl}\n",
                           base) > 0);
    assert_int_equal (s_load (full, &cfg, &out), 1);
    s_expect (out, "19:13: kafka.security: not used with the embedded broker");
    free (out);
    free (full);
    free (base);
}

static void
test_kafka_credentials (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    char creds [128];
    snprintf (creds, sizeof creds, "%s/creds", s_dir);
    assert_int_equal (mkdir (creds, 0700), 0);
    s_file ("creds/kafka-pw", "pw\n", 0400);
    const char *block = "  security:\n"
                        "    protocol: sasl_ssl\n"
                        "    sasl:\n"
                        "      mechanism: SCRAM-SHA-256\n"
                        "      username: meshd\n"
                        "      password_file: {credential: kafka-pw}\n";
    char *saved = getenv ("CREDENTIALS_DIRECTORY") ? strdup (getenv ("CREDENTIALS_DIRECTORY"))
                                                    : NULL;
    unsetenv ("CREDENTIALS_DIRECTORY");
    assert_int_equal (s_load_kafka (block, &cfg, &out), 1);
    s_expect (out, "24:35: kafka.security.sasl.password_file.credential: $CREDENTIALS_DIRECTORY "
              "is not set, so credential 'kafka-pw' cannot be found");
    free (out);
    setenv ("CREDENTIALS_DIRECTORY", creds, 1);
    assert_int_equal (s_load_kafka (block, &cfg, &out), 0);
    char expected [160];
    snprintf (expected, sizeof expected, "%s/kafka-pw", creds);
    assert_string_equal (cfg->kafka_security.password_file, expected);
    mesh_config_destroy (&cfg);
    free (out);
    //  A name that would leave the directory; a mapping that is not {credential: NAME}.
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: sasl_ssl\n"
                                    "    sasl:\n"
                                    "      mechanism: SCRAM-SHA-256\n"
                                    "      username: meshd\n"
                                    "      password_file: {credential: ../pw}\n", &cfg, &out), 1);
    s_expect (out, "24:35: kafka.security.sasl.password_file.credential: expected a systemd "
              "credential name");
    free (out);
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: sasl_ssl\n"
                                    "    sasl:\n"
                                    "      mechanism: SCRAM-SHA-256\n"
                                    "      username: meshd\n"
                                    "      password_file: {file: pw}\n", &cfg, &out), 1);
    s_expect (out, "24:22: kafka.security.sasl.password_file: expected a file path or "
              "{credential: NAME}");
    free (out);
    if (saved)
        setenv ("CREDENTIALS_DIRECTORY", saved, 1);
    else
        unsetenv ("CREDENTIALS_DIRECTORY");
    free (saved);
}

static void
test_kafka_oauthbearer (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    s_file ("secret", "client-secret\n", 0600);
    const char *block = "  security:\n"
                        "    protocol: sasl_ssl\n"
                        "    sasl:\n"
                        "      mechanism: OAUTHBEARER\n"
                        "      oauthbearer:\n"
                        "        token_endpoint_url: https://idp.example/token\n"
                        "        client_id: meshd\n"
                        "        client_secret_file: secret\n"
                        "        scope: kafka\n";
    //  Whether it loads depends on this librdkafka: Debian 12's is built without OIDC, and
    //  then the refusal says so at the mechanism, in librdkafka's words.
    char why [512];
    bool oidc = mesh_kafka_conf_try ("sasl.oauthbearer.method", "oidc", why, sizeof why) == 0;
    if (oidc) {
        assert_int_equal (s_load_kafka (block, &cfg, &out), 0);
        assert_int_equal (cfg->kafka_security.mechanism, MESH_SASL_OAUTHBEARER);
        assert_string_equal (cfg->kafka_security.client_id, "meshd");
        mesh_config_destroy (&cfg);
    }
    else {
        assert_int_equal (s_load_kafka (block, &cfg, &out), 1);
        s_expect (out, "22:18: kafka.security.sasl.mechanism: OAUTHBEARER (OIDC) cannot be used "
                  "with this librdkafka: ");
        assert_non_null (strstr (out, why));
    }
    free (out);
    //  Missing pieces, a plain http endpoint, an inline secret, PLAIN keys with it.
    int expected = oidc ? 5 : 6;
    assert_int_equal (s_load_kafka ("  security:\n"
                                    "    protocol: sasl_ssl\n"
                                    "    sasl:\n"
                                    "      mechanism: OAUTHBEARER\n"
                                    "      username: u\n"
                                    "      oauthbearer:\n"
                                    "        token_endpoint_url: http://idp.example/token\n"
                                    "        client_secret: abc\n", &cfg, &out), expected);
    s_expect (out, "23:17: kafka.security.sasl: username and password_file are for PLAIN and "
              "SCRAM");
    s_expect (out, "25:29: kafka.security.sasl.oauthbearer.token_endpoint_url: expected an "
              "https:// URL");
    s_expect (out, "26:24: kafka.security.sasl.oauthbearer.client_secret: secrets are never "
              "written");
    s_expect (out, "25:9: kafka.security.sasl.oauthbearer.client_id: required with mechanism "
              "OAUTHBEARER");
    free (out);
}

static void
test_kafka_properties (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    //  Allow-listed tuning passes, as written, in order.
    assert_int_equal (s_load_kafka ("  properties:\n"
                                    "    socket.keepalive.enable: true\n"
                                    "    client.rack: eu-west-1a\n"
                                    "    reconnect.backoff.max.ms: 5000\n", &cfg, &out), 0);
    assert_int_equal (cfg->kafka_property_count, 3);
    assert_string_equal (cfg->kafka_properties [0].key, "socket.keepalive.enable");
    assert_string_equal (cfg->kafka_properties [0].value, "true");
    assert_string_equal (cfg->kafka_properties [2].value, "5000");
    assert_int_equal (cfg->kafka_properties [1].pos.line, 21);
    mesh_config_destroy (&cfg);
    free (out);
    //  What meshd sets, secrets, code, callbacks, debug and anything unlisted: refused at
    //  the key; a value librdkafka refuses: refused at the value, in its words.
    assert_int_equal (s_load_kafka ("  properties:\n"
                                    "    group.id: other\n"
                                    "    enable.auto.commit: true\n"
                                    "    isolation.level: read_uncommitted\n"
                                    "    sasl.password: hunter2\n"
                                    "    security.protocol: plaintext\n"
                                    "    plugin.library.paths: /tmp/x.so\n"
                                    "    sasl.kerberos.kinit.cmd: touch /tmp/x\n"
                                    "    debug: all\n"
                                    "    error_cb: x\n"
                                    "    session.timeout.ms: 100\n"
                                    "    fetch.wait.max.ms: 10\n"
                                    "    socket.timeout.ms: soon\n"
                                    "    broker.address.family: v5\n"
                                    "    socket.nagle.disable: {a: 1}\n"
                                    "    Bad-Name: 1\n", &cfg, &out), 15);
    s_expect (out, "20:5: kafka.properties.group.id: refused: meshd sets it from the agent's "
              "group");
    s_expect (out, "21:5: kafka.properties.enable.auto.commit: refused: meshd commits offsets "
              "only for handled events");
    s_expect (out, "22:5: kafka.properties.isolation.level: refused:");
    s_expect (out, "23:5: kafka.properties.sasl.password: refused: a secret: use "
              "kafka.security.sasl.password_file");
    s_expect (out, "24:5: kafka.properties.security.protocol: refused: use "
              "kafka.security.protocol");
    s_expect (out, "25:5: kafka.properties.plugin.library.paths: refused: it loads code into "
              "meshd");
    s_expect (out, "26:5: kafka.properties.sasl.kerberos.kinit.cmd: refused: Kerberos");
    s_expect (out, "27:5: kafka.properties.debug: refused:");
    s_expect (out, "28:5: kafka.properties.error_cb: refused: callbacks are meshd's");
    s_expect (out, "29:5: kafka.properties.session.timeout.ms: refused: use "
              "kafka.session_timeout_ms");
    s_expect (out, "30:5: kafka.properties.fetch.wait.max.ms: refused: not on meshd's "
              "allow-list");
    s_expect (out, "31:24: kafka.properties.socket.timeout.ms: librdkafka refuses 'soon': ");
    s_expect (out, "32:28: kafka.properties.broker.address.family: librdkafka refuses 'v5': "
              "Invalid value \"v5\"");
    s_expect (out, "33:27: kafka.properties.socket.nagle.disable: expected a value");
    s_expect (out, "34:5: kafka.properties: expected a librdkafka property name");
    assert_null (strstr (out, "hunter2"));
    free (out);
    //  Not a mapping.
    assert_int_equal (s_load_kafka ("  properties: [a]\n", &cfg, &out), 1);
    s_expect (out, "19:15: kafka.properties: expected a mapping");
    free (out);
}


//  --------------------------------------------------------------------------
//  Issue 9, Config: files, topics, bounds, URLs, snapshots.

//  StrictModes: a file or directory others may write, or a symlink into one, is refused at
//  the position that names it; so is the config file itself (at 1:1).
static void
test_strict_modes (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    char *open_dir, *link;
    assert_true (asprintf (&open_dir, "%s/open", s_dir) > 0);
    assert_int_equal (mkdir (open_dir, 0700), 0);
    assert_int_equal (chmod (open_dir, 0777), 0);
    free (s_write ("open/r.lua", "", 0));
    char *group_rule = s_write ("g.lua", "", 0);
    assert_int_equal (chmod (group_rule, 0664), 0);
    free (s_write ("ok.lua", "", 0));
    assert_true (asprintf (&link, "%s/link", s_dir) > 0);
    assert_int_equal (symlink (open_dir, link), 0);
    assert_int_equal (s_load_base ("gates: {rules: [g.lua, open/r.lua, link/r.lua, ok.lua]}\n"
                                   "daemon: {agent_binary: bin/agent}\n", &cfg, &out), 4);
    s_expect (out, "17:17: gates.rules[0]: ");
    assert_non_null (strstr (out, "g.lua is writable by its group (mode 0664); run chmod go-w"));
    s_expect (out, "17:24: gates.rules[1]: directory ");
    assert_non_null (strstr (out, "/open is writable by others (mode 0777)"));
    //  Through the symlink: the target's directory is what is checked.
    s_expect (out, "17:36: gates.rules[2]: directory ");
    s_expect (out, "18:24: daemon.agent_binary: expected an absolute path");
    free (out);

    //  agent_binary: an absolute path to a file no one else may change.
    char *binary = s_write ("agent", "", 0);
    assert_int_equal (chmod (binary, 0757), 0);
    char *text;
    assert_true (asprintf (&text, "daemon: {agent_binary: %s}\n", binary) > 0);
    assert_int_equal (s_load_base (text, &cfg, &out), 1);
    s_expect (out, "17:24: daemon.agent_binary: ");
    assert_non_null (strstr (out, "agent is writable by others (mode 0757)"));
    free (out);
    free (text);

    //  The config file itself (what a user with umask 002 gets from a checkout).
    char *path = s_write ("c.yaml", s_base, strlen (s_base));
    assert_int_equal (chmod (path, 0664), 0);
    assert_int_equal (s_load_path (path, &cfg, &out), 1);
    s_expect (out, "1:1: the configuration cannot be trusted: ");
    assert_non_null (strstr (out, "c.yaml is writable by its group (mode 0664)"));
    free (out);
    assert_int_equal (chmod (path, 0644), 0);
    assert_int_equal (s_load_path (path, &cfg, &out), 0);
    mesh_config_destroy (&cfg);
    free (out);
    assert_int_equal (chmod (open_dir, 0700), 0);
    free (path);
    free (binary);
    free (group_rule);
    free (open_dir);
    free (link);
}

//  One rule file twice in a chain, however spelled, is refused where it is listed again.
static void
test_duplicate_rules (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    free (s_write ("a.lua", "", 0));
    assert_int_equal (s_load_base ("    rules: [./a.lua]\n"
                                   "gates: {rules: [a.lua]}\n", &cfg, &out), 1);
    s_expect (out, "17:13: agents[0].rules: ");
    assert_non_null (strstr (out, "is already in this agent's rule chain (gates.rules, at 18:17)"));
    free (out);
}

//  Topics meshd writes: never Kafka-internal, never an input topic unless allowed.
static void
test_write_topics (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    const char *text =
        "kafka: {brokers: embedded}\n"
        "backends: {b: {kind: scripted, file: f}}\n"
        "actions:\n"
        "  k: {kind: kafka, topic: __consumer_offsets}\n"
        "  loop: {kind: kafka, topic: m}\n"
        "  ok: {kind: kafka, topic: m, allow_input_topic: true}\n"
        "agents:\n"
        "  - {name: a, topics: [m], fields: {key: [h]}, reason: {backend: b},\n"
        "     actions: [loop, ok], fallback: ok, dead_letter_topic: m}\n";
    assert_int_equal (s_load (text, &cfg, &out), 3);
    s_expect (out, "4:27: actions.k.topic: expected a topic that is not Kafka-internal");
    s_expect (out, "5:30: actions.loop.topic: 'm' is an input topic of agent a");
    s_expect (out, "9:60: agents[0].dead_letter_topic: 'm' is an input topic of agent a");
    free (out);
}

//  Every limit and budget has an upper bound (one table: s_walk asserts each has one).
static void
test_upper_bounds (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load ("kafka: {brokers: embedded}\n"
                              "backends: {b: {kind: scripted, file: f}}\n"
                              "actions: {esc: {kind: log}}\n"
                              "agents:\n"
                              "  - {name: a, topics: [m], fields: {key: [h]}, actions: [esc],\n"
                              "     reason: {backend: b, incident_token_cap: 10000001,\n"
                              "              budget_tokens: 1000000001}, fallback: esc}\n"
                              "gates: {instructions: 1000000001}\n", &cfg, &out), 3);
    s_expect (out, "6:47: agents[0].reason.incident_token_cap: must be in [1,10000000], "
              "got 10000001");
    s_expect (out, "7:30: agents[0].reason.budget_tokens: must be in [1,1000000000], "
              "got 1000000001");
    s_expect (out, "8:23: gates.instructions: must be in [1000,1000000000], got 1000000001");
    free (out);
}

//  Link-local and cloud-metadata hosts, however written, unless allow_link_local.
static void
test_metadata_url (void **state)
{
    static const char *const hosts [] = {
        "169.254.169.254", "2852039166", "0xa9fea9fe", "[fe80::1]", "[fd00:ec2::254]",
        "[::ffff:169.254.169.254]", "100.100.100.200", "metadata.google.internal.",
        "Metadata.Google.Internal", NULL
    };
    for (int i = 0; hosts [i]; i++)
        for (int allow = 0; allow < 2; allow++) {
            mesh_config_t *cfg = NULL;
            char *out = NULL, *text;
            assert_true (asprintf (&text, "kafka: {brokers: embedded}\n"
                                   "backends: {b: {kind: openai, model: m%s,\n"
                                   "  url: 'http://%s:80'}}\n"
                                   "actions: {esc: {kind: log}}\n"
                                   "agents:\n"
                                   "  - {name: a, topics: [m], fields: {key: [h]}, "
                                   "reason: {backend: b}, actions: [esc], fallback: esc}\n",
                                   allow ? ", allow_link_local: true" : "", hosts [i]) > 0);
            assert_int_equal (s_load (text, &cfg, &out), allow ? 0 : 1);
            if (!allow) {
                s_expect (out, "3:8: backends.b.url: host ");
                assert_non_null (strstr (out, "is a link-local or cloud-metadata address"));
            }
            mesh_config_destroy (&cfg);
            free (out);
            free (text);
        }
    //  An ordinary private address is a model server's.
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load ("kafka: {brokers: embedded}\n"
                              "backends: {b: {kind: openai, model: m, url: 'http://10.0.0.5'}}\n"
                              "actions: {esc: {kind: log}}\n"
                              "agents:\n"
                              "  - {name: a, topics: [m], fields: {key: [h]}, "
                              "reason: {backend: b}, actions: [esc], fallback: esc}\n",
                              &cfg, &out), 0);
    mesh_config_destroy (&cfg);
    free (out);
}

//  The snapshot: the same bytes, checked by hash; the tree and positions of the one parse.
static void
test_snapshot (void **state)
{
    mesh_config_t *cfg = NULL, *again = NULL;
    char *out = NULL;
    char *path = s_write ("c.yaml", s_base, strlen (s_base));
    assert_int_equal (s_load_path (path, &cfg, &out), 0);
    free (out);
    assert_int_equal (strlen (cfg->sha256), 64);
    assert_string_equal (json_string_value (json_object_get (json_object_get (
        cfg->tree, "kafka"), "brokers")), "embedded");
    mesh_config_pos_t at = mesh_config_where (cfg, "agents[0].fallback");
    assert_int_equal (at.line, 16);
    assert_int_equal (at.col, 5);
    assert_int_equal (mesh_config_where (cfg, "daemon").line, 0);
    char *run;
    assert_true (asprintf (&run, "%s/run", s_dir) > 0);
    assert_int_equal (mkdir (run, 0700), 0);
    assert_int_equal (mesh_config_snapshot (cfg, run), 0);
    assert_non_null (cfg->snapshot);
    //  The file is edited afterwards: the snapshot still holds what was checked.
    char *edited = s_write ("c.yaml", "kafka: {}\n", 10);
    size_t out_size;
    FILE *err = open_memstream (&out, &out_size);
    assert_int_equal (mesh_config_load_snapshot (path, cfg->snapshot, cfg->sha256, &again,
                                                 err), 0);
    fclose (err);
    free (out);
    assert_string_equal (again->path, path);
    assert_string_equal (again->sha256, cfg->sha256);
    assert_true (json_equal (again->tree, cfg->tree));
    mesh_config_destroy (&again);
    //  A snapshot that was changed, or a hash that is not its own: nothing is parsed.
    err = open_memstream (&out, &out_size);
    assert_int_equal (mesh_config_load_snapshot (path, cfg->snapshot, "00", &again, err), 1);
    fclose (err);
    assert_null (again);
    s_expect (out, "1:1: snapshot ");
    assert_non_null (strstr (out, "not 00 as meshd recorded"));
    free (out);
    FILE *file = fopen (cfg->snapshot, "ab");
    assert_non_null (file);
    fputs ("# changed\n", file);
    fclose (file);
    err = open_memstream (&out, &out_size);
    assert_int_equal (mesh_config_load_snapshot (path, cfg->snapshot, cfg->sha256, &again,
                                                 err), 1);
    fclose (err);
    assert_non_null (strstr (out, "it was changed, so it is not used"));
    free (out);
    mesh_config_destroy (&cfg);
    free (edited);
    free (run);
    free (path);
}

//  An openai backend "o" (lines 3-6) whose further keys are KEYS, from line 7 on, and
//  one agent reasoning with it.
static int
s_load_openai (const char *keys, mesh_config_t **cfg_p, char **out_p)
{
    char *text;
    assert_true (asprintf (&text,
                           "kafka: {brokers: embedded}\n"                   //  1
                           "backends:\n"                                    //  2
                           "  o:\n"                                         //  3
                           "    kind: openai\n"                             //  4
                           "    url: http://h:1\n"                          //  5
                           "    model: m\n"                                 //  6
                           "%s"                                             //  7...
                           "actions: {esc: {kind: log}}\n"
                           "agents: [{name: a, topics: [m], fields: {key: [h]}, "
                           "reason: {backend: o}, actions: [esc], fallback: esc}]\n",
                           keys) > 0);
    int problems = s_load (text, cfg_p, out_p);
    free (text);
    return problems;
}

//  What an openai backend gets when it says no more than kind, url and model.
static void
test_backend_defaults (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_openai ("", &cfg, &out), 0);
    const mesh_backend_config_t *o = mesh_config_backend (cfg, "o");
    assert_int_equal (o->flavor, MESH_FLAVOR_AUTO);
    assert_true (o->stream);
    assert_int_equal (o->timeout_ms, 30000);
    assert_int_equal (o->first_token_timeout_ms, 15000);
    assert_int_equal (o->idle_timeout_ms, 10000);
    assert_int_equal (o->retry_attempts, 3);
    assert_int_equal (o->retry_base_ms, 250);
    assert_int_equal (o->retry_max_ms, 5000);
    assert_int_equal (o->circuit_failures, 5);
    assert_int_equal (o->circuit_open_ms, 30000);
    assert_int_equal (o->probe_interval_s, 300);
    assert_int_equal (o->context_tokens, 0);
    assert_null (o->stop);
    assert_int_equal (o->stop_count, 0);
    assert_true (o->seed);
    assert_null (o->keep_alive);
    //  backend: o is the cascade [o]; the name and the list are separate copies.
    const mesh_reason_config_t *reason = &cfg->agents [0].reason;
    assert_string_equal (reason->backend, "o");
    assert_int_equal (reason->backend_count, 1);
    assert_string_equal (reason->backends [0], "o");
    assert_ptr_not_equal (reason->backends [0], reason->backend);
    assert_true (reason->escalate_below == 0);
    mesh_config_destroy (&cfg);
    free (out);

    //  A whole-call deadline shorter than the defaults cuts them; it is not an error.
    assert_int_equal (s_load_openai ("    timeout_ms: 8000\n", &cfg, &out), 0);
    o = mesh_config_backend (cfg, "o");
    assert_int_equal (o->first_token_timeout_ms, 8000);
    assert_int_equal (o->idle_timeout_ms, 8000);
    mesh_config_destroy (&cfg);
    free (out);
    assert_int_equal (s_load_openai ("    timeout_ms: 12000\n", &cfg, &out), 0);
    o = mesh_config_backend (cfg, "o");
    assert_int_equal (o->first_token_timeout_ms, 12000);
    assert_int_equal (o->idle_timeout_ms, 10000);
    mesh_config_destroy (&cfg);
    free (out);

    //  The flavours' names, in the enum's order.
    static const char *const names [] = { "auto", "openai", "llamacpp", "vllm", "ollama",
                                          "ollama-native", "tgi" };
    assert_int_equal (sizeof names / sizeof names [0], MESH_FLAVOR_COUNT_);
    for (int i = 0; i < MESH_FLAVOR_COUNT_; i++)
        assert_string_equal (mesh_config_flavor_name ((mesh_backend_flavor_t) i), names [i]);
    assert_string_equal (mesh_config_flavor_name (MESH_FLAVOR_COUNT_), "unknown");
}

//  Every new backend key written out, and each flavour's name read back.
static void
test_backend_values (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_openai ("    flavor: ollama-native\n"
                                     "    stream: false\n"
                                     "    timeout_ms: 60000\n"
                                     "    first_token_timeout_ms: 60000\n"
                                     "    idle_timeout_ms: 1\n"
                                     "    retry: {attempts: 1, base_ms: 100, max_ms: 100}\n"
                                     "    circuit: {failures: 1000, open_ms: 100}\n"
                                     "    probe_interval_s: 86400\n"
                                     "    context_tokens: 100000000\n"
                                     "    stop: [\"\\n\\n\", \"<|im_end|>\", \"User:\", \"###\"]\n"
                                     "    seed: false\n"
                                     "    keep_alive: \"-1\"\n", &cfg, &out), 0);
    const mesh_backend_config_t *o = mesh_config_backend (cfg, "o");
    assert_int_equal (o->flavor, MESH_FLAVOR_OLLAMA_NATIVE);
    assert_false (o->stream);
    assert_int_equal (o->first_token_timeout_ms, 60000);
    assert_int_equal (o->idle_timeout_ms, 1);
    assert_int_equal (o->retry_attempts, 1);
    assert_int_equal (o->retry_base_ms, 100);
    assert_int_equal (o->retry_max_ms, 100);
    assert_int_equal (o->circuit_failures, 1000);
    assert_int_equal (o->circuit_open_ms, 100);
    assert_int_equal (o->probe_interval_s, 86400);
    assert_int_equal (o->context_tokens, 100000000);
    assert_int_equal (o->stop_count, 4);
    assert_string_equal (o->stop [0], "\n\n");
    assert_string_equal (o->stop [1], "<|im_end|>");
    assert_string_equal (o->stop [3], "###");
    assert_false (o->seed);
    assert_string_equal (o->keep_alive, "-1");
    mesh_config_destroy (&cfg);
    free (out);

    //  Each flavour by name; keep_alive in each form Ollama takes.
    static const char *const flavors [] = { "auto", "openai", "llamacpp", "vllm", "ollama",
                                            "ollama-native", "tgi", NULL };
    for (int i = 0; flavors [i]; i++) {
        char *keys;
        assert_true (asprintf (&keys, "    flavor: %s\n", flavors [i]) > 0);
        assert_int_equal (s_load_openai (keys, &cfg, &out), 0);
        assert_int_equal (mesh_config_backend (cfg, "o")->flavor, i);
        mesh_config_destroy (&cfg);
        free (out);
        free (keys);
    }
    static const char *const durations [] = { "5m", "30s", "1h", "0", "300", "-1", NULL };
    for (int i = 0; durations [i]; i++) {
        char *keys;
        assert_true (asprintf (&keys, "    flavor: ollama-native\n    keep_alive: \"%s\"\n",
                               durations [i]) > 0);
        assert_int_equal (s_load_openai (keys, &cfg, &out), 0);
        assert_string_equal (mesh_config_backend (cfg, "o")->keep_alive, durations [i]);
        mesh_config_destroy (&cfg);
        free (out);
        free (keys);
    }
}

//  Each new backend key just outside its range, and the wrong spellings.
static void
test_backend_ranges (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_openai ("    first_token_timeout_ms: 0\n"                    //  7
                                     "    idle_timeout_ms: 3600001\n"                     //  8
                                     "    retry: {attempts: 11, base_ms: 0, max_ms: 600001}\n"
                                     "    circuit: {failures: 0, open_ms: 99}\n"          //  10
                                     "    probe_interval_s: 86401\n"                      //  11
                                     "    context_tokens: -1\n"                           //  12
                                     "    flavor: ollama_native\n"                        //  13
                                     "    stream: yes\n"                                  //  14
                                     "    seed: 1\n", &cfg, &out), 12);                   //  15
    s_expect (out, "7:29: backends.o.first_token_timeout_ms: must be in [1,3600000], got 0");
    s_expect (out, "8:22: backends.o.idle_timeout_ms: must be in [1,3600000], got 3600001");
    s_expect (out, "9:23: backends.o.retry.attempts: must be in [1,10], got 11");
    s_expect (out, "9:36: backends.o.retry.base_ms: must be in [1,60000], got 0");
    s_expect (out, "9:47: backends.o.retry.max_ms: must be in [1,600000], got 600001");
    s_expect (out, "10:25: backends.o.circuit.failures: must be in [1,1000], got 0");
    s_expect (out, "10:37: backends.o.circuit.open_ms: must be in [100,3600000], got 99");
    s_expect (out, "11:23: backends.o.probe_interval_s: must be in [1,86400], got 86401");
    s_expect (out, "12:21: backends.o.context_tokens: must be in [0,100000000], got -1");
    s_expect (out, "13:13: backends.o.flavor: must be one of: auto, openai, llamacpp, vllm, "
              "ollama, ollama-native, tgi; got 'ollama_native'");
    s_expect (out, "14:13: backends.o.stream: expected true or false, got 'yes'");
    s_expect (out, "15:11: backends.o.seed: expected true or false, got '1'");
    free (out);

    //  The upper ends of the ranges that the first load did not reach.
    assert_int_equal (s_load_openai ("    timeout_ms: 3600000\n"                          //  7
                                     "    first_token_timeout_ms: 3600001\n"              //  8
                                     "    retry: {base_ms: 60001}\n"                      //  9
                                     "    circuit: {failures: 1001, open_ms: 3600001}\n"  //  10
                                     "    context_tokens: 100000001\n"                    //  11
                                     "    probe_interval_s: 0\n", &cfg, &out), 6);        //  12
    s_expect (out, "8:29: backends.o.first_token_timeout_ms: must be in [1,3600000], got 3600001");
    s_expect (out, "9:22: backends.o.retry.base_ms: must be in [1,60000], got 60001");
    s_expect (out, "10:25: backends.o.circuit.failures: must be in [1,1000], got 1001");
    s_expect (out, "10:40: backends.o.circuit.open_ms: must be in [100,3600000], got 3600001");
    s_expect (out, "11:21: backends.o.context_tokens: must be in [0,100000000], got 100000001");
    s_expect (out, "12:23: backends.o.probe_interval_s: must be in [1,86400], got 0");
    free (out);
}

//  Backend keys that depend on each other, and the stop and keep_alive strings.
static void
test_backend_checks (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_openai ("    timeout_ms: 5000\n"                             //  7
                                     "    first_token_timeout_ms: 5001\n"                 //  8
                                     "    idle_timeout_ms: 6000\n"                        //  9
                                     "    retry: {base_ms: 2000, max_ms: 1000}\n"         //  10
                                     "    stop: [a, b, c, d, e]\n"                        //  11
                                     "    keep_alive: 5m\n", &cfg, &out), 5);             //  12
    s_expect (out, "8:29: backends.o.first_token_timeout_ms: must not exceed timeout_ms (5000), "
              "got 5001");
    s_expect (out, "9:22: backends.o.idle_timeout_ms: must not exceed timeout_ms (5000), got 6000");
    s_expect (out, "10:22: backends.o.retry.base_ms: must be at most max_ms (1000), got 2000");
    s_expect (out, "11:11: backends.o.stop: at most 4 stop strings (TGI refuses more than 4), "
              "got 5");
    s_expect (out, "12:17: backends.o.keep_alive: only for flavor ollama-native (Ollama's own "
              "/api/chat), and this backend's flavor is auto");
    free (out);

    //  The default first-token deadline is cut to a short timeout_ms, but one written
    //  out must fit in it; base_ms above the default max_ms needs a max_ms.
    assert_int_equal (s_load_openai ("    timeout_ms: 3000\n"                             //  7
                                     "    first_token_timeout_ms: 15000\n"                //  8
                                     "    retry: {base_ms: 6000}\n", &cfg, &out), 2);     //  9
    s_expect (out, "8:29: backends.o.first_token_timeout_ms: must not exceed timeout_ms (3000), "
              "got 15000");
    s_expect (out, "9:22: backends.o.retry.base_ms: must be at most max_ms (5000), got 6000");
    free (out);

    //  Stop strings: not empty, at most 64 bytes, no NUL, each once (and five is too many).
    assert_int_equal (s_load_openai ("    stop: [\"\", \"x\\0y\", "                         //  7
                                     "\"0123456789012345678901234567890123456789"
                                     "0123456789012345678901234\", x, x]\n", &cfg, &out), 5);
    s_expect (out, "7:11: backends.o.stop: at most 4 stop strings");
    s_expect (out, "7:12: backends.o.stop[0]: must not be empty");
    s_expect (out, "7:16: backends.o.stop[1]: must not contain a NUL character");
    s_expect (out, "7:24: backends.o.stop[2]: expected a stop string of at most 64 bytes");
    s_expect (out, "7:96: backends.o.stop[4]: 'x' is listed twice (first at 7:93)");
    free (out);
    //  Exactly 64 bytes is fine, and stop: [] is no stop strings.
    assert_int_equal (s_load_openai ("    stop: [\"0123456789012345678901234567890123456789"
                                     "012345678901234567890123\"]\n", &cfg, &out), 0);
    assert_int_equal (strlen (mesh_config_backend (cfg, "o")->stop [0]), 64);
    mesh_config_destroy (&cfg);
    free (out);
    assert_int_equal (s_load_openai ("    stop: []\n", &cfg, &out), 0);
    assert_int_equal (mesh_config_backend (cfg, "o")->stop_count, 0);
    mesh_config_destroy (&cfg);
    free (out);

    //  keep_alive: an Ollama duration, and only for ollama-native (not its OpenAI layer).
    static const char *const bad [] = { "5 m", "5d", "1h30m", "-5m", "m", "1.5h", "+5m",
                                        "1234567890s", NULL };
    for (int i = 0; bad [i]; i++) {
        char *keys;
        assert_true (asprintf (&keys, "    flavor: ollama-native\n"                     //  7
                               "    keep_alive: \"%s\"\n", bad [i]) > 0);                //  8
        assert_int_equal (s_load_openai (keys, &cfg, &out), 1);
        s_expect (out, "8:17: backends.o.keep_alive: expected an Ollama duration: -1 (forever), "
                  "0, or digits with an optional unit s, m or h");
        free (out);
        free (keys);
    }
    assert_int_equal (s_load_openai ("    flavor: ollama\n"
                                     "    keep_alive: 5m\n", &cfg, &out), 1);
    s_expect (out, "8:17: backends.o.keep_alive: only for flavor ollama-native (Ollama's own "
              "/api/chat), and this backend's flavor is ollama");
    free (out);
}

//  A scripted backend refuses every openai key, naming its kind; limits and budget are
//  for both kinds.
static void
test_backend_kinds (void **state)
{
    static const char *const openai_only [] = {
        "flavor: tgi", "stream: true", "first_token_timeout_ms: 100", "idle_timeout_ms: 100",
        "retry: {attempts: 2}", "circuit: {failures: 2}", "probe_interval_s: 60",
        "context_tokens: 4096", "stop: [x]", "seed: true", "keep_alive: 5m",
        "url: http://h:1", "model: m", "timeout_ms: 100", "json_schema: false", NULL
    };
    free (s_write ("r.jsonl", "", 0));
    for (int i = 0; openai_only [i]; i++) {
        mesh_config_t *cfg = NULL;
        char *out = NULL, *text, *message;
        assert_true (asprintf (&text, "kafka: {brokers: embedded}\n"
                               "backends:\n"
                               "  s:\n"
                               "    kind: scripted\n"
                               "    file: r.jsonl\n"
                               "    %s\n"                                           //  6
                               "actions: {esc: {kind: log}}\n"
                               "agents: [{name: a, topics: [m], fields: {key: [h]}, "
                               "reason: {backend: s}, actions: [esc], fallback: esc}]\n",
                               openai_only [i]) > 0);
        assert_int_equal (s_load (text, &cfg, &out), 1);
        size_t key = strcspn (openai_only [i], ":");
        assert_true (asprintf (&message, "6:%zu: backends.s.%.*s: only for kind openai (this "
                               "backend is scripted)", 7 + key, (int) key,
                               openai_only [i]) > 0);
        s_expect (out, message);
        free (message);
        free (out);
        free (text);
    }
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load ("kafka: {brokers: embedded}\n"
                              "backends: {s: {kind: scripted, file: r.jsonl, limits: "
                              "{max_depth: 8}, budget: {tokens: 1000}}}\n"
                              "actions: {esc: {kind: log}}\n"
                              "agents: [{name: a, topics: [m], fields: {key: [h]}, "
                              "reason: {backend: s}, actions: [esc], fallback: esc}]\n",
                              &cfg, &out), 0);
    assert_int_equal (mesh_config_backend (cfg, "s")->limits.max_depth, 8);
    mesh_config_destroy (&cfg);
    free (out);
}

//  Three declared backends (b, c, d) and an agent whose reason is REASON, on line 13
//  from column 13.
static int
s_load_reason (const char *reason, mesh_config_t **cfg_p, char **out_p)
{
    char *text;
    assert_true (asprintf (&text,
                           "kafka: {brokers: embedded}\n"                   //  1
                           "backends:\n"                                    //  2
                           "  b: {kind: scripted, file: r.jsonl}\n"         //  3
                           "  c: {kind: scripted, file: r.jsonl}\n"         //  4
                           "  d: {kind: scripted, file: r.jsonl}\n"         //  5
                           "actions: {esc: {kind: log}}\n"                  //  6
                           "agents:\n"                                      //  7
                           "  - name: a\n"                                  //  8
                           "    topics: [m]\n"                              //  9
                           "    fields: {key: [h]}\n"                       //  10
                           "    actions: [esc]\n"                           //  11
                           "    fallback: esc\n"                            //  12
                           "    reason: %s\n", reason) > 0);                //  13
    free (s_write ("r.jsonl", "", 0));
    int problems = s_load (text, cfg_p, out_p);
    free (text);
    return problems;
}

//  reason.backends: the cascade; exactly one of backend and backends.
static void
test_cascade (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_reason ("{backends: [c, b, d], escalate_below: 0.7}", &cfg, &out),
                      0);
    const mesh_reason_config_t *reason = &cfg->agents [0].reason;
    assert_int_equal (reason->backend_count, 3);
    assert_string_equal (reason->backends [0], "c");
    assert_string_equal (reason->backends [1], "b");
    assert_string_equal (reason->backends [2], "d");
    assert_string_equal (reason->backend, "c");
    assert_ptr_not_equal (reason->backend, reason->backends [0]);
    assert_true (reason->escalate_below == 0.7);
    mesh_config_destroy (&cfg);
    free (out);

    //  A cascade of one is allowed (as backend:), without escalate_below.
    assert_int_equal (s_load_reason ("{backends: [d]}", &cfg, &out), 0);
    assert_string_equal (cfg->agents [0].reason.backend, "d");
    assert_int_equal (cfg->agents [0].reason.backend_count, 1);
    mesh_config_destroy (&cfg);
    free (out);

    assert_int_equal (s_load_reason ("{backend: b, backends: [b, c]}", &cfg, &out), 1);
    s_expect (out, "13:36: agents[0].reason: give either backend (one) or backends (a cascade), "
              "not both");
    free (out);
    assert_int_equal (s_load_reason ("{max_steps: 2}", &cfg, &out), 1);
    s_expect (out, "13:13: agents[0].reason: missing required key 'backend' (the name of an "
              "entry in backends) or 'backends' (a cascade of them, in order)");
    free (out);
    assert_int_equal (s_load_reason ("{backend: }", &cfg, &out), 1);
    s_expect (out, "13:23: agents[0].reason.backend: a value is required");
    free (out);
    assert_int_equal (s_load_reason ("{backends: []}", &cfg, &out), 1);
    s_expect (out, "13:24: agents[0].reason.backends: must list at least 1 entry");
    free (out);
    assert_int_equal (s_load_reason ("{backends: [b, nope, c]}", &cfg, &out), 1);
    s_expect (out, "13:28: agents[0].reason.backends[1]: no backend named 'nope' (declared: b, "
              "c, d)");
    free (out);
    assert_int_equal (s_load_reason ("{backends: [b, c, b]}", &cfg, &out), 1);
    s_expect (out, "13:31: agents[0].reason.backends[2]: 'b' is listed twice (first at 13:25)");
    free (out);
    assert_int_equal (s_load_reason ("{backends: [b, c, d, b1, b2, b3, b4, b5, b6]}", &cfg, &out),
                      7);
    s_expect (out, "13:24: agents[0].reason.backends: at most 8 backends in a cascade, got 9");
    s_expect (out, "13:34: agents[0].reason.backends[3]: no backend named 'b1'");
    free (out);

    //  escalate_below: 0..1, and only with somewhere to escalate to.
    assert_int_equal (s_load_reason ("{backend: b, escalate_below: 0.5}", &cfg, &out), 1);
    s_expect (out, "13:42: agents[0].reason.escalate_below: needs a cascade: list two or more "
              "backends (backends: [small, large])");
    free (out);
    assert_int_equal (s_load_reason ("{backends: [b], escalate_below: 0}", &cfg, &out), 1);
    s_expect (out, "13:45: agents[0].reason.escalate_below: needs a cascade");
    free (out);
    assert_int_equal (s_load_reason ("{backends: [b, c], escalate_below: 1.5}", &cfg, &out), 1);
    s_expect (out, "13:48: agents[0].reason.escalate_below: must be in [0,1], got 1.5");
    free (out);
    assert_int_equal (s_load_reason ("{backends: [b, c], escalate_below: -0.1}", &cfg, &out), 1);
    s_expect (out, "13:48: agents[0].reason.escalate_below: must be in [0,1], got -0.1");
    free (out);
    assert_int_equal (s_load_reason ("{backends: [b, c], escalate_below: 1}", &cfg, &out), 0);
    assert_true (cfg->agents [0].reason.escalate_below == 1);
    mesh_config_destroy (&cfg);
    free (out);
}

//  --------------------------------------------------------------------------
//  kind exec, kind webhook, approval and rate.

//  A config with one action, x, whose keys are BODY (lines indented by 4, from line 5).
static int
s_load_action (const char *body, mesh_config_t **cfg_p, char **out_p)
{
    char *text;
    assert_true (asprintf (&text, "kafka: {brokers: embedded}\n"                     //  1
                           "backends: {b: {kind: scripted, file: f}}\n"              //  2
                           "actions:\n"                                              //  3
                           "  x:\n"                                                  //  4
                           "%s"                                                      //  5..
                           "agents: [{name: a, topics: [m], fields: {key: [h]}, "
                           "reason: {backend: b}, actions: [x], fallback: x}]\n", body) > 0);
    int problems = s_load (text, cfg_p, out_p);
    free (text);
    return problems;
}

//  The path of an executable file NAME in the temporary directory, with MODE.
static char *
s_program (const char *name, mode_t mode)
{
    char *path = s_write (name, "#!/bin/sh\nexit 0\n", 17);
    assert_int_equal (chmod (path, mode), 0);
    return path;
}

//  An exec action of PROGRAM (lines 5 and 6) followed by EXTRA (line 7 on); the number
//  of problems must be PROBLEMS, and the first expected line EXPECT (NULL: none).
static void
s_exec_case (const char *program, const char *extra, int problems, const char *expect)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL, *body;
    assert_true (asprintf (&body, "    kind: exec\n"                                  //  5
                           "    program: %s\n"                                        //  6
                           "%s\n", program, extra) > 0);
    int found = s_load_action (body, &cfg, &out);
    if (found != problems)
        fail_msg ("%s: expected %d problems, got %d:\n%s", extra, problems, found, out);
    if (expect)
        s_expect (out, expect);
    mesh_config_destroy (&cfg);
    free (body);
    free (out);
}

static void
test_exec_defaults (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL, *body;
    char *program = s_program ("prog", 0755);
    assert_true (asprintf (&body, "    kind: exec\n"
                           "    program: %s\n"
                           "    argv: [restart, \"--unit={unit}\", \"{{literal}}\", \"{unit}\"]\n"
                           "    params: {unit: {type: string, pattern: \"[a-z]+\"}}\n",
                           program) > 0);
    assert_int_equal (s_load_action (body, &cfg, &out), 0);
    const mesh_action_spec_t *x = mesh_config_action (cfg, "x");
    assert_int_equal (x->kind, MESH_ACTION_EXEC);
    assert_string_equal (mesh_config_action_kind_name (x->kind), "exec");
    const mesh_action_exec_t *exec = &x->exec;
    assert_string_equal (exec->program, program);
    assert_int_equal (exec->argc, 4);
    assert_string_equal (exec->argv [0], "restart");
    assert_string_equal (exec->argv [1], "--unit={unit}");
    assert_string_equal (exec->argv [2], "{{literal}}");    //  as written: the runner reads it
    assert_string_equal (exec->argv [3], "{unit}");
    assert_int_equal (exec->env_count, 2);
    assert_string_equal (exec->env [0],
                         "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    assert_string_equal (exec->env [1], "LANG=C.UTF-8");
    assert_false (exec->stdin_decision);
    assert_string_equal (exec->cwd, "/");
    assert_null (exec->user);
    assert_null (exec->group);
    assert_int_equal (exec->cpu_s, 10);
    assert_int_equal (exec->as_bytes, 1073741824L);
    assert_int_equal (exec->nofile, 64);
    assert_int_equal (exec->nproc, 256);
    assert_int_equal (exec->timeout_ms, 30000);
    assert_int_equal (exec->kill_after_ms, 5000);
    assert_int_equal (exec->capture_bytes, 65536);
    assert_false (x->params [0].allow_dash);
    //  Rules see allow_dash in ctx.action only where it is set.
    json_t *spec = mesh_config_param_json (&x->params [0]);
    assert_null (json_object_get (spec, "allow_dash"));
    json_decref (spec);
    assert_false (x->approval_required);
    assert_int_equal (x->approval_timeout_s, 3600);
    assert_int_equal (x->rate_count, 0);
    assert_int_equal (x->rate_window_s, 0);
    //  Another kind's keys keep nothing.
    assert_null (x->webhook.url);
    assert_int_equal (x->webhook.timeout_ms, 0);
    assert_int_equal (x->webhook.attempts, 0);
    mesh_config_destroy (&cfg);
    free (out);
    free (body);

    //  A log action has no exec or webhook settings; the kind names.
    assert_int_equal (s_load (s_base, &cfg, &out), 0);
    const mesh_action_spec_t *esc = mesh_config_action (cfg, "esc");
    assert_null (esc->exec.program);
    assert_int_equal (esc->exec.timeout_ms, 0);
    assert_int_equal (esc->exec.env_count, 0);
    assert_null (esc->webhook.url);
    assert_false (esc->approval_required);
    assert_int_equal (esc->approval_timeout_s, 3600);
    assert_string_equal (mesh_config_action_kind_name (MESH_ACTION_LOG), "log");
    assert_string_equal (mesh_config_action_kind_name (MESH_ACTION_KAFKA), "kafka");
    assert_string_equal (mesh_config_action_kind_name (MESH_ACTION_WEBHOOK), "webhook");
    assert_string_equal (mesh_config_action_kind_name ((mesh_action_kind_t) 42), "unknown");
    mesh_config_destroy (&cfg);
    free (out);
    free (program);
}

static void
test_exec_values (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL, *body;
    char *program = s_program ("prog", 0755);
    assert_true (asprintf (&body, "    kind: exec\n"
                           "    program: %s\n"
                           "    argv: [\"{n}\", \"-v\", \"-v\"]\n"
                           "    params:\n"
                           "      n: {type: integer, min: -5, max: 5, allow_dash: true}\n"
                           "    env: [HOME, \"TERM=dumb\", \"EMPTY=\"]\n"
                           "    stdin: decision\n"
                           "    cwd: /var/tmp\n"
                           "    user: nobody\n"
                           "    group: nogroup\n"
                           "    limits: {cpu_s: 5, as_bytes: 33554432, nofile: 128, nproc: 10}\n"
                           "    timeout_ms: 1000\n"
                           "    kill_after_ms: 200\n"
                           "    capture_bytes: 0\n"
                           "    approval: required\n"
                           "    approval_timeout_s: 600\n"
                           "    rate: 3/10m\n", program) > 0);
    assert_int_equal (s_load_action (body, &cfg, &out), 0);
    const mesh_action_spec_t *x = mesh_config_action (cfg, "x");
    const mesh_action_exec_t *exec = &x->exec;
    assert_int_equal (exec->argc, 3);
    assert_string_equal (exec->argv [2], "-v");
    assert_true (x->params [0].allow_dash);
    json_t *spec = mesh_config_param_json (&x->params [0]);
    assert_true (json_is_true (json_object_get (spec, "allow_dash")));
    json_t *want = json_pack ("{s:s, s:b, s:i, s:i, s:b}", "type", "integer", "required", 1,
                              "min", -5, "max", 5, "allow_dash", 1);
    assert_true (json_equal (spec, want));
    json_decref (want);
    json_decref (spec);
    assert_int_equal (exec->env_count, 3);
    assert_string_equal (exec->env [0], "HOME");
    assert_string_equal (exec->env [1], "TERM=dumb");
    assert_string_equal (exec->env [2], "EMPTY=");
    assert_true (exec->stdin_decision);
    assert_string_equal (exec->cwd, "/var/tmp");
    assert_string_equal (exec->user, "nobody");
    assert_string_equal (exec->group, "nogroup");
    assert_int_equal (exec->cpu_s, 5);
    assert_int_equal (exec->as_bytes, 33554432);
    assert_int_equal (exec->nofile, 128);
    assert_int_equal (exec->nproc, 10);
    assert_int_equal (exec->timeout_ms, 1000);
    assert_int_equal (exec->kill_after_ms, 200);
    assert_int_equal (exec->capture_bytes, 0);
    assert_true (x->approval_required);
    assert_int_equal (x->approval_timeout_s, 600);
    assert_int_equal (x->rate_count, 3);
    assert_int_equal (x->rate_window_s, 600);
    mesh_config_destroy (&cfg);
    free (out);
    free (body);

    //  An empty env is an empty environment (and MESH_* only); stdin: null is the default.
    assert_true (asprintf (&body, "    kind: exec\n    program: %s\n    env: []\n"
                           "    stdin: null\n    user: nobody\n", program) > 0);
    assert_int_equal (s_load_action (body, &cfg, &out), 0);
    assert_int_equal (cfg->actions [0].exec.env_count, 0);
    assert_false (cfg->actions [0].exec.stdin_decision);
    assert_null (cfg->actions [0].exec.group);
    mesh_config_destroy (&cfg);
    free (out);
    free (body);
    free (program);
}

//  program: absolute, trusted (mesh_config_check_trust, as rule files), executable.
static void
test_exec_program (void **state)
{
    char *good = s_program ("prog", 0755);
    char *group_writable = s_program ("gw", 0775);
    char *plain = s_program ("plain", 0644);
    char *missing;
    assert_true (asprintf (&missing, "%s/nothere", s_dir) > 0);
    char *expect;

    s_exec_case (good, "", 0, NULL);
    s_exec_case ("bin/restart", "", 1, "6:14: actions.x.program: expected an absolute path "
                 "(/usr/local/libexec/meshd/restart-unit), got 'bin/restart'; the program is "
                 "executed directly, never looked up in PATH");
    assert_true (asprintf (&expect, "6:14: actions.x.program: %s is writable by its group "
                           "(mode 0775); run chmod go-w %s (meshd runs this program when a "
                           "proposal is accepted", group_writable, group_writable) > 0);
    s_exec_case (group_writable, "", 1, expect);
    free (expect);
    assert_true (asprintf (&expect, "6:14: actions.x.program: cannot resolve %s: No such file",
                           missing) > 0);
    s_exec_case (missing, "", 1, expect);
    free (expect);
    assert_true (asprintf (&expect, "6:14: actions.x.program: %s is not executable", plain) > 0);
    s_exec_case (plain, "", 1, expect);
    free (expect);

    //  No program at all, or null.
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_action ("    kind: exec\n    argv: [a]\n", &cfg, &out), 1);
    s_expect (out, "5:5: actions.x: kind exec requires 'program' (the absolute path of what "
              "runs; never looked up in PATH, never through a shell)");
    free (out);
    assert_int_equal (s_load_action ("    kind: exec\n    program: null\n", &cfg, &out), 1);
    s_expect (out, "5:5: actions.x: kind exec requires 'program'");
    free (out);

    //  An agent loading a snapshot does not check the program: meshd did.
    assert_int_equal (chmod (group_writable, 0755), 0);
    char *body;
    assert_true (asprintf (&body, "    kind: exec\n    program: %s\n", group_writable) > 0);
    assert_int_equal (s_load_action (body, &cfg, &out), 0);
    assert_int_equal (chmod (group_writable, 0775), 0);
    assert_int_equal (mesh_config_snapshot (cfg, s_dir), 0);
    char *snapshot = strdup (cfg->snapshot), *origin = strdup (cfg->path);
    char sha256 [65];
    memcpy (sha256, cfg->sha256, sizeof sha256);
    mesh_config_destroy (&cfg);
    free (out);
    size_t size;
    FILE *err = open_memstream (&out, &size);
    assert_int_equal (mesh_config_load_snapshot (origin, snapshot, sha256, &cfg, err), 0);
    fclose (err);
    assert_string_equal (cfg->actions [0].exec.program, group_writable);
    mesh_config_destroy (&cfg);
    unlink (snapshot);
    free (snapshot);
    free (origin);
    free (body);
    free (out);
    free (good);
    free (group_writable);
    free (plain);
    free (missing);
}

static void
test_exec_checks (void **state)
{
    char *program = s_program ("prog", 0755);
    static const struct {
        const char *extra;              //  from line 7
        int problems;
        const char *expect;
    } cases [] = {
        //  argv placeholders
        { "    argv: [\"{nope}\"]", 1,
          "7:12: actions.x.argv[0]: {nope} names no param of this action (it declares none)" },
        { "    params: {unit: {type: string}}\n    argv: [\"{unt}\"]", 1,
          "8:12: actions.x.argv[0]: {unt} names no param of this action (declared: unit)" },
        { "    params: {o: {type: string, required: false}}\n    argv: [\"--o={o}\"]", 1,
          "8:12: actions.x.argv[0]: {o} names an optional param (required: false), and an "
          "argument cannot be built without its value; make it required" },
        { "    argv: [a, \"b}\"]", 1,
          "7:15: actions.x.argv[1]: a '}' that closes no placeholder; write }} for a literal "
          "brace" },
        { "    argv: [\"{a b}\"]", 1,
          "7:12: actions.x.argv[0]: '{' must open a placeholder, {param} with a param's name; "
          "write {{ for a literal brace" },
        { "    argv: [\"{\"]", 1, "7:12: actions.x.argv[0]: '{' must open a placeholder" },
        { "    argv: [\"{}\"]", 1, "7:12: actions.x.argv[0]: '{' must open a placeholder" },
        { "    argv: [\"{1a}\"]", 1, "7:12: actions.x.argv[0]: '{' must open a placeholder" },
        { "    argv: [\"{{ok}}\", \"}}{{\", \"a{{b}}c\"]", 0, NULL },
        { "    argv: a", 1, "7:11: actions.x.argv: expected a sequence such as [a, b]" },
        //  env
        { "    env: [lower]", 1, "7:11: actions.x.env[0]: expected NAME or NAME=value, NAME "
          "matching [A-Z_][A-Z0-9_]* and not MESH_* (meshd sets those)" },
        { "    env: [MESH_DECISION_ID=forged]", 1, "7:11: actions.x.env[0]: expected NAME or "
          "NAME=value" },
        { "    env: [\"=x\"]", 1, "7:11: actions.x.env[0]: expected NAME or NAME=value" },
        { "    env: [\"A=1\", B, \"A=2\"]", 1,
          "7:21: actions.x.env[2]: A is already set (at 7:11); each variable once" },
        { "    env: [\"A=1\", \"A=1\"]", 1, "7:18: actions.x.env[1]: 'A=1' is listed twice" },
        { "    env: [\"A=line\\nbreak\"]", 1, "7:11: actions.x.env[0]: expected NAME or "
          "NAME=value" },
        //  the rest of exec's keys
        { "    stdin: file", 1, "7:12: actions.x.stdin: must be one of: null, decision; got "
          "'file'" },
        { "    cwd: tmp", 1, "7:10: actions.x.cwd: expected an absolute directory path, got "
          "'tmp'" },
        { "    group: nogroup", 1, "7:12: actions.x.group: only allowed with user (the program "
          "switches user and group together); add user, or remove group" },
        { "    user: Root", 1, "7:11: actions.x.user: expected a user or group name" },
        { "    limits: {cpu_s: 0}", 1, "7:21: actions.x.limits.cpu_s: must be in [1,86400], "
          "got 0" },
        { "    limits: {cpu_s: 86401}", 1, "7:21: actions.x.limits.cpu_s: must be in "
          "[1,86400]" },
        { "    limits: {nofile: 8}", 1, "7:22: actions.x.limits.nofile: must be in [16,65536], "
          "got 8" },
        { "    limits: {as_bytes: 1024}", 1, "7:24: actions.x.limits.as_bytes: must be 0 (no "
          "limit) or in [16777216,68719476736], got 1024" },
        { "    limits: {as_bytes: 68719476737}", 1, "7:24: actions.x.limits.as_bytes: must be "
          "in [0,68719476736]" },
        { "    limits: {nproc: 100001}", 1, "7:21: actions.x.limits.nproc: must be in "
          "[1,100000]" },
        { "    limits: {threads: 1}", 1, "7:14: unknown key 'threads' in actions.x.limits "
          "(expected one of: cpu_s, as_bytes, nofile, nproc)" },
        { "    timeout_ms: 99", 1, "7:17: actions.x.timeout_ms: must be in [100,86400000], "
          "got 99" },
        { "    timeout_ms: 86400000", 0, NULL },
        { "    kill_after_ms: 600001", 1, "7:20: actions.x.kill_after_ms: must be in "
          "[100,600000]" },
        { "    capture_bytes: 16777217", 1, "7:20: actions.x.capture_bytes: must be in "
          "[0,16777216]" },
        //  keys of other kinds, and of every kind
        { "    url: https://h/x", 1, "7:10: actions.x.url: only for kind webhook (this action "
          "is exec)" },
        { "    retry: {attempts: 2}", 1, "7:12: actions.x.retry: only for kind webhook (this "
          "action is exec)" },
        { "    topic: t", 1, "7:12: actions.x.topic: only for kind kafka (this action is "
          "exec)" },
        { "    shell: true", 1, "7:5: unknown key 'shell' in actions.x (expected one of: kind, "
          "topic, description, params, allow_input_topic, budget, program, argv, env, stdin, "
          "cwd, user, group, limits, timeout_ms, kill_after_ms, capture_bytes, url, " },
        { "    approval_timeout_s: 600", 1, "7:25: actions.x.approval_timeout_s: only with "
          "approval: required" },
        { "    approval: maybe", 1, "7:15: actions.x.approval: must be one of: required, none; "
          "got 'maybe'" },
        { "    approval: none", 0, NULL },
        { "    approval: required\n    approval_timeout_s: 0", 1, "8:25: "
          "actions.x.approval_timeout_s: must be in [1,2592000], got 0" },
        { "    approval: required\n    approval_timeout_s: 2592001", 1, "8:25: "
          "actions.x.approval_timeout_s: must be in [1,2592000]" },
        { NULL }
    };
    for (int i = 0; cases [i].extra; i++)
        s_exec_case (program, cases [i].extra, cases [i].problems, cases [i].expect);

    //  At most 64 arguments after the program, each at most 4096 bytes.
    char list [64 * 3 + 16] = "    argv: [a";
    for (int i = 1; i < 64; i++)
        strcat (list, ", a");
    strcat (list, "]");
    s_exec_case (program, list, 0, NULL);
    list [strlen (list) - 1] = 0;
    strcat (list, ", a]");
    s_exec_case (program, list, 1, "7:11: actions.x.argv: at most 64 arguments after the "
                 "program, got 65");
    char *long_item = malloc (4200);
    memcpy (long_item, "    argv: [", 11);
    memset (long_item + 11, 'x', 4097);
    strcpy (long_item + 11 + 4097, "]");
    s_exec_case (program, long_item, 1, "7:12: actions.x.argv[0]: expected an argument of at "
                 "most 4096 bytes");
    long_item [11 + 4096] = ']';
    long_item [11 + 4097] = 0;
    s_exec_case (program, long_item, 0, NULL);
    free (long_item);

    //  allow_dash only where a value can become an argument.
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_action ("    kind: log\n"
                                     "    params: {p: {type: string, allow_dash: true}}\n",
                                     &cfg, &out), 1);
    s_expect (out, "6:44: actions.x.params.p.allow_dash: only for kind exec (this action is "
              "log)");
    free (out);
    free (program);
}

//  A webhook action: kind, url, secret (lines 5 to 7), then EXTRA.
static void
s_webhook_case (const char *url, const char *extra, int problems, const char *expect)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL, *body;
    assert_true (asprintf (&body, "    kind: webhook\n"                               //  5
                           "    url: %s\n"                                            //  6
                           "    secret_credential: hook\n"                            //  7
                           "%s\n", url, extra) > 0);
    int found = s_load_action (body, &cfg, &out);
    if (found != problems)
        fail_msg ("%s %s: expected %d problems, got %d:\n%s", url, extra, problems, found, out);
    if (expect)
        s_expect (out, expect);
    mesh_config_destroy (&cfg);
    free (body);
    free (out);
}

static void
test_webhook_defaults (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    s_file ("secret", "0123456789abcdef0123456789abcdef\n", 0600);
    assert_int_equal (s_load_action ("    kind: webhook\n"
                                     "    url: https://hooks.example.com/mesh?team=ops\n"
                                     "    secret_file: secret\n", &cfg, &out), 0);
    const mesh_action_spec_t *x = mesh_config_action (cfg, "x");
    const mesh_action_webhook_t *hook = &x->webhook;
    assert_int_equal (x->kind, MESH_ACTION_WEBHOOK);
    assert_string_equal (hook->url, "https://hooks.example.com/mesh?team=ops");
    assert_false (hook->allow_http);
    assert_false (hook->allow_private);
    assert_int_equal (hook->header_count, 0);
    assert_null (hook->headers);
    char *secret;
    assert_true (asprintf (&secret, "%s/secret", s_dir) > 0);
    assert_string_equal (hook->secret_file, secret);
    free (secret);
    assert_null (hook->secret_credential);
    assert_int_equal (hook->timeout_ms, 10000);
    assert_int_equal (hook->connect_timeout_ms, 3000);
    assert_int_equal (hook->attempts, 3);
    assert_int_equal (hook->retry_base_ms, 500);
    assert_int_equal (hook->retry_max_ms, 10000);
    assert_int_equal (hook->excerpt_bytes, 1024);
    assert_false (x->approval_required);
    assert_int_equal (x->approval_timeout_s, 3600);
    //  exec's settings are cleared, timeout_ms included (it is the webhook's).
    assert_null (x->exec.program);
    assert_int_equal (x->exec.timeout_ms, 0);
    assert_null (x->exec.env);
    assert_null (x->exec.cwd);
    mesh_config_destroy (&cfg);
    free (out);
}

static void
test_webhook_values (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_action ("    kind: webhook\n"
                                     "    url: http://10.0.0.5:8080/hook\n"
                                     "    allow_http: true\n"
                                     "    allow_private: true\n"
                                     "    headers: {X-Team: ops, X-Env: \"prod eu\"}\n"
                                     "    secret_credential: mesh.hook-key_1\n"
                                     "    timeout_ms: 20000\n"
                                     "    connect_timeout_ms: 1000\n"
                                     "    retry: {attempts: 5, base_ms: 100, max_ms: 2000}\n"
                                     "    excerpt_bytes: 0\n"
                                     "    approval: required\n"
                                     "    approval_timeout_s: 60\n"
                                     "    rate: 10/1h\n", &cfg, &out), 0);
    const mesh_action_spec_t *x = mesh_config_action (cfg, "x");
    const mesh_action_webhook_t *hook = &x->webhook;
    assert_string_equal (hook->url, "http://10.0.0.5:8080/hook");
    assert_true (hook->allow_http);
    assert_true (hook->allow_private);
    assert_int_equal (hook->header_count, 2);
    assert_string_equal (hook->headers [0], "X-Team: ops");
    assert_string_equal (hook->headers [1], "X-Env: prod eu");
    assert_null (hook->secret_file);
    assert_string_equal (hook->secret_credential, "mesh.hook-key_1");
    assert_int_equal (hook->timeout_ms, 20000);
    assert_int_equal (hook->connect_timeout_ms, 1000);
    assert_int_equal (hook->attempts, 5);
    assert_int_equal (hook->retry_base_ms, 100);
    assert_int_equal (hook->retry_max_ms, 2000);
    assert_int_equal (hook->excerpt_bytes, 0);
    assert_true (x->approval_required);
    assert_int_equal (x->approval_timeout_s, 60);
    assert_int_equal (x->rate_count, 10);
    assert_int_equal (x->rate_window_s, 3600);
    mesh_config_destroy (&cfg);
    free (out);
}

static void
test_webhook_checks (void **state)
{
    static const char *const ok = "https://hooks.example.com/x";
    s_file ("secret", "0123456789abcdef0123456789abcdef\n", 0600);
    s_file ("open-secret", "0123456789abcdef0123456789abcdef\n", 0644);
    static const struct {
        const char *url, *extra;        //  url on line 6, extra from line 8
        int problems;
        const char *expect;
    } cases [] = {
        //  the URL
        { "http://hooks.example.com/x", "", 1, "6:10: actions.x.url: expected https:// (over "
          "http the body and its signature cross the network in clear text); set allow_http: "
          "true for a receiver on a network you trust" },
        { "http://hooks.example.com/x", "    allow_http: true", 0, NULL },
        { "https://169.254.169.254/latest", "", 1, "6:10: actions.x.url: host 169.254.169.254 "
          "is a link-local or cloud-metadata address; a webhook is never sent there" },
        { "https://169.254.169.254/latest", "    allow_private: true", 1, "6:10: actions.x.url: "
          "host 169.254.169.254 is a link-local or cloud-metadata address" },
        { "https://metadata.google.internal./x", "    allow_private: true", 1, "6:10: "
          "actions.x.url: host metadata.google.internal is a link-local or cloud-metadata" },
        { "'https://[fe80::1]/x'", "    allow_private: true", 1, "6:10: actions.x.url: host "
          "fe80::1 is a link-local" },
        { "https://127.0.0.1:9000/x", "", 1, "6:10: actions.x.url: host 127.0.0.1 is a loopback "
          "or private address; set allow_private: true if the receiver really is there" },
        { "https://127.0.0.1:9000/x", "    allow_private: true", 0, NULL },
        { "https://localhost/x", "", 1, "6:10: actions.x.url: host localhost is a loopback" },
        { "https://api.localhost/x", "", 1, "6:10: actions.x.url: host api.localhost is a" },
        { "https://10.1.2.3/x", "", 1, "6:10: actions.x.url: host 10.1.2.3 is a loopback" },
        { "https://172.31.0.1/x", "", 1, "6:10: actions.x.url: host 172.31.0.1 is a loopback" },
        { "https://172.32.0.1/x", "", 0, NULL },
        { "https://192.168.1.1/x", "", 1, "6:10: actions.x.url: host 192.168.1.1 is a" },
        { "https://100.64.0.1/x", "", 1, "6:10: actions.x.url: host 100.64.0.1 is a" },
        { "https://0x7f000001/x", "", 1, "6:10: actions.x.url: host 0x7f000001 is a" },
        { "'https://[::1]:8443/x'", "", 1, "6:10: actions.x.url: host ::1 is a loopback" },
        { "'https://[fd12::5]/x'", "", 1, "6:10: actions.x.url: host fd12::5 is a loopback" },
        { "'https://[::ffff:10.0.0.1]/x'", "", 1, "6:10: actions.x.url: host ::ffff:10.0.0.1 "
          "is a" },
        { "'https://[2001:db8::1]/x'", "", 0, NULL },
        { "ftp://hooks.example.com/x", "", 1, "6:10: actions.x.url: expected an http:// or "
          "https:// URL" },
        { "https://user:hunter2@hooks.example.com/x", "", 1, "6:10: actions.x.url: expected a "
          "URL without credentials" },
        { "https://hooks.example.com/x#frag", "", 1, "6:10: actions.x.url: expected a URL "
          "without a fragment" },
        { "https:///x", "", 1, "6:10: actions.x.url: expected a URL with a host" },
        //  the secret: exactly one of the two
        { ok, "    secret_file: secret", 1, "7:24: actions.x: exactly one of secret_file and "
          "secret_credential, got both" },
        { ok, "    secret_credential: other", 1, "8:5: duplicate key 'secret_credential' in "
          "actions.x (first at 7:5)" },
        { ok, "    secret_file: open-secret", 2, "8:18: actions.x.secret_file: " },
        { ok, "    secret_file: {credential: hook}", 2, "8:18: actions.x.secret_file: expected "
          "a file path, got a mapping (for a systemd credential write secret_credential: NAME)" },
        //  headers
        { ok, "    headers: {Host: x}", 1, "8:15: actions.x.headers: header Host is not "
          "allowed: meshd sets it, or it changes how the request is framed" },
        { ok, "    headers: {content-length: 1}", 1, "8:15: actions.x.headers: header "
          "content-length is not allowed: meshd sets it" },
        { ok, "    headers: {Content-Type: x}", 1, "8:15: actions.x.headers: header "
          "Content-Type is not allowed" },
        { ok, "    headers: {Idempotency-Key: x}", 1, "8:15: actions.x.headers: header "
          "Idempotency-Key is not allowed" },
        { ok, "    headers: {Transfer-Encoding: chunked}", 1, "8:15: actions.x.headers: header "
          "Transfer-Encoding is not allowed" },
        { ok, "    headers: {X-Mesh-Signature: forged}", 1, "8:15: actions.x.headers: header "
          "X-Mesh-Signature is not allowed: X-Mesh-* are meshd's own" },
        { ok, "    headers: {Authorization: \"Bearer t0ken\"}", 1, "8:15: actions.x.headers: "
          "header Authorization is not allowed: secrets are never written in the config" },
        { ok, "    headers: {\"Bad Name\": x}", 1, "8:15: actions.x.headers: expected a header "
          "name of 1-64 of [A-Za-z0-9-], got 'Bad Name'" },
        { ok, "    headers: {\"X-A:\": x}", 1, "8:15: actions.x.headers: expected a header "
          "name" },
        { ok, "    headers: {X-A: \"a\\r\\nX-Evil: 1\"}", 1, "8:20: actions.x.headers.X-A: "
          "expected a header value of at most 4096 bytes without CR, LF or other control "
          "characters" },
        { ok, "    headers: {X-A: \"a\\nb\"}", 1, "8:20: actions.x.headers.X-A: expected a "
          "header value" },
        { ok, "    headers: {X-A: a, x-a: b}", 1, "8:23: actions.x.headers: header x-a is given "
          "twice (first at 8:15; names are case-insensitive)" },
        { ok, "    headers: {X-A: \"\"}", 1, "8:20: actions.x.headers.X-A: must not be empty" },
        { ok, "    headers: [\"X-A: b\"]", 1, "8:14: actions.x.headers: expected a mapping of "
          "header names to values, such as {X-Team: ops}, got a sequence" },
        { ok, "    headers: {}", 0, NULL },
        //  deadlines and retries
        { ok, "    timeout_ms: 600001", 1, "8:17: actions.x.timeout_ms: must be in [100,600000] "
          "for kind webhook, got 600001" },
        { ok, "    timeout_ms: 600000", 0, NULL },
        { ok, "    timeout_ms: 99", 1, "8:17: actions.x.timeout_ms: must be in [100,86400000]" },
        { ok, "    connect_timeout_ms: 20000", 1, "8:25: actions.x.connect_timeout_ms: must not "
          "exceed timeout_ms (10000), got 20000" },
        { ok, "    connect_timeout_ms: 99", 1, "8:25: actions.x.connect_timeout_ms: must be in "
          "[100,600000]" },
        { ok, "    retry: {base_ms: 20000}", 1, "8:22: actions.x.retry.base_ms: must be at most "
          "max_ms (10000), got 20000" },
        { ok, "    retry: {attempts: 11}", 1, "8:23: actions.x.retry.attempts: must be in "
          "[1,10], got 11" },
        { ok, "    retry: {attempts: 0}", 1, "8:23: actions.x.retry.attempts: must be in "
          "[1,10], got 0" },
        { ok, "    excerpt_bytes: 65537", 1, "8:20: actions.x.excerpt_bytes: must be in "
          "[0,65536]" },
        //  exec's keys
        { ok, "    cwd: /", 1, "8:10: actions.x.cwd: only for kind exec (this action is "
          "webhook)" },
        { ok, "    kill_after_ms: 1000", 1, "8:20: actions.x.kill_after_ms: only for kind exec "
          "(this action is webhook)" },
        { NULL }
    };
    for (int i = 0; cases [i].url; i++)
        s_webhook_case (cases [i].url, cases [i].extra, cases [i].problems, cases [i].expect);

    //  A URL is never repeated in a message (a webhook URL is often a secret itself).
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_action ("    kind: webhook\n"
                                     "    url: https://user:hunter2@h/x\n"
                                     "    secret_credential: hook\n", &cfg, &out), 1);
    assert_null (strstr (out, "hunter2"));
    free (out);

    //  Neither secret, no url, a bad credential name.
    assert_int_equal (s_load_action ("    kind: webhook\n    url: https://h/x\n", &cfg, &out), 1);
    s_expect (out, "5:5: actions.x: kind webhook requires secret_file or secret_credential (the "
              "HMAC-SHA256 key the body is signed with)");
    free (out);
    assert_int_equal (s_load_action ("    kind: webhook\n    secret_credential: k\n", &cfg,
                                     &out), 1);
    s_expect (out, "5:5: actions.x: kind webhook requires 'url' (where the signed JSON body is "
              "POSTed)");
    free (out);
    assert_int_equal (s_load_action ("    kind: webhook\n    url: https://h/x\n"
                                     "    secret_credential: a/b\n", &cfg, &out), 1);
    s_expect (out, "7:24: actions.x.secret_credential: expected a systemd credential name "
              "(1-255 of [A-Za-z0-9._-], not '.' or '..'), got 'a/b'");
    free (out);
    //  33 headers are too many.
    char headers [33 * 16 + 32] = "    headers: {H0: v";
    for (int i = 1; i < 33; i++)
        sprintf (headers + strlen (headers), ", H%d: v", i);
    strcat (headers, "}");
    s_webhook_case (ok, headers, 1, "8:14: actions.x.headers: at most 32 headers, got 33");
}

//  meshd --list-config-keys: every key the loader accepts, from its own tables.
typedef struct {
    char *keys [1024];
    int count;
} s_keys_t;

static void
s_collect_key (const char *key, void *arg)
{
    s_keys_t *keys = arg;
    assert_true (keys->count < 1024);
    keys->keys [keys->count++] = strdup (key);
}

static bool
s_has_key (const s_keys_t *keys, const char *key)
{
    for (int i = 0; i < keys->count; i++)
        if (!strcmp (keys->keys [i], key))
            return true;
    return false;
}

//  The keys listed directly under PREFIX ("agents[].detector"), comma-separated in
//  table order, as the loader's "expected one of" message shows them.
static void
s_children (const s_keys_t *keys, const char *prefix, char *buf, size_t size)
{
    buf [0] = 0;
    size_t length = strlen (prefix);
    for (int i = 0; i < keys->count; i++) {
        const char *key = keys->keys [i];
        if (strncmp (key, prefix, length) || key [length] != '.'
        ||  strchr (key + length + 1, '.') || strchr (key + length + 1, '['))
            continue;
        size_t used = strlen (buf);
        snprintf (buf + used, size - used, "%s%s", used ? ", " : "", key + length + 1);
    }
}

//  An unknown key in SECTION (loaded from s_base + EXTRA) is reported with the keys
//  the loader expected there: exactly the ones the list names under PREFIX.
static void
s_expect_children (const s_keys_t *keys, const char *extra, const char *prefix)
{
    char children [2048];
    s_children (keys, prefix, children, sizeof children);
    assert_true (strlen (children) > 0);
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_true (s_load_base (extra, &cfg, &out) > 0);
    const char *expected = strstr (out, "(expected one of: ");
    if (!expected)
        fail_msg ("no expected keys in:\n%s", out);
    expected += strlen ("(expected one of: ");
    if (strncmp (expected, children, strlen (children))
    ||  expected [strlen (children)] != ')')
        fail_msg ("%s: listed '%s', loader expects:\n%s", prefix, children, out);
    free (out);
}

static void
test_list_keys (void **state)
{
    s_keys_t keys = { .count = 0 };
    int count = mesh_config_list_keys (s_collect_key, &keys);
    assert_int_equal (count, keys.count);
    assert_true (count > 200);
    //  A key at every depth and through every kind of section.
    const char *known [] = {
        "daemon", "daemon.runtime_dir", "daemon.restart.quarantine_after", "kafka.brokers",
        "kafka.security.sasl.oauthbearer.client_secret_file", "kafka.embedded.topics",
        "gates.time_ms", "backends.<name>.url", "backends.<name>.circuit.open_ms",
        "backends.<name>.budget.tokens", "actions.<name>.params.<name>.max_length",
        "actions.<name>.limits.cpu_s", "actions.<name>.retry.attempts", "agents[].name",
        "agents[].detector.knn.k", "agents[].incident.silences[].matchers",
        "agents[].reason.high_priority_when.min_score", "agents[].reason.budget.window",
        "agents[].events.max_bytes", "sandbox.seccomp", "budget.tokens",
        "audit.rotate.max_bytes", "audit.retain.max_age_days",
        "audit.ship.security.ssl.ca_file", NULL };
    for (int i = 0; known [i]; i++)
        if (!s_has_key (&keys, known [i]))
            fail_msg ("'%s' not listed", known [i]);
    //  Each once, in a stable notation: lower-case words, '.', '[]', '<name>'.
    for (int i = 0; i < keys.count; i++) {
        const char *key = keys.keys [i];
        assert_true (strspn (key, "abcdefghijklmnopqrstuvwxyz0123456789_.[]<>") == strlen (key));
        assert_null (strstr (key, ".."));
        for (int j = i + 1; j < keys.count; j++)
            if (!strcmp (key, keys.keys [j]))
                fail_msg ("'%s' listed twice", key);
    }
    assert_false (s_has_key (&keys, "agents[].detector.bogus"));
    //  The list and the loader agree, section by section.
    s_expect_children (&keys, "    detector: {zz_bogus: 1}\n", "agents[].detector");
    s_expect_children (&keys, "    zz_bogus: 1\n", "agents[]");
    s_expect_children (&keys, "    incident: {silences: [{zz_bogus: 1}]}\n",
                       "agents[].incident.silences[]");
    s_expect_children (&keys, "audit: {zz_bogus: 1}\n", "audit");
    s_expect_children (&keys, "budget: {zz_bogus: 1}\n", "budget");
    s_expect_children (&keys, "daemon: {restart: {zz_bogus: 1}}\n", "daemon.restart");
    for (int i = 0; i < keys.count; i++)
        free (keys.keys [i]);
}

//  A key the list shows without keys below it takes a value; if its handler walks a table
//  of keys instead (a section added with a hand-written handler that s_call_subs in
//  common/config.c does not name), --list-config-keys would hide that table's keys: the
//  loader, given a mapping with an unknown key there, says which keys it expected.
static void
test_list_keys_complete (void **state)
{
    s_keys_t keys = { .count = 0 };
    mesh_config_list_keys (s_collect_key, &keys);
    int probed = 0;
    for (int i = 0; i < keys.count; i++) {
        const char *key = keys.keys [i];
        size_t length = strlen (key);
        bool parent = false;
        for (int j = 0; j < keys.count && !parent; j++)
            parent = !strncmp (keys.keys [j], key, length)
                  && (keys.keys [j][length] == '.' || keys.keys [j][length] == '[');
        if (parent)
            continue;
        char extra [256] = "";
        const char *rest = key + strlen ("agents[].");
        const char *dot = strchr (rest, '.');
        if (!strchr (key, '.') && !strchr (key, '['))
            snprintf (extra, sizeof extra, "%s: {zz_probe: 1}\n", key);
        else
        if (!strncmp (key, "agents[].", 9) && !dot && !strchr (rest, '['))
            snprintf (extra, sizeof extra, "    %s: {zz_probe: 1}\n", rest);
        else
        if (!strncmp (key, "agents[].", 9) && dot && !strchr (dot + 1, '.')
        &&  !strchr (rest, '[')
        &&  (!strncmp (rest, "detector.", 9) || !strncmp (rest, "incident.", 9)
             || !strncmp (rest, "events.", 7)))
            snprintf (extra, sizeof extra, "    %.*s: {%s: {zz_probe: 1}}\n",
                      (int) (dot - rest), rest, dot + 1);
        else
            continue;
        mesh_config_t *cfg = NULL;
        char *out = NULL;
        s_load_base (extra, &cfg, &out);
        if (strstr (out, "unknown key 'zz_probe'"))
            fail_msg ("%s walks keys that --list-config-keys does not show; name its handler "
                      "and field table in s_call_subs (common/config.c):\n%s", key, out);
        free (out);
        mesh_config_destroy (&cfg);
        probed++;
    }
    assert_true (probed > 30);
    for (int i = 0; i < keys.count; i++)
        free (keys.keys [i]);
}

static void
test_rate (void **state)
{
    static const struct {
        const char *text;
        int count, window_s;            //  0: refused
    } cases [] = {
        { "3/10m", 3, 600 },        { "1/1s", 1, 1 },           { "5/24h", 5, 86400 },
        { "2/90s", 2, 90 },         { "1000000/31d", 1000000, 2678400 },
        { "7/744h", 7, 2678400 },   { "1/1d", 1, 86400 },
        { "3", 0, 0 }, { "0/1m", 0, 0 }, { "3/0s", 0, 0 }, { "3/10", 0, 0 }, { "3/10x", 0, 0 },
        { "3/32d", 0, 0 }, { "3/745h", 0, 0 }, { "a/1m", 0, 0 }, { "03/1m", 0, 0 },
        { "3/01m", 0, 0 }, { "3/1m ", 0, 0 }, { "-1/1m", 0, 0 }, { "1000001/1m", 0, 0 },
        { "3/m", 0, 0 }, { "3//1m", 0, 0 }, { "/1m", 0, 0 }, { "3/1m/2", 0, 0 },
        { "3/1M", 0, 0 }, { " 3/1m", 0, 0 }, { "3 / 1m", 0, 0 }, { "99999999999/1s", 0, 0 },
        { "1/99999999999s", 0, 0 },
        { NULL }
    };
    for (int i = 0; cases [i].text; i++) {
        mesh_config_t *cfg = NULL;
        char *out = NULL, *body;
        assert_true (asprintf (&body, "    kind: log\n    rate: '%s'\n", cases [i].text) > 0);
        int problems = s_load_action (body, &cfg, &out);
        if (cases [i].count) {
            if (problems)
                fail_msg ("%s: %s", cases [i].text, out);
            assert_int_equal (cfg->actions [0].rate_count, cases [i].count);
            assert_int_equal (cfg->actions [0].rate_window_s, cases [i].window_s);
        }
        else {
            if (problems != 1)
                fail_msg ("%s: expected it refused, got %d problems:\n%s", cases [i].text,
                          problems, out);
            s_expect (out, "6:11: actions.x.rate: expected N/WINDOW, N in 1..1000000 and WINDOW "
                      "a duration such as 30s, 10m, 1h or 1d (at most 31d), e.g. 3/10m; got '");
        }
        mesh_config_destroy (&cfg);
        free (out);
        free (body);
    }
    //  null is no limit; every kind may have one.
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load_action ("    kind: log\n    rate: null\n", &cfg, &out), 0);
    assert_int_equal (cfg->actions [0].rate_count, 0);
    mesh_config_destroy (&cfg);
    free (out);
    assert_int_equal (s_load_action ("    kind: log\n    rate: 1/1h\n"
                                     "    approval: required\n", &cfg, &out), 0);
    assert_int_equal (cfg->actions [0].rate_count, 1);
    assert_true (cfg->actions [0].approval_required);
    mesh_config_destroy (&cfg);
    free (out);
    //  meshd carries out an approved action itself and has no producer: not for kafka.
    assert_int_equal (s_load_action ("    kind: kafka\n    topic: out\n    rate: 1/1h\n"
                                     "    approval: required\n", &cfg, &out), 1);
    s_expect (out, "8:15: actions.x.approval: not for kind kafka");
    free (out);
    assert_int_equal (s_load_action ("    kind: log\n    rate: 3\n", &cfg, &out), 1);
    s_expect (out, "6:11: actions.x.rate: expected N/WINDOW");
    free (out);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_reference_config),
        cmocka_unit_test (test_demo_config),
        cmocka_unit_test (test_minimal_defaults),
        cmocka_unit_test (test_values),
        cmocka_unit_test (test_relative_paths),
        cmocka_unit_test (test_event_limits),
        cmocka_unit_test (test_unknown_key),
        cmocka_unit_test (test_wrong_types),
        cmocka_unit_test (test_out_of_range),
        cmocka_unit_test (test_syntax_error),
        cmocka_unit_test (test_anchor_alias_tag),
        cmocka_unit_test (test_duplicate_key),
        cmocka_unit_test (test_multiple_documents),
        cmocka_unit_test (test_too_large),
        cmocka_unit_test (test_too_deep),
        cmocka_unit_test (test_cross_references),
        cmocka_unit_test (test_params),
        cmocka_unit_test (test_required),
        cmocka_unit_test (test_embedded),
        cmocka_unit_test (test_urls),
        cmocka_unit_test (test_names_and_strings),
        cmocka_unit_test (test_many_problems),
        cmocka_unit_test (test_missing_file),
        cmocka_unit_test (test_kafka_security),
        cmocka_unit_test (test_kafka_credentials),
        cmocka_unit_test (test_kafka_oauthbearer),
        cmocka_unit_test (test_kafka_properties),
        cmocka_unit_test (test_strict_modes),
        cmocka_unit_test (test_duplicate_rules),
        cmocka_unit_test (test_write_topics),
        cmocka_unit_test (test_upper_bounds),
        cmocka_unit_test (test_metadata_url),
        cmocka_unit_test (test_snapshot),
        cmocka_unit_test (test_backend_defaults),
        cmocka_unit_test (test_backend_values),
        cmocka_unit_test (test_backend_ranges),
        cmocka_unit_test (test_backend_checks),
        cmocka_unit_test (test_backend_kinds),
        cmocka_unit_test (test_cascade),
        cmocka_unit_test (test_exec_defaults),
        cmocka_unit_test (test_exec_values),
        cmocka_unit_test (test_exec_program),
        cmocka_unit_test (test_exec_checks),
        cmocka_unit_test (test_webhook_defaults),
        cmocka_unit_test (test_webhook_values),
        cmocka_unit_test (test_webhook_checks),
        cmocka_unit_test (test_rate),
        cmocka_unit_test (test_list_keys),
        cmocka_unit_test (test_list_keys_complete),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
