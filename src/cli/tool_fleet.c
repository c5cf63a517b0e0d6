/* `choria tool fleet`: argument handling; the fleet itself is in src/server/fleet.c. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/fleet.h"
#include "choria/log.h"
#include "cli.h"

#define STR(name, m)                                                                               \
    {                                                                                              \
        name, CLI_FLAG_STRING, offsetof(srv_fleet_opts, m), 0, 0, 0                                \
    }
#define BOOL(name, m)                                                                              \
    {                                                                                              \
        name, CLI_FLAG_BOOL, offsetof(srv_fleet_opts, m), 0, 0, 0                                  \
    }
#define PCT(name, m)                                                                               \
    {                                                                                              \
        name, CLI_FLAG_PCT, offsetof(srv_fleet_opts, m), 0, 0, 0                                   \
    }
#define INT(name, m, lo, hi)                                                                       \
    {                                                                                              \
        name, CLI_FLAG_INT, offsetof(srv_fleet_opts, m), lo, hi, 0                                 \
    }
static const cli_flag FLAGS[] = {
    INT("count", count, 1, 1000000),
    STR("prefix", prefix),
    STR("domain", domain),
    STR("token", token),
    STR("provisioning-jwt", jwt_file),
    STR("facts", facts_file),
    STR("state-dir", state_dir),
    BOOL("no-sync", no_sync),
    INT("connections", connections, 1, 1000),
    PCT("drop", drop_pct),
    PCT("delay", delay_pct),
    INT("delay-ms", delay_ms, 0, 3600000),
    PCT("error", error_pct),
    PCT("vanish", vanish_pct),
    {"duration", CLI_FLAG_INT64, offsetof(srv_fleet_opts, duration_ms), 1, 86400 * 365, 1000},
    PCT("malformed", malformed_pct),
    PCT("bad-csr", bad_csr_pct),
    PCT("wrong-csr", wrong_csr_pct),
    PCT("jwt-fault", jwt_fault_pct),
    STR("jwt-fault-file", jwt_fault_file),
    {"seed", CLI_FLAG_INT64, offsetof(srv_fleet_opts, seed), 1, 0x7fffffffL, 0},
    BOOL("exit-when-provisioned", exit_when_provisioned),
    STR("summary-json", summary_json),
    BOOL("legacy-format", legacy_format),
    BOOL("quiet", quiet),
    BOOL("tls", tls),
};
#undef STR
#undef BOOL
#undef PCT
#undef INT

static int parse_args(int argc, char **argv, srv_fleet_opts *o, cli_broker_opts *b)
{
    memset(o, 0, sizeof(*o));
    memset(b, 0, sizeof(*b));
    o->prefix = "n";
    o->domain = "fleet.local";
    o->delay_ms = 1000;
    int first =
        cli_flags_parse("tool fleet", FLAGS, sizeof(FLAGS) / sizeof(FLAGS[0]), o, b, argc, argv);
    if (first < 0)
        return 1;
    if (first < argc) {
        fprintf(stderr, "choria: unexpected argument '%s'\n", argv[first]);
        return 1;
    }
    if (o->count == 0) {
        fprintf(stderr, "choria: --count is required, try 'choria tool fleet --help'\n");
        return 1;
    }
    return 0;
}

int cli_tool_fleet(int argc, char **argv)
{
    srv_fleet_opts o;
    cli_broker_opts b;
    if (parse_args(argc, argv, &o, &b) != 0)
        return 1;
    /* Thousands of nodes each logging their warnings would drown the progress lines. */
    ch_log_set_level(b.debug ? CH_LOG_DEBUG : CH_LOG_ERROR);
    cli_client client;
    if (cli_client_load(&b, &client) != CH_OK)
        return 1;
    /* --tls: the transport of a real provisioning-mode node (choria server run), whatever TLS
     * the client configuration asked for */
    if (o.tls)
        ch_conn_settings_anonymous_tls(&client.conn);
    o.conn = &client.conn;
    int rc = srv_fleet_run(&o);
    cli_client_free(&client);
    return rc;
}
