/* JWTs as Choria uses them: the key that verifies a node's provisioning JWT, the
 * verification of that JWT (signature and claims, as the upstream provisioner checks it), a
 * signature check for other tokens, and signing (`choria jwt provisioning`, the server JWTs
 * the provisioner issues). OpenSSL 3 EVP only; no global state. */
#ifndef CHORIA_JWT_H
#define CHORIA_JWT_H

#include <jansson.h>

#include "choria/common.h"
#include "choria/provjwt.h"

#define CH_JWT_MAX_KEY_FILE (256 * 1024)

/* ---- the compact form ---- */

/* A compact JWT cut into its segments, borrowed from the text it was split from. */
typedef struct {
    const char *header, *claims, *signature; /* base64url segments */
    size_t header_len, claims_len, signature_len;
    size_t signed_len; /* "header.claims", what the signature covers, from header on */
} ch_jwt_parts;

/* Cuts jwt[0..len) (surrounding white space ignored, at most CH_PROVJWT_MAX_SIZE bytes, no
 * NUL bytes) into its three segments, as golang-jwt does: "token is malformed: token
 * contains an invalid number of segments". */
ch_status ch_jwt_split(const char *jwt, size_t len, ch_jwt_parts *out, ch_error *err);

/* One segment decoded: unpadded base64url, then JSON (bounded): "token is malformed: could
 * not base64 decode <what>" or "...: could not JSON decode <what>: <why>". *out is a new
 * reference, any JSON value. */
ch_status ch_jwt_decode_segment(const char *seg, size_t len, const char *what, json_t **out,
                                ch_error *err);

/* ---- verification key (jwt_verify_cert) ---- */

typedef struct ch_jwt_key ch_jwt_key;

/* As upstream reads jwt_verify_cert: a value that is not an existing path is a hex ed25519
 * public key; a file holding a PEM certificate or public key gives an RSA key (PKCS#1
 * "RSA PUBLIC KEY", and PKCS#1 bytes under a "PUBLIC KEY" label as go-choria writes them, are
 * accepted too; so is an Ed25519 SubjectPublicKeyInfo); any other file holds a hex ed25519
 * key. Messages never contain key material. */
ch_status ch_jwt_key_load(const char *value, ch_jwt_key **out, ch_error *err);
void ch_jwt_key_free(ch_jwt_key *k);

/* ---- provisioning JWT ---- */

/* Verifies jwt[0..len) (surrounding white space ignored, at most CH_PROVJWT_MAX_SIZE):
 * alg RS256/RS384/RS512 with an RSA key or EdDSA with an ed25519 key (anything else, "none"
 * included, is refused), then as golang-jwt v5 with no leeway: expired when now >= exp, not
 * valid yet when now < nbf; then the provisioning rules of ch_provjwt_parse; then the trust
 * chain rule: a token with `tcs` needs an issuer starting "C-" and an unexpired `issexp`.
 * On success *claims (may be NULL) gets the typed claims and *claims_json (may be NULL) the
 * claims object as sent, for the helper. Messages follow golang-jwt: "token signature is
 * invalid: ...", "token has invalid claims: token is expired", ... */
ch_status ch_jwt_verify_provisioning(const ch_jwt_key *key, const char *jwt, size_t len,
                                     int64_t now, ch_provjwt **claims, json_t **claims_json,
                                     ch_error *err);

/* Only the signature of jwt[0..len) (alg and key type must match), no claim checks: for
 * tokens other than provisioning tokens, e.g. the server JWTs the provisioner issues. */
ch_status ch_jwt_verify_signature(const ch_jwt_key *key, const char *jwt, size_t len,
                                  ch_error *err);

/* Signs claims as a compact JWT: alg RS256/RS384/RS512 with key = an RSA private key PEM
 * text, or EdDSA with key = a 64-character hex ed25519 seed. Header {"alg":..,"typ":"JWT"}.
 * *jwt is malloc'd. */
ch_status ch_jwt_sign(const char *alg, const char *key, const json_t *claims, char **jwt,
                      ch_error *err);

#endif
