/* Choria RPC, client side: direct requests and broadcast discovery over a NATS connection the
 * whole process shares.
 *
 * One client subscribes ONCE to <collective>.reply.<md5(callerid)>.> and routes every reply
 * by the last subject token (the request id) to a bounded table of pending requests; there is
 * no subscription, unsubscription or connection per request.
 *
 * Requests are published with their NATS reply subject set to the same reply subject the
 * Choria transport header names (nodes ignore the NATS field and answer to the header, so this
 * stays go-choria compatible). When nothing subscribes to a node's subject the broker answers
 * at once with an empty status-503 message on that subject, which lands in the reply
 * subscription: a direct call to a dead node fails in milliseconds (result.no_responders), and
 * a discovery in an empty collective ends at once.
 *
 * Threads: every function may be called from many threads at once on one client, except
 * ch_rpc_client_free(), which must come after all calls returned. Replies are routed on the
 * subscription's delivery thread; direct replies are decoded (hash verified) on the calling
 * thread, discovery replies on the delivery thread (only the transport is read). */
#ifndef CHORIA_RPC_H
#define CHORIA_RPC_H

#include <jansson.h>
#include <nats/nats.h>

#include "choria/common.h"
#include "choria/filter.h"
#include "choria/protocol.h"
#include "choria/security.h"

#define CH_RPC_DEFAULT_MAX_PENDING 65536        /* requests in flight at once */
#define CH_RPC_DEFAULT_MAX_DISCOVERED 1000000   /* identities one discovery keeps */
#define CH_RPC_DEFAULT_SUB_PENDING_MSGS 2000000 /* replies buffered by nats.c */
#define CH_RPC_DEFAULT_SUB_PENDING_BYTES (1024 * 1024 * 1024)
#define CH_RPC_DEFAULT_DISCOVERY_TIMEOUT_MS 2000 /* go-choria discovery_timeout */
#define CH_RPC_DEFAULT_WINDOW_MS 300             /* go-choria's sliding window */
#define CH_RPC_MAX_TIMEOUT_MS (3600 * 1000)
#define CH_RPC_MAILBOX 4 /* replies held for one direct request before more are dropped */
#define CH_RPC_DISCOVERY_BODY "cGluZw==" /* base64("ping"), exactly as go-choria sends */

/* ---- Client ------------------------------------------------------------------------ */

typedef struct ch_rpc_client ch_rpc_client;

typedef struct {
    natsConnection *nc;              /* borrowed; must outlive the client */
    const char *collective;          /* a single subject token, e.g. "provisioning" */
    const char *identity;            /* this client: senderid and mc_sender; a valid identity */
    const char *callerid;            /* "choria=<certname>", see ch_protocol_callerid() */
    int64_t ttl;                     /* request TTL in seconds, 0 = CH_PROTOCOL_DEFAULT_TTL */
    const ch_security *security;     /* signs requests; borrowed; NULL = insecure */
    const ch_protocol_ops *protocol; /* how requests and replies travel; NULL = v1 */
    size_t max_pending;              /* 0 = CH_RPC_DEFAULT_MAX_PENDING */
    size_t max_reply_size;           /* bytes of one reply payload, 0 = CH_MAX_MESSAGE_SIZE */
    int sub_pending_msgs;            /* nats.c pending limits of the reply subscription, */
    int sub_pending_bytes;           /* 0 = the CH_RPC_DEFAULT_SUB_PENDING_* values */
    /* The connection was made with natsOptions_SetSendAsap(): requests leave at once. When
     * false, each request is followed by a flush (a PING round trip), because nats.c
     * otherwise holds published data for up to 1 ms; a SendAsap connection is faster still
     * (measured on loopback: 1.05 ms per call with neither, 0.25 ms flushed, 0.21 ms SendAsap). */
    bool send_asap;
} ch_rpc_client_opts;

/* Validates the options, subscribes to the reply inbox and returns the client. */
ch_status ch_rpc_client_new_opts(const ch_rpc_client_opts *opts, ch_rpc_client **out,
                                 ch_error *err);

/* ch_rpc_client_new_opts with the defaults. ttl 0 = CH_PROTOCOL_DEFAULT_TTL. */
ch_status ch_rpc_client_new(natsConnection *nc, const char *collective, const char *identity,
                            const char *callerid, int64_t ttl, ch_rpc_client **out, ch_error *err);

/* Unsubscribes, waits (bounded) until the reply handler can no longer run, frees. No call
 * may be in progress. Accepts NULL. Does not close the connection. */
void ch_rpc_client_free(ch_rpc_client *c);

/* The subscription's subject, <collective>.reply.<md5(callerid)>.> */
const char *ch_rpc_client_inbox(const ch_rpc_client *c);

/* Counters, read without a lock (each one is exact; together they are a snapshot in time
 * only approximately). */
typedef struct {
    uint64_t requests;      /* direct requests published */
    uint64_t discoveries;   /* broadcast discovery requests published */
    uint64_t replies;       /* messages received on the inbox, whatever became of them */
    uint64_t unknown;       /* ... for no pending request (late or foreign): dropped */
    uint64_t invalid;       /* ... dropped as oversized, or direct replies dropped as
                               undecodable, bad hash, wrong request id or sender */
    uint64_t overflow;      /* direct replies dropped because the request already held
                               CH_RPC_MAILBOX unread ones */
    uint64_t no_responders; /* requests the broker answered with "no responders" */
    uint64_t timeouts;      /* direct requests that got no valid reply in time */
} ch_rpc_client_stats;

void ch_rpc_client_stats_get(const ch_rpc_client *c, ch_rpc_client_stats *out);

/* ---- Direct requests --------------------------------------------------------------- */

/* The outcome of a direct request. The mcorpc status codes are go-choria's: 0 OK, 1 Aborted,
 * 2 Unknown action, 3 Missing data, 4 Invalid data, 5 Unknown error (see agent.h). */
typedef struct {
    char sender[CH_MAX_IDENTITY_LEN + 1]; /* the Reply envelope's senderid */
    char *body;                           /* the agent's reply body text (malloc'd) */
    size_t body_len;
    const char *action;    /* "" when the body has none */
    int statuscode;        /* 0..255 */
    const char *statusmsg; /* "" when the body has none */
    json_t *data;          /* borrowed from the result; NULL when the body has none */
    bool no_responders;    /* the broker said nothing subscribes to the node's subject */
    int64_t elapsed_ms;    /* from publishing the request to the reply (or the failure) */
    json_t *root_;         /* private: the parsed body */
} ch_rpc_result;

/* Releases what a call or ch_rpc_result_parse() put in r and zeroes it; harmless on a zeroed
 * struct. */
void ch_rpc_result_clear(ch_rpc_result *r);

/* Sends {"agent":agent,"action":action,"data":data} (data NULL = {}) to
 * <collective>.node.<identity> and waits up to timeout_ms for the reply.
 *   CH_OK            a reply came and its body is an mcorpc reply; check result->statuscode
 *                    (a node that refused the action is still CH_OK);
 *   CH_ERR_NOT_FOUND "no responders for <subject>": nothing subscribes to the node's subject;
 *                    result->no_responders is true;
 *   CH_ERR_TIMEOUT   no valid reply in time (replies with a bad hash, another request id or
 *                    another sender than identity are dropped and counted, not accepted);
 *   CH_ERR_INVALID   bad arguments (identity not a valid node name, agent or action empty,
 *                    timeout not in 1..CH_RPC_MAX_TIMEOUT_MS; nothing is sent), or a reply
 *                    came whose body is not an mcorpc reply (then result->body holds it);
 *   CH_ERR_TOO_LARGE max_pending requests are already in flight on this client;
 *   CH_ERR_CONNECTION the publish failed, or the reply subscription closed (the connection
 *                    was closed): waiting calls end at once.
 * Up to CH_RPC_MAILBOX replies wait for decoding at a time; more are dropped and counted.
 * result is zeroed first; clear it after every call, whatever the status. */
ch_status ch_rpc_call(ch_rpc_client *c, const char *identity, const char *agent, const char *action,
                      const json_t *data, int64_t timeout_ms, ch_rpc_result *result, ch_error *err);

/* As ch_rpc_call with the RPC body text given as is (e.g. a hand-built JSON body). When the
 * reply body is not an mcorpc reply the call returns CH_ERR_INVALID with result->body set. */
ch_status ch_rpc_call_body(ch_rpc_client *c, const char *identity, const char *agent,
                           const char *body, int64_t timeout_ms, ch_rpc_result *result,
                           ch_error *err);

/* Parses an mcorpc reply body {"action","statuscode","statusmsg","data"} into r (zeroed
 * first; r->body is a copy of the text). statuscode is required, an integer 0..255 (Go's
 * StatusCode is a uint8); action and statusmsg are strings or null when present; data any
 * JSON. Bounded by CH_MAX_MESSAGE_SIZE and CH_MAX_JSON_DEPTH; duplicate keys are refused. */
ch_status ch_rpc_result_parse(const char *body, size_t len, ch_rpc_result *r, ch_error *err);

/* ---- Broadcast discovery ----------------------------------------------------------- */

/* Called on the discovering thread for each new identity, in arrival order, while the
 * discovery runs. The string lives as long as the ch_rpc_discovery. */
typedef void (*ch_rpc_discovered_fn)(const char *identity, void *closure);

typedef struct {
    const ch_filter *filter; /* NULL = the empty filter (every node) */
    int64_t timeout_ms;      /* overall limit, 0 = CH_RPC_DEFAULT_DISCOVERY_TIMEOUT_MS */
    int64_t window_ms;       /* stop this long after the last reply: 0 = CH_RPC_DEFAULT_WINDOW_MS,
                                < 0 = no window (run until the timeout) */
    size_t max_identities;   /* 0 = CH_RPC_DEFAULT_MAX_DISCOVERED */
    ch_rpc_discovered_fn on_identity; /* optional */
    void *closure;
} ch_rpc_discover_opts;

typedef struct {
    const char *const *identities; /* distinct, valid identities in arrival order */
    size_t count;
    uint64_t replies;          /* reply messages received */
    uint64_t duplicates;       /* replies from an identity already found */
    uint64_t invalid_identity; /* replies whose mc_sender is not a valid identity: refused */
    uint64_t malformed;        /* replies that are not a valid transport with an mc_sender */
    uint64_t over_limit;       /* new identities refused because max_identities was reached */
    bool no_responders;        /* nothing subscribes to the discovery subject */
    bool from_filter;          /* identity-only filter: answered without a request */
    bool window_closed;        /* ended by the sliding window rather than the timeout */
    int64_t first_reply_ms;    /* publish to the first / last reply, -1 when none came */
    int64_t last_reply_ms;
    int64_t elapsed_ms; /* publish to the end of the discovery */
    void *priv_;        /* private: the identity storage */
} ch_rpc_discovery;

/* Broadcast discovery as go-choria's broadcast discoverer does it: a `discovery` request with
 * body "cGluZw==" and the filter, published to <collective>.broadcast.agent.discovery; the
 * identity of each reply is its transport's headers.mc_sender (the inner layers are not
 * decoded); it ends window_ms after the last reply, or at timeout_ms. Identities are
 * deduplicated; invalid ones are refused and counted. When the filter has identities only and
 * none is a /regex/, no request is sent: those identities are the result, as upstream.
 * No subscriber at all is CH_OK with out->no_responders set, returned at once. out is zeroed
 * first; clear it with ch_rpc_discovery_clear() whatever the status. Fails only on bad
 * options, no memory, a failed publish, a full pending table or a reply subscription that
 * closed (CH_ERR_CONNECTION; what was found until then is kept in out). */
ch_status ch_rpc_discover(ch_rpc_client *c, const ch_rpc_discover_opts *opts, ch_rpc_discovery *out,
                          ch_error *err);

void ch_rpc_discovery_clear(ch_rpc_discovery *d);

/* The fast path discovery uses: validates payload[0..len) as a whole JSON document (strict
 * grammar, no duplicate keys in the object or its headers) with protocol
 * "choria:transport:1", a string data (its base64 is not decoded, as go-choria's discoverer
 * does not), headers an object whose reply-to, seen-by and federation have the right types,
 * and copies headers.mc_sender into sender.
 *   CH_ERR_INVALID   not such a transport, or no (non-empty) mc_sender;
 *   CH_ERR_NO_MATCH  a well-formed transport whose mc_sender is not a valid identity;
 *   CH_ERR_TOO_LARGE over CH_MAX_MESSAGE_SIZE or too deeply nested. */
ch_status ch_rpc_transport_sender(const char *payload, size_t len,
                                  char sender[CH_MAX_IDENTITY_LEN + 1], ch_error *err);

/* ---- Pending-request table --------------------------------------------------------- */
/* The client's router, public so it can be tested without a network. Keyed by the 32-char
 * request id; O(1) add, remove and route; bounded. */

typedef struct ch_rpc_pending ch_rpc_pending;

/* Gets each message routed to a request (and owns it), or NULL once when the table is
 * closed. Runs on the routing thread with the table locked, so it must be quick and must not
 * call back into the table. */
typedef void (*ch_rpc_pending_fn)(void *closure, natsMsg *msg);

ch_status ch_rpc_pending_new(size_t max_entries, ch_rpc_pending **out, ch_error *err);
/* Accepts NULL. Entries still present are dropped without a call. */
void ch_rpc_pending_free(ch_rpc_pending *t);

/* CH_ERR_INVALID when requestid is not 32 characters of [0-9A-Za-z] or is already present,
 * CH_ERR_TOO_LARGE when the table is full, CH_ERR_CONNECTION once it is closed. */
ch_status ch_rpc_pending_add(ch_rpc_pending *t, const char *requestid, ch_rpc_pending_fn fn,
                             void *closure, ch_error *err);

/* Removes requestid; once it returns, its fn is not running and will not be called again.
 * False when it was not present. */
bool ch_rpc_pending_remove(ch_rpc_pending *t, const char *requestid);

/* Routes msg (taking ownership) by the last token of its subject. CH_OK: handed to the
 * request's fn; CH_ERR_NOT_FOUND: no such request (the message is destroyed and counted). */
ch_status ch_rpc_pending_route(ch_rpc_pending *t, natsMsg *msg);

/* Calls every fn with NULL, then refuses new entries. */
void ch_rpc_pending_close(ch_rpc_pending *t);

size_t ch_rpc_pending_count(ch_rpc_pending *t);
uint64_t ch_rpc_pending_unknown(ch_rpc_pending *t); /* messages routed to no request */

#endif
