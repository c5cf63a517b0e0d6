/* Fuzzes the Transport decoder; anything it accepts must re-encode and decode to the same
 * bytes (encode(decode(x)) is a fixed point). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choria/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ch_transport t, again;
    ch_error err;
    char *out = NULL, *out2 = NULL;
    size_t len = 0, len2 = 0;
    if (ch_protocol_transport_decode((const char *)data, size, &t, &err) != CH_OK)
        return 0;
    if (ch_protocol_transport_encode(&t, &out, &len, &err) == CH_OK) {
        if (ch_protocol_transport_decode(out, len, &again, &err) != CH_OK)
            abort(); /* we emitted something we do not accept */
        if (ch_protocol_transport_encode(&again, &out2, &len2, &err) != CH_OK || len != len2 ||
            memcmp(out, out2, len) != 0 || again.data_len != t.data_len ||
            (t.data_len > 0 && memcmp(again.data, t.data, t.data_len) != 0))
            abort();
        ch_protocol_transport_clear(&again);
    }
    free(out);
    free(out2);
    ch_protocol_transport_clear(&t);
    return 0;
}
