/* Protocol v2 codec: go-choria's protocol/v2 envelopes (spec upstream-security §3.1): exact
 * key names and base64 []byte fields, nanosecond times, the decoded structs v1 fills, replies
 * signed with the server's seed, and the refusals of the wrong provider or protocol. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "choria/jwt.h"
#include "choria/pki.h"
#include "choria/protocol_v2.h"
#include "choria/security_choria.h"
#include "choria/util.h"
#include "harness.h"

#define SERVER_SEED "0404040404040404040404040404040404040404040404040404040404040404"
#define NOW 1750000000

static const ch_request_params PARAMS = {
    .body = "{\"agent\":\"rpcutil\",\"action\":\"ping\",\"data\":{}}",
    .agent = "rpcutil",
    .collective = "choria",
    .callerid = "up=rip",
    .senderid = "admin.example.net",
    .requestid = "2YfDrF2OZ7Y4iUK7ivx0VxkMkkK",
    .ttl = 60,
    .time = NOW,
};

static char dir[128];

static int group_setup(void **state)
{
    (void)state;
    ch_error err;
    CHT_CHECK(cht_temp_dir("proto-v2", dir, sizeof(dir), &err), &err);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ch_error err;
    cht_temp_dir_remove(dir, &err);
    return 0;
}

/* The data of a v2 transport, decoded from base64, as a JSON object. */
static json_t *inner(const char *payload, json_t **transport)
{
    *transport = json_loads(payload, 0, NULL);
    assert_non_null(*transport);
    const char *data = json_string_value(json_object_get(*transport, "data"));
    assert_non_null(data);
    unsigned char *bytes = NULL;
    size_t n = 0;
    assert_int_equal(ch_base64_decode(data, strlen(data), &bytes, &n), CH_OK);
    json_t *j = json_loadb((const char *)bytes, n, 0, NULL);
    free(bytes);
    assert_non_null(j);
    return j;
}

static char *encode(const ch_security *sec, const ch_request_params *p)
{
    char *out = NULL;
    ch_error err;
    CHT_CHECK(ch_protocol_encode_request(ch_protocol_v2(), sec, p, &out, NULL, &err), &err);
    return out;
}

static void test_insecure_request_layers_and_round_trip(void **state)
{
    (void)state;
    ch_request_params p = PARAMS;
    p.connected_url = "nats://127.0.0.1:4222";
    char *payload = encode(ch_security_insecure(), &p);
    json_t *t, *sr = inner(payload, &t);
    assert_string_equal(json_string_value(json_object_get(t, "protocol")),
                        CH_PROTOCOL_TRANSPORT_V2);
    json_t *h = json_object_get(t, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "sender")), "admin.example.net");
    assert_non_null(strstr(json_string_value(json_object_get(h, "reply")), "choria.reply."));
    assert_non_null(json_object_get(h, "trace"));
    assert_null(json_object_get(h, "seen-by"));
    assert_string_equal(json_string_value(json_object_get(sr, "signature")),
                        CH_PROTOCOL_V2_INSECURE_SIGNATURE);
    assert_string_equal(json_string_value(json_object_get(sr, "caller")), "insecure");
    json_decref(sr);
    json_decref(t);

    ch_request_payload out;
    ch_error err;
    CHT_CHECK(
        ch_protocol_decode_request(ch_protocol_v2(), NULL, payload, strlen(payload), &out, &err),
        &err);
    const ch_request_envelope *e = &out.request.envelope;
    assert_string_equal(e->requestid, PARAMS.requestid);
    assert_string_equal(e->callerid, "up=rip");
    assert_string_equal(e->senderid, "admin.example.net");
    assert_int_equal(e->time, NOW); /* nanoseconds back to seconds */
    assert_int_equal(e->ttl, 60);
    assert_string_equal(out.transport.headers.mc_sender, "admin.example.net");
    assert_int_equal(out.transport.headers.n_seen_by, 1);
    unsigned char *body = NULL;
    size_t n = 0;
    CHT_CHECK(ch_protocol_message_body(out.request.message, &body, &n, &err), &err);
    assert_string_equal((char *)body, PARAMS.body);
    free(body);
    assert_ptr_equal(ch_protocol_detect(payload, strlen(payload)), ch_protocol_v2());
    ch_protocol_request_payload_clear(&out);
    free(payload);
}

static void test_reply_round_trip_with_signature(void **state)
{
    (void)state;
    unsigned char seed[32], pub[32];
    char pub_hex[65], path_token[256], path_seed[256];
    ch_error err;
    CHT_CHECK(ch_pki_hex_decode(SERVER_SEED, 64, seed, 32, &err), &err);
    CHT_CHECK(ch_pki_ed25519_public(seed, pub, &err), &err);
    ch_hex_encode(pub, 32, pub_hex);
    json_t *claims = json_pack("{s:s, s:s, s:s}", "purpose", "choria_server", "identity",
                               "n1.example.net", "public_key", pub_hex);
    char *jwt = NULL;
    CHT_CHECK(ch_jwt_sign("EdDSA", SERVER_SEED, claims, &jwt, &err), &err);
    json_decref(claims);
    snprintf(path_token, sizeof(path_token), "%s/server.jwt", dir);
    snprintf(path_seed, sizeof(path_seed), "%s/server.seed", dir);
    CHT_CHECK(cht_write_file(path_token, &err, "%s", jwt), &err);
    CHT_CHECK(cht_write_file(path_seed, &err, "%s", SERVER_SEED), &err);
    ch_security_choria_opts o = {
        .token_file = path_token, .seed_file = path_seed, .sign = true, .sign_replies = true};
    ch_security *server = NULL;
    CHT_CHECK(ch_security_choria_new(&o, &server, &err), &err);

    ch_request_envelope req = {.requestid = PARAMS.requestid, .agent = "rpcutil"};
    ch_reply_params rp = {
        .body = "{\"statuscode\":0}", .request = &req, .identity = "n1.example.net", .time = NOW};
    char *payload = NULL;
    CHT_CHECK(ch_protocol_encode_reply(ch_protocol_v2(), server, &rp, &payload, NULL, &err), &err);
    json_t *t, *sr = inner(payload, &t);
    assert_string_equal(json_string_value(json_object_get(sr, "sender")), jwt);
    const char *reply_b64 = json_string_value(json_object_get(sr, "reply"));
    const char *sig_b64 = json_string_value(json_object_get(sr, "signature"));
    unsigned char *reply = NULL, *sig = NULL;
    size_t reply_len = 0, sig_len = 0;
    assert_int_equal(ch_base64_decode(reply_b64, strlen(reply_b64), &reply, &reply_len), CH_OK);
    assert_int_equal(ch_base64_decode(sig_b64, strlen(sig_b64), &sig, &sig_len), CH_OK);
    assert_int_equal(sig_len, 64);
    assert_true(ch_pki_ed25519_verify(pub, reply, reply_len, sig));
    assert_non_null(strstr((char *)reply, "\"time\":1750000000000000000"));
    assert_non_null(strstr((char *)reply, "\"request\":\"2YfDrF2OZ7Y4iUK7ivx0VxkMkkK\""));
    free(reply);
    free(sig);
    json_decref(sr);
    json_decref(t);

    ch_reply_payload out;
    CHT_CHECK(
        ch_protocol_decode_reply(ch_protocol_v2(), NULL, payload, strlen(payload), &out, &err),
        &err);
    assert_string_equal(out.reply.message, "{\"statuscode\":0}");
    assert_string_equal(out.reply.envelope.senderid, "n1.example.net");
    assert_int_equal(out.reply.envelope.time, NOW);
    ch_protocol_reply_payload_clear(&out);
    free(payload);

    /* without sign_replies (a provisioning-mode v2 node): no signature, no sender */
    CHT_CHECK(ch_protocol_encode_reply(ch_protocol_v2(), NULL, &rp, &payload, NULL, &err), &err);
    sr = inner(payload, &t);
    assert_null(json_object_get(sr, "signature"));
    assert_null(json_object_get(sr, "sender"));
    json_decref(sr);
    json_decref(t);
    free(payload);
    ch_security_free(server);
    free(jwt);
}

/* A v2 transport around a secure layer given as text. */
static char *wrap(const char *secure_json)
{
    char *b64 = ch_base64_encode(secure_json, strlen(secure_json));
    char *out = NULL;
    assert_true(asprintf(&out, "{\"protocol\":\"%s\",\"data\":\"%s\",\"headers\":{}}",
                         CH_PROTOCOL_TRANSPORT_V2, b64) > 0);
    free(b64);
    return out;
}

static void expect_request_refused(const char *payload, const ch_security *sec, const char *why)
{
    ch_request_payload out;
    ch_error err = {0};
    assert_int_not_equal(
        ch_protocol_decode_request(ch_protocol_v2(), sec, payload, strlen(payload), &out, &err),
        CH_OK);
    if (strstr(err.msg, why) == NULL)
        fail_msg("'%s' does not say '%s'", err.msg, why);
}

static void test_decoder_refusals(void **state)
{
    (void)state;
    char *req = NULL, *sr = NULL, *p = NULL;
    ch_error err;
    CHT_CHECK(ch_protocol_v2_request_json(&PARAMS, &req, NULL, &err), &err);
    char *req_b64 = ch_base64_encode(req, strlen(req));

    /* the secure layer */
    assert_true(asprintf(&sr,
                         "{\"protocol\":\"%s\",\"request\":\"%s\",\"signature\":\"\","
                         "\"caller\":\"x\"}",
                         CH_PROTOCOL_SECURE_REQUEST_V2, req_b64) > 0);
    p = wrap(sr);
    expect_request_refused(p, NULL, "signature must not be empty");
    free(sr), free(p);
    assert_true(asprintf(&sr,
                         "{\"protocol\":\"%s\",\"request\":\"%s!\",\"signature\":\"a\","
                         "\"caller\":\"x\"}",
                         CH_PROTOCOL_SECURE_REQUEST_V2, req_b64) > 0);
    p = wrap(sr);
    expect_request_refused(p, NULL, "request is not valid base64");
    free(sr), free(p);
    /* a delegated signer is refused by a verifying server only */
    assert_true(asprintf(&sr,
                         "{\"protocol\":\"%s\",\"request\":\"%s\",\"signature\":\"a\","
                         "\"caller\":\"x\",\"signer\":\"y\"}",
                         CH_PROTOCOL_SECURE_REQUEST_V2, req_b64) > 0);
    p = wrap(sr);
    ch_request_payload out;
    CHT_CHECK(ch_protocol_decode_request(ch_protocol_v2(), NULL, p, strlen(p), &out, &err), &err);
    ch_protocol_request_payload_clear(&out);
    expect_request_refused(p, ch_security_insecure(), "delegated signatures");
    free(sr), free(p);

    /* the request layer: NUL bytes, ttl 0, a v1 protocol string */
    const char *bad_requests[][2] = {
        {"{\"protocol\":\"io.choria.protocol.v2.request\",\"message\":\"AA==\",\"id\":\"i\","
         "\"sender\":\"s\",\"caller\":\"c\",\"collective\":\"c\",\"agent\":\"a\",\"ttl\":60,"
         "\"time\":1}",
         "holds a NUL byte"},
        {"{\"protocol\":\"io.choria.protocol.v2.request\",\"message\":\"eA==\",\"id\":\"i\","
         "\"sender\":\"s\",\"caller\":\"c\",\"collective\":\"c\",\"agent\":\"a\",\"ttl\":0,"
         "\"time\":1}",
         "must be positive"},
        {"{\"protocol\":\"choria:request:1\",\"message\":\"eA==\"}", "protocol must be"},
        {"{\"protocol\":\"io.choria.protocol.v2.request\",\"message\":\"eA==\",\"id\":\"a b\","
         "\"sender\":\"s\",\"caller\":\"c\",\"collective\":\"c\",\"agent\":\"a\",\"ttl\":1,"
         "\"time\":1}",
         "id must be printable"},
    };
    for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
        char *b64 = ch_base64_encode(bad_requests[i][0], strlen(bad_requests[i][0]));
        assert_true(asprintf(&sr,
                             "{\"protocol\":\"%s\",\"request\":\"%s\",\"signature\":\"a\","
                             "\"caller\":\"x\"}",
                             CH_PROTOCOL_SECURE_REQUEST_V2, b64) > 0);
        p = wrap(sr);
        expect_request_refused(p, NULL, bad_requests[i][1]);
        free(b64), free(sr), free(p);
    }
    free(req_b64);
    free(req);
}

static void test_versions_do_not_mix(void **state)
{
    (void)state;
    ch_error err;
    char *v2 = encode(NULL, &PARAMS);
    ch_request_params p1 = PARAMS;
    p1.requestid = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    p1.ttl = 60;
    char *v1 = NULL;
    CHT_CHECK(ch_protocol_encode_request(ch_protocol_v1(), NULL, &p1, &v1, NULL, &err), &err);
    assert_ptr_equal(ch_protocol_detect(v1, strlen(v1)), ch_protocol_v1());
    assert_null(ch_protocol_detect("{\"protocol\":\"x\"}", 16));
    assert_null(ch_protocol_detect("garbage", 7));
    expect_request_refused(v1, NULL, "protocol must be io.choria.protocol.v2.transport");
    ch_request_payload out;
    assert_int_not_equal(
        ch_protocol_decode_request(ch_protocol_v1(), NULL, v2, strlen(v2), &out, &err), CH_OK);
    assert_non_null(strstr(err.msg, "protocol must be choria:transport:1"));
    free(v1);
    free(v2);
    assert_ptr_equal(ch_protocol_for_security(NULL), ch_protocol_v1());
    assert_ptr_equal(ch_protocol_for_security(ch_security_insecure()), ch_protocol_v1());
}

static void test_reply_hash_mismatch_is_refused(void **state)
{
    (void)state;
    const char *reply = "{\"protocol\":\"io.choria.protocol.v2.reply\",\"message\":\"eA==\","
                        "\"request\":\"r\",\"sender\":\"s\",\"agent\":\"a\",\"time\":1}";
    char *b64 = ch_base64_encode(reply, strlen(reply)), *sr = NULL;
    assert_true(asprintf(&sr, "{\"protocol\":\"%s\",\"reply\":\"%s\",\"hash\":\"AAAA\"}",
                         CH_PROTOCOL_SECURE_REPLY_V2, b64) > 0);
    char *p = wrap(sr);
    ch_reply_payload out;
    ch_error err;
    assert_int_equal(ch_protocol_decode_reply(ch_protocol_v2(), NULL, p, strlen(p), &out, &err),
                     CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "reply hash mismatch"));
    free(b64), free(sr), free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insecure_request_layers_and_round_trip),
        cmocka_unit_test(test_reply_round_trip_with_signature),
        cmocka_unit_test(test_decoder_refusals),
        cmocka_unit_test(test_versions_do_not_mix),
        cmocka_unit_test(test_reply_hash_mismatch_is_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
