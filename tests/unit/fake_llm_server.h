/*  fake_llm_server - start, stop and read tests/helpers/fake_llm from a unit test.
 *
 *  Included by the tests that talk HTTP to it (test_backend.c, test_backend_faults.c);
 *  the includer defines s_dir (its temporary directory, created in its setup) and
 *  s_fake_llm (filled by s_find_fake_llm: $FAKE_LLM, else $B/tests/fake_llm with B
 *  defaulting to build, else a copy compiled into s_dir with tests/cc.sh).  Run from
 *  the repository root.
 */
#ifndef FAKE_LLM_SERVER_H
#define FAKE_LLM_SERVER_H

typedef struct {
    pid_t pid;
    int port;
    char url[64];
    const char *requests;           //  the request log
} s_server_t;

__attribute__ ((unused)) static void
s_find_fake_llm (void)
{
    const char *env = getenv ("FAKE_LLM");
    if (env && access (env, X_OK) == 0) {
        snprintf (s_fake_llm, sizeof s_fake_llm, "%s", env);
        return;
    }
    const char *build = getenv ("B") ? getenv ("B") : "build";
    snprintf (s_fake_llm, sizeof s_fake_llm, "%s/tests/fake_llm", build);
    if (access (s_fake_llm, X_OK) == 0)
        return;
    snprintf (s_fake_llm, sizeof s_fake_llm, "%s/fake_llm", s_dir);
    char command[8500];
    snprintf (command, sizeof command, "tests/cc.sh %s tests/helpers/fake_llm.c", s_fake_llm);
    assert_int_equal (system (command), 0);
}

//  Start fake_llm in MODE with RESPONSES (may be NULL) and EXTRA arguments (a
//  NULL-terminated list, may be NULL).
__attribute__ ((unused)) static void
s_server_start_with (s_server_t *server, const char *mode, const char *responses,
                     const char *const *extra)
{
    static int serial;
    char port_file[4200], requests[4200], hang[] = "20000";
    snprintf (port_file, sizeof port_file, "%s/port.%d", s_dir, serial);
    snprintf (requests, sizeof requests, "%s/requests.%d", s_dir, serial++);
    unlink (port_file);
    server->requests = strdup (requests);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        char *argv[64] = { s_fake_llm, "--port-file", port_file, "--mode", (char *) mode,
                           "--requests", requests, "--hang-ms", hang };
        int argc = 9;
        if (responses) {
            argv[argc++] = "--responses";
            argv[argc++] = (char *) responses;
        }
        for (int i = 0; extra && extra[i] && argc < 63; i++)
            argv[argc++] = (char *) extra[i];
        argv[argc] = NULL;
        execv (s_fake_llm, argv);
        _exit (127);
    }
    server->pid = pid;
    //  Wait for the port file (a startup wait, not a timing assertion).
    for (int i = 0; i < 1000; i++) {
        FILE *file = fopen (port_file, "r");
        if (file) {
            int ok = fscanf (file, "%d", &server->port);
            fclose (file);
            if (ok == 1 && server->port > 0) {
                snprintf (server->url, sizeof server->url, "http://127.0.0.1:%d", server->port);
                return;
            }
        }
        int status;
        assert_int_equal (waitpid (pid, &status, WNOHANG), 0);     //  still alive
        usleep (10000);
    }
    fail_msg ("fake_llm did not start");
}

__attribute__ ((unused)) static void
s_server_start (s_server_t *server, const char *mode, const char *responses)
{
    s_server_start_with (server, mode, responses, NULL);
}

__attribute__ ((unused)) static void
s_server_stop (s_server_t *server)
{
    kill (server->pid, SIGTERM);
    int status = 0;
    assert_int_equal (waitpid (server->pid, &status, 0), server->pid);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    free ((char *) server->requests);
}

//  The request log of SERVER as a JSON array.
__attribute__ ((unused)) static json_t *
s_requests (const s_server_t *server)
{
    json_t *list = json_array ();
    FILE *file = fopen (server->requests, "r");
    if (!file)
        return list;
    char line[65536];
    while (fgets (line, sizeof line, file)) {
        json_t *entry = json_loads (line, 0, NULL);
        assert_non_null (entry);
        json_array_append_new (list, entry);
    }
    fclose (file);
    return list;
}

#endif
