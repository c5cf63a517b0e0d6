/* The upstream Grafana dashboard against a running provisioner: a real Prometheus scrapes
 * choria-provisioner's /metrics while it provisions a fleet (with injected failures), and
 * every query of ../shared/interop/provisioner-dashboard.json must return data; promtool
 * must find no format error in the same /metrics. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
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

#define SITE "dash"

typedef struct {
    cht_broker *broker;
    cht_proc *provisioner, *fleet, *prometheus;
    char dir[256];
    int monitor_port, prom_port;
} fixture;

static void write_file(const char *path, const char *fmt, ...)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(fp, fmt, ap);
    va_end(ap);
    fclose(fp);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/ch-dash-test-XXXXXX");
    if (mkdtemp(f->dir) == NULL || cht_broker_start(NULL, &f->broker, NULL) != CH_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_proc_free(f->prometheus);
    cht_proc_free(f->fleet);
    cht_proc_free(f->provisioner);
    cht_broker_free(f->broker);
    cht_remove_tree(f->dir, NULL);
    free(f);
    return 0;
}

static void spawn(const char *const *argv, cht_proc **out)
{
    cht_proc_opts o = {.argv = argv};
    ch_error err;
    CHT_CHECK(cht_proc_spawn(&o, out, &err), &err);
}

static void start_provisioner(fixture *f)
{
    char client[300], conf[300], bin[512], helper[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria-provisioner", bin, sizeof(bin), &err), &err);
    CHT_CHECK(cht_bin_path("choria-demo-helper", helper, sizeof(helper), &err), &err);
    snprintf(client, sizeof(client), "%s/client.conf", f->dir);
    snprintf(conf, sizeof(conf), "%s/provisioner.yaml", f->dir);
    write_file(client, "identity = dash.example.net\nplugin.choria.middleware_hosts = %s\n",
               cht_broker_url(f->broker));
    f->monitor_port = cht_free_port();
    write_file(conf,
               "workers: 4\nsite: " SITE "\nmonitor_port: %d\nmonitor_bind: 127.0.0.1\n"
               "helper: %s\nlogfile: %s/provisioner.log\n",
               f->monitor_port, helper, f->dir);
    const char *argv[] = {bin, "run", "--config", conf, "--choria-config", client, NULL};
    spawn(argv, &f->provisioner);
    for (int i = 0; i < 100; i++) {
        int status = 0;
        if (cht_http_get(f->monitor_port, "/healthz", 1000, &status, NULL, NULL) == CH_OK &&
            status == 200)
            return;
        usleep(100000);
    }
    fail_msg("provisioner did not start: %s", cht_proc_stderr(f->provisioner));
}

static void start_prometheus(fixture *f)
{
    if (system("command -v prometheus >/dev/null 2>&1") != 0)
        fail_msg("prometheus is not installed (Debian package prometheus, scripts/install-deps)");
    char conf[300], data[300], listen[64];
    snprintf(conf, sizeof(conf), "%s/prometheus.yml", f->dir);
    snprintf(data, sizeof(data), "--storage.tsdb.path=%s/tsdb", f->dir);
    write_file(conf,
               "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
               "scrape_configs:\n  - job_name: provisioner\n    static_configs:\n"
               "      - targets: ['127.0.0.1:%d']\n",
               f->monitor_port);
    f->prom_port = cht_free_port();
    snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", f->prom_port);
    char config_flag[320];
    snprintf(config_flag, sizeof(config_flag), "--config.file=%s", conf);
    const char *argv[] = {"prometheus", config_flag, data, listen, NULL};
    spawn(argv, &f->prometheus);
    for (int i = 0; i < 200; i++) {
        int status = 0;
        if (cht_http_get(f->prom_port, "/-/ready", 1000, &status, NULL, NULL) == CH_OK &&
            status == 200)
            return;
        usleep(100000);
    }
    fail_msg("prometheus did not become ready: %s", cht_proc_stderr(f->prometheus));
}

static void run_fleet(fixture *f, const char *count, const char *prefix)
{
    char bin[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[] = {bin,      "tool",   "fleet",   "--server", cht_broker_url(f->broker),
                          "--count", count,   "--prefix", prefix,    "--error",
                          "10",     "--quiet", "--exit-when-provisioned", NULL};
    cht_proc_free(f->fleet);
    f->fleet = NULL;
    spawn(argv, &f->fleet);
    int ws = 0;
    if (cht_proc_wait(f->fleet, 60000, &ws, &err) != CH_OK || !WIFEXITED(ws) ||
        WEXITSTATUS(ws) != 0)
        fail_msg("fleet did not finish: %s", cht_proc_stderr(f->fleet));
}

static void collect_exprs(json_t *v, json_t *out)
{
    const char *k;
    json_t *c;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, k, c)
        {
            if ((strcmp(k, "expr") == 0 || strcmp(k, "query") == 0) && json_is_string(c) &&
                strstr(json_string_value(c), "choria_") != NULL)
                json_array_append(out, c);
            else
                collect_exprs(c, out);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, c) collect_exprs(c, out);
    }
}

/* The expression with Grafana's ${instance} replaced by the site, URL-encoded. */
static void encode_query(const char *expr, char *out, size_t size)
{
    char plain[2048] = "";
    for (const char *p = expr; *p && strlen(plain) + 8 < sizeof(plain);) {
        if (strncmp(p, "${instance}", 11) == 0) {
            strcat(plain, SITE);
            p += 11;
        } else {
            strncat(plain, p++, 1);
        }
    }
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)plain; *p && n + 4 < size; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '_' || *p == '.' || *p == '-')
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, size - n, "%%%02X", *p);
    }
    out[n] = '\0';
}

/* Number of series a query returns, -1 on an error status. */
static int query_results(fixture *f, const char *expr)
{
    char path[8192] = "/api/v1/query?query=";
    encode_query(expr, path + strlen(path), sizeof(path) - strlen(path));
    int status = 0;
    char *body = NULL;
    if (cht_http_get(f->prom_port, path, 5000, &status, &body, NULL) != CH_OK || status != 200) {
        free(body);
        return -1;
    }
    json_t *j = ch_json_parse(body, strlen(body), CHT_HTTP_MAX, 32, NULL);
    free(body);
    const char *st = json_string_value(json_object_get(j, "status"));
    json_t *result = json_object_get(json_object_get(j, "data"), "result");
    int n = st != NULL && strcmp(st, "success") == 0 ? (int)json_array_size(result) : -1;
    json_decref(j);
    return n;
}

static void promtool_finds_no_format_error(fixture *f)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        fail_msg("promtool is not installed (Debian package prometheus, scripts/install-deps)");
    int status = 0;
    char *body = NULL, path[300], cmd[700];
    ch_error err;
    CHT_CHECK(cht_http_get(f->monitor_port, "/metrics", 5000, &status, &body, &err), &err);
    snprintf(path, sizeof(path), "%s/metrics.txt", f->dir);
    write_file(path, "%s", body);
    free(body);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s/promtool.out 2>&1", path, f->dir);
    int rc = system(cmd);
    snprintf(path, sizeof(path), "%s/promtool.out", f->dir);
    char *out = NULL;
    size_t len = 0;
    CHT_CHECK(ch_read_file(path, 1024 * 1024, &out, &len, &err), &err);
    /* exit 3 = lint findings only; each must be upstream's counter names without _total */
    assert_true(WIFEXITED(rc) && (WEXITSTATUS(rc) == 0 || WEXITSTATUS(rc) == 3));
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n"))
        if (strstr(line, "counter metrics should have \"_total\" suffix") == NULL)
            fail_msg("promtool: %s", line);
    free(out);
}

static void every_dashboard_query_returns_data(void **state)
{
    fixture *f = *state;
    start_provisioner(f);
    start_prometheus(f);
    run_fleet(f, "30", "a");
    usleep(2500000); /* a few scrapes between the two waves, so increase() sees change */
    run_fleet(f, "30", "b");
    promtool_finds_no_format_error(f);

    char path[512], *text = NULL;
    size_t len = 0;
    ch_error err;
    snprintf(path, sizeof(path), "%s/interop/provisioner-dashboard.json",
             getenv("CH_SHARED_DIR") != NULL ? getenv("CH_SHARED_DIR") : "../shared");
    CHT_CHECK(ch_read_file(path, 4 * 1024 * 1024, &text, &len, &err), &err);
    json_t *dash = ch_json_parse(text, len, 4 * 1024 * 1024, 64, &err);
    free(text);
    assert_non_null(dash);
    json_t *exprs = json_array();
    collect_exprs(dash, exprs);
    assert_true(json_array_size(exprs) >= 13);

    size_t i;
    json_t *e;
    int missing = 0;
    for (int attempt = 0; attempt < 40; attempt++) {
        missing = 0;
        json_array_foreach(exprs, i, e)
        {
            if (query_results(f, json_string_value(e)) <= 0)
                missing++;
        }
        if (missing == 0)
            break;
        usleep(500000);
    }
    json_array_foreach(exprs, i, e)
    {
        int n = query_results(f, json_string_value(e));
        fprintf(stderr, "%3d series  %s\n", n, json_string_value(e));
        if (n <= 0)
            fail_msg("no data for %s", json_string_value(e));
    }
    json_decref(exprs);
    json_decref(dash);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_dashboard_query_returns_data, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
