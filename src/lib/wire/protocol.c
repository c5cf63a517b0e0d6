/* Choria RPC protocol v1: encoders that reproduce go-choria's bytes, bounded validating
 * decoders, whole-payload helpers, subjects and the TTL window. */
#include "choria/protocol.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choria/json.h"
#include "choria/protocol_v2.h"
#include "choria/util.h"
#include "protocol_internal.h"

void proto_owned_clear(ch_protocol_owned *o)
{
    json_decref(o->root);
    for (size_t i = 0; i < sizeof(o->blocks) / sizeof(o->blocks[0]); i++)
        free(o->blocks[i]);
    memset(o, 0, sizeof(*o));
}

/* ---- decoding helpers -------------------------------------------------------------- */

ch_status proto_parse_object(const char *layer, const char *buf, size_t len, json_t **root,
                             ch_error *err)
{
    ch_error e;
    *root = ch_json_parse(buf, len, CH_MAX_MESSAGE_SIZE, CH_MAX_JSON_DEPTH, &e);
    if (*root == NULL)
        return ch_error_set(err, e.code, "%s: %s", layer, e.msg);
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return ch_error_set(err, CH_ERR_INVALID, "%s: not a JSON object", layer);
    }
    return CH_OK;
}

ch_status proto_get_str(const json_t *obj, const char *layer, const char *key, int flags,
                        size_t max, const char **out, ch_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || ((flags & F_NULL_OK) && json_is_null(v))) {
        if (flags & F_REQUIRED)
            return ch_error_set(err, CH_ERR_INVALID, "%s: %s is required", layer, key);
        return CH_OK;
    }
    if (!json_is_string(v))
        return ch_error_set(err, CH_ERR_INVALID, "%s: %s must be a string", layer, key);
    size_t n = json_string_length(v);
    if ((flags & F_NONEMPTY) && n == 0)
        return ch_error_set(err, CH_ERR_INVALID, "%s: %s must not be empty", layer, key);
    if (n > max)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "%s: %s is longer than %zu bytes", layer, key,
                            max);
    *out = json_string_value(v);
    return CH_OK;
}

ch_status proto_get_int(const json_t *obj, const char *layer, const char *key, int64_t *out,
                        ch_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "%s: %s is required", layer, key);
    if (!json_is_integer(v))
        return ch_error_set(err, CH_ERR_INVALID, "%s: %s must be an integer", layer, key);
    *out = (int64_t)json_integer_value(v);
    return CH_OK;
}

ch_status proto_check_protocol(const json_t *obj, const char *layer, const char *want,
                               ch_error *err)
{
    const char *got;
    ch_status s =
        proto_get_str(obj, layer, "protocol", F_REQUIRED, CH_PROTOCOL_MAX_FIELD, &got, err);
    if (s != CH_OK)
        return s;
    if (strcmp(got, want) != 0)
        return ch_error_set(err, CH_ERR_INVALID, "%s: protocol must be %s, not %.64s", layer, want,
                            got);
    return CH_OK;
}

/* Exactly 32 printable ASCII characters (v1 ids are hex; the schema only fixes the length). */
static bool requestid_valid(const char *id)
{
    size_t i = 0;
    if (id == NULL)
        return false;
    for (; id[i] != '\0'; i++)
        if (i >= CH_PROTOCOL_REQUEST_ID_LEN || (unsigned char)id[i] <= 0x20 ||
            (unsigned char)id[i] >= 0x7f)
            return false;
    return i == CH_PROTOCOL_REQUEST_ID_LEN;
}

static ch_status get_requestid(const json_t *env, const char *layer, const char **out,
                               ch_error *err)
{
    ch_status s =
        proto_get_str(env, layer, "requestid", F_REQUIRED, CH_PROTOCOL_MAX_FIELD, out, err);
    if (s != CH_OK)
        return s;
    if (!requestid_valid(*out)) {
        *out = NULL;
        return ch_error_set(err, CH_ERR_INVALID,
                            "%s: requestid must be exactly %d printable characters", layer,
                            CH_PROTOCOL_REQUEST_ID_LEN);
    }
    return CH_OK;
}

/* ---- encoding helpers -------------------------------------------------------------- */

void proto_put_key(ch_buf *b, bool *first, const char *key)
{
    if (!*first)
        ch_buf_append(b, ",", 1);
    *first = false;
    ch_buf_append(b, "\"", 1);
    ch_buf_append_str(b, key);
    ch_buf_append(b, "\":", 2);
}

void proto_put_str(ch_buf *b, const char *s)
{
    if (s == NULL)
        s = "";
    ch_buf_append_json_string(b, s, strlen(s));
}

void proto_put_fields(ch_buf *b, bool lead_comma, const char *const (*kv)[2], size_t n)
{
    bool first = !lead_comma;
    for (size_t i = 0; i < n; i++) {
        proto_put_key(b, &first, kv[i][0]);
        proto_put_str(b, kv[i][1]);
    }
}

ch_status proto_finish(ch_buf *b, const char *layer, char **out, size_t *out_len, ch_error *err)
{
    size_t len = 0;
    if (!b->failed && b->len > CH_MAX_MESSAGE_SIZE) {
        ch_buf_free(b);
        return ch_error_set(err, CH_ERR_TOO_LARGE, "%s: encoded message exceeds %d bytes", layer,
                            CH_MAX_MESSAGE_SIZE);
    }
    *out = ch_buf_steal(b, &len);
    if (*out == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "%s: out of memory encoding", layer);
    if (out_len != NULL)
        *out_len = len;
    return CH_OK;
}

static bool empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

/* A string the encoder is about to emit: required/non-empty and length rules. */
ch_status proto_check_field(const char *layer, const char *key, const char *v, int flags,
                            size_t max, ch_error *err)
{
    if (v == NULL) {
        if (flags & F_REQUIRED)
            return ch_error_set(err, CH_ERR_INVALID, "%s: %s is required", layer, key);
        return CH_OK;
    }
    if ((flags & F_NONEMPTY) && v[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "%s: %s must not be empty", layer, key);
    if (strlen(v) > max)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "%s: %s is longer than %zu bytes", layer, key,
                            max);
    return CH_OK;
}

/* ---- Transport --------------------------------------------------------------------- */

static ch_status check_headers(const proto_transport_dialect *d, const ch_transport_headers *h,
                               ch_error *err)
{
    ch_status s;
    if ((s = proto_check_field("transport", d->reply_to, h->reply_to, 0, CH_MAX_SUBJECT_LEN,
                               err)) ||
        (s = proto_check_field("transport", d->sender, h->mc_sender, 0, CH_MAX_IDENTITY_LEN, err)))
        return s;
    if (h->n_seen_by > CH_PROTOCOL_MAX_LIST || (h->n_seen_by > 0 && h->seen_by == NULL))
        return ch_error_set(err, CH_ERR_INVALID, "transport: bad seen-by list");
    for (size_t i = 0; i < h->n_seen_by; i++) {
        const ch_seen_by *hop = &h->seen_by[i];
        if ((s = proto_check_field("transport", "seen-by in", hop->in, 0, CH_PROTOCOL_MAX_FIELD,
                                   err)) ||
            (s = proto_check_field("transport", "seen-by processor", hop->processor, 0,
                                   CH_PROTOCOL_MAX_FIELD, err)) ||
            (s = proto_check_field("transport", "seen-by out", hop->out, 0, CH_PROTOCOL_MAX_FIELD,
                                   err)))
            return s;
    }
    const ch_federation *f = h->federation;
    if (f == NULL)
        return CH_OK;
    if ((s = proto_check_field("transport", "federation req", f->req, 0, CH_PROTOCOL_MAX_FIELD,
                               err)) ||
        (s = proto_check_field("transport", "federation reply-to", f->reply_to, 0,
                               CH_MAX_SUBJECT_LEN, err)))
        return s;
    if (f->n_targets > CH_PROTOCOL_MAX_LIST || (f->n_targets > 0 && f->targets == NULL))
        return ch_error_set(err, CH_ERR_INVALID, "transport: bad federation target list");
    for (size_t i = 0; i < f->n_targets; i++)
        if ((s = proto_check_field("transport", "federation target", f->targets[i], F_REQUIRED,
                                   CH_PROTOCOL_MAX_FIELD, err)))
            return s;
    return CH_OK;
}

const proto_transport_dialect proto_transport_v1 = {
    .protocol = CH_PROTOCOL_TRANSPORT_V1,
    .reply_to = "reply-to",
    .sender = "mc_sender",
    .seen_by = "seen-by",
    .fed_req = "req",
    .fed_reply_to = "reply-to",
    .fed_targets = "target",
};

ch_status ch_protocol_transport_encode(const ch_transport *t, char **out, size_t *out_len,
                                       ch_error *err)
{
    return proto_transport_encode(&proto_transport_v1, t, out, out_len, err);
}

ch_status proto_transport_encode(const proto_transport_dialect *d, const ch_transport *t,
                                 char **out, size_t *out_len, ch_error *err)
{
    const ch_transport_headers *h = &t->headers;
    ch_status s;
    ch_buf b;
    bool first = true;
    *out = NULL;
    if (t->data == NULL && t->data_len > 0)
        return ch_error_set(err, CH_ERR_INVALID, "transport: data is NULL");
    if (t->data_len > CH_MAX_MESSAGE_SIZE / 4 * 3)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "transport: data exceeds the message size");
    if ((s = check_headers(d, h, err)) != CH_OK)
        return s;
    char *b64 = ch_base64_encode(t->data ? (const void *)t->data : "", t->data_len);
    if (b64 == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "transport: out of memory encoding");

    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"");
    ch_buf_append_str(&b, d->protocol);
    ch_buf_append_str(&b, "\",\"data\":\"");
    ch_buf_append_str(&b, b64); /* the base64 alphabet needs no escaping */
    ch_buf_append_str(&b, "\",\"headers\":{");
    free(b64);
    if (!empty(h->reply_to)) {
        proto_put_key(&b, &first, d->reply_to);
        proto_put_str(&b, h->reply_to);
    }
    if (!empty(h->mc_sender)) {
        proto_put_key(&b, &first, d->sender);
        proto_put_str(&b, h->mc_sender);
    }
    if (h->n_seen_by > 0) {
        proto_put_key(&b, &first, d->seen_by);
        ch_buf_append(&b, "[", 1);
        for (size_t i = 0; i < h->n_seen_by; i++) {
            ch_buf_append_str(&b, i > 0 ? ",[" : "[");
            proto_put_str(&b, h->seen_by[i].in);
            ch_buf_append(&b, ",", 1);
            proto_put_str(&b, h->seen_by[i].processor);
            ch_buf_append(&b, ",", 1);
            proto_put_str(&b, h->seen_by[i].out);
            ch_buf_append(&b, "]", 1);
        }
        ch_buf_append(&b, "]", 1);
    }
    if (h->federation != NULL) {
        const ch_federation *f = h->federation;
        bool ffirst = true;
        proto_put_key(&b, &first, "federation");
        ch_buf_append(&b, "{", 1);
        if (!empty(f->req)) {
            proto_put_key(&b, &ffirst, d->fed_req);
            proto_put_str(&b, f->req);
        }
        if (!empty(f->reply_to)) {
            proto_put_key(&b, &ffirst, d->fed_reply_to);
            proto_put_str(&b, f->reply_to);
        }
        if (f->n_targets > 0) {
            proto_put_key(&b, &ffirst, d->fed_targets);
            ch_buf_append(&b, "[", 1);
            for (size_t i = 0; i < f->n_targets; i++) {
                if (i > 0)
                    ch_buf_append(&b, ",", 1);
                proto_put_str(&b, f->targets[i]);
            }
            ch_buf_append(&b, "]", 1);
        }
        ch_buf_append(&b, "}", 1);
    }
    ch_buf_append_str(&b, "}}");
    return proto_finish(&b, "transport", out, out_len, err);
}

static ch_status decode_seen_by(json_t *arr, ch_transport *t, ch_error *err)
{
    size_t n = json_array_size(arr);
    if (n == 0)
        return CH_OK;
    if (n > CH_PROTOCOL_MAX_LIST)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "transport: more than %d seen-by hops",
                            CH_PROTOCOL_MAX_LIST);
    ch_seen_by *hops = calloc(n, sizeof(*hops));
    if (hops == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "transport: out of memory");
    t->owned_.blocks[1] = hops;
    for (size_t i = 0; i < n; i++) {
        json_t *hop = json_array_get(arr, i);
        const char *parts[3] = {"", "", ""};
        if (!json_is_array(hop))
            return ch_error_set(err, CH_ERR_INVALID, "transport: seen-by[%zu] must be an array", i);
        /* Go decodes into [3]string: missing members stay "", extra ones are dropped */
        for (size_t j = 0; j < 3 && j < json_array_size(hop); j++) {
            json_t *v = json_array_get(hop, j);
            if (!json_is_string(v))
                return ch_error_set(err, CH_ERR_INVALID,
                                    "transport: seen-by[%zu][%zu] must be a string", i, j);
            if (json_string_length(v) > CH_PROTOCOL_MAX_FIELD)
                return ch_error_set(err, CH_ERR_TOO_LARGE, "transport: seen-by[%zu] too long", i);
            parts[j] = json_string_value(v);
        }
        hops[i].in = parts[0];
        hops[i].processor = parts[1];
        hops[i].out = parts[2];
    }
    t->headers.seen_by = hops;
    t->headers.n_seen_by = n;
    return CH_OK;
}

static ch_status decode_federation(const proto_transport_dialect *d, json_t *obj, ch_transport *t,
                                   ch_error *err)
{
    const char *L = "transport: federation";
    ch_status s;
    ch_federation *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "transport: out of memory");
    t->owned_.blocks[2] = f;
    if ((s = proto_get_str(obj, L, d->fed_req, F_NULL_OK, CH_PROTOCOL_MAX_FIELD, &f->req, err)) ||
        (s = proto_get_str(obj, L, d->fed_reply_to, F_NULL_OK, CH_MAX_SUBJECT_LEN, &f->reply_to,
                           err)))
        return s;
    json_t *targets = json_object_get(obj, d->fed_targets);
    if (targets != NULL && !json_is_null(targets)) {
        size_t n = json_array_size(targets);
        if (!json_is_array(targets))
            return ch_error_set(err, CH_ERR_INVALID, "%s target must be an array", L);
        if (n > CH_PROTOCOL_MAX_LIST)
            return ch_error_set(err, CH_ERR_TOO_LARGE, "%s has more than %d targets", L,
                                CH_PROTOCOL_MAX_LIST);
        const char **list = n ? calloc(n, sizeof(*list)) : NULL;
        if (n > 0 && list == NULL)
            return ch_error_set(err, CH_ERR_NOMEM, "transport: out of memory");
        t->owned_.blocks[3] = list;
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(targets, i);
            if (!json_is_string(v) || json_string_length(v) > CH_PROTOCOL_MAX_FIELD)
                return ch_error_set(err, CH_ERR_INVALID, "%s target[%zu] must be a short string", L,
                                    i);
            list[i] = json_string_value(v);
        }
        f->targets = list;
        f->n_targets = n;
    }
    t->headers.federation = f;
    return CH_OK;
}

static ch_status decode_headers(const proto_transport_dialect *d, json_t *h, ch_transport *t,
                                ch_error *err)
{
    const char *L = "transport: headers";
    ch_status s;
    if (h == NULL || json_is_null(h))
        return CH_OK;
    if (!json_is_object(h))
        return ch_error_set(err, CH_ERR_INVALID, "%s must be an object", L);
    if ((s = proto_get_str(h, L, d->reply_to, F_NULL_OK, CH_MAX_SUBJECT_LEN, &t->headers.reply_to,
                           err)) ||
        (s = proto_get_str(h, L, d->sender, F_NULL_OK, CH_MAX_IDENTITY_LEN, &t->headers.mc_sender,
                           err)))
        return s;
    json_t *seen = json_object_get(h, d->seen_by);
    if (seen != NULL && !json_is_null(seen)) {
        if (!json_is_array(seen))
            return ch_error_set(err, CH_ERR_INVALID, "%s: seen-by must be an array", L);
        if ((s = decode_seen_by(seen, t, err)) != CH_OK)
            return s;
    }
    json_t *fed = json_object_get(h, "federation");
    if (fed != NULL && !json_is_null(fed)) {
        if (!json_is_object(fed))
            return ch_error_set(err, CH_ERR_INVALID, "%s: federation must be an object", L);
        if ((s = decode_federation(d, fed, t, err)) != CH_OK)
            return s;
    }
    return CH_OK;
}

ch_status ch_protocol_transport_decode(const char *buf, size_t len, ch_transport *out,
                                       ch_error *err)
{
    return proto_transport_decode(&proto_transport_v1, buf, len, out, err);
}

ch_status proto_transport_decode(const proto_transport_dialect *d, const char *buf, size_t len,
                                 ch_transport *out, ch_error *err)
{
    const char *L = "transport", *data;
    ch_status s;
    memset(out, 0, sizeof(*out));
    if ((s = proto_parse_object(L, buf, len, &out->owned_.root, err)) != CH_OK)
        return s;
    json_t *root = out->owned_.root;
    if ((s = proto_check_protocol(root, L, d->protocol, err)) ||
        (s = proto_get_str(root, L, "data", F_REQUIRED, CH_MAX_MESSAGE_SIZE, &data, err)))
        goto out;
    unsigned char *bytes = NULL;
    size_t nbytes = 0;
    s = ch_base64_decode(data, json_string_length(json_object_get(root, "data")), &bytes, &nbytes);
    if (s != CH_OK) {
        s = ch_error_set(err, s, "transport: data is not valid base64");
        goto out;
    }
    out->owned_.blocks[0] = bytes;
    out->data = bytes;
    out->data_len = nbytes;
    if ((s = decode_headers(d, json_object_get(root, "headers"), out, err)) != CH_OK)
        goto out;
    return CH_OK;
out:
    ch_protocol_transport_clear(out);
    return s;
}

void ch_protocol_transport_clear(ch_transport *t)
{
    if (t == NULL)
        return;
    proto_owned_clear(&t->owned_);
    memset(t, 0, sizeof(*t));
}

/* ---- Secure request ---------------------------------------------------------------- */

static ch_status check_secure_request(const ch_secure_request *sr, ch_error *err)
{
    const char *L = "secure request";
    const int req = F_REQUIRED | F_NONEMPTY;
    ch_status s;
    if ((s = proto_check_field(L, "message", sr->message, req, CH_MAX_MESSAGE_SIZE, err)) ||
        (s = proto_check_field(L, "signature", sr->signature, req, MAX_CREDENTIAL, err)) ||
        (s = proto_check_field(L, "pubcert", sr->pubcert, req, MAX_CREDENTIAL, err)))
        return s;
    return CH_OK;
}

ch_status ch_protocol_secure_request_encode(const ch_secure_request *sr, char **out,
                                            size_t *out_len, ch_error *err)
{
    ch_status s;
    ch_buf b;
    *out = NULL;
    if ((s = check_secure_request(sr, err)) != CH_OK)
        return s;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"" CH_PROTOCOL_SECURE_REQUEST_V1 "\",\"message\":");
    proto_put_str(&b, sr->message);
    ch_buf_append_str(&b, ",\"signature\":");
    proto_put_str(&b, sr->signature);
    ch_buf_append_str(&b, ",\"pubcert\":");
    proto_put_str(&b, sr->pubcert);
    ch_buf_append(&b, "}", 1);
    return proto_finish(&b, "secure request", out, out_len, err);
}

ch_status ch_protocol_secure_request_decode(const char *buf, size_t len, ch_secure_request *out,
                                            ch_error *err)
{
    const char *L = "secure request";
    const int req = F_REQUIRED | F_NONEMPTY;
    ch_status s;
    memset(out, 0, sizeof(*out));
    if ((s = proto_parse_object(L, buf, len, &out->owned_.root, err)) != CH_OK)
        return s;
    json_t *root = out->owned_.root;
    if ((s = proto_check_protocol(root, L, CH_PROTOCOL_SECURE_REQUEST_V1, err)) ||
        (s = proto_get_str(root, L, "message", req, CH_MAX_MESSAGE_SIZE, &out->message, err)) ||
        (s = proto_get_str(root, L, "signature", req, MAX_CREDENTIAL, &out->signature, err)) ||
        (s = proto_get_str(root, L, "pubcert", req, MAX_CREDENTIAL, &out->pubcert, err)))
        ch_protocol_secure_request_clear(out);
    return s;
}

void ch_protocol_secure_request_clear(ch_secure_request *sr)
{
    if (sr == NULL)
        return;
    proto_owned_clear(&sr->owned_);
    memset(sr, 0, sizeof(*sr));
}

/* ---- Secure reply ------------------------------------------------------------------ */

ch_status ch_protocol_reply_hash(const char *data, size_t len, char out[CH_PROTOCOL_HASH_LEN + 1])
{
    unsigned char digest[32];
    ch_sha256(data, len, digest);
    char *b64 = ch_base64_encode(digest, sizeof(digest));
    if (b64 == NULL)
        return CH_ERR_NOMEM;
    memcpy(out, b64, CH_PROTOCOL_HASH_LEN + 1);
    free(b64);
    return CH_OK;
}

ch_status ch_protocol_secure_reply_encode(const ch_secure_reply *sr, char **out, size_t *out_len,
                                          ch_error *err)
{
    char hash[CH_PROTOCOL_HASH_LEN + 1];
    ch_status s;
    ch_buf b;
    *out = NULL;
    if ((s = proto_check_field("secure reply", "message", sr->message, F_REQUIRED | F_NONEMPTY,
                               CH_MAX_MESSAGE_SIZE, err)) != CH_OK)
        return s;
    if (ch_protocol_reply_hash(sr->message, strlen(sr->message), hash) != CH_OK)
        return ch_error_set(err, CH_ERR_NOMEM, "secure reply: out of memory hashing");
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"" CH_PROTOCOL_SECURE_REPLY_V1 "\",\"message\":");
    proto_put_str(&b, sr->message);
    ch_buf_append_str(&b, ",\"hash\":\"");
    ch_buf_append_str(&b, hash);
    ch_buf_append_str(&b, "\"}");
    return proto_finish(&b, "secure reply", out, out_len, err);
}

ch_status ch_protocol_secure_reply_decode(const char *buf, size_t len, ch_secure_reply *out,
                                          ch_error *err)
{
    const char *L = "secure reply";
    const int req = F_REQUIRED | F_NONEMPTY;
    char hash[CH_PROTOCOL_HASH_LEN + 1];
    ch_status s;
    memset(out, 0, sizeof(*out));
    if ((s = proto_parse_object(L, buf, len, &out->owned_.root, err)) != CH_OK)
        return s;
    json_t *root = out->owned_.root;
    if ((s = proto_check_protocol(root, L, CH_PROTOCOL_SECURE_REPLY_V1, err)) ||
        (s = proto_get_str(root, L, "message", req, CH_MAX_MESSAGE_SIZE, &out->message, err)) ||
        (s = proto_get_str(root, L, "hash", req, CH_PROTOCOL_MAX_FIELD, &out->hash, err)))
        goto out;
    /* go-choria's SecureReply.Valid(): base64(sha256(message)) must equal hash exactly */
    if (ch_protocol_reply_hash(out->message, json_string_length(json_object_get(root, "message")),
                               hash) != CH_OK) {
        s = ch_error_set(err, CH_ERR_NOMEM, "secure reply: out of memory hashing");
        goto out;
    }
    if (strcmp(hash, out->hash) != 0) {
        s = ch_error_set(err, CH_ERR_INVALID, "secure reply: reply hash mismatch");
        goto out;
    }
    return CH_OK;
out:
    ch_protocol_secure_reply_clear(out);
    return s;
}

void ch_protocol_secure_reply_clear(ch_secure_reply *sr)
{
    if (sr == NULL)
        return;
    proto_owned_clear(&sr->owned_);
    memset(sr, 0, sizeof(*sr));
}

/* ---- Request ----------------------------------------------------------------------- */

static ch_status check_request(const ch_request *r, ch_error *err)
{
    const char *L = "request";
    const ch_request_envelope *e = &r->envelope;
    const int req = F_REQUIRED | F_NONEMPTY;
    ch_status s;
    ch_error fe;
    if ((s = proto_check_field(L, "message", r->message, req, CH_MAX_MESSAGE_SIZE, err)))
        return s;
    if (!requestid_valid(e->requestid))
        return ch_error_set(err, CH_ERR_INVALID,
                            "request: requestid must be exactly %d printable characters",
                            CH_PROTOCOL_REQUEST_ID_LEN);
    if ((s = proto_check_field(L, "senderid", e->senderid, F_REQUIRED, CH_MAX_IDENTITY_LEN, err)) ||
        (s = proto_check_field(L, "callerid", e->callerid, req, CH_PROTOCOL_MAX_FIELD, err)) ||
        (s = proto_check_field(L, "collective", e->collective, req, CH_PROTOCOL_MAX_FIELD, err)) ||
        (s = proto_check_field(L, "agent", e->agent, req, CH_PROTOCOL_MAX_FIELD, err)))
        return s;
    if (e->ttl < CH_PROTOCOL_MIN_TTL)
        return ch_error_set(err, CH_ERR_INVALID, "request: ttl must be at least %d, not %" PRId64,
                            CH_PROTOCOL_MIN_TTL, e->ttl);
    if ((s = ch_filter_validate(&e->filter, &fe)) != CH_OK)
        return ch_error_set(err, s, "request: %s", fe.msg);
    return CH_OK;
}

ch_status ch_protocol_request_encode(const ch_request *r, char **out, size_t *out_len,
                                     ch_error *err)
{
    const ch_request_envelope *e = &r->envelope;
    ch_status s;
    ch_buf b;
    *out = NULL;
    if ((s = check_request(r, err)) != CH_OK)
        return s;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"" CH_PROTOCOL_REQUEST_V1 "\",\"message\":");
    proto_put_str(&b, r->message);
    ch_buf_append_str(&b, ",\"envelope\":{");
    const char *const fields[][2] = {{"requestid", e->requestid},
                                     {"senderid", e->senderid},
                                     {"callerid", e->callerid},
                                     {"collective", e->collective},
                                     {"agent", e->agent}};
    proto_put_fields(&b, false, fields, 5);
    ch_buf_printf(&b, ",\"ttl\":%" PRId64 ",\"time\":%" PRId64 ",\"filter\":", e->ttl, e->time);
    ch_filter_encode(&e->filter, &b);
    ch_buf_append_str(&b, "}}");
    return proto_finish(&b, "request", out, out_len, err);
}

ch_status ch_protocol_request_decode(const char *buf, size_t len, ch_request *out, ch_error *err)
{
    const char *L = "request";
    const int req = F_REQUIRED | F_NONEMPTY;
    ch_request_envelope *e = &out->envelope;
    ch_status s;
    ch_error fe;
    memset(out, 0, sizeof(*out));
    if ((s = proto_parse_object(L, buf, len, &out->owned_.root, err)) != CH_OK)
        return s;
    json_t *root = out->owned_.root;
    if ((s = proto_check_protocol(root, L, CH_PROTOCOL_REQUEST_V1, err)) ||
        (s = proto_get_str(root, L, "message", req, CH_MAX_MESSAGE_SIZE, &out->message, err)))
        goto out;
    json_t *env = json_object_get(root, "envelope");
    if (!json_is_object(env)) {
        s = ch_error_set(err, CH_ERR_INVALID, "request: envelope %s",
                         env ? "must be an object" : "is required");
        goto out;
    }
    L = "request envelope";
    if ((s = get_requestid(env, L, &e->requestid, err)) ||
        (s = proto_get_str(env, L, "senderid", F_REQUIRED, CH_MAX_IDENTITY_LEN, &e->senderid,
                           err)) ||
        (s = proto_get_str(env, L, "callerid", req, CH_PROTOCOL_MAX_FIELD, &e->callerid, err)) ||
        (s = proto_get_str(env, L, "collective", req, CH_PROTOCOL_MAX_FIELD, &e->collective,
                           err)) ||
        (s = proto_get_str(env, L, "agent", req, CH_PROTOCOL_MAX_FIELD, &e->agent, err)) ||
        (s = proto_get_int(env, L, "ttl", &e->ttl, err)) ||
        (s = proto_get_int(env, L, "time", &e->time, err)))
        goto out;
    if (e->ttl < CH_PROTOCOL_MIN_TTL) {
        s = ch_error_set(err, CH_ERR_INVALID, "%s: ttl must be at least %d, not %" PRId64, L,
                         CH_PROTOCOL_MIN_TTL, e->ttl);
        goto out;
    }
    json_t *filter = json_object_get(env, "filter");
    if (filter == NULL) {
        s = ch_error_set(err, CH_ERR_INVALID, "%s: filter is required", L);
        goto out;
    }
    if ((s = ch_filter_parse(filter, &e->filter, &fe)) != CH_OK) {
        s = ch_error_set(err, s, "%s: %s", L, fe.msg);
        goto out;
    }
    return CH_OK;
out:
    ch_protocol_request_clear(out);
    return s;
}

void ch_protocol_request_clear(ch_request *r)
{
    if (r == NULL)
        return;
    ch_filter_clear(&r->envelope.filter);
    proto_owned_clear(&r->owned_);
    memset(r, 0, sizeof(*r));
}

/* ---- Reply ------------------------------------------------------------------------- */

static ch_status check_reply(const ch_reply *r, ch_error *err)
{
    const char *L = "reply";
    const int req = F_REQUIRED | F_NONEMPTY;
    ch_status s;
    if ((s = proto_check_field(L, "message", r->message, req, CH_MAX_MESSAGE_SIZE, err)))
        return s;
    if (!requestid_valid(r->envelope.requestid))
        return ch_error_set(err, CH_ERR_INVALID,
                            "reply: requestid must be exactly %d printable characters",
                            CH_PROTOCOL_REQUEST_ID_LEN);
    if ((s = proto_check_field(L, "senderid", r->envelope.senderid, F_REQUIRED, CH_MAX_IDENTITY_LEN,
                               err)) ||
        (s = proto_check_field(L, "agent", r->envelope.agent, req, CH_PROTOCOL_MAX_FIELD, err)))
        return s;
    return CH_OK;
}

ch_status ch_protocol_reply_encode(const ch_reply *r, char **out, size_t *out_len, ch_error *err)
{
    ch_status s;
    ch_buf b;
    *out = NULL;
    if ((s = check_reply(r, err)) != CH_OK)
        return s;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"" CH_PROTOCOL_REPLY_V1 "\",\"message\":");
    proto_put_str(&b, r->message);
    ch_buf_append_str(&b, ",\"envelope\":{");
    const char *const fields[][2] = {{"requestid", r->envelope.requestid},
                                     {"senderid", r->envelope.senderid},
                                     {"agent", r->envelope.agent}};
    proto_put_fields(&b, false, fields, 3);
    ch_buf_printf(&b, ",\"time\":%" PRId64 "}}", r->envelope.time);
    return proto_finish(&b, "reply", out, out_len, err);
}

ch_status ch_protocol_reply_decode(const char *buf, size_t len, ch_reply *out, ch_error *err)
{
    const char *L = "reply";
    const int req = F_REQUIRED | F_NONEMPTY;
    ch_reply_envelope *e = &out->envelope;
    ch_status s;
    memset(out, 0, sizeof(*out));
    if ((s = proto_parse_object(L, buf, len, &out->owned_.root, err)) != CH_OK)
        return s;
    json_t *root = out->owned_.root;
    if ((s = proto_check_protocol(root, L, CH_PROTOCOL_REPLY_V1, err)) ||
        (s = proto_get_str(root, L, "message", req, CH_MAX_MESSAGE_SIZE, &out->message, err)))
        goto out;
    json_t *env = json_object_get(root, "envelope");
    if (!json_is_object(env)) {
        s = ch_error_set(err, CH_ERR_INVALID, "reply: envelope %s",
                         env ? "must be an object" : "is required");
        goto out;
    }
    L = "reply envelope";
    if ((s = get_requestid(env, L, &e->requestid, err)) ||
        (s = proto_get_str(env, L, "senderid", F_REQUIRED, CH_MAX_IDENTITY_LEN, &e->senderid,
                           err)) ||
        (s = proto_get_str(env, L, "agent", req, CH_PROTOCOL_MAX_FIELD, &e->agent, err)) ||
        (s = proto_get_int(env, L, "time", &e->time, err)))
        goto out;
    return CH_OK;
out:
    ch_protocol_reply_clear(out);
    return s;
}

void ch_protocol_reply_clear(ch_reply *r)
{
    if (r == NULL)
        return;
    proto_owned_clear(&r->owned_);
    memset(r, 0, sizeof(*r));
}

/* ---- Whole payloads ---------------------------------------------------------------- */

ch_status ch_protocol_request_payload_build(const ch_request_params *p, const ch_security *sec,
                                            char **out, size_t *out_len, ch_error *err)
{
    char reply_to[CH_MAX_SUBJECT_LEN];
    char *request = NULL, *secure = NULL, *signature = NULL, *pubcert = NULL;
    size_t request_len = 0, secure_len = 0;
    ch_status s;
    *out = NULL;

    ch_request r = {.message = p->body,
                    .envelope = {.requestid = p->requestid,
                                 .senderid = p->senderid,
                                 .callerid = p->callerid,
                                 .collective = p->collective,
                                 .agent = p->agent,
                                 .ttl = p->ttl,
                                 .time = p->time}};
    if (ch_security_tech_of(sec) == CH_SECURITY_TECH_ED25519)
        return ch_error_set(err, CH_ERR_UNSUPPORTED,
                            "the %s security provider signs protocol v2 requests, not v1",
                            ch_security_name(sec));
    if (p->filter != NULL)
        r.envelope.filter = *p->filter; /* a shallow copy; never cleared */
    if ((s = ch_protocol_request_encode(&r, &request, &request_len, err)) != CH_OK)
        goto out;
    if ((s = ch_security_sign(sec, request, request_len, &signature, &pubcert, err)) != CH_OK)
        goto out;
    ch_secure_request sr = {.message = request, .signature = signature, .pubcert = pubcert};
    if ((s = ch_protocol_secure_request_encode(&sr, &secure, &secure_len, err)) != CH_OK)
        goto out;

    const char *rt = p->reply_to;
    if (rt == NULL) {
        s = ch_protocol_reply_subject(p->collective, p->callerid, p->requestid, reply_to,
                                      sizeof(reply_to), err);
        if (s != CH_OK)
            goto out;
        rt = reply_to;
    }
    ch_seen_by hop = {p->connected_url, p->senderid, p->connected_url};
    ch_transport t = {.data = (const unsigned char *)secure,
                      .data_len = secure_len,
                      .headers = {.reply_to = rt,
                                  .mc_sender = p->senderid,
                                  .seen_by = p->connected_url ? &hop : NULL,
                                  .n_seen_by = p->connected_url ? 1 : 0,
                                  .federation = p->federation}};
    s = ch_protocol_transport_encode(&t, out, out_len, err);
out:
    free(request);
    free(secure);
    free(signature);
    free(pubcert);
    return s;
}

ch_status ch_protocol_reply_payload_build(const ch_reply_params *p, char **out, size_t *out_len,
                                          ch_error *err)
{
    char *reply = NULL, *secure = NULL;
    size_t secure_len = 0;
    ch_status s;
    *out = NULL;
    if (p->request == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "reply: the request envelope is required");
    if (p->identity == NULL || p->identity[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "reply: the sender identity is required");

    ch_reply r = {.message = p->body,
                  .envelope = {.requestid = p->request->requestid,
                               .senderid = p->identity,
                               .agent = p->request->agent,
                               .time = p->time}};
    if ((s = ch_protocol_reply_encode(&r, &reply, NULL, err)) != CH_OK)
        goto out;
    ch_secure_reply sr = {.message = reply};
    if ((s = ch_protocol_secure_reply_encode(&sr, &secure, &secure_len, err)) != CH_OK)
        goto out;
    ch_seen_by hop = {p->connected_url, p->identity, p->connected_url};
    ch_transport t = {.data = (const unsigned char *)secure,
                      .data_len = secure_len,
                      .headers = {.mc_sender = p->identity,
                                  .seen_by = p->connected_url ? &hop : NULL,
                                  .n_seen_by = p->connected_url ? 1 : 0,
                                  .federation = p->federation}};
    s = ch_protocol_transport_encode(&t, out, out_len, err);
out:
    free(reply);
    free(secure);
    return s;
}

ch_status ch_protocol_request_payload_decode(const char *payload, size_t len,
                                             const ch_security *sec, ch_request_payload *out,
                                             ch_error *err)
{
    ch_status s;
    memset(out, 0, sizeof(*out));
    if (ch_security_tech_of(sec) == CH_SECURITY_TECH_ED25519)
        return ch_error_set(err, CH_ERR_UNSUPPORTED,
                            "a protocol v1 request cannot be verified by the %s security provider",
                            ch_security_name(sec));
    if ((s = ch_protocol_transport_decode(payload, len, &out->transport, err)) != CH_OK)
        return s;
    if ((s = ch_protocol_secure_request_decode((const char *)out->transport.data,
                                               out->transport.data_len, &out->secure, err)) ||
        (s = ch_protocol_request_decode(out->secure.message, strlen(out->secure.message),
                                        &out->request, err)))
        goto out;
    if (sec != NULL) {
        ch_error e;
        s = ch_security_verify(sec, out->secure.message, strlen(out->secure.message),
                               out->secure.signature, out->secure.pubcert,
                               out->request.envelope.callerid, &e);
        if (s != CH_OK) {
            s = ch_error_set(err, s, "secure request: %s", e.msg);
            goto out;
        }
    }
    return CH_OK;
out:
    ch_protocol_request_payload_clear(out);
    return s;
}

ch_status ch_protocol_reply_payload_decode(const char *payload, size_t len, ch_reply_payload *out,
                                           ch_error *err)
{
    ch_status s;
    memset(out, 0, sizeof(*out));
    if ((s = ch_protocol_transport_decode(payload, len, &out->transport, err)) ||
        (s = ch_protocol_secure_reply_decode((const char *)out->transport.data,
                                             out->transport.data_len, &out->secure, err)) ||
        (s = ch_protocol_reply_decode(out->secure.message, strlen(out->secure.message), &out->reply,
                                      err)))
        ch_protocol_reply_payload_clear(out);
    return s;
}

void ch_protocol_request_payload_clear(ch_request_payload *p)
{
    if (p == NULL)
        return;
    ch_protocol_request_clear(&p->request);
    ch_protocol_secure_request_clear(&p->secure);
    ch_protocol_transport_clear(&p->transport);
}

void ch_protocol_reply_payload_clear(ch_reply_payload *p)
{
    if (p == NULL)
        return;
    ch_protocol_reply_clear(&p->reply);
    ch_protocol_secure_reply_clear(&p->secure);
    ch_protocol_transport_clear(&p->transport);
}

/* ---- Helpers ----------------------------------------------------------------------- */

ch_status ch_protocol_message_body(const char *message, unsigned char **out, size_t *out_len,
                                   ch_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (message == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no message");
    size_t len = strlen(message);
    ch_status s = ch_base64_decode(message, len, out, out_len);
    if (s == CH_OK)
        return CH_OK;
    if (s == CH_ERR_NOMEM)
        return ch_error_set(err, s, "out of memory decoding a message");
    /* Not base64: go-choria ignores the decode error and keeps the raw bytes. */
    *out = malloc(len + 1);
    if (*out == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory copying a message");
    memcpy(*out, message, len + 1);
    *out_len = len;
    return CH_OK;
}

static void describe_time(int64_t t, char *out, size_t size)
{
    /* 0001-01-01 .. 9999-12-31 formats as RFC 3339; anything else as a number */
    if (t >= -62135596800LL && t <= 253402300799LL)
        ch_format_rfc3339(t, out, size);
    else
        snprintf(out, size, "%" PRId64, t);
}

ch_status ch_protocol_ttl_check(const ch_request_envelope *env, int64_t now, ch_error *err)
{
    int64_t lo, hi, ttl = env->ttl;
    char when[32];
    const char *id = env->requestid ? env->requestid : "(no id)";
    if (ttl < 0)
        ttl = 0;
    if (__builtin_sub_overflow(now, ttl, &lo))
        lo = INT64_MIN;
    if (__builtin_add_overflow(now, ttl, &hi))
        hi = INT64_MAX;
    if (env->time >= lo && env->time <= hi)
        return CH_OK;
    describe_time(env->time, when, sizeof(when));
    if (env->time < lo)
        return ch_error_set(err, CH_ERR_EXPIRED,
                            "message %s created at %s is too old: ttl is %" PRId64 "s", id, when,
                            env->ttl);
    return ch_error_set(err, CH_ERR_EXPIRED,
                        "message %s created at %s is too far in the future: ttl is %" PRId64 "s",
                        id, when, env->ttl);
}

ch_status ch_protocol_callerid(const char *certname, char *out, size_t out_size, ch_error *err)
{
    if (certname == NULL || certname[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "a caller id needs a certificate name");
    int n = snprintf(out, out_size, "choria=%s", certname);
    if (n < 0 || (size_t)n >= out_size)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "caller id for %.64s is too long", certname);
    return CH_OK;
}

/* One NATS subject token: no separators, wildcards, whitespace or control characters. */
static bool token_valid(const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > CH_PROTOCOL_MAX_FIELD)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == '.' || *p == '*' || *p == '>')
            return false;
    return true;
}

static ch_status check_token(const char *what, const char *v, ch_error *err)
{
    if (!token_valid(v))
        return ch_error_set(err, CH_ERR_INVALID, "invalid %s '%.64s' for a subject", what,
                            v ? v : "(null)");
    return CH_OK;
}

static ch_status write_subject(char *out, size_t out_size, ch_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static ch_status write_subject(char *out, size_t out_size, ch_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, out_size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= out_size)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "subject longer than %zu bytes", out_size);
    return CH_OK;
}

ch_status ch_protocol_reply_subject(const char *collective, const char *callerid,
                                    const char *requestid, char *out, size_t out_size,
                                    ch_error *err)
{
    char md5[33];
    ch_status s;
    if ((s = check_token("collective", collective, err)) ||
        (s = check_token("request id", requestid, err)))
        return s;
    if (callerid == NULL || callerid[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "a reply subject needs a caller id");
    ch_md5_hex(callerid, strlen(callerid), md5);
    return write_subject(out, out_size, err, "%s.reply.%s.%s", collective, md5, requestid);
}

ch_status ch_protocol_reply_inbox(const char *collective, const char *callerid, char *out,
                                  size_t out_size, ch_error *err)
{
    char md5[33];
    ch_status s;
    if ((s = check_token("collective", collective, err)))
        return s;
    if (callerid == NULL || callerid[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "a reply inbox needs a caller id");
    ch_md5_hex(callerid, strlen(callerid), md5);
    return write_subject(out, out_size, err, "%s.reply.%s.>", collective, md5);
}

ch_status ch_protocol_node_subject(const char *collective, const char *identity, char *out,
                                   size_t out_size, ch_error *err)
{
    ch_status s;
    if ((s = check_token("collective", collective, err)))
        return s;
    if (!ch_identity_valid(identity))
        return ch_error_set(err, CH_ERR_INVALID, "invalid identity '%.64s' for a subject",
                            identity ? identity : "(null)");
    return write_subject(out, out_size, err, "%s.node.%s", collective, identity);
}

ch_status ch_protocol_broadcast_subject(const char *collective, const char *agent, char *out,
                                        size_t out_size, ch_error *err)
{
    ch_status s;
    if ((s = check_token("collective", collective, err)) || (s = check_token("agent", agent, err)))
        return s;
    return write_subject(out, out_size, err, "%s.broadcast.agent.%s", collective, agent);
}

ch_status ch_protocol_service_subject(const char *collective, const char *agent, char *out,
                                      size_t out_size, ch_error *err)
{
    ch_status s;
    if ((s = check_token("collective", collective, err)) || (s = check_token("agent", agent, err)))
        return s;
    return write_subject(out, out_size, err, "%s.broadcast.service.%s", collective, agent);
}

/* ---- protocol versions ---- */

static ch_status v1_encode_reply(const ch_reply_params *p, const ch_security *sec, char **out,
                                 size_t *out_len, ch_error *err)
{
    return ch_protocol_reply_payload_build(p, out, out_len, err);
}

static ch_status v1_decode_reply(const char *payload, size_t len, const ch_security *sec,
                                 ch_reply_payload *out, ch_error *err)
{
    return ch_protocol_reply_payload_decode(payload, len, out, err);
}

static const ch_protocol_ops V1 = {
    .name = "choria:v1",
    .encode_request = ch_protocol_request_payload_build,
    .decode_request = ch_protocol_request_payload_decode,
    .encode_reply = v1_encode_reply,
    .decode_reply = v1_decode_reply,
};

const ch_protocol_ops *ch_protocol_v1(void)
{
    return &V1;
}

const ch_protocol_ops *ch_protocol_detect(const char *payload, size_t len)
{
    json_t *root = ch_json_parse(payload, len, CH_MAX_MESSAGE_SIZE, CH_MAX_JSON_DEPTH, NULL);
    const char *p = json_string_value(json_object_get(root, "protocol"));
    const ch_protocol_ops *proto = NULL;
    if (p != NULL && strcmp(p, CH_PROTOCOL_TRANSPORT_V1) == 0)
        proto = &V1;
    else if (p != NULL && strcmp(p, CH_PROTOCOL_TRANSPORT_V2) == 0)
        proto = ch_protocol_v2();
    json_decref(root);
    return proto;
}

const ch_protocol_ops *ch_protocol_for_security(const ch_security *sec)
{
    return ch_security_tech_of(sec) == CH_SECURITY_TECH_ED25519 ? ch_protocol_v2() : &V1;
}

ch_status ch_protocol_encode_request(const ch_protocol_ops *proto, const ch_security *sec,
                                     const ch_request_params *p, char **out, size_t *out_len,
                                     ch_error *err)
{
    return (proto != NULL ? proto : &V1)->encode_request(p, sec, out, out_len, err);
}

ch_status ch_protocol_decode_request(const ch_protocol_ops *proto, const ch_security *sec,
                                     const char *payload, size_t len, ch_request_payload *out,
                                     ch_error *err)
{
    return (proto != NULL ? proto : &V1)->decode_request(payload, len, sec, out, err);
}

ch_status ch_protocol_encode_reply(const ch_protocol_ops *proto, const ch_security *sec,
                                   const ch_reply_params *p, char **out, size_t *out_len,
                                   ch_error *err)
{
    return (proto != NULL ? proto : &V1)->encode_reply(p, sec, out, out_len, err);
}

ch_status ch_protocol_decode_reply(const ch_protocol_ops *proto, const ch_security *sec,
                                   const char *payload, size_t len, ch_reply_payload *out,
                                   ch_error *err)
{
    return (proto != NULL ? proto : &V1)->decode_reply(payload, len, sec, out, err);
}
