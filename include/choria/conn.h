/* NATS connections the way Choria makes them: several brokers, reconnect forever with a
 * jittered back-off, optional user/password or token, TLS, a connection name, and callbacks.
 *
 * Every program resolves a ch_conn_settings from its own configuration and turns it into
 * ch_conn_opts with ch_conn_opts_from_settings, the one place that does; what differs per
 * connection (callbacks, delivery, batching) is set on the options afterwards.
 * Secrets (password, token, the key file's contents) never appear in messages or logs. */
#ifndef CHORIA_CONN_H
#define CHORIA_CONN_H

#include <nats/nats.h>

#include "choria/common.h"
#include "choria/config.h"

/* event is "connected", "disconnected", "reconnected", "closed" or "connect failed" (a pass
 * over every broker failed; another follows after a back-off). detail is the broker's URL
 * (redacted), "" for closed, and nats.c's reason for connect failed (never a secret). */
typedef void (*ch_conn_event_cb)(const char *event, const char *detail, void *closure);

/* TLS to the broker. All strings are borrowed. */
typedef struct {
    bool enabled;            /* TLS at all; a tls:// URL turns it on too */
    bool skip_verify;        /* anonymous TLS: the broker's certificate is not checked */
    const char *ca_file;     /* PEM CAs the broker's certificate must chain to; NULL: the
                                system's */
    const char *cert_file;   /* this side's certificate chain, PEM, for mutual TLS */
    const char *key_file;    /* its private key, PEM */
    const char *server_name; /* the name the broker's certificate must carry; NULL: the URL's
                                host */
} ch_conn_tls;

typedef struct {
    const char *const *servers; /* nats://host:port URLs */
    int server_count;
    const char *name;     /* connection name shown by the broker, usually the identity */
    const char *user;     /* optional */
    const char *password; /* optional; never logged */
    const char *token;    /* optional NATS token (provisioning JWT) */
    /* optional JWT login of go-choria's choria provider: CONNECT carries jwt and sig, the
     * ed25519 signature of the broker's nonce by the seed in seed_file (read at each connect,
     * never kept) */
    const char *jwt;
    const char *seed_file;
    int64_t connect_timeout_ms; /* one TCP connect attempt, default 2000 */
    int64_t reconnect_max_ms;   /* back-off ceiling, default 20000 as go-choria TwentySec */
    bool retry_initial_connect; /* keep trying until a broker answers (see ch_conn_connect) */
    /* between failed first attempts: waits ms and returns true to go on, false to give up;
     * NULL sleeps. Called with closure. */
    bool (*wait_retry)(int64_t ms, void *closure);
    int reconnect_buffer_bytes; /* default 10 KiB as go-choria */
    const char *inbox_prefix;   /* optional custom inbox prefix */
    bool global_delivery;       /* share nats.c's delivery thread pool instead of one thread
                                   per subscription (thousands of subscriptions) */
    bool send_asap;             /* publish at once instead of nats.c's up-to-1 ms batching:
                                   request/reply latency matters more than batching here */
    ch_conn_event_cb on_event;  /* "connected", "disconnected", "reconnected", "closed" */
    void *closure;
    ch_conn_tls tls;
} ch_conn_opts;

/* How a program reaches its brokers, as resolved from its configuration. Every string is
 * malloc'd and owned by the settings (clear with ch_conn_settings_clear); NULL means unset. */
typedef struct {
    char **servers; /* nats:// or tls:// URLs */
    int server_count;
    char *name; /* connection name, the program's identity */
    char *user; /* NATS user and password */
    char *password;
    char *token; /* NATS token, e.g. a provisioning node's JWT */
    char *jwt;   /* JWT login (see ch_conn_opts.jwt) and its seed file */
    char *seed_file;
    bool tls; /* TLS even for nats:// URLs */
    bool tls_skip_verify;
    char *ca_file, *cert_file, *key_file, *server_name;
} ch_conn_settings;

/* Appends the brokers of a comma list (host, host:port, nats:// or tls:// URLs, see
 * ch_config_parse_servers); a tls:// entry turns TLS on. A single full URL with user info is
 * kept as given (--server nats://user:pass@host:port). CH_ERR_INVALID names the bad entry. */
ch_status ch_conn_settings_add_servers(ch_conn_settings *s, const char *list, ch_error *err);

/* Replaces one string of s (*field) with a copy of value (NULL clears it). */
ch_status ch_conn_settings_set(char **field, const char *value, ch_error *err);

void ch_conn_settings_clear(ch_conn_settings *s);

/* TLS as the security provider of sec asks (go-choria's Connect), on top of what the URLs
 * said:
 * - file and puppet: mutual TLS with sec's certificate and key, the broker's certificate
 *   checked against sec's CA and the brokers' host name; all three files must exist;
 * - choria: TLS; a client certificate when both cert and key are set; the broker checked
 *   when a CA is set, else anonymous TLS (as go-choria); and go-choria's JWT login: the token
 *   file's JWT as auth_token and jwt, the nonce signed with the seed file;
 * - no provider, or insecure (choria_insecure / plugin.choria.security.insecure): nothing.
 * CH_ERR_INVALID names a missing file by its key. */
ch_status ch_conn_settings_apply_security(ch_conn_settings *s, const ch_config_security *sec,
                                          bool insecure, ch_error *err);

/* go-choria's provisioning-mode transport: TLS 1.2 or later with no client certificate and no
 * check of the broker's certificate. A broker that offers no TLS is refused (nats.c fails the
 * connection with "secure connection required"), as upstream nodes refuse it. */
void ch_conn_settings_anonymous_tls(ch_conn_settings *s);

/* Fills the servers, name, credentials and TLS of o from s (borrowed: s must outlive o);
 * leaves the other fields of o as they are. */
void ch_conn_opts_from_settings(const ch_conn_settings *s, ch_conn_opts *o);

/* Connects. With retry_initial_connect a failed first attempt is reported (on_event
 * "connect failed" with the reason) and retried after a jittered back-off until a broker
 * answers or wait_retry gives up (CH_ERR_CONNECTION "stopped before a broker answered");
 * on_event("connected") fires once the connection is up. */
ch_status ch_conn_connect(const ch_conn_opts *opts, natsConnection **nc, ch_error *err);

/* Closes and destroys the connection (NULL is fine). */
void ch_conn_close(natsConnection *nc);

/* Copies url into out with any password replaced by "xxxxx" (like Go's URL.Redacted). */
void ch_conn_redact_url(const char *url, char *out, size_t out_size);

/* The URL of the broker the connection is using, redacted; "" when not connected. */
void ch_conn_connected_url(natsConnection *nc, char *out, size_t out_size);

#endif
