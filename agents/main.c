/*  mesh-agent - one agent process, started by meshd (never by hand in production).
 *
 *      mesh-agent --config FILE --agent NAME --instance ID --endpoint EP --brokers LIST
 *                 --auth-fd N [--inflight-fd M] [--snapshot SNAP --sha256 HEX]
 *                 [--rules-sha256 HEX] [--log auto|journal|stderr]
 *      mesh-agent --version | --help
 *
 *  Runs agent NAME of the config the supervisor checked and recorded; see agent.c.
 *  meshd passes the snapshot it wrote of the config FILE (SNAP, in the runtime
 *  directory) and its SHA-256: the bytes are read once, hashed, and parsed only if the
 *  hash is HEX (relative paths and messages are FILE's).  --rules-sha256 names the rule
 *  set meshd archived for this agent (state_dir/rules/HEX/), which every rule chain of
 *  this process is built from.  So an agent restarted after FILE or a rule file was
 *  edited runs what was recorded; only a reload changes it.  Without --snapshot (by
 *  hand, in tests) FILE and the rule files are loaded as they are.
 *  Descriptor N holds the token meshd made for this life of the instance: it is read
 *  (exactly MESH_PROTO_TOKEN_SIZE bytes, then end of file) and closed before anything
 *  else, after the process made itself non-dumpable, so that another process of the
 *  same user cannot read the token from /proc/PID/mem; every socket to the
 *  supervisor authenticates with it.  Descriptor M (meshd always passes one) is this
 *  life's in-flight area (common/inflight.h): mapped, then closed, before the config is
 *  read; the threads write there what they handle, so that meshd can tell which message
 *  a death happened on, and meshd wrote there which messages are quarantined.
 *  --log (default: $MESH_LOG_TARGET, which meshd sets when it was given --log, else auto)
 *  says where diagnostics go (common/log.h); every line carries MESH_AGENT in the journal.
 *  Exit codes: 0 drained on request (and --version, --help), 64 usage, 78 config, 75 ledger unavailable
 *  (the supervisor restarts it), 1 anything else (confinement failing included).
 *
 *  Confinement (confine.h): the agent dies with its parent from the first line on,
 *  drops capabilities and file writes outside its state directory before any thread
 *  starts, and installs its system call filter once started, before the first event.
 *  MESH_TEST_FORBIDDEN_SYSCALL=1 (tests only) makes it call a system call outside the
 *  filter right after that.  MESH_TEST_POISON (tests only) is described in agent.c.
 */
#include "agent.h"
#include "config.h"
#include "confine.h"
#include "inflight.h"
#include "log.h"
#include "proto.h"
#include "record.h"
#include "version.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: mesh-agent --config FILE --agent NAME [--instance ID] "
                  "--endpoint EP --brokers LIST --auth-fd N [--inflight-fd M] "
                  "[--snapshot SNAP --sha256 HEX] [--rules-sha256 HEX] "
                  "[--log auto|journal|stderr]\n"
                  "       mesh-agent --version | --help\n"
                  "(meshd starts agents; see mesh-agent(8))\n");
}

//  Read the token from FD_TEXT's descriptor and close it.  0, or -1 with a message on stderr.
static int
s_read_token (const char *fd_text, uint8_t *token)
{
    char *end = NULL;
    errno = 0;
    long fd = strtol (fd_text, &end, 10);
    if (errno || !end || *end || fd < 3 || fd > INT_MAX) {
        fprintf (stderr, "mesh-agent: --auth-fd '%s' is not a descriptor number (3 or more); "
                         "meshd passes one when it starts an agent\n", fd_text);
        return -1;
    }
    size_t got = 0;
    uint8_t extra;
    while (got < MESH_PROTO_TOKEN_SIZE) {
        ssize_t n = read ((int) fd, token + got, MESH_PROTO_TOKEN_SIZE - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    ssize_t more = got == MESH_PROTO_TOKEN_SIZE ? read ((int) fd, &extra, 1) : 0;
    int err = errno;
    close ((int) fd);
    if (got != MESH_PROTO_TOKEN_SIZE || more != 0) {
        fprintf (stderr, "mesh-agent: --auth-fd %ld held %s than a %d-byte token%s%s; "
                         "only meshd can start an agent\n", fd,
                 got != MESH_PROTO_TOKEN_SIZE ? "less" : "more", MESH_PROTO_TOKEN_SIZE,
                 got < MESH_PROTO_TOKEN_SIZE && err ? ": " : "",
                 got < MESH_PROTO_TOKEN_SIZE && err ? strerror (err) : "");
        sodium_memzero (token, MESH_PROTO_TOKEN_SIZE);
        return -1;
    }
    return 0;
}

//  Map the in-flight area on FD_TEXT's descriptor (NULL without one).  -1 with a message
//  on stderr when the descriptor is not one.
static int
s_attach_inflight (const char *fd_text, mesh_inflight_t **inflight_p)
{
    *inflight_p = NULL;
    if (!fd_text)
        return 0;
    char *end = NULL;
    errno = 0;
    long fd = strtol (fd_text, &end, 10);
    const char *why = "not a descriptor number (3 or more)";
    if (!errno && end && !*end && fd >= 3 && fd <= INT_MAX
        && (*inflight_p = mesh_inflight_attach ((int) fd, &why)) != NULL)
        return 0;
    fprintf (stderr, "mesh-agent: --inflight-fd '%s': %s; meshd passes one when it starts "
                     "an agent\n", fd_text, why);
    return -1;
}

int
main (int argc, char **argv)
{
    //  As early as possible: die with the supervisor (it forks from its main thread).
    pid_t parent = getppid ();
    char *why = NULL;
    if (mesh_confine_parent (parent, &why) != 0) {
        fprintf (stderr, "<3>mesh-agent: %s\n", why);
        return 1;
    }
    const char *config = NULL, *agent = NULL, *instance = NULL, *endpoint = NULL,
               *brokers = NULL, *auth_fd = NULL, *inflight_fd = NULL, *snapshot = NULL,
               *sha256 = NULL, *rules_sha256 = NULL;
    static struct option opts[] = {{"config", 1, 0, 'c'},   {"agent", 1, 0, 'a'},
                                   {"instance", 1, 0, 'i'}, {"endpoint", 1, 0, 'e'},
                                   {"brokers", 1, 0, 'b'},  {"auth-fd", 1, 0, 'A'},
                                   {"inflight-fd", 1, 0, 'F'}, {"snapshot", 1, 0, 'S'},
                                   {"sha256", 1, 0, 'H'},   {"rules-sha256", 1, 0, 'R'},
                                   {"log", 1, 0, 'L'},      {"version", 0, 0, 'V'},
                                   {"help", 0, 0, 'h'},     {0, 0, 0, 0}};
    const char *log_target = NULL;
    int c;
    //  Not dumpable before the token is read: no same-user process may read our memory.
    prctl (PR_SET_DUMPABLE, 0, 0, 0, 0);
    while ((c = getopt_long (argc, argv, "c:a:i:e:b:", opts, NULL)) != -1) {
        switch (c) {
            case 'c': config = optarg; break;
            case 'a': agent = optarg; break;
            case 'i': instance = optarg; break;
            case 'e': endpoint = optarg; break;
            case 'b': brokers = optarg; break;
            case 'A': auth_fd = optarg; break;
            case 'F': inflight_fd = optarg; break;
            case 'S': snapshot = optarg; break;
            case 'H': sha256 = optarg; break;
            case 'R': rules_sha256 = optarg; break;
            case 'L': log_target = optarg; break;
            case 'V': mesh_version_print (stdout, "mesh-agent"); return 0;
            case 'h': s_usage (stdout); return 0;
            default: s_usage (stderr); return 64;
        }
    }
    if (!config || !agent || !endpoint || !brokers || !auth_fd || !snapshot != !sha256
        || optind < argc) {
        s_usage (stderr);
        return 64;
    }
    mesh_log_target_t target = MESH_LOG_AUTO;
    if (log_target && mesh_log_target_parse (log_target, &target) != 0) {
        fprintf (stderr, "mesh-agent: --log '%s': expected auto, journal or stderr\n",
                 log_target);
        return 64;
    }
    if (log_target)
        mesh_log_set_target (target);
    if (!instance)
        instance = agent;
    uint8_t token[MESH_PROTO_TOKEN_SIZE];
    if (sodium_init () < 0 || s_read_token (auth_fd, token) != 0)
        return 64;
    mesh_record_auth_set (instance, token, sizeof token);
    sodium_memzero (token, sizeof token);
    mesh_inflight_t *inflight = NULL;
    if (s_attach_inflight (inflight_fd, &inflight) != 0)
        return 64;
    mesh_log_set_tag (instance);
    mesh_log_set_agent (agent);
    zsys_init ();
    zsys_set_logstream (NULL);
    mesh_config_t *cfg = NULL;
    if ((snapshot ? mesh_config_load_snapshot (config, snapshot, sha256, &cfg, stderr)
                  : mesh_config_load (config, &cfg, stderr)) != 0) {
        mesh_inflight_destroy (&inflight);
        return 78;
    }
    mesh_agent_config_t *acfg = (mesh_agent_config_t *) mesh_config_agent (cfg, agent);
    if (acfg && rules_sha256 && !(acfg->rules_hash = strdup (rules_sha256))) {
        mesh_inflight_destroy (&inflight);
        mesh_config_destroy (&cfg);
        return 1;
    }
    int landlock = 0;
    if (mesh_confine_privileges (&cfg->sandbox, &why) != 0
        || mesh_confine_filesystem (cfg->state_dir, &landlock, &why) != 0) {
        mesh_err ("cannot confine the agent: %s", why);
        free (why);
        mesh_inflight_destroy (&inflight);
        mesh_config_destroy (&cfg);
        return 1;
    }
    mesh_agent_t *self = mesh_agent_new (cfg, agent, instance, endpoint, brokers);
    if (self)
        mesh_agent_set_inflight (self, &inflight);
    mesh_inflight_destroy (&inflight);
    if (self && mesh_confine_apply (&cfg->sandbox, parent, &why) != 0) {
        mesh_err ("cannot confine the agent: %s", why);
        free (why);
        mesh_agent_destroy (&self);
        mesh_config_destroy (&cfg);
        return 1;
    }
    if (self && getenv ("MESH_TEST_FORBIDDEN_SYSCALL")
        && strcmp (getenv ("MESH_TEST_FORBIDDEN_SYSCALL"), "1") == 0) {
        mesh_warn ("test hook: calling personality (0xffffffff), outside the filter");
        mesh_confine_forbidden_call ();
    }
    int rc = self ? mesh_agent_run (self) : 1;
    mesh_agent_destroy (&self);
    mesh_config_destroy (&cfg);
    return rc;
}
