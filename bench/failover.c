/* Fail-over of choria-provisioner's leader election (issue #5): three real provisioner
 * processes with leader_election on one JetStream broker; for each kind of leader loss (crash
 * = kill -9, graceful stop = SIGTERM, `choria election evict provisioner --force`) the time
 * until exactly one other provisioner is unpaused, measured RUNS times, next to the bucket TTL.
 * The provisioner's own paused gauge on /metrics is the signal, polled every 10 ms. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "choria/leader.h"
#include "choria/util.h"
#include "harness.h"

#define N 3
#define MAX_RUNS 50

typedef struct {
    cht_broker *broker;
    cht_proc *prov[N];
    int port[N];
    char dir[256], bin[512], helper[512], choria[512];
} bench;

static void die(const char *what)
{
    fprintf(stderr, "bench_failover: %s\n", what);
    exit(1);
}

static void start(bench *b, int i)
{
    char client[300], conf[300];
    snprintf(client, sizeof(client), "%s/client%d.conf", b->dir, i);
    snprintf(conf, sizeof(conf), "%s/p%d.yaml", b->dir, i);
    FILE *fp = fopen(client, "w");
    fprintf(fp, "identity = p%d.bench.local\nplugin.choria.middleware_hosts = %s\n", i,
            cht_broker_url(b->broker));
    fclose(fp);
    b->port[i] = cht_free_port();
    fp = fopen(conf, "w");
    fprintf(fp,
            "workers: 2\nsite: bench\nmonitor_port: %d\nmonitor_bind: 127.0.0.1\nhelper: %s\n"
            "leader_election: true\nleader_election_api_prefix: $JS.API\nlogfile: discard\n",
            b->port[i], b->helper);
    fclose(fp);
    const char *argv[] = {b->bin, "run", "--config", conf, "--choria-config", client, NULL};
    cht_proc_opts o = {.argv = argv};
    if (cht_proc_spawn(&o, &b->prov[i], NULL) != CH_OK)
        die("cannot start a provisioner");
    for (int t = 0; t < 100; t++) {
        int status = 0;
        if (cht_http_get(b->port[i], "/healthz", 500, &status, NULL, NULL) == CH_OK &&
            status == 200)
            return;
        usleep(50000);
    }
    die("a provisioner did not start");
}

static double paused(bench *b, int i)
{
    return b->prov[i] == NULL ? -1
                              : cht_metric(b->port[i], "choria_provisioner_paused{site=\"bench\"}");
}

/* The single unpaused provisioner other than not (-1 for any), within timeout_ms. */
static int wait_leader(bench *b, int not, int64_t timeout_ms)
{
    int64_t t0 = ch_now_mono_ms();
    while (ch_now_mono_ms() - t0 < timeout_ms) {
        int leaders = 0, who = -1;
        for (int i = 0; i < N; i++)
            if (paused(b, i) == 0)
                leaders++, who = i;
        if (leaders == 1 && who != not )
            return who;
        usleep(10000);
    }
    return -1;
}

typedef enum { CRASH, GRACEFUL, EVICT } kind;
static const char *const KIND_NAMES[] = {"crash (kill -9)", "graceful stop (SIGTERM)",
                                         "choria election evict --force"};

static int64_t one_run(bench *b, kind k)
{
    int leader = wait_leader(b, -1, 120000);
    if (leader < 0)
        die("no leader");
    int64_t t0 = ch_now_mono_ms();
    if (k == EVICT) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "%s election evict provisioner --force --server %s >/dev/null",
                 b->choria, cht_broker_url(b->broker));
        if (system(cmd) != 0)
            die("evict failed");
    } else {
        cht_proc_signal(b->prov[leader], k == CRASH ? SIGKILL : SIGTERM, NULL);
    }
    int next = wait_leader(b, k == EVICT ? -1 : leader, 120000);
    int64_t took = ch_now_mono_ms() - t0;
    if (next < 0)
        die("no new leader");
    if (k != EVICT) {
        cht_proc_wait(b->prov[leader], 10000, NULL, NULL);
        cht_proc_free(b->prov[leader]);
        b->prov[leader] = NULL;
        start(b, leader);
    }
    return took;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5, ttl_s = argc > 2 ? atoi(argv[2]) : 10;
    if (runs < 1 || runs > MAX_RUNS || ttl_s < 1 || ttl_s > 3600)
        die("usage: bench_failover [RUNS [TTL_SECONDS]] (with CH_BIN_DIR set)");
    bench b = {0};
    snprintf(b.dir, sizeof(b.dir), "/tmp/ch-failover-XXXXXX");
    if (mkdtemp(b.dir) == NULL || cht_bin_path("choria-provisioner", b.bin, sizeof(b.bin), NULL) ||
        cht_bin_path("choria-demo-helper", b.helper, sizeof(b.helper), NULL) ||
        cht_bin_path("choria", b.choria, sizeof(b.choria), NULL) ||
        cht_broker_start(NULL, &b.broker, NULL) != CH_OK)
        die("set-up failed (CH_BIN_DIR?)");
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = CH_LEADER_DEFAULT_BUCKET;
    kc.History = 1;
    kc.TTL = (int64_t)ttl_s * 1000000000;
    if (cht_nats_connect(cht_broker_url(b.broker), 5000, &nc, NULL) != CH_OK ||
        natsConnection_JetStream(&js, nc, NULL) != NATS_OK ||
        js_CreateKeyValue(&kv, js, &kc) != NATS_OK)
        die("cannot create the election bucket");
    for (int i = 0; i < N; i++)
        start(&b, i);

    printf("| loss of the leader | runs | median | max | bucket TTL |\n|---|---|---|---|---|\n");
    for (kind k = CRASH; k <= EVICT; k++) {
        int64_t t[MAX_RUNS];
        for (int r = 0; r < runs; r++)
            t[r] = one_run(&b, k);
        qsort(t, (size_t)runs, sizeof(t[0]), cmp64);
        printf("| %s | %d | %.2f s | %.2f s | %d s |\n", KIND_NAMES[k], runs,
               (double)t[runs / 2] / 1000.0, (double)t[runs - 1] / 1000.0, ttl_s);
        fflush(stdout);
    }
    for (int i = 0; i < N; i++)
        cht_proc_free(b.prov[i]);
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
    cht_broker_free(b.broker);
    cht_remove_tree(b.dir, NULL);
    return 0;
}
