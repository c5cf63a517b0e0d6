/* `choria server run`: argument handling; the server itself is in src/server/. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../server/server.h"
#include "cli.h"

int cli_server_run(int argc, char **argv, char **full_argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"provisioning-jwt", required_argument, NULL, 'j'},
        {"debug", no_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    const char *jwt = CH_DEFAULT_PROVISIONING_JWT;
    bool debug = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'j':
            jwt = optarg;
            break;
        case 'd':
            debug = true;
            break;
        default:
            fprintf(stderr, "choria: try 'choria server run --help'\n");
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "choria: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    if (config == NULL) {
        fprintf(stderr, "choria: --config is required, try 'choria server run --help'\n");
        return 1;
    }
    /* The full argv is re-executed on restart, so --provisioning-jwt survives it. */
    return srv_run(config, jwt, debug, full_argv);
}
