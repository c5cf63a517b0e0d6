/* Choria RPC protocol v2: go-choria's protocol/v2 envelopes, encoded byte for byte and decoded
 * into the structs v1 fills (see include/choria/protocol_v2.h for the mapping). */
#include "choria/protocol_v2.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "choria/json.h"
#include "choria/util.h"
#include "protocol_internal.h"

#define NS_PER_SECOND 1000000000LL

const proto_transport_dialect proto_transport_v2 = {
    .protocol = CH_PROTOCOL_TRANSPORT_V2,
    .reply_to = "reply",
    .sender = "sender",
    .seen_by = "trace",
    .fed_req = "request",
    .fed_reply_to = "reply",
    .fed_targets = "targets",
};

/* Seconds to go-choria's nanosecond times, saturating instead of overflowing. */
static int64_t to_ns(int64_t seconds)
{
    int64_t ns;
    if (__builtin_mul_overflow(seconds, NS_PER_SECOND, &ns))
        return seconds < 0 ? INT64_MIN : INT64_MAX;
    return ns;
}

/* ",\"key\":\"<base64 of data>\"" */
static void put_b64(ch_buf *b, const char *key, const void *data, size_t len)
{
    char *b64 = ch_base64_encode(data, len);
    if (b64 == NULL) {
        b->failed = true;
        return;
    }
    ch_buf_printf(b, ",\"%s\":\"%s\"", key, b64); /* the base64 alphabet needs no escaping */
    free(b64);
}

/* A request body as v1 carries it is text, or the base64 of bytes (discovery's "cGluZw==" is
 * "ping"): v2 carries the bytes, so a body that is already base64 goes in as it is. */
static void put_message(ch_buf *b, const char *body)
{
    unsigned char *bytes = NULL;
    size_t n = 0;
    if (ch_base64_decode(body, strlen(body), &bytes, &n) == CH_OK && n > 0) {
        free(bytes);
        ch_buf_printf(b, ",\"message\":\"%s\"", body);
        return;
    }
    free(bytes);
    put_b64(b, "message", body, strlen(body));
}

/* The base64 text of a []byte field decoded into a NUL-terminated string kept by owned (in
 * block slot): the bytes must not hold a NUL, as everything after is text. */
static ch_status get_b64_text(const json_t *obj, const char *layer, const char *key,
                              ch_protocol_owned *owned, int slot, const char **out, size_t *len,
                              ch_error *err)
{
    const char *b64;
    ch_status s =
        proto_get_str(obj, layer, key, F_REQUIRED | F_NONEMPTY, CH_MAX_MESSAGE_SIZE, &b64, err);
    if (s != CH_OK)
        return s;
    unsigned char *bytes = NULL;
    size_t n = 0;
    s = ch_base64_decode(b64, json_string_length(json_object_get(obj, key)), &bytes, &n);
    if (s != CH_OK)
        return ch_error_set(err, s, "%s: %s is not valid base64", layer, key);
    owned->blocks[slot] = bytes;
    if (memchr(bytes, '\0', n) != NULL)
        return ch_error_set(err, CH_ERR_INVALID, "%s: %s holds a NUL byte", layer, key);
    *out = (const char *)bytes;
    if (len != NULL)
        *len = n;
    return CH_OK;
}

/* A v2 id: non-empty, printable, no spaces (it ends up in subjects and logs). */
static ch_status check_id(const char *layer, const char *key, const char *id, ch_error *err)
{
    size_t n = id != NULL ? strlen(id) : 0;
    if (n == 0 || n > CH_PROTOCOL_MAX_FIELD)
        return ch_error_set(err, CH_ERR_INVALID, "%s: %s must be 1 to %d characters", layer, key,
                            CH_PROTOCOL_MAX_FIELD);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f)
            return ch_error_set(err, CH_ERR_INVALID, "%s: %s must be printable", layer, key);
    return CH_OK;
}

/* ---- Request ----------------------------------------------------------------------- */

static ch_status check_request_params(const ch_request_params *p, ch_error *err)
{
    const char *L = "request";
    const int req = F_REQUIRED | F_NONEMPTY;
    ch_status s;
    ch_error fe;
    if ((s = proto_check_field(L, "message", p->body, req, CH_MAX_MESSAGE_SIZE / 4 * 3, err)) ||
        (s = check_id(L, "id", p->requestid, err)) ||
        (s = proto_check_field(L, "sender", p->senderid, req, CH_MAX_IDENTITY_LEN, err)) ||
        (s = proto_check_field(L, "caller", p->callerid, req, CH_PROTOCOL_MAX_FIELD, err)) ||
        (s = proto_check_field(L, "collective", p->collective, req, CH_PROTOCOL_MAX_FIELD, err)) ||
        (s = proto_check_field(L, "agent", p->agent, req, CH_PROTOCOL_MAX_FIELD, err)))
        return s;
    if (p->ttl < CH_PROTOCOL_V2_MIN_TTL)
        return ch_error_set(err, CH_ERR_INVALID, "request: ttl must be at least %d, not %" PRId64,
                            CH_PROTOCOL_V2_MIN_TTL, p->ttl);
    if (p->time <= 0)
        return ch_error_set(err, CH_ERR_INVALID, "request: time must be positive");
    if (p->filter != NULL && (s = ch_filter_validate(p->filter, &fe)) != CH_OK)
        return ch_error_set(err, s, "request: %s", fe.msg);
    return CH_OK;
}

ch_status ch_protocol_v2_request_json(const ch_request_params *p, char **out, size_t *out_len,
                                      ch_error *err)
{
    ch_filter empty = {0};
    ch_status s;
    ch_buf b;
    *out = NULL;
    if ((s = check_request_params(p, err)) != CH_OK)
        return s;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"" CH_PROTOCOL_REQUEST_V2 "\"");
    put_message(&b, p->body);
    const char *const fields[][2] = {{"id", p->requestid},
                                     {"sender", p->senderid},
                                     {"caller", p->callerid},
                                     {"collective", p->collective},
                                     {"agent", p->agent}};
    proto_put_fields(&b, true, fields, 5);
    ch_buf_printf(&b, ",\"ttl\":%" PRId64 ",\"time\":%" PRId64 ",\"filter\":", p->ttl,
                  to_ns(p->time));
    ch_filter_encode(p->filter != NULL ? p->filter : &empty, &b);
    ch_buf_append(&b, "}", 1);
    return proto_finish(&b, "request", out, out_len, err);
}

static ch_status decode_request(const char *buf, size_t len, ch_request *out, ch_error *err)
{
    const char *L = "request", *body;
    const int req = F_REQUIRED | F_NONEMPTY;
    ch_request_envelope *e = &out->envelope;
    ch_status s;
    ch_error fe;
    memset(out, 0, sizeof(*out));
    if ((s = proto_parse_object(L, buf, len, &out->owned_.root, err)) != CH_OK)
        return s;
    json_t *root = out->owned_.root;
    if ((s = proto_check_protocol(root, L, CH_PROTOCOL_REQUEST_V2, err)) ||
        (s = get_b64_text(root, L, "message", &out->owned_, 0, &body, NULL, err)) ||
        (s = proto_get_str(root, L, "message", req, CH_MAX_MESSAGE_SIZE, &out->message, err)) ||
        (s = proto_get_str(root, L, "id", req, CH_PROTOCOL_MAX_FIELD, &e->requestid, err)) ||
        (s = check_id(L, "id", e->requestid, err)) ||
        (s = proto_get_str(root, L, "sender", req, CH_MAX_IDENTITY_LEN, &e->senderid, err)) ||
        (s = proto_get_str(root, L, "caller", req, CH_PROTOCOL_MAX_FIELD, &e->callerid, err)) ||
        (s = proto_get_str(root, L, "collective", req, CH_PROTOCOL_MAX_FIELD, &e->collective,
                           err)) ||
        (s = proto_get_str(root, L, "agent", req, CH_PROTOCOL_MAX_FIELD, &e->agent, err)) ||
        (s = proto_get_int(root, L, "ttl", &e->ttl, err)) ||
        (s = proto_get_int(root, L, "time", &e->time, err)))
        goto out;
    if (e->ttl < CH_PROTOCOL_V2_MIN_TTL || e->time < 1) {
        s = ch_error_set(err, CH_ERR_INVALID, "%s: ttl and time must be positive", L);
        goto out;
    }
    e->time /= NS_PER_SECOND;
    json_t *filter = json_object_get(root, "filter");
    if (filter != NULL && !json_is_null(filter) &&
        (s = ch_filter_parse(filter, &e->filter, &fe)) != CH_OK) {
        s = ch_error_set(err, s, "%s: %s", L, fe.msg);
        goto out;
    }
    return CH_OK;
out:
    ch_protocol_request_clear(out);
    return s;
}

/* ---- Secure request ---------------------------------------------------------------- */

static ch_status encode_secure_request(const char *request, size_t request_len,
                                       const char *signature, const char *caller, char **out,
                                       size_t *out_len, ch_error *err)
{
    const char *L = "secure request";
    const int req = F_REQUIRED | F_NONEMPTY;
    ch_status s;
    ch_buf b;
    if ((s = proto_check_field(L, "signature", signature, req, MAX_CREDENTIAL, err)) ||
        (s = proto_check_field(L, "caller", caller, req, MAX_CREDENTIAL, err)))
        return s;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"" CH_PROTOCOL_SECURE_REQUEST_V2 "\"");
    put_b64(&b, "request", request, request_len);
    ch_buf_append_str(&b, ",\"signature\":");
    proto_put_str(&b, signature);
    ch_buf_append_str(&b, ",\"caller\":");
    proto_put_str(&b, caller);
    ch_buf_append(&b, "}", 1);
    return proto_finish(&b, L, out, out_len, err);
}

/* signer is set when the request carries a delegated signer's JWT (go-choria's AAA). */
static ch_status decode_secure_request(const char *buf, size_t len, ch_secure_request *out,
                                       bool *signer, ch_error *err)
{
    const char *L = "secure request", *signer_jwt = NULL;
    const int req = F_REQUIRED | F_NONEMPTY;
    ch_status s;
    memset(out, 0, sizeof(*out));
    if ((s = proto_parse_object(L, buf, len, &out->owned_.root, err)) != CH_OK)
        return s;
    json_t *root = out->owned_.root;
    if ((s = proto_check_protocol(root, L, CH_PROTOCOL_SECURE_REQUEST_V2, err)) ||
        (s = get_b64_text(root, L, "request", &out->owned_, 0, &out->message, NULL, err)) ||
        (s = proto_get_str(root, L, "signature", req, MAX_CREDENTIAL, &out->signature, err)) ||
        (s = proto_get_str(root, L, "caller", req, MAX_CREDENTIAL, &out->pubcert, err)) ||
        (s = proto_get_str(root, L, "signer", F_NULL_OK, MAX_CREDENTIAL, &signer_jwt, err)))
        ch_protocol_secure_request_clear(out);
    *signer = s == CH_OK && signer_jwt != NULL && signer_jwt[0] != '\0';
    return s;
}

/* ---- Secure reply ------------------------------------------------------------------ */

static ch_status encode_secure_reply(const char *reply, size_t reply_len, const ch_security *sec,
                                     char **out, size_t *out_len, ch_error *err)
{
    char hash[CH_PROTOCOL_HASH_LEN + 1];
    char *signature = NULL, *sender = NULL;
    ch_status s;
    ch_buf b;
    if (ch_protocol_reply_hash(reply, reply_len, hash) != CH_OK)
        return ch_error_set(err, CH_ERR_NOMEM, "secure reply: out of memory hashing");
    if (sec != NULL && sec->sign_replies &&
        (s = ch_security_sign(sec, reply, reply_len, &signature, &sender, err)) != CH_OK)
        return s;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"" CH_PROTOCOL_SECURE_REPLY_V2 "\"");
    put_b64(&b, "reply", reply, reply_len);
    ch_buf_printf(&b, ",\"hash\":\"%s\"", hash);
    if (signature != NULL) {
        ch_buf_append_str(&b, ",\"signature\":");
        proto_put_str(&b, signature);
        ch_buf_append_str(&b, ",\"sender\":");
        proto_put_str(&b, sender);
    }
    ch_buf_append(&b, "}", 1);
    free(signature);
    free(sender);
    return proto_finish(&b, "secure reply", out, out_len, err);
}

/* The hash is checked, the signature is not (go-choria's clients check only the hash). */
static ch_status decode_secure_reply(const char *buf, size_t len, ch_secure_reply *out,
                                     ch_error *err)
{
    const char *L = "secure reply";
    char hash[CH_PROTOCOL_HASH_LEN + 1];
    size_t reply_len = 0;
    ch_status s;
    memset(out, 0, sizeof(*out));
    if ((s = proto_parse_object(L, buf, len, &out->owned_.root, err)) != CH_OK)
        return s;
    json_t *root = out->owned_.root;
    if ((s = proto_check_protocol(root, L, CH_PROTOCOL_SECURE_REPLY_V2, err)) ||
        (s = get_b64_text(root, L, "reply", &out->owned_, 0, &out->message, &reply_len, err)) ||
        (s = proto_get_str(root, L, "hash", F_REQUIRED | F_NONEMPTY, CH_PROTOCOL_MAX_FIELD,
                           &out->hash, err)))
        goto out;
    if (ch_protocol_reply_hash(out->message, reply_len, hash) != CH_OK) {
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

/* ---- Reply ------------------------------------------------------------------------- */

static ch_status encode_reply(const ch_reply_params *p, char **out, size_t *out_len, ch_error *err)
{
    const char *L = "reply";
    const int req = F_REQUIRED | F_NONEMPTY;
    ch_status s;
    ch_buf b;
    if ((s = proto_check_field(L, "message", p->body, req, CH_MAX_MESSAGE_SIZE / 4 * 3, err)) ||
        (s = check_id(L, "request", p->request->requestid, err)) ||
        (s = proto_check_field(L, "sender", p->identity, req, CH_MAX_IDENTITY_LEN, err)) ||
        (s = proto_check_field(L, "agent", p->request->agent, req, CH_PROTOCOL_MAX_FIELD, err)))
        return s;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"" CH_PROTOCOL_REPLY_V2 "\"");
    put_b64(&b, "message", p->body, strlen(p->body));
    const char *const fields[][2] = {
        {"request", p->request->requestid}, {"sender", p->identity}, {"agent", p->request->agent}};
    proto_put_fields(&b, true, fields, 3);
    ch_buf_printf(&b, ",\"time\":%" PRId64 "}", to_ns(p->time));
    return proto_finish(&b, L, out, out_len, err);
}

static ch_status decode_reply(const char *buf, size_t len, ch_reply *out, ch_error *err)
{
    const char *L = "reply";
    const int req = F_REQUIRED | F_NONEMPTY;
    ch_reply_envelope *e = &out->envelope;
    ch_status s;
    memset(out, 0, sizeof(*out));
    if ((s = proto_parse_object(L, buf, len, &out->owned_.root, err)) != CH_OK)
        return s;
    json_t *root = out->owned_.root;
    if ((s = proto_check_protocol(root, L, CH_PROTOCOL_REPLY_V2, err)) ||
        (s = get_b64_text(root, L, "message", &out->owned_, 0, &out->message, NULL, err)) ||
        (s = proto_get_str(root, L, "request", req, CH_PROTOCOL_MAX_FIELD, &e->requestid, err)) ||
        (s = check_id(L, "request", e->requestid, err)) ||
        (s = proto_get_str(root, L, "sender", req, CH_MAX_IDENTITY_LEN, &e->senderid, err)) ||
        (s = proto_get_str(root, L, "agent", req, CH_PROTOCOL_MAX_FIELD, &e->agent, err)) ||
        (s = proto_get_int(root, L, "time", &e->time, err)))
        goto out;
    e->time /= NS_PER_SECOND;
    return CH_OK;
out:
    ch_protocol_reply_clear(out);
    return s;
}

/* ---- Whole payloads ---------------------------------------------------------------- */

static ch_status refuse_x509(const ch_security *sec, ch_error *err)
{
    if (ch_security_tech_of(sec) == CH_SECURITY_TECH_X509)
        return ch_error_set(err, CH_ERR_UNSUPPORTED,
                            "protocol v2 needs the choria (ed25519) security provider, not %s",
                            ch_security_name(sec));
    return CH_OK;
}

/* The signature and caller the request carries: the provider's, or the insecure pair. */
static ch_status sign_request(const ch_security *sec, const char *request, size_t len,
                              char **signature, char **caller, ch_error *err)
{
    ch_status s = ch_security_sign(sec, request, len, signature, caller, err);
    if (s != CH_OK || ch_security_tech_of(sec) == CH_SECURITY_TECH_ED25519)
        return s;
    free(*signature); /* the insecure provider's literal, as base64 like any []byte */
    *signature = strdup(CH_PROTOCOL_V2_INSECURE_SIGNATURE);
    return *signature != NULL ? CH_OK : ch_error_set(err, CH_ERR_NOMEM, "out of memory");
}

static ch_status v2_encode_request(const ch_request_params *p, const ch_security *sec, char **out,
                                   size_t *out_len, ch_error *err)
{
    char reply_to[CH_MAX_SUBJECT_LEN];
    char *request = NULL, *secure = NULL, *signature = NULL, *caller = NULL;
    size_t request_len = 0, secure_len = 0;
    ch_status s;
    *out = NULL;
    if ((s = refuse_x509(sec, err)) ||
        (s = ch_protocol_v2_request_json(p, &request, &request_len, err)) ||
        (s = sign_request(sec, request, request_len, &signature, &caller, err)) ||
        (s = encode_secure_request(request, request_len, signature, caller, &secure, &secure_len,
                                   err)))
        goto out;
    const char *rt = p->reply_to;
    if (rt == NULL) {
        if ((s = ch_protocol_reply_subject(p->collective, p->callerid, p->requestid, reply_to,
                                           sizeof(reply_to), err)) != CH_OK)
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
    s = proto_transport_encode(&proto_transport_v2, &t, out, out_len, err);
out:
    free(request);
    free(secure);
    free(signature);
    free(caller);
    return s;
}

static ch_status v2_decode_request(const char *payload, size_t len, const ch_security *sec,
                                   ch_request_payload *out, ch_error *err)
{
    bool signer = false;
    ch_status s;
    memset(out, 0, sizeof(*out));
    if ((s = refuse_x509(sec, err)) ||
        (s = proto_transport_decode(&proto_transport_v2, payload, len, &out->transport, err)))
        return s;
    if ((s = decode_secure_request((const char *)out->transport.data, out->transport.data_len,
                                   &out->secure, &signer, err)) ||
        (s = decode_request(out->secure.message, strlen(out->secure.message), &out->request, err)))
        goto out;
    if (sec != NULL && signer) {
        s = ch_error_set(err, CH_ERR_UNSUPPORTED,
                         "secure request: delegated signatures (a signer JWT) are not supported");
        goto out;
    }
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

static ch_status v2_encode_reply(const ch_reply_params *p, const ch_security *sec, char **out,
                                 size_t *out_len, ch_error *err)
{
    char *reply = NULL, *secure = NULL;
    size_t reply_len = 0, secure_len = 0;
    ch_status s;
    *out = NULL;
    if (p->request == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "reply: the request envelope is required");
    if ((s = encode_reply(p, &reply, &reply_len, err)) ||
        (s = encode_secure_reply(reply, reply_len, sec, &secure, &secure_len, err)))
        goto out;
    ch_seen_by hop = {p->connected_url, p->identity, p->connected_url};
    ch_transport t = {.data = (const unsigned char *)secure,
                      .data_len = secure_len,
                      .headers = {.mc_sender = p->identity,
                                  .seen_by = p->connected_url ? &hop : NULL,
                                  .n_seen_by = p->connected_url ? 1 : 0,
                                  .federation = p->federation}};
    s = proto_transport_encode(&proto_transport_v2, &t, out, out_len, err);
out:
    free(reply);
    free(secure);
    return s;
}

static ch_status v2_decode_reply(const char *payload, size_t len, const ch_security *sec,
                                 ch_reply_payload *out, ch_error *err)
{
    ch_status s;
    (void)sec;
    memset(out, 0, sizeof(*out));
    if ((s = proto_transport_decode(&proto_transport_v2, payload, len, &out->transport, err)) ||
        (s = decode_secure_reply((const char *)out->transport.data, out->transport.data_len,
                                 &out->secure, err)) ||
        (s = decode_reply(out->secure.message, strlen(out->secure.message), &out->reply, err)))
        ch_protocol_reply_payload_clear(out);
    return s;
}

static const ch_protocol_ops V2 = {
    .name = "choria:v2",
    .encode_request = v2_encode_request,
    .decode_request = v2_decode_request,
    .encode_reply = v2_encode_reply,
    .decode_reply = v2_decode_reply,
};

const ch_protocol_ops *ch_protocol_v2(void)
{
    return &V2;
}
