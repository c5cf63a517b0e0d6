/* pki: hex, RSA key + CSR as go-choria's gencsr, X25519, Ed25519, legacy encrypted PEM. Results
 * are checked with OpenSSL's own parsers and encoders, not with our code. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "choria/pki.h"
#include "choria/util.h"

static void hex_decode_accepts_both_cases_and_rejects_bad_input(void **state)
{
    (void)state;
    unsigned char out[4];
    ch_error err = {0};
    assert_int_equal(ch_pki_hex_decode("00fFa5C3", 8, out, 4, &err), CH_OK);
    assert_int_equal(out[0], 0x00);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(out[2], 0xa5);
    assert_int_equal(out[3], 0xc3);
    assert_int_equal(ch_pki_hex_decode("00ff", 4, out, 4, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "expected 8 hex characters"));
    assert_int_equal(ch_pki_hex_decode("00ffa5cg", 8, out, 4, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "offset 7"));
    assert_int_equal(ch_pki_hex_decode(NULL, 0, out, 4, &err), CH_ERR_INVALID);
}

static X509_REQ *read_csr(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return req;
}

static EVP_PKEY *read_key(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return k;
}

static void entry_is(X509_NAME *name, int idx, int nid, int type, const char *value)
{
    X509_NAME_ENTRY *e = X509_NAME_get_entry(name, idx);
    assert_non_null(e);
    assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)), nid);
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(e);
    assert_int_equal(ASN1_STRING_type(s), type);
    assert_int_equal(ASN1_STRING_length(s), (int)strlen(value));
    assert_memory_equal(ASN1_STRING_get0_data(s), value, strlen(value));
}

static void csr_verifies_and_has_go_subject_order_and_pkcs1_keys(void **state)
{
    (void)state;
    ch_pki_subject subj = {
        .cn = "node1.example.net", .c = "GB", .l = "London", .o = "Choria", .ou = "Ops Team"};
    ch_pki_csr csr = {0};
    ch_error err = {0};
    assert_int_equal(ch_pki_csr_generate(&subj, 2048, &csr, &err), CH_OK);

    assert_non_null(strstr(csr.csr_pem, "-----BEGIN CERTIFICATE REQUEST-----\n"));
    assert_int_equal(strncmp(csr.key_pem, "-----BEGIN RSA PRIVATE KEY-----\n", 32), 0);
    assert_int_equal(strncmp(csr.public_pem, "-----BEGIN PUBLIC KEY-----\n", 27), 0);

    X509_REQ *req = read_csr(csr.csr_pem);
    assert_non_null(req);
    EVP_PKEY *key = read_key(csr.key_pem);
    assert_non_null(key);
    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
    assert_int_equal(EVP_PKEY_get_bits(key), 2048);
    assert_int_equal(X509_REQ_verify(req, key), 1);
    assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), key), 1);
    assert_int_equal(X509_REQ_get_signature_nid(req), NID_sha256WithRSAEncryption);
    assert_int_equal(X509_REQ_get_version(req), 0);

    /* Go's ToRDNSequence order and string types: C, L, O, OU, CN as PrintableString. */
    X509_NAME *name = X509_REQ_get_subject_name(req);
    assert_int_equal(X509_NAME_entry_count(name), 5);
    entry_is(name, 0, NID_countryName, V_ASN1_PRINTABLESTRING, "GB");
    entry_is(name, 1, NID_localityName, V_ASN1_PRINTABLESTRING, "London");
    entry_is(name, 2, NID_organizationName, V_ASN1_PRINTABLESTRING, "Choria");
    entry_is(name, 3, NID_organizationalUnitName, V_ASN1_PRINTABLESTRING, "Ops Team");
    entry_is(name, 4, NID_commonName, V_ASN1_PRINTABLESTRING, "node1.example.net");

    /* The go-choria quirk: PKCS#1 RSAPublicKey DER in a "PUBLIC KEY" block, not SPKI. */
    BIO *bio = BIO_new_mem_buf(csr.public_pem, -1);
    char *label = NULL, *hdr = NULL;
    unsigned char *der = NULL;
    long der_len = 0;
    assert_int_equal(PEM_read_bio(bio, &label, &hdr, &der, &der_len), 1);
    assert_string_equal(label, "PUBLIC KEY");
    const unsigned char *p = der;
    EVP_PKEY *pub = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, der_len);
    assert_non_null(pub);
    assert_int_equal(EVP_PKEY_eq(pub, key), 1);
    p = der;
    EVP_PKEY *spki = d2i_PUBKEY(NULL, &p, der_len);
    assert_null(spki);

    EVP_PKEY_free(pub);
    OPENSSL_free(label);
    OPENSSL_free(hdr);
    OPENSSL_free(der);
    BIO_free(bio);
    EVP_PKEY_free(key);
    X509_REQ_free(req);
    ch_pki_csr_clear(&csr);
    assert_null(csr.key_pem);
}

static void csr_with_only_cn_and_go_string_types(void **state)
{
    (void)state;
    ch_pki_subject subj = {.cn = "*.example.net", .c = "", .l = NULL};
    ch_pki_csr csr = {0};
    ch_error err = {0};
    assert_int_equal(ch_pki_csr_generate(&subj, 2048, &csr, &err), CH_OK);
    X509_REQ *req = read_csr(csr.csr_pem);
    assert_non_null(req);
    X509_NAME *name = X509_REQ_get_subject_name(req);
    assert_int_equal(X509_NAME_entry_count(name), 1);
    /* Go does not allow '*' in a PrintableString when marshalling, so it uses UTF8String. */
    entry_is(name, 0, NID_commonName, V_ASN1_UTF8STRING, "*.example.net");
    X509_REQ_free(req);
    ch_pki_csr_clear(&csr);

    subj.cn = "bad\xff";
    assert_int_equal(ch_pki_csr_generate(&subj, 2048, &csr, &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, "asn1: string not valid UTF-8");
    assert_null(csr.csr_pem);
    assert_int_equal(ch_pki_csr_generate(&subj, 100, &csr, &err), CH_ERR_INVALID);
}

static void x25519_both_sides_derive_the_same_secret(void **state)
{
    (void)state;
    unsigned char a_priv[32], a_pub[32], b_priv[32], b_pub[32], s1[32], s2[32];
    ch_error err = {0};
    assert_int_equal(ch_pki_x25519_keypair(a_priv, a_pub, &err), CH_OK);
    assert_int_equal(ch_pki_x25519_keypair(b_priv, b_pub, &err), CH_OK);
    assert_memory_not_equal(a_pub, b_pub, 32);
    assert_int_equal(ch_pki_x25519_derive(a_priv, b_pub, s1, &err), CH_OK);
    assert_int_equal(ch_pki_x25519_derive(b_priv, a_pub, s2, &err), CH_OK);
    assert_memory_equal(s1, s2, 32);

    /* RFC 7748 section 6.1 vector: Alice's key pair. */
    unsigned char priv[32], pub[32], want[32], secret[32], bob[32];
    assert_int_equal(
        ch_pki_hex_decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", 64,
                          priv, 32, &err),
        CH_OK);
    assert_int_equal(
        ch_pki_hex_decode("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", 64,
                          bob, 32, &err),
        CH_OK);
    assert_int_equal(
        ch_pki_hex_decode("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", 64,
                          want, 32, &err),
        CH_OK);
    assert_int_equal(ch_pki_x25519_derive(priv, bob, secret, &err), CH_OK);
    assert_memory_equal(secret, want, 32);
    (void)pub;

    /* A low-order point (all zero) gives an all-zero secret, which is refused as Go does. */
    unsigned char zero[32] = {0};
    assert_int_equal(ch_pki_x25519_derive(a_priv, zero, s1, &err), CH_ERR_INVALID);
}

static void ed25519_matches_rfc8032_and_detects_tampering(void **state)
{
    (void)state;
    ch_error err = {0};
    unsigned char seed[32], pub[32], want_pub[32], sig[64], want_sig[64];
    /* RFC 8032 section 7.1, TEST 1 (empty message). */
    assert_int_equal(
        ch_pki_hex_decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", 64,
                          seed, 32, &err),
        CH_OK);
    assert_int_equal(
        ch_pki_hex_decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", 64,
                          want_pub, 32, &err),
        CH_OK);
    assert_int_equal(
        ch_pki_hex_decode(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a"
            "33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            128, want_sig, 64, &err),
        CH_OK);
    assert_int_equal(ch_pki_ed25519_public(seed, pub, &err), CH_OK);
    assert_memory_equal(pub, want_pub, 32);
    assert_int_equal(ch_pki_ed25519_sign(seed, "", 0, sig, &err), CH_OK);
    assert_memory_equal(sig, want_sig, 64);
    assert_true(ch_pki_ed25519_verify(pub, "", 0, sig));

    /* A fresh key signs a nonce; changing the message or the signature breaks it. */
    const char *nonce = "0123456789abcdef0123456789abcdef";
    assert_int_equal(ch_pki_ed25519_keypair(seed, pub, &err), CH_OK);
    assert_int_equal(ch_pki_ed25519_sign(seed, nonce, strlen(nonce), sig, &err), CH_OK);
    assert_true(ch_pki_ed25519_verify(pub, nonce, strlen(nonce), sig));
    assert_false(ch_pki_ed25519_verify(pub, "0123456789abcdef0123456789abcdeF", 32, sig));
    sig[10] ^= 1;
    assert_false(ch_pki_ed25519_verify(pub, nonce, strlen(nonce), sig));
}

/* A vector made outside this code: python md5 for EVP_BytesToKey + `openssl enc`; password is
 * the bytes 0..31 (it contains NUL), IV 0f0e..00, plaintext "choria legacy pem test vector!". */
static const char vector_pem[] = "-----BEGIN RSA PRIVATE KEY-----\n"
                                 "Proc-Type: 4,ENCRYPTED\n"
                                 "DEK-Info: AES-256-CBC,0f0e0d0c0b0a09080706050403020100\n"
                                 "\n"
                                 "CV5DDMrZZ5RZH52XFTbdY6z2PV8i9ztjw3u/S7NaQZw=\n"
                                 "-----END RSA PRIVATE KEY-----\n";

static void legacy_pem_decrypts_an_independent_vector(void **state)
{
    (void)state;
    unsigned char pw[32], *der = NULL;
    size_t der_len = 0;
    ch_error err = {0};
    for (int i = 0; i < 32; i++)
        pw[i] = (unsigned char)i;
    assert_int_equal(
        ch_pki_pem_decrypt(vector_pem, strlen(vector_pem), pw, 32, &der, &der_len, &err), CH_OK);
    assert_int_equal(der_len, 30);
    assert_memory_equal(der, "choria legacy pem test vector!", 30);
    ch_pki_free_secret(der, der_len);

    /* One bit off in the password: the padding does not check out. */
    pw[0] ^= 1;
    assert_int_equal(
        ch_pki_pem_decrypt(vector_pem, strlen(vector_pem), pw, 32, &der, &der_len, &err),
        CH_ERR_INVALID);
    assert_string_equal(err.msg, "x509: decryption password incorrect");
    assert_null(der);
}

static int binary_password_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    if (size < 32)
        return -1;
    memcpy(buf, u, 32);
    return 32;
}

static void legacy_pem_interoperates_with_openssl_both_ways(void **state)
{
    (void)state;
    unsigned char pw[32];
    ch_error err = {0};
    assert_true(ch_random_bytes(pw, sizeof(pw)));
    pw[5] = 0; /* a NUL inside the binary password must not cut it short */
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(key);
    unsigned char *der = NULL;
    int der_len = i2d_PrivateKey(key, &der);
    assert_in_range(der_len, 1, INT_MAX);

    /* Ours -> OpenSSL's legacy PEM reader. */
    char *pem = NULL;
    assert_int_equal(
        ch_pki_pem_encrypt("RSA PRIVATE KEY", der, (size_t)der_len, pw, 32, &pem, &err), CH_OK);
    assert_non_null(strstr(pem, "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
                                "DEK-Info: AES-256-CBC,"));
    const char *iv = strstr(pem, "AES-256-CBC,") + 12;
    for (int i = 0; i < 32; i++)
        assert_non_null(strchr("0123456789abcdef", iv[i]));
    assert_int_equal(iv[32], '\n');
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *back = PEM_read_bio_PrivateKey(bio, NULL, binary_password_cb, pw);
    assert_non_null(back);
    assert_int_equal(EVP_PKEY_eq(back, key), 1);
    EVP_PKEY_free(back);
    BIO_free(bio);
    free(pem);

    /* OpenSSL's legacy PEM writer -> ours. */
    bio = BIO_new(BIO_s_mem());
    assert_int_equal(
        PEM_write_bio_PrivateKey_traditional(bio, key, EVP_aes_256_cbc(), pw, 32, NULL, NULL), 1);
    char *text = NULL;
    long n = BIO_get_mem_data(bio, &text);
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    assert_int_equal(ch_pki_pem_decrypt(text, (size_t)n, pw, 32, &plain, &plain_len, &err), CH_OK);
    assert_int_equal(plain_len, (size_t)der_len);
    assert_memory_equal(plain, der, plain_len);
    ch_pki_free_secret(plain, plain_len);
    BIO_free(bio);

    OPENSSL_free(der);
    EVP_PKEY_free(key);
}

static void legacy_pem_decrypt_rejects_bad_blocks(void **state)
{
    (void)state;
    unsigned char pw[32] = {0}, *der = NULL;
    size_t der_len = 0;
    ch_error err = {0};
    struct {
        const char *pem;
        const char *msg;
    } cases[] = {
        {"garbage", "bad key received"},
        {"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
         "key is not encrypted"},
        {"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: "
         "DES-EDE3-CBC,0001020304050607\n\nAAAAAAAAAAAAAAAAAAAAAA==\n-----END RSA PRIVATE "
         "KEY-----\n",
         "x509: unknown encryption mode"},
        {"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC\n\n"
         "AAAAAAAAAAAAAAAAAAAAAA==\n-----END RSA PRIVATE KEY-----\n",
         "x509: malformed DEK-Info header"},
        {"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,0001\n\n"
         "AAAAAAAAAAAAAAAAAAAAAA==\n-----END RSA PRIVATE KEY-----\n",
         "x509: incorrect IV size"},
        {"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: "
         "AES-256-CBC,000102030405060708090a0b0c0d0e0f\n\nAAAAAAAA\n-----END RSA PRIVATE "
         "KEY-----\n",
         "x509: encrypted PEM data is not a multiple of the block size"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ch_error_clear(&err);
        assert_int_not_equal(
            ch_pki_pem_decrypt(cases[i].pem, strlen(cases[i].pem), pw, 32, &der, &der_len, &err),
            CH_OK);
        assert_string_equal(err.msg, cases[i].msg);
        assert_null(der);
    }
    char *big = malloc(CH_PKI_MAX_PEM_SIZE + 2);
    memset(big, 'A', CH_PKI_MAX_PEM_SIZE + 1);
    big[CH_PKI_MAX_PEM_SIZE + 1] = '\0';
    assert_int_equal(ch_pki_pem_decrypt(big, CH_PKI_MAX_PEM_SIZE + 1, pw, 32, &der, &der_len, &err),
                     CH_ERR_TOO_LARGE);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hex_decode_accepts_both_cases_and_rejects_bad_input),
        cmocka_unit_test(csr_verifies_and_has_go_subject_order_and_pkcs1_keys),
        cmocka_unit_test(csr_with_only_cn_and_go_string_types),
        cmocka_unit_test(x25519_both_sides_derive_the_same_secret),
        cmocka_unit_test(ed25519_matches_rfc8032_and_detects_tampering),
        cmocka_unit_test(legacy_pem_decrypts_an_independent_vector),
        cmocka_unit_test(legacy_pem_interoperates_with_openssl_both_ways),
        cmocka_unit_test(legacy_pem_decrypt_rejects_bad_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
