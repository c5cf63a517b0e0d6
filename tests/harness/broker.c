/* A real nats-server on free loopback ports, in its own temporary directory. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_ATTEMPTS 3 /* new ports after losing a port race */
#define PATH_LEN 1200

extern char **environ;

struct cht_broker {
    char dir[1024];
    char conf[PATH_LEN];
    char log[PATH_LEN];
    char exe[1024];
    char name[64];
    char url[64];
    int port, http_port, cluster_port;
    bool jetstream;
    int ready_timeout_ms;
    int starts;
    pid_t pid;
};

void cht_broker_opts_init(cht_broker_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->jetstream = true;
    o->server_name = "cht";
    o->ready_timeout_ms = CHT_READY_TIMEOUT_MS;
    o->js_max_memory = "256MB";
    o->js_max_file = "1GB";
}

ch_status cht__free_ports(int n, int *ports, ch_error *err)
{
    int fds[3 * CHT_CLUSTER_MAX];
    ch_status st = CH_OK;
    int opened = 0;
    if (n <= 0 || n > (int)(sizeof(fds) / sizeof(fds[0])))
        return ch_error_set(err, CH_ERR_INVALID, "cannot pick %d ports", n);
    for (; opened < n; opened++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
            st = ch_error_set(err, CH_ERR_IO, "cannot bind a free port on 127.0.0.1: %s",
                              strerror(errno));
            if (fd >= 0)
                close(fd);
            break;
        }
        fds[opened] = fd;
        ports[opened] = ntohs(sa.sin_port);
    }
    for (int i = 0; i < opened; i++)
        close(fds[i]);
    return st;
}

static ch_status find_server(char *out, size_t out_size, ch_error *err)
{
    const char *env = getenv("CHT_NATS_SERVER");
    if (env != NULL && env[0] != '\0')
        return cht__resolve_exe(env, out, out_size, err);
    if (cht__resolve_exe("nats-server", out, out_size, NULL) == CH_OK)
        return CH_OK;
    if (cht__resolve_exe("/usr/sbin/nats-server", out, out_size, NULL) == CH_OK)
        return CH_OK;
    return ch_error_set(err, CH_ERR_NOT_FOUND,
                        "nats-server not found in PATH nor /usr/sbin (apt-get install "
                        "nats-server, or set CHT_NATS_SERVER)");
}

static ch_status write_config(cht_broker *b, const cht_broker_opts *o, const char *cluster,
                              ch_error *err)
{
    FILE *f = fopen(b->conf, "w");
    if (f == NULL)
        return ch_error_set(err, CH_ERR_IO, "%s: %s", b->conf, strerror(errno));
    fprintf(f, "# written by the test harness\n");
    fprintf(f, "server_name: \"%s\"\n", b->name);
    fprintf(f, "listen: 127.0.0.1:%d\n", b->port);
    fprintf(f, "http: 127.0.0.1:%d\n", b->http_port);
    if (b->jetstream) {
        fprintf(f, "jetstream {\n  store_dir: \"%s/store\"\n", b->dir);
        fprintf(f, "  max_memory_store: %s\n  max_file_store: %s\n}\n",
                o->js_max_memory ? o->js_max_memory : "256MB",
                o->js_max_file ? o->js_max_file : "1GB");
    }
    if (cluster != NULL)
        fprintf(f, "%s\n", cluster);
    if (o->extra_config != NULL)
        fprintf(f, "\n# extra\n%s\n", o->extra_config);
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed)
        return ch_error_set(err, CH_ERR_IO, "cannot write %s", b->conf);
    return CH_OK;
}

ch_status cht__broker_new(const cht_broker_opts *o, const char *label, int port, int http_port,
                          int cluster_port, const char *cluster_block, cht_broker **out,
                          ch_error *err)
{
    cht_broker_opts defaults;
    if (o == NULL) {
        cht_broker_opts_init(&defaults);
        o = &defaults;
    }
    *out = NULL;
    cht_broker *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    ch_status st = find_server(b->exe, sizeof(b->exe), err);
    if (st != CH_OK)
        goto out;
    const char *name = o->server_name ? o->server_name : "cht";
    if (strlen(name) >= sizeof(b->name) || strpbrk(name, "\"\\\n") != NULL) {
        st = ch_error_set(err, CH_ERR_INVALID, "bad server name '%s'", name);
        goto out;
    }
    snprintf(b->name, sizeof(b->name), "%s", name);
    b->port = port;
    b->http_port = http_port;
    b->cluster_port = cluster_port;
    b->jetstream = o->jetstream;
    b->ready_timeout_ms = o->ready_timeout_ms > 0 ? o->ready_timeout_ms : CHT_READY_TIMEOUT_MS;
    snprintf(b->url, sizeof(b->url), "nats://127.0.0.1:%d", port);
    st = cht_temp_dir(label, b->dir, sizeof(b->dir), err);
    if (st != CH_OK)
        goto out;
    snprintf(b->conf, sizeof(b->conf), "%s/nats-server.conf", b->dir);
    snprintf(b->log, sizeof(b->log), "%s/nats-server.log", b->dir);
    st = write_config(b, o, cluster_block, err);
out:
    if (st != CH_OK)
        cht_broker_free(b);
    else
        *out = b;
    return st;
}

ch_status cht__broker_spawn(cht_broker *b, ch_error *err)
{
    if (b->pid > 0)
        return ch_error_set(err, CH_ERR_INVALID, "nats-server %s already runs", b->name);
    int log = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0)
        return ch_error_set(err, CH_ERR_IO, "%s: %s", b->log, strerror(errno));
    b->starts++;
    dprintf(log, "=== cht: start #%d of %s (client %d, http %d, cluster %d) ===\n", b->starts,
            b->name, b->port, b->http_port, b->cluster_port);
    char *argv[] = {b->exe, "-c", b->conf, NULL};
    cht__spawn_spec spec = {.path = b->exe,
                            .argv = argv,
                            .envp = environ,
                            .stdin_fd = -1,
                            .stdout_fd = log,
                            .stderr_fd = log,
                            .cwd = b->dir};
    ch_status st = cht__spawn(&spec, &b->pid, err);
    close(log);
    return st;
}

static bool log_mentions(const char *path, const char *needle)
{
    char *tail = cht_file_tail(path, 16384);
    bool found = tail != NULL && strstr(tail, needle) != NULL;
    free(tail);
    return found;
}

ch_status cht__broker_wait(cht_broker *b, int timeout_ms, bool *addr_in_use, ch_error *err)
{
    int64_t deadline = cht__now_ms() + timeout_ms;
    int last_status = 0;
    const char *last_path = "/healthz";
    char what[256];
    *addr_in_use = false;
    if (b->pid <= 0)
        return ch_error_set(err, CH_ERR_INVALID, "nats-server %s is not running", b->name);
    for (;;) {
        int ws = 0;
        if (cht__pid_reap(b->pid, &ws)) {
            b->pid = 0;
            *addr_in_use = log_mentions(b->log, "address already in use");
            snprintf(what, sizeof(what), "nats-server %s exited (status 0x%x) before it was ready",
                     b->name, (unsigned)ws);
            cht__print_log_tail(what, b->log);
            return ch_error_set(err, CH_ERR_CONNECTION, "%s%s; log %s", what,
                                *addr_in_use ? " (address already in use)" : "", b->log);
        }
        int64_t left = deadline - cht__now_ms();
        int per = left > 1000 ? 1000 : (left > 0 ? (int)left : 1);
        last_path = "/healthz";
        if (cht_http_get(b->http_port, last_path, per, &last_status, NULL, NULL) == CH_OK &&
            last_status == 200) {
            if (!b->jetstream)
                return CH_OK;
            last_path = "/healthz?js-enabled-only=true";
            if (cht_http_get(b->http_port, last_path, per, &last_status, NULL, NULL) == CH_OK &&
                last_status == 200)
                return CH_OK;
        }
        if (cht__now_ms() >= deadline)
            break;
        cht__sleep_ms(25);
    }
    snprintf(what, sizeof(what), "nats-server %s not ready after %d ms (last %s -> %d)", b->name,
             timeout_ms, last_path, last_status);
    cht__print_log_tail(what, b->log);
    return ch_error_set(err, CH_ERR_TIMEOUT, "%s; log %s", what, b->log);
}

ch_status cht_broker_wait_ready(cht_broker *b, int timeout_ms, ch_error *err)
{
    bool in_use;
    return cht__broker_wait(b, timeout_ms > 0 ? timeout_ms : b->ready_timeout_ms, &in_use, err);
}

ch_status cht_broker_start(const cht_broker_opts *o, cht_broker **out, ch_error *err)
{
    cht_broker_opts defaults;
    if (o == NULL) {
        cht_broker_opts_init(&defaults);
        o = &defaults;
    }
    *out = NULL;
    ch_status st = CH_ERR_INTERNAL;
    for (int attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
        int ports[2];
        cht_broker *b = NULL;
        bool in_use = false;
        st = cht__free_ports(2, ports, err);
        if (st == CH_OK)
            st = cht__broker_new(o, "broker", ports[0], ports[1], 0, NULL, &b, err);
        if (st == CH_OK)
            st = cht__broker_spawn(b, err);
        if (st == CH_OK)
            st = cht__broker_wait(b, b->ready_timeout_ms, &in_use, err);
        if (st == CH_OK) {
            *out = b;
            return CH_OK;
        }
        cht_broker_free(b);
        if (!in_use)
            break;
        fprintf(stderr, "cht: lost a port race, retrying with new ports (%d/%d)\n", attempt,
                START_ATTEMPTS);
    }
    return st;
}

void cht_broker_free(cht_broker *b)
{
    if (b == NULL)
        return;
    if (b->pid > 0 && !cht__pid_stop(b->pid, SIGTERM, CHT_STOP_GRACE_MS, NULL))
        fprintf(stderr, "cht: could not reap nats-server pid %ld\n", (long)b->pid);
    b->pid = 0;
    cht_temp_dir_remove(b->dir, NULL);
    free(b);
}

const char *cht_broker_url(const cht_broker *b)
{
    return b->url;
}

int cht_broker_port(const cht_broker *b)
{
    return b->port;
}

int cht_broker_http_port(const cht_broker *b)
{
    return b->http_port;
}

int cht_broker_cluster_port(const cht_broker *b)
{
    return b->cluster_port;
}

const char *cht_broker_name(const cht_broker *b)
{
    return b->name;
}

const char *cht_broker_dir(const cht_broker *b)
{
    return b->dir;
}

const char *cht_broker_config_path(const cht_broker *b)
{
    return b->conf;
}

const char *cht_broker_log_path(const cht_broker *b)
{
    return b->log;
}

pid_t cht_broker_pid(const cht_broker *b)
{
    return b->pid;
}

bool cht_broker_running(const cht_broker *b)
{
    return b->pid > 0;
}

static ch_status stop_with(cht_broker *b, int sig, ch_error *err)
{
    if (b->pid <= 0)
        return CH_OK;
    if (!cht__pid_stop(b->pid, sig, CHT_STOP_GRACE_MS, NULL))
        return ch_error_set(err, CH_ERR_INTERNAL, "nats-server %s (pid %ld) did not die", b->name,
                            (long)b->pid);
    b->pid = 0;
    return CH_OK;
}

ch_status cht_broker_stop(cht_broker *b, ch_error *err)
{
    return stop_with(b, SIGTERM, err);
}

ch_status cht_broker_crash(cht_broker *b, ch_error *err)
{
    return stop_with(b, SIGKILL, err);
}

ch_status cht_broker_restart(cht_broker *b, ch_error *err)
{
    bool in_use;
    ch_status st = stop_with(b, SIGTERM, err);
    if (st == CH_OK)
        st = cht__broker_spawn(b, err);
    if (st == CH_OK)
        st = cht__broker_wait(b, b->ready_timeout_ms, &in_use, err);
    return st;
}

ch_status cht_broker_signal(cht_broker *b, int sig, ch_error *err)
{
    if (b->pid <= 0)
        return ch_error_set(err, CH_ERR_INVALID, "nats-server %s is not running", b->name);
    if (kill(b->pid, sig) != 0)
        return ch_error_set(err, CH_ERR_IO, "kill(%ld, %d): %s", (long)b->pid, sig,
                            strerror(errno));
    /* kill() returns before the stop takes effect; callers want a broker that is hung. */
    for (int i = 0; sig == SIGSTOP && i < 200; i++) {
        char st = cht__pid_state(b->pid);
        if (st == 'T' || st == 't')
            return CH_OK;
        cht__sleep_ms(5);
    }
    if (sig == SIGSTOP)
        return ch_error_set(err, CH_ERR_TIMEOUT, "nats-server %s did not stop", b->name);
    return CH_OK;
}
