/* Provisioner figures (issue #4), all in one run so every speed is a ratio to floors measured
 * on the same machine at the same time:
 *   1. nodes provisioned per second by `choria-provisioner run` with the demo helper, for a
 *      simulated fleet of N1 and N2 nodes (fresh broker each; N1 the median of the plain
 *      rounds of 5.);
 *   2. the floors: request/reply round trips per second through the broker with bare nats.c,
 *      demo-helper runs per second through prov_helper_run (exec) and through a pool of
 *      persistent demo helpers (prov_helper_pool_run); a node costs 3 round trips of the
 *      provisioner (inventory, configure, restart) and one helper run, so the floor in nodes/s
 *      is min(reqrep / 3, helper runs) for each helper mode;
 *   3. resident memory of the provisioner with N3 nodes queued behind one slow worker;
 *   4. broadcast discovery (ch_rpc_discover, filter agent choria_provision, the 300 ms
 *      window) of those N3 nodes, median of 3;
 *   5. secured (issue #11): N1 nodes plain and secured, alternating, BENCH_SECURED_ROUNDS
 *      (default 3) of each, medians. Secured is the same nats-server with a TLS block (the
 *      certificates of tests/data/security/mk-pki.sh), the fleet over anonymous TLS (--tls,
 *      as provisioning-mode nodes), the provisioner with the file security provider (mutual
 *      TLS, every request x509-signed); nodes/s and CPU per node as ratios to plain;
 *   6. helper modes (issue #12): N1 (in the rounds of 5.) and N2 nodes with helper_mode exec and
 *      persistent (the static demo helper with --persistent), CPU per node of every process.
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
#include "helper_pool.h"
#include "choria/json.h"
#include "choria/rpc.h"
#include "choria/util.h"
#include "harness.h"

#define TOKEN "bench-token"
#define SITE "{site=\"bench\"}"
#define FLOOR_MS 2000
#define MAX_ROUNDS 9 /* BENCH_SECURED_ROUNDS, plain and secured runs of N1 each */

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

/* CPU seconds of the children pid still has (persistent helpers are reaped only at stop). */
static double live_children_secs(pid_t pid)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "cat /proc/%d/task/*/children 2>/dev/null", (int)pid);
    FILE *fp = popen(cmd, "r");
    int child;
    double sum = 0;
    while (fp != NULL && fscanf(fp, "%d", &child) == 1) {
        double self, reaped;
        cpu_secs(child, &self, &reaped);
        sum += (self > 0 ? self : 0) + (reaped > 0 ? reaped : 0);
    }
    if (fp != NULL)
        pclose(fp);
    return sum;
}

/* The secured variant's certificates: a directory made by mk-pki.sh, or NULL for plain. */
typedef struct {
    const char *pki;
} security;

/* A broker on 127.0.0.1, plain or (sec->pki) requiring TLS of every client with the PKI's
 * broker certificate, asking for no client certificate (as `choria broker run` serves
 * provisioning nodes). Everything else is the same, so the two compare. */
static cht_broker *broker_with(const security *sec)
{
    char extra[1024];
    cht_broker_opts bo;
    cht_broker_opts_init(&bo);
    bo.jetstream = false;
    if (sec != NULL && sec->pki != NULL) {
        snprintf(extra, sizeof(extra),
                 "tls {\n  cert_file: \"%s/broker.pem\"\n  key_file: \"%s/broker.key\"\n"
                 "  timeout: 2\n}\n",
                 sec->pki, sec->pki);
        bo.extra_config = extra;
    }
    cht_broker *b = NULL;
    ch_error err;
    if (cht_broker_start(&bo, &b, &err) != CH_OK)
        die("broker", &err);
    return b;
}

static cht_broker *broker(void)
{
    return broker_with(NULL);
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

static cht_proc *start_fleet_tls(const char *choria, cht_broker *b, int count, bool exit_when_done,
                                 bool tls)
{
    char n[16], state[400];
    snprintf(n, sizeof(n), "%d", count);
    /* In the broker's directory, which goes with it: a fleet killed with SIGKILL (the
     * 50,000-node one) cannot remove a state directory of its own. --no-sync: the fleet stands
     * in for thousands of machines, each with its own disk; two fsyncs per configure on this
     * one disk would measure the disk, not the provisioner. */
    snprintf(state, sizeof(state), "%s/fleet-state", cht_broker_dir(b));
    const char *argv[20] = {choria,    "tool",    "fleet",       "--server", cht_broker_url(b),
                            "--count", n,         "--token",     TOKEN,      "--connections",
                            "2",       "--quiet", "--state-dir", state,      "--no-sync"};
    int k = 15;
    if (tls)
        argv[k++] = "--tls";
    if (exit_when_done)
        argv[k++] = "--exit-when-provisioned";
    argv[k] = NULL;
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
    if (tls && strstr(line, "over anonymous TLS") == NULL)
        die("the fleet did not say it uses anonymous TLS", NULL);
    free(line);
    return p;
}

static cht_proc *start_fleet(const char *choria, cht_broker *b, int count, bool exit_when_done)
{
    return start_fleet_tls(choria, b, count, exit_when_done, false);
}

/* ---- the provisioner ------------------------------------------------------------------ */

typedef struct {
    cht_proc *proc;
    int port;
    char log[300];
} provisioner;

/* The provisioner's client configuration: plain, or with the file security provider and the
 * PKI's provisioner certificate (mutual TLS, the broker checked against the CA, every request
 * signed), as tests/integration/test_security.c runs it. */
static void write_client_config(const char *path, cht_broker *b, const security *sec)
{
    if (sec == NULL || sec->pki == NULL) {
        write_file(path,
                   "identity = provisioner.bench.local\nplugin.choria.middleware_hosts = %s\n",
                   cht_broker_url(b));
        return;
    }
    write_file(path,
               "identity = provisioner.mcollective\nplugin.choria.middleware_hosts = %s\n"
               "plugin.security.provider = file\n"
               "plugin.security.file.certificate = %s/provisioner.pem\n"
               "plugin.security.file.key = %s/provisioner.key\n"
               "plugin.security.file.ca = %s/ca.pem\n",
               cht_broker_url(b), sec->pki, sec->pki, sec->pki);
}

/* helper_mode persistent: the same helper with --persistent. */
static void start_provisioner_with(provisioner *pv, cht_broker *b, const char *helper, int workers,
                                   const security *sec, bool persistent)
{
    char client[300], conf[300], bin[512];
    const char *dir = cht_broker_dir(b);
    snprintf(client, sizeof(client), "%s/client.conf", dir);
    snprintf(conf, sizeof(conf), "%s/provisioner.yaml", dir);
    snprintf(pv->log, sizeof(pv->log), "%s/provisioner.log", dir);
    write_client_config(client, b, sec);
    pv->port = cht_free_port();
    write_file(conf,
               "workers: %d\ninterval: 1m\nsite: bench\nmonitor_port: %d\n"
               "monitor_bind: 127.0.0.1\nhelper: %s%s\ntoken: %s\nlogfile: %s\n%s"
               "features:\n  jwt: false\n",
               workers, pv->port, helper, persistent ? " --persistent" : "", TOKEN, pv->log,
               persistent ? "helper_mode: persistent\n" : "");
    ch_error err;
    if (cht_bin_path("choria-provisioner", bin, sizeof(bin), &err) != CH_OK)
        die("choria-provisioner", &err);
    const char *argv[] = {bin, "run", "--config", conf, "--choria-config", client, NULL};
    const char *env[] = {"MCOLLECTIVE_CERTNAME=provisioner.mcollective", NULL};
    cht_proc_opts o = {.argv = argv, .env = sec != NULL && sec->pki != NULL ? env : NULL};
    if (cht_proc_spawn(&o, &pv->proc, &err) != CH_OK)
        die("spawn provisioner", &err);
}

static void start_provisioner(provisioner *pv, cht_broker *b, const char *helper, int workers)
{
    start_provisioner_with(pv, b, helper, workers, NULL, false);
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

/* True when a line of the provisioner's log holds needle. */
static bool log_has(const provisioner *pv, const char *needle)
{
    FILE *fp = fopen(pv->log, "r");
    char line[1024];
    bool found = false;
    while (!found && fp != NULL && fgets(line, sizeof(line), fp) != NULL)
        found = strstr(line, needle) != NULL;
    if (fp != NULL)
        fclose(fp);
    return found;
}

/* The secured run really is: every client connection of the broker TLS 1.2 or later, the
 * fleet's two and the provisioner's among them. Called once the first node is provisioned,
 * while all of them are connected. Dies otherwise. */
static void check_tls(cht_broker *b)
{
    int status = 0, all = 0, tls = 0;
    char *body = NULL;
    ch_error err;
    if (cht_http_get(cht_broker_http_port(b), "/connz?limit=1000", 5000, &status, &body, &err) !=
            CH_OK ||
        status != 200)
        die("the broker's /connz", NULL);
    json_t *j = ch_json_parse(body, strlen(body), CHT_HTTP_MAX, 16, &err);
    free(body);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(j, "connections"), i, c)
    {
        const char *v = json_string_value(json_object_get(c, "tls_version"));
        all++;
        tls += v != NULL && (strcmp(v, "1.2") == 0 || strcmp(v, "1.3") == 0);
    }
    json_decref(j);
    printf("   secured: %d of %d broker connections TLS 1.2 or later\n", tls, all);
    if (all < 3 || tls != all)
        die("the secured run was not secured", NULL);
}

/* And the provisioner signed its requests with x509. Dies otherwise. */
static void check_signed(const provisioner *pv)
{
    bool x509 =
        log_has(pv, "Requests are signed by the x509 security provider as provisioner.mcollective");
    printf("   secured: provisioner signs with x509: %s\n", x509 ? "yes" : "NO");
    if (!x509)
        die("the secured run was not signed", NULL);
}

/* ---- 1. provisioning rate --------------------------------------------------------------- */

typedef struct {
    double rate;      /* nodes/s; 0 when not all were provisioned in time */
    double secs;      /* provisioner start to the last node counted */
    double errors;    /* provision_errors */
    double cpu_ms[4]; /* CPU ms per node: provisioner, helpers, fleet, broker */
} prov_result;

static prov_result provision_rate_with(const char *choria, const char *helper, int n, int workers,
                                       const security *sec, bool persistent)
{
    prov_result r = {0};
    bool secured = sec != NULL && sec->pki != NULL;
    cht_broker *b = broker_with(sec);
    cht_proc *fleet = start_fleet_tls(choria, b, n, true, secured);
    provisioner pv = {0};
    int64_t limit = 30000 + (int64_t)n * 10; /* 10 ms a node: well below 100 nodes/s fails */
    double fleet0, broker0, unused;
    cpu_secs(cht_proc_pid(fleet), &fleet0, &unused);
    cpu_secs(cht_broker_pid(b), &broker0, &unused);
    int64_t t0 = ch_now_mono_ms(), t1 = 0;
    start_provisioner_with(&pv, b, helper, workers, sec, persistent);
    /* Also the time to the first node and the longest stretch without progress (stalls). */
    double got = -1, last = 0;
    int64_t first = -1, progress = t0, stall = 0;
    while (ch_now_mono_ms() - t0 < limit && !cht_proc_exited(pv.proc)) {
        got = metric(&pv, "choria_provisioner_provisioned" SITE);
        int64_t now = ch_now_mono_ms();
        if (got > last) {
            if (first < 0 && secured)
                check_tls(b);
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
    helper_cpu += live_children_secs(cht_proc_pid(pv.proc));
    cpu_secs(cht_proc_pid(fleet), &fleet_cpu, &unused);
    cpu_secs(cht_broker_pid(b), &broker_cpu, &unused);
    if (t1 > 0) {
        r.secs = (double)(t1 - t0) / 1000.0;
        r.rate = n / r.secs;
    } else {
        fprintf(stderr,
                "bench: %d nodes: provisioned %g within %lld ms (discovered %g, queued %g, "
                "busy workers %g); stderr: %s\n",
                n, got, (long long)limit, metric(&pv, "choria_provisioner_discovered" SITE),
                metric(&pv, "choria_provisioner_work_queue_entries" SITE),
                metric(&pv, "choria_provisioner_busy_workers" SITE), cht_proc_stderr(pv.proc));
    }
    printf("%d nodes%s%s: %s %.0f nodes/s (%.2f s), provision_errors %g\n", n,
           secured ? ", secured" : "", persistent ? ", persistent helpers" : "",
           t1 > 0 ? "provisioned at" : "NOT all provisioned,", r.rate, r.secs, r.errors);
    if (secured)
        check_signed(&pv);
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
    log_report(&pv, secured ? "secured provisioning" : "provisioning");
    cht_proc_free(pv.proc);
    cht_proc_free(fleet);
    cht_broker_free(b);
    return r;
}

static prov_result provision_rate(const char *choria, const char *helper, int n, int workers,
                                  bool persistent)
{
    return provision_rate_with(choria, helper, n, workers, NULL, persistent);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..k), which it sorts. */
static double median(double *v, int k)
{
    qsort(v, (size_t)k, sizeof(double), cmp_double);
    return k % 2 == 1 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

/* Field by field medians of k results (k <= MAX_ROUNDS); a failed round (rate 0) makes the
 * rate 0, so the run fails. */
static prov_result median_result(const prov_result *r, int k)
{
    prov_result m = {0};
    double rate[MAX_ROUNDS], secs[MAX_ROUNDS], cpu[4][MAX_ROUNDS];
    bool failed = false;
    for (int i = 0; i < k; i++) {
        rate[i] = r[i].rate;
        secs[i] = r[i].secs;
        for (int c = 0; c < 4; c++)
            cpu[c][i] = r[i].cpu_ms[c];
        failed = failed || r[i].rate <= 0;
    }
    m.rate = failed ? 0 : median(rate, k);
    m.secs = median(secs, k);
    for (int c = 0; c < 4; c++)
        m.cpu_ms[c] = median(cpu[c], k);
    return m;
}

/* Plain (exec helpers), secured and persistent-helper runs of n nodes, alternating, rounds of
 * each (the machine is shared, so none gets the quiet minute alone); medians into *plain,
 * *secured and *persistent. */
static void compare_rounds(const char *choria, const char *helper, int n, int workers,
                           const security *sec, int rounds, prov_result *plain,
                           prov_result *secured, prov_result *persistent)
{
    prov_result p[MAX_ROUNDS], q[MAX_ROUNDS], h[MAX_ROUNDS];
    for (int i = 0; i < rounds; i++) {
        printf("-- plain vs secured vs persistent helpers, round %d of %d\n", i + 1, rounds);
        p[i] = provision_rate(choria, helper, n, workers, false);
        q[i] = provision_rate_with(choria, helper, n, workers, sec, false);
        h[i] = provision_rate(choria, helper, n, workers, true);
        printf("   round %d: secured / plain = %.2f nodes/s, %.2f provisioner CPU per node; "
               "persistent / exec = %.2f nodes/s, %.2f provisioner CPU per node\n",
               i + 1, p[i].rate > 0 ? q[i].rate / p[i].rate : 0,
               p[i].cpu_ms[0] > 0 ? q[i].cpu_ms[0] / p[i].cpu_ms[0] : 0,
               p[i].rate > 0 ? h[i].rate / p[i].rate : 0,
               p[i].cpu_ms[0] > 0 ? h[i].cpu_ms[0] / p[i].cpu_ms[0] : 0);
    }
    *plain = median_result(p, rounds);
    *secured = median_result(q, rounds);
    *persistent = median_result(h, rounds);
}

/* The PKI of the secured run, made by the spec's script into a temporary directory (removed
 * by the caller with cht_temp_dir_remove). */
static void make_pki(const char *src, char *dir, size_t dir_size, char *pki, size_t pki_size)
{
    ch_error err;
    if (cht_temp_dir("bench-pki", dir, dir_size, &err) != CH_OK)
        die("temporary directory", &err);
    snprintf(pki, pki_size, "%s/pki", dir);
    if (cht_sh(&err, "sh %s/tests/data/security/mk-pki.sh %s >/dev/null", src, pki) != CH_OK)
        die("tests/data/security/mk-pki.sh", &err);
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

/* ---- 2b. helper floors: exec and persistent ---------------------------------------------- */

/* One thread's share of a helper floor: runs of helper (exec) or requests to pool. */
typedef struct {
    const char *helper;     /* exec mode: the command */
    prov_helper_pool *pool; /* persistent mode: the helpers */
    const char *inventory;
    int64_t until;
    long done, failed;
} helper_runner;

static void *helper_loop(void *arg)
{
    helper_runner *s = arg;
    prov_helper_input in = {.identity = "n1.fleet.local", .inventory = s->inventory};
    ch_process_run_opts o = {0};
    while (ch_now_mono_ms() < s->until) {
        prov_helper_reply *reply = NULL;
        ch_process_result res = {0};
        ch_status st = s->pool != NULL ? prov_helper_pool_run(s->pool, &in, &reply, NULL)
                                       : prov_helper_run(s->helper, &in, &o, &reply, &res, NULL);
        if (st == CH_OK && !reply->defer)
            s->done++;
        else
            s->failed++;
        prov_helper_reply_free(reply);
        ch_process_result_clear(&res);
    }
    return NULL;
}

/* Helper runs per second from `threads` threads for FLOOR_MS: exec runs of helper, or requests
 * to pool when it is given. */
static double helper_floor(const char *helper, prov_helper_pool *pool, const char *inventory,
                           int threads)
{
    helper_runner *rs = calloc((size_t)threads, sizeof(*rs));
    pthread_t *th = calloc((size_t)threads, sizeof(*th));
    int64_t t0 = ch_now_mono_ms();
    for (int i = 0; i < threads; i++) {
        rs[i] = (helper_runner){
            .helper = helper, .pool = pool, .inventory = inventory, .until = t0 + FLOOR_MS};
        pthread_create(&th[i], NULL, helper_loop, &rs[i]);
    }
    long total = 0, failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += rs[i].done;
        failed += rs[i].failed;
    }
    int64_t el = ch_now_mono_ms() - t0;
    if (failed > 0)
        fprintf(stderr, "bench: %ld helper runs failed\n", failed);
    free(rs);
    free(th);
    return total * 1000.0 / (double)(el > 0 ? el : 1);
}

/* Requests per second to `helper --persistent` through a pool of `threads` processes, one
 * thread each. */
static double pool_floor(const char *helper, const char *inventory, int threads)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "%s --persistent", helper);
    prov_helper_pool_opts po = {.command = cmd, .processes = (size_t)threads};
    prov_helper_pool *pool = NULL;
    ch_error err;
    if (prov_helper_pool_start(&po, &pool, &err) != CH_OK)
        die("persistent helpers", &err);
    double rate = helper_floor(NULL, pool, inventory, threads);
    prov_helper_pool_stop(pool);
    return rate;
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

typedef struct {
    int n1, n2, n3, cpus, workers, rounds;
    double reqrep, spawns, pool_runs, floor, pfloor; /* pfloor: with persistent helpers */
    prov_result r1, r2, sec1, p1, p2;                /* p: persistent helpers */
    big_result big;
} results;

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

static const char *const WHO[] = {"provisioner", "its helpers", "fleet", "broker"};

static double cpu_total(const prov_result *r)
{
    return r->cpu_ms[0] + r->cpu_ms[1] + r->cpu_ms[2] + r->cpu_ms[3];
}

/* One provisioning row: the rate, its floor and ratio, and the CPU per node beside it. */
static void rate_row(const char *what, const prov_result *r, double floor, const char *goal)
{
    printf("| %s | %.0f nodes/s (%.2f s) | %.0f nodes/s | %.2f | %.2f / %.2f / %.2f / %.2f "
           "(%.2f) | %s |\n",
           what, r->rate, r->secs, floor, ratio(r->rate, floor), r->cpu_ms[0], r->cpu_ms[1],
           r->cpu_ms[2], r->cpu_ms[3], cpu_total(r), goal);
}

static void print_table(const results *x)
{
    printf("\n| figure | value | floor in the same run | ratio | CPU ms per node: provisioner / "
           "helpers / fleet / broker (sum) | goal |\n|---|---|---|---|---|---|\n");
    printf("| request/reply through the broker, bare nats.c, %d requesters | %.0f/s | | | | |\n",
           x->workers, x->reqrep);
    printf("| demo-helper runs through prov_helper_run (exec), %d threads | %.0f/s | | | | |\n",
           x->cpus, x->spawns);
    printf("| demo-helper requests through %d persistent helpers | %.0f/s | | | | |\n", x->cpus,
           x->pool_runs);
    char what[160];
    snprintf(what, sizeof(what), "provisioned, %d nodes, exec helpers (median of %d)", x->n1,
             x->rounds);
    rate_row(what, &x->r1, x->floor, "");
    snprintf(what, sizeof(what), "provisioned, %d nodes, persistent helpers (median of %d)", x->n1,
             x->rounds);
    rate_row(what, &x->p1, x->pfloor, "");
    snprintf(what, sizeof(what), "provisioned, %d nodes, exec helpers", x->n2);
    rate_row(what, &x->r2, x->floor, "no slower than before");
    snprintf(what, sizeof(what), "provisioned, %d nodes, persistent helpers", x->n2);
    rate_row(what, &x->p2, x->pfloor,
             "≥ 1,000 nodes/s; provisioner ≤ 0.4, helper ≤ 0.1, fleet ≤ 0.4 ms");
    printf(
        "| upstream's own figure, for scale | about 1,000 nodes/minute (17 nodes/s) | | | | |\n");
    printf("| persistent / exec at %d nodes | %.2f × the rate | | | %.2f × the CPU per node | |\n",
           x->n2, ratio(x->p2.rate, x->r2.rate), ratio(cpu_total(&x->p2), cpu_total(&x->r2)));
    printf("| provisioner resident, %d nodes queued (%g in the queue) | %.1f MiB | | | | < 64 MiB "
           "|\n",
           x->n3, x->big.queued, x->big.rss_kib / 1024.0);
    printf("| discovery of %d nodes, last reply (median of 3) | %lld ms | | | | < 1 s |\n", x->n3,
           (long long)x->big.last_ms[1]);
    printf("| discovery of %d nodes, with the 300 ms window (median of 3) | %lld ms | | | | |\n",
           x->n3, (long long)x->big.total_ms[1]);

    const prov_result *p = &x->r1, *s = &x->sec1;
    printf("\n| %d nodes, %d workers, exec helpers, median of %d alternating rounds | plain (no "
           "TLS, unsigned) | secured (TLS, x509-signed) | secured / plain |\n|---|---|---|---|\n",
           x->n1, x->workers, x->rounds);
    printf("| provisioned | %.0f nodes/s (%.2f s) | %.0f nodes/s (%.2f s) | %.2f |\n", p->rate,
           p->secs, s->rate, s->secs, ratio(s->rate, p->rate));
    for (int i = 0; i < 4; i++)
        printf("| CPU ms per node, %s | %.2f | %.2f | %.2f |\n", WHO[i], p->cpu_ms[i], s->cpu_ms[i],
               ratio(s->cpu_ms[i], p->cpu_ms[i]));
}

/* The helper: the static demo helper by default; BENCH_HELPER=shell for the shell script. */
static void pick_helper(const char *src, char *helper, size_t size)
{
    const char *which = getenv("BENCH_HELPER");
    bool shell = which != NULL && strcmp(which, "shell") == 0;
    if (shell || cht_bin_path("choria-demo-helper", helper, size, NULL) != CH_OK)
        snprintf(helper, size, "%s/contrib/helpers/demo-helper", src);
    if (access(helper, X_OK) != 0)
        die(helper, NULL);
}

int main(int argc, char **argv)
{
    results x = {0};
    x.n1 = argc > 1 ? atoi(argv[1]) : 1000;
    x.n2 = argc > 2 ? atoi(argv[2]) : 10000;
    x.n3 = argc > 3 ? atoi(argv[3]) : 50000;
    x.cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (x.cpus < 1)
        x.cpus = 1;
    x.workers = getenv("BENCH_WORKERS") != NULL ? atoi(getenv("BENCH_WORKERS")) : 4 * x.cpus;
    x.rounds = getenv("BENCH_SECURED_ROUNDS") != NULL ? atoi(getenv("BENCH_SECURED_ROUNDS")) : 3;
    char choria[512], helper[512];
    ch_error err;
    if (x.n1 < 1 || x.n2 < 1 || x.n3 < 1 || x.workers < 1 || x.rounds < 1 ||
        x.rounds > MAX_ROUNDS || cht_bin_path("choria", choria, sizeof(choria), &err) != CH_OK)
        die("usage: bench_provision [N1 [N2 [N3]]] (with CH_BIN_DIR set)", NULL);
    const char *src = getenv("CH_SOURCE_DIR");
    if (src == NULL || src[0] == '\0')
        src = CH_BENCH_SOURCE_DIR;
    pick_helper(src, helper, sizeof(helper));
    printf("online CPUs %d, provisioner workers %d, helper %s\n", x.cpus, x.workers, helper);

    /* Floors first, on a broker of their own. */
    cht_broker *b = broker();
    char *inventory = fleet_inventory(choria, b);
    x.reqrep = reqrep_floor(b, x.workers);
    cht_broker_free(b);
    x.spawns = helper_floor(helper, NULL, inventory, x.cpus);
    x.pool_runs = pool_floor(helper, inventory, x.cpus);
    printf("floor: %.0f request/replies/s (%d requesters), %.0f helper runs/s (%d threads, "
           "%zu-byte inventory), %.0f persistent helper requests/s\n",
           x.reqrep, x.workers, x.spawns, x.cpus, strlen(inventory), x.pool_runs);
    free(inventory);
    x.floor = x.reqrep / 3 < x.spawns ? x.reqrep / 3 : x.spawns;
    x.pfloor = x.reqrep / 3 < x.pool_runs ? x.reqrep / 3 : x.pool_runs;

    char pki_dir[256], pki[300];
    make_pki(src, pki_dir, sizeof(pki_dir), pki, sizeof(pki));
    const security sec = {.pki = pki};
    compare_rounds(choria, helper, x.n1, x.workers, &sec, x.rounds, &x.r1, &x.sec1, &x.p1);
    cht_temp_dir_remove(pki_dir, NULL);
    x.r2 = provision_rate(choria, helper, x.n2, x.workers, false);
    x.p2 = provision_rate(choria, helper, x.n2, x.workers, true);
    big_fleet(choria, x.n3, &x.big);
    qsort(x.big.last_ms, 3, sizeof(int64_t), cmp_i64);
    qsort(x.big.total_ms, 3, sizeof(int64_t), cmp_i64);
    print_table(&x);
    bool ok = x.r1.rate > 0 && x.sec1.rate > 0 && x.r2.rate > 0 && x.p1.rate > 0 && x.p2.rate > 0 &&
              x.big.found[0] == (size_t)x.n3 && x.big.found[1] == (size_t)x.n3 &&
              x.big.found[2] == (size_t)x.n3;
    return ok ? 0 : 1;
}
