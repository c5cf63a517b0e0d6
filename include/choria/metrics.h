/* Prometheus metrics: a registry of counters, gauges and summaries with labels, rendered in
 * the text exposition format 0.0.4.
 *
 * Updates (inc/add/set/observe) are lock-free atomics so workers never block on the HTTP
 * thread; creating a family or a new label combination takes the registry mutex. Looking up
 * an existing series is lock-free too, so callers may fetch series by label on the hot path,
 * though caching the ch_metric handle is cheaper. Series live until the registry is freed. */
#ifndef CHORIA_METRICS_H
#define CHORIA_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "choria/common.h"
#include "choria/json.h"

#define CH_METRICS_MAX_LABELS 4
#define CH_METRICS_MAX_OBJECTIVES 8
#define CH_METRICS_NAME_MAX 128
#define CH_METRICS_LABEL_VALUE_MAX 256
/* Summary quantiles are computed over the last CH_METRICS_WINDOW observations (a count
 * window, where client_golang uses a 10 minute age window). */
#define CH_METRICS_WINDOW 1024

typedef enum { CH_METRIC_COUNTER, CH_METRIC_GAUGE, CH_METRIC_SUMMARY } ch_metric_type;

typedef struct ch_metrics ch_metrics;
typedef struct ch_metric_family ch_metric_family;
typedef struct ch_metric ch_metric; /* one series: a family plus label values */

ch_metrics *ch_metrics_new(void);
void ch_metrics_free(ch_metrics *m);

/* Registers a family. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 * [a-zA-Z_][a-zA-Z0-9_]* without a "__" prefix or "quantile" for summaries. objectives are
 * summary quantiles in (0,1) (none: only _sum and _count, like upstream's summaries).
 * Registering the same name twice is CH_ERR_INVALID. */
ch_status ch_metrics_family_add(ch_metrics *m, const char *name, const char *help,
                                ch_metric_type type, const char *const *label_names, size_t nlabels,
                                const double *objectives, size_t nobjectives,
                                ch_metric_family **out, ch_error *err);

/* The series for label_values (nlabels of them, any bytes, at most
 * CH_METRICS_LABEL_VALUE_MAX each), created at 0 on first use. */
ch_status ch_metric_family_series(ch_metric_family *f, const char *const *label_values,
                                  ch_metric **out, ch_error *err);

/* Hot path, lock-free. Counters only go up: add ignores negative or NaN values. Each
 * function ignores a NULL metric and calls that do not fit its type (set on a counter,
 * observe on a gauge), so an unconfigured handle is harmless. */
void ch_metric_inc(ch_metric *s);               /* counter, gauge */
void ch_metric_dec(ch_metric *s);               /* gauge */
void ch_metric_add(ch_metric *s, double v);     /* counter (v >= 0), gauge */
void ch_metric_set(ch_metric *s, double v);     /* gauge */
void ch_metric_observe(ch_metric *s, double v); /* summary */

double ch_metric_value(const ch_metric *s);   /* counter/gauge value; summary sum */
uint64_t ch_metric_count(const ch_metric *s); /* summary observations; 0 otherwise */

/* Appends the whole registry: families sorted by name, series by label values, each family
 * with # HELP and # TYPE lines. Returns CH_ERR_NOMEM if out failed. */
ch_status ch_metrics_render(ch_metrics *m, ch_buf *out, ch_error *err);

/* ---------------------------------------------------------------------------------------
 * The choria_provisioner_* metrics of the upstream provisioner (spec section 10), with their
 * exact names, help texts and labels. All site-labelled series are created at 0 when
 * registered so every dashboard query has data from the start; rpc_time and rpc_errors get
 * a series for each RPC the pipeline makes (CH_PROVISIONER_RPCS). */

#define CH_PROVISIONER_RPCS                                                                        \
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
} ch_provisioner_metrics;

/* Registers every choria_provisioner_* family in m and fills pm with the series for site
 * (may be empty, as upstream's default). pm points into m: m must outlive it. */
ch_status ch_provisioner_metrics_register(ch_metrics *m, const char *site,
                                          ch_provisioner_metrics *pm, ch_error *err);

/* One rpc_time observation / one rpc_errors count for rpc ("agent#action"). Lock-free for
 * an rpc seen before; a new rpc label takes the registry lock once. NULL pm is a no-op. */
void ch_provisioner_metrics_rpc_time(ch_provisioner_metrics *pm, const char *rpc, double seconds);
void ch_provisioner_metrics_rpc_error(ch_provisioner_metrics *pm, const char *rpc);

#endif
