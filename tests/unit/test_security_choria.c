/* The choria (ed25519 + JWT) security provider against the project's security specification:
 * the worked example of section 3.6 byte for byte (JWT, request text, signature), and the
 * Suite W refusals (section 6.6) at unit level: every token is minted here with ch_jwt_sign
 * from fixed seeds, so each case changes exactly one thing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/provisioner/srvjwt.h"
#include "choria/jwt.h"
#include "choria/pki.h"
#include "choria/protocol_v2.h"
#include "choria/security_choria.h"
#include "choria/util.h"
#include "harness.h"

/* ---- section 3.6 ---- */

#define ORG_SEED "0101010101010101010101010101010101010101010101010101010101010101"
#define ORG_PUB "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
#define CALLER_SEED "0202020202020202020202020202020202020202020202020202020202020202"
#define CALLER_PUB "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"
#define OTHER_SEED "0303030303030303030303030303030303030303030303030303030303030303"
#define GOLDEN_NOW 1750000000

static const char GOLDEN_JWT[] =
    "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.eyJjYWxsZXJpZCI6InVwPXJpcCIsIm91IjoiY2hvcmlhIiwicGVybW"
    "lzc2lvbnMiOnsiZmxlZXRfbWFuYWdlbWVudCI6dHJ1ZX0sInB1cnBvc2UiOiJjaG9yaWFfY2xpZW50X2lkIiwicHVib"
    "GljX2tleSI6IjgxMzk3NzBlYTg3ZDE3NWY1NmEzNTQ2NmMzNGM3ZWNjY2I4ZDhhOTFiNGVlMzdhMjVkZjYwZjViOGZj"
    "OWIzOTQiLCJpc3MiOiJDaG9yaWEgVG9rZW5zIFBhY2thZ2UiLCJleHAiOjE3NTAwMDM2MDAsIm5iZiI6MTc1MDAwMDA"
    "wMCwiaWF0IjoxNzUwMDAwMDAwLCJqdGkiOiIyWWZEckYyT1o3WTRpVUs3aXZ4MFZ4a01ra0sifQ.QAsaQOiiLjv-FCc"
    "tqtsqnU8SwjqvOREQZ4Xl7fvHGg1ovfZXFdhXlAVtjzXA0cHq_oRLUyBHA1a7HHpWkIN5DA";

static const char GOLDEN_CLAIMS[] =
    "{\"callerid\":\"up=rip\",\"ou\":\"choria\",\"permissions\":{\"fleet_management\":true},"
    "\"purpose\":\"choria_client_id\",\"public_key\":\"" CALLER_PUB "\",\"iss\":\"Choria Tokens "
    "Package\",\"exp\":1750003600,\"nbf\":1750000000,\"iat\":1750000000,\"jti\":"
    "\"2YfDrF2OZ7Y4iUK7ivx0VxkMkkK\"}";

static const char GOLDEN_REQUEST[] =
    "{\"protocol\":\"io.choria.protocol.v2.request\",\"message\":"
    "\"eyJhZ2VudCI6InJwY3V0aWwiLCJhY3Rpb24iOiJwaW5nIiwiZGF0YSI6e319\",\"id\":"
    "\"2YfDrF2OZ7Y4iUK7ivx0VxkMkkK\",\"sender\":\"admin.example.net\",\"caller\":\"up=rip\","
    "\"collective\":\"choria\",\"agent\":\"rpcutil\",\"ttl\":60,\"time\":1750000000000000000,"
    "\"filter\":{\"fact\":[],\"cf_class\":[],\"agent\":[],\"identity\":[],\"compound\":[]}}";

static const char GOLDEN_SIGNATURE[] =
    "jAEevPA05oNF/cx3M/CmNXE2sXEqK03ji/VlTgbqgpxjc33s1u2zf7df4vpnuWbkLxGj29YZlxuD6hgzmfwiBQ==";

static const ch_request_params GOLDEN_PARAMS = {
    .body = "{\"agent\":\"rpcutil\",\"action\":\"ping\",\"data\":{}}",
    .agent = "rpcutil",
    .collective = "choria",
    .callerid = "up=rip",
    .senderid = "admin.example.net",
    .requestid = "2YfDrF2OZ7Y4iUK7ivx0VxkMkkK",
    .ttl = 60,
    .time = GOLDEN_NOW,
};

/* ---- fixtures ---- */

static char dir[128];
static int64_t fixed_now = GOLDEN_NOW;

static int64_t fixed_clock(void)
{
    return fixed_now;
}

static int group_setup(void **state)
{
    (void)state;
    ch_error err;
    CHT_CHECK(cht_temp_dir("choria-sec", dir, sizeof(dir), &err), &err);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ch_error err;
    cht_temp_dir_remove(dir, &err);
    return 0;
}

static char *write_tmp(const char *name, const char *text)
{
    static char path[256];
    ch_error err;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHT_CHECK(cht_write_file(path, &err, "%s", text), &err);
    return path;
}

/* A signing provider for the token and seed given as text. */
static ch_security *signer(const char *jwt, const char *seed_hex)
{
    char token[256], seed[256];
    snprintf(token, sizeof(token), "%s", write_tmp("token.jwt", jwt));
    snprintf(seed, sizeof(seed), "%s", write_tmp("seed", seed_hex));
    ch_security_choria_opts o = {.token_file = token, .seed_file = seed, .sign = true};
    ch_security *sec = NULL;
    ch_error err;
    CHT_CHECK(ch_security_choria_new(&o, &sec, &err), &err);
    return sec;
}

/* A verifying server that trusts issuer "choria" = the org key (or trusted signers). */
static ch_security *verifier_with(const char *issuer_key, bool trusted_signer)
{
    const char *names[] = {"choria"};
    const char *keys[] = {issuer_key};
    ch_security_choria_opts o = {.verify = true, .now = fixed_clock};
    if (trusted_signer) {
        o.trusted_signers = keys;
        o.n_trusted = 1;
    } else {
        o.issuer_names = names;
        o.issuer_keys = keys;
        o.n_issuers = 1;
    }
    ch_security *sec = NULL;
    ch_error err;
    CHT_CHECK(ch_security_choria_new(&o, &sec, &err), &err);
    return sec;
}

static ch_security *verifier(void)
{
    return verifier_with(ORG_PUB, false);
}

/* The golden claims with changes: a JSON object merged over them (null deletes a key). */
static char *mint(const char *issuer_seed, const char *changes)
{
    json_t *claims = json_loads(GOLDEN_CLAIMS, JSON_PRESERVE_ORDER, NULL);
    json_t *patch = changes != NULL ? json_loads(changes, 0, NULL) : json_object();
    assert_non_null(claims);
    assert_non_null(patch);
    const char *k;
    json_t *v;
    json_object_foreach(patch, k, v)
    {
        if (json_is_null(v))
            json_object_del(claims, k);
        else
            json_object_set(claims, k, v);
    }
    char *jwt = NULL;
    ch_error err;
    CHT_CHECK(ch_jwt_sign("EdDSA", issuer_seed, claims, &jwt, &err), &err);
    json_decref(claims);
    json_decref(patch);
    return jwt;
}

/* The whole v2 path: a payload signed by (jwt, seed) for callerid, decoded by the verifier. */
static ch_status round_trip(ch_security *server, const char *jwt, const char *seed,
                            const char *callerid, int64_t made_at, ch_error *err)
{
    ch_security *client = signer(jwt, seed);
    ch_request_params p = GOLDEN_PARAMS;
    p.callerid = callerid;
    p.time = made_at;
    char *payload = NULL;
    size_t len = 0;
    ch_error e;
    CHT_CHECK(ch_protocol_encode_request(ch_protocol_v2(), client, &p, &payload, &len, &e), &e);
    ch_request_payload out;
    ch_status st = ch_protocol_decode_request(ch_protocol_v2(), server, payload, len, &out, err);
    if (st == CH_OK)
        st = ch_protocol_ttl_check(&out.request.envelope, fixed_now, err);
    ch_protocol_request_payload_clear(&out);
    free(payload);
    ch_security_free(client);
    return st;
}

static void expect_refusal(const char *jwt, const char *seed, const char *callerid,
                           const char *reason)
{
    ch_security *server = verifier();
    ch_error err = {0};
    assert_int_not_equal(round_trip(server, jwt, seed, callerid, GOLDEN_NOW, &err), CH_OK);
    if (strstr(err.msg, reason) == NULL)
        fail_msg("refusal '%s' does not say '%s'", err.msg, reason);
    ch_security_free(server);
}

/* ---- golden ---- */

static void test_golden_jwt_is_reproduced_byte_for_byte(void **state)
{
    (void)state;
    char *jwt = mint(ORG_SEED, NULL);
    assert_string_equal(jwt, GOLDEN_JWT);
    free(jwt);
}

static void test_golden_request_and_signature(void **state)
{
    (void)state;
    char *json = NULL, *sig = NULL, *caller = NULL;
    size_t len = 0;
    ch_error err;
    CHT_CHECK(ch_protocol_v2_request_json(&GOLDEN_PARAMS, &json, &len, &err), &err);
    assert_string_equal(json, GOLDEN_REQUEST);
    char jwt_nl[sizeof(GOLDEN_JWT) + 1];
    snprintf(jwt_nl, sizeof(jwt_nl), "%s\n", GOLDEN_JWT);
    ch_security *client = signer(jwt_nl, CALLER_SEED "\n");
    CHT_CHECK(ch_security_sign(client, json, len, &sig, &caller, &err), &err);
    assert_string_equal(sig, GOLDEN_SIGNATURE);
    assert_string_equal(caller, GOLDEN_JWT); /* the token file trimmed */
    assert_string_equal(ch_security_callerid(client), "up=rip");
    assert_int_equal(ch_security_tech_of(client), CH_SECURITY_TECH_ED25519);
    ch_security *server = verifier();
    CHT_CHECK(ch_security_verify(server, json, len, GOLDEN_SIGNATURE, GOLDEN_JWT, "up=rip", &err),
              &err);
    ch_security_free(server);
    ch_security_free(client);
    free(json);
    free(sig);
    free(caller);
}

static void test_golden_accepted_within_the_ttl_window(void **state)
{
    (void)state;
    ch_security *server = verifier();
    ch_error err;
    fixed_now = GOLDEN_NOW + 60;
    CHT_CHECK(round_trip(server, GOLDEN_JWT, CALLER_SEED, "up=rip", GOLDEN_NOW, &err), &err);
    fixed_now = GOLDEN_NOW;
    CHT_CHECK(round_trip(server, GOLDEN_JWT, CALLER_SEED, "up=rip", GOLDEN_NOW + 60, &err), &err);
    /* the TTL is checked in nanoseconds' seconds: 61 s late is refused */
    assert_int_equal(round_trip(server, GOLDEN_JWT, CALLER_SEED, "up=rip", GOLDEN_NOW - 61, &err),
                     CH_ERR_EXPIRED);
    assert_non_null(strstr(err.msg, "too old"));
    ch_security_free(server);
}

static void test_trusted_signer_mode(void **state)
{
    (void)state;
    ch_security *server = verifier_with(ORG_PUB, true);
    ch_error err;
    CHT_CHECK(round_trip(server, GOLDEN_JWT, CALLER_SEED, "up=rip", GOLDEN_NOW, &err), &err);
    ch_security_free(server);
    char other_pub[65];
    unsigned char seed[32], pub[32];
    CHT_CHECK(ch_pki_hex_decode(OTHER_SEED, 64, seed, 32, &err), &err);
    CHT_CHECK(ch_pki_ed25519_public(seed, pub, &err), &err);
    ch_hex_encode(pub, 32, other_pub);
    server = verifier_with(other_pub, true);
    assert_int_not_equal(round_trip(server, GOLDEN_JWT, CALLER_SEED, "up=rip", GOLDEN_NOW, &err),
                         CH_OK);
    assert_non_null(strstr(err.msg, "not signed by a trusted signer"));
    ch_security_free(server);
}

/* ---- Suite W refusals ---- */

static void test_wrong_seed_is_refused(void **state)
{
    (void)state;
    expect_refusal(GOLDEN_JWT, OTHER_SEED, "up=rip", "does not verify with the caller's public");
}

static void test_caller_mismatch_is_refused(void **state)
{
    (void)state;
    expect_refusal(GOLDEN_JWT, CALLER_SEED, "up=mallory", "does not match the JWT's callerid");
}

static void test_jwt_of_another_issuer_is_refused(void **state)
{
    (void)state;
    char *jwt = mint(OTHER_SEED, NULL);
    expect_refusal(jwt, CALLER_SEED, "up=rip", "token signature is invalid");
    free(jwt);
}

static void test_unknown_or_missing_ou_is_refused(void **state)
{
    (void)state;
    char *jwt = mint(ORG_SEED, "{\"ou\":\"other\"}");
    expect_refusal(jwt, CALLER_SEED, "up=rip", "no issuer is configured for the organization");
    free(jwt);
    jwt = mint(ORG_SEED, "{\"ou\":null}");
    expect_refusal(jwt, CALLER_SEED, "up=rip", "has no ou claim");
    free(jwt);
}

static void test_permissions_are_required(void **state)
{
    (void)state;
    char *jwt = mint(ORG_SEED, "{\"permissions\":{}}");
    expect_refusal(jwt, CALLER_SEED, "up=rip", "does not allow fleet management");
    free(jwt);
    jwt = mint(ORG_SEED,
               "{\"permissions\":{\"fleet_management\":true,\"signed_fleet_management\":true}}");
    expect_refusal(jwt, CALLER_SEED, "up=rip", "requires authority delegation");
    free(jwt);
}

static void test_time_claims_are_checked(void **state)
{
    (void)state;
    char *jwt = mint(ORG_SEED, "{\"exp\":1749999999}");
    expect_refusal(jwt, CALLER_SEED, "up=rip", "has expired");
    free(jwt);
    jwt = mint(ORG_SEED, "{\"nbf\":1750000001}");
    expect_refusal(jwt, CALLER_SEED, "up=rip", "not valid yet");
    free(jwt);
    /* exp itself is still valid (golang-jwt v5: expired only after exp) */
    jwt = mint(ORG_SEED, "{\"exp\":1750000000}");
    ch_security *server = verifier();
    ch_error err;
    CHT_CHECK(round_trip(server, jwt, CALLER_SEED, "up=rip", GOLDEN_NOW, &err), &err);
    ch_security_free(server);
    free(jwt);
}

static void test_server_token_cannot_make_requests(void **state)
{
    (void)state;
    char *jwt = mint(ORG_SEED, "{\"purpose\":\"choria_server\",\"identity\":\"up=rip\"}");
    expect_refusal(jwt, CALLER_SEED, "up=rip", "not a client token");
    free(jwt);
}

static void test_missing_public_key_and_garbage_are_refused(void **state)
{
    (void)state;
    char *jwt = mint(ORG_SEED, "{\"public_key\":null}");
    expect_refusal(jwt, CALLER_SEED, "up=rip", "no valid public_key");
    free(jwt);
    ch_security *server = verifier();
    ch_error err;
    assert_int_not_equal(
        ch_security_verify(server, "x", 1, GOLDEN_SIGNATURE, "not.a.jwt", "up=rip", &err), CH_OK);
    assert_int_not_equal(ch_security_verify(server, "x", 1, "!!", GOLDEN_JWT, "up=rip", &err),
                         CH_OK);
    /* the golden signature is over the golden request, not over anything else */
    assert_int_not_equal(
        ch_security_verify(server, "x", 1, GOLDEN_SIGNATURE, GOLDEN_JWT, "up=rip", &err), CH_OK);
    assert_non_null(strstr(err.msg, "does not verify"));
    ch_security_free(server);
}

/* ---- chained issuers (choria-io/tokens IsSignedByIssuer) ---- */

/* A client token made by a chain issuer (its own seed OTHER_SEED) that the org issuer
 * approved; tamper 1 breaks the org's approval, 2 the issuer's signature of the token. */
static char *mint_chained(int tamper, int64_t issexp)
{
    unsigned char org[32], iss_seed[32], iss_pub[32], sig[64];
    char iss_pub_hex[65], org_sig_hex[129], own_sig_hex[129], issuer_id[28], jti[28], data[256];
    char changes[1024];
    ch_error err;
    CHT_CHECK(ch_pki_hex_decode(ORG_SEED, 64, org, 32, &err), &err);
    CHT_CHECK(ch_pki_hex_decode(OTHER_SEED, 64, iss_seed, 32, &err), &err);
    CHT_CHECK(ch_pki_ed25519_public(iss_seed, iss_pub, &err), &err);
    ch_hex_encode(iss_pub, 32, iss_pub_hex);
    prov_srvjwt_ksuid(GOLDEN_NOW - 100, issuer_id);
    prov_srvjwt_ksuid(GOLDEN_NOW, jti);
    snprintf(data, sizeof(data), "%s.%s", issuer_id, iss_pub_hex);
    CHT_CHECK(ch_pki_ed25519_sign(tamper == 1 ? iss_seed : org, data, strlen(data), sig, &err),
              &err);
    ch_hex_encode(sig, 64, org_sig_hex);
    snprintf(data, sizeof(data), "%s.%s", jti, org_sig_hex);
    CHT_CHECK(ch_pki_ed25519_sign(tamper == 2 ? org : iss_seed, data, strlen(data), sig, &err),
              &err);
    ch_hex_encode(sig, 64, own_sig_hex);
    snprintf(changes, sizeof(changes),
             "{\"iss\":\"C-%s.%s\",\"tcs\":\"%s.%s\",\"jti\":\"%s\",\"issexp\":%lld}", issuer_id,
             iss_pub_hex, org_sig_hex, own_sig_hex, jti, (long long)issexp);
    return mint(OTHER_SEED, changes);
}

static void test_chained_client_tokens(void **state)
{
    (void)state;
    ch_security *server = verifier();
    ch_error err;
    char *jwt = mint_chained(0, GOLDEN_NOW + 3600);
    CHT_CHECK(round_trip(server, jwt, CALLER_SEED, "up=rip", GOLDEN_NOW, &err), &err);
    free(jwt);
    ch_security_free(server);

    jwt = mint_chained(1, GOLDEN_NOW + 3600);
    expect_refusal(jwt, CALLER_SEED, "up=rip", "not signed by org issuer");
    free(jwt);
    jwt = mint_chained(2, GOLDEN_NOW + 3600);
    expect_refusal(jwt, CALLER_SEED, "up=rip", "invalid chain signature");
    free(jwt);
    jwt = mint_chained(0, GOLDEN_NOW - 1);
    expect_refusal(jwt, CALLER_SEED, "up=rip", "chain issuer has expired");
    free(jwt);
}

/* ---- configuration ---- */

static void test_bad_configuration_is_refused_clearly(void **state)
{
    (void)state;
    ch_security *sec = NULL;
    ch_error err;
    ch_security_choria_opts none = {.verify = true};
    assert_int_equal(ch_security_choria_new(&none, &sec, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "plugin.security.issuer.names"));
    const char *names[] = {"choria"}, *bad[] = {"zz"};
    ch_security_choria_opts badkey = {
        .verify = true, .issuer_names = names, .issuer_keys = bad, .n_issuers = 1};
    assert_int_equal(ch_security_choria_new(&badkey, &sec, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "issuer choria"));
    ch_security_choria_opts nofiles = {.sign = true};
    assert_int_equal(ch_security_choria_new(&nofiles, &sec, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "token_file"));
    char token[256];
    snprintf(token, sizeof(token), "%s", write_tmp("t2.jwt", GOLDEN_JWT));
    ch_security_choria_opts badseed = {
        .sign = true, .token_file = token, .seed_file = write_tmp("s2", "0102")};
    assert_int_equal(ch_security_choria_new(&badseed, &sec, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "64 character hex"));
    assert_null(strstr(err.msg, "0102")); /* never the seed */
    assert_null(sec);
}

static void test_nonce_signature_verifies_with_the_token_key(void **state)
{
    (void)state;
    ch_security *client = signer(GOLDEN_JWT, CALLER_SEED);
    unsigned char sig[64], pub[32];
    ch_error err;
    CHT_CHECK(ch_security_choria_sign_nonce(client, "nonce-text", sig, &err), &err);
    CHT_CHECK(ch_pki_hex_decode(CALLER_PUB, 64, pub, 32, &err), &err);
    assert_true(ch_pki_ed25519_verify(pub, "nonce-text", 10, sig));
    assert_string_equal(ch_security_choria_token(client), GOLDEN_JWT);
    assert_string_equal(ch_security_choria_claim(client, "ou"), "choria");
    ch_security_free(client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_jwt_is_reproduced_byte_for_byte),
        cmocka_unit_test(test_golden_request_and_signature),
        cmocka_unit_test(test_golden_accepted_within_the_ttl_window),
        cmocka_unit_test(test_trusted_signer_mode),
        cmocka_unit_test(test_wrong_seed_is_refused),
        cmocka_unit_test(test_caller_mismatch_is_refused),
        cmocka_unit_test(test_jwt_of_another_issuer_is_refused),
        cmocka_unit_test(test_unknown_or_missing_ou_is_refused),
        cmocka_unit_test(test_permissions_are_required),
        cmocka_unit_test(test_time_claims_are_checked),
        cmocka_unit_test(test_server_token_cannot_make_requests),
        cmocka_unit_test(test_missing_public_key_and_garbage_are_refused),
        cmocka_unit_test(test_chained_client_tokens),
        cmocka_unit_test(test_bad_configuration_is_refused_clearly),
        cmocka_unit_test(test_nonce_signature_verifies_with_the_token_key),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
