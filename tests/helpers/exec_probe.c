/*  exec_probe - the program test_exec runs through the exec runner (agents/act/exec.c):
 *  it reports what it was given, then behaves as its flags say.  No shell is involved
 *  anywhere: this is what the runner executes directly.
 *
 *  The report, on stdout, one item per line (strings as JSON strings):
 *      argv "..."              each argument, argv[0] first
 *      env "NAME=value"        each environment entry, in order
 *      cwd "..."
 *      rlimit NAME SOFT HARD   cpu, as, nofile, nproc, core ("inf" for no limit)
 *      fds N,N,...             the open descriptors among 0..1023
 *      pid N / ppid N / pgid N / sid N
 *      uid N / gid N / groups N,N,...
 *      nnp N                   PR_GET_NO_NEW_PRIVS
 *      blocked N               signals blocked (count)
 *      ignored N               signals ignored (count)
 *      stdin "..."             with --stdin: what stdin held
 *      grandchild N            with --grandchild: its pid
 *
 *  Flags (before an optional "--"; everything after it is data, only reported):
 *      --quiet             no report
 *      --stdin             read stdin to its end first, and report it
 *      --ignore-term       ignore SIGTERM
 *      --grandchild MS     fork a process that keeps stdout and stderr open for MS ms
 *      --write N           write N bytes ('x') to stdout; --write-err N: to stderr
 *      --bytes HEX         write these bytes (hex) to stdout
 *      --close             close stdout and stderr (then go on: --sleep)
 *      --sleep MS          sleep (through signals it ignores)
 *      --spin              burn CPU until stopped
 *      --signal N          end by raising signal N
 *      --exit N            exit with N (default 0)
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>

extern char **environ;

static void
s_json_string (FILE *out, const char *text, size_t length)
{
    fputc ('"', out);
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char) text [i];
        if (c == '"' || c == '\\')
            fprintf (out, "\\%c", c);
        else
        if (c < 0x20 || c == 0x7f)
            fprintf (out, "\\u%04x", c);
        else
            fputc (c, out);
    }
    fputc ('"', out);
}

static void
s_limit (const char *name, int resource)
{
    struct rlimit limit;
    if (getrlimit (resource, &limit) != 0)
        return;
    printf ("rlimit %s ", name);
    if (limit.rlim_cur == RLIM_INFINITY)
        printf ("inf ");
    else
        printf ("%llu ", (unsigned long long) limit.rlim_cur);
    if (limit.rlim_max == RLIM_INFINITY)
        printf ("inf\n");
    else
        printf ("%llu\n", (unsigned long long) limit.rlim_max);
}

static void
s_sleep_ms (long ms)
{
    struct timespec left = { ms / 1000, (ms % 1000) * 1000000 };
    while (nanosleep (&left, &left) != 0 && errno == EINTR)
        ;
}

static void
s_write_n (int fd, long count)
{
    char block [8192];
    memset (block, 'x', sizeof block);
    while (count > 0) {
        size_t n = count < (long) sizeof block ? (size_t) count : sizeof block;
        ssize_t done = write (fd, block, n);
        if (done <= 0)
            return;
        count -= done;
    }
}

int
main (int argc, char *argv [])
{
    bool quiet = false, read_stdin = false, close_out = false, spin = false;
    long grandchild_ms = -1, write_out = 0, write_err = 0, sleep_ms = 0;
    int raise_signal = 0, code = 0;
    const char *bytes = NULL;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv [i];
        const char *value = i + 1 < argc ? argv [i + 1] : "0";
        if (!strcmp (flag, "--"))
            break;
        else
        if (!strcmp (flag, "--quiet"))
            quiet = true;
        else
        if (!strcmp (flag, "--stdin"))
            read_stdin = true;
        else
        if (!strcmp (flag, "--ignore-term"))
            signal (SIGTERM, SIG_IGN);
        else
        if (!strcmp (flag, "--close"))
            close_out = true;
        else
        if (!strcmp (flag, "--spin"))
            spin = true;
        else
        if (!strcmp (flag, "--grandchild") && ++i)
            grandchild_ms = atol (value);
        else
        if (!strcmp (flag, "--write") && ++i)
            write_out = atol (value);
        else
        if (!strcmp (flag, "--write-err") && ++i)
            write_err = atol (value);
        else
        if (!strcmp (flag, "--bytes") && ++i)
            bytes = value;
        else
        if (!strcmp (flag, "--sleep") && ++i)
            sleep_ms = atol (value);
        else
        if (!strcmp (flag, "--signal") && ++i)
            raise_signal = atoi (value);
        else
        if (!strcmp (flag, "--exit") && ++i)
            code = atoi (value);
    }
    char *input = NULL;
    size_t input_length = 0;
    if (read_stdin) {
        FILE *in = open_memstream (&input, &input_length);
        char block [4096];
        size_t n;
        while ((n = fread (block, 1, sizeof block, stdin)) > 0)
            fwrite (block, 1, n, in);
        fclose (in);
    }
    pid_t grandchild = 0;
    if (grandchild_ms >= 0) {
        fflush (stdout);
        grandchild = fork ();
        if (grandchild == 0) {
            s_sleep_ms (grandchild_ms);
            _exit (0);
        }
    }
    if (!quiet) {
        for (int i = 0; i < argc; i++) {
            printf ("argv ");
            s_json_string (stdout, argv [i], strlen (argv [i]));
            printf ("\n");
        }
        for (char **e = environ; *e; e++) {
            printf ("env ");
            s_json_string (stdout, *e, strlen (*e));
            printf ("\n");
        }
        char cwd [PATH_MAX];
        if (getcwd (cwd, sizeof cwd)) {
            printf ("cwd ");
            s_json_string (stdout, cwd, strlen (cwd));
            printf ("\n");
        }
        s_limit ("cpu", RLIMIT_CPU);
        s_limit ("as", RLIMIT_AS);
        s_limit ("nofile", RLIMIT_NOFILE);
        s_limit ("nproc", RLIMIT_NPROC);
        s_limit ("core", RLIMIT_CORE);
        printf ("fds ");
        const char *comma = "";
        for (int fd = 0; fd < 1024; fd++)
            if (fcntl (fd, F_GETFD) >= 0) {
                printf ("%s%d", comma, fd);
                comma = ",";
            }
        printf ("\n");
        printf ("pid %d\nppid %d\npgid %d\nsid %d\n", (int) getpid (), (int) getppid (),
                (int) getpgid (0), (int) getsid (0));
        printf ("uid %u\ngid %u\ngroups ", (unsigned) getuid (), (unsigned) getgid ());
        gid_t groups [256];
        int count = getgroups (256, groups);
        for (int i = 0; i < count; i++)
            printf ("%s%u", i ? "," : "", (unsigned) groups [i]);
        printf ("\nnnp %d\n", prctl (PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
        sigset_t mask;
        sigprocmask (SIG_BLOCK, NULL, &mask);
        int blocked = 0, ignored = 0;
        for (int sig = 1; sig < NSIG; sig++) {
            if (sigismember (&mask, sig) == 1)
                blocked++;
            struct sigaction action;
            if (sig != SIGTERM && sigaction (sig, NULL, &action) == 0
            &&  action.sa_handler == SIG_IGN)
                ignored++;
        }
        printf ("blocked %d\nignored %d\n", blocked, ignored);
        if (read_stdin) {
            printf ("stdin ");
            s_json_string (stdout, input ? input : "", input_length);
            printf ("\n");
        }
        if (grandchild)
            printf ("grandchild %d\n", (int) grandchild);
        fflush (stdout);
    }
    free (input);
    if (bytes) {
        for (const char *p = bytes; p [0] && p [1]; p += 2) {
            char hex [3] = { p [0], p [1], 0 };
            unsigned char byte = (unsigned char) strtoul (hex, NULL, 16);
            if (write (1, &byte, 1) != 1)
                break;
        }
    }
    s_write_n (1, write_out);
    s_write_n (2, write_err);
    if (close_out) {
        close (1);
        close (2);
    }
    if (spin) {
        volatile unsigned long n = 0;
        while (true)
            n++;
    }
    if (sleep_ms)
        s_sleep_ms (sleep_ms);
    if (raise_signal) {
        signal (raise_signal, SIG_DFL);
        raise (raise_signal);
    }
    return code;
}
