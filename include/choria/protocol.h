/* Choria RPC wire protocol v1: the four nested envelopes, ids, subjects and TTLs.
 *
 *   NATS payload = Transport {protocol, data = base64(SecureRequest|SecureReply JSON), headers}
 *   SecureRequest {protocol, message = Request JSON text, signature, pubcert}
 *   SecureReply   {protocol, message = Reply JSON text, hash = base64(sha256(message))}
 *   Request {protocol, message = RPC body text, envelope{requestid, senderid, callerid,
 *            collective, agent, ttl, time, filter}}
 *   Reply   {protocol, message = agent reply text, envelope{requestid, senderid, agent, time}}
 *
 * Encoders produce go-choria's bytes exactly (field order, omitempty, Go string escaping).
 * Decoders enforce the schema rules go-choria's server enforces and the CH_MAX_* bounds.
 *
 * Memory: every struct holds borrowed `const char *` strings. A caller that encodes fills a
 * struct with its own strings. A decoder fills a caller-provided struct whose strings point
 * into the decoded document it keeps in the private owned_ member; the caller releases it
 * with the matching _clear(), which is also harmless on a zeroed or caller-built struct.
 * Decoded strings never contain NUL bytes (documents with \u0000 in a string are refused). */
#ifndef CHORIA_PROTOCOL_H
#define CHORIA_PROTOCOL_H

#include <jansson.h>

#include "choria/common.h"
#include "choria/filter.h"
#include "choria/security.h"

#define CH_PROTOCOL_TRANSPORT_V1 "choria:transport:1"
#define CH_PROTOCOL_SECURE_REQUEST_V1 "choria:secure:request:1"
#define CH_PROTOCOL_SECURE_REPLY_V1 "choria:secure:reply:1"
#define CH_PROTOCOL_REQUEST_V1 "choria:request:1"
#define CH_PROTOCOL_REPLY_V1 "choria:reply:1"

#define CH_PROTOCOL_REQUEST_ID_LEN 32 /* v1 request ids: exactly 32 characters */
#define CH_PROTOCOL_MIN_TTL 30        /* schema minimum */
#define CH_PROTOCOL_DEFAULT_TTL 60    /* go-choria client default (config `ttl`) */
/* Bytes of any envelope or header string except messages, senderid and mc_sender (those two
 * are identities: at most CH_MAX_IDENTITY_LEN). */
#define CH_PROTOCOL_MAX_FIELD 1024
#define CH_PROTOCOL_MAX_LIST 1024 /* seen-by hops, federation targets */
#define CH_PROTOCOL_HASH_LEN 44   /* base64 of a SHA-256 digest */

/* Private: what a decoder allocated for a struct; released by its _clear(). */
typedef struct {
    json_t *root;
    void *blocks[4];
} ch_protocol_owned;

/* ---- Transport --------------------------------------------------------------------- */

/* One seen-by triplet: [incoming endpoint, processing identity, outgoing endpoint]. NULL
 * members encode as "". */
typedef struct {
    const char *in;
    const char *processor;
    const char *out;
} ch_seen_by;

/* Federation header. Every member is omitempty (NULL or "" = absent); Go's key for the
 * target list is "target" (the schema's "targets" is not what go-choria sends). */
typedef struct {
    const char *req;
    const char *reply_to;
    const char *const *targets;
    size_t n_targets;
} ch_federation;

/* Transport headers, encoded in this order; each one omitempty (NULL or "" = absent). */
typedef struct {
    const char *reply_to;      /* "reply-to" */
    const char *mc_sender;     /* "mc_sender" */
    const ch_seen_by *seen_by; /* "seen-by" */
    size_t n_seen_by;
    const ch_federation *federation; /* "federation", NULL = absent */
} ch_transport_headers;

typedef struct {
    const unsigned char *data; /* the SecureRequest / SecureReply JSON bytes (not base64) */
    size_t data_len;
    ch_transport_headers headers;
    ch_protocol_owned owned_;
} ch_transport;

/* ---- Secure layer ------------------------------------------------------------------ */

typedef struct {
    const char *message;   /* the Request JSON text */
    const char *signature; /* "insecure" in insecure mode */
    const char *pubcert;   /* "insecure" in insecure mode */
    ch_protocol_owned owned_;
} ch_secure_request;

typedef struct {
    const char *message; /* the Reply JSON text */
    const char *hash;    /* decoded: as received (verified); ignored by the encoder */
    ch_protocol_owned owned_;
} ch_secure_reply;

/* ---- Request and reply ------------------------------------------------------------- */

typedef struct {
    const char *requestid;  /* exactly 32 characters */
    const char *senderid;   /* the client's identity (may be empty) */
    const char *callerid;   /* "choria=<certname>" */
    const char *collective; /* non-empty */
    const char *agent;      /* non-empty */
    int64_t ttl;            /* seconds, >= 30 */
    int64_t time;           /* unix seconds when the request was made */
    ch_filter filter;       /* an all-zero filter is the empty filter */
} ch_request_envelope;

typedef struct {
    const char *message; /* RPC body text: JSON, or base64 (see ch_protocol_message_body) */
    ch_request_envelope envelope;
    ch_protocol_owned owned_;
} ch_request;

typedef struct {
    const char *requestid; /* the request's id, 32 characters */
    const char *senderid;  /* the replying node's identity */
    const char *agent;     /* non-empty */
    int64_t time;          /* unix seconds when the reply was made */
} ch_reply_envelope;

typedef struct {
    const char *message; /* agent reply body text (JSON, or e.g. "pong" from discovery) */
    ch_reply_envelope envelope;
    ch_protocol_owned owned_;
} ch_reply;

/* ---- Encoders ---------------------------------------------------------------------- */
/* Each returns a malloc'd NUL-terminated document in *out (length in *out_len if not NULL)
 * after checking the struct against the same rules the decoder applies, so nothing is sent
 * that go-choria would drop. */

ch_status ch_protocol_transport_encode(const ch_transport *t, char **out, size_t *out_len,
                                       ch_error *err);
ch_status ch_protocol_secure_request_encode(const ch_secure_request *sr, char **out,
                                            size_t *out_len, ch_error *err);
/* Computes the hash over sr->message (sr->hash is ignored). */
ch_status ch_protocol_secure_reply_encode(const ch_secure_reply *sr, char **out, size_t *out_len,
                                          ch_error *err);
ch_status ch_protocol_request_encode(const ch_request *r, char **out, size_t *out_len,
                                     ch_error *err);
ch_status ch_protocol_reply_encode(const ch_reply *r, char **out, size_t *out_len, ch_error *err);

/* ---- Decoders ---------------------------------------------------------------------- */
/* Each parses buf[0..len) (not necessarily NUL-terminated) into *out, which is zeroed first
 * and left zeroed on error. Release a decoded struct with the matching _clear(). */

/* protocol must be choria:transport:1 and data valid standard base64; headers optional. */
ch_status ch_protocol_transport_decode(const char *buf, size_t len, ch_transport *out,
                                       ch_error *err);
/* All four fields present and non-empty, protocol exact. The signature is not checked here. */
ch_status ch_protocol_secure_request_decode(const char *buf, size_t len, ch_secure_request *out,
                                            ch_error *err);
/* Fields present and non-empty, protocol exact, and the hash verified: a mismatch is
 * CH_ERR_INVALID "reply hash mismatch". */
ch_status ch_protocol_secure_reply_decode(const char *buf, size_t len, ch_secure_reply *out,
                                          ch_error *err);
/* Request schema: message non-empty, requestid 32 characters, callerid, collective and agent
 * non-empty, senderid a string, ttl an integer >= 30, time an integer, filter per
 * ch_filter_parse(). The TTL window is checked separately (ch_protocol_ttl_check). */
ch_status ch_protocol_request_decode(const char *buf, size_t len, ch_request *out, ch_error *err);
/* Reply schema: message non-empty, requestid 32 characters, senderid a string, agent
 * non-empty, time an integer. */
ch_status ch_protocol_reply_decode(const char *buf, size_t len, ch_reply *out, ch_error *err);

void ch_protocol_transport_clear(ch_transport *t);
void ch_protocol_secure_request_clear(ch_secure_request *sr);
void ch_protocol_secure_reply_clear(ch_secure_reply *sr);
void ch_protocol_request_clear(ch_request *r);
void ch_protocol_reply_clear(ch_reply *r);

/* The collective nodes in provisioning mode join, and provisioners address. */
#define CH_PROTOCOL_PROVISIONING_COLLECTIVE "provisioning"

/* ---- Whole NATS payloads ----------------------------------------------------------- */

typedef struct {
    const char *body;          /* RPC body text, e.g. {"agent":..,"action":..,"data":{..}} */
    const char *agent;         /* envelope agent */
    const char *collective;    /* e.g. "provisioning" */
    const char *callerid;      /* see ch_protocol_callerid() */
    const char *senderid;      /* this client's identity; also the transport mc_sender */
    const char *requestid;     /* 32 characters, see ch_request_id() */
    int64_t ttl;               /* >= 30; CH_PROTOCOL_DEFAULT_TTL is go-choria's default */
    int64_t time;              /* unix seconds, normally ch_now_unix() */
    const ch_filter *filter;   /* NULL = the empty filter */
    const char *reply_to;      /* NULL = ch_protocol_reply_subject(collective, callerid, id) */
    const char *connected_url; /* optional: records the seen-by hop [url, senderid, url] */
    const ch_federation *federation; /* optional */
} ch_request_params;

/* Request -> SecureRequest (signed by sec; NULL = insecure) -> Transport, in one call. */
ch_status ch_protocol_request_payload_build(const ch_request_params *p, const ch_security *sec,
                                            char **out, size_t *out_len, ch_error *err);

typedef struct {
    const char *body;                   /* the agent's reply body text */
    const ch_request_envelope *request; /* the request answered: its requestid and agent */
    const char *identity;               /* this node: Reply senderid and transport mc_sender */
    int64_t time;                       /* unix seconds, normally ch_now_unix() */
    const ch_federation *federation;    /* copied from the request transport, or NULL */
    const char *connected_url;          /* optional: records the seen-by hop [url, id, url] */
} ch_reply_params;

/* Reply -> SecureReply (hash computed) -> Transport, in one call. */
ch_status ch_protocol_reply_payload_build(const ch_reply_params *p, char **out, size_t *out_len,
                                          ch_error *err);

/* A decoded request payload: the three layers. request.message is the RPC body text. */
typedef struct {
    ch_transport transport;
    ch_secure_request secure;
    ch_request request;
} ch_request_payload;

typedef struct {
    ch_transport transport;
    ch_secure_reply secure;
    ch_reply reply;
} ch_reply_payload;

/* Transport -> SecureRequest -> Request. When sec is not NULL the signature is verified with
 * it; NULL skips verification (a provisioning-mode server never verifies). Errors name the
 * layer that failed. Does not check the filter or the TTL. */
ch_status ch_protocol_request_payload_decode(const char *payload, size_t len,
                                             const ch_security *sec, ch_request_payload *out,
                                             ch_error *err);

/* Transport -> SecureReply (hash verified) -> Reply. */
ch_status ch_protocol_reply_payload_decode(const char *payload, size_t len, ch_reply_payload *out,
                                           ch_error *err);

void ch_protocol_request_payload_clear(ch_request_payload *p);
void ch_protocol_reply_payload_clear(ch_reply_payload *p);

/* ---- Protocol versions ------------------------------------------------------------- */

/* What a protocol version does with whole NATS payloads, so that the RPC client, the agent
 * pipeline and the fleet never name a version: a table of operations like ch_security_ops,
 * with the security provider passed in. Version 1 is the table below; a version 2
 * (go-choria's protocol/v2 envelopes, ed25519 signatures) is another table filling the same
 * decoded structs. Tables are static and immutable: share them between threads freely.
 *
 * sec signs requests (encode_request) and verifies them (decode_request; NULL = no
 * verification, as a provisioning-mode server); v1 replies carry a hash, not a signature,
 * so v1 ignores sec for replies. */
typedef struct {
    const char *name; /* "choria:v1" */
    ch_status (*encode_request)(const ch_request_params *p, const ch_security *sec, char **out,
                                size_t *out_len, ch_error *err);
    ch_status (*decode_request)(const char *payload, size_t len, const ch_security *sec,
                                ch_request_payload *out, ch_error *err);
    ch_status (*encode_reply)(const ch_reply_params *p, const ch_security *sec, char **out,
                              size_t *out_len, ch_error *err);
    ch_status (*decode_reply)(const char *payload, size_t len, const ch_security *sec,
                              ch_reply_payload *out, ch_error *err);
} ch_protocol_ops;

/* Version 1: Transport(SecureRequest(Request)) and Transport(SecureReply(Reply)). */
const ch_protocol_ops *ch_protocol_v1(void);

/* Version 2 (go-choria protocol/v2, include/choria/protocol_v2.h): the same layers with other
 * names, base64 []byte fields, nanosecond times and ed25519 signatures. */
const ch_protocol_ops *ch_protocol_v2(void);

/* The version a payload is in, from its transport's protocol string: ch_protocol_v1(),
 * ch_protocol_v2(), or NULL when it is neither (not a Choria transport). Reads only the
 * top-level "protocol" key; nothing is validated. */
const ch_protocol_ops *ch_protocol_detect(const char *payload, size_t len);

/* The version a security provider's signatures need: v2 for ed25519, else v1. */
const ch_protocol_ops *ch_protocol_for_security(const ch_security *sec);

/* Dispatch through proto (NULL = version 1); the same contracts as the v1 functions above. */
ch_status ch_protocol_encode_request(const ch_protocol_ops *proto, const ch_security *sec,
                                     const ch_request_params *p, char **out, size_t *out_len,
                                     ch_error *err);
ch_status ch_protocol_decode_request(const ch_protocol_ops *proto, const ch_security *sec,
                                     const char *payload, size_t len, ch_request_payload *out,
                                     ch_error *err);
ch_status ch_protocol_encode_reply(const ch_protocol_ops *proto, const ch_security *sec,
                                   const ch_reply_params *p, char **out, size_t *out_len,
                                   ch_error *err);
ch_status ch_protocol_decode_reply(const ch_protocol_ops *proto, const ch_security *sec,
                                   const char *payload, size_t len, ch_reply_payload *out,
                                   ch_error *err);

/* ---- Helpers ----------------------------------------------------------------------- */

/* The bytes an agent receives for a request message: the base64 decoding of message when it
 * is valid standard base64 (discovery sends "cGluZw==" for "ping"), else message itself,
 * as go-choria's server does. *out is malloc'd and NUL-terminated; *out_len excludes the NUL. */
ch_status ch_protocol_message_body(const char *message, unsigned char **out, size_t *out_len,
                                   ch_error *err);

/* CH_OK when now - ttl <= time <= now + ttl; CH_ERR_EXPIRED ("message <id> created at <time>
 * is too old" or "... is too far in the future") otherwise. */
ch_status ch_protocol_ttl_check(const ch_request_envelope *env, int64_t now, ch_error *err);

/* The v1 caller id for a certificate name: "choria=<certname>". */
ch_status ch_protocol_callerid(const char *certname, char *out, size_t out_size, ch_error *err);

/* Subjects, written into out; CH_ERR_TOO_LARGE when out_size is too small (use
 * CH_MAX_SUBJECT_LEN).
 * collective, agent and requestid must be single subject tokens (no '.', '*', '>', spaces or
 * control characters); identity must pass ch_identity_valid(). */
/* <collective>.reply.<md5hex(callerid)>.<requestid> */
ch_status ch_protocol_reply_subject(const char *collective, const char *callerid,
                                    const char *requestid, char *out, size_t out_size,
                                    ch_error *err);
/* <collective>.reply.<md5hex(callerid)>.> : one subscription for every reply to this caller */
ch_status ch_protocol_reply_inbox(const char *collective, const char *callerid, char *out,
                                  size_t out_size, ch_error *err);
/* <collective>.node.<identity> */
ch_status ch_protocol_node_subject(const char *collective, const char *identity, char *out,
                                   size_t out_size, ch_error *err);
/* <collective>.broadcast.agent.<agent> */
ch_status ch_protocol_broadcast_subject(const char *collective, const char *agent, char *out,
                                        size_t out_size, ch_error *err);
/* <collective>.broadcast.service.<agent> */
ch_status ch_protocol_service_subject(const char *collective, const char *agent, char *out,
                                      size_t out_size, ch_error *err);

/* The SecureReply hash: standard base64 of SHA-256 over data[0..len), into
 * out[CH_PROTOCOL_HASH_LEN + 1]. CH_ERR_NOMEM is the only failure. */
ch_status ch_protocol_reply_hash(const char *data, size_t len, char out[CH_PROTOCOL_HASH_LEN + 1]);

#endif
