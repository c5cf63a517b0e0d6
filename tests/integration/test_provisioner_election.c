/* Three choria-provisioner processes with leader_election on one JetStream broker: exactly one
 * works, the fleet is provisioned once by one caller, a graceful stop hands over within 3 s
 * and a kill -9 within the bucket TTL + 3 s, and the new leader provisions the next wave. */
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/json.h"
#include "choria/leader.h"
#include "choria/util.h"
#include "harness.h"

#define TTL_S 5
#define N 3

typedef struct {
    cht_broker *broker;
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    cht_proc *prov[N], *fleet;
    int port[N];
    char dir[256];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (cht_temp_dir("elect-test", f->dir, sizeof(f->dir), NULL) != CH_OK ||
        cht_broker_start(NULL, &f->broker, NULL) != CH_OK ||
        cht_nats_connect(cht_broker_url(f->broker), 5000, &f->nc, NULL) != CH_OK)
        return -1;
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = CH_LEADER_DEFAULT_BUCKET;
    kc.History = 1;
    kc.TTL = (int64_t)TTL_S * 1000000000;
    if (natsConnection_JetStream(&f->js, f->nc, NULL) != NATS_OK ||
        js_CreateKeyValue(&f->kv, f->js, &kc) != NATS_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_proc_free(f->fleet);
    for (int i = 0; i < N; i++)
        cht_proc_free(f->prov[i]);
    kvStore_Destroy(f->kv);
    jsCtx_Destroy(f->js);
    natsConnection_Close(f->nc);
    natsConnection_Destroy(f->nc);
    cht_broker_free(f->broker);
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

/* Provisioner i, once it serves /healthz. */
static void start_provisioner(fixture *f, int i)
{
    ch_error err;
    cht_member_opts m = {
        .dir = f->dir, .index = i, .site = "ha", .urls = cht_broker_url(f->broker)};
    CHT_CHECK(cht_provisioner_start_member(&m, &f->prov[i], &f->port[i], &err), &err);
}

/* choria_provisioner_paused of provisioner i, -1 when it does not answer. */
static double paused(fixture *f, int i)
{
    return f->prov[i] == NULL ? -1
                              : cht_metric(f->port[i], "choria_provisioner_paused{site=\"ha\"}");
}

/* The single running (unpaused) provisioner, waiting up to timeout_ms; -1 if none or two. */
static int wait_single_leader(fixture *f, int64_t timeout_ms, int64_t *took)
{
    int64_t t0 = ch_now_mono_ms();
    while (ch_now_mono_ms() - t0 < timeout_ms) {
        int leaders = 0, who = -1;
        for (int i = 0; i < N; i++)
            if (paused(f, i) == 0)
                leaders++, who = i;
        if (leaders == 1) {
            *took = ch_now_mono_ms() - t0;
            return who;
        }
        assert_in_range(leaders, 0, 1);
        usleep(50000);
    }
    return -1;
}

static json_t *run_fleet(fixture *f, const char *prefix)
{
    char bin[512], summary[300];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    snprintf(summary, sizeof(summary), "%s/summary-%s.json", f->dir, prefix);
    const char *argv[] = {
        bin,     "tool",     "fleet", "--server", cht_broker_url(f->broker), "--count",
        "200",   "--prefix", prefix,  "--quiet",  "--exit-when-provisioned", "--summary-json",
        summary, NULL};
    cht_proc_free(f->fleet);
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->fleet, &err), &err);
    int ws = 0;
    if (cht_proc_wait(f->fleet, 90000, &ws, &err) != CH_OK)
        fail_msg("fleet %s was not provisioned", prefix);
    char *text = NULL;
    size_t len = 0;
    CHT_CHECK(ch_read_file(summary, 16 * 1024 * 1024, &text, &len, &err), &err);
    json_t *j = ch_json_parse(text, len, 16 * 1024 * 1024, 16, &err);
    free(text);
    assert_non_null(j);
    return j;
}

static void check_summary(json_t *s)
{
    assert_int_equal(json_integer_value(json_object_get(s, "provisioned")), 200);
    assert_int_equal(json_integer_value(json_object_get(s, "nodes_with_several_callers")), 0);
    json_decref(s);
}

static void one_leader_provisions_and_fail_over_is_fast(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < N; i++)
        start_provisioner(f, i);
    int64_t took = 0;
    int leader = wait_single_leader(f, 10000, &took);
    assert_in_range(leader, 0, N - 1);
    check_summary(run_fleet(f, "a"));

    /* Graceful stop of the leader: its key is deleted, a standby leads within 3 s. */
    ch_error err;
    int64_t t0 = ch_now_mono_ms();
    CHT_CHECK(cht_proc_signal(f->prov[leader], SIGTERM, &err), &err);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(f->prov[leader], 5000, &ws, &err), &err);
    cht_proc_free(f->prov[leader]);
    f->prov[leader] = NULL;
    leader = wait_single_leader(f, 10000, &took);
    took = ch_now_mono_ms() - t0;
    fprintf(stderr, "fail-over after a graceful stop: %lld ms\n", (long long)took);
    assert_in_range(leader, 0, N - 1);
    assert_in_range(took, 0, 3000);

    /* kill -9 of the new leader: its key lives until the TTL, then the last one leads. */
    t0 = ch_now_mono_ms();
    CHT_CHECK(cht_proc_signal(f->prov[leader], SIGKILL, &err), &err);
    cht_proc_wait(f->prov[leader], 5000, &ws, &err);
    cht_proc_free(f->prov[leader]);
    f->prov[leader] = NULL;
    leader = wait_single_leader(f, (TTL_S + 10) * 1000, &took);
    took = ch_now_mono_ms() - t0;
    fprintf(stderr, "fail-over after kill -9: %lld ms (TTL %d s)\n", (long long)took, TTL_S);
    assert_in_range(leader, 0, N - 1);
    assert_in_range(took, 0, (TTL_S + 3) * 1000);
    check_summary(run_fleet(f, "b"));
}

static void a_missing_election_bucket_stops_the_start_with_a_clear_error(void **state)
{
    fixture *f = *state;
    assert_int_equal(js_DeleteKeyValue(f->js, CH_LEADER_DEFAULT_BUCKET), NATS_OK);
    char client[300];
    ch_error err;
    snprintf(client, sizeof(client),
             "identity = p.example.net\nplugin.choria.middleware_hosts = %s\n",
             cht_broker_url(f->broker));
    cht_provisioner_opts o = {
        .dir = f->dir,
        .config = "helper: /bin/true\nleader_election: true\nleader_election_api_prefix: $JS.API\n",
        .client_config = client,
        .no_monitor = true};
    CHT_CHECK(cht_provisioner_start(&o, &f->prov[0], NULL, &err), &err);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(f->prov[0], 10000, &ws, &err), &err);
    assert_true(WIFEXITED(ws));
    assert_int_not_equal(WEXITSTATUS(ws), 0);
    assert_non_null(strstr(cht_proc_stderr(f->prov[0]),
                           "leader_election: cannot access KV Bucket CHORIA_LEADER_ELECTION"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_leader_provisions_and_fail_over_is_fast, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_missing_election_bucket_stops_the_start_with_a_clear_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
