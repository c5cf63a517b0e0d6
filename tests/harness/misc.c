/* Project binary paths, files, log tails and small nats.c helpers for tests. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

ch_status cht_bin_path(const char *name, char *out, size_t out_size, ch_error *err)
{
    char self[4096];
    const char *dir = getenv("CH_BIN_DIR");
    if (name == NULL || name[0] == '\0' || strchr(name, '/') != NULL)
        return ch_error_set(err, CH_ERR_INVALID, "bad binary name '%s'", name ? name : "");
    if (dir == NULL || dir[0] == '\0') {
        /* Run by hand: the test executables live next to the project binaries. */
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
            return ch_error_set(err, CH_ERR_NOT_FOUND, "CH_BIN_DIR is not set (run via ctest)");
        self[n] = '\0';
        dir = dirname(self);
    }
    int n = snprintf(out, out_size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= out_size)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "path too long for %s", name);
    struct stat sb;
    if (stat(out, &sb) != 0 || !S_ISREG(sb.st_mode) || access(out, X_OK) != 0)
        return ch_error_set(err, CH_ERR_NOT_FOUND,
                            "project binary %s missing or not executable (build it first; "
                            "CH_BIN_DIR=%s)",
                            out, dir);
    return CH_OK;
}

ch_status cht_write_file(const char *path, ch_error *err, const char *fmt, ...)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return ch_error_set(err, CH_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(fp, fmt, ap);
    va_end(ap);
    int e = n < 0 ? errno : 0;
    /* fclose flushes: a full disk shows up here, not in vfprintf. */
    if (fclose(fp) != 0 && e == 0)
        e = errno != 0 ? errno : EIO;
    if (e != 0)
        return ch_error_set(err, CH_ERR_IO, "cannot write %s: %s", path, strerror(e));
    return CH_OK;
}

ch_status cht_sh(ch_error *err, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(cmd))
        return ch_error_set(err, CH_ERR_TOO_LARGE, "command too long: %.80s", cmd);
    int rc = system(cmd);
    if (rc != 0)
        return ch_error_set(err, CH_ERR_INTERNAL, "command failed (status %d): %.200s", rc, cmd);
    return CH_OK;
}

char *cht_file_tail(const char *path, size_t max_bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        goto out;
    off_t start = sb.st_size > (off_t)max_bytes ? sb.st_size - (off_t)max_bytes : 0;
    buf = malloc(max_bytes + 1);
    if (buf == NULL)
        goto out;
    size_t len = 0;
    while (len < max_bytes) {
        ssize_t n = pread(fd, buf + len, max_bytes - len, start + (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
out:
    close(fd);
    return buf;
}

void cht__print_log_tail(const char *what, const char *log_path)
{
    char *tail = cht_file_tail(log_path, 4096);
    fprintf(stderr, "cht: %s\n--- last lines of %s ---\n%s%s--- end of log ---\n", what, log_path,
            tail ? tail : "(unreadable)",
            (tail && tail[0] && tail[strlen(tail) - 1] != '\n') ? "\n" : "");
    fflush(stderr);
    free(tail);
}

static ch_status nats_err(ch_error *err, natsStatus s, const char *what)
{
    const char *last = nats_GetLastError(NULL);
    return ch_error_set(err, s == NATS_TIMEOUT ? CH_ERR_TIMEOUT : CH_ERR_CONNECTION, "%s: %s (%s)",
                        what, natsStatus_GetText(s), last ? last : "");
}

/* nats.c 3.4.1's natsOptions_SetURL takes ONE url (a comma list fails with "No server
 * available"); only natsConnection_ConnectTo splits lists. So split here for SetServers. */
static natsStatus set_servers(natsOptions *o, const char *urls)
{
    char copy[4096];
    const char *list[3 * CHT_CLUSTER_MAX];
    int n = 0;
    if (snprintf(copy, sizeof(copy), "%s", urls) >= (int)sizeof(copy))
        return NATS_INVALID_ARG;
    char *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save);
         t != NULL && n < (int)(sizeof(list) / sizeof(list[0])); t = strtok_r(NULL, ", ", &save))
        list[n++] = t;
    if (n == 0)
        return NATS_INVALID_ARG;
    return natsOptions_SetServers(o, list, n); /* copies the strings */
}

ch_status cht_nats_options(const char *urls, int timeout_ms, natsOptions **out, ch_error *err)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = set_servers(o, urls);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, timeout_ms > 0 ? timeout_ms : 2000);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(o, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, 300);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 100);
    if (s != NATS_OK) {
        natsOptions_Destroy(o);
        *out = NULL;
        return nats_err(err, s, "nats options");
    }
    *out = o;
    return CH_OK;
}

ch_status cht_nats_connect(const char *urls, int timeout_ms, natsConnection **out, ch_error *err)
{
    natsOptions *o = NULL;
    *out = NULL;
    ch_status st = cht_nats_options(urls, timeout_ms, &o, err);
    if (st != CH_OK)
        return st;
    natsStatus s = natsConnection_Connect(out, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        char what[160];
        snprintf(what, sizeof(what), "connect to %.120s", urls);
        return nats_err(err, s, what);
    }
    return CH_OK;
}

ch_status cht_election_bucket_create(const char *urls, const char *bucket, int ttl_s, ch_error *err)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    kvConfig kc;
    ch_status st = cht_nats_connect(urls, 5000, &nc, err);
    if (st != CH_OK)
        return st;
    kvConfig_Init(&kc);
    kc.Bucket = bucket;
    kc.History = 1;
    kc.TTL = (int64_t)ttl_s * 1000000000; /* nanoseconds */
    natsStatus s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK)
        s = js_CreateKeyValue(&kv, js, &kc);
    if (s != NATS_OK)
        st = nats_err(err, s, "create the election bucket");
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return st;
}

ch_status cht_nats_publish(natsConnection *nc, const char *subject, const void *data, size_t len,
                           ch_error *err)
{
    if (len > (size_t)CH_MAX_MESSAGE_SIZE)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "payload of %zu bytes", len);
    natsStatus s = natsConnection_Publish(nc, subject, data, (int)len);
    if (s == NATS_OK)
        s = natsConnection_FlushTimeout(nc, 5000);
    if (s != NATS_OK)
        return nats_err(err, s, "publish");
    return CH_OK;
}

int cht_free_port(void)
{
    int port = -1;
    return cht__free_ports(1, &port, NULL) == CH_OK ? port : -1;
}

double cht_metric(int port, const char *series)
{
    int status = 0;
    char *body = NULL;
    double v = -1;
    size_t n = strlen(series);
    if (cht_http_get(port, "/metrics", 2000, &status, &body, NULL) == CH_OK && status == 200) {
        for (char *line = body; line != NULL && *line;) {
            char *next = strchr(line, '\n');
            if (strncmp(line, series, n) == 0 && line[n] == ' ')
                v = strtod(line + n + 1, NULL);
            line = next != NULL ? next + 1 : NULL;
        }
    }
    free(body);
    return v;
}
