/* The per-node provisioning pipeline (upstream host/host.go Provision): jwt, inventory,
 * gencsr, the helper, then shutdown or configure + restart. One call provisions one node on the
 * calling worker thread; everything it needs is shared read-only between workers. */
#ifndef CHORIA_PROVISIONER_PIPELINE_H
#define CHORIA_PROVISIONER_PIPELINE_H

#include <stdatomic.h>

#include "helper.h"
#include "helper_pool.h"
#include "metrics.h"
#include "config.h"
#include "choria/jwt.h"
#include "csr.h"
#include "rpcwrap.h"
#include "srvjwt.h"

typedef struct {
    const prov_config *cfg;
    const prov_rpcwrap *rpc;          /* retries, metrics and pause for every RPC */
    const ch_jwt_key *verify_key;     /* NULL when jwt_verify_cert is not set */
    const prov_csr_deny *deny;        /* the compiled cert_deny_list */
    const prov_srvjwt_signer *signer; /* features.ed25519: signs server JWTs */
    prov_metrics *metrics;            /* helper_time, helper_errors, shutdown requests */
    const atomic_bool *paused;        /* no RPC or helper starts while true */
    const atomic_bool *stopping;      /* a running helper is killed when it becomes true */
    prov_helper_pool *helpers;        /* helper_mode persistent; NULL: a process per node */
    int64_t provision_timeout_ms;     /* per attempt: discovery_timeout + 20 s (DDL) */
    int64_t rpcutil_timeout_ms;       /* per attempt: discovery_timeout + 2 s (DDL) */
} prov_pipeline;

typedef enum {
    PROV_PIPELINE_PROVISIONED, /* configured and restarted */
    PROV_PIPELINE_SHUT_DOWN,   /* the helper asked for a shutdown and the node took it */
    PROV_PIPELINE_FAILED,      /* err says why; the node is retried on a later cycle */
} prov_pipeline_outcome;

/* Runs the whole pipeline for identity. CH_OK with *outcome PROVISIONED or SHUT_DOWN; any
 * other status means FAILED with err holding one line for the log (a defer is a failure too,
 * "configuration deferred: <msg>", as upstream). */
ch_status prov_pipeline_run(const prov_pipeline *p, const char *identity,
                            prov_pipeline_outcome *outcome, ch_error *err);

#endif
