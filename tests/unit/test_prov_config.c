/* The provisioner config: every key, its type, its default, upstream's validation messages and
 * the fixed defaults bug. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define MIN_NS (60LL * 1000000000LL)

static prov_config *ok(const char *text)
{
    prov_config *c = NULL;
    ch_error err = {0};
    ch_status st = prov_config_parse(text, strlen(text), "t.yaml", &c, &err);
    if (st != CH_OK)
        fail_msg("unexpected error: %s", err.msg);
    assert_non_null(c);
    return c;
}

/* Returns the error message (static storage: one at a time). */
static const char *bad(const char *text)
{
    static ch_error err;
    prov_config *c = NULL;
    memset(&err, 0, sizeof(err));
    assert_int_not_equal(prov_config_parse(text, strlen(text), "t.yaml", &c, &err), CH_OK);
    assert_null(c);
    assert_null(strchr(err.msg, '\n'));
    return err.msg;
}

static void empty_file_gives_every_default_with_the_logging_bug_fixed(void **state)
{
    prov_config *c = ok("");
    assert_int_equal(c->workers, sysconf(_SC_NPROCESSORS_ONLN));
    assert_string_equal(c->interval, "1m");
    assert_int_equal(c->interval_ns, MIN_NS);
    assert_string_equal(c->logfile, "stderr");
    assert_string_equal(c->loglevel, "info");
    assert_string_equal(c->helper, "");
    assert_string_equal(c->token, "");
    assert_string_equal(c->lifecycle_component, "provision_mode_server");
    assert_false(c->choria_insecure);
    assert_string_equal(c->site, "");
    assert_int_equal(c->monitor_port, 0);
    assert_int_equal(c->broker_port, 0);
    assert_string_equal(c->broker_provisioning_password, "");
    assert_int_equal(c->cert_deny_list.count, 4);
    assert_string_equal(c->cert_deny_list.items[0], "\\.privileged.mcollective$");
    assert_string_equal(c->cert_deny_list.items[1], "\\.privileged.choria$");
    assert_string_equal(c->cert_deny_list.items[2], "\\.mcollective$");
    assert_string_equal(c->cert_deny_list.items[3], "\\.choria$");
    assert_string_equal(c->jwt_verify_cert, "");
    assert_string_equal(c->jwt_signing_key, "");
    assert_string_equal(c->jwt_signing_token, "");
    assert_string_equal(c->server_jwt_validity, "1y");
    assert_int_equal(c->server_jwt_validity_ns, 365LL * 24 * 3600 * 1000000000LL);
    assert_string_equal(c->rego_policy, "");
    assert_false(c->leader_election);
    assert_string_equal(c->upgrades_repository, "");
    assert_false(c->upgrades_optional);
    assert_false(c->features.pki || c->features.jwt || c->features.ed25519 || c->features.upgrades);
    assert_int_equal(c->unknown_keys.count, 0);
    prov_config_free(c);

    ch_error err;
    assert_int_equal(prov_config_new_default(&c, &err), CH_OK);
    assert_string_equal(c->logfile, "stderr");
    prov_config_free(c);
}

static void every_key_is_read_from_yaml(void **state)
{
    prov_config *c = ok("workers: 4\n"
                        "interval: 5m\n"
                        "logfile: /var/log/p.log\n"
                        "loglevel: warn\n"
                        "helper: /etc/choria-provisioner/helper --x 'a b'\n"
                        "token: s3cret\n"
                        "lifecycle_component: custom\n"
                        "choria_insecure: true\n"
                        "site: TEST\n"
                        "monitor_port: 8080\n"
                        "broker_port: 4222\n"
                        "broker_provisioning_password: pw\n"
                        "cert_deny_list: ['\\.bad$', '/evil/']\n"
                        "jwt_verify_cert: e72cba\n"
                        "jwt_signing_key: /k.seed\n"
                        "jwt_signing_token: /k.jwt\n"
                        "server_jwt_validity: 2d\n"
                        "rego_policy: /p.rego\n"
                        "leader_election: true\n"
                        "upgrades_repository: https://repo\n"
                        "upgrades_optional: true\n"
                        "features:\n  pki: true\n  jwt: true\n  upgrades: true\n");
    assert_int_equal(c->workers, 4);
    assert_string_equal(c->interval, "5m");
    assert_int_equal(c->interval_ns, 5 * MIN_NS);
    assert_string_equal(c->logfile, "/var/log/p.log");
    assert_string_equal(c->loglevel, "warn");
    assert_string_equal(c->helper, "/etc/choria-provisioner/helper --x 'a b'");
    assert_string_equal(c->token, "s3cret");
    assert_string_equal(c->lifecycle_component, "custom");
    assert_true(c->choria_insecure);
    assert_string_equal(c->site, "TEST");
    assert_int_equal(c->monitor_port, 8080);
    assert_int_equal(c->broker_port, 4222);
    assert_string_equal(c->broker_provisioning_password, "pw");
    assert_int_equal(c->cert_deny_list.count, 2);
    assert_string_equal(c->cert_deny_list.items[0], "\\.bad$");
    assert_string_equal(c->cert_deny_list.items[1], "/evil/");
    assert_string_equal(c->jwt_verify_cert, "e72cba");
    assert_string_equal(c->jwt_signing_key, "/k.seed");
    assert_string_equal(c->jwt_signing_token, "/k.jwt");
    assert_int_equal(c->server_jwt_validity_ns, 2LL * 24 * 3600 * 1000000000LL);
    assert_string_equal(c->rego_policy, "/p.rego");
    assert_true(c->leader_election);
    assert_string_equal(c->upgrades_repository, "https://repo");
    assert_true(c->upgrades_optional);
    assert_true(c->features.pki && c->features.jwt && c->features.upgrades);
    assert_false(c->features.ed25519);
    assert_int_equal(c->unknown_keys.count, 0);
    prov_config_free(c);
}

static void json_files_are_accepted(void **state)
{
    prov_config *c = ok("{\"workers\": 2, \"interval\": \"10m\", \"features\": {\"jwt\": true},"
                        " \"cert_deny_list\": [\"x$\"]}");
    assert_int_equal(c->workers, 2);
    assert_int_equal(c->interval_ns, 10 * MIN_NS);
    assert_true(c->features.jwt);
    assert_int_equal(c->cert_deny_list.count, 1);
    prov_config_free(c);
}

static void keys_match_case_insensitively_as_go_does(void **state)
{
    prov_config *c = ok("Workers: 3\nSITE: x\nFeatures:\n  PKI: true\n");
    assert_int_equal(c->workers, 3);
    assert_string_equal(c->site, "x");
    assert_true(c->features.pki);
    prov_config_free(c);
}

static void unknown_keys_are_listed_not_fatal(void **state)
{
    prov_config *c = ok("management: {}\nleader_election_name: x\nfeatures:\n  broker: true\n");
    assert_int_equal(c->unknown_keys.count, 3);
    bool seen_feature = false;
    for (size_t i = 0; i < c->unknown_keys.count; i++)
        seen_feature |= strcmp(c->unknown_keys.items[i], "features.broker") == 0;
    assert_true(seen_feature);
    prov_config_free(c);
}

static void null_values_keep_the_defaults(void **state)
{
    prov_config *c = ok("workers:\ninterval: ~\ncert_deny_list: null\nfeatures:\nlogfile:\n");
    assert_int_equal(c->workers, sysconf(_SC_NPROCESSORS_ONLN));
    assert_string_equal(c->interval, "1m");
    assert_int_equal(c->cert_deny_list.count, 4);
    assert_string_equal(c->logfile, "stderr");
    prov_config_free(c);
}

static void empty_values_fall_back_to_defaults(void **state)
{
    prov_config *c = ok("lifecycle_component: ''\ncert_deny_list: []\nloglevel: ''\n"
                        "logfile: ''\nserver_jwt_validity: ''\nworkers: 0\n");
    assert_string_equal(c->lifecycle_component, "provision_mode_server");
    assert_int_equal(c->cert_deny_list.count, 4);
    assert_string_equal(c->loglevel, "info");
    assert_string_equal(c->logfile, "stderr");
    assert_string_equal(c->server_jwt_validity, "1y");
    assert_in_range(c->workers, 1, INT_MAX);
    prov_config_free(c);
}

static void numbers_given_for_strings_become_their_text(void **state)
{
    prov_config *c = ok("token: 123456\nsite: 0.1\ncert_deny_list: [42]\nhelper: true\n");
    assert_string_equal(c->token, "123456");
    assert_string_equal(c->site, "0.1");
    assert_string_equal(c->helper, "true");
    assert_string_equal(c->cert_deny_list.items[0], "42");
    prov_config_free(c);
}

static void yaml11_booleans_are_accepted_for_bool_keys(void **state)
{
    prov_config *c = ok("choria_insecure: yes\nleader_election: on\nupgrades_optional: no\n");
    assert_true(c->choria_insecure);
    assert_true(c->leader_election);
    assert_false(c->upgrades_optional);
    prov_config_free(c);
}

static void ed25519_forces_jwt(void **state)
{
    prov_config *c = ok("features:\n  ed25519: true\n");
    assert_true(c->features.ed25519);
    assert_true(c->features.jwt);
    prov_config_free(c);
}

static void type_mismatches_name_the_key(void **state)
{
    assert_string_equal(bad("workers: '4'\n"),
                        "could not parse config file t.yaml as YAML: json: cannot unmarshal "
                        "string into Go struct field Config.workers of type int");
    assert_non_null(strstr(bad("workers: 4.5\n"), "Config.workers of type int"));
    assert_non_null(strstr(bad("monitor_port: [1]\n"), "Config.monitor_port of type int"));
    assert_non_null(strstr(bad("broker_port: x\n"), "Config.broker_port of type int"));
    assert_non_null(strstr(bad("choria_insecure: 1\n"), "Config.choria_insecure of type bool"));
    assert_non_null(strstr(bad("leader_election: maybe\n"), "Config.leader_election of type bool"));
    assert_non_null(strstr(bad("upgrades_optional: {}\n"), "upgrades_optional of type bool"));
    assert_non_null(strstr(bad("helper: [a]\n"), "Config.helper of type string"));
    assert_non_null(strstr(bad("token: {a: 1}\n"), "Config.token of type string"));
    assert_non_null(strstr(bad("cert_deny_list: x\n"), "Config.cert_deny_list of type []string"));
    assert_non_null(strstr(bad("cert_deny_list: [[x]]\n"), "cert_deny_list of type string"));
    assert_non_null(strstr(bad("cert_deny_list: [~]\n"), "cert_deny_list: entry 0 is null"));
    assert_non_null(strstr(bad("features: true\n"), "Config.features of type config.Features"));
    assert_non_null(strstr(bad("features: {pki: 'x'}\n"), "Config.features.pki of type bool"));
    assert_non_null(strstr(bad("features: {jwt: 1}\n"), "features.jwt"));
    assert_non_null(strstr(bad("features: {ed25519: []}\n"), "features.ed25519"));
    assert_non_null(strstr(bad("features: {upgrades: 2}\n"), "features.upgrades"));
    const char *strs[] = {"interval",
                          "logfile",
                          "loglevel",
                          "lifecycle_component",
                          "site",
                          "broker_provisioning_password",
                          "jwt_verify_cert",
                          "jwt_signing_key",
                          "jwt_signing_token",
                          "server_jwt_validity",
                          "rego_policy",
                          "upgrades_repository"};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        char text[128], want[128];
        snprintf(text, sizeof(text), "%s: [1]\n", strs[i]);
        snprintf(want, sizeof(want), "Config.%s of type string", strs[i]);
        assert_non_null(strstr(bad(text), want));
    }
}

static void validation_messages_match_upstream(void **state)
{
    assert_string_equal(bad("lifecycle_component: a.b\n"), "invalid lifecycle component: a.b");
    assert_string_equal(bad("lifecycle_component: 'a>'\n"), "invalid lifecycle component: a>");
    assert_string_equal(bad("lifecycle_component: 'a*'\n"), "invalid lifecycle component: a*");
    assert_string_equal(bad("lifecycle_component: 'a b'\n"), "invalid lifecycle component: a b");
    /* a multi-line scalar still gives a one-line message */
    assert_string_equal(bad("lifecycle_component: \"a\\nb\"\n"),
                        "invalid lifecycle component: a\\nb");
    assert_null(strchr(bad("interval: 3 %\n  x\n"), '\n'));
    assert_string_equal(bad("features: {pki: true, ed25519: true}\n"),
                        "can only enable one of pki or ed25519 features");
    assert_string_equal(bad("interval: 30s\n"),
                        "interval is too small, minimum is 1 minute.  Valid example values are "
                        "10m or 10h");
    assert_string_equal(bad("interval: ''\n"),
                        "interval is too small, minimum is 1 minute.  Valid example values are "
                        "10m or 10h");
    assert_non_null(strstr(bad("interval: 10x\n"), "invalid interval duration: "));
    assert_non_null(
        strstr(bad("server_jwt_validity: 1q\n"), "invalid server jwt validity duration: "));
    assert_non_null(
        strstr(bad("server_jwt_validity: -1h\n"), "invalid server jwt validity duration: "));
    assert_non_null(strstr(bad("loglevel: verbose\n"), "invalid loglevel verbose"));
    assert_non_null(strstr(bad("workers: -1\n"), "workers must be between 0 and"));
    assert_non_null(strstr(bad("workers: 100000\n"), "workers must be between 0 and"));
    assert_non_null(strstr(bad("workers: 99999999999\n"), "workers: 99999999999 is out of range"));
    assert_non_null(strstr(bad("monitor_port: 70000\n"), "monitor_port must be between"));
    assert_non_null(strstr(bad("monitor_port: -1\n"), "monitor_port must be between"));
    /* pki + ed25519 is checked before the interval, as upstream orders it */
    assert_string_equal(bad("interval: 1s\nfeatures: {pki: true, ed25519: true}\n"),
                        "can only enable one of pki or ed25519 features");
}

static void longer_intervals_and_all_log_levels_are_fine(void **state)
{
    const char *good[] = {"interval: 1h30m\n", "interval: 2d\n",    "interval: 60s\n",
                          "loglevel: debug\n", "loglevel: ERROR\n", "loglevel: fatal\n"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        prov_config_free(ok(good[i]));
    prov_config *c = ok("interval: 1h30m\n");
    assert_int_equal(c->interval_ns, 90 * MIN_NS);
    prov_config_free(c);
}

static void syntax_errors_and_bad_bytes_are_refused_without_hanging(void **state)
{
    assert_non_null(strstr(bad("workers: [1\n"), "file t.yaml could not be parsed: "));
    assert_non_null(strstr(bad("%\x80"), "file t.yaml could not be parsed: "));
    assert_non_null(strstr(bad("site: a\x01\n"), "could not be parsed"));
    assert_non_null(strstr(bad("- a\n- b\n"), "cannot unmarshal array"));
    assert_non_null(strstr(bad("\"just a string\""), "cannot unmarshal string"));
    assert_non_null(strstr(bad("{\"site\": \"a\\u0000b\"}"), "NUL byte"));
    prov_config *c = NULL;
    ch_error err;
    assert_int_equal(prov_config_parse("x", CH_MAX_CONFIG_FILE_SIZE + 1, "t", &c, &err),
                     CH_ERR_TOO_LARGE);
    assert_null(c);
}

static void load_reports_missing_files_and_reads_real_ones(void **state)
{
    prov_config *c = NULL;
    ch_error err;
    assert_int_equal(prov_config_load("/nonexistent/p.yaml", &c, &err), CH_ERR_NOT_FOUND);
    assert_string_equal(err.msg, "file /nonexistent/p.yaml not found");
    assert_int_not_equal(prov_config_load("/tmp", &c, &err), CH_OK);
    assert_non_null(strstr(err.msg, "config file could not be read: "));

    char path[] = "/tmp/prov_config_XXXXXX";
    int fd = mkstemp(path);
    assert_in_range(fd, 0, INT_MAX);
    const char *text = "workers: 4\ninterval: 5m\nsite: TEST\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(prov_config_load(path, &c, &err), CH_OK);
    assert_int_equal(c->workers, 4);
    assert_string_equal(c->site, "TEST");
    prov_config_free(c);

    char big_path[] = "/tmp/prov_config_big_XXXXXX";
    fd = mkstemp(big_path);
    assert_in_range(fd, 0, INT_MAX);
    assert_int_equal(ftruncate(fd, CH_MAX_CONFIG_FILE_SIZE + 10), 0);
    close(fd);
    assert_int_not_equal(prov_config_load(big_path, &c, &err), CH_OK);
    assert_null(c);
    assert_non_null(strstr(err.msg, "config file could not be read: "));
    unlink(path);
    unlink(big_path);
}

static void documented_examples_parse(void **state)
{
    prov_config *c = ok("workers: 4\ninterval: 1m\nlogfile: /dev/stdout\nloglevel: warn\n"
                        "helper: /etc/choria-provisioner/provisioner/helper.rb\n"
                        "token: s3cret\nsite: testing\nbroker_provisioning_password: s3cret\n"
                        "jwt_verify_cert: "
                        "e72cba5268b34627b75c5ceae9449ad16d62f15f862c30d4e0e7d2588e2e6259\n"
                        "jwt_signing_key: /etc/choria-provisioner/credentials/signer.seed\n"
                        "jwt_signing_token: /etc/choria-provisioner/credentials/signer.jwt\n"
                        "features:\n  jwt: true\n  ed25519: true\n");
    assert_true(c->features.ed25519 && c->features.jwt);
    assert_string_equal(c->logfile, "/dev/stdout");
    prov_config_free(c);
}

static void helper_mode_processes_and_timeout(void **state)
{
    prov_config *c = ok("workers: 6\n");
    assert_string_equal(c->helper_mode, "exec"); /* upstream's way stays the default */
    assert_false(c->helper_persistent);
    assert_int_equal(c->helper_processes, 6); /* as many as workers */
    assert_int_equal(c->helper_timeout_ns, 10000000000LL);
    prov_config_free(c);
    c = ok("workers: 6\nhelper_mode: Persistent\nhelper_processes: 2\nhelper_timeout: 90s\n");
    assert_true(c->helper_persistent);
    assert_int_equal(c->helper_processes, 2);
    assert_int_equal(c->helper_timeout_ns, 90000000000LL);
    assert_int_equal(c->unknown_keys.count, 0);
    prov_config_free(c);
    assert_string_equal(bad("helper_mode: fork\n"),
                        "invalid helper_mode fork: must be exec or persistent");
    assert_non_null(strstr(bad("helper_processes: -1\n"), "helper_processes must be between"));
    assert_non_null(strstr(bad("helper_processes: 5000\n"), "helper_processes must be between"));
    assert_non_null(strstr(bad("helper_timeout: 10q\n"), "invalid helper_timeout duration"));
    assert_non_null(strstr(bad("helper_timeout: 2h\n"), "helper_timeout must be between"));
    assert_non_null(strstr(bad("helper_timeout: 0s\n"), "helper_timeout must be between"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_file_gives_every_default_with_the_logging_bug_fixed),
        cmocka_unit_test(every_key_is_read_from_yaml),
        cmocka_unit_test(json_files_are_accepted),
        cmocka_unit_test(keys_match_case_insensitively_as_go_does),
        cmocka_unit_test(unknown_keys_are_listed_not_fatal),
        cmocka_unit_test(null_values_keep_the_defaults),
        cmocka_unit_test(empty_values_fall_back_to_defaults),
        cmocka_unit_test(numbers_given_for_strings_become_their_text),
        cmocka_unit_test(yaml11_booleans_are_accepted_for_bool_keys),
        cmocka_unit_test(ed25519_forces_jwt),
        cmocka_unit_test(type_mismatches_name_the_key),
        cmocka_unit_test(validation_messages_match_upstream),
        cmocka_unit_test(longer_intervals_and_all_log_levels_are_fine),
        cmocka_unit_test(syntax_errors_and_bad_bytes_are_refused_without_hanging),
        cmocka_unit_test(load_reports_missing_files_and_reads_real_ones),
        cmocka_unit_test(documented_examples_parse),
        cmocka_unit_test(helper_mode_processes_and_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
