/*  confine - an agent gives up what it does not need once it has started.
 *
 *  Agents parse untrusted bytes (Kafka messages, model output), so a bug there must not
 *  be worth more than the agent's own work.  The model is OpenBSD's pledge: start up with
 *  everything, then drop for good.  What is dropped, and why in this order:
 *
 *  1. The parent.  PR_SET_PDEATHSIG (SIGKILL): the agent dies with the supervisor's main
 *     thread (meshd forks from its main loop, so that is the thread that counts), instead
 *     of noticing up to a heartbeat later.  The parent may have died before the prctl, so
 *     getppid () is compared with the pid the agent was started by.
 *  2. The bounding set, while CAP_SETPCAP is still held (root): PR_CAPBSET_DROP for every
 *     capability up to /proc/sys/kernel/cap_last_cap.  Without CAP_SETPCAP (a non-root
 *     agent) it stays; no_new_privs and the filter's ban on execve make it moot.
 *  3. The user (sandbox.user, sandbox.group), only when running as root: setgroups (0),
 *     setgid, setuid - glibc applies them to every thread - then setuid (0) must fail.
 *  4. Capabilities: effective, permitted and inheritable cleared with capset, ambient
 *     cleared.  They are per thread, so this must happen before the agent starts any
 *     thread (mesh_confine_privileges, called before mesh_agent_new); mesh_confine_apply
 *     checks every thread in /proc/self/task afterwards and refuses to go on otherwise.
 *  5. PR_SET_NO_NEW_PRIVS: no execve can give anything back (also required for a filter
 *     installed without CAP_SYS_ADMIN).
 *  5b. Files (mesh_confine_filesystem, also before any thread): a Landlock ruleset lets
 *     the agent create, write, truncate, rename and remove files only beneath its own
 *     state directory (state_dir/incidents); reads stay as they were.  The decision log
 *     and the rules archive (state_dir/rules, written by meshd) are out of its reach.
 *     Same uid as meshd or not, an agent cannot touch the decision log.  Kernels without
 *     Landlock get the rest, and the log line says so.
 *  6. A seccomp allow-list (libseccomp), loaded with TSYNC so that it covers every thread,
 *     librdkafka's and ZeroMQ's included.  Default action: kill the process (sandbox.seccomp
 *     `kill`), or allow and log (`log`, for tuning: the kernel log names each call), or no
 *     filter (`off`).  The list is what the agent was seen to use after start-up (strace
 *     -c on running agents, and the kernel's audit lines for killed calls over the unit,
 *     integration and ASan suites and the demo; also TLS through libcurl and librdkafka
 *     tried by hand), plus a few read-only neighbours of those: memory, threads (clone only with
 *     CLONE_THREAD; clone3 answers ENOSYS so glibc falls back to clone), futexes, time,
 *     random, files (reads of config, rules and silences on reload; incident state written
 *     with rename, fsync, unlink, mkdir), sockets of the families the agent speaks (unix,
 *     inet, inet6, netlink for the resolver), polling, signals to itself only, exit.
 *     Not there: execve, fork, ptrace, mount, kexec, bpf, module loading, keyctl,
 *     process_vm_*, signals to other processes, and everything else.
 *
 *  Under AddressSanitizer the leak checker, at exit, clones a tracer (without
 *  CLONE_THREAD) that ptraces the threads and waits for them: that build also allows
 *  clone with any flags (so fork too), ptrace, wait4, waitid and any prctl
 *  (s_sanitizer_extras).  Release builds never have them.
 */
#include "confine.h"
#include "log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#    define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)     //  ABI 3 (Linux 6.2); older headers
#endif

#if defined(__SANITIZE_ADDRESS__)
#    define S_SANITIZER 1
#elif defined(__has_feature)
#    if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#        define S_SANITIZER 1
#    endif
#endif
#ifndef S_SANITIZER
#    define S_SANITIZER 0
#endif

static int s_fail (char **why, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static int
s_fail (char **why, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    char *text = NULL;
    if (vasprintf (&text, fmt, ap) < 0)
        text = NULL;
    va_end (ap);
    if (why) {
        free (*why);
        *why = text;
    }
    else
        free (text);
    return -1;
}

//  --- 1. the parent ------------------------------------------------------------------

int
mesh_confine_parent (pid_t expected_parent, char **why)
{
    if (prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        return s_fail (why, "PR_SET_PDEATHSIG: %s", strerror (errno));
    pid_t parent = getppid ();
    if (parent != expected_parent)
        return s_fail (why, "the supervisor (pid %d) is gone (parent is now pid %d)",
                       (int) expected_parent, (int) parent);
    return 0;
}

//  --- 2-5. privileges -----------------------------------------------------------------

static int
s_cap_last (void)
{
    int last = CAP_LAST_CAP;
    FILE *file = fopen ("/proc/sys/kernel/cap_last_cap", "r");
    if (file) {
        int value;
        if (fscanf (file, "%d", &value) == 1 && value >= 0 && value < 64)
            last = value;
        fclose (file);
    }
    return last;
}

//  Drop the bounding set if this thread may (CAP_SETPCAP); how many are left in it.
static int
s_drop_bounding (char **why, int *left_p)
{
    int last = s_cap_last (), left = 0;
    for (int cap = 0; cap <= last; cap++) {
        if (prctl (PR_CAPBSET_READ, cap, 0, 0, 0) != 1)
            continue;
        if (prctl (PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
            continue;
        if (errno != EPERM)
            return s_fail (why, "PR_CAPBSET_DROP %d: %s", cap, strerror (errno));
        left++;
    }
    *left_p = left;
    return 0;
}

static int
s_switch_user (const mesh_sandbox_config_t *cfg, char **why)
{
    if (!cfg->user)
        return 0;
    errno = 0;
    struct passwd *pw = getpwnam (cfg->user);
    if (!pw)
        return s_fail (why, "sandbox.user: no user '%s' on this system%s%s; create it "
                       "(systemd-sysusers) or remove sandbox.user", cfg->user,
                       errno ? ": " : "", errno ? strerror (errno) : "");
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (cfg->group) {
        errno = 0;
        struct group *gr = getgrnam (cfg->group);
        if (!gr)
            return s_fail (why, "sandbox.group: no group '%s' on this system; create it or "
                           "remove sandbox.group", cfg->group);
        gid = gr->gr_gid;
    }
    if (uid == 0)
        return s_fail (why, "sandbox.user: '%s' is root; name an unprivileged user", cfg->user);
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    getresuid (&ruid, &euid, &suid);
    getresgid (&rgid, &egid, &sgid);
    bool done = ruid == uid && euid == uid && suid == uid && rgid == gid && egid == gid
             && sgid == gid && getgroups (0, NULL) == 0;
    if (done)
        return 0;                       //  already switched (mesh_confine_privileges)
    if (euid != 0)
        return s_fail (why, "sandbox.user: switching to '%s' needs meshd to run as root "
                       "(it runs as uid %d); run meshd as root or remove sandbox.user",
                       cfg->user, (int) euid);
    if (setgroups (0, NULL) != 0)
        return s_fail (why, "setgroups: %s", strerror (errno));
    if (setresgid (gid, gid, gid) != 0)
        return s_fail (why, "setresgid %d: %s", (int) gid, strerror (errno));
    if (setresuid (uid, uid, uid) != 0)
        return s_fail (why, "setresuid %d: %s", (int) uid, strerror (errno));
    if (setuid (0) == 0 || seteuid (0) == 0)
        return s_fail (why, "setuid (0) still succeeds after switching to '%s'", cfg->user);
    getresuid (&ruid, &euid, &suid);
    getresgid (&rgid, &egid, &sgid);
    if (ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid)
        return s_fail (why, "the switch to user '%s' did not take", cfg->user);
    return 0;
}

static int
s_clear_caps (char **why)
{
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset (data, 0, sizeof data);
    if (syscall (SYS_capset, &header, data) != 0)
        return s_fail (why, "capset: %s", strerror (errno));
    if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return s_fail (why, "PR_CAP_AMBIENT_CLEAR_ALL: %s", strerror (errno));
    memset (data, 0xff, sizeof data);
    if (syscall (SYS_capget, &header, data) != 0)
        return s_fail (why, "capget: %s", strerror (errno));
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return s_fail (why, "capabilities remain after capset");
    return 0;
}

static int s_bounding_left = -1;        //  from the last drop, for the log line

int
mesh_confine_privileges (const mesh_sandbox_config_t *cfg, char **why)
{
    assert (cfg);
    int left = 0;
    if (s_drop_bounding (why, &left) != 0 || s_switch_user (cfg, why) != 0
        || s_clear_caps (why) != 0)
        return -1;
    if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return s_fail (why, "PR_SET_NO_NEW_PRIVS: %s", strerror (errno));
    s_bounding_left = left;
    return 0;
}

//  --- 5b. files ------------------------------------------------------------------------

static int s_landlock_level = -1;       //  from mesh_confine_filesystem, for the log line

int
mesh_confine_filesystem (const char *state_dir, int *level_p, char **why)
{
    assert (state_dir);
    *level_p = 0;
    long abi = syscall (SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1) {
        s_landlock_level = 0;
        return 0;                       //  ENOSYS or disabled: not available here
    }
    uint64_t handled = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR
                     | LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR
                     | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG
                     | LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO
                     | LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
    if (abi >= 2)
        handled |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        handled |= LANDLOCK_ACCESS_FS_TRUNCATE;
    struct landlock_ruleset_attr attr = {.handled_access_fs = handled};
    int ruleset = (int) syscall (SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (ruleset < 0)
        return s_fail (why, "landlock_create_ruleset: %s", strerror (errno));
    static const char *const subdirs[] = {"incidents"};    //  the rules archive is meshd's
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof subdirs / sizeof subdirs[0]; i++) {
        char path[4096];
        snprintf (path, sizeof path, "%s/%s", state_dir, subdirs[i]);
        if (mkdir (path, 0750) != 0 && errno != EEXIST)
            continue;                   //  the stage that needs it says why, later
        int fd = open (path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct landlock_path_beneath_attr beneath = {.allowed_access = handled,
                                                     .parent_fd = fd};
        if (syscall (SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0)
            != 0)
            rc = s_fail (why, "landlock_add_rule %s: %s", path, strerror (errno));
        close (fd);
    }
    if (rc == 0 && syscall (SYS_landlock_restrict_self, ruleset, 0) != 0)
        rc = s_fail (why, "landlock_restrict_self: %s", strerror (errno));
    close (ruleset);
    if (rc == 0)
        *level_p = s_landlock_level = (int) abi;
    return rc;
}

//  --- the check on every thread ----------------------------------------------------

//  One thread's /proc status: 0 if it holds no capability, has no_new_privs, the uid
//  wanted (when WANT_UID >= 0) and, if FILTERED, a seccomp filter; else -1 and *why.
static int
s_check_thread (const char *tid, long want_uid, bool filtered, char **why)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/self/task/%s/status", tid);
    FILE *file = fopen (path, "r");
    if (!file)
        return errno == ENOENT ? 0 : s_fail (why, "%s: %s", path, strerror (errno));
    int seen = 0, rc = 0;
    while (rc == 0 && fgets (line, sizeof line, file)) {
        unsigned long long caps;
        long uid;
        int value;
        if (sscanf (line, "CapInh: %llx", &caps) == 1 || sscanf (line, "CapPrm: %llx", &caps) == 1
            || sscanf (line, "CapEff: %llx", &caps) == 1
            || sscanf (line, "CapAmb: %llx", &caps) == 1) {
            seen++;
            if (caps)
                rc = s_fail (why, "thread %s still holds capabilities (%.6s %llx)", tid, line,
                             caps);
        }
        else
        if (sscanf (line, "NoNewPrivs: %d", &value) == 1) {
            seen++;
            if (value != 1)
                rc = s_fail (why, "thread %s has no no_new_privs", tid);
        }
        else
        if (sscanf (line, "Seccomp: %d", &value) == 1) {
            seen++;
            if (filtered && value != 2)
                rc = s_fail (why, "thread %s has no seccomp filter", tid);
        }
        else
        if (sscanf (line, "Uid: %ld", &uid) == 1) {
            seen++;
            if (want_uid >= 0 && uid != want_uid)
                rc = s_fail (why, "thread %s runs as uid %ld, not %ld", tid, uid, want_uid);
        }
    }
    fclose (file);
    if (rc == 0 && seen < 7)
        rc = s_fail (why, "%s: unexpected format (%d of 7 fields)", path, seen);
    return rc;
}

static int
s_check_threads (long want_uid, bool filtered, int *threads_p, char **why)
{
    DIR *dir = opendir ("/proc/self/task");
    if (!dir)
        return s_fail (why, "/proc/self/task: %s", strerror (errno));
    int rc = 0, threads = 0;
    struct dirent *entry;
    while (rc == 0 && (entry = readdir (dir))) {
        if (entry->d_name[0] == '.')
            continue;
        threads++;
        rc = s_check_thread (entry->d_name, want_uid, filtered, why);
    }
    closedir (dir);
    *threads_p = threads;
    return rc;
}

//  --- 6. the system call filter ----------------------------------------------------

//  Allowed with any arguments.  Names the architecture does not have are skipped.
static const char *const s_allowed[] = {
    //  memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "membarrier",
    //  threads and scheduling
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
    "sched_yield", "sched_getaffinity", "sched_getparam", "sched_getscheduler",
    "sched_get_priority_min", "sched_get_priority_max", "getpriority",
    "gettid", "getpid", "getppid", "exit", "exit_group", "restart_syscall",
    //  signals (kill and tgkill: see below)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sigaltstack",
    //  time and randomness
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "getrandom",
    //  identity and limits (read only)
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "uname", "getrlimit", "getrusage", "sysinfo", "times", "capget",
    //  files: config, rules and silences read on reload; incident state written
    "openat", "open", "close", "read", "write", "pread64", "pwrite64", "readv", "writev",
    "lseek", "fstat", "newfstatat", "stat", "lstat", "statx", "statfs", "fstatfs",
    "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getcwd", "getdents64",
    "getdents",
    "fsync", "fdatasync", "ftruncate", "rename", "renameat", "renameat2", "unlink",
    "unlinkat", "rmdir", "mkdir", "mkdirat", "fcntl", "dup", "dup2", "dup3", "flock", "umask",
    "fadvise64", "close_range",
    //  descriptors for waking and polling
    "pipe", "pipe2", "eventfd2", "poll", "ppoll", "select", "pselect6", "epoll_create1",
    "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    //  sockets (socket itself: see below)
    "connect", "socketpair", "getsockname", "getpeername", "setsockopt", "getsockopt",
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
    "bind",                             //  librdkafka, on some reconnects (no listen, no accept)
    NULL,
};

static int
s_rule (scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned count,
        const struct scmp_arg_cmp *args, char **why)
{
    int nr = seccomp_syscall_resolve_name (name);
    if (nr == __NR_SCMP_ERROR)
        return 0;                       //  not on this architecture
    int rc = seccomp_rule_add_array (ctx, action, nr, count, args);
    if (rc != 0)
        return s_fail (why, "seccomp rule for %s: %s", name, strerror (-rc));
    return 0;
}

//  Under AddressSanitizer: the leak checker's tracer at exit.
static int
s_sanitizer_extras (scmp_filter_ctx ctx, char **why)
{
    static const char *const extras[] = {"clone", "ptrace", "wait4", "waitid", "prctl", NULL};
    for (int i = 0; S_SANITIZER && extras[i]; i++)
        if (s_rule (ctx, SCMP_ACT_ALLOW, extras[i], 0, NULL, why) != 0)
            return -1;
    return 0;
}

static int
s_filter (const mesh_sandbox_config_t *cfg, char **why)
{
    uint32_t deny = cfg->seccomp == MESH_SANDBOX_SECCOMP_LOG ? SCMP_ACT_LOG
                                                              : SCMP_ACT_KILL_PROCESS;
    scmp_filter_ctx ctx = seccomp_init (deny);
    if (!ctx)
        return s_fail (why, "seccomp_init failed");
    int rc = seccomp_attr_set (ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc != 0) {
        seccomp_release (ctx);
        return s_fail (why, "seccomp TSYNC: %s", strerror (-rc));
    }
    //  no_new_privs is set already (mesh_confine_privileges); do not let libseccomp
    //  decide otherwise.
    seccomp_attr_set (ctx, SCMP_FLTATR_CTL_NNP, 1);
    for (int i = 0; s_allowed[i]; i++)
        if (s_rule (ctx, SCMP_ACT_ALLOW, s_allowed[i], 0, NULL, why) != 0)
            goto failed;

    pid_t self = getpid ();
    //  Threads only: clone must carry CLONE_THREAD (fork is clone without it).
    struct scmp_arg_cmp thread = SCMP_A0 (SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
    //  Signals to this process only, never to the supervisor or another agent.
    struct scmp_arg_cmp to_self = SCMP_A0 (SCMP_CMP_EQ, (scmp_datum_t) self);
    if ((!S_SANITIZER && s_rule (ctx, SCMP_ACT_ALLOW, "clone", 1, &thread, why) != 0)
        || s_rule (ctx, SCMP_ACT_ERRNO (ENOSYS), "clone3", 0, NULL, why) != 0
        || s_rule (ctx, SCMP_ACT_ALLOW, "kill", 1, &to_self, why) != 0
        || s_rule (ctx, SCMP_ACT_ALLOW, "tgkill", 1, &to_self, why) != 0)
        goto failed;
    static const int families[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        struct scmp_arg_cmp family = SCMP_A0 (SCMP_CMP_EQ, (scmp_datum_t) families[i]);
        if (s_rule (ctx, SCMP_ACT_ALLOW, "socket", 1, &family, why) != 0)
            goto failed;
    }
    static const unsigned long requests[] = {FIONBIO, FIONREAD, TCGETS};
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        struct scmp_arg_cmp request = SCMP_A1 (SCMP_CMP_EQ, (scmp_datum_t) requests[i]);
        if (s_rule (ctx, SCMP_ACT_ALLOW, "ioctl", 1, &request, why) != 0)
            goto failed;
    }
    static const int options[] = {PR_SET_NAME, PR_GET_NAME, PR_GET_DUMPABLE,
                                  PR_CAPBSET_READ, PR_GET_NO_NEW_PRIVS, PR_GET_SECCOMP};
    for (size_t i = 0; !S_SANITIZER && i < sizeof options / sizeof options[0]; i++) {
        struct scmp_arg_cmp option = SCMP_A0 (SCMP_CMP_EQ, (scmp_datum_t) options[i]);
        if (s_rule (ctx, SCMP_ACT_ALLOW, "prctl", 1, &option, why) != 0)
            goto failed;
    }
    if (s_sanitizer_extras (ctx, why) != 0)
        goto failed;
    rc = seccomp_load (ctx);
    if (rc != 0) {
        s_fail (why, "seccomp_load: %s", strerror (-rc));
        goto failed;
    }
    seccomp_release (ctx);
    return 0;
failed:
    seccomp_release (ctx);
    return -1;
}

//  --- the whole thing ---------------------------------------------------------------

static const char *
s_mode_name (mesh_sandbox_seccomp_t mode)
{
    return mode == MESH_SANDBOX_SECCOMP_KILL  ? "kill"
         : mode == MESH_SANDBOX_SECCOMP_LOG ? "log" : "off";
}

int
mesh_confine_apply (const mesh_sandbox_config_t *cfg, pid_t expected_parent, char **why)
{
    assert (cfg);
    if (mesh_confine_parent (expected_parent, why) != 0
        || mesh_confine_privileges (cfg, why) != 0)
        return -1;
    long want_uid = cfg->user ? (long) getuid () : -1;
    int threads = 0;
    if (s_check_threads (want_uid, false, &threads, why) != 0)
        return -1;
    bool filtered = cfg->seccomp != MESH_SANDBOX_SECCOMP_OFF;
    if (filtered && s_filter (cfg, why) != 0)
        return -1;
    //  The filter went to every thread (TSYNC): check, including threads started since.
    if (filtered && s_check_threads (want_uid, true, &threads, why) != 0)
        return -1;
    char files[64];
    if (s_landlock_level > 0)
        snprintf (files, sizeof files, "writes only in state_dir/incidents (Landlock %d)",
                  s_landlock_level);
    else
        snprintf (files, sizeof files, "%s", s_landlock_level == 0
                  ? "file writes unrestricted (no Landlock in this kernel)"
                  : "file writes unrestricted");
    mesh_info ("confined: parent %d (dies with it), uid %d gid %d%s%s, capabilities none "
               "(bounding set %s), no_new_privs, %s, seccomp %s%s, %d threads",
               (int) expected_parent, (int) getuid (), (int) getgid (),
               cfg->user ? " as " : "", cfg->user ? cfg->user : "",
               s_bounding_left == 0 ? "empty" : "kept: no CAP_SETPCAP", files,
               s_mode_name (cfg->seccomp),
               S_SANITIZER && filtered ? " (+ leak checker's calls)" : "", threads);
    return 0;
}

long
mesh_confine_forbidden_call (void)
{
    return syscall (SYS_personality, 0xffffffffUL);
}
