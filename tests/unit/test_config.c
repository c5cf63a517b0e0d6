/* Choria config files: parsing rules, typed values, resolved settings, client config search,
 * go-choria durations and Go duration strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/config.h"
#include "choria/util.h"
#include "harness.h"

static ch_config *parse_ok(const char *text)
{
    ch_config *cfg = ch_config_new();
    ch_error err = {0};
    assert_non_null(cfg);
    if (ch_config_parse(cfg, "test.cfg", text, strlen(text), &err) != CH_OK)
        fail_msg("parse failed: %s", err.msg);
    return cfg;
}

static void parse_fails(const char *text, size_t len, ch_status want, const char *msg_part)
{
    ch_config *cfg = ch_config_new();
    ch_error err = {0};
    ch_status s = ch_config_parse(cfg, "test.cfg", text, len, &err);
    if (s != want)
        fail_msg("parse gave %d (%s), want %d", s, err.msg, want);
    if (msg_part != NULL && strstr(err.msg, msg_part) == NULL)
        fail_msg("error '%s' does not mention '%s'", err.msg, msg_part);
    assert_int_equal(ch_config_count(cfg), 0);
    ch_config_free(cfg);
}

static void key_values_comments_blank_lines_and_white_space(void **state)
{
    (void)state;
    ch_config *cfg = parse_ok("# a comment\n"
                              "; another comment\n"
                              "   # indented comment = not a key\n"
                              "\n"
                              "   \t\n"
                              "identity = n1.example.net\n"
                              "\t plugin.choria.middleware_hosts\t=\t  b1:4222, b2:4222  \r\n"
                              "loglevel=debug\n"
                              "spaced.value = a value  with  spaces\n"
                              "last.line = no newline");
    assert_int_equal(ch_config_count(cfg), 5);
    assert_string_equal(ch_config_get(cfg, "identity"), "n1.example.net");
    assert_string_equal(ch_config_get(cfg, "plugin.choria.middleware_hosts"), "b1:4222, b2:4222");
    assert_string_equal(ch_config_get(cfg, "loglevel"), "debug");
    assert_string_equal(ch_config_get(cfg, "spaced.value"), "a value  with  spaces");
    assert_string_equal(ch_config_get(cfg, "last.line"), "no newline");
    assert_null(ch_config_get(cfg, "# indented comment"));
    assert_null(ch_config_get(cfg, "missing"));
    assert_false(ch_config_has(cfg, "missing"));
    assert_true(ch_config_has(cfg, "identity"));
    ch_config_free(cfg);
}

static void later_keys_override_earlier_and_keep_first_position(void **state)
{
    (void)state;
    ch_config *cfg = parse_ok("a = 1\nb = 2\na = 3\nc = 4\n");
    const char *k, *v;
    assert_int_equal(ch_config_count(cfg), 3);
    assert_true(ch_config_entry(cfg, 0, &k, &v));
    assert_string_equal(k, "a");
    assert_string_equal(v, "3");
    assert_true(ch_config_entry(cfg, 1, &k, &v));
    assert_string_equal(k, "b");
    assert_true(ch_config_entry(cfg, 2, &k, &v));
    assert_string_equal(k, "c");
    assert_false(ch_config_entry(cfg, 3, &k, &v));
    /* A second file overrides the first. */
    assert_int_equal(ch_config_parse(cfg, "second", "b = 20\nd = 5", 12, NULL), CH_OK);
    assert_string_equal(ch_config_get(cfg, "b"), "20");
    assert_string_equal(ch_config_get(cfg, "d"), "5");
    assert_int_equal(ch_config_count(cfg), 4);
    ch_config_free(cfg);
}

static void keys_are_case_sensitive_and_values_keep_equals_and_hashes(void **state)
{
    (void)state;
    ch_config *cfg = parse_ok("Identity = upper\nidentity = lower\n"
                              "url = nats://x:1?a=b # not a comment\nk==v\n");
    assert_string_equal(ch_config_get(cfg, "Identity"), "upper");
    assert_string_equal(ch_config_get(cfg, "identity"), "lower");
    assert_string_equal(ch_config_get(cfg, "url"), "nats://x:1?a=b # not a comment");
    assert_string_equal(ch_config_get(cfg, "k"), "=v");
    ch_config_free(cfg);
}

static void key_without_value_is_skipped_like_go_choria(void **state)
{
    (void)state;
    ch_config *cfg = parse_ok("a = 1\na =\nb =   \n");
    assert_string_equal(ch_config_get(cfg, "a"), "1");
    assert_false(ch_config_has(cfg, "b"));
    assert_int_equal(ch_config_count(cfg), 1);
    ch_config_free(cfg);
}

static void lines_without_equals_or_with_bad_keys_fail_with_line_number(void **state)
{
    (void)state;
    const char *t1 = "a = 1\n\nthis is not a setting\n";
    parse_fails(t1, strlen(t1), CH_ERR_INVALID, "test.cfg:3: expected 'key = value'");
    const char *t2 = "a = 1\nfoo bar = 2\n";
    parse_fails(t2, strlen(t2), CH_ERR_INVALID, "test.cfg:2: invalid key 'foo bar'");
    const char *t3 = "= 2\n";
    parse_fails(t3, strlen(t3), CH_ERR_INVALID, "test.cfg:1: invalid key ''");
    const char *t4 = "\r\n\r\nplugin/x = 2\r\n";
    parse_fails(t4, strlen(t4), CH_ERR_INVALID, "test.cfg:3: invalid key 'plugin/x'");

    /* A failing file leaves an existing store exactly as it was. */
    ch_config *cfg = parse_ok("a = 1\n");
    ch_error err = {0};
    assert_int_equal(ch_config_parse(cfg, "second", "a = 2\nb = 3\noops\n", 17, &err),
                     CH_ERR_INVALID);
    assert_string_equal(err.msg, "second:3: expected 'key = value', got 'oops'");
    assert_string_equal(ch_config_get(cfg, "a"), "1");
    assert_false(ch_config_has(cfg, "b"));
    ch_config_free(cfg);
}

static void long_lines_big_files_and_nul_bytes_are_rejected(void **state)
{
    (void)state;
    size_t n = CH_MAX_CONFIG_LINE + 1;
    char *text = malloc(n + 32);
    strcpy(text, "a = 1\nb = ");
    memset(text + 10, 'x', n - 4);
    text[n + 6] = '\0';
    parse_fails(text, strlen(text), CH_ERR_TOO_LARGE, "test.cfg:2: line is longer than");
    free(text);

    /* Exactly CH_MAX_CONFIG_LINE is fine. */
    text = malloc(CH_MAX_CONFIG_LINE + 1);
    memcpy(text, "b = ", 4);
    memset(text + 4, 'y', CH_MAX_CONFIG_LINE - 4);
    text[CH_MAX_CONFIG_LINE] = '\0';
    ch_config *cfg = parse_ok(text);
    assert_int_equal(strlen(ch_config_get(cfg, "b")), CH_MAX_CONFIG_LINE - 4);
    ch_config_free(cfg);
    free(text);

    size_t big = CH_MAX_CONFIG_FILE_SIZE + 1;
    text = malloc(big);
    memset(text, '\n', big);
    parse_fails(text, big, CH_ERR_TOO_LARGE, "larger than");
    free(text);

    parse_fails("a = 1\nb = x\0y\n", 14, CH_ERR_INVALID, "test.cfg:2: line contains a NUL byte");
}

static void load_file_reads_and_reports_missing_files(void **state)
{
    (void)state;
    char dir[256], path[300];
    ch_error err = {0};
    CHT_CHECK(cht_temp_dir("config", dir, sizeof(dir), &err), &err);
    snprintf(path, sizeof(path), "%s/client.conf", dir);
    CHT_CHECK(cht_write_file(path, &err, "identity = from.file\nbad line\n"), &err);

    ch_config *cfg = ch_config_new();
    assert_int_equal(ch_config_load_file(cfg, path, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "client.conf:2:"));

    CHT_CHECK(cht_write_file(path, &err, "identity = from.file\n"), &err);
    assert_int_equal(ch_config_load_file(cfg, path, &err), CH_OK);
    assert_string_equal(ch_config_get(cfg, "identity"), "from.file");
    unlink(path);
    assert_int_equal(ch_config_load_file(cfg, path, &err), CH_ERR_NOT_FOUND);
    cht_temp_dir_remove(dir, NULL);
    ch_config_free(cfg);
}

static void set_validates_keys_and_overrides(void **state)
{
    (void)state;
    ch_config *cfg = ch_config_new();
    ch_error err = {0};
    assert_int_equal(ch_config_set(cfg, "a.b", "1", &err), CH_OK);
    assert_int_equal(ch_config_set(cfg, "a.b", "2", &err), CH_OK);
    assert_string_equal(ch_config_get(cfg, "a.b"), "2");
    assert_int_equal(ch_config_set(cfg, "a b", "1", &err), CH_ERR_INVALID);
    assert_int_equal(ch_config_set(cfg, "", "1", &err), CH_ERR_INVALID);
    assert_int_equal(ch_config_set(cfg, "x", NULL, &err), CH_ERR_INVALID);
    /* Many keys: the index grows and every key stays reachable. */
    char key[32], value[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        assert_int_equal(ch_config_set(cfg, key, value, NULL), CH_OK);
    }
    assert_int_equal(ch_config_count(cfg), 5001);
    for (int i = 0; i < 5000; i += 7) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        assert_string_equal(ch_config_get(cfg, key), value);
    }
    ch_config_free(cfg);
    ch_config_free(NULL);
}

static void bools_accept_go_choria_words_only(void **state)
{
    (void)state;
    const char *yes[] = {"1", "yes", "true", "y", "t", "YES", "True", "Y", "T", " tRuE "};
    const char *no[] = {"0", "no", "false", "n", "f", "NO", "False", "N", "F", "\tfalse"};
    const char *bad[] = {"", "2", "yess", "on", "off", "enabled", "truee", "-1", "t r"};
    bool b;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        b = false;
        assert_int_equal(ch_config_parse_bool(yes[i], &b), CH_OK);
        assert_true(b);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        b = true;
        assert_int_equal(ch_config_parse_bool(no[i], &b), CH_OK);
        assert_false(b);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ch_config_parse_bool(bad[i], &b), CH_ERR_INVALID);

    ch_config *cfg = parse_ok("on = yes\noff = n\nbad = maybe\n");
    ch_error err = {0};
    assert_int_equal(ch_config_get_bool(cfg, "on", false, &b, &err), CH_OK);
    assert_true(b);
    assert_int_equal(ch_config_get_bool(cfg, "off", true, &b, &err), CH_OK);
    assert_false(b);
    assert_int_equal(ch_config_get_bool(cfg, "missing", true, &b, &err), CH_OK);
    assert_true(b);
    assert_int_equal(ch_config_get_bool(cfg, "bad", true, &b, &err), CH_ERR_INVALID);
    assert_true(b);
    assert_string_equal(err.msg, "bad: cannot convert string value 'maybe' into a boolean");
    ch_config_free(cfg);
}

static void ints_follow_go_atoi(void **state)
{
    (void)state;
    struct {
        const char *in;
        int64_t want;
    } ok[] = {{"60", 60},
              {"+5", 5},
              {"-7", -7},
              {"007", 7},
              {" 9 ", 9},
              {"9223372036854775807", INT64_MAX},
              {"-9223372036854775808", INT64_MIN}};
    const char *bad[] = {
        "",    "-",   "+",  "1.5", "0x10", "1_000", "9223372036854775808", "-9223372036854775809",
        "12a", "a12", "1 2"};
    int64_t v;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(ch_config_parse_int(ok[i].in, &v), CH_OK);
        assert_int_equal(v, ok[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ch_config_parse_int(bad[i], &v) != CH_ERR_INVALID)
            fail_msg("'%s' parsed as an integer", bad[i]);

    ch_config *cfg = parse_ok("ttl = 30\nbad = 3x\n");
    ch_error err = {0};
    assert_int_equal(ch_config_get_int(cfg, "ttl", 60, &v, &err), CH_OK);
    assert_int_equal(v, 30);
    assert_int_equal(ch_config_get_int(cfg, "nope", 60, &v, &err), CH_OK);
    assert_int_equal(v, 60);
    assert_int_equal(ch_config_get_int(cfg, "bad", 60, &v, &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, "bad: '3x' is not an integer");
    ch_config_free(cfg);
}

static void lists_are_trimmed_and_drop_empty_items(void **state)
{
    (void)state;
    ch_config_list l;
    assert_int_equal(ch_config_split_list(" a, b ,,c , ", &l), CH_OK);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0], "a");
    assert_string_equal(l.items[1], "b");
    assert_string_equal(l.items[2], "c");
    ch_config_list_free(&l);
    assert_int_equal(l.count, 0);
    assert_null(l.items);
    assert_int_equal(ch_config_split_list(",, ,", &l), CH_OK);
    assert_int_equal(l.count, 0);
    ch_config_list_free(&l);
    assert_int_equal(ch_config_split_list(NULL, &l), CH_OK);
    assert_int_equal(l.count, 0);
    ch_config_list_free(NULL);

    ch_config *cfg = parse_ok("collectives = one,two\n");
    assert_int_equal(ch_config_get_list(cfg, "collectives", "x", &l, NULL), CH_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[1], "two");
    ch_config_list_free(&l);
    assert_int_equal(ch_config_get_list(cfg, "missing", "d1, d2", &l, NULL), CH_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0], "d1");
    ch_config_list_free(&l);
    assert_int_equal(ch_config_get_list(cfg, "missing", NULL, &l, NULL), CH_OK);
    assert_int_equal(l.count, 0);
    ch_config_free(cfg);
}

static void middleware_hosts_accept_go_choria_forms_and_normalise(void **state)
{
    (void)state;
    struct {
        const char *in;
        const char *host;
        unsigned port;
        const char *url;
    } ok[] = {
        {"broker", "broker", 4222, "nats://broker:4222"},
        {"broker.example.net:4223", "broker.example.net", 4223, "nats://broker.example.net:4223"},
        {"nats://b1:4222", "b1", 4222, "nats://b1:4222"},
        {"NATS://b1:1", "b1", 1, "nats://b1:1"},
        {"tls://b2:4333", "b2", 4333, "nats://b2:4333"},
        {"nats://b3", "b3", 4222, "nats://b3:4222"},
        {"nats://b4:4222/", "b4", 4222, "nats://b4:4222"},
        {"192.168.1.1:65535", "192.168.1.1", 65535, "nats://192.168.1.1:65535"},
        {"[::1]:4222", "::1", 4222, "nats://[::1]:4222"},
        {"nats://[fe80::1:2]", "fe80::1:2", 4222, "nats://[fe80::1:2]:4222"},
        {"my_host-1", "my_host-1", 4222, "nats://my_host-1:4222"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ch_config_server *s = NULL;
        size_t n = 0;
        ch_error err = {0};
        if (ch_config_parse_servers(ok[i].in, &s, &n, &err) != CH_OK)
            fail_msg("'%s': %s", ok[i].in, err.msg);
        assert_int_equal(n, 1);
        assert_string_equal(s[0].host, ok[i].host);
        assert_int_equal(s[0].port, ok[i].port);
        assert_string_equal(s[0].url, ok[i].url);
        ch_config_servers_free(s, n);
    }

    ch_config_server *s = NULL;
    size_t n = 0;
    assert_int_equal(ch_config_parse_servers(" b1:4222 ,, nats://b2 ,tls://b3:5 ", &s, &n, NULL),
                     CH_OK);
    assert_int_equal(n, 3);
    assert_string_equal(s[0].url, "nats://b1:4222");
    assert_string_equal(s[1].url, "nats://b2:4222");
    assert_string_equal(s[2].url, "nats://b3:5");
    ch_config_servers_free(s, n);
    assert_int_equal(ch_config_parse_servers(NULL, &s, &n, NULL), CH_OK);
    assert_int_equal(n, 0);
    assert_null(s);
    assert_int_equal(ch_config_parse_servers(" , ", &s, &n, NULL), CH_OK);
    assert_int_equal(n, 0);
}

static void bad_middleware_hosts_are_errors_naming_the_entry(void **state)
{
    (void)state;
    const char *bad[] = {
        "http://b:1", "b:0",     "b:65536", "b:abc",        "b:",    "u:p@b:4222",  "b:4222/path",
        "::1:4222",   "[::1",    "[::1]x",  "[zz::1]:1",    "[]:1",  "bad host!:1", ":4222",
        "b:123456",   "nats://", "b:-1",    "[::1]:4222:1", "b?x=1", "[1.2.3.4]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ch_config_server *s = (ch_config_server *)0x1;
        size_t n = 99;
        ch_error err = {0};
        char list[128], want[128];
        snprintf(list, sizeof(list), "good:4222, %s", bad[i]);
        snprintf(want, sizeof(want), "invalid middleware host '%s'", bad[i]);
        if (ch_config_parse_servers(list, &s, &n, &err) != CH_ERR_INVALID)
            fail_msg("'%s' was accepted", bad[i]);
        assert_null(s);
        assert_int_equal(n, 0);
        if (strstr(err.msg, want) == NULL)
            fail_msg("error '%s' does not name '%s'", err.msg, bad[i]);
    }
}

static void resolve_applies_go_choria_defaults(void **state)
{
    (void)state;
    ch_config *cfg = parse_ok("identity = n1.example.net\n");
    ch_config_resolved *r = NULL;
    ch_error err = {0};
    assert_int_equal(ch_config_resolve(cfg, &r, &err), CH_OK);
    assert_string_equal(r->identity, "n1.example.net");
    assert_string_equal(r->loglevel, "info");
    assert_int_equal(r->log_level, CH_LOG_INFO);
    assert_null(r->logfile);
    assert_int_equal(r->collectives.count, 1);
    assert_string_equal(r->collectives.items[0], "mcollective");
    assert_string_equal(r->main_collective, "mcollective");
    assert_int_equal(r->middleware_count, 0);
    assert_null(r->middleware_urls);
    assert_int_equal(r->ttl, 60);
    assert_int_equal(r->discovery_timeout, 2);
    assert_false(r->legacy_lifecycle_format);
    assert_string_equal(r->security_provider, "puppet");
    assert_false(r->insecure);
    ch_config_resolved_free(r);
    ch_config_resolved_free(NULL);
    ch_config_free(cfg);
}

static void resolve_reads_every_setting(void **state)
{
    (void)state;
    ch_config *cfg = parse_ok("identity = provisioner_signer\n"
                              "loglevel = debug\n"
                              "logfile = /var/log/choria.log\n"
                              "collectives = provisioning, other\n"
                              "plugin.choria.middleware_hosts = nats://b1:4222, b2\n"
                              "ttl = 30\n"
                              "discovery_timeout = 5\n"
                              "plugin.choria.legacy_lifecycle_format = yes\n"
                              "plugin.security.provider = file\n"
                              "choria_insecure = true\n"
                              "plugin.nats.user = someone\n");
    ch_config_resolved *r = NULL;
    ch_error err = {0};
    assert_int_equal(ch_config_resolve(cfg, &r, &err), CH_OK);
    assert_string_equal(r->identity, "provisioner_signer");
    assert_string_equal(r->loglevel, "debug");
    assert_int_equal(r->log_level, CH_LOG_DEBUG);
    assert_string_equal(r->logfile, "/var/log/choria.log");
    assert_int_equal(r->collectives.count, 2);
    assert_string_equal(r->main_collective, "provisioning");
    assert_int_equal(r->middleware_count, 2);
    assert_string_equal(r->middleware_urls[0], "nats://b1:4222");
    assert_string_equal(r->middleware_urls[1], "nats://b2:4222");
    assert_int_equal(r->middleware_hosts[1].port, 4222);
    assert_int_equal(r->ttl, 30);
    assert_int_equal(r->discovery_timeout, 5);
    assert_true(r->legacy_lifecycle_format);
    assert_string_equal(r->security_provider, "file");
    assert_true(r->insecure);
    /* Everything else stays in the store. */
    assert_string_equal(ch_config_get(cfg, "plugin.nats.user"), "someone");
    ch_config_resolved_free(r);

    /* main_collective wins over the first collective; the plugin key wins over choria_insecure;
     * fatal is accepted as a level. */
    assert_int_equal(ch_config_set(cfg, "main_collective", "other", NULL), CH_OK);
    assert_int_equal(ch_config_set(cfg, "plugin.choria.security.insecure", "false", NULL), CH_OK);
    assert_int_equal(ch_config_set(cfg, "loglevel", "fatal", NULL), CH_OK);
    assert_int_equal(ch_config_resolve(cfg, &r, &err), CH_OK);
    assert_string_equal(r->main_collective, "other");
    assert_false(r->insecure);
    assert_int_equal(r->log_level, CH_LOG_ERROR);
    ch_config_resolved_free(r);
    ch_config_free(cfg);
}

static void resolve_rejects_bad_settings(void **state)
{
    (void)state;
    struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"loglevel = loud", "loglevel: 'loud' is not one of"},
        {"ttl = soon", "ttl: 'soon' is not an integer"},
        {"ttl = 0", "ttl: must be a positive"},
        {"discovery_timeout = -1", "discovery_timeout: must be a positive"},
        {"plugin.choria.legacy_lifecycle_format = perhaps", "legacy_lifecycle_format"},
        {"choria_insecure = sure", "choria_insecure"},
        {"collectives = a.b", "invalid collective 'a.b'"},
        {"collectives = ok, a b", "invalid collective 'a b'"},
        {"collectives = ,", "no collective given"},
        {"main_collective = >", "main_collective: invalid collective '>'"},
        {"plugin.choria.middleware_hosts = b1, http://b2", "invalid middleware host 'http://b2'"},
        {"identity = not valid", "identity 'not valid' is not a valid identity"},
        {"identity = a..b", "is not a valid identity"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ch_config *cfg = parse_ok(cases[i].text);
        if (!ch_config_has(cfg, "identity"))
            assert_int_equal(ch_config_set(cfg, "identity", "n1.example.net", NULL), CH_OK);
        ch_config_resolved *r = (ch_config_resolved *)0x1;
        ch_error err = {0};
        assert_int_equal(ch_config_resolve(cfg, &r, &err), CH_ERR_INVALID);
        assert_null(r);
        if (strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("'%s': error '%s' does not mention '%s'", cases[i].text, err.msg,
                     cases[i].msg);
        ch_config_free(cfg);
    }
}

static void identity_defaults_to_the_fqdn(void **state)
{
    (void)state;
    char fqdn[256];
    assert_int_equal(ch_fqdn(fqdn, sizeof(fqdn)), CH_OK);
    if (!ch_identity_valid(fqdn))
        skip(); /* this host's name cannot be an identity at all */
    ch_config *cfg = parse_ok("identity =\nloglevel = warn\n");
    ch_config_resolved *r = NULL;
    ch_error err = {0};
    assert_int_equal(ch_config_resolve(cfg, &r, &err), CH_OK);
    assert_string_equal(r->identity, fqdn);
    assert_int_equal(r->log_level, CH_LOG_WARN);
    ch_config_resolved_free(r);
    ch_config_free(cfg);
}

static void make_file(const char *base, const char *rel)
{
    char path[512], cmd[600];
    snprintf(path, sizeof(path), "%s%s", base, rel);
    snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
    assert_int_equal(system(cmd), 0);
    ch_error err;
    CHT_CHECK(cht_write_file(path, &err, "identity = x\n"), &err);
}

static void expect_found(const char *root, const char *home, const char *base, const char *rel)
{
    char *got = ch_config_find_client_config(root, home);
    if (rel == NULL) {
        assert_null(got);
        return;
    }
    char want[512];
    snprintf(want, sizeof(want), "%s%s", base, rel);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void client_config_search_follows_go_choria_order(void **state)
{
    (void)state;
    char dir[256], root[300], home[300], cmd[320];
    ch_error err;
    CHT_CHECK(cht_temp_dir("config-find", dir, sizeof(dir), &err), &err);
    snprintf(root, sizeof(root), "%s/root", dir);
    snprintf(home, sizeof(home), "%s/home", dir);
    assert_int_equal(mkdir(root, 0700), 0);
    assert_int_equal(mkdir(home, 0700), 0);

    expect_found(root, home, "", NULL);
    make_file(root, "/etc/puppetlabs/mcollective/client.cfg");
    expect_found(root, home, root, "/etc/puppetlabs/mcollective/client.cfg");
    make_file(root, "/usr/local/etc/choria/client.conf");
    expect_found(root, home, root, "/usr/local/etc/choria/client.conf");
    make_file(root, "/etc/choria/client.conf");
    expect_found(root, home, root, "/etc/choria/client.conf");
    /* A directory in the way does not count. */
    snprintf(cmd, sizeof(cmd), "%s/.choriarc", home);
    assert_int_equal(mkdir(cmd, 0700), 0);
    expect_found(root, home, root, "/etc/choria/client.conf");
    make_file(home, "/.mcollective");
    expect_found(root, home, home, "/.mcollective");
    assert_int_equal(rmdir(cmd), 0);
    make_file(home, "/.choriarc");
    expect_found(root, home, home, "/.choriarc");
    /* An empty home skips the home files; NULL home means $HOME. */
    expect_found(root, "", root, "/etc/choria/client.conf");
    char *old = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("HOME", home, 1);
    expect_found(root, NULL, home, "/.choriarc");
    unsetenv("HOME");
    expect_found(root, NULL, root, "/etc/choria/client.conf");
    if (old != NULL) {
        setenv("HOME", old, 1);
        free(old);
    }

    CHT_CHECK(cht_temp_dir_remove(dir, &err), &err);
}

#define SEC INT64_C(1000000000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

static void durations_parse_like_go_choria(void **state)
{
    (void)state;
    struct {
        const char *in;
        int64_t want;
    } ok[] = {
        {"", 0},
        {"   ", 0},
        {"1s", SEC},
        {"90s", 90 * SEC},
        {"500ms", 500000000},
        {"1h30m", HOUR + 30 * MIN},
        {"1.5h", HOUR + 30 * MIN},
        {"1m", MIN},
        {"-1m", -MIN},
        {"+2s", 2 * SEC},
        {"-0s", 0},
        {".5s", 500000000},
        {"5.s", 5 * SEC},
        {"1us", 1000},
        {"1\xc2\xb5s", 1000},
        {"1\xce\xbcs", 1000},
        {"1ns", 1},
        {"1h0m0s", HOUR},
        {"2h45m30.5s", 2 * HOUR + 45 * MIN + 30 * SEC + 500000000},
        {"1.0000000001s", SEC},
        {"0.1234567890123456789s", 123456789},
        {"2562047h47m16.854775807s", INT64_MAX},
        {"-2562047h47m16.854775808s", INT64_MIN},
        {"9223372036854775807ns", INT64_MAX},
        {"1w", 168 * HOUR},
        {"1W", 168 * HOUR},
        {"1.5w", 252 * HOUR},
        {"2d", 48 * HOUR},
        {"2D", 48 * HOUR},
        {"1.5d", 36 * HOUR},
        {"0.01d", 0},            /* 0.24 h is truncated to whole hours, as Go does */
        {"0.0416666666d", HOUR}, /* float32 rounds up to 1/24 and more */
        {"-1d", -24 * HOUR},
        {"1e1d", 240 * HOUR},
        {"+1d", 24 * HOUR},
        {" 1d ", 24 * HOUR},
        {"1M", 720 * HOUR},
        {"1y", 8760 * HOUR},
        {"1Y", 8760 * HOUR},
        {"2y", 2 * 8760 * HOUR},
        {"106751d", 106751 * 24 * HOUR},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t ns = 12345;
        ch_error err = {0};
        if (ch_config_parse_duration(ok[i].in, &ns, &err) != CH_OK)
            fail_msg("'%s': %s", ok[i].in, err.msg);
        if (ns != ok[i].want)
            fail_msg("'%s' gave %lld, want %lld", ok[i].in, (long long)ns, (long long)ok[i].want);
    }
}

static void bad_durations_are_errors(void **state)
{
    (void)state;
    struct {
        const char *in;
        const char *msg;
    } bad[] = {
        {"1x", "invalid time unit x"},
        {"1", "invalid time unit 1"},
        {"0", "invalid time unit 0"},
        {"10\xc2\xb5", "invalid time unit \\xb5"},
        {"1S", "time: unknown unit \"S\" in duration \"1S\""},
        {"1H", "unknown unit \"H\""},
        {"1hm", "unknown unit \"hm\""},
        {"1h 30m", "unknown unit \"h \""},
        {"s", "time: invalid duration \"s\""},
        {".s", "invalid duration"},
        {"-.m", "invalid duration"},
        {"1.2.3s", "time: missing unit in duration \"1.2.3s\""},
        {"2562047h47m16.854775808s", "invalid duration"},
        {"9223372036854775808ns", "invalid duration"},
        {"99999999999999999999h", "invalid duration"},
        {"3000000h", "invalid duration"},
        {"d", "strconv.ParseFloat: parsing \"\": invalid syntax"},
        {"1 d", "invalid syntax"},
        {"infd", "invalid syntax"},
        {"nand", "invalid syntax"},
        {"0x1p3d", "invalid syntax"},
        {"1e39d", "value out of range"},
        {"1e5ed", "invalid syntax"},
        {"3000000y", "out of range"},
        {"106752d", "out of range"},
        {"-106752d", "out of range"},
        {"1,5d", "invalid syntax"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ns = 0;
        ch_error err = {0};
        if (ch_config_parse_duration(bad[i].in, &ns, &err) != CH_ERR_INVALID)
            fail_msg("'%s' was accepted as %lld", bad[i].in, (long long)ns);
        if (strstr(err.msg, bad[i].msg) == NULL)
            fail_msg("'%s': error '%s' does not mention '%s'", bad[i].in, err.msg, bad[i].msg);
    }

    ch_config *cfg = parse_ok("interval = 5m\nbad = 5x\n");
    int64_t ns;
    ch_error err = {0};
    assert_int_equal(ch_config_get_duration(cfg, "interval", MIN, &ns, &err), CH_OK);
    assert_int_equal(ns, 5 * MIN);
    assert_int_equal(ch_config_get_duration(cfg, "missing", MIN, &ns, &err), CH_OK);
    assert_int_equal(ns, MIN);
    assert_int_equal(ch_config_get_duration(cfg, "bad", MIN, &ns, &err), CH_ERR_INVALID);
    assert_int_equal(ns, MIN);
    assert_string_equal(err.msg, "bad: invalid time unit x");
    ch_config_free(cfg);
}

static void durations_format_as_go_duration_strings(void **state)
{
    (void)state;
    struct {
        int64_t ns;
        const char *want;
    } cases[] = {
        {0, "0s"},
        {1, "1ns"},
        {999, "999ns"},
        {1000, "1\xc2\xb5s"},
        {1500, "1.5\xc2\xb5s"},
        {1000000, "1ms"},
        {1500000, "1.5ms"},
        {500000000, "500ms"},
        {SEC, "1s"},
        {1500000000, "1.5s"},
        {30 * SEC, "30s"},
        {MIN, "1m0s"},
        {90 * SEC, "1m30s"},
        {HOUR, "1h0m0s"},
        {HOUR + MIN + SEC + 1, "1h1m1.000000001s"},
        {8760 * HOUR, "8760h0m0s"},
        {-1, "-1ns"},
        {-1500000000, "-1.5s"},
        {-HOUR, "-1h0m0s"},
        {INT64_MAX, "2562047h47m16.854775807s"},
        {INT64_MIN, "-2562047h47m16.854775808s"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[CH_DURATION_STR_MAX];
        ch_config_format_duration(cases[i].ns, out, sizeof(out));
        assert_string_equal(out, cases[i].want);
        /* Every Go duration string parses back to the same value. */
        int64_t back = 0;
        assert_int_equal(ch_config_parse_duration(out, &back, NULL), CH_OK);
        assert_int_equal(back, cases[i].ns);
    }
    char small[4];
    ch_config_format_duration(HOUR, small, sizeof(small));
    assert_string_equal(small, "1h0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_values_comments_blank_lines_and_white_space),
        cmocka_unit_test(later_keys_override_earlier_and_keep_first_position),
        cmocka_unit_test(keys_are_case_sensitive_and_values_keep_equals_and_hashes),
        cmocka_unit_test(key_without_value_is_skipped_like_go_choria),
        cmocka_unit_test(lines_without_equals_or_with_bad_keys_fail_with_line_number),
        cmocka_unit_test(long_lines_big_files_and_nul_bytes_are_rejected),
        cmocka_unit_test(load_file_reads_and_reports_missing_files),
        cmocka_unit_test(set_validates_keys_and_overrides),
        cmocka_unit_test(bools_accept_go_choria_words_only),
        cmocka_unit_test(ints_follow_go_atoi),
        cmocka_unit_test(lists_are_trimmed_and_drop_empty_items),
        cmocka_unit_test(middleware_hosts_accept_go_choria_forms_and_normalise),
        cmocka_unit_test(bad_middleware_hosts_are_errors_naming_the_entry),
        cmocka_unit_test(resolve_applies_go_choria_defaults),
        cmocka_unit_test(resolve_reads_every_setting),
        cmocka_unit_test(resolve_rejects_bad_settings),
        cmocka_unit_test(identity_defaults_to_the_fqdn),
        cmocka_unit_test(client_config_search_follows_go_choria_order),
        cmocka_unit_test(durations_parse_like_go_choria),
        cmocka_unit_test(bad_durations_are_errors),
        cmocka_unit_test(durations_format_as_go_duration_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
