/* NATS connections the way Choria makes them: several brokers, reconnect forever with a
 * jittered back-off, optional user/password, a connection name, and callbacks. */
#ifndef CHORIA_CONN_H
#define CHORIA_CONN_H

#include <nats/nats.h>

#include "choria/common.h"

typedef void (*ch_conn_event_cb)(const char *event, const char *url, void *closure);

typedef struct {
    const char *const *servers; /* nats://host:port URLs */
    int server_count;
    const char *name;           /* connection name shown by the broker, usually the identity */
    const char *user;           /* optional */
    const char *password;       /* optional; never logged */
    const char *token;          /* optional NATS token (provisioning JWT) */
    int64_t connect_timeout_ms; /* one TCP connect attempt, default 2000 */
    int64_t reconnect_max_ms;   /* back-off ceiling, default 20000 as go-choria TwentySec */
    bool retry_initial_connect; /* keep trying in the background if the first try fails */
    int reconnect_buffer_bytes; /* default 10 KiB as go-choria */
    const char *inbox_prefix;   /* optional custom inbox prefix */
    bool global_delivery;       /* share nats.c's delivery thread pool instead of one thread
                                   per subscription (thousands of subscriptions) */
    bool send_asap;             /* publish at once instead of nats.c's up-to-1 ms batching:
                                   request/reply latency matters more than batching here */
    ch_conn_event_cb on_event;  /* "connected", "disconnected", "reconnected", "closed" */
    void *closure;
} ch_conn_opts;

/* Connects. With retry_initial_connect, CH_OK is returned even when no broker answered yet;
 * on_event("connected") fires once the connection is up. */
ch_status ch_conn_connect(const ch_conn_opts *opts, natsConnection **nc, ch_error *err);

/* Closes and destroys the connection (NULL is fine). */
void ch_conn_close(natsConnection *nc);

/* Copies url into out with any password replaced by "xxxxx" (like Go's URL.Redacted). */
void ch_conn_redact_url(const char *url, char *out, size_t out_size);

/* The URL of the broker the connection is using, redacted; "" when not connected. */
void ch_conn_connected_url(natsConnection *nc, char *out, size_t out_size);

#endif
