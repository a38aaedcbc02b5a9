/*  test_quarantine - poison messages: the in-flight area (common/inflight.c) and the
 *  strike table (daemon/quarantine.c).
 *
 *  The area is written the way an agent writes it (mesh_inflight_attach on a dup of the
 *  supervisor's descriptor, then set/clear/hold/done) and read back the way the
 *  supervisor reads it; hostile contents (an agent that wrote garbage) are written
 *  straight into the memfd and must be refused or ignored, never believed.
 */
#include "config.h"
#include "inflight.h"
#include "quarantine.h"
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static mesh_inflight_pos_t
s_pos (const char *topic, int32_t partition, int64_t offset)
{
    mesh_inflight_pos_t pos = {.partition = partition, .offset = offset};
    snprintf (pos.topic, sizeof pos.topic, "%s", topic);
    return pos;
}

//  An agent's mapping of the supervisor's area FD.
static mesh_inflight_t *
s_attach (int fd)
{
    const char *why = NULL;
    mesh_inflight_t *agent = mesh_inflight_attach (dup (fd), &why);
    assert_non_null (agent);
    return agent;
}

static void
test_slots_round_trip (void **state)
{
    const char *why = NULL;
    int fd = mesh_inflight_create (NULL, NULL, 0, &why);
    assert_true (fd >= 0);
    mesh_inflight_t *agent = s_attach (fd);
    mesh_inflight_set (agent, 0, "metrics", 3, 41);
    mesh_inflight_set (agent, 2, "other.topic", 0, 7);
    mesh_inflight_set (agent, 5, "metrics", 1, 9);
    mesh_inflight_clear (agent, 5);             //  handled: not in flight any more
    mesh_inflight_set (agent, 99, "metrics", 1, 1);     //  out of range: nothing
    mesh_inflight_set (agent, -1, "metrics", 1, 1);
    mesh_inflight_set (NULL, 0, "metrics", 1, 1);       //  no area: nothing
    mesh_inflight_pos_t busy[MESH_INFLIGHT_SLOTS];
    bool survived[1];
    size_t count = 0, rejected = 0;
    assert_int_equal (mesh_inflight_read (fd, 0, busy, &count, survived, &rejected, &why), 0);
    assert_int_equal (count, 2);
    assert_int_equal (rejected, 0);
    assert_string_equal (busy[0].topic, "metrics");
    assert_int_equal (busy[0].partition, 3);
    assert_int_equal (busy[0].offset, 41);
    assert_string_equal (busy[1].topic, "other.topic");
    assert_int_equal (busy[1].offset, 7);
    //  A shorter topic after a longer one in the same slot: no tail of the old name.
    mesh_inflight_set (agent, 2, "ab", 0, 8);
    assert_int_equal (mesh_inflight_read (fd, 0, busy, &count, survived, &rejected, &why), 0);
    assert_string_equal (busy[1].topic, "ab");
    mesh_inflight_destroy (&agent);
    assert_null (agent);
    close (fd);
}

//  What a hostile agent may write: every field out of bounds.
static void
test_hostile_area (void **state)
{
    const char *why = NULL;
    int fd = mesh_inflight_create (NULL, NULL, 0, &why);
    assert_true (fd >= 0);
    mesh_inflight_area_t area;
    assert_int_equal (pread (fd, &area, sizeof area, 0), sizeof area);
    area.slot_count = 1u << 30;                 //  never used by the reader
    area.mark_count = 1u << 30;
    //  slot 0: a valid one, kept.
    atomic_store (&area.slot[0].busy, 1);
    memcpy (area.slot[0].topic, "metrics", 7);
    area.slot[0].topic_len = 7;
    area.slot[0].offset = 12;
    //  slot 1: topic length past the buffer.
    atomic_store (&area.slot[1].busy, 1);
    area.slot[1].topic_len = 100000;
    //  slot 2: a topic with a character Kafka does not allow (and no NUL anywhere).
    atomic_store (&area.slot[2].busy, 1);
    memset (area.slot[2].topic, 'x', sizeof area.slot[2].topic);
    area.slot[2].topic[3] = '/';
    area.slot[2].topic_len = 10;
    //  slot 3: negative offset; slot 4: negative partition; slot 5: busy is 7.
    atomic_store (&area.slot[3].busy, 1);
    memcpy (area.slot[3].topic, "m", 1);
    area.slot[3].topic_len = 1;
    area.slot[3].offset = -5;
    atomic_store (&area.slot[4].busy, 1);
    memcpy (area.slot[4].topic, "m", 1);
    area.slot[4].topic_len = 1;
    area.slot[4].partition = -1;
    atomic_store (&area.slot[5].busy, 7);
    memcpy (area.slot[5].topic, "m", 1);
    area.slot[5].topic_len = 1;
    //  slot 6: a 250-byte name (Kafka's limit is 249), slot 7: "..".
    atomic_store (&area.slot[6].busy, 1);
    memset (area.slot[6].topic, 'a', 250);
    area.slot[6].topic_len = 250;
    atomic_store (&area.slot[7].busy, 1);
    memcpy (area.slot[7].topic, "..", 2);
    area.slot[7].topic_len = 2;
    assert_int_equal (pwrite (fd, &area, sizeof area, 0), sizeof area);
    mesh_inflight_pos_t busy[MESH_INFLIGHT_SLOTS];
    bool survived[MESH_INFLIGHT_MARKS];
    size_t count = 0, rejected = 0;
    assert_int_equal (mesh_inflight_read (fd, 2, busy, &count, survived, &rejected, &why), 0);
    assert_int_equal (count, 1);
    assert_int_equal (rejected, 7);
    assert_string_equal (busy[0].topic, "metrics");
    assert_int_equal (busy[0].offset, 12);
    assert_false (survived[0]);
    //  The header overwritten: nothing is taken.
    area.magic = 0;
    assert_int_equal (pwrite (fd, &area, sizeof area, 0), sizeof area);
    assert_int_equal (mesh_inflight_read (fd, 0, busy, &count, survived, &rejected, &why), -1);
    assert_int_equal (count, 0);
    assert_non_null (strstr (why, "header"));
    //  The size is sealed: the agent cannot shrink it under the reader.
    assert_int_not_equal (ftruncate (fd, 16), 0);
    close (fd);
    //  An agent refuses what is not an area.
    int other = memfd_create ("x", MFD_CLOEXEC);
    assert_int_equal (ftruncate (other, sizeof area), 0);
    assert_null (mesh_inflight_attach (other, &why));
    assert_null (mesh_inflight_attach (open ("/dev/null", O_RDONLY), &why));
}

//  Marks: quarantined ones are skipped; a suspect handled to the end is flagged survived,
//  once every hold of it is done.
static void
test_marks (void **state)
{
    mesh_inflight_pos_t marks[3] = {s_pos ("metrics", 0, 5), s_pos ("metrics", 0, 9),
                                    s_pos ("metrics", 1, 9)};
    bool quarantined[3] = {true, false, false};
    const char *why = NULL;
    int fd = mesh_inflight_create (marks, quarantined, 3, &why);
    assert_true (fd >= 0);
    mesh_inflight_t *agent = s_attach (fd);
    assert_int_equal (mesh_inflight_marks (agent), 3);
    assert_true (mesh_inflight_quarantined (agent, "metrics", 0, 5));
    assert_false (mesh_inflight_quarantined (agent, "metrics", 0, 9));
    assert_false (mesh_inflight_quarantined (agent, "metric", 0, 5));   //  prefix only
    assert_false (mesh_inflight_quarantined (agent, "metricsx", 0, 5));
    assert_false (mesh_inflight_quarantined (agent, "metrics", 1, 5));
    //  [0,9]: two incidents held, one done: not yet survived.
    mesh_inflight_hold (agent, "metrics", 0, 9);
    mesh_inflight_hold (agent, "metrics", 0, 9);
    mesh_inflight_done (agent, "metrics", 0, 9);
    mesh_inflight_pos_t busy[MESH_INFLIGHT_SLOTS];
    bool survived[3];
    size_t count = 0, rejected = 0;
    assert_int_equal (mesh_inflight_read (fd, 3, busy, &count, survived, &rejected, &why), 0);
    assert_false (survived[1]);
    mesh_inflight_done (agent, "metrics", 0, 9);
    //  [1,9]: no incident, done at once.  [0,5] quarantined: never survived.
    mesh_inflight_done (agent, "metrics", 1, 9);
    mesh_inflight_done (agent, "metrics", 0, 5);
    assert_int_equal (mesh_inflight_read (fd, 3, busy, &count, survived, &rejected, &why), 0);
    assert_false (survived[0]);
    assert_true (survived[1]);
    assert_true (survived[2]);
    mesh_inflight_destroy (&agent);
    close (fd);
}

static void
test_strikes (void **state)
{
    char dir[] = "/tmp/test_quarantine.XXXXXX";
    assert_non_null (mkdtemp (dir));
    char path[128];
    snprintf (path, sizeof path, "%s/quarantine.json", dir);
    mesh_quarantine_t *table = mesh_quarantine_new (path);
    mesh_inflight_pos_t poison = s_pos ("metrics", 2, 100), other = s_pos ("metrics", 2, 101);
    bool reached = true;
    assert_int_equal (mesh_quarantine_strike (table, "ops", &poison, 3, &reached), 1);
    assert_false (reached);
    assert_int_equal (mesh_quarantine_strike (table, "ops", &other, 3, &reached), 1);
    assert_int_equal (mesh_quarantine_strike (table, "ops", &poison, 3, &reached), 2);
    assert_false (reached);
    //  Another agent's strikes are its own.
    assert_int_equal (mesh_quarantine_strike (table, "billing", &poison, 3, &reached), 1);
    assert_int_equal (mesh_quarantine_suspects (table, "ops"), 2);
    //  The table survives meshd: a new one reads the file.
    mesh_quarantine_destroy (&table);
    table = mesh_quarantine_new (path);
    assert_int_equal (mesh_quarantine_strike (table, "ops", &poison, 3, &reached), 3);
    assert_true (reached);
    assert_int_equal (mesh_quarantine_strike (table, "ops", &poison, 3, &reached), 4);
    assert_false (reached);                     //  recorded once
    assert_int_equal (mesh_quarantine_count (table, "ops"), 1);
    assert_int_equal (mesh_quarantine_count (table, "billing"), 0);
    //  Handled to the end: strikes gone; a quarantined one stays.
    mesh_quarantine_clear (table, "ops", &other);
    mesh_quarantine_clear (table, "ops", &poison);
    assert_int_equal (mesh_quarantine_suspects (table, "ops"), 0);
    assert_int_equal (mesh_quarantine_count (table, "ops"), 1);
    //  Marks: the quarantined first.
    mesh_quarantine_strike (table, "ops", &other, 3, &reached);
    mesh_inflight_pos_t marks[MESH_INFLIGHT_MARKS];
    bool quarantined[MESH_INFLIGHT_MARKS];
    assert_int_equal (mesh_quarantine_marks (table, "ops", marks, quarantined,
                                             MESH_INFLIGHT_MARKS), 2);
    assert_true (quarantined[0]);
    assert_int_equal (marks[0].offset, 100);
    assert_false (quarantined[1]);
    assert_int_equal (mesh_quarantine_marks (table, "ops", marks, quarantined, 1), 1);
    assert_true (quarantined[0]);
    mesh_quarantine_destroy (&table);

    //  A file that does not parse: named with line and column, moved aside, a fresh start.
    FILE *file = fopen (path, "w");
    fputs ("{\"version\":1,\n \"positions\": [}", file);
    fclose (file);
    table = mesh_quarantine_new (path);
    assert_int_equal (mesh_quarantine_count (table, "ops"), 0);
    char aside[160];
    snprintf (aside, sizeof aside, "%s.bad", path);
    assert_int_equal (access (aside, F_OK), 0);
    mesh_quarantine_destroy (&table);
    //  Invalid entries are skipped, valid ones kept.
    file = fopen (path, "w");
    fputs ("{\"version\":1,\"positions\":[{\"agent\":\"ops\",\"topic\":\"a/b\",\"partition\":0,"
           "\"offset\":1,\"strikes\":1},{\"agent\":\"ops\",\"topic\":\"m\",\"partition\":-1,"
           "\"offset\":1,\"strikes\":1},{\"agent\":\"ops\",\"topic\":\"m\",\"partition\":0,"
           "\"offset\":1,\"strikes\":1000},{\"agent\":\"ops\",\"topic\":\"m\",\"partition\":0,"
           "\"offset\":7,\"strikes\":3,\"quarantined\":true,\"at\":1}]}", file);
    fclose (file);
    table = mesh_quarantine_new (path);
    assert_int_equal (mesh_quarantine_count (table, "ops"), 1);
    assert_int_equal (mesh_quarantine_suspects (table, "ops"), 0);
    mesh_quarantine_destroy (&table);
    unlink (path);
    unlink (aside);
    rmdir (dir);
}

//  Bounded: past MESH_QUARANTINE_MAX positions the oldest suspect goes first.
static void
test_bounded (void **state)
{
    mesh_quarantine_t *table = mesh_quarantine_new (NULL);
    bool reached;
    mesh_inflight_pos_t q = s_pos ("m", 0, 0);
    mesh_quarantine_strike (table, "ops", &q, 1, &reached);
    assert_true (reached);
    for (int64_t i = 1; i <= MESH_QUARANTINE_MAX + 10; i++) {
        mesh_inflight_pos_t p = s_pos ("m", 0, i);
        mesh_quarantine_strike (table, "ops", &p, 3, &reached);
    }
    assert_int_equal (mesh_quarantine_count (table, "ops"), 1);
    assert_int_equal (mesh_quarantine_suspects (table, "ops"), MESH_QUARANTINE_MAX - 1);
    mesh_quarantine_destroy (&table);
}

//  daemon.restart.quarantine_after: 3 in the sample config; above 100 is refused, with
//  the key's position.
static void
test_config_key (void **state)
{
    mesh_config_t *cfg = NULL;
    assert_int_equal (mesh_config_load ("config/meshd.yaml", &cfg, stderr), 0);
    assert_int_equal (cfg->quarantine_after, 3);
    mesh_config_destroy (&cfg);
    FILE *in = fopen ("config/meshd.yaml", "r");
    assert_non_null (in);
    char path[] = "config/.test_quarantine.XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    FILE *out = fdopen (fd, "w");
    char line[4096];
    while (fgets (line, sizeof line, in)) {
        char *key = strstr (line, "quarantine_after: 3");
        if (key && line[0] == ' ')
            strcpy (key, "quarantine_after: 101\n");
        fputs (line, out);
    }
    fclose (in);
    fclose (out);
    char *text = NULL;
    size_t size;
    FILE *err = open_memstream (&text, &size);
    int problems = mesh_config_load (path, &cfg, err);
    fclose (err);
    unlink (path);
    assert_int_equal (problems, 1);
    assert_null (cfg);
    assert_non_null (strstr (text, "quarantine_after"));
    assert_non_null (strstr (text, path));
    free (text);
}

int
main (void)
{
    mesh_log_set_tag ("test");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_slots_round_trip),
        cmocka_unit_test (test_hostile_area),
        cmocka_unit_test (test_marks),
        cmocka_unit_test (test_strikes),
        cmocka_unit_test (test_bounded),
        cmocka_unit_test (test_config_key),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
