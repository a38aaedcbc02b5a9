/*  reload - validate a new config and plan what it changes (see reload.h).
 *
 *  The comparison works on the YAML documents, not the loaded structs: both configs
 *  carry their file as a plain JSON tree (every scalar a string, built by the config
 *  loader from its one protected parse; the file is never parsed a second time, and
 *  problems name FILE:LINE:COL from the same parse) and are compared section by
 *  section after taking the rule lists out.  That keeps this file independent of
 *  every field the config grows; a key that changes spelling but not meaning
 *  ("1" vs "1.0") counts as a change, which errs on the side of a restart.
 *
 *  Everything that loads rules runs in a check job's child (reload.h): the main
 *  loop only starts the job, polls it, and applies or refuses what it reports.
 */
#include "reload.h"
#include "backend.h"
#include "gate.h"
#include "log.h"

#include <assert.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

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
        const char *fixed[] = {"daemon", "kafka", "http"};
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
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

//  --------------------------------------------------------------------------------
//  Check jobs: rule loading in a child process

//  With sandbox.user the agents read the archive DIR after switching user: give it, the
//  rules directory above it and its files the agents' GROUP, and DIR mode 0750 (mkdtemp
//  made it 0700); the files are 0640: the group reads, nobody else.  meshd wrote them
//  all; lchown follows no link.  GROUP (gid_t) -1: nothing to do.
static int
s_share_archive (const char *dir, gid_t group)
{
    if (group == (gid_t) -1)
        return 0;
    char *parent = strdup (dir);
    char *slash = parent ? strrchr (parent, '/') : NULL;
    if (slash)
        *slash = 0;
    int rc = parent && lchown (parent, (uid_t) -1, group) == 0
             && lchown (dir, (uid_t) -1, group) == 0 && chmod (dir, 0750) == 0 ? 0 : -1;
    free (parent);
    DIR *d = rc == 0 ? opendir (dir) : NULL;
    struct dirent *entry;
    while (d && (entry = readdir (d)))
        if (entry->d_name[0] != '.' && fchownat (dirfd (d), entry->d_name, (uid_t) -1, group,
                                                 AT_SYMLINK_NOFOLLOW) != 0)
            rc = -1;
    if (d)
        closedir (d);
    return rc;
}

json_t *
mesh_reload_rules_records (const mesh_config_t *cfg, const char *event, gid_t group,
                           FILE *out)
{
    json_t *records = json_array ();
    for (size_t i = 0; records && i < cfg->agent_count; i++) {
        const mesh_agent_config_t *agent = &cfg->agents[i];
        char *err = NULL;
        mesh_gate_t *gate = mesh_gate_new (cfg, agent, &err);
        //  The archive is what the agents build their chains from and what a replay
        //  loads: the files as they were checked, under their hash.  Without it no agent
        //  could run these rules, so it is a refusal, not a warning.
        char *archive = NULL;
        if (!gate || mesh_gate_archive (gate, cfg->state_dir, &archive) != 0
            || s_share_archive (archive, group) != 0) {
            fprintf (out, "%s: rules of agent %s: %s\n", cfg->path, agent->name,
                     gate ? "cannot be archived under the state directory for the agents "
                            "(see the log)"
                          : err ? err : "?");
            free (archive);
            free (err);
            mesh_gate_destroy (&gate);
            json_decref (records);
            return NULL;
        }
        json_t *files = json_array ();
        for (size_t r = 0; r < cfg->global_rule_count; r++)
            json_array_append_new (files, json_string (cfg->global_rules[r]));
        for (size_t r = 0; r < agent->rule_count; r++)
            json_array_append_new (files, json_string (agent->rules[r]));
        json_error_t jerr;
        json_t *record = json_pack_ex (&jerr, 0,
            "{ss ss ss ss so so ss ss so}", "type", "rules", "event", event, "agent",
            agent->name, "rules_hash", mesh_gate_rules_hash (gate), "files", files, "manifest",
            mesh_gate_manifest (gate), "archive", archive, "config_sha256", cfg->sha256,
            "config_snapshot", cfg->snapshot ? json_string (cfg->snapshot) : json_null ());
        free (archive);
        mesh_gate_destroy (&gate);
        if (!record || json_array_append_new (records, record) != 0) {
            fprintf (out, "%s: rules of agent %s: cannot be recorded: %s\n", cfg->path,
                     agent->name, record ? "out of memory" : jerr.text);
            json_decref (records);
            return NULL;
        }
    }
    return records;
}

struct _mesh_reload_job_t {
    pid_t pid;                          //  0 once reaped
    int fd;                             //  read end of the result pipe, -1 once closed
    char *text;                         //  what the child wrote so far
    size_t size, room;
    int64_t deadline_ms;
    bool killed;                        //  we killed it: past the deadline
};

//  The child's work: the whole result document.  Everything the agents will run is
//  fixed here, from the one parse that was checked: the config's bytes as a snapshot in
//  RUNTIME (named by their SHA-256) and each agent's rule set archived by its hash.
static json_t *
s_job_work (const char *path, json_t *old_tree, const char *event, const char *runtime,
            gid_t group)
{
    char *text = NULL;
    size_t size = 0;
    mesh_config_t *cfg = NULL;
    json_t *plan = NULL, *tree = NULL, *records = NULL;
    char *error = NULL;
    int problems;
    if (old_tree)
        problems = mesh_reload_plan (path, old_tree, &cfg, &plan, &tree, &error) == 0 ? 0 : 1;
    else {
        FILE *out = open_memstream (&text, &size);
        problems = mesh_config_load (path, &cfg, out);
        if (problems == 0)
            problems = mesh_reload_check_parts (cfg, out);
        fclose (out);
        error = text;
    }
    json_decref (tree);
    if (problems == 0 && !runtime) {            //  a check only (meshd --check-config, start)
        json_t *result = json_pack ("{sb ss}", "ok", 1, "sha256", cfg->sha256);
        free (error);
        mesh_config_destroy (&cfg);
        return result;
    }
    if (problems == 0) {
        free (error);
        error = NULL;
        FILE *out = open_memstream (&error, &size);
        //  With sandbox.user the agents read the snapshot as another user (on a reload,
        //  already confined): its group may read it, nobody else.
        if (mesh_config_snapshot (cfg, runtime) != 0
            || (group != (gid_t) -1 && (lchown (cfg->snapshot, (uid_t) -1, group) != 0
                                        || chmod (cfg->snapshot, 0640) != 0)))
            fprintf (out, "%s: its snapshot cannot be written to %s (see the log)\n", path,
                     runtime);
        else
            records = mesh_reload_rules_records (cfg, event, group, out);
        fclose (out);
        problems = records ? 0 : 1;
    }
    json_t *result;
    if (problems)
        result = json_pack ("{sb ss}", "ok", 0, "error",
                            error && *error ? error : "cannot be checked");
    else
        result = json_pack ("{sb so ss ss so}", "ok", 1, "plan", plan ? plan : json_null (),
                            "sha256", cfg->sha256, "snapshot", cfg->snapshot, "records",
                            records);
    if (problems)
        json_decref (plan);
    free (error);
    mesh_config_destroy (&cfg);
    return result;
}

mesh_reload_job_t *
mesh_reload_job_start (const char *path, json_t *old_tree, const char *event,
                       const char *runtime, gid_t group)
{
    int fds[2];
    if (pipe2 (fds, O_CLOEXEC) != 0) {
        mesh_err ("cannot check the config: pipe: %s", strerror (errno));
        return NULL;
    }
    pid_t pid = fork ();
    if (pid < 0) {
        mesh_err ("cannot check the config: fork: %s", strerror (errno));
        close (fds[0]);
        close (fds[1]);
        return NULL;
    }
    if (pid == 0) {
        //  The child: bounded in memory and CPU as well as by the parent's clock.
        close (fds[0]);
        signal (SIGTERM, SIG_DFL);
        signal (SIGHUP, SIG_DFL);
        signal (SIGINT, SIG_DFL);
#if !defined (__SANITIZE_ADDRESS__)
        struct rlimit as = {MESH_RELOAD_CHECK_AS, MESH_RELOAD_CHECK_AS};
        setrlimit (RLIMIT_AS, &as);
#endif
        rlim_t cpu = MESH_RELOAD_CHECK_MS / 1000 + 1;
        struct rlimit cpu_limit = {cpu, cpu};
        setrlimit (RLIMIT_CPU, &cpu_limit);
        json_t *result = s_job_work (path, old_tree, event, runtime, group);
        char *text = result ? json_dumps (result, JSON_COMPACT) : NULL;
        int rc = 1;
        if (text) {
            size_t len = strlen (text), done = 0;
            while (done < len) {
                ssize_t n = write (fds[1], text + done, len - done);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    break;
                done += (size_t) n;
            }
            rc = done == len ? 0 : 1;
        }
        _exit (rc);
    }
    close (fds[1]);
    fcntl (fds[0], F_SETFL, O_NONBLOCK);
    mesh_reload_job_t *self = calloc (1, sizeof *self);
    if (!self) {
        kill (pid, SIGKILL);
        waitpid (pid, NULL, 0);
        close (fds[0]);
        return NULL;
    }
    self->pid = pid;
    self->fd = fds[0];
    self->deadline_ms = zclock_mono () + MESH_RELOAD_CHECK_MS;
    return self;
}

//  Read what the pipe has; true at end of file (or an error).
static bool
s_job_read (mesh_reload_job_t *self)
{
    while (self->fd >= 0) {
        if (self->room - self->size < 4096) {
            size_t room = self->room ? self->room * 2 : 65536;
            char *text = realloc (self->text, room + 1);
            if (!text)
                return true;
            self->text = text;
            self->room = room;
        }
        ssize_t n = read (self->fd, self->text + self->size, self->room - self->size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return false;
        if (n <= 0) {
            close (self->fd);
            self->fd = -1;
            return true;
        }
        self->size += (size_t) n;
    }
    return true;
}

json_t *
mesh_reload_job_poll (mesh_reload_job_t *self)
{
    assert (self);
    if (!self->pid)
        return NULL;
    bool eof = s_job_read (self);
    if (!eof && zclock_mono () > self->deadline_ms && !self->killed) {
        kill (self->pid, SIGKILL);
        self->killed = true;
    }
    int status = 0;
    pid_t done = waitpid (self->pid, &status, eof || self->killed ? 0 : WNOHANG);
    if (done == 0 || (done < 0 && errno == EINTR))
        return NULL;
    //  ECHILD: the supervisor's reaper (waitpid (-1)) took it first; the pipe then
    //  tells whether it finished.
    if (done < 0) {
        if (!eof && !self->killed)
            return NULL;
        status = 0;
    }
    self->pid = 0;
    s_job_read (self);
    json_t *result = NULL;
    if (self->killed) {
        char *msg = zsys_sprintf ("checking the config and rules took longer than %d ms and "
                                  "was stopped (a rule's top level too slow?)",
                                  MESH_RELOAD_CHECK_MS);
        result = json_pack ("{sb ss}", "ok", 0, "error", msg);
        zstr_free (&msg);
    }
    else
    if (WIFSIGNALED (status)) {
        char *msg = zsys_sprintf ("checking the config and rules crashed (signal %d); the "
                                  "running config stays in force", WTERMSIG (status));
        result = json_pack ("{sb ss}", "ok", 0, "error", msg);
        zstr_free (&msg);
    }
    else
    if (self->text) {
        self->text [self->size] = 0;
        result = json_loads (self->text, 0, NULL);
    }
    if (!json_is_object (result)) {
        json_decref (result);
        result = json_pack ("{sb ss}", "ok", 0, "error", "checking the config and rules "
                            "failed without a result");
    }
    return result;
}

json_t *
mesh_reload_job_wait (mesh_reload_job_t *self)
{
    assert (self);
    while (true) {
        json_t *result = mesh_reload_job_poll (self);
        if (result || !self->pid)
            return result;
        struct pollfd p = {.fd = self->fd, .events = POLLIN};
        poll (&p, self->fd >= 0 ? 1 : 0, 50);
    }
}

void
mesh_reload_job_destroy (mesh_reload_job_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mesh_reload_job_t *self = *self_p;
    if (self->pid) {
        kill (self->pid, SIGKILL);
        waitpid (self->pid, NULL, 0);
    }
    if (self->fd >= 0)
        close (self->fd);
    free (self->text);
    free (self);
    *self_p = NULL;
}
