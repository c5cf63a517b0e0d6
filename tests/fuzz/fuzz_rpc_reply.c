/* Fuzzes the RPC client's own parsers: the mcorpc reply body parser and the discovery fast
 * path that reads mc_sender from a reply transport. Checks their promises: a parsed body keeps
 * the exact bytes and a status code in 0..255; an accepted sender is a valid identity; and
 * where the full transport decoder accepts a document with a valid mc_sender, the fast path
 * finds the same sender. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choria/protocol.h"
#include "choria/rpc.h"
#include "choria/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    ch_error err;

    ch_rpc_result r;
    ch_status s = ch_rpc_result_parse(text, size, &r, &err);
    if (r.body == NULL || r.body_len != size || memcmp(r.body, data, size) != 0)
        abort();
    if (s == CH_OK && (r.statuscode < 0 || r.statuscode > 255 || r.action == NULL ||
                       r.statusmsg == NULL || r.root_ == NULL))
        abort();
    ch_rpc_result_clear(&r);

    char sender[CH_MAX_IDENTITY_LEN + 1];
    s = ch_rpc_transport_sender(text, size, sender, &err);
    if (s == CH_OK && !ch_identity_valid(sender))
        abort();
    if (s != CH_OK && sender[0] != '\0')
        abort();

    ch_transport t;
    if (ch_protocol_transport_decode(text, size, &t, &err) == CH_OK) {
        const char *full = t.headers.mc_sender;
        if (full != NULL && ch_identity_valid(full) && (s != CH_OK || strcmp(full, sender) != 0))
            abort();
        ch_protocol_transport_clear(&t);
    }
    return 0;
}
