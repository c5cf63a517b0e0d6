/* choria-provisioner end to end: a real nats-server, the real provisioner binary, a simulated
 * fleet or real `choria server run` processes, real helpers, `choria tool event` and
 * /metrics. Every count the fleet reports must match the provisioner's metrics. */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "choria/json.h"
#include "choria/lifecycle.h"
#include "choria/pki.h"
#include "choria/jwt.h"
#include "choria/util.h"
#include "harness.h"

#define TOKEN "t0k"
#define PROVISIONER_ID "provisioner.example.net"

typedef struct {
    cht_broker *broker;
    cht_proc *provisioner, *fleet, *events;
    cht_proc *servers[3];
    char dir[256];
    char signer_pub[300]; /* jwt_verify_cert */
    char *signer_key;     /* RSA private key PEM */
    int monitor_port;
} fixture;

/* ---- small helpers ---- */

static void source_path(char *out, size_t size, const char *rel)
{
    const char *src = getenv("CH_SOURCE_DIR");
    snprintf(out, size, "%s/%s", src != NULL ? src : ".", rel);
}

/* An RSA key pair: the public half for jwt_verify_cert, the private half to sign JWTs. */
static void make_signer(fixture *f)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    assert_non_null(k);
    snprintf(f->signer_pub, sizeof(f->signer_pub), "%s/jwt-signer.pem", f->dir);
    FILE *fp = fopen(f->signer_pub, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PUBKEY(fp, k), 1);
    fclose(fp);
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    char *data = NULL;
    long len = BIO_get_mem_data(b, &data);
    f->signer_key = strndup(data, (size_t)len);
    BIO_free(b);
    EVP_PKEY_free(k);
}

/* A signed provisioning JWT as `choria jwt provisioning` makes it, expiring at exp. */
static void write_jwt(fixture *f, const char *path, int64_t exp)
{
    char chu[64];
    snprintf(chu, sizeof(chu), "127.0.0.1:%d", cht_broker_port(f->broker));
    json_t *claims =
        json_pack("{s:s,s:b,s:s,s:b,s:s,s:s,s:s,s:I,s:I}", "cht", TOKEN, "chs", 0, "chu", chu,
                  "chpd", 1, "purpose", "choria_provisioning", "sub", "choria_provisioning", "iss",
                  "test", "iat", (json_int_t)ch_now_unix(), "exp", (json_int_t)exp);
    char *jwt = NULL;
    ch_error err;
    CHT_CHECK(ch_jwt_sign("RS256", f->signer_key, claims, &jwt, &err), &err);
    ch_status st = cht_write_file(path, &err, "%s\n", jwt);
    free(jwt);
    json_decref(claims);
    CHT_CHECK(st, &err);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ch_error err;
    if (cht_temp_dir("prov-test", f->dir, sizeof(f->dir), &err) != CH_OK ||
        cht_broker_start(NULL, &f->broker, &err) != CH_OK)
        return -1;
    make_signer(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_proc_free(f->fleet);
    for (int i = 0; i < 3; i++)
        cht_proc_free(f->servers[i]);
    cht_proc_free(f->provisioner);
    cht_proc_free(f->events);
    cht_broker_free(f->broker);
    cht_temp_dir_remove(f->dir, NULL);
    free(f->signer_key);
    free(f);
    return 0;
}

/* ---- the provisioner ---- */

/* Writes the configs (extra: more top-level YAML lines) and starts the provisioner; returns
 * once /healthz answers. */
static void start_provisioner_with(fixture *f, const char *helper, const char *features,
                                   int workers, const char *extra)
{
    char client[300], yaml[2048], pid[300];
    snprintf(client, sizeof(client), "identity = %s\nplugin.choria.middleware_hosts = %s\n",
             PROVISIONER_ID, cht_broker_url(f->broker));
    snprintf(yaml, sizeof(yaml),
             "workers: %d\ninterval: 1m\nsite: testsite\nhelper: %s\ntoken: %s\n"
             "jwt_verify_cert: %s\nlogfile: %s/provisioner.log\n%sfeatures:\n%s",
             workers, helper, TOKEN, f->signer_pub, f->dir, extra, features);
    snprintf(pid, sizeof(pid), "%s/provisioner.pid", f->dir);
    const char *args[] = {"--pid", pid, NULL};
    const char *env[] = {"CHORIA_PROVISIONER_BACKOFF_PERCENT=10", NULL};
    cht_provisioner_opts o = {
        .dir = f->dir, .config = yaml, .client_config = client, .extra_args = args, .env = env};
    ch_error err;
    CHT_CHECK(cht_provisioner_start(&o, &f->provisioner, &f->monitor_port, &err), &err);
}

static void start_provisioner(fixture *f, const char *helper, const char *features, int workers)
{
    start_provisioner_with(f, helper, features, workers, "");
}

/* The value of one series, e.g. choria_provisioner_provisioned{site="testsite"}; -1 if absent. */
static double metric(fixture *f, const char *series)
{
    return cht_metric(f->monitor_port, series);
}

static void wait_metric(fixture *f, const char *series, double want, int timeout_ms)
{
    double got = -1;
    for (int waited = 0; waited < timeout_ms; waited += 200) {
        if ((got = metric(f, series)) == want)
            return;
        usleep(200000);
    }
    fail_msg("%s is %g, expected %g; provisioner stderr: %s", series, got, want,
             cht_proc_stderr(f->provisioner));
}

#define SITE "{site=\"testsite\"}"
#define M(name) "choria_provisioner_" name SITE
#define RPC(name, rpc) "choria_provisioner_" name "{site=\"testsite\",rpc=\"" rpc "\"}"

static char *read_log(fixture *f)
{
    char path[300], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/provisioner.log", f->dir);
    ch_error err;
    CHT_CHECK(ch_read_file(path, 64 * 1024 * 1024, &text, &len, &err), &err);
    return text;
}

static int count_substr(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- fleet and event viewer ---- */

static void start_events(fixture *f)
{
    char bin[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[] = {bin, "tool", "event", "--server", cht_broker_url(f->broker), NULL};
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->events, &err), &err);
    char *line = NULL;
    if (cht_proc_read_until(f->events, "Waiting for events", 10000, &line) != CHT_READ_LINE)
        fail_msg("tool event did not start: %s", cht_proc_stderr(f->events));
    free(line);
}

static void start_fleet(fixture *f, int count, const char *jwt, const char *const *extra)
{
    char bin[512], n[16], summary[300];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    snprintf(n, sizeof(n), "%d", count);
    snprintf(summary, sizeof(summary), "%s/summary.json", f->dir);
    const char *argv[32] = {bin,
                            "tool",
                            "fleet",
                            "--server",
                            cht_broker_url(f->broker),
                            "--count",
                            n,
                            "--token",
                            TOKEN,
                            "--provisioning-jwt",
                            jwt,
                            "--summary-json",
                            summary,
                            "--connections",
                            "2"};
    int i = 15;
    for (; extra != NULL && *extra != NULL && i < 31; extra++)
        argv[i++] = *extra;
    argv[i] = NULL;
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->fleet, &err), &err);
    char *line = NULL;
    if (cht_proc_read_until(f->fleet, "nodes in provisioning mode", 20000, &line) != CHT_READ_LINE)
        fail_msg("fleet did not start: %s", cht_proc_stderr(f->fleet));
    free(line);
}

static json_t *fleet_summary(fixture *f, int timeout_ms)
{
    int ws = 0;
    ch_error err;
    if (cht_proc_wait(f->fleet, timeout_ms, &ws, &err) != CH_OK)
        fail_msg("fleet still running; provisioner stderr: %s", cht_proc_stderr(f->provisioner));
    assert_int_equal(WEXITSTATUS(ws), 0);
    char path[300], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/summary.json", f->dir);
    CHT_CHECK(ch_read_file(path, 64 * 1024 * 1024, &text, &len, &err), &err);
    json_t *j = ch_json_parse(text, len, 64 * 1024 * 1024, 16, &err);
    free(text);
    assert_non_null(j);
    return j;
}

static long jint(json_t *j, const char *key)
{
    return (long)json_integer_value(json_object_get(j, key));
}

typedef struct {
    int startup, provisioned, shutdown;
} event_counts;

static bool count_event_line(const char *line, void *arg)
{
    event_counts *c = arg;
    if (strstr(line, ": provision_mode_server") == NULL)
        return false;
    c->startup += strstr(line, "[startup]") != NULL;
    c->provisioned += strstr(line, "[provisioned]") != NULL;
    c->shutdown += strstr(line, "[shutdown]") != NULL;
    return false;
}

/* Reads `choria tool event` lines until it has been quiet for a second. */
static event_counts read_events(fixture *f)
{
    event_counts c = {0};
    for (int i = 0; i < 100000; i++) {
        char *line = NULL;
        if (cht_proc_read_line(f->events, 1000, &line) != CHT_READ_LINE)
            break;
        count_event_line(line, &c);
        free(line);
    }
    return c;
}

/* ---- tests ---- */

/* The fleet's summary: n nodes provisioned, each configured once by one caller; the
 * provisioner's metrics agree, with no provision or helper errors. */
static void expect_provisioned_once(fixture *f, int n)
{
    json_t *s = fleet_summary(f, 120000);
    assert_int_equal(jint(s, "provisioned"), n);
    assert_int_equal(jint(s, "configure_calls"), n);
    assert_int_equal(jint(s, "nodes_configured_more_than_once"), 0);
    assert_int_equal(jint(s, "nodes_with_several_callers"), 0);
    json_decref(s);
    wait_metric(f, M("provisioned"), n, 10000);
    assert_float_equal(metric(f, M("provision_errors")), 0, 0);
    assert_float_equal(metric(f, M("helper_errors")), 0, 0);
}

static void fleet_of_500_is_provisioned_once_and_metrics_match(void **state)
{
    fixture *f = *state;
    char helper[400], jwt[300];
    source_path(helper, sizeof(helper), "contrib/helpers/demo-helper");
    snprintf(jwt, sizeof(jwt), "%s/provisioning.jwt", f->dir);
    write_jwt(f, jwt, ch_now_unix() + 3600);
    start_events(f);
    start_provisioner(f, helper, "  jwt: true\n", 16);
    const char *extra[] = {"--exit-when-provisioned", NULL};
    start_fleet(f, 500, jwt, extra);

    expect_provisioned_once(f, 500);
    assert_float_equal((metric(f, M("discovered")) + metric(f, M("event_discovered"))), 500, 0);
    assert_float_equal(metric(f, "choria_provisioner_helper_time_count" SITE), 500, 0);
    assert_float_equal(metric(f, RPC("rpc_time_count", "choria_provision#configure")), 500, 0);
    assert_float_equal(metric(f, RPC("rpc_time_count", "choria_provision#restart")), 500, 0);
    assert_float_equal(metric(f, RPC("rpc_errors", "choria_provision#jwt")), 0, 0);
    assert_float_equal(metric(f, M("busy_workers")), 0, 0);
    assert_float_equal(metric(f, M("work_queue_entries")), 0, 0);
    assert_float_equal(metric(f, M("waiting_nodes")), 500, 0); /* held 60 s while they restart */
    assert_true(metric(f, M("discover_cycles")) >= 1);
    assert_float_equal(metric(f, M("paused")), 0, 0);

    event_counts c = read_events(f);
    assert_int_equal(c.startup, 500);
    assert_int_equal(c.provisioned, 500);
    assert_int_equal(c.shutdown, 500);
}

/* Three real servers, the openssl CA helper and features.pki: each server ends up with a
 * certificate for its identity that verifies against the CA the helper made. */
static void real_servers_get_certificates_from_the_openssl_ca_helper(void **state)
{
    fixture *f = *state;
    char helper[700], jwt[300], ca_dir[300], bin[512];
    snprintf(ca_dir, sizeof(ca_dir), "%s/ca", f->dir);
    char script[400];
    source_path(script, sizeof(script), "contrib/helpers/openssl-ca-helper");
    snprintf(helper, sizeof(helper), "%s %s", script, ca_dir);
    snprintf(jwt, sizeof(jwt), "%s/provisioning.jwt", f->dir);
    write_jwt(f, jwt, ch_now_unix() + 3600);
    start_provisioner(f, helper, "  jwt: true\n  pki: true\n", 4);

    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    for (int i = 0; i < 3; i++) {
        char sdir[300], conf[400];
        snprintf(sdir, sizeof(sdir), "%s/server%d", f->dir, i);
        mkdir(sdir, 0700);
        snprintf(conf, sizeof(conf), "%s/server.conf", sdir);
        CHT_CHECK(cht_write_file(conf, &err,
                                 "identity = s%d.example.net\nplugin.choria.server.provision = "
                                 "true\n" PLAIN_PROVISIONING "\n",
                                 i),
                  &err);
        const char *argv[] = {bin, "server", "run", "--config", conf, "--provisioning-jwt",
                              jwt, NULL};
        cht_proc_opts o = {.argv = argv};
        CHT_CHECK(cht_proc_spawn(&o, &f->servers[i], &err), &err);
    }
    wait_metric(f, M("provisioned"), 3, 60000);
    assert_float_equal(metric(f, M("provision_errors")), 0, 0);
    assert_float_equal(metric(f, RPC("rpc_time_count", "choria_provision#gencsr")), 3, 0);

    char ca[400];
    snprintf(ca, sizeof(ca), "%s/ca.pem", ca_dir);
    for (int i = 0; i < 3; i++) {
        char cert[400], cmd[1200], conf[400], *text = NULL;
        size_t len = 0;
        snprintf(cert, sizeof(cert), "%s/server%d/ssl/certificate.pem", f->dir, i);
        for (int w = 0; w < 50 && access(cert, R_OK) != 0; w++)
            usleep(100000);
        snprintf(cmd, sizeof(cmd), "openssl verify -CAfile %s %s >/dev/null", ca, cert);
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof(cmd),
                 "openssl x509 -in %s -noout -subject | grep -q 's%d.example.net'", cert, i);
        assert_int_equal(system(cmd), 0);
        /* The helper's configuration was written and provisioning switched off. */
        snprintf(conf, sizeof(conf), "%s/server%d/server.conf", f->dir, i);
        CHT_CHECK(ch_read_file(conf, 1024 * 1024, &text, &len, &err), &err);
        assert_non_null(strstr(text, "plugin.choria.server.provision=false"));
        assert_non_null(strstr(text, "plugin.security.provider=file"));
        free(text);
    }
}

/* A helper that misbehaves in a different way for each of six nodes the first time it sees
 * them and works the second time; the other nodes are unaffected. */
static const char FAULTY_HELPER[] =
    "#!/bin/sh\n"
    "IFS='\"' read -r open key colon id rest || :\n"
    "mark=\"%s/seen-$id\"\n"
    "if [ ! -e \"$mark\" ]; then\n"
    "  : > \"$mark\"\n"
    "  case $id in\n"
    "  n1.*) sleep 30 ;;\n"
    "  n2.*) echo 'helper failed on purpose' >&2; exit 3 ;;\n"
    "  n3.*) echo 'this is not json'; exit 0 ;;\n"
    "  n4.*) head -c 100000000 /dev/zero; exit 0 ;;\n"
    "  n5.*) printf '{\"configuration\":{\"identity\":\"%%s\",\"port\":4222}}' \"$id\"; exit 0 ;;\n"
    "  n6.*) printf '{\"defer\":true,\"msg\":\"come back later\"}'; exit 0 ;;\n"
    "  esac\n"
    "fi\n"
    "exec %s <<EOF\n"
    "{\"identity\":\"$id\",\"\n"
    "EOF\n";

static void helper_faults_are_counted_logged_and_retried(void **state)
{
    fixture *f = *state;
    char helper[300], demo[400], jwt[300], marks[300];
    source_path(demo, sizeof(demo), "contrib/helpers/demo-helper");
    snprintf(marks, sizeof(marks), "%s/marks", f->dir);
    mkdir(marks, 0700);
    snprintf(helper, sizeof(helper), "%s/faulty-helper", f->dir);
    ch_error err;
    CHT_CHECK(cht_write_file(helper, &err, FAULTY_HELPER, marks, demo), &err);
    chmod(helper, 0755);
    snprintf(jwt, sizeof(jwt), "%s/provisioning.jwt", f->dir);
    write_jwt(f, jwt, ch_now_unix() + 3600);
    start_provisioner(f, helper, "  jwt: true\n", 8);
    start_fleet(f, 12, jwt, NULL);

    /* Six succeed at once; five helper errors (the timeout takes 10 s) and one defer. */
    wait_metric(f, M("provision_errors"), 6, 30000);
    assert_float_equal(metric(f, M("provisioned")), 6, 0);
    assert_float_equal(metric(f, M("helper_errors")), 5, 0);
    assert_float_equal(metric(f, "choria_provisioner_helper_time_count" SITE), 12, 0);
    char *log = read_log(f);
    assert_int_equal(count_substr(log, "Could not provision n1."), 1);
    assert_non_null(strstr(log, "timed out"));
    assert_non_null(strstr(log, "helper failed on purpose")); /* stderr reaches the log */
    assert_non_null(strstr(log, "exit status 3"));
    assert_non_null(strstr(log, "cannot decode output"));
    assert_non_null(strstr(log, "exceeds"));
    assert_non_null(strstr(log, "configuration deferred: come back later"));
    assert_int_equal(count_substr(log, "Could not provision"), 6);
    free(log);

    /* A later cycle (here the nodes' startup events, re-sent) provisions the six. */
    char bin[512];
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    for (int i = 1; i <= 6; i++) {
        char id[64], cmd[1200];
        snprintf(id, sizeof(id), "n%d.fleet.local", i);
        snprintf(cmd, sizeof(cmd),
                 "%s tool emit --server %s --type startup --component provision_mode_server "
                 "--identity %s >/dev/null",
                 bin, cht_broker_url(f->broker), id);
        assert_int_equal(system(cmd), 0);
    }
    wait_metric(f, M("provisioned"), 12, 30000);
    assert_float_equal(metric(f, M("provision_errors")), 6, 0);

    /* An identity that is not a valid node name is refused and counted. */
    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "%s tool emit --server %s --type startup --component provision_mode_server "
             "--identity 'bad..name' >/dev/null",
             bin, cht_broker_url(f->broker));
    assert_int_equal(system(cmd), 0);
    wait_metric(f, M("invalid_identities"), 1, 10000);
    assert_float_equal((metric(f, M("event_discovered")) + metric(f, M("discovered"))), 18, 0);
    assert_false(cht_proc_exited(f->provisioner));
}

/* The children of pid (every thread's), into pids[]; their count. */
static int children_of(pid_t pid, pid_t *pids, int max)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "cat /proc/%d/task/*/children", (int)pid);
    FILE *fp = popen(cmd, "r");
    int n = 0;
    while (fp != NULL && n < max && fscanf(fp, "%d", &pids[n]) == 1)
        n++;
    if (fp != NULL)
        pclose(fp);
    return n;
}

/* helper_mode persistent: the static demo helper answers 500 nodes from two processes, the
 * same two from start to end, and every count matches as in exec mode. */
static void persistent_helpers_provision_500_nodes_from_two_processes(void **state)
{
    fixture *f = *state;
    char helper[600], bin[512], jwt[300];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria-demo-helper", bin, sizeof(bin), &err), &err);
    snprintf(helper, sizeof(helper), "%s --persistent", bin);
    snprintf(jwt, sizeof(jwt), "%s/provisioning.jwt", f->dir);
    write_jwt(f, jwt, ch_now_unix() + 3600);
    start_provisioner_with(f, helper, "  jwt: true\n", 8,
                           "helper_mode: persistent\nhelper_processes: 2\n");
    pid_t before[8], after[8];
    assert_int_equal(children_of(cht_proc_pid(f->provisioner), before, 8), 2);
    const char *extra[] = {"--exit-when-provisioned", NULL};
    start_fleet(f, 500, jwt, extra);

    expect_provisioned_once(f, 500);
    assert_float_equal(metric(f, "choria_provisioner_helper_time_count" SITE), 500, 0);
    assert_int_equal(children_of(cht_proc_pid(f->provisioner), after, 8), 2);
    assert_true((after[0] == before[0] && after[1] == before[1]) ||
                (after[0] == before[1] && after[1] == before[0]));
    char *log = read_log(f);
    assert_int_equal(count_substr(log, "Starting 2 persistent helper processes"), 1);
    free(log);

    /* SIGTERM: the provisioner ends its helpers (end of their input) and exits cleanly */
    int64_t t0 = ch_now_mono_ms();
    CHT_CHECK(cht_proc_signal(f->provisioner, SIGTERM, &err), &err);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(f->provisioner, 5000, &ws, &err), &err);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    assert_in_range(ch_now_mono_ms() - t0, 0, 1999); /* no SIGTERM grace needed */
    for (int i = 0; i < 2; i++)
        assert_int_equal(kill(before[i], 0), -1);
}

/* A persistent helper that dies mid-request for one node and writes garbage for another, the
 * first time it sees them: those two fail once (helper errors), the helper is started again,
 * and a later cycle provisions them. */
static const char FAULTY_PERSISTENT_HELPER[] =
    "#!/bin/sh\n"
    "while IFS='\"' read -r open key colon id rest; do\n"
    "  mark=\"%s/seen-$id\"\n"
    "  if [ ! -e \"$mark\" ]; then\n"
    "    : > \"$mark\"\n"
    "    case $id in\n"
    "    n1.*) echo 'dying on purpose' >&2; exit 3 ;;\n"
    "    n2.*) echo 'this is not json'; continue ;;\n"
    "    esac\n"
    "  fi\n"
    "  printf '{\"configuration\":{\"identity\":\"%%s\",\"plugin.choria.server.provision\":"
    "\"false\"}}\\n' \"$id\"\n"
    "done\n";

static void persistent_helper_faults_fail_once_and_the_nodes_are_retried(void **state)
{
    fixture *f = *state;
    char helper[300], jwt[300], marks[300], bin[512];
    snprintf(marks, sizeof(marks), "%s/marks", f->dir);
    mkdir(marks, 0700);
    snprintf(helper, sizeof(helper), "%s/faulty-persistent-helper", f->dir);
    ch_error err;
    CHT_CHECK(cht_write_file(helper, &err, FAULTY_PERSISTENT_HELPER, marks), &err);
    chmod(helper, 0755);
    snprintf(jwt, sizeof(jwt), "%s/provisioning.jwt", f->dir);
    write_jwt(f, jwt, ch_now_unix() + 3600);
    start_provisioner_with(f, helper, "  jwt: true\n", 4,
                           "helper_mode: persistent\nhelper_processes: 1\n");
    start_fleet(f, 8, jwt, NULL);

    wait_metric(f, M("provisioned"), 6, 30000);
    wait_metric(f, M("provision_errors"), 2, 10000);
    assert_float_equal(metric(f, M("helper_errors")), 2, 0);
    char *log = read_log(f);
    assert_non_null(strstr(log, "dying on purpose")); /* its stderr reaches the log */
    assert_non_null(strstr(log, "exited: exit status 3"));
    assert_non_null(strstr(log, "cannot decode output"));
    assert_int_equal(count_substr(log, "starting it again in"), 2);
    free(log);

    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    for (int i = 1; i <= 2; i++) {
        char cmd[1200];
        snprintf(cmd, sizeof(cmd),
                 "%s tool emit --server %s --type startup --component provision_mode_server "
                 "--identity n%d.fleet.local >/dev/null",
                 bin, cht_broker_url(f->broker), i);
        assert_int_equal(system(cmd), 0);
    }
    wait_metric(f, M("provisioned"), 8, 30000);
    assert_float_equal(metric(f, M("helper_errors")), 2, 0);
}

/* features.ed25519 against a real server: the provisioning JWT is EdDSA-signed, the node proves
 * it holds a fresh ed25519 key and receives a server JWT for that key, signed with
 * jwt_signing_key. */
static void ed25519_node_receives_a_server_jwt_for_its_key(void **state)
{
    fixture *f = *state;
    unsigned char org_seed[32], org_pub[32], sign_seed[32], sign_pub[32];
    char org_seed_hex[65], org_pub_hex[65], sign_seed_hex[65], sign_pub_hex[65];
    ch_error err;
    CHT_CHECK(ch_pki_ed25519_keypair(org_seed, org_pub, &err), &err);
    CHT_CHECK(ch_pki_ed25519_keypair(sign_seed, sign_pub, &err), &err);
    ch_hex_encode(org_seed, 32, org_seed_hex);
    ch_hex_encode(org_pub, 32, org_pub_hex);
    ch_hex_encode(sign_seed, 32, sign_seed_hex);
    ch_hex_encode(sign_pub, 32, sign_pub_hex);

    /* The provisioning JWT, signed by the "organization" seed; verified with its hex key. */
    char chu[64], jwt_path[300], key_path[300], sdir[300], conf[400], bin[512], helper[400];
    snprintf(chu, sizeof(chu), "127.0.0.1:%d", cht_broker_port(f->broker));
    json_t *claims = json_pack("{s:s,s:b,s:s,s:b,s:s,s:s,s:I}", "cht", TOKEN, "chs", 0, "chu", chu,
                               "chpd", 1, "purpose", "choria_provisioning", "sub",
                               "choria_provisioning", "exp", (json_int_t)ch_now_unix() + 3600);
    char *jwt = NULL;
    CHT_CHECK(ch_jwt_sign("EdDSA", org_seed_hex, claims, &jwt, &err), &err);
    json_decref(claims);
    snprintf(jwt_path, sizeof(jwt_path), "%s/provisioning.jwt", f->dir);
    ch_status st = cht_write_file(jwt_path, &err, "%s", jwt);
    free(jwt);
    CHT_CHECK(st, &err);
    snprintf(key_path, sizeof(key_path), "%s/signer.seed", f->dir);
    /* exactly 64 bytes, as upstream requires */
    CHT_CHECK(cht_write_file(key_path, &err, "%s", sign_seed_hex), &err);
    snprintf(f->signer_pub, sizeof(f->signer_pub), "%s", org_pub_hex);

    source_path(helper, sizeof(helper), "contrib/helpers/demo-helper");
    char features[600];
    snprintf(features, sizeof(features), "  ed25519: true\njwt_signing_key: %s\n", key_path);
    start_provisioner(f, helper, features, 2);

    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    snprintf(sdir, sizeof(sdir), "%s/server0", f->dir);
    mkdir(sdir, 0700);
    snprintf(conf, sizeof(conf), "%s/server.conf", sdir);
    CHT_CHECK(
        cht_write_file(
            conf, &err,
            "identity = ed.example.net\nplugin.choria.server.provision = true\n" PLAIN_PROVISIONING
            "\n"),
        &err);
    const char *argv[] = {bin,      "server", "run", "--config", conf, "--provisioning-jwt",
                          jwt_path, NULL};
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->servers[0], &err), &err);
    wait_metric(f, M("provisioned"), 1, 30000);
    assert_float_equal(metric(f, RPC("rpc_time_count", "choria_provision#gen25519")), 1, 0);

    char path[400], *seed_text = NULL, *server_jwt = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/server.seed", sdir);
    CHT_CHECK(ch_read_file(path, 4096, &seed_text, &len, &err), &err);
    unsigned char node_seed[32], node_pub[32];
    char node_pub_hex[65];
    CHT_CHECK(ch_pki_hex_decode(seed_text, strcspn(seed_text, "\n"), node_seed, 32, &err), &err);
    CHT_CHECK(ch_pki_ed25519_public(node_seed, node_pub, &err), &err);
    ch_hex_encode(node_pub, 32, node_pub_hex);
    snprintf(path, sizeof(path), "%s/server.jwt", sdir);
    CHT_CHECK(ch_read_file(path, 65536, &server_jwt, &len, &err), &err);

    ch_jwt_key *k = NULL;
    CHT_CHECK(ch_jwt_key_load(sign_pub_hex, &k, &err), &err);
    CHT_CHECK(ch_jwt_verify_signature(k, server_jwt, len, &err), &err);
    ch_jwt_key_free(k);
    char *dot1 = strchr(server_jwt, '.'), *dot2 = strchr(dot1 + 1, '.');
    unsigned char *payload = NULL;
    size_t plen = 0;
    CHT_CHECK(ch_base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &payload, &plen) == CH_OK
                  ? CH_OK
                  : CH_ERR_INVALID,
              &err);
    json_t *c = ch_json_parse((const char *)payload, plen, 65536, 8, &err);
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "purpose")), "choria_server");
    assert_string_equal(json_string_value(json_object_get(c, "identity")), "ed.example.net");
    assert_string_equal(json_string_value(json_object_get(c, "public_key")), node_pub_hex);
    assert_string_equal(json_string_value(json_object_get(c, "iss")), "Choria Provisioner");
    assert_int_equal(strlen(json_string_value(json_object_get(c, "jti"))), 27);
    assert_in_range(json_integer_value(json_object_get(c, "exp")), ch_now_unix() + 300 * 86400 + 1,
                    INT64_MAX);
    json_decref(c);
    free(payload);
    free(seed_text);
    free(server_jwt);
}

/* Reads the fleet summary's faulty counts. */
static long faulty(json_t *summary, const char *kind)
{
    return jint(json_object_get(summary, "faulty"), kind);
}

/* Nodes that answer garbage, a non-PEM or mismatched CSR, or an expired JWT: each fails once
 * with a clear log line and the right counter, the healthy nodes are all provisioned, the
 * failed ones are released for a later cycle (and retried when they announce themselves). */
static void node_faults_are_counted_and_the_rest_is_provisioned(void **state)
{
    fixture *f = *state;
    char helper[400], jwt[300], expired[300];
    source_path(helper, sizeof(helper), "contrib/helpers/demo-helper");
    snprintf(jwt, sizeof(jwt), "%s/provisioning.jwt", f->dir);
    snprintf(expired, sizeof(expired), "%s/expired.jwt", f->dir);
    write_jwt(f, jwt, ch_now_unix() + 3600);
    write_jwt(f, expired, ch_now_unix() - 10);
    start_provisioner(f, helper, "  jwt: true\n  pki: true\n", 8);
    const char *extra[] = {"--exit-when-provisioned",
                           "--seed",
                           "11",
                           "--malformed",
                           "12",
                           "--bad-csr",
                           "12",
                           "--wrong-csr",
                           "12",
                           "--jwt-fault",
                           "12",
                           "--jwt-fault-file",
                           expired,
                           NULL};
    start_fleet(f, 24, jwt, extra);
    json_t *s = fleet_summary(f, 120000);
    long m = faulty(s, "malformed"), b = faulty(s, "bad_csr"), w = faulty(s, "wrong_csr"),
         j = faulty(s, "jwt_fault");
    long bad = m + b + w + j, healthy = 24 - bad;
    assert_in_range(m, 1, LONG_MAX);
    assert_in_range(b, 1, LONG_MAX);
    assert_in_range(w, 1, LONG_MAX);
    assert_in_range(j, 1, LONG_MAX);
    assert_int_equal(jint(s, "provisioned"), healthy);
    assert_int_equal(jint(s, "configure_calls"), healthy);
    assert_int_equal(jint(s, "nodes_configured_more_than_once"), 0);
    json_decref(s);

    wait_metric(f, M("provision_errors"), (double)bad, 20000);
    assert_float_equal(metric(f, M("provisioned")), healthy, 0);
    assert_float_equal(metric(f, RPC("rpc_errors", "choria_provision#jwt")), m, 0);
    assert_float_equal(metric(f, RPC("rpc_errors", "choria_provision#gencsr")), 0, 0);
    assert_float_equal(metric(f, M("helper_errors")), 0, 0);
    assert_float_equal(metric(f, M("waiting_nodes")), healthy,
                       0); /* the failed ones were released */
    char *log = read_log(f);
    assert_int_equal(count_substr(log, "Could not provision"), bad);
    assert_int_equal(count_substr(log, "not a PEM certificate request"), b);
    assert_int_equal(count_substr(log, "does not match identity"), w);
    assert_int_equal(count_substr(log, "token is expired"), j);
    free(log);
    assert_false(cht_proc_exited(f->provisioner));
}

/* Nodes that drop requests are retried within the RPC tries; a node that vanishes mid-way
 * costs one timeout, then "no responders" gives it up at once. */
static void dropped_requests_are_retried_and_vanished_nodes_given_up(void **state)
{
    fixture *f = *state;
    char helper[400], jwt[300];
    source_path(helper, sizeof(helper), "contrib/helpers/demo-helper");
    snprintf(jwt, sizeof(jwt), "%s/provisioning.jwt", f->dir);
    write_jwt(f, jwt, ch_now_unix() + 3600);
    start_provisioner(f, helper, "  jwt: true\n", 16);
    const char *extra[] = {"--exit-when-provisioned", "--drop", "4", "--vanish", "10", NULL};
    start_fleet(f, 30, jwt, extra);
    json_t *s = fleet_summary(f, 150000);
    long vanished = jint(s, "vanished"), dropped = jint(s, "dropped");
    assert_int_equal(jint(s, "provisioned") + vanished, 30);
    /* A dropped configure reply makes the provisioner retry it: the same caller twice. */
    assert_int_equal(jint(s, "nodes_with_several_callers"), 0);
    json_decref(s);
    /* Every node ends provisioned or failed. Besides the vanished nodes, a node whose restart
     * reply was dropped restarts anyway; the retry then finds no responders (as upstream). */
    double done = 0, errors = 0;
    for (int i = 0; i < 600 && done != 30; i++, usleep(100000))
        done = metric(f, M("provisioned")) + (errors = metric(f, M("provision_errors")));
    assert_float_equal(done, 30, 0);
    assert_true(errors >= vanished);
    char *log = read_log(f);
    assert_int_equal(count_substr(log, "Could not provision"), (int)errors);
    assert_int_equal(count_substr(log, "no responders"), (int)errors);
    free(log);
    fprintf(stderr, "vanished %ld, dropped %ld requests\n", vanished, dropped);
}

static void bad_configuration_exits_with_one_line_naming_the_key(void **state)
{
    fixture *f = *state;
    ch_error err;
    cht_provisioner_opts o = {.dir = f->dir,
                              .config = "interval: 10s\nhelper: /bin/true\n",
                              .config_name = "bad.yaml",
                              .no_monitor = true};
    cht_proc *p = NULL;
    CHT_CHECK(cht_provisioner_start(&o, &p, NULL, &err), &err);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(p, 10000, &ws, &err), &err);
    assert_int_not_equal(WEXITSTATUS(ws), 0);
    const char *e = cht_proc_stderr(p);
    assert_non_null(strstr(e, "interval is too small"));
    assert_int_equal(count_substr(e, "\n"), 1);
    cht_proc_free(p);
}

static void json_log_is_reopened_on_sighup_and_sigterm_stops_quickly(void **state)
{
    fixture *f = *state;
    char demo[400];
    source_path(demo, sizeof(demo), "contrib/helpers/demo-helper");
    start_provisioner(f, demo, "  jwt: false\nlogformat: json\n", 2);
    ch_error err;
    char pid[300], log[300], rotated[300];
    snprintf(pid, sizeof(pid), "%s/provisioner.pid", f->dir);
    assert_int_equal(access(pid, R_OK), 0);
    /* JSON lines into a file; SIGHUP reopens it after a rotation. */
    char *text = read_log(f);
    assert_int_equal(text[0], '{');
    assert_non_null(strstr(text, "Choria Provisioner starting"));
    free(text);
    snprintf(log, sizeof(log), "%s/provisioner.log", f->dir);
    snprintf(rotated, sizeof(rotated), "%s/provisioner.log.1", f->dir);
    assert_int_equal(rename(log, rotated), 0);
    CHT_CHECK(cht_proc_signal(f->provisioner, SIGHUP, &err), &err);
    for (int i = 0; i < 50 && access(log, R_OK) != 0; i++)
        usleep(100000);
    text = read_log(f);
    assert_non_null(strstr(text, "Log file reopened"));
    free(text);
    int64_t t0 = ch_now_mono_ms();
    CHT_CHECK(cht_proc_signal(f->provisioner, SIGTERM, &err), &err);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(f->provisioner, 5000, &ws, &err), &err);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    assert_in_range(ch_now_mono_ms() - t0, 0, 4999);
    assert_int_not_equal(access(pid, F_OK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fleet_of_500_is_provisioned_once_and_metrics_match, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(real_servers_get_certificates_from_the_openssl_ca_helper,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(persistent_helpers_provision_500_nodes_from_two_processes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            persistent_helper_faults_fail_once_and_the_nodes_are_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(helper_faults_are_counted_logged_and_retried, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(ed25519_node_receives_a_server_jwt_for_its_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(node_faults_are_counted_and_the_rest_is_provisioned, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(dropped_requests_are_retried_and_vanished_nodes_given_up,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(bad_configuration_exits_with_one_line_naming_the_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(json_log_is_reopened_on_sighup_and_sigterm_stops_quickly,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
