/* Fuzzes request decoding and filter matching. The input is tried as a whole NATS payload
 * (transport -> secure request -> request) and as a bare Request JSON document, so the fuzzer
 * reaches the envelope and filter code without having to discover base64. Accepted requests
 * are matched against a fixed node and must survive an encode/decode round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choria/json.h"
#include "choria/protocol.h"

static const char FACTS[] =
    "{\"os\":{\"family\":\"debian\",\"release\":{\"major\":\"12\"}},\"count\":42,"
    "\"load\":3.7,\"virtual\":true,\"physical\":false,\"nothing\":null,"
    "\"list\":[\"a\",{\"name\":\"eth1\"}],\"dotted.key\":\"yes\"}";
static const char *const AGENTS[] = {"rpcutil", "choria_provision", "discovery"};
static const char *const CLASSES[] = {"base", "role::web"};

static void exercise(const ch_request *r, const json_t *facts)
{
    ch_error err;
    char *out = NULL;
    size_t len = 0;
    unsigned char *body = NULL;
    size_t body_len = 0;
    (void)ch_filter_match(&r->envelope.filter, "n1.example.net", AGENTS, 3, CLASSES, 2, facts,
                          &err);
    (void)ch_protocol_ttl_check(&r->envelope, 1718000000, &err);
    if (ch_protocol_message_body(r->message, &body, &body_len, &err) == CH_OK)
        free(body);
    if (ch_protocol_request_encode(r, &out, &len, &err) == CH_OK) {
        ch_request again;
        char *out2 = NULL;
        size_t len2 = 0;
        if (ch_protocol_request_decode(out, len, &again, &err) != CH_OK)
            abort(); /* we emitted something we do not accept */
        if (ch_protocol_request_encode(&again, &out2, &len2, &err) != CH_OK || len != len2 ||
            memcmp(out, out2, len) != 0)
            abort();
        free(out2);
        ch_protocol_request_clear(&again);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *facts;
    ch_error err;
    if (facts == NULL)
        facts = ch_json_parse(FACTS, sizeof(FACTS) - 1, sizeof(FACTS), 64, &err);

    ch_request_payload p;
    if (ch_protocol_request_payload_decode((const char *)data, size, ch_security_insecure(), &p,
                                           &err) == CH_OK) {
        exercise(&p.request, facts);
        ch_protocol_request_payload_clear(&p);
    }
    ch_request r;
    if (ch_protocol_request_decode((const char *)data, size, &r, &err) == CH_OK) {
        exercise(&r, facts);
        ch_protocol_request_clear(&r);
    }
    return 0;
}
