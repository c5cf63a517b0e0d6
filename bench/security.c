/* What x509 request security costs per request (issue #11): building a request payload signed
 * by the x509 provider and decoding it with verification, next to the same with the insecure
 * provider, same run. The fixture PKI of tests/data/security (valid until 2125) is used. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "choria/protocol.h"
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
static void measure(const ch_security *signer, const ch_security *verifier, int n, double *build_us,
                    double *decode_us)
{
    ch_request_params p = PARAMS;
    p.time = ch_now_unix();
    ch_error err;
    char *payload = NULL;
    size_t len = 0;
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        free(payload);
        if (ch_protocol_request_payload_build(&p, signer, &payload, &len, &err) != CH_OK)
            die("build", &err);
    }
    double t1 = now_us();
    for (int i = 0; i < n; i++) {
        ch_request_payload out;
        if (ch_protocol_request_payload_decode(payload, len, verifier, &out, &err) != CH_OK)
            die("decode", &err);
        ch_protocol_request_payload_clear(&out);
    }
    double t2 = now_us();
    free(payload);
    *build_us = (t1 - t0) / n;
    *decode_us = (t2 - t1) / n;
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
    double ib[3], id[3], xb[3], xd[3];
    for (int r = 0; r < 3; r++) { /* alternate, so both see the same machine */
        measure(ch_security_insecure(), ch_security_insecure(), n, &ib[r], &id[r]);
        measure(signer, verifier, n, &xb[r], &xd[r]);
        printf("round %d: insecure build %.1f us, decode %.1f us; x509 sign %.1f us, verify "
               "%.1f us\n",
               r + 1, ib[r], id[r], xb[r], xd[r]);
    }
    double best_ib = ib[0], best_id = id[0], best_xb = xb[0], best_xd = xd[0];
    for (int r = 1; r < 3; r++) {
        best_ib = ib[r] < best_ib ? ib[r] : best_ib;
        best_id = id[r] < best_id ? id[r] : best_id;
        best_xb = xb[r] < best_xb ? xb[r] : best_xb;
        best_xd = xd[r] < best_xd ? xd[r] : best_xd;
    }
    printf(
        "\n| figure (best of 3 × %d) | insecure | x509 (RSA-2048) | ratio |\n|---|---|---|---|\n",
        n);
    printf("| build a request payload (client) | %.1f us | %.1f us | %.0f |\n", best_ib, best_xb,
           best_xb / best_ib);
    printf("| decode it, verifying (server) | %.1f us | %.1f us | %.0f |\n", best_id, best_xd,
           best_xd / best_id);
    ch_security_free(signer);
    ch_security_free(verifier);
    return 0;
}
