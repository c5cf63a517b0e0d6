/* `choria broker run`: a Choria broker as a supervised nats-server. A small Choria-style
 * config becomes a nats-server configuration with Choria's account layout; the broker then
 * makes sure the leader election bucket and the lifecycle event stream exist. */
#ifndef BRK_BROKER_H
#define BRK_BROKER_H

#include "choria/common.h"
#include "choria/config.h"

typedef struct {
    char *server_name;
    char *listen_address;
    int client_port;
    int stats_port;
    int peer_port;        /* 0 = not clustered */
    ch_config_list peers; /* nats://host:port routes */
    char *cluster_name;
    char *store; /* JetStream store directory, NULL = JetStream off */
    char *provisioner_password;
    char *node_user, *node_password; /* what provisioning-mode nodes use (chusr/chpwd) */
    char *choria_user, *choria_password;
    /* TLS for every client on the one client port, no client certificates asked for (so
     * provisioning nodes can connect; nats-server 2.9 cannot verify some clients and not
     * others): plugin.choria.network.tls.certificate/.key, else the file provider's
     * plugin.security.file.certificate/.key. NULL: plain NATS. */
    char *tls_cert, *tls_key;
    int64_t election_ttl_ns;
    int election_replicas;
} brk_settings;

/* Reads the settings from cfg; errors name the key. */
ch_status brk_settings_load(const ch_config *cfg, brk_settings *out, ch_error *err);
void brk_settings_free(brk_settings *s);

/* The nats-server configuration text (malloc'd). admin_password is the generated password
 * of the internal user the broker itself uses to set up JetStream. */
char *brk_nats_config(const brk_settings *s, const char *admin_password);

/* Runs nats-server with the configuration until it exits; returns its exit status. */
int brk_run(const brk_settings *s);

#endif
