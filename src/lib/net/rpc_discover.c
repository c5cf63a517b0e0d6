/* Broadcast discovery with a sliding window: the identities that answer, deduplicated in an
 * arena-backed set, handed to a callback as they arrive. */
#include "rpc_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choria/util.h"

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
    uint64_t h = ch_hash_fnv1a(id, n);
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

/* go-choria's shortcut: a filter that names identities only is the answer itself. */
static ch_status discover_from_filter(discovery *d, const ch_rpc_discover_opts *o,
                                      size_t *delivered, ch_error *err)
{
    ch_rpc_discovery *out = d->out;
    out->from_filter = true;
    for (size_t i = 0; i < o->filter->n_identities; i++) {
        const char *ident = o->filter->identities[i];
        add_result r = ch_identity_valid(ident) ? idset_add(d->set, ident) : ADD_NEW;
        if (!ch_identity_valid(ident))
            out->invalid_identity++;
        else if (r == ADD_DUPLICATE)
            out->duplicates++;
        else if (r == ADD_FULL)
            out->over_limit++;
        else if (r == ADD_NOMEM)
            d->nomem = true;
    }
    pthread_mutex_lock(&d->mu);
    deliver_new(d, o, delivered);
    pthread_mutex_unlock(&d->mu);
    return d->nomem ? ch_error_set(err, CH_ERR_NOMEM, "discovery: out of memory") : CH_OK;
}

/* Sends the discovery request under a fresh id (registered in id); *start is when it left. */
static ch_status send_discovery(ch_rpc_client *c, discovery *d, const ch_rpc_discover_opts *o,
                                int64_t timeout, char id[CH_PROTOCOL_REQUEST_ID_LEN + 1],
                                int64_t *start, ch_error *err)
{
    char subject[CH_MAX_SUBJECT_LEN], reply_to[CH_MAX_SUBJECT_LEN];
    char *payload = NULL;
    size_t len = 0;
    ch_status s =
        ch_protocol_reply_subject(c->collective, c->callerid, id, reply_to, sizeof(reply_to), err);
    if (s == CH_OK)
        s = ch_protocol_broadcast_subject(c->collective, "discovery", subject, sizeof(subject),
                                          err);
    if (s == CH_OK)
        s = rpc_build_request(c, "discovery", CH_RPC_DISCOVERY_BODY, o->filter, id, reply_to,
                              &payload, &len, err);
    *start = ch_now_mono_ms();
    if (s == CH_OK)
        s = rpc_publish(c, subject, reply_to, payload, len, timeout, err);
    if (s == CH_OK)
        atomic_fetch_add(&c->discoveries, 1);
    free(payload);
    return s;
}

/* Sleeps until the current end (the timeout, or the window after the last reply) and
 * re-checks: replies never wake this thread unless it has a callback waiting for new
 * identities. */
static void wait_for_replies(discovery *d, const ch_rpc_discover_opts *o, int64_t hard_end,
                             int64_t window, size_t *delivered)
{
    pthread_mutex_lock(&d->mu);
    for (;;) {
        deliver_new(d, o, delivered);
        if (d->closed || d->out->no_responders || d->nomem)
            break;
        int64_t end = hard_end;
        if (window >= 0 && d->last_ms != 0 && d->last_ms + window < end)
            end = d->last_ms + window;
        if (ch_now_mono_ms() >= end) {
            d->out->window_closed = end < hard_end;
            break;
        }
        d->wake_on_new = o->on_identity != NULL;
        ch_cond_wait_until(&d->cond, &d->mu, end);
        d->wake_on_new = false;
    }
    pthread_mutex_unlock(&d->mu);
}

/* Broadcasts, collects replies until the window or the timeout closes, and reports. */
static ch_status discover_broadcast(ch_rpc_client *c, discovery *d, const ch_rpc_discover_opts *o,
                                    int64_t timeout, int64_t window, int64_t *start,
                                    size_t *delivered, ch_error *err)
{
    char id[CH_PROTOCOL_REQUEST_ID_LEN + 1];
    ch_status s = rpc_add_pending(c, id, on_discovery, d, err);
    if (s != CH_OK)
        return s;
    s = send_discovery(c, d, o, timeout, id, start, err);
    if (s == CH_OK)
        wait_for_replies(d, o, *start + timeout, window, delivered);
    ch_rpc_pending_remove(c->pending, id); /* on_discovery cannot run after this */
    pthread_mutex_lock(&d->mu);
    deliver_new(d, o, delivered);
    pthread_mutex_unlock(&d->mu);
    if (d->first_ms != 0) {
        d->out->first_reply_ms = d->first_ms - *start;
        d->out->last_reply_ms = d->last_ms - *start;
    }
    if (s == CH_OK && d->nomem)
        s = ch_error_set(err, CH_ERR_NOMEM, "discovery: out of memory");
    if (s == CH_OK && d->closed)
        s = ch_error_set(err, CH_ERR_CONNECTION, "the reply subscription closed");
    return s;
}

ch_status ch_rpc_discover(ch_rpc_client *c, const ch_rpc_discover_opts *opts, ch_rpc_discovery *out,
                          ch_error *err)
{
    static const ch_rpc_discover_opts defaults = {0};
    const ch_rpc_discover_opts *o = opts != NULL ? opts : &defaults;
    size_t delivered = 0;
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
    if (identities_only(o->filter))
        s = discover_from_filter(&d, o, &delivered, err);
    else
        s = discover_broadcast(c, &d, o, timeout, window, &start, &delivered, err);
    out->identities = set->list;
    out->count = set->count;
    out->elapsed_ms = ch_now_mono_ms() - start;
    pthread_cond_destroy(&d.cond);
    pthread_mutex_destroy(&d.mu);
    return s;
}
