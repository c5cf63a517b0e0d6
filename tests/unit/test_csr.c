/* The CSR policy: a node's CSR must be signed by its own key, name the node, and name nothing
 * on the deny list (CN and DNS SANs); deny patterns are POSIX ERE with Go's slashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "choria/pki.h"
#include "csr.h"

static char *csr_for(const char *cn)
{
    ch_pki_subject s = {.cn = cn};
    ch_pki_csr csr = {0};
    assert_int_equal(ch_pki_csr_generate(&s, 1024, &csr, NULL), CH_OK);
    char *pem = strdup(csr.csr_pem);
    ch_pki_csr_clear(&csr);
    return pem;
}

/* A CSR for cn with a DNS subjectAltName san. */
static char *csr_with_san(const char *cn, const char *san)
{
    EVP_PKEY *k = EVP_RSA_gen(1024);
    X509_REQ *req = X509_REQ_new();
    X509_REQ_set_pubkey(req, k);
    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    char value[256];
    snprintf(value, sizeof(value), "DNS:%s", san);
    sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, value));
    X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_sign(req, k, EVP_sha256());
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_REQ(b, req);
    char *data = NULL;
    long len = BIO_get_mem_data(b, &data);
    char *pem = strndup(data, (size_t)len);
    BIO_free(b);
    X509_REQ_free(req);
    EVP_PKEY_free(k);
    return pem;
}

static prov_csr_deny *default_deny(void)
{
    static char *const PATTERNS[] = {"\\.privileged.mcollective$", "\\.privileged.choria$",
                                     "\\.mcollective$", "\\.choria$"};
    prov_csr_deny *d = NULL;
    assert_int_equal(prov_csr_deny_compile(PATTERNS, 4, &d, NULL), CH_OK);
    return d;
}

static void csr_for_the_identity_passes_and_others_fail(void **state)
{
    (void)state;
    prov_csr_deny *d = default_deny();
    char *pem = csr_for("n1.example.net");
    ch_error err;
    assert_int_equal(prov_csr_check(pem, strlen(pem), "n1.example.net", d, &err), CH_OK);
    assert_int_not_equal(prov_csr_check(pem, strlen(pem), "n2.example.net", d, &err), CH_OK);
    assert_string_equal(err.msg,
                        "common name n1.example.net does not match identity n2.example.net");
    /* tampered signature: flip a byte near the end of the base64 */
    char *bad = strdup(pem);
    char *end = strstr(bad, "-----END");
    end[-5] = end[-5] == 'A' ? 'B' : 'A';
    assert_int_not_equal(prov_csr_check(bad, strlen(bad), "n1.example.net", d, &err), CH_OK);
    free(bad);
    free(pem);
    assert_int_not_equal(prov_csr_check("not a csr", 9, "n1", d, &err), CH_OK);
    assert_string_equal(err.msg, "invalid CSR: not a PEM certificate request");
    assert_int_not_equal(prov_csr_check("", 0, "n1", d, &err), CH_OK);
    assert_string_equal(err.msg, "no CSR received");
    prov_csr_deny_free(d);
}

static void deny_list_checks_the_cn_and_dns_names(void **state)
{
    (void)state;
    prov_csr_deny *d = default_deny();
    ch_error err;
    char *pem = csr_for("x.choria");
    assert_int_not_equal(prov_csr_check(pem, strlen(pem), "x.choria", d, &err), CH_OK);
    assert_string_equal(err.msg, "x.choria matches denied certificate pattern");
    free(pem);
    pem = csr_with_san("n1.example.net", "admin.privileged.choria");
    assert_int_not_equal(prov_csr_check(pem, strlen(pem), "n1.example.net", d, &err), CH_OK);
    assert_string_equal(err.msg, "admin.privileged.choria matches denied certificate pattern");
    free(pem);
    prov_csr_deny_free(d);
}

static void deny_patterns_lose_slashes_and_re2_syntax_is_refused(void **state)
{
    (void)state;
    char *const slashed[] = {"/^bad/"};
    prov_csr_deny *d = NULL;
    ch_error err;
    assert_int_equal(prov_csr_deny_compile(slashed, 1, &d, &err), CH_OK);
    char *pem = csr_for("bad.example.net");
    assert_int_not_equal(prov_csr_check(pem, strlen(pem), "bad.example.net", d, &err), CH_OK);
    free(pem);
    prov_csr_deny_free(d);
    char *const re2[] = {"n\\d+"};
    assert_int_not_equal(prov_csr_deny_compile(re2, 1, &d, &err), CH_OK);
    assert_null(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csr_for_the_identity_passes_and_others_fail),
        cmocka_unit_test(deny_list_checks_the_cn_and_dns_names),
        cmocka_unit_test(deny_patterns_lose_slashes_and_re2_syntax_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
