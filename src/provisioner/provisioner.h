/* The provisioner daemon's moving parts wired together (upstream hosts/hosts.go Process): one
 * NATS connection and one RPC client shared by everything, the discoverer, the host queue, the
 * worker threads running the pipeline, the metrics and the /metrics server. */
#ifndef CHORIA_PROVISIONER_PROVISIONER_H
#define CHORIA_PROVISIONER_PROVISIONER_H

#include "choria/conn.h"
#include "choria/security.h"
#include "hosts.h"
#include "metrics.h"
#include "config.h"

typedef struct {
    const prov_config *cfg;       /* must outlive the provisioner */
    const char *config_file;      /* for the start-up log line */
    const ch_conn_settings *conn; /* the brokers; conn->name is the provisioner's identity;
                                     borrowed, must outlive the provisioner */
    int64_t discovery_timeout_ms; /* Choria discovery_timeout; 0 = 2000 */
    int backoff_percent;          /* scales the RPC retry back-off; 0 = 100 (tests) */
    int64_t hold_ms;              /* provisioned hosts held; 0 = 60 s (tests shorten it) */
    bool start_paused;            /* e.g. until a leader election is won */
    const ch_security *security;  /* signs every request; borrowed; NULL = insecure */
    const char *certname;         /* callerid choria=<certname>; NULL = conn->name */
} prov_daemon_opts;

typedef struct prov_daemon prov_daemon;

/* Checks what the configuration needs (verification key, deny list, helper command), connects,
 * publishes the provisioner's startup event, starts /metrics, the workers and discovery.
 * Errors are one line naming the cause. */
ch_status prov_daemon_start(const prov_daemon_opts *o, prov_daemon **out, ch_error *err);

/* Pause: nothing is discovered, events are ignored, the queue is emptied and no RPC or helper
 * starts; steps in flight fail at their next check. Resume discovers at once. */
void prov_daemon_pause(prov_daemon *p);
void prov_daemon_resume(prov_daemon *p);

/* The port /metrics listens on, 0 when disabled. */
int prov_daemon_monitor_port(const prov_daemon *p);

ch_metrics *prov_daemon_registry(prov_daemon *p);
/* The choria_provisioner_* series, for reading values in tests. */
prov_metrics *prov_daemon_metrics(prov_daemon *p);
void prov_daemon_hosts_stats(prov_daemon *p, prov_hosts_stats *out);

/* Stops everything (helpers are killed, RPCs in flight end at once) and frees p. NULL is fine. */
void prov_daemon_stop(prov_daemon *p);

#endif
