/* The provisioner's RPC retry wrapper (upstream host/rpc.go rpcWrapper): tries with the FiveSec
 * back-off, one rpc_time observation per attempt, one rpc_errors count per failed wrapper,
 * and two deliberate departures from upstream: a node with no subscriber (NATS "no
 * responders") and a node whose provisioning lock another provisioner holds are given up at
 * once instead of after every try. */
#ifndef CHORIA_PROVISIONER_RPCWRAP_H
#define CHORIA_PROVISIONER_RPCWRAP_H

#include <stdatomic.h>

#include "choria/rpc.h"

#define CH_PROVISION_LOCK_BUSY "Could not obtain provisioning lock"

typedef struct {
    ch_rpc_client *rpc;
    const atomic_bool *paused; /* NULL = never paused */
    /* rpc is the metric label, e.g. "choria_provision#jwt". Both may be NULL. */
    void (*observe)(void *closure, const char *rpc, double seconds);
    void (*failed)(void *closure, const char *rpc);
    void *closure;
    int backoff_percent; /* scales the FiveSec delays; 0 = 100 (tests use less) */
} prov_rpcwrap;

/* Calls agent#action on identity up to tries times, each attempt bounded by timeout_ms.
 * CH_OK only for a reply with statuscode 0, which is left in *result (clear it). Otherwise
 * err says why, e.g. "choria_provision#jwt failed: invalid response from n1: Incorrect
 * provision token supplied (1)". Paused: fails at once without counting an rpc error. */
ch_status prov_rpcwrap_call(const prov_rpcwrap *w, const char *identity, const char *agent,
                            const char *action, const json_t *data, int tries, int64_t timeout_ms,
                            ch_rpc_result *result, ch_error *err);

/* The FiveSec back-off before retry n (n >= 1), jittered to [0.5x, 1.5x), in ms. */
int64_t prov_rpcwrap_backoff_ms(int n, int percent);

#endif
