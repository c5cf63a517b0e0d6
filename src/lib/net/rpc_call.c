/* Direct requests: one request to one node, its replies judged until one decides the call,
 * "no responders" at once when the node is gone. */
#include "rpc_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choria/json.h"
#include "choria/log.h"
#include "choria/util.h"

/* ---- direct requests ---------------------------------------------------------------- */

typedef struct {
    ch_rpc_client *c;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    natsMsg *box[CH_RPC_MAILBOX];
    size_t head;
    size_t n;
    bool closed;
} waiter;

static void on_direct(void *closure, natsMsg *msg)
{
    waiter *w = closure;
    pthread_mutex_lock(&w->mu);
    if (msg == NULL)
        w->closed = true;
    else if (w->n < CH_RPC_MAILBOX) {
        w->box[(w->head + w->n++) % CH_RPC_MAILBOX] = msg;
        msg = NULL;
    } else
        atomic_fetch_add(&w->c->overflow, 1);
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    natsMsg_Destroy(msg); /* NULL-safe */
}

/* Judges one message for the request: *final is set when the call is decided by it. */
static ch_status judge(ch_rpc_client *c, natsMsg *m, const char *id, const char *identity,
                       const char *subject, ch_rpc_result *r, bool *final, ch_error *err)
{
    ch_reply_payload p;
    ch_error e;
    ch_status s;
    *final = false;
    if (natsMsg_IsNoResponders(m)) {
        *final = true;
        r->no_responders = true;
        atomic_fetch_add(&c->no_responders, 1);
        return ch_error_set(err, CH_ERR_NOT_FOUND, "no responders for %s", subject);
    }
    s = ch_protocol_decode_reply(c->proto, c->sec, natsMsg_GetData(m),
                                 (size_t)natsMsg_GetDataLength(m), &p, &e);
    if (s == CH_OK && strcmp(p.reply.envelope.requestid, id) != 0)
        s = ch_error_set(&e, CH_ERR_INVALID, "reply for request %.40s", p.reply.envelope.requestid);
    if (s == CH_OK && strcmp(p.reply.envelope.senderid, identity) != 0)
        s = ch_error_set(&e, CH_ERR_INVALID, "reply from %.64s", p.reply.envelope.senderid);
    if (s != CH_OK) {
        ch_protocol_reply_payload_clear(&p);
        atomic_fetch_add(&c->invalid, 1);
        ch_debug("rpc: dropped a reply to %s for %s: %s", id, identity, e.msg);
        return CH_OK;
    }
    *final = true;
    s = ch_rpc_result_parse(p.reply.message, strlen(p.reply.message), r, err);
    snprintf(r->sender, sizeof(r->sender), "%s", p.reply.envelope.senderid);
    ch_protocol_reply_payload_clear(&p);
    return s;
}

/* The next message of the waiter, NULL at the deadline or when the subscription closed. */
static natsMsg *next_reply(waiter *w, int64_t deadline, bool *closed)
{
    natsMsg *m = NULL;
    pthread_mutex_lock(&w->mu);
    while (w->n == 0 && !w->closed && ch_cond_wait_until(&w->cond, &w->mu, deadline)) {
    }
    if (w->n > 0) {
        m = w->box[w->head];
        w->head = (w->head + 1) % CH_RPC_MAILBOX;
        w->n--;
    }
    *closed = w->closed;
    pthread_mutex_unlock(&w->mu);
    return m;
}

/* A direct call to a node: the request and what the replies decide. */
typedef struct {
    const char *identity, *agent, *body, *subject, *id;
    int64_t timeout_ms;
} direct_call;

/* Sends the request and judges replies until one decides the call or the deadline passes;
 * each turn consumes one message or ends the call. */
static ch_status send_and_await(ch_rpc_client *c, waiter *w, const direct_call *dc,
                                ch_rpc_result *result, ch_error *err)
{
    char reply_to[CH_MAX_SUBJECT_LEN];
    char *payload = NULL;
    size_t len = 0;
    ch_status s = ch_protocol_reply_subject(c->collective, c->callerid, dc->id, reply_to,
                                            sizeof(reply_to), err);
    if (s == CH_OK)
        s = rpc_build_request(c, dc->agent, dc->body, NULL, dc->id, reply_to, &payload, &len, err);
    int64_t start = ch_now_mono_ms(), deadline = start + dc->timeout_ms;
    if (s == CH_OK)
        s = rpc_publish(c, dc->subject, reply_to, payload, len, dc->timeout_ms, err);
    free(payload);
    if (s != CH_OK)
        return s;
    atomic_fetch_add(&c->requests, 1);
    for (bool final = false, closed = false; !final;) {
        natsMsg *m = next_reply(w, deadline, &closed);
        if (m == NULL && closed)
            s = ch_error_set(err, CH_ERR_CONNECTION, "the reply subscription closed");
        else if (m == NULL) {
            atomic_fetch_add(&c->timeouts, 1);
            s = ch_error_set(err, CH_ERR_TIMEOUT, "no reply from %s to %s within %lld ms",
                             dc->identity, dc->agent, (long long)dc->timeout_ms);
        } else
            s = judge(c, m, dc->id, dc->identity, dc->subject, result, &final, err);
        final = final || m == NULL;
        natsMsg_Destroy(m);
    }
    result->elapsed_ms = ch_now_mono_ms() - start;
    return s;
}

ch_status ch_rpc_call_body(ch_rpc_client *c, const char *identity, const char *agent,
                           const char *body, int64_t timeout_ms, ch_rpc_result *result,
                           ch_error *err)
{
    char id[CH_PROTOCOL_REQUEST_ID_LEN + 1], subject[CH_MAX_SUBJECT_LEN];
    ch_status s;
    memset(result, 0, sizeof(*result));
    if (!ch_identity_valid(identity))
        return ch_error_set(err, CH_ERR_INVALID, "'%.64s' is not a valid identity",
                            identity != NULL ? identity : "");
    if (agent == NULL || agent[0] == '\0' || body == NULL || body[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "an agent and a request body are required");
    if (timeout_ms <= 0 || timeout_ms > CH_RPC_MAX_TIMEOUT_MS)
        return ch_error_set(err, CH_ERR_INVALID, "timeout %lld ms is not in 1..%d",
                            (long long)timeout_ms, CH_RPC_MAX_TIMEOUT_MS);
    if ((s = ch_protocol_node_subject(c->collective, identity, subject, sizeof(subject), err)))
        return s;
    waiter w = {.c = c};
    pthread_mutex_init(&w.mu, NULL);
    ch_cond_init_monotonic(&w.cond);
    if ((s = rpc_add_pending(c, id, on_direct, &w, err)) == CH_OK) {
        direct_call dc = {identity, agent, body, subject, id, timeout_ms};
        s = send_and_await(c, &w, &dc, result, err);
        ch_rpc_pending_remove(c->pending, id); /* on_direct cannot run after this */
        for (size_t i = 0; i < w.n; i++)
            natsMsg_Destroy(w.box[(w.head + i) % CH_RPC_MAILBOX]);
    }
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.mu);
    return s;
}

ch_status ch_rpc_call(ch_rpc_client *c, const char *identity, const char *agent, const char *action,
                      const json_t *data, int64_t timeout_ms, ch_rpc_result *result, ch_error *err)
{
    memset(result, 0, sizeof(*result));
    if (agent == NULL || agent[0] == '\0' || action == NULL || action[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "an agent and an action are required");
    char *encoded = NULL;
    if (data != NULL && (encoded = ch_json_encode(data, NULL)) == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "request data cannot be encoded");
    /* go-choria's RPCRequest field order: agent, action, data */
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"agent\":");
    ch_buf_append_json_string(&b, agent, strlen(agent));
    ch_buf_append_str(&b, ",\"action\":");
    ch_buf_append_json_string(&b, action, strlen(action));
    ch_buf_append_str(&b, ",\"data\":");
    ch_buf_append_str(&b, encoded != NULL ? encoded : "{}");
    ch_buf_append_str(&b, "}");
    free(encoded);
    char *body = ch_buf_steal(&b, NULL);
    if (body == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "request body: out of memory");
    ch_status s = ch_rpc_call_body(c, identity, agent, body, timeout_ms, result, err);
    free(body);
    return s;
}
