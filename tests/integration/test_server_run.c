/* `choria server run` as a real process against a real nats-server, driven through the full
 * provisioning sequence with the libchoria RPC client, as a provisioner would. */
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "choria/lifecycle.h"
#include "choria/pki.h"
#include "choria/rpc.h"
#include "choria/util.h"
#include "harness.h"

#define IDENTITY "n1.example.net"
#define TOKEN "s3cret"
#define CALLERID "choria=provisioner.mcollective"

typedef struct {
    cht_broker *broker;
    natsConnection *nc;
    natsSubscription *events;
    cht_proc *server;
    char dir[256];
    char config[300];
    char jwt[300];
    char identity[256]; /* the node's: from its config, else this host's FQDN */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ch_error err;
    if (cht_temp_dir("server-test", f->dir, sizeof(f->dir), &err) != CH_OK ||
        cht_broker_start(NULL, &f->broker, &err) != CH_OK ||
        cht_nats_connect(cht_broker_url(f->broker), 5000, &f->nc, &err) != CH_OK ||
        natsConnection_SubscribeSync(&f->events, f->nc, CH_LIFECYCLE_SUBJECT_ALL) != NATS_OK ||
        natsConnection_FlushTimeout(f->nc, 5000) != NATS_OK)
        return -1;
    snprintf(f->config, sizeof(f->config), "%s/server.conf", f->dir);
    snprintf(f->jwt, sizeof(f->jwt), "%s/provisioning.jwt", f->dir);
    snprintf(f->identity, sizeof(f->identity), IDENTITY);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_proc_free(f->server);
    natsSubscription_Destroy(f->events);
    natsConnection_Close(f->nc);
    natsConnection_Destroy(f->nc);
    cht_broker_free(f->broker);
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

static char *b64url(const char *s)
{
    char *b = ch_base64_encode(s, strlen(s));
    for (char *p = b; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    b[strcspn(b, "=")] = '\0';
    return b;
}

/* A provisioning JWT as `choria jwt provisioning` makes it (the node reads it unverified). */
static void write_jwt(fixture *f)
{
    char payload[1024];
    snprintf(payload, sizeof(payload),
             "{\"cht\":\"" TOKEN "\",\"chs\":false,\"chu\":\"127.0.0.1:%d\",\"chpd\":true,"
             "\"extensions\":{},\"ou\":\"choria\",\"purpose\":\"choria_provisioning\","
             "\"sub\":\"choria_provisioning\",\"iss\":\"test\",\"iat\":1700000000,"
             "\"exp\":4102444800}",
             cht_broker_port(f->broker));
    char *h = b64url("{\"alg\":\"RS256\",\"typ\":\"JWT\"}"), *p = b64url(payload);
    ch_error err;
    ch_status st = cht_write_file(f->jwt, &err, "%s.%s.c2lnbmF0dXJl\n", h, p);
    free(h);
    free(p);
    CHT_CHECK(st, &err);
}

static void start_server(fixture *f)
{
    char bin[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[] = {bin,    "server",  "run", "--config", f->config, "--provisioning-jwt",
                          f->jwt, "--debug", NULL};
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->server, &err), &err);
}

/* The next lifecycle event; fails after timeout_ms. */
static ch_lifecycle_event *next_event(fixture *f, int timeout_ms, ch_lifecycle_format *format)
{
    natsMsg *m = NULL;
    if (natsSubscription_NextMsg(&m, f->events, timeout_ms) != NATS_OK)
        fail_msg("no lifecycle event within %d ms; server stderr:\n%s", timeout_ms,
                 cht_proc_stderr(f->server));
    ch_lifecycle_event *ev = NULL;
    ch_error err;
    CHT_CHECK(ch_lifecycle_parse(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &ev, &err),
              &err);
    if (format != NULL)
        *format = ev->format;
    natsMsg_Destroy(m);
    return ev;
}

static void expect_event(fixture *f, ch_lifecycle_type type, const char *component,
                         ch_lifecycle_format format)
{
    ch_lifecycle_format got = CH_LIFECYCLE_FORMAT_UNKNOWN;
    ch_lifecycle_event *ev = next_event(f, 15000, &got);
    assert_string_equal(ch_lifecycle_type_name(ev->type), ch_lifecycle_type_name(type));
    assert_string_equal(ev->component, component);
    assert_string_equal(ev->identity, f->identity);
    assert_int_equal(got, format);
    ch_lifecycle_event_free(ev);
}

static ch_rpc_client *client(fixture *f, const char *collective)
{
    ch_rpc_client *c = NULL;
    ch_error err;
    CHT_CHECK(
        ch_rpc_client_new(f->nc, collective, "provisioner.example.net", CALLERID, 60, &c, &err),
        &err);
    return c;
}

static void call_ok(fixture *f, ch_rpc_client *c, const char *agent, const char *action,
                    json_t *data, ch_rpc_result *r)
{
    ch_error err;
    CHT_CHECK(ch_rpc_call(c, f->identity, agent, action, data, 30000, r, &err), &err);
    if (r->statuscode != 0)
        fail_msg("%s#%s: %d %s", agent, action, r->statuscode, r->statusmsg);
    json_decref(data);
}

static void expect_mode(const char *path, mode_t mode)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("%s is missing", path);
    assert_int_equal(st.st_mode & 0777, mode);
}

/* An RSA key encrypted for the node as the provisioner does: X25519 with the node's jwt
 * ecdh_public, legacy PEM AES-256-CBC. Returns the PEM the node must write. */
static char *encrypt_key_for_node(const char *node_ecdh_hex, char **key_out, char *pub_hex)
{
    ch_error err;
    unsigned char node_pub[32], priv[32], pub[32], secret[32];
    CHT_CHECK(ch_pki_hex_decode(node_ecdh_hex, strlen(node_ecdh_hex), node_pub, 32, &err), &err);
    CHT_CHECK(ch_pki_x25519_keypair(priv, pub, &err), &err);
    CHT_CHECK(ch_pki_x25519_derive(priv, node_pub, secret, &err), &err);
    ch_hex_encode(pub, 32, pub_hex);

    ch_pki_csr csr = {0};
    ch_pki_subject subj = {.cn = "key.example.net"};
    CHT_CHECK(ch_pki_csr_generate(&subj, 2048, &csr, &err), &err);
    BIO *bio = BIO_new_mem_buf(csr.key_pem, -1);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    assert_non_null(pkey);
    unsigned char *der = NULL;
    int der_len = i2d_PrivateKey(pkey, &der);
    assert_in_range(der_len, 1, INT_MAX);
    char *plain = NULL;
    CHT_CHECK(
        ch_pki_pem_encrypt("RSA PRIVATE KEY", der, (size_t)der_len, secret, 32, key_out, &err),
        &err);
    CHT_CHECK(ch_pki_pem_encode("RSA PRIVATE KEY", der, (size_t)der_len, &plain, &err), &err);
    OPENSSL_free(der);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    ch_pki_csr_clear(&csr);
    return plain;
}

static void provision(fixture *f, ch_lifecycle_format format)
{
    ch_rpc_client *c = client(f, "provisioning");
    ch_rpc_result r = {0};
    ch_error err;

    /* discovery finds the node */
    ch_rpc_discover_opts dopts = {0};
    ch_rpc_discovery d = {0};
    CHT_CHECK(ch_rpc_discover(c, &dopts, &d, &err), &err);
    assert_int_equal(d.count, 1);
    assert_string_equal(d.identities[0], f->identity);
    ch_rpc_discovery_clear(&d);

    /* jwt: the file verbatim and a fresh X25519 public key */
    call_ok(f, c, "choria_provision", "jwt", json_pack("{s:s}", "token", TOKEN), &r);
    char *jwt_text = NULL;
    CHT_CHECK(ch_read_file(f->jwt, 65536, &jwt_text, NULL, &err), &err);
    assert_string_equal(json_string_value(json_object_get(r.data, "jwt")), jwt_text);
    char ecdh[65];
    snprintf(ecdh, sizeof(ecdh), "%s", json_string_value(json_object_get(r.data, "ecdh_public")));
    assert_int_equal(strlen(ecdh), 64);
    free(jwt_text);
    ch_rpc_result_clear(&r);

    /* gen25519: the signature of the nonce verifies with the returned key */
    call_ok(f, c, "choria_provision", "gen25519",
            json_pack("{s:s,s:s}", "nonce", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "token", TOKEN),
            &r);
    unsigned char pub[32], sig[64];
    const char *pub_hex = json_string_value(json_object_get(r.data, "public_key"));
    const char *sig_hex = json_string_value(json_object_get(r.data, "signature"));
    CHT_CHECK(ch_pki_hex_decode(pub_hex, strlen(pub_hex), pub, 32, &err), &err);
    CHT_CHECK(ch_pki_hex_decode(sig_hex, strlen(sig_hex), sig, 64, &err), &err);
    assert_true(ch_pki_ed25519_verify(pub, "0f1e2d3c4b5a69788796a5b4c3d2e1f0", 32, sig));
    ch_rpc_result_clear(&r);
    char path[512];
    snprintf(path, sizeof(path), "%s/server.seed", f->dir);
    expect_mode(path, 0600);

    /* inventory */
    call_ok(f, c, "rpcutil", "inventory", NULL, &r);
    json_t *agents = json_object_get(r.data, "agents");
    assert_int_equal(json_array_size(agents), 3);
    assert_string_equal(json_string_value(json_array_get(agents, 0)), "choria_provision");
    assert_string_equal(json_string_value(json_object_get(r.data, "main_collective")),
                        "provisioning");
    ch_rpc_result_clear(&r);

    /* gencsr */
    call_ok(f, c, "choria_provision", "gencsr",
            json_pack("{s:s,s:s}", "token", TOKEN, "cn", f->identity), &r);
    assert_non_null(
        strstr(json_string_value(json_object_get(r.data, "csr")), "BEGIN CERTIFICATE REQUEST"));
    ch_rpc_result_clear(&r);
    snprintf(path, sizeof(path), "%s/ssl/csr.pem", f->dir);
    expect_mode(path, 0644);

    /* configure: a normal-mode config and an encrypted private key */
    char pub_hex_prov[65], *key = NULL;
    char *plain_key = encrypt_key_for_node(ecdh, &key, pub_hex_prov);
    char ssldir[400], conf[1024];
    snprintf(ssldir, sizeof(ssldir), "%s/ssl", f->dir);
    snprintf(conf, sizeof(conf),
             "{\"identity\":\"%s\",\"plugin.choria.server.provision\":\"false\","
             "\"plugin.choria.middleware_hosts\":\"127.0.0.1:%d\",\"collectives\":\"mcollective\","
             "\"loglevel\":\"debug\",\"plugin.choria.security.insecure\":\"true\"%s}",
             f->identity, cht_broker_port(f->broker),
             format == CH_LIFECYCLE_FORMAT_CHORIA
                 ? ",\"plugin.choria.legacy_lifecycle_format\":\"true\""
                 : "");
    call_ok(f, c, "choria_provision", "configure",
            json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:{},s:{}}", "config", conf, "token", TOKEN,
                      "certificate", "-----BEGIN CERTIFICATE-----\ncert\n", "ca",
                      "-----BEGIN CERTIFICATE-----\nca\n", "ssldir", ssldir, "key", key,
                      "ecdh_public", pub_hex_prov, "server_jwt", "", "action_policies",
                      "opa_policies"),
            &r);
    assert_non_null(strstr(json_string_value(json_object_get(r.data, "message")), "Wrote"));
    ch_rpc_result_clear(&r);
    expect_event(f, CH_LIFECYCLE_PROVISIONED, "provision_mode_server", format);
    expect_mode(f->config, 0600);
    snprintf(path, sizeof(path), "%s/ssl/private.pem", f->dir);
    expect_mode(path, 0600);
    char *written = NULL;
    CHT_CHECK(ch_read_file(path, 65536, &written, NULL, &err), &err);
    assert_string_equal(written, plain_key);
    free(written);
    free(plain_key);
    free(key);
    snprintf(path, sizeof(path), "%s/ssl/certificate.pem", f->dir);
    expect_mode(path, 0644);
    snprintf(path, sizeof(path), "%s/ssl/csr.pem", f->dir);
    assert_int_not_equal(access(path, F_OK), 0); /* removed once the key arrived */

    /* restart */
    call_ok(f, c, "choria_provision", "restart", json_pack("{s:s,s:i}", "token", TOKEN, "splay", 1),
            &r);
    assert_string_equal(json_string_value(json_object_get(r.data, "message")),
                        "Restarting Choria Server after 2s");
    ch_rpc_result_clear(&r);
    ch_rpc_client_free(c);
    expect_event(f, CH_LIFECYCLE_SHUTDOWN, "provision_mode_server", format);
}

/* After the restart: normal mode in the configured collective, same PID (re-exec). */
static void expect_normal_mode(fixture *f, ch_lifecycle_format format)
{
    expect_event(f, CH_LIFECYCLE_STARTUP, "server", format);
    ch_rpc_client *c = client(f, "mcollective");
    ch_rpc_result r = {0};
    call_ok(f, c, "rpcutil", "ping", NULL, &r);
    assert_in_range(json_integer_value(json_object_get(r.data, "pong")), 1, INT64_MAX);
    ch_rpc_result_clear(&r);
    call_ok(f, c, "rpcutil", "inventory", NULL, &r);
    assert_string_equal(json_string_value(json_object_get(r.data, "main_collective")),
                        "mcollective");
    ch_rpc_result_clear(&r);
    ch_rpc_client_free(c);
    assert_true(cht_pid_alive(cht_proc_pid(f->server)));
}

static void stop_server(fixture *f, ch_lifecycle_format format)
{
    ch_error err;
    CHT_CHECK(cht_proc_signal(f->server, SIGTERM, &err), &err);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(f->server, 10000, &ws, &err), &err);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    expect_event(f, CH_LIFECYCLE_SHUTDOWN, "server", format);
}

static void jwt_only_node_is_provisioned_and_restarts_in_normal_mode(void **state)
{
    fixture *f = *state;
    assert_int_equal(ch_fqdn(f->identity, sizeof(f->identity)), CH_OK);
    write_jwt(f);
    /* The JWT's chpd puts it in provisioning mode; the config only opts out of TLS for the
     * plain test broker (test_security covers a node with no config over TLS). */
    ch_error err;
    CHT_CHECK(cht_write_file(f->config, &err, "%s\n", PLAIN_PROVISIONING), &err);
    start_server(f);
    expect_event(f, CH_LIFECYCLE_STARTUP, "provision_mode_server", CH_LIFECYCLE_FORMAT_CLOUDEVENT);
    provision(f, CH_LIFECYCLE_FORMAT_CLOUDEVENT);
    expect_normal_mode(f, CH_LIFECYCLE_FORMAT_CLOUDEVENT);
    stop_server(f, CH_LIFECYCLE_FORMAT_CLOUDEVENT);
}

static void legacy_format_node_publishes_choria_format_events(void **state)
{
    fixture *f = *state;
    ch_error err;
    write_jwt(f);
    CHT_CHECK(cht_write_file(f->config, &err,
                             "identity = " IDENTITY "\nplugin.choria.server.provision = true\n"
                             "plugin.choria.legacy_lifecycle_format = true\n" PLAIN_PROVISIONING
                             "\n"),
              &err);
    start_server(f);
    expect_event(f, CH_LIFECYCLE_STARTUP, "provision_mode_server", CH_LIFECYCLE_FORMAT_CHORIA);
    provision(f, CH_LIFECYCLE_FORMAT_CHORIA);
    expect_normal_mode(f, CH_LIFECYCLE_FORMAT_CHORIA);
    stop_server(f, CH_LIFECYCLE_FORMAT_CHORIA);
}

static void no_config_and_no_jwt_is_a_clear_error(void **state)
{
    fixture *f = *state;
    start_server(f);
    int ws = 0;
    ch_error err;
    CHT_CHECK(cht_proc_wait(f->server, 10000, &ws, &err), &err);
    assert_int_equal(WEXITSTATUS(ws), 1);
    assert_non_null(
        strstr(cht_proc_stderr(f->server), "was not found and provisioning is disabled"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(jwt_only_node_is_provisioned_and_restarts_in_normal_mode),
        T(legacy_format_node_publishes_choria_format_events),
        T(no_config_and_no_jwt_is_a_clear_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
