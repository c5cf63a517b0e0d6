/* `choria broker run --config FILE`: see src/server/broker.c. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../broker/broker.h"
#include "choria/log.h"
#include "cli.h"

int cli_broker_run(int argc, char **argv)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"debug", no_argument, NULL, 'd'},
                                             {NULL, 0, NULL, 0}};
    const char *path = NULL;
    bool debug = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'c')
            path = optarg;
        else if (c == 'd')
            debug = true;
        else {
            fprintf(stderr, "choria: invalid flag, try 'choria broker run --help'\n");
            return 1;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "choria: --config is required, try 'choria broker run --help'\n");
        return 1;
    }
    ch_log_set_level(debug ? CH_LOG_DEBUG : CH_LOG_INFO);
    ch_config *cfg = ch_config_new();
    brk_settings s;
    memset(&s, 0, sizeof(s));
    ch_error err;
    int rc = 1;
    if (cfg == NULL || ch_config_load_file(cfg, path, &err) != CH_OK ||
        brk_settings_load(cfg, &s, &err) != CH_OK)
        fprintf(stderr, "choria: %s: %s\n", path, cfg == NULL ? "out of memory" : err.msg);
    else
        rc = brk_run(&s);
    brk_settings_free(&s);
    ch_config_free(cfg);
    return rc;
}
