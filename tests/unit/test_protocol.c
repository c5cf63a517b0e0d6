/* Choria protocol v1: go-choria's bytes, round trips, validation, hashes, TTL, subjects and
 * hostile input. Golden strings were produced independently (Python json + base64 + hashlib
 * with Go's escaping rules) from the worked example in spec section 5.7. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "choria/json.h"
#include "choria/protocol.h"
#include "choria/util.h"

/* Spec 5.7 (the spec's Request line abbreviates the nonce as "0f1e…"; this is it in full). */
static const char GOLDEN_REQUEST[] =
    "{\"protocol\":\"choria:request:1\",\"message\":\"{\\\"agent\\\":\\\"choria_provision\\\""
    ",\\\"action\\\":\\\"gen25519\\\",\\\"data\\\":{\\\"nonce\\\":\\\"0f1e2d3c4b5a69788796a5b"
    "4c3d2e1f0\\\",\\\"token\\\":\\\"s3cret\\\"}}\",\"envelope\":{\"requestid\":\"a1b2c3d4e5f"
    "60718293a4b5c6d7e8f90\",\"senderid\":\"provisioner.example.net\",\"callerid\":\"choria=p"
    "rovisioner.mcollective\",\"collective\":\"provisioning\",\"agent\":\"choria_provision\","
    "\"ttl\":60,\"time\":1718000000,\"filter\":{\"fact\":[],\"cf_class\":[],\"agent\":[],\"id"
    "entity\":[],\"compound\":[]}}}";
static const char GOLDEN_SECURE_REQUEST[] =
    "{\"protocol\":\"choria:secure:request:1\",\"message\":\"{\\\"protocol\\\":\\\"choria:req"
    "uest:1\\\",\\\"message\\\":\\\"{\\\\\\\"agent\\\\\\\":\\\\\\\"choria_provision\\\\\\\","
    "\\\\\\\"action\\\\\\\":\\\\\\\"gen25519\\\\\\\",\\\\\\\"data\\\\\\\":{\\\\\\\"nonce\\\\"
    "\\\":\\\\\\\"0f1e2d3c4b5a69788796a5b4c3d2e1f0\\\\\\\",\\\\\\\"token\\\\\\\":\\\\\\\"s3cr"
    "et\\\\\\\"}}\\\",\\\"envelope\\\":{\\\"requestid\\\":\\\"a1b2c3d4e5f60718293a4b5c6d7e8f9"
    "0\\\",\\\"senderid\\\":\\\"provisioner.example.net\\\",\\\"callerid\\\":\\\"choria=provi"
    "sioner.mcollective\\\",\\\"collective\\\":\\\"provisioning\\\",\\\"agent\\\":\\\"choria_"
    "provision\\\",\\\"ttl\\\":60,\\\"time\\\":1718000000,\\\"filter\\\":{\\\"fact\\\":[],\\"
    "\"cf_class\\\":[],\\\"agent\\\":[],\\\"identity\\\":[],\\\"compound\\\":[]}}}\",\"signat"
    "ure\":\"insecure\",\"pubcert\":\"insecure\"}";
static const char GOLDEN_TRANSPORT[] =
    "{\"protocol\":\"choria:transport:1\",\"data\":\"eyJwcm90b2NvbCI6ImNob3JpYTpzZWN1cmU6cmVx"
    "dWVzdDoxIiwibWVzc2FnZSI6IntcInByb3RvY29sXCI6XCJjaG9yaWE6cmVxdWVzdDoxXCIsXCJtZXNzYWdlXCI6"
    "XCJ7XFxcImFnZW50XFxcIjpcXFwiY2hvcmlhX3Byb3Zpc2lvblxcXCIsXFxcImFjdGlvblxcXCI6XFxcImdlbjI1"
    "NTE5XFxcIixcXFwiZGF0YVxcXCI6e1xcXCJub25jZVxcXCI6XFxcIjBmMWUyZDNjNGI1YTY5Nzg4Nzk2YTViNGMz"
    "ZDJlMWYwXFxcIixcXFwidG9rZW5cXFwiOlxcXCJzM2NyZXRcXFwifX1cIixcImVudmVsb3BlXCI6e1wicmVxdWVz"
    "dGlkXCI6XCJhMWIyYzNkNGU1ZjYwNzE4MjkzYTRiNWM2ZDdlOGY5MFwiLFwic2VuZGVyaWRcIjpcInByb3Zpc2lv"
    "bmVyLmV4YW1wbGUubmV0XCIsXCJjYWxsZXJpZFwiOlwiY2hvcmlhPXByb3Zpc2lvbmVyLm1jb2xsZWN0aXZlXCIs"
    "XCJjb2xsZWN0aXZlXCI6XCJwcm92aXNpb25pbmdcIixcImFnZW50XCI6XCJjaG9yaWFfcHJvdmlzaW9uXCIsXCJ0"
    "dGxcIjo2MCxcInRpbWVcIjoxNzE4MDAwMDAwLFwiZmlsdGVyXCI6e1wiZmFjdFwiOltdLFwiY2ZfY2xhc3NcIjpb"
    "XSxcImFnZW50XCI6W10sXCJpZGVudGl0eVwiOltdLFwiY29tcG91bmRcIjpbXX19fSIsInNpZ25hdHVyZSI6Imlu"
    "c2VjdXJlIiwicHViY2VydCI6Imluc2VjdXJlIn0=\",\"headers\":{\"reply-to\":\"provisioning.repl"
    "y.344aa967e9f3339639bf1c959876175b.a1b2c3d4e5f60718293a4b5c6d7e8f90\",\"mc_sender\":\"pr"
    "ovisioner.example.net\",\"seen-by\":[[\"nats://broker.example.net:4222\",\"provisioner.e"
    "xample.net\",\"nats://broker.example.net:4222\"]]}}";
static const char GOLDEN_REPLY[] =
    "{\"protocol\":\"choria:reply:1\",\"message\":\"{\\\"action\\\":\\\"gen25519\\\",\\\"stat"
    "uscode\\\":0,\\\"statusmsg\\\":\\\"OK\\\",\\\"data\\\":{\\\"public_key\\\":\\\"ababababa"
    "bababababababababababababababababababababababababababab\\\",\\\"directory\\\":\\\"/etc/c"
    "horia\\\",\\\"signature\\\":\\\"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
    "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\\\"}}\",\"envel"
    "ope\":{\"requestid\":\"a1b2c3d4e5f60718293a4b5c6d7e8f90\",\"senderid\":\"n1.example.net"
    "\",\"agent\":\"choria_provision\",\"time\":1718000001}}";
static const char GOLDEN_SECURE_REPLY[] =
    "{\"protocol\":\"choria:secure:reply:1\",\"message\":\"{\\\"protocol\\\":\\\"choria:reply"
    ":1\\\",\\\"message\\\":\\\"{\\\\\\\"action\\\\\\\":\\\\\\\"gen25519\\\\\\\",\\\\\\\"stat"
    "uscode\\\\\\\":0,\\\\\\\"statusmsg\\\\\\\":\\\\\\\"OK\\\\\\\",\\\\\\\"data\\\\\\\":{\\\\"
    "\\\"public_key\\\\\\\":\\\\\\\"ababababababababababababababababababababababababababababa"
    "bababab\\\\\\\",\\\\\\\"directory\\\\\\\":\\\\\\\"/etc/choria\\\\\\\",\\\\\\\"signature"
    "\\\\\\\":\\\\\\\"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdc"
    "dcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\\\\\\\"}}\\\",\\\"envelope\\\""
    ":{\\\"requestid\\\":\\\"a1b2c3d4e5f60718293a4b5c6d7e8f90\\\",\\\"senderid\\\":\\\"n1.exa"
    "mple.net\\\",\\\"agent\\\":\\\"choria_provision\\\",\\\"time\\\":1718000001}}\",\"hash\""
    ":\"743ciHM1cmYHqf0azV7QD5N9Rq1d3M3EPDSAiLx+t1Q=\"}";
static const char GOLDEN_REPLY_TRANSPORT[] =
    "{\"protocol\":\"choria:transport:1\",\"data\":\"eyJwcm90b2NvbCI6ImNob3JpYTpzZWN1cmU6cmVw"
    "bHk6MSIsIm1lc3NhZ2UiOiJ7XCJwcm90b2NvbFwiOlwiY2hvcmlhOnJlcGx5OjFcIixcIm1lc3NhZ2VcIjpcIntc"
    "XFwiYWN0aW9uXFxcIjpcXFwiZ2VuMjU1MTlcXFwiLFxcXCJzdGF0dXNjb2RlXFxcIjowLFxcXCJzdGF0dXNtc2dc"
    "XFwiOlxcXCJPS1xcXCIsXFxcImRhdGFcXFwiOntcXFwicHVibGljX2tleVxcXCI6XFxcImFiYWJhYmFiYWJhYmFi"
    "YWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJcXFwiLFxcXCJkaXJlY3Rv"
    "cnlcXFwiOlxcXCIvZXRjL2Nob3JpYVxcXCIsXFxcInNpZ25hdHVyZVxcXCI6XFxcImNkY2RjZGNkY2RjZGNkY2Rj"
    "ZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2Rj"
    "ZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkY2RjZGNkXFxcIn19XCIsXCJlbnZlbG9wZVwi"
    "OntcInJlcXVlc3RpZFwiOlwiYTFiMmMzZDRlNWY2MDcxODI5M2E0YjVjNmQ3ZThmOTBcIixcInNlbmRlcmlkXCI6"
    "XCJuMS5leGFtcGxlLm5ldFwiLFwiYWdlbnRcIjpcImNob3JpYV9wcm92aXNpb25cIixcInRpbWVcIjoxNzE4MDAw"
    "MDAxfX0iLCJoYXNoIjoiNzQzY2lITTFjbVlIcWYwYXpWN1FENU45UnExZDNNM0VQRFNBaUx4K3QxUT0ifQ==\","
    "\"headers\":{\"mc_sender\":\"n1.example.net\",\"seen-by\":[[\"nats://broker.example.net:"
    "4222\",\"n1.example.net\",\"nats://broker.example.net:4222\"]]}}";
static const char GOLDEN_REPLY_HASH[] = "743ciHM1cmYHqf0azV7QD5N9Rq1d3M3EPDSAiLx+t1Q=";

#define EX_BODY                                                                                    \
    "{\"agent\":\"choria_provision\",\"action\":\"gen25519\",\"data\":{\"nonce\":"                 \
    "\"0f1e2d3c4b5a69788796a5b4c3d2e1f0\",\"token\":\"s3cret\"}}"
#define EX_REPLY_BODY                                                                              \
    "{\"action\":\"gen25519\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{\"public_key\":"     \
    "\"abababababababababababababababababababababababababababababababab\",\"directory\":\"/etc/"   \
    "choria\",\"signature\":\"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"    \
    "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\"}}"
#define EX_ID "a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define EX_CALLER "choria=provisioner.mcollective"
#define EX_URL "nats://broker.example.net:4222"

static ch_request_params example_params(void)
{
    ch_request_params p = {.body = EX_BODY,
                           .agent = "choria_provision",
                           .collective = "provisioning",
                           .callerid = EX_CALLER,
                           .senderid = "provisioner.example.net",
                           .requestid = EX_ID,
                           .ttl = 60,
                           .time = 1718000000,
                           .connected_url = EX_URL};
    return p;
}

static ch_request example_request(void)
{
    ch_request r = {.message = EX_BODY,
                    .envelope = {.requestid = EX_ID,
                                 .senderid = "provisioner.example.net",
                                 .callerid = EX_CALLER,
                                 .collective = "provisioning",
                                 .agent = "choria_provision",
                                 .ttl = 60,
                                 .time = 1718000000}};
    return r;
}

/* ---- golden bytes ---------------------------------------------------------------------- */

static void request_encodes_to_spec_worked_example(void **state)
{
    (void)state;
    ch_request r = example_request();
    char *out = NULL;
    size_t len = 0;
    ch_error err;
    assert_int_equal(ch_protocol_request_encode(&r, &out, &len, &err), CH_OK);
    assert_string_equal(out, GOLDEN_REQUEST);
    assert_int_equal(len, strlen(GOLDEN_REQUEST));
    free(out);
}

static void callerid_md5_matches_spec(void **state)
{
    (void)state;
    char md5[33], caller[64];
    ch_error err;
    assert_int_equal(ch_protocol_callerid("provisioner.mcollective", caller, sizeof(caller), &err),
                     CH_OK);
    assert_string_equal(caller, EX_CALLER);
    ch_md5_hex(caller, strlen(caller), md5);
    assert_string_equal(md5, "344aa967e9f3339639bf1c959876175b");
}

static void request_payload_build_matches_golden_transport(void **state)
{
    (void)state;
    ch_request_params p = example_params();
    char *out = NULL;
    size_t len = 0;
    ch_error err;
    assert_int_equal(ch_protocol_request_payload_build(&p, NULL, &out, &len, &err), CH_OK);
    assert_string_equal(out, GOLDEN_TRANSPORT);
    assert_int_equal(len, strlen(GOLDEN_TRANSPORT));
    /* the spec prints the first bytes of the data field */
    assert_non_null(strstr(out, "\"data\":\"eyJwcm90b2NvbCI6ImNob3JpYTpzZWN1cmU6cmVxdWVzdDoxIiwi"));
    free(out);
}

static void secure_request_encodes_golden_bytes(void **state)
{
    (void)state;
    ch_secure_request sr = {
        .message = GOLDEN_REQUEST, .signature = "insecure", .pubcert = "insecure"};
    char *out = NULL;
    ch_error err;
    assert_int_equal(ch_protocol_secure_request_encode(&sr, &out, NULL, &err), CH_OK);
    assert_string_equal(out, GOLDEN_SECURE_REQUEST);
    free(out);
}

static void reply_payload_build_matches_golden(void **state)
{
    (void)state;
    ch_request r = example_request();
    ch_reply_params p = {.body = EX_REPLY_BODY,
                         .request = &r.envelope,
                         .identity = "n1.example.net",
                         .time = 1718000001,
                         .connected_url = EX_URL};
    char *out = NULL;
    ch_error err;
    assert_int_equal(ch_protocol_reply_payload_build(&p, &out, NULL, &err), CH_OK);
    assert_string_equal(out, GOLDEN_REPLY_TRANSPORT);
    free(out);

    ch_reply rep = {.message = EX_REPLY_BODY,
                    .envelope = {EX_ID, "n1.example.net", "choria_provision", 1718000001}};
    assert_int_equal(ch_protocol_reply_encode(&rep, &out, NULL, &err), CH_OK);
    assert_string_equal(out, GOLDEN_REPLY);
    char hash[CH_PROTOCOL_HASH_LEN + 1];
    assert_int_equal(ch_protocol_reply_hash(out, strlen(out), hash), CH_OK);
    assert_string_equal(hash, GOLDEN_REPLY_HASH);
    free(out);

    ch_secure_reply sr = {.message = GOLDEN_REPLY, .hash = "ignored"};
    assert_int_equal(ch_protocol_secure_reply_encode(&sr, &out, NULL, &err), CH_OK);
    assert_string_equal(out, GOLDEN_SECURE_REPLY);
    free(out);
}

static void encoders_use_go_escaping(void **state)
{
    (void)state;
    ch_request r = example_request();
    r.message = "{\"a\":\"<b>&\\u2028\"}\xe2\x80\xa8\x01\xff";
    char *out = NULL;
    ch_error err;
    assert_int_equal(ch_protocol_request_encode(&r, &out, NULL, &err), CH_OK);
    assert_non_null(strstr(out, "\"message\":\"{\\\"a\\\":\\\"\\u003cb\\u003e\\u0026\\\\u2028\\\"}"
                                "\\u2028\\u0001\\ufffd\""));
    free(out);
}

/* ---- decoding the golden payloads ------------------------------------------------------ */

static void request_payload_decodes_all_layers(void **state)
{
    (void)state;
    ch_request_payload p;
    ch_error err;
    assert_int_equal(ch_protocol_request_payload_decode(GOLDEN_TRANSPORT, strlen(GOLDEN_TRANSPORT),
                                                        ch_security_insecure(), &p, &err),
                     CH_OK);
    assert_string_equal(p.transport.headers.reply_to,
                        "provisioning.reply.344aa967e9f3339639bf1c959876175b." EX_ID);
    assert_string_equal(p.transport.headers.mc_sender, "provisioner.example.net");
    assert_int_equal(p.transport.headers.n_seen_by, 1);
    assert_string_equal(p.transport.headers.seen_by[0].in, EX_URL);
    assert_string_equal(p.transport.headers.seen_by[0].processor, "provisioner.example.net");
    assert_null(p.transport.headers.federation);
    assert_memory_equal(p.transport.data, GOLDEN_SECURE_REQUEST, p.transport.data_len);
    assert_string_equal(p.secure.message, GOLDEN_REQUEST);
    assert_string_equal(p.secure.signature, "insecure");
    assert_string_equal(p.secure.pubcert, "insecure");
    assert_string_equal(p.request.message, EX_BODY);
    const ch_request_envelope *e = &p.request.envelope;
    assert_string_equal(e->requestid, EX_ID);
    assert_string_equal(e->senderid, "provisioner.example.net");
    assert_string_equal(e->callerid, EX_CALLER);
    assert_string_equal(e->collective, "provisioning");
    assert_string_equal(e->agent, "choria_provision");
    assert_int_equal(e->ttl, 60);
    assert_int_equal(e->time, 1718000000);
    assert_true(ch_filter_is_empty(&e->filter));
    ch_protocol_request_payload_clear(&p);
    ch_protocol_request_payload_clear(&p); /* clear twice is harmless */
}

static void reply_payload_decodes_and_verifies_hash(void **state)
{
    (void)state;
    ch_reply_payload p;
    ch_error err;
    assert_int_equal(ch_protocol_reply_payload_decode(GOLDEN_REPLY_TRANSPORT,
                                                      strlen(GOLDEN_REPLY_TRANSPORT), &p, &err),
                     CH_OK);
    assert_null(p.transport.headers.reply_to);
    assert_string_equal(p.transport.headers.mc_sender, "n1.example.net");
    assert_string_equal(p.secure.hash, GOLDEN_REPLY_HASH);
    assert_string_equal(p.reply.message, EX_REPLY_BODY);
    assert_string_equal(p.reply.envelope.requestid, EX_ID);
    assert_string_equal(p.reply.envelope.senderid, "n1.example.net");
    assert_string_equal(p.reply.envelope.agent, "choria_provision");
    assert_int_equal(p.reply.envelope.time, 1718000001);
    ch_protocol_reply_payload_clear(&p);
}

/* ---- round trips ----------------------------------------------------------------------- */

static void transport_round_trips_with_federation(void **state)
{
    (void)state;
    const char *targets[] = {"n1.example.net", "n2.example.net"};
    ch_federation fed = {.req = EX_ID, .reply_to = "x.reply.y", .targets = targets, .n_targets = 2};
    ch_seen_by hops[2] = {{"a", "b", "c"}, {NULL, "d", ""}};
    const unsigned char data[] = {'{', 0, 1, 0xff, '}'};
    ch_transport t = {.data = data,
                      .data_len = sizeof(data),
                      .headers = {.reply_to = "r.t",
                                  .mc_sender = "me",
                                  .seen_by = hops,
                                  .n_seen_by = 2,
                                  .federation = &fed}};
    char *out = NULL, *again = NULL;
    size_t len = 0;
    ch_error err;
    assert_int_equal(ch_protocol_transport_encode(&t, &out, &len, &err), CH_OK);
    assert_string_equal(out,
                        "{\"protocol\":\"choria:transport:1\",\"data\":\"ewAB/30=\","
                        "\"headers\":{\"reply-to\":\"r.t\",\"mc_sender\":\"me\",\"seen-by\":"
                        "[[\"a\",\"b\",\"c\"],[\"\",\"d\",\"\"]],\"federation\":{\"req\":\"" EX_ID
                        "\",\"reply-to\":\"x.reply.y\",\"target\":[\"n1.example.net\","
                        "\"n2.example.net\"]}}}");
    ch_transport d;
    assert_int_equal(ch_protocol_transport_decode(out, len, &d, &err), CH_OK);
    assert_int_equal(d.data_len, sizeof(data));
    assert_memory_equal(d.data, data, sizeof(data));
    assert_non_null(d.headers.federation);
    assert_int_equal(d.headers.federation->n_targets, 2);
    assert_string_equal(d.headers.federation->targets[1], "n2.example.net");
    assert_int_equal(ch_protocol_transport_encode(&d, &again, NULL, &err), CH_OK);
    assert_string_equal(out, again);
    ch_protocol_transport_clear(&d);
    free(out);
    free(again);

    /* omitempty: no headers at all, and an empty federation object */
    ch_federation none = {0};
    ch_transport bare = {.data = (const unsigned char *)"x", .data_len = 1};
    assert_int_equal(ch_protocol_transport_encode(&bare, &out, NULL, &err), CH_OK);
    assert_string_equal(out,
                        "{\"protocol\":\"choria:transport:1\",\"data\":\"eA==\",\"headers\":{}}");
    free(out);
    bare.headers.federation = &none;
    bare.headers.reply_to = "";
    assert_int_equal(ch_protocol_transport_encode(&bare, &out, NULL, &err), CH_OK);
    assert_string_equal(out, "{\"protocol\":\"choria:transport:1\",\"data\":\"eA==\",\"headers\":"
                             "{\"federation\":{}}}");
    free(out);
}

static void request_with_filter_round_trips(void **state)
{
    (void)state;
    ch_fact_filter facts[] = {{"os.family", CH_FACT_OP_EQ, "debian"},
                              {"mem", CH_FACT_OP_GE, "1024"}};
    const char *classes[] = {"base", "/web/"};
    const char *agents[] = {"choria_provision"};
    const char *ids[] = {"n1.example.net", "/^n2/"};
    ch_request r = example_request();
    r.envelope.filter = (ch_filter){.facts = facts,
                                    .n_facts = 2,
                                    .classes = classes,
                                    .n_classes = 2,
                                    .agents = agents,
                                    .n_agents = 1,
                                    .identities = ids,
                                    .n_identities = 2};
    char *out = NULL, *again = NULL;
    size_t len;
    ch_error err;
    assert_int_equal(ch_protocol_request_encode(&r, &out, &len, &err), CH_OK);
    assert_non_null(strstr(out,
                           "\"filter\":{\"fact\":[{\"fact\":\"os.family\",\"operator\":\"==\","
                           "\"value\":\"debian\"},{\"fact\":\"mem\",\"operator\":\"\\u003e=\","
                           "\"value\":\"1024\"}],\"cf_class\":[\"base\",\"/web/\"],\"agent\":"
                           "[\"choria_provision\"],\"identity\":[\"n1.example.net\",\"/^n2/\"],"
                           "\"compound\":[]}}}"));
    ch_request d;
    assert_int_equal(ch_protocol_request_decode(out, len, &d, &err), CH_OK);
    assert_int_equal(d.envelope.filter.n_facts, 2);
    assert_int_equal(d.envelope.filter.facts[1].op, CH_FACT_OP_GE);
    assert_string_equal(d.envelope.filter.identities[1], "/^n2/");
    assert_int_equal(ch_protocol_request_encode(&d, &again, NULL, &err), CH_OK);
    assert_string_equal(out, again);
    ch_protocol_request_clear(&d);
    free(out);
    free(again);
}

static void compound_filter_survives_round_trip_with_sorted_keys(void **state)
{
    (void)state;
    const char *doc = "{\"protocol\":\"choria:request:1\",\"message\":\"x\",\"envelope\":{"
                      "\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"callerid\":\"c\","
                      "\"collective\":\"c\",\"agent\":\"a\",\"ttl\":60,\"time\":1,\"filter\":{"
                      "\"fact\":[],\"cf_class\":[],\"identity\":[],\"compound\":[[{\"z\":\"1\","
                      "\"expr\":\"with('x')\"}]]}}}";
    ch_request d;
    ch_error err;
    char *out = NULL;
    assert_int_equal(ch_protocol_request_decode(doc, strlen(doc), &d, &err), CH_OK);
    assert_int_equal(d.envelope.filter.n_compound, 1);
    assert_int_equal(d.envelope.filter.n_agents, 0); /* agent is optional */
    assert_int_equal(ch_protocol_request_encode(&d, &out, NULL, &err), CH_OK);
    assert_non_null(strstr(out, "\"agent\":[],\"identity\":[],\"compound\":[[{\"expr\":"
                                "\"with('x')\",\"z\":\"1\"}]]}"));
    free(out);
    ch_protocol_request_clear(&d);
}

static void reply_round_trips(void **state)
{
    (void)state;
    ch_reply r = {.message = "pong", .envelope = {EX_ID, "n1", "discovery", -5}};
    char *out = NULL, *again = NULL;
    size_t len;
    ch_error err;
    assert_int_equal(ch_protocol_reply_encode(&r, &out, &len, &err), CH_OK);
    ch_reply d;
    assert_int_equal(ch_protocol_reply_decode(out, len, &d, &err), CH_OK);
    assert_string_equal(d.message, "pong");
    assert_int_equal(d.envelope.time, -5);
    assert_int_equal(ch_protocol_reply_encode(&d, &again, NULL, &err), CH_OK);
    assert_string_equal(out, again);
    ch_protocol_reply_clear(&d);
    free(out);
    free(again);
}

static void secure_layers_round_trip(void **state)
{
    (void)state;
    ch_secure_request sr = {.message = "{\"m\":1}", .signature = "sig", .pubcert = "-----BEGIN"};
    char *out = NULL, *again = NULL;
    size_t len;
    ch_error err;
    assert_int_equal(ch_protocol_secure_request_encode(&sr, &out, &len, &err), CH_OK);
    ch_secure_request d;
    assert_int_equal(ch_protocol_secure_request_decode(out, len, &d, &err), CH_OK);
    assert_string_equal(d.pubcert, "-----BEGIN");
    assert_int_equal(ch_protocol_secure_request_encode(&d, &again, NULL, &err), CH_OK);
    assert_string_equal(out, again);
    ch_protocol_secure_request_clear(&d);
    free(out);
    free(again);

    ch_secure_reply rep = {.message = "{\"r\":\"\\u00e9\"}"};
    assert_int_equal(ch_protocol_secure_reply_encode(&rep, &out, &len, &err), CH_OK);
    ch_secure_reply rd;
    assert_int_equal(ch_protocol_secure_reply_decode(out, len, &rd, &err), CH_OK);
    assert_string_equal(rd.message, rep.message);
    assert_int_equal(strlen(rd.hash), CH_PROTOCOL_HASH_LEN);
    assert_int_equal(ch_protocol_secure_reply_encode(&rd, &again, NULL, &err), CH_OK);
    assert_string_equal(out, again);
    ch_protocol_secure_reply_clear(&rd);
    free(out);
    free(again);
}

static void full_request_payload_round_trips_with_filter_and_federation(void **state)
{
    (void)state;
    const char *agents[] = {"choria_provision"};
    const char *targets[] = {"n1"};
    ch_filter f = {.agents = agents, .n_agents = 1};
    ch_federation fed = {.req = EX_ID, .targets = targets, .n_targets = 1};
    ch_request_params p = example_params();
    p.filter = &f;
    p.federation = &fed;
    p.reply_to = "custom.reply";
    p.connected_url = NULL;
    char *out = NULL;
    size_t len;
    ch_error err;
    assert_int_equal(ch_protocol_request_payload_build(&p, NULL, &out, &len, &err), CH_OK);
    ch_request_payload d;
    assert_int_equal(ch_protocol_request_payload_decode(out, len, NULL, &d, &err), CH_OK);
    assert_string_equal(d.transport.headers.reply_to, "custom.reply");
    assert_int_equal(d.transport.headers.n_seen_by, 0);
    assert_string_equal(d.transport.headers.federation->targets[0], "n1");
    assert_string_equal(d.request.envelope.filter.agents[0], "choria_provision");

    /* the node answers, copying federation data */
    ch_reply_params rp = {.body = "{}",
                          .request = &d.request.envelope,
                          .identity = "n1",
                          .time = 1718000002,
                          .federation = d.transport.headers.federation};
    char *reply = NULL;
    assert_int_equal(ch_protocol_reply_payload_build(&rp, &reply, &len, &err), CH_OK);
    ch_reply_payload rd;
    assert_int_equal(ch_protocol_reply_payload_decode(reply, len, &rd, &err), CH_OK);
    assert_string_equal(rd.reply.envelope.requestid, EX_ID);
    assert_string_equal(rd.reply.envelope.agent, "choria_provision");
    assert_string_equal(rd.transport.headers.federation->req, EX_ID);
    ch_protocol_reply_payload_clear(&rd);
    ch_protocol_request_payload_clear(&d);
    free(reply);
    free(out);
}

/* ---- reply hash ------------------------------------------------------------------------ */

static char *secure_reply_doc(const char *message_json, const char *hash)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"choria:secure:reply:1\",\"message\":");
    ch_buf_append_json_string(&b, message_json, strlen(message_json));
    ch_buf_append_str(&b, ",\"hash\":");
    ch_buf_append_json_string(&b, hash, strlen(hash));
    ch_buf_append_str(&b, "}");
    return ch_buf_steal(&b, NULL);
}

static void tampered_reply_hash_is_refused(void **state)
{
    (void)state;
    ch_secure_reply d;
    ch_error err;
    char *ok = secure_reply_doc(GOLDEN_REPLY, GOLDEN_REPLY_HASH);
    assert_int_equal(ch_protocol_secure_reply_decode(ok, strlen(ok), &d, &err), CH_OK);
    ch_protocol_secure_reply_clear(&d);
    free(ok);

    char bad_hash[] = "743ciHM1cmYHqf0azV7QD5N9Rq1d3M3EPDSAiLx+t1Q=";
    bad_hash[0] = '8';
    char *doc = secure_reply_doc(GOLDEN_REPLY, bad_hash);
    assert_int_equal(ch_protocol_secure_reply_decode(doc, strlen(doc), &d, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "reply hash mismatch"));
    assert_null(d.message);
    free(doc);

    /* a changed message with the original hash */
    char *msg = strdup(GOLDEN_REPLY);
    msg[strlen(msg) - 3] = '2'; /* time 1718000001 -> 1718000021 */
    doc = secure_reply_doc(msg, GOLDEN_REPLY_HASH);
    assert_int_equal(ch_protocol_secure_reply_decode(doc, strlen(doc), &d, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "reply hash mismatch"));
    free(doc);
    free(msg);

    /* the whole payload path verifies too */
    char *hashless = secure_reply_doc(GOLDEN_REPLY, "AAAA");
    ch_transport t = {.data = (const unsigned char *)hashless, .data_len = strlen(hashless)};
    char *payload = NULL;
    size_t len;
    assert_int_equal(ch_protocol_transport_encode(&t, &payload, &len, &err), CH_OK);
    ch_reply_payload rp;
    assert_int_equal(ch_protocol_reply_payload_decode(payload, len, &rp, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "reply hash mismatch"));
    free(payload);
    free(hashless);
}

static void reply_hash_covers_unescaped_text(void **state)
{
    (void)state;
    /* The JSON carries "\u003c" but the hash is over the decoded "<". */
    const char *reply =
        "{\"protocol\":\"choria:reply:1\",\"message\":\"<\",\"envelope\":{"
        "\"requestid\":\"" EX_ID "\",\"senderid\":\"n\",\"agent\":\"a\",\"time\":1}}";
    char hash[CH_PROTOCOL_HASH_LEN + 1];
    assert_int_equal(ch_protocol_reply_hash(reply, strlen(reply), hash), CH_OK);
    char *doc = secure_reply_doc(reply, hash);
    assert_non_null(strstr(doc, "\\u003c"));
    ch_secure_reply d;
    ch_error err;
    assert_int_equal(ch_protocol_secure_reply_decode(doc, strlen(doc), &d, &err), CH_OK);
    ch_protocol_secure_reply_clear(&d);
    free(doc);
}

/* ---- message body ---------------------------------------------------------------------- */

static void message_body_decodes_base64_or_keeps_raw(void **state)
{
    (void)state;
    unsigned char *out = NULL;
    size_t len = 0;
    ch_error err;
    assert_int_equal(ch_protocol_message_body("cGluZw==", &out, &len, &err), CH_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(out, "ping", 4);
    free(out);
    assert_int_equal(ch_protocol_message_body(EX_BODY, &out, &len, &err), CH_OK);
    assert_int_equal(len, strlen(EX_BODY));
    assert_string_equal((char *)out, EX_BODY);
    free(out);
    /* unpadded base64 is not valid StdEncoding: kept raw */
    assert_int_equal(ch_protocol_message_body("cGluZw", &out, &len, &err), CH_OK);
    assert_string_equal((char *)out, "cGluZw");
    free(out);
    assert_int_equal(ch_protocol_message_body(NULL, &out, &len, &err), CH_ERR_INVALID);
}

/* ---- validation ------------------------------------------------------------------------ */

typedef struct {
    const char *doc;
    ch_status status;
    const char *msg; /* substring of the error */
} bad_case;

#define ENV_OK                                                                                     \
    "\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"callerid\":\"c=x\",\"collective\":\"c\","    \
    "\"agent\":\"a\",\"ttl\":60,\"time\":1"
#define FILTER_OK "\"filter\":{\"fact\":[],\"cf_class\":[],\"identity\":[],\"compound\":[]}"
#define REQ(env) "{\"protocol\":\"choria:request:1\",\"message\":\"m\",\"envelope\":{" env "}}"
#define REQF(filter) REQ(ENV_OK "," filter)

static void run_cases(const bad_case *cases, size_t n,
                      ch_status (*decode)(const char *, size_t, void *, ch_error *))
{
    for (size_t i = 0; i < n; i++) {
        union {
            ch_request r;
            ch_reply rep;
            ch_secure_request sr;
            ch_secure_reply srep;
            ch_transport t;
        } out;
        ch_error err = {CH_OK, ""};
        ch_status s = decode(cases[i].doc, strlen(cases[i].doc), &out, &err);
        if (s != cases[i].status || strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %zu %s: got %d '%s', want %d '%s'", i, cases[i].doc, s, err.msg,
                     cases[i].status, cases[i].msg);
    }
}

static ch_status dec_request(const char *b, size_t l, void *o, ch_error *e)
{
    ch_status s = ch_protocol_request_decode(b, l, o, e);
    ch_protocol_request_clear(o);
    return s;
}

static void request_validation_rejects_each_rule(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {REQF(FILTER_OK), CH_OK, ""},
        {"{\"protocol\":\"choria:request:2\",\"message\":\"m\",\"envelope\":{" ENV_OK "," FILTER_OK
         "}}",
         CH_ERR_INVALID, "protocol must be choria:request:1"},
        {"{\"message\":\"m\",\"envelope\":{" ENV_OK "," FILTER_OK "}}", CH_ERR_INVALID,
         "protocol is required"},
        {"{\"protocol\":\"choria:request:1\",\"envelope\":{" ENV_OK "," FILTER_OK "}}",
         CH_ERR_INVALID, "message is required"},
        {"{\"protocol\":\"choria:request:1\",\"message\":\"\",\"envelope\":{" ENV_OK "," FILTER_OK
         "}}",
         CH_ERR_INVALID, "message must not be empty"},
        {"{\"protocol\":\"choria:request:1\",\"message\":{},\"envelope\":{" ENV_OK "," FILTER_OK
         "}}",
         CH_ERR_INVALID, "message must be a string"},
        {"{\"protocol\":\"choria:request:1\",\"message\":\"m\"}", CH_ERR_INVALID,
         "envelope is required"},
        {"{\"protocol\":\"choria:request:1\",\"message\":\"m\",\"envelope\":[]}", CH_ERR_INVALID,
         "envelope must be an object"},
        {REQ("\"requestid\":\"a1b2c3d4e5f60718293a4b5c6d7e8f9\",\"senderid\":\"s\",\"callerid\":"
             "\"c\",\"collective\":\"c\",\"agent\":\"a\",\"ttl\":60,\"time\":1," FILTER_OK),
         CH_ERR_INVALID, "requestid must be exactly 32"},
        {REQ("\"requestid\":\"a1b2c3d4e5f60718293a4b5c6d7e8f901\",\"senderid\":\"s\",\"callerid\":"
             "\"c\",\"collective\":\"c\",\"agent\":\"a\",\"ttl\":60,\"time\":1," FILTER_OK),
         CH_ERR_INVALID, "requestid must be exactly 32"},
        {REQ("\"senderid\":\"s\",\"callerid\":\"c\",\"collective\":\"c\",\"agent\":\"a\",\"ttl\":"
             "60,\"time\":1," FILTER_OK),
         CH_ERR_INVALID, "requestid is required"},
        {REQ("\"requestid\":\"" EX_ID "\",\"callerid\":\"c\",\"collective\":\"c\",\"agent\":\"a\","
             "\"ttl\":60,\"time\":1," FILTER_OK),
         CH_ERR_INVALID, "senderid is required"},
        {REQ("\"requestid\":\"" EX_ID "\",\"senderid\":1,\"callerid\":\"c\",\"collective\":\"c\","
             "\"agent\":\"a\",\"ttl\":60,\"time\":1," FILTER_OK),
         CH_ERR_INVALID, "senderid must be a string"},
        {REQ("\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"callerid\":\"\",\"collective\":"
             "\"c\",\"agent\":\"a\",\"ttl\":60,\"time\":1," FILTER_OK),
         CH_ERR_INVALID, "callerid must not be empty"},
        {REQ("\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"callerid\":\"c\",\"collective\":"
             "\"\",\"agent\":\"a\",\"ttl\":60,\"time\":1," FILTER_OK),
         CH_ERR_INVALID, "collective must not be empty"},
        {REQ("\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"callerid\":\"c\",\"collective\":"
             "\"c\",\"agent\":\"\",\"ttl\":60,\"time\":1," FILTER_OK),
         CH_ERR_INVALID, "agent must not be empty"},
        {REQ("\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"callerid\":\"c\",\"collective\":"
             "\"c\",\"agent\":\"a\",\"ttl\":29,\"time\":1," FILTER_OK),
         CH_ERR_INVALID, "ttl must be at least 30"},
        {REQ("\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"callerid\":\"c\",\"collective\":"
             "\"c\",\"agent\":\"a\",\"ttl\":60.0,\"time\":1," FILTER_OK),
         CH_ERR_INVALID, "ttl must be an integer"},
        {REQ("\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"callerid\":\"c\",\"collective\":"
             "\"c\",\"agent\":\"a\",\"ttl\":\"60\",\"time\":1," FILTER_OK),
         CH_ERR_INVALID, "ttl must be an integer"},
        {REQ("\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"callerid\":\"c\",\"collective\":"
             "\"c\",\"agent\":\"a\",\"time\":1," FILTER_OK),
         CH_ERR_INVALID, "ttl is required"},
        {REQ("\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"callerid\":\"c\",\"collective\":"
             "\"c\",\"agent\":\"a\",\"ttl\":60,\"time\":1.5," FILTER_OK),
         CH_ERR_INVALID, "time must be an integer"},
        {REQ("\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"callerid\":\"c\",\"collective\":"
             "\"c\",\"agent\":\"a\",\"ttl\":60," FILTER_OK),
         CH_ERR_INVALID, "time is required"},
        {REQ(ENV_OK), CH_ERR_INVALID, "filter is required"},
        {REQF("\"filter\":[]"), CH_ERR_INVALID, "filter must be an object"},
        {REQF("\"filter\":{\"cf_class\":[],\"identity\":[],\"compound\":[]}"), CH_ERR_INVALID,
         "fact is required"},
        {REQF("\"filter\":{\"fact\":[],\"identity\":[],\"compound\":[]}"), CH_ERR_INVALID,
         "cf_class is required"},
        {REQF("\"filter\":{\"fact\":[],\"cf_class\":[],\"compound\":[]}"), CH_ERR_INVALID,
         "identity is required"},
        {REQF("\"filter\":{\"fact\":[],\"cf_class\":[],\"identity\":[]}"), CH_ERR_INVALID,
         "compound is required"},
        {REQF("\"filter\":{\"fact\":null,\"cf_class\":[],\"identity\":[],\"compound\":[]}"),
         CH_ERR_INVALID, "fact must be an array"},
        {REQF("\"filter\":{\"fact\":[{\"fact\":\"a\",\"operator\":\"~=\",\"value\":\"b\"}],"
              "\"cf_class\":[],\"identity\":[],\"compound\":[]}"),
         CH_ERR_INVALID, "unknown operator"},
        {REQF("\"filter\":{\"fact\":[{\"fact\":\"a\",\"operator\":\"==\",\"value\":\"\"}],"
              "\"cf_class\":[],\"identity\":[],\"compound\":[]}"),
         CH_ERR_INVALID, "must not be empty"},
        {REQF("\"filter\":{\"fact\":[{\"fact\":\"\",\"operator\":\"==\",\"value\":\"b\"}],"
              "\"cf_class\":[],\"identity\":[],\"compound\":[]}"),
         CH_ERR_INVALID, "must not be empty"},
        {REQF("\"filter\":{\"fact\":[{\"fact\":\"a\",\"operator\":\"==\"}],"
              "\"cf_class\":[],\"identity\":[],\"compound\":[]}"),
         CH_ERR_INVALID, "needs fact, operator and value"},
        {REQF("\"filter\":{\"fact\":[\"a\"],\"cf_class\":[],\"identity\":[],\"compound\":[]}"),
         CH_ERR_INVALID, "fact[0] must be an object"},
        {REQF("\"filter\":{\"fact\":[],\"cf_class\":[],\"identity\":[1],\"compound\":[]}"),
         CH_ERR_INVALID, "identity[0] must be a string"},
        {REQF("\"filter\":{\"fact\":[],\"cf_class\":[],\"agent\":{},\"identity\":[],"
              "\"compound\":[]}"),
         CH_ERR_INVALID, "agent must be an array"},
        {REQF("\"filter\":{\"fact\":[],\"cf_class\":[],\"identity\":[],\"compound\":[{}]}"),
         CH_ERR_INVALID, "compound[0] must be an array"},
        {REQF("\"filter\":{\"fact\":[],\"cf_class\":[],\"identity\":[],\"compound\":[[1]]}"),
         CH_ERR_INVALID, "compound[0][0] must be an object"},
        {REQF(
             "\"filter\":{\"fact\":[],\"cf_class\":[],\"identity\":[],\"compound\":[[{\"e\":1}]]}"),
         CH_ERR_INVALID, "must be a string"},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]), dec_request);
}

static ch_status dec_reply(const char *b, size_t l, void *o, ch_error *e)
{
    ch_status s = ch_protocol_reply_decode(b, l, o, e);
    ch_protocol_reply_clear(o);
    return s;
}

#define REP(env) "{\"protocol\":\"choria:reply:1\",\"message\":\"m\",\"envelope\":{" env "}}"

static void reply_validation_rejects_each_rule(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {REP("\"requestid\":\"" EX_ID "\",\"senderid\":\"\",\"agent\":\"a\",\"time\":1"), CH_OK,
         ""},
        {"{\"protocol\":\"choria:request:1\",\"message\":\"m\",\"envelope\":{\"requestid\":\"" EX_ID
         "\",\"senderid\":\"s\",\"agent\":\"a\",\"time\":1}}",
         CH_ERR_INVALID, "protocol must be choria:reply:1"},
        {"{\"protocol\":\"choria:reply:1\",\"message\":\"\",\"envelope\":{\"requestid\":\"" EX_ID
         "\",\"senderid\":\"s\",\"agent\":\"a\",\"time\":1}}",
         CH_ERR_INVALID, "message must not be empty"},
        {"{\"protocol\":\"choria:reply:1\",\"message\":\"m\"}", CH_ERR_INVALID,
         "envelope is required"},
        {REP("\"requestid\":\"short\",\"senderid\":\"s\",\"agent\":\"a\",\"time\":1"),
         CH_ERR_INVALID, "requestid must be exactly 32"},
        {REP("\"requestid\":\"" EX_ID "\",\"agent\":\"a\",\"time\":1"), CH_ERR_INVALID,
         "senderid is required"},
        {REP("\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"agent\":\"\",\"time\":1"),
         CH_ERR_INVALID, "agent must not be empty"},
        {REP("\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"agent\":\"a\",\"time\":\"1\""),
         CH_ERR_INVALID, "time must be an integer"},
        {REP("\"requestid\":\"" EX_ID "\",\"senderid\":\"s\",\"agent\":\"a\""), CH_ERR_INVALID,
         "time is required"},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]), dec_reply);
}

static ch_status dec_secure_request(const char *b, size_t l, void *o, ch_error *e)
{
    ch_status s = ch_protocol_secure_request_decode(b, l, o, e);
    ch_protocol_secure_request_clear(o);
    return s;
}

static void secure_request_validation_rejects_each_rule(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"{\"protocol\":\"choria:secure:request:1\",\"message\":\"m\",\"signature\":\"s\","
         "\"pubcert\":\"p\"}",
         CH_OK, ""},
        {"{\"protocol\":\"choria:secure:reply:1\",\"message\":\"m\",\"signature\":\"s\","
         "\"pubcert\":\"p\"}",
         CH_ERR_INVALID, "protocol must be choria:secure:request:1"},
        {"{\"protocol\":\"choria:secure:request:1\",\"signature\":\"s\",\"pubcert\":\"p\"}",
         CH_ERR_INVALID, "message is required"},
        {"{\"protocol\":\"choria:secure:request:1\",\"message\":\"\",\"signature\":\"s\","
         "\"pubcert\":\"p\"}",
         CH_ERR_INVALID, "message must not be empty"},
        {"{\"protocol\":\"choria:secure:request:1\",\"message\":\"m\",\"pubcert\":\"p\"}",
         CH_ERR_INVALID, "signature is required"},
        {"{\"protocol\":\"choria:secure:request:1\",\"message\":\"m\",\"signature\":\"\","
         "\"pubcert\":\"p\"}",
         CH_ERR_INVALID, "signature must not be empty"},
        {"{\"protocol\":\"choria:secure:request:1\",\"message\":\"m\",\"signature\":\"s\"}",
         CH_ERR_INVALID, "pubcert is required"},
        {"{\"protocol\":\"choria:secure:request:1\",\"message\":\"m\",\"signature\":\"s\","
         "\"pubcert\":[]}",
         CH_ERR_INVALID, "pubcert must be a string"},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]), dec_secure_request);
}

static ch_status dec_secure_reply(const char *b, size_t l, void *o, ch_error *e)
{
    ch_status s = ch_protocol_secure_reply_decode(b, l, o, e);
    ch_protocol_secure_reply_clear(o);
    return s;
}

static void secure_reply_validation_rejects_each_rule(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"{\"protocol\":\"choria:secure:reply:2\",\"message\":\"m\",\"hash\":\"h\"}",
         CH_ERR_INVALID, "protocol must be choria:secure:reply:1"},
        {"{\"protocol\":\"choria:secure:reply:1\",\"hash\":\"h\"}", CH_ERR_INVALID,
         "message is required"},
        {"{\"protocol\":\"choria:secure:reply:1\",\"message\":\"\",\"hash\":\"h\"}", CH_ERR_INVALID,
         "message must not be empty"},
        {"{\"protocol\":\"choria:secure:reply:1\",\"message\":\"m\"}", CH_ERR_INVALID,
         "hash is required"},
        {"{\"protocol\":\"choria:secure:reply:1\",\"message\":\"m\",\"hash\":\"\"}", CH_ERR_INVALID,
         "hash must not be empty"},
        {"{\"protocol\":\"choria:secure:reply:1\",\"message\":\"m\",\"hash\":\"h\"}",
         CH_ERR_INVALID, "reply hash mismatch"},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]), dec_secure_reply);
}

static ch_status dec_transport(const char *b, size_t l, void *o, ch_error *e)
{
    ch_status s = ch_protocol_transport_decode(b, l, o, e);
    ch_protocol_transport_clear(o);
    return s;
}

#define TP(rest) "{\"protocol\":\"choria:transport:1\",\"data\":\"eA==\"" rest "}"

static void transport_validation_rejects_each_rule(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {TP(""), CH_OK, ""}, /* go-choria tolerates a missing headers object */
        {TP(",\"headers\":{\"reply-to\":null,\"seen-by\":[[\"a\"]]}"), CH_OK, ""},
        {"{\"protocol\":\"choria:transport:2\",\"data\":\"eA==\",\"headers\":{}}", CH_ERR_INVALID,
         "protocol must be choria:transport:1"},
        {"{\"protocol\":\"choria:transport:1\",\"headers\":{}}", CH_ERR_INVALID,
         "data is required"},
        {"{\"protocol\":\"choria:transport:1\",\"data\":\"eA=\",\"headers\":{}}", CH_ERR_INVALID,
         "not valid base64"},
        {"{\"protocol\":\"choria:transport:1\",\"data\":\"{}\",\"headers\":{}}", CH_ERR_INVALID,
         "not valid base64"},
        {"{\"protocol\":\"choria:transport:1\",\"data\":5,\"headers\":{}}", CH_ERR_INVALID,
         "data must be a string"},
        {TP(",\"headers\":[]"), CH_ERR_INVALID, "headers must be an object"},
        {TP(",\"headers\":{\"reply-to\":1}"), CH_ERR_INVALID, "reply-to must be a string"},
        {TP(",\"headers\":{\"mc_sender\":true}"), CH_ERR_INVALID, "mc_sender must be a string"},
        {TP(",\"headers\":{\"seen-by\":{}}"), CH_ERR_INVALID, "seen-by must be an array"},
        {TP(",\"headers\":{\"seen-by\":[\"a\"]}"), CH_ERR_INVALID, "seen-by[0] must be an array"},
        {TP(",\"headers\":{\"seen-by\":[[1]]}"), CH_ERR_INVALID, "seen-by[0][0] must be a string"},
        {TP(",\"headers\":{\"federation\":[]}"), CH_ERR_INVALID, "federation must be an object"},
        {TP(",\"headers\":{\"federation\":{\"target\":\"x\"}}"), CH_ERR_INVALID,
         "target must be an array"},
        {TP(",\"headers\":{\"federation\":{\"target\":[1]}}"), CH_ERR_INVALID,
         "target[0] must be a short string"},
        {TP(",\"headers\":{\"federation\":{\"req\":2}}"), CH_ERR_INVALID, "req must be a string"},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]), dec_transport);
}

static void encoders_refuse_what_decoders_refuse(void **state)
{
    (void)state;
    ch_error err;
    char *out = (char *)"sentinel";
    ch_request r = example_request();
    r.envelope.requestid = "short";
    assert_int_equal(ch_protocol_request_encode(&r, &out, NULL, &err), CH_ERR_INVALID);
    assert_null(out);
    r = example_request();
    r.envelope.ttl = 29;
    assert_int_equal(ch_protocol_request_encode(&r, &out, NULL, &err), CH_ERR_INVALID);
    r = example_request();
    r.message = "";
    assert_int_equal(ch_protocol_request_encode(&r, &out, NULL, &err), CH_ERR_INVALID);
    r = example_request();
    r.envelope.agent = NULL;
    assert_int_equal(ch_protocol_request_encode(&r, &out, NULL, &err), CH_ERR_INVALID);
    ch_fact_filter bad_fact = {"", CH_FACT_OP_EQ, "x"};
    r = example_request();
    r.envelope.filter.facts = &bad_fact;
    r.envelope.filter.n_facts = 1;
    assert_int_equal(ch_protocol_request_encode(&r, &out, NULL, &err), CH_ERR_INVALID);

    ch_reply rep = {.message = "m", .envelope = {EX_ID, "s", "", 1}};
    assert_int_equal(ch_protocol_reply_encode(&rep, &out, NULL, &err), CH_ERR_INVALID);
    ch_secure_request sr = {.message = "m", .signature = "", .pubcert = "p"};
    assert_int_equal(ch_protocol_secure_request_encode(&sr, &out, NULL, &err), CH_ERR_INVALID);
    ch_secure_reply srep = {.message = ""};
    assert_int_equal(ch_protocol_secure_reply_encode(&srep, &out, NULL, &err), CH_ERR_INVALID);

    ch_request_params p = example_params();
    p.collective = "bad.collective";
    assert_int_equal(ch_protocol_request_payload_build(&p, NULL, &out, NULL, &err), CH_ERR_INVALID);
    ch_reply_params rp = {.body = "x", .request = NULL, .identity = "n1", .time = 1};
    assert_int_equal(ch_protocol_reply_payload_build(&rp, &out, NULL, &err), CH_ERR_INVALID);
}

/* ---- full payload errors name the layer ------------------------------------------------ */

static char *transport_around(const char *data)
{
    ch_transport t = {.data = (const unsigned char *)data, .data_len = strlen(data)};
    char *out = NULL;
    ch_error err;
    assert_int_equal(ch_protocol_transport_encode(&t, &out, NULL, &err), CH_OK);
    return out;
}

static void payload_decode_errors_name_the_layer(void **state)
{
    (void)state;
    ch_request_payload p;
    ch_error err;
    assert_int_equal(ch_protocol_request_payload_decode("{", 1, NULL, &p, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "transport:"));

    char *t = transport_around("not json");
    assert_int_equal(ch_protocol_request_payload_decode(t, strlen(t), NULL, &p, &err),
                     CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "secure request:"));
    free(t);

    t = transport_around("{\"protocol\":\"choria:secure:request:1\",\"message\":\"{}\","
                         "\"signature\":\"s\",\"pubcert\":\"p\"}");
    assert_int_equal(ch_protocol_request_payload_decode(t, strlen(t), NULL, &p, &err),
                     CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "request: protocol is required"));
    assert_null(p.transport.data);
    free(t);

    /* a reply payload is not a request payload */
    assert_int_equal(ch_protocol_request_payload_decode(
                         GOLDEN_REPLY_TRANSPORT, strlen(GOLDEN_REPLY_TRANSPORT), NULL, &p, &err),
                     CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "secure request: protocol must be"));
    ch_reply_payload rp;
    assert_int_equal(
        ch_protocol_reply_payload_decode(GOLDEN_TRANSPORT, strlen(GOLDEN_TRANSPORT), &rp, &err),
        CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "secure reply: protocol must be"));
}

/* ---- security -------------------------------------------------------------------------- */

static ch_status refuse_verify(const ch_security *sec, const char *message, size_t len,
                               const char *signature, const char *pubcert, const char *callerid,
                               ch_error *err)
{
    (void)sec;
    (void)message;
    (void)len;
    (void)signature;
    (void)pubcert;
    return ch_error_set(err, CH_ERR_INVALID, "caller %s is not allowed", callerid);
}

static ch_status fixed_sign(const ch_security *sec, const char *message, size_t len,
                            char **signature, char **pubcert, ch_error *err)
{
    (void)sec;
    (void)err;
    char *s = malloc(32);
    snprintf(s, 32, "len=%zu:%c", len, message[0]);
    *signature = s;
    *pubcert = strdup("PEM");
    return CH_OK;
}

static void security_layer_signs_and_verifies(void **state)
{
    (void)state;
    char *sig = NULL, *cert = NULL;
    ch_error err;
    const ch_security *insecure = ch_security_insecure();
    assert_string_equal(ch_security_name(insecure), "insecure");
    assert_int_equal(ch_security_sign(insecure, "x", 1, &sig, &cert, &err), CH_OK);
    assert_string_equal(sig, "insecure");
    assert_string_equal(cert, "insecure");
    free(sig);
    free(cert);
    assert_int_equal(ch_security_verify(insecure, "x", 1, "bogus", "bogus", "c", &err), CH_OK);
    ch_security_free((ch_security *)insecure); /* a no-op on the static provider */

    static const ch_security_ops ops = {
        .name = "test", .sign = fixed_sign, .verify = refuse_verify};
    ch_security custom = {.ops = &ops};
    ch_request_params p = example_params();
    char *out = NULL;
    size_t len;
    assert_int_equal(ch_protocol_request_payload_build(&p, &custom, &out, &len, &err), CH_OK);
    ch_request_payload d;
    /* without verification the custom signature is carried through */
    assert_int_equal(ch_protocol_request_payload_decode(out, len, NULL, &d, &err), CH_OK);
    char want[32];
    snprintf(want, sizeof(want), "len=%zu:{", strlen(GOLDEN_REQUEST));
    assert_string_equal(d.secure.signature, want);
    assert_string_equal(d.secure.pubcert, "PEM");
    ch_protocol_request_payload_clear(&d);
    /* with it, the provider's refusal stops the decode */
    assert_int_equal(ch_protocol_request_payload_decode(out, len, &custom, &d, &err),
                     CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "caller " EX_CALLER " is not allowed"));
    free(out);
}

/* ---- TTL ------------------------------------------------------------------------------- */

static void ttl_window_is_inclusive_both_ways(void **state)
{
    (void)state;
    ch_request_envelope e = {.requestid = EX_ID, .ttl = 60, .time = 940};
    ch_error err;
    assert_int_equal(ch_protocol_ttl_check(&e, 1000, &err), CH_OK);
    e.time = 1060;
    assert_int_equal(ch_protocol_ttl_check(&e, 1000, &err), CH_OK);
    e.time = 1000;
    assert_int_equal(ch_protocol_ttl_check(&e, 1000, &err), CH_OK);
    e.time = 939;
    assert_int_equal(ch_protocol_ttl_check(&e, 1000, &err), CH_ERR_EXPIRED);
    assert_non_null(
        strstr(err.msg, "message " EX_ID " created at 1970-01-01T00:15:39Z is too old"));
    e.time = 1061;
    assert_int_equal(ch_protocol_ttl_check(&e, 1000, &err), CH_ERR_EXPIRED);
    assert_non_null(strstr(err.msg, "too far in the future"));
    /* extreme values do not overflow */
    e.time = INT64_MIN;
    e.ttl = INT64_MAX;
    assert_int_equal(ch_protocol_ttl_check(&e, 1000, &err), CH_ERR_EXPIRED);
    e.time = INT64_MAX;
    assert_int_equal(ch_protocol_ttl_check(&e, 1000, &err), CH_OK);
    e.ttl = 60;
    assert_int_equal(ch_protocol_ttl_check(&e, INT64_MAX, &err), CH_OK);
    assert_int_equal(ch_protocol_ttl_check(&e, INT64_MIN, &err), CH_ERR_EXPIRED);
    assert_non_null(strstr(err.msg, "9223372036854775807"));
}

/* ---- subjects -------------------------------------------------------------------------- */

static void subjects_follow_go_choria(void **state)
{
    (void)state;
    char s[CH_MAX_SUBJECT_LEN];
    ch_error err;
    assert_int_equal(
        ch_protocol_reply_subject("provisioning", EX_CALLER, EX_ID, s, sizeof(s), &err), CH_OK);
    assert_string_equal(s, "provisioning.reply.344aa967e9f3339639bf1c959876175b." EX_ID);
    assert_int_equal(ch_protocol_reply_inbox("provisioning", EX_CALLER, s, sizeof(s), &err), CH_OK);
    assert_string_equal(s, "provisioning.reply.344aa967e9f3339639bf1c959876175b.>");
    assert_int_equal(ch_protocol_node_subject("provisioning", "n1.example.net", s, sizeof(s), &err),
                     CH_OK);
    assert_string_equal(s, "provisioning.node.n1.example.net");
    assert_int_equal(ch_protocol_broadcast_subject("provisioning", "discovery", s, sizeof(s), &err),
                     CH_OK);
    assert_string_equal(s, "provisioning.broadcast.agent.discovery");
    assert_int_equal(ch_protocol_service_subject("mcollective", "aaa_signer", s, sizeof(s), &err),
                     CH_OK);
    assert_string_equal(s, "mcollective.broadcast.service.aaa_signer");

    static const char *const bad_ids[] = {"", "a..b", "n1.*", ">", "a b", "n1.", ".n1", NULL};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++)
        assert_int_equal(ch_protocol_node_subject("provisioning", bad_ids[i], s, sizeof(s), &err),
                         CH_ERR_INVALID);
    assert_int_equal(ch_protocol_broadcast_subject("a.b", "x", s, sizeof(s), &err), CH_ERR_INVALID);
    assert_int_equal(ch_protocol_broadcast_subject("c", "x>", s, sizeof(s), &err), CH_ERR_INVALID);
    assert_int_equal(ch_protocol_service_subject("c", "", s, sizeof(s), &err), CH_ERR_INVALID);
    assert_int_equal(ch_protocol_reply_subject("c", "", EX_ID, s, sizeof(s), &err), CH_ERR_INVALID);
    assert_int_equal(ch_protocol_reply_subject("c", "x", "a.b", s, sizeof(s), &err),
                     CH_ERR_INVALID);
    assert_int_equal(ch_protocol_reply_inbox("c*", "x", s, sizeof(s), &err), CH_ERR_INVALID);
    char tiny[8];
    assert_int_equal(ch_protocol_broadcast_subject("provisioning", "d", tiny, sizeof(tiny), &err),
                     CH_ERR_TOO_LARGE);
    assert_int_equal(ch_protocol_callerid("", s, sizeof(s), &err), CH_ERR_INVALID);
    assert_int_equal(ch_protocol_callerid("long.name", tiny, sizeof(tiny), &err), CH_ERR_TOO_LARGE);
}

/* ---- hostile input --------------------------------------------------------------------- */

static void every_truncation_of_a_payload_is_an_error(void **state)
{
    (void)state;
    size_t n = strlen(GOLDEN_TRANSPORT);
    for (size_t i = 0; i < n; i++) {
        ch_request_payload p;
        ch_error err;
        assert_int_not_equal(
            ch_protocol_request_payload_decode(GOLDEN_TRANSPORT, i, NULL, &p, &err), CH_OK);
        assert_null(p.request.message);
    }
    n = strlen(GOLDEN_REPLY_TRANSPORT);
    for (size_t i = 0; i < n; i++) {
        ch_reply_payload p;
        ch_error err;
        assert_int_not_equal(ch_protocol_reply_payload_decode(GOLDEN_REPLY_TRANSPORT, i, &p, &err),
                             CH_OK);
    }
    /* truncating the inner request inside a valid transport */
    for (size_t i = 0; i < strlen(GOLDEN_SECURE_REQUEST); i += 7) {
        char *inner = strndup(GOLDEN_SECURE_REQUEST, i);
        char *t = transport_around(inner);
        ch_request_payload p;
        ch_error err;
        assert_int_not_equal(ch_protocol_request_payload_decode(t, strlen(t), NULL, &p, &err),
                             CH_OK);
        free(t);
        free(inner);
    }
}

static void deep_huge_and_mistyped_input_is_refused(void **state)
{
    (void)state;
    ch_transport t;
    ch_request r;
    ch_error err;
    /* deep nesting */
    size_t depth = 10000;
    char *deep = malloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    assert_int_equal(ch_protocol_transport_decode(deep, 2 * depth, &t, &err), CH_ERR_TOO_LARGE);
    free(deep);
    /* bigger than a NATS payload may be */
    size_t big = (size_t)CH_MAX_MESSAGE_SIZE + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    assert_int_equal(ch_protocol_request_decode(huge, big, &r, &err), CH_ERR_TOO_LARGE);
    free(huge);
    /* wrong types at the top */
    static const char *const docs[] = {
        "[]",   "1",        "\"x\"",
        "null", "true",     "",
        "{}}",  "{\"a\":}", "{\"protocol\":\"choria:request:1\",\"message\":\"\\u0000\"}"};
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        assert_int_not_equal(ch_protocol_transport_decode(docs[i], strlen(docs[i]), &t, &err),
                             CH_OK);
        assert_int_not_equal(ch_protocol_request_decode(docs[i], strlen(docs[i]), &r, &err), CH_OK);
    }
    /* invalid UTF-8 and embedded NUL */
    const char bad_utf8[] = "{\"protocol\":\"choria:transport:1\",\"data\":\"\xff\"}";
    assert_int_equal(ch_protocol_transport_decode(bad_utf8, sizeof(bad_utf8) - 1, &t, &err),
                     CH_ERR_INVALID);
    const char nul[] = "{\"protocol\":\"choria:transport:1\",\0\"data\":\"eA==\"}";
    assert_int_equal(ch_protocol_transport_decode(nul, sizeof(nul) - 1, &t, &err), CH_ERR_INVALID);
    assert_int_equal(ch_protocol_transport_decode(NULL, 0, &t, &err), CH_ERR_INVALID);
    /* duplicate keys are refused rather than silently picked */
    const char *dup = "{\"protocol\":\"choria:transport:1\",\"protocol\":\"x\",\"data\":\"\"}";
    assert_int_equal(ch_protocol_transport_decode(dup, strlen(dup), &t, &err), CH_ERR_INVALID);
}

static void oversized_lists_and_strings_are_refused(void **state)
{
    (void)state;
    ch_error err;
    ch_transport t;
    /* 1025 seen-by hops */
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"choria:transport:1\",\"data\":\"\",\"headers\":{"
                          "\"seen-by\":[");
    for (int i = 0; i <= CH_PROTOCOL_MAX_LIST; i++)
        ch_buf_append_str(&b, i ? ",[]" : "[]");
    ch_buf_append_str(&b, "]}}");
    size_t len;
    char *doc = ch_buf_steal(&b, &len);
    assert_int_equal(ch_protocol_transport_decode(doc, len, &t, &err), CH_ERR_TOO_LARGE);
    free(doc);
    /* an mc_sender longer than an identity may be */
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"choria:transport:1\",\"data\":\"\",\"headers\":{"
                          "\"mc_sender\":\"");
    for (int i = 0; i <= CH_MAX_IDENTITY_LEN; i++)
        ch_buf_append(&b, "a", 1);
    ch_buf_append_str(&b, "\"}}");
    doc = ch_buf_steal(&b, &len);
    assert_int_equal(ch_protocol_transport_decode(doc, len, &t, &err), CH_ERR_TOO_LARGE);
    free(doc);
    /* a reply senderid likewise, in both directions */
    char id254[CH_MAX_IDENTITY_LEN + 2];
    memset(id254, 'n', sizeof(id254) - 1);
    id254[sizeof(id254) - 1] = '\0';
    ch_reply rep = {.message = "m", .envelope = {EX_ID, id254, "a", 1}};
    char *enc = NULL;
    assert_int_equal(ch_protocol_reply_encode(&rep, &enc, NULL, &err), CH_ERR_TOO_LARGE);
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"choria:reply:1\",\"message\":\"m\",\"envelope\":{"
                          "\"requestid\":\"" EX_ID "\",\"senderid\":\"");
    ch_buf_append_str(&b, id254);
    ch_buf_append_str(&b, "\",\"agent\":\"a\",\"time\":1}}");
    doc = ch_buf_steal(&b, &len);
    ch_reply rd;
    assert_int_equal(ch_protocol_reply_decode(doc, len, &rd, &err), CH_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "senderid is longer than 253"));
    free(doc);
    id254[CH_MAX_IDENTITY_LEN] = '\0'; /* exactly 253 is fine */
    assert_int_equal(ch_protocol_reply_encode(&rep, &enc, &len, &err), CH_OK);
    assert_int_equal(ch_protocol_reply_decode(enc, len, &rd, &err), CH_OK);
    ch_protocol_reply_clear(&rd);
    free(enc);
    /* 1025 identities in a filter */
    ch_buf_init(&b);
    ch_buf_append_str(&b,
                      "{\"protocol\":\"choria:request:1\",\"message\":\"m\",\"envelope\":{" ENV_OK
                      ",\"filter\":{\"fact\":[],\"cf_class\":[],\"compound\":[],\"identity\":[");
    for (int i = 0; i <= CH_FILTER_MAX_ENTRIES; i++)
        ch_buf_append_str(&b, i ? ",\"x\"" : "\"x\"");
    ch_buf_append_str(&b, "]}}}");
    doc = ch_buf_steal(&b, &len);
    ch_request r;
    assert_int_equal(ch_protocol_request_decode(doc, len, &r, &err), CH_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "identity has more than 1024 entries"));
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_encodes_to_spec_worked_example),
        cmocka_unit_test(callerid_md5_matches_spec),
        cmocka_unit_test(request_payload_build_matches_golden_transport),
        cmocka_unit_test(secure_request_encodes_golden_bytes),
        cmocka_unit_test(reply_payload_build_matches_golden),
        cmocka_unit_test(encoders_use_go_escaping),
        cmocka_unit_test(request_payload_decodes_all_layers),
        cmocka_unit_test(reply_payload_decodes_and_verifies_hash),
        cmocka_unit_test(transport_round_trips_with_federation),
        cmocka_unit_test(request_with_filter_round_trips),
        cmocka_unit_test(compound_filter_survives_round_trip_with_sorted_keys),
        cmocka_unit_test(reply_round_trips),
        cmocka_unit_test(secure_layers_round_trip),
        cmocka_unit_test(full_request_payload_round_trips_with_filter_and_federation),
        cmocka_unit_test(tampered_reply_hash_is_refused),
        cmocka_unit_test(reply_hash_covers_unescaped_text),
        cmocka_unit_test(message_body_decodes_base64_or_keeps_raw),
        cmocka_unit_test(request_validation_rejects_each_rule),
        cmocka_unit_test(reply_validation_rejects_each_rule),
        cmocka_unit_test(secure_request_validation_rejects_each_rule),
        cmocka_unit_test(secure_reply_validation_rejects_each_rule),
        cmocka_unit_test(transport_validation_rejects_each_rule),
        cmocka_unit_test(encoders_refuse_what_decoders_refuse),
        cmocka_unit_test(payload_decode_errors_name_the_layer),
        cmocka_unit_test(security_layer_signs_and_verifies),
        cmocka_unit_test(ttl_window_is_inclusive_both_ways),
        cmocka_unit_test(subjects_follow_go_choria),
        cmocka_unit_test(every_truncation_of_a_payload_is_an_error),
        cmocka_unit_test(deep_huge_and_mistyped_input_is_refused),
        cmocka_unit_test(oversized_lists_and_strings_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
