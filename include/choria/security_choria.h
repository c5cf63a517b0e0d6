/* go-choria's "choria" security provider for protocol v2: ed25519 signatures and JWTs issued
 * by an Organization Issuer (providers/security/choria, choria-io/tokens).
 *
 * Signing (a client, or a server signing its replies): the signature is base64 of
 * ed25519(seed, message) and the credential is this side's JWT (the token file's content,
 * white space trimmed). A client signs as the callerid of its JWT.
 *
 * Verifying (a normal-mode server), in go-choria's order (spec upstream-security §3.3):
 * 1. the caller's JWT, read without verification, must be a client token
 *    (purpose choria_client_id; a choria_server token cannot make requests);
 * 2. its signature must verify with the issuer its `ou` claim names
 *    (plugin.security.issuer.<ou>.public), or with one of the trusted signers; a chained token
 *    (iss "C-<jti>.<issuer key>") is verified through its chain (tcs) to that issuer and needs
 *    an unexpired issexp; exp and nbf are checked without leeway (golang-jwt v5);
 * 3. permissions: signed_fleet_management is refused (it needs an AAA delegator, which this
 *    project does not implement), fleet_management is required;
 * 4. ed25519(public_key of the JWT) must verify the signature over the request bytes;
 * 5. the JWT's callerid must equal the request's caller.
 * Every refusal says which step failed; no key material is ever in a message. */
#ifndef CHORIA_SECURITY_CHORIA_H
#define CHORIA_SECURITY_CHORIA_H

#include "choria/config.h"
#include "choria/security.h"

#define CH_SECURITY_CHORIA_NAME "choria"
#define CH_SECURITY_CHORIA_MAX_TOKEN (64 * 1024)

typedef struct {
    /* signing: this side's JWT and ed25519 seed (hex) files */
    const char *token_file;
    const char *seed_file;
    /* verifying: issuers by name (the `ou` of callers' JWTs) with their public keys (hex
     * ed25519, or a file holding one or a PEM RSA/ed25519 key), parallel arrays; or trusted
     * signer public keys (hex), each tried in turn */
    const char *const *issuer_names;
    const char *const *issuer_keys;
    size_t n_issuers;
    const char *const *trusted_signers;
    size_t n_trusted;
    bool sign;            /* load token and seed */
    bool verify;          /* load issuers or trusted signers (at least one) */
    bool sign_replies;    /* protocol v2 replies carry a signature (servers; default true) */
    int64_t (*now)(void); /* NULL = ch_now_unix; tests pin the clock */
} ch_security_choria_opts;

/* Loads the files and keys o names; errors name the file or key that is missing or bad. */
ch_status ch_security_choria_new(const ch_security_choria_opts *o, ch_security **out,
                                 ch_error *err);

/* From a resolved configuration: signs when the token and seed files are set (a server needs
 * them to sign replies and log in to the broker), verifies when verify is true. */
ch_status ch_security_choria_from_config(const ch_config_security *sec, bool verify,
                                         ch_security **out, ch_error *err);

/* This side's JWT text (NULL when not signing) and claims of it, read without verification:
 * a string claim such as "identity" or "callerid", NULL when absent. */
const char *ch_security_choria_token(const ch_security *sec);
const char *ch_security_choria_claim(const ch_security *sec, const char *claim);

/* The connection login of go-choria's JWT clients: the signature of the broker's nonce
 * (raw 64 bytes into sig). CH_ERR_INVALID when the provider does not sign. */
ch_status ch_security_choria_sign_nonce(const ch_security *sec, const char *nonce,
                                        unsigned char sig[64], ch_error *err);

#endif
