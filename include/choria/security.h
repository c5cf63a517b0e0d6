/* Pluggable security layer of the Choria protocols: how a SecureRequest is signed by a
 * client and verified by a server.
 *
 * A provider is a table of operations plus its own context. Providers:
 * - "insecure" (go-choria with protocol.Secure=false, and every provisioning-mode server):
 *   it signs with the literal strings "insecure" and accepts every request;
 * - "x509" (include/choria/security_x509.h): RSA PKCS#1 v1.5 SHA-256 over the request text,
 *   certificate chains, allow and privileged lists.
 * - "choria" (include/choria/security_choria.h): ed25519 signatures and caller JWTs from an
 *   Organization Issuer, for protocol v2.
 * The protocol codecs never name a provider; they ask its technology (v1 carries x509, v2
 * ed25519) and pass the signature and credential through as text. */
#ifndef CHORIA_SECURITY_H
#define CHORIA_SECURITY_H

#include "choria/common.h"
#include "choria/config.h"

/* The literal signature and pubcert carried by insecure requests (not base64). */
#define CH_SECURITY_INSECURE "insecure"

typedef struct ch_security ch_security;

/* What a provider's signatures are made with, which decides the protocol version that can
 * carry them. */
typedef enum {
    CH_SECURITY_TECH_NONE,    /* insecure (and the refusing provider): any protocol */
    CH_SECURITY_TECH_X509,    /* protocol v1 */
    CH_SECURITY_TECH_ED25519, /* protocol v2 */
} ch_security_tech;

typedef struct {
    /* Short provider name, e.g. "insecure". */
    const char *name;
    ch_security_tech tech;

    /* Signs the Request JSON text message[0..len). On success *signature and *pubcert are
     * malloc'd NUL-terminated strings owned by the caller (both non-empty). */
    ch_status (*sign)(const ch_security *sec, const char *message, size_t len, char **signature,
                      char **pubcert, ch_error *err);

    /* Verifies that signature (made by the holder of pubcert, who claims to be callerid) covers
     * message[0..len). CH_OK when the request may be processed. */
    ch_status (*verify)(const ch_security *sec, const char *message, size_t len,
                        const char *signature, const char *pubcert, const char *callerid,
                        ch_error *err);

    /* Releases ctx and the provider itself; NULL for statically allocated providers. */
    void (*destroy)(ch_security *sec);

    /* Optional: the caller id requests signed by this provider must carry (the choria
     * provider's JWT callerid), NULL when the program chooses it. */
    const char *(*callerid)(const ch_security *sec);
} ch_security_ops;

struct ch_security {
    const ch_security_ops *ops;
    void *ctx;         /* provider private data */
    bool sign_replies; /* protocol v2: replies carry the provider's signature and credential */
};

/* The insecure provider. Statically allocated and immutable: never freed, safe to share
 * between threads. */
const ch_security *ch_security_insecure(void);

/* Provider name, "none" for NULL. */
const char *ch_security_name(const ch_security *sec);

/* The provider's technology; CH_SECURITY_TECH_NONE for NULL. */
ch_security_tech ch_security_tech_of(const ch_security *sec);

/* The caller id the provider signs as, NULL when it has none (see ops.callerid). */
const char *ch_security_callerid(const ch_security *sec);

/* Dispatch helpers; a NULL sec means the insecure provider. */
ch_status ch_security_sign(const ch_security *sec, const char *message, size_t len,
                           char **signature, char **pubcert, ch_error *err);
ch_status ch_security_verify(const ch_security *sec, const char *message, size_t len,
                             const char *signature, const char *pubcert, const char *callerid,
                             ch_error *err);

/* Releases a provider made by a ch_security_<kind>_new() (ch_security_x509_new); accepts NULL
 * and the static insecure provider (no-op). */
void ch_security_free(ch_security *sec);

/* ---- from a configuration ---- */

/* What a program does with requests: a client signs, a normal-mode server verifies. */
typedef enum { CH_SECURITY_SIGN, CH_SECURITY_VERIFY } ch_security_role;

/* The provider a Choria configuration asks for (see ch_config_security):
 * - insecure (plugin.choria.security.insecure, the provisioner's choria_insecure): the
 *   static insecure provider;
 * - file or puppet: the x509 provider on sec's files and caller lists;
 * - choria: the choria provider on sec's token, seed and issuers (protocol v2);
 * - none named: a client signs "insecure" as this project always has; a server gets a
 *   provider that refuses every request, since nothing could verify it (upstream's default,
 *   puppet, would verify; a server accepts unsigned requests only when told to).
 * *out is freed with ch_security_free (harmless on the static ones). */
ch_status ch_security_from_config(const ch_config_security *sec, bool insecure,
                                  ch_security_role role, ch_security **out, ch_error *err);

#endif
