/* Server request pipeline: go-choria wire-format requests in, replies (hash verified) out,
 * and every reason a request is dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "choria/agent.h"
#include "choria/facts.h"
#include "choria/json.h"
#include "choria/protocol.h"
#include "choria/util.h"

#define NOW 1718000005
#define REQID "0123456789abcdef0123456789abcdef"
#define CALLER "choria=rip.mcollective"
#define SENDER "client.example.net"
#define IDENTITY "n1.example.net"

/* A provisioner's broadcast discovery exactly as go-choria sends it (base64 "cGluZw==" body,
 * agent filter choria_provision, insecure signature), made independently with Python's json
 * and base64 modules using Go's field order and escaping. */
static const char DISCOVERY_REQUEST[] =
    "{\"protocol\":\"choria:transport:1\",\"data\":\"eyJwcm90b2NvbCI6ImNob3JpYTpzZWN1cmU6cmVx"
    "dWVzdDoxIiwibWVzc2FnZSI6IntcInByb3RvY29sXCI6XCJjaG9yaWE6cmVxdWVzdDoxXCIsXCJtZXNzYWdlXCI6"
    "XCJjR2x1Wnc9PVwiLFwiZW52ZWxvcGVcIjp7XCJyZXF1ZXN0aWRcIjpcIjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2"
    "Nzg5YWJjZGVmXCIsXCJzZW5kZXJpZFwiOlwiY2xpZW50LmV4YW1wbGUubmV0XCIsXCJjYWxsZXJpZFwiOlwiY2hv"
    "cmlhPXJpcC5tY29sbGVjdGl2ZVwiLFwiY29sbGVjdGl2ZVwiOlwicHJvdmlzaW9uaW5nXCIsXCJhZ2VudFwiOlwi"
    "ZGlzY292ZXJ5XCIsXCJ0dGxcIjo2MCxcInRpbWVcIjoxNzE4MDAwMDAwLFwiZmlsdGVyXCI6e1wiZmFjdFwiOltd"
    "LFwiY2ZfY2xhc3NcIjpbXSxcImFnZW50XCI6W1wiY2hvcmlhX3Byb3Zpc2lvblwiXSxcImlkZW50aXR5XCI6W10s"
    "XCJjb21wb3VuZFwiOltdfX19Iiwic2lnbmF0dXJlIjoiaW5zZWN1cmUiLCJwdWJjZXJ0IjoiaW5zZWN1cmUifQ=="
    "\",\"headers\":{\"reply-to\":\"provisioning.reply.37bdf08389145a56c13096c178802d3b.01234"
    "56789abcdef0123456789abcdef\",\"mc_sender\":\"client.example.net\",\"seen-by\":[[\"nats:/"
    "/127.0.0.1:4222\",\"client.example.net\",\"nats://127.0.0.1:4222\"]]}}";

/* n1.example.net's answer at NOW: Reply "pong", SecureReply with its SHA-256 hash. */
static const char DISCOVERY_REPLY[] =
    "{\"protocol\":\"choria:transport:1\",\"data\":\"eyJwcm90b2NvbCI6ImNob3JpYTpzZWN1cmU6cmVw"
    "bHk6MSIsIm1lc3NhZ2UiOiJ7XCJwcm90b2NvbFwiOlwiY2hvcmlhOnJlcGx5OjFcIixcIm1lc3NhZ2VcIjpcInBv"
    "bmdcIixcImVudmVsb3BlXCI6e1wicmVxdWVzdGlkXCI6XCIwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2Rl"
    "ZlwiLFwic2VuZGVyaWRcIjpcIm4xLmV4YW1wbGUubmV0XCIsXCJhZ2VudFwiOlwiZGlzY292ZXJ5XCIsXCJ0aW1l"
    "XCI6MTcxODAwMDAwNX19IiwiaGFzaCI6Im5mU0VqUElNbTFWazBwWTZKSG9mc2Z6Y1NlTFdRN0N2SmNyczZmbm5s"
    "TTg9In0=\",\"headers\":{\"mc_sender\":\"n1.example.net\"}}";

static const char REPLY_TO[] =
    "provisioning.reply.37bdf08389145a56c13096c178802d3b.0123456789abcdef0123456789abcdef";

/* ---- a test agent that shows what the pipeline handed it --------------------------- */

static void act_echo(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply)
{
    json_object_set_new(reply->data, "identity", json_string(node->identity));
    json_object_set_new(reply->data, "agent", json_string(req->agent));
    json_object_set_new(reply->data, "action", json_string(req->action));
    json_object_set_new(reply->data, "requestid", json_string(req->envelope->requestid));
    json_object_set_new(reply->data, "callerid", json_string(req->envelope->callerid));
    json_object_set_new(reply->data, "data", json_incref(req->data));
}

static void act_fail(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply)
{
    (void)node;
    (void)req;
    json_object_set_new(reply->data, "partial", json_true());
    ch_rpc_reply_fail(reply, CH_RPC_ABORTED, "refused <%s> & \"quoted\"", "tag");
}

static void act_replace(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply)
{
    (void)node;
    (void)req;
    json_decref(reply->data);
    reply->data = NULL; /* encodes as {} */
}

static const ch_agent_action echo_actions[] = {
    {"echo", act_echo},
    {"fail", act_fail},
    {"replace", act_replace},
};

static const ch_agent echo_agent = {
    .name = "echo",
    .timeout_seconds = 5,
    .actions = echo_actions,
    .n_actions = 3,
};

static bool never(const ch_node *node)
{
    (void)node;
    return false;
}

static const ch_agent sleeping_agent = {
    .name = "sleeping",
    .actions = echo_actions,
    .n_actions = 1,
    .active = never,
};

static const ch_agent *const test_agents[] = {&ch_agent_rpcutil, &echo_agent, &ch_agent_discovery,
                                              &sleeping_agent, &ch_agent_choria_provision};
static const ch_agent_set test_set = {.agents = test_agents, .n_agents = 5};

static const char *const COLLECTIVES[] = {"provisioning", "other_collective"};
static const char *const CLASSES[] = {"base", "role::web"};

typedef struct {
    ch_node node;
    json_t *facts;
    ch_agent_result result;
    ch_error err;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ch_error e;
    static const char facts[] = "{\"os\":{\"family\":\"debian\"},\"count\":42,\"virtual\":true}";
    assert_int_equal(ch_facts_parse(facts, strlen(facts), false, &f->facts, &e), CH_OK);
    f->node = (ch_node){.identity = IDENTITY,
                        .version = "0.30.2",
                        .collectives = COLLECTIVES,
                        .n_collectives = 2,
                        .main_collective = "provisioning",
                        .facts = f->facts,
                        .classes = CLASSES,
                        .n_classes = 2,
                        .agents = &test_set};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ch_agent_result_clear(&f->result);
    json_decref(f->facts);
    free(f);
    return 0;
}

/* Builds a request payload; body is the RPC message text. */
static char *build(const char *agent, const char *body, const ch_filter *filter,
                   const char *collective, int64_t time, int64_t ttl, size_t *len)
{
    ch_error e;
    char *out = NULL;
    ch_request_params p = {.body = body,
                           .agent = agent,
                           .collective = collective,
                           .callerid = CALLER,
                           .senderid = SENDER,
                           .requestid = REQID,
                           .ttl = ttl,
                           .time = time,
                           .filter = filter};
    if (ch_protocol_request_payload_build(&p, NULL, &out, len, &e) != CH_OK)
        fail_msg("build: %s", e.msg);
    return out;
}

static ch_status handle(fixture *f, const char *payload, size_t len)
{
    ch_agent_result_clear(&f->result);
    return ch_agent_handle(&f->node, payload, len, NOW, &f->result, &f->err);
}

/* Runs a request for agent with body through the pipeline and returns the reply body after
 * checking the reply envelope; fails when nothing was sent. Caller frees. */
static char *call(fixture *f, const char *agent, const char *body)
{
    size_t len;
    char *req = build(agent, body, NULL, "provisioning", NOW, 60, &len);
    assert_int_equal(handle(f, req, len), CH_OK);
    free(req);
    if (f->result.payload == NULL)
        fail_msg("no reply: %s", f->result.drop_reason);
    assert_int_equal(f->err.code, CH_OK);
    assert_int_equal(f->result.dropped, CH_OK);
    assert_string_equal(f->result.subject, REPLY_TO);

    ch_reply_payload rp;
    ch_error e;
    if (ch_protocol_reply_payload_decode(f->result.payload, f->result.payload_len, &rp, &e) !=
        CH_OK)
        fail_msg("reply does not decode: %s", e.msg);
    assert_string_equal(rp.reply.envelope.requestid, REQID);
    assert_string_equal(rp.reply.envelope.senderid, IDENTITY);
    assert_string_equal(rp.reply.envelope.agent, agent);
    assert_int_equal(rp.reply.envelope.time, NOW);
    assert_string_equal(rp.transport.headers.mc_sender, IDENTITY);
    assert_null(rp.transport.headers.reply_to);
    char *body_out = strdup(rp.reply.message);
    ch_protocol_reply_payload_clear(&rp);
    return body_out;
}

static void assert_call(fixture *f, const char *agent, const char *body, const char *want)
{
    char *got = call(f, agent, body);
    assert_string_equal(got, want);
    free(got);
}

/* Asserts that the payload is dropped for reason code. */
static void assert_dropped(fixture *f, const char *payload, size_t len, ch_status code)
{
    assert_int_equal(handle(f, payload, len), CH_OK);
    assert_null(f->result.payload);
    assert_int_equal(f->result.payload_len, 0);
    assert_string_equal(f->result.subject, "");
    if (f->result.dropped != code)
        fail_msg("dropped with %s (%s), expected %s", ch_status_text(f->result.dropped),
                 f->result.drop_reason, ch_status_text(code));
    assert_int_not_equal(f->result.drop_reason[0], '\0');
    assert_int_equal(f->err.code, CH_OK); /* a drop is not an error */
}

static void assert_request_dropped(fixture *f, const char *agent, const char *body,
                                   const ch_filter *filter, const char *collective, int64_t time,
                                   ch_status code)
{
    size_t len;
    char *req = build(agent, body, filter, collective, time, 60, &len);
    assert_dropped(f, req, len, code);
    free(req);
}

/* ---- discovery --------------------------------------------------------------------- */

static void test_go_discovery_payload_gets_byte_exact_pong(void **state)
{
    fixture *f = *state;
    ch_provision_state ps;
    memset(&ps, 0, sizeof(ps));
    f->node.provision = &ps; /* choria_provision active: the agent filter matches */
    f->node.provision_mode = true;
    assert_int_equal(handle(f, DISCOVERY_REQUEST, strlen(DISCOVERY_REQUEST)), CH_OK);
    assert_non_null(f->result.payload);
    assert_int_equal(f->err.code, CH_OK);
    assert_string_equal(f->result.subject, REPLY_TO);
    assert_int_equal(f->result.payload_len, strlen(DISCOVERY_REPLY));
    assert_string_equal(f->result.payload, DISCOVERY_REPLY);
}

static void test_go_discovery_payload_dropped_without_provision_agent(void **state)
{
    fixture *f = *state; /* choria_provision inactive: agent filter fails */
    assert_dropped(f, DISCOVERY_REQUEST, strlen(DISCOVERY_REQUEST), CH_ERR_NO_MATCH);
}

static void test_discovery_pongs_to_raw_and_embedded_ping(void **state)
{
    fixture *f = *state;
    assert_call(f, "discovery", "cGluZw==", "pong");
    assert_call(f, "discovery", "xx ping xx", "pong");
}

/* "ping" is itself valid base64, so go-choria decodes it to 3 other bytes and stays silent;
 * so do we. */
static void test_bare_ping_is_base64_and_gets_no_pong(void **state)
{
    fixture *f = *state;
    assert_request_dropped(f, "discovery", "ping", NULL, "provisioning", NOW, CH_ERR_NO_MATCH);
}

static void test_discovery_sends_nothing_without_ping(void **state)
{
    fixture *f = *state;
    assert_request_dropped(f, "discovery", "pong", NULL, "provisioning", NOW, CH_ERR_NO_MATCH);
    assert_request_dropped(f, "discovery", "cGlu", NULL, "provisioning", NOW, CH_ERR_NO_MATCH);
}

/* ---- mcorpc replies ---------------------------------------------------------------- */

static void test_action_sees_request_and_reply_keeps_go_key_order(void **state)
{
    fixture *f = *state;
    assert_call(f, "echo",
                "{\"agent\":\"echo\",\"action\":\"echo\",\"data\":{\"b\":1,\"a\":[true]}}",
                "{\"action\":\"echo\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
                "\"identity\":\"n1.example.net\",\"agent\":\"echo\",\"action\":\"echo\","
                "\"requestid\":\"" REQID "\",\"callerid\":\"" CALLER "\","
                "\"data\":{\"b\":1,\"a\":[true]}}}");
}

static void test_missing_or_null_data_is_empty_object(void **state)
{
    fixture *f = *state;
    const char *want = "{\"action\":\"echo\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
                       "\"identity\":\"n1.example.net\",\"agent\":\"echo\",\"action\":\"echo\","
                       "\"requestid\":\"" REQID "\",\"callerid\":\"" CALLER "\",\"data\":{}}}";
    assert_call(f, "echo", "{\"action\":\"echo\"}", want);
    assert_call(f, "echo", "{\"action\":\"echo\",\"data\":null}", want);
}

static void test_non_object_data_reaches_the_action_as_sent(void **state)
{
    fixture *f = *state;
    assert_call(f, "echo", "{\"action\":\"echo\",\"data\":\"x\"}",
                "{\"action\":\"echo\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
                "\"identity\":\"n1.example.net\",\"agent\":\"echo\",\"action\":\"echo\","
                "\"requestid\":\"" REQID "\",\"callerid\":\"" CALLER "\",\"data\":\"x\"}}");
}

static void test_base64_body_is_decoded(void **state)
{
    fixture *f = *state;
    char *b64 = ch_base64_encode("{\"action\":\"replace\"}", 20);
    assert_call(f, "echo", b64,
                "{\"action\":\"replace\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{}}");
    free(b64);
}

static void test_body_keys_match_case_insensitively_last_wins(void **state)
{
    fixture *f = *state;
    assert_call(f, "echo", "{\"ACTION\":\"fail\",\"Action\":\"replace\",\"unknown\":[1]}",
                "{\"action\":\"replace\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{}}");
}

static void test_failed_action_keeps_data_and_escapes_like_go(void **state)
{
    fixture *f = *state;
    assert_call(f, "echo", "{\"action\":\"fail\"}",
                "{\"action\":\"fail\",\"statuscode\":1,\"statusmsg\":\"refused \\u003ctag\\u003e "
                "\\u0026 \\\"quoted\\\"\",\"data\":{\"partial\":true}}");
}

static void test_unknown_action_is_statuscode_2(void **state)
{
    fixture *f = *state;
    assert_call(f, "rpcutil", "{\"agent\":\"rpcutil\",\"action\":\"nosuch\",\"data\":{}}",
                "{\"action\":\"nosuch\",\"statuscode\":2,\"statusmsg\":\"Unknown action nosuch "
                "for agent rpcutil\",\"data\":{}}");
    /* Go unmarshals null into an empty request: action "" (" null": "null" alone would be
     * taken for base64) */
    assert_call(f, "rpcutil", " null",
                "{\"action\":\"\",\"statuscode\":2,\"statusmsg\":\"Unknown action  for agent "
                "rpcutil\",\"data\":{}}");
}

static void test_non_json_body_is_statuscode_4(void **state)
{
    fixture *f = *state;
    static const char prefix[] = "{\"action\":\"\",\"statuscode\":4,\"statusmsg\":\"Could not "
                                 "process request: could not parse incoming message as a "
                                 "MCollective SimpleRPC Request: ";
    char *got = call(f, "rpcutil", "hello world");
    assert_memory_equal(got, prefix, strlen(prefix));
    size_t n = strlen(got);
    assert_in_range(n, strlen(prefix) + 13, SIZE_MAX);
    assert_string_equal(got + n - 12, "\",\"data\":{}}");
    free(got);

    got = call(f, "rpcutil", "{\"action\":\"ping\"");
    assert_memory_equal(got, prefix, strlen(prefix));
    free(got);
}

static void test_body_of_wrong_shape_gets_go_messages(void **state)
{
    fixture *f = *state;
    assert_call(f, "rpcutil", "[1,2]",
                "{\"action\":\"\",\"statuscode\":4,\"statusmsg\":\"Could not process request: "
                "could not parse incoming message as a MCollective SimpleRPC Request: json: "
                "cannot unmarshal array into Go value of type mcorpc.Request\",\"data\":{}}");
    assert_call(f, "rpcutil", "{\"action\":5}",
                "{\"action\":\"\",\"statuscode\":4,\"statusmsg\":\"Could not process request: "
                "could not parse incoming message as a MCollective SimpleRPC Request: json: "
                "cannot unmarshal number into Go struct field Request.action of type "
                "string\",\"data\":{}}");
    assert_call(f, "rpcutil", "{\"action\":\"ping\",\"ttl\":\"60\"}",
                "{\"action\":\"\",\"statuscode\":4,\"statusmsg\":\"Could not process request: "
                "could not parse incoming message as a MCollective SimpleRPC Request: json: "
                "cannot unmarshal string into Go struct field Request.ttl of type "
                "int\",\"data\":{}}");
}

static void test_data_not_an_object_is_statuscode_4_for_actions_with_inputs(void **state)
{
    fixture *f = *state;
    assert_call(f, "rpcutil", "{\"action\":\"get_fact\",\"data\":[\"os\"]}",
                "{\"action\":\"get_fact\",\"statuscode\":4,\"statusmsg\":\"Could not parse "
                "request data for rpcutil#get_fact: json: cannot unmarshal array into Go value "
                "of type rpcutil.input\",\"data\":{}}");
}

static void test_deeply_nested_body_is_refused_not_crashed(void **state)
{
    fixture *f = *state;
    char body[600];
    size_t n = 0;
    n += (size_t)snprintf(body, sizeof(body), "{\"action\":\"echo\",\"data\":");
    for (int i = 0; i < 200; i++)
        body[n++] = '[';
    body[n] = '\0';
    char *got = call(f, "echo", body);
    assert_non_null(strstr(got, "\"statuscode\":4"));
    assert_non_null(strstr(got, "nesting"));
    free(got);
}

/* ---- drops ------------------------------------------------------------------------- */

static void test_other_collective_is_dropped(void **state)
{
    fixture *f = *state;
    assert_request_dropped(f, "rpcutil", "{\"action\":\"ping\"}", NULL, "mcollective", NOW,
                           CH_ERR_NO_MATCH);
    /* a second configured collective is served */
    size_t len;
    char *req = build("discovery", "cGluZw==", NULL, "other_collective", NOW, 60, &len);
    assert_int_equal(handle(f, req, len), CH_OK);
    assert_non_null(f->result.payload);
    assert_string_equal(f->result.subject, "other_collective.reply."
                                           "37bdf08389145a56c13096c178802d3b." REQID);
    free(req);
}

static void test_identity_filter(void **state)
{
    fixture *f = *state;
    const char *other[] = {"n2.example.net"};
    const char *mine[] = {"n2.example.net", "/^n1\\./"};
    ch_filter no = {.identities = other, .n_identities = 1};
    ch_filter yes = {.identities = mine, .n_identities = 2};
    assert_request_dropped(f, "discovery", "cGluZw==", &no, "provisioning", NOW, CH_ERR_NO_MATCH);
    size_t len;
    char *req = build("discovery", "cGluZw==", &yes, "provisioning", NOW, 60, &len);
    assert_int_equal(handle(f, req, len), CH_OK);
    assert_non_null(f->result.payload);
    free(req);
}

static void test_agent_filter_uses_active_agents(void **state)
{
    fixture *f = *state;
    const char *puppet[] = {"puppet"};
    const char *sleeping[] = {"sleeping"};
    const char *both[] = {"rpcutil", "/^ech/"};
    ch_filter no = {.agents = puppet, .n_agents = 1};
    ch_filter inactive = {.agents = sleeping, .n_agents = 1};
    ch_filter yes = {.agents = both, .n_agents = 2};
    assert_request_dropped(f, "discovery", "cGluZw==", &no, "provisioning", NOW, CH_ERR_NO_MATCH);
    assert_request_dropped(f, "discovery", "cGluZw==", &inactive, "provisioning", NOW,
                           CH_ERR_NO_MATCH);
    size_t len;
    char *req = build("discovery", "cGluZw==", &yes, "provisioning", NOW, 60, &len);
    assert_int_equal(handle(f, req, len), CH_OK);
    assert_non_null(f->result.payload);
    free(req);
}

static void test_fact_and_class_filters(void **state)
{
    fixture *f = *state;
    ch_fact_filter debian = {"os.family", CH_FACT_OP_EQ, "debian"};
    ch_fact_filter redhat = {"os.family", CH_FACT_OP_EQ, "redhat"};
    ch_fact_filter many = {"count", CH_FACT_OP_GT, "40"};
    ch_fact_filter yes_facts[] = {debian, many};
    const char *web[] = {"role::web"};
    const char *db[] = {"role::db"};
    ch_filter no_fact = {.facts = &redhat, .n_facts = 1};
    ch_filter no_class = {.classes = db, .n_classes = 1};
    ch_filter yes = {.facts = yes_facts, .n_facts = 2, .classes = web, .n_classes = 1};
    assert_request_dropped(f, "discovery", "cGluZw==", &no_fact, "provisioning", NOW,
                           CH_ERR_NO_MATCH);
    assert_request_dropped(f, "discovery", "cGluZw==", &no_class, "provisioning", NOW,
                           CH_ERR_NO_MATCH);
    size_t len;
    char *req = build("discovery", "cGluZw==", &yes, "provisioning", NOW, 60, &len);
    assert_int_equal(handle(f, req, len), CH_OK);
    assert_non_null(f->result.payload);
    free(req);
}

static void test_compound_filter_is_dropped(void **state)
{
    fixture *f = *state;
    json_error_t je;
    json_t *compound = json_loads("[[{\"expr\":\"with('rpcutil')\"}]]", 0, &je);
    ch_filter c = {.compound = compound, .n_compound = 1};
    assert_request_dropped(f, "discovery", "cGluZw==", &c, "provisioning", NOW, CH_ERR_UNSUPPORTED);
    json_decref(compound);
}

static void test_ttl_window(void **state)
{
    fixture *f = *state;
    assert_request_dropped(f, "discovery", "cGluZw==", NULL, "provisioning", NOW - 61,
                           CH_ERR_EXPIRED);
    assert_request_dropped(f, "discovery", "cGluZw==", NULL, "provisioning", NOW + 61,
                           CH_ERR_EXPIRED);
    size_t len;
    char *req = build("discovery", "cGluZw==", NULL, "provisioning", NOW - 60, 60, &len);
    assert_int_equal(handle(f, req, len), CH_OK);
    assert_non_null(f->result.payload);
    free(req);
    req = build("discovery", "cGluZw==", NULL, "provisioning", NOW + 60, 60, &len);
    assert_int_equal(handle(f, req, len), CH_OK);
    assert_non_null(f->result.payload);
    free(req);
}

static void test_unknown_and_inactive_agents_are_dropped(void **state)
{
    fixture *f = *state;
    assert_request_dropped(f, "puppet", "{\"action\":\"status\"}", NULL, "provisioning", NOW,
                           CH_ERR_NOT_FOUND);
    assert_request_dropped(f, "sleeping", "{\"action\":\"echo\"}", NULL, "provisioning", NOW,
                           CH_ERR_NOT_FOUND);
    /* choria_provision is inactive without provisioning support */
    assert_request_dropped(f, "choria_provision", "{\"action\":\"gen25519\"}", NULL, "provisioning",
                           NOW, CH_ERR_NOT_FOUND);
}

/* Transport with the given secure layer bytes and reply-to. */
static char *transport(const char *secure, const char *reply_to, size_t *len)
{
    ch_error e;
    char *out = NULL;
    ch_transport t = {.data = (const unsigned char *)secure,
                      .data_len = strlen(secure),
                      .headers = {.reply_to = reply_to, .mc_sender = SENDER}};
    if (ch_protocol_transport_encode(&t, &out, len, &e) != CH_OK)
        fail_msg("transport: %s", e.msg);
    return out;
}

static char *secure_request(const char *request)
{
    ch_error e;
    char *out = NULL;
    ch_secure_request sr = {.message = request, .signature = "insecure", .pubcert = "insecure"};
    if (ch_protocol_secure_request_encode(&sr, &out, NULL, &e) != CH_OK)
        fail_msg("secure: %s", e.msg);
    return out;
}

static void test_invalid_layers_are_dropped(void **state)
{
    fixture *f = *state;
    static const char garbage[] = "this is not json";
    assert_dropped(f, garbage, strlen(garbage), CH_ERR_INVALID);
    static const char wrong_protocol[] =
        "{\"protocol\":\"choria:transport:9\",\"data\":\"e30=\",\"headers\":{}}";
    assert_dropped(f, wrong_protocol, strlen(wrong_protocol), CH_ERR_INVALID);
    static const char bad_base64[] = "{\"protocol\":\"choria:transport:1\",\"data\":\"%%%\"}";
    assert_dropped(f, bad_base64, strlen(bad_base64), CH_ERR_INVALID);

    /* secure layer: not a secure request */
    size_t len;
    char *t =
        transport("{\"protocol\":\"choria:secure:request:1\",\"message\":\"x\"}", REPLY_TO, &len);
    assert_dropped(f, t, len, CH_ERR_INVALID);
    free(t);

    /* request layer: ttl under the schema minimum, and a 31-character request id */
    const char *bad_requests[] = {
        "{\"protocol\":\"choria:request:1\",\"message\":\"ping\",\"envelope\":{\"requestid\":"
        "\"" REQID
        "\",\"senderid\":\"c\",\"callerid\":\"choria=c\",\"collective\":\"provisioning\",\"agent\":"
        "\"discovery\",\"ttl\":10,\"time\":1718000005,\"filter\":{\"fact\":[],\"cf_class\":[],"
        "\"agent\":[],\"identity\":[],\"compound\":[]}}}",
        "{\"protocol\":\"choria:request:1\",\"message\":\"ping\",\"envelope\":{\"requestid\":\"0123"
        "456789abcdef0123456789abcde\",\"senderid\":\"c\",\"callerid\":\"choria=c\",\"collective\""
        ":\"provisioning\",\"agent\":\"discovery\",\"ttl\":60,\"time\":1718000005,\"filter\":{"
        "\"fact\":[],\"cf_class\":[],\"agent\":[],\"identity\":[],\"compound\":[]}}}",
    };
    for (size_t i = 0; i < 2; i++) {
        char *sr = secure_request(bad_requests[i]);
        t = transport(sr, REPLY_TO, &len);
        assert_dropped(f, t, len, CH_ERR_INVALID);
        free(t);
        free(sr);
    }
}

static void test_missing_or_invalid_reply_to_is_dropped(void **state)
{
    fixture *f = *state;
    /* take a good request's secure layer and wrap it with bad reply-to headers */
    size_t len;
    char *good = build("rpcutil", "{\"action\":\"ping\"}", NULL, "provisioning", NOW, 60, &len);
    ch_request_payload p;
    ch_error e;
    assert_int_equal(ch_protocol_request_payload_decode(good, len, NULL, &p, &e), CH_OK);
    char *secure = strndup((const char *)p.transport.data, p.transport.data_len);
    ch_protocol_request_payload_clear(&p);
    free(good);

    const char *bad[] = {NULL,       "provisioning.reply.*", "provisioning..reply", "a b", "x.>",
                         "trailing."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *t = transport(secure, bad[i], &len);
        assert_dropped(f, t, len, CH_ERR_INVALID);
        assert_non_null(strstr(f->result.drop_reason, "reply-to"));
        free(t);
    }
    char *t = transport(secure, "_INBOX.abc", &len);
    assert_int_equal(handle(f, t, len), CH_OK);
    assert_non_null(f->result.payload);
    assert_string_equal(f->result.subject, "_INBOX.abc");
    free(t);
    free(secure);
}

static void test_federation_header_is_copied_to_the_reply(void **state)
{
    fixture *f = *state;
    const char *targets[] = {"provisioning.node.n1"};
    ch_federation fed = {
        .req = "fedreq1", .reply_to = "choria.federation.x", .targets = targets, .n_targets = 1};
    ch_request_params p = {.body = "cGluZw==",
                           .agent = "discovery",
                           .collective = "provisioning",
                           .callerid = CALLER,
                           .senderid = SENDER,
                           .requestid = REQID,
                           .ttl = 60,
                           .time = NOW,
                           .federation = &fed};
    char *req = NULL;
    size_t len;
    ch_error e;
    assert_int_equal(ch_protocol_request_payload_build(&p, NULL, &req, &len, &e), CH_OK);
    assert_int_equal(handle(f, req, len), CH_OK);
    free(req);
    assert_non_null(f->result.payload);
    ch_reply_payload rp;
    assert_int_equal(
        ch_protocol_reply_payload_decode(f->result.payload, f->result.payload_len, &rp, &e), CH_OK);
    assert_non_null(rp.transport.headers.federation);
    assert_string_equal(rp.transport.headers.federation->req, "fedreq1");
    assert_string_equal(rp.transport.headers.federation->reply_to, "choria.federation.x");
    assert_string_equal(rp.reply.message, "pong");
    ch_protocol_reply_payload_clear(&rp);
}

static void test_one_decoded_request_serves_many_nodes(void **state)
{
    fixture *f = *state;
    size_t len;
    char *req = build("discovery", "cGluZw==", NULL, "provisioning", NOW, 60, &len);
    ch_request_payload p;
    ch_error e;
    assert_int_equal(ch_protocol_request_payload_decode(req, len, NULL, &p, &e), CH_OK);
    const char *ids[] = {"a.example.net", "b.example.net"};
    for (size_t i = 0; i < 2; i++) {
        ch_node n = f->node;
        ch_reply_payload rp;
        n.identity = ids[i];
        assert_int_equal(ch_agent_handle_decoded(&n, &p, NOW, &f->result, &f->err), CH_OK);
        assert_non_null(f->result.payload);
        assert_int_equal(
            ch_protocol_reply_payload_decode(f->result.payload, f->result.payload_len, &rp, &e),
            CH_OK);
        assert_string_equal(rp.transport.headers.mc_sender, ids[i]);
        assert_string_equal(rp.reply.message, "pong");
        ch_protocol_reply_payload_clear(&rp);
        ch_agent_result_clear(&f->result);
    }
    ch_protocol_request_payload_clear(&p);
    free(req);
}

static void test_active_names_are_sorted_and_skip_inactive(void **state)
{
    fixture *f = *state;
    const char *names[CH_AGENT_MAX_AGENTS];
    size_t n = ch_agent_active_names(&f->node, names, CH_AGENT_MAX_AGENTS);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "discovery");
    assert_string_equal(names[1], "echo");
    assert_string_equal(names[2], "rpcutil");
    assert_int_equal(ch_agent_active_names(&f->node, names, 1), 1);

    ch_provision_state ps;
    memset(&ps, 0, sizeof(ps));
    ch_node std = f->node;
    std.agents = NULL; /* the standard set */
    assert_int_equal(ch_agent_active_names(&std, names, CH_AGENT_MAX_AGENTS), 2);
    std.provision = &ps;
    std.provision_token = "t0ken"; /* SupportsProvisioning() without provision mode */
    assert_int_equal(ch_agent_active_names(&std, names, CH_AGENT_MAX_AGENTS), 3);
    assert_string_equal(names[0], "choria_provision");
}

static void test_reply_fail_formats_and_truncates(void **state)
{
    (void)state;
    ch_rpc_reply r = {.statuscode = CH_RPC_OK, .statusmsg = "OK"};
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ch_rpc_reply_fail(&r, CH_RPC_MISSING_DATA, "need %s", "token");
    assert_int_equal(r.statuscode, CH_RPC_MISSING_DATA);
    assert_string_equal(r.statusmsg, "need token");
    ch_rpc_reply_fail(&r, CH_RPC_UNKNOWN_ERROR, "%s", big);
    assert_int_equal(strlen(r.statusmsg), sizeof(r.statusmsg) - 1);
}

static void test_result_clear_accepts_null_and_zeroes(void **state)
{
    (void)state;
    ch_agent_result r = {.payload = strdup("x"), .payload_len = 1, .subject = "a.b"};
    ch_agent_result_clear(&r);
    assert_null(r.payload);
    assert_string_equal(r.subject, "");
    ch_agent_result_clear(NULL);
}

/* ---- the node's protocol and security provider ---- */

/* A protocol that counts what passes through it and otherwise is version 1. */
static int decoded, encoded;

static ch_status counting_decode(const char *payload, size_t len, const ch_security *sec,
                                 ch_request_payload *out, ch_error *err)
{
    decoded++;
    return ch_protocol_v1()->decode_request(payload, len, sec, out, err);
}

static ch_status counting_encode_reply(const ch_reply_params *p, const ch_security *sec, char **out,
                                       size_t *out_len, ch_error *err)
{
    encoded++;
    return ch_protocol_v1()->encode_reply(p, sec, out, out_len, err);
}

static void test_requests_and_replies_go_through_the_nodes_protocol(void **state)
{
    fixture *f = *state;
    ch_protocol_ops counting = *ch_protocol_v1();
    counting.name = "counting";
    counting.decode_request = counting_decode;
    counting.encode_reply = counting_encode_reply;
    f->node.protocol = &counting;
    decoded = encoded = 0;
    assert_call(f, "discovery", "cGluZw==", "pong");
    assert_int_equal(decoded, 1);
    assert_int_equal(encoded, 1);
}

/* A provider that refuses every signature, as one would a forged request. */
static ch_status refuse(const ch_security *sec, const char *message, size_t len,
                        const char *signature, const char *pubcert, const char *callerid,
                        ch_error *err)
{
    return ch_error_set(err, CH_ERR_INVALID, "signature does not verify");
}

static void test_the_nodes_security_provider_verifies_requests(void **state)
{
    fixture *f = *state;
    static const ch_security_ops refusing_ops = {.name = "refusing", .verify = refuse};
    const ch_security refusing = {.ops = &refusing_ops};
    size_t len;
    char *req = build("discovery", "cGluZw==", NULL, "provisioning", NOW, 60, &len);
    f->node.security = &refusing;
    assert_dropped(f, req, len, CH_ERR_INVALID);
    assert_non_null(strstr(f->result.drop_reason, "signature does not verify"));
    f->node.security = NULL; /* provisioning mode: nothing is verified */
    assert_int_equal(handle(f, req, len), CH_OK);
    assert_non_null(f->result.payload);
    free(req);
}

/* Spec Suite C (C1-C5): a provisioning-mode node checks only that the signature and pubcert
 * are non-empty strings, whatever they hold, as upstream's provisioning mode. */
static void test_provisioning_mode_checks_no_signature(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *signature, *pubcert;
        bool answered;
    } cases[] = {
        {"insecure", "insecure", true},                                                /* C1, C2 */
        {"c2lnbmVkIGJ5IGEgc3RyYW5nZXI=", "-----BEGIN CERTIFICATE-----\nMIIB\n", true}, /* C3 */
        {"garbage!", "x", true},                                                       /* C4 */
        {"", "insecure", false},                                                       /* C5 */
    };
    size_t len;
    char *good = build("rpcutil", "{\"action\":\"ping\"}", NULL, "provisioning", NOW, 60, &len);
    ch_request_payload p;
    ch_error e;
    assert_int_equal(ch_protocol_request_payload_decode(good, len, NULL, &p, &e), CH_OK);
    f->node.security = NULL;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* encoded by hand: the encoder itself refuses an empty signature */
        char *sr = NULL, *sig = NULL, *cert = NULL, *msg = NULL;
        ch_buf b;
        ch_buf_init(&b);
        ch_buf_append_json_string(&b, cases[i].signature, strlen(cases[i].signature));
        sig = ch_buf_steal(&b, NULL);
        ch_buf_init(&b);
        ch_buf_append_json_string(&b, cases[i].pubcert, strlen(cases[i].pubcert));
        cert = ch_buf_steal(&b, NULL);
        ch_buf_init(&b);
        ch_buf_append_json_string(&b, p.secure.message, strlen(p.secure.message));
        msg = ch_buf_steal(&b, NULL);
        assert_true(asprintf(&sr,
                             "{\"protocol\":\"choria:secure:request:1\",\"message\":%s,"
                             "\"signature\":%s,\"pubcert\":%s}",
                             msg, sig, cert) > 0);
        size_t tlen;
        char *t = transport(sr, REPLY_TO, &tlen);
        assert_int_equal(handle(f, t, tlen), CH_OK);
        if (cases[i].answered != (f->result.payload != NULL))
            fail_msg("case %zu: %s", i, f->result.payload ? "answered" : f->result.drop_reason);
        free(t), free(sr), free(sig), free(cert), free(msg);
    }
    ch_protocol_request_payload_clear(&p);
    free(good);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_go_discovery_payload_gets_byte_exact_pong),
        T(test_provisioning_mode_checks_no_signature),
        T(test_go_discovery_payload_dropped_without_provision_agent),
        T(test_discovery_pongs_to_raw_and_embedded_ping),
        T(test_discovery_sends_nothing_without_ping),
        T(test_bare_ping_is_base64_and_gets_no_pong),
        T(test_action_sees_request_and_reply_keeps_go_key_order),
        T(test_missing_or_null_data_is_empty_object),
        T(test_non_object_data_reaches_the_action_as_sent),
        T(test_base64_body_is_decoded),
        T(test_body_keys_match_case_insensitively_last_wins),
        T(test_failed_action_keeps_data_and_escapes_like_go),
        T(test_unknown_action_is_statuscode_2),
        T(test_non_json_body_is_statuscode_4),
        T(test_body_of_wrong_shape_gets_go_messages),
        T(test_data_not_an_object_is_statuscode_4_for_actions_with_inputs),
        T(test_deeply_nested_body_is_refused_not_crashed),
        T(test_other_collective_is_dropped),
        T(test_identity_filter),
        T(test_agent_filter_uses_active_agents),
        T(test_fact_and_class_filters),
        T(test_compound_filter_is_dropped),
        T(test_ttl_window),
        T(test_unknown_and_inactive_agents_are_dropped),
        T(test_invalid_layers_are_dropped),
        T(test_missing_or_invalid_reply_to_is_dropped),
        T(test_federation_header_is_copied_to_the_reply),
        T(test_one_decoded_request_serves_many_nodes),
        T(test_active_names_are_sorted_and_skip_inactive),
        T(test_reply_fail_formats_and_truncates),
        T(test_result_clear_accepts_null_and_zeroes),
        T(test_requests_and_replies_go_through_the_nodes_protocol),
        T(test_the_nodes_security_provider_verifies_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
