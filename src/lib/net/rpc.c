/* Choria RPC client: one reply subscription, a pending-request table, direct requests that
 * fail fast on "no responders", and broadcast discovery with a sliding window. See rpc.h. */
#include "choria/rpc.h"

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

#define FREE_WAIT_MS 5000     /* how long ch_rpc_client_free waits for the handler to finish */
#define FLUSH_TIMEOUT_MS 1000 /* bound of the best-effort flushes */

/* ---- small helpers ------------------------------------------------------------------ */

/* Request ids are random, identities are not; both are short. */
static uint64_t hash_bytes(const char *s, size_t n)
{
    return ch_hash_fnv1a(s, n);
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

static bool id_char(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool requestid_valid(const char *id, size_t n)
{
    if (n != CH_PROTOCOL_REQUEST_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!id_char(id[i]))
            return false;
    return true;
}

/* ---- pending-request table ---------------------------------------------------------- */

typedef struct pnode {
    struct pnode *next;
    uint64_t hash;
    ch_rpc_pending_fn fn;
    void *closure;
    char id[CH_PROTOCOL_REQUEST_ID_LEN + 1];
} pnode;

struct ch_rpc_pending {
    pthread_mutex_t mu;
    pnode **buckets;
    size_t mask;
    size_t count;
    size_t max;
    bool closed;
    atomic_uint_fast64_t unknown;
};

#define MAX_BUCKETS ((size_t)1 << 20)

ch_status ch_rpc_pending_new(size_t max_entries, ch_rpc_pending **out, ch_error *err)
{
    *out = NULL;
    if (max_entries == 0)
        return ch_error_set(err, CH_ERR_INVALID, "pending table: max_entries must be > 0");
    ch_rpc_pending *t = calloc(1, sizeof(*t));
    size_t nb = pow2_at_least(max_entries < MAX_BUCKETS ? max_entries : MAX_BUCKETS);
    if (t == NULL || (t->buckets = calloc(nb, sizeof(*t->buckets))) == NULL) {
        free(t);
        return ch_error_set(err, CH_ERR_NOMEM, "pending table: out of memory");
    }
    pthread_mutex_init(&t->mu, NULL);
    t->mask = nb - 1;
    t->max = max_entries;
    atomic_init(&t->unknown, 0);
    *out = t;
    return CH_OK;
}

void ch_rpc_pending_free(ch_rpc_pending *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i <= t->mask; i++) {
        pnode *n = t->buckets[i];
        while (n != NULL) {
            pnode *next = n->next;
            free(n);
            n = next;
        }
    }
    pthread_mutex_destroy(&t->mu);
    free(t->buckets);
    free(t);
}

/* The link that points at the node for id (hash h), or at the NULL ending its chain.
 * Called with t->mu held. */
static pnode **find_link(ch_rpc_pending *t, const char *id, uint64_t h)
{
    pnode **link = &t->buckets[h & t->mask];
    while (*link != NULL &&
           ((*link)->hash != h || memcmp((*link)->id, id, CH_PROTOCOL_REQUEST_ID_LEN) != 0))
        link = &(*link)->next;
    return link;
}

ch_status ch_rpc_pending_add(ch_rpc_pending *t, const char *requestid, ch_rpc_pending_fn fn,
                             void *closure, ch_error *err)
{
    size_t n = requestid != NULL ? strnlen(requestid, CH_PROTOCOL_REQUEST_ID_LEN + 1) : 0;
    if (!requestid_valid(requestid, n) || fn == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "pending table: invalid request id");
    pnode *node = calloc(1, sizeof(*node));
    if (node == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "pending table: out of memory");
    node->hash = hash_bytes(requestid, n);
    node->fn = fn;
    node->closure = closure;
    memcpy(node->id, requestid, n);

    ch_status s = CH_OK;
    pthread_mutex_lock(&t->mu);
    pnode **link = find_link(t, requestid, node->hash);
    if (t->closed)
        s = ch_error_set(err, CH_ERR_CONNECTION, "the reply subscription is closed");
    else if (*link != NULL)
        s = ch_error_set(err, CH_ERR_INVALID, "request %s is already pending", requestid);
    else if (t->count >= t->max)
        s = ch_error_set(err, CH_ERR_TOO_LARGE, "%zu requests are already pending", t->count);
    else {
        *link = node;
        t->count++;
        node = NULL;
    }
    pthread_mutex_unlock(&t->mu);
    free(node);
    return s;
}

bool ch_rpc_pending_remove(ch_rpc_pending *t, const char *requestid)
{
    size_t n = requestid != NULL ? strnlen(requestid, CH_PROTOCOL_REQUEST_ID_LEN + 1) : 0;
    if (!requestid_valid(requestid, n))
        return false;
    uint64_t h = hash_bytes(requestid, n);
    pthread_mutex_lock(&t->mu);
    pnode **link = find_link(t, requestid, h);
    pnode *node = *link;
    if (node != NULL) {
        *link = node->next;
        t->count--;
    }
    pthread_mutex_unlock(&t->mu);
    free(node);
    return node != NULL;
}

ch_status ch_rpc_pending_route(ch_rpc_pending *t, natsMsg *msg)
{
    const char *subject = natsMsg_GetSubject(msg);
    const char *dot = subject != NULL ? strrchr(subject, '.') : NULL;
    const char *id = dot != NULL ? dot + 1 : subject;
    size_t n = id != NULL ? strlen(id) : 0;
    if (requestid_valid(id, n)) {
        uint64_t h = hash_bytes(id, n);
        pthread_mutex_lock(&t->mu);
        pnode *node = *find_link(t, id, h);
        if (node != NULL) {
            /* under the lock, so a concurrent remove waits until fn returned */
            node->fn(node->closure, msg);
            pthread_mutex_unlock(&t->mu);
            return CH_OK;
        }
        pthread_mutex_unlock(&t->mu);
    }
    atomic_fetch_add(&t->unknown, 1);
    natsMsg_Destroy(msg);
    return CH_ERR_NOT_FOUND;
}

void ch_rpc_pending_close(ch_rpc_pending *t)
{
    pthread_mutex_lock(&t->mu);
    t->closed = true;
    for (size_t i = 0; i <= t->mask; i++)
        for (pnode *n = t->buckets[i]; n != NULL; n = n->next)
            n->fn(n->closure, NULL);
    pthread_mutex_unlock(&t->mu);
}

size_t ch_rpc_pending_count(ch_rpc_pending *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->count;
    pthread_mutex_unlock(&t->mu);
    return n;
}

uint64_t ch_rpc_pending_unknown(ch_rpc_pending *t)
{
    return atomic_load(&t->unknown);
}

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
    if (v < 0 || !ch_jscan_string_eq(d, v, CH_PROTOCOL_TRANSPORT_V1))
        return ch_error_set(err, CH_ERR_INVALID, "transport: protocol must be %s",
                            CH_PROTOCOL_TRANSPORT_V1);
    v = ch_jscan_object_get(d, 0, "data");
    if (v < 0 || !type_is(d, v, CH_JSCAN_STRING))
        return ch_error_set(err, CH_ERR_INVALID, "transport: data must be a string");
    int h = ch_jscan_object_get(d, 0, "headers");
    if (h < 0 || !type_is(d, h, CH_JSCAN_OBJECT))
        return ch_error_set(err, CH_ERR_INVALID, "transport: no headers object");
    if ((s = ch_jscan_object_check_duplicates(d, h, err)) != CH_OK)
        return s;
    if (!opt_member(d, h, "reply-to", CH_JSCAN_STRING) ||
        !opt_member(d, h, "seen-by", CH_JSCAN_ARRAY) ||
        !opt_member(d, h, "federation", CH_JSCAN_OBJECT))
        return ch_error_set(err, CH_ERR_INVALID, "transport: headers of the wrong type");
    v = ch_jscan_object_get(d, h, "mc_sender");
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

/* ---- client ------------------------------------------------------------------------ */

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
static ch_status build_request(ch_rpc_client *c, const char *agent, const char *body,
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
static ch_status add_pending(ch_rpc_client *c, char id[CH_PROTOCOL_REQUEST_ID_LEN + 1],
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
static ch_status publish(ch_rpc_client *c, const char *subject, const char *reply_to,
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

ch_status ch_rpc_call_body(ch_rpc_client *c, const char *identity, const char *agent,
                           const char *body, int64_t timeout_ms, ch_rpc_result *result,
                           ch_error *err)
{
    char id[CH_PROTOCOL_REQUEST_ID_LEN + 1], subject[CH_MAX_SUBJECT_LEN];
    char reply_to[CH_MAX_SUBJECT_LEN];
    char *payload = NULL;
    size_t len = 0;
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
    if ((s = add_pending(c, id, on_direct, &w, err)) != CH_OK)
        goto destroy;
    if ((s = ch_protocol_reply_subject(c->collective, c->callerid, id, reply_to, sizeof(reply_to),
                                       err)) ||
        (s = build_request(c, agent, body, NULL, id, reply_to, &payload, &len, err)))
        goto done;
    int64_t start = ch_now_mono_ms(), deadline = start + timeout_ms;
    if ((s = publish(c, subject, reply_to, payload, len, timeout_ms, err)) != CH_OK)
        goto done;
    atomic_fetch_add(&c->requests, 1);

    /* each turn consumes one message or ends the call; the deadline bounds them all */
    for (;;) {
        natsMsg *m = NULL;
        pthread_mutex_lock(&w.mu);
        while (w.n == 0 && !w.closed && ch_cond_wait_until(&w.cond, &w.mu, deadline))
            ;
        if (w.n > 0) {
            m = w.box[w.head];
            w.head = (w.head + 1) % CH_RPC_MAILBOX;
            w.n--;
        }
        bool closed = w.closed;
        pthread_mutex_unlock(&w.mu);
        if (m == NULL) {
            if (closed)
                s = ch_error_set(err, CH_ERR_CONNECTION, "the reply subscription closed");
            else {
                atomic_fetch_add(&c->timeouts, 1);
                s = ch_error_set(err, CH_ERR_TIMEOUT, "no reply from %s to %s within %lld ms",
                                 identity, agent, (long long)timeout_ms);
            }
            break;
        }
        bool final;
        s = judge(c, m, id, identity, subject, result, &final, err);
        natsMsg_Destroy(m);
        if (final)
            break;
    }
    result->elapsed_ms = ch_now_mono_ms() - start;
done:
    ch_rpc_pending_remove(c->pending, id); /* on_direct cannot run after this */
    for (size_t i = 0; i < w.n; i++)
        natsMsg_Destroy(w.box[(w.head + i) % CH_RPC_MAILBOX]);
destroy:
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.mu);
    free(payload);
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

/* ---- broadcast discovery ------------------------------------------------------------ */

#define CHUNK_SIZE (64 * 1024)

typedef struct chunk {
    struct chunk *next;
    size_t used;
    char data[];
} chunk;

/* The identities a discovery found: an arena of strings, the list in arrival order and an
 * open-addressing set of indexes into the list. Owned by ch_rpc_discovery.priv_. */
typedef struct {
    chunk *chunks;
    const char **list;
    size_t count;
    size_t list_cap;
    uint32_t *slots; /* 0 = empty, else list index + 1 */
    uint64_t *hashes;
    size_t mask;
    size_t max;
} idset;

static void idset_free(idset *s)
{
    if (s == NULL)
        return;
    while (s->chunks != NULL) {
        chunk *next = s->chunks->next;
        free(s->chunks);
        s->chunks = next;
    }
    free(s->list);
    free(s->slots);
    free(s->hashes);
    free(s);
}

static char *arena_dup(idset *s, const char *str, size_t n)
{
    if (s->chunks == NULL || CHUNK_SIZE - s->chunks->used < n + 1) {
        chunk *k = malloc(sizeof(*k) + CHUNK_SIZE);
        if (k == NULL)
            return NULL;
        k->next = s->chunks;
        k->used = 0;
        s->chunks = k;
    }
    char *p = s->chunks->data + s->chunks->used;
    memcpy(p, str, n);
    p[n] = '\0';
    s->chunks->used += n + 1;
    return p;
}

static bool idset_grow(idset *s)
{
    size_t cap = s->mask == 0 ? 1024 : (s->mask + 1) * 2;
    uint32_t *slots = calloc(cap, sizeof(*slots));
    uint64_t *hashes = calloc(cap, sizeof(*hashes));
    if (slots == NULL || hashes == NULL) {
        free(slots);
        free(hashes);
        return false;
    }
    for (size_t i = 0; s->slots != NULL && i <= s->mask; i++) {
        if (s->slots[i] == 0)
            continue;
        size_t j = s->hashes[i] & (cap - 1);
        while (slots[j] != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = s->slots[i];
        hashes[j] = s->hashes[i];
    }
    free(s->slots);
    free(s->hashes);
    s->slots = slots;
    s->hashes = hashes;
    s->mask = cap - 1;
    return true;
}

typedef enum { ADD_NEW, ADD_DUPLICATE, ADD_FULL, ADD_NOMEM } add_result;

static add_result idset_add(idset *s, const char *id)
{
    size_t n = strlen(id);
    uint64_t h = hash_bytes(id, n);
    if (s->slots != NULL) {
        for (size_t j = h & s->mask; s->slots[j] != 0; j = (j + 1) & s->mask)
            if (s->hashes[j] == h && strcmp(s->list[s->slots[j] - 1], id) == 0)
                return ADD_DUPLICATE;
    }
    if (s->count >= s->max)
        return ADD_FULL;
    if ((s->count + 1) * 2 > s->mask + 1 && !idset_grow(s))
        return ADD_NOMEM;
    if (s->count == s->list_cap) {
        size_t cap = s->list_cap ? s->list_cap * 2 : 1024;
        const char **list = realloc(s->list, cap * sizeof(*list));
        if (list == NULL)
            return ADD_NOMEM;
        s->list = list;
        s->list_cap = cap;
    }
    char *copy = arena_dup(s, id, n);
    if (copy == NULL)
        return ADD_NOMEM;
    size_t j = h & s->mask;
    while (s->slots[j] != 0)
        j = (j + 1) & s->mask;
    s->list[s->count++] = copy;
    s->slots[j] = (uint32_t)s->count;
    s->hashes[j] = h;
    return ADD_NEW;
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    idset *set;
    ch_rpc_discovery *out;
    int64_t first_ms, last_ms; /* monotonic, 0 = none yet */
    bool closed;
    bool nomem;
    bool wake_on_new; /* the discovering thread sleeps and wants to hear of new identities */
} discovery;

/* Runs on the routing thread for every reply: validates the transport and records its
 * sender. Replies that cannot be used do not move the sliding window. */
static void on_discovery(void *closure, natsMsg *msg)
{
    discovery *d = closure;
    char sender[CH_MAX_IDENTITY_LEN + 1];
    ch_status s = CH_OK;
    bool no_resp = msg != NULL && natsMsg_IsNoResponders(msg);
    if (msg != NULL && !no_resp)
        s = ch_rpc_transport_sender(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                                    sender, NULL);
    int64_t now = ch_now_mono_ms();
    pthread_mutex_lock(&d->mu);
    ch_rpc_discovery *o = d->out;
    if (msg == NULL || no_resp) {
        d->closed |= msg == NULL;
        o->no_responders |= no_resp;
        pthread_cond_signal(&d->cond);
    } else {
        o->replies++;
        if (s == CH_ERR_NO_MATCH)
            o->invalid_identity++;
        else if (s != CH_OK)
            o->malformed++;
        else {
            if (d->first_ms == 0) {
                /* the end moves from the timeout to the window: the sleeper must know */
                d->first_ms = now;
                pthread_cond_signal(&d->cond);
            }
            d->last_ms = now;
            switch (idset_add(d->set, sender)) {
            case ADD_NEW:
                if (d->wake_on_new) {
                    d->wake_on_new = false;
                    pthread_cond_signal(&d->cond);
                }
                break;
            case ADD_DUPLICATE:
                o->duplicates++;
                break;
            case ADD_FULL:
                o->over_limit++;
                break;
            case ADD_NOMEM:
                d->nomem = true;
                break;
            }
        }
    }
    pthread_mutex_unlock(&d->mu);
    natsMsg_Destroy(msg);
}

void ch_rpc_discovery_clear(ch_rpc_discovery *d)
{
    if (d == NULL)
        return;
    idset_free(d->priv_);
    memset(d, 0, sizeof(*d));
}

static bool is_regex(const char *s)
{
    size_t n = strlen(s);
    return n >= 2 && s[0] == '/' && s[n - 1] == '/';
}

/* go-choria skips the network when the filter names identities only, none by regex. */
static bool identities_only(const ch_filter *f)
{
    if (f == NULL || f->n_identities == 0 || f->n_facts || f->n_classes || f->n_agents ||
        f->n_compound)
        return false;
    for (size_t i = 0; i < f->n_identities; i++)
        if (is_regex(f->identities[i]))
            return false;
    return true;
}

/* Hands identities [*delivered, count) to the callback, without d->mu held during calls.
 * Called and returns with d->mu held. */
static void deliver_new(discovery *d, const ch_rpc_discover_opts *o, size_t *delivered)
{
    const char *batch[256];
    while (o->on_identity != NULL && *delivered < d->set->count) {
        size_t n = d->set->count - *delivered;
        if (n > sizeof(batch) / sizeof(batch[0]))
            n = sizeof(batch) / sizeof(batch[0]);
        memcpy(batch, d->set->list + *delivered, n * sizeof(batch[0]));
        *delivered += n;
        pthread_mutex_unlock(&d->mu);
        for (size_t i = 0; i < n; i++)
            o->on_identity(batch[i], o->closure);
        pthread_mutex_lock(&d->mu);
    }
}

ch_status ch_rpc_discover(ch_rpc_client *c, const ch_rpc_discover_opts *opts, ch_rpc_discovery *out,
                          ch_error *err)
{
    static const ch_rpc_discover_opts defaults = {0};
    const ch_rpc_discover_opts *o = opts != NULL ? opts : &defaults;
    char id[CH_PROTOCOL_REQUEST_ID_LEN + 1], subject[CH_MAX_SUBJECT_LEN];
    char reply_to[CH_MAX_SUBJECT_LEN];
    char *payload = NULL;
    size_t len = 0, delivered = 0;
    ch_status s = CH_OK;
    memset(out, 0, sizeof(*out));
    out->first_reply_ms = out->last_reply_ms = -1;
    int64_t timeout = o->timeout_ms != 0 ? o->timeout_ms : CH_RPC_DEFAULT_DISCOVERY_TIMEOUT_MS;
    int64_t window = o->window_ms != 0 ? o->window_ms : CH_RPC_DEFAULT_WINDOW_MS;
    if (timeout <= 0 || timeout > CH_RPC_MAX_TIMEOUT_MS)
        return ch_error_set(err, CH_ERR_INVALID, "discovery timeout %lld ms is not in 1..%d",
                            (long long)timeout, CH_RPC_MAX_TIMEOUT_MS);
    if (o->filter != NULL && (s = ch_filter_validate(o->filter, err)) != CH_OK)
        return s;

    idset *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "discovery: out of memory");
    set->max = o->max_identities != 0 ? o->max_identities : CH_RPC_DEFAULT_MAX_DISCOVERED;
    if (set->max > UINT32_MAX - 1)
        set->max = UINT32_MAX - 1;
    out->priv_ = set;
    discovery d = {.set = set, .out = out};
    pthread_mutex_init(&d.mu, NULL);
    ch_cond_init_monotonic(&d.cond);
    int64_t start = ch_now_mono_ms();

    if (identities_only(o->filter)) {
        out->from_filter = true;
        for (size_t i = 0; i < o->filter->n_identities; i++) {
            const char *ident = o->filter->identities[i];
            add_result r = ch_identity_valid(ident) ? idset_add(set, ident) : ADD_NEW;
            if (!ch_identity_valid(ident))
                out->invalid_identity++;
            else if (r == ADD_DUPLICATE)
                out->duplicates++;
            else if (r == ADD_FULL)
                out->over_limit++;
            else if (r == ADD_NOMEM)
                d.nomem = true;
        }
        if (d.nomem)
            s = ch_error_set(err, CH_ERR_NOMEM, "discovery: out of memory");
        pthread_mutex_lock(&d.mu);
        deliver_new(&d, o, &delivered);
        pthread_mutex_unlock(&d.mu);
        goto destroy;
    }

    if ((s = ch_protocol_broadcast_subject(c->collective, "discovery", subject, sizeof(subject),
                                           err)) ||
        (s = add_pending(c, id, on_discovery, &d, err)))
        goto destroy;
    if ((s = ch_protocol_reply_subject(c->collective, c->callerid, id, reply_to, sizeof(reply_to),
                                       err)) ||
        (s = build_request(c, "discovery", CH_RPC_DISCOVERY_BODY, o->filter, id, reply_to, &payload,
                           &len, err)))
        goto done;
    start = ch_now_mono_ms();
    if ((s = publish(c, subject, reply_to, payload, len, timeout, err)) != CH_OK)
        goto done;
    atomic_fetch_add(&c->discoveries, 1);

    /* Sleeps until the current end (timeout, or window after the last reply) and re-checks:
     * replies never wake this thread unless it has a callback waiting for new identities. */
    int64_t hard_end = start + timeout;
    pthread_mutex_lock(&d.mu);
    for (;;) {
        deliver_new(&d, o, &delivered);
        if (d.closed || out->no_responders || d.nomem)
            break;
        int64_t end = hard_end;
        if (window >= 0 && d.last_ms != 0 && d.last_ms + window < end)
            end = d.last_ms + window;
        if (ch_now_mono_ms() >= end) {
            out->window_closed = end < hard_end;
            break;
        }
        d.wake_on_new = o->on_identity != NULL;
        ch_cond_wait_until(&d.cond, &d.mu, end);
        d.wake_on_new = false;
    }
    pthread_mutex_unlock(&d.mu);

done:
    ch_rpc_pending_remove(c->pending, id); /* on_discovery cannot run after this */
    pthread_mutex_lock(&d.mu);
    deliver_new(&d, o, &delivered);
    pthread_mutex_unlock(&d.mu);
    if (d.first_ms != 0) {
        out->first_reply_ms = d.first_ms - start;
        out->last_reply_ms = d.last_ms - start;
    }
    if (s == CH_OK && d.nomem)
        s = ch_error_set(err, CH_ERR_NOMEM, "discovery: out of memory");
    if (s == CH_OK && d.closed)
        s = ch_error_set(err, CH_ERR_CONNECTION, "the reply subscription closed");
destroy:
    out->identities = set->list;
    out->count = set->count;
    out->elapsed_ms = ch_now_mono_ms() - start;
    pthread_cond_destroy(&d.cond);
    pthread_mutex_destroy(&d.mu);
    free(payload);
    return s;
}
