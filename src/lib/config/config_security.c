/* The security material a Choria config names: go-choria's file, puppet and choria providers
 * (providers/security/{filesec,puppetsec,choria}). Only paths and names are resolved here;
 * the files are opened by whoever uses them, so a config can be checked without them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "choria/config.h"

#define DEFAULT_ALLOWED "\\.mcollective$,\\.choria$"
#define DEFAULT_PRIVILEGED "\\.privileged.mcollective$,\\.privileged.choria$"

static ch_status dup_into(char **out, const char *value, ch_error *err)
{
    *out = NULL;
    if (value == NULL || value[0] == '\0')
        return CH_OK;
    if ((*out = strdup(value)) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    return CH_OK;
}

static ch_status path_into(char **out, const char *dir, const char *sub, const char *name,
                           ch_error *err)
{
    if (asprintf(out, "%s/%s%s.pem", dir, sub, name) < 0) {
        *out = NULL;
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
    return CH_OK;
}

/* filesec/puppetsec option.go: the environment can name the certificate, and a non-root
 * user's certificate is <user>.mcollective (the name `choria enroll` gives it). */
static ch_status resolve_certname(const ch_config_resolved *r, const char *(*env)(const char *),
                                  ch_config_security *s, ch_error *err)
{
    const char *named = env("MCOLLECTIVE_CERTNAME");
    const char *user = env("USER");
    if (named != NULL && named[0] != '\0')
        return dup_into(&s->certname, named, err);
    if (geteuid() != 0 && user != NULL && user[0] != '\0') {
        if (asprintf(&s->certname, "%s.mcollective", user) < 0) {
            s->certname = NULL;
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        }
        return CH_OK;
    }
    return dup_into(&s->certname, r->identity, err);
}

/* puppetsec: <ssldir>/certs/<certname>.pem and friends; the ssldir defaults as Puppet's. */
static ch_status puppet_files(const ch_config *cfg, const char *(*env)(const char *),
                              ch_config_security *s, ch_error *err)
{
    const char *ssldir = ch_config_get(cfg, "plugin.choria.ssldir");
    char *home_ssl = NULL;
    const char *home = env("HOME");
    if ((ssldir == NULL || ssldir[0] == '\0') && geteuid() != 0 && home != NULL) {
        if (asprintf(&home_ssl, "%s/.puppetlabs/etc/puppet/ssl", home) < 0)
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        ssldir = home_ssl;
    }
    if (ssldir == NULL || ssldir[0] == '\0')
        ssldir = "/etc/puppetlabs/puppet/ssl";
    ch_status st = path_into(&s->cert_file, ssldir, "certs/", s->certname, err);
    if (st == CH_OK)
        st = path_into(&s->key_file, ssldir, "private_keys/", s->certname, err);
    if (st == CH_OK)
        st = path_into(&s->ca_file, ssldir, "certs/", "ca", err);
    free(home_ssl);
    return st;
}

static ch_status provider_files(const ch_config *cfg, const char *(*env)(const char *),
                                ch_config_security *s, ch_error *err)
{
    const char *prefix = NULL;
    if (strcmp(s->provider, "puppet") == 0)
        return puppet_files(cfg, env, s, err);
    if (strcmp(s->provider, "file") == 0)
        prefix = "plugin.security.file.";
    else if (strcmp(s->provider, "choria") == 0)
        prefix = "plugin.security.choria.";
    else
        return ch_error_set(err, CH_ERR_INVALID,
                            "plugin.security.provider: '%.64s' is not one of file, puppet, choria",
                            s->provider);
    char key[64];
    snprintf(key, sizeof(key), "%scertificate", prefix);
    ch_status st = dup_into(&s->cert_file, ch_config_get(cfg, key), err);
    snprintf(key, sizeof(key), "%skey", prefix);
    if (st == CH_OK)
        st = dup_into(&s->key_file, ch_config_get(cfg, key), err);
    snprintf(key, sizeof(key), "%sca", prefix);
    if (st == CH_OK)
        st = dup_into(&s->ca_file, ch_config_get(cfg, key), err);
    return st;
}

static ch_status resolve_lists(const ch_config *cfg, ch_config_security *s, ch_error *err)
{
    ch_status st = ch_config_get_list(cfg, "plugin.choria.security.certname_whitelist",
                                      DEFAULT_ALLOWED, &s->allowed, err);
    if (st == CH_OK)
        st = ch_config_get_list(cfg, "plugin.choria.security.privileged_users", DEFAULT_PRIVILEGED,
                                &s->privileged, err);
    return st;
}

/* go-choria's choria provider: its token and seed, and whom it trusts to sign callers. */
static ch_status choria_material(const ch_config *cfg, ch_config_security *s, ch_error *err)
{
    ch_status st =
        dup_into(&s->token_file, ch_config_get(cfg, "plugin.security.choria.token_file"), err);
    if (st == CH_OK)
        st = dup_into(&s->seed_file, ch_config_get(cfg, "plugin.security.choria.seed_file"), err);
    if (st == CH_OK)
        st = ch_config_get_list(cfg, "plugin.security.issuer.names", NULL, &s->issuer_names, err);
    if (st == CH_OK)
        st = ch_config_get_list(cfg, "plugin.security.choria.trusted_signers", NULL,
                                &s->trusted_signers, err);
    if (st == CH_OK)
        st = ch_config_get_bool(cfg, "plugin.security.choria.sign_replies", true, &s->sign_replies,
                                err);
    if (st != CH_OK)
        return st;
    s->issuer_keys.items = calloc(s->issuer_names.count + 1, sizeof(char *));
    if (s->issuer_keys.items == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < s->issuer_names.count; i++) {
        char key[256];
        snprintf(key, sizeof(key), "plugin.security.issuer.%.200s.public",
                 s->issuer_names.items[i]);
        const char *v = ch_config_get(cfg, key);
        if (v == NULL || v[0] == '\0')
            return ch_error_set(err, CH_ERR_INVALID, "%s is not set for issuer %.64s", key,
                                s->issuer_names.items[i]);
        if ((s->issuer_keys.items[i] = strdup(v)) == NULL)
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        s->issuer_keys.count++;
    }
    return CH_OK;
}

ch_status ch_config_security_resolve(const ch_config *cfg, const ch_config_resolved *r,
                                     const char *(*env)(const char *name), ch_config_security *out,
                                     ch_error *err)
{
    memset(out, 0, sizeof(*out));
    if (env == NULL)
        env = (const char *(*)(const char *))getenv;
    ch_status st = dup_into(&out->provider, ch_config_get(cfg, "plugin.security.provider"), err);
    if (st == CH_OK)
        st = resolve_certname(r, env, out, err);
    if (st == CH_OK && out->provider != NULL)
        st = provider_files(cfg, env, out, err);
    if (st == CH_OK)
        st = resolve_lists(cfg, out, err);
    if (st == CH_OK && out->provider != NULL && strcmp(out->provider, "choria") == 0)
        st = choria_material(cfg, out, err);
    if (st != CH_OK)
        ch_config_security_clear(out);
    return st;
}

void ch_config_security_clear(ch_config_security *s)
{
    if (s == NULL)
        return;
    free(s->provider);
    free(s->certname);
    free(s->cert_file);
    free(s->key_file);
    free(s->ca_file);
    ch_config_list_free(&s->allowed);
    ch_config_list_free(&s->privileged);
    free(s->token_file);
    free(s->seed_file);
    ch_config_list_free(&s->issuer_names);
    ch_config_list_free(&s->issuer_keys);
    ch_config_list_free(&s->trusted_signers);
    memset(s, 0, sizeof(*s));
}
