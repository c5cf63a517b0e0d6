/* The choria security provider: ed25519 request signatures and caller JWTs checked against
 * Organization Issuers (see include/choria/security_choria.h for the order of the checks). */
#include "choria/security_choria.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "choria/jwt.h"
#include "choria/pki.h"
#include "choria/util.h"

#define KSUID_EPOCH 1400000000LL /* KSUID timestamps count from 2014-05-13 */
#define KSUID_LEN 27

typedef struct {
    char *name;
    ch_jwt_key *key;
    unsigned char raw[CH_PKI_ED25519_PUB_LEN]; /* for chain checks; has_raw when ed25519 */
    bool has_raw;
} issuer;

typedef struct {
    char *token; /* this side's JWT, trimmed */
    json_t *claims;
    unsigned char seed[CH_PKI_ED25519_SEED_LEN];
    bool can_sign;
    issuer *issuers; /* named issuers, then trusted signers (name NULL) */
    size_t n_issuers;
    int64_t (*now)(void);
} choria_ctx;

/* ---- the caller's token ---- */

/* The claims of a JWT that matter here, borrowed from the decoded claims object. */
typedef struct {
    const char *purpose, *ou, *callerid, *public_key, *iss, *tcs, *jti;
    double exp, nbf, iat, issexp; /* 0 when absent */
    bool fleet_management, signed_fleet_management;
} token_claims;

static double number(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static void read_claims(const json_t *c, token_claims *t)
{
    const json_t *perms = json_object_get(c, "permissions");
    *t = (token_claims){
        .purpose = json_string_value(json_object_get(c, "purpose")),
        .ou = json_string_value(json_object_get(c, "ou")),
        .callerid = json_string_value(json_object_get(c, "callerid")),
        .public_key = json_string_value(json_object_get(c, "public_key")),
        .iss = json_string_value(json_object_get(c, "iss")),
        .tcs = json_string_value(json_object_get(c, "tcs")),
        .jti = json_string_value(json_object_get(c, "jti")),
        .exp = number(c, "exp"),
        .nbf = number(c, "nbf"),
        .iat = number(c, "iat"),
        .issexp = number(c, "issexp"),
        .fleet_management = json_is_true(json_object_get(perms, "fleet_management")),
        .signed_fleet_management = json_is_true(json_object_get(perms, "signed_fleet_management")),
    };
}

/* The claims object of a JWT, without verification. */
static ch_status token_claims_json(const char *jwt, json_t **out, ch_error *err)
{
    ch_jwt_parts parts;
    ch_status st = ch_jwt_split(jwt, strlen(jwt), &parts, err);
    if (st == CH_OK)
        st = ch_jwt_decode_segment(parts.claims, parts.claims_len, "claim", out, err);
    if (st == CH_OK && !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        st = ch_error_set(err, CH_ERR_INVALID, "token is malformed: claims are not an object");
    }
    return st;
}

/* Seconds since the epoch of a KSUID: 4 big-endian bytes of base62 text, from 2014-05-13. */
static bool ksuid_time(const char *id, int64_t *t)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    unsigned char n[20] = {0};
    if (id == NULL || strlen(id) != KSUID_LEN)
        return false;
    for (size_t i = 0; i < KSUID_LEN; i++) {
        const char *d = memchr(alphabet, id[i], 62);
        if (d == NULL || id[i] == '\0')
            return false;
        unsigned carry = (unsigned)(d - alphabet);
        for (int j = 19; j >= 0; j--) { /* n = n * 62 + digit */
            carry += n[j] * 62u;
            n[j] = carry & 0xff;
            carry >>= 8;
        }
        if (carry != 0)
            return false; /* more than 160 bits */
    }
    *t = KSUID_EPOCH + ((int64_t)n[0] << 24 | n[1] << 16 | n[2] << 8 | n[3]);
    return true;
}

/* choria-io/tokens IsSignedByIssuer for a "C-<issuer id>.<issuer key>" token: the org issuer
 * (org) signed "<issuer id>.<issuer key>" (the first half of tcs), and the chain issuer signed
 * "<jti>.<that first half>" (the second half). *signer gets the chain issuer's key. */
static ch_status check_chain(const token_claims *t, const issuer *org, int64_t now,
                             unsigned char signer[CH_PKI_ED25519_PUB_LEN], ch_error *err)
{
    const char *fail = NULL;
    int64_t ksuid_at = 0;
    if (!org->has_raw)
        fail = "the issuer's key is not an ed25519 key";
    else if (t->tcs == NULL || t->jti == NULL || t->public_key == NULL || t->iat == 0 ||
             t->exp == 0)
        fail = "the token lacks tcs, jti, public_key, iat or exp";
    else if (!ksuid_time(t->jti, &ksuid_at) || ksuid_at != (int64_t)t->iat)
        fail = "id is not based on issued time";
    else if (t->issexp == 0 || (double)now > t->issexp)
        fail = "the chain issuer has expired";
    if (fail != NULL)
        return ch_error_set(err, CH_ERR_INVALID, "caller JWT chain: %s", fail);

    const char *id = t->iss + 2, *dot = strchr(id, '.'), *tdot = strchr(t->tcs, '.');
    unsigned char org_sig[CH_PKI_ED25519_SIG_LEN], own_sig[CH_PKI_ED25519_SIG_LEN];
    if (dot == NULL || dot == id || strchr(dot + 1, '.') != NULL || tdot == NULL ||
        strchr(tdot + 1, '.') != NULL ||
        ch_pki_hex_decode(dot + 1, strlen(dot + 1), signer, CH_PKI_ED25519_PUB_LEN, NULL) ||
        ch_pki_hex_decode(t->tcs, (size_t)(tdot - t->tcs), org_sig, sizeof(org_sig), NULL) ||
        ch_pki_hex_decode(tdot + 1, strlen(tdot + 1), own_sig, sizeof(own_sig), NULL))
        return ch_error_set(err, CH_ERR_INVALID, "caller JWT chain: invalid issuer or tcs");
    char *org_data = NULL, *own_data = NULL;
    char key_hex[2 * CH_PKI_ED25519_PUB_LEN + 1];
    ch_hex_encode(signer, CH_PKI_ED25519_PUB_LEN, key_hex);
    bool ok = asprintf(&org_data, "%.*s.%s", (int)(dot - id), id, key_hex) > 0 &&
              asprintf(&own_data, "%s.%.*s", t->jti, (int)(tdot - t->tcs), t->tcs) > 0;
    if (ok && !ch_pki_ed25519_verify(org->raw, org_data, strlen(org_data), org_sig))
        fail = "chain issuer credentials not signed by org issuer";
    else if (ok && !ch_pki_ed25519_verify(signer, own_data, strlen(own_data), own_sig))
        fail = "invalid chain signature";
    free(org_data);
    free(own_data);
    if (!ok)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    return fail ? ch_error_set(err, CH_ERR_INVALID, "caller JWT chain: %s", fail) : CH_OK;
}

/* The JWT's signature with issuer i (through its chain for a C- token), then exp and nbf as
 * golang-jwt v5 checks them. */
static ch_status check_token_with(const choria_ctx *c, const issuer *i, const char *jwt,
                                  const token_claims *t, ch_error *err)
{
    int64_t now = c->now();
    ch_status st;
    if (t->iss != NULL && strncmp(t->iss, "C-", 2) == 0) {
        unsigned char signer[CH_PKI_ED25519_PUB_LEN];
        char hex[2 * CH_PKI_ED25519_PUB_LEN + 1];
        ch_jwt_key *k = NULL;
        if ((st = check_chain(t, i, now, signer, err)) != CH_OK)
            return st;
        ch_hex_encode(signer, sizeof(signer), hex);
        if ((st = ch_jwt_key_load(hex, &k, err)) != CH_OK)
            return st;
        st = ch_jwt_verify_signature(k, jwt, strlen(jwt), err);
        ch_jwt_key_free(k);
    } else {
        st = ch_jwt_verify_signature(i->key, jwt, strlen(jwt), err);
    }
    if (st != CH_OK)
        return st;
    if (t->exp != 0 && (double)now > t->exp)
        return ch_error_set(err, CH_ERR_EXPIRED, "caller JWT has expired");
    if (t->nbf != 0 && (double)now < t->nbf)
        return ch_error_set(err, CH_ERR_INVALID, "caller JWT is not valid yet");
    return CH_OK;
}

/* Step 2: the issuer named by ou, or any trusted signer, must have made the token. */
static ch_status check_issuer(const choria_ctx *c, const char *jwt, const token_claims *t,
                              ch_error *err)
{
    ch_error last = {0};
    bool any_signer = false;
    for (size_t i = 0; i < c->n_issuers; i++) {
        const issuer *is = &c->issuers[i];
        if (is->name != NULL) {
            if (t->ou != NULL && strcmp(is->name, t->ou) == 0)
                return check_token_with(c, is, jwt, t, err);
            continue;
        }
        any_signer = true;
        if (check_token_with(c, is, jwt, t, &last) == CH_OK)
            return CH_OK;
    }
    if (any_signer)
        return ch_error_set(err, CH_ERR_INVALID, "caller JWT is not signed by a trusted signer: %s",
                            last.msg);
    if (t->ou == NULL || t->ou[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "caller JWT has no ou claim naming its issuer");
    return ch_error_set(err, CH_ERR_INVALID, "no issuer is configured for the organization %.64s",
                        t->ou);
}

static ch_status choria_verify(const ch_security *sec, const char *message, size_t len,
                               const char *signature, const char *jwt, const char *callerid,
                               ch_error *err)
{
    const choria_ctx *c = sec->ctx;
    json_t *claims = NULL;
    token_claims t;
    unsigned char pub[CH_PKI_ED25519_PUB_LEN], *sig = NULL;
    size_t sig_len = 0;
    ch_status st = token_claims_json(jwt, &claims, err);
    if (st != CH_OK)
        return st;
    read_claims(claims, &t);
    if (t.purpose == NULL || strcmp(t.purpose, "choria_client_id") != 0)
        st = ch_error_set(err, CH_ERR_INVALID,
                          "caller JWT is not a client token (purpose %.32s): only clients make "
                          "requests",
                          t.purpose != NULL ? t.purpose : "missing");
    else if ((st = check_issuer(c, jwt, &t, err)) != CH_OK)
        ;
    else if (t.signed_fleet_management)
        st = ch_error_set(err, CH_ERR_INVALID,
                          "caller JWT requires authority delegation (signed_fleet_management)");
    else if (!t.fleet_management)
        st = ch_error_set(err, CH_ERR_INVALID, "caller JWT does not allow fleet management");
    else if (t.public_key == NULL ||
             ch_pki_hex_decode(t.public_key, strlen(t.public_key), pub, sizeof(pub), NULL) != CH_OK)
        st = ch_error_set(err, CH_ERR_INVALID, "caller JWT has no valid public_key");
    else if (ch_base64_decode(signature, strlen(signature), &sig, &sig_len) != CH_OK ||
             sig_len != CH_PKI_ED25519_SIG_LEN || !ch_pki_ed25519_verify(pub, message, len, sig))
        st = ch_error_set(err, CH_ERR_INVALID,
                          "request signature does not verify with the caller's public key");
    else if (t.callerid == NULL || callerid == NULL || strcmp(t.callerid, callerid) != 0)
        st = ch_error_set(err, CH_ERR_INVALID,
                          "caller %.128s does not match the JWT's callerid %.128s",
                          callerid ? callerid : "", t.callerid ? t.callerid : "(none)");
    free(sig);
    json_decref(claims);
    return st;
}

static ch_status choria_sign(const ch_security *sec, const char *message, size_t len,
                             char **signature, char **pubcert, ch_error *err)
{
    const choria_ctx *c = sec->ctx;
    unsigned char sig[CH_PKI_ED25519_SIG_LEN];
    *signature = *pubcert = NULL;
    if (!c->can_sign)
        return ch_error_set(err, CH_ERR_INVALID,
                            "choria security: no token and seed to sign with "
                            "(plugin.security.choria.token_file, .seed_file)");
    ch_status st = ch_pki_ed25519_sign(c->seed, message, len, sig, err);
    if (st != CH_OK)
        return st;
    *signature = ch_base64_encode(sig, sizeof(sig));
    *pubcert = strdup(c->token);
    if (*signature == NULL || *pubcert == NULL) {
        free(*signature);
        free(*pubcert);
        *signature = *pubcert = NULL;
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
    return CH_OK;
}

static const char *choria_callerid(const ch_security *sec)
{
    return ch_security_choria_claim(sec, "callerid");
}

static void choria_destroy(ch_security *sec)
{
    choria_ctx *c = sec->ctx;
    if (c != NULL) {
        for (size_t i = 0; i < c->n_issuers; i++) {
            free(c->issuers[i].name);
            ch_jwt_key_free(c->issuers[i].key);
        }
        free(c->issuers);
        free(c->token);
        json_decref(c->claims);
        OPENSSL_cleanse(c->seed, sizeof(c->seed));
        free(c);
    }
    free(sec);
}

static const ch_security_ops choria_ops = {
    .name = CH_SECURITY_CHORIA_NAME,
    .tech = CH_SECURITY_TECH_ED25519,
    .sign = choria_sign,
    .verify = choria_verify,
    .destroy = choria_destroy,
    .callerid = choria_callerid,
};

/* ---- loading ---- */

static ch_status load_signing(choria_ctx *c, const ch_security_choria_opts *o, ch_error *err)
{
    char *text = NULL;
    size_t len = 0;
    if (o->token_file == NULL || o->token_file[0] == '\0' || o->seed_file == NULL ||
        o->seed_file[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID,
                            "choria security: plugin.security.choria.token_file and .seed_file "
                            "must both be set");
    ch_status st = ch_read_file(o->token_file, CH_SECURITY_CHORIA_MAX_TOKEN, &text, &len, err);
    if (st != CH_OK)
        return st;
    const char *p = text;
    ch_trim(&p, &len);
    c->token = strndup(p, len);
    free(text);
    if (c->token == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    if (token_claims_json(c->token, &c->claims, err) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "choria security: %s does not hold a JWT",
                            o->token_file);
    if ((st = ch_read_file(o->seed_file, 4096, &text, &len, err)) != CH_OK)
        return st;
    p = text;
    ch_trim(&p, &len);
    st = ch_pki_hex_decode(p, len, c->seed, sizeof(c->seed), NULL);
    OPENSSL_cleanse(text, len);
    free(text);
    if (st != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID,
                            "choria security: %s does not hold a 64 character hex ed25519 seed",
                            o->seed_file);
    c->can_sign = true;
    return CH_OK;
}

static ch_status add_issuer(choria_ctx *c, const char *name, const char *key, ch_error *err)
{
    issuer *is = &c->issuers[c->n_issuers];
    ch_error e;
    if (ch_jwt_key_load(key, &is->key, &e) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "choria security: the key of %s %.64s: %s",
                            name ? "issuer" : "trusted signer", name ? name : key, e.msg);
    is->has_raw = ch_pki_hex_decode(key, strlen(key), is->raw, sizeof(is->raw), NULL) == CH_OK;
    if (name != NULL && (is->name = strdup(name)) == NULL) {
        ch_jwt_key_free(is->key);
        is->key = NULL;
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
    c->n_issuers++;
    return CH_OK;
}

static ch_status load_issuers(choria_ctx *c, const ch_security_choria_opts *o, ch_error *err)
{
    ch_status st = CH_OK;
    if (o->n_issuers == 0 && o->n_trusted == 0)
        return ch_error_set(err, CH_ERR_INVALID,
                            "choria security: verifying needs plugin.security.issuer.names (with "
                            "their .public keys) or plugin.security.choria.trusted_signers");
    if (o->n_issuers > 0 && o->n_trusted > 0)
        return ch_error_set(err, CH_ERR_INVALID,
                            "choria security: configure issuers or trusted signers, not both");
    c->issuers = calloc(o->n_issuers + o->n_trusted, sizeof(*c->issuers));
    if (c->issuers == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == CH_OK && i < o->n_issuers; i++)
        st = add_issuer(c, o->issuer_names[i], o->issuer_keys[i], err);
    for (size_t i = 0; st == CH_OK && i < o->n_trusted; i++)
        st = add_issuer(c, NULL, o->trusted_signers[i], err);
    return st;
}

ch_status ch_security_choria_new(const ch_security_choria_opts *o, ch_security **out, ch_error *err)
{
    *out = NULL;
    if (o == NULL || (!o->sign && !o->verify))
        return ch_error_set(err, CH_ERR_INVALID,
                            "choria security: nothing to do (neither sign nor verify)");
    ch_security *sec = calloc(1, sizeof(*sec));
    choria_ctx *c = calloc(1, sizeof(*c));
    if (sec == NULL || c == NULL) {
        free(sec);
        free(c);
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
    *sec = (ch_security){.ops = &choria_ops, .ctx = c, .sign_replies = o->sign_replies};
    c->now = o->now != NULL ? o->now : ch_now_unix;
    ch_status st = CH_OK;
    if (o->sign)
        st = load_signing(c, o, err);
    if (st == CH_OK && o->verify)
        st = load_issuers(c, o, err);
    if (st != CH_OK) {
        choria_destroy(sec);
        return st;
    }
    sec->sign_replies = o->sign_replies && c->can_sign;
    *out = sec;
    return CH_OK;
}

ch_status ch_security_choria_from_config(const ch_config_security *s, bool verify,
                                         ch_security **out, ch_error *err)
{
    bool has_signing = s->token_file != NULL || s->seed_file != NULL;
    ch_security_choria_opts o = {
        .token_file = s->token_file,
        .seed_file = s->seed_file,
        .issuer_names = (const char *const *)s->issuer_names.items,
        .issuer_keys = (const char *const *)s->issuer_keys.items,
        .n_issuers = s->issuer_names.count,
        .trusted_signers = (const char *const *)s->trusted_signers.items,
        .n_trusted = s->trusted_signers.count,
        .sign = !verify || has_signing,
        .verify = verify,
        .sign_replies = s->sign_replies,
    };
    return ch_security_choria_new(&o, out, err);
}

const char *ch_security_choria_token(const ch_security *sec)
{
    if (sec == NULL || sec->ops != &choria_ops)
        return NULL;
    return ((const choria_ctx *)sec->ctx)->token;
}

const char *ch_security_choria_claim(const ch_security *sec, const char *claim)
{
    if (sec == NULL || sec->ops != &choria_ops)
        return NULL;
    return json_string_value(json_object_get(((const choria_ctx *)sec->ctx)->claims, claim));
}

ch_status ch_security_choria_sign_nonce(const ch_security *sec, const char *nonce,
                                        unsigned char sig[64], ch_error *err)
{
    if (sec == NULL || sec->ops != &choria_ops || !((const choria_ctx *)sec->ctx)->can_sign)
        return ch_error_set(err, CH_ERR_INVALID, "no choria token and seed to sign a nonce with");
    nonce = nonce != NULL ? nonce : "";
    return ch_pki_ed25519_sign(((const choria_ctx *)sec->ctx)->seed, nonce, strlen(nonce), sig,
                               err);
}
