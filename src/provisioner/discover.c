/* Broadcast discovery on a timer plus startup events: every node found goes to the caller. */
#include "discover.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "choria/lifecycle.h"
#include "choria/log.h"
#include "choria/util.h"

struct prov_discoverer {
    prov_discoverer_opts o;
    char component[128];
    natsSubscription *events;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop, triggered;
    prov_discoverer_stats stats;
};

static bool paused(const prov_discoverer *d)
{
    return d->o.paused != NULL && atomic_load(d->o.paused);
}

static void on_identity(const char *identity, void *closure)
{
    prov_discoverer *d = closure;
    d->stats.discovered++;
    d->o.found(identity, PROV_FOUND_BY_DISCOVERY, d->o.closure);
}

static void discover_once(prov_discoverer *d)
{
    static const char *const agents[] = {"choria_provision"};
    ch_filter filter = {.agents = agents, .n_agents = 1};
    ch_rpc_discover_opts opts = {.filter = &filter,
                                 .timeout_ms = d->o.timeout_ms > 0 ? d->o.timeout_ms : 2000,
                                 .on_identity = on_identity,
                                 .closure = d};
    ch_rpc_discovery res = {0};
    ch_error err;
    d->stats.cycles++;
    if (d->o.metrics != NULL)
        ch_metric_inc(d->o.metrics->discover_cycles);
    if (ch_rpc_discover(d->o.rpc, &opts, &res, &err) != CH_OK) {
        d->stats.errors++;
        if (d->o.metrics != NULL)
            ch_metric_inc(d->o.metrics->discovery_errors);
        ch_error("discovery failed: %s", err.msg);
    } else {
        ch_info("discovered %zu nodes in %lld ms", res.count, (long long)res.elapsed_ms);
        if (res.invalid_identity > 0 && d->o.metrics != NULL) {
            ch_metric_add(d->o.metrics->invalid_identities, (double)res.invalid_identity);
            ch_warn("Discovery refused %llu replies with invalid identities",
                    (unsigned long long)res.invalid_identity);
        }
    }
    ch_rpc_discovery_clear(&res);
}

/* Discovers now, then every interval or when triggered, until stopped. */
static void *discover_loop(void *arg)
{
    prov_discoverer *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        d->triggered = false;
        pthread_mutex_unlock(&d->lock);
        if (!paused(d))
            discover_once(d);
        else
            ch_debug("Skipping discovery while paused");
        pthread_mutex_lock(&d->lock);
        int64_t deadline = ch_now_mono_ms() + (d->o.interval_ms > 0 ? d->o.interval_ms : 60000);
        while (!d->stop && !d->triggered && ch_cond_wait_until(&d->cond, &d->lock, deadline)) {
        }
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

static void on_event(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    prov_discoverer *d = closure;
    ch_lifecycle_event *ev = NULL;
    if (!paused(d) && ch_lifecycle_parse(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                                         &ev, NULL) == CH_OK) {
        bool ours = ev->type == CH_LIFECYCLE_STARTUP && strcmp(ev->component, d->component) == 0;
        if (ours && ch_identity_valid(ev->identity)) {
            d->stats.event_discovered++;
            d->o.found(ev->identity, PROV_FOUND_BY_EVENT, d->o.closure);
        } else {
            d->stats.invalid_events++;
            if (ours && d->o.metrics != NULL) {
                ch_metric_inc(d->o.metrics->invalid_identities);
                ch_warn("Ignoring a startup event with an invalid identity");
            }
        }
    } else if (!paused(d)) {
        d->stats.invalid_events++;
        ch_debug("could not handle message on %s", natsMsg_GetSubject(msg));
    }
    ch_lifecycle_event_free(ev);
    natsMsg_Destroy(msg);
}

ch_status prov_discoverer_start(const prov_discoverer_opts *o, prov_discoverer **out, ch_error *err)
{
    *out = NULL;
    if (o->nc == NULL || o->rpc == NULL || o->found == NULL)
        return ch_error_set(err, CH_ERR_INVALID,
                            "discoverer needs a connection, a client and "
                            "a callback");
    prov_discoverer *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    d->o = *o;
    snprintf(d->component, sizeof(d->component), "%s",
             o->component != NULL && o->component[0] ? o->component
                                                     : CH_LIFECYCLE_COMPONENT_PROVISION_MODE);
    pthread_mutex_init(&d->lock, NULL);
    ch_cond_init_monotonic(&d->cond);

    char subject[CH_MAX_SUBJECT_LEN];
    snprintf(subject, sizeof(subject), "choria.lifecycle.event.startup.%s", d->component);
    natsStatus s = natsConnection_Subscribe(&d->events, o->nc, subject, on_event, d);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(d->events, 1000000, 256 * 1024 * 1024);
    if (s != NATS_OK || pthread_create(&d->thread, NULL, discover_loop, d) != 0) {
        natsSubscription_Destroy(d->events);
        free(d);
        return ch_error_set(err, CH_ERR_CONNECTION, "cannot subscribe to %s: %s", subject,
                            natsStatus_GetText(s));
    }
    *out = d;
    return CH_OK;
}

void prov_discoverer_trigger(prov_discoverer *d)
{
    pthread_mutex_lock(&d->lock);
    d->triggered = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

const prov_discoverer_stats *prov_discoverer_stats_get(const prov_discoverer *d)
{
    return &d->stats;
}

void prov_discoverer_stop(prov_discoverer *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    d->stop = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    /* Drain so no event callback can still be running when d is freed. */
    if (natsSubscription_Drain(d->events) == NATS_OK)
        natsSubscription_WaitForDrainCompletion(d->events, 5000);
    natsSubscription_Destroy(d->events);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
