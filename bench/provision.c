/* Provisioner figures (issue #4), all in one run so every speed is a ratio to floors measured
 * on the same machine at the same time:
 *   1. nodes provisioned per second by `choria-provisioner run` with the demo helper, for a
 *      simulated fleet of N1 and N2 nodes (fresh broker each);
 *   2. the floors: request/reply round trips per second through the broker with bare nats.c,
 *      and demo-helper runs per second through prov_helper_run; a node costs 4 round trips and
 *      one helper run, so the floor in nodes/s is min(reqrep / 4, spawns);
 *   3. resident memory of the provisioner with N3 nodes queued behind one slow worker;
 *   4. broadcast discovery (ch_rpc_discover, filter agent choria_provision, the 300 ms
 *      window) of those N3 nodes, median of 3.
 * Usage: bench_provision [N1 [N2 [N3]]] (defaults 1000 10000 50000), CH_BIN_DIR set;
 * BENCH_WORKERS overrides the provisioner's workers (default 4 x online CPUs). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helper.h"
#include "choria/json.h"
#include "choria/rpc.h"
#include "choria/util.h"
#include "harness.h"

#define TOKEN "bench-token"
#define SITE "{site=\"bench\"}"
#define FLOOR_MS 2000

static void die(const char *what, const ch_error *err)
{
    fprintf(stderr, "bench: %s%s%s\n", what, err != NULL ? ": " : "", err != NULL ? err->msg : "");
    exit(1);
}

static void write_file(const char *path, const char *fmt, ...)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        die(path, NULL);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(fp, fmt, ap);
    va_end(ap);
    fclose(fp);
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

/* CPU seconds of pid (user + system) and of its reaped children (the helpers). */
static void cpu_secs(pid_t pid, double *self, double *children)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    *self = *children = -1;
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return;
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut, st;
    long long cut, cst;
    double hz = (double)sysconf(_SC_CLK_TCK);
    if (p != NULL &&
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", &ut, &st,
               &cut, &cst) == 4) {
        *self = (double)(ut + st) / hz;
        *children = (double)(cut + cst) / hz;
    }
}

static cht_broker *broker(void)
{
    cht_broker_opts bo;
    cht_broker_opts_init(&bo);
    bo.jetstream = false;
    cht_broker *b = NULL;
    ch_error err;
    if (cht_broker_start(&bo, &b, &err) != CH_OK)
        die("broker", &err);
    return b;
}

static natsConnection *connect_asap(cht_broker *b)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    ch_error err;
    if (cht_nats_options(cht_broker_url(b), 5000, &o, &err) != CH_OK)
        die("nats options", &err);
    natsOptions_SetSendAsap(o, true);
    if (natsConnection_Connect(&nc, o) != NATS_OK)
        die("nats connect", NULL);
    natsOptions_Destroy(o);
    return nc;
}

static void close_nc(natsConnection *nc)
{
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
}

/* ---- the fleet ------------------------------------------------------------------------ */

static cht_proc *start_fleet(const char *choria, cht_broker *b, int count, bool exit_when_done)
{
    char n[16];
    snprintf(n, sizeof(n), "%d", count);
    const char *argv[] = {choria,
                          "tool",
                          "fleet",
                          "--server",
                          cht_broker_url(b),
                          "--count",
                          n,
                          "--token",
                          TOKEN,
                          "--connections",
                          "2",
                          "--quiet",
                          exit_when_done ? "--exit-when-provisioned" : NULL,
                          NULL};
    cht_proc_opts o = {.argv = argv};
    cht_proc *p = NULL;
    ch_error err;
    if (cht_proc_spawn(&o, &p, &err) != CH_OK)
        die("spawn fleet", &err);
    char *line = NULL;
    if (cht_proc_read_until(p, "nodes in provisioning mode", 120000, &line) != CHT_READ_LINE) {
        fprintf(stderr, "%s\n", cht_proc_stderr(p));
        die("the fleet did not start", NULL);
    }
    free(line);
    return p;
}

/* ---- the provisioner ------------------------------------------------------------------ */

typedef struct {
    cht_proc *proc;
    int port;
    char log[300];
} provisioner;

static void start_provisioner(provisioner *pv, cht_broker *b, const char *helper, int workers)
{
    char client[300], conf[300], bin[512];
    const char *dir = cht_broker_dir(b);
    snprintf(client, sizeof(client), "%s/client.conf", dir);
    snprintf(conf, sizeof(conf), "%s/provisioner.yaml", dir);
    snprintf(pv->log, sizeof(pv->log), "%s/provisioner.log", dir);
    write_file(client, "identity = provisioner.bench.local\nplugin.choria.middleware_hosts = %s\n",
               cht_broker_url(b));
    pv->port = cht_free_port();
    write_file(conf,
               "workers: %d\ninterval: 1m\nsite: bench\nmonitor_port: %d\n"
               "monitor_bind: 127.0.0.1\nhelper: %s\ntoken: %s\nlogfile: %s\n"
               "features:\n  jwt: false\n",
               workers, pv->port, helper, TOKEN, pv->log);
    ch_error err;
    if (cht_bin_path("choria-provisioner", bin, sizeof(bin), &err) != CH_OK)
        die("choria-provisioner", &err);
    const char *argv[] = {bin, "run", "--config", conf, "--choria-config", client, NULL};
    cht_proc_opts o = {.argv = argv};
    if (cht_proc_spawn(&o, &pv->proc, &err) != CH_OK)
        die("spawn provisioner", &err);
}

/* The value of one /metrics series; -1 when absent or /metrics does not answer. */
static double metric(const provisioner *pv, const char *series)
{
    int status = 0;
    char *text = NULL;
    if (cht_http_get(pv->port, "/metrics", 2000, &status, &text, NULL) != CH_OK || status != 200) {
        free(text);
        return -1;
    }
    double v = -1;
    size_t n = strlen(series);
    for (char *line = text; line != NULL && *line;) {
        char *next = strchr(line, '\n');
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            v = strtod(line + n + 1, NULL);
        line = next != NULL ? next + 1 : NULL;
    }
    free(text);
    return v;
}

/* Warnings and errors of the provisioner's log: counted, the first few printed. */
static void log_report(const provisioner *pv, const char *label)
{
    FILE *fp = fopen(pv->log, "r");
    char line[1024];
    int warn = 0, error = 0;
    while (fp != NULL && fgets(line, sizeof(line), fp) != NULL) {
        bool w = strstr(line, " warn ") != NULL, e = strstr(line, " error ") != NULL;
        warn += w;
        error += e;
        if ((w || e) && warn + error <= 5)
            printf("   log (%s): %s", label, line);
    }
    if (fp != NULL)
        fclose(fp);
    printf("   provisioner log (%s): %d warnings, %d errors\n", label, warn, error);
}

/* ---- 1. provisioning rate --------------------------------------------------------------- */

typedef struct {
    double rate;      /* nodes/s; 0 when not all were provisioned in time */
    double secs;      /* provisioner start to the last node counted */
    double errors;    /* provision_errors */
    double cpu_ms[4]; /* CPU ms per node: provisioner, helpers, fleet, broker */
} prov_result;

static prov_result provision_rate(const char *choria, const char *helper, int n, int workers)
{
    prov_result r = {0};
    cht_broker *b = broker();
    cht_proc *fleet = start_fleet(choria, b, n, true);
    provisioner pv = {0};
    int64_t limit = 30000 + (int64_t)n * 10; /* 10 ms a node: well below 100 nodes/s fails */
    double fleet0, broker0, unused;
    cpu_secs(cht_proc_pid(fleet), &fleet0, &unused);
    cpu_secs(cht_broker_pid(b), &broker0, &unused);
    int64_t t0 = ch_now_mono_ms(), t1 = 0;
    start_provisioner(&pv, b, helper, workers);
    /* Also the time to the first node and the longest stretch without progress (stalls). */
    double got = -1, last = 0;
    int64_t first = -1, progress = t0, stall = 0;
    while (ch_now_mono_ms() - t0 < limit && !cht_proc_exited(pv.proc)) {
        got = metric(&pv, "choria_provisioner_provisioned" SITE);
        int64_t now = ch_now_mono_ms();
        if (got > last) {
            if (first < 0)
                first = now - t0;
            else if (now - progress > stall)
                stall = now - progress;
            progress = now;
            last = got;
        }
        if (got >= n) {
            t1 = now;
            break;
        }
        usleep(50000);
    }
    r.errors = metric(&pv, "choria_provisioner_provision_errors" SITE);
    double prov_cpu, helper_cpu, fleet_cpu, broker_cpu;
    cpu_secs(cht_proc_pid(pv.proc), &prov_cpu, &helper_cpu);
    cpu_secs(cht_proc_pid(fleet), &fleet_cpu, &unused);
    cpu_secs(cht_broker_pid(b), &broker_cpu, &unused);
    if (t1 > 0) {
        r.secs = (double)(t1 - t0) / 1000.0;
        r.rate = n / r.secs;
    } else {
        fprintf(stderr, "bench: %d nodes: provisioned %g within %lld ms; stderr: %s\n", n, got,
                (long long)limit, cht_proc_stderr(pv.proc));
    }
    printf("%d nodes: %s %.0f nodes/s (%.2f s), provision_errors %g\n", n,
           t1 > 0 ? "provisioned at" : "NOT all provisioned,", r.rate, r.secs, r.errors);
    fleet_cpu -= fleet0;
    broker_cpu -= broker0;
    printf("   first node provisioned after %lld ms, longest stretch without progress %lld ms\n",
           (long long)first, (long long)stall);
    printf("   CPU ms per node: provisioner %.2f, its helpers %.2f, fleet %.2f, broker %.2f\n",
           prov_cpu * 1000 / n, helper_cpu * 1000 / n, fleet_cpu * 1000 / n, broker_cpu * 1000 / n);
    r.cpu_ms[0] = prov_cpu * 1000 / n;
    r.cpu_ms[1] = helper_cpu * 1000 / n;
    r.cpu_ms[2] = fleet_cpu * 1000 / n;
    r.cpu_ms[3] = broker_cpu * 1000 / n;
    log_report(&pv, "provisioning");
    cht_proc_free(pv.proc);
    cht_proc_free(fleet);
    cht_broker_free(b);
    return r;
}

/* ---- 2a. request/reply floor ------------------------------------------------------------ */

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    (void)closure;
    const char *reply = natsMsg_GetReply(msg);
    if (reply != NULL)
        natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
}

typedef struct {
    natsConnection *nc;
    int64_t until;
    long done;
} requester;

static void *request_loop(void *arg)
{
    requester *q = arg;
    char body[600];
    memset(body, 'x', sizeof(body));
    while (ch_now_mono_ms() < q->until) {
        natsMsg *m = NULL;
        if (natsConnection_Request(&m, q->nc, "bench.reqrep", body, (int)sizeof(body), 2000) ==
            NATS_OK)
            q->done++;
        natsMsg_Destroy(m);
    }
    return NULL;
}

/* Requests answered per second: one responder, k requester threads on one SendAsap
 * connection (as the provisioner's workers share one), 600-byte bodies. */
static double reqrep_floor(cht_broker *b, int k)
{
    natsConnection *resp = connect_asap(b), *req = connect_asap(b);
    natsSubscription *sub = NULL;
    if (natsConnection_Subscribe(&sub, resp, "bench.reqrep", on_request, NULL) != NATS_OK ||
        natsConnection_FlushTimeout(resp, 5000) != NATS_OK)
        die("responder subscribe", NULL);
    requester *qs = calloc((size_t)k, sizeof(*qs));
    pthread_t *th = calloc((size_t)k, sizeof(*th));
    int64_t t0 = ch_now_mono_ms();
    for (int i = 0; i < k; i++) {
        qs[i] = (requester){.nc = req, .until = t0 + FLOOR_MS};
        pthread_create(&th[i], NULL, request_loop, &qs[i]);
    }
    long total = 0;
    for (int i = 0; i < k; i++) {
        pthread_join(th[i], NULL);
        total += qs[i].done;
    }
    int64_t el = ch_now_mono_ms() - t0;
    free(qs);
    free(th);
    natsSubscription_Destroy(sub);
    close_nc(req);
    close_nc(resp);
    return total * 1000.0 / (double)(el > 0 ? el : 1);
}

/* ---- 2b. helper spawn floor ------------------------------------------------------------- */

typedef struct {
    const char *helper;
    const char *inventory;
    int64_t until;
    long done, failed;
} spawner;

static void *spawn_loop(void *arg)
{
    spawner *s = arg;
    prov_helper_input in = {.identity = "n1.fleet.local", .inventory = s->inventory};
    ch_process_run_opts o = {0};
    while (ch_now_mono_ms() < s->until) {
        prov_helper_reply *reply = NULL;
        ch_process_result res;
        if (prov_helper_run(s->helper, &in, &o, &reply, &res, NULL) == CH_OK && !reply->defer)
            s->done++;
        else
            s->failed++;
        prov_helper_reply_free(reply);
        ch_process_result_clear(&res);
    }
    return NULL;
}

static double spawn_floor(const char *helper, const char *inventory, int threads)
{
    spawner *ss = calloc((size_t)threads, sizeof(*ss));
    pthread_t *th = calloc((size_t)threads, sizeof(*th));
    int64_t t0 = ch_now_mono_ms();
    for (int i = 0; i < threads; i++) {
        ss[i] = (spawner){.helper = helper, .inventory = inventory, .until = t0 + FLOOR_MS};
        pthread_create(&th[i], NULL, spawn_loop, &ss[i]);
    }
    long total = 0, failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += ss[i].done;
        failed += ss[i].failed;
    }
    int64_t el = ch_now_mono_ms() - t0;
    if (failed > 0)
        fprintf(stderr, "bench: %ld helper runs failed\n", failed);
    free(ss);
    free(th);
    return total * 1000.0 / (double)(el > 0 ? el : 1);
}

/* The inventory a fleet node really answers, encoded as the provisioner hands it to the
 * helper, so the helper floor reads a request of the real size. */
static char *fleet_inventory(const char *choria, cht_broker *b)
{
    cht_proc *fleet = start_fleet(choria, b, 1, false);
    natsConnection *nc = connect_asap(b);
    ch_rpc_client_opts ro = {.nc = nc,
                             .collective = "provisioning",
                             .identity = "bench.local",
                             .callerid = "choria=bench",
                             .send_asap = true};
    ch_rpc_client *c = NULL;
    ch_rpc_result r = {0};
    ch_error err;
    if (ch_rpc_client_new_opts(&ro, &c, &err) != CH_OK ||
        ch_rpc_call(c, "n1.fleet.local", "rpcutil", "inventory", NULL, 5000, &r, &err) != CH_OK ||
        r.data == NULL)
        die("rpcutil#inventory from the fleet", &err);
    char *text = json_dumps(r.data, JSON_COMPACT | JSON_SORT_KEYS);
    ch_rpc_result_clear(&r);
    ch_rpc_client_free(c);
    close_nc(nc);
    cht_proc_free(fleet);
    return text;
}

/* ---- 3 + 4. memory with a full queue, discovery of the same fleet ----------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

typedef struct {
    long rss_kib;
    double queued, discovered, secs_to_queue;
    int64_t last_ms[3], total_ms[3];
    size_t found[3];
} big_result;

static void big_fleet(const char *choria, int n, big_result *r)
{
    cht_broker *b = broker();
    cht_proc *fleet = start_fleet(choria, b, n, false);

    char helper[300];
    snprintf(helper, sizeof(helper), "%s/slow-helper", cht_broker_dir(b));
    write_file(helper, "#!/bin/sh\nsleep 5\n");
    chmod(helper, 0755);
    provisioner pv = {0};
    int64_t t0 = ch_now_mono_ms();
    start_provisioner(&pv, b, helper, 1);
    while (ch_now_mono_ms() - t0 < 60000 && !cht_proc_exited(pv.proc)) {
        r->queued = metric(&pv, "choria_provisioner_work_queue_entries" SITE);
        r->discovered = metric(&pv, "choria_provisioner_discovered" SITE);
        if (r->queued >= n * 0.98 || r->discovered >= n)
            break;
        usleep(50000);
    }
    r->secs_to_queue = (double)(ch_now_mono_ms() - t0) / 1000.0;
    usleep(200000); /* let the last queued entries land before reading the memory */
    r->rss_kib = rss_kib(cht_proc_pid(pv.proc));
    r->queued = metric(&pv, "choria_provisioner_work_queue_entries" SITE);
    printf("%d nodes queued: provisioner resident %.1f MiB (queue %g, discovered %g, after "
           "%.2f s)\n",
           n, r->rss_kib / 1024.0, r->queued, r->discovered, r->secs_to_queue);
    log_report(&pv, "queue");
    cht_proc_free(pv.proc); /* so it does not load the broker during discovery */

    natsConnection *nc = connect_asap(b);
    ch_rpc_client_opts ro = {.nc = nc,
                             .collective = "provisioning",
                             .identity = "bench.local",
                             .callerid = "choria=bench",
                             .send_asap = true};
    ch_rpc_client *c = NULL;
    ch_error err;
    if (ch_rpc_client_new_opts(&ro, &c, &err) != CH_OK)
        die("rpc client", &err);
    static const char *const agents[] = {"choria_provision"};
    ch_filter filter = {.agents = agents, .n_agents = 1};
    for (int i = 0; i < 3; i++) {
        ch_rpc_discover_opts o = {.filter = &filter, .timeout_ms = 10000};
        ch_rpc_discovery d = {0};
        if (ch_rpc_discover(c, &o, &d, &err) != CH_OK)
            die("discover", &err);
        r->last_ms[i] = d.last_reply_ms;
        r->total_ms[i] = d.elapsed_ms;
        r->found[i] = d.count;
        printf("discovery %d: %zu of %d nodes, last reply after %lld ms, done after %lld ms\n",
               i + 1, d.count, n, (long long)d.last_reply_ms, (long long)d.elapsed_ms);
        ch_rpc_discovery_clear(&d);
    }
    ch_rpc_client_free(c);
    close_nc(nc);
    /* A 50,000-node fleet takes more than the harness's 5 s grace to stop on SIGTERM; its
     * summary is not needed here. */
    cht_proc_signal(fleet, SIGKILL, NULL);
    cht_proc_free(fleet);
    cht_broker_free(b);
}

/* ---- main ------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    int n1 = argc > 1 ? atoi(argv[1]) : 1000, n2 = argc > 2 ? atoi(argv[2]) : 10000,
        n3 = argc > 3 ? atoi(argv[3]) : 50000;
    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    int workers = getenv("BENCH_WORKERS") != NULL ? atoi(getenv("BENCH_WORKERS")) : 4 * cpus;
    char choria[512], helper[512];
    ch_error err;
    if (n1 < 1 || n2 < 1 || n3 < 1 || workers < 1 ||
        cht_bin_path("choria", choria, sizeof(choria), &err) != CH_OK)
        die("usage: bench_provision [N1 [N2 [N3]]] (with CH_BIN_DIR set)", NULL);
    /* The static demo helper by default; BENCH_HELPER=shell for the shell script. */
    const char *src = getenv("CH_SOURCE_DIR"), *which = getenv("BENCH_HELPER");
    bool shell = which != NULL && strcmp(which, "shell") == 0;
    if (shell || cht_bin_path("choria-demo-helper", helper, sizeof(helper), &err) != CH_OK)
        snprintf(helper, sizeof(helper), "%s/contrib/helpers/demo-helper",
                 src != NULL ? src : CH_BENCH_SOURCE_DIR);
    if (access(helper, X_OK) != 0)
        die(helper, NULL);
    printf("online CPUs %d, provisioner workers %d, helper %s\n", cpus, workers, helper);

    /* Floors first, on a broker of their own. */
    cht_broker *b = broker();
    char *inventory = fleet_inventory(choria, b);
    double reqrep = reqrep_floor(b, workers);
    cht_broker_free(b);
    double spawns = spawn_floor(helper, inventory, cpus);
    printf("floor: %.0f request/replies/s (%d requesters), %.0f helper runs/s (%d threads, "
           "%zu-byte inventory)\n",
           reqrep, workers, spawns, cpus, strlen(inventory));
    free(inventory);
    double floor = reqrep / 4 < spawns ? reqrep / 4 : spawns;

    prov_result r1 = provision_rate(choria, helper, n1, workers);
    prov_result r2 = provision_rate(choria, helper, n2, workers);
    big_result big = {0};
    big_fleet(choria, n3, &big);
    qsort(big.last_ms, 3, sizeof(int64_t), cmp_i64);
    qsort(big.total_ms, 3, sizeof(int64_t), cmp_i64);

    printf("\n| figure | value | floor in the same run | ratio | goal |\n|---|---|---|---|---|\n");
    printf("| request/reply through the broker, bare nats.c, %d requesters | %.0f/s | | | |\n",
           workers, reqrep);
    printf("| demo-helper runs through prov_helper_run, %d threads | %.0f/s | | | |\n", cpus,
           spawns);
    printf("| provisioned, %d nodes, %d workers | %.0f nodes/s (%.2f s) | %.0f nodes/s | %.2f | "
           "≥ 0.5 |\n",
           n1, workers, r1.rate, r1.secs, floor, floor > 0 ? r1.rate / floor : 0);
    printf("| provisioned, %d nodes, %d workers | %.0f nodes/s (%.2f s) | %.0f nodes/s | %.2f | "
           "≥ 1,000 nodes/s, ≥ 0.5 |\n",
           n2, workers, r2.rate, r2.secs, floor, floor > 0 ? r2.rate / floor : 0);
    printf("| CPU ms per node at %d nodes: provisioner / helpers / fleet / broker | %.2f / %.2f / "
           "%.2f / %.2f | | | |\n",
           n2, r2.cpu_ms[0], r2.cpu_ms[1], r2.cpu_ms[2], r2.cpu_ms[3]);
    printf(
        "| provisioner resident, %d nodes queued (%g in the queue) | %.1f MiB | | | < 64 MiB |\n",
        n3, big.queued, big.rss_kib / 1024.0);
    printf("| discovery of %d nodes, last reply (median of 3) | %lld ms | | | < 1 s |\n", n3,
           (long long)big.last_ms[1]);
    printf("| discovery of %d nodes, with the 300 ms window (median of 3) | %lld ms | | | |\n", n3,
           (long long)big.total_ms[1]);
    bool ok = r1.rate > 0 && r2.rate > 0 && big.found[0] == (size_t)n3 &&
              big.found[1] == (size_t)n3 && big.found[2] == (size_t)n3;
    return ok ? 0 : 1;
}
