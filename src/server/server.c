/* The server process: connects, subscribes the agents, publishes lifecycle events and acts on
 * restart and shutdown requests from the choria_provision agent.
 *
 * Threads: nats.c delivers each subscription's messages on its own thread and the handler
 * answers right there. The main thread owns the process: it waits for signals with
 * sigtimedwait() and carries out timed work (alive events, a pending restart or shutdown). */
#include "server.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "choria/conn.h"
#include "choria/facts.h"
#include "choria/lifecycle.h"
#include "choria/log.h"
#include "choria/process.h"
#include "choria/protocol.h"
#include "choria/security_choria.h"
#include "choria/util.h"

#define ALIVE_INTERVAL_MS (30LL * 60 * 1000)

typedef enum { WANT_RUN, WANT_RESTART, WANT_SHUTDOWN } server_want;

typedef struct {
    srv_settings set;
    ch_node node;
    ch_provision_state prov;
    json_t *facts;
    natsConnection *nc;
    natsSubscription *subs[64];
    size_t n_subs;
    pthread_mutex_t lock;
    server_want want;
    int64_t want_at_ms;
    bool shutdown_published;
    volatile bool closing;
    const sigset_t *signals;    /* the stop signals, taken by the main thread */
    bool stopped_connecting;    /* a stop signal came before any broker answered */
    ch_security *security;      /* normal mode: verifies requests */
    int64_t mismatch_warned_at; /* monotonic ms of the last protocol mismatch warning */
} server;

#define MISMATCH_WARN_MS 10000

static const char *component(const server *s)
{
    return s->set.provision_mode ? CH_LIFECYCLE_COMPONENT_PROVISION_MODE
                                 : CH_LIFECYCLE_COMPONENT_SERVER;
}

static ch_status publish_event(void *closure, ch_lifecycle_type type, const char *new_version)
{
    server *s = closure;
    ch_error err;
    ch_lifecycle_format format = s->set.legacy_lifecycle_format ? CH_LIFECYCLE_FORMAT_CHORIA
                                                                : CH_LIFECYCLE_FORMAT_CLOUDEVENT;
    ch_status st =
        ch_lifecycle_announce(s->nc, type, s->set.identity, component(s), CH_VERSION,
                              type == CH_LIFECYCLE_UPGRADED ? new_version : NULL, format, &err);
    if (st != CH_OK)
        ch_warn("could not publish %s event: %s", ch_lifecycle_type_name(type), err.msg);
    else
        ch_debug("published %s event", ch_lifecycle_type_name(type));
    return st;
}

static void request_exit(server *s, server_want want, int64_t delay_ms)
{
    pthread_mutex_lock(&s->lock);
    if (s->want == WANT_RUN) {
        s->want = want;
        s->want_at_ms = ch_now_mono_ms() + delay_ms;
    }
    pthread_mutex_unlock(&s->lock);
}

/* go-choria publishes shutdown when the restart starts, then sleeps the splay. */
static void host_restart(void *closure, int64_t delay_ms)
{
    server *s = closure;
    ch_info("restarting in %lld ms", (long long)delay_ms);
    publish_event(s, CH_LIFECYCLE_SHUTDOWN, NULL);
    s->shutdown_published = true;
    request_exit(s, WANT_RESTART, delay_ms);
}

static void host_shutdown(void *closure, int64_t delay_ms)
{
    server *s = closure;
    ch_info("shutting down in %lld ms", (long long)delay_ms);
    request_exit(s, WANT_SHUTDOWN, delay_ms);
}

/* A request in the other protocol version would look like a time-out to its sender; say so,
 * at most every MISMATCH_WARN_MS so that a busy sender cannot flood the log. */
static void warn_mismatch(server *s, const char *subject, const char *why)
{
    int64_t now = ch_now_mono_ms();
    pthread_mutex_lock(&s->lock);
    bool due = s->mismatch_warned_at == 0 || now - s->mismatch_warned_at >= MISMATCH_WARN_MS;
    if (due)
        s->mismatch_warned_at = now;
    pthread_mutex_unlock(&s->lock);
    if (due)
        ch_warn("dropped a request on %s that cannot be answered: %s", subject, why);
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    server *s = closure;
    ch_agent_result res = {0};
    ch_error err;
    ch_error_clear(&err);
    ch_status st = ch_agent_handle(&s->node, natsMsg_GetData(msg),
                                   (size_t)natsMsg_GetDataLength(msg), ch_now_unix(), &res, &err);
    if (st != CH_OK)
        ch_warn("request on %s failed: %s", natsMsg_GetSubject(msg), err.msg);
    else if (res.refused)
        ch_warn("refused a request on %s: %s", natsMsg_GetSubject(msg), res.refusal);
    else if (res.dropped == CH_ERR_UNSUPPORTED)
        warn_mismatch(s, natsMsg_GetSubject(msg), res.drop_reason);
    else if (res.dropped != CH_OK)
        ch_debug("request on %s dropped: %s", natsMsg_GetSubject(msg), res.drop_reason);
    if (res.payload != NULL &&
        natsConnection_Publish(nc, res.subject, res.payload, (int)res.payload_len) != NATS_OK)
        ch_warn("could not publish reply to %s", res.subject);
    ch_agent_result_clear(&res);
    natsMsg_Destroy(msg);
}

static ch_status subscribe(server *s, const char *subject, ch_error *err)
{
    if (s->n_subs >= sizeof(s->subs) / sizeof(s->subs[0]))
        return ch_error_set(err, CH_ERR_TOO_LARGE, "too many subscriptions");
    natsStatus ns = natsConnection_Subscribe(&s->subs[s->n_subs], s->nc, subject, on_request, s);
    if (ns != NATS_OK)
        return ch_error_set(err, CH_ERR_CONNECTION, "cannot subscribe to %s: %s", subject,
                            natsStatus_GetText(ns));
    s->n_subs++;
    ch_debug("subscribed to %s", subject);
    return CH_OK;
}

/* One subscription per active agent per collective, plus the node subject. */
static ch_status subscribe_all(server *s, ch_error *err)
{
    const char *names[32];
    size_t n = ch_agent_active_names(&s->node, names, 32);
    char subject[CH_MAX_SUBJECT_LEN];
    for (size_t c = 0; c < s->set.n_collectives; c++) {
        const char *coll = s->set.collectives[c];
        for (size_t a = 0; a < n; a++) {
            ch_status st =
                ch_protocol_broadcast_subject(coll, names[a], subject, sizeof(subject), err);
            if (st == CH_OK)
                st = subscribe(s, subject, err);
            if (st != CH_OK)
                return st;
        }
        ch_status st =
            ch_protocol_node_subject(coll, s->set.identity, subject, sizeof(subject), err);
        if (st == CH_OK)
            st = subscribe(s, subject, err);
        if (st != CH_OK)
            return st;
    }
    return CH_OK;
}

static void log_security(const server *s)
{
    const char *name = ch_security_name(s->security);
    if (strcmp(name, "none") == 0)
        ch_warn("no security provider is configured (plugin.security.provider) and "
                "plugin.choria.security.insecure is not set: every request will be refused");
    else if (strcmp(name, "insecure") == 0)
        ch_warn("plugin.choria.security.insecure is set: requests are not verified");
    else
        ch_info("requests are verified by the %s security provider", name);
}

/* go-choria NewConnector: a server's JWT names the identity it may use. */
static ch_status check_token_identity(const server *s, ch_error *err)
{
    if (ch_security_tech_of(s->security) != CH_SECURITY_TECH_ED25519)
        return CH_OK;
    const char *id = ch_security_choria_claim(s->security, "identity");
    if (id == NULL)
        return ch_error_set(err, CH_ERR_INVALID,
                            "plugin.security.choria.token_file must hold this server's JWT (with "
                            "an identity claim)");
    if (strcmp(id, s->set.identity) != 0)
        return ch_error_set(err, CH_ERR_INVALID,
                            "identity %s does not match caller %s in JWT token", s->set.identity,
                            id);
    return CH_OK;
}

static void setup_node(server *s)
{
    ch_node *n = &s->node;
    n->identity = s->set.identity;
    n->version = CH_VERSION;
    n->collectives = (const char *const *)s->set.collectives;
    n->n_collectives = s->set.n_collectives;
    n->main_collective = s->set.main_collective;
    n->facts = s->facts;
    n->provision_mode = s->set.provision_mode;
    n->provision_token = s->set.provision_token;
    n->provisioning_jwt_file = s->set.jwt_file;
    n->config_file = s->set.config_file;
    n->ssldir = s->set.ssldir;
    n->allow_update = s->set.allow_update;
    n->update_command = s->set.update_command;
    pthread_mutex_init(&s->prov.mutex, NULL); /* lives until exit or exec */
    n->provision = &s->prov;
    n->agents = &ch_agent_set_standard;
    n->protocol = s->set.protocol_v2 ? ch_protocol_v2() : ch_protocol_v1();
    /* A provisioning-mode server verifies nothing, as upstream's; a provisioned one verifies
     * with the provider its configuration names (start() made it). */
    n->security = s->set.provision_mode ? NULL : s->security;
    n->host.closure = s;
    n->host.publish_event = publish_event;
    n->host.restart = host_restart;
    n->host.shutdown = host_shutdown;
}

static void on_conn_event(const char *event, const char *url, void *closure)
{
    server *s = closure;
    if (s->closing) /* our own close is not news */
        return;
    if (strcmp(event, "connected") == 0 || strcmp(event, "reconnected") == 0)
        ch_info("%s to %s", event, url);
    else if (strcmp(event, "disconnected") == 0)
        ch_warn("disconnected from the broker, reconnecting");
    else if (strcmp(event, "connect failed") == 0)
        ch_warn("could not connect to the broker, retrying: %s", url);
}

static bool wait_signal(const sigset_t *set, int64_t ms);

/* Between failed first connections: a stop signal ends the wait and the start-up. */
static bool connect_wait(int64_t ms, void *closure)
{
    server *s = closure;
    s->stopped_connecting = wait_signal(s->signals, ms);
    return !s->stopped_connecting;
}

static ch_status connect_broker(server *s, ch_error *err)
{
    ch_conn_opts o = {
        .retry_initial_connect = true,
        .wait_retry = connect_wait,
        .send_asap = true, /* replies leave at once */
        .on_event = on_conn_event,
        .closure = s,
    };
    ch_conn_opts_from_settings(&s->set.conn, &o);
    char prefix[CH_MAX_SUBJECT_LEN];
    snprintf(prefix, sizeof(prefix), "%s.reply", s->set.main_collective);
    o.inbox_prefix = prefix;
    return ch_conn_connect(&o, &s->nc, err);
}

/* Waits for SIGINT/SIGTERM for up to ms; true when one arrived. */
static bool wait_signal(const sigset_t *set, int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    return sigtimedwait(set, NULL, &ts) > 0;
}

static int64_t random_ms(int64_t max)
{
    uint64_t r = 0;
    ch_random_bytes(&r, sizeof(r));
    return max > 0 ? (int64_t)(r % (uint64_t)max) : 0;
}

static void close_connection(server *s)
{
    for (size_t i = 0; i < s->n_subs; i++) {
        natsSubscription_Unsubscribe(s->subs[i]);
        natsSubscription_Destroy(s->subs[i]);
    }
    s->n_subs = 0;
    s->closing = true;
    if (s->nc != NULL) {
        natsConnection_FlushTimeout(s->nc, 2000);
        ch_conn_close(s->nc);
        s->nc = NULL;
    }
}

/* The main thread's loop; returns what ended it. */
static server_want serve(server *s, const sigset_t *signals)
{
    int64_t next_alive = ch_now_mono_ms() + random_ms(29LL * 60 * 1000);
    for (;;) {
        if (wait_signal(signals, 200)) {
            ch_info("stopping on signal");
            return WANT_SHUTDOWN;
        }
        int64_t now = ch_now_mono_ms();
        pthread_mutex_lock(&s->lock);
        server_want want = s->want;
        bool due = want != WANT_RUN && now >= s->want_at_ms;
        pthread_mutex_unlock(&s->lock);
        if (due)
            return want;
        if (now >= next_alive) {
            publish_event(s, CH_LIFECYCLE_ALIVE, NULL);
            next_alive = now + ALIVE_INTERVAL_MS;
        }
    }
}

static void reexec(char **argv, const sigset_t *signals)
{
    sigprocmask(SIG_UNBLOCK, signals, NULL); /* the mask survives exec */
    execv("/proc/self/exe", argv);
    ch_error("re-exec failed: %s", strerror(errno));
}

static ch_status start(server *s, bool debug, ch_error *err)
{
    ch_log_level level = CH_LOG_INFO;
    if (s->set.log_level != NULL && ch_log_level_parse(s->set.log_level, &level) != CH_OK)
        ch_warn("unknown loglevel '%s', using info", s->set.log_level);
    ch_log_set_level(debug ? CH_LOG_DEBUG : level);
    ch_status st = ch_log_set_file(s->set.log_file, err);
    if (st == CH_OK)
        st = ch_facts_load(s->set.facts_file, &s->facts, NULL, err);
    if (st != CH_OK)
        return st;
    if (!s->set.provision_mode &&
        ((st = ch_security_from_config(&s->set.security, s->set.insecure, CH_SECURITY_VERIFY,
                                       &s->security, err)) != CH_OK ||
         (st = check_token_identity(s, err)) != CH_OK))
        return st;
    setup_node(s);
    ch_info("Choria Server version %s starting as %s in %s mode, protocol %s", CH_VERSION,
            s->set.identity, s->set.provision_mode ? "provisioning" : "normal",
            s->node.protocol->name);
    if (!s->set.provision_mode)
        log_security(s);
    st = connect_broker(s, err);
    if (st == CH_OK)
        st = subscribe_all(s, err);
    return st;
}

int srv_run(const char *config_file, const char *jwt_file, bool debug, char **argv)
{
    server s;
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.lock, NULL);
    ch_error err;
    ch_error_clear(&err);

    /* Block the stop signals before nats.c starts threads, so only sigtimedwait sees them. */
    sigset_t signals;
    ch_process_take_stop_signals(&signals, false);

    s.signals = &signals;
    ch_status st = srv_settings_load(config_file, jwt_file, &s.set, &err);
    if (st == CH_OK)
        st = start(&s, debug, &err);
    if (st != CH_OK) {
        if (s.stopped_connecting)
            ch_info("Stopping on a signal before a broker answered");
        else
            fprintf(stderr, "choria: %s\n", err.msg);
        close_connection(&s);
        json_decref(s.facts);
        ch_security_free(s.security);
        srv_settings_free(&s.set);
        return s.stopped_connecting ? 0 : 1;
    }
    publish_event(&s, CH_LIFECYCLE_STARTUP, NULL);
    server_want why = serve(&s, &signals);
    if (!s.shutdown_published)
        publish_event(&s, CH_LIFECYCLE_SHUTDOWN, NULL);
    close_connection(&s);
    json_decref(s.facts);
    ch_security_free(s.security);
    srv_settings_free(&s.set);
    if (why == WANT_RESTART) {
        nats_Close();
        reexec(argv, &signals);
        return 1;
    }
    nats_Close();
    return 0;
}
