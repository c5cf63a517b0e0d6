/* The provisioner: connection, discovery, host queue, workers and metrics (upstream
 * hosts/hosts.go). */
#include "provisioner.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choria/config.h"
#include "choria/conn.h"
#include "http.h"
#include "choria/leader.h"
#include "choria/lifecycle.h"
#include "choria/log.h"
#include "choria/protocol.h"
#include "choria/jwt.h"
#include "choria/util.h"
#include "discover.h"
#include "pipeline.h"
#include "rpcwrap.h"
#include "srvjwt.h"

#define TAKE_WAIT_MS 500 /* a worker rechecks for shutdown this often when idle */

struct prov_daemon {
    prov_daemon_opts o;
    atomic_bool paused;       /* what the pipeline, the wrapper and discovery check */
    atomic_bool stopping;     /* kills helpers in flight */
    atomic_ullong stale_seen; /* hosts dropped for waiting too long, already counted */
    natsConnection *nc;
    ch_rpc_client *rpc;
    prov_hosts *hosts;
    prov_discoverer *discoverer;
    ch_metrics *registry;
    prov_metrics metrics;
    prov_http_server *http;
    ch_jwt_key *verify_key;
    prov_csr_deny *deny;
    prov_srvjwt_signer *signer;
    ch_leader *leader;
    prov_rpcwrap wrap;
    prov_pipeline pipeline;
    prov_helper_pool *helpers; /* helper_mode persistent */
    pthread_t *workers;
    int started_workers;
};

/* ---- metrics kept in step with the host queue ---- */

static void sync_queue_metrics(prov_daemon *p)
{
    prov_hosts_stats s;
    prov_hosts_stats_get(p->hosts, &s);
    ch_metric_set(p->metrics.work_queue_entries, (double)s.queued);
    ch_metric_set(p->metrics.waiting_nodes, (double)s.known);
    /* A host dropped for waiting more than two intervals is a provision error upstream
     * (the staleness guard); count each drop once however many workers see it. */
    unsigned long long seen = atomic_load(&p->stale_seen);
    while (s.dropped_stale_wait > seen) {
        if (atomic_compare_exchange_weak(&p->stale_seen, &seen, s.dropped_stale_wait)) {
            ch_metric_add(p->metrics.provision_errors, (double)(s.dropped_stale_wait - seen));
            ch_warn("Skipped %llu nodes that waited more than two intervals",
                    (unsigned long long)(s.dropped_stale_wait - seen));
            break;
        }
    }
}

static void observe_rpc(void *closure, const char *rpc, double seconds)
{
    prov_metrics_rpc_time(closure, rpc, seconds);
}

static void failed_rpc(void *closure, const char *rpc)
{
    prov_metrics_rpc_error(closure, rpc);
}

/* ---- discovery -> queue ---- */

static void on_found(const char *identity, prov_found_by how, void *closure)
{
    prov_daemon *p = closure;
    prov_hosts_add_result r = prov_hosts_add(p->hosts, identity);
    if (r == PROV_HOSTS_ADDED) {
        bool by_event = how == PROV_FOUND_BY_EVENT;
        ch_metric_inc(by_event ? p->metrics.event_discovered : p->metrics.discovered);
        ch_debug("Adding %s to the provision list after %s", identity,
                 by_event ? "its startup event" : "discovering it");
    } else if (r == PROV_HOSTS_FULL) {
        ch_warn("Adding %s to the work queue failed: the queue is full", identity);
    } else if (r == PROV_HOSTS_INVALID) {
        ch_warn("Refusing to provision an invalid identity");
    }
    if (r != PROV_HOSTS_DUPLICATE)
        sync_queue_metrics(p);
}

/* ---- workers ---- */

static void provision_one(prov_daemon *p, const char *identity, uint64_t gen)
{
    ch_debug("Provisioning %s", identity);
    ch_metric_inc(p->metrics.busy_workers);
    prov_pipeline_outcome outcome;
    ch_error err;
    ch_error_clear(&err);
    ch_status st = prov_pipeline_run(&p->pipeline, identity, &outcome, &err);
    ch_metric_dec(p->metrics.busy_workers);
    if (st == CH_OK) {
        ch_metric_inc(p->metrics.provisioned);
        ch_info("Provisioned %s%s", identity,
                outcome == PROV_PIPELINE_SHUT_DOWN ? " (shut down as the helper asked)" : "");
    } else {
        ch_metric_inc(p->metrics.provision_errors);
        ch_error("Could not provision %s: %s", identity, err.msg);
    }
    prov_hosts_done(p->hosts, identity, gen, st == CH_OK);
}

static void *worker_loop(void *arg)
{
    prov_daemon *p = arg;
    char identity[CH_MAX_IDENTITY_LEN + 1];
    for (;;) {
        uint64_t gen = 0;
        ch_status st = prov_hosts_take(p->hosts, TAKE_WAIT_MS, identity, &gen);
        if (st == CH_ERR_EXPIRED)
            break;
        if (st == CH_OK)
            provision_one(p, identity, gen);
        sync_queue_metrics(p);
    }
    return NULL;
}

/* ---- start-up ---- */

/* What the configuration needs that the file format cannot check. */
static ch_status check_config(prov_daemon *p, ch_error *err)
{
    const prov_config *c = p->o.cfg;
    ch_error e;
    if (c->features.ed25519 &&
        prov_srvjwt_signer_load(c->jwt_signing_key, c->jwt_signing_token, c->server_jwt_validity_ns,
                                &p->signer, err) != CH_OK)
        return err != NULL ? err->code : CH_ERR_INVALID;
    if (c->features.upgrades)
        return ch_error_set(err, CH_ERR_UNSUPPORTED,
                            "features.upgrades: version upgrades are not supported by this build "
                            "yet");
    char **argv = NULL;
    if (ch_process_split(c->helper, &argv, NULL, &e) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "helper: cannot parse helper command: %s", e.msg);
    ch_process_argv_free(argv);
    if (c->jwt_verify_cert[0] != '\0' &&
        ch_jwt_key_load(c->jwt_verify_cert, &p->verify_key, &e) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "jwt_verify_cert: %s", e.msg);
    if (c->features.jwt && p->verify_key == NULL)
        return ch_error_set(err, CH_ERR_INVALID,
                            "jwt_verify_cert: features.jwt is enabled but no JWT verification "
                            "certificate is configured");
    if (prov_csr_deny_compile(c->cert_deny_list.items, c->cert_deny_list.count, &p->deny, &e) !=
        CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "cert_deny_list: %s", e.msg);
    return CH_OK;
}

static ch_status setup_metrics(prov_daemon *p, ch_error *err)
{
    p->registry = ch_metrics_new();
    if (p->registry == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    ch_status st = prov_metrics_register(p->registry, p->o.cfg->site, &p->metrics, err);
    if (st != CH_OK || p->o.cfg->monitor_port == 0)
        return st;
    prov_http_opts ho = {
        .bind = p->o.cfg->monitor_bind, .port = p->o.cfg->monitor_port, .metrics = p->registry};
    ch_error e;
    if (prov_http_server_start(&ho, &p->http, &e) != CH_OK)
        return ch_error_set(err, CH_ERR_IO, "monitor_port: cannot serve /metrics: %s", e.msg);
    return CH_OK;
}

static ch_status connect_broker(prov_daemon *p, ch_error *err)
{
    ch_conn_opts co = {.send_asap = true};
    ch_conn_opts_from_settings(p->o.conn, &co);
    ch_error e;
    if (ch_conn_connect(&co, &p->nc, &e) != CH_OK)
        return ch_error_set(err, CH_ERR_CONNECTION,
                            "could not create initial events connection: %s", e.msg);
    /* the choria provider signs as its JWT's callerid; x509 and insecure as choria=<cert> */
    char callerid[CH_MAX_IDENTITY_LEN + 16];
    const char *certname = p->o.certname != NULL ? p->o.certname : p->o.conn->name;
    const char *token_caller = ch_security_callerid(p->o.security);
    ch_status st =
        token_caller != NULL
            ? (snprintf(callerid, sizeof(callerid), "%s", token_caller) < (int)sizeof(callerid)
                   ? CH_OK
                   : ch_error_set(err, CH_ERR_TOO_LARGE, "the JWT's callerid is too long"))
            : ch_protocol_callerid(certname, callerid, sizeof(callerid), err);
    ch_rpc_client_opts ro = {.nc = p->nc,
                             .collective = CH_PROTOCOL_PROVISIONING_COLLECTIVE,
                             .identity = p->o.conn->name,
                             .callerid = callerid,
                             .security = p->o.security,
                             .protocol = ch_protocol_for_security(p->o.security),
                             .send_asap = true};
    if (st == CH_OK)
        st = ch_rpc_client_new_opts(&ro, &p->rpc, err);
    return st;
}

/* The provisioner's own startup event, in the Choria format as upstream sends it. */
/* The provisioner announces itself as upstream's does: component "provisioner", Choria
 * format. */
static void publish_startup(prov_daemon *p)
{
    ch_error err;
    if (ch_lifecycle_announce(p->nc, CH_LIFECYCLE_STARTUP, p->o.conn->name, "provisioner",
                              CH_VERSION, NULL, CH_LIFECYCLE_FORMAT_CHORIA, &err) != CH_OK)
        ch_warn("could not publish the startup event: %s", err.msg);
}

static ch_status start_workers(prov_daemon *p, ch_error *err)
{
    int n = p->o.cfg->workers > 0 ? p->o.cfg->workers : 1;
    p->workers = calloc((size_t)n, sizeof(*p->workers));
    if (p->workers == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    for (; p->started_workers < n; p->started_workers++)
        if (pthread_create(&p->workers[p->started_workers], NULL, worker_loop, p) != 0)
            return ch_error_set(err, CH_ERR_INTERNAL, "cannot start worker %d",
                                p->started_workers + 1);
    return CH_OK;
}

/* helper_mode persistent: the helper processes start with the daemon. */
static ch_status start_helpers(prov_daemon *p, ch_error *err)
{
    const prov_config *c = p->o.cfg;
    if (!c->helper_persistent)
        return CH_OK;
    prov_helper_pool_opts ho = {.command = c->helper,
                                .processes = (size_t)c->helper_processes,
                                .timeout_ms = c->helper_timeout_ns / 1000000,
                                .stopping = &p->stopping};
    ch_info("Starting %d persistent helper processes: %s", c->helper_processes, c->helper);
    return prov_helper_pool_start(&ho, &p->helpers, err);
}

static void wire_pipeline(prov_daemon *p)
{
    int64_t dt = p->o.discovery_timeout_ms > 0 ? p->o.discovery_timeout_ms : 2000;
    p->wrap = (prov_rpcwrap){.rpc = p->rpc,
                             .paused = &p->paused,
                             .observe = observe_rpc,
                             .failed = failed_rpc,
                             .closure = &p->metrics,
                             .backoff_percent = p->o.backoff_percent};
    p->pipeline = (prov_pipeline){.cfg = p->o.cfg,
                                  .rpc = &p->wrap,
                                  .verify_key = p->verify_key,
                                  .deny = p->deny,
                                  .signer = p->signer,
                                  .metrics = &p->metrics,
                                  .paused = &p->paused,
                                  .stopping = &p->stopping,
                                  .helpers = p->helpers,
                                  .provision_timeout_ms = dt + 20000,
                                  .rpcutil_timeout_ms = dt + 2000};
}

static ch_status start_discovery(prov_daemon *p, ch_error *err)
{
    prov_discoverer_opts d = {.nc = p->nc,
                              .rpc = p->rpc,
                              .component = p->o.cfg->lifecycle_component,
                              .interval_ms = p->o.cfg->interval_ns / 1000000,
                              .timeout_ms = p->o.discovery_timeout_ms,
                              .paused = &p->paused,
                              .found = on_found,
                              .closure = p,
                              .metrics = &p->metrics};
    return prov_discoverer_start(&d, &p->discoverer, err);
}

static void on_won(void *closure)
{
    ch_info("Became leader after winning election");
    prov_daemon_resume(closure);
}

static void on_lost(void *closure)
{
    ch_warn("Lost leadership");
    prov_daemon_pause(closure);
}

/* leader_election: paused until the election is won (upstream hosts/election.go). */
static ch_status start_election(prov_daemon *p, ch_error *err)
{
    const char *prefix = p->o.cfg->leader_election_api_prefix;
    ch_leader_opts lo = {.nc = p->nc,
                         .key = "provisioner",
                         .identity = p->o.conn->name,
                         .api_prefix = strcmp(prefix, "$JS.API") == 0 ? NULL : prefix,
                         .won = on_won,
                         .lost = on_lost,
                         .closure = p,
                         .metrics = p->registry};
    ch_error e;
    if (ch_leader_start(&lo, &p->leader, &e) != CH_OK)
        return ch_error_set(err, e.code, "leader_election: %s", e.msg);
    return CH_OK;
}

ch_status prov_daemon_start(const prov_daemon_opts *o, prov_daemon **out, ch_error *err)
{
    *out = NULL;
    prov_daemon *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    p->o = *o;
    p->o.start_paused = o->start_paused || o->cfg->leader_election;
    o = &p->o;
    atomic_store(&p->paused, o->start_paused);
    char interval[CH_DURATION_STR_MAX];
    ch_config_format_duration(o->cfg->interval_ns, interval, sizeof(interval));
    ch_info("Choria Provisioner starting using configuration file %s. Discovery interval %s using "
            "%d workers",
            o->config_file != NULL ? o->config_file : "(none)", interval, o->cfg->workers);
    prov_hosts_opts ho = {.interval_ms = o->cfg->interval_ns / 1000000, .hold_ms = o->hold_ms};
    ch_status st = check_config(p, err);
    if (st == CH_OK && (st = setup_metrics(p, err)) == CH_OK)
        ch_metric_set(p->metrics.paused, o->start_paused ? 1 : 0);
    if (st == CH_OK)
        st = prov_hosts_new(&ho, &p->hosts, err);
    if (st == CH_OK)
        st = connect_broker(p, err);
    if (st == CH_OK)
        st = start_helpers(p, err);
    if (st == CH_OK) {
        wire_pipeline(p);
        publish_startup(p);
        st = start_workers(p, err);
    }
    if (st == CH_OK)
        st = start_discovery(p, err);
    if (st == CH_OK && o->cfg->leader_election)
        st = start_election(p, err);
    if (st != CH_OK) {
        prov_daemon_stop(p);
        return st;
    }
    *out = p;
    return CH_OK;
}

void prov_daemon_pause(prov_daemon *p)
{
    atomic_store(&p->paused, true);
    ch_metric_set(p->metrics.paused, 1);
    size_t dropped = prov_hosts_pause(p->hosts);
    sync_queue_metrics(p);
    ch_info("Provisioning paused, %zu queued nodes forgotten", dropped);
}

void prov_daemon_resume(prov_daemon *p)
{
    atomic_store(&p->paused, false);
    ch_metric_set(p->metrics.paused, 0);
    ch_info("Provisioning resumed");
    prov_discoverer_trigger(p->discoverer);
}

int prov_daemon_monitor_port(const prov_daemon *p)
{
    return p->http != NULL ? prov_http_server_port(p->http) : 0;
}

ch_metrics *prov_daemon_registry(prov_daemon *p)
{
    return p->registry;
}

prov_metrics *prov_daemon_metrics(prov_daemon *p)
{
    return &p->metrics;
}

void prov_daemon_hosts_stats(prov_daemon *p, prov_hosts_stats *out)
{
    prov_hosts_stats_get(p->hosts, out);
}

void prov_daemon_stop(prov_daemon *p)
{
    if (p == NULL)
        return;
    /* Order matters: stop new work, end what is in flight (closing the connection ends the
     * RPCs waiting for replies at once), then free what the threads used. */
    ch_leader_stop(p->leader); /* a leader steps down at once */
    atomic_store(&p->stopping, true);
    atomic_store(&p->paused, true);
    if (p->hosts != NULL)
        prov_hosts_shutdown(p->hosts);
    prov_discoverer_stop(p->discoverer);
    if (p->nc != NULL)
        natsConnection_Close(p->nc);
    for (int i = 0; i < p->started_workers; i++)
        pthread_join(p->workers[i], NULL);
    free(p->workers);
    prov_helper_pool_stop(p->helpers);
    ch_rpc_client_free(p->rpc);
    ch_conn_close(p->nc);
    prov_http_server_stop(p->http);
    prov_hosts_free(p->hosts);
    ch_metrics_free(p->registry);
    ch_jwt_key_free(p->verify_key);
    prov_csr_deny_free(p->deny);
    prov_srvjwt_signer_free(p->signer);
    free(p);
}
