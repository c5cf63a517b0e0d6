/* The CSR policy: a node's certificate request must be its own and name only what may be
 * signed (upstream host/csr.go validateCSR, plus the CSR's own signature). */
#include "csr.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "choria/goregex.h"
#include "choria/pki.h"

struct prov_csr_deny {
    regex_t *res;
    char **patterns;
    size_t n;
};

void prov_csr_deny_free(prov_csr_deny *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++) {
        regfree(&d->res[i]);
        free(d->patterns[i]);
    }
    free(d->res);
    free(d->patterns);
    free(d);
}

ch_status prov_csr_deny_compile(char *const *patterns, size_t n, prov_csr_deny **out, ch_error *err)
{
    *out = NULL;
    prov_csr_deny *d = calloc(1, sizeof(*d));
    if (d == NULL || (n > 0 && ((d->res = calloc(n, sizeof(*d->res))) == NULL ||
                                (d->patterns = calloc(n, sizeof(char *))) == NULL))) {
        prov_csr_deny_free(d);
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const char *p = patterns[i];
        size_t len = strlen(p);
        if (len > PROV_CSR_MAX_DENY_PATTERN) {
            prov_csr_deny_free(d);
            return ch_error_set(err, CH_ERR_TOO_LARGE, "pattern %zu is too long", i + 1);
        }
        if (len >= 2 && p[0] == '/' && p[len - 1] == '/')
            p++, len -= 2;
        ch_error e;
        if (ch_goregex_compile(p, len, &d->res[d->n], &e) != CH_OK) {
            prov_csr_deny_free(d);
            return ch_error_set(err, CH_ERR_INVALID, "invalid pattern %.200s: %s", patterns[i],
                                e.msg);
        }
        if ((d->patterns[d->n++] = strndup(p, len)) == NULL) {
            prov_csr_deny_free(d);
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        }
    }
    *out = d;
    return CH_OK;
}

static ch_status check_denied(const prov_csr_deny *deny, const char *name, ch_error *err)
{
    for (size_t i = 0; deny != NULL && i < deny->n; i++)
        if (ch_goregex_match(&deny->res[i], name))
            return ch_error_set(err, CH_ERR_INVALID, "%.253s matches denied certificate pattern",
                                name);
    return CH_OK;
}

/* The subject CN as UTF-8 into out; false when there is none or it does not fit. */
static bool csr_common_name(X509_REQ *req, char *out, size_t size)
{
    X509_NAME *subject = X509_REQ_get_subject_name(req);
    int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    X509_NAME_ENTRY *e = idx >= 0 ? X509_NAME_get_entry(subject, idx) : NULL;
    unsigned char *utf8 = NULL;
    int n = e != NULL ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) : -1;
    bool ok = n >= 0 && (size_t)n < size && memchr(utf8, '\0', (size_t)n) == NULL;
    if (ok) {
        memcpy(out, utf8, (size_t)n);
        out[n] = '\0';
    }
    OPENSSL_free(utf8);
    return ok;
}

/* Every DNS name of the subjectAltName extension against the deny list. */
static ch_status check_sans(X509_REQ *req, const prov_csr_deny *deny, ch_error *err)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    GENERAL_NAMES *names =
        exts != NULL ? X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL) : NULL;
    ch_status st = CH_OK;
    for (int i = 0; st == CH_OK && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_DNS)
            continue;
        const unsigned char *data = ASN1_STRING_get0_data(gn->d.dNSName);
        int len = ASN1_STRING_length(gn->d.dNSName);
        char name[CH_MAX_IDENTITY_LEN + 1];
        if (len < 0 || (size_t)len > CH_MAX_IDENTITY_LEN || memchr(data, '\0', (size_t)len))
            st = ch_error_set(err, CH_ERR_INVALID, "invalid DNS name in the CSR");
        else {
            memcpy(name, data, (size_t)len);
            name[len] = '\0';
            st = check_denied(deny, name, err);
        }
    }
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return st;
}

ch_status prov_csr_check(const char *pem, size_t len, const char *identity,
                         const prov_csr_deny *deny, ch_error *err)
{
    if (pem == NULL || len == 0)
        return ch_error_set(err, CH_ERR_INVALID, "no CSR received");
    if (len > CH_PKI_MAX_PEM_SIZE)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "CSR is larger than %d bytes",
                            CH_PKI_MAX_PEM_SIZE);
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509_REQ *req = bio != NULL ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (req == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "invalid CSR: not a PEM certificate request");
    ch_status st = CH_OK;
    char cn[CH_MAX_IDENTITY_LEN + 1];
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    if (pub == NULL || X509_REQ_verify(req, pub) != 1)
        st = ch_error_set(err, CH_ERR_INVALID, "CSR signature does not verify");
    else if (!csr_common_name(req, cn, sizeof(cn)))
        st = ch_error_set(err, CH_ERR_INVALID, "common name  does not match identity %s", identity);
    else if (strcmp(cn, identity) != 0)
        st = ch_error_set(err, CH_ERR_INVALID, "common name %s does not match identity %s", cn,
                          identity);
    else if ((st = check_denied(deny, cn, err)) == CH_OK)
        st = check_sans(req, deny, err);
    X509_REQ_free(req);
    return st;
}
