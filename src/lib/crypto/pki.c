/* RSA/CSR, X25519, Ed25519 and legacy encrypted PEM on OpenSSL 3 (see pki.h). */
#include "choria/pki.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "choria/util.h"

/* Appends OpenSSL's last queued error (if any) to what, so messages say why. */
static ch_status ossl_fail(ch_error *err, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[160] = "";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return ch_error_set(err, CH_ERR_INTERNAL, "%s%s%s", what, e != 0 ? ": " : "", buf);
}

void ch_pki_free_secret(void *p, size_t len)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ch_status ch_pki_hex_decode(const char *hex, size_t len, unsigned char *out, size_t out_len,
                            ch_error *err)
{
    if (hex == NULL || len != out_len * 2)
        return ch_error_set(err, CH_ERR_INVALID, "expected %zu hex characters, got %zu",
                            out_len * 2, hex == NULL ? (size_t)0 : len);
    for (size_t i = 0; i < out_len; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return ch_error_set(err, CH_ERR_INVALID, "invalid hex character at offset %zu",
                                hi < 0 ? 2 * i : 2 * i + 1);
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return CH_OK;
}

/* ---- BIO helpers ---- */

/* Takes the contents of a memory BIO as a malloc'd NUL-terminated string. */
static char *bio_take(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n < 0)
        return NULL;
    char *out = malloc((size_t)n + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    return out;
}

ch_status ch_pki_pem_encode(const char *type, const unsigned char *der, size_t der_len, char **pem,
                            ch_error *err)
{
    *pem = NULL;
    if (der_len > CH_PKI_MAX_PEM_SIZE)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "PEM data of %zu bytes is too large", der_len);
    ch_status st = CH_OK;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio(bio, type, "", der, (long)der_len) <= 0) {
        st = ossl_fail(err, "could not encode PEM");
        goto out;
    }
    *pem = bio_take(bio);
    if (*pem == NULL)
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
out:
    BIO_free(bio);
    return st;
}

/* ---- RSA key and CSR ---- */

/* Go's encoding/asn1 picks PrintableString when every byte is in this set (no '*', no '&'),
 * else UTF8String. */
static bool go_printable(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char b = (unsigned char)*s;
        bool ok = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
                  (b >= '\'' && b <= ')') || (b >= '+' && b <= '/') || b == ' ' || b == ':' ||
                  b == '=' || b == '?';
        if (!ok)
            return false;
    }
    return true;
}

static bool utf8_valid(const unsigned char *s)
{
    while (*s != '\0') {
        size_t n;
        uint32_t cp;
        if (s[0] < 0x80) {
            s++;
            continue;
        } else if ((s[0] & 0xE0) == 0xC0) {
            n = 2;
            cp = s[0] & 0x1F;
        } else if ((s[0] & 0xF0) == 0xE0) {
            n = 3;
            cp = s[0] & 0x0F;
        } else if ((s[0] & 0xF8) == 0xF0) {
            n = 4;
            cp = s[0] & 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i < n; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        s += n;
    }
    return true;
}

static ch_status add_rdn(X509_NAME *name, int nid, const char *value, ch_error *err)
{
    if (value == NULL || value[0] == '\0')
        return CH_OK;
    if (!utf8_valid((const unsigned char *)value))
        return ch_error_set(err, CH_ERR_INVALID, "asn1: string not valid UTF-8");
    int type = go_printable(value) ? V_ASN1_PRINTABLESTRING : V_ASN1_UTF8STRING;
    if (X509_NAME_add_entry_by_NID(name, nid, type, (const unsigned char *)value,
                                   (int)strlen(value), -1, 0) != 1)
        return ossl_fail(err, "could not build the subject");
    return CH_OK;
}

void ch_pki_csr_clear(ch_pki_csr *csr)
{
    if (csr == NULL)
        return;
    if (csr->key_pem != NULL)
        ch_pki_free_secret(csr->key_pem, strlen(csr->key_pem));
    free(csr->csr_pem);
    free(csr->public_pem);
    memset(csr, 0, sizeof(*csr));
}

ch_status ch_pki_csr_generate(const ch_pki_subject *subject, int bits, ch_pki_csr *out,
                              ch_error *err)
{
    memset(out, 0, sizeof(*out));
    ch_status st = CH_OK;
    EVP_PKEY *pkey = NULL;
    X509_REQ *req = NULL;
    BIO *bio = NULL;
    unsigned char *pub_der = NULL;

    if (bits < 1024 || bits > 8192) {
        st = ch_error_set(err, CH_ERR_INVALID, "unsupported RSA key size %d", bits);
        goto out;
    }
    pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    if (pkey == NULL) {
        st = ossl_fail(err, "could not generate an RSA key");
        goto out;
    }

    req = X509_REQ_new();
    if (req == NULL || X509_REQ_set_version(req, 0) != 1) {
        st = ossl_fail(err, "could not create a CSR");
        goto out;
    }
    X509_NAME *name = X509_REQ_get_subject_name(req);
    /* Go's pkix.Name.ToRDNSequence order. ST is deliberately absent (go-choria ignores it). */
    if ((st = add_rdn(name, NID_countryName, subject->c, err)) != CH_OK ||
        (st = add_rdn(name, NID_localityName, subject->l, err)) != CH_OK ||
        (st = add_rdn(name, NID_organizationName, subject->o, err)) != CH_OK ||
        (st = add_rdn(name, NID_organizationalUnitName, subject->ou, err)) != CH_OK ||
        (st = add_rdn(name, NID_commonName, subject->cn, err)) != CH_OK)
        goto out;
    if (X509_REQ_set_pubkey(req, pkey) != 1 || X509_REQ_sign(req, pkey, EVP_sha256()) <= 0) {
        st = ossl_fail(err, "could not sign the CSR");
        goto out;
    }

    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio_X509_REQ(bio, req) != 1 ||
        (out->csr_pem = bio_take(bio)) == NULL) {
        st = ossl_fail(err, "could not encode the CSR");
        goto out;
    }
    BIO_free(bio);

    /* PKCS#1 "RSA PRIVATE KEY", as Go's x509.MarshalPKCS1PrivateKey. */
    bio = BIO_new(BIO_s_secmem());
    if (bio == NULL ||
        PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        (out->key_pem = bio_take(bio)) == NULL) {
        st = ossl_fail(err, "could not encode the private key");
        goto out;
    }

    /* For an RSA key i2d_PublicKey is the PKCS#1 RSAPublicKey. */
    int n = i2d_PublicKey(pkey, &pub_der);
    if (n <= 0) {
        st = ossl_fail(err, "could not encode the public key");
        goto out;
    }
    st = ch_pki_pem_encode("PUBLIC KEY", pub_der, (size_t)n, &out->public_pem, err);

out:
    if (st != CH_OK)
        ch_pki_csr_clear(out);
    OPENSSL_free(pub_der);
    BIO_free(bio);
    X509_REQ_free(req);
    EVP_PKEY_free(pkey);
    return st;
}

/* ---- X25519 ---- */

ch_status ch_pki_x25519_keypair(unsigned char priv[CH_PKI_X25519_LEN],
                                unsigned char pub[CH_PKI_X25519_LEN], ch_error *err)
{
    if (!ch_random_bytes(priv, CH_PKI_X25519_LEN))
        return ch_error_set(err, CH_ERR_INTERNAL, "no random data for an X25519 key");
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, CH_PKI_X25519_LEN);
    size_t len = CH_PKI_X25519_LEN;
    ch_status st = CH_OK;
    if (k == NULL || EVP_PKEY_get_raw_public_key(k, pub, &len) != 1 || len != CH_PKI_X25519_LEN)
        st = ossl_fail(err, "could not create an X25519 key");
    EVP_PKEY_free(k);
    if (st != CH_OK)
        OPENSSL_cleanse(priv, CH_PKI_X25519_LEN);
    return st;
}

ch_status ch_pki_x25519_derive(const unsigned char priv[CH_PKI_X25519_LEN],
                               const unsigned char peer[CH_PKI_X25519_LEN],
                               unsigned char secret[CH_PKI_X25519_LEN], ch_error *err)
{
    static const unsigned char zeros[CH_PKI_X25519_LEN] = {0};
    ch_status st = CH_OK;
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, CH_PKI_X25519_LEN);
    EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, CH_PKI_X25519_LEN);
    EVP_PKEY_CTX *ctx = k != NULL ? EVP_PKEY_CTX_new(k, NULL) : NULL;
    size_t len = CH_PKI_X25519_LEN;
    if (ctx == NULL || p == NULL || EVP_PKEY_derive_init(ctx) != 1 ||
        EVP_PKEY_derive_set_peer(ctx, p) != 1 || EVP_PKEY_derive(ctx, secret, &len) != 1 ||
        len != CH_PKI_X25519_LEN || CRYPTO_memcmp(secret, zeros, CH_PKI_X25519_LEN) == 0) {
        ERR_clear_error();
        OPENSSL_cleanse(secret, CH_PKI_X25519_LEN);
        st = ch_error_set(err, CH_ERR_INVALID, "bad input point: low order point");
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(p);
    EVP_PKEY_free(k);
    return st;
}

/* ---- Ed25519 ---- */

ch_status ch_pki_ed25519_public(const unsigned char seed[CH_PKI_ED25519_SEED_LEN],
                                unsigned char pub[CH_PKI_ED25519_PUB_LEN], ch_error *err)
{
    EVP_PKEY *k =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, CH_PKI_ED25519_SEED_LEN);
    size_t len = CH_PKI_ED25519_PUB_LEN;
    ch_status st = CH_OK;
    if (k == NULL || EVP_PKEY_get_raw_public_key(k, pub, &len) != 1 ||
        len != CH_PKI_ED25519_PUB_LEN)
        st = ossl_fail(err, "could not create an ed25519 key");
    EVP_PKEY_free(k);
    return st;
}

ch_status ch_pki_ed25519_keypair(unsigned char seed[CH_PKI_ED25519_SEED_LEN],
                                 unsigned char pub[CH_PKI_ED25519_PUB_LEN], ch_error *err)
{
    if (!ch_random_bytes(seed, CH_PKI_ED25519_SEED_LEN))
        return ch_error_set(err, CH_ERR_INTERNAL, "no random data for an ed25519 key");
    ch_status st = ch_pki_ed25519_public(seed, pub, err);
    if (st != CH_OK)
        OPENSSL_cleanse(seed, CH_PKI_ED25519_SEED_LEN);
    return st;
}

ch_status ch_pki_ed25519_sign(const unsigned char seed[CH_PKI_ED25519_SEED_LEN], const void *msg,
                              size_t len, unsigned char sig[CH_PKI_ED25519_SIG_LEN], ch_error *err)
{
    ch_status st = CH_OK;
    EVP_PKEY *k =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, CH_PKI_ED25519_SEED_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t siglen = CH_PKI_ED25519_SIG_LEN;
    /* Ed25519 is one-shot: no digest, no streaming update. */
    if (k == NULL || ctx == NULL || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) != 1 ||
        EVP_DigestSign(ctx, sig, &siglen, msg, len) != 1 || siglen != CH_PKI_ED25519_SIG_LEN)
        st = ossl_fail(err, "could not sign");
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    return st;
}

bool ch_pki_ed25519_verify(const unsigned char pub[CH_PKI_ED25519_PUB_LEN], const void *msg,
                           size_t len, const unsigned char sig[CH_PKI_ED25519_SIG_LEN])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, CH_PKI_ED25519_PUB_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = k != NULL && ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1 &&
              EVP_DigestVerify(ctx, sig, CH_PKI_ED25519_SIG_LEN, msg, len) == 1;
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    return ok;
}

/* ---- legacy encrypted PEM ---- */

static const EVP_CIPHER *cipher_by_name(const char *name, size_t len)
{
    if (len == 11 && memcmp(name, "AES-128-CBC", 11) == 0)
        return EVP_aes_128_cbc();
    if (len == 11 && memcmp(name, "AES-192-CBC", 11) == 0)
        return EVP_aes_192_cbc();
    if (len == 11 && memcmp(name, "AES-256-CBC", 11) == 0)
        return EVP_aes_256_cbc();
    return NULL;
}

/* Go's deriveKey: OpenSSL EVP_BytesToKey with MD5, one round, salt = the first 8 IV bytes. */
static ch_status derive_key(const EVP_CIPHER *c, const unsigned char *iv,
                            const unsigned char *password, size_t password_len,
                            unsigned char key[EVP_MAX_KEY_LENGTH], ch_error *err)
{
    if (password_len > INT32_MAX ||
        EVP_BytesToKey(c, EVP_md5(), iv, password, (int)password_len, 1, key, NULL) <= 0)
        return ossl_fail(err, "could not derive the PEM key");
    return CH_OK;
}

ch_status ch_pki_pem_encrypt(const char *type, const unsigned char *der, size_t der_len,
                             const unsigned char *password, size_t password_len, char **pem,
                             ch_error *err)
{
    *pem = NULL;
    if (der_len > CH_PKI_MAX_PEM_SIZE)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "PEM data of %zu bytes is too large", der_len);
    const EVP_CIPHER *c = EVP_aes_256_cbc();
    unsigned char iv[16], key[EVP_MAX_KEY_LENGTH];
    char iv_hex[33], header[128];
    unsigned char *enc = malloc(der_len + 16);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    BIO *bio = NULL;
    int n1 = 0, n2 = 0;
    ch_status st = CH_OK;

    if (enc == NULL || ctx == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (!ch_random_bytes(iv, sizeof(iv))) {
        st = ch_error_set(err, CH_ERR_INTERNAL, "no random data for the IV");
        goto out;
    }
    if ((st = derive_key(c, iv, password, password_len, key, err)) != CH_OK)
        goto out;
    /* PKCS#7 padding is OpenSSL's default, and what Go adds. */
    if (EVP_EncryptInit_ex(ctx, c, NULL, key, iv) != 1 ||
        EVP_EncryptUpdate(ctx, enc, &n1, der, (int)der_len) != 1 ||
        EVP_EncryptFinal_ex(ctx, enc + n1, &n2) != 1) {
        st = ossl_fail(err, "could not encrypt");
        goto out;
    }
    ch_hex_encode(iv, sizeof(iv), iv_hex);
    snprintf(header, sizeof(header), "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,%s\n", iv_hex);
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio(bio, type, header, enc, (long)n1 + n2) <= 0) {
        st = ossl_fail(err, "could not encode PEM");
        goto out;
    }
    *pem = bio_take(bio);
    if (*pem == NULL)
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
out:
    OPENSSL_cleanse(key, sizeof(key));
    BIO_free(bio);
    EVP_CIPHER_CTX_free(ctx);
    free(enc);
    return st;
}

/* Finds header `name` in the RFC 1421 header block and returns its trimmed value. */
static bool pem_header(const char *headers, const char *name, const char **value, size_t *len)
{
    size_t nlen = strlen(name);
    const char *line = headers;
    while (line != NULL && *line != '\0') {
        const char *end = strchr(line, '\n');
        size_t llen = end != NULL ? (size_t)(end - line) : strlen(line);
        const char *colon = memchr(line, ':', llen);
        if (colon != NULL && (size_t)(colon - line) == nlen && memcmp(line, name, nlen) == 0) {
            const char *v = colon + 1, *ve = line + llen;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
                ve--;
            *value = v;
            *len = (size_t)(ve - v);
            return true;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return false;
}

ch_status ch_pki_pem_decrypt(const char *pem, size_t len, const unsigned char *password,
                             size_t password_len, unsigned char **der, size_t *der_len,
                             ch_error *err)
{
    *der = NULL;
    *der_len = 0;
    if (len > CH_PKI_MAX_PEM_SIZE)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "PEM data of %zu bytes is too large", len);

    char *name = NULL, *headers = NULL;
    unsigned char *data = NULL, *plain = NULL;
    long data_len = 0;
    unsigned char iv[16], key[EVP_MAX_KEY_LENGTH];
    EVP_CIPHER_CTX *ctx = NULL;
    ch_status st = CH_OK;
    const char *dek, *comma;
    size_t dek_len;

    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL || PEM_read_bio(bio, &name, &headers, &data, &data_len) != 1) {
        ERR_clear_error();
        st = ch_error_set(err, CH_ERR_INVALID, "bad key received");
        goto out;
    }
    /* Go's x509.IsEncryptedPEMBlock only looks for DEK-Info. */
    if (!pem_header(headers, "DEK-Info", &dek, &dek_len)) {
        st = ch_error_set(err, CH_ERR_INVALID, "key is not encrypted");
        goto out;
    }
    comma = memchr(dek, ',', dek_len);
    if (comma == NULL) {
        st = ch_error_set(err, CH_ERR_INVALID, "x509: malformed DEK-Info header");
        goto out;
    }
    const EVP_CIPHER *c = cipher_by_name(dek, (size_t)(comma - dek));
    if (c == NULL) {
        st = ch_error_set(err, CH_ERR_UNSUPPORTED, "x509: unknown encryption mode");
        goto out;
    }
    const char *iv_hex = comma + 1;
    size_t iv_hex_len = dek_len - (size_t)(iv_hex - dek);
    if (iv_hex_len != 2 * sizeof(iv) ||
        ch_pki_hex_decode(iv_hex, iv_hex_len, iv, sizeof(iv), NULL) != CH_OK) {
        st = ch_error_set(err, CH_ERR_INVALID, "x509: incorrect IV size");
        goto out;
    }
    if (data_len <= 0 || data_len % 16 != 0) {
        st = ch_error_set(err, CH_ERR_INVALID,
                          "x509: encrypted PEM data is not a multiple of the block size");
        goto out;
    }
    if ((st = derive_key(c, iv, password, password_len, key, err)) != CH_OK)
        goto out;

    plain = malloc((size_t)data_len + 16);
    ctx = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0;
    if (plain == NULL || ctx == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* Padding is checked by hand to match Go's rules and messages. */
    if (EVP_DecryptInit_ex(ctx, c, NULL, key, iv) != 1 || EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
        EVP_DecryptUpdate(ctx, plain, &n1, data, (int)data_len) != 1 ||
        EVP_DecryptFinal_ex(ctx, plain + n1, &n2) != 1) {
        st = ossl_fail(err, "could not decrypt");
        goto out;
    }
    size_t plen = (size_t)n1 + (size_t)n2;
    unsigned last = plen > 0 ? plain[plen - 1] : 0;
    bool pad_ok = plen > 0 && last > 0 && last <= 16 && last <= plen;
    for (size_t i = 0; pad_ok && i < last; i++)
        pad_ok = plain[plen - 1 - i] == last;
    if (!pad_ok) {
        st = ch_error_set(err, CH_ERR_INVALID, "x509: decryption password incorrect");
        goto out;
    }
    *der = plain;
    *der_len = plen - last;
    plain = NULL;
out:
    OPENSSL_cleanse(key, sizeof(key));
    if (plain != NULL)
        ch_pki_free_secret(plain, (size_t)data_len + 16);
    EVP_CIPHER_CTX_free(ctx);
    BIO_free(bio);
    OPENSSL_free(name);
    OPENSSL_free(headers);
    OPENSSL_free(data);
    return st;
}
