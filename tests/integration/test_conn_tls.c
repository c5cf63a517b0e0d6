/* TLS to the broker through ch_conn_connect: a real nats-server that requires TLS and client
 * certificates (a CA, server and client certificates made with the openssl command), and
 * connections with and without the CA, the client certificate, the expected name, and
 * verification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/conn.h"
#include "harness.h"

typedef struct {
    char dir[128];
    char tls_url[64], nats_url[64];
    cht_broker *broker;
} fixture;

static void run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

/* A CA in dir/<ca>.{pem,key} and a certificate signed by it for name (extended key usage
 * usage) in dir/<name>.{pem,key}. */
static void make_ca(const char *dir, const char *ca)
{
    run("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout %s.key -out %s.pem -days 2 "
        "-subj '/CN=%s' 2>/dev/null",
        dir, ca, ca, ca);
}

static void make_cert(const char *dir, const char *ca, const char *name, const char *usage)
{
    run("cd %s && openssl req -newkey rsa:2048 -nodes -keyout %s.key -out %s.csr -subj '/CN=%s' "
        "2>/dev/null && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n"
        "extendedKeyUsage=%s\\n' > %s.ext && openssl x509 -req -in %s.csr -CA %s.pem -CAkey "
        "%s.key -CAcreateserial -out %s.pem -days 2 -extfile %s.ext 2>/dev/null",
        dir, name, name, name, usage, name, name, ca, ca, name, name);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    if (cht_temp_dir("tls-test", f->dir, sizeof(f->dir), NULL) != CH_OK)
        return -1;
    make_ca(f->dir, "ca");
    make_ca(f->dir, "other-ca");
    make_cert(f->dir, "ca", "server", "serverAuth");
    make_cert(f->dir, "ca", "client", "clientAuth");
    char extra[1024];
    snprintf(extra, sizeof(extra),
             "tls {\n  cert_file: \"%s/server.pem\"\n  key_file: \"%s/server.key\"\n"
             "  ca_file: \"%s/ca.pem\"\n  verify: true\n  timeout: 2\n}\n",
             f->dir, f->dir, f->dir);
    cht_broker_opts o;
    cht_broker_opts_init(&o);
    o.jetstream = false;
    o.extra_config = extra;
    if (cht_broker_start(&o, &f->broker, NULL) != CH_OK)
        return -1;
    snprintf(f->tls_url, sizeof(f->tls_url), "tls://127.0.0.1:%d", cht_broker_port(f->broker));
    snprintf(f->nats_url, sizeof(f->nats_url), "nats://127.0.0.1:%d", cht_broker_port(f->broker));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_broker_free(f->broker);
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

/* Connects to url with tls; returns the status and closes the connection. */
static ch_status try_connect(fixture *f, const char *url, ch_conn_tls tls, ch_error *err)
{
    const char *servers[] = {url};
    ch_conn_opts o = {.servers = servers, .server_count = 1, .name = "tls-test", .tls = tls};
    natsConnection *nc = NULL;
    ch_status st = ch_conn_connect(&o, &nc, err);
    if (st == CH_OK)
        assert_int_equal(natsConnection_Status(nc), NATS_CONN_STATUS_CONNECTED);
    ch_conn_close(nc);
    return st;
}

static const char *file(fixture *f, const char *name)
{
    static char paths[8][192];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof(paths[0]), "%s/%s", f->dir, name);
    return p;
}

static void mutual_tls_with_the_ca_and_a_client_certificate_connects(void **state)
{
    fixture *f = *state;
    ch_error err;
    ch_conn_tls tls = {.enabled = true,
                       .ca_file = file(f, "ca.pem"),
                       .cert_file = file(f, "client.pem"),
                       .key_file = file(f, "client.key")};
    CHT_CHECK(try_connect(f, f->nats_url, tls, &err), &err);
    /* a tls:// URL turns TLS on by itself */
    tls.enabled = false;
    CHT_CHECK(try_connect(f, f->tls_url, tls, &err), &err);
}

static void a_plain_connection_to_a_tls_broker_fails(void **state)
{
    fixture *f = *state;
    ch_error err;
    assert_int_equal(try_connect(f, f->nats_url, (ch_conn_tls){0}, &err), CH_ERR_CONNECTION);
    fprintf(stderr, "plain: %s\n", err.msg);
}

static void a_broker_certificate_from_another_ca_is_refused(void **state)
{
    fixture *f = *state;
    ch_error err;
    ch_conn_tls tls = {.enabled = true,
                       .ca_file = file(f, "other-ca.pem"),
                       .cert_file = file(f, "client.pem"),
                       .key_file = file(f, "client.key")};
    assert_int_equal(try_connect(f, f->nats_url, tls, &err), CH_ERR_CONNECTION);
    fprintf(stderr, "other CA: %s\n", err.msg);
}

static void a_broker_certificate_for_another_name_is_refused(void **state)
{
    fixture *f = *state;
    ch_error err;
    ch_conn_tls tls = {.enabled = true,
                       .ca_file = file(f, "ca.pem"),
                       .cert_file = file(f, "client.pem"),
                       .key_file = file(f, "client.key"),
                       .server_name = "broker.other.example"};
    assert_int_equal(try_connect(f, f->nats_url, tls, &err), CH_ERR_CONNECTION);
    tls.server_name = "localhost"; /* a name the certificate carries */
    CHT_CHECK(try_connect(f, f->nats_url, tls, &err), &err);
}

static void skip_verify_connects_without_the_ca(void **state)
{
    fixture *f = *state;
    ch_error err;
    ch_conn_tls tls = {.enabled = true,
                       .skip_verify = true,
                       .cert_file = file(f, "client.pem"),
                       .key_file = file(f, "client.key")};
    CHT_CHECK(try_connect(f, f->nats_url, tls, &err), &err);
}

static void the_broker_refuses_a_client_without_a_certificate(void **state)
{
    fixture *f = *state;
    ch_error err;
    ch_conn_tls tls = {.enabled = true, .ca_file = file(f, "ca.pem")};
    assert_int_equal(try_connect(f, f->nats_url, tls, &err), CH_ERR_CONNECTION);
}

static void a_missing_key_file_is_an_option_error_naming_no_secret(void **state)
{
    fixture *f = *state;
    ch_error err;
    ch_conn_tls tls = {.enabled = true,
                       .ca_file = file(f, "ca.pem"),
                       .cert_file = file(f, "client.pem"),
                       .key_file = file(f, "missing.key")};
    assert_int_equal(try_connect(f, f->nats_url, tls, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "invalid connection options"));
    assert_null(strstr(err.msg, "PRIVATE KEY"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mutual_tls_with_the_ca_and_a_client_certificate_connects),
        cmocka_unit_test(a_plain_connection_to_a_tls_broker_fails),
        cmocka_unit_test(a_broker_certificate_from_another_ca_is_refused),
        cmocka_unit_test(a_broker_certificate_for_another_name_is_refused),
        cmocka_unit_test(skip_verify_connects_without_the_ca),
        cmocka_unit_test(the_broker_refuses_a_client_without_a_certificate),
        cmocka_unit_test(a_missing_key_file_is_an_option_error_naming_no_secret),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
