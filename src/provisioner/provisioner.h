/* The provisioner daemon's moving parts wired together (upstream hosts.Process, spec 5): one
 * NATS connection and one RPC client shared by everything, the discoverer, the host queue, the
 * worker threads running the pipeline, the metrics and the /metrics server. */
#ifndef CHORIA_PROVISIONER_PROVISIONER_H
#define CHORIA_PROVISIONER_PROVISIONER_H

#include "choria/hosts.h"
#include "choria/metrics.h"
#include "choria/provconfig.h"

typedef struct {
    const ch_provconfig *cfg; /* must outlive the provisioner */
    const char *config_file;  /* for the start-up log line */
    const char *const *servers;
    int server_count;
    const char *identity;         /* the provisioner's Choria identity */
    int64_t discovery_timeout_ms; /* Choria discovery_timeout; 0 = 2000 */
    int backoff_percent;          /* scales the RPC retry back-off; 0 = 100 (tests) */
    int64_t hold_ms;              /* provisioned hosts held; 0 = 60 s (tests shorten it) */
    bool start_paused;            /* e.g. until a leader election is won */
} ch_provisioner_opts;

typedef struct ch_provisioner ch_provisioner;

/* Checks what the configuration needs (verification key, deny list, helper command), connects,
 * publishes the provisioner's startup event, starts /metrics, the workers and discovery.
 * Errors are one line naming the cause. */
ch_status ch_provisioner_start(const ch_provisioner_opts *o, ch_provisioner **out, ch_error *err);

/* Pause: nothing is discovered, events are ignored, the queue is emptied and no RPC or helper
 * starts; steps in flight fail at their next check. Resume discovers at once. */
void ch_provisioner_pause(ch_provisioner *p);
void ch_provisioner_resume(ch_provisioner *p);

/* The port /metrics listens on, 0 when disabled. */
int ch_provisioner_monitor_port(const ch_provisioner *p);

ch_metrics *ch_provisioner_metrics_registry(ch_provisioner *p);
/* The choria_provisioner_* series, for reading values in tests. */
ch_provisioner_metrics *ch_provisioner_metrics_handles(ch_provisioner *p);
void ch_provisioner_hosts_stats(ch_provisioner *p, ch_hosts_stats *out);

/* Stops everything (helpers are killed, RPCs in flight end at once) and frees p. NULL is fine. */
void ch_provisioner_stop(ch_provisioner *p);

#endif
