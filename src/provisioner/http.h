/* The monitoring HTTP server: GET /metrics (Prometheus text format 0.0.4) and GET /healthz,
 * served by libmicrohttpd on its own internal thread. Anything else is 404 (405 for other
 * methods on those two paths). */
#ifndef PROV_HTTP_H
#define PROV_HTTP_H

#include "choria/common.h"
#include "choria/metrics.h"

#define PROV_HTTP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct prov_http_server prov_http_server;

typedef struct {
    /* NULL or "" = all interfaces (IPv6 dual stack, IPv4 only where IPv6 is unavailable),
     * as upstream's ":port"; otherwise a numeric IPv4 or IPv6 address, e.g. "127.0.0.1". */
    const char *bind;
    int port;            /* 0 = a free port chosen by the kernel, see prov_http_server_port */
    ch_metrics *metrics; /* rendered per request; must outlive the server; NULL = empty */
} prov_http_opts;

ch_status prov_http_server_start(const prov_http_opts *o, prov_http_server **out, ch_error *err);

/* The port actually listened on. */
int prov_http_server_port(const prov_http_server *s);

/* Stops the listener thread, waits for requests in progress, frees s. Accepts NULL. */
void prov_http_server_stop(prov_http_server *s);

#endif
