/* The example helpers in contrib/helpers run through the provisioner's own helper runner with
 * the exact stdin document it sends: the demo helper configures valid identities and defers
 * bad ones; the openssl CA helper signs real CSRs into certificates that verify against the CA
 * it returns, creates that CA once even when eight runs race for it, and defers requests
 * without a usable CSR or ssldir. Also times the demo helper (it is spawned per node in
 * benchmarks). */
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "helper.h"
#include "helper_pool.h"
#include "choria/pki.h"
#include "choria/util.h"
#include "harness.h"

#define PARALLEL 8
#define CA_TIMEOUT_MS 60000 /* RSA key generation on a busy CI machine */

/* What `choria tool fleet` nodes report, as the provisioner forwards it. */
static const char *const INVENTORY =
    "{\"agents\":[\"choria_provision\",\"choria_util\",\"discovery\",\"rpcutil\"],"
    "\"classes\":[],\"collectives\":[\"provisioning\"],\"data_plugins\":[],"
    "\"facts\":{\"fleet\":true},\"machines\":[],\"main_collective\":\"provisioning\","
    "\"version\":\"0.29.4\",\"upgradable\":false}";

typedef struct {
    char dir[64];
    char demo[512];
    char ca_helper[512];
    json_t *claims;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    const char *src = getenv("CH_SOURCE_DIR");
    assert_non_null(f);
    assert_non_null(src);
    ch_error err;
    CHT_CHECK(cht_temp_dir("contrib", f->dir, sizeof(f->dir), &err), &err);
    /* The command line is split shell-style: quote the paths. */
    snprintf(f->demo, sizeof(f->demo), "'%s/contrib/helpers/demo-helper'", src);
    snprintf(f->ca_helper, sizeof(f->ca_helper), "'%s/contrib/helpers/openssl-ca-helper'", src);
    f->claims =
        json_pack("{s:s,s:b,s:s,s:b,s:n,s:s,s:b,s:s,s:s,s:s,s:I,s:I,s:s}", "cht", "s3cret", "chs",
                  0, "chu", "nats://127.0.0.1:4222", "chpd", 1, "extensions", "ou", "choria", "v2",
                  1, "purpose", "choria_provisioning", "iss", "Choria Tokens Package v0.26.2",
                  "sub", "choria_provisioning", "nbf", (json_int_t)1669809657, "iat",
                  (json_int_t)1669809657, "jti", "3a4f9896e013498daeedbcb9a82fcd3c");
    assert_non_null(f->claims);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ch_error err;
    CHT_CHECK(cht_temp_dir_remove(f->dir, &err), &err);
    json_decref(f->claims);
    free(f);
    return 0;
}

/* The same fixture with the static C demo helper (build/bin/choria-demo-helper) as f->demo. */
static int setup_static(void **state)
{
    if (setup(state) != 0)
        return -1;
    fixture *f = *state;
    const char *bin = getenv("CH_BIN_DIR");
    snprintf(f->demo, sizeof(f->demo), "'%s/choria-demo-helper'", bin != NULL ? bin : ".");
    return 0;
}

static const char *config_get(const prov_helper_reply *r, const char *key)
{
    for (size_t i = 0; i < r->configuration.count; i++)
        if (strcmp(r->configuration.items[i].key, key) == 0)
            return r->configuration.items[i].value;
    return NULL;
}

/* Runs command with the request the provisioner would send for identity (csr may be NULL)
 * and asserts that the runner accepted the reply (exit 0, strictly typed JSON). */
static prov_helper_reply *run(const fixture *f, const char *command, const char *identity,
                              const prov_helper_csr *csr, ch_process_result *res)
{
    prov_helper_input in = {
        .identity = identity, .csr = csr, .inventory = INVENTORY, .jwt = f->claims};
    ch_process_run_opts opts = {.timeout_ms = CA_TIMEOUT_MS};
    prov_helper_reply *reply = NULL;
    ch_error err = {0};
    ch_status st = prov_helper_run(command, &in, &opts, &reply, res, &err);
    if (st != CH_OK)
        print_error("%s: %s\nstderr: %s\n", command, err.msg,
                    res->errout != NULL ? res->errout : "");
    assert_int_equal(st, CH_OK);
    assert_int_equal(res->exit_code, 0);
    assert_non_null(reply);
    return reply;
}

/* ---- demo-helper ------------------------------------------------------------------------ */

static void test_demo_helper_configures_the_identity_and_leaves_provisioning(void **state)
{
    fixture *f = *state;
    ch_process_result res;
    prov_helper_reply *r = run(f, f->demo, "n1.example.net", NULL, &res);
    assert_false(r->defer);
    assert_false(r->shutdown);
    assert_string_equal(r->msg, "demo helper");
    assert_int_equal(r->configuration.count, 4);
    assert_string_equal(r->configuration.items[0].key, "identity");
    assert_string_equal(r->configuration.items[0].value, "n1.example.net");
    assert_string_equal(config_get(r, "plugin.choria.server.provision"), "false");
    assert_string_equal(config_get(r, "plugin.choria.middleware_hosts"), "nats://127.0.0.1:4222");
    /* no certificates: the node must be told to accept unsigned requests */
    assert_string_equal(config_get(r, "plugin.choria.security.insecure"), "true");
    assert_string_equal(r->certificate, "");
    assert_int_equal(res.errout_len, 0);
    prov_helper_reply_free(r);
    ch_process_result_clear(&res);
}

static void test_demo_helper_takes_the_broker_from_the_environment(void **state)
{
    fixture *f = *state;
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "/usr/bin/env CHORIA_DEMO_BROKER=nats://b1:4222,nats://b2:4222 %s",
             f->demo);
    ch_process_result res;
    prov_helper_reply *r = run(f, cmd, "node-7.example.net", NULL, &res);
    assert_false(r->defer);
    assert_string_equal(config_get(r, "identity"), "node-7.example.net");
    assert_string_equal(config_get(r, "plugin.choria.middleware_hosts"),
                        "nats://b1:4222,nats://b2:4222");
    prov_helper_reply_free(r);
    ch_process_result_clear(&res);

    /* A value that would need JSON escaping is refused, not copied. */
    snprintf(cmd, sizeof(cmd), "/usr/bin/env 'CHORIA_DEMO_BROKER=nats://b1\"' %s", f->demo);
    r = run(f, cmd, "node-7.example.net", NULL, &res);
    assert_true(r->defer);
    assert_int_equal(r->configuration.count, 0);
    prov_helper_reply_free(r);
    ch_process_result_clear(&res);
}

static void test_demo_helper_defers_bad_identities(void **state)
{
    fixture *f = *state;
    /* Quotes and '<' reach the helper Go-escaped (\" and \u003c); spaces, slashes and empty
     * labels arrive as they are. */
    const char *bad[] = {"",     "n1 example", "n1\"x", "<n1>",  "n1/x",
                         "a..b", ".a",         "a.",    "n1\\x", "n\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ch_process_result res;
        prov_helper_reply *r = run(f, f->demo, bad[i], NULL, &res);
        if (!r->defer)
            print_error("identity [%s] was not deferred\n", bad[i]);
        assert_true(r->defer);
        assert_non_null(strstr(r->msg, "identity"));
        assert_int_equal(r->configuration.count, 0);
        prov_helper_reply_free(r);
        ch_process_result_clear(&res);
    }
}

static void test_demo_helper_speed_through_the_runner(void **state)
{
    fixture *f = *state;
    const int runs = 200;
    int64_t start = ch_now_mono_ms();
    for (int i = 0; i < runs; i++) {
        char identity[64];
        snprintf(identity, sizeof(identity), "node-%05d.fleet.example.net", i);
        ch_process_result res;
        prov_helper_reply *r = run(f, f->demo, identity, NULL, &res);
        assert_false(r->defer);
        assert_string_equal(r->configuration.items[0].value, identity);
        prov_helper_reply_free(r);
        ch_process_result_clear(&res);
    }
    int64_t ms = ch_now_mono_ms() - start;
    print_message("demo-helper: %d runs in %lld ms through prov_helper_run: %.0f runs/s\n", runs,
                  (long long)ms, ms > 0 ? runs * 1000.0 / (double)ms : 0.0);
}

/* ---- openssl-ca-helper ------------------------------------------------------------------ */

static X509 *pem_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    assert_non_null(b);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    return x;
}

/* Asserts that cert_pem is a certificate for identity, signed by ca_pem, for the key in
 * csr_pem. */
static void assert_signed(const char *cert_pem, const char *ca_pem, const char *csr_pem,
                          const char *identity)
{
    X509 *cert = pem_cert(cert_pem);
    X509 *ca = pem_cert(ca_pem);

    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_non_null(store);
    assert_non_null(ctx);
    assert_int_equal(X509_STORE_add_cert(store, ca), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, NULL), 1);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    int ok = X509_verify_cert(ctx);
    if (ok != 1)
        print_error("verify: %s\n", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    assert_int_equal(ok, 1);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);

    char cn[256];
    assert_in_range(
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)), 1,
        INT_MAX);
    assert_string_equal(cn, identity);
    assert_int_equal(X509_check_host(cert, identity, 0, 0, NULL), 1);
    assert_int_equal(X509_check_ca(cert), 0);

    BIO *b = BIO_new_mem_buf(csr_pem, -1);
    X509_REQ *req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(req);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cert), X509_REQ_get0_pubkey(req)), 1);
    X509_REQ_free(req);
    X509_free(ca);
    X509_free(cert);
}

static void make_csr(const char *identity, ch_pki_csr *csr)
{
    ch_pki_subject subject = {.cn = identity};
    ch_error err = {0};
    memset(csr, 0, sizeof(*csr));
    assert_int_equal(ch_pki_csr_generate(&subject, 2048, csr, &err), CH_OK);
}

static void ca_command(const fixture *f, const char *sub, char *out, size_t size)
{
    int n = snprintf(out, size, "%s '%s/%s'", f->ca_helper, f->dir, sub);
    assert_in_range(n, 1, size - 1);
}

static char *read_text(const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    ch_error err = {0};
    if (ch_read_file(path, 1 << 20, &buf, &len, &err) != CH_OK)
        return NULL;
    return buf;
}

static void test_ca_helper_signs_the_csr_and_configures_the_file_provider(void **state)
{
    fixture *f = *state;
    ch_pki_csr csr;
    make_csr("n1.example.net", &csr);
    prov_helper_csr hcsr = {
        .csr = csr.csr_pem, .public_key = csr.public_pem, .ssldir = "/etc/choria/ssl"};
    char cmd[700];
    ca_command(f, "ca", cmd, sizeof(cmd));

    ch_process_result res;
    prov_helper_reply *r = run(f, cmd, "n1.example.net", &hcsr, &res);
    if (r->defer)
        print_error("deferred: %s\nstderr: %s\n", r->msg, res.errout ? res.errout : "");
    assert_false(r->defer);
    assert_false(r->shutdown);
    assert_string_equal(r->key, "");
    assert_string_equal(r->ssldir, "/etc/choria/ssl");
    assert_non_null(strstr(r->certificate, "-----BEGIN CERTIFICATE-----\n"));
    assert_non_null(strstr(r->ca, "-----BEGIN CERTIFICATE-----\n"));
    assert_signed(r->certificate, r->ca, csr.csr_pem, "n1.example.net");

    assert_string_equal(r->configuration.items[0].key, "identity");
    assert_string_equal(r->configuration.items[0].value, "n1.example.net");
    assert_string_equal(config_get(r, "plugin.choria.server.provision"), "false");
    assert_string_equal(config_get(r, "plugin.choria.middleware_hosts"), "nats://127.0.0.1:4222");
    assert_string_equal(config_get(r, "plugin.security.provider"), "file");
    assert_string_equal(config_get(r, "plugin.security.file.certificate"),
                        "/etc/choria/ssl/certificate.pem");
    assert_string_equal(config_get(r, "plugin.security.file.key"), "/etc/choria/ssl/private.pem");
    assert_string_equal(config_get(r, "plugin.security.file.ca"), "/etc/choria/ssl/ca.pem");

    /* The CA it returned is the one it created, whose key is private and never printed. */
    char path[256];
    snprintf(path, sizeof(path), "%s/ca/ca.pem", f->dir);
    char *ca_file = read_text(path);
    assert_non_null(ca_file);
    assert_string_equal(ca_file, r->ca);
    free(ca_file);
    snprintf(path, sizeof(path), "%s/ca/ca.key", f->dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_null(strstr(res.out, "PRIVATE KEY"));
    if (res.errout != NULL)
        assert_null(strstr(res.errout, "PRIVATE KEY"));
    prov_helper_reply_free(r);
    ch_process_result_clear(&res);

    /* A second node is signed by the same CA, and its ssldir (Windows style, Go-escaped
     * backslashes) is echoed and used for the file paths. */
    ch_pki_csr csr2;
    make_csr("n2.example.net", &csr2);
    prov_helper_csr hcsr2 = {.csr = csr2.csr_pem,
                             .public_key = csr2.public_pem,
                             .ssldir = "C:\\ProgramData\\choria\\ssl"};
    ch_process_result res2;
    prov_helper_reply *r2 = run(f, cmd, "n2.example.net", &hcsr2, &res2);
    assert_false(r2->defer);
    assert_string_equal(r2->ssldir, "C:\\ProgramData\\choria\\ssl");
    assert_string_equal(config_get(r2, "plugin.security.file.key"),
                        "C:\\ProgramData\\choria\\ssl/private.pem");
    assert_signed(r2->certificate, r2->ca, csr2.csr_pem, "n2.example.net");
    prov_helper_reply_free(r2);
    ch_process_result_clear(&res2);
    ch_pki_csr_clear(&csr2);
    ch_pki_csr_clear(&csr);
}

typedef struct {
    const fixture *f;
    const char *cmd;
    pthread_barrier_t *barrier;
    char identity[64];
    ch_pki_csr csr;
    prov_helper_reply *reply;
    ch_process_result res;
    ch_status st;
    ch_error err;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    prov_helper_input in = {.identity = r->identity, .inventory = INVENTORY, .jwt = r->f->claims};
    prov_helper_csr hcsr = {
        .csr = r->csr.csr_pem, .public_key = r->csr.public_pem, .ssldir = "/etc/choria/ssl"};
    in.csr = &hcsr;
    ch_process_run_opts opts = {.timeout_ms = CA_TIMEOUT_MS};
    pthread_barrier_wait(r->barrier);
    r->st = prov_helper_run(r->cmd, &in, &opts, &r->reply, &r->res, &r->err);
    return NULL;
}

static void test_ca_helper_parallel_first_runs_share_one_new_ca(void **state)
{
    fixture *f = *state;
    char cmd[700];
    ca_command(f, "race/ca", cmd, sizeof(cmd)); /* not there yet: created on first use */
    racer rs[PARALLEL];
    pthread_t th[PARALLEL];
    pthread_barrier_t barrier;
    assert_int_equal(pthread_barrier_init(&barrier, NULL, PARALLEL), 0);
    memset(rs, 0, sizeof(rs));
    for (int i = 0; i < PARALLEL; i++) {
        rs[i].f = f;
        rs[i].cmd = cmd;
        rs[i].barrier = &barrier;
        snprintf(rs[i].identity, sizeof(rs[i].identity), "r%d.example.net", i);
        make_csr(rs[i].identity, &rs[i].csr);
    }
    for (int i = 0; i < PARALLEL; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    for (int i = 0; i < PARALLEL; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);

    char path[256];
    snprintf(path, sizeof(path), "%s/race/ca/ca.pem", f->dir);
    char *ca_file = read_text(path);
    assert_non_null(ca_file);
    for (int i = 0; i < PARALLEL; i++) {
        if (rs[i].st != CH_OK || rs[i].reply->defer)
            print_error("run %d: %s %s\nstderr: %s\n", i, rs[i].err.msg,
                        rs[i].reply ? rs[i].reply->msg : "",
                        rs[i].res.errout ? rs[i].res.errout : "");
        assert_int_equal(rs[i].st, CH_OK);
        assert_false(rs[i].reply->defer);
        assert_string_equal(rs[i].reply->ca, ca_file);
        assert_signed(rs[i].reply->certificate, ca_file, rs[i].csr.csr_pem, rs[i].identity);
        /* Random serials: no two certificates share one. */
        X509 *a = pem_cert(rs[i].reply->certificate);
        for (int j = 0; j < i; j++) {
            X509 *b = pem_cert(rs[j].reply->certificate);
            assert_int_not_equal(
                ASN1_INTEGER_cmp(X509_get0_serialNumber(a), X509_get0_serialNumber(b)), 0);
            X509_free(b);
        }
        X509_free(a);
    }
    free(ca_file);

    /* Nothing but the CA and the lock is left in its directory. */
    snprintf(path, sizeof(path), "%s/race/ca", f->dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        files++;
        if (strcmp(de->d_name, "ca.pem") != 0 && strcmp(de->d_name, "ca.key") != 0 &&
            strcmp(de->d_name, ".lock") != 0 && strcmp(de->d_name, ".lock.d") != 0)
            fail_msg("unexpected file %s in the CA directory", de->d_name);
    }
    closedir(d);
    assert_in_range(files, 2, 4); /* the CA pair and at most the two lock names */

    for (int i = 0; i < PARALLEL; i++) {
        prov_helper_reply_free(rs[i].reply);
        ch_process_result_clear(&rs[i].res);
        ch_pki_csr_clear(&rs[i].csr);
    }
}

static void expect_ca_defer(const fixture *f, const char *cmd, const char *identity,
                            const prov_helper_csr *csr, const char *msg)
{
    ch_process_result res;
    prov_helper_reply *r = run(f, cmd, identity, csr, &res);
    assert_true(r->defer);
    if (strstr(r->msg, msg) == NULL)
        fail_msg("msg [%s] lacks [%s]", r->msg, msg);
    assert_int_equal(r->configuration.count, 0);
    assert_string_equal(r->certificate, "");
    /* The reason is logged on stderr too. */
    assert_non_null(res.errout);
    assert_non_null(strstr(res.errout, msg));
    prov_helper_reply_free(r);
    ch_process_result_clear(&res);
}

static void test_ca_helper_defers_requests_without_a_usable_csr(void **state)
{
    fixture *f = *state;
    char cmd[700];
    ca_command(f, "ca", cmd, sizeof(cmd));
    expect_ca_defer(f, cmd, "n1.example.net", NULL, "no CSR in request");

    ch_pki_csr csr;
    make_csr("n1.example.net", &csr);
    /* A newline in ssldir would inject a line into the node's configuration file. */
    prov_helper_csr inject = {.csr = csr.csr_pem,
                              .public_key = csr.public_pem,
                              .ssldir = "/etc/choria/ssl\nplugin.security.provider=file"};
    expect_ca_defer(f, cmd, "n1.example.net", &inject, "cannot find the CSR and ssldir");
    prov_helper_csr no_dir = {.csr = csr.csr_pem, .public_key = csr.public_pem, .ssldir = ""};
    expect_ca_defer(f, cmd, "n1.example.net", &no_dir, "no ssldir");
    prov_helper_csr garbage = {.csr = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                      "-----END CERTIFICATE REQUEST-----\n",
                               .public_key = "",
                               .ssldir = "/etc/choria/ssl"};
    expect_ca_defer(f, cmd, "n1.example.net", &garbage, "could not sign the CSR");
    prov_helper_csr good = {
        .csr = csr.csr_pem, .public_key = csr.public_pem, .ssldir = "/etc/choria/ssl"};
    expect_ca_defer(f, cmd, "n1 example", &good, "invalid identity");

    /* No CA directory at all. */
    char bare[700];
    snprintf(bare, sizeof(bare), "/usr/bin/env -u CHORIA_CA_DIR %s", f->ca_helper);
    expect_ca_defer(f, bare, "n1.example.net", &good, "no CA directory");
    ch_pki_csr_clear(&csr);
}

/* --persistent: one process signs three CSRs (each a good certificate), defers a request
 * without a CSR on the same line protocol, and a missing CA directory is a defer per request,
 * not a dead helper. */
static void test_ca_helper_persistent_signs_one_request_per_line(void **state)
{
    fixture *f = *state;
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "%s --persistent '%s/ca'", f->ca_helper, f->dir);
    prov_helper_pool_opts o = {.command = cmd, .processes = 1, .timeout_ms = 20000};
    prov_helper_pool *pool = NULL;
    ch_error err;
    assert_int_equal(prov_helper_pool_start(&o, &pool, &err), CH_OK);
    for (int i = 1; i <= 3; i++) {
        char id[64];
        snprintf(id, sizeof(id), "n%d.example.net", i);
        ch_pki_csr csr;
        make_csr(id, &csr);
        prov_helper_csr hcsr = {
            .csr = csr.csr_pem, .public_key = csr.public_pem, .ssldir = "/etc/choria/ssl"};
        prov_helper_input in = {.identity = id, .csr = &hcsr, .inventory = INVENTORY};
        prov_helper_reply *r = NULL;
        assert_int_equal(prov_helper_pool_run(pool, &in, &r, &err), CH_OK);
        assert_false(r->defer);
        assert_signed(r->certificate, r->ca, csr.csr_pem, id);
        assert_string_equal(config_get(r, "identity"), id);
        prov_helper_reply_free(r);
        ch_pki_csr_clear(&csr);
    }
    prov_helper_input none = {.identity = "n4.example.net", .inventory = INVENTORY};
    prov_helper_reply *r = NULL;
    assert_int_equal(prov_helper_pool_run(pool, &none, &r, &err), CH_OK);
    assert_true(r->defer);
    assert_non_null(strstr(r->msg, "no CSR in request"));
    prov_helper_reply_free(r);
    assert_int_equal(prov_helper_pool_starts(pool), 1);
    prov_helper_pool_stop(pool);

    snprintf(cmd, sizeof(cmd), "/usr/bin/env -u CHORIA_CA_DIR %s --persistent", f->ca_helper);
    o.command = cmd;
    assert_int_equal(prov_helper_pool_start(&o, &pool, &err), CH_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(prov_helper_pool_run(pool, &none, &r, &err), CH_OK);
        assert_true(r->defer);
        assert_non_null(strstr(r->msg, "no CA directory"));
        prov_helper_reply_free(r);
    }
    assert_int_equal(prov_helper_pool_starts(pool), 1);
    prov_helper_pool_stop(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_demo_helper_configures_the_identity_and_leaves_provisioning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_demo_helper_takes_the_broker_from_the_environment,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_demo_helper_defers_bad_identities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_demo_helper_speed_through_the_runner, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_demo_helper_configures_the_identity_and_leaves_provisioning, setup_static,
            teardown),
        cmocka_unit_test_setup_teardown(test_demo_helper_takes_the_broker_from_the_environment,
                                        setup_static, teardown),
        cmocka_unit_test_setup_teardown(test_demo_helper_defers_bad_identities, setup_static,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_demo_helper_speed_through_the_runner, setup_static,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_ca_helper_signs_the_csr_and_configures_the_file_provider, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_helper_parallel_first_runs_share_one_new_ca, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ca_helper_persistent_signs_one_request_per_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ca_helper_defers_requests_without_a_usable_csr, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
