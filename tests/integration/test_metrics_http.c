/* The monitoring server over real sockets: /metrics passes `promtool check metrics` and
 * carries every metric the bundled Grafana dashboard queries. */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "http.h"
#include "metrics.h"
#include "harness.h"

typedef struct {
    ch_metrics *m;
    prov_metrics pm;
    prov_http_server *srv;
    int port;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ch_error err;
    f->m = ch_metrics_new();
    if (f->m == NULL || prov_metrics_register(f->m, "lab \"1\"", &f->pm, &err) != CH_OK)
        return -1;
    ch_metric_inc(f->pm.discovered);
    ch_metric_inc(f->pm.provisioned);
    ch_metric_observe(f->pm.helper_time, 0.042);
    prov_metrics_rpc_time(&f->pm, "choria_provision#jwt", 0.003);
    prov_metrics_rpc_error(&f->pm, "rpcutil#inventory");
    prov_http_opts o = {.bind = "127.0.0.1", .port = 0, .metrics = f->m};
    if (prov_http_server_start(&o, &f->srv, &err) != CH_OK) {
        fprintf(stderr, "start: %s\n", err.msg);
        return -1;
    }
    f->port = prov_http_server_port(f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f != NULL) {
        prov_http_server_stop(f->srv);
        ch_metrics_free(f->m);
        free(f);
    }
    return 0;
}

static char *get(int port, const char *path, int want_status)
{
    ch_error err;
    int status = 0;
    char *body = NULL;
    CHT_CHECK(cht_http_get(port, path, 5000, &status, &body, &err), &err);
    assert_int_equal(status, want_status);
    assert_non_null(body);
    return body;
}

/* The raw response head, to see the headers cht_http_get does not return. */
static void raw_head(int port, const char *request, char *out, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_in_range(fd, 0, INT_MAX);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    size_t n = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (n + 1 < size && poll(&p, 1, 5000) == 1) {
        ssize_t r = read(fd, out + n, size - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    out[n] = '\0';
    close(fd);
}

static void test_metrics_served_as_text_format_0_0_4(void **state)
{
    fixture *f = *state;
    assert_in_range(f->port, 1, 65535);
    char *body = get(f->port, "/metrics", 200);
    assert_non_null(strstr(body, "choria_provisioner_discovered{site=\"lab \\\"1\\\"\"} 1\n"));
    assert_non_null(strstr(body, "# TYPE choria_provisioner_rpc_time summary\n"));
    free(body);

    char head[4096], status[16];
    raw_head(f->port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", head,
             sizeof(head));
    snprintf(status, sizeof(status), "%.12s", head);
    assert_string_equal(status, "HTTP/1.1 200");
    assert_non_null(strcasestr(head, "\r\nContent-Type: text/plain; version=0.0.4; "
                                     "charset=utf-8\r\n"));
    raw_head(f->port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", head,
             sizeof(head));
    snprintf(status, sizeof(status), "%.12s", head);
    assert_string_equal(status, "HTTP/1.1 405");
}

static void test_updates_show_on_the_next_scrape(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 41; i++)
        ch_metric_inc(f->pm.provisioned);
    char *body = get(f->port, "/metrics", 200);
    assert_non_null(strstr(body, "choria_provisioner_provisioned{site=\"lab \\\"1\\\"\"} 42\n"));
    free(body);
}

static void test_healthz_ok_and_other_paths_404(void **state)
{
    fixture *f = *state;
    char *body = get(f->port, "/healthz", 200);
    assert_string_equal(body, "ok\n");
    free(body);
    free(get(f->port, "/", 404));
    free(get(f->port, "/metricsx", 404));
}

static void test_promtool_finds_no_format_error(void **state)
{
    fixture *f = *state;
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        fail_msg("promtool is not installed (Debian package prometheus, scripts/install-deps)");
    char *body = get(f->port, "/metrics", 200);
    char path[] = "/tmp/ch-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_in_range(fd, 0, INT_MAX);
    assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    close(fd);
    free(body);

    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    int rc = system(cmd);
    unlink(path);
    assert_true(WIFEXITED(rc));
    /* 1 = format error; 3 = lint warnings only (upstream's counters lack _total) */
    if (WEXITSTATUS(rc) != 0 && WEXITSTATUS(rc) != 3)
        fail_msg("promtool check metrics exited %d", WEXITSTATUS(rc));
}

static void collect_exprs(json_t *v, json_t *out)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c)
        {
            if (strcmp(k, "expr") == 0 && json_is_string(c))
                json_array_append(out, c);
            else
                collect_exprs(c, out);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) collect_exprs(c, out);
    }
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == ':';
}

static void test_every_dashboard_metric_is_exposed(void **state)
{
    fixture *f = *state;
    const char *path = CH_TEST_DATA "/provisioner-dashboard.json";
    json_error_t jerr;
    json_t *dash = json_load_file(path, 0, &jerr);
    if (dash == NULL)
        fail_msg("%s: %s", path, jerr.text);
    json_t *exprs = json_array();
    collect_exprs(dash, exprs);
    assert_in_range(json_array_size(exprs), 1, SIZE_MAX);

    char *body = get(f->port, "/metrics", 200);
    size_t checked = 0, i;
    json_t *e;
    json_array_foreach(exprs, i, e)
    {
        const char *s = json_string_value(e);
        for (const char *p = strstr(s, "choria_"); p != NULL; p = strstr(p, "choria_")) {
            if (p > s && name_char(p[-1])) {
                p++;
                continue;
            }
            size_t n = 0;
            while (name_char(p[n]))
                n++;
            char want[160];
            assert_in_range(n + 3, 0, sizeof(want) - 1);
            /* a sample line starting with the name, followed by its labels */
            snprintf(want, sizeof(want), "\n%.*s{", (int)n, p);
            if (strstr(body, want) == NULL)
                fail_msg("dashboard metric %.*s is not in /metrics", (int)n, p);
            checked++;
            p += n;
        }
    }
    assert_in_range(checked, 10, SIZE_MAX);
    free(body);
    json_decref(exprs);
    json_decref(dash);
}

static void test_bad_bind_address_and_port_in_use_are_errors(void **state)
{
    fixture *f = *state;
    prov_http_server *s = NULL;
    ch_error err;
    prov_http_opts o = {.bind = "not-an-ip", .port = 0, .metrics = f->m};
    assert_int_equal(prov_http_server_start(&o, &s, &err), CH_ERR_INVALID);
    assert_null(s);
    o.bind = "127.0.0.1";
    o.port = f->port;
    assert_int_equal(prov_http_server_start(&o, &s, &err), CH_ERR_IO);
    assert_null(s);
    o.port = 70000;
    assert_int_equal(prov_http_server_start(&o, &s, &err), CH_ERR_INVALID);
}

static void test_all_interfaces_bind_is_reachable_on_loopback(void **state)
{
    fixture *f = *state;
    prov_http_server *s = NULL;
    ch_error err;
    prov_http_opts o = {.bind = NULL, .port = 0, .metrics = f->m};
    CHT_CHECK(prov_http_server_start(&o, &s, &err), &err);
    char *body = get(prov_http_server_port(s), "/healthz", 200);
    free(body);
    prov_http_server_stop(s);
    prov_http_server_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_served_as_text_format_0_0_4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_updates_show_on_the_next_scrape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthz_ok_and_other_paths_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promtool_finds_no_format_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_dashboard_metric_is_exposed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_bind_address_and_port_in_use_are_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_all_interfaces_bind_is_reachable_on_loopback, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
