/* What the files of the RPC client share: the client itself and the three steps of sending a
 * request. Private to src/lib/net/rpc*.c. */
#ifndef CHORIA_RPC_INTERNAL_H
#define CHORIA_RPC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "choria/rpc.h"

#define FLUSH_TIMEOUT_MS 1000 /* bound of the best-effort flushes */

struct ch_rpc_client {
    natsConnection *nc;
    natsSubscription *sub;
    ch_rpc_pending *pending;
    char *collective;
    char *identity;
    char *callerid;
    char inbox[CH_MAX_SUBJECT_LEN];
    int64_t ttl;
    const ch_security *sec;
    const ch_protocol_ops *proto;
    size_t max_reply_size;
    bool send_asap;

    pthread_mutex_t mu; /* sub_done */
    pthread_cond_t cond;
    bool sub_done;

    atomic_uint_fast64_t requests, discoveries, replies, invalid, overflow, no_responders, timeouts;
};

/* Builds the request payload for requestid with the reply subject reply_to. */
ch_status rpc_build_request(ch_rpc_client *c, const char *agent, const char *body,
                            const ch_filter *filter, const char *requestid, const char *reply_to,
                            char **payload, size_t *len, ch_error *err);

/* Registers a fresh request id (written into id) whose replies go to fn. */
ch_status rpc_add_pending(ch_rpc_client *c, char id[CH_PROTOCOL_REQUEST_ID_LEN + 1],
                          ch_rpc_pending_fn fn, void *closure, ch_error *err);

/* Publishes a request (flushed at once unless the connection sends as soon as it can). */
ch_status rpc_publish(ch_rpc_client *c, const char *subject, const char *reply_to,
                      const char *payload, size_t len, int64_t timeout_ms, ch_error *err);

#endif
