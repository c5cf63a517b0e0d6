/* NATS connection set-up shared by every program. */
#include "choria/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choria/util.h"

typedef struct {
    ch_conn_event_cb cb;
    void *closure;
    int64_t max_ms;
} conn_ctx;

static void emit(natsConnection *nc, conn_ctx *ctx, const char *event)
{
    if (ctx == NULL || ctx->cb == NULL)
        return;
    char url[512];
    ch_conn_connected_url(nc, url, sizeof(url));
    ctx->cb(event, url, ctx->closure);
}

static void on_connected(natsConnection *nc, void *closure)
{
    emit(nc, closure, "connected");
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    emit(nc, closure, "disconnected");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    emit(nc, closure, "reconnected");
}

static void on_closed(natsConnection *nc, void *closure)
{
    conn_ctx *ctx = closure;
    if (ctx != NULL && ctx->cb != NULL)
        ctx->cb("closed", "", ctx->closure);
    /* The context lives as long as the connection; closed is its last callback. */
    free(ctx);
}

/* Jittered exponential back-off between full passes over the server list. */
static int64_t reconnect_delay(natsConnection *nc, int attempts, void *closure)
{
    conn_ctx *ctx = closure;
    return ch_backoff_ms(attempts > 0 ? attempts - 1 : 0, 500, ctx->max_ms);
}

ch_status ch_conn_connect(const ch_conn_opts *o, natsConnection **nc, ch_error *err)
{
    *nc = NULL;
    if (o->server_count <= 0)
        return ch_error_set(err, CH_ERR_INVALID, "no broker URLs configured");

    natsOptions *opts = NULL;
    conn_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL || natsOptions_Create(&opts) != NATS_OK) {
        free(ctx);
        return ch_error_set(err, CH_ERR_NOMEM, "cannot allocate NATS options");
    }
    ctx->cb = o->on_event;
    ctx->closure = o->closure;
    ctx->max_ms = o->reconnect_max_ms > 0 ? o->reconnect_max_ms : 20000;

    natsStatus s = natsOptions_SetServers(opts, (const char **)o->servers, o->server_count);
    if (s == NATS_OK && o->name != NULL)
        s = natsOptions_SetName(opts, o->name);
    if (s == NATS_OK && o->user != NULL && o->user[0] != '\0')
        s = natsOptions_SetUserInfo(opts, o->user, o->password != NULL ? o->password : "");
    if (s == NATS_OK && o->token != NULL && o->token[0] != '\0')
        s = natsOptions_SetToken(opts, o->token);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 2000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetCustomReconnectDelay(opts, reconnect_delay, ctx);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(
            opts, o->reconnect_buffer_bytes > 0 ? o->reconnect_buffer_bytes : 10 * 1024);
    if (s == NATS_OK && o->inbox_prefix != NULL)
        s = natsOptions_SetCustomInboxPrefix(opts, o->inbox_prefix);
    if (s == NATS_OK && o->global_delivery)
        s = natsOptions_UseGlobalMessageDelivery(opts, true);
    if (s == NATS_OK && o->send_asap)
        s = natsOptions_SetSendAsap(opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, on_disconnected, ctx);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, on_reconnected, ctx);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, on_closed, ctx);
    if (s == NATS_OK && o->retry_initial_connect)
        s = natsOptions_SetRetryOnFailedConnect(opts, true, on_connected, ctx);
    if (s != NATS_OK) {
        natsOptions_Destroy(opts);
        free(ctx);
        return ch_error_set(err, CH_ERR_INVALID, "invalid connection options: %s",
                            natsStatus_GetText(s));
    }

    s = natsConnection_Connect(nc, opts);
    natsOptions_Destroy(opts);
    if (s == NATS_OK) {
        emit(*nc, ctx, "connected");
        return CH_OK;
    }
    if (s == NATS_NOT_YET_CONNECTED)
        return CH_OK;
    /* No connection object exists, so the closed callback never runs: free ctx here. */
    free(ctx);
    *nc = NULL;
    char first[512];
    ch_conn_redact_url(o->servers[0], first, sizeof(first));
    return ch_error_set(err, CH_ERR_CONNECTION, "cannot connect to %s%s: %s", first,
                        o->server_count > 1 ? " (and others)" : "", natsStatus_GetText(s));
}

void ch_conn_close(natsConnection *nc)
{
    if (nc == NULL)
        return;
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
}

void ch_conn_redact_url(const char *url, char *out, size_t out_size)
{
    const char *scheme = strstr(url, "://");
    const char *userinfo = scheme != NULL ? scheme + 3 : url;
    const char *at = strchr(userinfo, '@');
    const char *slash = strchr(userinfo, '/');
    if (at == NULL || (slash != NULL && slash < at)) {
        snprintf(out, out_size, "%s", url);
        return;
    }
    const char *colon = memchr(userinfo, ':', (size_t)(at - userinfo));
    if (colon == NULL) {
        snprintf(out, out_size, "%s", url);
        return;
    }
    snprintf(out, out_size, "%.*sxxxxx%s", (int)(colon + 1 - url), url, at);
}

void ch_conn_connected_url(natsConnection *nc, char *out, size_t out_size)
{
    char raw[512] = "";
    if (out_size == 0)
        return;
    out[0] = '\0';
    if (nc == NULL || natsConnection_GetConnectedUrl(nc, raw, sizeof(raw)) != NATS_OK)
        return;
    ch_conn_redact_url(raw, out, out_size);
}
