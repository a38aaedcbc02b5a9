/*  exec - run an exec action's program: argv from a fixed template, no shell, a clean
 *  child, bounded in time and output.
 *  Data path: event -> detect -> incident -> reason -> gate -> [act] -> record.
 *
 *  An exec action is the one place where a model's proposal reaches a program on the
 *  host, so the shape of what runs is the operator's, fixed in the config: the program
 *  (an absolute path no one else may change), the argv template, the environment, the
 *  directory, the user and the limits.  The model supplies values only, the gates have
 *  checked them against their declared types and patterns, and each value lands inside
 *  one argument: there is no shell to split, expand or redirect it, and no PATH to look
 *  the program up in.  What is left to refuse here is what a pattern could miss: a NUL
 *  (which would cut an argument short), a value that would be read as an option (an
 *  argument that starts with the value's '-', unless the param says allow_dash), and
 *  sizes the kernel would refuse.
 *
 *  The run is shaped like a careful init system's spawn (systemd's exec-util, s6's
 *  child_spawn): everything is prepared in the parent (envp, the user's groups, the
 *  limits, the descriptors), because between fork and execve a child of a threaded
 *  process may only make async-signal-safe calls (no malloc, no NSS, no stdio).  The
 *  child gets its own session, so one kill (-pgid) reaches whatever it starts; a
 *  descriptor table of exactly stdin, stdout and stderr; default signal dispositions;
 *  limits; no_new_privs; and dies with its parent.  Any failing step is reported on the
 *  child's stderr (which the parent captures) and ends it with 126, as a shell does for
 *  a program it cannot execute.
 *
 *  The parent multiplexes with poll: both output pipes (bounded capture, the rest
 *  counted), the stdin pipe (non-blocking writes, SIGPIPE blocked), and the child's
 *  pidfd, which says when it exits even while something it started still holds the
 *  pipes.  The child is reaped the moment it exits (waitid on its pid): meshd's
 *  supervisor reaps with waitpid (-1), and the sooner we take the status the less can
 *  go astray.  What it left in its process group is sent SIGKILL when the run ends; the
 *  group's id stays the group's while it has a member, so that kill cannot reach a
 *  stranger.  Time is the monotonic clock.
 */
#include "exec.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#define S_EXIT_SPAWN        126         //  the child could not become the program
#define S_READ_CHUNK        65536
#define S_ARG_SHOWN         4096        //  bytes of one argument in the outcome
#define S_NAME_MAX          64          //  a param name

//  --------------------------------------------------------------------------
//  argv from the template

typedef struct {
    char *data;
    size_t length, alloc;
} s_buf_t;

//  Append; -1 out of memory.  The caller keeps LENGTH below MESH_EXEC_ARG_MAX.
static int
s_buf_add (s_buf_t *buf, const char *bytes, size_t length)
{
    if (buf->length + length + 1 > buf->alloc) {
        size_t alloc = buf->alloc ? buf->alloc : 64;
        while (alloc < buf->length + length + 1)
            alloc *= 2;
        char *data = realloc (buf->data, alloc);
        if (!data)
            return -1;
        buf->data = data;
        buf->alloc = alloc;
    }
    memcpy (buf->data + buf->length, bytes, length);
    buf->length += length;
    buf->data [buf->length] = 0;
    return 0;
}

//  VALUE as the text of an argument: *TEXT_P points into VALUE or into SCRATCH.  0, or
//  -1 (not a string, number or boolean), -2 (holds a NUL byte).
static int
s_value_text (json_t *value, char *scratch, size_t size, const char **text_p, size_t *length_p)
{
    if (json_is_string (value)) {
        *text_p = json_string_value (value);
        *length_p = json_string_length (value);
        return memchr (*text_p, 0, *length_p) ? -2 : 0;
    }
    if (json_is_integer (value))
        snprintf (scratch, size, "%" JSON_INTEGER_FORMAT, json_integer_value (value));
    else
    if (json_is_real (value))
        snprintf (scratch, size, "%.17g", json_real_value (value));
    else
    if (json_is_boolean (value))
        snprintf (scratch, size, "%s", json_is_true (value) ? "true" : "false");
    else
        return -1;
    *text_p = scratch;
    *length_p = strlen (scratch);
    return 0;
}

static const mesh_param_spec_t *
s_param (const mesh_action_spec_t *spec, const char *name)
{
    for (size_t i = 0; i < spec->param_count; i++)
        if (spec->params [i].name && !strcmp (spec->params [i].name, name))
            return &spec->params [i];
    return NULL;
}

//  Element INDEX of the template into BUF; 0, or -1 with WHY.
static int
s_element (const mesh_action_spec_t *spec, size_t index, json_t *params, s_buf_t *buf,
           char *why, size_t size)
{
    const char *p = spec->exec.argv [index];
    char scratch [64];
    while (*p) {
        const char *literal = NULL;
        size_t length = 0;
        if ((p [0] == '{' && p [1] == '{') || (p [0] == '}' && p [1] == '}')) {
            literal = p;
            length = 1;
            p += 2;
        }
        else
        if (*p != '{' && *p != '}') {
            literal = p;
            length = strcspn (p, "{}");
            p += length;
        }
        if (literal) {
            if (buf->length + length >= MESH_EXEC_ARG_MAX) {
                snprintf (why, size, "argument %zu would be %d bytes or more (the most one "
                          "argument may be is %d)", index + 1, MESH_EXEC_ARG_MAX,
                          MESH_EXEC_ARG_MAX - 1);
                return -1;
            }
            if (s_buf_add (buf, literal, length)) {
                snprintf (why, size, "out of memory");
                return -1;
            }
            continue;
        }
        //  {name}
        const char *name = p + 1;
        size_t name_length = strspn (name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789_");
        if (*p == '}' || name_length == 0 || name_length > S_NAME_MAX
        ||  name [name_length] != '}') {
            snprintf (why, size, "argv template element %zu is not well formed (a brace that "
                      "is not {param}, {{ or }})", index + 1);
            return -1;
        }
        char key [S_NAME_MAX + 1];
        memcpy (key, name, name_length);
        key [name_length] = 0;
        p = name + name_length + 1;
        const mesh_param_spec_t *param = s_param (spec, key);
        if (!param) {
            snprintf (why, size, "argv template element %zu names {%s}, which is not a "
                      "declared param", index + 1, key);
            return -1;
        }
        json_t *value = params ? json_object_get (params, key) : NULL;
        if (!value || json_is_null (value)) {
            snprintf (why, size, "param %s is missing, and argument %zu needs it", key,
                      index + 1);
            return -1;
        }
        const char *text;
        size_t text_length;
        int rc = s_value_text (value, scratch, sizeof scratch, &text, &text_length);
        if (rc == -1) {
            snprintf (why, size, "param %s is not a string, number or boolean", key);
            return -1;
        }
        if (rc == -2) {
            snprintf (why, size, "param %s holds a NUL byte, which would cut argument %zu "
                      "short", key, index + 1);
            return -1;
        }
        if (buf->length == 0 && text_length && text [0] == '-' && !param->allow_dash) {
            snprintf (why, size, "param %s would start argument %zu with '-', so the program "
                      "would read it as an option; declare allow_dash: true for the param if "
                      "that is meant", key, index + 1);
            return -1;
        }
        if (buf->length + text_length >= MESH_EXEC_ARG_MAX) {
            snprintf (why, size, "param %s would make argument %zu %zu bytes or more (the most "
                      "one argument may be is %d)", key, index + 1, buf->length + text_length,
                      MESH_EXEC_ARG_MAX - 1);
            return -1;
        }
        if (s_buf_add (buf, text, text_length)) {
            snprintf (why, size, "out of memory");
            return -1;
        }
    }
    return 0;
}

int
mesh_exec_argv (const mesh_action_spec_t *spec, json_t *params, char ***argv_p, char *why,
                size_t size)
{
    assert (spec);
    assert (argv_p);
    *argv_p = NULL;
    const mesh_action_exec_t *exec = &spec->exec;
    if (!exec->program || exec->program [0] != '/') {
        snprintf (why, size, "the action has no absolute program path");
        return -1;
    }
    char **argv = calloc (exec->argc + 2, sizeof *argv);
    if (!argv || !(argv [0] = strdup (exec->program))) {
        free (argv);
        snprintf (why, size, "out of memory");
        return -1;
    }
    size_t total = strlen (argv [0]) + 1;
    for (size_t i = 0; i < exec->argc; i++) {
        s_buf_t buf = { NULL, 0, 0 };
        int rc = s_element (spec, i, params, &buf, why, size);
        if (rc == 0 && !buf.data && s_buf_add (&buf, "", 0)) {
            snprintf (why, size, "out of memory");
            rc = -1;
        }
        if (rc == 0 && total + buf.length + 1 > MESH_EXEC_ARGV_MAX) {
            snprintf (why, size, "the arguments would be more than %d bytes in all (argument "
                      "%zu reaches %zu)", MESH_EXEC_ARGV_MAX, i + 1, total + buf.length + 1);
            rc = -1;
        }
        if (rc != 0) {
            free (buf.data);
            mesh_exec_argv_free (argv);
            return -1;
        }
        total += buf.length + 1;
        argv [i + 1] = buf.data;
    }
    *argv_p = argv;
    return 0;
}

void
mesh_exec_argv_free (char **argv)
{
    for (size_t i = 0; argv && argv [i]; i++)
        free (argv [i]);
    free (argv);
}

//  --------------------------------------------------------------------------
//  What the child needs, prepared before the fork

typedef struct {
    const char *program;
    char **argv;
    char **envp;                        //  owned
    const char *cwd;
    const char *user;                   //  for messages
    bool switch_user;
    uid_t uid;
    gid_t gid;
    gid_t *groups;                      //  owned
    int group_count;
    struct rlimit cpu, as, nofile, nproc, core;
    bool set_cpu, set_as, set_nofile, set_nproc;
    int in_fd, out_fd, err_fd;          //  the child's ends
    int max_fd;                         //  for closing by hand when close_range cannot
    pid_t parent;
    sigset_t none;
} s_plan_t;

static void
s_plan_free (s_plan_t *plan)
{
    for (size_t i = 0; plan->envp && plan->envp [i]; i++)
        free (plan->envp [i]);
    free (plan->envp);
    free (plan->groups);
}

//  The environment: the config's list, resolved against ours, and meshd's own variables.
static char **
s_envp (const mesh_action_spec_t *spec, const char *decision_id, const char *agent)
{
    const mesh_action_exec_t *exec = &spec->exec;
    char **envp = calloc (exec->env_count + 4, sizeof *envp);
    size_t used = 0;
    bool ok = envp != NULL;
    for (size_t i = 0; ok && i < exec->env_count; i++) {
        const char *entry = exec->env [i];
        if (strchr (entry, '=')) {
            ok = (envp [used++] = strdup (entry)) != NULL;
            continue;
        }
        const char *value = getenv (entry);
        if (value)
            ok = asprintf (&envp [used++], "%s=%s", entry, value) >= 0;
    }
    const char *names [] = { "MESH_DECISION_ID", "MESH_ACTION", "MESH_AGENT" };
    const char *values [] = { decision_id, spec->name, agent };
    for (size_t i = 0; ok && i < 3; i++)
        if (values [i])
            ok = asprintf (&envp [used++], "%s=%s", names [i], values [i]) >= 0;
    if (!ok && envp) {
        if (used)
            envp [used - 1] = NULL;     //  the failed asprintf left it undefined
        for (size_t i = 0; envp [i]; i++)
            free (envp [i]);
        free (envp);
        return NULL;
    }
    return envp;
}

//  LIMIT as the configured value, never above our own hard limit (raising it would need
//  privilege, and a limit above ours means nothing).  HEADROOM is added to the hard one.
static void
s_limit (int resource, long value, rlim_t headroom, struct rlimit *limit)
{
    struct rlimit ours;
    if (getrlimit (resource, &ours) != 0)
        ours.rlim_max = RLIM_INFINITY;
    rlim_t soft = (rlim_t) value, hard = soft + headroom;
    if (ours.rlim_max != RLIM_INFINITY) {
        soft = soft < ours.rlim_max ? soft : ours.rlim_max;
        hard = hard < ours.rlim_max ? hard : ours.rlim_max;
    }
    limit->rlim_cur = soft;
    limit->rlim_max = hard;
}

//  The user and group to switch to: 0, or -1 with WHY.
static int
s_identity (const mesh_action_exec_t *exec, s_plan_t *plan, char *why, size_t size)
{
    long buf_size = sysconf (_SC_GETPW_R_SIZE_MAX);
    long gr_size = sysconf (_SC_GETGR_R_SIZE_MAX);
    size_t length = (size_t) (buf_size > 16384 ? buf_size : 16384);
    if (gr_size > 0 && (size_t) gr_size > length)
        length = (size_t) gr_size;
    char *buf = malloc (length);
    if (!buf) {
        snprintf (why, size, "out of memory");
        return -1;
    }
    int rc = -1;
    struct passwd pw, *found_pw = NULL;
    int error = getpwnam_r (exec->user, &pw, buf, length, &found_pw);
    if (!found_pw) {
        snprintf (why, size, "user %s: %s", exec->user,
                  error ? strerror (error) : "no such user");
        goto done;
    }
    plan->uid = pw.pw_uid;
    plan->gid = pw.pw_gid;
    if (exec->group) {
        struct group gr, *found_gr = NULL;
        char *gbuf = malloc (length);
        error = gbuf ? getgrnam_r (exec->group, &gr, gbuf, length, &found_gr) : ENOMEM;
        if (found_gr)
            plan->gid = gr.gr_gid;
        free (gbuf);
        if (!found_gr) {
            snprintf (why, size, "group %s: %s", exec->group,
                      error ? strerror (error) : "no such group");
            goto done;
        }
    }
    //  The user's supplementary groups, as initgroups would set them (that reads the
    //  group database, which a child must not do between fork and execve).
    int count = 32;
    for (int attempt = 0; attempt < 4; attempt++) {
        gid_t *groups = realloc (plan->groups, (size_t) count * sizeof *groups);
        if (!groups) {
            snprintf (why, size, "out of memory");
            goto done;
        }
        plan->groups = groups;
        int wanted = count;
        if (getgrouplist (exec->user, plan->gid, groups, &wanted) >= 0) {
            plan->group_count = wanted;
            break;
        }
        count = wanted > count ? wanted : count * 2;
    }
    if (!plan->group_count) {
        snprintf (why, size, "user %s: cannot list its groups", exec->user);
        goto done;
    }
    //  Already that user (a test, or meshd itself running as it): nothing to switch.
    plan->switch_user = !(plan->uid == geteuid () && plan->uid == getuid ()
                          && plan->gid == getegid () && plan->gid == getgid ()
                          && geteuid () != 0);
    if (plan->switch_user && geteuid () != 0) {
        snprintf (why, size, "running the program as user %s needs meshd to run as root "
                  "(it runs as uid %u)", exec->user, (unsigned) geteuid ());
        goto done;
    }
    rc = 0;
done:
    free (buf);
    return rc;
}

//  --------------------------------------------------------------------------
//  The child, between fork and execve: async-signal-safe calls only

static void
s_say (int fd, const char *text)
{
    size_t length = strlen (text);
    while (length) {
        ssize_t n = write (fd, text, length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        text += n;
        length -= (size_t) n;
    }
}

//  "meshd: WHAT WHO: <errno>" on FD, and exit 126.
static void __attribute__ ((noreturn))
s_die (int fd, const char *what, const char *who, int error)
{
    const char *text = strerrordesc_np (error);
    s_say (fd, "meshd: ");
    s_say (fd, what);
    if (who) {
        s_say (fd, " ");
        s_say (fd, who);
    }
    s_say (fd, ": ");
    s_say (fd, text ? text : "unknown error");
    s_say (fd, "\n");
    _exit (S_EXIT_SPAWN);
}

static void __attribute__ ((noreturn))
s_child (const s_plan_t *plan)
{
    //  Default dispositions while every signal is still blocked (the parent blocked them
    //  before the fork), so that none of meshd's handlers can run here.
    struct sigaction dfl;
    memset (&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset (&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction (sig, &dfl, NULL);   //  EINVAL for the C library's own: fine

    if (setsid () < 0)
        s_die (plan->err_fd, "cannot start a session", NULL, errno);

    //  Descriptors 0, 1, 2 and nothing else.  Each end is first moved above 2, so that
    //  no dup2 overwrites another end (any of them may be 0, 1 or 2 in the parent).
    int in = fcntl (plan->in_fd, F_DUPFD_CLOEXEC, 3);
    int out = fcntl (plan->out_fd, F_DUPFD_CLOEXEC, 3);
    int err = fcntl (plan->err_fd, F_DUPFD_CLOEXEC, 3);
    if (err < 0)
        s_die (plan->err_fd, "cannot set up stderr", NULL, errno);
    if (in < 0 || out < 0)
        s_die (err, "cannot set up stdin and stdout", NULL, errno);
    if (dup2 (err, 2) != 2)
        s_die (err, "cannot set up stderr", NULL, errno);
    if (dup2 (in, 0) != 0 || dup2 (out, 1) != 1)
        s_die (2, "cannot set up stdin and stdout", NULL, errno);
    if (close_range (3, ~0U, 0) != 0)
        for (int fd = 3; fd <= plan->max_fd; fd++)
            close (fd);

    if (chdir (plan->cwd) != 0)
        s_die (2, "cannot change directory to", plan->cwd, errno);
    if ((plan->set_cpu && setrlimit (RLIMIT_CPU, &plan->cpu) != 0)
    ||  (plan->set_as && setrlimit (RLIMIT_AS, &plan->as) != 0)
    ||  (plan->set_nofile && setrlimit (RLIMIT_NOFILE, &plan->nofile) != 0)
    ||  (plan->set_nproc && setrlimit (RLIMIT_NPROC, &plan->nproc) != 0)
    ||  setrlimit (RLIMIT_CORE, &plan->core) != 0)
        s_die (2, "cannot set the resource limits", NULL, errno);

    if (plan->switch_user) {
        if (setgroups ((size_t) plan->group_count, plan->groups) != 0)
            s_die (2, "cannot set the groups of user", plan->user, errno);
        if (setgid (plan->gid) != 0)
            s_die (2, "cannot set the group of user", plan->user, errno);
        if (setuid (plan->uid) != 0)
            s_die (2, "cannot become user", plan->user, errno);
        if (getuid () != plan->uid || geteuid () != plan->uid || getgid () != plan->gid
        ||  getegid () != plan->gid || (plan->uid != 0 && setuid (0) == 0))
            s_die (2, "did not fully become user", plan->user, EPERM);
    }
    //  After the switch: a change of credentials clears the parent-death signal.
    if (prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        s_die (2, "cannot set the parent-death signal", NULL, errno);
    if (getppid () != plan->parent)
        s_die (2, "meshd went away before", plan->program, ESRCH);
    if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        s_die (2, "cannot set no_new_privs", NULL, errno);

    sigprocmask (SIG_SETMASK, &plan->none, NULL);
    execve (plan->program, plan->argv, plan->envp);
    s_die (2, "cannot execute", plan->program, errno);
}

//  --------------------------------------------------------------------------
//  The parent: feed, read, time, reap

typedef struct {
    int fd;                             //  -1 once closed
    char *data;
    size_t length, total, cap, alloc;
} s_sink_t;

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_close (int *fd)
{
    if (*fd >= 0)
        close (*fd);
    *fd = -1;
}

//  Read what is there (up to 16 chunks, to stay fair to the other pipe); keep the first
//  cap bytes.  -1 out of memory.
static int
s_drain (s_sink_t *sink, char *chunk)
{
    for (int round = 0; round < 16 && sink->fd >= 0; round++) {
        ssize_t n = read (sink->fd, chunk, S_READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0) {
            s_close (&sink->fd);
            return 0;
        }
        sink->total += (size_t) n;
        size_t keep = sink->cap - sink->length;
        keep = keep < (size_t) n ? keep : (size_t) n;
        if (!keep)
            continue;
        if (sink->length + keep + 1 > sink->alloc) {
            size_t alloc = sink->alloc ? sink->alloc : 4096;
            while (alloc < sink->length + keep + 1)
                alloc *= 2;
            alloc = alloc < sink->cap + 1 ? alloc : sink->cap + 1;
            char *data = realloc (sink->data, alloc);
            if (!data)
                return -1;
            sink->data = data;
            sink->alloc = alloc;
        }
        memcpy (sink->data + sink->length, chunk, keep);
        sink->length += keep;
        sink->data [sink->length] = 0;
    }
    return 0;
}

static void
s_signal_group (pid_t pid, int sig)
{
    kill (-pid, sig);                   //  ESRCH before the child's setsid: then ...
    kill (pid, sig);                    //  ... the child itself
}

//  Make a pipe whose PARENT end (0 read, 1 write) is non-blocking; both close-on-exec.
static int
s_pipe (int fds [2], int parent)
{
    if (pipe2 (fds, O_CLOEXEC) != 0)
        return -1;
    int flags = fcntl (fds [parent], F_GETFL);
    if (flags < 0 || fcntl (fds [parent], F_SETFL, flags | O_NONBLOCK) != 0) {
        close (fds [0]);
        close (fds [1]);
        return -1;
    }
    return 0;
}

int
mesh_exec_run (const mesh_action_spec_t *spec, char **argv, const char *decision_id,
               const char *agent, const char *stdin_data, size_t stdin_len,
               mesh_exec_result_t *result, char *why, size_t size)
{
    assert (spec);
    assert (argv && argv [0]);
    assert (result);
    const mesh_action_exec_t *exec = &spec->exec;
    memset (result, 0, sizeof *result);
    if (!exec->program || exec->program [0] != '/') {
        snprintf (why, size, "the program must be an absolute path");
        return -1;
    }
    s_plan_t plan;
    memset (&plan, 0, sizeof plan);
    plan.program = exec->program;
    plan.argv = argv;
    plan.cwd = exec->cwd ? exec->cwd : "/";
    plan.user = exec->user;
    plan.parent = getpid ();
    plan.in_fd = plan.out_fd = plan.err_fd = -1;
    sigemptyset (&plan.none);
    s_sink_t out = { .fd = -1, .cap = exec->capture_bytes };
    s_sink_t err = { .fd = -1, .cap = exec->capture_bytes };
    int in_fd = -1, pidfd = -1;
    int pipes [3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
    char *chunk = NULL;
    int rc = -1;

    if (!(plan.envp = s_envp (spec, decision_id, agent)) || !(chunk = malloc (S_READ_CHUNK))) {
        snprintf (why, size, "out of memory");
        goto done;
    }
    if (exec->user && s_identity (exec, &plan, why, size))
        goto done;
    plan.set_cpu = exec->cpu_s > 0;
    if (plan.set_cpu)                   //  SIGXCPU at the soft limit, SIGKILL a second on
        s_limit (RLIMIT_CPU, exec->cpu_s, 1, &plan.cpu);
    plan.set_as = exec->as_bytes > 0;
    if (plan.set_as)
        s_limit (RLIMIT_AS, exec->as_bytes, 0, &plan.as);
    plan.set_nofile = exec->nofile > 0;
    if (plan.set_nofile)
        s_limit (RLIMIT_NOFILE, exec->nofile, 0, &plan.nofile);
    plan.set_nproc = exec->nproc > 0;
    if (plan.set_nproc)
        s_limit (RLIMIT_NPROC, exec->nproc, 0, &plan.nproc);
    struct rlimit files;
    plan.max_fd = getrlimit (RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                  && files.rlim_cur < 1048576 ? (int) files.rlim_cur : 65536;

    //  The descriptors: /dev/null or a pipe for stdin, pipes for stdout and stderr.
    if (exec->stdin_decision) {
        if (s_pipe (pipes [0], 1) != 0) {
            snprintf (why, size, "cannot make a pipe: %s", strerror (errno));
            goto done;
        }
    }
    else
    if ((pipes [0][0] = open ("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf (why, size, "cannot open /dev/null: %s", strerror (errno));
        goto done;
    }
    if (s_pipe (pipes [1], 0) != 0 || s_pipe (pipes [2], 0) != 0) {
        snprintf (why, size, "cannot make a pipe: %s", strerror (errno));
        goto done;
    }
    plan.in_fd = pipes [0][0];
    plan.out_fd = pipes [1][1];
    plan.err_fd = pipes [2][1];

    //  Every signal blocked across the fork (the child unblocks them once its
    //  dispositions are the defaults); SIGPIPE stays blocked here for the run.
    sigset_t all, old, pipe_set, pending;
    sigfillset (&all);
    sigemptyset (&pipe_set);
    sigaddset (&pipe_set, SIGPIPE);
    pthread_sigmask (SIG_SETMASK, &all, &old);
    bool pipe_was_pending = sigpending (&pending) == 0 && sigismember (&pending, SIGPIPE);
    int64_t start = s_now_ms ();
    pid_t pid = fork ();
    if (pid == 0)
        s_child (&plan);
    int fork_error = errno;
    sigset_t during = old;
    sigaddset (&during, SIGPIPE);
    pthread_sigmask (SIG_SETMASK, &during, NULL);
    s_close (&pipes [0][0]);
    s_close (&pipes [1][1]);
    s_close (&pipes [2][1]);
    if (pid < 0) {
        pthread_sigmask (SIG_SETMASK, &old, NULL);
        snprintf (why, size, "cannot fork: %s", strerror (fork_error));
        goto done;
    }
    result->pid = pid;
    in_fd = pipes [0][1];
    pipes [0][1] = -1;
    out.fd = pipes [1][0];
    err.fd = pipes [2][0];
    pipes [1][0] = pipes [2][0] = -1;
    size_t fed = 0;
    if (in_fd >= 0 && (!stdin_data || !stdin_len))
        s_close (&in_fd);
    pidfd = (int) syscall (SYS_pidfd_open, pid, 0);

    int64_t term_at = start + exec->timeout_ms, kill_at = 0;
    bool exited = false, oom = false;
    while (true) {
        if (!exited) {
            //  Reaped as soon as it exits, so that a waitpid (-1) elsewhere in the process
            //  has next to no chance to take its status first.
            siginfo_t info;
            memset (&info, 0, sizeof info);
            int got = waitid (P_PID, (id_t) pid, &info, WEXITED | WNOHANG);
            if (got == 0 && info.si_pid == pid) {
                exited = true;
                if (info.si_code == CLD_EXITED)
                    result->exit_code = info.si_status;
                else {
                    result->exit_code = -1;
                    result->signal = info.si_status;
                }
            }
            else
            if (got < 0 && errno == ECHILD) {
                exited = result->status_unknown = true;
                result->exit_code = -1;
            }
            if (exited)
                s_close (&pidfd);
        }
        int64_t now = s_now_ms ();
        if (exited && out.fd < 0 && err.fd < 0)
            break;
        if (!exited && !result->timed_out && now >= term_at) {
            s_signal_group (pid, SIGTERM);
            result->timed_out = true;
            kill_at = now + exec->kill_after_ms;
        }
        else
        if (!exited && result->timed_out && !result->killed && now >= kill_at) {
            s_signal_group (pid, SIGKILL);
            result->killed = true;
        }
        if (exited && now >= (result->timed_out ? kill_at : term_at)) {
            result->lingered = !result->timed_out;
            break;                      //  its pipes are held by what it left behind
        }
        //  Sleep until the next deadline, a pipe, or the child's exit.
        int64_t next = result->timed_out ? (result->killed && !exited ? now + 100 : kill_at)
                                         : term_at;
        int64_t wait = next > now ? next - now : 0;
        if (pidfd < 0 && !exited && wait > 10)
            wait = 10;                  //  no pidfd: look at the child every 10 ms
        struct pollfd fds [4];
        nfds_t count = 0;
        int at_out = -1, at_err = -1, at_in = -1;
        if (out.fd >= 0) {
            at_out = (int) count;
            fds [count++] = (struct pollfd) { .fd = out.fd, .events = POLLIN };
        }
        if (err.fd >= 0) {
            at_err = (int) count;
            fds [count++] = (struct pollfd) { .fd = err.fd, .events = POLLIN };
        }
        if (in_fd >= 0) {
            at_in = (int) count;
            fds [count++] = (struct pollfd) { .fd = in_fd, .events = POLLOUT };
        }
        if (pidfd >= 0)
            fds [count++] = (struct pollfd) { .fd = pidfd, .events = POLLIN };
        int ready = poll (fds, count, (int) (wait < INT_MAX ? wait : INT_MAX));
        if (ready < 0 && errno != EINTR) {
            //  Cannot happen with valid descriptors; do not spin: time still runs out.
            struct timespec pause = { 0, 10 * 1000000 };
            nanosleep (&pause, NULL);
        }
        if (ready <= 0)
            continue;
        if (at_out >= 0 && fds [at_out].revents && s_drain (&out, chunk))
            oom = true;
        if (at_err >= 0 && fds [at_err].revents && s_drain (&err, chunk))
            oom = true;
        if (oom) {
            s_close (&out.fd);          //  counts stop; the run itself goes on
            s_close (&err.fd);
        }
        if (at_in >= 0 && fds [at_in].revents) {
            ssize_t n = write (in_fd, stdin_data + fed, stdin_len - fed);
            if (n > 0)
                fed += (size_t) n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || fed == stdin_len)
                s_close (&in_fd);       //  EPIPE: it will not read more; that is its business
        }
    }
    s_close (&in_fd);
    s_close (&out.fd);
    s_close (&err.fd);
    s_close (&pidfd);
    //  Whatever is left of its group goes.  While the group has a member its id cannot
    //  be given to another process; once it has none, this finds no one.
    kill (-pid, SIGKILL);
    result->duration_ms = s_now_ms () - start;
    //  A SIGPIPE our writes raised is taken now, so it never reaches the thread later.
    if (!pipe_was_pending && sigpending (&pending) == 0 && sigismember (&pending, SIGPIPE)) {
        struct timespec zero = { 0, 0 };
        sigtimedwait (&pipe_set, NULL, &zero);
    }
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    result->out = out.data ? out.data : strdup ("");
    result->out_len = out.length;
    result->out_total = out.total;
    result->out_truncated = out.total > out.length;
    result->err = err.data ? err.data : strdup ("");
    result->err_len = err.length;
    result->err_total = err.total;
    result->err_truncated = err.total > err.length;
    out.data = err.data = NULL;
    rc = 0;
done:
    for (int i = 0; i < 3; i++) {
        s_close (&pipes [i][0]);
        s_close (&pipes [i][1]);
    }
    free (out.data);
    free (err.data);
    free (chunk);
    s_plan_free (&plan);
    return rc;
}

void
mesh_exec_result_clear (mesh_exec_result_t *result)
{
    if (!result)
        return;
    free (result->out);
    free (result->err);
    memset (result, 0, sizeof *result);
}

//  --------------------------------------------------------------------------
//  The outcome as JSON

//  Bytes of the valid UTF-8 sequence at P (LENGTH bytes left), or 0 (NUL counts as not).
static size_t
s_utf8 (const unsigned char *p, size_t length)
{
    unsigned char c = p [0];
    if (c < 0x80)
        return c ? 1 : 0;
    size_t n;
    uint32_t code;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        code = c & 0x1f;
    }
    else
    if ((c & 0xf0) == 0xe0) {
        n = 3;
        code = c & 0x0f;
    }
    else
    if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        code = c & 0x07;
    }
    else
        return 0;
    if (length < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p [i] & 0xc0) != 0x80)
            return 0;
        code = code << 6 | (p [i] & 0x3f);
    }
    if ((n == 3 && (code < 0x800 || (code >= 0xd800 && code <= 0xdfff)))
    ||  (n == 4 && (code < 0x10000 || code > 0x10ffff)))
        return 0;
    return n;
}

//  The first MAX of LENGTH bytes of TEXT as a JSON string, every byte that is not part
//  of valid UTF-8 (and NUL) replaced by '?'; MARK appended when it was cut.
static json_t *
s_text_json (const char *text, size_t length, size_t max, const char *mark)
{
    size_t take = length < max ? length : max;
    size_t extra = length > max && mark ? strlen (mark) : 0;
    char *clean = malloc (take + extra + 1);
    if (!clean)
        return NULL;
    const unsigned char *p = (const unsigned char *) (text ? text : "");
    size_t i = 0;
    while (i < take) {
        size_t n = s_utf8 (p + i, take - i);
        if (n == 0) {
            clean [i++] = '?';
            continue;
        }
        memcpy (clean + i, p + i, n);
        i += n;
    }
    memcpy (clean + take, mark ? mark : "", extra);
    json_t *string = json_stringn (clean, take + extra);
    free (clean);
    return string;
}

static json_t *
s_signal_json (int sig)
{
    if (!sig)
        return json_null ();
    const char *abbrev = sigabbrev_np (sig);
    char name [32];
    if (abbrev)
        snprintf (name, sizeof name, "SIG%s", abbrev);
    else
        snprintf (name, sizeof name, "SIG%d", sig);
    return json_string (name);
}

json_t *
mesh_exec_result_json (const mesh_exec_result_t *result, char **argv)
{
    assert (result);
    json_t *args = json_array ();
    for (size_t i = 0; args && argv && argv [i]; i++)
        if (json_array_append_new (args, s_text_json (argv [i], strlen (argv [i]), S_ARG_SHOWN,
                                                      "...")) != 0) {
            json_decref (args);
            return NULL;
        }
    bool exited = !result->status_unknown && !result->signal;
    json_t *self = json_pack ("{s:o, s:o, s:b, s:b, s:I, s:o*, s:I, s:o*, s:I, s:o*}",
                              "exit", exited ? json_integer (result->exit_code) : json_null (),
                              "signal", s_signal_json (result->signal),
                              "timed_out", result->timed_out,
                              "killed", result->killed,
                              "duration_ms", (json_int_t) result->duration_ms,
                              "stdout", s_text_json (result->out, result->out_len,
                                                     MESH_EXEC_EXCERPT, NULL),
                              "stdout_bytes", (json_int_t) result->out_total,
                              "stderr", s_text_json (result->err, result->err_len,
                                                     MESH_EXEC_EXCERPT, NULL),
                              "stderr_bytes", (json_int_t) result->err_total,
                              "argv", args);
    if (self && result->lingered)
        json_object_set_new (self, "lingered", json_true ());
    if (self && result->status_unknown)
        json_object_set_new (self, "status_unknown", json_true ());
    return self;
}
