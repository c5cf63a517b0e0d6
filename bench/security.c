/* What request security costs per request (issue #11): building a request payload signed by
 * the x509 provider (protocol v1) and by the choria provider (ed25519 and a caller JWT,
 * protocol v2), and decoding it with verification, next to the same with the insecure provider,
 * same run. The fixture PKI of tests/data/security (valid until 2125) is used for x509; the
 * choria provider's issuer, JWT and seed are made in a temporary directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>

#include "choria/jwt.h"
#include "choria/protocol.h"
#include "choria/security_choria.h"
#include "choria/security_x509.h"
#include "choria/util.h"

static void die(const char *what, const ch_error *err)
{
    fprintf(stderr, "bench: %s: %s\n", what, err != NULL ? err->msg : "");
    exit(1);
}

static const ch_request_params PARAMS = {
    .body = "{\"agent\":\"rpcutil\",\"action\":\"ping\",\"data\":{}}",
    .agent = "rpcutil",
    .collective = "mcollective",
    .callerid = "choria=rip.mcollective",
    .senderid = "admin.example.net",
    .requestid = "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    .ttl = 60,
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Microseconds per build (signing) and per decode (verifying), over n rounds. */
static void measure(const ch_protocol_ops *proto, const ch_security *signer,
                    const ch_security *verifier, int n, double *build_us, double *decode_us)
{
    ch_request_params p = PARAMS;
    p.time = ch_now_unix();
    if (ch_security_callerid(signer) != NULL)
        p.callerid = ch_security_callerid(signer); /* the choria provider's JWT names it */
    ch_error err;
    char *payload = NULL;
    size_t len = 0;
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        free(payload);
        if (ch_protocol_encode_request(proto, signer, &p, &payload, &len, &err) != CH_OK)
            die("build", &err);
    }
    double t1 = now_us();
    for (int i = 0; i < n; i++) {
        ch_request_payload out;
        if (ch_protocol_decode_request(proto, verifier, payload, len, &out, &err) != CH_OK)
            die("decode", &err);
        ch_protocol_request_payload_clear(&out);
    }
    double t2 = now_us();
    free(payload);
    *build_us = (t1 - t0) / n;
    *decode_us = (t2 - t1) / n;
}

#define ORG_SEED "0101010101010101010101010101010101010101010101010101010101010101"
#define ORG_PUB "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
#define CALLER_SEED "0202020202020202020202020202020202020202020202020202020202020202"
#define CALLER_PUB "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        die(path, NULL);
}

/* The spec's section 3.6 identities: caller up=rip, issuer "choria". */
static void choria_pair(char *dir, ch_security **signer, ch_security **verifier)
{
    char token[300], seed[300], *jwt = NULL;
    ch_error err;
    json_t *claims =
        json_pack("{s:s,s:s,s:{s:b},s:s,s:s,s:I}", "callerid", "up=rip", "ou", "choria",
                  "permissions", "fleet_management", 1, "purpose", "choria_client_id", "public_key",
                  CALLER_PUB, "exp", (json_int_t)ch_now_unix() + 3600);
    if (ch_jwt_sign("EdDSA", ORG_SEED, claims, &jwt, &err) != CH_OK)
        die("jwt", &err);
    json_decref(claims);
    snprintf(token, sizeof(token), "%s/caller.jwt", dir);
    snprintf(seed, sizeof(seed), "%s/caller.seed", dir);
    write_text(token, jwt);
    write_text(seed, CALLER_SEED);
    free(jwt);
    const char *names[] = {"choria"}, *keys[] = {ORG_PUB};
    ch_security_choria_opts so = {.token_file = token, .seed_file = seed, .sign = true};
    ch_security_choria_opts vo = {
        .verify = true, .issuer_names = names, .issuer_keys = keys, .n_issuers = 1};
    if (ch_security_choria_new(&so, signer, &err) != CH_OK ||
        ch_security_choria_new(&vo, verifier, &err) != CH_OK)
        die("choria provider", &err);
    unlink(token);
    unlink(seed);
    rmdir(dir);
}

static double best(const double v[3])
{
    double b = v[0];
    for (int r = 1; r < 3; r++)
        b = v[r] < b ? v[r] : b;
    return b;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    if (n < 1 || n > 1000000) {
        fprintf(stderr, "usage: bench_security [ROUNDS] (1..1000000, default 2000)\n");
        return 2;
    }
    const char *data = getenv("CH_SOURCE_DIR");
    if (data == NULL || data[0] == '\0')
        data = CH_BENCH_SOURCE_DIR;
    char cert[512], key[512], ca[512];
    snprintf(cert, sizeof(cert), "%s/tests/data/security/rip.pem", data);
    snprintf(key, sizeof(key), "%s/tests/data/security/rip.key", data);
    snprintf(ca, sizeof(ca), "%s/tests/data/security/ca.pem", data);
    ch_security *signer = NULL, *verifier = NULL;
    ch_error err;
    ch_security_x509_opts so = {.cert_file = cert, .key_file = key, .sign = true};
    ch_security_x509_opts vo = {.ca_file = ca, .verify = true};
    if (ch_security_x509_new(&so, &signer, &err) != CH_OK ||
        ch_security_x509_new(&vo, &verifier, &err) != CH_OK)
        die("the fixture PKI (CH_SOURCE_DIR/tests/data/security)", &err);
    char dir[] = "/tmp/bench-security-XXXXXX";
    ch_security *csigner = NULL, *cverifier = NULL;
    if (mkdtemp(dir) == NULL)
        die("mkdtemp", NULL);
    choria_pair(dir, &csigner, &cverifier);
    double ib[3], id[3], xb[3], xd[3], cb[3], cd[3];
    for (int r = 0; r < 3; r++) { /* alternate, so all see the same machine */
        measure(ch_protocol_v1(), ch_security_insecure(), ch_security_insecure(), n, &ib[r],
                &id[r]);
        measure(ch_protocol_v1(), signer, verifier, n, &xb[r], &xd[r]);
        measure(ch_protocol_v2(), csigner, cverifier, n, &cb[r], &cd[r]);
        printf("round %d: insecure build %.1f us, decode %.1f us; x509 sign %.1f us, verify "
               "%.1f us; choria sign %.1f us, verify %.1f us\n",
               r + 1, ib[r], id[r], xb[r], xd[r], cb[r], cd[r]);
    }
    printf("\n| figure (best of 3 × %d) | insecure (v1) | x509 (RSA-2048, v1) | ratio | choria "
           "(ed25519, v2) | ratio |\n|---|---|---|---|---|---|\n",
           n);
    printf("| build a request payload (client) | %.1f us | %.1f us | %.0f | %.1f us | %.0f |\n",
           best(ib), best(xb), best(xb) / best(ib), best(cb), best(cb) / best(ib));
    printf("| decode it, verifying (server) | %.1f us | %.1f us | %.0f | %.1f us | %.0f |\n",
           best(id), best(xd), best(xd) / best(id), best(cd), best(cd) / best(id));
    ch_security_free(signer);
    ch_security_free(verifier);
    ch_security_free(csigner);
    ch_security_free(cverifier);
    return 0;
}
