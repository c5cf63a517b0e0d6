/* The provisioner's paused state, in process against a real broker and a real fleet: while
 * paused nothing is discovered, no event is acted on and no helper or RPC starts; pausing
 * empties the queue; resuming discovers at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/log.h"
#include "config.h"
#include "choria/util.h"
#include "harness.h"
#include "provisioner.h"

typedef struct {
    cht_broker *broker;
    cht_proc *fleet;
    prov_config *cfg;
    prov_daemon *p;
    ch_conn_settings conn;
    char dir[256];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (cht_temp_dir("pause-test", f->dir, sizeof(f->dir), NULL) != CH_OK ||
        cht_broker_start(NULL, &f->broker, NULL) != CH_OK)
        return -1;
    ch_log_set_level(CH_LOG_ERROR);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    prov_daemon_stop(f->p);
    ch_conn_settings_clear(&f->conn);
    prov_config_free(f->cfg);
    cht_proc_free(f->fleet);
    cht_broker_free(f->broker);
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

static void start_fleet(fixture *f, const char *count)
{
    char bin[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[] = {bin,       "tool", "fleet",   "--server", cht_broker_url(f->broker),
                          "--count", count,  "--quiet", NULL};
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->fleet, &err), &err);
    char *line = NULL;
    if (cht_proc_read_until(f->fleet, "nodes in provisioning mode", 20000, &line) != CHT_READ_LINE)
        fail_msg("fleet did not start: %s", cht_proc_stderr(f->fleet));
    free(line);
}

/* A provisioner in this process with workers and the helper command given. */
static void start_provisioner(fixture *f, int workers, const char *helper, bool paused)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml), "workers: %d\nsite: t\nhelper: %s\n", workers, helper);
    ch_error err;
    CHT_CHECK(prov_config_parse(yaml, strlen(yaml), "test", &f->cfg, &err), &err);
    CHT_CHECK(ch_conn_settings_add_servers(&f->conn, cht_broker_url(f->broker), &err), &err);
    CHT_CHECK(ch_conn_settings_set(&f->conn.name, "provisioner.example.net", &err), &err);
    prov_daemon_opts o = {
        .cfg = f->cfg, .conn = &f->conn, .backoff_percent = 10, .start_paused = paused};
    CHT_CHECK(prov_daemon_start(&o, &f->p, &err), &err);
}

static double value(fixture *f, ch_metric *m)
{
    (void)f;
    return ch_metric_value(m);
}

static void wait_value(fixture *f, ch_metric *m, double want, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms && value(f, m) != want; waited += 50)
        usleep(50000);
    assert_float_equal(value(f, m), want, 0);
}

static void demo_helper(char *out, size_t size)
{
    const char *src = getenv("CH_SOURCE_DIR");
    snprintf(out, size, "%s/contrib/helpers/demo-helper", src != NULL ? src : ".");
}

static void nothing_happens_while_paused_and_resume_discovers_at_once(void **state)
{
    fixture *f = *state;
    char helper[400];
    demo_helper(helper, sizeof(helper));
    start_fleet(f, "20");
    start_provisioner(f, 4, helper, true);
    prov_metrics *m = prov_daemon_metrics(f->p);
    assert_float_equal(value(f, m->paused), 1, 0);

    /* A startup event and the interval tick would normally queue nodes. */
    char bin[512], cmd[1024];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    snprintf(cmd, sizeof(cmd),
             "%s tool emit --server %s --type startup --component provision_mode_server "
             "--identity n1.fleet.local >/dev/null",
             bin, cht_broker_url(f->broker));
    assert_int_equal(system(cmd), 0);
    usleep(1500000);
    assert_float_equal(value(f, m->discover_cycles), 0, 0);
    assert_float_equal(value(f, m->event_discovered), 0, 0);
    assert_float_equal(value(f, m->waiting_nodes), 0, 0);
    assert_int_equal(ch_metric_count(m->helper_time), 0);

    prov_daemon_resume(f->p);
    assert_float_equal(value(f, m->paused), 0, 0);
    wait_value(f, m->provisioned, 20, 20000);
    assert_float_equal(value(f, m->discover_cycles), 1, 0);
    assert_float_equal(value(f, m->discovered), 20, 0);
}

static void pausing_empties_the_queue_and_starts_no_more_helpers(void **state)
{
    fixture *f = *state;
    char helper[600], demo[400];
    demo_helper(demo, sizeof(demo));
    snprintf(helper, sizeof(helper), "%s/slow-helper", f->dir);
    FILE *fp = fopen(helper, "w");
    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\nsleep 0.5\nexec %s\n", demo);
    fclose(fp);
    chmod(helper, 0755);
    start_fleet(f, "10");
    start_provisioner(f, 1, helper, false);
    prov_metrics *m = prov_daemon_metrics(f->p);
    wait_value(f, m->provisioned, 2, 20000);

    prov_daemon_pause(f->p);
    assert_float_equal(value(f, m->paused), 1, 0);
    assert_float_equal(value(f, m->work_queue_entries), 0, 0);
    /* The node in flight fails at its next step; after that nothing moves. */
    usleep(1500000);
    double helpers = (double)ch_metric_count(m->helper_time);
    double done = value(f, m->provisioned) + value(f, m->provision_errors);
    usleep(1500000);
    assert_float_equal((double)ch_metric_count(m->helper_time), helpers, 0);
    assert_float_equal((value(f, m->provisioned) + value(f, m->provision_errors)), done, 0);
    assert_float_equal(value(f, m->busy_workers), 0, 0);
    assert_true(value(f, m->provisioned) < 10);

    prov_daemon_resume(f->p);
    wait_value(f, m->provisioned, 10, 60000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(nothing_happens_while_paused_and_resume_discovers_at_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(pausing_empties_the_queue_and_starts_no_more_helpers, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
