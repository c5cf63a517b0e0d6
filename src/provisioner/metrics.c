/* The choria_provisioner_* metric set of the upstream provisioner, with its exact names,
 * help texts (choria-io/provisioner's stats.go files) and labels. */
#include "metrics.h"

#include <stddef.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *help;
    ch_metric_type type;
    size_t offset; /* of the ch_metric * in prov_metrics */
} family_def;

#define PM(field) offsetof(prov_metrics, field)

static const family_def FAMILIES[] = {
    {"choria_provisioner_discovered", "How many nodes were found through discovery",
     CH_METRIC_COUNTER, PM(discovered)},
    {"choria_provisioner_event_discovered",
     "How many nodes were found through receiving an event about them", CH_METRIC_COUNTER,
     PM(event_discovered)},
    {"choria_provisioner_discover_cycles", "How many discovery cycles were ran", CH_METRIC_COUNTER,
     PM(discover_cycles)},
    {"choria_provisioner_discovery_errors", "How many discovery related errors were encountered",
     CH_METRIC_COUNTER, PM(discovery_errors)},
    {"choria_provisioner_provision_errors", "How many provision related errors were encountered",
     CH_METRIC_COUNTER, PM(provision_errors)},
    {"choria_provisioner_provisioned", "How many nodes were successfully provisioned",
     CH_METRIC_COUNTER, PM(provisioned)},
    {"choria_provisioner_busy_workers", "How many workers are busy provisioning nodes",
     CH_METRIC_GAUGE, PM(busy_workers)},
    {"choria_provisioner_work_queue_entries",
     "Number of nodes on the work queue waiting to be provisioned", CH_METRIC_GAUGE,
     PM(work_queue_entries)},
    {"choria_provisioner_waiting_nodes", "The number of nodes currently waiting to be provisioned",
     CH_METRIC_GAUGE, PM(waiting_nodes)},
    {"choria_provisioner_paused", "Indicates if the provisioner is paused", CH_METRIC_GAUGE,
     PM(paused)},
    {"choria_provisioner_helper_time", "How long it took to run the helper", CH_METRIC_SUMMARY,
     PM(helper_time)},
    {"choria_provisioner_helper_errors", "How many helper related errors were encountered",
     CH_METRIC_COUNTER, PM(helper_errors)},
    {"choria_provisioner_helper_shutdown_requests",
     "How many shutdown requests were sent to nodes on behalf of the helper", CH_METRIC_COUNTER,
     PM(helper_shutdown_requests)},
    /* Not upstream's: identities refused because they are not valid node names. */
    {"choria_provisioner_invalid_identities",
     "How many discovered identities were refused as invalid node names", CH_METRIC_COUNTER,
     PM(invalid_identities)},
};

ch_status prov_metrics_register(ch_metrics *m, const char *site, prov_metrics *pm, ch_error *err)
{
    static const char *const site_label[] = {"site"};
    static const char *const rpc_labels[] = {"site", "rpc"};
    static const char *const rpcs[] = PROV_METRICS_RPCS;
    ch_status st;
    ch_metric_family *f;

    if (m == NULL || pm == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no registry");
    memset(pm, 0, sizeof(*pm));
    if (site == NULL)
        site = "";
    if (strlen(site) > CH_METRICS_LABEL_VALUE_MAX)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "site name too long");
    strcpy(pm->site, site);
    const char *const site_value[] = {pm->site};

    for (size_t i = 0; i < sizeof(FAMILIES) / sizeof(FAMILIES[0]); i++) {
        const family_def *d = &FAMILIES[i];
        st = ch_metrics_family_get(m, d->name, d->help, d->type, site_label, 1, &f, err);
        if (st != CH_OK)
            return st;
        st = ch_metric_family_series(f, site_value, (ch_metric **)((char *)pm + d->offset), err);
        if (st != CH_OK)
            return st;
    }
    st = ch_metrics_family_get(m, "choria_provisioner_rpc_time",
                               "How long it took to perform RPC requests", CH_METRIC_SUMMARY,
                               rpc_labels, 2, &pm->rpc_time, err);
    if (st == CH_OK)
        st = ch_metrics_family_get(m, "choria_provisioner_rpc_errors",
                                   "How many rpc related errors were encountered",
                                   CH_METRIC_COUNTER, rpc_labels, 2, &pm->rpc_errors, err);
    for (size_t i = 0; st == CH_OK && i < sizeof(rpcs) / sizeof(rpcs[0]); i++) {
        const char *const values[] = {pm->site, rpcs[i]};
        ch_metric *s;
        st = ch_metric_family_series(pm->rpc_time, values, &s, err);
        if (st == CH_OK)
            st = ch_metric_family_series(pm->rpc_errors, values, &s, err);
    }
    return st;
}

static ch_metric *rpc_series(prov_metrics *pm, ch_metric_family *f, const char *rpc)
{
    if (pm == NULL || f == NULL)
        return NULL;
    const char *const values[] = {pm->site, rpc != NULL ? rpc : ""};
    ch_metric *s = NULL;
    if (ch_metric_family_series(f, values, &s, NULL) != CH_OK)
        return NULL;
    return s;
}

void prov_metrics_rpc_time(prov_metrics *pm, const char *rpc, double seconds)
{
    ch_metric_observe(rpc_series(pm, pm != NULL ? pm->rpc_time : NULL, rpc), seconds);
}

void prov_metrics_rpc_error(prov_metrics *pm, const char *rpc)
{
    ch_metric_inc(rpc_series(pm, pm != NULL ? pm->rpc_errors : NULL, rpc));
}
