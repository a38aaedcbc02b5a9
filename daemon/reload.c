/*  reload - validate a new config and plan what it changes (see reload.h).
 *
 *  The comparison works on the YAML documents, not the loaded structs: both configs
 *  carry their file as a plain JSON tree (every scalar a string, built by the config
 *  loader from its one protected parse; the file is never parsed a second time, and
 *  problems name FILE:LINE:COL from the same parse) and are compared section by
 *  section after taking the rule lists out.  That keeps this file independent of
 *  every field the config grows; a key that changes spelling but not meaning
 *  ("1" vs "1.0") counts as a change, which errs on the side of a restart.
 */
#include "reload.h"
#include "backend.h"
#include "gate.h"
#include "log.h"

#include <czmq.h>

#include <string.h>

//  "FILE:LINE:COL" of key PATH in CFG, or of the first of the fallbacks found (1:1 if none).
static void
s_where (FILE *out, const mesh_config_t *cfg, const char *path, const char *fallback)
{
    mesh_config_pos_t at = mesh_config_where (cfg, path);
    if (!at.line && fallback)
        at = mesh_config_where (cfg, fallback);
    fprintf (out, "%s:%d:%d: ", cfg->path, at.line ? at.line : 1, at.line ? at.col : 1);
}

int
mesh_reload_check_parts (const mesh_config_t *cfg, FILE *out)
{
    int problems = 0;
    for (size_t i = 0; i < cfg->global_rule_count + cfg->agent_count; i++) {
        //  The global chain, then each agent's own rules.
        char **rules;
        mesh_config_pos_t *pos;
        size_t count;
        if (i < cfg->global_rule_count) {
            rules = cfg->global_rules + i, pos = cfg->global_rule_pos + i, count = 1;
        }
        else {
            const mesh_agent_config_t *a = &cfg->agents[i - cfg->global_rule_count];
            rules = a->rules, pos = a->rule_pos, count = a->rule_count;
        }
        for (size_t r = 0; r < count; r++) {
            char *err = NULL;
            if (mesh_gate_check_file (rules[r], cfg, &err) != 0) {
                fprintf (out, "%s:%d:%d: rule %s: %s\n", cfg->path, pos[r].line, pos[r].col,
                         rules[r], err ? err : "cannot load");
                problems++;
            }
            free (err);
        }
    }
    //  Each agent's whole chain, as its workers will build it (duplicate rule names, ...).
    for (size_t i = 0; problems == 0 && i < cfg->agent_count; i++) {
        const mesh_agent_config_t *a = &cfg->agents[i];
        char *err = NULL;
        mesh_gate_t *gate = mesh_gate_new (cfg, a, &err);
        if (!gate) {
            mesh_config_pos_t at = a->rule_count ? a->rule_pos[0] : (mesh_config_pos_t) {0, 0};
            fprintf (out, "%s:%d:%d: agents.%s: rule chain: %s\n", cfg->path, at.line, at.col,
                     a->name, err ? err : "cannot be built");
            problems++;
        }
        free (err);
        mesh_gate_destroy (&gate);
    }
    for (size_t i = 0; i < cfg->backend_count; i++) {
        mesh_backend_t *backend = mesh_backend_new (&cfg->backends[i]);
        if (!backend) {
            char *key = zsys_sprintf ("backends.%s", cfg->backends[i].name);
            s_where (out, cfg, key, "backends");
            fprintf (out, "backend %s: unusable (see the message above)\n",
                     cfg->backends[i].name);
            zstr_free (&key);
            problems++;
        }
        mesh_backend_destroy (&backend);
    }
    return problems;
}

//  The part of a tree that decides whether a restart is needed: no rules, no gate limits.
static json_t *
s_without_rules (json_t *section)
{
    json_t *copy = json_deep_copy (section ? section : json_null ());
    if (json_is_object (copy))
        json_object_del (copy, "rules");
    return copy;
}

static bool
s_same (json_t *a, json_t *b)
{
    return json_equal (a ? a : json_null (), b ? b : json_null ());
}

static json_t *
s_agent_named (json_t *tree, const char *name)
{
    size_t i;
    json_t *agent;
    json_array_foreach (json_object_get (tree, "agents"), i, agent) {
        const char *n = json_string_value (json_object_get (agent, "name"));
        if (n && strcmp (n, name) == 0)
            return agent;
    }
    return NULL;
}

int
mesh_reload_plan (const char *path, json_t *old_tree, mesh_config_t **new_p, json_t **plan_p,
                  json_t **tree_p, char **error_p)
{
    *new_p = NULL;
    *plan_p = *tree_p = NULL;
    *error_p = NULL;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    mesh_config_t *cfg = NULL;
    json_t *tree = NULL;
    int problems = mesh_config_load (path, &cfg, out);
    if (problems == 0)
        problems = mesh_reload_check_parts (cfg, out);
    if (problems == 0)
        tree = json_incref (cfg->tree);     //  from the one parse, never a second
    if (problems == 0) {
        const char *fixed[] = {"daemon", "kafka"};
        for (size_t i = 0; i < 2; i++)
            if (!s_same (json_object_get (old_tree, fixed[i]), json_object_get (tree, fixed[i]))) {
                s_where (out, cfg, fixed[i], NULL);
                fprintf (out, "the '%s' section changed: restart meshd to apply it\n", fixed[i]);
                problems++;
            }
        size_t old_n = json_array_size (json_object_get (old_tree, "agents"));
        bool same_set = old_n == cfg->agent_count;
        size_t differs = 0;
        for (size_t i = 0; same_set && i < cfg->agent_count; i++)
            if (!(same_set = s_agent_named (old_tree, cfg->agents[i].name) != NULL))
                differs = i;
        if (!same_set) {
            char *key = zsys_sprintf ("agents[%zu]", differs);
            s_where (out, cfg, key, "agents");
            fprintf (out, "agents were added or removed: restart meshd to apply it\n");
            zstr_free (&key);
            problems++;
        }
        for (size_t i = 0; same_set && i < cfg->agent_count; i++) {
            json_t *before = json_object_get (s_agent_named (old_tree, cfg->agents[i].name),
                                              "replicas");
            json_t *after = json_object_get (s_agent_named (tree, cfg->agents[i].name),
                                             "replicas");
            if (!s_same (before, after)) {
                char *key = zsys_sprintf ("agents[%zu].replicas", i);
                char *agent = zsys_sprintf ("agents[%zu]", i);
                s_where (out, cfg, key, agent);
                fprintf (out, "agents.%s.replicas changed: restart meshd to apply it\n",
                         cfg->agents[i].name);
                zstr_free (&key);
                zstr_free (&agent);
                problems++;
            }
        }
    }
    fclose (out);
    if (problems) {
        *error_p = text;
        mesh_config_destroy (&cfg);
        json_decref (tree);
        return -1;
    }
    free (text);
    //  Which agents restart, which swap their rules in place.
    bool shared_changed =
        !s_same (json_object_get (old_tree, "backends"), json_object_get (tree, "backends"))
        || !s_same (json_object_get (old_tree, "actions"), json_object_get (tree, "actions"));
    json_t *restart = json_array (), *reload = json_array ();
    for (size_t i = 0; i < cfg->agent_count; i++) {
        const char *name = cfg->agents[i].name;
        json_t *before = s_without_rules (s_agent_named (old_tree, name));
        json_t *after = s_without_rules (s_agent_named (tree, name));
        bool changed = shared_changed || !json_equal (before, after);
        json_array_append_new (changed ? restart : reload, json_string (name));
        json_decref (before);
        json_decref (after);
    }
    *plan_p = json_pack ("{so so}", "restart", restart, "reload", reload);
    *new_p = cfg;
    *tree_p = tree;
    return 0;
}
