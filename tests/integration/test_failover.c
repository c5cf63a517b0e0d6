/* Fail-over end to end (issue #5): three `choria broker run` brokers in a cluster, three
 * provisioners with leader_election, a 2,000-node fleet; while it is being provisioned the
 * leader is killed (-9), the next leader is stopped gracefully, the third is evicted with
 * `choria election evict`, and one broker is killed (-9). Every node ends provisioned; only
 * nodes caught by a hand-over may have seen a second caller, and the measured fail-over
 * times meet the goals (graceful and evict within 3 s, crash within TTL + 3 s). Nodes whose
 * RPCs died with the killed broker are retried at the next discovery (1 minute), so this test
 * takes about two minutes. */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/json.h"
#include "choria/util.h"
#include "harness.h"

#define N 3
#define TTL_S 5
#define NODES "2000"

typedef struct {
    cht_proc *broker[N], *prov[N], *fleet;
    int client[N], stats[N], peer[N], mport[N];
    char dir[256], bin[512], urls[256];
} fixture;

static void spawn(const char *const *argv, cht_proc **out)
{
    cht_proc_opts o = {.argv = argv};
    ch_error err;
    CHT_CHECK(cht_proc_spawn(&o, out, &err), &err);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (cht_temp_dir("failover-test", f->dir, sizeof(f->dir), NULL) != CH_OK ||
        cht_bin_path("choria", f->bin, sizeof(f->bin), NULL) != CH_OK)
        return -1;
    for (int i = 0; i < N; i++)
        f->client[i] = cht_free_port(), f->stats[i] = cht_free_port(), f->peer[i] = cht_free_port();
    snprintf(f->urls, sizeof(f->urls),
             "nats://127.0.0.1:%d,nats://127.0.0.1:%d,nats://127.0.0.1:%d", f->client[0],
             f->client[1], f->client[2]);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_proc_free(f->fleet);
    for (int i = 0; i < N; i++)
        cht_proc_free(f->prov[i]);
    for (int i = 0; i < N; i++)
        cht_proc_free(f->broker[i]);
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

static void start_brokers(fixture *f)
{
    ch_error err;
    for (int i = 0; i < N; i++) {
        char conf[300];
        snprintf(conf, sizeof(conf), "%s/b%d.conf", f->dir, i);
        CHT_CHECK(
            cht_write_file(conf, &err,
                           "identity = broker%d.example.net\n"
                           "plugin.choria.network.listen_address = 127.0.0.1\n"
                           "plugin.choria.network.client_port = %d\nplugin.choria.stats_port = %d\n"
                           "plugin.choria.network.peer_port = %d\n"
                           "plugin.choria.network.peers = nats://127.0.0.1:%d,nats://127.0.0.1:%d,"
                           "nats://127.0.0.1:%d\n"
                           "plugin.choria.network.stream.store = %s/js%d\n"
                           "plugin.choria.network.provisioning.client_password = provpw\n"
                           "plugin.choria.network.provisioning.node_password = nodepw\n"
                           "plugin.choria.network.stream.leader_election_ttl = %ds\n",
                           i + 1, f->client[i], f->stats[i], f->peer[i], f->peer[0], f->peer[1],
                           f->peer[2], f->dir, i, TTL_S),
            &err);
        const char *argv[] = {f->bin, "broker", "run", "--config", conf, NULL};
        spawn(argv, &f->broker[i]);
    }
    for (int t = 0; t < 300; t++) {
        int ready = 0;
        for (int i = 0; i < N; i++)
            ready += strstr(cht_proc_stderr(f->broker[i]), "ready: election") != NULL;
        if (ready == N)
            return;
        usleep(100000);
    }
    fail_msg("brokers not ready");
}

/* Started without waiting: the test waits for a leader. */
static void start_provisioners(fixture *f)
{
    ch_error err;
    for (int i = 0; i < N; i++) {
        cht_member_opts m = {.dir = f->dir,
                             .index = i,
                             .site = "f",
                             .workers = 8,
                             .urls = f->urls,
                             .provisioning_password = "provpw",
                             .no_wait = true};
        CHT_CHECK(cht_provisioner_start_member(&m, &f->prov[i], &f->mport[i], &err), &err);
    }
}

static double paused(fixture *f, int i)
{
    return f->prov[i] == NULL ? -1
                              : cht_metric(f->mport[i], "choria_provisioner_paused{site=\"f\"}");
}

/* The single running provisioner other than not, and how long it took to appear. */
static int wait_leader(fixture *f, int not, int64_t timeout_ms, int64_t *took)
{
    int64_t t0 = ch_now_mono_ms();
    while (ch_now_mono_ms() - t0 < timeout_ms) {
        int leaders = 0, who = -1;
        for (int i = 0; i < N; i++)
            if (paused(f, i) == 0)
                leaders++, who = i;
        if (leaders == 1 && who != not ) {
            *took = ch_now_mono_ms() - t0;
            return who;
        }
        usleep(20000);
    }
    return -1;
}

static void drop(fixture *f, int i, int sig)
{
    ch_error err;
    int ws = 0;
    CHT_CHECK(cht_proc_signal(f->prov[i], sig, &err), &err);
    cht_proc_wait(f->prov[i], 10000, &ws, &err);
    cht_proc_free(f->prov[i]);
    f->prov[i] = NULL;
}

static void fleet_survives_leader_crash_stop_evict_and_a_broker_crash(void **state)
{
    fixture *f = *state;
    start_brokers(f);
    start_provisioners(f);
    int64_t took = 0;
    int leader = wait_leader(f, -1, 20000, &took);
    assert_in_range(leader, 0, N - 1);

    char fleet_url[128], summary[300];
    snprintf(fleet_url, sizeof(fleet_url), "nats://provisioning:nodepw@127.0.0.1:%d", f->client[2]);
    snprintf(summary, sizeof(summary), "%s/summary.json", f->dir);
    const char *fargv[] = {f->bin,
                           "tool",
                           "fleet",
                           "--server",
                           fleet_url,
                           "--count",
                           NODES,
                           "--connections",
                           "2",
                           "--quiet",
                           "--exit-when-provisioned",
                           "--summary-json",
                           summary,
                           NULL};
    spawn(fargv, &f->fleet);
    usleep(500000);

    /* 1: kill -9 of the leader; its key expires at the TTL. */
    int64_t t0 = ch_now_mono_ms();
    drop(f, leader, SIGKILL);
    leader = wait_leader(f, leader, (TTL_S + 10) * 1000, &took);
    int64_t crash = ch_now_mono_ms() - t0;
    assert_in_range(leader, 0, N - 1);
    usleep(300000);

    /* 2: graceful stop of the next leader: its key is deleted at once. */
    t0 = ch_now_mono_ms();
    drop(f, leader, SIGTERM);
    leader = wait_leader(f, leader, 10000, &took);
    int64_t graceful = ch_now_mono_ms() - t0;
    assert_in_range(leader, 0, N - 1);

    /* 3: evict the last one; it steps down and campaigns again. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s election evict provisioner --force --server nats://provisioner:provpw@127.0.0.1:%d"
             " >/dev/null",
             f->bin, f->client[1]);
    t0 = ch_now_mono_ms();
    assert_int_equal(system(cmd), 0);
    usleep(50000);
    leader = wait_leader(f, -1, 10000, &took);
    int64_t evict = ch_now_mono_ms() - t0;
    assert_in_range(leader, 0, N - 1);

    /* 4: kill -9 of a broker the provisioner is not using on purpose (any will do). */
    ch_error err;
    CHT_CHECK(cht_proc_signal(f->broker[0], SIGKILL, &err), &err);

    int ws = 0;
    if (cht_proc_wait(f->fleet, 180000, &ws, &err) != CH_OK)
        fail_msg("the fleet was not provisioned");
    char *text = NULL;
    size_t len = 0;
    CHT_CHECK(ch_read_file(summary, 64 << 20, &text, &len, &err), &err);
    json_t *s = ch_json_parse(text, len, 64 << 20, 16, &err);
    free(text);
    assert_non_null(s);
    long provisioned = (long)json_integer_value(json_object_get(s, "provisioned"));
    long several = (long)json_integer_value(json_object_get(s, "nodes_with_several_callers"));
    long interleaved = (long)json_integer_value(json_object_get(s, "nodes_interleaved"));
    json_decref(s);
    fprintf(stderr,
            "fail-over: crash %lld ms (TTL %d s), graceful %lld ms, evict %lld ms; %ld "
            "provisioned, %ld nodes saw a second caller, %ld between a configure and its "
            "restart\n",
            (long long)crash, TTL_S, (long long)graceful, (long long)evict, provisioned, several,
            interleaved);
    assert_int_equal(provisioned, 2000);
    /* Re-provisioning after a hand-over is expected (a node still restarting when the new
     * leader discovers it: the 60 s hold list lives in the old leader's memory, as upstream).
     * Two provisioners working on a node at once would show as a configure from one between
     * the other's configure and restart; only the pipelines cut short by the leaders that
     * died or were evicted (8 workers each) may look like that. */
    assert_in_range(several, interleaved, LONG_MAX);
    assert_in_range(interleaved, 0, 3 * 8);
    assert_in_range(crash, 0, (TTL_S + 3) * 1000);
    assert_in_range(graceful, 0, 3000);
    assert_in_range(evict, 0, 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fleet_survives_leader_crash_stop_evict_and_a_broker_crash,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
