/* Server JWT issuance for Organization Issuer networks (see srvjwt.h). */
#include "srvjwt.h"

#include <stdlib.h>
#include <string.h>

#include "choria/json.h"
#include "choria/log.h"
#include "choria/pki.h"
#include "choria/jwt.h"
#include "choria/util.h"

#define KSUID_EPOCH 1400000000
#define MAX_TOKEN_FILE (64 * 1024)
#define MIN_VALIDITY_S 3600

struct prov_srvjwt_signer {
    const char *alg; /* "RS256" or "EdDSA" */
    char *key;       /* PEM text or hex seed; secret */
    size_t key_len;
    int64_t validity_s;
    json_t *chain; /* claims of jwt_signing_token, NULL when not chained */
};

void prov_srvjwt_signer_free(prov_srvjwt_signer *s)
{
    if (s == NULL)
        return;
    ch_pki_free_secret(s->key, s->key_len);
    json_decref(s->chain);
    free(s);
}

/* The claims of an unverified JWT file (it is our own credential, not input to check). */
static ch_status load_chain(const char *path, json_t **out, ch_error *err)
{
    char *text = NULL;
    size_t len = 0;
    ch_status st = ch_read_file(path, MAX_TOKEN_FILE, &text, &len, err);
    if (st != CH_OK)
        return ch_error_set(err, st, "jwt_signing_token: cannot read %s", path);
    ch_jwt_parts parts;
    if (ch_jwt_split(text, len, &parts, NULL) == CH_OK)
        ch_jwt_decode_segment(parts.claims, parts.claims_len, "claim", out, NULL);
    free(text);
    json_t *c = *out;
    if (!json_is_object(c) || !json_is_string(json_object_get(c, "tcs")))
        st = ch_error_set(err, CH_ERR_INVALID,
                          "jwt_signing_token: no Trust Chain Signature claim in JWT Signing Token");
    else if (!json_is_string(json_object_get(c, "jti")) ||
             !json_is_string(json_object_get(c, "public_key")) ||
             !json_is_integer(json_object_get(c, "exp")))
        st = ch_error_set(err, CH_ERR_INVALID,
                          "jwt_signing_token: the token needs jti, public_key and exp claims");
    if (st != CH_OK) {
        json_decref(c);
        *out = NULL;
    }
    return st;
}

ch_status prov_srvjwt_signer_load(const char *key_path, const char *token_path, int64_t validity_ns,
                                  prov_srvjwt_signer **out, ch_error *err)
{
    *out = NULL;
    if (key_path == NULL || key_path[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID,
                            "jwt_signing_key: no jwt signing key configured using jwt_signing_key");
    prov_srvjwt_signer *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    s->validity_s = validity_ns / 1000000000;
    ch_status st = ch_read_file(key_path, 256 * 1024, &s->key, &s->key_len, err);
    if (st != CH_OK)
        st = ch_error_set(err, st, "jwt_signing_key: cannot read %s", key_path);
    else if (strstr(s->key, "-----BEGIN") != NULL)
        s->alg = "RS256";
    else if (s->key_len == 64) /* as upstream: exactly 64 bytes, no trailing newline */
        s->alg = "EdDSA";
    else
        st = ch_error_set(err, CH_ERR_INVALID, "jwt_signing_key: unsupported key in %s", key_path);
    if (st == CH_OK && token_path != NULL && token_path[0] != '\0') {
        st = load_chain(token_path, &s->chain, err);
        if (st == CH_OK && strcmp(s->alg, "EdDSA") != 0)
            st = ch_error_set(err, CH_ERR_INVALID,
                              "jwt_signing_token: a chain issuer signs with an ed25519 "
                              "jwt_signing_key");
    }
    if (st != CH_OK) {
        prov_srvjwt_signer_free(s);
        return st;
    }
    *out = s;
    return CH_OK;
}

void prov_srvjwt_ksuid(int64_t t, char out[28])
{
    static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char n[20];
    uint32_t ts = (uint32_t)(t - KSUID_EPOCH);
    n[0] = (unsigned char)(ts >> 24), n[1] = (unsigned char)(ts >> 16);
    n[2] = (unsigned char)(ts >> 8), n[3] = (unsigned char)ts;
    ch_random_bytes(n + 4, 16);
    /* base62 of the 160-bit big-endian number, most significant digit first, zero padded */
    for (int pos = 26; pos >= 0; pos--) {
        unsigned rem = 0;
        for (int i = 0; i < 20; i++) {
            unsigned cur = rem * 256 + n[i];
            n[i] = (unsigned char)(cur / 62);
            rem = cur % 62;
        }
        out[pos] = B62[rem];
    }
    out[27] = '\0';
}

static const char *config_value(const prov_helper_reply *r, const char *key)
{
    for (size_t i = 0; i < r->configuration.count; i++)
        if (strcmp(r->configuration.items[i].key, key) == 0)
            return r->configuration.items[i].value;
    return NULL;
}

/* Collectives: mcollective, choria for the choria security provider, the configuration's
 * list (split on ',' without trimming, as upstream), then server_claims. */
static json_t *collectives(const prov_helper_reply *r)
{
    json_t *claimed =
        r->server_claims != NULL ? json_object_get(r->server_claims, "collectives") : NULL;
    if (json_is_array(claimed))
        return json_deep_copy(claimed);
    const char *provider = config_value(r, "plugin.security.provider");
    const char *list = config_value(r, "collectives");
    json_t *a = json_array();
    if (list == NULL) {
        json_array_append_new(a, json_string(provider != NULL && strcmp(provider, "choria") == 0
                                                 ? "choria"
                                                 : "mcollective"));
        return a;
    }
    for (const char *p = list;; p++) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        json_array_append_new(a, json_stringn(p, len));
        if (end == NULL)
            break;
        p = end;
    }
    return a;
}

static int64_t validity(const prov_srvjwt_signer *s, const json_t *claims, int64_t now)
{
    json_t *exp = claims != NULL ? json_object_get(claims, "exp") : NULL;
    if (!json_is_number(exp))
        return s->validity_s;
    int64_t v = (int64_t)json_number_value(exp) - now; /* exp is absolute, a NumericDate */
    if (v <= MIN_VALIDITY_S) {
        ch_warn("server_claims exp gives a validity of %lld s, using server_jwt_validity",
                (long long)v);
        return s->validity_s;
    }
    return v;
}

/* Chain issuer data, as choria-io/tokens writes it: iss, issexp, exp capped, and the chain
 * signature tcs. */
static ch_status add_chain(const prov_srvjwt_signer *s, json_t *c, const char *jti, ch_error *err)
{
    const char *cjti = json_string_value(json_object_get(s->chain, "jti"));
    const char *cpub = json_string_value(json_object_get(s->chain, "public_key"));
    const char *ctcs = json_string_value(json_object_get(s->chain, "tcs"));
    json_int_t cexp = json_integer_value(json_object_get(s->chain, "exp"));
    char iss[512], msg[1024], sig_hex[2 * CH_PKI_ED25519_SIG_LEN + 1];
    snprintf(iss, sizeof(iss), "C-%s.%s", cjti, cpub);
    int n = snprintf(msg, sizeof(msg), "%s.%s", jti, ctcs);
    unsigned char seed[CH_PKI_ED25519_SEED_LEN], sig[CH_PKI_ED25519_SIG_LEN];
    ch_status st = ch_pki_hex_decode(s->key, s->key_len, seed, sizeof(seed), err);
    if (st == CH_OK && (n < 0 || (size_t)n >= sizeof(msg)))
        st = ch_error_set(err, CH_ERR_TOO_LARGE, "chain token claims too long");
    if (st == CH_OK)
        st = ch_pki_ed25519_sign(seed, msg, (size_t)n, sig, err);
    memset(seed, 0, sizeof(seed));
    if (st != CH_OK)
        return st;
    ch_hex_encode(sig, sizeof(sig), sig_hex);
    char *tcs = malloc(strlen(ctcs) + sizeof(sig_hex) + 2);
    if (tcs == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    sprintf(tcs, "%s.%s", ctcs, sig_hex);
    json_object_set_new(c, "iss", json_string(iss));
    json_object_set_new(c, "issexp", json_integer(cexp));
    if (json_integer_value(json_object_get(c, "exp")) > cexp)
        json_object_set_new(c, "exp", json_integer(cexp));
    json_object_set_new(c, "tcs", json_string(tcs));
    free(tcs);
    return CH_OK;
}

ch_status prov_srvjwt_issue(const prov_srvjwt_signer *s, const char *identity,
                            const char *public_key, const prov_helper_reply *reply, int64_t now,
                            char **jwt, ch_error *err)
{
    *jwt = NULL;
    if (public_key == NULL || public_key[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "no ed25519 public key set");
    const json_t *sc = reply->server_claims;
    json_t *ou = sc != NULL ? json_object_get(sc, "ou") : NULL;
    json_t *perms = sc != NULL ? json_object_get(sc, "permissions") : NULL;
    json_t *pubs = sc != NULL ? json_object_get(sc, "pub_subjects") : NULL;
    char jti[28];
    prov_srvjwt_ksuid(now, jti);
    json_t *c = json_object();
    json_object_set_new(c, "identity", json_string(identity));
    json_object_set_new(c, "collectives", collectives(reply));
    if (json_is_object(perms))
        json_object_set_new(c, "permissions", json_deep_copy(perms));
    json_object_set_new(c, "ou",
                        json_string(json_is_string(ou) ? json_string_value(ou) : "choria"));
    if (json_is_array(pubs) && json_array_size(pubs) > 0)
        json_object_set_new(c, "pub_subjects", json_deep_copy(pubs));
    json_object_set_new(c, "purpose", json_string("choria_server"));
    json_object_set_new(c, "public_key", json_string(public_key));
    json_object_set_new(c, "iss", json_string("Choria Provisioner"));
    json_object_set_new(c, "iat", json_integer(now));
    json_object_set_new(c, "nbf", json_integer(now));
    json_object_set_new(c, "exp", json_integer(now + validity(s, sc, now)));
    json_object_set_new(c, "jti", json_string(jti));
    ch_status st = s->chain != NULL ? add_chain(s, c, jti, err) : CH_OK;
    if (st == CH_OK)
        st = ch_jwt_sign(s->alg, s->key, c, jwt, err);
    json_decref(c);
    return st;
}
