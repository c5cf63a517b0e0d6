/* `choria tool fleet`: many simulated provisioning-mode nodes in one process, built from the
 * same agent code as `choria server run` (src/lib/agent/). */
#ifndef CHORIA_FLEET_H
#define CHORIA_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "choria/conn.h"

typedef struct {
    int count;                    /* nodes */
    const ch_conn_settings *conn; /* the brokers and credentials; borrowed */
    const char *prefix;           /* identities are <prefix><i>.<domain> */
    const char *domain;
    const char *token;      /* provisioning token (JWT cht); NULL = any token accepted */
    const char *jwt_file;   /* served by choria_provision#jwt; NULL = a generated one */
    const char *facts_file; /* facts of every node; NULL = {"fleet":true} */
    const char *state_dir;  /* NULL = a temporary directory, removed at exit */
    bool no_sync;           /* nodes write their files without fsync (ch_node.no_sync) */
    int connections;        /* NATS connections; 0 = one per 2000 nodes */
    bool legacy_format;     /* Choria-format lifecycle events instead of CloudEvents */
    double drop_pct, delay_pct, error_pct, vanish_pct; /* fault injection, 0..100 */
    int delay_ms;
    /* Faulty nodes, chosen per node at start from seed (0 = from the clock): each keeps its
     * fault for good. malformed: every rpcutil/choria_provision reply body is not JSON;
     * bad_csr: gencsr returns "not a csr"; wrong_csr: gencsr returns a real CSR for another
     * name; jwt_fault: the jwt action serves jwt_fault_file instead of the node's JWT. */
    double malformed_pct, bad_csr_pct, wrong_csr_pct, jwt_fault_pct;
    const char *jwt_fault_file;
    uint64_t seed;
    int64_t duration_ms; /* stop after this long; 0 = until a signal */
    bool exit_when_provisioned;
    const char *summary_json; /* write the summary here as JSON */
    bool quiet;
    bool tls; /* --tls: the caller made conn anonymous TLS (ch_conn_settings_anonymous_tls) */
} srv_fleet_opts;

/* Runs the fleet until a signal, the duration, or (optionally) every live node provisioned.
 * Prints progress and the summary. Returns the process exit code. */
int srv_fleet_run(const srv_fleet_opts *opts);

#endif
