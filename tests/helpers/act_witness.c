/*  act_witness - the program of the tests' exec actions: it bears witness to every run.
 *
 *      act_witness [--sleep-ms N] [--exit N] ARG...
 *
 *  Appends one JSON line to the file named by $ACT_WITNESS_FILE (one write(2) with
 *  O_APPEND, so concurrent runs never interleave): {"id": $MESH_DECISION_ID, "action":
 *  $MESH_ACTION, "agent": $MESH_AGENT, "argv": [every argument], "pid"}.  Then sleeps
 *  --sleep-ms (so a test can kill around the execution) and exits with --exit (0).
 *  Used by tests/integration/act_exec.sh and act_kill.sh.
 */
#include <jansson.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int
main (int argc, char **argv)
{
    long sleep_ms = 0;
    int code = 0;
    json_t *args = json_array ();
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "--sleep-ms") && i + 1 < argc)
            sleep_ms = atol (argv[++i]);
        else if (!strcmp (argv[i], "--exit") && i + 1 < argc)
            code = atoi (argv[++i]);
        else
            json_array_append_new (args, json_string (argv[i]));
    }
    const char *path = getenv ("ACT_WITNESS_FILE");
    if (!path) {
        fprintf (stderr, "act_witness: ACT_WITNESS_FILE is not set\n");
        return 2;
    }
    const char *id = getenv ("MESH_DECISION_ID"), *action = getenv ("MESH_ACTION");
    const char *agent = getenv ("MESH_AGENT");
    json_t *line = json_pack ("{s:s?, s:s?, s:s?, s:o, s:i}", "id", id, "action", action,
                              "agent", agent, "argv", args, "pid", (int) getpid ());
    char *text = json_dumps (line, JSON_COMPACT);
    json_decref (line);
    if (!text)
        return 2;
    size_t len = strlen (text);
    text[len] = '\n';
    int fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || write (fd, text, len + 1) != (ssize_t) (len + 1)) {
        perror ("act_witness");
        return 2;
    }
    close (fd);
    free (text);
    if (sleep_ms > 0) {
        struct timespec ts = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000L };
        nanosleep (&ts, NULL);
    }
    return code;
}
