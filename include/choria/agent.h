/* Server side of Choria RPC: the node as agents see it, agents and their actions, and the
 * request pipeline (decode, collective, filter, TTL, dispatch, reply).
 *
 * "One implementation, two hosts": `choria server run` (one node, one process) and
 * `choria tool fleet` (thousands of simulated nodes in one process) both build ch_node
 * values and call ch_agent_handle(). Everything a host must do outside the agent (publish a
 * lifecycle event, restart, shut down) goes through ch_node_host callbacks, so no agent code
 * touches NATS or the process directly. */
#ifndef CHORIA_AGENT_H
#define CHORIA_AGENT_H

#include <jansson.h>
#include <pthread.h>

#include "choria/common.h"
#include "choria/lifecycle.h"
#include "choria/protocol.h"

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
    pthread_mutex_t mutex;    /* go-choria's process-wide action mutex */
    char lock_owner[512];     /* "<senderid>.<callerid>" holding the provisioning lock */
    int64_t lock_until_ms;    /* monotonic ms; 0 = free */
    unsigned char ecdh_private[32]; /* X25519 private key from the last `jwt` call */
    bool ecdh_set;
    bool restart_pending;     /* one-shot restart guard */
} ch_provision_state;

typedef struct ch_agent_set ch_agent_set;

/* A node as agents see it. Strings are borrowed from the host and must outlive the node. */
typedef struct {
    const char *identity;
    const char *version;                 /* reported by rpcutil and lifecycle events */
    const char *const *collectives;      /* the node answers requests in these only */
    size_t n_collectives;
    const char *main_collective;
    json_t *facts;                       /* object, borrowed; may be NULL = {} */
    const char *const *classes;          /* cf_class filter data; may be empty */
    size_t n_classes;
    bool provision_mode;                 /* ProvisionMode() */
    const char *provision_token;         /* JWT `cht`; NULL or "" = any token accepted */
    const char *provisioning_jwt_file;   /* NULL = none configured */
    const char *config_file;             /* server.conf the node manages; NULL = unknown */
    const char *ssldir;                  /* plugin.choria.ssldir; NULL = <confdir>/ssl */
    bool allow_update;                   /* JWT `update` / provision.allow_update */
    const char *update_command;          /* release_update runs this; NULL = Aborted */
    ch_provision_state *provision;       /* NULL disables choria_provision */
    const ch_agent_set *agents;          /* the agents this node hosts */
    ch_node_host host;
} ch_node;

/* One RPC call as an action sees it. */
typedef struct {
    const char *agent;
    const char *action;
    json_t *data;                         /* the request's `data` object (never NULL) */
    const ch_request_envelope *envelope;  /* requestid, senderid, callerid, collective, ... */
} ch_rpc_request;

/* The reply an action fills. data starts as an empty object owned by the reply. */
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
    int timeout_seconds;                       /* DDL timeout, informational */
    const ch_agent_action *actions;
    size_t n_actions;
    /* Raw agents: body in, reply body out (malloc'd). CH_ERR_NO_MATCH means no reply. */
    ch_status (*raw)(ch_node *node, const unsigned char *body, size_t len, char **reply);
    bool (*active)(const ch_node *node);       /* NULL = always active */
} ch_agent;

/* The standard agents. */
extern const ch_agent ch_agent_discovery;
extern const ch_agent ch_agent_rpcutil;
extern const ch_agent ch_agent_choria_provision;

/* A node's agent set. */
struct ch_agent_set {
    const ch_agent *const *agents;
    size_t n_agents;
};

/* discovery, rpcutil and choria_provision (active when the node supports provisioning). */
extern const ch_agent_set ch_agent_set_standard;

/* The outcome of handling one request payload. */
typedef struct {
    char *payload;       /* reply NATS payload to publish, NULL when nothing is sent */
    size_t payload_len;
    char subject[CH_MAX_SUBJECT_LEN]; /* where to publish it: the request's reply-to */
} ch_agent_result;

void ch_agent_result_clear(ch_agent_result *r);

/* The server pipeline for one request NATS payload: decode the three layers (no signature
 * verification while provisioning), drop requests for other collectives, filters that do not
 * match, expired TTLs, unknown or inactive agents; parse the mcorpc body; run the action;
 * encode the reply. Dropped requests return CH_OK with no payload (the reason goes to
 * err->msg and the debug log); only internal failures return an error. now is unix seconds. */
ch_status ch_agent_handle(ch_node *node, const char *payload, size_t len, int64_t now,
                          ch_agent_result *result, ch_error *err);

/* Sorted names of the active agents, for rpcutil#inventory and agent filters. */
size_t ch_agent_active_names(const ch_node *node, const char **out, size_t max);

#endif
