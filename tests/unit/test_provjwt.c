/* Provisioning JWT parsed unverified: claims, go-choria's validation rules, garbage, bounds. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/provjwt.h"
#include "choria/util.h"

/* go-choria integration/ca/provisioning.jwt (RS256, issued by `choria jwt prov`). */
static const char upstream_jwt[] =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJjaHQiOiJzM2NyZXQiLCJjaHMiOnRydWUsImNodSI6Im5hdHM6Ly9sb2NhbGhvc3Q6NDIyMiIsImNocGQiOmZhbHNl"
    "LCJwdXJwb3NlIjoiY2hvcmlhX3Byb3Zpc2lvbmluZyIsImlzcyI6IkNob3JpYSBDTEkiLCJzdWIiOiJjaG9yaWFfcHJv"
    "dmlzaW9uaW5nIiwibmJmIjoxNjQ3ODc2NjczLCJpYXQiOjE2NDc4NzY2NzN9."
    "NiUKnfE6xhHfIx-AmVIpsysBayLHS-pRmQ7Jo5AViBn2QjgA4smyl0FUzOoDTw68mC1JRTPykSaKLJwn9zECuonmQHftZ9"
    "6Jy0mD2JyKtF7hd6WPcczeZ_ijp7ngceewmQ12FJvMgI1WSjxooLh5foIUNtAibVGZ1sDcyXnZGZ8VbrP5PpY6srUpdpBN"
    "rTH7s-GoJMzHiCfNOvMgan_3P6XdPA3yEtn7lxikvjLUWB_buiurEussgF9kR162uZ6N3XXpaBvMGsOphkosqJyX2laCfM"
    "8wxXJZz0XkVxRYJfDXNFwlp-3YFcmMMH1FbebWXndd-C92ksKp_aNOYlUcYA";

/* go-choria providers/agent/mcorpc/golang/provision/testdata/provision.jwt: no sub/purpose. */
static const char upstream_no_purpose[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJjaHMiOnRydWUsImNodSI6InByb3YuZXhhbXBsZS5uZXQ6NDIyMiIsImNodCI6InNlY3JldCIsImNocGQiOnRydWV9."
    "lLc9DAdjkdA-YAbhwHg3FVR9BklGFSZ7FxyzSbh9vCc";

/* base64url without padding of s, appended to out. */
static void b64url(const char *s, char *out)
{
    char *std = ch_base64_encode(s, strlen(s));
    assert_non_null(std);
    size_t w = strlen(out);
    for (const char *p = std; *p != '\0' && *p != '='; p++)
        out[w++] = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    out[w] = '\0';
    free(std);
}

/* A token with the given header and claims JSON and a dummy signature. */
static char *make_jwt(const char *header, const char *claims)
{
    char *out = calloc(1, 4 * (strlen(header) + strlen(claims)) + 64);
    assert_non_null(out);
    b64url(header, out);
    strcat(out, ".");
    b64url(claims, out);
    strcat(out, ".c2lnbmF0dXJl");
    return out;
}

#define HDR "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}"

static ch_provjwt *parse_ok(const char *text)
{
    ch_provjwt *j = NULL;
    ch_error err = {0};
    if (ch_provjwt_parse(text, strlen(text), &j, &err) != CH_OK)
        fail_msg("parse failed: %s", err.msg);
    return j;
}

static void parse_fails(const char *text, ch_status want, const char *msg)
{
    ch_provjwt *j = NULL;
    ch_error err = {0};
    ch_status st = ch_provjwt_parse(text, strlen(text), &j, &err);
    if (st != want)
        fail_msg("parse gave %d (%s), want %d", st, err.msg, want);
    if (strstr(err.msg, msg) == NULL)
        fail_msg("error '%s' does not mention '%s'", err.msg, msg);
    assert_null(j);
}

static void claims_fail(const char *claims, const char *msg)
{
    char *t = make_jwt(HDR, claims);
    parse_fails(t, CH_ERR_INVALID, msg);
    free(t);
}

static void upstream_token_parses_with_defaults(void **state)
{
    (void)state;
    ch_provjwt *j = parse_ok(upstream_jwt);
    assert_string_equal(j->alg, "RS256");
    assert_string_equal(j->token, "s3cret");
    assert_true(j->secure);
    assert_string_equal(j->urls, "nats://localhost:4222");
    assert_null(j->srv_domain);
    assert_false(j->provision_default);
    assert_string_equal(j->purpose, "choria_provisioning");
    assert_string_equal(j->subject, "choria_provisioning");
    assert_string_equal(j->issuer, "Choria CLI");
    assert_int_equal(j->not_before, 1647876673);
    assert_int_equal(j->issued_at, 1647876673);
    assert_int_equal(j->expires_at, 0);
    assert_string_equal(j->org_unit, "choria"); /* default */
    assert_null(j->extensions);
    assert_false(ch_provjwt_expired(j, ch_now_unix()));
    ch_provjwt_free(j);
}

static void every_claim_is_read(void **state)
{
    (void)state;
    char *t =
        make_jwt(HDR, "{\"cht\":\"tok\",\"chs\":true,\"chsrv\":\"example.net\",\"chpd\":true,"
                      "\"chrd\":\"/etc/reg.json\",\"chf\":\"/etc/facts.json\","
                      "\"chusr\":\"u\",\"chpwd\":\"p\",\"extensions\":{\"site\":\"lab\"},"
                      "\"ou\":\"acme\",\"v2\":true,\"update\":true,\"sub\":\"choria_provisioning\","
                      "\"iss\":\"me\",\"jti\":\"id1\",\"public_key\":\"abcd\",\"tcs\":\"x\","
                      "\"aud\":[\"a\",\"b\"],\"iat\":100,\"nbf\":100.9,\"exp\":2000000000,"
                      "\"issexp\":1999999999,\"unknown\":[1,2,{\"x\":null}]}");
    ch_provjwt *j = parse_ok(t);
    assert_string_equal(j->token, "tok");
    assert_true(j->secure);
    assert_null(j->urls);
    assert_string_equal(j->srv_domain, "example.net");
    assert_true(j->provision_default);
    assert_string_equal(j->registration_data, "/etc/reg.json");
    assert_string_equal(j->facts, "/etc/facts.json");
    assert_string_equal(j->nats_user, "u");
    assert_string_equal(j->nats_password, "p");
    assert_non_null(j->extensions);
    assert_string_equal(json_string_value(json_object_get(j->extensions, "site")), "lab");
    assert_string_equal(j->org_unit, "acme");
    assert_true(j->protocol_v2);
    assert_true(j->allow_update);
    assert_null(j->purpose);
    assert_string_equal(j->id, "id1");
    assert_string_equal(j->public_key, "abcd");
    assert_string_equal(j->tcs, "x");
    assert_int_equal(j->issued_at, 100);
    assert_int_equal(j->not_before, 100);
    assert_int_equal(j->expires_at, 2000000000);
    assert_false(ch_provjwt_expired(j, 1999999998));
    assert_true(ch_provjwt_expired(j, 1999999999)); /* issexp comes first */
    ch_provjwt_free(j);
    free(t);
}

static void go_json_rules_case_insensitive_names_null_and_white_space(void **state)
{
    (void)state;
    /* Go matches claim names case-insensitively when there is no exact match; null leaves a
     * field alone; the newline at the end of a file is fine. */
    char *t = make_jwt(HDR, "{\"CHT\":\"upper\",\"Purpose\":\"choria_provisioning\","
                            "\"chu\":\"b:4222\",\"chs\":null,\"ou\":\"\"}");
    size_t n = strlen(t);
    char *with_nl = malloc(n + 3);
    memcpy(with_nl, t, n);
    memcpy(with_nl + n, "\r\n", 3);
    ch_provjwt *j = parse_ok(with_nl);
    assert_string_equal(j->token, "upper");
    assert_false(j->secure);
    assert_string_equal(j->org_unit, "choria");
    ch_provjwt_free(j);
    free(with_nl);
    free(t);
}

static void validation_rules_of_go_choria(void **state)
{
    (void)state;
    claims_fail("{\"sub\":\"choria_provisioning\",\"chu\":\"b:4222\"}", "no auth token");
    claims_fail("{\"sub\":\"choria_provisioning\",\"cht\":\"\",\"chu\":\"b:4222\"}",
                "no auth token");
    claims_fail("{\"sub\":\"choria_provisioning\",\"cht\":\"t\"}", "no srv domain or urls");
    claims_fail("{\"sub\":\"choria_provisioning\",\"cht\":\"t\",\"chu\":\"\",\"chsrv\":\"\"}",
                "no srv domain or urls");
    claims_fail("{\"sub\":\"choria_provisioning\",\"cht\":\"t\",\"chu\":\"b:4222\","
                "\"chsrv\":\"example.net\"}",
                "both srv domain and URLs supplied");
    claims_fail("{\"purpose\":\"choria_server\",\"cht\":\"t\",\"chu\":\"b:4222\"}",
                "token is not a provisioning token");
    claims_fail("{\"cht\":\"t\",\"chu\":\"b:4222\"}", "token is not a provisioning token");
    parse_fails(upstream_no_purpose, CH_ERR_INVALID, "token is not a provisioning token");
}

static void claims_of_the_wrong_type_are_refused(void **state)
{
    (void)state;
    claims_fail("{\"sub\":\"choria_provisioning\",\"cht\":1,\"chu\":\"b\"}",
                "cannot unmarshal number into Go struct field ProvisioningClaims.cht of type "
                "string");
    claims_fail("{\"sub\":\"choria_provisioning\",\"cht\":\"t\",\"chu\":\"b\",\"chs\":\"yes\"}",
                "ProvisioningClaims.chs of type bool");
    claims_fail("{\"sub\":\"choria_provisioning\",\"cht\":\"t\",\"chu\":\"b\",\"extensions\":[]}",
                "ProvisioningClaims.extensions of type tokens.MapClaims");
    claims_fail("{\"sub\":\"choria_provisioning\",\"cht\":\"t\",\"chu\":\"b\",\"exp\":\"soon\"}",
                "could not parse NumericData");
    claims_fail("{\"sub\":\"choria_provisioning\",\"cht\":\"t\",\"chu\":\"b\",\"aud\":5}",
                "invalid type for claim aud");
    claims_fail("[1,2]", "cannot unmarshal array into Go value of type tokens.ProvisioningClaims");
}

static void garbage_is_refused_with_clear_errors(void **state)
{
    (void)state;
    parse_fails("", CH_ERR_INVALID, "invalid number of segments");
    parse_fails("abc", CH_ERR_INVALID, "invalid number of segments");
    parse_fails("a.b", CH_ERR_INVALID, "invalid number of segments");
    parse_fails("a.b.c.d", CH_ERR_INVALID, "invalid number of segments");
    parse_fails("!!!.e30.x", CH_ERR_INVALID, "could not base64 decode header");
    parse_fails("eyJhbGciOiJFZERTQSJ9.***.x", CH_ERR_INVALID, "could not base64 decode claim");
    parse_fails("eyJhbGciOiJFZERTQSJ9=.e30.x", CH_ERR_INVALID, "could not base64 decode header");
    parse_fails("bm90IGpzb24.e30.x", CH_ERR_INVALID, "could not JSON decode header");

    char *t = make_jwt("{\"typ\":\"JWT\"}", "{\"sub\":\"choria_provisioning\",\"cht\":\"t\","
                                            "\"chu\":\"b\"}");
    parse_fails(t, CH_ERR_INVALID, "signing method (alg) is unspecified");
    free(t);
    t = make_jwt("{\"alg\":\"XX999\"}", "{\"sub\":\"choria_provisioning\",\"cht\":\"t\","
                                        "\"chu\":\"b\"}");
    parse_fails(t, CH_ERR_INVALID, "signing method (alg) is unavailable");
    free(t);
    t = make_jwt(HDR,
                 "{\"sub\":\"choria_provisioning\",\"cht\":\"t\",\"cht\":\"u\",\"chu\":\"b\"}");
    parse_fails(t, CH_ERR_INVALID, "could not JSON decode claim");
    free(t);

    ch_provjwt *j = NULL;
    ch_error err = {0};
    assert_int_equal(ch_provjwt_parse("a.b\0.c", 6, &j, &err), CH_ERR_INVALID);
    assert_int_equal(ch_provjwt_parse(NULL, 0, &j, &err), CH_ERR_INVALID);
}

static void oversized_tokens_are_refused(void **state)
{
    (void)state;
    size_t n = CH_PROVJWT_MAX_SIZE + 1;
    char *big = malloc(n + 1);
    memset(big, 'A', n);
    big[10] = '.';
    big[20] = '.';
    big[n] = '\0';
    parse_fails(big, CH_ERR_TOO_LARGE, "exceeds the limit");
    free(big);

    /* Deep nesting inside the claims is bounded too. */
    char claims[400] = "{\"sub\":\"choria_provisioning\",\"cht\":\"t\",\"chu\":\"b\",\"x\":";
    for (int i = 0; i < 100; i++)
        strcat(claims, "[");
    char *t = make_jwt(HDR, claims);
    parse_fails(t, CH_ERR_INVALID, "nesting");
    free(t);
}

static void load_file_reads_and_bounds_the_file(void **state)
{
    (void)state;
    char path[] = "/tmp/provjwt-test-XXXXXX";
    int fd = mkstemp(path);
    assert_in_range(fd, 0, INT_MAX);
    assert_int_equal(write(fd, upstream_jwt, strlen(upstream_jwt)), (ssize_t)strlen(upstream_jwt));
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    ch_provjwt *j = NULL;
    ch_error err = {0};
    assert_int_equal(ch_provjwt_load_file(path, &j, &err), CH_OK);
    assert_string_equal(j->token, "s3cret");
    ch_provjwt_free(j);
    unlink(path);
    assert_int_equal(ch_provjwt_load_file(path, &j, &err), CH_ERR_NOT_FOUND);
    assert_null(j);
    ch_provjwt_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(upstream_token_parses_with_defaults),
        cmocka_unit_test(every_claim_is_read),
        cmocka_unit_test(go_json_rules_case_insensitive_names_null_and_white_space),
        cmocka_unit_test(validation_rules_of_go_choria),
        cmocka_unit_test(claims_of_the_wrong_type_are_refused),
        cmocka_unit_test(garbage_is_refused_with_clear_errors),
        cmocka_unit_test(oversized_tokens_are_refused),
        cmocka_unit_test(load_file_reads_and_bounds_the_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
