/* `choria tool fleet`: argument handling; the fleet itself is in src/server/fleet.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/fleet.h"
#include "choria/log.h"
#include "cli.h"

static bool parse_pct(const char *s, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || v < 0 || v > 100)
        return false;
    *out = v;
    return true;
}

static bool parse_int(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

enum {
    OPT_COUNT = 256,
    OPT_PREFIX,
    OPT_DOMAIN,
    OPT_TOKEN,
    OPT_JWT,
    OPT_FACTS,
    OPT_STATE,
    OPT_CONNS,
    OPT_DROP,
    OPT_DELAY,
    OPT_DELAY_MS,
    OPT_ERROR,
    OPT_VANISH,
    OPT_DURATION,
    OPT_EXIT,
    OPT_SUMMARY,
    OPT_LEGACY,
    OPT_QUIET,
    OPT_CONFIG,
    OPT_SERVER,
    OPT_DEBUG,
    OPT_MALFORMED,
    OPT_BAD_CSR,
    OPT_WRONG_CSR,
    OPT_JWT_FAULT,
    OPT_JWT_FAULT_FILE,
    OPT_SEED,
};

static int bad(const char *flag, const char *value)
{
    fprintf(stderr, "choria: invalid value '%s' for --%s, try 'choria tool fleet --help'\n", value,
            flag);
    return 1;
}

static int parse_args(int argc, char **argv, srv_fleet_opts *o, cli_broker_opts *b)
{
    static const struct option longopts[] = {
        {"count", required_argument, NULL, OPT_COUNT},
        {"prefix", required_argument, NULL, OPT_PREFIX},
        {"domain", required_argument, NULL, OPT_DOMAIN},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"provisioning-jwt", required_argument, NULL, OPT_JWT},
        {"facts", required_argument, NULL, OPT_FACTS},
        {"state-dir", required_argument, NULL, OPT_STATE},
        {"connections", required_argument, NULL, OPT_CONNS},
        {"drop", required_argument, NULL, OPT_DROP},
        {"delay", required_argument, NULL, OPT_DELAY},
        {"delay-ms", required_argument, NULL, OPT_DELAY_MS},
        {"error", required_argument, NULL, OPT_ERROR},
        {"vanish", required_argument, NULL, OPT_VANISH},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"malformed", required_argument, NULL, OPT_MALFORMED},
        {"bad-csr", required_argument, NULL, OPT_BAD_CSR},
        {"wrong-csr", required_argument, NULL, OPT_WRONG_CSR},
        {"jwt-fault", required_argument, NULL, OPT_JWT_FAULT},
        {"jwt-fault-file", required_argument, NULL, OPT_JWT_FAULT_FILE},
        {"seed", required_argument, NULL, OPT_SEED},
        {"exit-when-provisioned", no_argument, NULL, OPT_EXIT},
        {"summary-json", required_argument, NULL, OPT_SUMMARY},
        {"legacy-format", no_argument, NULL, OPT_LEGACY},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"server", required_argument, NULL, OPT_SERVER},
        {"debug", no_argument, NULL, OPT_DEBUG},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    memset(b, 0, sizeof(*b));
    o->prefix = "n";
    o->domain = "fleet.local";
    o->delay_ms = 1000;
    optind = 1;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_COUNT:
            if (!parse_int(optarg, 1, 1000000, &v))
                return bad("count", optarg);
            o->count = (int)v;
            break;
        case OPT_PREFIX:
            o->prefix = optarg;
            break;
        case OPT_DOMAIN:
            o->domain = optarg;
            break;
        case OPT_TOKEN:
            o->token = optarg;
            break;
        case OPT_JWT:
            o->jwt_file = optarg;
            break;
        case OPT_FACTS:
            o->facts_file = optarg;
            break;
        case OPT_STATE:
            o->state_dir = optarg;
            break;
        case OPT_CONNS:
            if (!parse_int(optarg, 1, 1000, &v))
                return bad("connections", optarg);
            o->connections = (int)v;
            break;
        case OPT_DROP:
            if (!parse_pct(optarg, &o->drop_pct))
                return bad("drop", optarg);
            break;
        case OPT_DELAY:
            if (!parse_pct(optarg, &o->delay_pct))
                return bad("delay", optarg);
            break;
        case OPT_ERROR:
            if (!parse_pct(optarg, &o->error_pct))
                return bad("error", optarg);
            break;
        case OPT_VANISH:
            if (!parse_pct(optarg, &o->vanish_pct))
                return bad("vanish", optarg);
            break;
        case OPT_DELAY_MS:
            if (!parse_int(optarg, 0, 3600000, &v))
                return bad("delay-ms", optarg);
            o->delay_ms = (int)v;
            break;
        case OPT_DURATION:
            if (!parse_int(optarg, 1, 86400 * 365, &v))
                return bad("duration", optarg);
            o->duration_ms = v * 1000;
            break;
        case OPT_MALFORMED:
            if (!parse_pct(optarg, &o->malformed_pct))
                return bad("malformed", optarg);
            break;
        case OPT_BAD_CSR:
            if (!parse_pct(optarg, &o->bad_csr_pct))
                return bad("bad-csr", optarg);
            break;
        case OPT_WRONG_CSR:
            if (!parse_pct(optarg, &o->wrong_csr_pct))
                return bad("wrong-csr", optarg);
            break;
        case OPT_JWT_FAULT:
            if (!parse_pct(optarg, &o->jwt_fault_pct))
                return bad("jwt-fault", optarg);
            break;
        case OPT_JWT_FAULT_FILE:
            o->jwt_fault_file = optarg;
            break;
        case OPT_SEED:
            if (!parse_int(optarg, 1, 0x7fffffffL, &v))
                return bad("seed", optarg);
            o->seed = (uint64_t)v;
            break;
        case OPT_EXIT:
            o->exit_when_provisioned = true;
            break;
        case OPT_SUMMARY:
            o->summary_json = optarg;
            break;
        case OPT_LEGACY:
            o->legacy_format = true;
            break;
        case OPT_QUIET:
            o->quiet = true;
            break;
        case OPT_CONFIG:
            b->config_file = optarg;
            break;
        case OPT_SERVER:
            b->server = optarg;
            break;
        case OPT_DEBUG:
            b->debug = true;
            break;
        default:
            fprintf(stderr, "choria: try 'choria tool fleet --help'\n");
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "choria: unexpected argument '%s'\n", argv[optind]);
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
    o.conn = &client.conn;
    int rc = srv_fleet_run(&o);
    cli_client_free(&client);
    return rc;
}
