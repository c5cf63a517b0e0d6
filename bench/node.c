/* Node-side figures (issue #3): resident memory of one idle `choria server run` in
 * provisioning mode, memory per simulated node in `choria tool fleet`, and discovery replies
 * per second from a fleet, next to the floor: the same number of prebuilt replies pushed
 * through the same broker to the same kind of subscription by one bare nats.c publisher. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "choria/rpc.h"
#include "choria/util.h"
#include "harness.h"

static void die(const char *what, const ch_error *err)
{
    fprintf(stderr, "bench: %s: %s\n", what, err != NULL ? err->msg : "");
    exit(1);
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *fp = fopen(path, "r");
    long kib = -1;
    while (fp != NULL && fgets(line, sizeof(line), fp) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (fp != NULL)
        fclose(fp);
    return kib;
}

static cht_proc *spawn(const char *const *argv)
{
    cht_proc_opts o = {.argv = argv};
    cht_proc *p = NULL;
    ch_error err;
    if (cht_proc_spawn(&o, &p, &err) != CH_OK)
        die("spawn", &err);
    return p;
}

static long idle_server_rss(const char *choria, cht_broker *b, const char *dir)
{
    char conf[512];
    snprintf(conf, sizeof(conf), "%s/server.conf", dir);
    FILE *fp = fopen(conf, "w");
    fprintf(fp,
            "identity = idle.bench.local\nplugin.choria.server.provision = true\n"
            "plugin.choria.middleware_hosts = 127.0.0.1:%d\n",
            cht_broker_port(b));
    fclose(fp);
    char jwt[512];
    snprintf(jwt, sizeof(jwt), "%s/none.jwt", dir);
    const char *argv[] = {choria, "server", "run", "--config", conf, "--provisioning-jwt",
                          jwt,    NULL};
    cht_proc *p = spawn(argv);
    sleep(2);
    long kib = rss_kib(cht_proc_pid(p));
    cht_proc_free(p);
    return kib;
}

static cht_proc *start_fleet(const char *choria, cht_broker *b, const char *count)
{
    const char *argv[] = {choria,    "tool", "fleet",   "--server", cht_broker_url(b),
                          "--count", count,  "--quiet", NULL};
    cht_proc *p = spawn(argv);
    char *line = NULL;
    if (cht_proc_read_until(p, "nodes in provisioning mode", 120000, &line) != CHT_READ_LINE)
        die("the fleet did not start", NULL);
    free(line);
    sleep(1);
    return p;
}

static double discovery_rate(ch_rpc_client *c, size_t expect, int64_t *last_ms)
{
    ch_rpc_discover_opts o = {.timeout_ms = 30000, .window_ms = 1000};
    ch_rpc_discovery d = {0};
    ch_error err;
    if (ch_rpc_discover(c, &o, &d, &err) != CH_OK)
        die("discover", &err);
    if (d.count != expect)
        fprintf(stderr, "bench: discovered %zu of %zu\n", d.count, expect);
    *last_ms = d.last_reply_ms;
    double rate = d.last_reply_ms > 0 ? d.count * 1000.0 / (double)d.last_reply_ms : 0;
    ch_rpc_discovery_clear(&d);
    return rate;
}

/* The floor: n replies of the fleet's size published by one bare nats.c connection to
 * the reply subject of a subscription like the client's; time until all arrived. */
static double floor_rate(cht_broker *b, int n)
{
    natsConnection *pub = NULL, *sub_nc = NULL;
    natsSubscription *sub = NULL;
    ch_error err;
    if (cht_nats_connect(cht_broker_url(b), 5000, &pub, &err) != CH_OK ||
        cht_nats_connect(cht_broker_url(b), 5000, &sub_nc, &err) != CH_OK)
        die("connect", &err);
    natsConnection_SubscribeSync(&sub, sub_nc, "provisioning.reply.floor.>");
    natsSubscription_SetPendingLimits(sub, 10000000, 1 << 30);
    natsConnection_FlushTimeout(sub_nc, 5000);
    char body[600];
    memset(body, 'x', sizeof(body));
    int64_t t0 = ch_now_mono_ms();
    for (int i = 0; i < n; i++)
        natsConnection_Publish(pub, "provisioning.reply.floor.x", body, (int)sizeof(body));
    natsConnection_FlushTimeout(pub, 10000);
    int got = 0;
    while (got < n && ch_now_mono_ms() - t0 < 30000) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, 1000) == NATS_OK) {
            natsMsg_Destroy(m);
            got++;
        }
    }
    int64_t el = ch_now_mono_ms() - t0;
    natsSubscription_Destroy(sub);
    natsConnection_Close(pub);
    natsConnection_Destroy(pub);
    natsConnection_Close(sub_nc);
    natsConnection_Destroy(sub_nc);
    return got * 1000.0 / (double)(el > 0 ? el : 1);
}

/* One RPC after another to one node, as a worker calls its node: microseconds per call. */
static double sequential_call_us(ch_rpc_client *c, const char *identity, int n)
{
    ch_error err;
    int64_t t0 = ch_now_mono_ms();
    for (int i = 0; i < n; i++) {
        ch_rpc_result res;
        if (ch_rpc_call(c, identity, "rpcutil", "ping", NULL, 5000, &res, &err) != CH_OK)
            die("sequential call", &err);
        ch_rpc_result_clear(&res);
    }
    return (double)(ch_now_mono_ms() - t0) * 1000.0 / n;
}

static void on_echo(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)sub;
    (void)closure;
    if (natsMsg_GetReply(m) != NULL)
        natsConnection_Publish(nc, natsMsg_GetReply(m), natsMsg_GetData(m),
                               natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
}

static natsConnection *connect_asap(cht_broker *b)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    ch_error err;
    if (cht_nats_options(cht_broker_url(b), 5000, &o, &err) != CH_OK)
        die("options", &err);
    natsOptions_SetSendAsap(o, true);
    natsStatus s = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK)
        die("connect", NULL);
    return nc;
}

/* Its floor: bare nats.c request/reply of a request's size through the same broker, both
 * ends on SendAsap connections so neither waits for nats.c's 1 ms publish batching. */
static double bare_request_us(cht_broker *b, int n)
{
    natsConnection *req = connect_asap(b), *echo = connect_asap(b);
    natsSubscription *sub = NULL;
    natsConnection_Subscribe(&sub, echo, "bench.echo", on_echo, NULL);
    natsConnection_FlushTimeout(echo, 5000);
    char body[900];
    memset(body, 'x', sizeof(body));
    int64_t t0 = ch_now_mono_ms();
    for (int i = 0; i < n; i++) {
        natsMsg *reply = NULL;
        if (natsConnection_Request(&reply, req, "bench.echo", body, (int)sizeof(body), 5000) !=
            NATS_OK)
            die("bare request", NULL);
        natsMsg_Destroy(reply);
    }
    double us = (double)(ch_now_mono_ms() - t0) * 1000.0 / n;
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(req);
    natsConnection_Destroy(echo);
    return us;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median3(double v[3])
{
    qsort(v, 3, sizeof(double), cmp_double);
    return v[1];
}

int main(int argc, char **argv)
{
    const char *count = argc > 1 ? argv[1] : "10000";
    int n = atoi(count);
    char choria[512];
    ch_error err;
    if (n < 2 || cht_bin_path("choria", choria, sizeof(choria), &err) != CH_OK)
        die("usage: bench_node [NODES] (with CH_BIN_DIR set)", &err);
    cht_broker_opts bo;
    cht_broker_opts_init(&bo);
    bo.jetstream = false;
    cht_broker *b = NULL;
    if (cht_broker_start(&bo, &b, &err) != CH_OK)
        die("broker", &err);

    long server_kib = idle_server_rss(choria, b, cht_broker_dir(b));
    natsConnection *nc = NULL;
    ch_rpc_client *c = NULL;
    if (cht_nats_connect(cht_broker_url(b), 5000, &nc, &err) != CH_OK ||
        ch_rpc_client_new(nc, "provisioning", "bench.local", "choria=bench", 60, &c, &err) != CH_OK)
        die("client", &err);

    cht_proc *one = start_fleet(choria, b, "1");
    long one_kib = rss_kib(cht_proc_pid(one));
    ch_rpc_discover_opts dopts = {.timeout_ms = 5000, .window_ms = 300};
    ch_rpc_discovery found = {0};
    if (ch_rpc_discover(c, &dopts, &found, &err) != CH_OK || found.count != 1)
        die("discovering the one-node fleet", &err);
    double call_us[3], bare_us[3];
    for (int i = 0; i < 3; i++) {
        call_us[i] = sequential_call_us(c, found.identities[0], 2000);
        bare_us[i] = bare_request_us(b, 2000);
        printf("round %d: sequential rpcutil#ping %.0f us each, bare nats.c request %.0f us\n",
               i + 1, call_us[i], bare_us[i]);
    }
    ch_rpc_discovery_clear(&found);
    cht_proc_free(one);
    cht_proc *many = start_fleet(choria, b, count);
    long many_kib = rss_kib(cht_proc_pid(many));

    double rates[3], floors[3];
    int64_t last = 0;
    for (int i = 0; i < 3; i++) {
        rates[i] = discovery_rate(c, (size_t)n, &last);
        floors[i] = floor_rate(b, n);
        printf("round %d: discovery %.0f replies/s (last reply after %lld ms), floor %.0f/s\n",
               i + 1, rates[i], (long long)last, floors[i]);
    }
    double r = median3(rates), f = median3(floors);
    double call = median3(call_us), bare = median3(bare_us);
    printf("\n| figure | value | goal |\n|---|---|---|\n");
    printf("| idle `choria server run` (provisioning mode), resident | %.1f MiB | < 8 MiB |\n",
           server_kib / 1024.0);
    printf("| `choria tool fleet`, resident at 1 / %d nodes | %.1f / %.1f MiB | |\n", n,
           one_kib / 1024.0, many_kib / 1024.0);
    printf("| memory per simulated node | %.1f KiB | |\n",
           (double)(many_kib - one_kib) / (double)(n - 1));
    printf("| discovery replies/s from %d nodes (median of 3) | %.0f | |\n", n, r);
    printf("| floor: bare nats.c, %d prebuilt replies (median of 3) | %.0f | |\n", n, f);
    printf("| ratio discovery / floor | %.2f | |\n", f > 0 ? r / f : 0);
    printf("| sequential RPC to one node, per call (median of 3 × 2000) | %.0f us | |\n", call);
    printf("| floor: bare nats.c request/reply of 900 bytes | %.0f us | |\n", bare);
    printf("| ratio call / floor | %.2f | |\n", bare > 0 ? call / bare : 0);
    ch_rpc_client_free(c);
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
    cht_proc_free(many);
    cht_broker_free(b);
    return 0;
}
