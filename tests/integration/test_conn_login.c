/* What a broker sees when the programs connect (spec upstream-security §1.7; Suites N and P):
 * a recorder on a loopback port plays a NATS server (INFO with a nonce, TLS when asked, one
 * client) and keeps the TLS facts and the CONNECT line that the real programs send.
 *
 * - ch_conn_connect with the choria provider's login: auth_token = jwt = the token file's JWT,
 *   sig = base64url(ed25519(seed, nonce)); a token login sends neither jwt nor sig (P6).
 * - `choria server run` in provisioning mode (N1, N2, N7, N8): TLS 1.2+ to a broker whose
 *   certificate is from another CA, no client certificate, the JWT as auth_token, the identity
 *   as name, no jwt or sig, user and pass only when the JWT has both chusr and chpwd.
 * - `choria-provisioner` with the file provider (P1): mutual TLS with its certificate, user
 *   provisioner and its password, no auth_token; with the choria provider (P6) the JWT login. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "choria/conn.h"
#include "choria/jwt.h"
#include "choria/pki.h"
#include "choria/util.h"
#include "harness.h"

#define NONCE "fQ2bNUcSd7lYRbA"
#define SEED_HEX "0505050505050505050505050505050505050505050505050505050505050505"
#define CONNECT_MAX 16384

static char dir[128], pki[200];

typedef struct {
    int listener, port;
    const char *cert;  /* PKI name of the server certificate; NULL: plain TCP */
    bool require_cert; /* refuse clients without a certificate, as nats-server verify: true */
    bool tls;          /* the client did TLS */
    char version[32];  /* its TLS version */
    char client_cn[128];
    char connect[CONNECT_MAX];
    volatile bool done;
} recorder;

/* ---- the recorder ---- */

typedef struct {
    int fd;
    SSL *ssl;
} link_t;

static bool read_line(link_t *l, char *out, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        int r = l->ssl != NULL ? SSL_read(l->ssl, out + n, 1) : (int)read(l->fd, out + n, 1);
        if (r <= 0)
            return false;
        if (out[n] == '\n') {
            out[n > 0 && out[n - 1] == '\r' ? n - 1 : n] = '\0';
            return true;
        }
        n++;
    }
    return false;
}

static void send_text(link_t *l, const char *s)
{
    if (l->ssl != NULL)
        SSL_write(l->ssl, s, (int)strlen(s));
    else if (write(l->fd, s, strlen(s)) < 0)
        return;
}

static int accept_any(int ok, X509_STORE_CTX *ctx)
{
    (void)ok, (void)ctx;
    return 1; /* record whatever certificate comes, or none */
}

/* TLS as a broker: our certificate, a client certificate asked for but not required. */
static SSL *tls_accept(recorder *r, int fd)
{
    char cert[300], key[300];
    snprintf(cert, sizeof(cert), "%s/%s.pem", pki, r->cert);
    snprintf(key, sizeof(key), "%s/%s.key", pki, r->cert);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_chain_file(ctx, cert);
    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM);
    SSL_CTX_set_verify(
        ctx, SSL_VERIFY_PEER | (r->require_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), accept_any);
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL holds a reference */
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    r->tls = true;
    snprintf(r->version, sizeof(r->version), "%s", SSL_get_version(ssl));
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (peer != NULL)
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, r->client_cn,
                                  sizeof(r->client_cn));
    X509_free(peer);
    return ssl;
}

static void *serve_one(void *arg)
{
    recorder *r = arg;
    link_t l = {.fd = accept(r->listener, NULL, NULL)};
    if (l.fd < 0)
        goto out;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(l.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char info[512], line[CONNECT_MAX + 8];
    snprintf(info, sizeof(info),
             "INFO {\"server_id\":\"REC\",\"version\":\"2.9.10\",\"proto\":1,\"host\":"
             "\"127.0.0.1\",\"port\":%d,\"max_payload\":1048576,\"headers\":true,"
             "\"auth_required\":true,\"tls_required\":%s,\"nonce\":\"" NONCE "\"}\r\n",
             r->port, r->cert != NULL ? "true" : "false");
    send_text(&l, info);
    if (r->cert != NULL && (l.ssl = tls_accept(r, l.fd)) == NULL)
        goto out;
    if (read_line(&l, line, sizeof(line)) && strncmp(line, "CONNECT ", 8) == 0) {
        memcpy(r->connect, line + 8, strlen(line + 8) + 1);
        if (read_line(&l, line, sizeof(line)) && strcmp(line, "PING") == 0)
            send_text(&l, "PONG\r\n");
    }
out:
    r->done = true;
    if (l.ssl != NULL) {
        SSL_shutdown(l.ssl);
        SSL_free(l.ssl);
    }
    if (l.fd >= 0)
        close(l.fd);
    return NULL;
}

static void recorder_start(recorder *r, const char *cert, bool require_cert, pthread_t *t)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    memset(r, 0, sizeof(*r));
    r->cert = cert;
    r->require_cert = require_cert;
    r->listener = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->listener >= 0);
    assert_int_equal(bind(r->listener, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(r->listener, 4), 0);
    assert_int_equal(getsockname(r->listener, (struct sockaddr *)&a, &alen), 0);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(t, NULL, serve_one, r), 0);
}

/* Waits (bounded) for the recorded CONNECT and returns it parsed. */
static json_t *recorder_finish(recorder *r, pthread_t t, cht_proc *program)
{
    for (int i = 0; i < 150 && !r->done; i++)
        usleep(100000);
    if (!r->done) { /* unblock accept */
        shutdown(r->listener, SHUT_RDWR);
    }
    pthread_join(t, NULL);
    close(r->listener);
    json_t *connect = json_loads(r->connect, 0, NULL);
    if (connect == NULL)
        fail_msg("no CONNECT recorded: '%s'\n%s", r->connect,
                 program != NULL ? cht_proc_stderr(program) : "");
    return connect;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void assert_nonce_signed(json_t *c)
{
    const char *sig_text = str(c, "sig");
    unsigned char *sig = NULL, seed[32], pub[32];
    size_t sig_len = 0;
    ch_error err;
    assert_non_null(sig_text);
    assert_int_equal(ch_base64url_decode(sig_text, strlen(sig_text), &sig, &sig_len), CH_OK);
    assert_int_equal(sig_len, 64);
    CHT_CHECK(ch_pki_hex_decode(SEED_HEX, 64, seed, 32, &err), &err);
    CHT_CHECK(ch_pki_ed25519_public(seed, pub, &err), &err);
    assert_true(ch_pki_ed25519_verify(pub, NONCE, strlen(NONCE), sig));
    free(sig);
}

static int group_setup(void **state)
{
    (void)state;
    char cmd[600];
    if (cht_temp_dir("conn-login", dir, sizeof(dir), NULL) != CH_OK)
        return -1;
    snprintf(pki, sizeof(pki), "%s/pki", dir);
    snprintf(cmd, sizeof(cmd), "sh %s/security/mk-pki.sh %s", CH_TEST_DATA, pki);
    return system(cmd) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    cht_temp_dir_remove(dir, NULL);
    return 0;
}

/* ---- the connection layer ---- */

static void choria_provider_login_sends_the_jwt_and_signs_the_nonce(void **state)
{
    (void)state;
    char token[192], seed[192], url[64];
    ch_error err;
    snprintf(token, sizeof(token), "%s/client.jwt", dir);
    snprintf(seed, sizeof(seed), "%s/client.seed", dir);
    CHT_CHECK(cht_write_file(token, &err, "hdr.claims.sig\n"), &err);
    CHT_CHECK(cht_write_file(seed, &err, "%s\n", SEED_HEX), &err);
    ch_config_security sec = {.provider = "choria", .token_file = token, .seed_file = seed};
    recorder r;
    pthread_t t;
    recorder_start(&r, NULL, false, &t);
    ch_conn_settings s = {0};
    snprintf(url, sizeof(url), "127.0.0.1:%d", r.port);
    CHT_CHECK(ch_conn_settings_add_servers(&s, url, &err), &err);
    CHT_CHECK(ch_conn_settings_set(&s.user, "provisioner", &err), &err);
    CHT_CHECK(ch_conn_settings_set(&s.password, "provpw", &err), &err);
    CHT_CHECK(ch_conn_settings_apply_security(&s, &sec, false, &err), &err);
    s.tls = false; /* the TLS side is the programs' tests below */
    ch_conn_opts o = {0};
    ch_conn_opts_from_settings(&s, &o);
    natsConnection *nc = NULL;
    CHT_CHECK(ch_conn_connect(&o, &nc, &err), &err);
    ch_conn_close(nc);
    json_t *c = recorder_finish(&r, t, NULL);
    assert_string_equal(str(c, "auth_token"), "hdr.claims.sig");
    assert_string_equal(str(c, "jwt"), "hdr.claims.sig");
    assert_string_equal(str(c, "user"), "provisioner");
    assert_string_equal(str(c, "pass"), "provpw");
    assert_nonce_signed(c);
    json_decref(c);
    ch_conn_settings_clear(&s);
}

/* ---- Suite N: a provisioning node ---- */

/* A provisioning node for the recorder, its JWT made with claims_extra ("" or ",k:v..."). */
static json_t *node_connect(const char *claims_extra, bool trailing_newline, char *jwt_text,
                            size_t jwt_size)
{
    char bin[512], conf[300], jwt_path[300], claims[1024], *jwt = NULL;
    ch_error err;
    recorder r;
    pthread_t t;
    recorder_start(&r, "stranger", false, &t); /* another CA, another name: not checked */
    snprintf(claims, sizeof(claims),
             "{\"purpose\":\"choria_provisioning\",\"cht\":\"t\",\"chu\":\"127.0.0.1:%d\","
             "\"chpd\":true,\"exp\":%lld%s}",
             r.port, (long long)ch_now_unix() + 3600, claims_extra);
    json_t *cj = json_loads(claims, 0, NULL);
    assert_non_null(cj);
    CHT_CHECK(ch_jwt_sign("EdDSA", SEED_HEX, cj, &jwt, &err), &err);
    json_decref(cj);
    snprintf(jwt_text, jwt_size, "%s", jwt);
    snprintf(jwt_path, sizeof(jwt_path), "%s/p.jwt", dir);
    snprintf(conf, sizeof(conf), "%s/node.conf", dir);
    ch_status st = cht_write_file(jwt_path, &err, "%s%s", jwt, trailing_newline ? "\n" : "");
    free(jwt);
    CHT_CHECK(st, &err);
    CHT_CHECK(cht_write_file(conf, &err,
                             "identity = rec.example.net\nplugin.choria.server.provision = true\n"),
              &err);
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[] = {bin,      "server", "run", "--config", conf, "--provisioning-jwt",
                          jwt_path, NULL};
    cht_proc_opts o = {.argv = argv};
    cht_proc *node = NULL;
    CHT_CHECK(cht_proc_spawn(&o, &node, &err), &err);
    json_t *c = recorder_finish(&r, t, node);
    cht_proc_free(node);
    assert_true(r.tls);
    assert_true(strcmp(r.version, "TLSv1.2") == 0 || strcmp(r.version, "TLSv1.3") == 0);
    assert_string_equal(r.client_cn, ""); /* no client certificate */
    return c;
}

static void provisioning_node_connects_with_anonymous_tls_and_its_jwt(void **state)
{
    (void)state;
    char jwt[4096];
    json_t *c = node_connect("", false, jwt, sizeof(jwt));
    assert_string_equal(str(c, "auth_token"), jwt);
    assert_true(json_is_true(json_object_get(c, "tls_required")));
    assert_string_equal(str(c, "name"), "rec.example.net");
    const char *absent[] = {"jwt", "sig", "user", "pass"};
    for (size_t i = 0; i < 4; i++)
        assert_null(json_object_get(c, absent[i]));
    json_decref(c);
}

static void provisioning_node_sends_the_login_only_when_complete(void **state)
{
    (void)state;
    char jwt[4096];
    json_t *c = node_connect(",\"chusr\":\"provnode\"", false, jwt, sizeof(jwt)); /* N7 */
    assert_null(json_object_get(c, "user"));
    assert_null(json_object_get(c, "pass"));
    json_decref(c);
    c = node_connect(",\"chusr\":\"provnode\",\"chpwd\":\"nodepw\"", false, jwt, sizeof(jwt));
    assert_string_equal(str(c, "user"), "provnode");
    assert_string_equal(str(c, "pass"), "nodepw");
    json_decref(c);
}

/* N6: a broker that demands client certificates refuses the handshake; the node says so,
 * keeps trying and still stops cleanly. */
static void provisioning_node_retries_a_broker_that_wants_certificates(void **state)
{
    (void)state;
    char bin[512], conf[300], jwt_path[300], claims[512], *jwt = NULL;
    ch_error err;
    recorder r;
    pthread_t t;
    recorder_start(&r, "broker", true, &t);
    snprintf(claims, sizeof(claims),
             "{\"purpose\":\"choria_provisioning\",\"cht\":\"t\",\"chu\":\"127.0.0.1:%d\","
             "\"chpd\":true}",
             r.port);
    json_t *cj = json_loads(claims, 0, NULL);
    CHT_CHECK(ch_jwt_sign("EdDSA", SEED_HEX, cj, &jwt, &err), &err);
    json_decref(cj);
    snprintf(jwt_path, sizeof(jwt_path), "%s/p6.jwt", dir);
    snprintf(conf, sizeof(conf), "%s/node6.conf", dir);
    ch_status st = cht_write_file(jwt_path, &err, "%s", jwt);
    free(jwt);
    CHT_CHECK(st, &err);
    CHT_CHECK(cht_write_file(conf, &err,
                             "identity = n6.example.net\nplugin.choria.server.provision = true\n"),
              &err);
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[] = {bin,      "server", "run", "--config", conf, "--provisioning-jwt",
                          jwt_path, NULL};
    cht_proc_opts o = {.argv = argv};
    cht_proc *node = NULL;
    CHT_CHECK(cht_proc_spawn(&o, &node, &err), &err);
    for (int i = 0; i < 100 && !r.done; i++)
        usleep(100000);
    pthread_join(t, NULL);
    close(r.listener); /* the next attempts find nothing listening */
    const char *want = "could not connect to the broker, retrying";
    for (int i = 0; i < 100; i++) {
        const char *first = strstr(cht_proc_stderr(node), want);
        if (first != NULL && strstr(first + 1, want) != NULL)
            break;
        usleep(100000);
    }
    const char *log = cht_proc_stderr(node);
    assert_true(r.tls == false); /* the handshake never completed */
    assert_string_equal(r.connect, "");
    assert_non_null(strstr(log, want));
    assert_non_null(strstr(strstr(log, want) + 1, want)); /* a line per attempt */
    CHT_CHECK(cht_proc_signal(node, SIGTERM, &err), &err);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(node, 5000, &ws, &err), &err);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    cht_proc_free(node);
}

/* N8: upstream sends the file's bytes; this project sends the JWT without the line end. */
static void provisioning_node_token_has_no_line_end(void **state)
{
    (void)state;
    char jwt[4096];
    json_t *c = node_connect("", true, jwt, sizeof(jwt));
    assert_string_equal(str(c, "auth_token"), jwt);
    json_decref(c);
}

/* ---- Suite P: the provisioner's client connection ---- */

static json_t *provisioner_connect(const char *cert, const char *client_conf)
{
    char client[2048];
    ch_error err;
    recorder r;
    pthread_t t;
    recorder_start(&r, cert, false, &t);
    snprintf(client, sizeof(client), "plugin.choria.middleware_hosts = localhost:%d\n%s", r.port,
             client_conf);
    const char *env[] = {"MCOLLECTIVE_CERTNAME=provisioner.mcollective", NULL};
    cht_provisioner_opts o = {.dir = dir,
                              .config = "workers: 1\nsite: rec\ntoken: t\n"
                                        "broker_provisioning_password: provpw\n"
                                        "helper: /bin/false\n",
                              .client_config = client,
                              .env = env,
                              .no_wait = true};
    cht_proc *prov = NULL;
    CHT_CHECK(cht_provisioner_start(&o, &prov, NULL, &err), &err);
    json_t *c = recorder_finish(&r, t, prov);
    cht_proc_free(prov);
    assert_true(r.tls);
    snprintf(client, sizeof(client), "%s", r.client_cn);
    json_object_set_new(c, "recorded_client_cn", json_string(client));
    return c;
}

static void x509_provisioner_uses_mutual_tls_and_the_provisioner_login(void **state)
{
    (void)state;
    char conf[1024];
    snprintf(conf, sizeof(conf),
             "identity = provisioner.mcollective\nplugin.security.provider = file\n"
             "plugin.security.file.certificate = %s/provisioner.pem\n"
             "plugin.security.file.key = %s/provisioner.key\n"
             "plugin.security.file.ca = %s/ca.pem\n",
             pki, pki, pki);
    json_t *c = provisioner_connect("broker", conf);
    assert_string_equal(str(c, "recorded_client_cn"), "provisioner.mcollective");
    assert_string_equal(str(c, "user"), "provisioner");
    assert_string_equal(str(c, "pass"), "provpw");
    assert_null(json_object_get(c, "auth_token"));
    assert_null(json_object_get(c, "jwt"));
    json_decref(c);
}

/* P5: a provisioner whose certificate is missing does not start, and says which file. */
static void provisioner_without_its_certificate_does_not_start(void **state)
{
    (void)state;
    char client[1024];
    ch_error err;
    snprintf(client, sizeof(client),
             "identity = provisioner.mcollective\nplugin.choria.middleware_hosts = localhost:1\n"
             "plugin.security.provider = file\n"
             "plugin.security.file.certificate = %s/missing.pem\n"
             "plugin.security.file.key = %s/provisioner.key\nplugin.security.file.ca = %s/ca.pem\n",
             pki, pki, pki);
    cht_provisioner_opts o = {.dir = dir,
                              .config = "workers: 1\nsite: rec\ntoken: t\nhelper: /bin/false\n",
                              .client_config = client,
                              .ready_timeout_ms = 10000};
    cht_proc *prov = NULL;
    assert_int_equal(cht_provisioner_start(&o, &prov, NULL, &err), CH_ERR_CONNECTION);
    assert_null(prov);
    assert_non_null(strstr(err.msg, "missing.pem"));
}

static void choria_provisioner_logs_in_with_its_jwt(void **state)
{
    (void)state;
    char conf[1024], token[300], seed[300], *jwt = NULL;
    ch_error err;
    json_t *claims = json_pack("{s:s,s:s,s:s,s:{s:b}}", "purpose", "choria_client_id", "callerid",
                               "up=provisioner", "ou", "choria", "permissions", "provisioner", 1);
    CHT_CHECK(ch_jwt_sign("EdDSA", SEED_HEX, claims, &jwt, &err), &err);
    json_decref(claims);
    snprintf(token, sizeof(token), "%s/signer.jwt", dir);
    snprintf(seed, sizeof(seed), "%s/signer.seed", dir);
    CHT_CHECK(cht_write_file(token, &err, "%s\n", jwt), &err);
    CHT_CHECK(cht_write_file(seed, &err, "%s", SEED_HEX), &err);
    snprintf(conf, sizeof(conf),
             "identity = provisioner_signer\nplugin.security.provider = choria\n"
             "plugin.security.choria.token_file = %s\nplugin.security.choria.seed_file = %s\n",
             token, seed);
    json_t *c = provisioner_connect("stranger", conf); /* no CA: anonymous TLS */
    assert_string_equal(str(c, "recorded_client_cn"), "");
    assert_string_equal(str(c, "auth_token"), jwt);
    assert_string_equal(str(c, "jwt"), jwt);
    assert_string_equal(str(c, "user"), "provisioner");
    assert_nonce_signed(c);
    free(jwt);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(choria_provider_login_sends_the_jwt_and_signs_the_nonce),
        cmocka_unit_test(provisioning_node_connects_with_anonymous_tls_and_its_jwt),
        cmocka_unit_test(provisioning_node_sends_the_login_only_when_complete),
        cmocka_unit_test(provisioning_node_token_has_no_line_end),
        cmocka_unit_test(provisioning_node_retries_a_broker_that_wants_certificates),
        cmocka_unit_test(provisioner_without_its_certificate_does_not_start),
        cmocka_unit_test(x509_provisioner_uses_mutual_tls_and_the_provisioner_login),
        cmocka_unit_test(choria_provisioner_logs_in_with_its_jwt),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
