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

/* The family registered as name when it has the same type and label names (a second user of
 * one registry, e.g. a second site), else a new family without objectives. CH_ERR_INVALID
 * when name is registered with another shape. */
ch_status ch_metrics_family_get(ch_metrics *m, const char *name, const char *help,
                                ch_metric_type type, const char *const *labels, size_t nlabels,
                                ch_metric_family **out, ch_error *err);

/* Appends the whole registry: families sorted by name, series by label values, each family
 * with # HELP and # TYPE lines. Returns CH_ERR_NOMEM if out failed. */
ch_status ch_metrics_render(ch_metrics *m, ch_buf *out, ch_error *err);

#endif
