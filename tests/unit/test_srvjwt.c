/* Server JWT issuance (features.ed25519) and the provisioner's sorted JSON: pure parts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/json.h"
#include "choria/pki.h"
#include "choria/jwt.h"
#include "choria/util.h"
#include "harness.h"
#include "pipeline.h"
#include "srvjwt.h"

typedef struct {
    char dir[64];
    char key[128];
    char pub_hex[65];
    char seed_hex[65];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || cht_temp_dir("srvjwt", f->dir, sizeof(f->dir), NULL) != CH_OK)
        return -1;
    unsigned char seed[32], pub[32];
    if (ch_pki_ed25519_keypair(seed, pub, NULL) != CH_OK)
        return -1;
    ch_hex_encode(seed, 32, f->seed_hex);
    ch_hex_encode(pub, 32, f->pub_hex);
    snprintf(f->key, sizeof(f->key), "%s/key.seed", f->dir);
    if (cht_write_file(f->key, NULL, "%s", f->seed_hex) != CH_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (cht_temp_dir_remove(f->dir, NULL) != CH_OK)
        return -1;
    free(f);
    return 0;
}

static prov_helper_reply *reply(const char *json)
{
    prov_helper_reply *r = NULL;
    assert_int_equal(prov_helper_reply_parse(json, strlen(json), 0, &r, NULL), CH_OK);
    return r;
}

/* Issues a token and returns its verified claims. */
static json_t *issue(fixture *f, prov_srvjwt_signer *s, const char *reply_json, int64_t now)
{
    prov_helper_reply *r = reply(reply_json);
    char *jwt = NULL;
    ch_error err;
    assert_int_equal(prov_srvjwt_issue(s, "n1.example.net", f->pub_hex, r, now, &jwt, &err), CH_OK);
    prov_helper_reply_free(r);
    ch_jwt_key *k = NULL;
    assert_int_equal(ch_jwt_key_load(f->pub_hex, &k, &err), CH_OK);
    assert_int_equal(ch_jwt_verify_signature(k, jwt, strlen(jwt), &err), CH_OK);
    ch_jwt_key_free(k);
    char *dot1 = strchr(jwt, '.'), *dot2 = strchr(dot1 + 1, '.');
    unsigned char *raw = NULL;
    size_t len = 0;
    assert_int_equal(ch_base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &raw, &len), CH_OK);
    json_t *c = ch_json_parse((const char *)raw, len, 65536, 8, NULL);
    free(raw);
    free(jwt);
    assert_non_null(c);
    return c;
}

static const char *str(json_t *c, const char *k)
{
    return json_string_value(json_object_get(c, k));
}

static void default_claims_follow_upstream(void **state)
{
    fixture *f = *state;
    prov_srvjwt_signer *s = NULL;
    ch_error err;
    assert_int_equal(prov_srvjwt_signer_load(f->key, NULL, 86400LL * 365 * 1000000000, &s, &err),
                     CH_OK);
    json_t *c = issue(f, s, "{\"configuration\":{\"identity\":\"n1.example.net\"}}", 2000000000);
    assert_string_equal(str(c, "identity"), "n1.example.net");
    assert_string_equal(str(c, "purpose"), "choria_server");
    assert_string_equal(str(c, "ou"), "choria");
    assert_string_equal(str(c, "iss"), "Choria Provisioner");
    assert_string_equal(str(c, "public_key"), f->pub_hex);
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "collectives"), 0)),
                        "mcollective");
    assert_int_equal(json_integer_value(json_object_get(c, "exp")), 2000000000 + 86400 * 365);
    assert_null(json_object_get(c, "permissions"));
    assert_null(json_object_get(c, "pub_subjects"));
    json_decref(c);
    prov_srvjwt_signer_free(s);
}

static void configuration_and_server_claims_shape_the_token(void **state)
{
    fixture *f = *state;
    prov_srvjwt_signer *s = NULL;
    ch_error err;
    assert_int_equal(prov_srvjwt_signer_load(f->key, "", 86400LL * 1000000000, &s, &err), CH_OK);
    json_t *c = issue(f, s,
                      "{\"configuration\":{\"plugin.security.provider\":\"choria\"},"
                      "\"server_claims\":{\"ou\":\"acme\",\"exp\":2000100000,"
                      "\"pub_subjects\":[\"x.>\"],\"permissions\":{\"streams\":true}}}",
                      2000000000);
    assert_string_equal(str(c, "ou"), "acme");
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "collectives"), 0)),
                        "choria");
    assert_int_equal(json_integer_value(json_object_get(c, "exp")), 2000100000);
    assert_true(json_is_true(json_object_get(json_object_get(c, "permissions"), "streams")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "pub_subjects"), 0)),
                        "x.>");
    json_decref(c);
    /* collectives from the configuration are split on ',' untrimmed; a past exp falls back */
    c = issue(f, s, "{\"configuration\":{\"collectives\":\"a,b\"},\"server_claims\":{\"exp\":1}}",
              2000000000);
    assert_int_equal(json_array_size(json_object_get(c, "collectives")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "collectives"), 1)),
                        "b");
    assert_int_equal(json_integer_value(json_object_get(c, "exp")), 2000000000 + 86400);
    json_decref(c);
    prov_srvjwt_signer_free(s);
}

static void chain_issuer_data_is_added_and_exp_capped(void **state)
{
    fixture *f = *state;
    char token[128];
    snprintf(token, sizeof(token), "%s/chain.jwt", f->dir);
    json_t *chain = json_pack("{s:s,s:s,s:s,s:I}", "tcs", "orgsig", "jti", "CHAINJTI", "public_key",
                              "abcd", "exp", (json_int_t)2000050000);
    char *jwt = NULL;
    assert_int_equal(ch_jwt_sign("EdDSA", f->seed_hex, chain, &jwt, NULL), CH_OK);
    json_decref(chain);
    FILE *fp = fopen(token, "w");
    fputs(jwt, fp);
    fclose(fp);
    free(jwt);
    prov_srvjwt_signer *s = NULL;
    ch_error err;
    assert_int_equal(prov_srvjwt_signer_load(f->key, token, 86400LL * 365 * 1000000000, &s, &err),
                     CH_OK);
    json_t *c = issue(f, s, "{\"configuration\":{\"identity\":\"n1\"}}", 2000000000);
    assert_string_equal(str(c, "iss"), "C-CHAINJTI.abcd");
    assert_int_equal(json_integer_value(json_object_get(c, "issexp")), 2000050000);
    assert_int_equal(json_integer_value(json_object_get(c, "exp")), 2000050000);
    /* tcs = chain tcs + "." + hex(ed25519(seed, jti + "." + chain tcs)) */
    const char *tcs = str(c, "tcs");
    assert_int_equal(strncmp(tcs, "orgsig.", 7), 0);
    char msg[128];
    snprintf(msg, sizeof(msg), "%s.orgsig", str(c, "jti"));
    unsigned char sig[64], pub[32];
    assert_int_equal(ch_pki_hex_decode(tcs + 7, strlen(tcs + 7), sig, 64, NULL), CH_OK);
    assert_int_equal(ch_pki_hex_decode(f->pub_hex, 64, pub, 32, NULL), CH_OK);
    assert_true(ch_pki_ed25519_verify(pub, msg, strlen(msg), sig));
    json_decref(c);
    prov_srvjwt_signer_free(s);
}

static void signing_key_and_chain_token_errors_name_the_key(void **state)
{
    fixture *f = *state;
    prov_srvjwt_signer *s = NULL;
    ch_error err;
    assert_int_not_equal(prov_srvjwt_signer_load("", NULL, 1, &s, &err), CH_OK);
    assert_non_null(strstr(err.msg, "no jwt signing key configured using jwt_signing_key"));
    char bad[128];
    snprintf(bad, sizeof(bad), "%s/bad.seed", f->dir);
    FILE *fp = fopen(bad, "w");
    fprintf(fp, "%s\n", f->seed_hex); /* 65 bytes: refused as upstream does */
    fclose(fp);
    assert_int_not_equal(prov_srvjwt_signer_load(bad, NULL, 1, &s, &err), CH_OK);
    assert_non_null(strstr(err.msg, "unsupported key"));
    assert_int_not_equal(prov_srvjwt_signer_load(f->key, bad, 1, &s, &err), CH_OK);
    assert_non_null(strstr(err.msg, "jwt_signing_token"));
    assert_null(s);
}

static void ksuid_is_27_base62_chars_and_sorts_by_time(void **state)
{
    (void)state;
    char a[28], b[28];
    prov_srvjwt_ksuid(1700000000, a);
    prov_srvjwt_ksuid(1800000000, b);
    assert_int_equal(strlen(a), 27);
    assert_int_equal(strspn(a, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
                     27);
    if (strcmp(a, b) >= 0) /* ksuids sort by time */
        fail_msg("ksuid '%s' does not sort before '%s'", a, b);
}

static void sorted_json_orders_keys_at_every_level(void **state)
{
    (void)state;
    json_t *v = json_pack("{s:i,s:{s:i,s:i},s:[{s:i,s:i}]}", "z", 1, "a", "y", 1, "b", 2, "m", "q",
                          1, "c", 2);
    char *text = ch_json_encode_sorted(v, NULL);
    assert_string_equal(text, "{\"a\":{\"b\":2,\"y\":1},\"m\":[{\"c\":2,\"q\":1}],\"z\":1}");
    free(text);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(default_claims_follow_upstream, setup, teardown),
        cmocka_unit_test_setup_teardown(configuration_and_server_claims_shape_the_token, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(chain_issuer_data_is_added_and_exp_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(signing_key_and_chain_token_errors_name_the_key, setup,
                                        teardown),
        cmocka_unit_test(ksuid_is_27_base62_chars_and_sorts_by_time),
        cmocka_unit_test(sorted_json_orders_keys_at_every_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
