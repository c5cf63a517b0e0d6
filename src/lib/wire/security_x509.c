/* The x509 security provider: RSA PKCS#1 v1.5 SHA-256 signatures with certificate chains, as
 * go-choria's file provider (providers/security/filesec/file_security.go). See
 * security_x509.h for the contract and the deliberate differences from upstream. */
#include "choria/security_x509.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "choria/goregex.h"
#include "choria/log.h"
#include "choria/pki.h"
#include "choria/util.h"

/* Compiled patterns; ok[i] is false for one that did not compile (it never matches). */
typedef struct {
    regex_t *re;
    bool *ok;
    size_t n;
} pattern_list;

typedef struct {
    EVP_PKEY *key;     /* signing key, NULL without sign */
    char *pubcert;     /* the certificate file's bytes, NULL without sign */
    X509_STORE *roots; /* the CA file, NULL without verify */
    pattern_list allowed;
    pattern_list privileged;
    int64_t (*now)(void);
} x509_ctx;

/* What one verification has decoded so far; released by check_clear. */
typedef struct {
    char *certname;
    STACK_OF(X509) * chain; /* every certificate of pubcert, leaf first */
    unsigned char *sig;
    size_t sig_len;
} request_check;

static const char SIG_FAILED[] =
    "signature in request did not pass validation with embedded public certificate";

/* ---- PEM certificate lists ---- */

/* True when PEM_read_bio stopped because no further block exists, not on a broken block. */
static bool pem_at_end(void)
{
    unsigned long e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

/* One decoded CERTIFICATE block; as Go's x509.ParseCertificate, trailing bytes are refused. */
static X509 *decode_cert(const unsigned char *der, long len)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, len);
    if (x != NULL && p != der + len) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Adds one PEM block to certs: see read_certs. */
static ch_status take_block(const char *name, const unsigned char *der, long der_len, size_t block,
                            size_t max, bool skip_others, STACK_OF(X509) * certs, ch_error *err)
{
    if (strcmp(name, PEM_STRING_X509) != 0)
        return skip_others
                   ? CH_OK
                   : ch_error_set(err, CH_ERR_INVALID, "PEM block %zu is not a certificate", block);
    X509 *x = decode_cert(der, der_len);
    if (x == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "PEM block %zu is not a valid certificate", block);
    if ((size_t)sk_X509_num(certs) >= max) {
        X509_free(x);
        return ch_error_set(err, CH_ERR_TOO_LARGE, "more than %zu certificates", max);
    }
    if (!sk_X509_push(certs, x)) {
        X509_free(x);
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
    return CH_OK;
}

/* Reads every PEM block of text[0..len) into *out (malloc'd stack, leaf first). Blocks of other
 * types are skipped when skip_others (a CA file, as Go's AppendCertsFromPEM) and refused
 * otherwise (pubcert). A CERTIFICATE block that does not decode is always refused. Zero
 * certificates is not an error here: callers word that case themselves. */
static ch_status read_certs(const char *text, size_t len, size_t max, bool skip_others,
                            STACK_OF(X509) * *out, ch_error *err)
{
    ch_status st = CH_OK;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    *out = sk_X509_new_null();
    if (bio == NULL || *out == NULL)
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    for (size_t block = 1; st == CH_OK; block++) {
        char *name = NULL, *header = NULL;
        unsigned char *der = NULL;
        long der_len = 0;
        if (PEM_read_bio(bio, &name, &header, &der, &der_len) != 1) {
            if (!pem_at_end())
                st = ch_error_set(err, CH_ERR_INVALID, "PEM block %zu is malformed", block);
            break;
        }
        st = take_block(name, der, der_len, block, max, skip_others, *out, err);
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
    }
    BIO_free(bio);
    ERR_clear_error();
    if (st != CH_OK) {
        sk_X509_pop_free(*out, X509_free);
        *out = NULL;
    }
    return st;
}

/* ---- certificate names ---- */

/* The subject CN as Go's pkix.Name.CommonName: the last CN attribute, as UTF-8. malloc'd;
 * NULL when there is none or it holds a NUL byte (it could never equal a certname). */
static char *leaf_cn(X509 *leaf)
{
    X509_NAME *subject = X509_get_subject_name(leaf);
    int idx = -1, next;
    while ((next = X509_NAME_get_index_by_NID(subject, NID_commonName, idx)) >= 0)
        idx = next;
    X509_NAME_ENTRY *e = idx >= 0 ? X509_NAME_get_entry(subject, idx) : NULL;
    unsigned char *utf8 = NULL;
    int n = e != NULL ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) : -1;
    char *cn =
        n >= 0 && memchr(utf8, '\0', (size_t)n) == NULL ? strndup((char *)utf8, (size_t)n) : NULL;
    OPENSSL_free(utf8);
    return cn;
}

typedef bool (*name_fn)(const char *name, const void *arg);

/* Calls fn with the CN and each DNS SAN of leaf (go-choria's certDNSNames) until it returns
 * true. Names holding a NUL byte are skipped. */
static bool any_name(X509 *leaf, name_fn fn, const void *arg)
{
    char *cn = leaf_cn(leaf);
    bool found = cn != NULL && fn(cn, arg);
    free(cn);
    GENERAL_NAMES *sans = found ? NULL : X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans != NULL && !found && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_DNS)
            continue;
        const unsigned char *data = ASN1_STRING_get0_data(g->d.dNSName);
        int len = ASN1_STRING_length(g->d.dNSName);
        if (memchr(data, '\0', (size_t)len) != NULL)
            continue;
        char *name = strndup((const char *)data, (size_t)len);
        found = name != NULL && fn(name, arg);
        free(name);
    }
    GENERAL_NAMES_free(sans);
    return found;
}

/* ---- patterns ---- */

static bool patterns_match(const pattern_list *l, const char *subject)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->ok[i] && ch_goregex_match(&l->re[i], subject))
            return true;
    return false;
}

static bool name_privileged(const char *name, const void *arg)
{
    return patterns_match(arg, name);
}

/* filesec/util.go MatchAnyRegex: a pattern matching ^/.+/$ loses every leading and trailing
 * slash (strings.TrimLeft/TrimRight), so "///" becomes the empty pattern, which matches all. */
static void strip_slashes(const char **p, size_t *len)
{
    const char *s = *p;
    size_t n = *len;
    if (n < 3 || s[0] != '/' || s[n - 1] != '/' || memchr(s + 1, '\n', n - 2) != NULL)
        return;
    while (n > 0 && *s == '/')
        s++, n--;
    while (n > 0 && s[n - 1] == '/')
        n--;
    *p = s;
    *len = n;
}

static void patterns_clear(pattern_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->ok[i])
            regfree(&l->re[i]);
    free(l->re);
    free(l->ok);
    memset(l, 0, sizeof(*l));
}

/* Go's regexp.Match error is ignored upstream: an invalid pattern never matches. We keep that
 * and log it once here, so a typo in the configuration is visible. */
static ch_status patterns_compile(pattern_list *l, const char *const *pats, size_t n,
                                  const char *key, ch_error *err)
{
    if (n > 0 && ((l->re = calloc(n, sizeof(*l->re))) == NULL ||
                  (l->ok = calloc(n, sizeof(*l->ok))) == NULL))
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    l->n = n;
    for (size_t i = 0; i < n; i++) {
        const char *p = pats[i] != NULL ? pats[i] : "";
        size_t len = strlen(p);
        ch_error e;
        strip_slashes(&p, &len);
        l->ok[i] = ch_goregex_compile(p, len, &l->re[i], &e) == CH_OK;
        if (!l->ok[i])
            ch_log(CH_LOG_WARN, "%s: pattern %zu never matches: %s", key, i + 1, e.msg);
    }
    return CH_OK;
}

/* ---- verification stages ---- */

#define SHOWN_MAX 128 /* bytes of a caller's text quoted in a message */

/* A caller's text as messages quote it: they reach the log, so control bytes become '?' and
 * the length is bounded. Returns buf. */
static const char *shown(const char *s, char buf[SHOWN_MAX])
{
    size_t i = 0;
    for (; s[i] != '\0' && i < SHOWN_MAX - 1; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

static bool certname_char(char ch)
{
    return ch == '_' || ch == '.' || ch == '-' || (ch >= 'a' && ch <= 'z') ||
           (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* go-choria CallerIdentity: ^[a-z]+=([\w\.\-]+), anything after the match is ignored
 * ("choria=rip.mcollective@x" is rip.mcollective). */
static ch_status caller_certname(const char *callerid, char **out, ch_error *err)
{
    const char *p = callerid;
    while (*p >= 'a' && *p <= 'z')
        p++;
    const char *start = p + (p > callerid && *p == '=' ? 1 : 0), *end = start;
    while (start > p && certname_char(*end))
        end++;
    char buf[SHOWN_MAX];
    if (end == start)
        return ch_error_set(err, CH_ERR_INVALID,
                            "could not find a valid caller identity name in %s",
                            shown(callerid, buf));
    if ((*out = strndup(start, (size_t)(end - start))) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    return CH_OK;
}

/* Go's x509.Verify with KeyUsages [ClientAuth]: each chain certificate that carries an
 * extended key usage must list clientAuth or anyExtendedKeyUsage. */
static ch_status check_client_auth(X509_STORE_CTX *ctx, ch_error *err)
{
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        if ((X509_get_extension_flags(x) & EXFLAG_XKUSAGE) &&
            !(X509_get_extended_key_usage(x) & (XKU_SSL_CLIENT | XKU_ANYEKU)))
            return ch_error_set(err, CH_ERR_INVALID,
                                "certificate chain: certificate %d specifies an incompatible "
                                "key usage (no clientAuth)",
                                i);
    }
    return CH_OK;
}

/* Trust anchors are the CA file's certificates, intermediates every certificate of pubcert.
 * PARTIAL_CHAIN mirrors Go, for which any certificate in Roots is an anchor; auth level 1
 * refuses SHA-1/MD5 signatures and RSA keys under 1024 bits, as Go does. No host name. */
static ch_status verify_chain(const x509_ctx *c, STACK_OF(X509) * certs, ch_error *err)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (ctx == NULL || !X509_STORE_CTX_init(ctx, c->roots, sk_X509_value(certs, 0), certs)) {
        X509_STORE_CTX_free(ctx);
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory verifying a certificate");
    }
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(param, (time_t)c->now());
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
    X509_VERIFY_PARAM_set_auth_level(param, 1);
    ch_status st = CH_OK;
    if (X509_verify_cert(ctx) != 1)
        st = ch_error_set(err, CH_ERR_INVALID, "certificate chain: %s",
                          X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    else
        st = check_client_auth(ctx, err);
    X509_STORE_CTX_free(ctx);
    return st;
}

static bool name_equals(const char *name, const void *certname)
{
    return strcmp(name, certname) == 0;
}

/* Not X509_check_host: Go's comparison here is exact, case-sensitive and wildcard-free. */
static ch_status check_name(X509 *leaf, const char *certname, ch_error *err)
{
    if (any_name(leaf, name_equals, certname))
        return CH_OK;
    char *cn = leaf_cn(leaf), buf[SHOWN_MAX];
    ch_error_set(err, CH_ERR_INVALID,
                 "certificate is not for the caller %.100s: it is valid for %s", certname,
                 cn != NULL ? shown(cn, buf) : "no name");
    free(cn);
    return CH_ERR_INVALID;
}

/* go-choria ShouldAllowCaller: a privileged certificate acts for any caller, so only its chain
 * is checked; any other must carry the caller's name and be on the allow list. */
static ch_status allow_caller(const x509_ctx *c, const request_check *rc, ch_error *err)
{
    X509 *leaf = sk_X509_value(rc->chain, 0);
    bool privileged = any_name(leaf, name_privileged, &c->privileged);
    ch_status st = verify_chain(c, rc->chain, err);
    if (st != CH_OK || privileged)
        return st;
    if ((st = check_name(leaf, rc->certname, err)) != CH_OK)
        return st;
    if (!patterns_match(&c->allowed, rc->certname))
        return ch_error_set(err, CH_ERR_INVALID, "caller %.100s is not on the allow list",
                            rc->certname);
    return CH_OK;
}

static ch_status decode_signature(const char *signature, request_check *rc, ch_error *err)
{
    ch_status st = ch_base64_decode(signature, strlen(signature), &rc->sig, &rc->sig_len);
    if (st == CH_ERR_NOMEM)
        return ch_error_set(err, st, "out of memory");
    if (st != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "signature is not valid base64");
    return CH_OK;
}

/* rsa.VerifyPKCS1v15 refuses a signature whose length differs from the modulus; go-choria's
 * unchecked type assertion panics on a non-RSA key, we refuse it. */
static ch_status verify_signature(X509 *leaf, const char *message, size_t len,
                                  const request_check *rc, ch_error *err)
{
    EVP_PKEY *pub = X509_get0_pubkey(leaf);
    if (pub == NULL || EVP_PKEY_get_base_id(pub) != EVP_PKEY_RSA)
        return ch_error_set(err, CH_ERR_INVALID, "only RSA certificates are supported");
    if (rc->sig_len != (size_t)EVP_PKEY_get_size(pub))
        return ch_error_set(err, CH_ERR_INVALID, "%s", SIG_FAILED);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    int ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(md, rc->sig, rc->sig_len, (const unsigned char *)message, len) == 1;
    EVP_MD_CTX_free(md);
    return ok ? CH_OK : ch_error_set(err, CH_ERR_INVALID, "%s", SIG_FAILED);
}

/* Bounds and the insecure placeholders, before anything is parsed. */
static ch_status check_inputs(const char *signature, const char *pubcert, const char *callerid,
                              ch_error *err)
{
    if (signature == NULL || pubcert == NULL || callerid == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "request has no signature, pubcert or callerid");
    if (strcmp(signature, CH_SECURITY_INSECURE) == 0 || strcmp(pubcert, CH_SECURITY_INSECURE) == 0)
        return ch_error_set(err, CH_ERR_INVALID, "request is not signed (insecure)");
    if (strnlen(pubcert, CH_SECURITY_X509_MAX_PUBCERT + 1) > CH_SECURITY_X509_MAX_PUBCERT)
        return ch_error_set(err, CH_ERR_INVALID, "pubcert is larger than %d bytes",
                            CH_SECURITY_X509_MAX_PUBCERT);
    if (strnlen(signature, CH_SECURITY_X509_MAX_SIGNATURE + 1) > CH_SECURITY_X509_MAX_SIGNATURE)
        return ch_error_set(err, CH_ERR_INVALID, "signature is larger than %d bytes",
                            CH_SECURITY_X509_MAX_SIGNATURE);
    return CH_OK;
}

static ch_status read_pubcert(const char *pubcert, request_check *rc, ch_error *err)
{
    ch_error e;
    ch_status st =
        read_certs(pubcert, strlen(pubcert), CH_SECURITY_X509_MAX_CHAIN, false, &rc->chain, &e);
    if (st == CH_ERR_NOMEM)
        return ch_error_set(err, st, "%s", e.msg);
    if (st != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "pubcert: %s", e.msg);
    if (sk_X509_num(rc->chain) == 0)
        return ch_error_set(err, CH_ERR_INVALID, "pubcert holds no certificate");
    return CH_OK;
}

static void check_clear(request_check *rc)
{
    free(rc->certname);
    sk_X509_pop_free(rc->chain, X509_free);
    free(rc->sig);
}

/* go-choria SecureRequest.Valid (protocol/v1/security_request.go), step by step. */
static ch_status x509_verify(const ch_security *sec, const char *message, size_t len,
                             const char *signature, const char *pubcert, const char *callerid,
                             ch_error *err)
{
    const x509_ctx *c = sec->ctx;
    if (c->roots == NULL)
        return ch_error_set(err, CH_ERR_UNSUPPORTED,
                            "x509 provider made without a CA file cannot verify");
    request_check rc = {0};
    ch_status st = check_inputs(signature, pubcert, callerid, err);
    if (st == CH_OK)
        st = caller_certname(callerid, &rc.certname, err);
    if (st == CH_OK)
        st = read_pubcert(pubcert, &rc, err);
    if (st == CH_OK)
        st = allow_caller(c, &rc, err);
    if (st == CH_OK)
        st = decode_signature(signature, &rc, err);
    if (st == CH_OK)
        st = verify_signature(sk_X509_value(rc.chain, 0), message, len, &rc, err);
    check_clear(&rc);
    /* OpenSSL's error queue is per thread and shared with TLS code (nats.c) on this thread. */
    ERR_clear_error();
    return st;
}

/* ---- signing ---- */

static ch_status x509_sign(const ch_security *sec, const char *message, size_t len,
                           char **signature, char **pubcert, ch_error *err)
{
    const x509_ctx *c = sec->ctx;
    *signature = *pubcert = NULL;
    if (c->key == NULL)
        return ch_error_set(err, CH_ERR_UNSUPPORTED,
                            "x509 provider made without a key cannot sign");
    ch_status st = CH_OK;
    size_t sig_len = (size_t)EVP_PKEY_get_size(c->key);
    unsigned char *sig = malloc(sig_len);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (sig == NULL || md == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory signing a request");
        goto out;
    }
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, c->key) != 1 ||
        EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)message, len) != 1) {
        st = ch_error_set(err, CH_ERR_INTERNAL, "could not sign the request");
        goto out;
    }
    *signature = ch_base64_encode(sig, sig_len);
    *pubcert = strdup(c->pubcert);
    if (*signature == NULL || *pubcert == NULL) {
        free(*signature);
        free(*pubcert);
        *signature = *pubcert = NULL;
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory signing a request");
    }
out:
    EVP_MD_CTX_free(md);
    free(sig);
    ERR_clear_error();
    return st;
}

/* ---- creation ---- */

/* Never prompt for a pass phrase on the terminal: an encrypted key simply fails to load. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

static ch_status load_key(x509_ctx *c, const char *path, ch_error *err)
{
    char *text = NULL;
    size_t len = 0;
    ch_status st = ch_read_file(path, CH_SECURITY_X509_MAX_KEY_FILE, &text, &len, err);
    if (st != CH_OK)
        return st;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    if (bio == NULL)
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    else if ((c->key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL)) == NULL)
        st = ch_error_set(err, CH_ERR_INVALID,
                          "key file %s holds no unencrypted PKCS#1 or PKCS#8 private key", path);
    else if (EVP_PKEY_get_base_id(c->key) != EVP_PKEY_RSA)
        st = ch_error_set(err, CH_ERR_INVALID,
                          "key file %s is not an RSA key: upstream signs with RSA only", path);
    BIO_free(bio);
    ch_pki_free_secret(text, len);
    return st;
}

/* The certificate file is sent verbatim; it is checked here with the verifier's own rules so
 * that a client finds out at start-up, not from silent servers. go-choria does not compare the
 * certificate with the key; a mismatch could never verify, so we refuse it. */
static ch_status load_cert(x509_ctx *c, const char *path, ch_error *err)
{
    size_t len = 0;
    STACK_OF(X509) *certs = NULL;
    ch_error e;
    ch_status st = ch_read_file(path, CH_SECURITY_X509_MAX_PUBCERT, &c->pubcert, &len, err);
    if (st != CH_OK)
        return st;
    if ((st = read_certs(c->pubcert, len, CH_SECURITY_X509_MAX_CHAIN, false, &certs, &e)) != CH_OK)
        return ch_error_set(err, st, "certificate file %s: %s", path, e.msg);
    if (sk_X509_num(certs) == 0)
        st = ch_error_set(err, CH_ERR_INVALID, "certificate file %s holds no certificates", path);
    else if (X509_check_private_key(sk_X509_value(certs, 0), c->key) != 1)
        st = ch_error_set(err, CH_ERR_INVALID, "certificate file %s does not match its key", path);
    sk_X509_pop_free(certs, X509_free);
    return st;
}

/* go-choria VerifyCertificate goes on without a chain check when the CA file holds no
 * certificate (file_security.go: the nil error of ReadFile is returned); we refuse to start. */
static ch_status load_roots(x509_ctx *c, const char *path, ch_error *err)
{
    char *text = NULL;
    size_t len = 0;
    STACK_OF(X509) *certs = NULL;
    ch_error e;
    ch_status st = ch_read_file(path, CH_SECURITY_X509_MAX_CA_FILE, &text, &len, err);
    if (st == CH_OK && (st = read_certs(text, len, SIZE_MAX, true, &certs, &e)) != CH_OK)
        ch_error_set(err, st, "CA file %s: %s", path, e.msg);
    if (st == CH_OK && sk_X509_num(certs) == 0)
        st = ch_error_set(err, CH_ERR_INVALID, "CA file %s holds no certificates", path);
    if (st == CH_OK && (c->roots = X509_STORE_new()) == NULL)
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    for (int i = 0; st == CH_OK && i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);
        /* Caches the extensions now, while one thread owns the store. */
        X509_check_purpose(x, -1, 0);
        if (X509_STORE_add_cert(c->roots, x) != 1)
            st = ch_error_set(err, CH_ERR_INVALID, "CA file %s: certificate %d cannot be used",
                              path, i + 1);
    }
    sk_X509_pop_free(certs, X509_free);
    free(text);
    return st;
}

static ch_status load_patterns(x509_ctx *c, const ch_security_x509_opts *o, ch_error *err)
{
    static const char *const allowed[] = CH_SECURITY_X509_DEFAULT_ALLOWED;
    static const char *const privileged[] = CH_SECURITY_X509_DEFAULT_PRIVILEGED;
    ch_status st =
        patterns_compile(&c->allowed, o->allowed != NULL ? o->allowed : allowed,
                         o->allowed != NULL ? o->n_allowed : sizeof(allowed) / sizeof(*allowed),
                         "plugin.choria.security.certname_whitelist", err);
    if (st != CH_OK)
        return st;
    return patterns_compile(&c->privileged, o->privileged != NULL ? o->privileged : privileged,
                            o->privileged != NULL ? o->n_privileged
                                                  : sizeof(privileged) / sizeof(*privileged),
                            "plugin.choria.security.privileged_users", err);
}

static void x509_destroy(ch_security *sec)
{
    x509_ctx *c = sec->ctx;
    if (c != NULL) {
        EVP_PKEY_free(c->key);
        free(c->pubcert);
        X509_STORE_free(c->roots);
        patterns_clear(&c->allowed);
        patterns_clear(&c->privileged);
        free(c);
    }
    free(sec);
}

static const ch_security_ops x509_ops = {
    .name = CH_SECURITY_X509_NAME,
    .tech = CH_SECURITY_TECH_X509,
    .sign = x509_sign,
    .verify = x509_verify,
    .destroy = x509_destroy,
};

static bool named(const char *path)
{
    return path != NULL && path[0] != '\0';
}

static ch_status check_opts(const ch_security_x509_opts *o, ch_error *err)
{
    if (o == NULL || (!o->sign && !o->verify))
        return ch_error_set(err, CH_ERR_INVALID,
                            "x509 security: nothing to do (neither sign nor verify)");
    if (o->sign && (!named(o->cert_file) || !named(o->key_file)))
        return ch_error_set(err, CH_ERR_INVALID,
                            "x509 security: signing needs a certificate and a key file");
    if (o->verify && !named(o->ca_file))
        return ch_error_set(err, CH_ERR_INVALID, "x509 security: verifying needs a CA file");
    return CH_OK;
}

ch_status ch_security_x509_new(const ch_security_x509_opts *o, ch_security **out, ch_error *err)
{
    *out = NULL;
    ch_status st = check_opts(o, err);
    if (st != CH_OK)
        return st;
    ch_security *sec = calloc(1, sizeof(*sec));
    x509_ctx *c = calloc(1, sizeof(*c));
    if (sec == NULL || c == NULL) {
        free(sec);
        free(c);
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
    *sec = (ch_security){.ops = &x509_ops, .ctx = c};
    c->now = o->now != NULL ? o->now : ch_now_unix;
    if (o->sign)
        st = load_key(c, o->key_file, err);
    if (st == CH_OK && o->sign)
        st = load_cert(c, o->cert_file, err);
    if (st == CH_OK && o->verify)
        st = load_roots(c, o->ca_file, err);
    if (st == CH_OK && o->verify)
        st = load_patterns(c, o, err);
    ERR_clear_error();
    if (st != CH_OK) {
        x509_destroy(sec);
        return st;
    }
    *out = sec;
    return CH_OK;
}
