/* The process module: command lines split as go-shellquote splits them, and real child
 * processes (small shell scripts) that linger, ignore their input, hold descriptors, flood
 * their output, are cancelled, signalled, waited for and killed with their group. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/process.h"
#include "choria/util.h"
#include "harness.h"

/* The test's own temporary directory (f->dir). */
typedef cht_dir_fixture fixture;
#define setup cht_dir_setup
#define teardown cht_dir_teardown

/* Writes an executable /bin/sh script and returns its path (static: one at a time). */
static const char *script(fixture *f, const char *name, const char *body)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\n%s\n", body);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, 0755), 0);
    return path;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* ch_process_run of a command line. */
static ch_status run(const char *cmd, const char *input, size_t len, const ch_process_run_opts *o,
                     ch_process_result *res, ch_error *err)
{
    char **argv = NULL;
    if (ch_process_split(cmd, &argv, NULL, err) != CH_OK)
        fail_msg("cannot split %s: %s", cmd, err->msg);
    ch_status st = ch_process_run(argv, input, len, o, res, err);
    ch_process_argv_free(argv);
    return st;
}

/* ---- splitting ---- */

static void split(const char *cmd, size_t want_n, const char *const *want)
{
    char **argv = NULL;
    size_t n = 0;
    ch_error err;
    if (ch_process_split(cmd, &argv, &n, &err) != CH_OK)
        fail_msg("split(%s): %s", cmd, err.msg);
    assert_int_equal(n, want_n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(argv[i], want[i]);
    assert_null(argv[n]);
    ch_process_argv_free(argv);
}

static void split_error(const char *cmd, const char *msg)
{
    char **argv = NULL;
    ch_error err;
    assert_int_not_equal(ch_process_split(cmd, &argv, NULL, &err), CH_OK);
    assert_null(argv);
    assert_string_equal(err.msg, msg);
}

static void commands_split_like_go_shellquote(void **state)
{
    split("/bin/helper", 1, (const char *const[]){"/bin/helper"});
    split("  a   b\tc\nd ", 4, (const char *const[]){"a", "b", "c", "d"});
    split("h 'a b' \"c d\"", 3, (const char *const[]){"h", "a b", "c d"});
    split("h a\\ b", 2, (const char *const[]){"h", "a b"});
    split("h 'it''s' x'y'z", 3, (const char *const[]){"h", "its", "xyz"});
    split("h '' \"\"", 3, (const char *const[]){"h", "", ""});
    split("h 'a\\b' \"$x\"", 3, (const char *const[]){"h", "a\\b", "$x"});
    split("h \"a\\\"b\\\\c\\d\\$e\"", 2, (const char *const[]){"h", "a\"b\\c\\d$e"});
    split("h a\\\nb", 2, (const char *const[]){"h", "ab"});
    split("h \"a\\\nb\"", 2, (const char *const[]){"h", "ab"});
    split("h \\\n x", 3, (const char *const[]){"h", "", "x"}); /* as go-shellquote */
    split("h * ; | $HOME", 5, (const char *const[]){"h", "*", ";", "|", "$HOME"});
}

static void bad_commands_are_refused_with_shellquote_messages(void **state)
{
    split_error("", "empty");
    split_error("   \t\n", "empty");
    split_error("h 'abc", "Unterminated single-quoted string");
    split_error("h \"abc", "Unterminated double-quoted string");
    split_error("h \"abc\\\"", "Unterminated double-quoted string");
    split_error("h abc\\", "Unterminated backslash-escape");
    char **argv = NULL;
    ch_error err;
    assert_int_equal(ch_process_split(NULL, &argv, NULL, &err), CH_ERR_INVALID);
    char *many = malloc(CH_PROCESS_MAX_ARGS * 2 + 10);
    assert_non_null(many);
    size_t i = 0;
    for (; i < (CH_PROCESS_MAX_ARGS + 1) * 2; i += 2)
        many[i] = 'a', many[i + 1] = ' ';
    many[i] = '\0';
    assert_int_equal(ch_process_split(many, &argv, NULL, &err), CH_ERR_TOO_LARGE);
    free(many);
}

/* ---- run to completion ---- */

static void a_child_that_closes_stdout_and_lingers_is_killed_at_the_deadline(void **state)
{
    fixture *f = *state;
    const char *cmd = script(f, "linger.sh", "echo '{}'\nexec >&- 2>&-\nexec sleep 30");
    ch_process_run_opts o = {.timeout_ms = 300};
    ch_process_result res;
    ch_error err;
    int64_t t0 = ch_now_mono_ms();
    assert_int_equal(run(cmd, "x", 1, &o, &res, &err), CH_ERR_TIMEOUT);
    assert_in_range(ch_now_mono_ms() - t0, 300, 3000);
    assert_non_null(strstr(err.msg, "linger.sh timed out after 300 ms"));
    assert_int_equal(res.term_signal, SIGKILL);
    ch_process_result_clear(&res);
}

static void a_child_ignoring_large_input_does_not_kill_the_caller(void **state)
{
    fixture *f = *state;
    size_t n = 4 * 1024 * 1024; /* far more than a pipe buffer: the write hits EPIPE */
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, 'a', n);
    ch_process_result res;
    ch_error err;
    assert_int_equal(run(script(f, "noread.sh", "echo '{}'"), big, n, NULL, &res, &err), CH_OK);
    assert_string_equal(res.out, "{}\n");
    assert_int_equal(res.exit_code, 0);
    ch_process_result_clear(&res);
    free(big);
}

static void start_failures_are_reported_and_no_shell_runs(void **state)
{
    ch_process_result res;
    ch_error err;
    assert_int_equal(run("/nonexistent/helper", "", 0, NULL, &res, &err), CH_ERR_IO);
    assert_string_equal(err.msg, "cannot start /nonexistent/helper: No such file or directory");
    ch_process_result_clear(&res);
    /* PATH lookup when there is no slash, and no shell: ';' is just an argument */
    assert_int_equal(run("echo a ; b", "", 0, NULL, &res, &err), CH_OK);
    assert_string_equal(res.out, "a ; b\n");
    ch_process_result_clear(&res);
    assert_int_equal(ch_process_run(NULL, "", 0, NULL, &res, &err), CH_ERR_INVALID);
    ch_process_result_clear(&res);
}

static void exit_status_and_signals_are_reported_as_go_words_them(void **state)
{
    fixture *f = *state;
    ch_process_result res;
    ch_error err;
    assert_int_equal(run(script(f, "three.sh", "echo oops >&2\nexit 3"), "", 0, NULL, &res, &err),
                     CH_ERR_IO);
    assert_non_null(strstr(err.msg, "three.sh: exit status 3"));
    assert_int_equal(res.exit_code, 3);
    assert_string_equal(res.errout, "oops\n");
    ch_process_result_clear(&res);
    assert_int_equal(run(script(f, "term.sh", "kill -TERM $$"), "", 0, NULL, &res, &err),
                     CH_ERR_IO);
    assert_non_null(strstr(err.msg, "term.sh: signal: Terminated"));
    assert_int_equal(res.exit_code, -1);
    assert_int_equal(res.term_signal, SIGTERM);
    ch_process_result_clear(&res);
}

static void stdout_over_its_bound_is_an_error_and_stderr_is_cut(void **state)
{
    fixture *f = *state;
    const char *cmd = script(f, "flood.sh",
                             "head -c 100000 /dev/zero | tr '\\0' e >&2\n"
                             "head -c 100000000 /dev/zero | tr '\\0' x");
    ch_process_run_opts o = {.max_output = 4096, .max_stderr = 100};
    ch_process_result res;
    ch_error err;
    int64_t t0 = ch_now_mono_ms();
    assert_int_equal(run(cmd, "", 0, &o, &res, &err), CH_ERR_TOO_LARGE);
    assert_in_range(ch_now_mono_ms() - t0, 0, 1999);
    assert_non_null(strstr(err.msg, "flood.sh output exceeds 4096 bytes"));
    assert_in_range(res.out_len, 0, 4096);
    assert_in_range(res.errout_len, 0, 100);
    ch_process_result_clear(&res);
}

static void a_cancel_flag_kills_the_child_within_a_tick(void **state)
{
    fixture *f = *state;
    atomic_bool cancel = true;
    ch_process_run_opts o = {.timeout_ms = 10000, .cancel = &cancel};
    ch_process_result res;
    ch_error err;
    int64_t t0 = ch_now_mono_ms();
    assert_int_equal(run(script(f, "sleepy.sh", "sleep 30"), "", 0, &o, &res, &err),
                     CH_ERR_EXPIRED);
    assert_in_range(ch_now_mono_ms() - t0, 0, 999);
    assert_non_null(strstr(err.msg, "sleepy.sh cancelled"));
    ch_process_result_clear(&res);
}

static void children_do_not_inherit_or_leak_descriptors(void **state)
{
    fixture *f = *state;
    int before = count_fds();
    /* the child lists its own fds: 0-2 and the one ls opens; descriptors above 2 are closed
     * in the child whatever the caller holds */
    const char *cmd = script(f, "fds.sh", "ls /proc/self/fd | wc -l");
    int leaked = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: closed for the child anyway */
    assert_in_range(leaked, 0, INT_MAX);
    ch_process_result res;
    ch_error err;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(run(cmd, "", 0, NULL, &res, &err), CH_OK);
        assert_int_equal(atoi(res.out), 4);
        ch_process_result_clear(&res);
    }
    close(leaked);
    assert_int_equal(run("/nonexistent", "", 0, NULL, &res, &err), CH_ERR_IO);
    ch_process_result_clear(&res);
    assert_int_equal(count_fds(), before);
}

/* The parent's blocked and ignored signals do not reach the child (exec keeps both): its
 * mask is empty and SIGPIPE is no longer ignored. grep is started directly, so
 * /proc/self/status shows what it inherited. */
static void children_get_an_empty_mask_and_default_dispositions(void **state)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
    sigaction(SIGPIPE, &ign, &old_pipe);
    ch_process_result res;
    ch_error err;
    ch_status st = run("grep -E ^Sig(Blk|Ign): /proc/self/status", "", 0, NULL, &res, &err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    assert_int_equal(st, CH_OK);
    const char *b = strstr(res.out, "SigBlk:"), *i = strstr(res.out, "SigIgn:");
    assert_non_null(b);
    assert_non_null(i);
    assert_int_equal(strtoull(b + 7, NULL, 16), 0);
    assert_int_equal(strtoull(i + 7, NULL, 16) & (1ULL << (SIGPIPE - 1)), 0);
    ch_process_result_clear(&res);
}

/* ---- children that live on ---- */

static void a_spawned_child_is_signalled_and_its_exit_code_returned(void **state)
{
    fixture *f = *state;
    const char *sh = script(f, "usr1.sh", "trap 'exit 7' USR1\nwhile :; do sleep 0.05; done");
    char *const argv[] = {(char *)sh, NULL};
    ch_process_opts o = {.argv = argv, .in = CH_PROCESS_NULL};
    ch_process *p = NULL;
    ch_error err;
    assert_int_equal(ch_process_spawn(&o, &p, &err), CH_OK);
    assert_in_range(ch_process_pid(p), 1, INT_MAX);
    int code = -1;
    assert_int_equal(ch_process_wait(p, 100, &code, &err), CH_ERR_TIMEOUT);
    ch_process_signal(p, SIGUSR1);
    assert_int_equal(ch_process_wait(p, 5000, &code, &err), CH_OK);
    assert_int_equal(code, 7);
    assert_int_equal(ch_process_term_signal(p), 0);
    ch_process_signal(p, SIGKILL); /* reaped: harmless */
    ch_process_free(p);
}

static void free_kills_the_whole_group_of_a_child_that_runs_on(void **state)
{
    fixture *f = *state;
    /* the grandchild's pid comes back on stdout */
    const char *sh = script(f, "group.sh", "sleep 30 &\necho $!\nwait");
    char *const argv[] = {(char *)sh, NULL};
    ch_process_opts o = {.argv = argv, .own_group = true, .out = CH_PROCESS_PIPE};
    ch_process *p = NULL;
    ch_error err;
    assert_int_equal(ch_process_spawn(&o, &p, &err), CH_OK);
    char buf[32] = {0};
    ssize_t n = -1;
    for (int i = 0; i < 200 && n <= 0; i++) {
        n = read(ch_process_fd(p, 1), buf, sizeof(buf) - 1);
        if (n <= 0)
            usleep(10000);
    }
    pid_t grandchild = (pid_t)atoi(buf);
    assert_in_range(grandchild, 1, INT_MAX);
    assert_int_equal(kill(grandchild, 0), 0);
    ch_process_free(p);
    /* the group got SIGKILL; init reaps the orphan, so poll until it is gone */
    int alive = 1;
    for (int i = 0; i < 200 && alive; i++) {
        alive = kill(grandchild, 0) == 0;
        if (alive)
            usleep(10000);
    }
    assert_false(alive);
}

static void spawn_refuses_an_empty_program_and_reports_a_missing_one(void **state)
{
    char *const none[] = {NULL};
    char *const missing[] = {"/nonexistent/program", NULL};
    ch_process_opts o = {.argv = none};
    ch_process *p = NULL;
    ch_error err;
    assert_int_equal(ch_process_spawn(&o, &p, &err), CH_ERR_INVALID);
    assert_null(p);
    o.argv = missing;
    assert_int_equal(ch_process_spawn(&o, &p, &err), CH_ERR_IO);
    assert_string_equal(err.msg, "cannot start /nonexistent/program: No such file or directory");
    assert_null(p);
    ch_process_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(commands_split_like_go_shellquote),
        cmocka_unit_test(bad_commands_are_refused_with_shellquote_messages),
        cmocka_unit_test_setup_teardown(
            a_child_that_closes_stdout_and_lingers_is_killed_at_the_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(a_child_ignoring_large_input_does_not_kill_the_caller,
                                        setup, teardown),
        cmocka_unit_test(start_failures_are_reported_and_no_shell_runs),
        cmocka_unit_test(children_get_an_empty_mask_and_default_dispositions),
        cmocka_unit_test_setup_teardown(exit_status_and_signals_are_reported_as_go_words_them,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(stdout_over_its_bound_is_an_error_and_stderr_is_cut, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_cancel_flag_kills_the_child_within_a_tick, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(children_do_not_inherit_or_leak_descriptors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_spawned_child_is_signalled_and_its_exit_code_returned,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(free_kills_the_whole_group_of_a_child_that_runs_on, setup,
                                        teardown),
        cmocka_unit_test(spawn_refuses_an_empty_program_and_reports_a_missing_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
