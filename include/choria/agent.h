/* Server side of Choria RPC: the node as agents see it, agents and their actions, and the
 * request pipeline (decode, collective, filter, TTL, dispatch, reply).
 *
 * "One implementation, two hosts": `choria server run` (one node, one process) and
 * `choria tool fleet` (thousands of simulated nodes in one process) both build ch_node
 * values and call ch_agent_handle(). Everything a host must do outside the agent (publish a
 * lifecycle event, restart, shut down) goes through ch_node_host callbacks, so no agent code
 * touches NATS or the process directly.
 *
 * Changes since the first version (all additions; existing fields and signatures unchanged):
 *  - ch_rpc_request.data: {} when the body has no data or data is null; any other value is
 *    passed as sent, so actions that take inputs refuse non-objects with statuscode 4 as
 *    go-choria's ParseRequestData does, and actions without inputs ignore it (as in Go).
 *  - ch_agent_handle_decoded(): the pipeline on an already decoded request, so a fleet host
 *    decodes a broadcast once and runs it against every simulated node.
 *  - CH_AGENT_MAX_AGENTS, and ch_agent_active_names() returns how many names it wrote.
 *  - ch_agent_handle() does not log; a drop's reason is in err (code and msg) for the caller.
 *  - node->agents NULL means ch_agent_set_standard.
 *  - ch_node.no_sync.
 *  - ch_agent_result.action, and ch_agent_handle_body(): a host that runs one request against
 *    many nodes decodes its message body once and learns the action without parsing it. */
#ifndef CHORIA_AGENT_H
#define CHORIA_AGENT_H

#include <jansson.h>
#include <pthread.h>

#include "choria/common.h"
#include "choria/lifecycle.h"
#include "choria/protocol.h"
#include "choria/security.h"

/* mcorpc status codes (go-choria providers/agent/mcorpc). */
typedef enum {
    CH_RPC_OK = 0,
    CH_RPC_ABORTED = 1,
    CH_RPC_UNKNOWN_ACTION = 2,
    CH_RPC_MISSING_DATA = 3,
    CH_RPC_INVALID_DATA = 4,
    CH_RPC_UNKNOWN_ERROR = 5,
} ch_rpc_status;

/* What an agent asks its host to do. Every callback may be NULL (then it is a no-op).
 * Callbacks are called with no agent lock held. */
typedef struct {
    void *closure;
    /* Publish a lifecycle event of type for this node (component per the node's mode).
     * new_version is used by upgraded events, NULL otherwise. */
    ch_status (*publish_event)(void *closure, ch_lifecycle_type type, const char *new_version);
    /* Publish shutdown, wait delay_ms, then come back with the (new) config: re-exec for a real
     * server, a simulated restart for the fleet. Called at most once per restart guard. */
    void (*restart)(void *closure, int64_t delay_ms);
    /* Wait delay_ms, publish shutdown and stop serving (exit 0 for a real server). */
    void (*shutdown)(void *closure, int64_t delay_ms);
} ch_node_host;

/* Per-node provisioning state that lives as long as the process (not the request). */
typedef struct {
    pthread_mutex_t mutex;          /* go-choria's process-wide action mutex */
    char lock_owner[512];           /* "<senderid>.<callerid>" holding the provisioning lock */
    int64_t lock_until_ms;          /* monotonic ms; 0 = free */
    unsigned char ecdh_private[32]; /* X25519 private key from the last `jwt` call */
    bool ecdh_set;
    bool restart_pending; /* one-shot restart guard */
} ch_provision_state;

typedef struct ch_agent_set ch_agent_set;

/* A node as agents see it. Strings are borrowed from the host and must outlive the node. */
typedef struct {
    const char *identity;
    const char *version;            /* reported by rpcutil and lifecycle events */
    const char *const *collectives; /* the node answers requests in these only */
    size_t n_collectives;
    const char *main_collective;
    json_t *facts;              /* object, borrowed; may be NULL = {} */
    const char *const *classes; /* cf_class filter data; may be empty */
    size_t n_classes;
    bool provision_mode;               /* ProvisionMode() */
    const char *provision_token;       /* JWT `cht`; NULL or "" = any token accepted */
    const char *provisioning_jwt_file; /* NULL = none configured */
    const char *config_file;           /* server.conf the node manages; NULL = unknown */
    const char *ssldir;                /* plugin.choria.ssldir; NULL = <confdir>/ssl */
    bool allow_update;                 /* JWT `update` / provision.allow_update */
    const char *update_command;        /* release_update runs this; NULL = Aborted */
    ch_provision_state *provision;     /* NULL disables choria_provision */
    const ch_agent_set *agents;        /* the agents this node hosts; NULL = standard */
    ch_node_host host;
    const ch_protocol_ops *protocol; /* how requests arrive and replies leave; NULL = v1 */
    const ch_security *security;     /* verifies requests; NULL = no verification, which only
                                        a provisioning-mode node may use (upstream too) */
    bool no_sync; /* files the agents write are not fsynced (CH_CONFWRITE_NO_SYNC): only for
                     simulated nodes in benchmarks; false (durable) for every real node */
} ch_node;

/* One RPC call as an action sees it. */
typedef struct {
    const char *agent;
    const char *action;
    /* The request's `data` (never NULL): {} when absent or null, else the value as sent,
     * which need not be an object (see the note at the top). */
    json_t *data;
    const ch_request_envelope *envelope; /* requestid, senderid, callerid, collective, ... */
} ch_rpc_request;

/* The reply an action fills. statuscode starts CH_RPC_OK, statusmsg "OK", data an empty
 * object owned by the reply (an action may replace it: json_decref the old one first; NULL
 * encodes as {}). Keys of data are encoded in insertion order, so insert them in the order
 * of go-choria's reply struct. */
typedef struct {
    ch_rpc_status statuscode;
    char statusmsg[512];
    json_t *data;
} ch_rpc_reply;

/* Sets statuscode and statusmsg (printf-style); data is left as it is. */
void ch_rpc_reply_fail(ch_rpc_reply *reply, ch_rpc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef void (*ch_action_fn)(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply);

typedef struct {
    const char *name;
    ch_action_fn fn;
} ch_agent_action;

/* An agent: either mcorpc actions, or a raw handler (the discovery agent answers "pong"). */
typedef struct {
    const char *name;
    int timeout_seconds; /* DDL timeout, informational */
    const ch_agent_action *actions;
    size_t n_actions;
    /* Raw agents: body in, reply body out (malloc'd). CH_ERR_NO_MATCH means no reply. */
    ch_status (*raw)(ch_node *node, const unsigned char *body, size_t len, char **reply);
    bool (*active)(const ch_node *node); /* NULL = always active */
} ch_agent;

/* The standard agents. */
extern const ch_agent ch_agent_discovery;
extern const ch_agent ch_agent_rpcutil;
extern const ch_agent ch_agent_choria_provision;

/* A node's agent set (at most CH_AGENT_MAX_AGENTS agents are considered). */
#define CH_AGENT_MAX_AGENTS 64

struct ch_agent_set {
    const ch_agent *const *agents;
    size_t n_agents;
};

/* discovery, rpcutil and choria_provision (active when the node supports provisioning). */
extern const ch_agent_set ch_agent_set_standard;

/* Longest mcorpc action name ch_agent_result.action holds in full. */
#define CH_AGENT_MAX_ACTION_LEN 64

/* The outcome of handling one request payload. The handler overwrites it (release an
 * earlier payload first); release it with ch_agent_result_clear(). */
typedef struct {
    char *payload; /* reply NATS payload to publish, NULL when nothing is sent */
    /* the action an mcorpc agent was asked for (truncated to CH_AGENT_MAX_ACTION_LEN - 1
     * bytes), for the host's bookkeeping; "" for raw agents and requests that reached no
     * agent */
    char action[CH_AGENT_MAX_ACTION_LEN];
    size_t payload_len;
    char subject[CH_MAX_SUBJECT_LEN]; /* where to publish it: the request's reply-to */
    ch_status dropped;     /* CH_OK when a reply was made, else why the request gets none */
    char drop_reason[256]; /* for the log when dropped */
    /* the request did not pass node->security: refused[] says why (for a warning in the
     * log); an mcorpc request with a valid reply-to still gets a statuscode 1 reply saying
     * so, other requests are dropped */
    bool refused;
    char refusal[256];
} ch_agent_result;

void ch_agent_result_clear(ch_agent_result *r);

/* The server pipeline for one request NATS payload: decode it with node->protocol, verifying
 * it with node->security (none while provisioning), drop requests for other collectives,
 * filters that do not match (compound filters included: they are not supported), expired or
 * future TTLs, unknown or inactive agents, and requests without a valid reply-to subject; then
 * run the agent: raw agents get the message body (base64-decoded when it is base64) and reply
 * with their own bytes; mcorpc agents get {"agent","action","data"} parsed from it and reply
 * {"action","statuscode","statusmsg","data"} (statuscode 4 when the body is not such a
 * request, 2 for an unknown action). The reply is encoded by node->protocol from
 * node->identity, with the request's federation header copied, for result->subject.
 *
 * A request that gets no reply is an outcome, not an error: CH_OK with result->payload NULL,
 * result->dropped saying why and result->drop_reason the detail: CH_ERR_INVALID/
 * CH_ERR_TOO_LARGE (undecodable or unverified, no valid reply-to), CH_ERR_NO_MATCH (other
 * collective, filter, or a raw agent that chose not to answer), CH_ERR_UNSUPPORTED (compound
 * filter), CH_ERR_EXPIRED (TTL), CH_ERR_NOT_FOUND (unknown or inactive agent). Only internal
 * failures (no memory, a reply that cannot be encoded) return an error, in err. now is unix
 * seconds: the TTL reference and the reply time. Calls for distinct nodes may run in parallel
 * (even when they share one facts object); calls on the same node are serialised by the
 * agents themselves where they need it. */
ch_status ch_agent_handle(ch_node *node, const char *payload, size_t len, int64_t now,
                          ch_agent_result *result, ch_error *err);

/* The same pipeline from the collective check on, for a request the caller decoded with
 * ch_protocol_decode_request() (and still owns and clears). */
ch_status ch_agent_handle_decoded(ch_node *node, const ch_request_payload *req, int64_t now,
                                  ch_agent_result *result, ch_error *err);

/* ch_agent_handle_decoded() with the request's message body already decoded by the caller
 * with ch_protocol_message_body() (borrowed; it must be that request's body): a host that
 * runs one broadcast against many nodes decodes it once. */
ch_status ch_agent_handle_body(ch_node *node, const ch_request_payload *req,
                               const unsigned char *body, size_t body_len, int64_t now,
                               ch_agent_result *result, ch_error *err);

/* Names of the node's active agents, sorted bytewise (as Go's sort.Strings), into
 * out[0..max); returns how many were written. Strings are the agents' static names. */
size_t ch_agent_active_names(const ch_node *node, const char **out, size_t max);

#endif
