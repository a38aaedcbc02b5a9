/*  record - stage 7: request/reply to the supervisor's decision ledger.
 *  Data path: event -> detect -> incident -> reason -> gate -> act -> [record].
 *
 *  Each call sends one message and waits up to timeout_ms for the reply that
 *  names the same id; replies to earlier requests that timed out are skipped.
 *  Nothing here retries: the caller decides what an unanswered request means
 *  (never "act anyway").
 *
 *  Nothing is sent that the supervisor would refuse (a refused message is lost, and
 *  the agent would wait, give up, and see the event again): every record is checked
 *  for size and depth first, well below the protocol's limits, and one that fails is
 *  replaced by a minimal record that says so (fail closed: no action).  reason.c keeps
 *  what comes from the model small (excerpts and hashes), so this is the last line.
 *
 *  Authentication: the supervisor listens to a routing id only after it sent AUTH
 *  with the token meshd handed this process at spawn.  The credentials are one per
 *  process, set by main before any thread starts, and read-only afterwards; every
 *  socket made here sends AUTH right after connecting (ZeroMQ keeps a pipe's order,
 *  so it arrives before the first request).
 */
#include "hist.h"
#include "record.h"
#include "log.h"
#include "proto.h"

#include <czmq.h>
#include <inttypes.h>
#include <sodium.h>
#include <string.h>

static char s_instance[256];
static char s_token[2 * MESH_PROTO_TOKEN_SIZE + 1];    //  hex; empty when not set

struct _mesh_record_t {
    zsock_t *sock;
    zpoller_t *poller;
    int timeout_ms;
    uint64_t requests;              //  reservations asked (each id is unique)
};

void
mesh_record_auth_set (const char *instance, const uint8_t *token, size_t size)
{
    snprintf (s_instance, sizeof s_instance, "%s", instance);
    if (size != MESH_PROTO_TOKEN_SIZE) {
        s_token[0] = 0;
        return;
    }
    sodium_bin2hex (s_token, sizeof s_token, token, size);
}

int
mesh_record_auth_send (zsock_t *sock)
{
    if (!s_token[0]) {
        mesh_err ("record: no credentials for the supervisor (started without --auth-fd)");
        return -1;
    }
    json_t *body = json_pack ("{ss ss}", "instance", s_instance, "token", s_token);
    int rc = mesh_proto_send (sock, NULL, MESH_MSG_AUTH, body);
    //  The copy inside the JSON text is freed by jansson; the body's string goes here.
    json_object_set_new (body, "token", json_string (""));
    json_decref (body);
    return rc;
}

mesh_record_t *
mesh_record_new (const char *endpoint, const char *identity, int timeout_ms)
{
    if (sodium_init () < 0)
        return NULL;
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock)
        return NULL;
    uint8_t nonce[8];
    char hex[2 * sizeof nonce + 1];
    randombytes_buf (nonce, sizeof nonce);
    sodium_bin2hex (hex, sizeof hex, nonce, sizeof nonce);
    char *routing_id = zsys_sprintf ("%s.%s", identity, hex);
    zsock_set_identity (sock, routing_id);
    zstr_free (&routing_id);
    zsock_set_linger (sock, 0);
    mesh_proto_limit (sock);
    if (zsock_connect (sock, "%s", endpoint) != 0) {
        mesh_err ("record: cannot connect to %s", endpoint);
        zsock_destroy (&sock);
        return NULL;
    }
    if (mesh_record_auth_send (sock) != 0) {
        zsock_destroy (&sock);
        return NULL;
    }
    mesh_record_t *self = calloc (1, sizeof *self);
    self->sock = sock;
    self->poller = zpoller_new (sock, NULL);
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    return self;
}

void
mesh_record_destroy (mesh_record_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_record_t *self = *self_p;
    zpoller_destroy (&self->poller);
    zsock_destroy (&self->sock);
    free (self);
    *self_p = NULL;
}

//  Wait for a reply about ID of type WANT (or ERROR).  Returns the message or NULL.
static mesh_msg_t *
s_await_for (mesh_record_t *self, const char *id, mesh_msg_type_t want, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            break;
        if (!zpoller_wait (self->poller, (int) left))
            continue;
        const char *why = NULL;
        mesh_msg_t *msg = mesh_proto_recv (self->sock, false, &why, NULL);
        if (!msg) {
            mesh_warn ("record: dropped a reply from the supervisor: %s", why);
            continue;
        }
        const char *rid = json_string_value (json_object_get (msg->body, "id"));
        if ((msg->type == want || msg->type == MESH_MSG_ERROR) && rid && strcmp (rid, id) == 0)
            return msg;
        mesh_msg_destroy (&msg);        //  a late reply to an earlier request
    }
    mesh_err ("record: no reply from the supervisor about %.12s within %d ms", id, timeout_ms);
    return NULL;
}

static mesh_msg_t *
s_await (mesh_record_t *self, const char *id, mesh_msg_type_t want)
{
    return s_await_for (self, id, want, self->timeout_ms);
}

//  Depth of VALUE, counting no further than LIMIT + 1 (so a hostile depth costs nothing).
static int
s_depth (json_t *value, int limit)
{
    if (limit < 0 || !(json_is_object (value) || json_is_array (value)))
        return 0;
    int deepest = 0;
    if (json_is_object (value)) {
        const char *key;
        json_t *member;
        json_object_foreach (value, key, member) {
            int d = s_depth (member, limit - 1);
            if (d > deepest)
                deepest = d;
            if (deepest > limit)
                break;
        }
    }
    else {
        size_t index;
        json_t *member;
        json_array_foreach (value, index, member) {
            int d = s_depth (member, limit - 1);
            if (d > deepest)
                deepest = d;
            if (deepest > limit)
                break;
        }
    }
    return deepest + 1;
}

const char *
mesh_record_check (json_t *record, char *why, size_t why_size)
{
    if (s_depth (record, MESH_RECORD_MAX_DEPTH) > MESH_RECORD_MAX_DEPTH) {
        snprintf (why, why_size, "nested deeper than %d levels", MESH_RECORD_MAX_DEPTH);
        return why;
    }
    size_t bytes = json_dumpb (record, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (bytes == 0 || bytes > MESH_RECORD_MAX_BYTES) {
        snprintf (why, why_size, "%zu bytes, over the limit of %d", bytes,
                  MESH_RECORD_MAX_BYTES);
        return why;
    }
    return NULL;
}

//  Replace RECORD's content by the minimal record that says why it could not be sent.
static void
s_shrink (json_t *record, const char *why)
{
    const char *type = json_string_value (json_object_get (record, "type"));
    const char *id = json_string_value (json_object_get (record, "id"));
    const char *agent = json_string_value (json_object_get (record, "agent"));
    bool decision = type && !strcmp (type, "decision");
    json_t *minimal = json_pack ("{s:s, s:s, s:s}", "type", type ? type : "?", "id",
                                 id ? id : "", "agent", agent ? agent : "");
    //  The hash of what would have been sent, when it can be serialised at all.
    char hex[65] = "";
    size_t bytes = 0;
    char *text = json_dumps (record, JSON_COMPACT | JSON_PRESERVE_ORDER);
    bool dumped = text != NULL;
    if (text) {
        bytes = strlen (text);
        unsigned char hash[crypto_hash_sha256_BYTES];
        crypto_hash_sha256 (hash, (const unsigned char *) text, bytes);
        sodium_bin2hex (hex, sizeof hex, hash, sizeof hash);
        free (text);
    }
    json_object_set_new (minimal, "record_refused",
                         json_pack ("{s:s, s:o, s:o}", "why", why, "bytes",
                                    dumped ? json_integer ((json_int_t) bytes) : json_null (),
                                    "sha256", dumped ? json_string (hex) : json_null ()));
    if (decision) {
        //  Built by the agent, small: what was spent, and which message it was about.
        json_object_set (minimal, "trigger", json_object_get (record, "trigger"));
        json_object_set (minimal, "tokens", json_object_get (record, "tokens"));
        json_object_set_new (minimal, "verdict", json_string ("record_refused"));
        json_object_set_new (minimal, "fallback", json_true ());
        json_object_set_new (minimal, "action", json_null ());
    }
    else
        json_object_set (minimal, "status", json_object_get (record, "status"));
    json_object_clear (record);
    json_object_update (record, minimal);
    json_decref (minimal);
}

static int
s_append (mesh_record_t *self, mesh_msg_type_t type, json_t *record, int64_t *seq_p)
{
    if (!json_string_value (json_object_get (record, "id")))
        return -1;
    char why[128];
    if (mesh_record_check (record, why, sizeof why)) {
        mesh_err ("record: %s %.12s is %s: the ledger would refuse it; recording that "
                  "instead", mesh_msg_type_name (type),
                  json_string_value (json_object_get (record, "id")), why);
        s_shrink (record, why);
    }
    const char *id = json_string_value (json_object_get (record, "id"));
    json_t *body = json_pack ("{sO}", "record", record);
    int rc = mesh_proto_send (self->sock, NULL, type, body);
    json_decref (body);
    if (rc != 0)
        return -1;
    mesh_msg_t *reply = s_await (self, id, MESH_MSG_ACK);
    if (!reply)
        return -1;
    rc = -1;
    if (reply->type == MESH_MSG_ACK) {
        if (seq_p)
            *seq_p = json_integer_value (json_object_get (reply->body, "seq"));
        rc = 0;
    }
    else
        mesh_err ("record: the ledger refused %s %.12s: %s", mesh_msg_type_name (type), id,
                  json_string_value (json_object_get (reply->body, "reason")));
    mesh_msg_destroy (&reply);
    return rc;
}

int
mesh_record_decision (mesh_record_t *self, json_t *decision, int64_t *seq_p)
{
    return s_append (self, MESH_MSG_DECISION, decision, seq_p);
}

int
mesh_record_outcome (mesh_record_t *self, json_t *outcome, int64_t *seq_p)
{
    return s_append (self, MESH_MSG_OUTCOME, outcome, seq_p);
}

int
mesh_record_lookup (mesh_record_t *self, const char *id, mesh_record_state_t *state_p,
                    json_t **decision_p)
{
    if (decision_p)
        *decision_p = NULL;
    json_t *body = json_pack ("{ss}", "id", id);
    int rc = mesh_proto_send (self->sock, NULL, MESH_MSG_LOOKUP, body);
    json_decref (body);
    if (rc != 0)
        return -1;
    mesh_msg_t *reply = s_await (self, id, MESH_MSG_LOOKUP_REPLY);
    if (!reply || reply->type != MESH_MSG_LOOKUP_REPLY) {
        mesh_msg_destroy (&reply);
        return -1;
    }
    const char *state = json_string_value (json_object_get (reply->body, "state"));
    *state_p = strcmp (state, "complete") == 0  ? MESH_RECORD_COMPLETE
               : strcmp (state, "decided") == 0 ? MESH_RECORD_DECIDED
                                                : MESH_RECORD_NONE;
    json_t *decision = json_object_get (reply->body, "decision");
    if (decision_p && json_is_object (decision))
        *decision_p = json_incref (decision);
    mesh_msg_destroy (&reply);
    return 0;
}

int
mesh_record_act (mesh_record_t *self, const char *id, int timeout_ms, json_t **reply_p)
{
    *reply_p = NULL;
    json_t *body = json_pack ("{ss}", "id", id);
    int rc = mesh_proto_send (self->sock, NULL, MESH_MSG_ACT, body);
    json_decref (body);
    if (rc != 0)
        return -1;
    mesh_msg_t *reply = s_await_for (self, id, MESH_MSG_ACT_REPLY,
                                     timeout_ms > self->timeout_ms ? timeout_ms : self->timeout_ms);
    if (!reply || reply->type != MESH_MSG_ACT_REPLY) {
        mesh_msg_destroy (&reply);
        return -1;
    }
    *reply_p = json_incref (reply->body);
    mesh_msg_destroy (&reply);
    return 0;
}

int
mesh_record_pending (mesh_record_t *self, const char *agent, json_t **decisions_p)
{
    *decisions_p = NULL;
    json_t *body = json_pack ("{ss}", "id", agent);
    int rc = mesh_proto_send (self->sock, NULL, MESH_MSG_PENDING, body);
    json_decref (body);
    if (rc != 0)
        return -1;
    mesh_msg_t *reply = s_await (self, agent, MESH_MSG_PENDING_REPLY);
    if (!reply || reply->type != MESH_MSG_PENDING_REPLY) {
        mesh_msg_destroy (&reply);
        return -1;
    }
    *decisions_p = json_incref (json_object_get (reply->body, "decisions"));
    mesh_msg_destroy (&reply);
    return 0;
}

//  --- the token ledger, over the same socket (common/token_port.h) ----------------------

static int
s_reserve (void *arg, const mesh_tokens_ask_t *ask, mesh_tokens_grant_t *grant)
{
    mesh_record_t *self = arg;
    memset (grant, 0, sizeof *grant);
    char id[96];
    snprintf (id, sizeof id, "%s/%d/%" PRIu64, ask->incident, ask->step, ++self->requests);
    json_t *body = json_pack ("{ss ss si sI ss ss}", "id", id, "incident", ask->incident, "step",
                              ask->step, "need", (json_int_t) ask->need, "backend",
                              ask->backend ? ask->backend : "", "priority",
                              ask->high ? "high" : "normal");
    json_object_set_new (body, "action", ask->action ? json_string (ask->action) : json_null ());
    double start = mesh_hist_now ();
    int rc = mesh_proto_send (self->sock, NULL, MESH_MSG_RESERVE, body);
    json_decref (body);
    if (rc != 0)
        return -1;
    mesh_msg_t *reply = s_await (self, id, MESH_MSG_RESERVE_REPLY);
    if (reply)
        mesh_hist_global_observe (MESH_HIST_RESERVATION, mesh_hist_now () - start);
    if (!reply || reply->type != MESH_MSG_RESERVE_REPLY) {
        if (reply)
            mesh_err ("record: the supervisor refused the reservation: %s",
                      json_string_value (json_object_get (reply->body, "reason")));
        mesh_msg_destroy (&reply);
        return -1;
    }
    grant->granted = json_is_true (json_object_get (reply->body, "granted"));
    grant->grant = json_integer_value (json_object_get (reply->body, "grant"));
    const char *scope = json_string_value (json_object_get (reply->body, "scope"));
    const char *detail = json_string_value (json_object_get (reply->body, "detail"));
    snprintf (grant->scope, sizeof grant->scope, "%s", scope ? scope : "");
    snprintf (grant->detail, sizeof grant->detail, "%s", detail ? detail : "");
    json_t *limit = json_object_get (reply->body, "agent_limit");
    grant->agent_used = (long) json_integer_value (json_object_get (reply->body, "agent_used"));
    grant->agent_limit = json_is_integer (limit) ? (long) json_integer_value (limit) : -1;
    if (grant->granted && grant->grant <= 0)
        grant->granted = false;
    mesh_msg_destroy (&reply);
    return 0;
}

static int
s_settle (void *arg, int64_t grant, const mesh_tokens_charge_t *charge, json_t **budget)
{
    mesh_record_t *self = arg;
    if (budget)
        *budget = NULL;
    char id[64];
    snprintf (id, sizeof id, "settle/%" PRId64, grant);
    json_t *body = json_pack ("{ss sI sI ss ss}", "id", id, "grant", (json_int_t) grant,
                              "charged", (json_int_t) (charge->charged > 0 ? charge->charged : 0),
                              "rule", charge->rule ? charge->rule : "?", "result",
                              charge->result ? charge->result : "?");
    json_object_set_new (body, "action", charge->action ? json_string (charge->action)
                                                        : json_null ());
    //  One way: the socket keeps the order, so the charge is in before the decision it
    //  belongs to; a settle that is lost is charged in full when this process ends.
    int rc = mesh_proto_send (self->sock, NULL, MESH_MSG_SETTLE, body);
    json_decref (body);
    return rc == 0 ? 0 : -1;
}

mesh_tokens_port_t
mesh_record_tokens (mesh_record_t *self)
{
    return (mesh_tokens_port_t) {.reserve = s_reserve, .settle = s_settle, .arg = self};
}
