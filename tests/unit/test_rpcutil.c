/* rpcutil through the whole request pipeline: reply bodies byte for byte in go-choria's key
 * order (rpcutil.go reply structs), facts sorted as Go re-encodes them. */
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

#define REQID "0123456789abcdef0123456789abcdef"

static const char *const COLLECTIVES[] = {"provisioning", "mcollective"};
static const char *const CLASSES[] = {"base", "role::web"};

/* Written out of order on purpose: facts must come back sorted at every level. */
static const char FACTS[] =
    "{\"os\":{\"release\":{\"major\":\"12\"},\"family\":\"debian\"},\"count\":42,"
    "\"load\":1.5,\"html\":\"<b>&</b>\",\"virtual\":true,\"nothing\":null,"
    "\"list\":[{\"z\":1,\"a\":2}],\"a.dotted\":\"yes\"}";

typedef struct {
    ch_node node;
    ch_provision_state ps;
    json_t *facts;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ch_error e;
    assert_int_equal(ch_facts_parse(FACTS, strlen(FACTS), false, &f->facts, &e), CH_OK);
    f->node = (ch_node){.identity = "n1.example.net",
                        .version = "0.30.2",
                        .collectives = COLLECTIVES,
                        .n_collectives = 2,
                        .main_collective = "provisioning",
                        .facts = f->facts,
                        .classes = CLASSES,
                        .n_classes = 2,
                        .provision_mode = true,
                        .allow_update = true,
                        .provision = &f->ps,
                        .agents = NULL};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    json_decref(f->facts);
    free(f);
    return 0;
}

/* The rpcutil reply body for an RPC body, through ch_agent_handle. Caller frees. */
static char *rpc(fixture *f, const char *body)
{
    ch_error e;
    char *req = NULL;
    size_t len;
    int64_t now = ch_now_unix();
    ch_request_params p = {.body = body,
                           .agent = "rpcutil",
                           .collective = "provisioning",
                           .callerid = "choria=rip.mcollective",
                           .senderid = "client",
                           .requestid = REQID,
                           .ttl = 60,
                           .time = now};
    assert_int_equal(ch_protocol_request_payload_build(&p, NULL, &req, &len, &e), CH_OK);
    ch_agent_result r;
    assert_int_equal(ch_agent_handle(&f->node, req, len, now, &r, &e), CH_OK);
    free(req);
    if (r.payload == NULL)
        fail_msg("no reply: %s", e.msg);
    ch_reply_payload rp;
    assert_int_equal(ch_protocol_reply_payload_decode(r.payload, r.payload_len, &rp, &e), CH_OK);
    assert_string_equal(rp.reply.envelope.agent, "rpcutil");
    char *out = strdup(rp.reply.message);
    ch_protocol_reply_payload_clear(&rp);
    ch_agent_result_clear(&r);
    return out;
}

static void assert_rpc(fixture *f, const char *body, const char *want)
{
    char *got = rpc(f, body);
    assert_string_equal(got, want);
    free(got);
}

static void test_inventory_is_byte_exact(void **state)
{
    fixture *f = *state;
    assert_rpc(
        f, "{\"agent\":\"rpcutil\",\"action\":\"inventory\",\"data\":{}}",
        "{\"action\":\"inventory\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
        "\"agents\":[\"choria_provision\",\"discovery\",\"rpcutil\"],"
        "\"classes\":[\"base\",\"role::web\"],"
        "\"collectives\":[\"provisioning\",\"mcollective\"],"
        "\"data_plugins\":[],"
        "\"facts\":{\"a.dotted\":\"yes\",\"count\":42,\"html\":\"\\u003cb\\u003e\\u0026\\u003c/b"
        "\\u003e\",\"list\":[{\"a\":2,\"z\":1}],\"load\":1.5,\"nothing\":null,"
        "\"os\":{\"family\":\"debian\",\"release\":{\"major\":\"12\"}},\"virtual\":true},"
        "\"machines\":[],"
        "\"main_collective\":\"provisioning\","
        "\"version\":\"0.30.2\","
        "\"upgradable\":true}}");
}

static void test_inventory_of_a_bare_node(void **state)
{
    fixture *f = *state;
    f->node.facts = NULL;
    f->node.classes = NULL;
    f->node.n_classes = 0;
    f->node.n_collectives = 1;
    f->node.allow_update = false;
    f->node.provision = NULL; /* choria_provision inactive */
    assert_rpc(f, "{\"action\":\"inventory\"}",
               "{\"action\":\"inventory\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
               "\"agents\":[\"discovery\",\"rpcutil\"],\"classes\":[],"
               "\"collectives\":[\"provisioning\"],\"data_plugins\":[],\"facts\":{},"
               "\"machines\":[],\"main_collective\":\"provisioning\",\"version\":\"0.30.2\","
               "\"upgradable\":false}}");
}

static void test_ping_pongs_current_time(void **state)
{
    fixture *f = *state;
    int64_t before = ch_now_unix();
    char *got = rpc(f, "{\"action\":\"ping\"}");
    int64_t after = ch_now_unix();
    long long pong = 0;
    char tail[8] = "";
    assert_int_equal(sscanf(got,
                            "{\"action\":\"ping\",\"statuscode\":0,\"statusmsg\":\"OK\","
                            "\"data\":{\"pong\":%lld%7s",
                            &pong, tail),
                     2);
    assert_string_equal(tail, "}}");
    assert_in_range(pong, before, after);
    free(got);
}

static void test_agent_inventory_lists_metadata(void **state)
{
    fixture *f = *state;
    assert_rpc(
        f, "{\"action\":\"agent_inventory\"}",
        "{\"action\":\"agent_inventory\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
        "\"agents\":["
        "{\"agent\":\"choria_provision\",\"license\":\"Apache-2.0\",\"author\":\"R.I.Pienaar "
        "\\u003crip@devco.net\\u003e\",\"timeout\":20,\"name\":\"choria_provision\","
        "\"version\":\"0.30.2\",\"url\":\"https://choria.io\",\"description\":\"Choria "
        "Provisioner\"},"
        "{\"agent\":\"discovery\",\"license\":\"Apache-2.0\",\"author\":\"R.I.Pienaar "
        "\\u003crip@devco.net\\u003e\",\"timeout\":2,\"name\":\"discovery\","
        "\"version\":\"0.30.2\",\"url\":\"http://choria.io\",\"description\":\"Discovery "
        "Agent\"},"
        "{\"agent\":\"rpcutil\",\"license\":\"Apache-2.0\",\"author\":\"R.I.Pienaar "
        "\\u003crip@devco.net\\u003e\",\"timeout\":2,\"name\":\"rpcutil\","
        "\"version\":\"0.30.2\",\"url\":\"http://choria.io\",\"description\":\"Choria RPC "
        "Utilities\"}]}}");
}

static void test_collective_info(void **state)
{
    fixture *f = *state;
    assert_rpc(f, "{\"action\":\"collective_info\"}",
               "{\"action\":\"collective_info\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
               "\"main_collective\":\"provisioning\","
               "\"collectives\":[\"provisioning\",\"mcollective\"]}}");
}

static void test_get_fact_values(void **state)
{
    fixture *f = *state;
    assert_rpc(f, "{\"action\":\"get_fact\",\"data\":{\"fact\":\"count\"}}",
               "{\"action\":\"get_fact\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
               "\"fact\":\"count\",\"value\":42}}");
    assert_rpc(f, "{\"action\":\"get_fact\",\"data\":{\"fact\":\"os.family\"}}",
               "{\"action\":\"get_fact\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
               "\"fact\":\"os.family\",\"value\":\"debian\"}}");
    assert_rpc(
        f, "{\"action\":\"get_fact\",\"data\":{\"fact\":\"os\"}}",
        "{\"action\":\"get_fact\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
        "\"fact\":\"os\",\"value\":{\"family\":\"debian\",\"release\":{\"major\":\"12\"}}}}");
    assert_rpc(f, "{\"action\":\"get_fact\",\"data\":{\"fact\":\"a\\\\.dotted\"}}",
               "{\"action\":\"get_fact\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
               "\"fact\":\"a\\\\.dotted\",\"value\":\"yes\"}}");
    /* Go's json matches the input name case-insensitively */
    assert_rpc(f, "{\"action\":\"get_fact\",\"data\":{\"Fact\":\"virtual\"}}",
               "{\"action\":\"get_fact\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
               "\"fact\":\"virtual\",\"value\":true}}");
}

static void test_get_fact_missing_is_null(void **state)
{
    fixture *f = *state;
    assert_rpc(f, "{\"action\":\"get_fact\",\"data\":{\"fact\":\"nosuch.fact\"}}",
               "{\"action\":\"get_fact\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
               "\"fact\":\"nosuch.fact\",\"value\":null}}");
    assert_rpc(f, "{\"action\":\"get_fact\"}",
               "{\"action\":\"get_fact\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
               "\"fact\":\"\",\"value\":null}}");
    f->node.facts = NULL;
    assert_rpc(f, "{\"action\":\"get_fact\",\"data\":{\"fact\":\"count\"}}",
               "{\"action\":\"get_fact\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
               "\"fact\":\"count\",\"value\":null}}");
}

static void test_get_fact_wrong_input_type_is_statuscode_4(void **state)
{
    fixture *f = *state;
    assert_rpc(f, "{\"action\":\"get_fact\",\"data\":{\"fact\":5}}",
               "{\"action\":\"get_fact\",\"statuscode\":4,\"statusmsg\":\"Could not parse "
               "request data for rpcutil#get_fact: json: cannot unmarshal number into Go struct "
               "field input.fact of type string\",\"data\":{}}");
    assert_rpc(f, "{\"action\":\"get_fact\",\"data\":\"count\"}",
               "{\"action\":\"get_fact\",\"statuscode\":4,\"statusmsg\":\"Could not parse "
               "request data for rpcutil#get_fact: json: cannot unmarshal string into Go value "
               "of type rpcutil.input\",\"data\":{}}");
}

static void test_get_facts_trims_and_sorts(void **state)
{
    fixture *f = *state;
    assert_rpc(f, "{\"action\":\"get_facts\",\"data\":{\"facts\":\"virtual, count ,nosuch\"}}",
               "{\"action\":\"get_facts\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
               "\"values\":{\"count\":42,\"nosuch\":null,\"virtual\":true}}}");
}

static void test_inputless_actions_ignore_bad_data_like_go(void **state)
{
    fixture *f = *state;
    assert_rpc(f, "{\"action\":\"collective_info\",\"data\":[1]}",
               "{\"action\":\"collective_info\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{"
               "\"main_collective\":\"provisioning\","
               "\"collectives\":[\"provisioning\",\"mcollective\"]}}");
}

static void test_unprovided_actions_are_unknown(void **state)
{
    fixture *f = *state;
    assert_rpc(f, "{\"action\":\"daemon_stats\"}",
               "{\"action\":\"daemon_stats\",\"statuscode\":2,\"statusmsg\":\"Unknown action "
               "daemon_stats for agent rpcutil\",\"data\":{}}");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_inventory_is_byte_exact),
        T(test_inventory_of_a_bare_node),
        T(test_ping_pongs_current_time),
        T(test_agent_inventory_lists_metadata),
        T(test_collective_info),
        T(test_get_fact_values),
        T(test_get_fact_missing_is_null),
        T(test_get_fact_wrong_input_type_is_statuscode_4),
        T(test_get_facts_trims_and_sorts),
        T(test_inputless_actions_ignore_bad_data_like_go),
        T(test_unprovided_actions_are_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
