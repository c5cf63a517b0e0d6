/* The choria-provisioner configuration file (choria-io/provisioner config.Config).
 *
 * YAML (or JSON, which is YAML) converted to JSON and decoded as Go's encoding/json would:
 * keys match case-insensitively, null leaves the default, a value of the wrong type is an
 * error naming the key. As with ghodss/yaml, numbers and booleans given for a string key are
 * taken as their text (token: 1234). Unknown keys are not fatal; they are returned in
 * unknown_keys so the caller can warn.
 *
 * Deliberate differences from upstream (see README): no logfile means "stderr" (upstream:
 * a file called "info"), loglevel defaults to "info" and must be a known level, workers and
 * monitor_port are range-checked, an empty server_jwt_validity means the default, and the
 * interval message's typo "minmum" is fixed. Keys of this project's own: logformat (text or
 * json), monitor_bind (the address /metrics listens on), leader_election_api_prefix, and
 * helper_mode, helper_processes and helper_timeout (persistent helpers, helper_pool.h). */
#ifndef PROV_CONFIG_H
#define PROV_CONFIG_H

#include <stdint.h>

#include "choria/common.h"
#include "choria/config.h"
#include "choria/lifecycle.h"

#define PROV_CONFIG_MAX_WORKERS 4096
#define PROV_CONFIG_DEFAULT_COMPONENT CH_LIFECYCLE_COMPONENT_PROVISION_MODE
#define PROV_CONFIG_MAX_DENY 1024 /* entries of cert_deny_list */
#define PROV_CONFIG_MAX_HELPER_TIMEOUT_NS (3600LL * 1000000000LL)

typedef struct {
    bool pki;
    bool jwt; /* forced true by ed25519 */
    bool ed25519;
    bool upgrades;
} prov_config_features;

typedef struct {
    int workers;            /* 0 in the file -> number of online CPUs */
    char *interval;         /* as written, default "1m" */
    int64_t interval_ns;    /* >= 1 minute */
    char *logfile;          /* default "stderr"; also "stdout", "discard" or a path */
    char *loglevel;         /* debug, info (default), warn, error, fatal */
    char *logformat;        /* project key: "text" (default) or "json" */
    char *helper;           /* command line, split shell-style at run time */
    char *helper_mode;      /* project key: "exec" (default, as upstream) or "persistent" */
    bool helper_persistent; /* helper_mode is persistent */
    int helper_processes;   /* project key: persistent helpers; 0 in the file -> workers */
    char *helper_timeout;   /* project key: as written, default "10s" (upstream's fixed 10 s) */
    int64_t helper_timeout_ns;
    char *token;               /* "" when unset */
    char *lifecycle_component; /* default PROV_CONFIG_DEFAULT_COMPONENT */
    bool choria_insecure;
    char *site;
    int monitor_port;    /* 0 = no /metrics */
    char *monitor_bind;  /* project key: address for /metrics, "" = all interfaces */
    int64_t broker_port; /* unused, as upstream */
    char *broker_provisioning_password;
    ch_config_list cert_deny_list; /* regular expressions; upstream's four when empty/absent */
    char *jwt_verify_cert;
    char *jwt_signing_key;
    char *jwt_signing_token;
    char *server_jwt_validity; /* as written, default "1y" */
    int64_t server_jwt_validity_ns;
    char *rego_policy; /* unused, as upstream */
    bool leader_election;
    char *leader_election_api_prefix; /* project key: JetStream API prefix for the election,
                                       * default "choria.streams" as upstream; "$JS.API" for a
                                       * broker without Choria's account layout */
    char *upgrades_repository;
    bool upgrades_optional;
    prov_config_features features;
    ch_config_list unknown_keys; /* keys nothing reads, "features.x" for unknown features */
} prov_config;

/* A configuration holding only the defaults (workers already resolved to the CPU count). */
ch_status prov_config_new_default(prov_config **out, ch_error *err);

/* Parses text[0..len) (at most CH_MAX_CONFIG_FILE_SIZE). name is used in messages (the file
 * name; NULL gives "config"). On error *out is NULL and err holds one line naming the key. */
ch_status prov_config_parse(const char *text, size_t len, const char *name, prov_config **out,
                            ch_error *err);

/* Reads and parses path: "file %s not found", "config file could not be read: %s",
 * "file %s could not be parsed: %s" (YAML syntax) or the key's own message. */
ch_status prov_config_load(const char *path, prov_config **out, ch_error *err);

void prov_config_free(prov_config *cfg);

#endif
