/* `choria server run`: one Choria server process hosting the standard agents. */
#ifndef CHORIA_SERVER_H
#define CHORIA_SERVER_H

#include <stdbool.h>

#include "choria/agent.h"
#include "choria/common.h"
#include "choria/conn.h"

#define CH_DEFAULT_PROVISIONING_JWT "/etc/choria/provisioning.jwt"

/* What the server decided from its config file and provisioning JWT. */
typedef struct {
    char *config_file;
    char *jwt_file; /* the provisioning JWT path (may not exist) */
    char *jwt_raw;  /* its contents: the NATS token while provisioning; NULL if none */
    bool provision_mode;
    char *identity;
    ch_conn_settings conn; /* brokers, credentials (JWT chusr/chpwd or plugin.nats.*), and the
                              JWT as the token while provisioning */
    char **collectives;
    size_t n_collectives;
    char *main_collective;
    char *provision_token; /* JWT cht; NULL when there is no JWT */
    char *facts_file;
    bool allow_update;
    char *update_command;        /* plugin.choria.server.provision.update_command */
    char *ssldir;                /* plugin.choria.ssldir */
    ch_config_security security; /* normal mode: the provider's files and caller lists */
    bool insecure;               /* normal mode: plugin.choria.security.insecure */
    bool legacy_lifecycle_format;
    /* protocol v2: a provisioning JWT with v2:true, or the choria provider in normal mode */
    bool protocol_v2;
    char *log_level;
    char *log_file;
} srv_settings;

/* Reads the config (if it exists) and the provisioning JWT (if it exists) and decides the
 * mode as go-choria's shouldProvision() does. */
ch_status srv_settings_load(const char *config_file, const char *jwt_file, srv_settings *out,
                            ch_error *err);
void srv_settings_free(srv_settings *s);

/* Runs until SIGINT/SIGTERM (returns 0) or a shutdown request (returns 0); re-executes argv
 * on a restart request. Returns non-zero on a fatal error. */
int srv_run(const char *config_file, const char *jwt_file, bool debug, char **argv);

#endif
