/* The helper's contract: the stdin document, the reply's strict types, and real helper
 * processes (shell scripts in a temp dir) that time out, fail, print garbage or too much,
 * write stderr, and run four at a time. How children are spawned and reaped is
 * tests/unit/test_process.c's. */
#include <dirent.h>
#include <fcntl.h>
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

#include "harness.h"
#include "helper.h"

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
    fclose(fp);
    chmod(path, 0755);
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

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- input ---- */

static void input_has_five_keys_in_upstream_order(void **state)
{
    prov_helper_input in = {.identity = "n1.example", .inventory = "{\"agents\":[\"rpcutil\"]}"};
    size_t len;
    char *s = prov_helper_input_encode(&in, &len);
    assert_string_equal(s, "{\"identity\":\"n1.example\",\"csr\":null,\"ed25519_pubkey\":null,"
                           "\"inventory\":\"{\\\"agents\\\":[\\\"rpcutil\\\"]}\",\"jwt\":null}");
    assert_int_equal(len, strlen(s));
    free(s);

    prov_helper_csr csr = {"-----BEGIN CSR-----\n<x>", "PUB", "/etc/ssl"};
    prov_helper_ed25519 ed = {"abcd", "/etc/choria", "ef01"};
    json_t *jwt =
        json_pack("{s:s,s:b,s:I}", "cht", "s3cret", "chs", 0, "exp", (json_int_t)1700000000);
    prov_helper_input full = {"n2", &csr, &ed, "", jwt};
    s = prov_helper_input_encode(&full, NULL);
    assert_string_equal(
        s, "{\"identity\":\"n2\",\"csr\":{\"csr\":\"-----BEGIN CSR-----\\n\\u003cx\\u003e\","
           "\"public_key\":\"PUB\",\"ssldir\":\"/etc/ssl\"},\"ed25519_pubkey\":"
           "{\"public_key\":\"abcd\",\"directory\":\"/etc/choria\",\"signature\":"
           "\"ef01\"},\"inventory\":\"\",\"jwt\":{\"cht\":\"s3cret\",\"chs\":false,"
           "\"exp\":1700000000}}");
    free(s);
    json_decref(jwt);
}

/* ---- reply ---- */

static prov_helper_reply *reply_ok(const char *text)
{
    prov_helper_reply *r = NULL;
    ch_error err;
    if (prov_helper_reply_parse(text, strlen(text), 0, &r, &err) != CH_OK)
        fail_msg("reply %s: %s", text, err.msg);
    return r;
}

static const char *reply_bad(const char *text)
{
    static ch_error err;
    prov_helper_reply *r = NULL;
    assert_int_not_equal(prov_helper_reply_parse(text, strlen(text), 0, &r, &err), CH_OK);
    assert_null(r);
    return err.msg;
}

static void full_reply_decodes_every_field(void **state)
{
    prov_helper_reply *r = reply_ok(
        "{\"defer\":false,\"shutdown\":true,\"msg\":\"Done\",\"key\":\"K\",\"certificate\":\"C\","
        "\"ca\":\"CA\",\"ssldir\":\"/ssl\",\"configuration\":{\"identity\":\"n1\","
        "\"plugin.choria.server.provision\":\"false\"},\"action_policies\":{\"rpcutil.policy\":"
        "\"allow\"},\"opa_policies\":{\"default.rego\":\"package x\"},\"server_claims\":{\"exp\":"
        "1893456000,\"permissions\":{\"streams\":true}},\"upgrade\":\"0.28.0\",\"extra\":[1]}");
    assert_false(r->defer);
    assert_true(r->shutdown);
    assert_string_equal(r->msg, "Done");
    assert_string_equal(r->key, "K");
    assert_string_equal(r->certificate, "C");
    assert_string_equal(r->ca, "CA");
    assert_string_equal(r->ssldir, "/ssl");
    assert_string_equal(r->upgrade, "0.28.0");
    assert_int_equal(r->configuration.count, 2);
    assert_string_equal(r->configuration.items[0].key, "identity");
    assert_string_equal(r->configuration.items[1].key, "plugin.choria.server.provision");
    assert_string_equal(r->configuration.items[1].value, "false");
    assert_int_equal(r->action_policies.count, 1);
    assert_string_equal(r->action_policies.items[0].value, "allow");
    assert_int_equal(r->opa_policies.count, 1);
    assert_string_equal(r->opa_policies.items[0].key, "default.rego");
    assert_int_equal(json_integer_value(json_object_get(r->server_claims, "exp")), 1893456000);
    prov_helper_reply_free(r);

    r = reply_ok("{\"defer\":true,\"msg\":\"not yet\"}");
    assert_true(r->defer);
    assert_string_equal(r->msg, "not yet");
    assert_string_equal(r->certificate, "");
    assert_int_equal(r->configuration.count, 0);
    assert_null(r->server_claims);
    prov_helper_reply_free(r);

    r = reply_ok("{\"DEFER\":true,\"Configuration\":null,\"msg\":null}");
    assert_true(r->defer);
    assert_string_equal(r->msg, "");
    prov_helper_reply_free(r);
}

static void reply_types_are_strict(void **state)
{
    assert_non_null(strstr(reply_bad("{\"configuration\":{\"a\":1}}"), "number"));
    assert_non_null(strstr(reply_bad("{\"configuration\":{\"a\":true}}"), "configuration.a"));
    assert_non_null(strstr(reply_bad("{\"configuration\":{\"a\":null}}"), "configuration.a"));
    assert_non_null(strstr(reply_bad("{\"configuration\":[\"a\"]}"), "configuration"));
    assert_non_null(strstr(reply_bad("{\"defer\":\"true\"}"),
                           "Go struct field ConfigResponse.defer of type bool"));
    assert_non_null(strstr(reply_bad("{\"shutdown\":1}"),
                           "Go struct field ConfigResponse.shutdown of type bool"));
    assert_non_null(
        strstr(reply_bad("{\"msg\":5}"), "Go struct field ConfigResponse.msg of type string"));
    assert_non_null(strstr(reply_bad("{\"certificate\":{}}"), "certificate"));
    assert_non_null(strstr(reply_bad("{\"ca\":[]}"), "ca"));
    assert_non_null(strstr(reply_bad("{\"ssldir\":false}"), "ssldir"));
    assert_non_null(strstr(reply_bad("{\"key\":1}"), "key"));
    assert_non_null(strstr(reply_bad("{\"upgrade\":0.28}"), "upgrade"));
    assert_non_null(strstr(reply_bad("{\"action_policies\":{\"x.rego\":\"a\"}}"), ".policy"));
    assert_non_null(strstr(reply_bad("{\"action_policies\":{\"../x.policy\":\"a\"}}"), ".policy"));
    assert_non_null(strstr(reply_bad("{\"opa_policies\":{\"x.policy\":\"a\"}}"), ".rego"));
    assert_non_null(strstr(reply_bad("{\"opa_policies\":{\"x.rego\":1}}"), "opa_policies"));
    assert_non_null(strstr(reply_bad("{\"server_claims\":\"x\"}"), "server_claims"));
    assert_non_null(strstr(reply_bad("{\"server_claims\":{\"exp\":\"x\"}}"), "exp"));
    assert_non_null(strstr(reply_bad("{\"server_claims\":{\"ou\":1}}"), "ou"));
    assert_non_null(strstr(reply_bad("{\"server_claims\":{\"collectives\":\"a\"}}"), "[]string"));
    assert_non_null(
        strstr(reply_bad("{\"server_claims\":{\"permissions\":{\"streams\":1}}}"), "bool"));
    assert_non_null(strstr(reply_bad("[]"), "cannot unmarshal array"));
    assert_non_null(strstr(reply_bad("null"), "cannot unmarshal null"));
    reply_bad("{\"msg\":\"a\"} x");
    reply_bad("not json");
    reply_bad("{\"configuration\":{},\"Configuration\":{}}");
    prov_helper_reply *r = NULL;
    ch_error err;
    assert_int_not_equal(prov_helper_reply_parse("{}", 2, 1, &r, &err), CH_OK);
}

/* ---- running ---- */

static const prov_helper_input INPUT = {.identity = "n1.example", .inventory = "{}"};

static void helper_gets_exact_input_and_its_reply_is_decoded(void **state)
{
    fixture *f = *state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s '%s/in.json' 'arg with space'",
             script(f, "echo.sh",
                    "cat > \"$1\"\n"
                    "printf '{\"msg\":\"%s\",\"configuration\":{\"identity\":\"n1\"}}' \"$2\""),
             f->dir);
    prov_helper_reply *r = NULL;
    ch_process_result res;
    ch_error err;
    assert_int_equal(prov_helper_run(cmd, &INPUT, NULL, &r, &res, &err), CH_OK);
    assert_string_equal(r->msg, "arg with space");
    assert_int_equal(r->configuration.count, 1);
    assert_int_equal(res.exit_code, 0);
    char path[256], got[512] = {0};
    snprintf(path, sizeof(path), "%s/in.json", f->dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_in_range(fread(got, 1, sizeof(got) - 1, fp), 1, sizeof(got) - 1);
    fclose(fp);
    char *want = prov_helper_input_encode(&INPUT, NULL);
    assert_string_equal(got, want);
    free(want);
    prov_helper_reply_free(r);
    ch_process_result_clear(&res);
}

static void slow_helper_is_killed_at_the_timeout(void **state)
{
    fixture *f = *state;
    /* the sleep is a grandchild holding stdout: it must die with the group */
    const char *cmd = script(f, "slow.sh", "sleep 30\necho '{}'");
    ch_process_run_opts o = {.timeout_ms = 300};
    prov_helper_reply *r = NULL;
    ch_process_result res;
    ch_error err;
    int64_t t0 = ms_now();
    assert_int_equal(prov_helper_run(cmd, &INPUT, &o, &r, &res, &err), CH_ERR_TIMEOUT);
    int64_t took = ms_now() - t0;
    assert_in_range(took, 300, 2999);
    assert_non_null(strstr(err.msg, "timed out after 300 ms"));
    assert_int_equal(res.term_signal, SIGKILL);
    assert_null(r);
    ch_process_result_clear(&res);
}

static void nonzero_exit_is_an_error_with_the_code_and_stderr_kept(void **state)
{
    fixture *f = *state;
    const char *cmd = script(f, "fail.sh", "echo 'CA unreachable' >&2\necho '{}'\nexit 3");
    prov_helper_reply *r = NULL;
    ch_process_result res;
    ch_error err;
    assert_int_equal(prov_helper_run(cmd, &INPUT, NULL, &r, &res, &err), CH_ERR_IO);
    assert_non_null(strstr(err.msg, "could not wait for "));
    assert_non_null(strstr(err.msg, "exit status 3"));
    assert_int_equal(res.exit_code, 3);
    assert_string_equal(res.errout, "CA unreachable\n");
    assert_null(r);
    ch_process_result_clear(&res);
}

static void stderr_is_captured_and_bounded(void **state)
{
    fixture *f = *state;
    const char *cmd = script(f, "noisy.sh",
                             "echo warn1 >&2\nhead -c 200000 /dev/zero | tr '\\0' e >&2\n"
                             "echo '{\"msg\":\"ok\",\"configuration\":{\"a\":\"b\"}}'");
    ch_process_run_opts o = {.max_stderr = 1000};
    prov_helper_reply *r = NULL;
    ch_process_result res;
    ch_error err;
    assert_int_equal(prov_helper_run(cmd, &INPUT, &o, &r, &res, &err), CH_OK);
    assert_int_equal(res.errout_len, 1000);
    assert_true(res.errout_truncated);
    assert_memory_equal(res.errout, "warn1\neee", 9);
    assert_string_equal(r->msg, "ok");
    prov_helper_reply_free(r);
    ch_process_result_clear(&res);
}

static void garbage_and_empty_output_are_decode_errors(void **state)
{
    fixture *f = *state;
    prov_helper_reply *r = NULL;
    ch_process_result res;
    ch_error err;
    assert_int_equal(prov_helper_run(script(f, "garbage.sh", "echo 'hello world'"), &INPUT, NULL,
                                     &r, &res, &err),
                     CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "cannot decode output from "));
    ch_process_result_clear(&res);
    assert_int_equal(
        prov_helper_run(script(f, "silent.sh", "exit 0"), &INPUT, NULL, &r, &res, &err),
        CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "output: zero bytes received"));
    ch_process_result_clear(&res);
    assert_int_equal(
        prov_helper_run(script(f, "types.sh", "echo '{\"configuration\":{\"port\":4222}}'"), &INPUT,
                        NULL, &r, &res, &err),
        CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "configuration.port"));
    assert_null(r);
    ch_process_result_clear(&res);
}

static void deferred_reply_is_returned_to_the_caller(void **state)
{
    fixture *f = *state;
    prov_helper_reply *r = NULL;
    ch_process_result res;
    ch_error err;
    assert_int_equal(prov_helper_run(script(f, "defer.sh",
                                            "cat >/dev/null\n"
                                            "echo '{\"defer\":true,\"msg\":\"CA is down\"}'"),
                                     &INPUT, NULL, &r, &res, &err),
                     CH_OK);
    assert_true(r->defer);
    assert_string_equal(r->msg, "CA is down");
    prov_helper_reply_free(r);
    ch_process_result_clear(&res);
}

static void hundred_megabytes_of_output_is_cut_off_fast(void **state)
{
    fixture *f = *state;
    const char *cmd = script(f, "flood.sh", "head -c 100000000 /dev/zero | tr '\\0' x");
    prov_helper_reply *r = NULL;
    ch_process_result res;
    ch_error err;
    int64_t t0 = ms_now();
    assert_int_equal(prov_helper_run(cmd, &INPUT, NULL, &r, &res, &err), CH_ERR_TOO_LARGE);
    assert_in_range(ms_now() - t0, 0, 1999);
    char want[64];
    snprintf(want, sizeof(want), "helper output exceeds %d bytes", CH_PROCESS_MAX_OUTPUT);
    assert_string_equal(err.msg, want);
    assert_in_range(res.out_len, 0, CH_PROCESS_MAX_OUTPUT);
    ch_process_result_clear(&res);
}

static void bad_helper_commands_are_reported_before_anything_runs(void **state)
{
    prov_helper_reply *r = NULL;
    ch_process_result res;
    ch_error err;
    assert_int_equal(prov_helper_run("", &INPUT, NULL, &r, &res, &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, "cannot parse helper command: empty");
    ch_process_result_clear(&res);
    assert_int_equal(prov_helper_run("h 'x", &INPUT, NULL, &r, &res, &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, "cannot parse helper command: Unterminated single-quoted string");
    ch_process_result_clear(&res);
    assert_int_equal(prov_helper_run("/nonexistent/helper", &INPUT, NULL, &r, &res, &err),
                     CH_ERR_IO);
    assert_string_equal(err.msg, "cannot start /nonexistent/helper: No such file or directory");
    assert_null(r);
    ch_process_result_clear(&res);
}

typedef struct {
    const char *cmd;
    int id;
    int ok;
} job;

static void *run_many(void *arg)
{
    job *j = arg;
    for (int i = 0; i < 10; i++) {
        char ident[32];
        snprintf(ident, sizeof(ident), "node-%d-%d", j->id, i);
        prov_helper_input in = {.identity = ident, .inventory = "{}"};
        prov_helper_reply *r = NULL;
        ch_process_result res;
        ch_error err;
        if (prov_helper_run(j->cmd, &in, NULL, &r, &res, &err) == CH_OK &&
            r->configuration.count == 1 && strcmp(r->configuration.items[0].value, ident) == 0)
            j->ok++;
        prov_helper_reply_free(r);
        ch_process_result_clear(&res);
    }
    return NULL;
}

static void four_threads_run_helpers_at_once_each_getting_its_own_reply(void **state)
{
    fixture *f = *state;
    /* echoes the identity back, so a crossed pipe would show as a wrong reply */
    const char *cmd = script(f, "id.sh",
                             "id=$(sed 's/^{\"identity\":\"\\([^\"]*\\)\".*/\\1/')\n"
                             "sleep 0.05\n"
                             "printf '{\"configuration\":{\"identity\":\"%s\"}}' \"$id\"");
    int before = count_fds();
    pthread_t t[4];
    job jobs[4];
    int64_t t0 = ms_now();
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){cmd, i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, run_many, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].ok, 10);
    }
    /* 40 runs of >= 50 ms each, in parallel: well under the 2 s a serial run needs */
    assert_in_range(ms_now() - t0, 0, 1899);
    assert_int_equal(count_fds(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(input_has_five_keys_in_upstream_order),
        cmocka_unit_test(full_reply_decodes_every_field),
        cmocka_unit_test(reply_types_are_strict),
        cmocka_unit_test_setup_teardown(helper_gets_exact_input_and_its_reply_is_decoded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(slow_helper_is_killed_at_the_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(nonzero_exit_is_an_error_with_the_code_and_stderr_kept,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(stderr_is_captured_and_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(garbage_and_empty_output_are_decode_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(deferred_reply_is_returned_to_the_caller, setup, teardown),
        cmocka_unit_test_setup_teardown(hundred_megabytes_of_output_is_cut_off_fast, setup,
                                        teardown),
        cmocka_unit_test(bad_helper_commands_are_reported_before_anything_runs),
        cmocka_unit_test_setup_teardown(four_threads_run_helpers_at_once_each_getting_its_own_reply,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
