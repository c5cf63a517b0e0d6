/* Security providers for the v1 protocol: the dispatch helpers and "insecure" (x509 is in
 * security_x509.c). */
#include "choria/security.h"

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
