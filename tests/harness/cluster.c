/* A JetStream cluster of n nats-server nodes on loopback: names n1..nN, routes to all. */
#include "harness.h"
#include "internal.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define START_ATTEMPTS 3

struct cht_cluster {
    int n;
    int ready_timeout_ms;
    cht_broker *nodes[CHT_CLUSTER_MAX];
    char urls[CHT_CLUSTER_MAX * 32];
};

void cht_cluster_opts_init(cht_cluster_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->nodes = 3;
    o->name = "CHT";
    o->ready_timeout_ms = 20000;
}

/* The "cluster { ... }" block of one node: listen on its port, routes to every node. */
static char *cluster_block(const char *name, int own, const int *cports, int n)
{
    size_t cap = 256 + (size_t)n * 64;
    char *s = malloc(cap);
    if (s == NULL)
        return NULL;
    size_t len = (size_t)snprintf(s, cap,
                                  "cluster {\n  name: \"%s\"\n  listen: 127.0.0.1:%d\n"
                                  "  routes: [\n",
                                  name, own);
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "    nats-route://127.0.0.1:%d\n", cports[i]);
    snprintf(s + len, cap - len, "  ]\n}\n");
    return s;
}

void cht_cluster_free(cht_cluster *c)
{
    if (c == NULL)
        return;
    /* Kill the nodes first, all together, so the survivors do not spend the grace period
     * electing new leaders one after another. */
    for (int i = 0; i < c->n; i++) {
        if (c->nodes[i] != NULL)
            cht_broker_signal(c->nodes[i], SIGTERM, NULL);
    }
    for (int i = 0; i < c->n; i++)
        cht_broker_free(c->nodes[i]);
    free(c);
}

/* One attempt: new ports, configs, all nodes spawned, all healthz. */
static ch_status start_once(cht_cluster *c, const cht_cluster_opts *o, int64_t deadline,
                            bool *in_use, ch_error *err)
{
    int ports[3 * CHT_CLUSTER_MAX]; /* client, http, cluster per node */
    int cports[CHT_CLUSTER_MAX];
    ch_status st = cht__free_ports(3 * c->n, ports, err);
    if (st != CH_OK)
        return st;
    for (int i = 0; i < c->n; i++)
        cports[i] = ports[3 * i + 2];
    for (int i = 0; i < c->n && st == CH_OK; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i + 1);
        cht_broker_opts bo;
        cht_broker_opts_init(&bo);
        bo.server_name = name;
        bo.extra_config = o->extra_config;
        bo.ready_timeout_ms = o->ready_timeout_ms;
        char *block = cluster_block(o->name ? o->name : "CHT", cports[i], cports, c->n);
        if (block == NULL)
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        st = cht__broker_new(&bo, name, ports[3 * i], ports[3 * i + 1], cports[i], block,
                             &c->nodes[i], err);
        free(block);
    }
    for (int i = 0; i < c->n && st == CH_OK; i++)
        st = cht__broker_spawn(c->nodes[i], err);
    for (int i = 0; i < c->n && st == CH_OK; i++) {
        int64_t left = deadline - cht__now_ms();
        st = cht__broker_wait(c->nodes[i], left > 0 ? (int)left : 1, in_use, err);
    }
    return st;
}

ch_status cht_cluster_start(const cht_cluster_opts *o, cht_cluster **out, ch_error *err)
{
    cht_cluster_opts defaults;
    if (o == NULL) {
        cht_cluster_opts_init(&defaults);
        o = &defaults;
    }
    *out = NULL;
    int n = o->nodes > 0 ? o->nodes : 3;
    if (n > CHT_CLUSTER_MAX)
        return ch_error_set(err, CH_ERR_INVALID, "at most %d nodes", CHT_CLUSTER_MAX);
    int timeout = o->ready_timeout_ms > 0 ? o->ready_timeout_ms : 20000;
    ch_status st = CH_ERR_INTERNAL;
    for (int attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
        cht_cluster *c = calloc(1, sizeof(*c));
        if (c == NULL)
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        c->n = n;
        c->ready_timeout_ms = timeout;
        int64_t deadline = cht__now_ms() + timeout;
        bool in_use = false;
        st = start_once(c, o, deadline, &in_use, err);
        if (st == CH_OK) {
            int64_t left = deadline - cht__now_ms();
            st = cht_cluster_wait_meta_leader(c, left > 0 ? (int)left : 1, NULL, 0, err);
        }
        if (st == CH_OK) {
            size_t len = 0;
            for (int i = 0; i < n; i++)
                len += (size_t)snprintf(c->urls + len, sizeof(c->urls) - len, "%s%s", i ? "," : "",
                                        cht_broker_url(c->nodes[i]));
            *out = c;
            return CH_OK;
        }
        cht_cluster_free(c);
        if (!in_use)
            break;
        fprintf(stderr, "cht: cluster lost a port race, retrying with new ports (%d/%d)\n", attempt,
                START_ATTEMPTS);
    }
    return st;
}

int cht_cluster_size(const cht_cluster *c)
{
    return c->n;
}

cht_broker *cht_cluster_node(cht_cluster *c, int i)
{
    return (i >= 0 && i < c->n) ? c->nodes[i] : NULL;
}

const char *cht_cluster_url(const cht_cluster *c, int i)
{
    return (i >= 0 && i < c->n) ? cht_broker_url(c->nodes[i]) : NULL;
}

const char *cht_cluster_urls(const cht_cluster *c)
{
    return c->urls;
}

static ch_status node_or_err(cht_cluster *c, int i, cht_broker **b, ch_error *err)
{
    *b = cht_cluster_node(c, i);
    if (*b == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no node %d in a cluster of %d", i, c->n);
    return CH_OK;
}

ch_status cht_cluster_stop_node(cht_cluster *c, int i, ch_error *err)
{
    cht_broker *b;
    ch_status st = node_or_err(c, i, &b, err);
    return st == CH_OK ? cht_broker_stop(b, err) : st;
}

ch_status cht_cluster_crash_node(cht_cluster *c, int i, ch_error *err)
{
    cht_broker *b;
    ch_status st = node_or_err(c, i, &b, err);
    return st == CH_OK ? cht_broker_crash(b, err) : st;
}

ch_status cht_cluster_restart_node(cht_cluster *c, int i, ch_error *err)
{
    cht_broker *b;
    ch_status st = node_or_err(c, i, &b, err);
    return st == CH_OK ? cht_broker_restart(b, err) : st;
}

ch_status cht_cluster_stop_all(cht_cluster *c, ch_error *err)
{
    ch_status st = CH_OK;
    for (int i = 0; i < c->n; i++) {
        if (cht_broker_running(c->nodes[i]))
            cht_broker_signal(c->nodes[i], SIGTERM, NULL);
    }
    for (int i = 0; i < c->n; i++) {
        ch_status s = cht_broker_stop(c->nodes[i], st == CH_OK ? err : NULL);
        if (st == CH_OK)
            st = s;
    }
    return st;
}

/* meta_cluster.leader from one node's /jsz; false when it has none yet. */
static bool node_leader(cht_broker *b, char *out, size_t out_size)
{
    int status = 0;
    char *body = NULL;
    bool ok = false;
    if (cht_http_get(cht_broker_http_port(b), "/jsz", 1000, &status, &body, NULL) != CH_OK ||
        status != 200)
        goto out;
    json_t *doc = json_loads(body, 0, NULL);
    const char *leader =
        json_string_value(json_object_get(json_object_get(doc, "meta_cluster"), "leader"));
    if (leader != NULL && leader[0] != '\0') {
        snprintf(out, out_size, "%s", leader);
        ok = true;
    }
    json_decref(doc);
out:
    free(body);
    return ok;
}

ch_status cht_cluster_wait_meta_leader(cht_cluster *c, int timeout_ms, char *leader,
                                       size_t leader_size, ch_error *err)
{
    int64_t deadline = cht__now_ms() + timeout_ms;
    char seen[64] = "";
    for (;;) {
        char first[64] = "";
        bool agreed = true;
        int running = 0;
        for (int i = 0; i < c->n && agreed; i++) {
            char l[64];
            if (!cht_broker_running(c->nodes[i]))
                continue;
            running++;
            if (!node_leader(c->nodes[i], l, sizeof(l)))
                agreed = false;
            else if (first[0] == '\0')
                snprintf(first, sizeof(first), "%s", l);
            else if (strcmp(first, l) != 0)
                agreed = false;
        }
        if (first[0] != '\0')
            snprintf(seen, sizeof(seen), "%s", first);
        /* Right after a crash the survivors still name the dead node for a moment. */
        for (int i = 0; i < c->n && agreed; i++) {
            if (!cht_broker_running(c->nodes[i]) &&
                strcmp(cht_broker_name(c->nodes[i]), first) == 0)
                agreed = false;
        }
        if (agreed && running > 0) {
            if (leader != NULL && leader_size > 0)
                snprintf(leader, leader_size, "%s", first);
            return CH_OK;
        }
        if (cht__now_ms() >= deadline)
            break;
        cht__sleep_ms(100);
    }
    for (int i = 0; i < c->n; i++) {
        if (cht_broker_running(c->nodes[i]))
            cht__print_log_tail("no agreed JetStream meta leader",
                                cht_broker_log_path(c->nodes[i]));
    }
    return ch_error_set(err, CH_ERR_TIMEOUT,
                        "no JetStream meta leader agreed by all running nodes after %d ms "
                        "(last seen '%s')",
                        timeout_ms, seen);
}
