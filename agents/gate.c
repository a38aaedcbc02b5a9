/*  gate - stage 5: the validator chain every model proposal must pass.
 *  Data path: event -> detect -> incident -> reason -> [gate] -> act -> record.
 *
 *  Two layers, in this order:
 *
 *  1. The built-in check ("builtin" in the verdicts): the proposal is a JSON object;
 *     "action" is a string naming, byte for byte, one of the agent's actions; "params"
 *     is an object (absent means {}) holding every required parameter, no undeclared
 *     one, each of its declared type (an integer must be a JSON integer; a number may
 *     be an integer or a real), strings without control characters or NUL, within
 *     max_length bytes, matching the whole of the declared POSIX ERE (we wrap it in
 *     ^(...)$) and in the enum; numbers within min/max; "confidence", if present, a
 *     number in [0,1]; "rationale", if present, a string; no other top-level key
 *     (the schema is closed: an "approved" or "argv" is refused by name).  Every problem found is
 *     listed in the reason, so one reask can fix them all.  When the built-in check
 *     fails, the Lua rules are NOT run: the proposal does not have the shape they are
 *     written against, so their verdicts would say nothing.  Only the builtin verdict
 *     is recorded then.
 *  2. Every Lua rule (lua/vm.c): the global chain, then the agent's own, all of
 *     them evaluated even after a rejection, so the record and the reask carry every
 *     reason.
 *
 *  A rule that accepts may also ask for a human's approval (mesh.require_approval):
 *  its verdict record then carries "approval": the reason, and mesh_gate_approval
 *  reads what the verdicts ask for back out of them.  So the approval is part of the
 *  verdicts - recorded with them, and a pure function of the proposal and ctx like
 *  them, which a replay recomputes and compares - and not a side channel the gate
 *  would have to remember between calls.
 *
 *  What rules see: the proposal as given, with "params" set to {} when it was absent;
 *  the ctx as given, with "action" set to the declared spec of the proposed action
 *  ({name, kind, params = {NAME = {type, required, max_length, pattern, enum, min,
 *  max}}}) when the caller left it absent or null (the gate then works on a shallow
 *  copy).  Rules read both through read-only views; the caller's JSON is never
 *  changed.  A replay through the gate with the same config adds the same.
 *
 *  The Lua rules run in vms (lua/vm.c): one Lua state holding the whole chain,
 *  compiled once, with a fresh environment per rule evaluation.  A vm serves one
 *  evaluation at a time, so the gate keeps a pool: mesh_gate_check takes an idle vm
 *  (or builds one), evaluates, and gives it back, holding the pool's mutex only for
 *  the taking and the giving.  An agent's worker thread has a gate of its own
 *  (agents/agent.c), so in practice the pool holds one vm; mesh_gate_check is
 *  thread-safe all the same, and concurrent callers each get their own state.
 *
 *  The rules hash is SHA-256 over, for each rule in chain order, its file's basename,
 *  a NUL and its content: what a decision record needs to name the rules in force.
 *  mesh_gate_archive writes the rule set under the state directory by that hash, so
 *  that a replay can load exactly those files (manifest.json keeps each basename, so
 *  the hash can be computed again from the archive).  mesh_gate_from_archive is that
 *  load, for recovery (agents/recover.c): the archive is not trusted either - the
 *  manifest must name the hash, each file must match its sha256, each rule is loaded
 *  from memory under its original basename, and the chain must hash to the name again.
 *  The actions (the built-in check) come from the config in force, not the archive.
 */
#include "gate.h"
#include "hist.h"
#include "log.h"
#include "sandbox.h"
#include "vm.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_DEFAULT_MAX_LENGTH    256     //  a param spec with max_length 0 gets this
#define S_MAX_PROBLEMS          8       //  listed in one builtin reason

typedef struct {
    char *name;
    mesh_param_type_t type;
    bool required;
    size_t max_length;
    char *pattern;                      //  as declared, for messages
    regex_t regex;                      //  ^(pattern)$, valid when pattern != NULL
    char **enum_values;
    size_t enum_count;
    bool has_min, has_max;
    double min, max;
} s_param_t;

typedef struct {
    char *name;
    s_param_t *params;
    size_t param_count;
    json_t *spec;                       //  ctx.action as rules see it
} s_action_t;

struct _mesh_gate_t {
    mesh_sandbox_t **rules;
    size_t rule_count;
    mesh_sandbox_limits_t limits;
    s_action_t *actions;
    size_t action_count;
    char *allowed;                      //  "a, b, c" for reasons
    char hash[65];
    pthread_mutex_t lock;               //  guards the pool
    mesh_vm_t **idle;                   //  vms not in use
    size_t idle_count, idle_max;
    json_t **rule_names;                //  shared by every record: "builtin", then rules
    json_t *verdict_names[4];           //  by mesh_verdict_t
    json_t **accepts;                   //  the accept record of each check, shared
    //  Replay only (mesh_gate_replay_check): the action specs met in records, parsed
    //  once each, and the last allowed list as text.
    s_action_t *seen;
    json_t **seen_json;
    size_t seen_count;
    json_t *allowed_json;
    char *allowed_text;
};

//  --------------------------------------------------------------------------------
//  A growing list of problems, joined by a separator

typedef struct {
    char *text;
    int count;
    int max;                            //  items kept in text; 0 = all
} s_list_t;

static void
s_list_add (s_list_t *list, const char *sep, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_list_add (s_list_t *list, const char *sep, const char *fmt, ...)
{
    if (list->max && list->count >= list->max) {
        list->count++;
        return;
    }
    va_list ap;
    va_start (ap, fmt);
    char *item = NULL;
    int rc = vasprintf (&item, fmt, ap);
    va_end (ap);
    list->count++;
    if (rc < 0)
        return;
    if (!list->text) {
        list->text = item;
        return;
    }
    char *joined = NULL;
    if (asprintf (&joined, "%s%s%s", list->text, sep, item) >= 0) {
        free (list->text);
        list->text = joined;
    }
    free (item);
}

//  Model-supplied text quoted for a reason: printable ASCII kept, the rest as \xNN,
//  cut at 40 bytes.  OUT must hold 4 * 40 + 8 bytes.
#define S_QUOTE_MAX 40
#define S_QUOTE_SIZE (4 * S_QUOTE_MAX + 8)

static const char *
s_quote (const char *s, size_t len, char *out)
{
    size_t o = 0;
    out [o++] = '"';
    for (size_t i = 0; i < len && i < S_QUOTE_MAX; i++) {
        unsigned char c = (unsigned char) s [i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            out [o++] = (char) c;
        else
            o += (size_t) sprintf (out + o, "\\x%02x", c);
    }
    out [o++] = '"';
    if (len > S_QUOTE_MAX) {
        memcpy (out + o, "...", 3);
        o += 3;
    }
    out [o] = 0;
    return out;
}

static const char *
s_json_type (json_t *value)
{
    switch (json_typeof (value)) {
        case JSON_OBJECT:   return "an object";
        case JSON_ARRAY:    return "an array";
        case JSON_STRING:   return "a string";
        case JSON_INTEGER:  return "an integer";
        case JSON_REAL:     return "a real number";
        case JSON_TRUE:
        case JSON_FALSE:    return "a boolean";
        case JSON_NULL:     return "null";
    }
    return "something else";
}

//  --------------------------------------------------------------------------------
//  Action specs, copied from the config so the gate does not depend on its lifetime

static void
s_action_free (s_action_t *action)
{
    for (size_t i = 0; i < action->param_count; i++) {
        s_param_t *p = &action->params [i];
        if (p->pattern)
            regfree (&p->regex);
        free (p->pattern);
        free (p->name);
        for (size_t j = 0; j < p->enum_count; j++)
            free (p->enum_values [j]);
        free (p->enum_values);
    }
    free (action->params);
    free (action->name);
    json_decref (action->spec);
}


static void
s_action_init (s_action_t *action, const mesh_action_spec_t *spec, s_list_t *problems)
{
    action->name = strdup (spec->name);
    action->params = calloc (spec->param_count ? spec->param_count : 1, sizeof (s_param_t));
    action->spec = json_pack ("{s:s, s:s, s:o}", "name", spec->name,
                              "kind", mesh_config_action_kind_name (spec->kind),
                              "params", json_object ());
    if (!action->name || !action->params || !action->spec) {
        s_list_add (problems, "\n", "action %s: out of memory", spec->name);
        return;
    }
    json_t *params = json_object_get (action->spec, "params");
    for (size_t i = 0; i < spec->param_count; i++) {
        const mesh_param_spec_t *from = &spec->params [i];
        s_param_t *p = &action->params [action->param_count++];
        p->name = strdup (from->name);
        p->type = from->type;
        p->required = from->required;
        p->max_length = from->max_length ? from->max_length : S_DEFAULT_MAX_LENGTH;
        p->has_min = from->has_min;
        p->has_max = from->has_max;
        p->min = from->min;
        p->max = from->max;
        if (from->enum_count) {
            p->enum_values = calloc (from->enum_count, sizeof (char *));
            for (size_t j = 0; p->enum_values && j < from->enum_count; j++)
                p->enum_values [p->enum_count++] = strdup (from->enum_values [j]);
        }
        if (from->pattern) {
            char *anchored = NULL;
            if (asprintf (&anchored, "^(%s)$", from->pattern) < 0)
                anchored = NULL;
            int rc = anchored ? regcomp (&p->regex, anchored, REG_EXTENDED | REG_NOSUB) : -1;
            free (anchored);
            if (rc == 0)
                p->pattern = strdup (from->pattern);
            else {
                char msg[128] = "out of memory";
                if (rc > 0)
                    regerror (rc, &p->regex, msg, sizeof msg);
                s_list_add (problems, "\n", "action %s: param %s: pattern \"%s\" is not a "
                            "valid POSIX extended regular expression: %s",
                            spec->name, from->name, from->pattern, msg);
            }
        }
        json_object_set_new (params, from->name, mesh_config_param_json (from));
    }
}

static const mesh_action_spec_t *
s_find_action (const mesh_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->action_count; i++)
        if (strcmp (cfg->actions [i].name, name) == 0)
            return &cfg->actions [i];
    return NULL;
}

//  --------------------------------------------------------------------------------
//  Construction

static mesh_sandbox_limits_t
s_limits (const mesh_config_t *cfg)
{
    mesh_sandbox_limits_t limits = { 0, 0, 0 };
    if (cfg) {
        limits.instructions = cfg->lua_instructions;
        limits.memory = cfg->lua_memory;
        limits.time_ms = cfg->lua_time_ms;
    }
    return limits;
}

//  A rule to load: from PATH, or (SOURCE set) from SIZE bytes already read, named PATH.
typedef struct {
    const char *path;
    const char *source;
    size_t size;
} s_source_t;

static void
s_add_rule (mesh_gate_t *self, const s_source_t *from, const mesh_sandbox_limits_t *limits,
            s_list_t *problems)
{
    char *msg = NULL;
    const char *path = from->path;
    mesh_sandbox_t *rule = from->source
                         ? mesh_sandbox_load_buffer (path, from->source, from->size, limits, &msg)
                         : mesh_sandbox_load (path, limits, &msg);
    if (!rule) {
        s_list_add (problems, "\n", "%s", msg ? msg : "out of memory");
        free (msg);
        return;
    }
    for (size_t i = 0; i < self->rule_count; i++)
        if (strcmp (mesh_sandbox_name (self->rules [i]), mesh_sandbox_name (rule)) == 0) {
            s_list_add (problems, "\n", "%s: rule name \"%s\" is already used by %s", path,
                        mesh_sandbox_name (rule), mesh_sandbox_path (self->rules [i]));
            mesh_sandbox_destroy (&rule);
            return;
        }
    self->rules [self->rule_count++] = rule;
}

static void
s_hash (mesh_gate_t *self)
{
    crypto_hash_sha256_state state;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init (&state);
    for (size_t i = 0; i < self->rule_count; i++) {
        const char *path = mesh_sandbox_path (self->rules [i]);
        const char *slash = strrchr (path, '/');
        const char *base = slash ? slash + 1 : path;
        size_t size;
        const char *source = mesh_sandbox_source (self->rules [i], &size);
        crypto_hash_sha256_update (&state, (const unsigned char *) base, strlen (base) + 1);
        crypto_hash_sha256_update (&state, (const unsigned char *) source, size);
    }
    crypto_hash_sha256_final (&state, digest);
    sodium_bin2hex (self->hash, sizeof self->hash, digest, sizeof digest);
}

//  The chain of RULES (COUNT of them, in order) with AGENT's actions as CFG declares them.
//  AGENT NULL (replay): no actions of its own, LIMITS given instead of CFG's.
static mesh_gate_t *
s_new (const mesh_config_t *cfg, const mesh_agent_config_t *agent, const s_source_t *rules,
       size_t count, const mesh_sandbox_limits_t *given, char **err)
{
    assert (agent ? cfg != NULL : given != NULL);
    if (err)
        *err = NULL;
    const char *who = agent ? agent->name : "replay";
    s_list_t problems = { NULL, 0, 0 };
    mesh_gate_t *self = calloc (1, sizeof *self);
    if (self) {
        pthread_mutex_init (&self->lock, NULL);
        self->rules = calloc (count + 1, sizeof (mesh_sandbox_t *));
        self->actions = calloc ((agent ? agent->action_count : 0) + 1, sizeof (s_action_t));
    }
    if (!self || !self->rules || !self->actions || sodium_init () < 0) {
        s_list_add (&problems, "\n", "agent %s: cannot set up its gate", who);
        goto failed;
    }
    mesh_sandbox_limits_t limits = given ? *given : s_limits (cfg);
    self->limits = limits;
    for (size_t i = 0; i < count; i++)
        s_add_rule (self, &rules [i], &limits, &problems);

    s_list_t allowed = { NULL, 0, 0 };
    for (size_t i = 0; agent && i < agent->action_count; i++) {
        const mesh_action_spec_t *spec = s_find_action (cfg, agent->actions [i]);
        if (!spec) {
            s_list_add (&problems, "\n", "agent %s: action \"%s\" is not declared under "
                        "actions", agent->name, agent->actions [i]);
            continue;
        }
        s_action_init (&self->actions [self->action_count++], spec, &problems);
        s_list_add (&allowed, ", ", "%s", spec->name);
    }
    self->allowed = allowed.text ? allowed.text : strdup ("(none)");
    if (problems.count)
        goto failed;
    s_hash (self);
    self->rule_names = calloc (self->rule_count + 1, sizeof (json_t *));
    bool named = self->rule_names != NULL;
    for (size_t i = 0; named && i <= self->rule_count; i++)
        named = (self->rule_names [i] = json_string (i ? mesh_sandbox_name (self->rules [i - 1])
                                                       : "builtin")) != NULL;
    for (int v = MESH_VERDICT_ACCEPT; named && v <= MESH_VERDICT_LIMIT; v++)
        named = (self->verdict_names [v] = json_string (mesh_verdict_name (v))) != NULL;
    self->accepts = named ? calloc (self->rule_count + 1, sizeof (json_t *)) : NULL;
    named = self->accepts != NULL;
    for (size_t i = 0; named && i <= self->rule_count; i++)
        named = (self->accepts [i] = json_pack ("{s:O, s:O, s:n}", "rule",
                                                self->rule_names [i], "verdict",
                                                self->verdict_names [MESH_VERDICT_ACCEPT],
                                                "reason")) != NULL;
    if (!named) {
        s_list_add (&problems, "\n", "agent %s: cannot set up its gate", who);
        goto failed;
    }
    return self;

failed:
    if (err)
        *err = problems.text ? problems.text : strdup ("out of memory");
    else {
        mesh_err ("%s", problems.text ? problems.text : "out of memory");
        free (problems.text);
    }
    mesh_gate_destroy (&self);
    return NULL;
}

mesh_gate_t *
mesh_gate_new (const mesh_config_t *cfg, const mesh_agent_config_t *agent, char **err)
{
    assert (cfg);
    assert (agent);
    //  An agent started by meshd runs the rule set meshd archived for it, never the files
    //  as they are now (they may have been edited since; only a reload changes the rules).
    if (agent->rules_hash) {
        char *why = NULL;
        mesh_gate_t *self = mesh_gate_from_archive (cfg, agent, cfg->state_dir,
                                                    agent->rules_hash, &why);
        if (!self && err)
            *err = why;
        else
        if (!self) {
            mesh_err ("rule set %s: %s", agent->rules_hash, why ? why : "?");
            free (why);
        }
        return self;
    }
    size_t count = cfg->global_rule_count + agent->rule_count;
    s_source_t *rules = calloc (count + 1, sizeof (s_source_t));
    if (!rules) {
        if (err)
            *err = strdup ("out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->global_rule_count; i++)
        rules [i].path = cfg->global_rules [i];
    for (size_t i = 0; i < agent->rule_count; i++)
        rules [cfg->global_rule_count + i].path = agent->rules [i];
    mesh_gate_t *self = s_new (cfg, agent, rules, count, NULL, err);
    free (rules);
    return self;
}

void
mesh_gate_destroy (mesh_gate_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_gate_t *self = *self_p;
    for (size_t i = 0; i < self->idle_count; i++)
        mesh_vm_destroy (&self->idle [i]);
    free (self->idle);
    for (size_t i = 0; self->rule_names && i <= self->rule_count; i++)
        json_decref (self->rule_names [i]);
    free (self->rule_names);
    for (size_t i = 0; self->accepts && i <= self->rule_count; i++)
        json_decref (self->accepts [i]);
    free (self->accepts);
    for (int v = 0; v < 4; v++)
        json_decref (self->verdict_names [v]);
    pthread_mutex_destroy (&self->lock);
    for (size_t i = 0; self->rules && i < self->rule_count; i++)
        mesh_sandbox_destroy (&self->rules [i]);
    free (self->rules);
    for (size_t i = 0; self->actions && i < self->action_count; i++)
        s_action_free (&self->actions [i]);
    free (self->actions);
    free (self->allowed);
    for (size_t i = 0; i < self->seen_count; i++) {
        s_action_free (&self->seen [i]);
        json_decref (self->seen_json [i]);
    }
    free (self->seen);
    free (self->seen_json);
    json_decref (self->allowed_json);
    free (self->allowed_text);
    free (self);
    *self_p = NULL;
}

const char *
mesh_gate_rules_hash (const mesh_gate_t *self)
{
    assert (self);
    return self->hash;
}

int
mesh_gate_check_file (const char *path, const mesh_config_t *cfg, char **err)
{
    assert (path);
    mesh_sandbox_limits_t limits = s_limits (cfg);
    mesh_sandbox_t *rule = mesh_sandbox_load (path, &limits, err);
    if (!rule)
        return -1;
    mesh_sandbox_destroy (&rule);
    return 0;
}

//  --------------------------------------------------------------------------------
//  The built-in check

static void
s_check_bounds (const s_param_t *p, double v, s_list_t *why)
{
    if (p->has_min && !(v >= p->min))
        s_list_add (why, "; ", "params.%s is %g, below the minimum %g", p->name, v, p->min);
    if (p->has_max && !(v <= p->max))
        s_list_add (why, "; ", "params.%s is %g, above the maximum %g", p->name, v, p->max);
}

static void
s_check_param (const s_param_t *p, json_t *value, s_list_t *why)
{
    const char *want = mesh_config_param_type_name (p->type);
    switch (p->type) {
        case MESH_PARAM_STRING: {
            if (!json_is_string (value))
                break;
            const char *s = json_string_value (value);
            size_t len = json_string_length (value);
            for (size_t i = 0; i < len; i++)
                if ((unsigned char) s [i] < 0x20 || s [i] == 0x7f) {
                    s_list_add (why, "; ", "params.%s contains a control character", p->name);
                    return;
                }
            if (len > p->max_length) {
                s_list_add (why, "; ", "params.%s is longer than %zu bytes", p->name,
                            p->max_length);
                return;
            }
            char q[S_QUOTE_SIZE];
            if (p->pattern && regexec (&p->regex, s, 0, NULL, 0) != 0)
                s_list_add (why, "; ", "params.%s %s does not match the pattern %s", p->name,
                            s_quote (s, len, q), p->pattern);
            if (p->enum_count) {
                bool found = false;
                for (size_t i = 0; !found && i < p->enum_count; i++)
                    found = strcmp (s, p->enum_values [i]) == 0;
                if (!found) {
                    s_list_t values = { NULL, 0, 0 };
                    for (size_t i = 0; i < p->enum_count; i++)
                        s_list_add (&values, ", ", "%s", p->enum_values [i]);
                    s_list_add (why, "; ", "params.%s %s is not one of: %s", p->name,
                                s_quote (s, len, q), values.text ? values.text : "");
                    free (values.text);
                }
            }
            return;
        }
        case MESH_PARAM_INTEGER:
            if (!json_is_integer (value))
                break;
            s_check_bounds (p, (double) json_integer_value (value), why);
            return;
        case MESH_PARAM_NUMBER:
            if (!json_is_number (value))
                break;
            s_check_bounds (p, json_number_value (value), why);
            return;
        case MESH_PARAM_BOOLEAN:
            if (!json_is_boolean (value))
                break;
            return;
    }
    s_list_add (why, "; ", "params.%s must be %s %s, not %s", p->name,
                p->type == MESH_PARAM_INTEGER ? "an" : "a", want, s_json_type (value));
}

//  The actions the built-in check knows: the gate's own (from the config), or in a
//  replay the one the record names.  ALLOWED is "a, b, c" for reasons.
typedef struct {
    const s_action_t *actions;
    size_t count;
    const char *allowed;
} s_known_t;

static const s_action_t *
s_find (const s_known_t *known, json_t *name)
{
    const char *s = json_string_value (name);
    size_t len = json_string_length (name);
    for (size_t i = 0; i < known->count; i++)
        if (strlen (known->actions [i].name) == len
            && memcmp (known->actions [i].name, s, len) == 0)
            return &known->actions [i];
    return NULL;
}

static void
s_check_params (const s_action_t *action, json_t *params, s_list_t *why)
{
    for (size_t i = 0; i < action->param_count; i++) {
        const s_param_t *p = &action->params [i];
        json_t *value = params ? json_object_get (params, p->name) : NULL;
        if (value)
            s_check_param (p, value, why);
        else
        if (p->required)
            s_list_add (why, "; ", "params.%s is required by %s", p->name, action->name);
    }
    const char *key;
    json_t *value;
    json_object_foreach (params, key, value) {
        bool declared = false;
        for (size_t i = 0; !declared && i < action->param_count; i++)
            declared = strcmp (action->params [i].name, key) == 0;
        char q[S_QUOTE_SIZE];
        if (!declared)
            s_list_add (why, "; ", "params %s is not a parameter of %s", s_quote (key,
                        strlen (key), q), action->name);
    }
}

//  NULL when the proposal has the declared shape; otherwise every problem, "; "-joined.
static char *
s_builtin (const s_known_t *known, json_t *proposal, const s_action_t **action_p)
{
    s_list_t why = { NULL, 0, S_MAX_PROBLEMS };
    *action_p = NULL;
    if (!json_is_object (proposal)) {
        s_list_add (&why, "; ", "the proposal must be a JSON object, not %s",
                    proposal ? s_json_type (proposal) : "nothing");
        return why.text ? why.text : strdup ("out of memory");
    }
    json_t *name = json_object_get (proposal, "action");
    const s_action_t *action = NULL;
    char q[S_QUOTE_SIZE];
    if (!json_is_string (name))
        s_list_add (&why, "; ", "\"action\" must be a string naming one of: %s",
                    known->allowed);
    else
    if (!(action = s_find (known, name)))
        s_list_add (&why, "; ", "action %s is not allowed here; allowed: %s",
                    s_quote (json_string_value (name), json_string_length (name), q),
                    known->allowed);
    json_t *params = json_object_get (proposal, "params");
    if (params && !json_is_object (params))
        s_list_add (&why, "; ", "\"params\" must be an object, not %s", s_json_type (params));
    else
    if (action)
        s_check_params (action, params, &why);
    json_t *confidence = json_object_get (proposal, "confidence");
    if (confidence && !(json_is_number (confidence) && json_number_value (confidence) >= 0
                        && json_number_value (confidence) <= 1))
        s_list_add (&why, "; ", "\"confidence\" must be a number from 0 to 1, not %s",
                    json_is_number (confidence) ? "one outside that range"
                                                : s_json_type (confidence));
    json_t *rationale = json_object_get (proposal, "rationale");
    if (rationale && !json_is_string (rationale))
        s_list_add (&why, "; ", "\"rationale\" must be a string, not %s",
                    s_json_type (rationale));
    //  The schema is closed: a key nobody checks ("approved", "argv") is refused, so no
    //  later reader can mistake it for something that was judged.
    const char *key;
    json_t *value;
    json_object_foreach (proposal, key, value) {
        (void) value;
        if (strcmp (key, "action") && strcmp (key, "params") && strcmp (key, "confidence")
            && strcmp (key, "rationale"))
            s_list_add (&why, "; ", "unknown top-level key %s; allowed: action, params, "
                        "confidence, rationale", s_quote (key, strlen (key), q));
    }
    if (why.count == 0) {
        *action_p = action;
        return NULL;
    }
    if (why.count > S_MAX_PROBLEMS) {
        int count = why.count;
        why.max = 0;
        s_list_add (&why, "; ", "... (%d problems in all)", count);
    }
    return why.text ? why.text : strdup ("out of memory");
}

//  --------------------------------------------------------------------------------
//  The check

//  One verdict record, with APPROVAL (NULL: none) when the check asked for one.  The
//  rule and verdict strings are shared (reference counted) by every record the gate
//  makes, and so is each check's plain accept record: records are written once and
//  never changed.
static void
s_record (json_t *verdicts, json_t *rule, json_t *verdict, const char *reason,
          const char *approval)
{
    if (!verdicts)
        return;
    if (!reason && !approval && json_is_object (rule)) {
        json_array_append (verdicts, rule);     //  RULE is the shared accept record
        return;
    }
    json_t *record = json_object ();
    json_object_set_nocheck (record, "rule", rule);
    json_object_set_nocheck (record, "verdict", verdict);
    json_object_set_new_nocheck (record, "reason", reason ? json_string (reason) : json_null ());
    if (approval)
        json_object_set_new_nocheck (record, "approval", json_string (approval));
    json_array_append_new (verdicts, record);
}

//  An idle vm from the pool, or a new one (NULL only when out of memory).
static mesh_vm_t *
s_checkout (mesh_gate_t *self)
{
    mesh_vm_t *vm = NULL;
    pthread_mutex_lock (&self->lock);
    if (self->idle_count)
        vm = self->idle [--self->idle_count];
    pthread_mutex_unlock (&self->lock);
    if (!vm)
        vm = mesh_vm_new (self->rules, self->rule_count, &self->limits);
    return vm;
}

static void
s_checkin (mesh_gate_t *self, mesh_vm_t *vm)
{
    pthread_mutex_lock (&self->lock);
    if (self->idle_count == self->idle_max) {
        size_t max = self->idle_max ? self->idle_max * 2 : 2;
        mesh_vm_t **idle = realloc (self->idle, max * sizeof (mesh_vm_t *));
        if (idle) {
            self->idle = idle;
            self->idle_max = max;
        }
    }
    if (self->idle_count < self->idle_max) {
        self->idle [self->idle_count++] = vm;
        vm = NULL;
    }
    pthread_mutex_unlock (&self->lock);
    mesh_vm_destroy (&vm);
}

static int
s_rank (mesh_fail_t fail)
{
    return fail == MESH_FAIL_RULE_LIMIT ? 3 : fail == MESH_FAIL_RULE_ERROR ? 2
         : fail == MESH_FAIL_RULE_REJECT ? 1 : 0;
}

static bool
s_check (mesh_gate_t *self, const s_known_t *known, json_t *proposal, json_t *ctx,
         json_t *verdicts, mesh_fail_t *fail_p)
{
    const s_action_t *action;
    char *why = s_builtin (known, proposal, &action);
    s_record (verdicts, why ? self->rule_names [0] : self->accepts [0],
              self->verdict_names [why ? MESH_VERDICT_REJECT : MESH_VERDICT_ACCEPT], why, NULL);
    if (why) {
        free (why);
        if (fail_p)
            *fail_p = MESH_FAIL_RULE_REJECT;
        return false;
    }
    //  What the rules see: params defaulted, ctx.action filled in (copies).
    json_t *seen_proposal = json_incref (proposal);
    if (!json_object_get (proposal, "params")) {
        json_decref (seen_proposal);
        seen_proposal = json_copy (proposal);
        json_object_set_new (seen_proposal, "params", json_object ());
    }
    json_t *seen_ctx = json_incref (ctx);
    json_t *given = json_object_get (ctx, "action");
    if (!ctx || (json_is_object (ctx) && (!given || json_is_null (given)))) {
        json_decref (seen_ctx);
        seen_ctx = ctx ? json_copy (ctx) : json_object ();
        json_object_set (seen_ctx, "action", action->spec);
    }
    mesh_fail_t worst = MESH_FAIL_NONE;
    size_t count = self->rule_count;
    mesh_verdict_t verdict_of[count + 1];
    char *reason_of[count + 1];
    char *approval_of[count + 1];
    mesh_vm_t *vm = count ? s_checkout (self) : NULL;
    if (vm)
        mesh_vm_eval (vm, seen_proposal, seen_ctx, verdict_of, reason_of, approval_of);
    else
        for (size_t i = 0; i < count; i++) {
            verdict_of [i] = MESH_VERDICT_ERROR;
            reason_of [i] = strdup ("cannot create a rule state: out of memory");
            approval_of [i] = NULL;
        }
    if (vm)
        s_checkin (self, vm);
    for (size_t i = 0; i < count; i++) {
        mesh_verdict_t verdict = verdict_of [i];
        bool shared = !reason_of [i] && !approval_of [i];
        s_record (verdicts, shared ? self->accepts [i + 1] : self->rule_names [i + 1],
                  self->verdict_names [verdict], reason_of [i], approval_of [i]);
        free (reason_of [i]);
        free (approval_of [i]);
        mesh_fail_t fail = verdict == MESH_VERDICT_ACCEPT ? MESH_FAIL_NONE
                         : verdict == MESH_VERDICT_REJECT ? MESH_FAIL_RULE_REJECT
                         : verdict == MESH_VERDICT_LIMIT ? MESH_FAIL_RULE_LIMIT
                         : MESH_FAIL_RULE_ERROR;
        if (s_rank (fail) > s_rank (worst))
            worst = fail;
    }
    json_decref (seen_proposal);
    json_decref (seen_ctx);
    if (fail_p)
        *fail_p = worst;
    return worst == MESH_FAIL_NONE;
}

bool
mesh_gate_check (mesh_gate_t *self, json_t *proposal, json_t *ctx, json_t *verdicts,
                 mesh_fail_t *fail_p)
{
    assert (self);
    s_known_t known = { self->actions, self->action_count, self->allowed };
    double start = mesh_hist_now ();
    bool accepted = s_check (self, &known, proposal, ctx, verdicts, fail_p);
    mesh_hist_global_observe (MESH_HIST_GATE, mesh_hist_now () - start);
    return accepted;
}

json_t *
mesh_gate_approval (json_t *verdicts)
{
    json_t *reason = NULL, *rules = NULL;
    size_t i;
    json_t *v;
    json_array_foreach (verdicts, i, v) {
        json_t *asked = json_object_get (v, "approval");
        const char *verdict = json_string_value (json_object_get (v, "verdict"));
        json_t *rule = json_object_get (v, "rule");
        if (!json_is_string (asked) || !verdict || strcmp (verdict, "accept") != 0
            || !json_is_string (rule))
            continue;
        if (!reason) {
            reason = asked;             //  the first check's reason stands
            rules = json_array ();
        }
        json_array_append (rules, rule);
    }
    if (!reason)
        return NULL;
    return json_pack ("{s:b, s:O, s:o}", "required", 1, "reason", reason, "rules", rules);
}

char *
mesh_gate_builtin (mesh_gate_t *self, json_t *proposal)
{
    assert (self);
    const s_action_t *action;
    s_known_t known = { self->actions, self->action_count, self->allowed };
    return s_builtin (&known, proposal, &action);
}

json_t *
mesh_gate_action_spec (const mesh_gate_t *self, const char *name)
{
    assert (self);
    for (size_t i = 0; name && i < self->action_count; i++)
        if (strcmp (self->actions [i].name, name) == 0)
            return self->actions [i].spec;
    return NULL;
}

//  --------------------------------------------------------------------------------
//  The rule set as a manifest and an archive

size_t
mesh_gate_state_memory (const mesh_gate_t *self)
{
    assert (self);
    mesh_gate_t *gate = (mesh_gate_t *) self;
    size_t bytes = 0;
    pthread_mutex_lock (&gate->lock);
    for (size_t i = 0; i < gate->idle_count; i++)
        if (mesh_vm_memory (gate->idle [i]) > bytes)
            bytes = mesh_vm_memory (gate->idle [i]);
    pthread_mutex_unlock (&gate->lock);
    return bytes;
}

static void
s_sha256_hex (const char *data, size_t size, char out[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (digest, (const unsigned char *) data, size);
    sodium_bin2hex (out, 65, digest, sizeof digest);
}

//  The name a rule's file has in the archive: its position (from 01) and basename.
static char *
s_archive_name (const mesh_gate_t *self, size_t i)
{
    const char *path = mesh_sandbox_path (self->rules [i]);
    const char *slash = strrchr (path, '/');
    char *name = NULL;
    if (asprintf (&name, "%02zu-%s", i + 1, slash ? slash + 1 : path) < 0)
        return NULL;
    return name;
}

json_t *
mesh_gate_manifest (const mesh_gate_t *self)
{
    assert (self);
    json_t *rules = json_array ();
    for (size_t i = 0; i < self->rule_count; i++) {
        size_t size;
        const char *source = mesh_sandbox_source (self->rules [i], &size);
        const char *path = mesh_sandbox_path (self->rules [i]);
        const char *slash = strrchr (path, '/');
        char sha[65];
        s_sha256_hex (source, size, sha);
        char *file = s_archive_name (self, i);
        json_array_append_new (rules, json_pack ("{s:s, s:s*, s:s, s:s}",
                                                 "name", mesh_sandbox_name (self->rules [i]),
                                                 "file", file, "basename",
                                                 slash ? slash + 1 : path, "sha256", sha));
        free (file);
    }
    return json_pack ("{s:s, s:o}", "hash", self->hash, "rules", rules);
}

//  Write SIZE bytes of DATA to DIR/NAME, fsync'd; 0 or -1 with errno.
static int
s_write_file (const char *dir, const char *name, const char *data, size_t size)
{
    char *path = NULL;
    if (asprintf (&path, "%s/%s", dir, name) < 0)
        return -1;
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    free (path);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write (fd, data + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close (fd);
            errno = e;
            return -1;
        }
        done += (size_t) n;
    }
    if (fsync (fd) != 0) {
        int e = errno;
        close (fd);
        errno = e;
        return -1;
    }
    return close (fd);
}

static int
s_fsync_dir (const char *dir)
{
    int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync (fd);
    close (fd);
    return rc;
}

//  Remove DIR and the files in it (our temporary directory: flat).
static void
s_remove_tree (const char *dir, const mesh_gate_t *self)
{
    for (size_t i = 0; i < self->rule_count; i++) {
        char *name = s_archive_name (self, i);
        char *path = NULL;
        if (name && asprintf (&path, "%s/%s", dir, name) >= 0)
            unlink (path);
        free (path);
        free (name);
    }
    char *path = NULL;
    if (asprintf (&path, "%s/manifest.json", dir) >= 0)
        unlink (path);
    free (path);
    rmdir (dir);
}

int
mesh_gate_archive (const mesh_gate_t *self, const char *state_dir, char **dir_p)
{
    assert (self);
    assert (state_dir);
    if (dir_p)
        *dir_p = NULL;
    char *rules_dir = NULL, *final = NULL, *tmp = NULL;
    json_t *manifest = NULL;
    char *text = NULL;
    int rc = -1;
    if (asprintf (&rules_dir, "%s/rules", state_dir) < 0)
        rules_dir = NULL;
    if (rules_dir && asprintf (&final, "%s/%s", rules_dir, self->hash) < 0)
        final = NULL;
    if (final && asprintf (&tmp, "%s/.tmp-%.16s-XXXXXX", rules_dir, self->hash) < 0)
        tmp = NULL;
    if (!tmp) {
        mesh_err ("gate: cannot archive rule set %s: out of memory", self->hash);
        goto done;
    }
    //  Already archived: the directory's name is the hash of what is in it.
    struct stat st;
    if (stat (final, &st) == 0 && S_ISDIR (st.st_mode)) {
        rc = 0;
        goto done;
    }
    if (mkdir (rules_dir, 0750) != 0 && errno != EEXIST) {
        mesh_err ("gate: cannot create %s: %s", rules_dir, strerror (errno));
        goto done;
    }
    if (!mkdtemp (tmp)) {
        mesh_err ("gate: cannot create a directory in %s: %s", rules_dir, strerror (errno));
        goto done;
    }
    for (size_t i = 0; i < self->rule_count; i++) {
        size_t size;
        const char *source = mesh_sandbox_source (self->rules [i], &size);
        char *name = s_archive_name (self, i);
        int written = name ? s_write_file (tmp, name, source, size) : -1;
        if (written != 0) {
            mesh_err ("gate: cannot write %s/%s: %s", tmp, name ? name : "?",
                      name ? strerror (errno) : "out of memory");
            free (name);
            s_remove_tree (tmp, self);
            goto done;
        }
        free (name);
    }
    manifest = mesh_gate_manifest (self);
    text = manifest ? json_dumps (manifest, JSON_INDENT (2)) : NULL;
    if (!text || s_write_file (tmp, "manifest.json", text, strlen (text)) != 0
    ||  s_fsync_dir (tmp) != 0) {
        mesh_err ("gate: cannot write %s/manifest.json: %s", tmp,
                  text ? strerror (errno) : "out of memory");
        s_remove_tree (tmp, self);
        goto done;
    }
    if (rename (tmp, final) != 0) {
        int e = errno;
        s_remove_tree (tmp, self);
        //  Someone archived the same set meanwhile: the same content, so done.
        if (!((e == EEXIST || e == ENOTEMPTY) && stat (final, &st) == 0
              && S_ISDIR (st.st_mode))) {
            mesh_err ("gate: cannot rename %s to %s: %s", tmp, final, strerror (e));
            goto done;
        }
    }
    s_fsync_dir (rules_dir);
    rc = 0;

done:
    if (rc == 0 && dir_p) {
        *dir_p = final;
        final = NULL;
    }
    json_decref (manifest);
    free (text);
    free (rules_dir);
    free (final);
    free (tmp);
    return rc;
}

//  --------------------------------------------------------------------------------
//  Loading an archived rule set

#define S_MANIFEST_MAX  (1024 * 1024)   //  bytes of a manifest.json we read
#define S_ARCHIVE_RULES 256             //  rules in one archived set

//  DIR/NAME read whole into *data_p (NUL-terminated; caller frees), at most MAX bytes.
//  0, or -1 with errno (EFBIG when larger than MAX).
static int
s_read_file (const char *dir, const char *name, size_t max, char **data_p, size_t *size_p)
{
    *data_p = NULL;
    char *path = NULL;
    if (asprintf (&path, "%s/%s", dir, name) < 0)
        return -1;
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free (path);
    if (fd < 0)
        return -1;
    char *data = malloc (max + 2);
    size_t size = 0;
    while (data && size <= max) {
        ssize_t n = read (fd, data + size, max + 1 - size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0) {
                free (data);
                data = NULL;
            }
            break;
        }
        size += (size_t) n;
    }
    int e = errno;
    close (fd);
    if (!data) {
        errno = e ? e : ENOMEM;
        return -1;
    }
    if (size > max) {
        free (data);
        errno = EFBIG;
        return -1;
    }
    data [size] = 0;
    *data_p = data;
    *size_p = size;
    return 0;
}

static bool
s_is_hash (const char *text)
{
    if (!text || strlen (text) != 64)
        return false;
    for (const char *p = text; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

//  A basename as the manifest may name it: not empty, no slash, not . or .., printable.
static bool
s_is_basename (const char *name)
{
    if (!name || !*name || strlen (name) > 255 || strchr (name, '/') || strcmp (name, ".") == 0
        || strcmp (name, "..") == 0)
        return false;
    for (const char *p = name; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

//  The rule set archived in DIR under RULES_HASH.  ALTERED NULL (recovery): anything that
//  differs from the manifest or the name is an error.  ALTERED set (replay): a file whose
//  content, or a chain whose hash, is not what the manifest and the name say is loaded
//  all the same and listed there; a manifest or a file that cannot be read, or a rule
//  that does not load, is still an error.  AGENT NULL: no actions, LIMITS instead of CFG's.
static mesh_gate_t *
s_from_archive (const mesh_config_t *cfg, const mesh_agent_config_t *agent, const char *dir,
                const char *rules_hash, const mesh_sandbox_limits_t *limits, s_list_t *altered,
                char **err)
{
    mesh_gate_t *self = NULL;
    char *text = NULL;
    size_t size = 0;
    json_t *manifest = NULL;
    s_source_t *rules = NULL;
    size_t count = 0;
    if (s_read_file (dir, "manifest.json", S_MANIFEST_MAX, &text, &size) != 0) {
        if (asprintf (err, "%s/manifest.json: %s", dir, errno == ENOENT
                      ? "no such file: the rule set is not archived"
                      : errno == EFBIG ? "larger than 1 MiB" : strerror (errno)) < 0)
            *err = NULL;
        goto done;
    }
    json_error_t jerr;
    manifest = json_loadb (text, size, JSON_REJECT_DUPLICATES, &jerr);
    json_t *list = json_object_get (manifest, "rules");
    const char *hash = json_string_value (json_object_get (manifest, "hash"));
    if (!json_is_object (manifest) || !json_is_array (list) || !hash) {
        if (asprintf (err, "%s/manifest.json: not a manifest (an object with \"hash\" and "
                      "\"rules\")%s%s", dir, manifest ? "" : ": ", manifest ? "" : jerr.text) < 0)
            *err = NULL;
        goto done;
    }
    if (strcmp (hash, rules_hash) != 0 && altered)
        s_list_add (altered, "; ", "manifest.json names rule set %.16s..., not the "
                    "directory's %.16s...", hash, rules_hash);
    else
    if (strcmp (hash, rules_hash) != 0) {
        if (asprintf (err, "%s/manifest.json: names rule set %.16s..., not the directory's "
                      "%.16s...", dir, hash, rules_hash) < 0)
            *err = NULL;
        goto done;
    }
    count = json_array_size (list);
    if (count > S_ARCHIVE_RULES) {
        if (asprintf (err, "%s/manifest.json: %zu rules, more than %d", dir, count,
                      S_ARCHIVE_RULES) < 0)
            *err = NULL;
        goto done;
    }
    rules = calloc (count + 1, sizeof (s_source_t));
    if (!rules) {
        *err = strdup ("out of memory");
        goto done;
    }
    //  Each file is the manifest's NN-basename, and its content hashes to the manifest's
    //  sha256; it is loaded under DIR/basename, so the chain's hash is computed over the
    //  names and contents as they were in force.
    for (size_t i = 0; i < count; i++) {
        json_t *entry = json_array_get (list, i);
        const char *base = json_string_value (json_object_get (entry, "basename"));
        const char *file = json_string_value (json_object_get (entry, "file"));
        const char *sha = json_string_value (json_object_get (entry, "sha256"));
        char expected[300];
        if (s_is_basename (base))
            snprintf (expected, sizeof expected, "%02zu-%s", i + 1, base);
        if (!s_is_basename (base) || !file || strcmp (file, expected) != 0 || !s_is_hash (sha)) {
            if (asprintf (err, "%s/manifest.json: rule %zu: needs \"basename\", \"file\" "
                          "(NN-basename, NN its position from 01) and \"sha256\"", dir,
                          i + 1) < 0)
                *err = NULL;
            goto done;
        }
        char *content = NULL;
        size_t length = 0;
        if (s_read_file (dir, file, MESH_SANDBOX_MAX_SOURCE, &content, &length) != 0) {
            if (asprintf (err, "%s/%s: %s", dir, file,
                          errno == EFBIG ? "larger than a rule may be" : strerror (errno)) < 0)
                *err = NULL;
            goto done;
        }
        char actual[65];
        s_sha256_hex (content, length, actual);
        char *path = NULL;
        if (strcmp (actual, sha) != 0 && altered) {
            s_list_add (altered, "; ", "%s: content differs from the manifest (sha256 "
                        "%.16s..., manifest says %.16s...)", file, actual, sha);
            sha = actual;
        }
        if (strcmp (actual, sha) != 0 || asprintf (&path, "%s/%s", dir, base) < 0) {
            free (content);
            if (asprintf (err, "%s/%s: content does not match the manifest (sha256 %.16s..., "
                          "manifest says %.16s...)", dir, file, actual, sha) < 0)
                *err = NULL;
            goto done;
        }
        rules [i] = (s_source_t) { path, content, length };
    }
    self = s_new (cfg, agent, rules, count, limits, err);
    if (self && strcmp (self->hash, rules_hash) != 0 && altered)
        s_list_add (altered, "; ", "the archived rules hash to %.16s..., not to the "
                    "directory's name", self->hash);
    else
    if (self && strcmp (self->hash, rules_hash) != 0) {
        if (asprintf (err, "%s: the archived rules hash to %.16s..., not to the directory's "
                      "name", dir, self->hash) < 0)
            *err = NULL;
        mesh_gate_destroy (&self);
    }
    for (size_t i = 0; self && i < count; i++) {
        const char *name = json_string_value (json_object_get (json_array_get (list, i),
                                                               "name"));
        if ((!name || strcmp (name, mesh_sandbox_name (self->rules [i])) != 0) && altered)
            s_list_add (altered, "; ", "rule %zu is named \"%s\" in the manifest but \"%s\" "
                        "in its file", i + 1, name ? name : "",
                        mesh_sandbox_name (self->rules [i]));
        else
        if (!name || strcmp (name, mesh_sandbox_name (self->rules [i])) != 0) {
            if (asprintf (err, "%s/manifest.json: rule %zu is named \"%s\" in the manifest "
                          "but \"%s\" in its file", dir, i + 1, name ? name : "",
                          mesh_sandbox_name (self->rules [i])) < 0)
                *err = NULL;
            mesh_gate_destroy (&self);
        }
    }

done:
    if (!self && !*err)
        *err = strdup ("out of memory");
    for (size_t i = 0; rules && i < count; i++) {
        free ((char *) rules [i].path);
        free ((char *) rules [i].source);
    }
    free (rules);
    json_decref (manifest);
    free (text);
    return self;
}

mesh_gate_t *
mesh_gate_from_archive (const mesh_config_t *cfg, const mesh_agent_config_t *agent,
                        const char *state_dir, const char *rules_hash, char **err)
{
    assert (cfg);
    assert (agent);
    assert (state_dir);
    assert (err);
    *err = NULL;
    if (!s_is_hash (rules_hash)) {
        *err = strdup ("the rules hash is not 64 lower-case hex digits");
        return NULL;
    }
    char *dir = NULL;
    if (asprintf (&dir, "%s/rules/%s", state_dir, rules_hash) < 0) {
        *err = strdup ("out of memory");
        return NULL;
    }
    mesh_gate_t *self = s_from_archive (cfg, agent, dir, rules_hash, NULL, NULL, err);
    free (dir);
    return self;
}

//  --------------------------------------------------------------------------------
//  Replay (audit/replay.c): the rules of an archive or a candidate directory, with the
//  built-in check's actions taken from the record

#define S_SEEN_MAX 64                   //  parsed action specs kept by a replay gate

json_t *
mesh_gate_inputs (const mesh_gate_t *self)
{
    assert (self);
    long instructions = self->limits.instructions > 0 ? self->limits.instructions
                                                      : MESH_SANDBOX_DEFAULT_INSTRUCTIONS;
    size_t memory = self->limits.memory > 0 ? self->limits.memory : MESH_SANDBOX_DEFAULT_MEMORY;
    int time_ms = self->limits.time_ms > 0 ? self->limits.time_ms : MESH_SANDBOX_DEFAULT_TIME_MS;
    json_t *actions = json_array ();
    for (size_t i = 0; i < self->action_count; i++)
        json_array_append_new (actions, json_string (self->actions [i].name));
    return json_pack ("{s:[I,I,i], s:o}", "limits", (json_int_t) instructions,
                      (json_int_t) memory, time_ms, "actions", actions);
}

int
mesh_gate_limits_json (json_t *limits, mesh_sandbox_limits_t *out)
{
    assert (out);
    json_t *i = json_array_get (limits, 0), *m = json_array_get (limits, 1),
           *t = json_array_get (limits, 2);
    if (!json_is_array (limits) || json_array_size (limits) != 3 || !json_is_integer (i)
        || !json_is_integer (m) || !json_is_integer (t) || json_integer_value (i) <= 0
        || json_integer_value (m) <= 0 || json_integer_value (t) <= 0
        || json_integer_value (t) > 3600000)
        return -1;
    out->instructions = (long) json_integer_value (i);
    out->memory = (size_t) json_integer_value (m);
    out->time_ms = (int) json_integer_value (t);
    return 0;
}

static int
s_cmp_names (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

//  A candidate set: every *.lua in DIR but *_test.lua, in byte order of name.
static mesh_gate_t *
s_from_dir (const char *dir, const mesh_sandbox_limits_t *limits, char **err)
{
    DIR *d = opendir (dir);
    if (!d) {
        if (asprintf (err, "%s: cannot open the rules directory: %s", dir, strerror (errno)) < 0)
            *err = NULL;
        return NULL;
    }
    char **names = NULL;
    size_t count = 0;
    bool too_many = false, oom = false;
    struct dirent *entry;
    while ((entry = readdir (d))) {
        size_t len = strlen (entry->d_name);
        if (len < 5 || strcmp (entry->d_name + len - 4, ".lua") != 0 || entry->d_name [0] == '.'
            || (len >= 9 && strcmp (entry->d_name + len - 9, "_test.lua") == 0))
            continue;
        if (count == S_ARCHIVE_RULES) {
            too_many = true;
            break;
        }
        char **grown = realloc (names, (count + 1) * sizeof (char *));
        if (!grown || asprintf (&grown [count], "%s/%s", dir, entry->d_name) < 0) {
            names = grown ? grown : names;
            oom = true;
            break;
        }
        names = grown;
        count++;
    }
    closedir (d);
    mesh_gate_t *self = NULL;
    if (too_many) {
        if (asprintf (err, "%s: more than %d rule files", dir, S_ARCHIVE_RULES) < 0)
            *err = NULL;
    }
    else
    if (oom)
        *err = strdup ("out of memory");
    else
    if (count == 0) {
        if (asprintf (err, "%s: no rule files (*.lua other than *_test.lua)", dir) < 0)
            *err = NULL;
    }
    else {
        qsort (names, count, sizeof (char *), s_cmp_names);
        s_source_t *rules = calloc (count, sizeof (s_source_t));
        for (size_t i = 0; rules && i < count; i++)
            rules [i].path = names [i];
        self = rules ? s_new (NULL, NULL, rules, count, limits, err) : NULL;
        if (!rules)
            *err = strdup ("out of memory");
        free (rules);
    }
    for (size_t i = 0; i < count; i++)
        free (names [i]);
    free (names);
    return self;
}

mesh_gate_t *
mesh_gate_replay_new (const char *dir, const char *rules_hash,
                      const mesh_sandbox_limits_t *limits, char **altered_p, char **err)
{
    assert (dir);
    assert (limits);
    assert (err);
    *err = NULL;
    if (altered_p)
        *altered_p = NULL;
    if (!rules_hash)
        return s_from_dir (dir, limits, err);
    if (!s_is_hash (rules_hash)) {
        *err = strdup ("the rules hash is not 64 lower-case hex digits");
        return NULL;
    }
    s_list_t altered = { NULL, 0, 0 };
    mesh_gate_t *self = s_from_archive (NULL, NULL, dir, rules_hash, limits, &altered, err);
    if (self && altered_p)
        *altered_p = altered.text;
    else
        free (altered.text);
    return self;
}

//  The parsed form of SPEC (a recorded ctx_action), from the cache or parsed now.  NULL
//  and *why set when SPEC is not a spec this gate could have made.
static const s_action_t *
s_seen (mesh_gate_t *self, json_t *spec, char **why)
{
    for (size_t i = 0; i < self->seen_count; i++)
        if (json_equal (self->seen_json [i], spec))
            return &self->seen [i];
    const char *name = json_string_value (json_object_get (spec, "name"));
    const char *kind = json_string_value (json_object_get (spec, "kind"));
    json_t *params = json_object_get (spec, "params");
    if (!name || !kind || !json_is_object (params) || json_object_size (params) > 256) {
        *why = strdup ("ctx_action is not an action spec {name, kind, params}");
        return NULL;
    }
    mesh_action_spec_t action = { .name = (char *) name };
    bool kind_ok = false;
    for (int k = MESH_ACTION_LOG; k <= MESH_ACTION_WEBHOOK && !kind_ok; k++)
        if (strcmp (mesh_config_action_kind_name ((mesh_action_kind_t) k), kind) == 0) {
            action.kind = (mesh_action_kind_t) k;
            kind_ok = true;
        }
    mesh_param_spec_t specs[json_object_size (params) + 1];
    memset (specs, 0, sizeof specs);
    const char **enums = calloc (json_object_size (params) * 64 + 1, sizeof (char *));
    size_t enum_used = 0;
    bool ok = kind_ok && enums;
    const char *key;
    json_t *p;
    json_object_foreach (params, key, p) {
        if (!ok)
            break;
        mesh_param_spec_t *to = &specs [action.param_count++];
        to->name = (char *) key;
        const char *type = json_string_value (json_object_get (p, "type"));
        bool typed = false;
        for (int t = MESH_PARAM_STRING; type && t <= MESH_PARAM_BOOLEAN && !typed; t++)
            if (strcmp (mesh_config_param_type_name ((mesh_param_type_t) t), type) == 0) {
                to->type = (mesh_param_type_t) t;
                typed = true;
            }
        json_t *required = json_object_get (p, "required");
        json_t *max_length = json_object_get (p, "max_length");
        json_t *pattern = json_object_get (p, "pattern");
        json_t *values = json_object_get (p, "enum");
        json_t *min = json_object_get (p, "min"), *max = json_object_get (p, "max");
        ok = typed && json_is_boolean (required)
          && (!max_length || (json_is_integer (max_length) && json_integer_value (max_length) > 0))
          && (!pattern || json_is_string (pattern)) && (!values || json_is_array (values))
          && json_array_size (values) <= 64 && (!min || json_is_number (min))
          && (!max || json_is_number (max));
        if (!ok)
            break;
        to->required = json_is_true (required);
        to->max_length = max_length ? (size_t) json_integer_value (max_length) : 0;
        to->pattern = (char *) json_string_value (pattern);
        to->has_min = min != NULL;
        to->min = min ? json_number_value (min) : 0;
        to->has_max = max != NULL;
        to->max = max ? json_number_value (max) : 0;
        to->allow_dash = json_is_true (json_object_get (p, "allow_dash"));
        size_t j;
        json_t *value;
        to->enum_values = (char **) (enums + enum_used);
        json_array_foreach (values, j, value) {
            if (!(ok = json_is_string (value)))
                break;
            enums [enum_used++] = json_string_value (value);
            to->enum_count++;
        }
    }
    action.params = specs;
    if (!ok) {
        free (enums);
        *why = strdup ("ctx_action is not an action spec {name, kind, params} as the gate "
                       "writes them");
        return NULL;
    }
    if (self->seen_count == S_SEEN_MAX) {
        for (size_t i = 0; i < self->seen_count; i++) {
            s_action_free (&self->seen [i]);
            json_decref (self->seen_json [i]);
        }
        self->seen_count = 0;
    }
    if (!self->seen) {
        self->seen = calloc (S_SEEN_MAX, sizeof (s_action_t));
        self->seen_json = calloc (S_SEEN_MAX, sizeof (json_t *));
        if (!self->seen || !self->seen_json) {
            free (enums);
            *why = strdup ("out of memory");
            return NULL;
        }
    }
    s_action_t *parsed = &self->seen [self->seen_count];
    memset (parsed, 0, sizeof *parsed);
    s_list_t problems = { NULL, 0, 0 };
    s_action_init (parsed, &action, &problems);
    free (enums);
    if (problems.count) {
        *why = problems.text ? problems.text : strdup ("out of memory");
        s_action_free (parsed);
        return NULL;
    }
    self->seen_json [self->seen_count++] = json_incref (spec);
    return parsed;
}

int
mesh_gate_replay_check (mesh_gate_t *self, json_t *allowed, json_t *spec, json_t *proposal,
                        json_t *ctx, json_t *verdicts, mesh_fail_t *fail_p, bool *accepted_p,
                        char **why)
{
    assert (self);
    assert (accepted_p);
    assert (why);
    *why = NULL;
    if (!json_is_array (allowed)) {
        *why = strdup ("the allowed actions are not a list");
        return -1;
    }
    if (!self->allowed_json || !json_equal (self->allowed_json, allowed)) {
        s_list_t text = { NULL, 0, 0 };
        size_t i;
        json_t *name;
        json_array_foreach (allowed, i, name) {
            if (!json_is_string (name)) {
                free (text.text);
                *why = strdup ("the allowed actions are not a list of names");
                return -1;
            }
            s_list_add (&text, ", ", "%s", json_string_value (name));
        }
        json_decref (self->allowed_json);
        free (self->allowed_text);
        self->allowed_json = json_incref (allowed);
        self->allowed_text = text.text ? text.text : strdup ("(none)");
    }
    //  The proposed action is known when the allowed list names it; its spec is the
    //  recorded ctx_action.
    const s_action_t *action = NULL;
    json_t *name = json_object_get (proposal, "action");
    bool listed = false;
    size_t i;
    json_t *allowed_name;
    json_array_foreach (allowed, i, allowed_name)
        if (json_is_string (name) && json_equal (name, allowed_name))
            listed = true;
    if (listed) {
        if (!json_is_object (spec)) {
            *why = strdup ("missing ctx_action (the spec of an allowed action)");
            return -1;
        }
        if (!(action = s_seen (self, spec, why)))
            return -1;
    }
    s_known_t known = { action, action ? 1 : 0, self->allowed_text };
    *accepted_p = s_check (self, &known, proposal, ctx, verdicts, fail_p);
    return 0;
}
