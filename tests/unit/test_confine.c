/*  test_confine - agents confine themselves: each test forks a child that confines
 *  itself as mesh-agent does and then tries something; the parent reads how the child
 *  ended.  A child reports a failed check by its exit code (the line number), so that a
 *  failure names the check; it never returns into cmocka.
 *
 *  Also the sandbox: block of the config (agents read it; config.c parses it).
 *  Tests that switch users or need capabilities to drop run only as root (skipped
 *  otherwise); the test host runs them as root.
 */
#include "confine.h"
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

//  In a child: fail the check on this line.
#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf (stderr, "check failed at line %d: %s (errno %s)\n", __LINE__, #cond,     \
                     strerror (errno));                                                      \
            _exit (__LINE__ % 200 + 20);                                                     \
        }                                                                                    \
    } while (0)

typedef void (s_child_fn) (mesh_sandbox_config_t *cfg);

//  Fork; the child confines itself with CFG (expected parent: the test) and runs FN,
//  then exits 0.  Returns the child's wait status (waits at most 20 s, then kills it).
static int
s_run (mesh_sandbox_seccomp_t mode, s_child_fn *fn)
{
    pid_t parent = getpid ();
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        mesh_sandbox_config_t cfg = {.seccomp = mode};
        char *why = NULL;
        if (mesh_confine_apply (&cfg, parent, &why) != 0) {
            fprintf (stderr, "confine: %s\n", why);
            _exit (3);
        }
        fn (&cfg);
        _exit (0);
    }
    int status = 0;
    for (int i = 0; i < 2000; i++) {
        if (waitpid (pid, &status, WNOHANG) == pid)
            return status;
        usleep (10 * 1000);
    }
    kill (pid, SIGKILL);
    waitpid (pid, &status, 0);
    fail_msg ("child did not end within 20 s");
    return status;
}

static void
s_assert_exit0 (int status)
{
    if (WIFSIGNALED (status))
        fail_msg ("child killed by signal %d", WTERMSIG (status));
    assert_true (WIFEXITED (status));
    if (WEXITSTATUS (status) != 0)
        fail_msg ("child exited %d (a check failed, see stderr)", WEXITSTATUS (status));
}

static void
s_assert_sigsys (int status)
{
    if (WIFEXITED (status))
        fail_msg ("child exited %d instead of dying by SIGSYS", WEXITSTATUS (status));
    assert_true (WIFSIGNALED (status));
    assert_int_equal (WTERMSIG (status), SIGSYS);
}

//  --- (a) forbidden calls kill ---------------------------------------------------------

static void
s_forbidden (mesh_sandbox_config_t *cfg)
{
    mesh_confine_forbidden_call ();
}

static void
s_execve (mesh_sandbox_config_t *cfg)
{
    char *argv[] = {"/bin/true", NULL};
    execv ("/bin/true", argv);
}

static void __attribute__ ((unused))
s_fork (mesh_sandbox_config_t *cfg)
{
    pid_t pid = fork ();                //  glibc: clone without CLONE_THREAD
    if (pid == 0)
        _exit (0);
}

static void
s_ptrace (mesh_sandbox_config_t *cfg)
{
    ptrace (PTRACE_ATTACH, getppid (), 0, 0);
}

static void
s_kill_parent (mesh_sandbox_config_t *cfg)
{
    kill (getppid (), 0);               //  even a probe of another process
}

static void
s_setuid (mesh_sandbox_config_t *cfg)
{
    syscall (SYS_setuid, 0);
}

static void
test_forbidden_kills (void **state)
{
    s_assert_sigsys (s_run (MESH_SANDBOX_SECCOMP_KILL, s_forbidden));
    s_assert_sigsys (s_run (MESH_SANDBOX_SECCOMP_KILL, s_execve));
    s_assert_sigsys (s_run (MESH_SANDBOX_SECCOMP_KILL, s_kill_parent));
    s_assert_sigsys (s_run (MESH_SANDBOX_SECCOMP_KILL, s_setuid));
#if !defined(__SANITIZE_ADDRESS__)
    //  The leak checker's tracer needs these: allowed in the ASan build only.
    s_assert_sigsys (s_run (MESH_SANDBOX_SECCOMP_KILL, s_fork));
    s_assert_sigsys (s_run (MESH_SANDBOX_SECCOMP_KILL, s_ptrace));
#endif
}

//  --- (b) what the agent does keeps working --------------------------------------------

static void *
s_thread (void *arg)
{
    *(int *) arg = 42;
    return NULL;
}

static void
s_allowed (mesh_sandbox_config_t *cfg)
{
    //  threads (clone with CLONE_THREAD); clone3 answers ENOSYS
    int value = 0;
    pthread_t thread;
    CHECK (pthread_create (&thread, NULL, s_thread, &value) == 0);
    CHECK (pthread_join (thread, NULL) == 0 && value == 42);
    errno = 0;
    CHECK (syscall (SYS_clone3, NULL, 0) == -1 && errno == ENOSYS);
    //  time, randomness, memory
    struct timespec ts;
    CHECK (clock_gettime (CLOCK_MONOTONIC, &ts) == 0);
    char random[16];
    CHECK (getrandom (random, sizeof random, 0) == sizeof random);
    void *big = malloc (64 << 20);
    CHECK (big);
    memset (big, 1, 64 << 20);
    free (big);
    //  incident state: mkdir, write, fsync, rename, read back, unlink
    char dir[] = "/tmp/test_confine.XXXXXX";
    CHECK (mkdtemp (dir));
    char tmp[64], final[64];
    snprintf (tmp, sizeof tmp, "%s/state.tmp", dir);
    snprintf (final, sizeof final, "%s/state", dir);
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK (fd >= 0);
    CHECK (write (fd, "hello", 5) == 5 && fsync (fd) == 0 && close (fd) == 0);
    CHECK (rename (tmp, final) == 0);
    FILE *file = fopen (final, "r");
    char buf[8] = {0};
    CHECK (file && fread (buf, 1, 5, file) == 5 && strcmp (buf, "hello") == 0);
    fclose (file);
    CHECK (unlink (final) == 0 && rmdir (dir) == 0);
    //  sockets: loopback TCP (connection refused is fine), the resolver (files)
    int sock = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK (sock >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons (9),
                               .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    CHECK (connect (sock, (struct sockaddr *) &addr, sizeof addr) == 0 || errno == ECONNREFUSED);
    close (sock);
    struct addrinfo *res = NULL, hints = {.ai_socktype = SOCK_STREAM};
    CHECK (getaddrinfo ("localhost", "80", &hints, &res) == 0 && res);
    freeaddrinfo (res);
    //  signals to itself
    CHECK (kill (getpid (), 0) == 0);
    signal (SIGUSR1, SIG_IGN);
    CHECK (raise (SIGUSR1) == 0);
    //  a socket family the agent never speaks is refused (by death); not tried here
}

static void
test_allowed_calls_work (void **state)
{
    s_assert_exit0 (s_run (MESH_SANDBOX_SECCOMP_KILL, s_allowed));
}

//  --- (c) what /proc/self/status shows ------------------------------------------------

//  The value of FIELD in /proc/self/status (hex for Cap*, decimal otherwise).
static unsigned long long
s_status (const char *field)
{
    FILE *file = fopen ("/proc/self/status", "r");
    CHECK (file);
    char line[256];
    size_t length = strlen (field);
    unsigned long long value = ~0ULL;
    while (fgets (line, sizeof line, file))
        if (strncmp (line, field, length) == 0 && line[length] == ':')
            value = strtoull (line + length + 1, NULL, strncmp (field, "Cap", 3) ? 10 : 16);
    fclose (file);
    return value;
}

static void
s_status_kill (mesh_sandbox_config_t *cfg)
{
    CHECK (s_status ("NoNewPrivs") == 1);
    CHECK (s_status ("CapInh") == 0);
    CHECK (s_status ("CapPrm") == 0);
    CHECK (s_status ("CapEff") == 0);
    CHECK (s_status ("CapAmb") == 0);
    if (geteuid () == 0)
        CHECK (s_status ("CapBnd") == 0);   //  dropped while CAP_SETPCAP was held
    CHECK (s_status ("Seccomp") == 2);
    CHECK (prctl (PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1);
}

static void
s_status_off (mesh_sandbox_config_t *cfg)
{
    CHECK (s_status ("NoNewPrivs") == 1);
    CHECK (s_status ("CapEff") == 0);
    CHECK (s_status ("Seccomp") == 0);
}

static void
test_status_shows_confinement (void **state)
{
    s_assert_exit0 (s_run (MESH_SANDBOX_SECCOMP_KILL, s_status_kill));
    s_assert_exit0 (s_run (MESH_SANDBOX_SECCOMP_OFF, s_status_off));
}

//  --- (d) death with the parent ---------------------------------------------------------

//  A middle process P starts C, which confines itself with P as its expected parent and
//  then waits forever.  The test (a subreaper, in a child of its own so that the test
//  process is unchanged) kills P and C must be gone by SIGKILL within 1 s.
static void
test_dies_with_parent (void **state)
{
    fflush (NULL);
    pid_t reaper = fork ();
    assert_true (reaper >= 0);
    if (reaper == 0) {
        CHECK (prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
        int pipefd[2];
        CHECK (pipe (pipefd) == 0);
        pid_t middle = fork ();
        CHECK (middle >= 0);
        if (middle == 0) {
            pid_t expected = getpid ();
            pid_t child = fork ();
            CHECK (child >= 0);
            if (child == 0) {
                mesh_sandbox_config_t cfg = {.seccomp = MESH_SANDBOX_SECCOMP_KILL};
                char *why = NULL;
                CHECK (mesh_confine_apply (&cfg, expected, &why) == 0);
                pid_t me = getpid ();
                CHECK (write (pipefd[1], &me, sizeof me) == sizeof me);
                while (true)
                    sleep (1);          //  pause () is not in the allow-list
            }
            while (true)
                pause ();
        }
        pid_t child = 0;
        CHECK (read (pipefd[0], &child, sizeof child) == sizeof child && child > 0);
        CHECK (kill (middle, SIGKILL) == 0);
        int status;
        CHECK (waitpid (middle, &status, 0) == middle);
        for (int i = 0; i < 100; i++) {
            if (waitpid (child, &status, WNOHANG) == child) {
                CHECK (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
                _exit (0);
            }
            usleep (10 * 1000);
        }
        kill (child, SIGKILL);
        _exit (99);                     //  still alive 1 s after its parent died
    }
    int status;
    assert_int_equal (waitpid (reaper, &status, 0), reaper);
    s_assert_exit0 (status);
}

//  A parent that is already gone (or another process) is noticed after the prctl.
static void
test_wrong_parent_refused (void **state)
{
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        mesh_sandbox_config_t cfg = {.seccomp = MESH_SANDBOX_SECCOMP_KILL};
        char *why = NULL;
        CHECK (mesh_confine_apply (&cfg, getppid () + 100000, &why) == -1);
        CHECK (why && strstr (why, "is gone"));
        free (why);
        why = NULL;
        CHECK (mesh_confine_parent (getppid (), &why) == 0 && !why);
        _exit (0);
    }
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    s_assert_exit0 (status);
}

//  --- (e) log and off do not kill --------------------------------------------------------

static void
s_forbidden_survives (mesh_sandbox_config_t *cfg)
{
    errno = 0;
    long rc = mesh_confine_forbidden_call ();
    CHECK (rc != -1);                   //  the call went through: the execution domain
}

static void
test_log_and_off_do_not_kill (void **state)
{
    s_assert_exit0 (s_run (MESH_SANDBOX_SECCOMP_LOG, s_forbidden_survives));
    s_assert_exit0 (s_run (MESH_SANDBOX_SECCOMP_OFF, s_forbidden_survives));
}

//  --- threads started before the drop keep capabilities: refused ----------------------

static void *
s_sleeper (void *arg)
{
    while (true)
        sleep (1);
    return NULL;
}

static void
test_early_thread_refused (void **state)
{
    if (geteuid () != 0)
        skip ();
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        mesh_sandbox_config_t cfg = {.seccomp = MESH_SANDBOX_SECCOMP_KILL};
        pthread_t thread;
        CHECK (pthread_create (&thread, NULL, s_sleeper, NULL) == 0);
        char *why = NULL;
        CHECK (mesh_confine_apply (&cfg, getppid (), &why) == -1);
        CHECK (why && strstr (why, "still holds capabilities"));
        _exit (0);
    }
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    s_assert_exit0 (status);
    //  The agent's order: privileges first, then threads, then apply.
    pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        mesh_sandbox_config_t cfg = {.seccomp = MESH_SANDBOX_SECCOMP_KILL};
        char *why = NULL;
        CHECK (mesh_confine_privileges (&cfg, &why) == 0);
        pthread_t thread;
        CHECK (pthread_create (&thread, NULL, s_sleeper, NULL) == 0);
        CHECK (mesh_confine_apply (&cfg, getppid (), &why) == 0);
        _exit (0);
    }
    assert_int_equal (waitpid (pid, &status, 0), pid);
    s_assert_exit0 (status);
}

//  --- sandbox.user ----------------------------------------------------------------------

static void
test_user_switch (void **state)
{
    struct passwd *pw = getpwnam ("nobody");
    if (geteuid () != 0 || !pw)
        skip ();
    uid_t nobody = pw->pw_uid;
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        mesh_sandbox_config_t cfg = {.user = "nobody", .seccomp = MESH_SANDBOX_SECCOMP_OFF};
        char *why = NULL;
        CHECK (mesh_confine_apply (&cfg, getppid (), &why) == 0);
        CHECK (getuid () == nobody && geteuid () == nobody);
        CHECK (setuid (0) == -1 && errno == EPERM);
        gid_t groups[4];
        CHECK (getgroups (4, groups) == 0);
        CHECK (s_status ("CapEff") == 0 && s_status ("CapPrm") == 0);
        //  Applying again (as mesh-agent does after start-up) is fine.
        CHECK (mesh_confine_apply (&cfg, getppid (), &why) == 0);
        //  Another user cannot be reached any more: said clearly.
        mesh_sandbox_config_t other = {.user = "daemon", .seccomp = MESH_SANDBOX_SECCOMP_OFF};
        CHECK (mesh_confine_apply (&other, getppid (), &why) == -1);
        CHECK (why && strstr (why, "needs meshd to run as root"));
        _exit (0);
    }
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    s_assert_exit0 (status);
}

static void
test_user_unknown_or_root (void **state)
{
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        mesh_sandbox_config_t cfg = {.user = "no-such-user-x", .seccomp = MESH_SANDBOX_SECCOMP_OFF};
        char *why = NULL;
        CHECK (mesh_confine_apply (&cfg, getppid (), &why) == -1);
        CHECK (why && strstr (why, "no user 'no-such-user-x'"));
        mesh_sandbox_config_t root = {.user = "root", .seccomp = MESH_SANDBOX_SECCOMP_OFF};
        CHECK (mesh_confine_apply (&root, getppid (), &why) == -1);
        CHECK (why && strstr (why, "is root"));
        mesh_sandbox_config_t group = {.user = "nobody", .group = "no-such-group-x",
                                       .seccomp = MESH_SANDBOX_SECCOMP_OFF};
        CHECK (mesh_confine_apply (&group, getppid (), &why) == -1);
        CHECK (why && strstr (why, "no group 'no-such-group-x'"));
        _exit (0);
    }
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    s_assert_exit0 (status);
}

//  --- files: writes only beneath the agent's state directory (Landlock) -------------

static void
test_filesystem_writes_confined (void **state)
{
    char dir[] = "/tmp/test_confine.XXXXXX";
    assert_non_null (mkdtemp (dir));
    char log[64];
    snprintf (log, sizeof log, "%s/decisions.jsonl", dir);
    FILE *file = fopen (log, "w");
    assert_non_null (file);
    fputs ("{}\n", file);
    fclose (file);
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        mesh_sandbox_config_t cfg = {.seccomp = MESH_SANDBOX_SECCOMP_KILL};
        char *why = NULL, path[128], other[128];
        int level = -1;
        CHECK (mesh_confine_privileges (&cfg, &why) == 0);
        CHECK (mesh_confine_filesystem (dir, &level, &why) == 0);
        if (level == 0)
            _exit (77);                 //  no Landlock in this kernel: skipped
        CHECK (mesh_confine_apply (&cfg, getppid (), &why) == 0);
        //  The agent's own state: create, truncate, rename, remove.
        snprintf (path, sizeof path, "%s/incidents/a.tmp", dir);
        snprintf (other, sizeof other, "%s/incidents/a.json", dir);
        int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        CHECK (fd >= 0 && write (fd, "{}", 2) == 2 && close (fd) == 0);
        CHECK (rename (path, other) == 0);
        fd = open (other, O_WRONLY | O_TRUNC | O_CLOEXEC);
        CHECK (fd >= 0 && close (fd) == 0);
        CHECK (unlink (other) == 0);
        //  The rules archive is meshd's: not writable either.
        snprintf (path, sizeof path, "%s/rules", dir);
        CHECK (mkdir (path, 0750) == -1 && errno == EACCES);
        //  The decision log: readable, but not writable, removable or replaceable.
        fd = open (log, O_RDONLY | O_CLOEXEC);
        CHECK (fd >= 0 && close (fd) == 0);
        errno = 0;
        CHECK (open (log, O_WRONLY | O_APPEND | O_CLOEXEC) == -1 && errno == EACCES);
        CHECK (unlink (log) == -1 && errno == EACCES);
        snprintf (path, sizeof path, "%s/incidents/stolen", dir);
        CHECK (rename (log, path) == -1 && (errno == EACCES || errno == EXDEV));
        snprintf (path, sizeof path, "%s/new", dir);
        CHECK (open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640) == -1 && errno == EACCES);
        CHECK (mkdir ("/tmp/test_confine.forbidden", 0700) == -1 && errno == EACCES);
        _exit (0);
    }
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    char command[96];
    snprintf (command, sizeof command, "rm -rf '%s'", dir);
    assert_int_equal (system (command), 0);
    if (WIFEXITED (status) && WEXITSTATUS (status) == 77)
        skip ();
    s_assert_exit0 (status);
}

//  --- the sandbox: block ------------------------------------------------------------------

static const char *s_base = "kafka: {brokers: embedded}\n"
                            "backends: {b: {kind: scripted, file: r.jsonl}}\n"
                            "actions: {esc: {kind: log}}\n"
                            "agents:\n"
                            "  - {name: a, topics: [m], fields: {key: [host]}, "
                            "reason: {backend: b}, actions: [esc], fallback: esc}\n";

//  Load s_base + EXTRA; the problems printed go to *OUT_P (caller frees).
static int
s_load (const char *extra, mesh_config_t **cfg_p, char **out_p)
{
    char dir[] = "/tmp/test_confine.XXXXXX";
    assert_non_null (mkdtemp (dir));
    char path[64];
    snprintf (path, sizeof path, "%s/c.yaml", dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fprintf (file, "%s%s", s_base, extra);
    fclose (file);
    size_t size;
    FILE *err = open_memstream (out_p, &size);
    int problems = mesh_config_load (path, cfg_p, err);
    fclose (err);
    unlink (path);
    rmdir (dir);
    return problems;
}

static void
test_config_sandbox (void **state)
{
    mesh_config_t *cfg = NULL;
    char *out = NULL;
    assert_int_equal (s_load ("", &cfg, &out), 0);
    assert_int_equal (cfg->sandbox.seccomp, MESH_SANDBOX_SECCOMP_KILL);     //  default
    assert_null (cfg->sandbox.user);
    mesh_config_destroy (&cfg);
    free (out);

    assert_int_equal (s_load ("sandbox: {user: meshd-agent, group: meshd, seccomp: log}\n",
                              &cfg, &out), 0);
    assert_string_equal (cfg->sandbox.user, "meshd-agent");
    assert_string_equal (cfg->sandbox.group, "meshd");
    assert_int_equal (cfg->sandbox.seccomp, MESH_SANDBOX_SECCOMP_LOG);
    mesh_config_destroy (&cfg);
    free (out);

    assert_int_equal (s_load ("sandbox: {seccomp: off}\n", &cfg, &out), 0);
    assert_int_equal (cfg->sandbox.seccomp, MESH_SANDBOX_SECCOMP_OFF);
    mesh_config_destroy (&cfg);
    free (out);

    //  Each bad input: one problem, at its place, saying what would be right.
    static const struct {
        const char *text, *expect;
    } bad[] = {
        {"sandbox: {seccomp: trap}\n", ":6:20: sandbox.seccomp: must be one of: kill, log, off"},
        {"sandbox: {seccomp: true}\n", "sandbox.seccomp: must be one of: kill, log, off"},
        {"sandbox: {user: 0}\n", "sandbox.user: expected a user or group name matching"},
        {"sandbox: {user: Root}\n", "sandbox.user: expected a user or group name"},
        {"sandbox: {user: \"a b\"}\n", "sandbox.user: expected a user or group name"},
        {"sandbox: {group: meshd}\n", "sandbox.group: only allowed with sandbox.user"},
        {"sandbox: {capabilities: keep}\n", "unknown key 'capabilities' in sandbox"},
        {"sandbox: [kill]\n", "sandbox: expected a mapping"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal (s_load (bad[i].text, &cfg, &out), 1);
        assert_null (cfg);
        if (!strstr (out, bad[i].expect))
            fail_msg ("for %s expected '%s', got: %s", bad[i].text, bad[i].expect, out);
        free (out);
    }
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_forbidden_kills),
        cmocka_unit_test (test_allowed_calls_work),
        cmocka_unit_test (test_status_shows_confinement),
        cmocka_unit_test (test_dies_with_parent),
        cmocka_unit_test (test_wrong_parent_refused),
        cmocka_unit_test (test_log_and_off_do_not_kill),
        cmocka_unit_test (test_early_thread_refused),
        cmocka_unit_test (test_user_switch),
        cmocka_unit_test (test_user_unknown_or_root),
        cmocka_unit_test (test_filesystem_writes_confined),
        cmocka_unit_test (test_config_sandbox),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
