/* From a Choria config to TLS: the file, puppet and choria providers resolved to paths and a
 * certificate name (go-choria's filesec/puppetsec rules), their caller lists, and what each
 * asks of the connection (mutual TLS checked against the CA and the brokers' host, anonymous
 * TLS, or nothing when insecure); the provisioning node's anonymous TLS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/config.h"
#include "choria/conn.h"
#include "choria/security.h"
#include "harness.h"

static const char *fake_env_certname;
static const char *fake_env_user;

static const char *fake_env(const char *name)
{
    if (strcmp(name, "MCOLLECTIVE_CERTNAME") == 0)
        return fake_env_certname;
    if (strcmp(name, "USER") == 0)
        return fake_env_user;
    if (strcmp(name, "HOME") == 0)
        return "/home/someone";
    return NULL;
}

/* Resolves text as a config file with identity n1.example.net. */
static void resolve(const char *text, ch_config_security *out, ch_status want, ch_error *err)
{
    ch_config *cfg = ch_config_new();
    ch_config_resolved *r = NULL;
    char doc[1024];
    snprintf(doc, sizeof(doc), "identity = n1.example.net\n%s", text);
    assert_int_equal(ch_config_parse(cfg, "test", doc, strlen(doc), err), CH_OK);
    assert_int_equal(ch_config_resolve(cfg, &r, err), CH_OK);
    assert_int_equal(ch_config_security_resolve(cfg, r, fake_env, out, err), want);
    ch_config_resolved_free(r);
    ch_config_free(cfg);
}

static void no_provider_names_nothing_but_keeps_the_default_caller_lists(void **state)
{
    (void)state;
    ch_config_security s;
    ch_error err;
    fake_env_certname = fake_env_user = NULL;
    resolve("", &s, CH_OK, &err);
    assert_null(s.provider);
    assert_null(s.cert_file);
    assert_string_equal(s.certname, "n1.example.net");
    assert_int_equal(s.allowed.count, 2);
    assert_string_equal(s.allowed.items[0], "\\.mcollective$");
    assert_string_equal(s.privileged.items[1], "\\.privileged.choria$");
    ch_config_security_clear(&s);
}

static void the_file_provider_takes_its_three_keys_and_the_lists(void **state)
{
    (void)state;
    ch_config_security s;
    ch_error err;
    fake_env_certname = fake_env_user = NULL;
    resolve("plugin.security.provider = file\nplugin.security.file.certificate = /s/c.pem\n"
            "plugin.security.file.key = /s/k.pem\nplugin.security.file.ca = /s/ca.pem\n"
            "plugin.choria.security.certname_whitelist = \\.example\\.net$\n",
            &s, CH_OK, &err);
    assert_string_equal(s.provider, "file");
    assert_string_equal(s.cert_file, "/s/c.pem");
    assert_string_equal(s.key_file, "/s/k.pem");
    assert_string_equal(s.ca_file, "/s/ca.pem");
    assert_int_equal(s.allowed.count, 1);
    assert_string_equal(s.allowed.items[0], "\\.example\\.net$");
    ch_config_security_clear(&s);
}

static void puppet_paths_follow_the_certname_and_the_ssldir(void **state)
{
    (void)state;
    ch_config_security s;
    ch_error err;
    fake_env_certname = "box.mcollective";
    fake_env_user = "alice";
    resolve("plugin.security.provider = puppet\nplugin.choria.ssldir = /ssl\n", &s, CH_OK, &err);
    assert_string_equal(s.certname, "box.mcollective"); /* the environment names it */
    assert_string_equal(s.cert_file, "/ssl/certs/box.mcollective.pem");
    assert_string_equal(s.key_file, "/ssl/private_keys/box.mcollective.pem");
    assert_string_equal(s.ca_file, "/ssl/certs/ca.pem");
    ch_config_security_clear(&s);

    /* a non-root user's certificate is <user>.mcollective; root's is the identity */
    fake_env_certname = NULL;
    resolve("plugin.security.provider = puppet\n", &s, CH_OK, &err);
    if (geteuid() == 0) {
        assert_string_equal(s.certname, "n1.example.net");
        assert_string_equal(s.cert_file, "/etc/puppetlabs/puppet/ssl/certs/n1.example.net.pem");
    } else {
        assert_string_equal(s.certname, "alice.mcollective");
        assert_string_equal(s.cert_file,
                            "/home/someone/.puppetlabs/etc/puppet/ssl/certs/alice.mcollective.pem");
    }
    ch_config_security_clear(&s);
}

static void an_unknown_provider_is_named(void **state)
{
    (void)state;
    ch_config_security s;
    ch_error err;
    resolve("plugin.security.provider = pkcs11\n", &s, CH_ERR_INVALID, &err);
    assert_non_null(strstr(err.msg, "'pkcs11' is not one of file, puppet, choria"));
    assert_null(s.provider);
}

/* ---- what the provider asks of the connection ---- */

static void file_provider_gives_mutual_tls_checked_against_the_ca_and_host(void **state)
{
    cht_dir_fixture *f = *state;
    char cert[200], key[200], ca[200];
    ch_error err;
    snprintf(cert, sizeof(cert), "%s/c.pem", f->dir);
    snprintf(key, sizeof(key), "%s/k.pem", f->dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", f->dir);
    ch_config_security sec = {.provider = "file", .cert_file = cert, .key_file = key};
    ch_conn_settings s = {0};
    assert_int_equal(ch_conn_settings_add_servers(&s, "broker.example.net:4222", &err), CH_OK);
    /* a missing file is refused, named by what it is */
    assert_int_equal(ch_conn_settings_apply_security(&s, &sec, false, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "certificate"));
    const char *files[] = {cert, key, ca};
    for (int i = 0; i < 3; i++)
        CHT_CHECK(cht_write_file(files[i], &err, "x"), &err);
    assert_int_equal(ch_conn_settings_apply_security(&s, &sec, false, &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, "the security provider needs a CA certificate");
    sec.ca_file = ca;
    assert_int_equal(ch_conn_settings_apply_security(&s, &sec, false, &err), CH_OK);
    assert_true(s.tls);
    assert_false(s.tls_skip_verify);
    assert_string_equal(s.ca_file, ca);
    assert_string_equal(s.cert_file, cert);
    assert_string_equal(s.server_name, "broker.example.net");
    ch_conn_opts o = {0};
    ch_conn_opts_from_settings(&s, &o);
    assert_true(o.tls.enabled);
    assert_string_equal(o.tls.key_file, key);
    ch_conn_settings_clear(&s);

    /* brokers on different hosts: nats.c checks one name, so the chain alone is checked */
    assert_int_equal(ch_conn_settings_add_servers(&s, "b1.example.net,b2.example.net", &err),
                     CH_OK);
    assert_int_equal(ch_conn_settings_apply_security(&s, &sec, false, &err), CH_OK);
    assert_null(s.server_name);
    ch_conn_settings_clear(&s);
}

static void insecure_or_no_provider_leaves_the_transport_alone(void **state)
{
    (void)state;
    ch_config_security file = {.provider = "file"}, none = {0};
    ch_conn_settings s = {0};
    ch_error err;
    assert_int_equal(ch_conn_settings_add_servers(&s, "b1:4222", &err), CH_OK);
    assert_int_equal(ch_conn_settings_apply_security(&s, &file, true, &err), CH_OK);
    assert_int_equal(ch_conn_settings_apply_security(&s, &none, false, &err), CH_OK);
    assert_false(s.tls);
    assert_null(s.ca_file);
    ch_conn_settings_clear(&s);
}

static void choria_provider_without_a_ca_is_anonymous_tls_with_jwt_login(void **state)
{
    (void)state;
    char dir[128], token[192], seed[192];
    ch_error err;
    CHT_CHECK(cht_temp_dir("conn-sec", dir, sizeof(dir), &err), &err);
    snprintf(token, sizeof(token), "%s/server.jwt", dir);
    snprintf(seed, sizeof(seed), "%s/server.seed", dir);
    CHT_CHECK(cht_write_file(token, &err, "a.b.c\n"), &err);
    ch_config_security sec = {.provider = "choria", .cert_file = "/c.pem"}; /* no key */
    sec.token_file = token;
    sec.seed_file = seed;
    ch_conn_settings s = {0};
    assert_int_equal(ch_conn_settings_add_servers(&s, "b1:4222", &err), CH_OK);
    /* the seed file must exist, and the error names its key */
    assert_int_equal(ch_conn_settings_apply_security(&s, &sec, false, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "plugin.security.choria.seed_file"));
    CHT_CHECK(cht_write_file(seed, &err, "00"), &err);
    assert_int_equal(ch_conn_settings_apply_security(&s, &sec, false, &err), CH_OK);
    assert_true(s.tls);
    assert_true(s.tls_skip_verify);
    assert_null(s.cert_file); /* a certificate without its key is not presented */
    assert_null(s.server_name);
    /* go-choria's JWT login: the trimmed token as auth_token and jwt, the seed for the nonce */
    assert_string_equal(s.token, "a.b.c");
    assert_string_equal(s.jwt, "a.b.c");
    assert_string_equal(s.seed_file, seed);
    ch_conn_opts o = {0};
    ch_conn_opts_from_settings(&s, &o);
    assert_string_equal(o.jwt, "a.b.c");
    assert_string_equal(o.seed_file, seed);
    ch_conn_settings_clear(&s);
    cht_temp_dir_remove(dir, &err);
}

static void provisioning_nodes_use_anonymous_tls_whatever_was_set(void **state)
{
    (void)state;
    ch_conn_settings s = {0};
    ch_error err;
    assert_int_equal(ch_conn_settings_set(&s.ca_file, "/ca.pem", &err), CH_OK);
    assert_int_equal(ch_conn_settings_set(&s.cert_file, "/c.pem", &err), CH_OK);
    assert_int_equal(ch_conn_settings_set(&s.server_name, "b", &err), CH_OK);
    ch_conn_settings_anonymous_tls(&s);
    assert_true(s.tls);
    assert_true(s.tls_skip_verify);
    assert_null(s.ca_file);
    assert_null(s.cert_file);
    assert_null(s.key_file);
    assert_null(s.server_name);
    ch_conn_settings_clear(&s);
}

/* ---- which provider a program gets ---- */

static void servers_without_a_provider_refuse_and_clients_sign_insecure(void **state)
{
    (void)state;
    ch_config_security none = {0}, v2 = {.provider = "choria"};
    ch_security *sec = NULL;
    ch_error err;
    assert_int_equal(ch_security_from_config(&none, false, CH_SECURITY_SIGN, &sec, &err), CH_OK);
    assert_string_equal(ch_security_name(sec), "insecure");
    assert_int_equal(ch_security_from_config(&none, true, CH_SECURITY_VERIFY, &sec, &err), CH_OK);
    assert_string_equal(ch_security_name(sec), "insecure");
    assert_int_equal(ch_security_from_config(&none, false, CH_SECURITY_VERIFY, &sec, &err), CH_OK);
    assert_string_equal(ch_security_name(sec), "none");
    const char msg[] = "{}";
    assert_int_equal(ch_security_verify(sec, msg, 2, "insecure", "insecure", "choria=x", &err),
                     CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "requests are refused"));
    ch_security_free(sec);
    /* the choria provider needs its token and seed to sign */
    assert_int_equal(ch_security_from_config(&v2, false, CH_SECURITY_SIGN, &sec, &err),
                     CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "token_file"));
    assert_null(sec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_provider_names_nothing_but_keeps_the_default_caller_lists),
        cmocka_unit_test(the_file_provider_takes_its_three_keys_and_the_lists),
        cmocka_unit_test(puppet_paths_follow_the_certname_and_the_ssldir),
        cmocka_unit_test(an_unknown_provider_is_named),
        cmocka_unit_test_setup_teardown(
            file_provider_gives_mutual_tls_checked_against_the_ca_and_host, cht_dir_setup,
            cht_dir_teardown),
        cmocka_unit_test(insecure_or_no_provider_leaves_the_transport_alone),
        cmocka_unit_test(choria_provider_without_a_ca_is_anonymous_tls_with_jwt_login),
        cmocka_unit_test(provisioning_nodes_use_anonymous_tls_whatever_was_set),
        cmocka_unit_test(servers_without_a_provider_refuse_and_clients_sign_insecure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
