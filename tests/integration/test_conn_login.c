/* What a broker sees in CONNECT (spec upstream-security §1.7, Suite P6): a recorder on a
 * loopback port plays a NATS server that sends a nonce in INFO, and keeps the CONNECT line the
 * real ch_conn_connect sends. With the choria provider's JWT login, auth_token and jwt are the
 * token file's JWT and sig is base64url(ed25519(seed, nonce)); a provisioning node's token
 * login carries the JWT as auth_token only; user and pass travel when set. */
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
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "choria/conn.h"
#include "choria/pki.h"
#include "choria/util.h"
#include "harness.h"

#define NONCE "fQ2bNUcSd7lYRbA"
#define SEED_HEX "0505050505050505050505050505050505050505050505050505050505050505"

typedef struct {
    int listener;
    int port;
    char connect[8192]; /* the CONNECT line's JSON */
} recorder;

/* Reads one CRLF-ended line (bounded) from fd into out. */
static bool read_line(int fd, char *out, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        ssize_t r = read(fd, out + n, 1);
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

/* One client: INFO with a nonce, then CONNECT and PING in, PONG out. */
static void *serve_one(void *arg)
{
    recorder *r = arg;
    int fd = accept(r->listener, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const char info[] = "INFO {\"server_id\":\"REC\",\"version\":\"2.9.10\",\"proto\":1,\"host\":"
                        "\"127.0.0.1\",\"port\":4222,\"max_payload\":1048576,\"headers\":true,"
                        "\"auth_required\":true,\"nonce\":\"" NONCE "\"}\r\n";
    char line[sizeof(r->connect) + 8];
    if (write(fd, info, sizeof(info) - 1) > 0 && read_line(fd, line, sizeof(line)) &&
        strncmp(line, "CONNECT ", 8) == 0) {
        memcpy(r->connect, line + 8, strlen(line + 8) + 1); /* line is at most connect + 8 */
        if (read_line(fd, line, sizeof(line)) && strcmp(line, "PING") == 0 &&
            write(fd, "PONG\r\n", 6) > 0)
            read_line(fd, line, sizeof(line)); /* until the client closes */
    }
    close(fd);
    return NULL;
}

/* Connects with o to a fresh recorder; returns the CONNECT object. */
static json_t *record_connect(ch_conn_opts *o)
{
    recorder r = {0};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    r.listener = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r.listener >= 0);
    assert_int_equal(bind(r.listener, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(r.listener, 1), 0);
    assert_int_equal(getsockname(r.listener, (struct sockaddr *)&a, &alen), 0);
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", ntohs(a.sin_port));
    const char *servers[] = {url};
    o->servers = servers;
    o->server_count = 1;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, serve_one, &r), 0);
    natsConnection *nc = NULL;
    ch_error err;
    CHT_CHECK(ch_conn_connect(o, &nc, &err), &err);
    ch_conn_close(nc);
    pthread_join(t, NULL);
    close(r.listener);
    json_t *connect = json_loads(r.connect, 0, NULL);
    if (connect == NULL)
        fail_msg("no CONNECT recorded: '%s'", r.connect);
    return connect;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void choria_provider_login_sends_the_jwt_and_signs_the_nonce(void **state)
{
    (void)state;
    char dir[128], token[192], seed[192];
    ch_error err;
    CHT_CHECK(cht_temp_dir("conn-login", dir, sizeof(dir), &err), &err);
    snprintf(token, sizeof(token), "%s/client.jwt", dir);
    snprintf(seed, sizeof(seed), "%s/client.seed", dir);
    CHT_CHECK(cht_write_file(token, &err, "hdr.claims.sig\n"), &err);
    CHT_CHECK(cht_write_file(seed, &err, "%s\n", SEED_HEX), &err);
    ch_config_security sec = {.provider = "choria", .token_file = token, .seed_file = seed};
    ch_conn_settings s = {0};
    CHT_CHECK(ch_conn_settings_set(&s.user, "provisioner", &err), &err);
    CHT_CHECK(ch_conn_settings_set(&s.password, "provpw", &err), &err);
    CHT_CHECK(ch_conn_settings_apply_security(&s, &sec, false, &err), &err);
    s.tls = false; /* the recorder speaks plain TCP; TLS is test_security's */
    ch_conn_opts o = {0};
    ch_conn_opts_from_settings(&s, &o);
    json_t *c = record_connect(&o);

    assert_string_equal(str(c, "auth_token"), "hdr.claims.sig");
    assert_string_equal(str(c, "jwt"), "hdr.claims.sig");
    assert_string_equal(str(c, "user"), "provisioner");
    assert_string_equal(str(c, "pass"), "provpw");
    const char *sig_text = str(c, "sig");
    assert_non_null(sig_text);
    unsigned char *sig = NULL, seed_raw[32], pub[32];
    size_t sig_len = 0;
    assert_int_equal(ch_base64url_decode(sig_text, strlen(sig_text), &sig, &sig_len), CH_OK);
    assert_int_equal(sig_len, 64);
    CHT_CHECK(ch_pki_hex_decode(SEED_HEX, 64, seed_raw, 32, &err), &err);
    CHT_CHECK(ch_pki_ed25519_public(seed_raw, pub, &err), &err);
    assert_true(ch_pki_ed25519_verify(pub, NONCE, strlen(NONCE), sig));
    free(sig);
    json_decref(c);
    ch_conn_settings_clear(&s);
    cht_temp_dir_remove(dir, &err);
}

static void token_login_sends_no_jwt_and_no_signature(void **state)
{
    (void)state;
    ch_conn_opts o = {.token = "provisioning.jwt.text"};
    json_t *c = record_connect(&o);
    assert_string_equal(str(c, "auth_token"), "provisioning.jwt.text");
    assert_null(json_object_get(c, "jwt"));
    assert_null(json_object_get(c, "sig"));
    assert_null(json_object_get(c, "user"));
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(choria_provider_login_sends_the_jwt_and_signs_the_nonce),
        cmocka_unit_test(token_login_sends_no_jwt_and_no_signature),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
