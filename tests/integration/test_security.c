/* A secured network end to end: a PKI minted by tests/data/security/mk-pki.sh (the spec's
 * openssl script), `choria broker run` serving TLS, `choria-provisioner` with the file
 * security provider and openssl-ca-helper, and three real `choria server run` nodes that
 * provision over anonymous TLS, restart into normal mode with their new certificates (mutual
 * TLS, the broker checked against the CA and its host name), then answer an x509-signed
 * rpcutil#ping and refuse an unsigned one, one signed under another CA, one whose caller is
 * not its certificate and one with an expired certificate. The same with the choria provider
 * and protocol v2: nodes with a v2 provisioning JWT, a provisioner signing with its client
 * JWT, server JWTs from features.ed25519, then ed25519-signed pings from a client JWT, the
 * refused callers of the spec's Suite W, and a v1 request that the v2 node names in its log.
 * A provisioning node refuses a broker without TLS, as upstream's does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/conn.h"
#include "choria/jwt.h"
#include "choria/pki.h"
#include "choria/protocol_v2.h"
#include "choria/rpc.h"
#include "choria/security_choria.h"
#include "choria/security_x509.h"
#include "choria/util.h"
#include "harness.h"

#define NODES 3

typedef struct {
    cht_proc *broker, *provisioner, *nodes[NODES];
    char dir[256], pki[300], bin[512];
    int client_port, stats_port, monitor_port;
    char org_seed[65], org_pub[65]; /* the Organization Issuer of the v2 test */
} fixture;

static int start_broker(fixture *f)
{
    char conf[400];
    ch_error err;
    snprintf(conf, sizeof(conf), "%s/broker.conf", f->dir);
    if (cht_write_file(conf, &err,
                       "identity = b1\nplugin.choria.network.listen_address = 127.0.0.1\n"
                       "plugin.choria.network.client_port = %d\nplugin.choria.stats_port = %d\n"
                       "plugin.choria.network.stream.store = %s/js\n"
                       "plugin.choria.network.provisioning.client_password = provpw\n"
                       "plugin.choria.network.provisioning.node_password = nodepw\n"
                       "plugin.choria.network.choria_user = fleet\n"
                       "plugin.choria.network.choria_password = fleetpw\n"
                       "plugin.choria.network.tls.certificate = %s/broker.pem\n"
                       "plugin.choria.network.tls.key = %s/broker.key\n",
                       f->client_port, f->stats_port, f->dir, f->pki, f->pki) != CH_OK)
        return -1;
    const char *argv[] = {f->bin, "broker", "run", "--config", conf, NULL};
    cht_proc_opts o = {.argv = argv};
    if (cht_proc_spawn(&o, &f->broker, NULL) != CH_OK)
        return -1;
    for (int i = 0; i < 150 && strstr(cht_proc_stderr(f->broker), "ready: election") == NULL; i++)
        usleep(100000);
    if (strstr(cht_proc_stderr(f->broker), "ready: election") == NULL) {
        fprintf(stderr, "broker did not start: %s\n", cht_proc_stderr(f->broker));
        return -1;
    }
    return 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || cht_temp_dir("security-test", f->dir, sizeof(f->dir), NULL) != CH_OK ||
        cht_bin_path("choria", f->bin, sizeof(f->bin), NULL) != CH_OK)
        return -1;
    snprintf(f->pki, sizeof(f->pki), "%s/pki", f->dir);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "sh %s/security/mk-pki.sh %s", CH_TEST_DATA, f->pki);
    if (mkdir(f->pki, 0700) != 0 || system(cmd) != 0)
        return -1;
    f->client_port = cht_free_port();
    f->stats_port = cht_free_port();
    *state = f;
    return start_broker(f);
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < NODES; i++)
        cht_proc_free(f->nodes[i]);
    cht_proc_free(f->provisioner);
    cht_proc_free(f->broker);
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

/* The provisioner: mutual TLS with its own certificate, every request signed. */
static void start_provisioner(fixture *f)
{
    char client[2048], yaml[2048], helper[512], cadir[400];
    ch_error err;
    snprintf(helper, sizeof(helper), "%s/contrib/helpers/openssl-ca-helper", CH_SOURCE_TREE);
    snprintf(cadir, sizeof(cadir), "%s/ca", f->dir);
    CHT_SH("mkdir -p %s && cp %s/ca.pem %s/ca.key %s/", cadir, f->pki, f->pki, cadir);
    snprintf(client, sizeof(client),
             "identity = provisioner.mcollective\n"
             "plugin.choria.middleware_hosts = localhost:%d\n"
             "plugin.security.provider = file\n"
             "plugin.security.file.certificate = %s/provisioner.pem\n"
             "plugin.security.file.key = %s/provisioner.key\n"
             "plugin.security.file.ca = %s/ca.pem\n",
             f->client_port, f->pki, f->pki, f->pki);
    snprintf(yaml, sizeof(yaml),
             "workers: 4\nsite: sec\ntoken: t\nbroker_provisioning_password: provpw\n"
             "features:\n  pki: true\n  jwt: false\n"
             "helper: /usr/bin/env CHORIA_CA_BROKER=nats://localhost:%d "
             "CHORIA_CA_NATS_USER=fleet CHORIA_CA_NATS_PASSWORD=fleetpw %s %s\n",
             f->client_port, helper, cadir);
    const char *env[] = {"MCOLLECTIVE_CERTNAME=provisioner.mcollective", NULL};
    cht_provisioner_opts o = {
        .dir = f->dir, .config = yaml, .client_config = client, .env = env, .no_wait = true};
    CHT_CHECK(cht_provisioner_start(&o, &f->provisioner, &f->monitor_port, &err), &err);
}

/* A node with only an identity and provisioning on: it must use anonymous TLS. */
static void start_node(fixture *f, int i, const char *jwt)
{
    char dir[400], conf[450];
    ch_error err;
    snprintf(dir, sizeof(dir), "%s/n%d", f->dir, i + 1);
    mkdir(dir, 0700);
    snprintf(conf, sizeof(conf), "%s/server.conf", dir);
    CHT_CHECK(cht_write_file(conf, &err,
                             "identity = n%d.example.net\nplugin.choria.server.provision = true\n",
                             i + 1),
              &err);
    const char *argv[] = {f->bin, "server",  "run", "--config", conf, "--provisioning-jwt",
                          jwt,    "--debug", NULL};
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->nodes[i], &err), &err);
}

/* A fleet client: TLS with the broker checked against the CA, the fleet login. */
static natsConnection *fleet_connection(fixture *f)
{
    char url[64], ca[400];
    snprintf(url, sizeof(url), "nats://localhost:%d", f->client_port);
    snprintf(ca, sizeof(ca), "%s/ca.pem", f->pki);
    const char *servers[] = {url};
    ch_conn_opts o = {.servers = servers,
                      .server_count = 1,
                      .user = "fleet",
                      .password = "fleetpw",
                      .tls = {.enabled = true, .ca_file = ca, .server_name = "localhost"}};
    natsConnection *nc = NULL;
    ch_error err;
    CHT_CHECK(ch_conn_connect(&o, &nc, &err), &err);
    return nc;
}

typedef struct {
    const char *cert, *key; /* PKI names; NULL cert = unsigned */
    const char *certname;   /* callerid choria=<certname> */
} caller;

/* rpcutil#ping to node i as callerid, signed by sec (NULL: unsigned) in the protocol sec
 * needs; returns the statuscode, -1 when no reply came, and the status or error in msg. */
static int call_ping(natsConnection *nc, int i, const char *callerid, const ch_security *sec,
                     char *msg, size_t size)
{
    char identity[64];
    ch_error err;
    snprintf(identity, sizeof(identity), "n%d.example.net", i + 1);
    ch_rpc_client_opts ro = {.nc = nc,
                             .collective = "mcollective",
                             .identity = "client.example.net",
                             .callerid = callerid,
                             .security = sec != NULL ? sec : ch_security_insecure(),
                             .protocol = ch_protocol_for_security(sec)};
    ch_rpc_client *client = NULL;
    CHT_CHECK(ch_rpc_client_new_opts(&ro, &client, &err), &err);
    ch_rpc_result res = {0};
    int code = -1;
    if (ch_rpc_call(client, identity, "rpcutil", "ping", NULL, 3000, &res, &err) == CH_OK)
        code = (int)res.statuscode;
    snprintf(msg, size, "%s", code >= 0 ? res.statusmsg : err.msg);
    ch_rpc_result_clear(&res);
    ch_rpc_client_free(client);
    return code;
}

/* rpcutil#ping to node i as caller c; returns the statuscode, -1 when no reply came. */
static int ping(fixture *f, natsConnection *nc, int i, const caller *c, char *msg, size_t size)
{
    char cert[400], key[400], callerid[128];
    ch_error err;
    ch_security *sec = NULL;
    if (c->cert != NULL) {
        snprintf(cert, sizeof(cert), "%s/%s.pem", f->pki, c->cert);
        snprintf(key, sizeof(key), "%s/%s.key", f->pki, c->key);
        ch_security_x509_opts xo = {.cert_file = cert, .key_file = key, .sign = true};
        CHT_CHECK(ch_security_x509_new(&xo, &sec, &err), &err);
    }
    snprintf(callerid, sizeof(callerid), "choria=%s", c->certname);
    int code = call_ping(nc, i, callerid, sec, msg, size);
    ch_security_free(sec);
    return code;
}

static double metric(fixture *f, const char *series)
{
    return cht_metric(f->monitor_port, series);
}

static void wait_provisioned(fixture *f)
{
    const char *series = "choria_provisioner_provisioned{site=\"sec\"}";
    for (int i = 0; i < 600 && metric(f, series) != NODES; i++)
        usleep(100000);
    if (metric(f, series) != NODES && f->nodes[0] != NULL)
        fprintf(stderr, "n1 said: %s\n", cht_proc_stderr(f->nodes[0]));
    if (metric(f, series) != NODES)
        fail_msg("%g of %d provisioned\nprovisioner: %s\nn1: %s\nbroker: %s", metric(f, series),
                 NODES, cht_proc_stderr(f->provisioner), cht_proc_stderr(f->nodes[0]),
                 cht_proc_stderr(f->broker));
}

/* Waits until node i answers a good ping in normal mode (it restarts after provisioning). */
static void wait_normal_mode(fixture *f, natsConnection *nc, int i, const caller *good)
{
    char msg[512] = "";
    int code = -1;
    for (int tries = 0; tries < 20 && code != 0; tries++)
        if ((code = ping(f, nc, i, good, msg, sizeof(msg))) != 0)
            usleep(500000);
    if (code != 0)
        fail_msg("n%d never answered a signed ping (%d %s)\nnode: %s", i + 1, code, msg,
                 cht_proc_stderr(f->nodes[i]));
}

static void nodes_provision_over_anonymous_tls_and_then_verify_signed_requests(void **state)
{
    fixture *f = *state;
    CHT_SH("openssl genrsa -out %s/jwt.key 2048 2>/dev/null", f->dir);
    CHT_SH("%s jwt provisioning %s/p.jwt %s/jwt.key --token t --urls localhost:%d --default "
           "--username provisioning --password nodepw >/dev/null",
           f->bin, f->dir, f->dir, f->client_port);
    char jwt[300];
    snprintf(jwt, sizeof(jwt), "%s/p.jwt", f->dir);
    start_provisioner(f);
    for (int i = 0; i < NODES; i++)
        start_node(f, i, jwt);
    wait_provisioned(f);
    /* the provisioner signed as its certificate; the broker saw only TLS connections */
    assert_non_null(strstr(cht_proc_stderr(f->provisioner),
                           "signed by the x509 security provider as provisioner.mcollective"));

    natsConnection *nc = fleet_connection(f);
    const caller good = {"rip", "rip", "rip.mcollective"};
    for (int i = 0; i < NODES; i++)
        wait_normal_mode(f, nc, i, &good);
    static const struct {
        caller c;
        const char *why;
    } refused[] = {
        {{NULL, NULL, "rip.mcollective"}, "request is not signed"},
        {{"stranger", "stranger", "rip.mcollective"}, "certificate chain"},
        {{"rip", "rip", "bob.mcollective"}, "certificate is not for the caller bob.mcollective"},
        {{"expired", "expired", "rip.mcollective"}, "certificate has expired"},
    };
    char msg[512];
    for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
        int code = ping(f, nc, 0, &refused[k].c, msg, sizeof(msg));
        printf("%s as %s: statuscode %d, %s\n", refused[k].c.cert ? refused[k].c.cert : "unsigned",
               refused[k].c.certname, code, msg);
        assert_int_equal(code, 1);
        assert_non_null(strstr(msg, "You are not authorized"));
        assert_non_null(strstr(msg, refused[k].why));
    }
    assert_non_null(strstr(cht_proc_stderr(f->nodes[0]), "refused a request"));
    assert_non_null(strstr(cht_proc_stderr(f->nodes[0]), "verified by the x509 security provider"));
    assert_int_equal(ping(f, nc, 0, &good, msg, sizeof(msg)), 0); /* still serving */
    ch_conn_close(nc);

    /* Suite B2: the broker serves TLS only; a plain client does not get in */
    char url[64];
    snprintf(url, sizeof(url), "nats://localhost:%d", f->client_port);
    const char *servers[] = {url};
    ch_conn_opts plain = {
        .servers = servers, .server_count = 1, .user = "fleet", .password = "fleetpw"};
    ch_error err;
    nc = NULL;
    assert_int_not_equal(ch_conn_connect(&plain, &nc, &err), CH_OK);
    assert_null(nc);
}

/* ---- protocol v2 with the choria provider ---- */

/* A key pair from ch_pki_ed25519_keypair as hex, the seed also written to dir/<name>.seed. */
static void ed25519_files(fixture *f, const char *name, char seed_hex[65], char pub_hex[65])
{
    unsigned char seed[32], pub[32];
    char path[400];
    ch_error err;
    CHT_CHECK(ch_pki_ed25519_keypair(seed, pub, &err), &err);
    ch_hex_encode(seed, 32, seed_hex);
    ch_hex_encode(pub, 32, pub_hex);
    snprintf(path, sizeof(path), "%s/%s.seed", f->dir, name);
    CHT_CHECK(cht_write_file(path, &err, "%s", seed_hex), &err);
}

/* A JWT for claims signed by the seed (hex), written to dir/<name>.jwt. */
static void jwt_file(fixture *f, const char *name, const char *seed_hex, json_t *claims)
{
    char path[400], *jwt = NULL;
    ch_error err;
    CHT_CHECK(ch_jwt_sign("EdDSA", seed_hex, claims, &jwt, &err), &err);
    json_decref(claims);
    snprintf(path, sizeof(path), "%s/%s.jwt", f->dir, name);
    ch_status st = cht_write_file(path, &err, "%s", jwt);
    free(jwt);
    CHT_CHECK(st, &err);
}

/* A client identity <name>.jwt + <name>.seed issued by issuer_seed, with fleet management
 * unless perms says otherwise, valid for an hour unless exp is given. */
static void client_identity(fixture *f, const char *name, const char *issuer_seed,
                            const char *callerid, const char *purpose, json_t *perms, int64_t exp)
{
    char seed[65], pub[65];
    ed25519_files(f, name, seed, pub);
    int64_t now = ch_now_unix();
    json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:I}", "callerid", callerid, "ou", "choria",
                          "purpose", purpose, "public_key", pub, "permissions",
                          perms != NULL ? perms : json_pack("{s:b}", "fleet_management", 1), "iat",
                          (json_int_t)now - 10, "nbf", (json_int_t)now - 10, "exp",
                          (json_int_t)(exp != 0 ? exp : now + 3600));
    jwt_file(f, name, issuer_seed, c);
}

/* The helper of the v2 test: normal mode with the choria provider, the node's own server.jwt
 * and server.seed (gen25519 and configure put them beside its config in <dir>/nX), the
 * issuer's key and the fleet login. */
static void write_v2_helper(fixture *f, char *path, size_t size)
{
    ch_error err;
    snprintf(path, size, "%s/v2-helper", f->dir);
    CHT_CHECK(cht_write_file(
                  path, &err,
                  "#!/bin/sh\nIFS='\"' read -r open key colon id rest || :\nn=${id%%%%.*}\n"
                  "printf '{\"defer\":false,\"msg\":\"v2\",\"configuration\":{\"identity\":\"%%s\","
                  "\"plugin.choria.server.provision\":\"false\","
                  "\"plugin.choria.middleware_hosts\":\"localhost:%d\","
                  "\"plugin.security.provider\":\"choria\","
                  "\"plugin.security.choria.token_file\":\"%s/%%s/server.jwt\","
                  "\"plugin.security.choria.seed_file\":\"%s/%%s/server.seed\","
                  "\"plugin.security.issuer.names\":\"choria\","
                  "\"plugin.security.issuer.choria.public\":\"%s\","
                  "\"plugin.nats.user\":\"fleet\",\"plugin.nats.pass\":\"fleetpw\"}}\\n' "
                  "\"$id\" \"$n\" \"$n\"\n",
                  f->client_port, f->dir, f->dir, f->org_pub),
              &err);
    chmod(path, 0700);
}

/* The provisioner of an Organization Issuer network: its client JWT (callerid
 * up=provisioner, the provisioner permission) and seed, anonymous TLS, protocol v2, server
 * JWTs signed by the issuer, provisioning JWTs verified with the issuer's key. */
static void start_v2_provisioner(fixture *f)
{
    char client[2048], yaml[2048], helper[400];
    ch_error err;
    client_identity(f, "provisioner", f->org_seed, "up=provisioner", "choria_client_id",
                    json_pack("{s:b,s:b}", "fleet_management", 1, "provisioner", 1), 0);
    write_v2_helper(f, helper, sizeof(helper));
    snprintf(client, sizeof(client),
             "identity = provisioner_signer\n"
             "plugin.choria.middleware_hosts = localhost:%d\n"
             "plugin.security.provider = choria\n"
             "plugin.security.choria.token_file = %s/provisioner.jwt\n"
             "plugin.security.choria.seed_file = %s/provisioner.seed\n",
             f->client_port, f->dir, f->dir);
    snprintf(yaml, sizeof(yaml),
             "workers: 4\nsite: sec\ntoken: t\nbroker_provisioning_password: provpw\n"
             "features:\n  ed25519: true\njwt_verify_cert: %s\njwt_signing_key: %s/org.seed\n"
             "helper: %s\n",
             f->org_pub, f->dir, helper);
    cht_provisioner_opts o = {
        .dir = f->dir, .config = yaml, .client_config = client, .no_wait = true};
    CHT_CHECK(cht_provisioner_start(&o, &f->provisioner, &f->monitor_port, &err), &err);
}

typedef struct {
    const char *identity; /* <dir>/<identity>.jwt and .seed; NULL: a v1 unsigned request */
    const char *callerid; /* the request's caller; NULL: the JWT's */
} v2_caller;

/* rpcutil#ping to node i in protocol v2; returns the statuscode, -1 when no reply came. */
static int ping_v2(fixture *f, natsConnection *nc, int i, const v2_caller *c, char *msg,
                   size_t size)
{
    char token[400], seed[400];
    ch_error err;
    ch_security *sec = NULL;
    if (c->identity != NULL) {
        snprintf(token, sizeof(token), "%s/%s.jwt", f->dir, c->identity);
        snprintf(seed, sizeof(seed), "%s/%s.seed", f->dir, c->identity);
        ch_security_choria_opts so = {.token_file = token, .seed_file = seed, .sign = true};
        CHT_CHECK(ch_security_choria_new(&so, &sec, &err), &err);
    }
    const char *callerid = c->callerid != NULL ? c->callerid : ch_security_callerid(sec);
    int code =
        call_ping(nc, i, callerid != NULL ? callerid : "choria=rip.mcollective", sec, msg, size);
    ch_security_free(sec);
    return code;
}

static void v2_nodes_provision_and_verify_ed25519_signed_requests(void **state)
{
    fixture *f = *state;
    char other_seed[65], other_pub[65], chu[64], jwt[300];
    ed25519_files(f, "org", f->org_seed, f->org_pub);
    ed25519_files(f, "other-org", other_seed, other_pub);
    /* the nodes' provisioning JWT says v2, and carries the broker's node login */
    snprintf(chu, sizeof(chu), "localhost:%d", f->client_port);
    jwt_file(f, "p2", f->org_seed,
             json_pack("{s:s,s:b,s:s,s:b,s:b,s:s,s:s,s:s,s:s,s:I}", "cht", "t", "chs", 0, "chu",
                       chu, "chpd", 1, "v2", 1, "chusr", "provisioning", "chpwd", "nodepw",
                       "purpose", "choria_provisioning", "sub", "choria_provisioning", "exp",
                       (json_int_t)ch_now_unix() + 3600));
    snprintf(jwt, sizeof(jwt), "%s/p2.jwt", f->dir);
    start_v2_provisioner(f);
    for (int i = 0; i < NODES; i++)
        start_node(f, i, jwt);
    wait_provisioned(f);
    const char *plog = cht_proc_stderr(f->provisioner);
    assert_non_null(strstr(plog, "signed by the choria security provider as up=provisioner, "
                                 "protocol choria:v2"));

    int64_t now = ch_now_unix();
    client_identity(f, "rip", f->org_seed, "up=rip", "choria_client_id", NULL, 0);
    client_identity(f, "stranger", other_seed, "up=rip", "choria_client_id", NULL, 0);
    client_identity(f, "nofleet", f->org_seed, "up=rip", "choria_client_id", json_object(), 0);
    client_identity(f, "delegated", f->org_seed, "up=rip", "choria_client_id",
                    json_pack("{s:b}", "signed_fleet_management", 1), 0);
    client_identity(f, "expired", f->org_seed, "up=rip", "choria_client_id", NULL, now - 5);
    natsConnection *nc = fleet_connection(f);
    char msg[512] = "";
    const v2_caller good = {"rip", NULL};
    for (int i = 0; i < NODES; i++) {
        int code = -1;
        for (int tries = 0; tries < 20 && code != 0; tries++)
            if ((code = ping_v2(f, nc, i, &good, msg, sizeof(msg))) != 0)
                usleep(500000);
        if (code != 0)
            fail_msg("n%d never answered a v2 ping (%d %s)\nnode: %s", i + 1, code, msg,
                     cht_proc_stderr(f->nodes[i]));
    }
    /* a server JWT cannot make requests: n2's own credentials, copied where ping_v2 looks */
    CHT_SH("cp %s/n2/server.jwt %s/n2srv.jwt && cp %s/n2/server.seed %s/n2srv.seed", f->dir, f->dir,
           f->dir, f->dir);
    static const struct {
        v2_caller c;
        const char *why;
    } refused[] = {
        {{"rip", "up=mallory"}, "does not match the JWT's callerid"},
        {{"stranger", NULL}, "token signature is invalid"},
        {{"nofleet", NULL}, "does not allow fleet management"},
        {{"delegated", NULL}, "requires authority delegation"},
        {{"expired", NULL}, "has expired"},
        {{"n2srv", "up=rip"}, "not a client token"},
    };
    for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
        int code = ping_v2(f, nc, 0, &refused[k].c, msg, sizeof(msg));
        printf("%s: statuscode %d, %s\n", refused[k].c.identity, code, msg);
        assert_int_equal(code, 1);
        assert_non_null(strstr(msg, "You are not authorized"));
        assert_non_null(strstr(msg, refused[k].why));
    }
    /* the wrong seed for a good JWT: a copy of rip.jwt with the stranger's seed */
    CHT_SH("cp %s/rip.jwt %s/wrongseed.jwt && cp %s/stranger.seed %s/wrongseed.seed", f->dir,
           f->dir, f->dir, f->dir);
    const v2_caller wrong_seed = {"wrongseed", NULL};
    assert_int_equal(ping_v2(f, nc, 0, &wrong_seed, msg, sizeof(msg)), 1);
    assert_non_null(strstr(msg, "does not verify with the caller's public key"));

    /* a v1 request gets no answer, and the node says why */
    const v2_caller v1 = {NULL, NULL};
    assert_int_equal(ping_v2(f, nc, 0, &v1, msg, sizeof(msg)), -1);
    const char *nlog = cht_proc_stderr(f->nodes[0]);
    assert_non_null(
        strstr(nlog, "a request in protocol choria:v1, but this node speaks choria:v2"));
    assert_non_null(strstr(nlog, "verified by the choria security provider"));
    assert_int_equal(ping_v2(f, nc, 0, &good, msg, sizeof(msg)), 0); /* still serving */
    ch_conn_close(nc);
}

/* Upstream nodes never provision in plain text: the node keeps retrying with a reason. */
static void a_provisioning_node_refuses_a_broker_without_tls(void **state)
{
    (void)state;
    cht_broker *plain = NULL;
    cht_broker_opts bo;
    cht_broker_opts_init(&bo);
    bo.jetstream = false;
    ch_error err;
    CHT_CHECK(cht_broker_start(&bo, &plain, &err), &err);
    char dir[256], conf[300], jwt[300], bin[512];
    CHT_CHECK(cht_temp_dir("security-plain", dir, sizeof(dir), &err), &err);
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    CHT_SH("openssl genrsa -out %s/k.pem 2048 2>/dev/null", dir);
    CHT_SH("%s jwt provisioning %s/p.jwt %s/k.pem --token t --urls 127.0.0.1:%d >/dev/null", bin,
           dir, dir, cht_broker_port(plain));
    snprintf(conf, sizeof(conf), "%s/server.conf", dir);
    snprintf(jwt, sizeof(jwt), "%s/p.jwt", dir);
    CHT_CHECK(cht_write_file(conf, &err,
                             "identity = plain.example.net\nplugin.choria.server.provision = "
                             "true\n"),
              &err);
    const char *argv[] = {bin, "server", "run", "--config", conf, "--provisioning-jwt", jwt, NULL};
    cht_proc_opts o = {.argv = argv};
    cht_proc *node = NULL;
    CHT_CHECK(cht_proc_spawn(&o, &node, &err), &err);
    const char *want = "the broker does not offer TLS";
    for (int i = 0; i < 50 && strstr(cht_proc_stderr(node), want) == NULL; i++)
        usleep(100000);
    sleep(1);
    const char *log = cht_proc_stderr(node);
    assert_non_null(strstr(log, want));
    assert_non_null(strstr(strstr(log, want) + 1, want)); /* a line per attempt */
    assert_null(strstr(log, "connected to"));
    /* and it stops cleanly while still trying */
    CHT_CHECK(cht_proc_signal(node, SIGTERM, &err), &err);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(node, 5000, &ws, &err), &err);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    cht_proc_free(node);
    cht_temp_dir_remove(dir, NULL);
    cht_broker_free(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            nodes_provision_over_anonymous_tls_and_then_verify_signed_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(v2_nodes_provision_and_verify_ed25519_signed_requests,
                                        setup, teardown),
        cmocka_unit_test(a_provisioning_node_refuses_a_broker_without_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
