/*  agent_user - meshd prepares the host for agents that run under another uid.
 *
 *  With sandbox.user set, each agent switches to that account right after reading its
 *  config (agents/confine.c).  The point: the ledger's MAC key (<state_dir>/ledger.key,
 *  0600) and the decision log (0640) belong to meshd's uid, so a compromised agent can
 *  neither forge a MAC nor write the log, with or without Landlock.  For that to work,
 *  meshd (root) does three things before an agent starts, and no more:
 *
 *  1. It checks, at --check-config and at start, that the account exists, is not root,
 *     and that meshd is root (only root can switch); then that the agent, holding that
 *     uid and one gid and no supplementary groups, can search runtime_dir and state_dir
 *     and read every file it opens.  The check is done for real: a child process takes
 *     the agent's identity and calls access (2) on every prefix of every path, so the
 *     message names the very directory that stops it.  meshd never changes the mode of
 *     an operator's directory to make it pass: it says what to change.
 *  2. <state_dir>/incidents, the only place the agents write, is made the account's, 0700,
 *     through a descriptor opened with O_NOFOLLOW (a symlink there is refused, not
 *     followed).  One owned by a third uid is refused: someone else put it there.
 *  3. agents.ipc is given to the account's uid (0600), so the agents can connect and no
 *     other unprivileged user can; control.ipc stays root's.
 *
 *  What the agents' uid cannot do afterwards: read ledger.key, open the decision log for
 *  writing, write anything in state_dir but incidents/ (state_dir is root's, not writable
 *  by group or others: main.c refuses anything else).
 */
#include "agent_user.h"
#include "log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct _mesh_agent_user_t {
    char *name;
    uid_t uid;
    gid_t gid;
};

int
mesh_agent_user_new (const mesh_config_t *cfg, mesh_agent_user_t **self_p, FILE *out)
{
    assert (cfg && self_p);
    *self_p = NULL;
    const mesh_sandbox_config_t *sb = &cfg->sandbox;
    if (!sb->user)
        return 0;
    int problems = 0;
    if (geteuid () != 0) {
        fprintf (out, "%s: sandbox.user: switching the agents to user '%s' needs meshd to run "
                      "as root, and it runs as uid %d; run meshd as root, or remove "
                      "sandbox.user (the agents then run as meshd's user)\n",
                 cfg->path, sb->user, (int) geteuid ());
        problems++;
    }
    errno = 0;
    struct passwd *pw = getpwnam (sb->user);
    uid_t uid = pw ? pw->pw_uid : 0;
    gid_t gid = pw ? pw->pw_gid : 0;
    if (!pw) {
        fprintf (out, "%s: sandbox.user: no user '%s' on this system%s%s; create it (for "
                      "example with systemd-sysusers) or name an existing one\n",
                 cfg->path, sb->user, errno ? ": " : "", errno ? strerror (errno) : "");
        problems++;
    }
    else
    if (uid == 0) {
        fprintf (out, "%s: sandbox.user: '%s' has uid 0 (root); name an unprivileged user\n",
                 cfg->path, sb->user);
        problems++;
    }
    if (sb->group) {
        errno = 0;
        struct group *gr = getgrnam (sb->group);
        if (!gr) {
            fprintf (out, "%s: sandbox.group: no group '%s' on this system; create it or name "
                          "an existing one\n", cfg->path, sb->group);
            problems++;
        }
        else
        if (gr->gr_gid == 0) {
            fprintf (out, "%s: sandbox.group: '%s' has gid 0 (root's group, which can read "
                          "meshd's files); name an unprivileged group\n", cfg->path, sb->group);
            problems++;
        }
        else
            gid = gr->gr_gid;
    }
    else
    if (pw && gid == 0 && uid != 0) {
        fprintf (out, "%s: sandbox.user: the primary group of '%s' is gid 0 (root's group); "
                      "set sandbox.group to an unprivileged group\n", cfg->path, sb->user);
        problems++;
    }
    if (problems)
        return problems;
    mesh_agent_user_t *self = calloc (1, sizeof *self);
    self->name = strdup (sb->user);
    self->uid = uid;
    self->gid = gid;
    *self_p = self;
    return 0;
}

void
mesh_agent_user_destroy (mesh_agent_user_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->name);
    free (*self_p);
    *self_p = NULL;
}

uid_t
mesh_agent_user_uid (const mesh_agent_user_t *self)
{
    assert (self);
    return self->uid;
}

gid_t
mesh_agent_user_gid (const mesh_agent_user_t *self)
{
    assert (self);
    return self->gid;
}

//  --- 1. access, checked as the agent ------------------------------------------------

//  What the child found for one path: AT is the length of the prefix that stopped it
//  (the path's length: the path itself; -1: the child could not take the identity), ERR
//  its errno, 0 when the agent gets through.
typedef struct {
    int at, err;
} s_verdict_t;

//  In the child only: system calls and no allocation (the parent may have threads).
static s_verdict_t
s_walk_as_agent (const char *path, int mode, bool may_be_missing)
{
    s_verdict_t v = {0, 0};
    char prefix[PATH_MAX];
    size_t len = strlen (path);
    if (len >= sizeof prefix) {
        v.at = (int) len;
        v.err = ENAMETOOLONG;
        return v;
    }
    for (size_t i = 1; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        memcpy (prefix, path, i);
        prefix[i] = 0;
        int want = i == len ? mode : X_OK;
        if (access (prefix, want) == 0)
            continue;
        if (errno == ENOENT && may_be_missing)
            return v;
        v.at = (int) i;
        v.err = errno;
        return v;
    }
    return v;
}

static s_verdict_t
s_check_as_agent (const mesh_agent_user_t *self, const char *path, int mode,
                  bool may_be_missing)
{
    s_verdict_t v = {-1, 0};
    int pipefd[2];
    if (pipe2 (pipefd, O_CLOEXEC) != 0) {
        v.err = errno;
        return v;
    }
    pid_t pid = fork ();
    if (pid == 0) {
        close (pipefd[0]);
        s_verdict_t child = {-1, 0};
        if (setgroups (0, NULL) != 0 || setresgid (self->gid, self->gid, self->gid) != 0
            || setresuid (self->uid, self->uid, self->uid) != 0)
            child.err = errno;
        else
            child = s_walk_as_agent (path, mode, may_be_missing);
        ssize_t n = write (pipefd[1], &child, sizeof child);
        _exit (n == (ssize_t) sizeof child ? 0 : 1);
    }
    close (pipefd[1]);
    if (pid < 0) {
        v.err = errno;
        close (pipefd[0]);
        return v;
    }
    ssize_t n;
    do
        n = read (pipefd[0], &v, sizeof v);
    while (n < 0 && errno == EINTR);
    close (pipefd[0]);
    int status;
    while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (n != (ssize_t) sizeof v) {
        v.at = -1;
        v.err = EIO;
    }
    return v;
}

//  PATH made absolute against the working directory (the agent opens it from anywhere).
//  0, or -1 when it does not fit.
static int
s_absolute (const char *path, char *out, size_t size)
{
    char cwd[PATH_MAX];
    bool relative = path[0] != '/' && getcwd (cwd, sizeof cwd);
    size_t need = (relative ? strlen (cwd) + 1 : 0) + strlen (path) + 1;
    if (need > size)
        return -1;
    out[0] = 0;
    if (relative) {
        strcat (out, cwd);
        strcat (out, "/");
    }
    strcat (out, path);
    return 0;
}

//  Check one path; print a problem to OUT (WHERE: the config position, WHAT: which key).
static int
s_check (const mesh_agent_user_t *self, FILE *out, const char *where, const char *what,
         const char *given, bool is_dir, bool may_be_missing)
{
    if (!given)
        return 0;
    char path[PATH_MAX];
    if (s_absolute (given, path, sizeof path) != 0) {
        fprintf (out, "%s: sandbox.user: %s %s: path too long to check; use a shorter one\n",
                 where, what, given);
        return 1;
    }
    s_verdict_t v = s_check_as_agent (self, path, is_dir ? X_OK : R_OK, may_be_missing);
    if (v.err == 0)
        return 0;
    if (v.at < 0) {
        fprintf (out, "%s: sandbox.user: cannot check %s %s as user '%s': %s\n", where, what,
                 path, self->name, strerror (v.err));
        return 1;
    }
    bool itself = (size_t) v.at >= strlen (path);
    char stop[PATH_MAX];
    snprintf (stop, sizeof stop, "%.*s", v.at, path);
    struct stat st;
    char seen[96] = "";
    if (stat (stop, &st) == 0)
        snprintf (seen, sizeof seen, " (mode %04o, owner uid %d gid %d)",
                  (unsigned) (st.st_mode & 07777), (int) st.st_uid, (int) st.st_gid);
    bool search = !itself || is_dir;
    if (itself)
        fprintf (out, "%s: sandbox.user: the agents' user '%s' (uid %d, gid %d, no other "
                      "groups) cannot %s %s %s%s: %s; ", where, self->name, (int) self->uid,
                 (int) self->gid, search ? "search" : "read", what, path, seen,
                 strerror (v.err));
    else
        fprintf (out, "%s: sandbox.user: the agents' user '%s' (uid %d, gid %d, no other "
                      "groups) cannot search %s%s, on the way to %s %s: %s; ", where,
                 self->name, (int) self->uid, (int) self->gid, stop, seen, what, path,
                 strerror (v.err));
    fprintf (out, "give it access, for example: chgrp %d %s && chmod g+%s %s\n",
             (int) self->gid, stop, search ? "x" : "r", stop);
    return 1;
}

int
mesh_agent_user_check_access (const mesh_agent_user_t *self, const mesh_config_t *cfg,
                              FILE *out)
{
    assert (self && cfg);
    const char *at = cfg->path;
    int problems = 0;
    problems += s_check (self, out, at, "daemon.runtime_dir", cfg->runtime_dir, true, true);
    int state = s_check (self, out, at, "daemon.state_dir", cfg->state_dir, true, true);
    problems += state;
    problems += s_check (self, out, at, "the config file", cfg->path, false, false);
    for (size_t i = 0; i < cfg->global_rule_count + cfg->agent_count; i++) {
        char **rules;
        mesh_config_pos_t *pos;
        size_t count;
        if (i < cfg->global_rule_count)
            rules = cfg->global_rules + i, pos = cfg->global_rule_pos + i, count = 1;
        else {
            const mesh_agent_config_t *a = &cfg->agents[i - cfg->global_rule_count];
            rules = a->rules, pos = a->rule_pos, count = a->rule_count;
        }
        for (size_t r = 0; r < count; r++) {
            char where[PATH_MAX + 32];
            snprintf (where, sizeof where, "%s:%d:%d", cfg->path, pos ? pos[r].line : 0,
                      pos ? pos[r].col : 0);
            problems += s_check (self, out, where, "the rule file", rules[r], false, false);
        }
    }
    for (size_t i = 0; i < cfg->backend_count; i++) {
        const mesh_backend_config_t *b = &cfg->backends[i];
        char what[256];
        snprintf (what, sizeof what, "backends.%s.file", b->name);
        problems += s_check (self, out, at, what, b->file, false, false);
        snprintf (what, sizeof what, "backends.%s.api_key_file", b->name);
        problems += s_check (self, out, at, what, b->api_key_file, false, false);
    }
    const mesh_kafka_security_t *k = &cfg->kafka_security;
    const struct {
        const char *key, *path;
    } kafka[] = {{"kafka.security.ssl.ca_file", k->ca_file},
                 {"kafka.security.ssl.cert_file", k->cert_file},
                 {"kafka.security.ssl.key_file", k->key_file},
                 {"kafka.security.ssl.key_password_file", k->key_password_file},
                 {"kafka.security.sasl.password_file", k->password_file},
                 {"kafka.security.sasl.client_secret_file", k->client_secret_file}};
    for (size_t i = 0; i < sizeof kafka / sizeof kafka[0]; i++)
        problems += s_check (self, out, at, kafka[i].key, kafka[i].path, false, false);
    char silences[PATH_MAX];
    snprintf (silences, sizeof silences, "%s/silences.json", cfg->state_dir);
    if (!state)                         //  else said already
        problems += s_check (self, out, at, "the silences file", silences, false, true);
    return problems;
}

//  --- 2. the incidents directory -----------------------------------------------------

//  Root's state files in DIR_FD (a directory that was root's and not writable by anyone
//  else, so nobody else put them there): regular files with one link go to the account.
static int
s_adopt_files (const mesh_agent_user_t *self, int dir_fd, const char *dir)
{
    int copy = dup (dir_fd);
    DIR *d = copy >= 0 ? fdopendir (copy) : NULL;
    if (!d) {
        if (copy >= 0)
            close (copy);
        mesh_err ("sandbox.user: cannot list %s: %s", dir, strerror (errno));
        return -1;
    }
    int adopted = 0, rc = 0;
    struct dirent *entry;
    while ((entry = readdir (d))) {
        if (!strcmp (entry->d_name, ".") || !strcmp (entry->d_name, ".."))
            continue;
        int fd = openat (dir_fd, entry->d_name,
                         O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat (fd, &st) != 0 || !S_ISREG (st.st_mode) || st.st_nlink != 1
            || st.st_uid != 0) {
            if (fd >= 0)
                close (fd);
            continue;                   //  not one of root's state files: left as it is
        }
        if (fchown (fd, self->uid, self->gid) != 0) {
            mesh_err ("sandbox.user: cannot chown %s/%s to %d:%d: %s", dir, entry->d_name,
                      (int) self->uid, (int) self->gid, strerror (errno));
            rc = -1;
        }
        else
            adopted++;
        close (fd);
    }
    closedir (d);
    if (adopted)
        mesh_notice ("sandbox.user: %d state file(s) in %s given to user '%s'", adopted, dir,
                     self->name);
    return rc;
}

int
mesh_agent_user_prepare_state (const mesh_agent_user_t *self, const char *state_dir)
{
    assert (self && state_dir);
    char dir[PATH_MAX];
    snprintf (dir, sizeof dir, "%s/incidents", state_dir);
    int state_fd = open (state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (state_fd < 0) {
        mesh_err ("sandbox.user: cannot open daemon.state_dir %s: %s", state_dir,
                  strerror (errno));
        return -1;
    }
    if (mkdirat (state_fd, "incidents", 0700) != 0 && errno != EEXIST) {
        mesh_err ("sandbox.user: cannot create %s: %s", dir, strerror (errno));
        close (state_fd);
        return -1;
    }
    int fd = openat (state_fd, "incidents", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    close (state_fd);
    if (fd < 0) {
        if (err == ELOOP || err == ENOTDIR)
            mesh_err ("sandbox.user: %s exists and is not a directory (a symbolic link or a "
                      "file): meshd does not follow it; remove it and start meshd again", dir);
        else
            mesh_err ("sandbox.user: cannot open %s: %s", dir, strerror (err));
        return -1;
    }
    struct stat st;
    int rc = fstat (fd, &st) == 0 ? 0 : -1;
    if (rc != 0)
        mesh_err ("sandbox.user: cannot inspect %s: %s", dir, strerror (errno));
    else
    if (st.st_uid != 0 && st.st_uid != self->uid) {
        mesh_err ("sandbox.user: %s is owned by uid %d, neither root nor the agents' user "
                  "'%s' (uid %d), so someone else may have put its contents there; inspect "
                  "it, then chown -R %d:%d %s or remove it", dir, (int) st.st_uid, self->name,
                  (int) self->uid, (int) self->uid, (int) self->gid, dir);
        rc = -1;
    }
    else
    if (st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IWOTH))) {
        mesh_err ("sandbox.user: %s is root's but writable by group or others (mode %04o), "
                  "so its contents cannot be trusted; inspect it, then chmod go-w %s", dir,
                  (unsigned) (st.st_mode & 07777), dir);
        rc = -1;
    }
    bool from_root = rc == 0 && st.st_uid == 0;
    if (rc == 0 && (fchown (fd, self->uid, self->gid) != 0 || fchmod (fd, 0700) != 0)) {
        mesh_err ("sandbox.user: cannot give %s to %d:%d (mode 0700): %s", dir,
                  (int) self->uid, (int) self->gid, strerror (errno));
        rc = -1;
    }
    if (rc == 0 && from_root)
        rc = s_adopt_files (self, fd, dir);
    close (fd);
    return rc;
}

//  --- 3. the agents' socket ---------------------------------------------------------

int
mesh_agent_user_own_socket (const mesh_agent_user_t *self, const char *path)
{
    assert (self && path);
    if (fchownat (AT_FDCWD, path, self->uid, (gid_t) -1, AT_SYMLINK_NOFOLLOW) != 0
        || fchmodat (AT_FDCWD, path, 0600, 0) != 0) {
        mesh_err ("sandbox.user: cannot give %s to uid %d (mode 0600): %s", path,
                  (int) self->uid, strerror (errno));
        return -1;
    }
    return 0;
}
