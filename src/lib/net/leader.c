/* Leader election over a JetStream KV bucket. */
#include "choria/leader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choria/log.h"
#include "choria/util.h"

#define CONFIRM_DELAY_MS 200 /* upstream sleeps this long before calling won */
#define MIN_REFRESH_MS 250

struct ch_leader {
    ch_leader_opts o;
    char bucket[128], key[128], identity[256], prefix[128];
    jsCtx *js;
    kvStore *kv;
    kvWatcher *watch; /* the election key: react to evictions and hand-overs at once */
    int64_t ttl_ms, refresh_ms, campaign_ms;
    atomic_bool leader;
    bool confirmed;
    uint64_t revision;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    ch_metric *m_candidate, *m_leader_campaigns, *m_leader, *m_interval;
};

/* ---- metrics ---- */

static ch_metric *series(ch_metric_family *f, const char *a, const char *b, const char *c)
{
    const char *const values[] = {a, b, c};
    ch_metric *m = NULL;
    if (f != NULL)
        ch_metric_family_series(f, values, &m, NULL);
    return m;
}

static void setup_metrics(ch_leader *l)
{
    if (l->o.metrics == NULL)
        return;
    static const char *const L3[] = {"election", "identity", "state"};
    static const char *const L2[] = {"election", "identity"};
    ch_metric_family *campaigns = NULL, *leader = NULL, *interval = NULL;
    ch_metrics_family_add(l->o.metrics, "choria_election_campaigns",
                          "The number of campaigns a specific candidate voted in",
                          CH_METRIC_COUNTER, L3, 3, NULL, 0, &campaigns, NULL);
    ch_metrics_family_add(l->o.metrics, "choria_election_leader",
                          "Indicates if a specific instance is the current leader", CH_METRIC_GAUGE,
                          L2, 2, NULL, 0, &leader, NULL);
    ch_metrics_family_add(l->o.metrics, "choria_election_interval_seconds",
                          "The number of seconds between campaigns", CH_METRIC_GAUGE, L2, 2, NULL,
                          0, &interval, NULL);
    l->m_candidate = series(campaigns, l->key, l->identity, "candidate");
    l->m_leader_campaigns = series(campaigns, l->key, l->identity, "leader");
    l->m_leader = series(leader, l->key, l->identity, NULL);
    l->m_interval = series(interval, l->key, l->identity, NULL);
}

/* ---- campaign ---- */

/* Waits ms or until stopped; true when stopped. */
static bool nap(ch_leader *l, int64_t ms)
{
    int64_t deadline = ch_now_mono_ms() + ms;
    pthread_mutex_lock(&l->lock);
    while (!l->stop && ch_cond_wait_until(&l->cond, &l->lock, deadline)) {
    }
    bool stopped = l->stop;
    pthread_mutex_unlock(&l->lock);
    return stopped;
}

static int64_t jittered(int64_t ms)
{
    uint32_t r = 0;
    ch_random_bytes(&r, sizeof(r));
    return ms * 3 / 4 + (int64_t)(r % (uint32_t)(ms / 2 + 1)); /* [0.75x, 1.25x] */
}

static void become_candidate(ch_leader *l, const char *why)
{
    bool was = atomic_exchange(&l->leader, false);
    bool confirmed = l->confirmed;
    l->confirmed = false;
    ch_metric_set(l->m_leader, 0);
    ch_metric_set(l->m_interval, (double)l->campaign_ms / 1000.0);
    if (was) {
        ch_warn("Lost leadership of %s: %s", l->key, why);
        if (confirmed && l->o.lost != NULL)
            l->o.lost(l->o.closure);
    }
}

static void campaign_as_candidate(ch_leader *l)
{
    ch_metric_inc(l->m_candidate);
    uint64_t rev = 0;
    natsStatus s = kvStore_CreateString(&rev, l->kv, l->key, l->identity);
    if (s != NATS_OK) {
        return;
    }
    l->revision = rev;
    atomic_store(&l->leader, true);
    ch_metric_set(l->m_leader, 1);
    ch_metric_set(l->m_interval, (double)l->refresh_ms / 1000.0);
    ch_debug("Campaign for %s won at revision %llu, confirming", l->key, (unsigned long long)rev);
}

/* A leader's heartbeat; the first one confirms the win. */
static void campaign_as_leader(ch_leader *l)
{
    ch_metric_inc(l->m_leader_campaigns);
    uint64_t rev = 0;
    natsStatus s = kvStore_UpdateString(&rev, l->kv, l->key, l->identity, l->revision);
    if (s != NATS_OK) {
        char why[256];
        snprintf(why, sizeof(why), "update failed: %s", natsStatus_GetText(s));
        become_candidate(l, why);
        return;
    }
    l->revision = rev;
    if (!l->confirmed) {
        l->confirmed = true;
        ch_info("Became leader of %s", l->key);
        if (l->o.won != NULL)
            l->o.won(l->o.closure);
    }
}

typedef enum { WAITED, STOPPED, KEY_FREED, EVICTED } wait_result;

/* What a change of the key means: a leader whose key was deleted or taken is evicted; a
 * candidate that sees the key freed campaigns at once. */
static wait_result on_key_change(ch_leader *l, kvEntry *e)
{
    kvOperation op = kvEntry_Operation(e);
    bool freed = op == kvOp_Delete || op == kvOp_Purge;
    /* Events older than our own write (a delete queued while we won the key) are history. */
    bool newer = kvEntry_Revision(e) > l->revision;
    bool taken = op == kvOp_Put && strcmp(kvEntry_ValueString(e), l->identity) != 0;
    if (atomic_load(&l->leader) && newer && (freed || taken)) {
        become_candidate(l, freed ? "the key was deleted (evicted)" : "another candidate holds it");
        return EVICTED;
    }
    return !atomic_load(&l->leader) && freed ? KEY_FREED : WAITED;
}

/* Waits ms while watching the key (without a watcher: just waits). */
static wait_result wait_watching(ch_leader *l, int64_t ms)
{
    if (l->watch == NULL)
        return nap(l, ms) ? STOPPED : WAITED;
    int64_t end = ch_now_mono_ms() + ms;
    for (int64_t left = ms; left > 0; left = end - ch_now_mono_ms()) {
        pthread_mutex_lock(&l->lock);
        bool stop = l->stop;
        pthread_mutex_unlock(&l->lock);
        if (stop)
            return STOPPED;
        kvEntry *e = NULL;
        if (kvWatcher_Next(&e, l->watch, left < 100 ? left : 100) != NATS_OK || e == NULL)
            continue;
        wait_result r = on_key_change(l, e);
        kvEntry_Destroy(e);
        if (r != WAITED)
            return r;
    }
    return WAITED;
}

static void *campaign_loop(void *arg)
{
    ch_leader *l = arg;
    ch_metric_set(l->m_interval, (double)l->campaign_ms / 1000.0);
    for (;;) {
        if (!atomic_load(&l->leader))
            campaign_as_candidate(l);
        else
            campaign_as_leader(l);
        int64_t wait = !atomic_load(&l->leader) ? jittered(l->campaign_ms)
                       : !l->confirmed          ? CONFIRM_DELAY_MS
                                                : l->refresh_ms;
        wait_result r = wait_watching(l, wait);
        /* An evicted leader lets the others go first. */
        if (r == STOPPED || (r == EVICTED && nap(l, jittered(l->campaign_ms))))
            break;
    }
    return NULL;
}

/* ---- life cycle ---- */

static ch_status bind_bucket(ch_leader *l, ch_error *err)
{
    jsOptions jo;
    jsOptions_Init(&jo);
    if (l->prefix[0] != '\0')
        jo.Prefix = l->prefix;
    natsStatus s = natsConnection_JetStream(&l->js, l->o.nc, &jo);
    if (s == NATS_OK)
        s = js_KeyValue(&l->kv, l->js, l->bucket);
    if (s != NATS_OK) {
        ch_error_set(err, CH_ERR_NOT_FOUND, "cannot access KV Bucket %s: %s", l->bucket,
                     nats_GetLastError(NULL) != NULL ? nats_GetLastError(NULL)
                                                     : natsStatus_GetText(s));
        return CH_ERR_NOT_FOUND;
    }
    kvStatus *st = NULL;
    if (kvStore_Status(&st, l->kv) != NATS_OK) {
        return ch_error_set(err, CH_ERR_NOT_FOUND, "cannot read the status of KV Bucket %s",
                            l->bucket);
    }
    l->ttl_ms = kvStatus_TTL(st) / 1000000;
    kvStatus_Destroy(st);
    if (l->ttl_ms < 1000 || l->ttl_ms > 3600 * 1000)
        return ch_error_set(err, CH_ERR_INVALID,
                            "KV Bucket %s has a TTL of %lld ms, it must be between 1s and 1h",
                            l->bucket, (long long)l->ttl_ms);
    l->refresh_ms = l->ttl_ms / 4 > MIN_REFRESH_MS ? l->ttl_ms / 4 : MIN_REFRESH_MS;
    if (kvStore_Watch(&l->watch, l->kv, l->key, NULL) != NATS_OK) {
        ch_warn("cannot watch the %s election key, evictions are noticed at the next refresh",
                l->key);
        l->watch = NULL;
    }
    return CH_OK;
}

/* The handles, the lock and l itself; the campaign thread has ended or never started. */
static void free_leader(ch_leader *l)
{
    kvWatcher_Destroy(l->watch);
    kvStore_Destroy(l->kv);
    jsCtx_Destroy(l->js);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

ch_status ch_leader_start(const ch_leader_opts *o, ch_leader **out, ch_error *err)
{
    *out = NULL;
    if (o->nc == NULL || o->key == NULL || o->key[0] == '\0' || o->identity == NULL ||
        o->identity[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID,
                            "an election needs a connection, a name and "
                            "an identity");
    ch_leader *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    l->o = *o;
    snprintf(l->bucket, sizeof(l->bucket), "%s",
             o->bucket != NULL && o->bucket[0] ? o->bucket : CH_LEADER_DEFAULT_BUCKET);
    snprintf(l->key, sizeof(l->key), "%s", o->key);
    snprintf(l->identity, sizeof(l->identity), "%s", o->identity);
    snprintf(l->prefix, sizeof(l->prefix), "%s", o->api_prefix != NULL ? o->api_prefix : "");
    l->campaign_ms = o->campaign_ms > 0 ? o->campaign_ms : CH_LEADER_DEFAULT_CAMPAIGN_MS;
    pthread_mutex_init(&l->lock, NULL);
    ch_cond_init_monotonic(&l->cond);
    ch_status st = bind_bucket(l, err);
    if (st == CH_OK) {
        setup_metrics(l);
        if (pthread_create(&l->thread, NULL, campaign_loop, l) != 0)
            st = ch_error_set(err, CH_ERR_INTERNAL, "cannot start the election thread");
    }
    if (st != CH_OK) {
        free_leader(l);
        return st;
    }
    *out = l;
    return CH_OK;
}

bool ch_leader_is_leader(const ch_leader *l)
{
    return l != NULL && atomic_load(&l->leader) && l->confirmed;
}

int64_t ch_leader_ttl_ms(const ch_leader *l)
{
    return l->ttl_ms;
}

void ch_leader_stop(ch_leader *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->lock);
    l->stop = true;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    if (atomic_load(&l->leader)) {
        /* Step down at once so a standby need not wait for the TTL. */
        if (kvStore_Delete(l->kv, l->key) != NATS_OK) {
            ch_warn("could not delete the %s election key: %s", l->key,
                    nats_GetLastError(NULL) != NULL ? nats_GetLastError(NULL) : "unknown");
        }
        become_candidate(l, "stopping");
    }
    free_leader(l);
}
