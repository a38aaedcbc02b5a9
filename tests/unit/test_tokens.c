/*  test_tokens - the token ledger (daemon/tokens.c), the charging rules
 *  (agents/backend/charge.c) and calendar days in named zones (common/tzday.c).
 *
 *  The ledger runs for real: its journal is a real file, re-opened to recover; only
 *  the clock is injected, so windows and days can be crossed without waiting.
 */
#include "charge.h"
#include "tokens.h"
#include "tzday.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ID_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define ID_D "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define ID_E "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"

static char s_dir[] = "/tmp/test_tokens.XXXXXX";
static int64_t s_clock_ms;

static int64_t
s_clock (void *arg)
{
    (void) arg;
    return s_clock_ms;
}

//  One config: agents ops (normal) and vip (high), one backend, two actions.
typedef struct {
    mesh_config_t cfg;
    mesh_agent_config_t agents[2];
    mesh_backend_config_t backend;
    mesh_action_spec_t actions[2];
    char *ops_actions[2], *vip_actions[1];
    char journal[256];
} s_world_t;

static void
s_world (s_world_t *w, const char *name)
{
    memset (w, 0, sizeof *w);
    w->ops_actions[0] = "scale_out";
    w->ops_actions[1] = "escalate";
    w->vip_actions[0] = "escalate";
    w->actions[0] = (mesh_action_spec_t) {.name = "scale_out"};
    w->actions[1] = (mesh_action_spec_t) {.name = "escalate"};
    w->backend = (mesh_backend_config_t) {.name = "model"};
    w->agents[0] = (mesh_agent_config_t) {
        .name = "ops", .actions = w->ops_actions, .action_count = 2,
        .reason = {.backend = "model", .incident_token_cap = 3000,
                   .budget = {.tokens = 10000, .window = MESH_WINDOW_ROLLING, .window_s = 60}}};
    w->agents[1] = (mesh_agent_config_t) {
        .name = "vip", .actions = w->vip_actions, .action_count = 1,
        .reason = {.backend = "model", .incident_token_cap = 3000, .high_priority = true,
                   .budget = {.tokens = 10000, .window = MESH_WINDOW_ROLLING, .window_s = 60}}};
    w->cfg = (mesh_config_t) {.agents = w->agents, .agent_count = 2, .backends = &w->backend,
                              .backend_count = 1, .actions = w->actions, .action_count = 2};
    snprintf (w->journal, sizeof w->journal, "%s/%s.jsonl", s_dir, name);
    unlink (w->journal);
}

static mesh_tokens_t *
s_open (s_world_t *w)
{
    char why[512];
    mesh_tokens_t *tokens = mesh_tokens_new (&w->cfg, w->journal, why, sizeof why);
    if (!tokens)
        fail_msg ("%s", why);
    mesh_tokens_set_clock (tokens, s_clock, NULL);
    return tokens;
}

static long
s_field (mesh_tokens_t *tokens, const char *scope, const char *field)
{
    json_t *json = mesh_tokens_scope (tokens, scope);
    assert_non_null (json);
    long value = (long) json_integer_value (json_object_get (json, field));
    json_decref (json);
    return value;
}

static int64_t
s_reserve (mesh_tokens_t *tokens, const char *instance, const char *agent, const char *incident,
           long need, const char *action, bool high, mesh_tokens_grant_t *grant)
{
    mesh_tokens_ask_t ask = {.agent = agent, .incident = incident, .step = 1, .need = need,
                             .backend = "model", .action = action, .high = high};
    assert_int_equal (mesh_tokens_reserve (tokens, instance, &ask, grant), 0);
    return grant->granted ? grant->grant : 0;
}

static void
s_settle (mesh_tokens_t *tokens, const char *instance, int64_t id, long charged,
          const char *action)
{
    mesh_tokens_charge_t charge = {.charged = charged, .rule = "usage", .result = "accepted",
                                   .action = action};
    assert_int_equal (mesh_tokens_settle (tokens, instance, id, &charge, NULL), 0);
}

static void
test_grant_settle_and_never_twice (void **state)
{
    s_world_t w;
    s_world (&w, "basic");
    s_clock_ms = 1800000000000LL;
    mesh_tokens_t *tokens = s_open (&w);
    mesh_tokens_grant_t grant;
    int64_t id = s_reserve (tokens, "ops", "ops", ID_A, 1000, NULL, false, &grant);
    assert_true (id > 0);
    assert_int_equal (s_field (tokens, "agent:ops", "reserved"), 1000);
    assert_int_equal (s_field (tokens, "daemon", "reserved"), 1000);
    assert_int_equal (mesh_tokens_reserved (tokens), 1000);
    //  Another instance cannot settle it; the holder can, once.
    mesh_tokens_charge_t charge = {.charged = 400, .rule = "usage", .result = "accepted"};
    assert_int_equal (mesh_tokens_settle (tokens, "vip", id, &charge, NULL), -1);
    json_t *budget = NULL;
    assert_int_equal (mesh_tokens_settle (tokens, "ops", id, &charge, &budget), 0);
    assert_int_equal (json_integer_value (json_object_get (budget, "used")), 400);
    json_decref (budget);
    assert_int_equal (mesh_tokens_settle (tokens, "ops", id, &charge, NULL), -1);
    assert_int_equal (s_field (tokens, "agent:ops", "used"), 400);
    assert_int_equal (s_field (tokens, "agent:ops", "reserved"), 0);
    assert_int_equal (s_field (tokens, "backend:model", "used"), 400);
    assert_int_equal (mesh_tokens_reserved (tokens), 0);
    //  A backend that is not the agent's is refused, and reserves nothing.
    mesh_tokens_ask_t ask = {.agent = "ops", .incident = ID_B, .step = 1, .need = 10,
                             .backend = "other"};
    assert_int_equal (mesh_tokens_reserve (tokens, "ops", &ask, &grant), 0);
    assert_false (grant.granted);
    assert_string_equal (grant.scope, "request");
    mesh_tokens_destroy (&tokens);
}

static void
test_limit_all_or_nothing (void **state)
{
    s_world_t w;
    s_world (&w, "limit");
    w.cfg.budget = (mesh_budget_config_t) {.tokens = 5000, .window = MESH_WINDOW_ROLLING,
                                           .window_s = 60};
    s_clock_ms = 1800000000000LL;
    mesh_tokens_t *tokens = s_open (&w);
    mesh_tokens_grant_t grant;
    assert_true (s_reserve (tokens, "ops", "ops", ID_A, 2500, NULL, false, &grant) > 0);
    assert_true (s_reserve (tokens, "vip", "vip", ID_B, 2500, NULL, false, &grant) > 0);
    //  The daemon scope is full: refused by it, and nothing is reserved anywhere.
    assert_int_equal (s_reserve (tokens, "ops", "ops", ID_C, 1, NULL, false, &grant), 0);
    assert_string_equal (grant.scope, "daemon");
    assert_non_null (strstr (grant.detail, "needs 1 tokens"));
    assert_int_equal (s_field (tokens, "agent:ops", "reserved"), 2500);
    //  The incident cap (3000) is a scope too.
    mesh_tokens_destroy (&tokens);
    s_world (&w, "cap");
    tokens = s_open (&w);
    int64_t id = s_reserve (tokens, "ops", "ops", ID_A, 2000, NULL, false, &grant);
    s_settle (tokens, "ops", id, 2000, NULL);
    assert_int_equal (s_reserve (tokens, "ops", "ops", ID_A, 1500, NULL, false, &grant), 0);
    assert_string_equal (grant.scope, "incident:" ID_A);
    mesh_tokens_destroy (&tokens);
}

static void
test_rolling_window (void **state)
{
    s_world_t w;
    s_world (&w, "rolling");
    s_clock_ms = 1800000000000LL;
    mesh_tokens_t *tokens = s_open (&w);
    mesh_tokens_grant_t grant;
    int64_t id = s_reserve (tokens, "ops", "ops", ID_A, 2900, NULL, false, &grant);
    s_settle (tokens, "ops", id, 2900, NULL);
    id = s_reserve (tokens, "ops", "ops", ID_B, 2900, NULL, false, &grant);
    s_settle (tokens, "ops", id, 2900, NULL);
    id = s_reserve (tokens, "ops", "ops", ID_C, 2900, NULL, false, &grant);
    s_settle (tokens, "ops", id, 2900, NULL);
    assert_int_equal (s_field (tokens, "agent:ops", "used"), 8700);
    assert_int_equal (s_reserve (tokens, "ops", "ops", ID_D, 2000, NULL, false,
                                 &grant), 0);
    assert_string_equal (grant.scope, "agent:ops");
    //  Still in the window 58 s later; out of it after the window (60 s).
    s_clock_ms += 58000;
    assert_int_equal (s_field (tokens, "agent:ops", "used"), 8700);
    s_clock_ms += 2000;
    assert_int_equal (s_field (tokens, "agent:ops", "used"), 0);
    assert_true (s_reserve (tokens, "ops", "ops", ID_D, 2000, NULL, false, &grant) > 0);
    mesh_tokens_destroy (&tokens);
}

static void
test_reserve_for_high_priority (void **state)
{
    s_world_t w;
    s_world (&w, "reserve");
    w.cfg.budget = (mesh_budget_config_t) {.tokens = 5000, .window = MESH_WINDOW_ROLLING,
                                           .window_s = 3600, .reserve = 2000};
    s_clock_ms = 1800000000000LL;
    mesh_tokens_t *tokens = s_open (&w);
    mesh_tokens_grant_t grant;
    int64_t id = s_reserve (tokens, "ops", "ops", ID_A, 2500, NULL, false, &grant);
    s_settle (tokens, "ops", id, 2500, NULL);
    //  2500 left, 2000 of it kept: a normal incident may not take 1000.
    assert_int_equal (s_reserve (tokens, "ops", "ops", ID_B, 1000, NULL, false, &grant), 0);
    assert_string_equal (grant.scope, "daemon");
    assert_non_null (strstr (grant.detail, "reserve of 2000"));
    //  A normal agent claiming high is not believed; the high agent gets it.
    assert_int_equal (s_reserve (tokens, "ops", "ops", ID_B, 1000, NULL, true, &grant), 0);
    assert_true (s_reserve (tokens, "vip", "vip", ID_C, 1000, NULL, true, &grant) > 0);
    mesh_tokens_destroy (&tokens);
}

static void
test_action_scope (void **state)
{
    s_world_t w;
    s_world (&w, "action");
    w.actions[0].budget = (mesh_budget_config_t) {.tokens = 1000, .window = MESH_WINDOW_ROLLING,
                                                  .window_s = 3600};
    s_clock_ms = 1800000000000LL;
    mesh_tokens_t *tokens = s_open (&w);
    mesh_tokens_grant_t grant;
    //  A first call (no action yet), charged to the action it proposed.
    int64_t id = s_reserve (tokens, "ops", "ops", ID_A, 900, NULL, false, &grant);
    s_settle (tokens, "ops", id, 900, "scale_out");
    assert_int_equal (s_field (tokens, "action:scale_out", "used"), 900);
    //  A reask about scale_out needs its scope; about escalate it does not.
    assert_int_equal (s_reserve (tokens, "ops", "ops", ID_A, 500, "scale_out", false, &grant), 0);
    assert_string_equal (grant.scope, "action:scale_out");
    assert_true (s_reserve (tokens, "ops", "ops", ID_B, 500, "escalate", false, &grant) > 0);
    //  An action the agent does not have gets no scope of its own: not refused by one,
    //  and a proposal naming it spends nothing of that action's budget.
    int64_t other = s_reserve (tokens, "vip", "vip", ID_C, 500, "scale_out", true, &grant);
    assert_true (other > 0);
    s_settle (tokens, "vip", other, 400, "scale_out");
    assert_int_equal (s_field (tokens, "action:scale_out", "used"), 900);
    assert_int_equal (s_field (tokens, "agent:vip", "used"), 400);
    mesh_tokens_destroy (&tokens);
}

static json_t *s_records;

static void
s_recorder (void *arg, json_t *record)
{
    (void) arg;
    json_array_append (s_records, record);
}

static void
test_threshold_records (void **state)
{
    s_world_t w;
    s_world (&w, "thresholds");
    s_clock_ms = 1800000000000LL;
    mesh_tokens_t *tokens = s_open (&w);
    s_records = json_array ();
    mesh_tokens_set_recorder (tokens, s_recorder, NULL);
    mesh_tokens_grant_t grant;
    const char *ids[] = {ID_A, ID_B, ID_C};
    for (int i = 0; i < 3; i++) {
        int64_t id = s_reserve (tokens, "ops", "ops", ids[i], 2800, NULL, false, &grant);
        s_settle (tokens, "ops", id, 2800, NULL);
    }
    //  8400 of 10000: 50 % and 80 %, once each, for the agent's scope.
    int seen50 = 0, seen80 = 0, seen100 = 0;
    size_t i;
    json_t *record;
    json_array_foreach (s_records, i, record) {
        assert_string_equal (json_string_value (json_object_get (record, "type")), "budget");
        if (strcmp (json_string_value (json_object_get (record, "scope")), "agent:ops"))
            continue;
        int threshold = (int) json_integer_value (json_object_get (record, "threshold"));
        seen50 += threshold == 50;
        seen80 += threshold == 80;
        seen100 += threshold == 100;
    }
    assert_int_equal (seen50, 1);
    assert_int_equal (seen80, 1);
    assert_int_equal (seen100, 0);
    //  A server reporting more than reserved: the real figure counts, past 100 %.
    int64_t id = s_reserve (tokens, "ops", "ops", ID_E, 1500, NULL, false, &grant);
    s_settle (tokens, "ops", id, 1700, NULL);
    assert_int_equal (s_field (tokens, "agent:ops", "used"), 10100);
    record = json_array_get (s_records, json_array_size (s_records) - 1);
    mesh_tokens_destroy (&tokens);
    bool full = false;
    json_array_foreach (s_records, i, record)
        full |= !strcmp (json_string_value (json_object_get (record, "scope")), "agent:ops")
                && json_integer_value (json_object_get (record, "threshold")) == 100;
    assert_true (full);
    json_decref (s_records);
}

static void
test_recovery_and_release (void **state)
{
    s_world_t w;
    s_world (&w, "recover");
    s_clock_ms = 1800000000000LL;
    mesh_tokens_t *tokens = s_open (&w);
    mesh_tokens_grant_t grant;
    int64_t a = s_reserve (tokens, "ops", "ops", ID_A, 1000, NULL, false, &grant);
    s_settle (tokens, "ops", a, 700, NULL);
    int64_t b = s_reserve (tokens, "ops", "ops", ID_B, 1200, NULL, false, &grant);
    int64_t c = s_reserve (tokens, "vip", "vip", ID_C, 900, NULL, false, &grant);
    assert_true (b > 0 && c > 0);
    //  The vip instance dies: its reservation is charged in full, once.
    assert_int_equal (mesh_tokens_release (tokens, "vip"), 1);
    assert_int_equal (mesh_tokens_release (tokens, "vip"), 0);
    assert_int_equal (s_field (tokens, "agent:vip", "used"), 900);
    assert_int_equal (s_field (tokens, "agent:vip", "reserved"), 0);
    mesh_tokens_flush (tokens);
    //  meshd dies here with ops' grant outstanding (no destroy: nothing more written),
    //  and a torn line at the end of the journal.
    FILE *file = fopen (w.journal, "a");
    fputs ("{\"c\":99,\"at\":1800000", file);
    fclose (file);
    s_clock_ms += 5000;
    mesh_tokens_t *again = s_open (&w);
    assert_int_equal (s_field (again, "agent:ops", "used"), 700 + 1200);
    assert_int_equal (s_field (again, "agent:ops", "reserved"), 0);
    assert_int_equal (s_field (again, "agent:vip", "used"), 900);
    assert_int_equal (s_field (again, "daemon", "used"), 700 + 1200 + 900);
    assert_int_equal (mesh_tokens_reserved (again), 0);
    //  The incident's use survives too: its cap still counts what was spent on it.
    assert_int_equal (s_reserve (again, "ops", "ops", ID_B, 2000, NULL, false, &grant), 0);
    assert_string_equal (grant.scope, "incident:" ID_B);
    //  The old life's grant is gone: its settle is refused, not charged twice.
    mesh_tokens_charge_t charge = {.charged = 5, .rule = "usage", .result = "accepted"};
    assert_int_equal (mesh_tokens_settle (again, "ops", b, &charge, NULL), -1);
    mesh_tokens_destroy (&again);
    mesh_tokens_destroy (&tokens);
    //  And once more, cleanly closed: the compacted journal says the same.
    mesh_tokens_t *third = s_open (&w);
    assert_int_equal (s_field (third, "daemon", "used"), 2800);
    mesh_tokens_destroy (&third);
}

static void
test_day_window (void **state)
{
    s_world_t w;
    s_world (&w, "day");
    w.agents[0].reason.budget = (mesh_budget_config_t) {
        .tokens = 5000, .window = MESH_WINDOW_DAY, .time_zone = "Europe/Berlin"};
    //  2026-01-15 22:30 UTC = 23:30 in Berlin (CET, +1).
    s_clock_ms = 1768516200000LL;
    mesh_tokens_t *tokens = s_open (&w);
    mesh_tokens_grant_t grant;
    int64_t id = s_reserve (tokens, "ops", "ops", ID_A, 2000, NULL, false, &grant);
    s_settle (tokens, "ops", id, 2000, NULL);
    json_t *scope = mesh_tokens_scope (tokens, "agent:ops");
    assert_string_equal (json_string_value (json_object_get (scope, "resets_at")),
                         "2026-01-15T23:00:00Z");
    assert_string_equal (json_string_value (json_object_get (scope, "time_zone")),
                         "Europe/Berlin");
    json_decref (scope);
    //  23:10 UTC is the next day in Berlin: the day's use starts again.
    s_clock_ms += 40 * 60 * 1000;
    assert_int_equal (s_field (tokens, "agent:ops", "used"), 0);
    mesh_tokens_destroy (&tokens);
}

static void
test_tzday (void **state)
{
    char why[256];
    mesh_tz_t *tz = mesh_tz_load ("Europe/Berlin", why, sizeof why);
    assert_non_null (tz);
    int64_t next = 0;
    //  2026-03-29, the spring change: a 23-hour day, from 2026-03-28T23:00Z to 22:00Z.
    assert_int_equal (mesh_tz_day_start (tz, 1774785600, &next), 1774738800);
    assert_int_equal (next, 1774821600);
    assert_int_equal (next - mesh_tz_day_start (tz, 1774785600, NULL), 23 * 3600);
    //  2026-10-25, the autumn change: a 25-hour day.
    int64_t start = mesh_tz_day_start (tz, 1792929600, &next);
    assert_int_equal (next - start, 25 * 3600);
    mesh_tz_destroy (&tz);
    tz = mesh_tz_load ("UTC", why, sizeof why);
    assert_non_null (tz);
    assert_int_equal (mesh_tz_day_start (tz, 1800000000, &next), 1800000000 - 1800000000 % 86400);
    assert_int_equal (next - mesh_tz_day_start (tz, 1800000000, NULL), 86400);
    mesh_tz_destroy (&tz);
    assert_null (mesh_tz_load ("../etc/passwd", why, sizeof why));
    assert_null (mesh_tz_load ("Nowhere/Atlantis", why, sizeof why));
    assert_null (mesh_tz_load ("/etc/localtime", why, sizeof why));
}

//  The charging rules, one case per row of the table in charge.h.
static void
test_charge_rules (void **state)
{
    mesh_backend_reply_t reply = {.prompt_tokens = 100, .completion_tokens = 50, .sent = true,
                                  .http_status = 200, .complete = true, .requests = 1};
    mesh_charge_t c = mesh_charge (0, MESH_FAIL_NONE, &reply, false, 120, 376);
    assert_string_equal (c.rule, "usage");
    assert_int_equal (c.charged, 150);
    assert_false (c.estimated);
    reply.estimated = true;
    c = mesh_charge (0, MESH_FAIL_NONE, &reply, false, 120, 376);
    assert_string_equal (c.rule, "estimate");
    assert_int_equal (c.charged, 150);
    assert_true (c.estimated);
    //  Cut by length: the reservation (or more, when the server says so).
    c = mesh_charge (0, MESH_FAIL_NONE, &reply, true, 120, 376);
    assert_string_equal (c.rule, "reservation");
    assert_int_equal (c.charged, 376);
    reply.completion_tokens = 400;
    c = mesh_charge (0, MESH_FAIL_NONE, &reply, true, 120, 376);
    assert_int_equal (c.charged, 500);
    //  Failures: refused before generation -> 0.
    mesh_backend_reply_t none = {.sent = false};
    c = mesh_charge (-1, MESH_FAIL_MODEL_ERROR, &none, false, 120, 376);
    assert_string_equal (c.rule, "refused");
    assert_int_equal (c.charged, 0);
    mesh_backend_reply_t status503 = {.sent = true, .http_status = 503, .complete = true};
    c = mesh_charge (-1, MESH_FAIL_MODEL_ERROR, &status503, false, 120, 376);
    assert_string_equal (c.rule, "refused");
    assert_int_equal (c.charged, 0);
    mesh_backend_reply_t status429 = {.sent = true, .http_status = 429, .complete = true};
    assert_int_equal (mesh_charge (-1, MESH_FAIL_MODEL_ERROR, &status429, false, 1, 2).charged, 0);
    //  A 200 whose answer is an error before any token (a whole error body, or an error
    //  as the stream's first event): nothing generated.
    mesh_backend_reply_t error200 = {.sent = true, .http_status = 200, .complete = true,
                                     .answered_error = true};
    assert_int_equal (mesh_charge (-1, MESH_FAIL_MODEL_ERROR, &error200, false, 1, 2).charged, 0);
    //  Sent, then: timeout, cut mid-body, no reply at all, unreadable 200 -> the reservation.
    mesh_backend_reply_t timeout = {.sent = true};
    c = mesh_charge (-1, MESH_FAIL_MODEL_TIMEOUT, &timeout, false, 120, 376);
    assert_string_equal (c.rule, "reservation");
    assert_int_equal (c.charged, 376);
    mesh_backend_reply_t cut = {.sent = true, .http_status = 200, .complete = false,
                                .received_bytes = 171};
    assert_int_equal (mesh_charge (-1, MESH_FAIL_MODEL_ERROR, &cut, false, 120, 376).charged,
                      376);
    mesh_backend_reply_t dropped = {.sent = true, .http_status = 0, .complete = false};
    assert_int_equal (mesh_charge (-1, MESH_FAIL_MODEL_ERROR, &dropped, false, 120, 376).charged,
                      376);
    //  An error inside a stream after tokens came: they were generated.
    mesh_backend_reply_t late_error = {.sent = true, .http_status = 200, .complete = true,
                                       .answered_error = false};
    assert_int_equal (mesh_charge (-1, MESH_FAIL_MODEL_PARTIAL, &late_error, false, 120,
                                   376).charged, 376);
    mesh_backend_reply_t unreadable = {.sent = true, .http_status = 200, .complete = true};
    assert_int_equal (
        mesh_charge (-1, MESH_FAIL_MODEL_MALFORMED, &unreadable, false, 120, 376).charged, 376);
    //  Over the transport cap: what arrived, when that is more than the reservation.
    mesh_backend_reply_t huge = {.sent = true, .http_status = 200, .received_bytes = 4000000};
    c = mesh_charge (-1, MESH_FAIL_MODEL_OVERSIZE, &huge, false, 120, 376);
    assert_string_equal (c.rule, "reservation");
    assert_int_equal (c.charged, 120 + 1000000);
}

//  A reload: limits and windows change, what each scope used stays.
static void
test_reconfigure (void **state)
{
    s_world_t w;
    s_world (&w, "reconfigure");
    s_clock_ms = 1800000000000LL;
    mesh_tokens_t *tokens = s_open (&w);
    mesh_tokens_grant_t grant;
    int64_t id = s_reserve (tokens, "ops", "ops", ID_A, 2500, NULL, false, &grant);
    s_settle (tokens, "ops", id, 2500, NULL);
    //  A smaller limit, same window: the use stays, and now refuses.
    w.agents[0].reason.budget.tokens = 3000;
    mesh_tokens_reconfigure (tokens, &w.cfg);
    assert_int_equal (s_field (tokens, "agent:ops", "used"), 2500);
    assert_int_equal (s_field (tokens, "agent:ops", "limit"), 3000);
    assert_int_equal (s_reserve (tokens, "ops", "ops", ID_B, 600, NULL, false, &grant), 0);
    assert_string_equal (grant.scope, "agent:ops");
    //  Another window: the use is carried as one charge made now, kept for the new window.
    w.agents[0].reason.budget = (mesh_budget_config_t) {.tokens = 3000, .window = MESH_WINDOW_DAY,
                                                        .time_zone = "UTC"};
    mesh_tokens_reconfigure (tokens, &w.cfg);
    assert_int_equal (s_field (tokens, "agent:ops", "used"), 2500);
    s_clock_ms += 120 * 1000;           //  past the old 60 s window, same day
    assert_int_equal (s_field (tokens, "agent:ops", "used"), 2500);
    //  A daemon budget appears: it counted all along.
    w.cfg.budget = (mesh_budget_config_t) {.tokens = 2600, .window = MESH_WINDOW_ROLLING,
                                           .window_s = 3600};
    mesh_tokens_reconfigure (tokens, &w.cfg);
    assert_int_equal (s_field (tokens, "daemon", "used"), 2500);
    assert_int_equal (s_reserve (tokens, "vip", "vip", ID_C, 200, NULL, false, &grant), 0);
    assert_string_equal (grant.scope, "daemon");
    mesh_tokens_destroy (&tokens);
}

//  Bounded: incidents tracked and the journal's size, whatever the number of calls.
static void
test_bounded (void **state)
{
    s_world_t w;
    s_world (&w, "bounded");
    w.agents[0].reason.budget.tokens = 1000000000;
    w.agents[0].reason.budget.window_s = 3600;
    s_clock_ms = 1800000000000LL;
    mesh_tokens_t *tokens = s_open (&w);
    mesh_tokens_grant_t grant;
    long spent = 0;
    for (int i = 0; i < 80000; i++) {
        char id[65];
        snprintf (id, sizeof id, "%064x", i);
        s_clock_ms += 10;
        mesh_tokens_ask_t ask = {.agent = "ops", .incident = id, .step = 1, .need = 100,
                                 .backend = "model"};
        assert_int_equal (mesh_tokens_reserve (tokens, "ops", &ask, &grant), 0);
        assert_true (grant.granted);
        mesh_tokens_charge_t charge = {.charged = 3, .rule = "usage", .result = "accepted"};
        assert_int_equal (mesh_tokens_settle (tokens, "ops", grant.grant, &charge, NULL), 0);
        spent += 3;
        if (i % 1000 == 999)
            assert_int_equal (mesh_tokens_flush (tokens), 0);
    }
    json_t *status = mesh_tokens_status (tokens);
    assert_true (json_integer_value (json_object_get (status, "incidents_tracked")) <= 65536);
    json_decref (status);
    assert_int_equal (s_field (tokens, "agent:ops", "used"), spent);
    struct stat st;
    assert_int_equal (stat (w.journal, &st), 0);
    assert_true (st.st_size < 17 * 1024 * 1024);
    mesh_tokens_destroy (&tokens);
    tokens = s_open (&w);
    assert_int_equal (s_field (tokens, "agent:ops", "used"), spent);
    mesh_tokens_destroy (&tokens);
}

static int
s_setup (void **state)
{
    return mkdtemp (s_dir) ? 0 : -1;
}

static int
s_teardown (void **state)
{
    char command[128];
    snprintf (command, sizeof command, "rm -rf '%s'", s_dir);
    return system (command) == 0 ? 0 : -1;
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_grant_settle_and_never_twice),
        cmocka_unit_test (test_limit_all_or_nothing),
        cmocka_unit_test (test_rolling_window),
        cmocka_unit_test (test_reserve_for_high_priority),
        cmocka_unit_test (test_action_scope),
        cmocka_unit_test (test_threshold_records),
        cmocka_unit_test (test_recovery_and_release),
        cmocka_unit_test (test_day_window),
        cmocka_unit_test (test_tzday),
        cmocka_unit_test (test_charge_rules),
        cmocka_unit_test (test_bounded),
        cmocka_unit_test (test_reconfigure),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
