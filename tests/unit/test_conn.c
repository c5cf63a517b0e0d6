/* Connection settings: brokers parsed into URLs with tls:// turning TLS on, a full --server URL
 * with credentials kept as given, and the one mapping from settings to connection options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "choria/conn.h"

static void brokers_become_nats_urls_and_tls_entries_turn_tls_on(void **state)
{
    ch_conn_settings s = {0};
    ch_error err;
    assert_int_equal(ch_conn_settings_add_servers(&s, "b1, nats://b2:4333", &err), CH_OK);
    assert_int_equal(s.server_count, 2);
    assert_string_equal(s.servers[0], "nats://b1:4222");
    assert_string_equal(s.servers[1], "nats://b2:4333");
    assert_false(s.tls);
    assert_int_equal(ch_conn_settings_add_servers(&s, "tls://b3:4222", &err), CH_OK);
    assert_int_equal(s.server_count, 3);
    assert_true(s.tls);
    ch_conn_settings_clear(&s);
    assert_int_equal(s.server_count, 0);
    assert_null(s.servers);
}

static void a_full_url_with_credentials_is_kept_and_bad_entries_are_named(void **state)
{
    ch_conn_settings s = {0};
    ch_error err;
    assert_int_equal(ch_conn_settings_add_servers(&s, "nats://u:secret@127.0.0.1:4222", &err),
                     CH_OK);
    assert_string_equal(s.servers[0], "nats://u:secret@127.0.0.1:4222");
    assert_int_equal(ch_conn_settings_add_servers(&s, "http://b1", &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "http://b1"));
    ch_conn_settings_clear(&s);
    ch_conn_settings_clear(NULL);
}

static void options_are_filled_from_settings_and_nothing_else_changes(void **state)
{
    ch_conn_settings s = {0};
    ch_error err;
    assert_int_equal(ch_conn_settings_add_servers(&s, "b1", &err), CH_OK);
    assert_int_equal(ch_conn_settings_set(&s.name, "n1.example.net", &err), CH_OK);
    assert_int_equal(ch_conn_settings_set(&s.user, "provisioner", &err), CH_OK);
    assert_int_equal(ch_conn_settings_set(&s.password, "pw", &err), CH_OK);
    assert_int_equal(ch_conn_settings_set(&s.ca_file, "/etc/ca.pem", &err), CH_OK);
    s.tls = true;
    ch_conn_opts o = {.send_asap = true, .inbox_prefix = "x.reply"};
    ch_conn_opts_from_settings(&s, &o);
    assert_int_equal(o.server_count, 1);
    assert_string_equal(o.servers[0], "nats://b1:4222");
    assert_string_equal(o.name, "n1.example.net");
    assert_string_equal(o.user, "provisioner");
    assert_string_equal(o.password, "pw");
    assert_null(o.token);
    assert_true(o.tls.enabled);
    assert_string_equal(o.tls.ca_file, "/etc/ca.pem");
    assert_null(o.tls.cert_file);
    assert_true(o.send_asap);
    assert_string_equal(o.inbox_prefix, "x.reply");
    assert_int_equal(ch_conn_settings_set(&s.password, NULL, &err), CH_OK);
    assert_null(s.password);
    ch_conn_settings_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(brokers_become_nats_urls_and_tls_entries_turn_tls_on),
        cmocka_unit_test(a_full_url_with_credentials_is_kept_and_bad_entries_are_named),
        cmocka_unit_test(options_are_filled_from_settings_and_nothing_else_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
