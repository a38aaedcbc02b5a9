/*  fuzz_common - temporary files, a loopback HTTP server and the agent world for the
 *  libFuzzer harnesses.  See fuzz_common.h.
 */
#include "fuzz_common.h"
#include "log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
fuzz_quiet (void)
{
    mesh_log_set_level (0);
    signal (SIGPIPE, SIG_IGN);
}

//  --- files -------------------------------------------------------------------------------

//  In memory when the system has /dev/shm: the harnesses rewrite a file per input.
static char s_dir[64];
static char s_path[4][600];
static char s_names[4][64];

static void
s_cleanup (void)
{
    for (int i = 0; i < 4; i++)
        if (s_path[i][0])
            unlink (s_path[i]);
    rmdir (s_dir);
}

const char *
fuzz_dir (void)
{
    static bool made;
    if (!made) {
        snprintf (s_dir, sizeof s_dir, "%s/meshd-fuzz.XXXXXX",
                  access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp (s_dir))
            abort ();
        made = true;
        atexit (s_cleanup);
    }
    return s_dir;
}

const char *
fuzz_file (const char *name, const uint8_t *data, size_t size)
{
    int slot = 0;
    while (slot < 4 && s_names[slot][0] && strcmp (s_names[slot], name))
        slot++;
    if (slot == 4)
        abort ();
    snprintf (s_names[slot], sizeof s_names[slot], "%s", name);
    snprintf (s_path[slot], sizeof s_path[slot], "%s/%s", fuzz_dir (), name);
    int fd = open (s_path[slot], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        abort ();
    for (size_t done = 0; done < size;) {
        ssize_t n = write (fd, data + done, size - done);
        if (n <= 0)
            abort ();
        done += (size_t) n;
    }
    close (fd);
    return s_path[slot];
}

//  --- loopback HTTP ----------------------------------------------------------------------

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned s_status = 200;
static uint8_t *s_body;
static size_t s_body_size;
static char s_url[64];

static enum MHD_Result
s_handler (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    //  Swallow the request body, then answer.
    if (!*con_cls) {
        *con_cls = (void *) 1;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock (&s_lock);
    struct MHD_Response *response =
      MHD_create_response_from_buffer (s_body_size, s_body, MHD_RESPMEM_MUST_COPY);
    unsigned status = s_status;
    pthread_mutex_unlock (&s_lock);
    MHD_add_response_header (response, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

const char *
fuzz_http_url (void)
{
    static struct MHD_Daemon *daemon;
    if (daemon)
        return s_url;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (0x7f000001) };
    daemon = MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
                               NULL, s_handler, NULL, MHD_OPTION_SOCK_ADDR, &addr,
                               MHD_OPTION_END);
    if (!daemon)
        abort ();
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
    snprintf (s_url, sizeof s_url, "http://127.0.0.1:%u", (unsigned) info->port);
    return s_url;
}

void
fuzz_http_answer (unsigned status, const uint8_t *body, size_t size)
{
    pthread_mutex_lock (&s_lock);
    free (s_body);
    s_body = malloc (size ? size : 1);
    if (!s_body)
        abort ();
    memcpy (s_body, body, size);
    s_body_size = size;
    s_status = status;
    pthread_mutex_unlock (&s_lock);
}

//  --- the agent world -------------------------------------------------------------------

static mesh_param_spec_t s_scale_params[] = {
    { .name = "service", .type = MESH_PARAM_STRING, .required = true,
      .pattern = "[a-z][a-z0-9-]{0,62}", .max_length = 64 },
    { .name = "replicas", .type = MESH_PARAM_INTEGER, .required = true,
      .has_min = true, .min = 1, .has_max = true, .max = 10 },
};
static mesh_param_spec_t s_escalate_params[] = {
    { .name = "summary", .type = MESH_PARAM_STRING, .required = false, .max_length = 500 },
};
static mesh_action_spec_t s_actions[2] = {
    { .name = "scale_out", .kind = MESH_ACTION_KAFKA, .topic = "mesh.actions",
      .description = "Add replicas to the service behind the anomalous series",
      .params = s_scale_params, .param_count = 2 },
    { .name = "escalate", .kind = MESH_ACTION_LOG,
      .description = "Ask a human to look; take no automatic action",
      .params = s_escalate_params, .param_count = 1 },
};
static char *s_agent_actions[] = { "scale_out", "escalate" };
static char *s_rules[] = { "rules/action_allowlist.lua", "rules/confidence_floor.lua" };
static mesh_backend_config_t s_backend;
static fuzz_world_t s_world;

fuzz_world_t *
fuzz_world (void)
{
    if (s_world.cfg.agents)
        return &s_world;
    s_backend = (mesh_backend_config_t) {
        .name = "model", .kind = MESH_BACKEND_OPENAI, .url = (char *) fuzz_http_url (),
        .model = "tiny", .timeout_ms = 5000, .connect_timeout_ms = 2000,
        .json_schema = true, .flavor = MESH_FLAVOR_OPENAI, .stream = false,
        .first_token_timeout_ms = 5000, .idle_timeout_ms = 5000, .retry_attempts = 1,
        //  Inputs are judged one by one: only 1000 failures in a row open the circuit
        //  (for 100 ms, then the next input probes), the server is probed once.
        .circuit_failures = 1000, .circuit_open_ms = 100, .probe_interval_s = 86400 };
    s_world.agent = (mesh_agent_config_t) {
        .name = "ops", .actions = s_agent_actions, .action_count = 2, .fallback = "escalate",
        .rules = s_rules, .rule_count = 2,
        .reason = { .backend = "model", .max_steps = 1, .max_tokens = 256,
                    .incident_token_cap = 1000000, .budget_tokens = 1000000000,
                    .budget_window_s = 3600, .queue_size = 8, .workers = 1 } };
    s_world.cfg = (mesh_config_t) {
        .lua_instructions = 1000000, .lua_memory = 8 << 20, .lua_time_ms = 200,
        .backends = &s_backend, .backend_count = 1, .actions = s_actions, .action_count = 2,
        .agents = &s_world.agent, .agent_count = 1 };
    return &s_world;
}
