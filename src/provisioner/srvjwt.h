/* Server JWTs for Organization Issuer networks (features.ed25519; upstream host/host.go and
 * choria-io/tokens): the provisioner signs a choria_server token for the ed25519 key each node
 * proved it holds, optionally as a chain issuer (jwt_signing_token). */
#ifndef CHORIA_PROVISIONER_SRVJWT_H
#define CHORIA_PROVISIONER_SRVJWT_H

#include <jansson.h>

#include "choria/common.h"
#include "helper.h"

typedef struct prov_srvjwt_signer prov_srvjwt_signer;

/* key_path: jwt_signing_key, an RSA private key PEM (RS256) or a file of exactly 64 hex
 * characters, an ed25519 seed (EdDSA). token_path (may be "" or NULL): jwt_signing_token, a
 * chain issuer's JWT whose tcs, jti, public_key and exp are copied into every token (needs an
 * ed25519 key). validity_ns: server_jwt_validity. Errors name the key. */
ch_status prov_srvjwt_signer_load(const char *key_path, const char *token_path, int64_t validity_ns,
                                  prov_srvjwt_signer **out, ch_error *err);
void prov_srvjwt_signer_free(prov_srvjwt_signer *s);

/* The server JWT for identity and its ed25519 public key (hex), with the collectives, ou,
 * validity, pub_subjects and permissions from the helper's configuration and server_claims.
 * *jwt is malloc'd. */
ch_status prov_srvjwt_issue(const prov_srvjwt_signer *s, const char *identity,
                            const char *public_key, const prov_helper_reply *reply, int64_t now,
                            char **jwt, ch_error *err);

/* A KSUID (27 base62 characters) for unix time t, into out[28]. */
void prov_srvjwt_ksuid(int64_t t, char out[28]);

#endif
