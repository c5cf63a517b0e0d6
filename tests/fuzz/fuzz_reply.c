/* Fuzzes reply decoding including the hash check: the input is tried as a whole NATS payload,
 * as a bare SecureReply and as a bare Reply. Accepted replies must round-trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choria/protocol.h"

static void round_trip(const ch_reply *r)
{
    ch_error err;
    char *out = NULL, *out2 = NULL;
    size_t len = 0, len2 = 0;
    if (ch_protocol_reply_encode(r, &out, &len, &err) != CH_OK)
        return;
    ch_reply again;
    if (ch_protocol_reply_decode(out, len, &again, &err) != CH_OK)
        abort();
    if (ch_protocol_reply_encode(&again, &out2, &len2, &err) != CH_OK || len != len2 ||
        memcmp(out, out2, len) != 0)
        abort();
    /* a secure reply built from it must verify */
    ch_secure_reply sr = {.message = out}, sd;
    char *sec = NULL;
    size_t sec_len = 0;
    if (ch_protocol_secure_reply_encode(&sr, &sec, &sec_len, &err) != CH_OK ||
        ch_protocol_secure_reply_decode(sec, sec_len, &sd, &err) != CH_OK)
        abort();
    ch_protocol_secure_reply_clear(&sd);
    ch_protocol_reply_clear(&again);
    free(sec);
    free(out);
    free(out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ch_error err;
    ch_reply_payload p;
    if (ch_protocol_reply_payload_decode((const char *)data, size, &p, &err) == CH_OK) {
        round_trip(&p.reply);
        ch_protocol_reply_payload_clear(&p);
    }
    ch_secure_reply sr;
    if (ch_protocol_secure_reply_decode((const char *)data, size, &sr, &err) == CH_OK)
        ch_protocol_secure_reply_clear(&sr);
    ch_reply r;
    if (ch_protocol_reply_decode((const char *)data, size, &r, &err) == CH_OK) {
        round_trip(&r);
        ch_protocol_reply_clear(&r);
    }
    return 0;
}
