/*  mesh-agent - one agent process, started by meshd (never by hand in production).
 *
 *      mesh-agent --config FILE --agent NAME --instance ID --endpoint EP --brokers LIST
 *
 *  Loads the same config file as the supervisor and runs agent NAME; see agent.c.
 *  Exit codes: 0 drained on request, 64 usage, 78 config, 75 ledger unavailable
 *  (the supervisor restarts it), 1 anything else (confinement failing included).
 *
 *  Confinement (confine.h): the agent dies with its parent from the first line on,
 *  drops capabilities and file writes outside its state directory before any thread
 *  starts, and installs its system call filter once started, before the first event.
 *  MESH_TEST_FORBIDDEN_SYSCALL=1 (tests only) makes it call a system call outside the
 *  filter right after that.
 */
#include "agent.h"
#include "config.h"
#include "confine.h"
#include "log.h"

#include <czmq.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
               *brokers = NULL;
    static struct option opts[] = {{"config", 1, 0, 'c'},   {"agent", 1, 0, 'a'},
                                   {"instance", 1, 0, 'i'}, {"endpoint", 1, 0, 'e'},
                                   {"brokers", 1, 0, 'b'},  {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long (argc, argv, "c:a:i:e:b:", opts, NULL)) != -1) {
        switch (c) {
            case 'c': config = optarg; break;
            case 'a': agent = optarg; break;
            case 'i': instance = optarg; break;
            case 'e': endpoint = optarg; break;
            case 'b': brokers = optarg; break;
            default: return 64;
        }
    }
    if (!config || !agent || !endpoint || !brokers) {
        fprintf (stderr, "usage: mesh-agent --config FILE --agent NAME [--instance ID] "
                         "--endpoint EP --brokers LIST\n");
        return 64;
    }
    if (!instance)
        instance = agent;
    mesh_log_set_tag (instance);
    zsys_init ();
    zsys_set_logstream (NULL);
    mesh_config_t *cfg = NULL;
    if (mesh_config_load (config, &cfg, stderr) != 0)
        return 78;
    int landlock = 0;
    if (mesh_confine_privileges (&cfg->sandbox, &why) != 0
        || mesh_confine_filesystem (cfg->state_dir, &landlock, &why) != 0) {
        mesh_err ("cannot confine the agent: %s", why);
        free (why);
        mesh_config_destroy (&cfg);
        return 1;
    }
    mesh_agent_t *self = mesh_agent_new (cfg, agent, instance, endpoint, brokers);
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
