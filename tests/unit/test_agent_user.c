/*  test_agent_user - what meshd prepares and checks for agents under sandbox.user.
 *
 *  The account is `nobody` (every Debian system has it).  Everything but the first
 *  test needs root (chown, and a child that takes another identity); skipped otherwise;
 *  the test host runs them as root.  Each test works in its own scratch directory.
 */
#include "agent_user.h"
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char s_dir[64];

static int
s_setup (void **state)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/test_agent_user.XXXXXX");
    assert_non_null (mkdtemp (s_dir));
    return 0;
}

static int
s_teardown (void **state)
{
    char command[128];
    snprintf (command, sizeof command, "rm -rf '%s'", s_dir);
    assert_int_equal (system (command), 0);
    return 0;
}

//  A config naming USER, with runtime_dir, state_dir and the config file under s_dir.
static mesh_config_t
s_config (char *user, char *group)
{
    static char path[128], run[128], state[128];
    snprintf (path, sizeof path, "%s/meshd.yaml", s_dir);
    snprintf (run, sizeof run, "%s/run", s_dir);
    snprintf (state, sizeof state, "%s/state", s_dir);
    mesh_config_t cfg = {.path = path, .runtime_dir = run, .state_dir = state};
    cfg.sandbox.user = user;
    cfg.sandbox.group = group;
    return cfg;
}

//  Problems printed by FN for CFG, in *text (caller frees).
static int
s_problems (const mesh_config_t *cfg, mesh_agent_user_t **au_p, char **text)
{
    size_t size = 0;
    FILE *out = open_memstream (text, &size);
    int problems = mesh_agent_user_new (cfg, au_p, out);
    fclose (out);
    return problems;
}

static void
s_write (const char *path, const char *text, mode_t mode)
{
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs (text, file);
    fclose (file);
    assert_int_equal (chmod (path, mode), 0);
}

static void
test_no_user (void **state)
{
    mesh_config_t cfg = s_config (NULL, NULL);
    mesh_agent_user_t *au = (mesh_agent_user_t *) &cfg;
    char *text = NULL;
    assert_int_equal (s_problems (&cfg, &au, &text), 0);
    assert_null (au);
    assert_string_equal (text, "");
    free (text);
}

static void
test_account_problems (void **state)
{
    if (geteuid () != 0)
        skip ();
    struct {
        char *user, *group, *message;
    } cases[] = {
        {"no-such-user-here", NULL, "sandbox.user: no user 'no-such-user-here' on this system"},
        {"root", NULL, "sandbox.user: 'root' has uid 0 (root)"},
        {"nobody", "no-such-group-here", "sandbox.group: no group 'no-such-group-here'"},
        {"nobody", "root", "sandbox.group: 'root' has gid 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mesh_config_t cfg = s_config (cases[i].user, cases[i].group);
        mesh_agent_user_t *au = NULL;
        char *text = NULL;
        assert_int_equal (s_problems (&cfg, &au, &text), 1);
        assert_null (au);
        if (!strstr (text, cases[i].message))
            fail_msg ("case %zu: no '%s' in '%s'", i, cases[i].message, text);
        assert_non_null (strstr (text, cfg.path));
        free (text);
    }
    mesh_config_t cfg = s_config ("nobody", NULL);
    mesh_agent_user_t *au = NULL;
    char *text = NULL;
    assert_int_equal (s_problems (&cfg, &au, &text), 0);
    assert_non_null (au);
    assert_int_equal (mesh_agent_user_uid (au), getpwnam ("nobody")->pw_uid);
    assert_int_equal (mesh_agent_user_gid (au), getpwnam ("nobody")->pw_gid);
    mesh_agent_user_destroy (&au);
    assert_null (au);
    mesh_agent_user_destroy (&au);
    free (text);
}

//  check_access for CFG as nobody: the number of problems, the text in *text.
static int
s_access (const mesh_config_t *cfg, char **text)
{
    mesh_agent_user_t *au = NULL;
    char *ignored = NULL;
    assert_int_equal (s_problems (cfg, &au, &ignored), 0);
    free (ignored);
    size_t size = 0;
    FILE *out = open_memstream (text, &size);
    int problems = mesh_agent_user_check_access (au, cfg, out);
    fclose (out);
    mesh_agent_user_destroy (&au);
    return problems;
}

static void
test_access (void **state)
{
    if (geteuid () != 0)
        skip ();
    mesh_config_t cfg = s_config ("nobody", NULL);
    char rule[128], *rules[] = {rule};
    mesh_config_pos_t pos[] = {{7, 5}};
    snprintf (rule, sizeof rule, "%s/rule.lua", s_dir);
    cfg.global_rules = rules;
    cfg.global_rule_pos = pos;
    cfg.global_rule_count = 1;
    s_write (cfg.path, "x\n", 0644);
    s_write (rule, "x\n", 0644);
    char *text = NULL;

    //  The scratch dir is 0700 root's: every path stops there, named with a fix.
    assert_int_equal (chmod (s_dir, 0700), 0);
    int problems = s_access (&cfg, &text);
    assert_int_equal (problems, 4);    //  runtime_dir, state_dir, the config, the rule
    char expect[256];
    snprintf (expect, sizeof expect, "cannot search %s (mode 0700, owner uid 0 gid 0), on the "
              "way to the config file %s", s_dir, cfg.path);
    if (!strstr (text, expect))
        fail_msg ("no '%s' in '%s'", expect, text);
    snprintf (expect, sizeof expect, "chgrp %d %s && chmod g+x %s",
              (int) getpwnam ("nobody")->pw_gid, s_dir, s_dir);
    assert_non_null (strstr (text, expect));
    free (text);

    //  Searchable; the rule is unreadable: named at its position in the config.
    assert_int_equal (chmod (s_dir, 0711), 0);
    assert_int_equal (chmod (rule, 0600), 0);
    assert_int_equal (s_access (&cfg, &text), 1);
    snprintf (expect, sizeof expect, "%s:7:5: sandbox.user:", cfg.path);
    assert_non_null (strstr (text, expect));
    snprintf (expect, sizeof expect, "cannot read the rule file %s (mode 0600", rule);
    if (!strstr (text, expect))
        fail_msg ("no '%s' in '%s'", expect, text);
    free (text);

    //  Everything readable; runtime_dir and state_dir do not exist yet: fine.
    assert_int_equal (chmod (rule, 0644), 0);
    assert_int_equal (s_access (&cfg, &text), 0);
    assert_string_equal (text, "");
    free (text);

    //  state_dir exists and is 0700: refused.  A silences file must be readable too.
    assert_int_equal (mkdir (cfg.state_dir, 0700), 0);
    assert_int_equal (s_access (&cfg, &text), 1);
    assert_non_null (strstr (text, "cannot search daemon.state_dir"));
    free (text);
    assert_int_equal (chmod (cfg.state_dir, 0755), 0);
    char silences[160];
    snprintf (silences, sizeof silences, "%s/silences.json", cfg.state_dir);
    s_write (silences, "[]\n", 0600);
    assert_int_equal (s_access (&cfg, &text), 1);
    assert_non_null (strstr (text, "cannot read the silences file"));
    free (text);
}

static void
test_prepare_state (void **state)
{
    if (geteuid () != 0)
        skip ();
    mesh_config_t cfg = s_config ("nobody", NULL);
    mesh_agent_user_t *au = NULL;
    char *text = NULL;
    assert_int_equal (s_problems (&cfg, &au, &text), 0);
    free (text);
    uid_t uid = mesh_agent_user_uid (au);
    gid_t gid = mesh_agent_user_gid (au);
    char incidents[160], old[200], linked[200], other[160];
    snprintf (incidents, sizeof incidents, "%s/incidents", cfg.state_dir);
    snprintf (old, sizeof old, "%s/old.json", incidents);
    snprintf (linked, sizeof linked, "%s/linked.json", incidents);
    snprintf (other, sizeof other, "%s/other", s_dir);
    assert_int_equal (mkdir (cfg.state_dir, 0755), 0);
    struct stat st;

    //  Missing: made, the account's, 0700.
    assert_int_equal (mesh_agent_user_prepare_state (au, cfg.state_dir), 0);
    assert_int_equal (lstat (incidents, &st), 0);
    assert_true (S_ISDIR (st.st_mode));
    assert_int_equal (st.st_uid, uid);
    assert_int_equal (st.st_gid, gid);
    assert_int_equal (st.st_mode & 07777, 0700);
    //  Again (the account's already, mode loosened by the agent): back to 0700.
    assert_int_equal (chmod (incidents, 0777), 0);
    assert_int_equal (mesh_agent_user_prepare_state (au, cfg.state_dir), 0);
    assert_int_equal (stat (incidents, &st), 0);
    assert_int_equal (st.st_mode & 07777, 0700);

    //  Root's (a meshd without sandbox.user): taken over with root's one-link files.
    assert_int_equal (rmdir (incidents), 0);
    assert_int_equal (mkdir (incidents, 0750), 0);
    s_write (old, "{}", 0640);
    s_write (other, "secret", 0600);
    assert_int_equal (link (other, linked), 0);
    assert_int_equal (mesh_agent_user_prepare_state (au, cfg.state_dir), 0);
    assert_int_equal (stat (old, &st), 0);
    assert_int_equal (st.st_uid, uid);
    assert_int_equal (stat (other, &st), 0);
    assert_int_equal (st.st_uid, 0);   //  two links: not one of root's state files
    assert_int_equal (unlink (linked), 0);
    assert_int_equal (unlink (old), 0);

    //  Owned by a third uid: refused, left alone.
    assert_int_equal (chown (incidents, 4242, 4242), 0);
    assert_int_equal (mesh_agent_user_prepare_state (au, cfg.state_dir), -1);
    assert_int_equal (stat (incidents, &st), 0);
    assert_int_equal (st.st_uid, 4242);
    //  Root's and writable by others: refused.
    assert_int_equal (chown (incidents, 0, 0), 0);
    assert_int_equal (chmod (incidents, 0777), 0);
    assert_int_equal (mesh_agent_user_prepare_state (au, cfg.state_dir), -1);
    assert_int_equal (stat (incidents, &st), 0);
    assert_int_equal (st.st_uid, 0);
    //  A symbolic link to a directory: refused, its target untouched.
    assert_int_equal (rmdir (incidents), 0);
    assert_int_equal (unlink (other), 0);
    assert_int_equal (mkdir (other, 0700), 0);
    assert_int_equal (symlink (other, incidents), 0);
    assert_int_equal (mesh_agent_user_prepare_state (au, cfg.state_dir), -1);
    assert_int_equal (stat (other, &st), 0);
    assert_int_equal (st.st_uid, 0);
    assert_int_equal (st.st_mode & 07777, 0700);
    //  A file: refused.
    assert_int_equal (unlink (incidents), 0);
    s_write (incidents, "", 0600);
    assert_int_equal (mesh_agent_user_prepare_state (au, cfg.state_dir), -1);
    //  No state_dir at all: refused.
    snprintf (incidents, sizeof incidents, "%s/missing", s_dir);
    assert_int_equal (mesh_agent_user_prepare_state (au, incidents), -1);
    mesh_agent_user_destroy (&au);
}

static void
test_own_socket (void **state)
{
    if (geteuid () != 0)
        skip ();
    mesh_config_t cfg = s_config ("nobody", NULL);
    mesh_agent_user_t *au = NULL;
    char *text = NULL;
    assert_int_equal (s_problems (&cfg, &au, &text), 0);
    free (text);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf (addr.sun_path, sizeof addr.sun_path, "%s/agents.ipc", s_dir);
    int fd = socket (AF_UNIX, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    assert_int_equal (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    assert_int_equal (chmod (addr.sun_path, 0644), 0);
    assert_int_equal (mesh_agent_user_own_socket (au, addr.sun_path), 0);
    struct stat st;
    assert_int_equal (lstat (addr.sun_path, &st), 0);
    assert_int_equal (st.st_uid, mesh_agent_user_uid (au));
    assert_int_equal (st.st_mode & 07777, 0600);
    close (fd);
    char missing[128];
    snprintf (missing, sizeof missing, "%s/none.ipc", s_dir);
    assert_int_equal (mesh_agent_user_own_socket (au, missing), -1);
    mesh_agent_user_destroy (&au);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_no_user, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_account_problems, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_access, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_prepare_state, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_own_socket, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
