/* `choria broker run`: a Choria broker as a supervised nats-server. A small Choria-style
 * config becomes a nats-server configuration with Choria's account layout; the broker then
 * makes sure the leader election bucket and the lifecycle event stream exist. */
#ifndef CHORIA_BROKER_H
#define CHORIA_BROKER_H

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
    int64_t election_ttl_ns;
    int election_replicas;
} ch_broker_settings;

/* Reads the settings from cfg; errors name the key. */
ch_status ch_broker_settings_load(const ch_config *cfg, ch_broker_settings *out, ch_error *err);
void ch_broker_settings_free(ch_broker_settings *s);

/* The nats-server configuration text (malloc'd). admin_password is the generated password
 * of the internal user the broker itself uses to set up JetStream. */
char *ch_broker_nats_config(const ch_broker_settings *s, const char *admin_password);

/* Runs nats-server with the configuration until it exits; returns its exit status. */
int ch_broker_run(const ch_broker_settings *s);

#endif
