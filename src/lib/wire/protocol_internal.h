/* What the protocol versions share inside the wire layer: the bounded JSON field readers, the
 * Go-compatible writers and the transport envelope, whose two versions differ only in names.
 * Not a public header: only src/lib/wire/protocol*.c include it. */
#ifndef CHORIA_WIRE_PROTOCOL_INTERNAL_H
#define CHORIA_WIRE_PROTOCOL_INTERNAL_H

#include <jansson.h>

#include "choria/protocol.h"
#include "choria/util.h"

#define MAX_CREDENTIAL (64 * 1024) /* a signature, a PEM certificate chain or a JWT */

enum {
    F_REQUIRED = 1, /* the key must be present */
    F_NONEMPTY = 2, /* minLength 1 */
    F_NULL_OK = 4,  /* an optional key may be null (Go leaves the field empty) */
};

void proto_owned_clear(ch_protocol_owned *o);

/* buf[0..len) as a bounded JSON object; errors are prefixed with layer. */
ch_status proto_parse_object(const char *layer, const char *buf, size_t len, json_t **root,
                             ch_error *err);
ch_status proto_get_str(const json_t *obj, const char *layer, const char *key, int flags,
                        size_t max, const char **out, ch_error *err);
ch_status proto_get_int(const json_t *obj, const char *layer, const char *key, int64_t *out,
                        ch_error *err);
ch_status proto_check_protocol(const json_t *obj, const char *layer, const char *want,
                               ch_error *err);

void proto_put_key(ch_buf *b, bool *first, const char *key);
void proto_put_str(ch_buf *b, const char *s);
/* "k1":"v1","k2":"v2"... from n {key, value} pairs, each value JSON-escaped; a comma first
 * when lead_comma. */
void proto_put_fields(ch_buf *b, bool lead_comma, const char *const (*kv)[2], size_t n);
/* Hands the buffer over as *out, refusing documents over CH_MAX_MESSAGE_SIZE. */
ch_status proto_finish(ch_buf *b, const char *layer, char **out, size_t *out_len, ch_error *err);
ch_status proto_check_field(const char *layer, const char *key, const char *v, int flags,
                            size_t max, ch_error *err);

/* The transport envelope's names in one protocol version: the same structure (data is the
 * base64 of the secure layer; optional headers), other keys. */
typedef struct {
    const char *protocol;
    const char *reply_to, *sender, *seen_by;          /* header keys */
    const char *fed_req, *fed_reply_to, *fed_targets; /* federation keys */
} proto_transport_dialect;

extern const proto_transport_dialect proto_transport_v1, proto_transport_v2;

ch_status proto_transport_encode(const proto_transport_dialect *d, const ch_transport *t,
                                 char **out, size_t *out_len, ch_error *err);
ch_status proto_transport_decode(const proto_transport_dialect *d, const char *buf, size_t len,
                                 ch_transport *out, ch_error *err);

#endif
