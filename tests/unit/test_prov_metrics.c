/* The provisioner's choria_provisioner_* metric set: upstream's names, help texts, types and
 * labels, one series set per site in a shared registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static char *render(ch_metrics *m)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_error err;
    assert_int_equal(ch_metrics_render(m, &b, &err), CH_OK);
    char *s = ch_buf_steal(&b, NULL);
    assert_non_null(s);
    return s;
}

static const char *const prov_names[] = {
    "choria_provisioner_discovered",
    "choria_provisioner_event_discovered",
    "choria_provisioner_discover_cycles",
    "choria_provisioner_discovery_errors",
    "choria_provisioner_provision_errors",
    "choria_provisioner_provisioned",
    "choria_provisioner_busy_workers",
    "choria_provisioner_work_queue_entries",
    "choria_provisioner_waiting_nodes",
    "choria_provisioner_paused",
    "choria_provisioner_rpc_time",
    "choria_provisioner_rpc_errors",
    "choria_provisioner_helper_time",
    "choria_provisioner_helper_errors",
    "choria_provisioner_helper_shutdown_requests",
};

static void provisioner_metrics_have_upstream_names_types_and_labels(void **state)
{
    ch_metrics *m = ch_metrics_new();
    prov_metrics pm, pm2;
    ch_error err;
    assert_int_equal(prov_metrics_register(m, "lon", &pm, &err), CH_OK);
    assert_int_equal(prov_metrics_register(m, "ams", &pm2, &err), CH_OK);

    ch_metric_inc(pm.provisioned);
    ch_metric_inc(pm.provisioned);
    ch_metric_inc(pm.busy_workers);
    ch_metric_set(pm.paused, 1);
    ch_metric_observe(pm.helper_time, 0.5);
    prov_metrics_rpc_time(&pm, "choria_provision#jwt", 0.125);
    prov_metrics_rpc_error(&pm, "choria_provision#configure");
    prov_metrics_rpc_error(&pm2, "custom#thing");
    prov_metrics_rpc_time(NULL, "x", 1);

    char *out = render(m);
    char line[256];
    for (size_t i = 0; i < sizeof(prov_names) / sizeof(prov_names[0]); i++) {
        snprintf(line, sizeof(line), "\n# TYPE %s ", prov_names[i]);
        assert_non_null(strstr(out, line));
        snprintf(line, sizeof(line), "# HELP %s How", prov_names[i]);
        if (strstr(prov_names[i], "paused") == NULL && strstr(prov_names[i], "_entries") == NULL &&
            strstr(prov_names[i], "waiting") == NULL)
            assert_non_null(strstr(out, line));
    }
    assert_non_null(strstr(out, "# HELP choria_provisioner_provisioned How many nodes were "
                                "successfully provisioned\n"
                                "# TYPE choria_provisioner_provisioned counter\n"
                                "choria_provisioner_provisioned{site=\"ams\"} 0\n"
                                "choria_provisioner_provisioned{site=\"lon\"} 2\n"));
    assert_non_null(strstr(out, "# TYPE choria_provisioner_busy_workers gauge\n"
                                "choria_provisioner_busy_workers{site=\"ams\"} 0\n"
                                "choria_provisioner_busy_workers{site=\"lon\"} 1\n"));
    assert_non_null(strstr(out, "choria_provisioner_paused{site=\"lon\"} 1\n"));
    assert_non_null(strstr(out, "# TYPE choria_provisioner_rpc_time summary\n"));
    assert_non_null(strstr(out, "choria_provisioner_rpc_time_sum{site=\"lon\",rpc=\"choria_"
                                "provision#jwt\"} 0.125\n"
                                "choria_provisioner_rpc_time_count{site=\"lon\",rpc=\"choria_"
                                "provision#jwt\"} 1\n"));
    assert_non_null(strstr(out, "choria_provisioner_rpc_errors{site=\"lon\",rpc=\"choria_"
                                "provision#configure\"} 1\n"));
    assert_non_null(strstr(out, "choria_provisioner_rpc_errors{site=\"ams\",rpc=\"custom#thing\"} "
                                "1\n"));
    assert_non_null(strstr(out, "choria_provisioner_helper_time_sum{site=\"lon\"} 0.5\n"
                                "choria_provisioner_helper_time_count{site=\"lon\"} 1\n"));
    /* upstream summaries have no objectives */
    assert_null(strstr(out, "quantile="));
    /* client_golang does not append _total to these counters */
    assert_null(strstr(out, "_total"));
    free(out);
    ch_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(provisioner_metrics_have_upstream_names_types_and_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
