/* JWTs: verification keys, provisioning JWT verification, signature checks and signing. */
#include "choria/jwt.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "choria/json.h"
#include "choria/pki.h"
#include "choria/util.h"

struct ch_jwt_key {
    EVP_PKEY *pkey;
    bool eddsa; /* ed25519, else RSA */
};

/* ---- keys ---- */

static ch_status ed25519_from_hex(const char *hex, size_t len, const char *where, ch_jwt_key *k,
                                  ch_error *err)
{
    unsigned char raw[CH_PKI_ED25519_PUB_LEN];
    ch_trim(&hex, &len);
    if (ch_pki_hex_decode(hex, len, raw, sizeof(raw), NULL) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "invalid ed25519 public key in %s", where);
    k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, sizeof(raw));
    k->eddsa = true;
    return k->pkey != NULL ? CH_OK : ch_error_set(err, CH_ERR_INVALID, "invalid ed25519 key");
}

/* A PEM certificate or public key: the first block, whatever its label says. */
static ch_status key_from_pem(const char *text, size_t len, const char *path, ch_jwt_key *k,
                              ch_error *err)
{
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long der_len = 0;
    ch_status st = CH_OK;
    if (bio == NULL || PEM_read_bio(bio, &name, &header, &der, &der_len) != 1) {
        st = ch_error_set(err, CH_ERR_INVALID, "%s holds no readable PEM block", path);
        goto out;
    }
    const unsigned char *p = der;
    if (strcmp(name, "CERTIFICATE") == 0) {
        X509 *cert = d2i_X509(NULL, &p, der_len);
        k->pkey = cert != NULL ? X509_get_pubkey(cert) : NULL;
        X509_free(cert);
    } else if (strcmp(name, "PUBLIC KEY") == 0 || strcmp(name, "RSA PUBLIC KEY") == 0) {
        k->pkey = d2i_PUBKEY(NULL, &p, der_len);
        if (k->pkey == NULL) { /* go-choria writes PKCS#1 bytes under "PUBLIC KEY" */
            p = der;
            k->pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, der_len);
        }
    }
    int type = k->pkey != NULL ? EVP_PKEY_get_base_id(k->pkey) : EVP_PKEY_NONE;
    k->eddsa = type == EVP_PKEY_ED25519;
    if (type != EVP_PKEY_RSA && type != EVP_PKEY_ED25519)
        st = ch_error_set(err, CH_ERR_INVALID, "%s does not hold an RSA or ed25519 public key",
                          path);
out:
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(bio);
    return st;
}

ch_status ch_jwt_key_load(const char *value, ch_jwt_key **out, ch_error *err)
{
    *out = NULL;
    if (value == NULL || value[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID,
                            "no JWT verification certificate configured, cannot validate JWT");
    ch_jwt_key *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    struct stat sb;
    ch_status st;
    if (stat(value, &sb) != 0) {
        st = ed25519_from_hex(value, strlen(value), "jwt_verify_cert", k, err);
    } else {
        char *text = NULL;
        size_t len = 0;
        st = ch_read_file(value, CH_JWT_MAX_KEY_FILE, &text, &len, err);
        if (st == CH_OK)
            st = strstr(text, "-----BEGIN") != NULL ? key_from_pem(text, len, value, k, err)
                                                    : ed25519_from_hex(text, len, value, k, err);
        free(text);
    }
    if (st != CH_OK) {
        ch_jwt_key_free(k);
        return st;
    }
    *out = k;
    return CH_OK;
}

void ch_jwt_key_free(ch_jwt_key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

/* ---- the compact form ---- */

ch_status ch_jwt_split(const char *jwt, size_t len, ch_jwt_parts *out, ch_error *err)
{
    memset(out, 0, sizeof(*out));
    if (jwt == NULL)
        len = 0;
    ch_trim(&jwt, &len);
    if (len > CH_PROVJWT_MAX_SIZE)
        return ch_error_set(err, CH_ERR_TOO_LARGE,
                            "token of %zu bytes exceeds the limit of %d bytes", len,
                            CH_PROVJWT_MAX_SIZE);
    if (len > 0 && memchr(jwt, '\0', len) != NULL)
        return ch_error_set(err, CH_ERR_INVALID, "token is malformed: NUL byte in token");
    const char *dot1 = len > 0 ? memchr(jwt, '.', len) : NULL;
    const char *dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - jwt)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - jwt)) != NULL)
        return ch_error_set(err, CH_ERR_INVALID,
                            "token is malformed: token contains an invalid number of segments");
    *out = (ch_jwt_parts){.header = jwt,
                          .header_len = (size_t)(dot1 - jwt),
                          .claims = dot1 + 1,
                          .claims_len = (size_t)(dot2 - dot1 - 1),
                          .signature = dot2 + 1,
                          .signature_len = len - (size_t)(dot2 + 1 - jwt),
                          .signed_len = (size_t)(dot2 - jwt)};
    return CH_OK;
}

ch_status ch_jwt_decode_segment(const char *seg, size_t len, const char *what, json_t **out,
                                ch_error *err)
{
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    ch_error e;
    *out = NULL;
    ch_status st = ch_base64url_decode(seg, len, &raw, &raw_len);
    if (st == CH_ERR_NOMEM)
        return ch_error_set(err, st, "out of memory");
    if (st != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "token is malformed: could not base64 decode %s",
                            what);
    *out = ch_json_parse((const char *)raw, raw_len, CH_PROVJWT_MAX_SIZE, CH_MAX_JSON_DEPTH, &e);
    free(raw);
    if (*out == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "token is malformed: could not JSON decode %s: %s",
                            what, e.msg);
    return CH_OK;
}

/* ---- verification and signing ---- */

/* The digest of an alg, NULL for EdDSA; false for an alg we do not accept. */
static bool alg_digest(const char *alg, const EVP_MD **md, bool *eddsa)
{
    *md = NULL;
    *eddsa = false;
    if (strcmp(alg, "RS256") == 0)
        *md = EVP_sha256();
    else if (strcmp(alg, "RS384") == 0)
        *md = EVP_sha384();
    else if (strcmp(alg, "RS512") == 0)
        *md = EVP_sha512();
    else if (strcmp(alg, "EdDSA") == 0)
        *eddsa = true;
    else
        return false;
    return true;
}

static ch_status verify_signature(const ch_jwt_key *key, const char *alg, const char *signed_part,
                                  size_t signed_len, const char *sig_b64, size_t sig_b64_len,
                                  ch_error *err)
{
    const EVP_MD *md;
    bool eddsa;
    if (!alg_digest(alg, &md, &eddsa))
        return ch_error_set(err, CH_ERR_INVALID,
                            "token is unverifiable: signing method %.16s is invalid", alg);
    if (eddsa != key->eddsa)
        return ch_error_set(err, CH_ERR_INVALID,
                            "token is unverifiable: the key is of invalid type for %.16s", alg);
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    if (ch_base64url_decode(sig_b64, sig_b64_len, &sig, &sig_len) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID,
                            "token is malformed: could not base64 decode signature");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok =
        ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, md, NULL, key->pkey) == 1 &&
        EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)signed_part, signed_len) == 1;
    EVP_MD_CTX_free(ctx);
    free(sig);
    if (!ok)
        return ch_error_set(err, CH_ERR_INVALID, "token signature is invalid: %s",
                            eddsa ? "ed25519: verification error"
                                  : "crypto/rsa: verification error");
    return CH_OK;
}

/* Time claims as golang-jwt v5 without leeway, then the trust chain rule of choria tokens. */
static ch_status check_claims(const ch_provjwt *c, int64_t now, ch_error *err)
{
    if (c->expires_at != 0 && now >= c->expires_at)
        return ch_error_set(err, CH_ERR_EXPIRED, "token has invalid claims: token is expired");
    if (c->not_before != 0 && now < c->not_before)
        return ch_error_set(err, CH_ERR_INVALID,
                            "token has invalid claims: token is not valid yet");
    if (c->tcs != NULL && (c->issuer == NULL || strncmp(c->issuer, "C-", 2) != 0 ||
                           c->issuer_expires_at == 0 || now >= c->issuer_expires_at))
        return ch_error_set(err, CH_ERR_INVALID,
                            "token has a trust chain signature but no valid chain issuer");
    return CH_OK;
}

/* The signature of parts with the alg its header names. */
static ch_status verify_parts(const ch_jwt_key *key, const ch_jwt_parts *parts,
                              const json_t *header, ch_error *err)
{
    const char *alg = json_string_value(json_object_get(header, "alg"));
    if (alg == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "token is malformed: could not decode header");
    return verify_signature(key, alg, parts->header, parts->signed_len, parts->signature,
                            parts->signature_len, err);
}

ch_status ch_jwt_verify_provisioning(const ch_jwt_key *key, const char *jwt, size_t len,
                                     int64_t now, ch_provjwt **claims, json_t **claims_json,
                                     ch_error *err)
{
    ch_jwt_parts parts;
    json_t *header = NULL, *body = NULL;
    ch_provjwt *parsed = NULL;
    if (claims != NULL)
        *claims = NULL;
    if (claims_json != NULL)
        *claims_json = NULL;
    ch_status st = ch_jwt_split(jwt, len, &parts, err);
    if (st == CH_OK)
        st = ch_jwt_decode_segment(parts.header, parts.header_len, "header", &header, err);
    if (st == CH_OK)
        st = verify_parts(key, &parts, header, err);
    if (st == CH_OK)
        st = ch_jwt_decode_segment(parts.claims, parts.claims_len, "claim", &body, err);
    if (st == CH_OK)
        st = ch_provjwt_from_json(header, body, &parsed, err);
    if (st == CH_OK)
        st = check_claims(parsed, now, err);
    json_decref(header);
    if (st == CH_OK && claims != NULL) {
        *claims = parsed;
        parsed = NULL;
    }
    if (st == CH_OK && claims_json != NULL) {
        *claims_json = body;
        body = NULL;
    }
    ch_provjwt_free(parsed);
    json_decref(body);
    return st;
}

ch_status ch_jwt_verify_signature(const ch_jwt_key *key, const char *jwt, size_t len, ch_error *err)
{
    ch_jwt_parts parts;
    json_t *header = NULL;
    ch_status st = ch_jwt_split(jwt, len, &parts, err);
    if (st == CH_OK)
        st = ch_jwt_decode_segment(parts.header, parts.header_len, "header", &header, err);
    if (st == CH_OK)
        st = verify_parts(key, &parts, header, err);
    json_decref(header);
    return st;
}

static EVP_PKEY *signing_key(const char *alg, const char *key, bool eddsa, ch_error *err)
{
    EVP_PKEY *pkey = NULL;
    if (eddsa) {
        unsigned char seed[CH_PKI_ED25519_SEED_LEN];
        if (ch_pki_hex_decode(key, strlen(key), seed, sizeof(seed), NULL) == CH_OK)
            pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
        OPENSSL_cleanse(seed, sizeof(seed));
    } else {
        BIO *bio = BIO_new_mem_buf(key, (int)strlen(key));
        pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (pkey != NULL && EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
    }
    if (pkey == NULL)
        ch_error_set(err, CH_ERR_INVALID, "unsupported or invalid signing key for %.16s", alg);
    return pkey;
}

ch_status ch_jwt_sign(const char *alg, const char *key, const json_t *claims, char **jwt,
                      ch_error *err)
{
    *jwt = NULL;
    const EVP_MD *md;
    bool eddsa;
    if (alg == NULL || !alg_digest(alg, &md, &eddsa))
        return ch_error_set(err, CH_ERR_UNSUPPORTED, "unsupported signing method");
    EVP_PKEY *pkey = signing_key(alg, key, eddsa, err);
    if (pkey == NULL)
        return CH_ERR_INVALID;
    char header[64];
    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    char *payload = ch_json_encode(claims, NULL);
    char *h64 = ch_base64url_encode(header, strlen(header));
    char *p64 = payload != NULL ? ch_base64url_encode(payload, strlen(payload)) : NULL;
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_printf(&b, "%s.%s", h64 != NULL ? h64 : "", p64 != NULL ? p64 : "");
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ch_status st = CH_OK;
    if (h64 == NULL || p64 == NULL || ctx == NULL ||
        EVP_DigestSignInit(ctx, NULL, md, NULL, pkey) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)b.data, b.len) != 1) {
        st = ch_error_set(err, CH_ERR_INTERNAL, "cannot sign the token");
    } else {
        char *s64 = ch_base64url_encode(sig, sig_len);
        ch_buf_printf(&b, ".%s", s64 != NULL ? s64 : "");
        free(s64);
        *jwt = ch_buf_steal(&b, NULL);
    }
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    ch_buf_free(&b);
    free(payload);
    free(h64);
    free(p64);
    return st;
}
