/* The pending-request table of the RPC client: replies routed by request id to whoever waits
 * for them (see ch_rpc_pending_* in rpc.h). */
#include "choria/rpc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choria/util.h"

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
    node->hash = ch_hash_fnv1a(requestid, n);
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
    uint64_t h = ch_hash_fnv1a(requestid, n);
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
        uint64_t h = ch_hash_fnv1a(id, n);
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
