/* Finding nodes in provisioning mode: broadcast discovery (at start, every interval and on
 * demand) and startup lifecycle events, as choria-io/provisioner does (spec 5.3, 5.4). */
#ifndef CHORIA_PROVISIONER_DISCOVER_H
#define CHORIA_PROVISIONER_DISCOVER_H

#include <stdatomic.h>

#include <nats/nats.h>

#include "choria/metrics.h"
#include "choria/rpc.h"

typedef enum { CH_FOUND_BY_DISCOVERY, CH_FOUND_BY_EVENT } ch_found_by;

/* Called for every identity found (not deduplicated: the host queue does that). */
typedef void (*ch_found_fn)(const char *identity, ch_found_by how, void *closure);

typedef struct {
    natsConnection *nc;    /* borrowed, shared with the rest of the process */
    ch_rpc_client *rpc;    /* borrowed: the process's RPC client in the provisioning collective */
    const char *component; /* lifecycle component to watch, default provision_mode_server */
    int64_t interval_ms;   /* between discoveries (the config's `interval`) */
    int64_t timeout_ms;    /* discovery timeout, default 2000 (sliding window 300 ms) */
    const atomic_bool *paused; /* while true nothing is discovered and events are ignored */
    ch_found_fn found;
    void *closure;
    ch_provisioner_metrics *metrics; /* optional: discover_cycles and discovery_errors */
} ch_discoverer_opts;

/* Counters for the metrics. */
typedef struct {
    atomic_ullong cycles;           /* discover_cycles */
    atomic_ullong discovered;       /* nodes found by discovery */
    atomic_ullong event_discovered; /* nodes found through startup events */
    atomic_ullong errors;           /* discovery_errors */
    atomic_ullong invalid_events;   /* events that did not parse or named an invalid identity */
} ch_discoverer_stats;

typedef struct ch_discoverer ch_discoverer;

/* Subscribes to choria.lifecycle.event.startup.<component> and starts the discovery thread,
 * which discovers at once and then every interval. */
ch_status ch_discoverer_start(const ch_discoverer_opts *opts, ch_discoverer **out, ch_error *err);

/* Asks for a discovery now (e.g. right after winning an election). */
void ch_discoverer_trigger(ch_discoverer *d);

const ch_discoverer_stats *ch_discoverer_stats_get(const ch_discoverer *d);

/* Stops the thread (within the running discovery's timeout) and unsubscribes. NULL is fine. */
void ch_discoverer_stop(ch_discoverer *d);

#endif
