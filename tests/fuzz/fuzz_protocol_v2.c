/* Fuzzes protocol v2 and the choria provider. The input is tried as a v2 request payload (no
 * verification, as a provisioning-mode node decodes it) and as a v2 reply payload; an accepted
 * request must re-encode to a Request JSON that decodes again. Split at the first NUL byte,
 * the input is also a caller JWT and a signature checked by a verifying choria provider whose
 * issuer is the spec's section 3.6 org key, against a fixed message: nothing may crash, and
 * every refusal must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choria/protocol_v2.h"
#include "choria/security_choria.h"

#define ORG_PUB "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"

static int64_t fixed_clock(void)
{
    return 1750000000;
}

static void round_trip(const ch_request_payload *p)
{
    const ch_request_envelope *e = &p->request.envelope;
    ch_request_params params = {.body = p->request.message,
                                .agent = e->agent,
                                .collective = e->collective,
                                .callerid = e->callerid,
                                .senderid = e->senderid,
                                .requestid = e->requestid,
                                .ttl = e->ttl,
                                .time = e->time > 0 ? e->time : 1,
                                .filter = &e->filter};
    char *payload = NULL;
    size_t len = 0;
    ch_error err;
    if (ch_protocol_encode_request(ch_protocol_v2(), NULL, &params, &payload, &len, &err) ==
        CH_OK) {
        ch_request_payload again;
        if (ch_protocol_decode_request(ch_protocol_v2(), NULL, payload, len, &again, &err) != CH_OK)
            abort(); /* we emitted something we do not accept */
        ch_protocol_request_payload_clear(&again);
    }
    free(payload);
}

static void verify(const uint8_t *data, size_t size)
{
    static ch_security *server;
    ch_error err;
    if (server == NULL) {
        const char *names[] = {"choria"}, *keys[] = {ORG_PUB};
        ch_security_choria_opts o = {.verify = true,
                                     .issuer_names = names,
                                     .issuer_keys = keys,
                                     .n_issuers = 1,
                                     .now = fixed_clock};
        if (ch_security_choria_new(&o, &server, &err) != CH_OK)
            abort();
    }
    char *text = malloc(size + 2);
    if (text == NULL)
        return;
    memcpy(text, data, size);
    text[size] = text[size + 1] = '\0';
    const char *jwt = text, *sig = text + strlen(text) + (strlen(text) < size ? 1 : 0);
    err.msg[0] = '\0';
    if (ch_security_verify(server, "{}", 2, sig, jwt, "up=rip", &err) != CH_OK &&
        err.msg[0] == '\0')
        abort();
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ch_request_payload p;
    ch_reply_payload r;
    ch_error err;
    if (ch_protocol_decode_request(ch_protocol_v2(), NULL, (const char *)data, size, &p, &err) ==
        CH_OK) {
        round_trip(&p);
        ch_protocol_request_payload_clear(&p);
    }
    if (ch_protocol_decode_reply(ch_protocol_v2(), NULL, (const char *)data, size, &r, &err) ==
        CH_OK)
        ch_protocol_reply_payload_clear(&r);
    verify(data, size);
    return 0;
}
