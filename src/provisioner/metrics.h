/* The choria_provisioner_* metrics of the upstream provisioner (choria-io/provisioner's
 * stats.go files), with their exact names, help texts and labels, in a registry of
 * choria/metrics.h. All site-labelled series are created at 0 when
 * registered so every dashboard query has data from the start; rpc_time and rpc_errors get
 * a series for each RPC the pipeline makes (PROV_METRICS_RPCS). */
#ifndef PROV_METRICS_H
#define PROV_METRICS_H

#include "choria/metrics.h"

#define PROV_METRICS_RPCS                                                                          \
    {                                                                                              \
        "choria_provision#jwt", "choria_provision#gen25519", "rpcutil#inventory",                  \
            "choria_provision#gencsr", "choria_provision#release_update",                          \
            "choria_provision#configure", "choria_provision#restart", "choria_provision#shutdown"  \
    }

typedef struct {
    ch_metric *discovered;               /* counter */
    ch_metric *event_discovered;         /* counter */
    ch_metric *discover_cycles;          /* counter */
    ch_metric *discovery_errors;         /* counter */
    ch_metric *provision_errors;         /* counter */
    ch_metric *provisioned;              /* counter */
    ch_metric *busy_workers;             /* gauge */
    ch_metric *work_queue_entries;       /* gauge */
    ch_metric *waiting_nodes;            /* gauge */
    ch_metric *paused;                   /* gauge */
    ch_metric *helper_time;              /* summary, seconds */
    ch_metric *helper_errors;            /* counter */
    ch_metric *helper_shutdown_requests; /* counter */
    ch_metric *invalid_identities;       /* counter, this project's own */
    ch_metric_family *rpc_time;          /* summary, seconds, labels site + rpc */
    ch_metric_family *rpc_errors;        /* counter, labels site + rpc */
    char site[CH_METRICS_LABEL_VALUE_MAX + 1];
} prov_metrics;

/* Registers every choria_provisioner_* family in m and fills pm with the series for site
 * (may be empty, as upstream's default). pm points into m: m must outlive it. */
ch_status prov_metrics_register(ch_metrics *m, const char *site, prov_metrics *pm, ch_error *err);

/* One rpc_time observation / one rpc_errors count for rpc ("agent#action"). Lock-free for
 * an rpc seen before; a new rpc label takes the registry lock once. NULL pm is a no-op. */
void prov_metrics_rpc_time(prov_metrics *pm, const char *rpc, double seconds);
void prov_metrics_rpc_error(prov_metrics *pm, const char *rpc);

#endif
