/* The crypto provisioning needs, on OpenSSL 3: an RSA key and CSR as go-choria's gencsr makes
 * them, X25519 key agreement, Ed25519 keys from a 32-byte seed, legacy encrypted PEM blocks
 * (Go's x509.EncryptPEMBlock / DecryptPEMBlock) and strict hex decoding.
 *
 * Raw keys are plain byte arrays so that callers can keep them in fixed-size state without
 * holding OpenSSL objects. Secrets passed in are never logged or copied into error messages. */
#ifndef CHORIA_PKI_H
#define CHORIA_PKI_H

#include "choria/common.h"

#define CH_PKI_X25519_LEN 32
#define CH_PKI_ED25519_SEED_LEN 32
#define CH_PKI_ED25519_PUB_LEN 32
#define CH_PKI_ED25519_SIG_LEN 64

/* ---- hex ---- */

/* Decodes exactly out_len bytes from hex[0..len) (either case, as Go's hex.DecodeString).
 * CH_ERR_INVALID for a wrong length or a non-hex character. */
ch_status ch_pki_hex_decode(const char *hex, size_t len, unsigned char *out, size_t out_len,
                            ch_error *err);

/* ---- RSA key and CSR (go-choria gencsr) ---- */

/* Subject fields; NULL or "" leaves the attribute out. go-choria's order is kept in the DER:
 * C, L, O, OU, CN. Values are PrintableString when Go would choose it, else UTF8String. */
typedef struct {
    const char *cn;
    const char *c;
    const char *l;
    const char *o;
    const char *ou;
} ch_pki_subject;

/* Malloc'd NUL-terminated PEM texts. */
typedef struct {
    char *key_pem;    /* PKCS#1 "RSA PRIVATE KEY" */
    char *csr_pem;    /* "CERTIFICATE REQUEST", SHA256WithRSA */
    char *public_pem; /* go-choria quirk: PKCS#1 RSAPublicKey DER under a "PUBLIC KEY" label */
} ch_pki_csr;

/* Generates an RSA key of bits (2048 for go-choria) and a CSR signed by it. */
ch_status ch_pki_csr_generate(const ch_pki_subject *subject, int bits, ch_pki_csr *out,
                              ch_error *err);

/* Frees the texts (the key is wiped first) and zeroes the struct. NULL is fine. */
void ch_pki_csr_clear(ch_pki_csr *csr);

/* ---- X25519 ---- */

/* A fresh key pair: 32 random private bytes (clamped by the curve operation, as Go) and the
 * matching public key. */
ch_status ch_pki_x25519_keypair(unsigned char priv[CH_PKI_X25519_LEN],
                                unsigned char pub[CH_PKI_X25519_LEN], ch_error *err);

/* secret = X25519(priv, peer). Fails for a low-order peer key (all-zero secret), as Go's
 * curve25519.X25519 does. */
ch_status ch_pki_x25519_derive(const unsigned char priv[CH_PKI_X25519_LEN],
                               const unsigned char peer[CH_PKI_X25519_LEN],
                               unsigned char secret[CH_PKI_X25519_LEN], ch_error *err);

/* ---- Ed25519 ---- */

/* A fresh random seed and its public key. */
ch_status ch_pki_ed25519_keypair(unsigned char seed[CH_PKI_ED25519_SEED_LEN],
                                 unsigned char pub[CH_PKI_ED25519_PUB_LEN], ch_error *err);

/* The public key of a seed. */
ch_status ch_pki_ed25519_public(const unsigned char seed[CH_PKI_ED25519_SEED_LEN],
                                unsigned char pub[CH_PKI_ED25519_PUB_LEN], ch_error *err);

ch_status ch_pki_ed25519_sign(const unsigned char seed[CH_PKI_ED25519_SEED_LEN], const void *msg,
                              size_t len, unsigned char sig[CH_PKI_ED25519_SIG_LEN], ch_error *err);

/* True only for a valid signature of msg by pub. */
bool ch_pki_ed25519_verify(const unsigned char pub[CH_PKI_ED25519_PUB_LEN], const void *msg,
                           size_t len, const unsigned char sig[CH_PKI_ED25519_SIG_LEN]);

/* ---- legacy encrypted PEM (RFC 1421 style, as Go's x509.EncryptPEMBlock) ---- */

/* Largest PEM text the decoder accepts. */
#define CH_PKI_MAX_PEM_SIZE (256 * 1024)

/* PEM-encodes der under label type with no headers. *pem is malloc'd. */
ch_status ch_pki_pem_encode(const char *type, const unsigned char *der, size_t der_len, char **pem,
                            ch_error *err);

/* Encrypts der with AES-256-CBC: random IV, key = EVP_BytesToKey(MD5, salt = IV[0:8], one
 * round) over the raw password bytes (which may contain NUL), PKCS#7 padding; headers
 * "Proc-Type: 4,ENCRYPTED" and "DEK-Info: AES-256-CBC,<IV hex>". *pem is malloc'd. */
ch_status ch_pki_pem_encrypt(const char *type, const unsigned char *der, size_t der_len,
                             const unsigned char *password, size_t password_len, char **pem,
                             ch_error *err);

/* Decrypts the first PEM block of pem[0..len). As Go's x509.IsEncryptedPEMBlock, a block is
 * encrypted when it has a DEK-Info header; its cipher must be AES-128-CBC, AES-192-CBC or
 * AES-256-CBC (Go also knows DES, which is not supported). Messages follow go-choria/Go: "bad
 * key received" (no PEM block), "key is not encrypted", "x509: decryption password incorrect"
 * (bad padding). *der is malloc'd (the caller wipes and frees it). */
ch_status ch_pki_pem_decrypt(const char *pem, size_t len, const unsigned char *password,
                             size_t password_len, unsigned char **der, size_t *der_len,
                             ch_error *err);

/* Wipes len bytes in a way the compiler cannot drop, then frees p. NULL is fine. */
void ch_pki_free_secret(void *p, size_t len);

#endif
