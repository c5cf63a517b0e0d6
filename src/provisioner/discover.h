/* Finding nodes in provisioning mode: broadcast discovery (at start, every interval and on
 * demand) and startup lifecycle events, as choria-io/provisioner's hosts/provisioner.go and
 * hosts/event.go do. */
#ifndef CHORIA_PROVISIONER_DISCOVER_H
#define CHORIA_PROVISIONER_DISCOVER_H

#include <stdatomic.h>

#include <nats/nats.h>

#include "metrics.h"
#include "choria/rpc.h"

typedef enum { PROV_FOUND_BY_DISCOVERY, PROV_FOUND_BY_EVENT } prov_found_by;

/* Called for every identity found (not deduplicated: the host queue does that). */
typedef void (*prov_found_fn)(const char *identity, prov_found_by how, void *closure);

typedef struct {
    natsConnection *nc;    /* borrowed, shared with the rest of the process */
    ch_rpc_client *rpc;    /* borrowed: the process's RPC client in the provisioning collective */
    const char *component; /* lifecycle component to watch, default provision_mode_server */
    int64_t interval_ms;   /* between discoveries (the config's `interval`) */
    int64_t timeout_ms;    /* discovery timeout, default 2000 (sliding window 300 ms) */
    const atomic_bool *paused; /* while true nothing is discovered and events are ignored */
    prov_found_fn found;
    void *closure;
    prov_metrics *metrics; /* optional: discover_cycles and discovery_errors */
} prov_discoverer_opts;

/* Counters for the metrics. */
typedef struct {
    atomic_ullong cycles;           /* discover_cycles */
    atomic_ullong discovered;       /* nodes found by discovery */
    atomic_ullong event_discovered; /* nodes found through startup events */
    atomic_ullong errors;           /* discovery_errors */
    atomic_ullong invalid_events;   /* events that did not parse or named an invalid identity */
} prov_discoverer_stats;

typedef struct prov_discoverer prov_discoverer;

/* Subscribes to choria.lifecycle.event.startup.<component> and starts the discovery thread,
 * which discovers at once and then every interval. */
ch_status prov_discoverer_start(const prov_discoverer_opts *opts, prov_discoverer **out,
                                ch_error *err);

/* Asks for a discovery now (e.g. right after winning an election). */
void prov_discoverer_trigger(prov_discoverer *d);

const prov_discoverer_stats *prov_discoverer_stats_get(const prov_discoverer *d);

/* Stops the thread (within the running discovery's timeout) and unsubscribes. NULL is fine. */
void prov_discoverer_stop(prov_discoverer *d);

#endif
