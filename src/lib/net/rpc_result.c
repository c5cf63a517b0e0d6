/* Reading what comes back: an mcorpc reply body into ch_rpc_result, and the sender of a
 * discovery reply read straight from its transport without decoding every layer. */
#include "choria/rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choria/jscan.h"
#include "choria/protocol_v2.h"
#include "choria/json.h"
#include "choria/util.h"

/* ---- mcorpc reply bodies ------------------------------------------------------------- */

void ch_rpc_result_clear(ch_rpc_result *r)
{
    if (r == NULL)
        return;
    free(r->body);
    json_decref(r->root_);
    memset(r, 0, sizeof(*r));
}

/* An optional string member: absent or null gives "". */
static ch_status opt_string(json_t *obj, const char *key, const char **out, ch_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = "";
    if (v == NULL || json_is_null(v))
        return CH_OK;
    if (!json_is_string(v))
        return ch_error_set(err, CH_ERR_INVALID, "reply body: %s must be a string", key);
    *out = json_string_value(v);
    return CH_OK;
}

ch_status ch_rpc_result_parse(const char *body, size_t len, ch_rpc_result *r, ch_error *err)
{
    ch_error e;
    ch_status s;
    memset(r, 0, sizeof(*r));
    if (len > CH_MAX_MESSAGE_SIZE)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "reply body is larger than %d bytes",
                            CH_MAX_MESSAGE_SIZE);
    if ((r->body = malloc(len + 1)) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "reply body: out of memory");
    memcpy(r->body, body, len);
    r->body[len] = '\0';
    r->body_len = len;
    r->action = r->statusmsg = "";

    json_t *root = ch_json_parse(body, len, CH_MAX_MESSAGE_SIZE, CH_MAX_JSON_DEPTH, &e);
    if (root == NULL)
        return ch_error_set(err, e.code, "reply body is not an RPC reply: %s", e.msg);
    r->root_ = root;
    if (!json_is_object(root))
        return ch_error_set(err, CH_ERR_INVALID, "reply body is not a JSON object");
    json_t *code = json_object_get(root, "statuscode");
    if (code == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "reply body: statuscode is required");
    if (!json_is_integer(code) || json_integer_value(code) < 0 || json_integer_value(code) > 255)
        return ch_error_set(err, CH_ERR_INVALID,
                            "reply body: statuscode must be an integer from 0 to 255");
    r->statuscode = (int)json_integer_value(code);
    if ((s = opt_string(root, "action", &r->action, err)) != CH_OK ||
        (s = opt_string(root, "statusmsg", &r->statusmsg, err)) != CH_OK)
        return s;
    r->data = json_object_get(root, "data");
    return CH_OK;
}

/* ---- the discovery fast path: mc_sender of a transport -------------------------------- */

#define SENDER_STACK_TOKENS 64
/* every seen-by hop costs 4 tokens; more than the decoder's bound is refused anyway */
#define SENDER_MAX_TOKENS (4 * CH_PROTOCOL_MAX_LIST + 256)

static bool type_is(const ch_jscan_doc *d, int tok, ch_jscan_type t)
{
    return ch_jscan_type_of(d, tok) == t;
}

/* An optional header: absent, null or of type t. */
static bool opt_member(const ch_jscan_doc *d, int obj, const char *key, ch_jscan_type t)
{
    int v = ch_jscan_object_get(d, obj, key);
    return v < 0 || type_is(d, v, CH_JSCAN_NULL) || type_is(d, v, t);
}

static ch_status sender_from_doc(const ch_jscan_doc *d, char *sender, ch_error *err)
{
    ch_status s;
    if (!type_is(d, 0, CH_JSCAN_OBJECT))
        return ch_error_set(err, CH_ERR_INVALID, "transport: not a JSON object");
    if ((s = ch_jscan_object_check_duplicates(d, 0, err)) != CH_OK)
        return s;
    int v = ch_jscan_object_get(d, 0, "protocol");
    /* header names of v1, else of v2 (include/choria/protocol_v2.h) */
    bool v2 = v >= 0 && ch_jscan_string_eq(d, v, CH_PROTOCOL_TRANSPORT_V2);
    if (v < 0 || (!v2 && !ch_jscan_string_eq(d, v, CH_PROTOCOL_TRANSPORT_V1)))
        return ch_error_set(err, CH_ERR_INVALID, "transport: protocol must be %s or %s",
                            CH_PROTOCOL_TRANSPORT_V1, CH_PROTOCOL_TRANSPORT_V2);
    v = ch_jscan_object_get(d, 0, "data");
    if (v < 0 || !type_is(d, v, CH_JSCAN_STRING))
        return ch_error_set(err, CH_ERR_INVALID, "transport: data must be a string");
    int h = ch_jscan_object_get(d, 0, "headers");
    if (h < 0 || !type_is(d, h, CH_JSCAN_OBJECT))
        return ch_error_set(err, CH_ERR_INVALID, "transport: no headers object");
    if ((s = ch_jscan_object_check_duplicates(d, h, err)) != CH_OK)
        return s;
    if (!opt_member(d, h, v2 ? "reply" : "reply-to", CH_JSCAN_STRING) ||
        !opt_member(d, h, v2 ? "trace" : "seen-by", CH_JSCAN_ARRAY) ||
        !opt_member(d, h, "federation", CH_JSCAN_OBJECT))
        return ch_error_set(err, CH_ERR_INVALID, "transport: headers of the wrong type");
    v = ch_jscan_object_get(d, h, v2 ? "sender" : "mc_sender");
    if (v < 0 || !type_is(d, v, CH_JSCAN_STRING) || d->tokens[v].end == d->tokens[v].start)
        return ch_error_set(err, CH_ERR_INVALID, "transport: no mc_sender");
    size_t n = ch_jscan_string_copy(d, v, sender, CH_MAX_IDENTITY_LEN + 1);
    if (n > CH_MAX_IDENTITY_LEN || strlen(sender) != n || !ch_identity_valid(sender)) {
        sender[0] = '\0';
        return ch_error_set(err, CH_ERR_NO_MATCH, "transport: mc_sender is not a valid identity");
    }
    return CH_OK;
}

ch_status ch_rpc_transport_sender(const char *payload, size_t len,
                                  char sender[CH_MAX_IDENTITY_LEN + 1], ch_error *err)
{
    ch_jscan_token stack[SENDER_STACK_TOKENS];
    ch_jscan_token *heap = NULL;
    ch_jscan_doc doc;
    ch_error e;
    sender[0] = '\0';
    ch_status s = ch_jscan_parse_grow(&doc, payload, len, stack, SENDER_STACK_TOKENS,
                                      SENDER_MAX_TOKENS, &heap, &e);
    if (s != CH_OK)
        s = ch_error_set(err, s, "transport: %s", e.msg);
    else
        s = sender_from_doc(&doc, sender, err);
    free(heap);
    return s;
}
