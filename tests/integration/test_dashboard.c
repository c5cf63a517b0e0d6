/* The Grafana dashboards against a running provisioner: a real Prometheus scrapes
 * choria-provisioner's /metrics (leader election on) while it provisions two fleet waves with
 * injected failures, and every query of upstream's dashboard (tests/data) and of the project's
 * own (contrib/grafana) must return data, the provisioning, timing and error panels a value
 * above zero; promtool must find no format error in the same /metrics. prometheus and promtool
 * come from scripts/install-deps: their absence is a failure, not a skip. */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/json.h"
#include "choria/util.h"
#include "harness.h"

#define SITE "dash"
#define RANGE "1m"        /* what Grafana's $__interval / $__rate_interval become */
#define WHOLE_RANGE "10m" /* $__range: the dashboard's time range */
#define WAVE_NODES "25"
#define LINT_TOTAL "counter metrics should have \"_total\" suffix"

typedef struct {
    cht_broker *broker;
    cht_proc *provisioner, *fleet, *prometheus;
    char dir[256];
    int monitor_port, prom_port;
} fixture;

/* A dashboard panel whose value must be above zero after the waves, not merely present. */
static const char *const MUST_MOVE[] = {
    "choria_provisioner_provisioned{",     "choria_provisioner_rpc_time_sum",
    "choria_provisioner_helper_time_sum",  "choria_provisioner_rpc_errors",
    "choria_provisioner_provision_errors", "choria_provisioner_event_discovered",
};
#define N_MUST_MOVE (sizeof(MUST_MOVE) / sizeof(MUST_MOVE[0]))

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    if (cht_temp_dir("dash-test", f->dir, sizeof(f->dir), NULL) != CH_OK ||
        cht_broker_start(NULL, &f->broker, NULL) != CH_OK ||
        cht_election_bucket_create(cht_broker_url(f->broker), "CHORIA_LEADER_ELECTION", 10, NULL) !=
            CH_OK) {
        cht_broker_free(f->broker);
        cht_temp_dir_remove(f->dir, NULL);
        free(f);
        return -1;
    }
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
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

static void spawn(const char *const *argv, const char *const *env, cht_proc **out)
{
    cht_proc_opts o = {.argv = argv, .env = env};
    ch_error err;
    CHT_CHECK(cht_proc_spawn(&o, out, &err), &err);
}

static void require_tool(const char *name)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
    if (system(cmd) != 0)
        fail_msg("%s is not installed (Debian package prometheus, scripts/install-deps)", name);
}

static void start_provisioner(fixture *f)
{
    char client[300], yaml[1024], helper[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria-demo-helper", helper, sizeof(helper), &err), &err);
    snprintf(client, sizeof(client),
             "identity = dash.example.net\nplugin.choria.middleware_hosts = %s\n",
             cht_broker_url(f->broker));
    snprintf(yaml, sizeof(yaml),
             "workers: 4\nsite: " SITE "\nhelper: %s\nlogfile: %s/provisioner.log\n"
             "leader_election: true\nleader_election_api_prefix: $JS.API\n",
             helper, f->dir);
    /* malformed nodes fail all tries of an RPC: keep the FiveSec back-off short */
    const char *env[] = {"CHORIA_PROVISIONER_BACKOFF_PERCENT=10", NULL};
    /* ready once leading (not paused), so the fleet's startup events are acted on */
    cht_provisioner_opts o = {.dir = f->dir,
                              .config = yaml,
                              .client_config = client,
                              .env = env,
                              .ready_series = "choria_provisioner_paused{site=\"" SITE "\"}",
                              .ready_value = 0};
    CHT_CHECK(cht_provisioner_start(&o, &f->provisioner, &f->monitor_port, &err), &err);
}

/* The expression with Grafana's variables replaced (upstream's ${instance} and our $site by
 * the site, $__interval/$__rate_interval by RANGE, $__range by WHOLE_RANGE); fails on any
 * other variable. */
static void substitute(const char *expr, char *out, size_t size)
{
    static const struct {
        const char *var, *value;
    } vars[] = {{"${instance}", SITE},       {"$instance", SITE},
                {"${site}", SITE},           {"$site", SITE},
                {"$__rate_interval", RANGE}, {"${__rate_interval}", RANGE},
                {"$__interval", RANGE},      {"${__interval}", RANGE},
                {"$__range", WHOLE_RANGE},   {"${__range}", WHOLE_RANGE}};
    size_t n = 0;
    for (const char *p = expr; *p;) {
        size_t i, skip = 1;
        const char *add = NULL;
        for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
            if (strncmp(p, vars[i].var, strlen(vars[i].var)) == 0) {
                add = vars[i].value;
                skip = strlen(vars[i].var);
                break;
            }
        }
        size_t len = add != NULL ? strlen(add) : 1;
        if (n + len >= size)
            fail_msg("expression too long: %s", expr);
        memcpy(out + n, add != NULL ? add : p, len);
        n += len;
        p += skip;
    }
    out[n] = '\0';
    if (strchr(out, '$') != NULL)
        fail_msg("unknown Grafana variable in %s", expr);
}

static void url_encode(const char *plain, char *out, size_t size)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)plain; *p; p++) {
        if (n + 4 >= size)
            fail_msg("query too long: %s", plain);
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '_' || *p == '.' || *p == '-' || *p == '~')
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, size - n, "%%%02X", *p);
    }
    out[n] = '\0';
}

/* Runs an instant query. Returns the number of series (-1 when Prometheus answered anything
 * but status success) and in *max the largest value (NaN ignored; -1 when none). */
static int prom_query(fixture *f, const char *query, double *max)
{
    char path[8192] = "/api/v1/query?query=";
    url_encode(query, path + strlen(path), sizeof(path) - strlen(path));
    int status = 0;
    char *body = NULL;
    *max = -1;
    if (cht_http_get(f->prom_port, path, 5000, &status, &body, NULL) != CH_OK || status != 200) {
        free(body);
        return -1;
    }
    json_t *j = ch_json_parse(body, strlen(body), CHT_HTTP_MAX, 32, NULL);
    free(body);
    const char *st = json_string_value(json_object_get(j, "status"));
    json_t *data = json_object_get(j, "data");
    json_t *result = json_object_get(data, "result");
    const char *type = json_string_value(json_object_get(data, "resultType"));
    int n = -1;
    if (st != NULL && strcmp(st, "success") == 0 && type != NULL && strcmp(type, "vector") == 0 &&
        json_is_array(result)) {
        n = (int)json_array_size(result);
        size_t i;
        json_t *s;
        json_array_foreach(result, i, s)
        {
            const char *v = json_string_value(json_array_get(json_object_get(s, "value"), 1));
            double d = v != NULL ? strtod(v, NULL) : NAN;
            if (!isnan(d) && d > *max)
                *max = d;
        }
    }
    json_decref(j);
    return n;
}

static void start_prometheus(fixture *f)
{
    require_tool("prometheus");
    char conf[300], data[320], listen[64], config_flag[320];
    snprintf(conf, sizeof(conf), "%s/prometheus.yml", f->dir);
    snprintf(data, sizeof(data), "--storage.tsdb.path=%s/tsdb", f->dir);
    ch_error err;
    CHT_CHECK(cht_write_file(conf, &err,
                             "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                             "scrape_configs:\n  - job_name: provisioner\n    static_configs:\n"
                             "      - targets: ['127.0.0.1:%d']\n",
                             f->monitor_port),
              &err);
    f->prom_port = cht_free_port();
    snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", f->prom_port);
    snprintf(config_flag, sizeof(config_flag), "--config.file=%s", conf);
    const char *argv[] = {"prometheus", config_flag, data, listen, NULL};
    spawn(argv, NULL, &f->prometheus);
    /* Ready, and the provisioner scraped once: every counter's first sample is the idle
     * value, so what the waves do shows up in increase() and rate(). */
    for (int i = 0; i < 300; i++) {
        double up = -1;
        if (prom_query(f, "up{job=\"provisioner\"}", &up) == 1 && up == 1)
            return;
        usleep(100000);
    }
    fail_msg("prometheus did not scrape the provisioner: %s", cht_proc_stderr(f->prometheus));
}

/* Runs one fleet wave to its end; returns how many of its nodes answered garbage. */
static long run_fleet(fixture *f, const char *prefix, const char *seed)
{
    char bin[512], summary[300];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    snprintf(summary, sizeof(summary), "%s/summary-%s.json", f->dir, prefix);
    /* clang-format off */
    const char *argv[] = {bin, "tool", "fleet", "--server", cht_broker_url(f->broker),
                          "--count", WAVE_NODES, "--prefix", prefix, "--seed", seed,
                          "--error", "10", "--malformed", "12", "--summary-json", summary,
                          "--quiet", "--exit-when-provisioned", NULL};
    /* clang-format on */
    cht_proc_free(f->fleet);
    f->fleet = NULL;
    spawn(argv, NULL, &f->fleet);
    int ws = 0;
    if (cht_proc_wait(f->fleet, 90000, &ws, &err) != CH_OK || !WIFEXITED(ws) ||
        WEXITSTATUS(ws) != 0)
        fail_msg("fleet did not finish: %s\nprovisioner: %s", cht_proc_stderr(f->fleet),
                 cht_proc_stderr(f->provisioner));
    char *text = NULL;
    size_t len = 0;
    CHT_CHECK(ch_read_file(summary, 16 * 1024 * 1024, &text, &len, &err), &err);
    json_t *s = ch_json_parse(text, len, 16 * 1024 * 1024, 16, &err);
    free(text);
    assert_non_null(s);
    long malformed =
        (long)json_integer_value(json_object_get(json_object_get(s, "faulty"), "malformed"));
    long provisioned = (long)json_integer_value(json_object_get(s, "provisioned"));
    json_decref(s);
    assert_int_equal(provisioned + malformed, atol(WAVE_NODES));
    return malformed;
}

/* Runs promtool check metrics on text; returns its exit status and its output (caller
 * frees). */
static int promtool_check(fixture *f, const char *text, char **out)
{
    require_tool("promtool");
    char in[300], res[300], cmd[800];
    size_t len = 0;
    ch_error err;
    snprintf(in, sizeof(in), "%s/metrics.txt", f->dir);
    snprintf(res, sizeof(res), "%s/promtool.out", f->dir);
    CHT_CHECK(cht_write_file(in, &err, "%s", text), &err);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s 2>&1", in, res);
    int rc = system(cmd);
    CHT_CHECK(ch_read_file(res, 1024 * 1024, out, &len, &err), &err);
    assert_true(WIFEXITED(rc));
    return WEXITSTATUS(rc);
}

/* The check is live: promtool reads the text and reports a broken exposition, which is
 * neither exit 0 nor a _total lint line. */
static void promtool_reports_a_broken_exposition(void **state)
{
    fixture *f = *state;
    char *out = NULL;
    int rc = promtool_check(f, "# TYPE x counter\nx{a=\"1\" 3\n", &out);
    fprintf(stderr, "promtool on broken input: exit %d: %s", rc, out);
    assert_int_not_equal(rc, 0);
    assert_int_not_equal(rc, 3);
    assert_null(strstr(out, LINT_TOTAL));
    free(out);
}

/* promtool exits 3 for lint findings only, 1 for a parse error. The only findings allowed
 * are upstream's counter names without _total (go-choria's choria_election_campaigns and the
 * provisioner's choria_provisioner_ counters), one line each. */
static void promtool_finds_no_format_error(fixture *f)
{
    int status = 0;
    char *body = NULL, *out = NULL;
    ch_error err;
    CHT_CHECK(cht_http_get(f->monitor_port, "/metrics", 5000, &status, &body, &err), &err);
    assert_int_equal(status, 200);
    int rc = promtool_check(f, body, &out);
    free(body);
    int lint = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        bool upstream_name = strncmp(line, "choria_provisioner_", 19) == 0 ||
                             strncmp(line, "choria_election_", 16) == 0;
        if (!upstream_name || strstr(line, LINT_TOTAL) == NULL)
            fail_msg("promtool (exit %d): %s", rc, line);
        lint++;
    }
    fprintf(stderr, "promtool check metrics: exit %d, %d _total lint lines, nothing else\n", rc,
            lint);
    if (rc != 0) { /* 3: lint findings only, and each of them a _total name */
        assert_int_equal(rc, 3);
        assert_in_range(lint, 1, INT_MAX);
    }
    free(out);
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

static bool must_move(const char *query)
{
    for (size_t i = 0; i < N_MUST_MOVE; i++)
        if (strstr(query, MUST_MOVE[i]) != NULL)
            return true;
    return false;
}

/* Whether query has data (and a value above zero if it must move); prints it if verbose. */
static bool query_ok(fixture *f, const char *query, bool verbose)
{
    double max = -1;
    int n = prom_query(f, query, &max);
    bool ok = n > 0 && (!must_move(query) || max > 0);
    if (verbose)
        fprintf(stderr, "%s %2d series, max %-8.4g %s\n", ok ? "ok  " : "FAIL", n, max, query);
    return ok;
}

/* Grafana's label_values(METRIC, LABEL) variable query as PromQL with the same data:
 * count by (LABEL) (METRIC). Anything else is returned as it is. */
static void variable_to_promql(const char *q, char *out, size_t size)
{
    char metric[256], label[64];
    if (sscanf(q, "label_values(%255[^,], %63[^)])", metric, label) == 2)
        snprintf(out, size, "count by (%s) (%s)", label, metric);
    else
        snprintf(out, size, "%s", q);
}

/* The queries of a dashboard file, Grafana's variables substituted; at least min_queries and
 * every MUST_MOVE metric among them. */
static json_t *dashboard_queries(const char *path, size_t min_queries)
{
    char *text = NULL;
    size_t len = 0;
    ch_error err;
    CHT_CHECK(ch_read_file(path, 4 * 1024 * 1024, &text, &len, &err), &err);
    json_t *dash = ch_json_parse(text, len, 4 * 1024 * 1024, 64, &err);
    free(text);
    assert_non_null(dash);
    json_t *exprs = json_array(), *queries = json_array();
    collect_exprs(dash, exprs);
    json_decref(dash);
    size_t i;
    json_t *e;
    json_array_foreach(exprs, i, e)
    {
        char q[4096], promql[4096];
        variable_to_promql(json_string_value(e), promql, sizeof(promql));
        substitute(promql, q, sizeof(q));
        json_array_append_new(queries, json_string(q));
    }
    json_decref(exprs);
    if (json_array_size(queries) < min_queries)
        fail_msg("%s: %zu queries, expected at least %zu", path, json_array_size(queries),
                 min_queries);
    for (size_t m = 0; m < N_MUST_MOVE; m++) {
        bool found = false;
        json_array_foreach(queries, i, e) found |=
            strstr(json_string_value(e), MUST_MOVE[m]) != NULL;
        if (!found)
            fail_msg("no query of %s uses %s", path, MUST_MOVE[m]);
    }
    return queries;
}

/* Every query of the dashboard returns data, polled (bounded) because increase() and rate()
 * need two samples in range after the change; false and each query's result printed if not. */
static bool every_query_answers(fixture *f, const char *name, json_t *queries)
{
    size_t i;
    json_t *q;
    bool all = false;
    for (int attempt = 0; attempt < 60 && !all; attempt++) {
        if (attempt > 0)
            usleep(500000);
        all = true;
        json_array_foreach(queries, i, q) all = all && query_ok(f, json_string_value(q), false);
    }
    fprintf(stderr, "%s (%zu queries, site=%s, ranges as given):\n", name, json_array_size(queries),
            SITE);
    bool failed = false;
    json_array_foreach(queries, i, q) failed |= !query_ok(f, json_string_value(q), true);
    return !failed;
}

static void every_dashboard_query_returns_data(void **state)
{
    fixture *f = *state;
    /* upstream's: 13 panel targets and the instance variable's query */
    json_t *upstream = dashboard_queries(CH_TEST_DATA "/provisioner-dashboard.json", 14);
    json_t *ours = dashboard_queries(CH_SOURCE_TREE "/contrib/grafana/choria-provisioner.json", 20);
    start_provisioner(f);
    start_prometheus(f);
    long malformed = run_fleet(f, "a", "7");
    usleep(2500000); /* a few scrapes between the two waves */
    malformed += run_fleet(f, "b", "8");
    assert_in_range(malformed, 1, LONG_MAX);

    /* each garbage node is one provision error once its RPC ran out of tries */
    char series[128];
    snprintf(series, sizeof(series), "choria_provisioner_provision_errors{site=\"%s\"}", SITE);
    for (int i = 0; i < 200 && cht_metric(f->monitor_port, series) < (double)malformed; i++)
        usleep(100000);
    assert_true(cht_metric(f->monitor_port, series) >= (double)malformed);
    promtool_finds_no_format_error(f);

    fprintf(stderr, "%ld malformed nodes\n", malformed);
    bool ok = every_query_answers(f, "upstream's dashboard", upstream);
    ok = every_query_answers(f, "contrib/grafana/choria-provisioner.json", ours) && ok;
    json_decref(upstream);
    json_decref(ours);
    if (!ok)
        fail_msg("a dashboard query has no data; provisioner: %s", cht_proc_stderr(f->provisioner));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(promtool_reports_a_broken_exposition, setup, teardown),
        cmocka_unit_test_setup_teardown(every_dashboard_query_returns_data, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
