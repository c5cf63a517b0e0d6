/* The x509 security provider against the project's security specification: the worked
 * example of section 2.6 byte for byte (Appendix A's PKI in tests/data/security), and the
 * Suite V matrix (section 6.3) at unit level with the T1 PKI, which the group setup makes
 * once with tests/data/security/mk-pki.sh in a temporary directory. Signatures the tests
 * need from a key other than the provider's own are made with OpenSSL directly. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "choria/process.h"
#include "choria/protocol.h"
#include "choria/security.h"
#include "choria/security_x509.h"
#include "choria/util.h"
#include "harness.h"

#define DATA CH_TEST_DATA "/security/"

/* ---- section 2.6 ---- */

/* The 372 signed bytes, SHA-256 542b844a...ab888. */
static const char GOLDEN_MESSAGE[] =
    "{\"protocol\":\"choria:request:1\",\"message\":\"{\\\"agent\\\":\\\"rpcutil\\\","
    "\\\"action\\\":"
    "\\\"ping\\\",\\\"data\\\":{}}\",\"envelope\":{\"requestid\":\"0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    "\",\"senderid\":\"admin.example.net\",\"callerid\":\"choria=rip.mcollective\",\"collective\":"
    "\"mcollective\",\"agent\":\"rpcutil\",\"ttl\":60,\"time\":1750000000,\"filter\":{\"fact\":[],"
    "\"cf_class\":[],\"agent\":[],\"identity\":[],\"compound\":[]}}}";

static const char GOLDEN_SIGNATURE[] =
    "srSwI24HeGQ/XRLCarekR+1kfnJVyOjM4WWG3zt13pq3DCq+xJxyqO0DN/S4P2/vrn3gf1ML2sg7ygQPebjgPJPHOKw"
    "BMYcNE2cQT7ondUhsbyDeyKug6Df39wYOAIW5I3xZy1Tp7HgOqe4HQcw+FXSk8si3Eq1tQbyhxHGjG6SiNmSizlYdoF3"
    "UX3pcOECY70OlRis4LAROD467ox9LTmQL31fcnLK4JLv6ALH48uBkX7ZOHVYHtrfn87qb+SJd+ixVWUA+4dIyqyAUyiO"
    "3WyYsp4KWbnyQBOKqikTv0AdLa1sk0pDF7dvb7iPpB9Z+OI2aoUFjn7e+KwoJ3vy72A==";

#define GOLDEN_CALLER "choria=rip.mcollective"
#define APPENDIX_A_START 1735689600 /* 2025-01-01T00:00:00Z */
#define APPENDIX_A_END 4891363200   /* 2125-01-01T00:00:00Z */

static const char SIG_FAILED[] =
    "signature in request did not pass validation with embedded public certificate";

/* ---- fixtures ---- */

static char pki[128]; /* the T1 PKI, made by group_setup */
static int64_t fixed_now;

static int64_t fixed_clock(void)
{
    return fixed_now;
}

static int group_setup(void **state)
{
    ch_error err = {0};
    if (cht_temp_dir("x509", pki, sizeof(pki), &err) != CH_OK) {
        fprintf(stderr, "group setup: %s\n", err.msg);
        return -1;
    }
    char *const argv[] = {"/bin/sh", DATA "mk-pki.sh", pki, NULL};
    ch_process_run_opts o = {.timeout_ms = 120000};
    ch_process_result res;
    ch_status st = ch_process_run(argv, NULL, 0, &o, &res, &err);
    if (st != CH_OK || res.exit_code != 0)
        fprintf(stderr, "mk-pki.sh failed: %s %s\n", err.msg, res.errout ? res.errout : "");
    st = st == CH_OK && res.exit_code != 0 ? CH_ERR_IO : st;
    ch_process_result_clear(&res);
    return st == CH_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    return cht_temp_dir_remove(pki, NULL) == CH_OK ? 0 : -1;
}

/* Path of a T1 file; a ring of buffers so that a call may use several at once. */
static const char *pk(const char *name)
{
    static char ring[8][256];
    static int next;
    char *p = ring[next++ % 8];
    snprintf(p, sizeof(ring[0]), "%s/%s", pki, name);
    return p;
}

static char *slurp(const char *path)
{
    char *text = NULL;
    ch_error err;
    CHT_CHECK(ch_read_file(path, 1024 * 1024, &text, NULL, &err), &err);
    return text;
}

static ch_security *verifier_with(const char *ca, const char *const *allowed, size_t n_allowed,
                                  const char *const *privileged, size_t n_privileged)
{
    ch_security_x509_opts o = {.ca_file = ca,
                               .allowed = allowed,
                               .n_allowed = n_allowed,
                               .privileged = privileged,
                               .n_privileged = n_privileged,
                               .verify = true};
    ch_security *sec = NULL;
    ch_error err;
    CHT_CHECK(ch_security_x509_new(&o, &sec, &err), &err);
    assert_string_equal(ch_security_name(sec), "x509");
    return sec;
}

static ch_security *verifier(void)
{
    return verifier_with(pk("ca.pem"), NULL, 0, NULL, 0);
}

static ch_security *signer(const char *cert, const char *key)
{
    ch_security_x509_opts o = {.cert_file = cert, .key_file = key, .sign = true};
    ch_security *sec = NULL;
    ch_error err;
    CHT_CHECK(ch_security_x509_new(&o, &sec, &err), &err);
    return sec;
}

/* A Request text as a client sends it, through the protocol's own encoder. */
static char *request_text(const char *callerid, int64_t time)
{
    ch_request r = {.message = "{\"agent\":\"rpcutil\",\"action\":\"ping\",\"data\":{}}",
                    .envelope = {.requestid = "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                                 .senderid = "admin.example.net",
                                 .callerid = callerid,
                                 .collective = "mcollective",
                                 .agent = "rpcutil",
                                 .ttl = 60,
                                 .time = time}};
    char *out = NULL;
    ch_error err;
    CHT_CHECK(ch_protocol_request_encode(&r, &out, NULL, &err), &err);
    return out;
}

/* base64(SHA-256 signature of msg) with the key in key_path, RSA or not, by OpenSSL alone. */
static char *sign_raw(const char *key_path, const char *msg)
{
    char *pem = slurp(key_path);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    assert_non_null(key);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    BIO_free(bio);
    free(pem);
    return ch_base64_encode(sig, sig_len);
}

/* One request of the matrix: the certificate file sent as pubcert, the key that signs, the
 * callerid in both the message and the verify call. */
typedef struct {
    char *message;
    char *signature;
    char *pubcert;
    const char *callerid;
} request;

static request make_request(const char *cert, const char *key, const char *callerid)
{
    request r = {.message = request_text(callerid, ch_now_unix()), .callerid = callerid};
    r.signature = sign_raw(pk(key), r.message);
    r.pubcert = slurp(pk(cert));
    return r;
}

static void request_clear(request *r)
{
    free(r->message);
    free(r->signature);
    free(r->pubcert);
}

static ch_status verify(const ch_security *sec, const request *r, ch_error *err)
{
    return ch_security_verify(sec, r->message, strlen(r->message), r->signature, r->pubcert,
                              r->callerid, err);
}

static void accepted(const ch_security *sec, const request *r)
{
    ch_error err = {0};
    CHT_CHECK(verify(sec, r, &err), &err);
}

static void rejected(const ch_security *sec, const request *r, const char *why)
{
    ch_error err = {0};
    assert_int_equal(verify(sec, r, &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, why);
}

/* The matrix with the default lists: make the request, expect why ("" = accepted). */
static void matrix_case(const char *cert, const char *key, const char *callerid, const char *why)
{
    ch_security *sec = verifier();
    request r = make_request(cert, key, callerid);
    if (why[0] == '\0')
        accepted(sec, &r);
    else
        rejected(sec, &r, why);
    request_clear(&r);
    ch_security_free(sec);
}

/* ---- golden: section 2.6 and 6.7 ---- */

static void signing_the_worked_example_gives_its_exact_signature(void **state)
{
    ch_security *sec = signer(DATA "rip.pem", DATA "rip.key");
    char *sig = NULL, *pubcert = NULL, *want_cert = slurp(DATA "rip.pem");
    ch_error err;
    assert_int_equal(strlen(GOLDEN_MESSAGE), 372);
    CHT_CHECK(ch_security_sign(sec, GOLDEN_MESSAGE, strlen(GOLDEN_MESSAGE), &sig, &pubcert, &err),
              &err);
    assert_string_equal(sig, GOLDEN_SIGNATURE);
    assert_string_equal(pubcert, want_cert);
    free(sig);
    free(pubcert);
    free(want_cert);
    ch_security_free(sec);
}

/* The protocol layer encodes the same 372 bytes from the worked example's inputs, and the
 * x509 signer puts the golden signature into the SecureRequest. */
static void request_payload_build_signs_the_worked_example(void **state)
{
    ch_security *sec = signer(DATA "rip.pem", DATA "rip.key");
    ch_request_params p = {.body = "{\"agent\":\"rpcutil\",\"action\":\"ping\",\"data\":{}}",
                           .agent = "rpcutil",
                           .collective = "mcollective",
                           .callerid = GOLDEN_CALLER,
                           .senderid = "admin.example.net",
                           .requestid = "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                           .ttl = 60,
                           .time = 1750000000};
    char *payload = NULL;
    size_t len = 0;
    ch_request_payload req;
    ch_error err;
    CHT_CHECK(ch_protocol_request_payload_build(&p, sec, &payload, &len, &err), &err);
    CHT_CHECK(ch_protocol_request_payload_decode(payload, len, NULL, &req, &err), &err);
    assert_string_equal(req.secure.message, GOLDEN_MESSAGE);
    assert_string_equal(req.secure.signature, GOLDEN_SIGNATURE);
    assert_string_equal(req.transport.headers.reply_to,
                        "mcollective.reply.37bdf08389145a56c13096c178802d3b."
                        "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    ch_protocol_request_payload_clear(&req);
    free(payload);
    ch_security_free(sec);
}

static ch_status verify_golden_at(const char *ca, int64_t now, ch_error *err)
{
    ch_security_x509_opts o = {.ca_file = ca, .verify = true, .now = fixed_clock};
    ch_security *sec = NULL;
    CHT_CHECK(ch_security_x509_new(&o, &sec, err), err);
    char *pubcert = slurp(DATA "rip.pem");
    fixed_now = now;
    ch_status st = ch_security_verify(sec, GOLDEN_MESSAGE, strlen(GOLDEN_MESSAGE), GOLDEN_SIGNATURE,
                                      pubcert, GOLDEN_CALLER, err);
    free(pubcert);
    ch_security_free(sec);
    return st;
}

static void worked_example_verifies_throughout_2025_to_2125(void **state)
{
    const int64_t times[] = {APPENDIX_A_START, 1750000000, 4000000000, APPENDIX_A_END - 1};
    ch_error err = {0};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
        CHT_CHECK(verify_golden_at(DATA "ca.pem", times[i], &err), &err);
}

static void worked_example_is_refused_outside_its_validity(void **state)
{
    ch_error err = {0};
    assert_int_equal(verify_golden_at(DATA "ca.pem", APPENDIX_A_START - 1, &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, "certificate chain: certificate is not yet valid");
    assert_int_equal(verify_golden_at(DATA "ca.pem", APPENDIX_A_END + 1, &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, "certificate chain: certificate has expired");
}

static void worked_example_is_refused_with_another_ca(void **state)
{
    ch_error err = {0};
    assert_int_equal(verify_golden_at(pk("otherca.pem"), 1750000000, &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, "certificate chain: unable to get local issuer certificate");
}

/* ---- Suite V (section 6.3) ---- */

static void v01_own_certificate_and_caller_is_accepted(void **state)
{
    matrix_case("rip.pem", "rip.key", "choria=rip.mcollective", "");
}

static void v02_privileged_certificate_may_claim_any_caller(void **state)
{
    matrix_case("admin.pem", "admin.key", "choria=bob.mcollective", "");
}

static void v03_certificate_of_another_caller_is_refused(void **state)
{
    matrix_case("rip.pem", "rip.key", "choria=bob.mcollective",
                "certificate is not for the caller bob.mcollective: it is valid for "
                "rip.mcollective");
}

static void v04_caller_outside_the_default_allow_list_is_refused(void **state)
{
    matrix_case("bob.pem", "bob.key", "choria=bob.example.net",
                "caller bob.example.net is not on the allow list");
}

static void v04_caller_on_a_configured_allow_list_is_accepted(void **state)
{
    const char *const allow[] = {"\\.example\\.net$"};
    ch_security *sec = verifier_with(pk("ca.pem"), allow, 1, NULL, 0);
    request r = make_request("bob.pem", "bob.key", "choria=bob.example.net");
    accepted(sec, &r);
    request_clear(&r);
    ch_security_free(sec);
}

static void v05_certificate_from_a_foreign_ca_is_refused(void **state)
{
    matrix_case("stranger.pem", "stranger.key", "choria=rip.mcollective",
                "certificate chain: unable to get local issuer certificate");
}

static void v06_expired_certificate_is_refused(void **state)
{
    matrix_case("expired.pem", "expired.key", "choria=rip.mcollective",
                "certificate chain: certificate has expired");
}

static void v07_server_only_certificate_is_refused(void **state)
{
    matrix_case("serveronly.pem", "serveronly.key", "choria=srv.mcollective",
                "certificate chain: certificate 0 specifies an incompatible key usage (no "
                "clientAuth)");
}

static void v08_ec_certificate_is_refused_without_crashing(void **state)
{
    matrix_case("ec.pem", "ec.key", "choria=ec.mcollective", "only RSA certificates are supported");
}

static void v09_message_changed_after_signing_is_refused(void **state)
{
    ch_security *sec = verifier();
    request r = make_request("rip.pem", "rip.key", "choria=rip.mcollective");
    char *p = strstr(r.message, "ping");
    assert_non_null(p);
    memcpy(p, "pong", 4);
    rejected(sec, &r, SIG_FAILED);
    request_clear(&r);
    ch_security_free(sec);
}

static void v10_signature_by_another_key_is_refused(void **state)
{
    matrix_case("rip.pem", "provisioner.key", "choria=rip.mcollective", SIG_FAILED);
}

static void v11_insecure_placeholders_are_refused(void **state)
{
    ch_security *sec = verifier();
    request r = make_request("rip.pem", "rip.key", "choria=rip.mcollective");
    char *sig = r.signature, *cert = r.pubcert;
    r.signature = r.pubcert = "insecure";
    rejected(sec, &r, "request is not signed (insecure)");
    r.pubcert = cert;
    rejected(sec, &r, "request is not signed (insecure)");
    r.signature = sig;
    r.pubcert = "insecure";
    rejected(sec, &r, "request is not signed (insecure)");
    r.pubcert = cert;
    request_clear(&r);
    ch_security_free(sec);
}

static void v12_callerid_without_prefix_is_refused(void **state)
{
    matrix_case("rip.pem", "rip.key", "rip.mcollective",
                "could not find a valid caller identity name in rip.mcollective");
}

static void v13_chain_through_a_bundled_intermediate_is_accepted(void **state)
{
    matrix_case("chained-bundle.pem", "chained.key", "choria=chained.mcollective", "");
}

static void v13_chain_missing_its_intermediate_is_refused(void **state)
{
    matrix_case("chained.pem", "chained.key", "choria=chained.mcollective",
                "certificate chain: unable to get local issuer certificate");
}

/* The signature is fine; the envelope's time is what the TTL check refuses. */
static void ttl_case(int64_t offset, const char *why)
{
    ch_security *sec = verifier();
    int64_t now = ch_now_unix();
    request r = make_request("rip.pem", "rip.key", "choria=rip.mcollective");
    free(r.message);
    free(r.signature);
    r.message = request_text(r.callerid, now + offset);
    r.signature = sign_raw(pk("rip.key"), r.message);
    accepted(sec, &r);
    ch_request req;
    ch_error err;
    CHT_CHECK(ch_protocol_request_decode(r.message, strlen(r.message), &req, &err), &err);
    assert_int_equal(ch_protocol_ttl_check(&req.envelope, now, &err), CH_ERR_EXPIRED);
    assert_non_null(strstr(err.msg, why));
    ch_protocol_request_clear(&req);
    request_clear(&r);
    ch_security_free(sec);
}

static void v14_signed_request_older_than_its_ttl_is_dropped(void **state)
{
    ttl_case(-120, "is too old");
}

static void v14_signed_request_from_the_future_is_dropped(void **state)
{
    ttl_case(120, "is too far in the future");
}

static void v15_signature_without_padding_is_refused(void **state)
{
    ch_security *sec = verifier();
    request r = make_request("rip.pem", "rip.key", "choria=rip.mcollective");
    size_t n = strlen(r.signature);
    assert_int_equal(r.signature[n - 1], '=');
    while (n > 0 && r.signature[n - 1] == '=')
        r.signature[--n] = '\0';
    rejected(sec, &r, "signature is not valid base64");
    request_clear(&r);
    ch_security_free(sec);
}

static void v16_signature_with_line_breaks_is_accepted(void **state)
{
    ch_security *sec = verifier();
    request r = make_request("rip.pem", "rip.key", "choria=rip.mcollective");
    size_t n = strlen(r.signature);
    char *wrapped = calloc(n + n / 64 + 1, 1);
    for (size_t i = 0, o = 0; i < n; i++) {
        wrapped[o++] = r.signature[i];
        if (i % 64 == 63)
            wrapped[o++] = '\n';
    }
    free(r.signature);
    r.signature = wrapped;
    accepted(sec, &r);
    request_clear(&r);
    ch_security_free(sec);
}

/* Upstream accepts V17's stranger (the chain check is skipped); we refuse to start. */
static void v17_empty_ca_file_refuses_creation(void **state)
{
    char path[256];
    ch_error err;
    snprintf(path, sizeof(path), "%s/empty-ca.pem", pki);
    CHT_CHECK(cht_write_file(path, &err, "%s", ""), &err);
    ch_security_x509_opts o = {.ca_file = path, .verify = true};
    ch_security *sec = (ch_security *)1;
    assert_int_equal(ch_security_x509_new(&o, &sec, &err), CH_ERR_INVALID);
    assert_null(sec);
    char want[512];
    snprintf(want, sizeof(want), "CA file %s holds no certificates", path);
    assert_string_equal(err.msg, want);
    CHT_CHECK(cht_write_file(path, &err, "not a certificate\n"), &err);
    assert_int_equal(ch_security_x509_new(&o, &sec, &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, want);
}

static void v18_custom_privileged_list_replaces_the_default(void **state)
{
    const char *const privileged[] = {"\\.super\\.mcollective$"};
    ch_security *sec = verifier_with(pk("ca.pem"), NULL, 0, privileged, 1);
    request r = make_request("admin.pem", "admin.key", "choria=bob.mcollective");
    rejected(sec, &r,
             "certificate is not for the caller bob.mcollective: it is valid for "
             "admin.privileged.mcollective");
    request_clear(&r);
    ch_security_free(sec);
}

static void privileged_certificate_still_needs_a_trusted_chain(void **state)
{
    const char *const privileged[] = {"^rip\\.mcollective$"};
    ch_security *sec = verifier_with(pk("ca.pem"), NULL, 0, privileged, 1);
    request r = make_request("stranger.pem", "stranger.key", "choria=bob.mcollective");
    rejected(sec, &r, "certificate chain: unable to get local issuer certificate");
    request_clear(&r);
    ch_security_free(sec);
}

/* ---- callers and patterns ---- */

static void callerid_text_after_the_certname_is_ignored(void **state)
{
    matrix_case("rip.pem", "rip.key", "choria=rip.mcollective@elsewhere", "");
}

static void callerid_prefix_must_be_lower_case(void **state)
{
    matrix_case("rip.pem", "rip.key", "Choria=rip.mcollective",
                "could not find a valid caller identity name in Choria=rip.mcollective");
}

/* Refusals reach the log: a caller's control bytes must not forge log lines. */
static void refusals_quote_callers_without_control_bytes(void **state)
{
    matrix_case("rip.pem", "rip.key", "choria\n=rip.mcollective",
                "could not find a valid caller identity name in choria?=rip.mcollective");
}

static void certname_must_match_the_certificate_exactly(void **state)
{
    matrix_case("rip.pem", "rip.key", "choria=RIP.mcollective",
                "certificate is not for the caller RIP.mcollective: it is valid for "
                "rip.mcollective");
}

static void slashed_patterns_lose_their_slashes_and_invalid_ones_never_match(void **state)
{
    const char *const broken[] = {"(", "\\.example\\.com$"};
    const char *const slashed[] = {"/\\.example\\.net$/"};
    request r = make_request("bob.pem", "bob.key", "choria=bob.example.net");
    ch_security *sec = verifier_with(pk("ca.pem"), broken, 2, NULL, 0);
    rejected(sec, &r, "caller bob.example.net is not on the allow list");
    ch_security_free(sec);
    sec = verifier_with(pk("ca.pem"), slashed, 1, NULL, 0);
    accepted(sec, &r);
    ch_security_free(sec);
    request_clear(&r);
}

static void empty_allow_list_admits_only_privileged_callers(void **state)
{
    const char *const none[] = {NULL};
    ch_security *sec = verifier_with(pk("ca.pem"), none, 0, NULL, 0);
    request r = make_request("rip.pem", "rip.key", "choria=rip.mcollective");
    rejected(sec, &r, "caller rip.mcollective is not on the allow list");
    request_clear(&r);
    r = make_request("admin.pem", "admin.key", "choria=rip.mcollective");
    accepted(sec, &r);
    request_clear(&r);
    ch_security_free(sec);
}

/* ---- malformed pubcert and signatures ---- */

static void pubcert_problems_are_refused(void **state)
{
    ch_security *sec = verifier();
    request r = make_request("rip.pem", "rip.key", "choria=rip.mcollective");
    char *cert = r.pubcert, *key = slurp(pk("rip.key"));
    char broken[4096];
    r.pubcert = "hello";
    rejected(sec, &r, "pubcert holds no certificate");
    snprintf(broken, sizeof(broken), "%.40s!!!!%s", cert, cert + 44);
    r.pubcert = broken;
    rejected(sec, &r, "pubcert: PEM block 1 is malformed");
    snprintf(broken, sizeof(broken),
             "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n");
    rejected(sec, &r, "pubcert: PEM block 1 is not a valid certificate");
    snprintf(broken, sizeof(broken), "%s%s", cert, key);
    rejected(sec, &r, "pubcert: PEM block 2 is not a certificate");
    r.pubcert = cert;
    free(key);
    request_clear(&r);
    ch_security_free(sec);
}

static void oversized_inputs_are_refused(void **state)
{
    ch_security *sec = verifier();
    request r = make_request("rip.pem", "rip.key", "choria=rip.mcollective");
    size_t cert_len = strlen(r.pubcert);
    char *big = calloc(CH_SECURITY_X509_MAX_PUBCERT + 2, 1), *cert = r.pubcert;
    for (size_t n = 0; n + cert_len <= CH_SECURITY_X509_MAX_PUBCERT; n += cert_len)
        memcpy(big + n, cert, cert_len);
    memset(big + strlen(big), '\n', CH_SECURITY_X509_MAX_PUBCERT + 1 - strlen(big));
    r.pubcert = big;
    rejected(sec, &r, "pubcert is larger than 65536 bytes");
    big[11 * cert_len] = '\0';
    rejected(sec, &r, "pubcert: more than 10 certificates");
    big[10 * cert_len] = '\0';
    accepted(sec, &r);
    r.pubcert = cert;
    free(r.signature);
    r.signature = calloc(CH_SECURITY_X509_MAX_SIGNATURE + 2, 1);
    memset(r.signature, 'A', CH_SECURITY_X509_MAX_SIGNATURE + 1);
    rejected(sec, &r, "signature is larger than 4096 bytes");
    free(big);
    request_clear(&r);
    ch_security_free(sec);
}

static void truncated_signature_is_refused(void **state)
{
    ch_security *sec = verifier();
    request r = make_request("rip.pem", "rip.key", "choria=rip.mcollective");
    memcpy(r.signature + strlen(r.signature) - 8, "AAAA", 5);
    rejected(sec, &r, SIG_FAILED);
    request_clear(&r);
    ch_security_free(sec);
}

/* ---- creation ---- */

static void creation_error(const ch_security_x509_opts *o, ch_status want, const char *why)
{
    ch_security *sec = NULL;
    ch_error err = {0};
    assert_int_equal(ch_security_x509_new(o, &sec, &err), want);
    assert_null(sec);
    assert_string_equal(err.msg, why);
}

static void non_rsa_signing_key_is_refused_at_creation(void **state)
{
    ch_security_x509_opts o = {.cert_file = pk("ec.pem"), .key_file = pk("ec.key"), .sign = true};
    char want[512];
    snprintf(want, sizeof(want), "key file %s is not an RSA key: upstream signs with RSA only",
             pk("ec.key"));
    creation_error(&o, CH_ERR_INVALID, want);
}

static void missing_files_are_named(void **state)
{
    char want[512];
    ch_security_x509_opts o = {
        .cert_file = pk("rip.pem"), .key_file = pk("nope.key"), .sign = true};
    snprintf(want, sizeof(want), "cannot open %s: No such file or directory", pk("nope.key"));
    creation_error(&o, CH_ERR_NOT_FOUND, want);
    o.key_file = pk("rip.key");
    o.cert_file = pk("nope.pem");
    snprintf(want, sizeof(want), "cannot open %s: No such file or directory", pk("nope.pem"));
    creation_error(&o, CH_ERR_NOT_FOUND, want);
    ch_security_x509_opts v = {.ca_file = pk("nope-ca.pem"), .verify = true};
    snprintf(want, sizeof(want), "cannot open %s: No such file or directory", pk("nope-ca.pem"));
    creation_error(&v, CH_ERR_NOT_FOUND, want);
}

static void incomplete_options_are_refused(void **state)
{
    ch_security_x509_opts none = {0}, sign = {.cert_file = pk("rip.pem"), .sign = true},
                          verify = {.verify = true};
    creation_error(NULL, CH_ERR_INVALID, "x509 security: nothing to do (neither sign nor verify)");
    creation_error(&none, CH_ERR_INVALID, "x509 security: nothing to do (neither sign nor verify)");
    creation_error(&sign, CH_ERR_INVALID,
                   "x509 security: signing needs a certificate and a key file");
    creation_error(&verify, CH_ERR_INVALID, "x509 security: verifying needs a CA file");
}

static void certificate_of_another_key_is_refused_at_creation(void **state)
{
    ch_security_x509_opts o = {.cert_file = pk("rip.pem"), .key_file = pk("bob.key"), .sign = true};
    char want[512];
    snprintf(want, sizeof(want), "certificate file %s does not match its key", pk("rip.pem"));
    creation_error(&o, CH_ERR_INVALID, want);
}

/* The key's bytes must never reach a message, whatever is wrong with it. */
static void key_file_contents_never_appear_in_errors(void **state)
{
    char path[256];
    ch_error err;
    snprintf(path, sizeof(path), "%s/garbled.key", pki);
    CHT_CHECK(cht_write_file(path, &err,
                             "-----BEGIN RSA PRIVATE KEY-----\nU2VjcmV0U2VjcmV0\n"
                             "-----END RSA PRIVATE KEY-----\n"),
              &err);
    ch_security_x509_opts o = {.cert_file = pk("rip.pem"), .key_file = path, .sign = true};
    char want[512];
    snprintf(want, sizeof(want), "key file %s holds no unencrypted PKCS#1 or PKCS#8 private key",
             path);
    creation_error(&o, CH_ERR_INVALID, want);
}

static void each_role_refuses_the_other_operation(void **state)
{
    ch_security *sign = signer(pk("rip.pem"), pk("rip.key")), *ver = verifier();
    char *sig = NULL, *cert = NULL;
    ch_error err;
    assert_int_equal(ch_security_sign(ver, "x", 1, &sig, &cert, &err), CH_ERR_UNSUPPORTED);
    assert_string_equal(err.msg, "x509 provider made without a key cannot sign");
    assert_null(sig);
    request r = make_request("rip.pem", "rip.key", "choria=rip.mcollective");
    assert_int_equal(verify(sign, &r, &err), CH_ERR_UNSUPPORTED);
    assert_string_equal(err.msg, "x509 provider made without a CA file cannot verify");
    request_clear(&r);
    ch_security_free(sign);
    ch_security_free(ver);
}

/* mk-pki.sh writes PKCS#8 keys, Appendix A a PKCS#1 key; signatures are deterministic. */
static void pkcs8_key_signs_as_openssl_does(void **state)
{
    ch_security *sec = signer(pk("rip.pem"), pk("rip.key"));
    char *msg = request_text(GOLDEN_CALLER, 1750000000), *sig = NULL, *cert = NULL;
    char *want = sign_raw(pk("rip.key"), msg);
    ch_error err;
    CHT_CHECK(ch_security_sign(sec, msg, strlen(msg), &sig, &cert, &err), &err);
    assert_string_equal(sig, want);
    free(msg);
    free(sig);
    free(cert);
    free(want);
    ch_security_free(sec);
}

/* ---- through the protocol layer ---- */

static ch_request_params e2e_params(void)
{
    return (ch_request_params){.body = "{\"agent\":\"rpcutil\",\"action\":\"ping\",\"data\":{}}",
                               .agent = "rpcutil",
                               .collective = "mcollective",
                               .callerid = "choria=rip.mcollective",
                               .senderid = "rip.mcollective",
                               .requestid = "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                               .ttl = 60,
                               .time = ch_now_unix()};
}

static void signed_payload_round_trips_through_the_protocol_layer(void **state)
{
    ch_security *sign = signer(pk("rip.pem"), pk("rip.key")), *ver = verifier();
    ch_request_params p = e2e_params();
    char *payload = NULL;
    size_t len = 0;
    ch_request_payload req;
    ch_error err;
    CHT_CHECK(ch_protocol_request_payload_build(&p, sign, &payload, &len, &err), &err);
    CHT_CHECK(ch_protocol_request_payload_decode(payload, len, ver, &req, &err), &err);
    assert_string_equal(req.request.envelope.callerid, "choria=rip.mcollective");
    assert_string_equal(req.request.message, p.body);
    ch_protocol_request_payload_clear(&req);
    free(payload);
    ch_security_free(sign);
    ch_security_free(ver);
}

/* payload's signature and certificate over a Request with another body, through the honest
 * encoders. malloc'd. */
static char *forge(const char *payload, size_t len, const char *body, size_t *out_len)
{
    ch_request_payload req;
    ch_error err;
    char *text = NULL, *secure = NULL, *forged = NULL;
    size_t secure_len = 0;
    CHT_CHECK(ch_protocol_request_payload_decode(payload, len, NULL, &req, &err), &err);
    ch_request r = {.message = body, .envelope = req.request.envelope};
    CHT_CHECK(ch_protocol_request_encode(&r, &text, NULL, &err), &err);
    ch_secure_request sr = {
        .message = text, .signature = req.secure.signature, .pubcert = req.secure.pubcert};
    CHT_CHECK(ch_protocol_secure_request_encode(&sr, &secure, &secure_len, &err), &err);
    ch_transport t = {.data = (const unsigned char *)secure,
                      .data_len = secure_len,
                      .headers = req.transport.headers};
    CHT_CHECK(ch_protocol_transport_encode(&t, &forged, out_len, &err), &err);
    ch_protocol_request_payload_clear(&req);
    free(text);
    free(secure);
    return forged;
}

static void payload_with_a_changed_body_is_refused_by_the_protocol_layer(void **state)
{
    ch_security *sign = signer(pk("rip.pem"), pk("rip.key")), *ver = verifier();
    ch_request_params p = e2e_params();
    char *payload = NULL;
    size_t len = 0, forged_len = 0;
    ch_error err;
    CHT_CHECK(ch_protocol_request_payload_build(&p, sign, &payload, &len, &err), &err);
    char *forged = forge(
        payload, len, "{\"agent\":\"rpcutil\",\"action\":\"inventory\",\"data\":{}}", &forged_len);
    ch_request_payload bad;
    assert_int_equal(ch_protocol_request_payload_decode(forged, forged_len, ver, &bad, &err),
                     CH_ERR_INVALID);
    assert_string_equal(err.msg, "secure request: signature in request did not pass validation "
                                 "with embedded public certificate");
    free(forged);
    free(payload);
    ch_security_free(sign);
    ch_security_free(ver);
}

/* ---- threads ---- */

#define THREADS 8
#define ROUNDS 20

typedef struct {
    const ch_security *sign, *ver;
    const request *good, *foreign_caller, *tampered;
    int failures;
} thread_job;

static void *hammer(void *arg)
{
    thread_job *j = arg;
    for (int i = 0; i < ROUNDS; i++) {
        ch_error err;
        char *sig = NULL, *cert = NULL;
        j->failures += verify(j->ver, j->good, &err) != CH_OK;
        j->failures += verify(j->ver, j->foreign_caller, &err) != CH_ERR_INVALID ||
                       strncmp(err.msg, "certificate is not for the caller", 33) != 0;
        j->failures +=
            verify(j->ver, j->tampered, &err) != CH_ERR_INVALID || strcmp(err.msg, SIG_FAILED) != 0;
        j->failures += ch_security_sign(j->sign, j->good->message, strlen(j->good->message), &sig,
                                        &cert, &err) != CH_OK ||
                       strcmp(sig, j->good->signature) != 0;
        free(sig);
        free(cert);
    }
    return NULL;
}

static void concurrent_sign_and_verify_give_the_same_answers(void **state)
{
    ch_security *sign = signer(pk("rip.pem"), pk("rip.key")), *ver = verifier();
    request good = make_request("rip.pem", "rip.key", "choria=rip.mcollective");
    request other = make_request("rip.pem", "rip.key", "choria=bob.mcollective");
    request tampered = make_request("rip.pem", "rip.key", "choria=rip.mcollective");
    memcpy(strstr(tampered.message, "ping"), "pong", 4);
    pthread_t th[THREADS];
    thread_job jobs[THREADS];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (thread_job){sign, ver, &good, &other, &tampered, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(jobs[i].failures, 0);
    }
    request_clear(&good);
    request_clear(&other);
    request_clear(&tampered);
    ch_security_free(sign);
    ch_security_free(ver);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(signing_the_worked_example_gives_its_exact_signature),
        cmocka_unit_test(request_payload_build_signs_the_worked_example),
        cmocka_unit_test(worked_example_verifies_throughout_2025_to_2125),
        cmocka_unit_test(worked_example_is_refused_outside_its_validity),
        cmocka_unit_test(worked_example_is_refused_with_another_ca),
        cmocka_unit_test(v01_own_certificate_and_caller_is_accepted),
        cmocka_unit_test(v02_privileged_certificate_may_claim_any_caller),
        cmocka_unit_test(v03_certificate_of_another_caller_is_refused),
        cmocka_unit_test(v04_caller_outside_the_default_allow_list_is_refused),
        cmocka_unit_test(v04_caller_on_a_configured_allow_list_is_accepted),
        cmocka_unit_test(v05_certificate_from_a_foreign_ca_is_refused),
        cmocka_unit_test(v06_expired_certificate_is_refused),
        cmocka_unit_test(v07_server_only_certificate_is_refused),
        cmocka_unit_test(v08_ec_certificate_is_refused_without_crashing),
        cmocka_unit_test(v09_message_changed_after_signing_is_refused),
        cmocka_unit_test(v10_signature_by_another_key_is_refused),
        cmocka_unit_test(v11_insecure_placeholders_are_refused),
        cmocka_unit_test(v12_callerid_without_prefix_is_refused),
        cmocka_unit_test(v13_chain_through_a_bundled_intermediate_is_accepted),
        cmocka_unit_test(v13_chain_missing_its_intermediate_is_refused),
        cmocka_unit_test(v14_signed_request_older_than_its_ttl_is_dropped),
        cmocka_unit_test(v14_signed_request_from_the_future_is_dropped),
        cmocka_unit_test(v15_signature_without_padding_is_refused),
        cmocka_unit_test(v16_signature_with_line_breaks_is_accepted),
        cmocka_unit_test(v17_empty_ca_file_refuses_creation),
        cmocka_unit_test(v18_custom_privileged_list_replaces_the_default),
        cmocka_unit_test(privileged_certificate_still_needs_a_trusted_chain),
        cmocka_unit_test(callerid_text_after_the_certname_is_ignored),
        cmocka_unit_test(callerid_prefix_must_be_lower_case),
        cmocka_unit_test(refusals_quote_callers_without_control_bytes),
        cmocka_unit_test(certname_must_match_the_certificate_exactly),
        cmocka_unit_test(slashed_patterns_lose_their_slashes_and_invalid_ones_never_match),
        cmocka_unit_test(empty_allow_list_admits_only_privileged_callers),
        cmocka_unit_test(pubcert_problems_are_refused),
        cmocka_unit_test(oversized_inputs_are_refused),
        cmocka_unit_test(truncated_signature_is_refused),
        cmocka_unit_test(non_rsa_signing_key_is_refused_at_creation),
        cmocka_unit_test(missing_files_are_named),
        cmocka_unit_test(incomplete_options_are_refused),
        cmocka_unit_test(certificate_of_another_key_is_refused_at_creation),
        cmocka_unit_test(key_file_contents_never_appear_in_errors),
        cmocka_unit_test(each_role_refuses_the_other_operation),
        cmocka_unit_test(pkcs8_key_signs_as_openssl_does),
        cmocka_unit_test(signed_payload_round_trips_through_the_protocol_layer),
        cmocka_unit_test(payload_with_a_changed_body_is_refused_by_the_protocol_layer),
        cmocka_unit_test(concurrent_sign_and_verify_give_the_same_answers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
