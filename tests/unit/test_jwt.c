/* JWTs: verification keys from every form jwt_verify_cert takes, provisioning JWT
 * verification (signature, time claims, chain rule) and signing round trips. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "choria/pki.h"
#include "choria/jwt.h"
#include "choria/util.h"
#include "harness.h"

#define NOW 2000000000

typedef struct {
    char dir[64];
    char *rsa_key;      /* private PEM */
    char rsa_pub[128];  /* PUBLIC KEY file */
    char rsa_cert[128]; /* self-signed certificate file */
    char ed_seed[65], ed_pub[65];
} fixture;

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void make_cert(EVP_PKEY *k, const char *path)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"signer", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_in_range(X509_sign(x, k, EVP_sha256()), 1, INT_MAX);
    FILE *fp = fopen(path, "w");
    PEM_write_X509(fp, x);
    fclose(fp);
    X509_free(x);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || cht_temp_dir("provverify", f->dir, sizeof(f->dir), NULL) != CH_OK)
        return -1;
    EVP_PKEY *k = EVP_RSA_gen(2048);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    char *data = NULL;
    long len = BIO_get_mem_data(b, &data);
    f->rsa_key = strndup(data, (size_t)len);
    BIO_free(b);
    snprintf(f->rsa_pub, sizeof(f->rsa_pub), "%s/pub.pem", f->dir);
    FILE *fp = fopen(f->rsa_pub, "w");
    PEM_write_PUBKEY(fp, k);
    fclose(fp);
    snprintf(f->rsa_cert, sizeof(f->rsa_cert), "%s/cert.pem", f->dir);
    make_cert(k, f->rsa_cert);
    EVP_PKEY_free(k);
    unsigned char seed[32], pub[32];
    if (ch_pki_ed25519_keypair(seed, pub, NULL) != CH_OK)
        return -1;
    ch_hex_encode(seed, 32, f->ed_seed);
    ch_hex_encode(pub, 32, f->ed_pub);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int rc = cht_temp_dir_remove(f->dir, NULL) == CH_OK ? 0 : -1;
    free(f->rsa_key);
    free(f);
    return rc;
}

static json_t *claims(int64_t exp)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "cht", "s3cret", "chu", "127.0.0.1:4222",
                     "purpose", "choria_provisioning", "iss", "test", "iat", (json_int_t)NOW - 10,
                     "exp", (json_int_t)exp);
}

static char *sign(const char *alg, const char *key, json_t *c)
{
    char *jwt = NULL;
    ch_error err;
    if (ch_jwt_sign(alg, key, c, &jwt, &err) != CH_OK)
        fail_msg("sign %s: %s", alg, err.msg);
    json_decref(c);
    return jwt;
}

static ch_jwt_key *load(const char *value)
{
    ch_jwt_key *k = NULL;
    ch_error err;
    if (ch_jwt_key_load(value, &k, &err) != CH_OK)
        fail_msg("load %s: %s", value, err.msg);
    return k;
}

static ch_status verify(const ch_jwt_key *k, const char *jwt, ch_error *err)
{
    ch_provjwt *c = NULL;
    json_t *j = NULL;
    ch_status st = ch_jwt_verify_provisioning(k, jwt, strlen(jwt), NOW, &c, &j, err);
    if (st == CH_OK) {
        assert_string_equal(c->token, "s3cret");
        assert_string_equal(json_string_value(json_object_get(j, "cht")), "s3cret");
    } else {
        assert_null(c);
        assert_null(j);
    }
    ch_provjwt_free(c);
    json_decref(j);
    return st;
}

static void rsa_algorithms_round_trip_with_a_public_key_or_certificate(void **state)
{
    fixture *f = *state;
    ch_jwt_key *pub = load(f->rsa_pub), *cert = load(f->rsa_cert);
    const char *algs[] = {"RS256", "RS384", "RS512"};
    ch_error err;
    for (int i = 0; i < 3; i++) {
        char *jwt = sign(algs[i], f->rsa_key, claims(NOW + 60));
        assert_int_equal(verify(pub, jwt, &err), CH_OK);
        assert_int_equal(verify(cert, jwt, &err), CH_OK);
        free(jwt);
    }
    ch_jwt_key_free(pub);
    ch_jwt_key_free(cert);
}

static void eddsa_round_trips_with_a_hex_key_string_or_file(void **state)
{
    fixture *f = *state;
    char path[128], text[80];
    snprintf(path, sizeof(path), "%s/ed.pub", f->dir);
    snprintf(text, sizeof(text), "%s\n", f->ed_pub);
    write_text(path, text);
    ch_jwt_key *s = load(f->ed_pub), *file = load(path);
    char *jwt = sign("EdDSA", f->ed_seed, claims(NOW + 60));
    ch_error err;
    assert_int_equal(verify(s, jwt, &err), CH_OK);
    assert_int_equal(verify(file, jwt, &err), CH_OK);
    free(jwt);
    ch_jwt_key_free(s);
    ch_jwt_key_free(file);
}

static void bad_keys_are_refused_clearly(void **state)
{
    fixture *f = *state;
    ch_jwt_key *k = NULL;
    ch_error err;
    assert_int_not_equal(ch_jwt_key_load("", &k, &err), CH_OK);
    assert_string_equal(err.msg, "no JWT verification certificate configured, cannot validate JWT");
    assert_int_not_equal(ch_jwt_key_load("abcd", &k, &err), CH_OK);
    char path[128];
    snprintf(path, sizeof(path), "%s/garbage.pem", f->dir);
    write_text(path, "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n");
    assert_int_not_equal(ch_jwt_key_load(path, &k, &err), CH_OK);
    assert_null(k);
}

static void tampering_none_and_key_mismatch_are_refused(void **state)
{
    fixture *f = *state;
    ch_jwt_key *rsa = load(f->rsa_pub), *ed = load(f->ed_pub);
    ch_error err;
    char *jwt = sign("RS256", f->rsa_key, claims(NOW + 60));
    /* a flipped payload byte */
    char *bad = strdup(jwt);
    char *dot = strchr(bad, '.');
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    assert_int_not_equal(verify(rsa, bad, &err), CH_OK);
    assert_non_null(strstr(err.msg, "signature is invalid"));
    free(bad);
    /* a flipped signature byte */
    bad = strdup(jwt);
    char *last = strrchr(bad, '.');
    last[3] = last[3] == 'A' ? 'B' : 'A';
    assert_int_not_equal(verify(rsa, bad, &err), CH_OK);
    free(bad);
    /* an RS256 token against an ed25519 key */
    assert_int_not_equal(verify(ed, jwt, &err), CH_OK);
    free(jwt);
    /* EdDSA token against an RSA key */
    jwt = sign("EdDSA", f->ed_seed, claims(NOW + 60));
    assert_int_not_equal(verify(rsa, jwt, &err), CH_OK);
    free(jwt);
    /* alg none */
    const char *hj = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    const char *pj = "{\"cht\":\"x\",\"chu\":\"h:1\",\"purpose\":\"choria_provisioning\"}";
    char *h = ch_base64url_encode(hj, strlen(hj));
    char *p = ch_base64url_encode(pj, strlen(pj));
    char none[512];
    snprintf(none, sizeof(none), "%s.%s.", h, p);
    assert_int_not_equal(verify(ed, none, &err), CH_OK);
    if (strstr(err.msg, "none") == NULL)
        fail_msg("alg none refused with: %s", err.msg);
    free(h);
    free(p);
    assert_int_not_equal(verify(ed, "a.b", &err), CH_OK);
    ch_jwt_key_free(rsa);
    ch_jwt_key_free(ed);
}

static void time_claims_have_no_leeway(void **state)
{
    fixture *f = *state;
    ch_jwt_key *ed = load(f->ed_pub);
    ch_error err;
    char *jwt = sign("EdDSA", f->ed_seed, claims(NOW)); /* now == exp is expired */
    assert_int_equal(verify(ed, jwt, &err), CH_ERR_EXPIRED);
    assert_string_equal(err.msg, "token has invalid claims: token is expired");
    free(jwt);
    json_t *c = claims(NOW + 60);
    json_object_set_new(c, "nbf", json_integer(NOW + 1));
    jwt = sign("EdDSA", f->ed_seed, c);
    assert_int_not_equal(verify(ed, jwt, &err), CH_OK);
    assert_string_equal(err.msg, "token has invalid claims: token is not valid yet");
    free(jwt);
    ch_jwt_key_free(ed);
}

static void only_provisioning_tokens_and_valid_chains_pass(void **state)
{
    fixture *f = *state;
    ch_jwt_key *ed = load(f->ed_pub);
    ch_error err;
    json_t *c = claims(NOW + 60);
    json_object_set_new(c, "purpose", json_string("choria_server"));
    char *jwt = sign("EdDSA", f->ed_seed, c);
    assert_int_not_equal(verify(ed, jwt, &err), CH_OK);
    assert_non_null(strstr(err.msg, "not a provisioning token"));
    free(jwt);
    /* tcs without a chain issuer */
    c = claims(NOW + 60);
    json_object_set_new(c, "tcs", json_string("sig"));
    jwt = sign("EdDSA", f->ed_seed, c);
    assert_int_not_equal(verify(ed, jwt, &err), CH_OK);
    free(jwt);
    /* tcs with a C- issuer and an expired issexp */
    c = claims(NOW + 60);
    json_object_set_new(c, "tcs", json_string("sig"));
    json_object_set_new(c, "iss", json_string("C-abc.def"));
    json_object_set_new(c, "issexp", json_integer(NOW - 1));
    jwt = sign("EdDSA", f->ed_seed, c);
    assert_int_not_equal(verify(ed, jwt, &err), CH_OK);
    free(jwt);
    /* ... and a valid one */
    c = claims(NOW + 60);
    json_object_set_new(c, "tcs", json_string("sig"));
    json_object_set_new(c, "iss", json_string("C-abc.def"));
    json_object_set_new(c, "issexp", json_integer(NOW + 60));
    jwt = sign("EdDSA", f->ed_seed, c);
    assert_int_equal(verify(ed, jwt, &err), CH_OK);
    free(jwt);
    ch_jwt_key_free(ed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(rsa_algorithms_round_trip_with_a_public_key_or_certificate,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(eddsa_round_trips_with_a_hex_key_string_or_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(bad_keys_are_refused_clearly, setup, teardown),
        cmocka_unit_test_setup_teardown(tampering_none_and_key_mismatch_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(time_claims_have_no_leeway, setup, teardown),
        cmocka_unit_test_setup_teardown(only_provisioning_tokens_and_valid_chains_pass, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
