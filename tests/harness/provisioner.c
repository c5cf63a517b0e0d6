/* choria-provisioner for integration tests: its two configuration files, a free monitor port,
 * the real binary and the wait until it serves /healthz (or a chosen metric). */
#include "harness.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 1024
#define PROBE_MS 1000 /* one /healthz or /metrics request at most */
#define POLL_MS 100   /* between requests */

typedef struct {
    char yaml[PATH_MAX_LEN];
    char client[PATH_MAX_LEN];
    int port; /* 0 without a monitor */
} files;

static ch_status join(const char *dir, const char *name, char *out, ch_error *err)
{
    int n = snprintf(out, PATH_MAX_LEN, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_MAX_LEN)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "path too long: %s/%s", dir, name);
    return CH_OK;
}

/* The monitor lines go last: YAML keys have no order, and a text that ends at the top level
 * of its mapping can take more keys without being parsed here. */
static ch_status write_files(const cht_provisioner_opts *o, files *fs, ch_error *err)
{
    ch_status st =
        join(o->dir, o->config_name ? o->config_name : "provisioner.yaml", fs->yaml, err);
    if (st == CH_OK && o->client_config != NULL) {
        st = join(o->dir, o->client_name ? o->client_name : "client.conf", fs->client, err);
        if (st == CH_OK)
            st = cht_write_file(fs->client, err, "%s", o->client_config);
    }
    if (st != CH_OK)
        return st;
    if (o->no_monitor)
        return cht_write_file(fs->yaml, err, "%s", o->config);
    fs->port = cht_free_port();
    if (fs->port <= 0)
        return ch_error_set(err, CH_ERR_IO, "no free port for monitor_port");
    size_t len = strlen(o->config);
    const char *nl = len > 0 && o->config[len - 1] != '\n' ? "\n" : "";
    return cht_write_file(fs->yaml, err, "%s%smonitor_port: %d\nmonitor_bind: 127.0.0.1\n",
                          o->config, nl, fs->port);
}

static ch_status spawn(const cht_provisioner_opts *o, const files *fs, cht_proc **out,
                       ch_error *err)
{
    char bin[PATH_MAX_LEN];
    const char *argv[7 + CHT_PROVISIONER_MAX_ARGS + 1];
    int n = 0;
    ch_status st = cht_bin_path("choria-provisioner", bin, sizeof(bin), err);
    if (st != CH_OK)
        return st;
    argv[n++] = bin;
    argv[n++] = "run";
    argv[n++] = "--config";
    argv[n++] = fs->yaml;
    if (o->client_config != NULL) {
        argv[n++] = "--choria-config";
        argv[n++] = fs->client;
    }
    for (const char *const *a = o->extra_args; a != NULL && *a != NULL; a++) {
        if (a - o->extra_args >= CHT_PROVISIONER_MAX_ARGS)
            return ch_error_set(err, CH_ERR_TOO_LARGE, "more than %d extra arguments",
                                CHT_PROVISIONER_MAX_ARGS);
        argv[n++] = *a;
    }
    argv[n] = NULL;
    cht_proc_opts po = {.argv = argv, .env = o->env};
    return cht_proc_spawn(&po, out, err);
}

static bool ready(const cht_provisioner_opts *o, int port, int probe_ms)
{
    if (o->ready_series != NULL)
        return cht_metric(port, o->ready_series) == o->ready_value;
    int status = 0;
    return cht_http_get(port, "/healthz", probe_ms, &status, NULL, NULL) == CH_OK && status == 200;
}

/* ch_error holds 256 bytes: the whole stderr goes to ours, its last line into err. */
static ch_status report(cht_proc *p, ch_status st, const char *what, ch_error *err)
{
    const char *text = cht_proc_stderr(p);
    size_t len = strlen(text);
    while (len > 0 && text[len - 1] == '\n')
        len--;
    size_t start = len;
    while (start > 0 && text[start - 1] != '\n')
        start--;
    fprintf(stderr, "cht: choria-provisioner %s\n--- its stderr ---\n%s%s--- end ---\n", what, text,
            (len > 0 && text[strlen(text) - 1] != '\n') ? "\n" : "");
    fflush(stderr);
    return ch_error_set(err, st, "choria-provisioner %s: %.*s", what, (int)(len - start),
                        text + start);
}

static ch_status wait_ready(const cht_provisioner_opts *o, cht_proc *p, int port, ch_error *err)
{
    int timeout_ms = o->ready_timeout_ms > 0 ? o->ready_timeout_ms : CHT_READY_TIMEOUT_MS;
    int64_t deadline = cht__now_ms() + timeout_ms;
    char what[256];
    for (;;) {
        int64_t left = deadline - cht__now_ms();
        if (ready(o, port, left < PROBE_MS ? (left > 0 ? (int)left : 1) : PROBE_MS))
            return CH_OK;
        int ws = 0;
        if (cht_proc_wait(p, 0, &ws, NULL) == CH_OK) {
            snprintf(what, sizeof(what), "exited (status 0x%x) before it was ready", (unsigned)ws);
            return report(p, CH_ERR_CONNECTION, what, err);
        }
        if (cht__now_ms() >= deadline)
            break;
        cht__sleep_ms(POLL_MS);
    }
    if (o->ready_series != NULL)
        snprintf(what, sizeof(what), "%s is not %g after %d ms", o->ready_series, o->ready_value,
                 timeout_ms);
    else
        snprintf(what, sizeof(what), "/healthz on port %d did not answer within %d ms", port,
                 timeout_ms);
    return report(p, CH_ERR_TIMEOUT, what, err);
}

ch_status cht_provisioner_start(const cht_provisioner_opts *o, cht_proc **out, int *monitor_port,
                                ch_error *err)
{
    *out = NULL;
    if (monitor_port != NULL)
        *monitor_port = 0;
    if (o == NULL || o->dir == NULL || o->config == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "cht_provisioner_start needs dir and config");
    files fs;
    memset(&fs, 0, sizeof(fs));
    cht_proc *p = NULL;
    ch_status st = write_files(o, &fs, err);
    if (st == CH_OK)
        st = spawn(o, &fs, &p, err);
    if (st == CH_OK && !o->no_monitor && !o->no_wait)
        st = wait_ready(o, p, fs.port, err);
    if (st != CH_OK) {
        cht_proc_free(p);
        return st;
    }
    if (monitor_port != NULL)
        *monitor_port = fs.port;
    *out = p;
    return CH_OK;
}

ch_status cht_provisioner_start_member(const cht_member_opts *m, cht_proc **out, int *monitor_port,
                                       ch_error *err)
{
    *out = NULL;
    if (m == NULL || m->dir == NULL || m->site == NULL || m->urls == NULL)
        return ch_error_set(err, CH_ERR_INVALID,
                            "cht_provisioner_start_member needs dir, site "
                            "and urls");
    char helper[PATH_MAX_LEN], cname[32], pname[32], client[1024], yaml[2048], password[256] = "";
    ch_status st = cht_bin_path("choria-demo-helper", helper, sizeof(helper), err);
    if (st != CH_OK)
        return st;
    snprintf(cname, sizeof(cname), "pc%d.conf", m->index);
    snprintf(pname, sizeof(pname), "p%d.yaml", m->index);
    if (m->provisioning_password != NULL)
        snprintf(password, sizeof(password), "broker_provisioning_password: %s\n",
                 m->provisioning_password);
    int n = snprintf(client, sizeof(client),
                     "identity = p%d.example.net\nplugin.choria.middleware_hosts = %s\n", m->index,
                     m->urls);
    int y = snprintf(yaml, sizeof(yaml),
                     "workers: %d\nsite: %s\nhelper: %s\n%s"
                     "leader_election: true\nleader_election_api_prefix: $JS.API\n"
                     "logfile: %s/p%d.log\n",
                     m->workers > 0 ? m->workers : 4, m->site, helper, password, m->dir, m->index);
    if (n < 0 || n >= (int)sizeof(client) || y < 0 || y >= (int)sizeof(yaml))
        return ch_error_set(err, CH_ERR_TOO_LARGE, "member %d: configuration too long", m->index);
    cht_provisioner_opts o = {.dir = m->dir,
                              .config = yaml,
                              .config_name = pname,
                              .client_config = client,
                              .client_name = cname,
                              .no_wait = m->no_wait};
    return cht_provisioner_start(&o, out, monitor_port, err);
}
