/* `choria broker run`: the supervised nats-server with Choria's accounts. A real provisioning-
 * mode server and a provisioner with leader_election work through it end to end; nodes are
 * confined to their subjects and cannot touch the election bucket; a wrong provisioner
 * password is refused; SIGTERM stops the broker with status 0. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/leader.h"
#include "choria/util.h"
#include "harness.h"

typedef struct {
    cht_proc *broker, *provisioner, *server;
    char dir[256], bin[512], url[64];
    int client_port, stats_port, monitor_port;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ch_error err;
    if (cht_temp_dir("broker-test", f->dir, sizeof(f->dir), NULL) != CH_OK ||
        cht_bin_path("choria", f->bin, sizeof(f->bin), NULL) != CH_OK)
        return -1;
    f->client_port = cht_free_port();
    f->stats_port = cht_free_port();
    snprintf(f->url, sizeof(f->url), "nats://127.0.0.1:%d", f->client_port);
    char conf[300];
    snprintf(conf, sizeof(conf), "%s/broker.conf", f->dir);
    CHT_CHECK(
        cht_write_file(conf, &err,
                       "identity = b1\nplugin.choria.network.listen_address = 127.0.0.1\n"
                       "plugin.choria.network.client_port = %d\nplugin.choria.stats_port = %d\n"
                       "plugin.choria.network.stream.store = %s/js\n"
                       "plugin.choria.network.provisioning.client_password = provpw\n"
                       "plugin.choria.network.provisioning.node_password = nodepw\n"
                       "plugin.choria.network.stream.leader_election_ttl = 10s\n",
                       f->client_port, f->stats_port, f->dir),
        &err);
    const char *argv[] = {f->bin, "broker", "run", "--config", conf, NULL};
    cht_proc_opts o = {.argv = argv};
    if (cht_proc_spawn(&o, &f->broker, NULL) != CH_OK)
        return -1;
    char *line = NULL;
    /* the broker logs on stderr; wait for its ready line there */
    for (int i = 0; i < 100 && strstr(cht_proc_stderr(f->broker), "ready: election") == NULL; i++)
        usleep(100000);
    free(line);
    if (strstr(cht_proc_stderr(f->broker), "ready: election") == NULL) {
        fprintf(stderr, "%s\n", cht_proc_stderr(f->broker));
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_proc_free(f->server);
    cht_proc_free(f->provisioner);
    cht_proc_free(f->broker);
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

static natsStatus connect_as(fixture *f, const char *user, const char *password,
                             natsConnection **nc)
{
    natsOptions *o = NULL;
    natsOptions_Create(&o);
    natsOptions_SetURL(o, f->url);
    natsOptions_SetUserInfo(o, user, password);
    natsOptions_SetTimeout(o, 2000);
    natsOptions_SetMaxReconnect(o, 0);
    natsStatus s = natsConnection_Connect(nc, o);
    natsOptions_Destroy(o);
    return s;
}

/* Started without waiting: the test waits for the node to be provisioned. */
static void start_provisioner(fixture *f)
{
    char client[300], yaml[1024], helper[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria-demo-helper", helper, sizeof(helper), &err), &err);
    snprintf(client, sizeof(client),
             "identity = prov.example.net\nplugin.choria.middleware_hosts = %s\n", f->url);
    snprintf(yaml, sizeof(yaml),
             "workers: 2\nsite: br\nhelper: %s\ntoken: t\nbroker_provisioning_password: provpw\n"
             "leader_election: true\nleader_election_api_prefix: $JS.API\n",
             helper);
    cht_provisioner_opts o = {
        .dir = f->dir, .config = yaml, .client_config = client, .no_wait = true};
    CHT_CHECK(cht_provisioner_start(&o, &f->provisioner, &f->monitor_port, &err), &err);
}

static double metric(fixture *f, const char *series)
{
    return cht_metric(f->monitor_port, series);
}

static void a_node_is_provisioned_through_the_broker_by_the_elected_provisioner(void **state)
{
    fixture *f = *state;
    int status = 0;
    assert_int_equal(cht_http_get(f->stats_port, "/healthz", 2000, &status, NULL, NULL), CH_OK);
    assert_int_equal(status, 200);
    start_provisioner(f);

    /* The node's JWT carries the provisioning account credentials (chusr/chpwd). */
    CHT_SH("openssl genrsa -out %s/k.pem 2048 2>/dev/null", f->dir);
    CHT_SH("%s jwt provisioning %s/p.jwt %s/k.pem --token t --urls 127.0.0.1:%d --username "
           "provisioning --password nodepw >/dev/null",
           f->bin, f->dir, f->dir, f->client_port);
    char sdir[300], conf[400], jwt[300];
    snprintf(sdir, sizeof(sdir), "%s/server", f->dir);
    mkdir(sdir, 0700);
    snprintf(conf, sizeof(conf), "%s/server.conf", sdir);
    snprintf(jwt, sizeof(jwt), "%s/p.jwt", f->dir);
    ch_error err;
    CHT_CHECK(
        cht_write_file(
            conf, &err,
            "identity = n1.example.net\nplugin.choria.server.provision = true\n" PLAIN_PROVISIONING
            "\n"),
        &err);
    const char *argv[] = {f->bin, "server", "run", "--config", conf, "--provisioning-jwt",
                          jwt,    NULL};
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->server, &err), &err);
    for (int i = 0; i < 300 && metric(f, "choria_provisioner_provisioned{site=\"br\"}") != 1; i++)
        usleep(100000);
    if (metric(f, "choria_provisioner_provisioned{site=\"br\"}") != 1)
        fail_msg("not provisioned; provisioner: %s\nbroker: %s", cht_proc_stderr(f->provisioner),
                 cht_proc_stderr(f->broker));
    assert_float_equal(metric(f, "choria_election_leader{election=\"provisioner\","
                                 "identity=\"prov.example.net\"}"),
                       1, 0);
    assert_null(strstr(cht_proc_stderr(f->broker), "Violation"));
}

static void nodes_are_confined_and_a_wrong_password_is_refused(void **state)
{
    fixture *f = *state;
    natsConnection *nc = NULL;
    ch_error err;
    assert_int_not_equal(connect_as(f, "provisioner", "wrong", &nc), NATS_OK);
    assert_int_equal(connect_as(f, "provisioning", "nodepw", &nc), NATS_OK);
    /* Each refused operation is reported by the broker as a permissions violation. */
    natsConnection_PublishString(nc, "choria.broadcast.agent.rpcutil", "x");
    natsConnection_PublishString(nc, "$KV.CHORIA_LEADER_ELECTION.provisioner", "evil");
    natsConnection_PublishString(nc, "$JS.API.STREAM.INFO.KV_CHORIA_LEADER_ELECTION", "");
    natsSubscription *sub = NULL;
    natsConnection_SubscribeSync(&sub, nc, ">");
    natsConnection_FlushTimeout(nc, 2000);
    usleep(300000);
    const char *log = cht_proc_stderr(f->broker);
    assert_non_null(strstr(log, "Publish Violation - User \"provisioning\", Subject "
                                "\"choria.broadcast.agent.rpcutil\""));
    assert_non_null(strstr(log, "Subject \"$KV.CHORIA_LEADER_ELECTION.provisioner\""));
    assert_non_null(strstr(log, "Subject \"$JS.API.STREAM.INFO.KV_CHORIA_LEADER_ELECTION\""));
    assert_non_null(strstr(log, "Subscription Violation - User \"provisioning\", Subject \">\""));
    /* `choria broker waiting` lists the node, not the provisioner. */
    natsConnection *pc = NULL;
    assert_int_equal(connect_as(f, "provisioner", "provpw", &pc), NATS_OK);
    char cmd[1024], out[300], *text = NULL;
    size_t len = 0;
    snprintf(out, sizeof(out), "%s/waiting.txt", f->dir);
    snprintf(cmd, sizeof(cmd), "%s broker waiting --port %d > %s", f->bin, f->stats_port, out);
    assert_int_equal(system(cmd), 0);
    CHT_CHECK(ch_read_file(out, 65536, &text, &len, &err), &err);
    assert_non_null(strstr(text, "1 connection(s) waiting for provisioning"));
    assert_non_null(strstr(text, "127.0.0.1:"));
    free(text);
    natsConnection_Destroy(pc);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);

    /* SIGTERM reaches nats-server and the broker exits 0. */
    int ws = 0;
    CHT_CHECK(cht_proc_signal(f->broker, SIGTERM, &err), &err);
    CHT_CHECK(cht_proc_wait(f->broker, 10000, &ws, &err), &err);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

/* Three brokers on one machine from three configuration files form a JetStream cluster with a
 * 3-replica election bucket; the leader among three provisioners survives kill -9 of a broker
 * and keeps provisioning a fleet. */
static void three_brokers_form_a_cluster_and_survive_losing_one(void **state)
{
    fixture *f = *state;
    ch_error err;
    int client[3], stats[3], peer[3];
    cht_proc *brokers[3] = {0}, *provs[3] = {0}, *fleet = NULL;
    for (int i = 0; i < 3; i++)
        client[i] = cht_free_port(), stats[i] = cht_free_port(), peer[i] = cht_free_port();
    for (int i = 0; i < 3; i++) {
        char conf[300];
        snprintf(conf, sizeof(conf), "%s/c%d.conf", f->dir, i);
        CHT_CHECK(cht_write_file(
                      conf, &err,
                      "identity = broker%d.example.net\n"
                      "plugin.choria.network.listen_address = 127.0.0.1\n"
                      "plugin.choria.network.client_port = %d\nplugin.choria.stats_port = %d\n"
                      "plugin.choria.network.peer_port = %d\n"
                      "plugin.choria.network.peers = nats://127.0.0.1:%d, nats://127.0.0.1:%d, "
                      "nats://127.0.0.1:%d\n"
                      "plugin.choria.network.stream.store = %s/js%d\n"
                      "plugin.choria.network.provisioning.client_password = provpw\n"
                      "plugin.choria.network.provisioning.node_password = nodepw\n"
                      "plugin.choria.network.stream.leader_election_ttl = 5s\n",
                      i + 1, client[i], stats[i], peer[i], peer[0], peer[1], peer[2], f->dir, i),
                  &err);
        const char *argv[] = {f->bin, "broker", "run", "--config", conf, NULL};
        cht_proc_opts o = {.argv = argv};
        CHT_CHECK(cht_proc_spawn(&o, &brokers[i], &err), &err);
    }
    for (int t = 0; t < 300; t++) {
        int ready = 0;
        for (int i = 0; i < 3; i++)
            ready += strstr(cht_proc_stderr(brokers[i]), "ready: election") != NULL;
        if (ready == 3)
            break;
        usleep(100000);
    }
    for (int i = 0; i < 3; i++)
        if (strstr(cht_proc_stderr(brokers[i]), "ready: election") == NULL)
            fail_msg("broker %d not ready: %s", i + 1, cht_proc_stderr(brokers[i]));

    /* The bucket has three replicas on the three brokers. */
    char urls[256], view[1200], out[300];
    snprintf(urls, sizeof(urls), "nats://127.0.0.1:%d,nats://127.0.0.1:%d,nats://127.0.0.1:%d",
             client[0], client[1], client[2]);
    snprintf(out, sizeof(out), "%s/view.txt", f->dir);
    snprintf(view, sizeof(view),
             "%s election view --server nats://provisioner:provpw@127.0.0.1:%d > %s 2>&1", f->bin,
             client[1], out);
    assert_int_equal(system(view), 0);
    char *text = NULL;
    size_t len = 0;
    CHT_CHECK(ch_read_file(out, 65536, &text, &len, &err), &err);
    if (strstr(text, "      Replicas: 3 on hosts broker") == NULL)
        fail_msg("election view:\n%s", text);
    free(text);

    /* Three provisioners on the cluster, a fleet, then kill -9 of one broker. */
    for (int i = 0; i < 3; i++) {
        cht_member_opts m = {.dir = f->dir,
                             .index = i,
                             .site = "c",
                             .urls = urls,
                             .provisioning_password = "provpw",
                             .no_wait = true};
        CHT_CHECK(cht_provisioner_start_member(&m, &provs[i], NULL, &err), &err);
    }
    char fleet_url[128], summary[300];
    snprintf(fleet_url, sizeof(fleet_url), "nats://provisioning:nodepw@127.0.0.1:%d", client[2]);
    snprintf(summary, sizeof(summary), "%s/summary.json", f->dir);
    const char *fargv[] = {f->bin,
                           "tool",
                           "fleet",
                           "--server",
                           fleet_url,
                           "--count",
                           "300",
                           "--quiet",
                           "--exit-when-provisioned",
                           "--summary-json",
                           summary,
                           NULL};
    cht_proc_opts fo = {.argv = fargv};
    CHT_CHECK(cht_proc_spawn(&fo, &fleet, &err), &err);
    usleep(1500000);
    CHT_CHECK(cht_proc_signal(brokers[0], SIGKILL, &err), &err);
    int ws = 0;
    if (cht_proc_wait(fleet, 120000, &ws, &err) != CH_OK)
        fail_msg("fleet not provisioned after losing a broker");
    CHT_CHECK(ch_read_file(summary, 1 << 20, &text, &len, &err), &err);
    assert_non_null(strstr(text, "\"provisioned\":300"));
    assert_non_null(strstr(text, "\"nodes_with_several_callers\":0"));
    free(text);
    cht_proc_free(fleet);
    for (int i = 0; i < 3; i++) {
        cht_proc_free(provs[i]);
        cht_proc_free(brokers[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            a_node_is_provisioned_through_the_broker_by_the_elected_provisioner, setup, teardown),
        cmocka_unit_test_setup_teardown(nodes_are_confined_and_a_wrong_password_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(three_brokers_form_a_cluster_and_survive_losing_one, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
