/* Persistent helpers (helper_pool.h): real helper processes (shell scripts in a temp dir, and
 * the static demo helper) answering one request per line, and every way one can fail: it dies
 * mid-request, hangs, writes garbage, two lines, a line too long, closes its stdout, floods its
 * stderr, ignores the end of its input, or cannot be started at all. */
#include <errno.h>
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/log.h"
#include "choria/util.h"
#include "harness.h"
#include "helper_pool.h"
#include "helper_stderr.h"

typedef cht_dir_fixture fixture;

/* Every test logs to <dir>/log, read back with read_log. */
static int setup(void **state)
{
    int rc = cht_dir_setup(state);
    fixture *f = *state;
    char path[512];
    snprintf(path, sizeof(path), "%s/log", f->dir);
    ch_error e;
    if (rc == 0 && ch_log_set_file(path, &e) != CH_OK)
        return -1;
    return rc;
}

static int teardown(void **state)
{
    ch_error e;
    ch_log_set_file(NULL, &e); /* back to standard error */
    return cht_dir_teardown(state);
}

static char *read_log(fixture *f)
{
    char path[512], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/log", f->dir);
    ch_error e;
    assert_int_equal(ch_read_file(path, 64 * 1024 * 1024, &text, &len, &e), CH_OK);
    return text;
}

static size_t count_lines_with(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        char *copy = strndup(line, len);
        n += strstr(copy, needle) != NULL;
        free(copy);
        line = end != NULL ? end + 1 : NULL;
    }
    return n;
}

static size_t longest_line(const char *text)
{
    size_t best = 0;
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        best = len > best ? len : best;
        line += len + (end != NULL);
    }
    return best;
}

/* Whether pid still runs (a zombie does not) after up to wait_ms. */
static bool alive(int pid, int wait_ms)
{
    for (int64_t end = ch_now_mono_ms() + wait_ms;; usleep(10 * 1000)) {
        char path[64], state = 0;
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        FILE *fp = fopen(path, "r");
        bool running = fp != NULL && fscanf(fp, "%*d (%*[^)]) %c", &state) == 1 && state != 'Z';
        if (fp != NULL)
            fclose(fp);
        if (!running || ch_now_mono_ms() >= end)
            return running;
    }
}

/* Lines of the test's log holding needle. */
static size_t log_lines_with(fixture *f, const char *needle)
{
    char *log = read_log(f);
    size_t n = count_lines_with(log, needle);
    free(log);
    return n;
}

/* A /bin/sh helper: a loop over request lines; BODY sees the identity in $id and the request
 * number of this process (from 1) in $n, and must answer (or not). */
static const char *helper(fixture *f, const char *name, const char *body)
{
    static char cmd[512];
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "#!/bin/sh\n"
            "n=0\n"
            "while IFS= read -r line; do\n"
            "  n=$((n + 1))\n"
            "  id=${line#'{\"identity\":\"'}; id=${id%%%%\\\"*}\n"
            "  %s\n"
            "done\n",
            body);
    fclose(fp);
    chmod(path, 0755);
    snprintf(cmd, sizeof(cmd), "%s", path);
    return cmd;
}

#define ANSWER "printf '{\"configuration\":{\"identity\":\"%s\"}}\\n' \"$id\""

static prov_helper_pool *start_pool(const char *cmd, size_t n, int64_t timeout_ms,
                                    const atomic_bool *stopping)
{
    prov_helper_pool_opts o = {
        .command = cmd, .processes = n, .timeout_ms = timeout_ms, .stopping = stopping};
    prov_helper_pool *p = NULL;
    ch_error e;
    assert_int_equal(prov_helper_pool_start(&o, &p, &e), CH_OK);
    return p;
}

/* One request for identity; CH_OK only with the reply naming it. */
static ch_status ask(prov_helper_pool *p, const char *identity, ch_error *e)
{
    prov_helper_input in = {.identity = identity, .inventory = "{\"facts\":{}}"};
    prov_helper_reply *r = NULL;
    ch_status st = prov_helper_pool_run(p, &in, &r, e);
    if (st == CH_OK) {
        assert_int_equal(r->configuration.count, 1);
        assert_string_equal(r->configuration.items[0].value, identity);
    }
    prov_helper_reply_free(r);
    return st;
}

static void expect_ok(prov_helper_pool *p, const char *identity)
{
    ch_error e = {0};
    ch_status st = ask(p, identity, &e);
    if (st != CH_OK)
        fail_msg("%s: %s", identity, e.msg);
}

static void expect_error(prov_helper_pool *p, const char *identity, ch_status code,
                         const char *text)
{
    ch_error e = {0};
    assert_int_equal(ask(p, identity, &e), code);
    if (strstr(e.msg, text) == NULL)
        fail_msg("%s: wanted \"%s\" in \"%s\"", identity, text, e.msg);
}

/* ---- the line protocol ---- */

static void one_process_answers_many_requests_each_sent_as_one_line(void **state)
{
    fixture *f = *state;
    char copy[512];
    snprintf(copy, sizeof(copy), "printf '%%s\\n' \"$line\" >> '%s/requests'; %s", f->dir, ANSWER);
    prov_helper_pool *p = start_pool(helper(f, "echo.sh", copy), 1, 0, NULL);
    for (int i = 0; i < 20; i++) {
        char id[32];
        snprintf(id, sizeof(id), "n%d.example.net", i);
        expect_ok(p, id);
    }
    assert_int_equal(prov_helper_pool_starts(p), 1);
    prov_helper_pool_stop(p);

    /* the exact request documents of exec mode, one per line */
    char path[512], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/requests", f->dir);
    ch_error e;
    assert_int_equal(ch_read_file(path, 1 << 20, &text, &len, &e), CH_OK);
    prov_helper_input in = {.identity = "n7.example.net", .inventory = "{\"facts\":{}}"};
    size_t doc_len = 0;
    char *doc = prov_helper_input_encode(&in, &doc_len);
    assert_non_null(strstr(text, doc));
    assert_int_equal(count_lines_with(text, "{\"identity\":\"n"), 20);
    free(doc);
    free(text);
}

typedef struct {
    prov_helper_pool *p;
    int thread, ok;
} job;

static void *ask_many(void *arg)
{
    job *j = arg;
    for (int i = 0; i < 25; i++) {
        char id[32];
        snprintf(id, sizeof(id), "t%d-%d.example", j->thread, i);
        ch_error e;
        j->ok += ask(j->p, id, &e) == CH_OK;
    }
    return NULL;
}

static void four_threads_share_two_processes_and_every_reply_is_their_own(void **state)
{
    fixture *f = *state;
    prov_helper_pool *p = start_pool(helper(f, "slow.sh", "sleep 0.01; " ANSWER), 2, 0, NULL);
    pthread_t t[4];
    job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){.p = p, .thread = i};
        assert_int_equal(pthread_create(&t[i], NULL, ask_many, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].ok, 25);
    }
    assert_int_equal(prov_helper_pool_starts(p), 2);
    prov_helper_pool_stop(p);
}

static void the_static_demo_helper_answers_in_persistent_mode(void **state)
{
    (void)state;
    const char *bin = getenv("CH_BIN_DIR");
    assert_non_null(bin);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s/choria-demo-helper --persistent", bin);
    prov_helper_pool *p = start_pool(cmd, 2, 0, NULL);
    for (int i = 0; i < 50; i++) {
        prov_helper_input in = {.identity = "n1.example.net", .inventory = "{}"};
        prov_helper_reply *r = NULL;
        ch_error e;
        assert_int_equal(prov_helper_pool_run(p, &in, &r, &e), CH_OK);
        assert_false(r->defer);
        assert_string_equal(r->configuration.items[0].value, "n1.example.net");
        prov_helper_reply_free(r);
    }
    prov_helper_input bad = {.identity = "bad..name", .inventory = "{}"};
    prov_helper_reply *r = NULL;
    ch_error e;
    assert_int_equal(prov_helper_pool_run(p, &bad, &r, &e), CH_OK);
    assert_true(r->defer); /* not an error: the helper defers it */
    assert_string_equal(r->msg, "demo helper: invalid identity");
    prov_helper_reply_free(r);
    assert_int_equal(prov_helper_pool_starts(p), 2);
    prov_helper_pool_stop(p);
}

/* ---- failures: the request fails once, the process is replaced ---- */

static void a_helper_that_dies_mid_request_fails_that_request_only(void **state)
{
    fixture *f = *state;
    prov_helper_pool *p =
        start_pool(helper(f, "die.sh", "[ \"$id\" = die ] && exit 3; " ANSWER), 1, 0, NULL);
    expect_ok(p, "a");
    expect_error(p, "die", CH_ERR_IO, "exited: exit status 3");
    int64_t t0 = ch_now_mono_ms();
    expect_ok(p, "b"); /* a new process, after the back-off */
    assert_in_range(ch_now_mono_ms() - t0, PROV_HELPER_BACKOFF_MIN_MS / 2, 3000);
    expect_ok(p, "c");
    assert_int_equal(prov_helper_pool_starts(p), 2);
    prov_helper_pool_stop(p);
    assert_int_equal(log_lines_with(f, "starting it again in"), 1);
}

static void a_helper_that_hangs_is_killed_at_the_timeout_with_its_children(void **state)
{
    fixture *f = *state;
    char body[512];
    /* the sleep is a child of the helper: the kill must reach the whole group */
    snprintf(body, sizeof(body),
             "if [ \"$id\" = hang ]; then sleep 30 & echo $! > '%s/child'; wait; fi; %s", f->dir,
             ANSWER);
    prov_helper_pool *p = start_pool(helper(f, "hang.sh", body), 1, 300, NULL);
    int64_t t0 = ch_now_mono_ms();
    expect_error(p, "hang", CH_ERR_TIMEOUT, "timed out after 300 ms");
    assert_in_range(ch_now_mono_ms() - t0, 290, 2000);
    char path[512], *pid = NULL;
    size_t len;
    snprintf(path, sizeof(path), "%s/child", f->dir);
    ch_error e;
    assert_int_equal(ch_read_file(path, 64, &pid, &len, &e), CH_OK);
    assert_false(alive(atoi(pid), 2000));
    free(pid);
    expect_ok(p, "after");
    prov_helper_pool_stop(p);
}

static void garbage_two_lines_and_an_empty_line_are_errors(void **state)
{
    fixture *f = *state;
    prov_helper_pool *p =
        start_pool(helper(f, "bad.sh",
                          "case $id in\n"
                          "  garbage) echo 'this is not json' ;;\n"
                          "  two) printf '{\"msg\":\"a\"}\\n{\"msg\":\"b\"}\\n' ;;\n"
                          "  empty) echo ;;\n"
                          "  wrongtype) echo '{\"configuration\":{\"a\":1}}' ;;\n"
                          "  *) " ANSWER " ;;\n"
                          "esac"),
                   1, 0, NULL);
    expect_error(p, "garbage", CH_ERR_INVALID, "cannot decode output from");
    expect_ok(p, "one");
    expect_error(p, "two", CH_ERR_INVALID, "wrote more than one line for one request");
    expect_ok(p, "two-after");
    expect_error(p, "empty", CH_ERR_INVALID, "zero bytes received");
    expect_ok(p, "three");
    expect_error(p, "wrongtype", CH_ERR_INVALID, "configuration.a");
    expect_ok(p, "four");
    assert_int_equal(prov_helper_pool_starts(p), 5);
    prov_helper_pool_stop(p);
}

static void a_line_written_after_the_reply_restarts_the_helper_before_the_next_request(void **state)
{
    fixture *f = *state;
    prov_helper_pool *p = start_pool(
        helper(f, "late.sh", ANSWER "; [ \"$id\" = late ] && sleep 0.1 && echo '{}'"), 1, 0, NULL);
    expect_ok(p, "late"); /* the reply came alone */
    usleep(300 * 1000);
    expect_ok(p, "next"); /* no failure: a new process answers */
    assert_int_equal(prov_helper_pool_starts(p), 2);
    prov_helper_pool_stop(p);
    assert_int_equal(log_lines_with(f, "wrote output between requests; starting it again"), 1);
}

static void a_helper_that_closes_its_stdout_fails_and_is_replaced(void **state)
{
    fixture *f = *state;
    prov_helper_pool *p =
        start_pool(helper(f, "close.sh", "[ \"$id\" = close ] && exec >&- && sleep 30; " ANSWER), 1,
                   5000, NULL);
    int64_t t0 = ch_now_mono_ms();
    expect_error(p, "close", CH_ERR_IO, "closed its output");
    assert_in_range(ch_now_mono_ms() - t0, 0, 2000); /* not the 5 s timeout */
    expect_ok(p, "again");
    t0 = ch_now_mono_ms();
    prov_helper_pool_stop(p);
    assert_in_range(ch_now_mono_ms() - t0, 0, 1500);
}

static void a_reply_line_over_the_bound_is_refused(void **state)
{
    fixture *f = *state;
    prov_helper_pool_opts o = {.command = helper(f, "big.sh",
                                                 "[ \"$id\" = big ] && head -c 300000 /dev/zero "
                                                 "| tr '\\0' x; " ANSWER),
                               .processes = 1,
                               .max_reply = 100000};
    prov_helper_pool *p = NULL;
    ch_error e;
    assert_int_equal(prov_helper_pool_start(&o, &p, &e), CH_OK);
    expect_error(p, "big", CH_ERR_TOO_LARGE, "helper output exceeds 100000 bytes");
    expect_ok(p, "small");
    prov_helper_pool_stop(p);
}

/* ---- stderr ---- */

static void stderr_is_logged_line_by_line_bounded_and_rate_limited(void **state)
{
    fixture *f = *state;
    prov_helper_pool *p = start_pool(
        helper(f, "noisy.sh",
               "case $id in\n"
               "  talk) echo \"checking $id\" >&2; echo 'second line' >&2; sleep 0.3 ;;\n"
               "  long) head -c 5000 /dev/zero | tr '\\0' y >&2; echo >&2 ;;\n"
               "  flood) seq 1 20000 | sed 's/^/flood /' >&2 ;;\n"
               "esac\n" ANSWER),
        1, 0, NULL);
    expect_ok(p, "talk");
    expect_ok(p, "long");
    int64_t t0 = ch_now_mono_ms();
    expect_ok(p, "flood"); /* 20,000 lines do not block it */
    assert_in_range(ch_now_mono_ms() - t0, 0, 5000);
    expect_ok(p, "quiet");
    prov_helper_pool_stop(p);
    char *log = read_log(f);
    /* read while its request was in flight (the helper sleeps before answering), so the line
     * names the node; lines read after a reply may name the next request's node */
    assert_int_equal(count_lines_with(log, "helper stderr for talk: checking talk"), 1);
    assert_int_equal(count_lines_with(log, "helper stderr for talk: second line"), 1);
    assert_int_equal(count_lines_with(log, "yyyy ..."), 1);
    assert_in_range(longest_line(log), 10, PROV_STDERR_MAX_LINE + 200);
    size_t flood = count_lines_with(log, "flood ");
    assert_in_range(flood, 1, 20000 / 4); /* at most 100 a second were logged */
    assert_true(count_lines_with(log, "stderr lines not logged in the last second") >= 1);
    free(log);
}

/* ---- starting and stopping ---- */

static void stop_closes_stdin_then_terms_then_kills(void **state)
{
    fixture *f = *state;
    prov_helper_pool *p = start_pool(helper(f, "ok.sh", ANSWER), 3, 0, NULL);
    expect_ok(p, "a");
    int64_t t0 = ch_now_mono_ms();
    prov_helper_pool_stop(p); /* they leave at the end of their input */
    assert_in_range(ch_now_mono_ms() - t0, 0, PROV_HELPER_STOP_GRACE_MS - 1);

    /* one that ignores both the end of its input and SIGTERM */
    char path[512];
    snprintf(path, sizeof(path), "%s/stubborn.sh", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.05; done\n");
    fclose(fp);
    chmod(path, 0755);
    p = start_pool(path, 1, 0, NULL);
    t0 = ch_now_mono_ms();
    prov_helper_pool_stop(p);
    int64_t took = ch_now_mono_ms() - t0;
    assert_in_range(took, PROV_HELPER_STOP_GRACE_MS, PROV_HELPER_STOP_GRACE_MS + 2500);
}

static void a_request_in_flight_is_abandoned_when_stopping(void **state)
{
    fixture *f = *state;
    atomic_bool stopping = false;
    prov_helper_pool *p = start_pool(helper(f, "sleepy.sh", "sleep 30"), 1, 20000, &stopping);
    pthread_t t;
    job j = {.p = p, .thread = 0};
    assert_int_equal(pthread_create(&t, NULL, ask_many, &j), 0);
    usleep(200 * 1000);
    int64_t t0 = ch_now_mono_ms();
    atomic_store(&stopping, true);
    pthread_join(t, NULL); /* every one of its 25 requests ends at once */
    assert_in_range(ch_now_mono_ms() - t0, 0, 1500);
    assert_int_equal(j.ok, 0);
    prov_helper_pool_stop(p);
}

static void helpers_that_cannot_start_fail_each_request_and_bad_commands_the_pool(void **state)
{
    fixture *f = *state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s/does-not-exist --persistent", f->dir);
    prov_helper_pool *p = start_pool(cmd, 2, 0, NULL);
    expect_error(p, "a", CH_ERR_IO, "cannot start");
    expect_error(p, "b", CH_ERR_IO, "cannot start");
    prov_helper_pool_stop(p);

    prov_helper_pool_opts o = {.command = "'unterminated", .processes = 1};
    ch_error e;
    assert_int_equal(prov_helper_pool_start(&o, &p, &e), CH_ERR_INVALID);
    assert_non_null(strstr(e.msg, "cannot parse helper command"));
    o = (prov_helper_pool_opts){.command = "/bin/true", .processes = 0};
    assert_int_equal(prov_helper_pool_start(&o, &p, &e), CH_ERR_INVALID);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(one_process_answers_many_requests_each_sent_as_one_line),
        T(four_threads_share_two_processes_and_every_reply_is_their_own),
        T(the_static_demo_helper_answers_in_persistent_mode),
        T(a_helper_that_dies_mid_request_fails_that_request_only),
        T(a_helper_that_hangs_is_killed_at_the_timeout_with_its_children),
        T(garbage_two_lines_and_an_empty_line_are_errors),
        T(a_line_written_after_the_reply_restarts_the_helper_before_the_next_request),
        T(a_helper_that_closes_its_stdout_fails_and_is_replaced),
        T(a_reply_line_over_the_bound_is_refused),
        T(stderr_is_logged_line_by_line_bounded_and_rate_limited),
        T(stop_closes_stdin_then_terms_then_kills),
        T(a_request_in_flight_is_abandoned_when_stopping),
        T(helpers_that_cannot_start_fail_each_request_and_bad_commands_the_pool),
    };
#undef T
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
