/*  proto - framing and arrival checks for every cross-process message.
 *
 *  The schema table below is the whole protocol: for each type, the body fields
 *  that must be present and their JSON types.  Records inside DECISION/OUTCOME
 *  are checked for the fields the ledger indexes on (type, id, agent); their
 *  other fields are the agent's to fill and the auditor's to read.
 */
#include "proto.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    json_type type;                     //  JSON_TRUE stands for "a boolean" (true or false)
} s_field_t;

typedef struct {
    const char *name;
    s_field_t fields[6];
} s_schema_t;

static const s_schema_t s_schemas[MESH_MSG_COUNT_] = {
    [MESH_MSG_HELLO] = {"hello", {{"agent", JSON_STRING}, {"instance", JSON_STRING},
                                  {"pid", JSON_INTEGER}}},
    [MESH_MSG_HEARTBEAT] = {"heartbeat", {{"instance", JSON_STRING}, {"counters", JSON_OBJECT}}},
    [MESH_MSG_SHUTDOWN] = {"shutdown", {{"reason", JSON_STRING}}},
    [MESH_MSG_DECISION] = {"decision", {{"record", JSON_OBJECT}}},
    [MESH_MSG_OUTCOME] = {"outcome", {{"record", JSON_OBJECT}}},
    [MESH_MSG_ACK] = {"ack", {{"id", JSON_STRING}, {"seq", JSON_INTEGER}}},
    [MESH_MSG_LOOKUP] = {"lookup", {{"id", JSON_STRING}}},
    [MESH_MSG_LOOKUP_REPLY] = {"lookup_reply", {{"id", JSON_STRING}, {"state", JSON_STRING}}},
    [MESH_MSG_ERROR] = {"error", {{"reason", JSON_STRING}}},
    [MESH_MSG_CTL_REQUEST] = {"ctl_request", {{"cmd", JSON_STRING}}},
    [MESH_MSG_CTL_REPLY] = {"ctl_reply", {{"ok", JSON_TRUE}}},
    [MESH_MSG_PENDING] = {"pending", {{"id", JSON_STRING}}},
    [MESH_MSG_RELOAD] = {"reload", {{"reason", JSON_STRING}, {"snapshot", JSON_STRING},
                                    {"sha256", JSON_STRING}, {"rules_sha256", JSON_STRING}}},
    [MESH_MSG_PENDING_REPLY] = {"pending_reply", {{"id", JSON_STRING}, {"decisions", JSON_ARRAY}}},
    [MESH_MSG_AUTH] = {"auth", {{"instance", JSON_STRING}, {"token", JSON_STRING}}},
    [MESH_MSG_RESERVE] = {"reserve", {{"id", JSON_STRING}, {"incident", JSON_STRING},
                                      {"step", JSON_INTEGER}, {"need", JSON_INTEGER},
                                      {"backend", JSON_STRING}, {"priority", JSON_STRING}}},
    [MESH_MSG_RESERVE_REPLY] = {"reserve_reply", {{"id", JSON_STRING}, {"granted", JSON_TRUE},
                                                  {"grant", JSON_INTEGER}}},
    [MESH_MSG_SETTLE] = {"settle", {{"id", JSON_STRING}, {"grant", JSON_INTEGER},
                                    {"charged", JSON_INTEGER}, {"rule", JSON_STRING},
                                    {"result", JSON_STRING}}},
    [MESH_MSG_ACT] = {"act", {{"id", JSON_STRING}}},
    [MESH_MSG_ACT_REPLY] = {"act_reply", {{"id", JSON_STRING}, {"verdict", JSON_STRING}}},
};

const char *
mesh_msg_type_name (mesh_msg_type_t type)
{
    if (type <= 0 || type >= MESH_MSG_COUNT_)
        return "unknown";
    return s_schemas[type].name;
}

static bool
s_is_hex_id (const char *s)
{
    if (!s || strlen (s) != 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static const char *
s_check_record (json_t *record, const char *want_type)
{
    const char *type = json_string_value (json_object_get (record, "type"));
    const char *id = json_string_value (json_object_get (record, "id"));
    const char *agent = json_string_value (json_object_get (record, "agent"));
    if (!type || strcmp (type, want_type) != 0)
        return "record.type does not match the message type";
    if (!id || !s_is_hex_id (id))
        return "record.id must be 64 lower-case hex digits";
    if (!agent || !*agent)
        return "record.agent missing";
    if (strcmp (want_type, "outcome") == 0
        && !json_is_string (json_object_get (record, "status")))
        return "outcome record without status";
    return NULL;
}

const char *
mesh_proto_check (mesh_msg_type_t type, json_t *body)
{
    if (type <= 0 || type >= MESH_MSG_COUNT_)
        return "unknown message type";
    if (!json_is_object (body))
        return "body is not a JSON object";
    const s_schema_t *schema = &s_schemas[type];
    for (size_t i = 0; i < 6 && schema->fields[i].name; i++) {
        json_t *v = json_object_get (body, schema->fields[i].name);
        if (!v)
            return "required field missing";
        json_type want = schema->fields[i].type;
        bool ok = (want == JSON_TRUE) ? json_is_boolean (v) : json_typeof (v) == want;
        if (!ok)
            return "field has the wrong type";
    }
    if (type == MESH_MSG_RESERVE) {
        const char *priority = json_string_value (json_object_get (body, "priority"));
        json_t *action = json_object_get (body, "action");
        if (!s_is_hex_id (json_string_value (json_object_get (body, "incident"))))
            return "reserve: incident is not a decision id";
        if (json_integer_value (json_object_get (body, "need")) < 0)
            return "reserve: need is negative";
        if (strcmp (priority, "normal") && strcmp (priority, "high"))
            return "reserve: priority is neither normal nor high";
        if (action && !json_is_null (action) && !json_is_string (action))
            return "reserve: action is neither a string nor null";
    }
    if (type == MESH_MSG_SETTLE) {
        json_t *action = json_object_get (body, "action");
        if (json_integer_value (json_object_get (body, "charged")) < 0)
            return "settle: charged is negative";
        if (action && !json_is_null (action) && !json_is_string (action))
            return "settle: action is neither a string nor null";
    }
    if (type == MESH_MSG_DECISION)
        return s_check_record (json_object_get (body, "record"), "decision");
    if (type == MESH_MSG_OUTCOME)
        return s_check_record (json_object_get (body, "record"), "outcome");
    if (type == MESH_MSG_ACT && !s_is_hex_id (json_string_value (json_object_get (body, "id"))))
        return "act id must be 64 lower-case hex digits";
    if (type == MESH_MSG_LOOKUP && !s_is_hex_id (json_string_value (json_object_get (body, "id"))))
        return "lookup id must be 64 lower-case hex digits";
    if (type == MESH_MSG_AUTH) {
        const char *instance = json_string_value (json_object_get (body, "instance"));
        if (!*instance || strlen (instance) > 200 || strchr (instance, '/'))
            return "auth instance must be 1-200 characters without '/'";
        if (!s_is_hex_id (json_string_value (json_object_get (body, "token"))))
            return "auth token must be 64 lower-case hex digits";
    }
    if (type == MESH_MSG_LOOKUP_REPLY) {
        const char *state = json_string_value (json_object_get (body, "state"));
        if (strcmp (state, "none") && strcmp (state, "decided") && strcmp (state, "complete"))
            return "lookup state must be none, decided or complete";
    }
    return NULL;
}

//  Routing ids are text when the peer chose one (agents do: "<instance>/<thread>"),
//  and binary when ZeroMQ made one up (a leading zero byte): those travel as "~" + hex.
static char *
s_routing_text (zframe_t *frame)
{
    const byte *data = zframe_data (frame);
    size_t size = zframe_size (frame);
    bool text = size > 0 && data[0] != '~';
    for (size_t i = 0; text && i < size; i++)
        text = data[i] >= 0x20 && data[i] < 0x7f;
    if (text)
        return zframe_strdup (frame);
    char *out = malloc (2 * size + 2);
    out[0] = '~';
    for (size_t i = 0; i < size; i++)
        sprintf (out + 1 + 2 * i, "%02x", data[i]);
    out[2 * size + 1] = 0;
    return out;
}

static zframe_t *
s_routing_frame (const char *id)
{
    if (id[0] != '~')
        return zframe_new (id, strlen (id));
    size_t size = (strlen (id) - 1) / 2;
    byte *data = malloc (size ? size : 1);
    for (size_t i = 0; i < size; i++) {
        unsigned v = 0;
        sscanf (id + 1 + 2 * i, "%2x", &v);
        data[i] = (byte) v;
    }
    zframe_t *frame = zframe_new (data, size);
    free (data);
    return frame;
}

int
mesh_proto_send (zsock_t *sock, const char *routing_id, mesh_msg_type_t type, json_t *body)
{
    json_t *empty = NULL;
    if (!body)
        body = empty = json_object ();
    const char *bad = mesh_proto_check (type, body);
    if (bad) {
        mesh_err ("proto: refusing to send invalid %s: %s", mesh_msg_type_name (type), bad);
        json_decref (empty);
        return -1;
    }
    char *text = json_dumps (body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref (empty);
    if (!text)
        return -1;
    zmsg_t *msg = zmsg_new ();
    if (routing_id)
        zmsg_append (msg, &(zframe_t *) {s_routing_frame (routing_id)});
    byte header[4] = {'M', 'S', MESH_PROTO_VERSION, (byte) type};
    zmsg_addmem (msg, header, sizeof header);
    zmsg_addmem (msg, text, strlen (text));
    free (text);
    int rc = zmsg_send (&msg, sock);
    if (rc != 0)
        zmsg_destroy (&msg);
    return rc;
}

mesh_msg_t *
mesh_proto_recv (zsock_t *sock, bool router, const char **why, char **routing_id_p)
{
    static const char *no_why;
    if (!why)
        why = &no_why;
    if (routing_id_p)
        *routing_id_p = NULL;
    zmsg_t *msg = zmsg_recv (sock);
    if (!msg) {
        *why = "interrupted";
        return NULL;
    }
    char *routing = NULL;
    if (router) {
        zframe_t *id = zmsg_pop (msg);
        routing = id ? s_routing_text (id) : NULL;
        zframe_destroy (&id);
    }
    mesh_msg_t *self = NULL;
    zframe_t *header = zmsg_pop (msg);
    zframe_t *payload = zmsg_pop (msg);
    const byte *h = header ? zframe_data (header) : NULL;
    json_t *body = NULL;
    if (!header || !payload || zmsg_size (msg) != 0)
        *why = "wrong number of frames";
    else
    if (zframe_size (header) != 4 || h[0] != 'M' || h[1] != 'S')
        *why = "bad header";
    else
    if (h[2] != MESH_PROTO_VERSION)
        *why = "unsupported protocol version";
    else
    if (h[3] == 0 || h[3] >= MESH_MSG_COUNT_)
        *why = "unknown message type";
    else
    if (zframe_size (payload) > MESH_PROTO_MAX_BODY)
        *why = "body too large";
    else {
        json_error_t jerr;
        body = json_loadb ((const char *) zframe_data (payload), zframe_size (payload),
                           JSON_REJECT_DUPLICATES, &jerr);
        const char *bad = body ? mesh_proto_check ((mesh_msg_type_t) h[3], body)
                               : "body is not valid JSON";
        if (bad) {
            *why = bad;
            json_decref (body);
        }
        else {
            self = calloc (1, sizeof *self);
            self->type = (mesh_msg_type_t) h[3];
            self->body = body;
            self->routing_id = routing;
            routing = NULL;
            //  ipc: libzmq puts the peer's SO_PEERCRED in "Peer-Address" as
            //  "<host>:<uid>:<gid>:<pid>"; anything else is unknown.
            self->peer_uid = self->peer_gid = -1;
            const char *peer = zframe_meta (payload, "Peer-Address");
            const char *colon = peer ? strchr (peer, ':') : NULL;
            long uid, gid, pid;
            if (colon && sscanf (colon, ":%ld:%ld:%ld", &uid, &gid, &pid) == 3 && uid >= 0
                && gid >= 0) {
                self->peer_uid = uid;
                self->peer_gid = gid;
            }
        }
    }
    if (routing && routing_id_p)
        *routing_id_p = routing;
    else
        free (routing);
    zframe_destroy (&header);
    zframe_destroy (&payload);
    zmsg_destroy (&msg);
    return self;
}

void
mesh_msg_destroy (mesh_msg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_msg_t *self = *self_p;
    json_decref (self->body);
    free (self->routing_id);
    free (self);
    *self_p = NULL;
}

void
mesh_proto_limit (zsock_t *sock)
{
    zsock_set_maxmsgsize (sock, MESH_PROTO_MAX_FRAME);
}

char *
mesh_proto_agents_endpoint (const char *runtime_dir)
{
    return zsys_sprintf ("ipc://%s/agents.ipc", runtime_dir);
}

char *
mesh_proto_control_endpoint (const char *runtime_dir)
{
    return zsys_sprintf ("ipc://%s/control.ipc", runtime_dir);
}
