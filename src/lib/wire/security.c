/* Security providers for the v1 protocol: the dispatch helpers and "insecure" (x509 is in
 * security_x509.c). */
#include "choria/security.h"

#include "choria/security_choria.h"
#include "choria/security_x509.h"

#include <stdlib.h>
#include <string.h>

static ch_status insecure_sign(const ch_security *sec, const char *message, size_t len,
                               char **signature, char **pubcert, ch_error *err)
{
    (void)sec;
    (void)message;
    (void)len;
    *signature = strdup(CH_SECURITY_INSECURE);
    *pubcert = strdup(CH_SECURITY_INSECURE);
    if (*signature == NULL || *pubcert == NULL) {
        free(*signature);
        free(*pubcert);
        *signature = *pubcert = NULL;
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory signing a request");
    }
    return CH_OK;
}

/* go-choria's SecureRequest.Valid() returns true at once when the protocol is not secure. */
static ch_status insecure_verify(const ch_security *sec, const char *message, size_t len,
                                 const char *signature, const char *pubcert, const char *callerid,
                                 ch_error *err)
{
    (void)sec;
    (void)message;
    (void)len;
    (void)signature;
    (void)pubcert;
    (void)callerid;
    (void)err;
    return CH_OK;
}

static const ch_security_ops insecure_ops = {
    .name = "insecure",
    .sign = insecure_sign,
    .verify = insecure_verify,
    .destroy = NULL,
};

static const ch_security insecure_provider = {.ops = &insecure_ops, .ctx = NULL};

const ch_security *ch_security_insecure(void)
{
    return &insecure_provider;
}

const char *ch_security_name(const ch_security *sec)
{
    if (sec == NULL || sec->ops == NULL || sec->ops->name == NULL)
        return "none";
    return sec->ops->name;
}

ch_security_tech ch_security_tech_of(const ch_security *sec)
{
    return sec != NULL && sec->ops != NULL ? sec->ops->tech : CH_SECURITY_TECH_NONE;
}

const char *ch_security_callerid(const ch_security *sec)
{
    if (sec == NULL || sec->ops == NULL || sec->ops->callerid == NULL)
        return NULL;
    return sec->ops->callerid(sec);
}

ch_status ch_security_sign(const ch_security *sec, const char *message, size_t len,
                           char **signature, char **pubcert, ch_error *err)
{
    *signature = NULL;
    *pubcert = NULL;
    if (sec == NULL)
        sec = &insecure_provider;
    if (sec->ops == NULL || sec->ops->sign == NULL)
        return ch_error_set(err, CH_ERR_UNSUPPORTED, "security provider %s cannot sign",
                            ch_security_name(sec));
    return sec->ops->sign(sec, message, len, signature, pubcert, err);
}

ch_status ch_security_verify(const ch_security *sec, const char *message, size_t len,
                             const char *signature, const char *pubcert, const char *callerid,
                             ch_error *err)
{
    if (sec == NULL)
        sec = &insecure_provider;
    if (sec->ops == NULL || sec->ops->verify == NULL)
        return ch_error_set(err, CH_ERR_UNSUPPORTED, "security provider %s cannot verify",
                            ch_security_name(sec));
    return sec->ops->verify(sec, message, len, signature, pubcert, callerid, err);
}

void ch_security_free(ch_security *sec)
{
    if (sec == NULL || sec == &insecure_provider || sec->ops == NULL || sec->ops->destroy == NULL)
        return;
    sec->ops->destroy(sec);
}

/* ---- the provider that refuses: a server with nothing to verify requests with ---- */

static ch_status refuse_sign(const ch_security *sec, const char *message, size_t len,
                             char **signature, char **pubcert, ch_error *err)
{
    (void)sec, (void)message, (void)len, (void)signature, (void)pubcert;
    return ch_error_set(err, CH_ERR_UNSUPPORTED, "no security provider is configured");
}

static ch_status refuse_verify(const ch_security *sec, const char *message, size_t len,
                               const char *signature, const char *pubcert, const char *callerid,
                               ch_error *err)
{
    (void)sec, (void)message, (void)len, (void)signature, (void)pubcert, (void)callerid;
    return ch_error_set(err, CH_ERR_INVALID,
                        "no security provider is configured (plugin.security.provider) and "
                        "plugin.choria.security.insecure is not set: requests are refused");
}

static const ch_security_ops refuse_ops = {
    .name = "none",
    .sign = refuse_sign,
    .verify = refuse_verify,
    .destroy = NULL,
};

static const ch_security refuse_provider = {.ops = &refuse_ops, .ctx = NULL};

ch_status ch_security_from_config(const ch_config_security *sec, bool insecure,
                                  ch_security_role role, ch_security **out, ch_error *err)
{
    *out = NULL;
    if (insecure || (sec->provider == NULL && role == CH_SECURITY_SIGN)) {
        *out = (ch_security *)&insecure_provider;
        return CH_OK;
    }
    if (sec->provider == NULL) {
        *out = (ch_security *)&refuse_provider;
        return CH_OK;
    }
    if (strcmp(sec->provider, "choria") == 0)
        return ch_security_choria_from_config(sec, role == CH_SECURITY_VERIFY, out, err);
    ch_security_x509_opts o = {
        .cert_file = sec->cert_file,
        .key_file = sec->key_file,
        .ca_file = sec->ca_file,
        .allowed = (const char *const *)sec->allowed.items,
        .n_allowed = sec->allowed.count,
        .privileged = (const char *const *)sec->privileged.items,
        .n_privileged = sec->privileged.count,
        .sign = role == CH_SECURITY_SIGN,
        .verify = role == CH_SECURITY_VERIFY,
    };
    return ch_security_x509_new(&o, out, err);
}
