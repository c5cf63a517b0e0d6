/* The simulated fleet. Nodes share a few NATS connections; each node subscribes to its own
 * node subject (so a vanished node makes the broker answer "no responders"), and each
 * connection has one subscription per broadcast agent subject whose request (and message
 * body) is decoded once and run against every node of that connection. Message delivery uses
 * nats.c's shared delivery pool instead of a thread per subscription.
 *
 * Where the CPU goes is what a benchmark of the provisioner measures next to it, so the
 * per-node costs that are the fleet's and not a node's are kept out of the way: replies to a
 * broadcast leave on a second, buffered connection (one write for many replies instead of
 * a write each); restarts wait in a due-list instead of a scan of every node; the counts that
 * decide when the fleet is done are kept as they change. */
#include "fleet.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "choria/agent.h"
#include "choria/conn.h"
#include "choria/facts.h"
#include "choria/json.h"
#include "choria/lifecycle.h"
#include "choria/log.h"
#include "choria/pki.h"
#include "choria/process.h"
#include "choria/provjwt.h"
#include "choria/util.h"

#define MAX_CALLERS 4
#define NODES_PER_CONNECTION 2000
#define COLLECTIVE CH_PROTOCOL_PROVISIONING_COLLECTIVE

typedef struct fleet fleet;

typedef enum { FAULT_NONE, FAULT_MALFORMED, FAULT_BAD_CSR, FAULT_WRONG_CSR, FAULT_JWT } node_fault;
static const char *const FAULT_NAMES[] = {"none", "malformed", "bad_csr", "wrong_csr", "jwt_fault"};
#define N_FAULTS 5

typedef struct {
    char callerid[128];
    int calls;
} caller_count;

typedef struct {
    fleet *fl;
    int conn;
    char identity[128];
    char config_file[700];
    ch_node node;
    ch_provision_state prov;
    natsSubscription *sub;
    pthread_mutex_t lock; /* the fields below */
    bool provisioned, vanished, stopped;
    bool settled; /* counted in fleet.settled: provisioned, vanished, or faulty and served */
    /* Interleaving: a configure from another caller while the last configure's caller has
     * not yet asked for the restart (two provisioners working on the node at once). */
    char open_caller[128]; /* caller of the last configure not followed by its restart */
    int interleaved;
    node_fault fault;
    bool fault_hit; /* the faulty reply was sent at least once */
    int configure_calls;
    caller_count callers[MAX_CALLERS];
    int n_callers, other_callers;
} fleet_node;

typedef struct {
    fleet *fl;
    natsConnection *nc;
    /* Replies to broadcasts: without SendAsap, so nats.c's flusher writes the replies of the
     * many nodes that answer one broadcast together; direct replies stay on nc, at once. */
    natsConnection *bulk;
    natsSubscription *broadcast[3];
    fleet_node **nodes;
    int n_nodes;
} fleet_conn;

typedef struct delayed {
    struct delayed *next;
    natsConnection *nc;
    char subject[CH_MAX_SUBJECT_LEN];
    char *payload;
    size_t len;
    int64_t due_ms;
} delayed;

/* A simulated restart that finishes at `at` (monotonic ms). */
typedef struct {
    int64_t at;
    fleet_node *node;
} due_restart;

struct fleet {
    const srv_fleet_opts *o;
    fleet_node *nodes;
    fleet_conn *conns;
    int n_conns;
    json_t *facts;
    char state_dir[512];
    bool own_state_dir;
    char jwt_file[600];
    char *jwt_fault; /* contents of jwt_fault_file */
    uint64_t rng;
    const char *collectives[1];
    const ch_protocol_ops *protocol; /* every node's: provisioning-mode nodes never verify */
    atomic_ullong requests, replies, dropped, delayed_n, errors, vanished;
    atomic_int provisioned_n, settled; /* nodes provisioned; nodes done (see fleet_node) */
    pthread_mutex_t due_lock;          /* the due-list: a min-heap on at */
    due_restart *due;
    size_t n_due, due_cap;
    pthread_mutex_t delay_lock;
    pthread_cond_t delay_cond;
    delayed *delay_queue;
    bool delay_stop;
    pthread_t delay_thread;
};

static bool chance(double pct)
{
    if (pct <= 0)
        return false;
    uint32_t r = 0;
    ch_random_bytes(&r, sizeof(r));
    return (r % 1000000) < (uint32_t)(pct * 10000);
}

/* ---- lifecycle events and host callbacks ---- */

static ch_status publish_event(void *closure, ch_lifecycle_type type, const char *new_version)
{
    fleet_node *n = closure;
    ch_error err;
    const char *component = n->node.provision_mode ? CH_LIFECYCLE_COMPONENT_PROVISION_MODE
                                                   : CH_LIFECYCLE_COMPONENT_SERVER;
    ch_lifecycle_format format =
        n->fl->o->legacy_format ? CH_LIFECYCLE_FORMAT_CHORIA : CH_LIFECYCLE_FORMAT_CLOUDEVENT;
    return ch_lifecycle_announce(n->fl->conns[n->conn].nc, type, n->identity, component, CH_VERSION,
                                 type == CH_LIFECYCLE_UPGRADED ? new_version : NULL, format, &err);
}

/* ---- the due-list of restarts ---- */

static void due_swap(due_restart *a, due_restart *b)
{
    due_restart t = *a;
    *a = *b;
    *b = t;
}

/* Adds a restart; false when out of memory. Called with due_lock held. */
static bool due_push(fleet *fl, int64_t at, fleet_node *n)
{
    if (fl->n_due == fl->due_cap) {
        size_t cap = fl->due_cap ? fl->due_cap * 2 : 64;
        due_restart *d = realloc(fl->due, cap * sizeof(*d));
        if (d == NULL)
            return false;
        fl->due = d;
        fl->due_cap = cap;
    }
    size_t i = fl->n_due++;
    fl->due[i] = (due_restart){.at = at, .node = n};
    while (i > 0 && fl->due[(i - 1) / 2].at > fl->due[i].at) {
        due_swap(&fl->due[(i - 1) / 2], &fl->due[i]);
        i = (i - 1) / 2;
    }
    return true;
}

/* The earliest restart if it is due by now, removed from the list; NULL otherwise. Called
 * with due_lock held. */
static fleet_node *due_pop(fleet *fl, int64_t now)
{
    if (fl->n_due == 0 || fl->due[0].at > now)
        return NULL;
    fleet_node *n = fl->due[0].node;
    fl->due[0] = fl->due[--fl->n_due];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < fl->n_due && fl->due[l].at < fl->due[m].at)
            m = l;
        if (r < fl->n_due && fl->due[r].at < fl->due[m].at)
            m = r;
        if (m == i)
            break;
        due_swap(&fl->due[i], &fl->due[m]);
        i = m;
    }
    return n;
}

/* Marks the node done for --exit-when-provisioned, once. Called with n->lock held. */
static void settle(fleet_node *n)
{
    if (!n->settled) {
        n->settled = true;
        n->fl->settled++;
    }
}

static void host_restart(void *closure, int64_t delay_ms)
{
    fleet_node *n = closure;
    fleet *fl = n->fl;
    publish_event(n, CH_LIFECYCLE_SHUTDOWN, NULL);
    pthread_mutex_lock(&fl->due_lock);
    bool queued = due_push(fl, ch_now_mono_ms() + delay_ms, n);
    pthread_mutex_unlock(&fl->due_lock);
    if (!queued)
        fprintf(stderr, "fleet: out of memory: %s will not restart\n", n->identity);
}

static void stop_node(fleet_node *n)
{
    if (n->sub != NULL)
        natsSubscription_Unsubscribe(n->sub);
}

static void host_shutdown(void *closure, int64_t delay_ms)
{
    fleet_node *n = closure;
    publish_event(n, CH_LIFECYCLE_SHUTDOWN, NULL);
    pthread_mutex_lock(&n->lock);
    n->stopped = true;
    pthread_mutex_unlock(&n->lock);
    stop_node(n);
}

/* ---- replies, faults and the delay queue ---- */

static void *delay_loop(void *arg)
{
    fleet *fl = arg;
    pthread_mutex_lock(&fl->delay_lock);
    while (!fl->delay_stop) {
        delayed *d = fl->delay_queue;
        int64_t now = ch_now_mono_ms();
        if (d != NULL && d->due_ms <= now) {
            fl->delay_queue = d->next;
            pthread_mutex_unlock(&fl->delay_lock);
            natsConnection_Publish(d->nc, d->subject, d->payload, (int)d->len);
            free(d->payload);
            free(d);
            pthread_mutex_lock(&fl->delay_lock);
            continue;
        }
        ch_cond_wait_until(&fl->delay_cond, &fl->delay_lock, d != NULL ? d->due_ms : now + 100);
    }
    pthread_mutex_unlock(&fl->delay_lock);
    return NULL;
}

static void delay_reply(fleet *fl, natsConnection *nc, ch_agent_result *res)
{
    delayed *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return;
    d->nc = nc;
    snprintf(d->subject, sizeof(d->subject), "%s", res->subject);
    d->payload = res->payload;
    d->len = res->payload_len;
    res->payload = NULL;
    d->due_ms = ch_now_mono_ms() + fl->o->delay_ms;
    pthread_mutex_lock(&fl->delay_lock);
    delayed **p = &fl->delay_queue;
    while (*p != NULL && (*p)->due_ms <= d->due_ms)
        p = &(*p)->next;
    d->next = *p;
    *p = d;
    pthread_cond_signal(&fl->delay_cond);
    pthread_mutex_unlock(&fl->delay_lock);
}

/* Replaces the agent's reply body, keeping a valid reply envelope around it. */
static void replace_body(fleet_node *n, const ch_request_payload *req, const char *body,
                         ch_agent_result *res)
{
    ch_reply_params p = {.body = body,
                         .request = &req->request.envelope,
                         .identity = n->identity,
                         .time = ch_now_unix(),
                         .federation = req->transport.headers.federation};
    char *payload = NULL;
    size_t len = 0;
    if (ch_protocol_encode_reply(n->node.protocol, n->node.security, &p, &payload, &len, NULL) ==
        CH_OK) {
        free(res->payload);
        res->payload = payload;
        res->payload_len = len;
    }
}

/* Replaces the agent's reply with an mcorpc error, as a failing node would send. */
static void inject_error(fleet_node *n, const ch_request_payload *req, const char *action,
                         ch_agent_result *res)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"action\":\"%s\",\"statuscode\":5,\"statusmsg\":\"fleet: injected failure\","
             "\"data\":{}}",
             action);
    replace_body(n, req, body, res);
}

/* The faulty reply of a faulty node for agent#action, if its fault touches that action. */
static bool inject_fault(fleet_node *n, const ch_request_payload *req, const char *agent,
                         const char *action, ch_agent_result *res)
{
    bool prov = strcmp(agent, "choria_provision") == 0;
    ch_buf b;
    ch_buf_init(&b);
    if (n->fault == FAULT_MALFORMED && (prov || strcmp(agent, "rpcutil") == 0)) {
        ch_buf_append_str(&b, "{\"action\":");
    } else if (prov && n->fault == FAULT_BAD_CSR && strcmp(action, "gencsr") == 0) {
        ch_buf_append_str(
            &b, "{\"action\":\"gencsr\",\"statuscode\":0,\"statusmsg\":\"OK\","
                "\"data\":{\"csr\":\"not a csr\",\"public_key\":\"\",\"ssldir\":\"/tmp\"}}");
    } else if (prov && n->fault == FAULT_WRONG_CSR && strcmp(action, "gencsr") == 0) {
        char other[200];
        snprintf(other, sizeof(other), "other.%s", n->identity);
        ch_pki_subject subject = {.cn = other};
        ch_pki_csr csr = {0};
        if (ch_pki_csr_generate(&subject, 2048, &csr, NULL) != CH_OK)
            return false;
        ch_buf_append_str(&b, "{\"action\":\"gencsr\",\"statuscode\":0,\"statusmsg\":\"OK\","
                              "\"data\":{\"csr\":");
        ch_buf_append_json_string(&b, csr.csr_pem, strlen(csr.csr_pem));
        ch_buf_append_str(&b, ",\"public_key\":");
        ch_buf_append_json_string(&b, csr.public_pem, strlen(csr.public_pem));
        ch_buf_append_str(&b, ",\"ssldir\":\"/tmp\"}}");
        ch_pki_csr_clear(&csr);
    } else if (prov && n->fault == FAULT_JWT && strcmp(action, "jwt") == 0) {
        const char *jwt = n->fl->jwt_fault != NULL ? n->fl->jwt_fault : "";
        ch_buf_append_str(&b, "{\"action\":\"jwt\",\"statuscode\":0,\"statusmsg\":\"OK\","
                              "\"data\":{\"jwt\":");
        ch_buf_append_json_string(&b, jwt, strlen(jwt));
        ch_buf_append_str(&b, ",\"ecdh_public\":\"0900000000000000000000000000000000000000000000"
                              "000000000000000000\"}}");
    } else {
        return false;
    }
    if (b.data != NULL)
        replace_body(n, req, b.data, res);
    ch_buf_free(&b);
    pthread_mutex_lock(&n->lock);
    n->fault_hit = true;
    settle(n); /* a faulty node is done once it served its fault */
    pthread_mutex_unlock(&n->lock);
    return true;
}

/* Sends the reply the node made (res) on nc, or drops, delays or replaces it as the faults
 * say. */
static void answer(fleet_node *n, natsConnection *nc, const ch_request_payload *req,
                   ch_agent_result *res)
{
    fleet *fl = n->fl;
    const char *agent = req->request.envelope.agent, *action = res->action;
    if (res->payload != NULL && n->fault != FAULT_NONE)
        inject_fault(n, req, agent, action, res);
    if (res->payload != NULL) {
        if (chance(fl->o->drop_pct)) {
            fl->dropped++;
        } else {
            if (chance(fl->o->error_pct)) {
                inject_error(n, req, action, res);
                fl->errors++;
            }
            if (chance(fl->o->delay_pct)) {
                fl->delayed_n++;
                delay_reply(fl, nc, res);
            } else {
                natsConnection_Publish(nc, res->subject, res->payload, (int)res->payload_len);
            }
            fl->replies++;
        }
    }
}

static void record_restart(fleet_node *n, const char *callerid)
{
    pthread_mutex_lock(&n->lock);
    if (strcmp(n->open_caller, callerid) == 0)
        n->open_caller[0] = '\0';
    pthread_mutex_unlock(&n->lock);
}

static void record_configure(fleet_node *n, const char *callerid)
{
    pthread_mutex_lock(&n->lock);
    if (n->open_caller[0] != '\0' && strcmp(n->open_caller, callerid) != 0)
        n->interleaved++;
    snprintf(n->open_caller, sizeof(n->open_caller), "%s", callerid);
    n->configure_calls++;
    int i = 0;
    while (i < n->n_callers && strcmp(n->callers[i].callerid, callerid) != 0)
        i++;
    if (i < n->n_callers)
        n->callers[i].calls++;
    else if (n->n_callers < MAX_CALLERS) {
        snprintf(n->callers[i].callerid, sizeof(n->callers[i].callerid), "%s", callerid);
        n->callers[i].calls = 1;
        n->n_callers++;
    } else
        n->other_callers++;
    pthread_mutex_unlock(&n->lock);
}

/* The agent decides which action a request names (ch_agent_result.action), so the fleet
 * reads it from the result instead of parsing the body a second time; its bookkeeping still
 * happens before the reply leaves, so a caller can never see a reply the counts miss. */
static void on_direct(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    fleet_node *n = closure;
    fleet *fl = n->fl;
    ch_request_payload req = {0};
    fl->requests++;
    if (ch_protocol_decode_request(n->node.protocol, n->node.security, natsMsg_GetData(msg),
                                   (size_t)natsMsg_GetDataLength(msg), &req, NULL) == CH_OK) {
        const char *callerid = req.request.envelope.callerid;
        bool provisioning_call = strcmp(req.request.envelope.agent, "choria_provision") == 0;
        if (provisioning_call && !n->vanished && chance(fl->o->vanish_pct)) {
            pthread_mutex_lock(&n->lock);
            n->vanished = true; /* gone mid-provisioning: later calls find no responders */
            settle(n);
            pthread_mutex_unlock(&n->lock);
            fl->vanished++;
            stop_node(n);
        } else if (!n->vanished) {
            ch_agent_result res = {0};
            ch_agent_handle_decoded(&n->node, &req, ch_now_unix(), &res, NULL);
            if (provisioning_call && strcmp(res.action, "configure") == 0)
                record_configure(n, callerid);
            else if (provisioning_call && strcmp(res.action, "restart") == 0)
                record_restart(n, callerid);
            answer(n, nc, &req, &res);
            ch_agent_result_clear(&res);
        }
    }
    ch_protocol_request_payload_clear(&req);
    natsMsg_Destroy(msg);
}

/* One broadcast, decoded once (the request and its message body), answered by every live
 * provisioning-mode node of the connection. */
static void on_broadcast(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    fleet_conn *c = closure;
    ch_request_payload req = {0};
    unsigned char *body = NULL;
    size_t body_len = 0;
    c->fl->requests++;
    if (ch_protocol_decode_request(c->fl->protocol, NULL, natsMsg_GetData(msg),
                                   (size_t)natsMsg_GetDataLength(msg), &req, NULL) == CH_OK &&
        ch_protocol_message_body(req.request.message, &body, &body_len, NULL) == CH_OK) {
        int64_t now = ch_now_unix();
        for (int i = 0; i < c->n_nodes; i++) {
            fleet_node *n = c->nodes[i];
            if (n->vanished || n->stopped || !n->node.provision_mode)
                continue;
            ch_agent_result res;
            ch_agent_handle_body(&n->node, &req, body, body_len, now, &res, NULL);
            answer(n, c->bulk, &req, &res);
            ch_agent_result_clear(&res);
        }
    }
    free(body);
    ch_protocol_request_payload_clear(&req);
    natsMsg_Destroy(msg);
}

/* ---- set-up ---- */

/* An unsigned provisioning JWT ("alg":"none"): nodes read theirs unverified, and a
 * provisioner that verifies JWTs is given --provisioning-jwt instead. */
static char *unsigned_jwt(const fleet *fl)
{
    json_t *claims = json_pack("{s:s,s:b,s:s,s:b,s:s,s:s,s:s}", "cht",
                               fl->o->token != NULL ? fl->o->token : "fleet", "chs", 0, "chu",
                               fl->o->conn->servers[0], "chpd", 1, "purpose", CH_PROVJWT_PURPOSE,
                               "sub", CH_PROVJWT_PURPOSE, "iss", "choria tool fleet");
    static const char header[] = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    char *body = claims != NULL ? ch_json_encode(claims, NULL) : NULL;
    char *h = ch_base64url_encode(header, strlen(header));
    char *p = body != NULL ? ch_base64url_encode(body, strlen(body)) : NULL;
    char *jwt = NULL;
    if (h != NULL && p != NULL && asprintf(&jwt, "%s.%s.", h, p) < 0)
        jwt = NULL;
    json_decref(claims);
    free(body);
    free(h);
    free(p);
    return jwt;
}

static ch_status write_jwt(fleet *fl, ch_error *err)
{
    if (fl->o->jwt_file != NULL) {
        snprintf(fl->jwt_file, sizeof(fl->jwt_file), "%s", fl->o->jwt_file);
        return CH_OK;
    }
    snprintf(fl->jwt_file, sizeof(fl->jwt_file), "%s/provisioning.jwt", fl->state_dir);
    char *jwt = unsigned_jwt(fl);
    FILE *fp = fopen(fl->jwt_file, "w");
    ch_status st = CH_OK;
    if (jwt == NULL || fp == NULL || fprintf(fp, "%s\n", jwt) < 0)
        st = ch_error_set(err, CH_ERR_IO, "cannot write %s", fl->jwt_file);
    if (fp != NULL && fclose(fp) != 0 && st == CH_OK)
        st = ch_error_set(err, CH_ERR_IO, "cannot write %s", fl->jwt_file);
    free(jwt);
    return st;
}

/* xorshift64*: reproducible per --seed, so a test knows its fleet. */
static uint64_t next_random(fleet *fl)
{
    fl->rng ^= fl->rng >> 12;
    fl->rng ^= fl->rng << 25;
    fl->rng ^= fl->rng >> 27;
    return fl->rng * 2685821657736338717ULL;
}

static node_fault pick_fault(fleet *fl)
{
    const srv_fleet_opts *o = fl->o;
    double r = (double)(next_random(fl) % 1000000) / 10000.0, edge = 0;
    const double pcts[] = {0, o->malformed_pct, o->bad_csr_pct, o->wrong_csr_pct, o->jwt_fault_pct};
    for (int f = 1; f < N_FAULTS; f++) {
        edge += pcts[f];
        if (pcts[f] > 0 && r < edge)
            return (node_fault)f;
    }
    return FAULT_NONE;
}

static ch_status setup_node(fleet *fl, int i, ch_error *err)
{
    fleet_node *n = &fl->nodes[i];
    n->fl = fl;
    n->conn = i % fl->n_conns;
    snprintf(n->identity, sizeof(n->identity), "%s%d.%s", fl->o->prefix, i + 1, fl->o->domain);
    if (!ch_identity_valid(n->identity))
        return ch_error_set(err, CH_ERR_INVALID, "'%s' is not a valid identity", n->identity);
    char dir[sizeof(fl->state_dir) + sizeof(n->identity) + 2];
    snprintf(dir, sizeof(dir), "%s/%s", fl->state_dir, n->identity);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return ch_error_set(err, CH_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    snprintf(n->config_file, sizeof(n->config_file), "%s/server.conf", dir);
    pthread_mutex_init(&n->lock, NULL);
    pthread_mutex_init(&n->prov.mutex, NULL);
    ch_node *node = &n->node;
    node->identity = n->identity;
    node->version = CH_VERSION;
    node->collectives = fl->collectives;
    node->n_collectives = 1;
    node->main_collective = COLLECTIVE;
    node->facts = fl->facts;
    node->provision_mode = true;
    node->provision_token = fl->o->token;
    node->provisioning_jwt_file = fl->jwt_file;
    node->config_file = n->config_file;
    node->provision = &n->prov;
    node->protocol = fl->protocol;
    node->security = NULL; /* provisioning mode: requests are not verified */
    node->no_sync = fl->o->no_sync;
    node->host = (ch_node_host){.closure = n,
                                .publish_event = publish_event,
                                .restart = host_restart,
                                .shutdown = host_shutdown};
    n->fault = pick_fault(fl);
    fleet_conn *c = &fl->conns[n->conn];
    c->nodes[c->n_nodes++] = n;
    return CH_OK;
}

static ch_status connect_all(fleet *fl, ch_error *err)
{
    static const char *agents[] = {"discovery", "rpcutil", "choria_provision"};
    for (int i = 0; i < fl->n_conns; i++) {
        fleet_conn *c = &fl->conns[i];
        char name[64];
        snprintf(name, sizeof(name), "fleet-%d", i);
        ch_conn_opts o = {.send_asap = true, .global_delivery = true};
        ch_conn_opts_from_settings(fl->o->conn, &o);
        o.name = name; /* one per connection, so the broker tells them apart */
        ch_status st = ch_conn_connect(&o, &c->nc, err);
        if (st == CH_OK) {
            char bulk_name[80];
            snprintf(bulk_name, sizeof(bulk_name), "fleet-%d-broadcast-replies", i);
            ch_conn_opts b = o;
            b.name = bulk_name;
            b.send_asap = false;
            st = ch_conn_connect(&b, &c->bulk, err);
        }
        for (int a = 0; st == CH_OK && a < 3; a++) {
            char subject[CH_MAX_SUBJECT_LEN];
            st =
                ch_protocol_broadcast_subject(COLLECTIVE, agents[a], subject, sizeof(subject), err);
            if (st == CH_OK && natsConnection_Subscribe(&c->broadcast[a], c->nc, subject,
                                                        on_broadcast, c) != NATS_OK)
                st = ch_error_set(err, CH_ERR_CONNECTION, "cannot subscribe to %s", subject);
        }
        if (st != CH_OK)
            return st;
    }
    return CH_OK;
}

static ch_status subscribe_nodes(fleet *fl, ch_error *err)
{
    for (int i = 0; i < fl->o->count; i++) {
        fleet_node *n = &fl->nodes[i];
        char subject[CH_MAX_SUBJECT_LEN];
        ch_status st =
            ch_protocol_node_subject(COLLECTIVE, n->identity, subject, sizeof(subject), err);
        if (st != CH_OK)
            return st;
        natsConnection *nc = fl->conns[n->conn].nc;
        if (natsConnection_Subscribe(&n->sub, nc, subject, on_direct, n) != NATS_OK)
            return ch_error_set(err, CH_ERR_CONNECTION, "cannot subscribe to %s", subject);
        natsSubscription_SetPendingLimits(n->sub, 1000, 16 * 1024 * 1024);
    }
    for (int i = 0; i < fl->n_conns; i++)
        natsConnection_FlushTimeout(fl->conns[i].nc, 10000);
    return CH_OK;
}

/* ---- the main loop ---- */

/* Restarts that are due: the node leaves provisioning mode, as a re-exec would do. */
static void finish_restarts(fleet *fl)
{
    int64_t now = ch_now_mono_ms();
    for (;;) {
        pthread_mutex_lock(&fl->due_lock);
        fleet_node *n = due_pop(fl, now);
        pthread_mutex_unlock(&fl->due_lock);
        if (n == NULL)
            break;
        pthread_mutex_lock(&n->lock);
        if (!n->provisioned)
            fl->provisioned_n++;
        n->provisioned = true;
        settle(n);
        pthread_mutex_unlock(&n->lock);
        stop_node(n);
        pthread_mutex_lock(&n->prov.mutex);
        n->node.provision_mode = false;
        n->prov.restart_pending = false;
        pthread_mutex_unlock(&n->prov.mutex);
        publish_event(n, CH_LIFECYCLE_STARTUP, NULL);
    }
}

typedef struct {
    int provisioned, vanished, configured_twice, multi_caller;
    int faulty[N_FAULTS], faulty_hit; /* nodes per fault; faulty nodes that sent their fault */
    int interleaved; /* nodes configured by another caller between a configure and its restart */
    long configure_calls;
} fleet_counts;

static fleet_counts count(fleet *fl)
{
    fleet_counts c = {0};
    for (int i = 0; i < fl->o->count; i++) {
        fleet_node *n = &fl->nodes[i];
        pthread_mutex_lock(&n->lock);
        c.provisioned += n->provisioned;
        c.vanished += n->vanished;
        c.configure_calls += n->configure_calls;
        c.configured_twice += n->configure_calls > 1;
        c.multi_caller += n->n_callers > 1 || n->other_callers > 0;
        c.faulty[n->fault]++;
        c.interleaved += n->interleaved > 0;
        c.faulty_hit += n->fault != FAULT_NONE && n->fault_hit && !n->provisioned;
        pthread_mutex_unlock(&n->lock);
    }
    return c;
}

static void write_summary_json(fleet *fl, const fleet_counts *c)
{
    FILE *fp = fopen(fl->o->summary_json, "w");
    if (fp == NULL) {
        fprintf(stderr, "fleet: cannot write %s: %s\n", fl->o->summary_json, strerror(errno));
        return;
    }
    fprintf(fp,
            "{\"nodes\":%d,\"provisioned\":%d,\"vanished\":%d,\"configure_calls\":%ld,"
            "\"nodes_configured_more_than_once\":%d,\"nodes_with_several_callers\":%d,"
            "\"requests\":%llu,\"replies\":%llu,\"dropped\":%llu,\"delayed\":%llu,"
            "\"errors\":%llu,\"nodes_interleaved\":%d,\"faulty\":{",
            fl->o->count, c->provisioned, c->vanished, c->configure_calls, c->configured_twice,
            c->multi_caller, (unsigned long long)fl->requests, (unsigned long long)fl->replies,
            (unsigned long long)fl->dropped, (unsigned long long)fl->delayed_n,
            (unsigned long long)fl->errors, c->interleaved);
    for (int f = 1; f < N_FAULTS; f++)
        fprintf(fp, "%s\"%s\":%d", f > 1 ? "," : "", FAULT_NAMES[f], c->faulty[f]);
    fprintf(fp, "},\"per_node\":[");
    for (int i = 0; i < fl->o->count; i++) {
        fleet_node *n = &fl->nodes[i];
        pthread_mutex_lock(&n->lock);
        fprintf(fp,
                "%s{\"identity\":\"%s\",\"provisioned\":%s,\"vanished\":%s,"
                "\"fault\":\"%s\",\"configure_calls\":%d,\"callers\":{",
                i ? "," : "", n->identity, n->provisioned ? "true" : "false",
                n->vanished ? "true" : "false", FAULT_NAMES[n->fault], n->configure_calls);
        for (int k = 0; k < n->n_callers; k++) {
            ch_buf b;
            ch_buf_init(&b);
            ch_buf_append_json_string(&b, n->callers[k].callerid, strlen(n->callers[k].callerid));
            fprintf(fp, "%s%s:%d", k ? "," : "", b.data != NULL ? b.data : "\"\"",
                    n->callers[k].calls);
            ch_buf_free(&b);
        }
        fprintf(fp, "}}");
        pthread_mutex_unlock(&n->lock);
    }
    fprintf(fp, "]}\n");
    fclose(fp);
}

static void print_summary(fleet *fl, const fleet_counts *c)
{
    printf("fleet summary: %d nodes, %d provisioned, %d vanished\n", fl->o->count, c->provisioned,
           c->vanished);
    printf("  configure calls: %ld; nodes configured more than once: %d; nodes configured by "
           "more than one caller: %d\n",
           c->configure_calls, c->configured_twice, c->multi_caller);
    int faulty = 0;
    for (int f = 1; f < N_FAULTS; f++)
        faulty += c->faulty[f];
    if (faulty > 0)
        printf("  faulty nodes: %d malformed, %d bad csr, %d wrong csr, %d jwt fault\n",
               c->faulty[FAULT_MALFORMED], c->faulty[FAULT_BAD_CSR], c->faulty[FAULT_WRONG_CSR],
               c->faulty[FAULT_JWT]);
    printf("  requests: %llu, replies: %llu, dropped: %llu, delayed: %llu, errors: %llu\n",
           (unsigned long long)fl->requests, (unsigned long long)fl->replies,
           (unsigned long long)fl->dropped, (unsigned long long)fl->delayed_n,
           (unsigned long long)fl->errors);
    fflush(stdout);
}

/* Every tick costs the restarts that are due and a few counters, not a pass over the nodes:
 * a restart finishes at most a tick after its time, as before the due-list. */
static void run_loop(fleet *fl, const sigset_t *signals)
{
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 100 * 1000000};
    int64_t start = ch_now_mono_ms(), last_print = start;
    int last_provisioned = -1;
    for (;;) {
        if (sigtimedwait(signals, NULL, &tick) > 0)
            break;
        finish_restarts(fl);
        int64_t now = ch_now_mono_ms();
        int provisioned = fl->provisioned_n;
        if (!fl->o->quiet && now - last_print >= 1000 && provisioned != last_provisioned) {
            printf("fleet: %d of %d provisioned, %llu vanished, %llu requests\n", provisioned,
                   fl->o->count, (unsigned long long)fl->vanished,
                   (unsigned long long)fl->requests);
            fflush(stdout);
            last_print = now;
            last_provisioned = provisioned;
        }
        /* Faulty nodes never get provisioned: they are done once their fault was served. */
        if (fl->o->exit_when_provisioned && fl->settled >= fl->o->count)
            break;
        if (fl->o->duration_ms > 0 && now - start >= fl->o->duration_ms)
            break;
    }
}

static void teardown(fleet *fl)
{
    for (int i = 0; fl->nodes != NULL && i < fl->o->count; i++)
        natsSubscription_Destroy(fl->nodes[i].sub);
    for (int i = 0; fl->conns != NULL && i < fl->n_conns; i++) {
        for (int a = 0; a < 3; a++)
            natsSubscription_Destroy(fl->conns[i].broadcast[a]);
        ch_conn_close(fl->conns[i].nc);
        ch_conn_close(fl->conns[i].bulk);
        free(fl->conns[i].nodes);
    }
    pthread_mutex_lock(&fl->delay_lock);
    fl->delay_stop = true;
    pthread_cond_signal(&fl->delay_cond);
    pthread_mutex_unlock(&fl->delay_lock);
    pthread_join(fl->delay_thread, NULL);
    while (fl->delay_queue != NULL) {
        delayed *d = fl->delay_queue;
        fl->delay_queue = d->next;
        free(d->payload);
        free(d);
    }
    ch_error e;
    if (fl->own_state_dir && ch_remove_tree(fl->state_dir, &e) != CH_OK)
        fprintf(stderr, "fleet: %s\n", e.msg);
    free(fl->conns);
    free(fl->nodes);
    free(fl->due);
    free(fl->jwt_fault);
    json_decref(fl->facts);
}

static ch_status prepare(fleet *fl, ch_error *err)
{
    const srv_fleet_opts *o = fl->o;
    if (o->state_dir != NULL) {
        snprintf(fl->state_dir, sizeof(fl->state_dir), "%s", o->state_dir);
        if (mkdir(fl->state_dir, 0700) != 0 && errno != EEXIST)
            return ch_error_set(err, CH_ERR_IO, "cannot create %s: %s", fl->state_dir,
                                strerror(errno));
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(fl->state_dir, sizeof(fl->state_dir), "%s/choria-fleet-XXXXXX",
                 tmp != NULL && tmp[0] ? tmp : "/tmp");
        if (mkdtemp(fl->state_dir) == NULL)
            return ch_error_set(err, CH_ERR_IO, "cannot create a temporary directory: %s",
                                strerror(errno));
        fl->own_state_dir = true;
    }
    ch_status st = CH_OK;
    if (o->facts_file != NULL)
        st = ch_facts_load(o->facts_file, &fl->facts, NULL, err);
    else
        fl->facts = json_pack("{s:b}", "fleet", 1);
    if (st == CH_OK)
        st = write_jwt(fl, err);
    fl->n_conns = o->connections > 0 ? o->connections
                                     : (o->count + NODES_PER_CONNECTION - 1) / NODES_PER_CONNECTION;
    if (fl->n_conns > o->count)
        fl->n_conns = o->count;
    fl->nodes = calloc((size_t)o->count, sizeof(fleet_node));
    fl->conns = calloc((size_t)fl->n_conns, sizeof(fleet_conn));
    if (st == CH_OK && (fl->nodes == NULL || fl->conns == NULL))
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory for %d nodes", o->count);
    for (int i = 0; st == CH_OK && i < fl->n_conns; i++) {
        fl->conns[i].fl = fl;
        fl->conns[i].nodes =
            calloc((size_t)o->count / (size_t)fl->n_conns + 1, sizeof(fleet_node *));
        if (fl->conns[i].nodes == NULL)
            st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
    if (st == CH_OK && o->jwt_fault_pct > 0) {
        size_t len = 0;
        if (o->jwt_fault_file == NULL)
            st = ch_error_set(err, CH_ERR_INVALID, "--jwt-fault needs --jwt-fault-file");
        else
            st = ch_read_file(o->jwt_fault_file, 64 * 1024, &fl->jwt_fault, &len, err);
    }
    fl->rng = o->seed != 0 ? o->seed : (uint64_t)ch_now_mono_ms() * 2654435761u + 1;
    for (int i = 0; st == CH_OK && i < o->count; i++)
        st = setup_node(fl, i, err);
    return st;
}

/* How the connections reach the broker, for the first line. */
static const char *tls_text(const ch_conn_settings *conn)
{
    if (!conn->tls)
        return "";
    return conn->tls_skip_verify && conn->cert_file == NULL ? " over anonymous TLS" : " over TLS";
}

int srv_fleet_run(const srv_fleet_opts *o)
{
    fleet fl;
    memset(&fl, 0, sizeof(fl));
    fl.o = o;
    fl.collectives[0] = COLLECTIVE;
    fl.protocol = ch_protocol_v1();
    pthread_mutex_init(&fl.delay_lock, NULL);
    pthread_mutex_init(&fl.due_lock, NULL);
    ch_cond_init_monotonic(&fl.delay_cond);

    sigset_t signals;
    ch_process_take_stop_signals(&signals, false);
    pthread_create(&fl.delay_thread, NULL, delay_loop, &fl);
    nats_SetMessageDeliveryPoolSize(2);

    ch_error err;
    ch_error_clear(&err);
    ch_status st = prepare(&fl, &err);
    if (st == CH_OK)
        st = connect_all(&fl, &err);
    if (st == CH_OK)
        st = subscribe_nodes(&fl, &err);
    if (st != CH_OK) {
        fprintf(stderr, "choria: %s\n", err.msg);
        teardown(&fl);
        nats_Close();
        return 1;
    }
    for (int i = 0; i < o->count; i++)
        publish_event(&fl.nodes[i], CH_LIFECYCLE_STARTUP, NULL);
    { /* always printed: scripts wait for this line */
        printf("fleet: %d nodes in provisioning mode on %d connection(s)%s, state in %s\n",
               o->count, fl.n_conns, tls_text(o->conn), fl.state_dir);
        fflush(stdout);
    }
    run_loop(&fl, &signals);
    fleet_counts c = count(&fl);
    print_summary(&fl, &c);
    if (o->summary_json != NULL)
        write_summary_json(&fl, &c);
    teardown(&fl);
    nats_Close();
    return 0;
}
