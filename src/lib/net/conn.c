/* NATS connection set-up shared by every program. */
#include "choria/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "choria/pki.h"
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

/* nats.c's last error text without its "(file.c:123): " source prefix; NULL when none. */
static const char *last_error_detail(void)
{
    const char *e = nats_GetLastError(NULL);
    const char *p = e != NULL && e[0] == '(' ? strstr(e, "): ") : NULL;
    return p != NULL ? p + 3 : e;
}

/* Jittered exponential back-off between full passes over the server list. nats.c calls it
 * after every failed pass, in the thread that tried, so the failure is reported from here. */
static int64_t reconnect_delay(natsConnection *nc, int attempts, void *closure)
{
    (void)nc;
    conn_ctx *ctx = closure;
    if (ctx->cb != NULL) {
        const char *why = last_error_detail();
        ctx->cb("connect failed", why != NULL && why[0] != '\0' ? why : "no broker answered",
                ctx->closure);
    }
    return ch_backoff_ms(attempts > 0 ? attempts - 1 : 0, 500, ctx->max_ms);
}

static bool any_tls_url(const ch_conn_opts *o)
{
    for (int i = 0; i < o->server_count; i++)
        if (strncasecmp(o->servers[i], "tls://", 6) == 0)
            return true;
    return false;
}

/* nats.c's TLS options; it checks the broker's certificate against the URL's host (or
 * server_name) unless skip_verify. */
static natsStatus set_tls(natsOptions *opts, const ch_conn_tls *t)
{
    natsStatus s = natsOptions_SetSecure(opts, true);
    if (s == NATS_OK && t->skip_verify)
        s = natsOptions_SkipServerVerification(opts, true);
    if (s == NATS_OK && t->ca_file != NULL)
        s = natsOptions_LoadCATrustedCertificates(opts, t->ca_file);
    if (s == NATS_OK && (t->cert_file != NULL || t->key_file != NULL))
        s = natsOptions_LoadCertificatesChain(opts, t->cert_file, t->key_file);
    if (s == NATS_OK && t->server_name != NULL)
        s = natsOptions_SetExpectedHostname(opts, t->server_name);
    return s;
}

static bool sleep_retry(int64_t ms, void *closure)
{
    (void)closure;
    nats_Sleep(ms);
    return true;
}

/* With retry_initial_connect, first connections are retried here rather than by nats.c's
 * RetryOnFailedConnect: nats.c 3.4 stops retrying for good after a failed TLS handshake, and
 * here every failure is reported with its reason. NATS_CONNECTION_CLOSED: wait_retry gave up. */
static natsStatus connect_until_up(const ch_conn_opts *o, natsOptions *opts, conn_ctx *ctx,
                                   natsConnection **nc)
{
    bool (*wait)(int64_t, void *) = o->wait_retry != NULL ? o->wait_retry : sleep_retry;
    for (int attempt = 0;; attempt++) {
        natsStatus s = natsConnection_Connect(nc, opts);
        if (s == NATS_OK || !o->retry_initial_connect)
            return s;
        const char *why = s == NATS_SECURE_CONNECTION_WANTED
                              ? "the broker does not offer TLS (a secure connection is required)"
                              : last_error_detail();
        if (ctx->cb != NULL)
            ctx->cb("connect failed", why != NULL && why[0] != '\0' ? why : natsStatus_GetText(s),
                    ctx->closure);
        if (!wait(ch_backoff_ms(attempt, 500, ctx->max_ms), o->closure))
            return NATS_CONNECTION_CLOSED;
    }
}

/* ---- go-choria's JWT login: CONNECT {jwt, sig = base64url(ed25519(seed, nonce))} ---- */

static natsStatus jwt_handler(char **jwt, char **err_text, void *closure)
{
    *jwt = strdup(closure);
    (void)err_text;
    return *jwt != NULL ? NATS_OK : NATS_NO_MEMORY;
}

static natsStatus sign_nonce(char **err_text, unsigned char **sig, int *sig_len, const char *nonce,
                             void *closure)
{
    unsigned char seed[CH_PKI_ED25519_SEED_LEN];
    char *text = NULL;
    size_t len = 0;
    ch_error e;
    ch_status st = ch_read_file(closure, 4096, &text, &len, &e);
    const char *hex = text;
    if (st == CH_OK) {
        ch_trim(&hex, &len);
        st = ch_pki_hex_decode(hex, len, seed, sizeof(seed), &e);
        OPENSSL_cleanse(text, len);
    }
    free(text);
    *sig = st == CH_OK ? malloc(CH_PKI_ED25519_SIG_LEN) : NULL;
    if (*sig != NULL)
        st = ch_pki_ed25519_sign(seed, nonce ? nonce : "", nonce ? strlen(nonce) : 0, *sig, &e);
    OPENSSL_cleanse(seed, sizeof(seed));
    if (st == CH_OK && *sig != NULL) {
        *sig_len = CH_PKI_ED25519_SIG_LEN;
        return NATS_OK;
    }
    free(*sig);
    *sig = NULL;
    *err_text = strdup("could not sign the broker's nonce with the seed file");
    return NATS_ERR;
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
    if (s == NATS_OK && o->jwt != NULL && o->seed_file != NULL)
        s = natsOptions_SetUserCredentialsCallbacks(opts, jwt_handler, (void *)o->jwt, sign_nonce,
                                                    (void *)o->seed_file);
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
    if (s == NATS_OK && (o->tls.enabled || any_tls_url(o)))
        s = set_tls(opts, &o->tls);
    if (s != NATS_OK) {
        natsOptions_Destroy(opts);
        free(ctx);
        /* nats.c's last error names the TLS file that failed, never a secret */
        const char *detail = last_error_detail();
        return ch_error_set(err, CH_ERR_INVALID, "invalid connection options: %s%s%s",
                            natsStatus_GetText(s), detail != NULL ? ": " : "",
                            detail != NULL ? detail : "");
    }

    s = connect_until_up(o, opts, ctx, nc);
    natsOptions_Destroy(opts);
    if (s == NATS_OK) {
        emit(*nc, ctx, "connected");
        return CH_OK;
    }
    /* No connection object exists, so the closed callback never runs: free ctx here. */
    free(ctx);
    *nc = NULL;
    if (s == NATS_CONNECTION_CLOSED)
        return ch_error_set(err, CH_ERR_CONNECTION, "stopped before a broker answered");
    char first[512];
    ch_conn_redact_url(o->servers[0], first, sizeof(first));
    /* nats.c's last error says what failed (a TLS handshake, say); it holds no secret */
    const char *detail = last_error_detail();
    bool more = detail != NULL && strcmp(detail, natsStatus_GetText(s)) != 0;
    return ch_error_set(err, CH_ERR_CONNECTION, "cannot connect to %s%s: %s%s%.160s", first,
                        o->server_count > 1 ? " (and others)" : "", natsStatus_GetText(s),
                        more ? ": " : "", more ? detail : "");
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

/* ---- settings ---- */

ch_status ch_conn_settings_set(char **field, const char *value, ch_error *err)
{
    char *copy = value != NULL ? strdup(value) : NULL;
    if (value != NULL && copy == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    free(*field);
    *field = copy;
    return CH_OK;
}

static ch_status add_server(ch_conn_settings *s, const char *url, ch_error *err)
{
    char **n = realloc(s->servers, (size_t)(s->server_count + 1) * sizeof(*n));
    if (n == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    s->servers = n;
    if ((n[s->server_count] = strdup(url)) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    s->server_count++;
    return CH_OK;
}

ch_status ch_conn_settings_add_servers(ch_conn_settings *s, const char *list, ch_error *err)
{
    /* A full URL is used as given, so user:password@ works for --server. */
    if (list != NULL && strchr(list, ',') == NULL && strchr(list, '@') != NULL &&
        strstr(list, "://") != NULL) {
        s->tls = s->tls || strncasecmp(list, "tls://", 6) == 0;
        return add_server(s, list, err);
    }
    ch_config_server *servers = NULL;
    size_t count = 0;
    ch_status st = ch_config_parse_servers(list, &servers, &count, err);
    for (size_t i = 0; st == CH_OK && i < count; i++) {
        s->tls = s->tls || servers[i].tls;
        st = add_server(s, servers[i].url, err);
    }
    ch_config_servers_free(servers, count);
    return st;
}

void ch_conn_settings_clear(ch_conn_settings *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->server_count; i++)
        free(s->servers[i]);
    free(s->servers);
    char *strs[] = {s->name,      s->user,    s->password,  s->token,    s->jwt,
                    s->seed_file, s->ca_file, s->cert_file, s->key_file, s->server_name};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(strs[i]);
    memset(s, 0, sizeof(*s));
}

static ch_status need_file(const char *path, const char *what, ch_error *err)
{
    if (path == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "the security provider needs %s", what);
    if (access(path, R_OK) != 0)
        return ch_error_set(err, CH_ERR_INVALID, "%s %s cannot be read", what, path);
    return CH_OK;
}

/* Go checks the broker's certificate against the host of the URL it dials. nats.c checks one
 * expected name for every server, so it is set when all brokers share one host name. */
static ch_status expect_url_host(ch_conn_settings *s, ch_error *err)
{
    char host[256] = "";
    for (int i = 0; i < s->server_count; i++) {
        const char *h = strstr(s->servers[i], "://");
        h = h != NULL ? h + 3 : s->servers[i];
        const char *at = strchr(h, '@');
        h = at != NULL ? at + 1 : h;
        size_t len = h[0] == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":/");
        if (len >= sizeof(host) || (i > 0 && (strlen(host) != len || strncmp(host, h, len) != 0)))
            return CH_OK;
        snprintf(host, sizeof(host), "%.*s", (int)len, h);
    }
    return host[0] != '\0' && s->server_name == NULL
               ? ch_conn_settings_set(&s->server_name, host, err)
               : CH_OK;
}

static ch_status set_tls_files(ch_conn_settings *s, const ch_config_security *sec, ch_error *err)
{
    ch_status st = ch_conn_settings_set(&s->ca_file, sec->ca_file, err);
    if (st == CH_OK)
        st = ch_conn_settings_set(&s->cert_file, sec->cert_file, err);
    if (st == CH_OK)
        st = ch_conn_settings_set(&s->key_file, sec->key_file, err);
    return st;
}

/* go-choria connection.go: a JWT client presents its token as auth_token and jwt, and proves
 * it holds the seed by signing the nonce. */
static ch_status choria_login(ch_conn_settings *s, const ch_config_security *sec, ch_error *err)
{
    char *text = NULL;
    size_t len = 0;
    ch_status st;
    if ((st = need_file(sec->token_file, "plugin.security.choria.token_file", err)) ||
        (st = need_file(sec->seed_file, "plugin.security.choria.seed_file", err)) ||
        (st = ch_read_file(sec->token_file, 64 * 1024, &text, &len, err)))
        return st;
    const char *jwt = text;
    ch_trim(&jwt, &len);
    char *trimmed = strndup(jwt, len);
    free(text);
    if (trimmed == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    st = ch_conn_settings_set(&s->token, trimmed, err);
    if (st == CH_OK)
        st = ch_conn_settings_set(&s->jwt, trimmed, err);
    if (st == CH_OK)
        st = ch_conn_settings_set(&s->seed_file, sec->seed_file, err);
    free(trimmed);
    return st;
}

ch_status ch_conn_settings_apply_security(ch_conn_settings *s, const ch_config_security *sec,
                                          bool insecure, ch_error *err)
{
    if (insecure || sec->provider == NULL)
        return CH_OK;
    ch_status st = CH_OK;
    s->tls = true;
    if (strcmp(sec->provider, "choria") == 0) {
        const ch_config_security anon = {.ca_file = sec->ca_file};
        bool mutual = sec->cert_file != NULL && sec->key_file != NULL;
        st = set_tls_files(s, mutual ? sec : &anon, err);
        s->tls_skip_verify = sec->ca_file == NULL;
        if (st == CH_OK)
            st = choria_login(s, sec, err);
    } else {
        if ((st = need_file(sec->cert_file, "a certificate", err)) == CH_OK &&
            (st = need_file(sec->key_file, "a private key", err)) == CH_OK &&
            (st = need_file(sec->ca_file, "a CA certificate", err)) == CH_OK)
            st = set_tls_files(s, sec, err);
        s->tls_skip_verify = false;
    }
    if (st == CH_OK && !s->tls_skip_verify)
        st = expect_url_host(s, err);
    return st;
}

void ch_conn_settings_anonymous_tls(ch_conn_settings *s)
{
    s->tls = true;
    s->tls_skip_verify = true;
    char **files[] = {&s->ca_file, &s->cert_file, &s->key_file, &s->server_name};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        free(*files[i]);
        *files[i] = NULL;
    }
}

void ch_conn_opts_from_settings(const ch_conn_settings *s, ch_conn_opts *o)
{
    o->servers = (const char *const *)s->servers;
    o->server_count = s->server_count;
    o->name = s->name;
    o->user = s->user;
    o->password = s->password;
    o->token = s->token;
    o->jwt = s->jwt;
    o->seed_file = s->seed_file;
    o->tls = (ch_conn_tls){.enabled = s->tls,
                           .skip_verify = s->tls_skip_verify,
                           .ca_file = s->ca_file,
                           .cert_file = s->cert_file,
                           .key_file = s->key_file,
                           .server_name = s->server_name};
}
