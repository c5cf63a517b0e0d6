/* The Choria RPC client: one reply subscription per client, and the steps of sending a request
 * that direct calls (rpc_call.c) and discovery (rpc_discover.c) share. The pending-request
 * table is rpc_pending.c, reply reading rpc_result.c. See rpc.h. */
#include "choria/rpc.h"
#include "rpc_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "choria/conn.h"
#include "choria/jscan.h"
#include "choria/json.h"
#include "choria/log.h"
#include "choria/util.h"

#define FREE_WAIT_MS 5000 /* how long ch_rpc_client_free waits for the handler to finish */

/* ---- client ------------------------------------------------------------------------ */

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    ch_rpc_client *c = closure;
    /* counted first, so a caller woken by this message already sees it in the stats */
    atomic_fetch_add(&c->replies, 1);
    if ((size_t)natsMsg_GetDataLength(msg) > c->max_reply_size) {
        atomic_fetch_add(&c->invalid, 1);
        natsMsg_Destroy(msg);
        return;
    }
    ch_rpc_pending_route(c->pending, msg);
}

/* nats.c calls this once the subscription is closed and on_reply can no longer run (also when
 * the connection closes): waiting requests are woken at once rather than timing out. */
static void on_sub_complete(void *closure)
{
    ch_rpc_client *c = closure;
    ch_rpc_pending_close(c->pending);
    pthread_mutex_lock(&c->mu);
    c->sub_done = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

static void client_release(ch_rpc_client *c)
{
    ch_rpc_pending_free(c->pending);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    free(c->collective);
    free(c->identity);
    free(c->callerid);
    free(c);
}

ch_status ch_rpc_client_new_opts(const ch_rpc_client_opts *o, ch_rpc_client **out, ch_error *err)
{
    ch_status s;
    *out = NULL;
    if (o == NULL || o->nc == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "rpc client: a NATS connection is required");
    if (!ch_identity_valid(o->identity))
        return ch_error_set(err, CH_ERR_INVALID, "rpc client: identity '%.64s' is not valid",
                            o->identity != NULL ? o->identity : "");
    if (o->callerid == NULL || o->callerid[0] == '\0' ||
        strlen(o->callerid) > CH_PROTOCOL_MAX_FIELD)
        return ch_error_set(err, CH_ERR_INVALID, "rpc client: callerid is required");
    int64_t ttl = o->ttl != 0 ? o->ttl : CH_PROTOCOL_DEFAULT_TTL;
    if (ttl < CH_PROTOCOL_MIN_TTL || ttl > 365LL * 86400)
        return ch_error_set(err, CH_ERR_INVALID, "rpc client: ttl %lld is not in %d..%lld",
                            (long long)ttl, CH_PROTOCOL_MIN_TTL, 365LL * 86400);

    ch_rpc_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "rpc client: out of memory");
    pthread_mutex_init(&c->mu, NULL);
    ch_cond_init_monotonic(&c->cond);
    c->nc = o->nc;
    c->ttl = ttl;
    c->sec = o->security;
    c->proto = o->protocol;
    c->send_asap = o->send_asap;
    c->max_reply_size = o->max_reply_size != 0 ? o->max_reply_size : CH_MAX_MESSAGE_SIZE;
    c->collective = strdup(o->collective != NULL ? o->collective : "");
    c->identity = strdup(o->identity);
    c->callerid = strdup(o->callerid);
    if (c->collective == NULL || c->identity == NULL || c->callerid == NULL) {
        client_release(c);
        return ch_error_set(err, CH_ERR_NOMEM, "rpc client: out of memory");
    }
    if ((s = ch_protocol_reply_inbox(c->collective, c->callerid, c->inbox, sizeof(c->inbox),
                                     err)) != CH_OK ||
        (s = ch_rpc_pending_new(o->max_pending ? o->max_pending : CH_RPC_DEFAULT_MAX_PENDING,
                                &c->pending, err)) != CH_OK) {
        client_release(c);
        return s;
    }

    natsStatus ns = natsConnection_Subscribe(&c->sub, c->nc, c->inbox, on_reply, c);
    if (ns != NATS_OK) {
        client_release(c);
        return ch_error_set(err, CH_ERR_CONNECTION, "rpc client: subscribing to %s: %s",
                            o->collective, natsStatus_GetText(ns));
    }
    ns = natsSubscription_SetOnCompleteCB(c->sub, on_sub_complete, c);
    if (ns != NATS_OK) {
        /* The subscription closed under us (the connection is closing): its handler may still
         * be about to run with c, so c is deliberately not freed. */
        natsSubscription_Destroy(c->sub);
        return ch_error_set(err, CH_ERR_CONNECTION, "rpc client: reply subscription: %s",
                            natsStatus_GetText(ns));
    }
    ns = natsSubscription_SetPendingLimits(
        c->sub, o->sub_pending_msgs > 0 ? o->sub_pending_msgs : CH_RPC_DEFAULT_SUB_PENDING_MSGS,
        o->sub_pending_bytes > 0 ? o->sub_pending_bytes : CH_RPC_DEFAULT_SUB_PENDING_BYTES);
    if (ns != NATS_OK) {
        ch_rpc_client_free(c);
        return ch_error_set(err, CH_ERR_CONNECTION, "rpc client: pending limits: %s",
                            natsStatus_GetText(ns));
    }
    /* Our own requests follow the SUB on the same connection, so they need no flush; this
     * one makes the inbox live at the broker on return, when there is a broker to ask. */
    if (natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED)
        natsConnection_FlushTimeout(c->nc, FLUSH_TIMEOUT_MS);
    *out = c;
    return CH_OK;
}

ch_status ch_rpc_client_new(natsConnection *nc, const char *collective, const char *identity,
                            const char *callerid, int64_t ttl, ch_rpc_client **out, ch_error *err)
{
    ch_rpc_client_opts o = {
        .nc = nc, .collective = collective, .identity = identity, .callerid = callerid, .ttl = ttl};
    return ch_rpc_client_new_opts(&o, out, err);
}

void ch_rpc_client_free(ch_rpc_client *c)
{
    if (c == NULL)
        return;
    natsSubscription_Unsubscribe(c->sub); /* fails harmlessly once the connection closed */
    int64_t deadline = ch_now_mono_ms() + FREE_WAIT_MS;
    pthread_mutex_lock(&c->mu);
    while (!c->sub_done && ch_cond_wait_until(&c->cond, &c->mu, deadline))
        ;
    bool done = c->sub_done;
    pthread_mutex_unlock(&c->mu);
    natsSubscription_Destroy(c->sub);
    if (!done) {
        /* freeing now could let a late handler touch freed memory; a leak is the lesser harm */
        ch_warn("rpc client: the reply subscription did not close within %d ms; not freed",
                FREE_WAIT_MS);
        return;
    }
    client_release(c);
}

const char *ch_rpc_client_inbox(const ch_rpc_client *c)
{
    return c->inbox;
}

void ch_rpc_client_stats_get(const ch_rpc_client *c, ch_rpc_client_stats *out)
{
    ch_rpc_client *m = (ch_rpc_client *)c; /* atomics are read-only here */
    out->requests = atomic_load(&m->requests);
    out->discoveries = atomic_load(&m->discoveries);
    out->replies = atomic_load(&m->replies);
    out->unknown = ch_rpc_pending_unknown(m->pending);
    out->invalid = atomic_load(&m->invalid);
    out->overflow = atomic_load(&m->overflow);
    out->no_responders = atomic_load(&m->no_responders);
    out->timeouts = atomic_load(&m->timeouts);
}

/* Builds the request payload for requestid with the reply subject reply_to. */
ch_status rpc_build_request(ch_rpc_client *c, const char *agent, const char *body,
                            const ch_filter *filter, const char *requestid, const char *reply_to,
                            char **payload, size_t *len, ch_error *err)
{
    char url[CH_MAX_SUBJECT_LEN];
    ch_conn_connected_url(c->nc, url, sizeof(url));
    ch_request_params p = {.body = body,
                           .agent = agent,
                           .collective = c->collective,
                           .callerid = c->callerid,
                           .senderid = c->identity,
                           .requestid = requestid,
                           .ttl = c->ttl,
                           .time = ch_now_unix(),
                           .filter = filter,
                           .reply_to = reply_to,
                           .connected_url = url[0] != '\0' ? url : NULL};
    return ch_protocol_encode_request(c->proto, c->sec, &p, payload, len, err);
}

/* Registers a fresh request id with fn, retrying on the (astronomically unlikely) clash. */
ch_status rpc_add_pending(ch_rpc_client *c, char id[CH_PROTOCOL_REQUEST_ID_LEN + 1],
                          ch_rpc_pending_fn fn, void *closure, ch_error *err)
{
    ch_status s = CH_ERR_INTERNAL;
    for (int i = 0; i < 3; i++) {
        ch_request_id(id);
        s = ch_rpc_pending_add(c->pending, id, fn, closure, err);
        if (s != CH_ERR_INVALID)
            break;
    }
    return s;
}

/* Publishes a request. nats.c's flusher thread holds published data back for up to 1 ms to
 * batch it, which would double a request's round trip; unless the connection sends at once
 * (SendAsap), a flush (a PING the broker answers after routing the request) sends it now.
 * Its outcome does not matter: the request is on its way or the reply wait will tell. */
ch_status rpc_publish(ch_rpc_client *c, const char *subject, const char *reply_to,
                      const char *payload, size_t len, int64_t timeout_ms, ch_error *err)
{
    natsStatus ns = natsConnection_PublishRequest(c->nc, subject, reply_to, payload, (int)len);
    if (ns != NATS_OK)
        return ch_error_set(err, CH_ERR_CONNECTION, "publishing to %s: %s", subject,
                            natsStatus_GetText(ns));
    if (!c->send_asap && natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED)
        natsConnection_FlushTimeout(c->nc,
                                    timeout_ms < FLUSH_TIMEOUT_MS ? timeout_ms : FLUSH_TIMEOUT_MS);
    return CH_OK;
}
