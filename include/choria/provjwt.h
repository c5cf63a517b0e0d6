/* The provisioning JWT (choria-io/tokens ProvisioningClaims), parsed UNVERIFIED as the node
 * does (tokens.ParseProvisionTokenUnverified + builddefaults.SetBuildBasedOnJWT): nothing here
 * checks the signature; the provisioner verifies it separately when it fetches the JWT.
 *
 * Parsing follows golang-jwt v5 ParseUnverified: three dot-separated segments, header and
 * claims are unpadded base64url (CR/LF are skipped, as Go's decoder does), the header must
 * name a known `alg`, the claims are decoded as Go's json.Unmarshal into the typed struct
 * (a claim of the wrong JSON type is an error, unknown claims are ignored). Then the rules
 * of go-choria: the token must be a provisioning token (sub or purpose "choria_provisioning"),
 * `cht` must be set, and exactly one of `chu` and `chsrv`. The expiry is NOT checked by
 * parsing (go-choria does not either); ch_provjwt_expired() tells. */
#ifndef CHORIA_PROVJWT_H
#define CHORIA_PROVJWT_H

#include <jansson.h>

#include "choria/common.h"

/* Largest JWT text accepted (file or string). */
#define CH_PROVJWT_MAX_SIZE (64 * 1024)

#define CH_PROVJWT_PURPOSE "choria_provisioning"

/* Optional strings are NULL when the claim is absent, null or "". */
typedef struct {
    char *alg;               /* header alg, e.g. "RS256", "EdDSA" */
    char *token;             /* cht: the provisioning token, never NULL or "" */
    bool secure;             /* chs */
    char *urls;              /* chu: comma-separated brokers */
    char *srv_domain;        /* chsrv */
    bool provision_default;  /* chpd */
    char *registration_data; /* chrd: path of a file */
    char *facts;             /* chf: path of a facts file */
    char *nats_user;         /* chusr */
    char *nats_password;     /* chpwd */
    json_t *extensions;      /* extensions: an object (owned reference), NULL when absent */
    char *org_unit;          /* ou: "choria" when absent */
    bool protocol_v2;        /* v2 */
    bool allow_update;       /* update */
    /* standard claims */
    char *purpose;
    char *subject;             /* sub */
    char *issuer;              /* iss */
    char *id;                  /* jti */
    char *public_key;          /* public_key */
    char *tcs;                 /* tcs (trust chain signature) */
    int64_t issued_at;         /* iat, unix seconds, 0 = absent */
    int64_t not_before;        /* nbf, 0 = absent */
    int64_t expires_at;        /* exp, 0 = absent */
    int64_t issuer_expires_at; /* issexp, 0 = absent */
} ch_provjwt;

/* Parses text[0..len) (surrounding white space, such as the newline at the end of a file, is
 * ignored). *out is a new ch_provjwt on success. Errors are CH_ERR_TOO_LARGE or
 * CH_ERR_INVALID with Go-like messages: "token is malformed: ...", "token is unverifiable:
 * signing method (alg) is unavailable", "token is not a provisioning token", "no auth token",
 * "no srv domain or urls", "both srv domain and URLs supplied". */
ch_status ch_provjwt_parse(const char *text, size_t len, ch_provjwt **out, ch_error *err);

/* The same rules on a header and claims already decoded (ch_jwt_decode_segment), for a
 * caller that verified the token first and must not decode it twice. Borrows both. */
ch_status ch_provjwt_from_json(const json_t *header, const json_t *claims, ch_provjwt **out,
                               ch_error *err);

/* Reads (at most CH_PROVJWT_MAX_SIZE bytes) and parses a JWT file. */
ch_status ch_provjwt_load_file(const char *path, ch_provjwt **out, ch_error *err);

/* True when exp or issexp is set and now (unix seconds) is at or past it. */
bool ch_provjwt_expired(const ch_provjwt *jwt, int64_t now);

void ch_provjwt_free(ch_provjwt *jwt);

#endif
