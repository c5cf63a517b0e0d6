/* Decides how the server runs, from its config file and provisioning JWT, as go-choria's
 * `server run` does (go-choria cmd/server_run.go and its shouldProvision/provisionConfig). */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "choria/config.h"
#include "choria/log.h"
#include "choria/protocol.h"
#include "choria/provjwt.h"
#include "choria/util.h"
#include "server.h"

#define MAX_JWT_SIZE (64 * 1024)

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return path != NULL && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static ch_status set_list(char ***out, size_t *n, const char *const *items, size_t count)
{
    *out = calloc(count ? count : 1, sizeof(char *));
    if (*out == NULL)
        return CH_ERR_NOMEM;
    for (size_t i = 0; i < count; i++)
        if (((*out)[i] = strdup(items[i])) == NULL)
            return CH_ERR_NOMEM;
    *n = count;
    return CH_OK;
}

static ch_status set_servers(srv_settings *s, const char *list, ch_error *err)
{
    ch_status st = ch_conn_settings_add_servers(&s->conn, list, err);
    if (st == CH_OK && s->conn.server_count == 0)
        st = ch_error_set(err, CH_ERR_INVALID, "no brokers configured");
    return st;
}

/* The NATS credentials; empty values are none. */
static ch_status set_credentials(srv_settings *s, const char *user, const char *password,
                                 ch_error *err)
{
    bool has_user = user != NULL && user[0] != '\0';
    bool has_password = password != NULL && password[0] != '\0';
    ch_status st = ch_conn_settings_set(&s->conn.user, has_user ? user : NULL, err);
    if (st == CH_OK)
        st = ch_conn_settings_set(&s->conn.password, has_password ? password : NULL, err);
    return st;
}

/* go-choria shouldProvision(): the config's plugin.choria.server.provision wins, else the
 * JWT's chpd. */
static ch_status should_provision(const ch_config *cfg, const ch_provjwt *jwt, bool *out,
                                  ch_error *err)
{
    *out = jwt != NULL && jwt->provision_default;
    if (cfg != NULL && ch_config_has(cfg, "plugin.choria.server.provision"))
        return ch_config_get_bool(cfg, "plugin.choria.server.provision", false, out, err);
    return CH_OK;
}

static ch_status load_jwt(srv_settings *s, ch_provjwt **jwt, ch_error *err)
{
    *jwt = NULL;
    if (!file_exists(s->jwt_file))
        return CH_OK;
    ch_status st = ch_read_file(s->jwt_file, MAX_JWT_SIZE, &s->jwt_raw, NULL, err);
    if (st != CH_OK)
        return st;
    /* A trailing newline is not part of the token the broker checks. */
    s->jwt_raw[strcspn(s->jwt_raw, "\r\n")] = '\0';
    st = ch_provjwt_parse(s->jwt_raw, strlen(s->jwt_raw), jwt, err);
    if (st != CH_OK) {
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        return ch_error_set(err, st, "invalid provisioning JWT %s: %s", s->jwt_file, why);
    }
    return CH_OK;
}

static ch_status provision_settings(srv_settings *s, const ch_config *cfg, const ch_provjwt *jwt,
                                    ch_error *err)
{
    static const char *const coll[] = {CH_PROTOCOL_PROVISIONING_COLLECTIVE};
    ch_status st = set_list(&s->collectives, &s->n_collectives, coll, 1);
    s->main_collective = strdup(CH_PROTOCOL_PROVISIONING_COLLECTIVE);
    const char *urls = jwt != NULL ? jwt->urls : NULL;
    if (urls == NULL || urls[0] == '\0')
        urls = ch_config_get(cfg, "plugin.choria.middleware_hosts");
    if (st == CH_OK && (urls == NULL || urls[0] == '\0'))
        return ch_error_set(err, CH_ERR_INVALID,
                            "provisioning is enabled but no provisioning brokers are known "
                            "(JWT chu or plugin.choria.middleware_hosts)");
    if (st == CH_OK)
        st = set_servers(s, urls, err);
    if (st == CH_OK) /* the broker checks the JWT as the connection's token */
        st = ch_conn_settings_set(&s->conn.token, s->jwt_raw, err);
    /* go-choria logs in with chusr/chpwd only when the JWT has both (spec Suite N7) */
    if (st == CH_OK && jwt != NULL && jwt->nats_user != NULL && jwt->nats_user[0] != '\0' &&
        jwt->nats_password != NULL && jwt->nats_password[0] != '\0')
        st = set_credentials(s, jwt->nats_user, jwt->nats_password, err);
    /* upstream nodes provision over anonymous TLS only (go-choria connection.go); plain NATS
     * is this project's extension for brokers without TLS */
    bool tls = true;
    if (st == CH_OK)
        st = ch_config_get_bool(cfg, "plugin.choria.server.provision.tls", true, &tls, err);
    if (st == CH_OK && tls)
        ch_conn_settings_anonymous_tls(&s->conn);
    s->protocol_v2 = jwt != NULL && jwt->protocol_v2;
    if (jwt != NULL) {
        s->facts_file = dup_or_null(jwt->facts);
        s->allow_update = jwt->allow_update;
    } else {
        s->facts_file = dup_or_null(ch_config_get(cfg, "plugin.yaml"));
    }
    if (!s->allow_update)
        ch_config_get_bool(cfg, "plugin.choria.server.provision.allow_update", false,
                           &s->allow_update, NULL);
    /* In provisioning mode the SSL directory is always <confdir>/ssl (go-choria). */
    char *copy = strdup(s->config_file);
    if (copy != NULL && asprintf(&s->ssldir, "%s/ssl", dirname(copy)) < 0)
        s->ssldir = NULL;
    free(copy);
    return st;
}

static ch_status normal_settings(srv_settings *s, const ch_config *cfg, const ch_config_resolved *r,
                                 ch_error *err)
{
    ch_status st = set_list(&s->collectives, &s->n_collectives,
                            (const char *const *)r->collectives.items, r->collectives.count);
    s->main_collective = strdup(r->main_collective);
    const char *hosts = ch_config_get(cfg, "plugin.choria.middleware_hosts");
    if (st == CH_OK)
        st = set_servers(s, hosts != NULL && hosts[0] != '\0' ? hosts : "puppet:4222", err);
    if (st == CH_OK)
        st = set_credentials(s, ch_config_get(cfg, "plugin.nats.user"),
                             ch_config_get(cfg, "plugin.nats.pass"), err);
    if (st == CH_OK)
        st = ch_config_security_resolve(cfg, r, NULL, &s->security, err);
    s->insecure = r->insecure;
    s->protocol_v2 = st == CH_OK && !r->insecure && s->security.provider != NULL &&
                     strcmp(s->security.provider, "choria") == 0;
    if (st == CH_OK)
        st = ch_conn_settings_apply_security(&s->conn, &s->security, r->insecure, err);
    s->facts_file = dup_or_null(ch_config_get(cfg, "plugin.yaml"));
    s->ssldir = dup_or_null(ch_config_get(cfg, "plugin.choria.ssldir"));
    ch_config_get_bool(cfg, "plugin.choria.server.provision.allow_update", false, &s->allow_update,
                       NULL);
    return st;
}

ch_status srv_settings_load(const char *config_file, const char *jwt_file, srv_settings *s,
                            ch_error *err)
{
    memset(s, 0, sizeof(*s));
    s->config_file = strdup(config_file);
    s->jwt_file = dup_or_null(jwt_file);
    ch_config *cfg = ch_config_new();
    ch_config_resolved *r = NULL;
    ch_provjwt *jwt = NULL;
    bool have_config = file_exists(config_file);
    ch_status st = cfg != NULL ? CH_OK : CH_ERR_NOMEM;

    if (st == CH_OK && have_config)
        st = ch_config_load_file(cfg, config_file, err);
    if (st == CH_OK)
        st = load_jwt(s, &jwt, err);
    if (st == CH_OK)
        st = should_provision(have_config ? cfg : NULL, jwt, &s->provision_mode, err);
    if (st == CH_OK && !have_config && jwt != NULL)
        s->provision_mode = true; /* no config and a JWT: provisionConfig() */
    if (st == CH_OK && !have_config && !s->provision_mode)
        st = ch_error_set(err, CH_ERR_NOT_FOUND,
                          "configuration file %s was not found and provisioning is disabled",
                          config_file);
    if (st == CH_OK)
        st = ch_config_resolve(cfg, &r, err);
    if (st == CH_OK) {
        s->identity = strdup(r->identity);
        st = ch_conn_settings_set(&s->conn.name, r->identity, err);
    }
    if (st == CH_OK) {
        s->legacy_lifecycle_format = r->legacy_lifecycle_format;
        s->log_level = dup_or_null(r->loglevel);
        s->log_file = dup_or_null(r->logfile);
        s->update_command =
            dup_or_null(ch_config_get(cfg, "plugin.choria.server.provision.update_command"));
        s->provision_token = jwt != NULL ? dup_or_null(jwt->token) : NULL;
        st = s->provision_mode ? provision_settings(s, cfg, jwt, err)
                               : normal_settings(s, cfg, r, err);
    }
    if (st == CH_OK && !ch_identity_valid(s->identity))
        st = ch_error_set(err, CH_ERR_INVALID, "identity '%s' is not a valid node name",
                          s->identity);
    ch_config_resolved_free(r);
    ch_config_free(cfg);
    ch_provjwt_free(jwt);
    if (st != CH_OK)
        srv_settings_free(s);
    return st;
}

static void free_list(char **items, size_t n)
{
    for (size_t i = 0; items != NULL && i < n; i++)
        free(items[i]);
    free(items);
}

void srv_settings_free(srv_settings *s)
{
    free(s->config_file);
    free(s->jwt_file);
    free(s->jwt_raw);
    free(s->identity);
    ch_conn_settings_clear(&s->conn);
    ch_config_security_clear(&s->security);
    free_list(s->collectives, s->n_collectives);
    free(s->main_collective);
    free(s->provision_token);
    free(s->facts_file);
    free(s->update_command);
    free(s->ssldir);
    free(s->log_level);
    free(s->log_file);
    memset(s, 0, sizeof(*s));
}
