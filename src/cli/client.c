/* What every broker-talking `choria` command shares: the client config, --server, signals. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choria/config.h"
#include "choria/conn.h"
#include "choria/log.h"
#include "cli.h"

static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

void cli_install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool cli_should_stop(void)
{
    return stop_requested != 0;
}

bool cli_broker_option(int c, const char *arg, cli_broker_opts *o)
{
    switch (c) {
    case CLI_OPT_CONFIG:
        o->config_file = arg;
        return true;
    case CLI_OPT_SERVER:
        o->server = arg;
        return true;
    case CLI_OPT_DEBUG:
        o->debug = true;
        return true;
    }
    return false;
}

/* Loads the file named by --config, else the first default client config that exists. An
 * explicit file that cannot be read is an error; a missing default is not. */
static ch_config *load_config(const cli_broker_opts *o, ch_error *err)
{
    ch_config *cfg = ch_config_new();
    if (cfg == NULL) {
        ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        return NULL;
    }
    char *found = o->config_file == NULL ? ch_config_find_client_config(NULL, NULL) : NULL;
    const char *path = o->config_file != NULL ? o->config_file : found;
    if (path != NULL && ch_config_load_file(cfg, path, err) != CH_OK) {
        ch_config_free(cfg);
        cfg = NULL;
    }
    if (path != NULL && cfg != NULL)
        ch_debug("loaded client configuration %s", path);
    free(found);
    return cfg;
}

/* The brokers: --server, else plugin.choria.middleware_hosts, else go-choria's default when
 * neither those nor SRV records are set. */
static ch_status resolve_servers(const cli_broker_opts *o, const ch_config *cfg, cli_client *c,
                                 ch_error *err)
{
    const char *hosts = ch_config_get(cfg, "plugin.choria.middleware_hosts");
    if (o->server != NULL && o->server[0] != '\0')
        return ch_conn_settings_add_servers(&c->conn, o->server, err);
    if (hosts != NULL && hosts[0] != '\0')
        return ch_conn_settings_add_servers(&c->conn, hosts, err);
    return ch_conn_settings_add_servers(&c->conn, "puppet:4222", err);
}

ch_status cli_client_load(const cli_broker_opts *o, cli_client *c)
{
    memset(c, 0, sizeof(*c));
    ch_error err;
    ch_error_clear(&err);
    ch_config_resolved *r = NULL;
    ch_config *cfg = load_config(o, &err);
    ch_status s = cfg != NULL ? ch_config_resolve(cfg, &r, &err) : err.code;
    if (s == CH_OK) {
        snprintf(c->identity, sizeof(c->identity), "%s", r->identity);
        c->legacy_lifecycle_format = r->legacy_lifecycle_format;
        s = ch_conn_settings_set(&c->conn.name, r->identity, &err);
    }
    if (s == CH_OK)
        s = ch_conn_settings_set(&c->conn.user, ch_config_get(cfg, "plugin.nats.user"), &err);
    if (s == CH_OK)
        s = ch_conn_settings_set(&c->conn.password, ch_config_get(cfg, "plugin.nats.pass"), &err);
    if (s == CH_OK)
        s = resolve_servers(o, cfg, c, &err);
    ch_config_security sec = {0};
    if (s == CH_OK)
        s = ch_config_security_resolve(cfg, r, NULL, &sec, &err);
    if (s == CH_OK)
        s = ch_conn_settings_apply_security(&c->conn, &sec, r->insecure, &err);
    ch_config_security_clear(&sec);
    ch_config_resolved_free(r);
    ch_config_free(cfg);
    if (s != CH_OK) {
        fprintf(stderr, "choria: %s\n", err.msg[0] ? err.msg : ch_status_text(s));
        cli_client_free(c);
    }
    return s;
}

void cli_client_free(cli_client *c)
{
    ch_conn_settings_clear(&c->conn);
    memset(c, 0, sizeof(*c));
}
