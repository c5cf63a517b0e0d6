/* /metrics and /healthz over libmicrohttpd. */
#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "choria/json.h"

#define HTTP_CONN_LIMIT 64
#define HTTP_CONN_TIMEOUT_S 10

struct prov_http_server {
    struct MHD_Daemon *daemon;
    ch_metrics *metrics;
    int port;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int code, const char *type,
                             char *body, size_t len, bool owned)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (ret == MHD_YES && code == MHD_HTTP_METHOD_NOT_ALLOWED)
        ret = MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (ret == MHD_YES)
        ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned int code, const char *msg)
{
    return reply(c, code, "text/plain; charset=utf-8", (char *)msg, strlen(msg), false);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    prov_http_server *s = cls;
    bool metrics = strcmp(url, "/metrics") == 0;
    bool healthz = strcmp(url, "/healthz") == 0;

    if (!metrics && !healthz)
        return text(c, MHD_HTTP_NOT_FOUND, "404 page not found\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (healthz)
        return text(c, MHD_HTTP_OK, "ok\n");

    ch_buf b;
    ch_buf_init(&b);
    ch_error err;
    if (s->metrics != NULL && ch_metrics_render(s->metrics, &b, &err) != CH_OK) {
        ch_buf_free(&b);
        return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "could not render metrics\n");
    }
    size_t len = 0;
    char *body = b.len > 0 ? ch_buf_steal(&b, &len) : NULL;
    ch_buf_free(&b);
    if (body == NULL)
        return reply(c, MHD_HTTP_OK, PROV_HTTP_METRICS_CONTENT_TYPE, (char *)"", 0, false);
    return reply(c, MHD_HTTP_OK, PROV_HTTP_METRICS_CONTENT_TYPE, body, len, true);
}

ch_status prov_http_server_start(const prov_http_opts *o, prov_http_server **out, ch_error *err)
{
    if (o == NULL || out == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no HTTP options");
    *out = NULL;
    if (o->port < 0 || o->port > 65535)
        return ch_error_set(err, CH_ERR_INVALID, "invalid monitor port %d", o->port);

    prov_http_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    s->metrics = o->metrics;

    const unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD;
    uint16_t port = (uint16_t)o->port;
    if (o->bind == NULL || o->bind[0] == '\0') {
        s->daemon = MHD_start_daemon(
            flags | MHD_USE_DUAL_STACK, port, NULL, NULL, handle, s, MHD_OPTION_CONNECTION_LIMIT,
            HTTP_CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, HTTP_CONN_TIMEOUT_S, MHD_OPTION_END);
        if (s->daemon == NULL) /* no IPv6 on this host */
            s->daemon = MHD_start_daemon(
                flags, port, NULL, NULL, handle, s, MHD_OPTION_CONNECTION_LIMIT, HTTP_CONN_LIMIT,
                MHD_OPTION_CONNECTION_TIMEOUT, HTTP_CONN_TIMEOUT_S, MHD_OPTION_END);
    } else {
        struct sockaddr_in a4;
        struct sockaddr_in6 a6;
        struct sockaddr *sa;
        unsigned int f = flags;
        memset(&a4, 0, sizeof(a4));
        memset(&a6, 0, sizeof(a6));
        if (inet_pton(AF_INET, o->bind, &a4.sin_addr) == 1) {
            a4.sin_family = AF_INET;
            a4.sin_port = htons(port);
            sa = (struct sockaddr *)&a4;
        } else if (inet_pton(AF_INET6, o->bind, &a6.sin6_addr) == 1) {
            a6.sin6_family = AF_INET6;
            a6.sin6_port = htons(port);
            sa = (struct sockaddr *)&a6;
            f |= MHD_USE_IPv6;
        } else {
            free(s);
            return ch_error_set(err, CH_ERR_INVALID,
                                "monitor bind address %s is not an IPv4 or IPv6 address", o->bind);
        }
        s->daemon = MHD_start_daemon(
            f, port, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_CONNECTION_LIMIT,
            HTTP_CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, HTTP_CONN_TIMEOUT_S, MHD_OPTION_END);
    }
    if (s->daemon == NULL) {
        free(s);
        return ch_error_set(err, CH_ERR_IO, "cannot listen on %s port %d",
                            o->bind != NULL && o->bind[0] != '\0' ? o->bind : "*", o->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info != NULL && info->port != 0 ? info->port : o->port;
    *out = s;
    return CH_OK;
}

int prov_http_server_port(const prov_http_server *s)
{
    return s != NULL ? s->port : 0;
}

void prov_http_server_stop(prov_http_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}
