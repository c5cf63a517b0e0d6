/* Host set + bounded, deduplicated work queue (see include/choria/hosts.h). */
#include "hosts.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "choria/util.h"

enum { ST_QUEUED, ST_BUSY, ST_HELD, ST_DEAD };

typedef struct ent {
    struct ent *next;          /* hash chain */
    struct ent *hprev, *hnext; /* held list, oldest first */
    uint64_t gen;
    int64_t since; /* enqueue time, or hold expiry when held */
    int state;
    bool in_queue; /* a ring slot points here: only the dequeuer/pause frees */
    char id[];
} ent;

typedef struct {
    ent *e;
    uint64_t gen;
} slot;

struct prov_hosts {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ent **buckets;
    size_t nbuckets; /* power of two */
    slot *ring;
    size_t cap, head, len;
    ent *held_head, *held_tail;
    uint64_t next_gen;
    bool closed;
    int64_t interval_ms, hold_ms;
    int64_t (*clock)(void *ctx);
    void *clock_ctx;
    prov_hosts_stats st;
};

static int64_t mono(void *ctx)
{
    (void)ctx;
    return ch_now_mono_ms();
}

static size_t hash(const char *s)
{
    return (size_t)ch_hash_fnv1a(s, strlen(s));
}

static ent **find_link(prov_hosts *h, const char *id)
{
    ent **p = &h->buckets[hash(id) & (h->nbuckets - 1)];
    while (*p && strcmp((*p)->id, id) != 0)
        p = &(*p)->next;
    return p;
}

static void held_unlink(prov_hosts *h, ent *e)
{
    if (e->hprev)
        e->hprev->hnext = e->hnext;
    else
        h->held_head = e->hnext;
    if (e->hnext)
        e->hnext->hprev = e->hprev;
    else
        h->held_tail = e->hprev;
    e->hprev = e->hnext = NULL;
    h->st.held--;
}

/* Unlinks e from the map and the counts; frees it unless a ring slot still points to it. */
static void forget(prov_hosts *h, ent *e)
{
    ent **p = find_link(h, e->id);
    if (*p == e)
        *p = e->next;
    if (e->state == ST_BUSY)
        h->st.busy--;
    else if (e->state == ST_HELD)
        held_unlink(h, e);
    h->st.known--;
    e->state = ST_DEAD;
    if (!e->in_queue)
        free(e);
}

static void sweep_held(prov_hosts *h, int64_t now)
{
    while (h->held_head && now >= h->held_head->since)
        forget(h, h->held_head);
}

ch_status prov_hosts_new(const prov_hosts_opts *opts, prov_hosts **out, ch_error *err)
{
    prov_hosts_opts o = {0};
    if (opts)
        o = *opts;
    *out = NULL;
    prov_hosts *h = calloc(1, sizeof(*h));
    if (!h)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    h->cap = o.capacity ? o.capacity : PROV_HOSTS_DEFAULT_CAPACITY;
    h->interval_ms = o.interval_ms > 0 ? o.interval_ms : 0;
    h->hold_ms = o.hold_ms == 0 ? PROV_HOSTS_DEFAULT_HOLD_MS : o.hold_ms;
    h->clock = o.clock ? o.clock : mono;
    h->clock_ctx = o.clock_ctx;
    h->nbuckets = 1024;
    while (h->nbuckets < h->cap * 2 && h->nbuckets < ((size_t)1 << 30))
        h->nbuckets <<= 1;
    h->buckets = calloc(h->nbuckets, sizeof(*h->buckets));
    h->ring = calloc(h->cap, sizeof(*h->ring));
    if (!h->buckets || !h->ring || pthread_mutex_init(&h->mu, NULL) != 0) {
        free(h->buckets);
        free(h->ring);
        free(h);
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
    ch_cond_init_monotonic(&h->cv);
    *out = h;
    return CH_OK;
}

void prov_hosts_free(prov_hosts *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->len; i++) {
        ent *e = h->ring[(h->head + i) % h->cap].e;
        e->in_queue = false;
        if (e->state == ST_DEAD)
            free(e);
    }
    for (size_t b = 0; b < h->nbuckets; b++) {
        ent *e = h->buckets[b];
        while (e) {
            ent *n = e->next;
            free(e);
            e = n;
        }
    }
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h->buckets);
    free(h->ring);
    free(h);
}

prov_hosts_add_result prov_hosts_add(prov_hosts *h, const char *identity)
{
    prov_hosts_add_result r = PROV_HOSTS_ADDED;
    pthread_mutex_lock(&h->mu);
    int64_t now = h->clock(h->clock_ctx);
    sweep_held(h, now);
    if (h->closed) {
        r = PROV_HOSTS_CLOSED;
    } else if (!identity || !ch_identity_valid(identity)) {
        h->st.invalid++;
        r = PROV_HOSTS_INVALID;
    } else if (*find_link(h, identity)) {
        h->st.duplicates++;
        r = PROV_HOSTS_DUPLICATE;
    } else if (h->len >= h->cap) {
        h->st.full++;
        r = PROV_HOSTS_FULL;
    } else {
        size_t n = strlen(identity);
        ent *e = calloc(1, sizeof(*e) + n + 1);
        if (!e) {
            h->st.full++;
            r = PROV_HOSTS_FULL;
        } else {
            memcpy(e->id, identity, n + 1);
            e->gen = ++h->next_gen;
            e->since = now;
            e->state = ST_QUEUED;
            e->in_queue = true;
            ent **p = find_link(h, identity);
            *p = e;
            h->ring[(h->head + h->len) % h->cap] = (slot){e, e->gen};
            h->len++;
            h->st.known++;
            h->st.added++;
            pthread_cond_signal(&h->cv);
        }
    }
    pthread_mutex_unlock(&h->mu);
    return r;
}

ch_status prov_hosts_take(prov_hosts *h, int64_t timeout_ms, char *out, uint64_t *gen)
{
    ch_status rc = CH_ERR_TIMEOUT;
    int64_t deadline = timeout_ms >= 0 ? ch_now_mono_ms() + timeout_ms : 0;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        if (h->closed) {
            rc = CH_ERR_EXPIRED;
            break;
        }
        if (h->len > 0) {
            slot s = h->ring[h->head];
            h->head = (h->head + 1) % h->cap;
            h->len--;
            ent *e = s.e;
            e->in_queue = false;
            if (e->state != ST_QUEUED || e->gen != s.gen) {
                h->st.skipped_generation++;
                if (e->state == ST_DEAD)
                    free(e);
                continue;
            }
            if (h->interval_ms > 0 && h->clock(h->clock_ctx) - e->since > 2 * h->interval_ms) {
                h->st.dropped_stale_wait++;
                forget(h, e);
                continue;
            }
            e->state = ST_BUSY;
            h->st.busy++;
            memcpy(out, e->id, strlen(e->id) + 1);
            if (gen)
                *gen = e->gen;
            rc = CH_OK;
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&h->cv, &h->mu);
        } else if (!ch_cond_wait_until(&h->cv, &h->mu, deadline)) {
            if (h->len == 0 && !h->closed)
                break;
        }
    }
    h->st.queued = h->len;
    pthread_mutex_unlock(&h->mu);
    return rc;
}

void prov_hosts_done(prov_hosts *h, const char *identity, uint64_t gen, bool provisioned)
{
    pthread_mutex_lock(&h->mu);
    ent *e = *find_link(h, identity);
    if (e && e->gen == gen && e->state == ST_BUSY) {
        if (provisioned && h->hold_ms > 0) {
            h->st.busy--;
            e->state = ST_HELD;
            e->since = h->clock(h->clock_ctx) + h->hold_ms;
            e->hprev = h->held_tail;
            if (h->held_tail)
                h->held_tail->hnext = e;
            else
                h->held_head = e;
            h->held_tail = e;
            h->st.held++;
        } else {
            forget(h, e);
        }
    }
    pthread_mutex_unlock(&h->mu);
}

bool prov_hosts_remove(prov_hosts *h, const char *identity)
{
    pthread_mutex_lock(&h->mu);
    ent *e = identity ? *find_link(h, identity) : NULL;
    if (e)
        forget(h, e);
    pthread_mutex_unlock(&h->mu);
    return e != NULL;
}

size_t prov_hosts_pause(prov_hosts *h)
{
    size_t n = 0;
    pthread_mutex_lock(&h->mu);
    while (h->len > 0) {
        ent *e = h->ring[h->head].e;
        h->head = (h->head + 1) % h->cap;
        h->len--;
        e->in_queue = false;
        if (e->state == ST_QUEUED) {
            forget(h, e);
            n++;
        } else if (e->state == ST_DEAD) {
            free(e);
        }
    }
    pthread_mutex_unlock(&h->mu);
    return n;
}

void prov_hosts_shutdown(prov_hosts *h)
{
    pthread_mutex_lock(&h->mu);
    h->closed = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

void prov_hosts_stats_get(prov_hosts *h, prov_hosts_stats *out)
{
    pthread_mutex_lock(&h->mu);
    sweep_held(h, h->clock(h->clock_ctx));
    h->st.queued = h->len;
    *out = h->st;
    pthread_mutex_unlock(&h->mu);
}
