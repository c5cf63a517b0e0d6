/* The resolved client/server settings, and where a client configuration is found. */
#include "choria/config.h"

#include <sys/stat.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "choria/util.h"

/* ---- resolved settings ---- */

void ch_config_resolved_free(ch_config_resolved *r)
{
    if (r == NULL)
        return;
    free(r->identity);
    free(r->loglevel);
    free(r->logfile);
    ch_config_list_free(&r->collectives);
    free(r->main_collective);
    ch_config_servers_free(r->middleware_hosts, r->middleware_count);
    free(r->middleware_urls);
    free(r->security_provider);
    free(r);
}

static bool collective_valid(const char *c)
{
    if (c[0] == '\0')
        return false;
    for (const unsigned char *p = (const unsigned char *)c; *p != '\0'; p++)
        if (*p == '.' || *p == '*' || *p == '>' || *p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

static ch_status resolve_identity(const ch_config *cfg, ch_config_resolved *r, ch_error *err)
{
    const char *id = ch_config_get(cfg, "identity");
    char fqdn[256];
    if (id == NULL || id[0] == '\0') {
        if (ch_fqdn(fqdn, sizeof(fqdn)) != CH_OK)
            return ch_error_set(err, CH_ERR_NOT_FOUND,
                                "could not determine the host name, please set identity in the "
                                "configuration");
        id = fqdn;
    }
    if (!ch_identity_valid(id))
        return ch_error_set(err, CH_ERR_INVALID, "identity '%.100s' is not a valid identity", id);
    if ((r->identity = strdup(id)) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    return CH_OK;
}

static ch_status resolve_collectives(const ch_config *cfg, ch_config_resolved *r, ch_error *err)
{
    ch_status s = ch_config_get_list(cfg, "collectives", "mcollective", &r->collectives, err);
    if (s != CH_OK)
        return s;
    if (r->collectives.count == 0)
        return ch_error_set(err, CH_ERR_INVALID, "collectives: no collective given");
    for (size_t i = 0; i < r->collectives.count; i++)
        if (!collective_valid(r->collectives.items[i]))
            return ch_error_set(err, CH_ERR_INVALID, "collectives: invalid collective '%.64s'",
                                r->collectives.items[i]);
    const char *main = ch_config_get_string(cfg, "main_collective", r->collectives.items[0]);
    if (!collective_valid(main))
        return ch_error_set(err, CH_ERR_INVALID, "main_collective: invalid collective '%.64s'",
                            main);
    if ((r->main_collective = strdup(main)) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    return CH_OK;
}

static ch_status resolve_numbers(const ch_config *cfg, ch_config_resolved *r, ch_error *err)
{
    ch_status s;
    if ((s = ch_config_get_int(cfg, "ttl", 60, &r->ttl, err)) != CH_OK ||
        (s = ch_config_get_int(cfg, "discovery_timeout", 2, &r->discovery_timeout, err)) != CH_OK)
        return s;
    if (r->ttl <= 0)
        return ch_error_set(err, CH_ERR_INVALID, "ttl: must be a positive number of seconds");
    if (r->discovery_timeout <= 0)
        return ch_error_set(err, CH_ERR_INVALID,
                            "discovery_timeout: must be a positive number of seconds");
    if ((s = ch_config_get_bool(cfg, "plugin.choria.legacy_lifecycle_format", false,
                                &r->legacy_lifecycle_format, err)) != CH_OK)
        return s;
    const char *insecure_key = ch_config_has(cfg, "plugin.choria.security.insecure")
                                   ? "plugin.choria.security.insecure"
                                   : "choria_insecure";
    return ch_config_get_bool(cfg, insecure_key, false, &r->insecure, err);
}

static ch_status resolve_strings(const ch_config *cfg, ch_config_resolved *r, ch_error *err)
{
    const char *level = ch_config_get_string(cfg, "loglevel", "info");
    if (ch_log_level_parse(level, &r->log_level) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID,
                            "loglevel: '%.32s' is not one of debug, info, warn, error, fatal",
                            level);
    const char *logfile = ch_config_get(cfg, "logfile");
    const char *provider = ch_config_get_string(cfg, "plugin.security.provider", "puppet");
    r->loglevel = strdup(level);
    r->security_provider = strdup(provider);
    if (logfile != NULL && logfile[0] != '\0')
        r->logfile = strdup(logfile);
    if (r->loglevel == NULL || r->security_provider == NULL ||
        (logfile != NULL && logfile[0] != '\0' && r->logfile == NULL))
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    return CH_OK;
}

ch_status ch_config_resolve(const ch_config *cfg, ch_config_resolved **out, ch_error *err)
{
    *out = NULL;
    ch_config_resolved *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    ch_status s;
    if ((s = resolve_strings(cfg, r, err)) != CH_OK ||
        (s = resolve_numbers(cfg, r, err)) != CH_OK ||
        (s = resolve_collectives(cfg, r, err)) != CH_OK ||
        (s = ch_config_parse_servers(ch_config_get(cfg, "plugin.choria.middleware_hosts"),
                                     &r->middleware_hosts, &r->middleware_count, err)) != CH_OK ||
        (s = resolve_identity(cfg, r, err)) != CH_OK)
        goto out;
    if (r->middleware_count > 0) {
        r->middleware_urls = calloc(r->middleware_count, sizeof(*r->middleware_urls));
        if (r->middleware_urls == NULL) {
            s = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < r->middleware_count; i++)
            r->middleware_urls[i] = r->middleware_hosts[i].url;
    }
    *out = r;
    return CH_OK;

out:
    ch_config_resolved_free(r);
    return s;
}

/* ---- default client configuration ---- */

static char *existing_file(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    struct stat st;
    if (path == NULL)
        return NULL;
    snprintf(path, n, "%s%s%s", dir, (dir[0] != '\0' && name[0] != '/') ? "/" : "", name);
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
        return path;
    free(path);
    return NULL;
}

char *ch_config_find_client_config(const char *root, const char *home)
{
    static const char *const home_files[] = {".choriarc", ".mcollective"};
    static const char *const system_files[] = {
        "/etc/choria/client.conf",
        "/usr/local/etc/choria/client.conf",
        "/etc/puppetlabs/mcollective/client.cfg",
    };
    char *path;
    if (home == NULL)
        home = getenv("HOME");
    if (home != NULL && home[0] != '\0')
        for (size_t i = 0; i < 2; i++)
            if ((path = existing_file(home, home_files[i])) != NULL)
                return path;
    if (root == NULL)
        root = "";
    for (size_t i = 0; i < 3; i++)
        if ((path = existing_file(root, system_files[i])) != NULL)
            return path;
    return NULL;
}
