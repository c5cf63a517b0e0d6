/* The x509 security provider of the Choria v1 protocol (go-choria's `file` provider,
 * providers/security/filesec): a client signs the Request text with RSASSA-PKCS1-v1_5 over
 * SHA-256 and sends its certificate file as pubcert; a server verifies the caller, the
 * certificate chain, the allow list and the signature in go-choria's order.
 *
 * Threads: everything is loaded at creation (signing key, certificate text, CA store, compiled
 * patterns) and never changed afterwards; each sign or verify builds its own OpenSSL contexts.
 * Any number of threads may sign and verify with one provider at once. Free it with
 * ch_security_free() once no thread uses it.
 *
 * Bounds: pubcert at most CH_SECURITY_X509_MAX_PUBCERT bytes and CH_SECURITY_X509_MAX_CHAIN
 * certificates, signature text at most CH_SECURITY_X509_MAX_SIGNATURE bytes; the same bounds
 * apply to our own certificate file, so we never send what we would refuse.
 *
 * Deliberate differences from upstream (go-choria providers/security/filesec), all failing
 * closed where go-choria fails open or crashes: a CA file without certificates refuses
 * creation (go-choria then skips the chain check); a pubcert without a PEM block, with a block
 * that is not a certificate, or with an undecodable certificate is refused; a non-RSA
 * certificate is refused (go-choria panics); the literal "insecure" signature or pubcert is
 * refused; the signing certificate must match the signing key. */
#ifndef CHORIA_SECURITY_X509_H
#define CHORIA_SECURITY_X509_H

#include "choria/common.h"
#include "choria/security.h"

#define CH_SECURITY_X509_NAME "x509"

#define CH_SECURITY_X509_MAX_PUBCERT (64 * 1024) /* bytes of pubcert and of our cert file */
#define CH_SECURITY_X509_MAX_CHAIN 10            /* certificates in pubcert */
#define CH_SECURITY_X509_MAX_SIGNATURE 4096      /* bytes of the base64 signature text */
#define CH_SECURITY_X509_MAX_KEY_FILE (64 * 1024)
#define CH_SECURITY_X509_MAX_CA_FILE (1024 * 1024)

/* go-choria's defaults for plugin.choria.security.certname_whitelist and
 * plugin.choria.security.privileged_users. */
#define CH_SECURITY_X509_DEFAULT_ALLOWED                                                           \
    {                                                                                              \
        "\\.mcollective$", "\\.choria$"                                                            \
    }
#define CH_SECURITY_X509_DEFAULT_PRIVILEGED                                                        \
    {                                                                                              \
        "\\.privileged.mcollective$", "\\.privileged.choria$"                                      \
    }

/* Zero fields mean the default. Every string is borrowed for the duration of
 * ch_security_x509_new() only: the provider copies or loads what it keeps. */
typedef struct {
    /* PEM chain, leaf first; its bytes are sent verbatim as pubcert. Read at creation. */
    const char *cert_file;
    /* RSA private key, PKCS#1 ("RSA PRIVATE KEY") or PKCS#8 ("PRIVATE KEY"), unencrypted
     * PEM. Only read when sign is set. */
    const char *key_file;
    /* PEM CA certificates: the trust anchors of every chain. Only read when verify is set. */
    const char *ca_file;
    /* Allow list of certificate names (plugin.choria.security.certname_whitelist): Go
     * regular expressions, unanchored, a pattern written /re/ loses its slashes, an invalid
     * pattern never matches (and is logged at creation). NULL: the default list; a non-NULL
     * list with n_allowed 0 allows no unprivileged caller. */
    const char *const *allowed;
    size_t n_allowed;
    /* Privileged certificate names (plugin.choria.security.privileged_users), same rules and
     * the same NULL meaning. A privileged certificate may claim any caller id. */
    const char *const *privileged;
    size_t n_privileged;
    bool sign;   /* a client: needs cert_file and key_file */
    bool verify; /* a server: needs ca_file */
    /* Unix seconds at which certificates must be valid; NULL = the wall clock (ch_now_unix).
     * Called from the verifying threads, so it must be thread-safe. */
    int64_t (*now)(void);
} ch_security_x509_opts;

/* Makes an x509 provider (ops->name "x509") in *out, to be freed with ch_security_free().
 *   CH_ERR_INVALID   neither sign nor verify, a needed file not named, a file without the
 *                    expected PEM content ("CA file <path> holds no certificates"), a key that
 *                    is not RSA ("key file <path> is not an RSA key: upstream signs with RSA
 *                    only"), or a certificate that does not match the key;
 *   CH_ERR_NOT_FOUND / CH_ERR_IO  a file cannot be read (the message names it);
 *   CH_ERR_TOO_LARGE a file over its CH_SECURITY_X509_MAX_* bound;
 *   CH_ERR_NOMEM.
 * Messages name files by path and never quote their contents. *out is NULL on error.
 *
 * Signing (ch_security_sign): *signature = base64 (padded, one line) of the RSA PKCS#1 v1.5
 * SHA-256 signature of message[0..len); *pubcert = the certificate file's bytes. Both
 * malloc'd. CH_ERR_UNSUPPORTED when the provider was made without sign.
 *
 * Verifying (ch_security_verify), in go-choria's order (SecureRequest.Valid and
 * ShouldAllowCaller): the certname from callerid ("<lowercase>=<[A-Za-z0-9_.-]+>", the rest
 * ignored); privileged when the CN or a DNS SAN of pubcert's first certificate matches a
 * privileged pattern; the chain from that certificate through every certificate of pubcert to
 * a CA-file certificate, valid at now(), clientAuth (or anyExtendedKeyUsage) in every chain
 * certificate that has an extended key usage; unless privileged, certname equal to a DNS SAN
 * or the CN (exact bytes) and matching an allow-list pattern; the signature base64 (padding
 * required, CR and LF skipped as Go does); an RSA key; the signature as long as the modulus
 * and valid over SHA-256 of message[0..len).
 *   CH_OK            the request may be processed (its TTL is checked elsewhere);
 *   CH_ERR_INVALID   refused; err says why, e.g. "certificate is not for the caller <name>:
 *                    it is valid for <cn>", "caller <name> is not on the allow list",
 *                    "certificate chain: certificate has expired", "signature in request did
 *                    not pass validation with embedded public certificate";
 *   CH_ERR_UNSUPPORTED the provider was made without verify;
 *   CH_ERR_NOMEM. */
ch_status ch_security_x509_new(const ch_security_x509_opts *o, ch_security **out, ch_error *err);

#endif
