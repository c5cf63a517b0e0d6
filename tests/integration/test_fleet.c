/* `choria tool fleet` against a real nats-server, driven with the libchoria RPC client as a
 * provisioner would: discovery, the provisioning sequence, restarts, fault injection and
 * the summary the fleet writes; and `--tls`, the anonymous TLS of provisioning-mode nodes,
 * against a nats-server that requires TLS. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/conn.h"
#include "choria/json.h"
#include "choria/lifecycle.h"
#include "choria/rpc.h"
#include "choria/util.h"
#include "harness.h"

#define CALLERID "choria=provisioner.mcollective"
#define WORKERS 4

typedef struct {
    cht_broker *broker;
    natsConnection *nc;
    natsSubscription *events;
    cht_proc *fleet;
    ch_rpc_client *rpc;
    char dir[256];
    char summary[300];
} fixture;

/* The test's own connection: plain, or TLS checked against the broker's self-signed
 * certificate (so the test knows it talks to its broker). */
static ch_status connect_test(fixture *f, bool tls, ch_error *err)
{
    if (!tls)
        return cht_nats_connect(cht_broker_url(f->broker), 5000, &f->nc, err);
    char ca[320];
    snprintf(ca, sizeof(ca), "%s/broker.pem", f->dir);
    const char *servers[] = {cht_broker_url(f->broker)};
    ch_conn_opts o = {.servers = servers,
                      .server_count = 1,
                      .name = "test-client",
                      .tls = {.enabled = true, .ca_file = ca, .server_name = "localhost"}};
    return ch_conn_connect(&o, &f->nc, err);
}

/* A nats-server that requires TLS of every client and asks for no client certificate, as
 * `choria broker run` serves provisioning nodes; its certificate is self-signed, so only a
 * client that does not check it (or trusts it, as the test's own) gets in. */
static ch_status start_tls_broker(fixture *f, ch_error *err)
{
    ch_status st = cht_sh(err,
                          "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "
                          "broker.key -out broker.pem -subj /CN=localhost -addext "
                          "subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null",
                          f->dir);
    char extra[1024];
    snprintf(extra, sizeof(extra),
             "tls {\n  cert_file: \"%s/broker.pem\"\n  key_file: \"%s/broker.key\"\n"
             "  timeout: 2\n}\n",
             f->dir, f->dir);
    cht_broker_opts o;
    cht_broker_opts_init(&o);
    o.jetstream = false;
    o.extra_config = extra;
    return st == CH_OK ? cht_broker_start(&o, &f->broker, err) : st;
}

static int setup_with(void **state, bool tls)
{
    fixture *f = calloc(1, sizeof(*f));
    ch_error err;
    if (f == NULL || cht_temp_dir("fleet-test", f->dir, sizeof(f->dir), &err) != CH_OK)
        return -1;
    *state = f;
    if ((tls ? start_tls_broker(f, &err) : cht_broker_start(NULL, &f->broker, &err)) != CH_OK ||
        connect_test(f, tls, &err) != CH_OK ||
        natsConnection_SubscribeSync(&f->events, f->nc, CH_LIFECYCLE_SUBJECT_ALL) != NATS_OK ||
        natsSubscription_SetPendingLimits(f->events, 1000000, 512 * 1024 * 1024) != NATS_OK ||
        natsConnection_FlushTimeout(f->nc, 5000) != NATS_OK ||
        ch_rpc_client_new(f->nc, "provisioning", "provisioner.example.net", CALLERID, 60, &f->rpc,
                          &err) != CH_OK)
        return -1;
    snprintf(f->summary, sizeof(f->summary), "%s/summary.json", f->dir);
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, false);
}

static int setup_tls(void **state)
{
    return setup_with(state, true);
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_proc_free(f->fleet);
    ch_rpc_client_free(f->rpc);
    natsSubscription_Destroy(f->events);
    natsConnection_Close(f->nc);
    natsConnection_Destroy(f->nc);
    cht_broker_free(f->broker);
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

/* Starts the fleet with extra flags. */
static void spawn_fleet(fixture *f, const char *count, const char *const *extra)
{
    char bin[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[24] = {
        bin,       "tool", "fleet",          "--server", cht_broker_url(f->broker),
        "--count", count,  "--summary-json", f->summary};
    int n = 9;
    for (; extra != NULL && *extra != NULL && n < 23; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->fleet, &err), &err);
}

/* The fleet's first line: every node connected and subscribed. Caller frees. */
static char *ready_line(fixture *f)
{
    char *line = NULL;
    if (cht_proc_read_until(f->fleet, "nodes in provisioning mode", 20000, &line) != CHT_READ_LINE)
        fail_msg("fleet did not start: %s", cht_proc_stderr(f->fleet));
    return line;
}

/* Starts the fleet with extra flags and waits for its first line. */
static void start_fleet(fixture *f, const char *count, const char *const *extra)
{
    spawn_fleet(f, count, extra);
    free(ready_line(f));
}

static size_t discover(fixture *f, char ***ids)
{
    ch_rpc_discover_opts o = {.timeout_ms = 10000, .window_ms = 1000};
    ch_rpc_discovery d = {0};
    ch_error err;
    CHT_CHECK(ch_rpc_discover(f->rpc, &o, &d, &err), &err);
    size_t n = d.count;
    if (ids != NULL) {
        *ids = calloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
            (*ids)[i] = strdup(d.identities[i]);
    }
    ch_rpc_discovery_clear(&d);
    return n;
}

static int call(fixture *f, const char *id, const char *agent, const char *action, json_t *data,
                int64_t timeout_ms, ch_rpc_result *r, ch_error *err)
{
    int st = ch_rpc_call(f->rpc, id, agent, action, data, timeout_ms, r, err);
    json_decref(data);
    return st;
}

/* jwt, inventory, configure, restart: what the provisioner does to every node. */
static bool provision_node(fixture *f, const char *id)
{
    ch_rpc_result r = {0};
    ch_error err;
    bool ok = call(f, id, "choria_provision", "jwt", json_pack("{s:s}", "token", "t0k"), 10000, &r,
                   &err) == CH_OK &&
              r.statuscode == 0;
    ch_rpc_result_clear(&r);
    ok = ok && call(f, id, "rpcutil", "inventory", NULL, 10000, &r, &err) == CH_OK &&
         r.statuscode == 0;
    ch_rpc_result_clear(&r);
    char conf[256];
    snprintf(conf, sizeof(conf),
             "{\"identity\":\"%s\",\"plugin.choria.server.provision\":\"false\"}", id);
    ok = ok &&
         call(f, id, "choria_provision", "configure",
              json_pack("{s:s,s:s}", "config", conf, "token", "t0k"), 10000, &r, &err) == CH_OK &&
         r.statuscode == 0;
    ch_rpc_result_clear(&r);
    ok = ok &&
         call(f, id, "choria_provision", "restart",
              json_pack("{s:s,s:i}", "token", "t0k", "splay", 1), 10000, &r, &err) == CH_OK &&
         r.statuscode == 0;
    ch_rpc_result_clear(&r);
    return ok;
}

typedef struct {
    fixture *f;
    char **ids;
    size_t n;
    int worker;
    size_t failed;
} work;

static void *worker(void *arg)
{
    work *w = arg;
    for (size_t i = (size_t)w->worker; i < w->n; i += WORKERS)
        if (!provision_node(w->f, w->ids[i]))
            w->failed++;
    return NULL;
}

static json_t *read_summary(fixture *f)
{
    int ws = 0;
    ch_error err;
    CHT_CHECK(cht_proc_wait(f->fleet, 30000, &ws, &err), &err);
    assert_int_equal(WEXITSTATUS(ws), 0);
    char *text = NULL;
    size_t len = 0;
    CHT_CHECK(ch_read_file(f->summary, 64 * 1024 * 1024, &text, &len, &err), &err);
    json_t *j = ch_json_parse(text, len, 64 * 1024 * 1024, 16, &err);
    free(text);
    assert_non_null(j);
    return j;
}

static long jint(json_t *j, const char *key)
{
    return (long)json_integer_value(json_object_get(j, key));
}

/* Counts lifecycle events by "<type>/<component>" until quiet for 1 s. */
static void count_events(fixture *f, int *startup_prov, int *provisioned, int *shutdown,
                         int *startup_server)
{
    natsMsg *m = NULL;
    while (natsSubscription_NextMsg(&m, f->events, 1000) == NATS_OK) {
        ch_lifecycle_event *ev = NULL;
        if (ch_lifecycle_parse(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &ev, NULL) ==
            CH_OK) {
            bool prov = strcmp(ev->component, "provision_mode_server") == 0;
            *startup_prov += ev->type == CH_LIFECYCLE_STARTUP && prov;
            *startup_server += ev->type == CH_LIFECYCLE_STARTUP && !prov;
            *provisioned += ev->type == CH_LIFECYCLE_PROVISIONED;
            *shutdown += ev->type == CH_LIFECYCLE_SHUTDOWN;
        }
        ch_lifecycle_event_free(ev);
        natsMsg_Destroy(m);
    }
}

static void every_node_is_discovered_and_provisioned_exactly_once(void **state)
{
    fixture *f = *state;
    const char *extra[] = {"--token", "t0k", "--exit-when-provisioned", "--connections", "2", NULL};
    start_fleet(f, "300", extra);
    char **ids = NULL;
    size_t n = discover(f, &ids);
    assert_int_equal(n, 300);

    pthread_t threads[WORKERS];
    work w[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        w[i] = (work){.f = f, .ids = ids, .n = n, .worker = i};
        pthread_create(&threads[i], NULL, worker, &w[i]);
    }
    size_t failed = 0;
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(threads[i], NULL);
        failed += w[i].failed;
    }
    assert_int_equal(failed, 0);

    json_t *s = read_summary(f);
    assert_int_equal(jint(s, "nodes"), 300);
    assert_int_equal(jint(s, "provisioned"), 300);
    assert_int_equal(jint(s, "configure_calls"), 300);
    assert_int_equal(jint(s, "nodes_configured_more_than_once"), 0);
    assert_int_equal(jint(s, "nodes_with_several_callers"), 0);
    json_t *first = json_array_get(json_object_get(s, "per_node"), 0);
    assert_int_equal(jint(json_object_get(first, "callers"), CALLERID), 1);
    json_decref(s);

    int startup_prov = 0, provisioned = 0, shutdown = 0, startup_server = 0;
    count_events(f, &startup_prov, &provisioned, &shutdown, &startup_server);
    assert_int_equal(startup_prov, 300);
    assert_int_equal(provisioned, 300);
    assert_int_equal(shutdown, 300);
    assert_int_equal(startup_server, 300);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

static void provisioned_nodes_leave_the_provisioning_collective(void **state)
{
    fixture *f = *state;
    const char *extra[] = {"--duration", "20", NULL};
    start_fleet(f, "5", extra);
    char **ids = NULL;
    assert_int_equal(discover(f, &ids), 5);
    assert_true(provision_node(f, ids[0]));
    sleep(3); /* the restart splay is 2 s */
    assert_int_equal(discover(f, NULL), 4);
    ch_rpc_result r = {0};
    ch_error err;
    assert_int_equal(call(f, ids[0], "rpcutil", "ping", NULL, 2000, &r, &err), CH_ERR_NOT_FOUND);
    assert_true(r.no_responders);
    ch_rpc_result_clear(&r);
    for (int i = 0; i < 5; i++)
        free(ids[i]);
    free(ids);
}

static void vanished_nodes_get_no_responders_at_once(void **state)
{
    fixture *f = *state;
    const char *extra[] = {"--vanish", "100", "--duration", "20", NULL};
    start_fleet(f, "3", extra);
    char **ids = NULL;
    assert_int_equal(discover(f, &ids), 3);
    ch_rpc_result r = {0};
    ch_error err;
    /* The first provisioning call is where it vanishes: no answer at all. */
    assert_int_equal(call(f, ids[0], "choria_provision", "jwt", NULL, 500, &r, &err),
                     CH_ERR_TIMEOUT);
    ch_rpc_result_clear(&r);
    int64_t t0 = ch_now_mono_ms();
    assert_int_equal(call(f, ids[0], "rpcutil", "ping", NULL, 5000, &r, &err), CH_ERR_NOT_FOUND);
    assert_true(r.no_responders);
    assert_in_range(ch_now_mono_ms() - t0, 0, 999);
    ch_rpc_result_clear(&r);
    for (int i = 0; i < 3; i++)
        free(ids[i]);
    free(ids);
}

static void injected_errors_and_drops_are_seen_by_the_caller(void **state)
{
    fixture *f = *state;
    const char *extra[] = {"--error", "100", "--duration", "20", NULL};
    start_fleet(f, "2", extra);
    ch_rpc_result r = {0};
    ch_error err;
    assert_int_equal(call(f, "n1.fleet.local", "rpcutil", "ping", NULL, 5000, &r, &err), CH_OK);
    assert_int_equal(r.statuscode, 5);
    assert_string_equal(r.statusmsg, "fleet: injected failure");
    ch_rpc_result_clear(&r);
    cht_proc_free(f->fleet);

    const char *drop[] = {"--drop", "100", "--duration", "20", NULL};
    start_fleet(f, "2", drop);
    assert_int_equal(call(f, "n2.fleet.local", "rpcutil", "ping", NULL, 500, &r, &err),
                     CH_ERR_TIMEOUT);
    ch_rpc_result_clear(&r);
}

static void delayed_replies_arrive_late(void **state)
{
    fixture *f = *state;
    const char *extra[] = {"--delay", "100", "--delay-ms", "700", "--duration", "20", NULL};
    start_fleet(f, "1", extra);
    ch_rpc_result r = {0};
    ch_error err;
    int64_t t0 = ch_now_mono_ms();
    assert_int_equal(call(f, "n1.fleet.local", "rpcutil", "ping", NULL, 5000, &r, &err), CH_OK);
    assert_in_range(ch_now_mono_ms() - t0, 650, INT64_MAX);
    ch_rpc_result_clear(&r);
}

static void wrong_token_is_refused(void **state)
{
    fixture *f = *state;
    const char *extra[] = {"--token", "t0k", "--duration", "20", NULL};
    start_fleet(f, "1", extra);
    ch_rpc_result r = {0};
    ch_error err;
    assert_int_equal(call(f, "n1.fleet.local", "choria_provision", "jwt",
                          json_pack("{s:s}", "token", "wrong"), 5000, &r, &err),
                     CH_OK);
    assert_int_equal(r.statuscode, 1);
    assert_string_equal(r.statusmsg, "Incorrect provision token supplied");
    ch_rpc_result_clear(&r);
}

/* --no-sync leaves out the fsyncs, not the files: configure still installs each node's
 * configuration in its state directory. */
static void with_no_sync_configure_still_writes_the_node_config(void **state)
{
    fixture *f = *state;
    char dir[320], conf[400];
    snprintf(dir, sizeof(dir), "%s/state", f->dir);
    const char *extra[] = {"--token", "t0k",        "--no-sync", "--state-dir",
                           dir,       "--duration", "20",        NULL};
    start_fleet(f, "2", extra);
    assert_true(provision_node(f, "n2.fleet.local"));
    snprintf(conf, sizeof(conf), "%s/n2.fleet.local/server.conf", dir);
    char *text = NULL;
    size_t len = 0;
    ch_error err;
    CHT_CHECK(ch_read_file(conf, 65536, &text, &len, &err), &err);
    assert_non_null(strstr(text, "\nidentity=n2.fleet.local\n"));
    assert_non_null(strstr(text, "\nplugin.choria.server.provision=false\n"));
    free(text);
}

/* Milliseconds from now until id answers "no responders" (polled every 20 ms, up to 10 s). */
static int64_t until_gone(fixture *f, const char *id, int64_t t0)
{
    while (ch_now_mono_ms() - t0 < 10000) {
        ch_rpc_result r = {0};
        ch_error err;
        ch_status st = call(f, id, "rpcutil", "ping", NULL, 2000, &r, &err);
        bool gone = st == CH_ERR_NOT_FOUND && r.no_responders;
        ch_rpc_result_clear(&r);
        if (gone)
            return ch_now_mono_ms() - t0;
        usleep(20000);
    }
    return INT64_MAX;
}

/* A restart (splay 1: 2 s) finishes when it is due and not before, each node on its own
 * time, whatever order the restarts were asked in. */
static void restarts_finish_when_due_in_their_own_order(void **state)
{
    fixture *f = *state;
    const char *extra[] = {"--token", "t0k", "--duration", "30", NULL};
    start_fleet(f, "3", extra);
    const char *ids[] = {"n3.fleet.local", "n1.fleet.local", "n2.fleet.local"};
    int64_t asked[3];
    for (int i = 0; i < 3; i++) {
        assert_true(provision_node(f, ids[i]));
        asked[i] = ch_now_mono_ms();
        usleep(500000);
    }
    for (int i = 0; i < 3; i++)
        assert_in_range(until_gone(f, ids[i], asked[i]), 1900, 3000);
}

/* The broker's client connections named fleet-<i> (the fleet's), and how many of them are
 * TLS 1.2 or later. */
static void fleet_connections(fixture *f, int *all, int *tls)
{
    char *body = NULL;
    int status = 0;
    ch_error err;
    CHT_CHECK(cht_http_get(cht_broker_http_port(f->broker), "/connz?limit=1000", 5000, &status,
                           &body, &err),
              &err);
    assert_int_equal(status, 200);
    json_t *j = ch_json_parse(body, strlen(body), CHT_HTTP_MAX, 16, &err);
    free(body);
    assert_non_null(j);
    size_t i;
    json_t *c;
    *all = *tls = 0;
    json_array_foreach(json_object_get(j, "connections"), i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *version = json_string_value(json_object_get(c, "tls_version"));
        if (name == NULL || strncmp(name, "fleet-", 6) != 0)
            continue;
        (*all)++;
        *tls += version != NULL && (strcmp(version, "1.2") == 0 || strcmp(version, "1.3") == 0);
    }
    json_decref(j);
}

/* --tls on a nats:// URL: the fleet gets into a broker that requires TLS without a client
 * certificate and without trusting the broker's self-signed certificate, and is provisioned
 * through it. */
static void with_tls_the_fleet_connects_as_provisioning_nodes_do(void **state)
{
    fixture *f = *state;
    const char *extra[] = {"--tls",         "--token", "t0k", "--exit-when-provisioned",
                           "--connections", "2",       NULL};
    spawn_fleet(f, "20", extra);
    char *line = ready_line(f);
    assert_non_null(strstr(line, "on 2 connection(s) over anonymous TLS"));
    free(line);
    int all = 0, tls = 0;
    fleet_connections(f, &all, &tls); /* each with its connection for broadcast replies */
    assert_int_equal(all, 4);
    assert_int_equal(tls, 4);

    char **ids = NULL;
    size_t n = discover(f, &ids);
    assert_int_equal(n, 20);
    for (size_t i = 0; i < n; i++) {
        assert_true(provision_node(f, ids[i]));
        free(ids[i]);
    }
    free(ids);
    json_t *s = read_summary(f);
    assert_int_equal(jint(s, "provisioned"), 20);
    json_decref(s);
}

/* Runs the fleet until it exits by itself (within 20 s); returns its exit code. */
static int fleet_exit_code(fixture *f, const char *const *extra)
{
    spawn_fleet(f, "2", extra);
    int ws = 0;
    ch_error err;
    CHT_CHECK(cht_proc_wait(f->fleet, 20000, &ws, &err), &err);
    assert_true(WIFEXITED(ws));
    return WEXITSTATUS(ws);
}

/* Without --tls the fleet does not get in: nats.c answers the broker's TLS requirement with a
 * handshake that checks the certificate, which is self-signed here. So the test above proves
 * the flag, and that the flag skips the check as provisioning nodes do. */
static void without_tls_the_fleet_does_not_get_into_the_tls_broker(void **state)
{
    fixture *f = *state;
    const char *extra[] = {"--duration", "20", NULL};
    assert_int_equal(fleet_exit_code(f, extra), 1);
    const char *log = cht_proc_stderr(f->fleet);
    printf("without --tls: %s", log);
    assert_non_null(strstr(log, "cannot connect to nats://127.0.0.1:"));
    assert_non_null(strstr(log, "certificate"));
}

/* With --tls the fleet refuses a broker that offers no TLS, as provisioning nodes do. */
static void with_tls_a_plain_broker_is_refused(void **state)
{
    fixture *f = *state;
    const char *extra[] = {"--tls", "--duration", "20", NULL};
    assert_int_equal(fleet_exit_code(f, extra), 1);
    const char *log = cht_proc_stderr(f->fleet);
    printf("--tls, plain broker: %s", log);
    assert_non_null(strstr(log, "cannot connect to nats://127.0.0.1:"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(every_node_is_discovered_and_provisioned_exactly_once),
        T(provisioned_nodes_leave_the_provisioning_collective),
        T(vanished_nodes_get_no_responders_at_once),
        T(injected_errors_and_drops_are_seen_by_the_caller),
        T(delayed_replies_arrive_late),
        T(wrong_token_is_refused),
        T(with_no_sync_configure_still_writes_the_node_config),
        T(restarts_finish_when_due_in_their_own_order),
        T(with_tls_a_plain_broker_is_refused),
        cmocka_unit_test_setup_teardown(with_tls_the_fleet_connects_as_provisioning_nodes_do,
                                        setup_tls, teardown),
        cmocka_unit_test_setup_teardown(without_tls_the_fleet_does_not_get_into_the_tls_broker,
                                        setup_tls, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
