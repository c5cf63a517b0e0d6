/* Fuzzes the whole server request path, ch_agent_handle(), for a fixed node hosting discovery
 * and rpcutil. The input is tried twice: as a whole NATS payload, and as the RPC body of a
 * well-formed request (agent chosen by the first byte) so the fuzzer reaches mcorpc body
 * parsing and the rpcutil actions without having to discover base64. Every reply must
 * decode with its hash verified and answer the request's id. choria_provision is not hosted:
 * it writes files and restarts the process. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choria/agent.h"
#include "choria/facts.h"
#include "choria/protocol.h"

#define NOW 1718000005
#define REQID "0123456789abcdef0123456789abcdef"

static const char FACTS[] =
    "{\"os\":{\"family\":\"debian\",\"release\":{\"major\":\"12\"}},\"count\":42,"
    "\"load\":3.7,\"virtual\":true,\"nothing\":null,\"list\":[\"a\",{\"name\":\"eth1\"}]}";
static const char *const COLLECTIVES[] = {"provisioning", "mcollective"};
static const char *const CLASSES[] = {"base", "role::web"};
static const ch_agent *const AGENTS[] = {&ch_agent_discovery, &ch_agent_rpcutil};
static const ch_agent_set SET = {.agents = AGENTS, .n_agents = 2};

static void check(ch_node *node, const char *payload, size_t len)
{
    ch_agent_result r;
    ch_error err;
    ch_status s = ch_agent_handle(node, payload, len, NOW, &r, &err);
    if (s != CH_OK && s != CH_ERR_NOMEM)
        abort(); /* nothing but memory may fail: everything else is a drop or a reply */
    if (s == CH_OK && r.payload != NULL) {
        ch_reply_payload rp;
        ch_request_payload rq;
        if (ch_protocol_reply_payload_decode(r.payload, r.payload_len, &rp, &err) != CH_OK)
            abort(); /* we sent something a Go client would drop */
        if (ch_protocol_request_payload_decode(payload, len, NULL, &rq, &err) != CH_OK)
            abort(); /* replied to something that does not decode */
        if (strcmp(rp.reply.envelope.requestid, rq.request.envelope.requestid) != 0 ||
            strcmp(rp.transport.headers.mc_sender, node->identity) != 0 ||
            strcmp(r.subject, rq.transport.headers.reply_to) != 0)
            abort();
        ch_protocol_request_payload_clear(&rq);
        ch_protocol_reply_payload_clear(&rp);
    }
    ch_agent_result_clear(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *facts;
    ch_error err;
    if (facts == NULL && ch_facts_parse(FACTS, sizeof(FACTS) - 1, false, &facts, &err) != CH_OK)
        abort();
    ch_node node = {.identity = "n1.example.net",
                    .version = "0.30.2",
                    .collectives = COLLECTIVES,
                    .n_collectives = 2,
                    .main_collective = "provisioning",
                    .facts = facts,
                    .classes = CLASSES,
                    .n_classes = 2,
                    .allow_update = true,
                    .agents = &SET};

    check(&node, (const char *)data, size);

    /* The input as an RPC body: NUL-free text, agent picked by the first byte. */
    if (size < 2 || size > 65536 || memchr(data, '\0', size) != NULL)
        return 0;
    char *body = malloc(size);
    if (body == NULL)
        return 0;
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    ch_request_params p = {.body = body,
                           .agent = (data[0] & 1) ? "discovery" : "rpcutil",
                           .collective = "provisioning",
                           .callerid = "choria=rip.mcollective",
                           .senderid = "client.example.net",
                           .requestid = REQID,
                           .ttl = 60,
                           .time = NOW};
    char *payload = NULL;
    size_t len = 0;
    if (ch_protocol_request_payload_build(&p, NULL, &payload, &len, &err) == CH_OK)
        check(&node, payload, len);
    free(payload);
    free(body);
    return 0;
}
