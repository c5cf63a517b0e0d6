/* The provisioning pipeline of one node (upstream host/host.go Provision): each step fills the
 * node's state or fails with one line saying why. */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "choria/json.h"
#include "choria/log.h"
#include "choria/pki.h"
#include "choria/util.h"

#define TRIES_JWT 3
#define TRIES_GEN25519 5
#define TRIES_INVENTORY 5
#define TRIES_GENCSR 1
#define TRIES_CONFIGURE 5
#define TRIES_RESTART 3
#define TRIES_SHUTDOWN 3
#define MAX_STDERR_LOG 2048 /* bytes of helper stderr copied into one log line */

typedef struct {
    const char *identity;
    json_t *claims;                              /* verified provisioning JWT claims */
    char ecdh_public[2 * CH_PKI_X25519_LEN + 1]; /* the node's X25519 key, "" = none */
    char *inventory;                             /* inventory reply data as sorted JSON text */
    char *csr, *csr_public_key, *csr_ssldir;
    bool have_csr;
    prov_helper_reply *reply;
    char *encrypted_key; /* the helper's key, encrypted for the node */
    char *ed_public_key, *ed_directory, *ed_signature; /* gen25519 reply, verified */
    char *server_jwt;                                  /* issued for ed_public_key */
    char my_ecdh_public[2 * CH_PKI_X25519_LEN + 1];
} node_state;

static void node_state_clear(node_state *n)
{
    json_decref(n->claims);
    free(n->inventory);
    free(n->csr);
    free(n->csr_public_key);
    free(n->csr_ssldir);
    prov_helper_reply_free(n->reply);
    free(n->encrypted_key);
    free(n->ed_public_key);
    free(n->ed_directory);
    free(n->ed_signature);
    free(n->server_jwt);
}

static const char *data_string(const ch_rpc_result *r, const char *key)
{
    json_t *v = r->data != NULL ? json_object_get(r->data, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool is_paused(const atomic_bool *flag)
{
    return flag != NULL && atomic_load(flag);
}

/* ---- steps ---- */

static json_t *token_data(const prov_pipeline *p)
{
    return json_pack("{s:s}", "token", p->cfg->token);
}

/* Step 2: fetch the provisioning JWT and verify it (upstream host/host.go fetchJWT). */
static ch_status step_jwt(const prov_pipeline *p, node_state *n, ch_error *err)
{
    json_t *data = token_data(p);
    ch_rpc_result r;
    ch_status st = prov_rpcwrap_call(p->rpc, n->identity, "choria_provision", "jwt", data,
                                     TRIES_JWT, p->provision_timeout_ms, &r, err);
    json_decref(data);
    if (st != CH_OK)
        goto out;
    const char *jwt = data_string(&r, "jwt"), *ecdh = data_string(&r, "ecdh_public");
    if (jwt == NULL || jwt[0] == '\0') {
        st = ch_error_set(err, CH_ERR_INVALID, "no JWT received");
        goto out;
    }
    if (ecdh != NULL && ecdh[0] != '\0') {
        unsigned char raw[CH_PKI_X25519_LEN];
        if (ch_pki_hex_decode(ecdh, strlen(ecdh), raw, sizeof(raw), NULL) != CH_OK) {
            st = ch_error_set(err, CH_ERR_INVALID, "invalid ecdh_public received");
            goto out;
        }
        snprintf(n->ecdh_public, sizeof(n->ecdh_public), "%s", ecdh);
    }
    if (p->verify_key == NULL) {
        st = ch_error_set(err, CH_ERR_INVALID,
                          "no JWT verification certificate configured, cannot validate JWT");
        goto out;
    }
    ch_provjwt *claims = NULL;
    ch_error e;
    st = ch_jwt_verify_provisioning(p->verify_key, jwt, strlen(jwt), ch_now_unix(), &claims,
                                    &n->claims, &e);
    ch_provjwt_free(claims);
    if (st != CH_OK)
        ch_error_set(err, st, "invalid provisioning JWT: %s", e.msg);
out:
    ch_rpc_result_clear(&r);
    return st;
}

/* Step 3: the node makes an ed25519 key and proves it holds it by signing a nonce (upstream
 * host/host.go, 9.3). */
static ch_status step_gen25519(const prov_pipeline *p, node_state *n, ch_error *err)
{
    char nonce[33];
    ch_request_id(nonce);
    json_t *data = json_pack("{s:s,s:s}", "nonce", nonce, "token", p->cfg->token);
    ch_rpc_result r;
    ch_status st = prov_rpcwrap_call(p->rpc, n->identity, "choria_provision", "gen25519", data,
                                     TRIES_GEN25519, p->provision_timeout_ms, &r, err);
    json_decref(data);
    if (st != CH_OK)
        goto out;
    const char *pub = data_string(&r, "public_key"), *sig = data_string(&r, "signature"),
               *dir = data_string(&r, "directory");
    unsigned char pub_raw[CH_PKI_ED25519_PUB_LEN], sig_raw[CH_PKI_ED25519_SIG_LEN];
    if (pub == NULL || pub[0] == '\0')
        st = ch_error_set(err, CH_ERR_INVALID, "no public key received");
    else if (sig == NULL || sig[0] == '\0')
        st = ch_error_set(err, CH_ERR_INVALID, "no signature received");
    else if (ch_pki_hex_decode(pub, strlen(pub), pub_raw, sizeof(pub_raw), NULL) != CH_OK ||
             ch_pki_hex_decode(sig, strlen(sig), sig_raw, sizeof(sig_raw), NULL) != CH_OK)
        st = ch_error_set(err, CH_ERR_INVALID, "invalid public key or signature received");
    else if (!ch_pki_ed25519_verify(pub_raw, nonce, strlen(nonce), sig_raw))
        st = ch_error_set(err, CH_ERR_INVALID, "invalid nonce signature");
    if (st == CH_OK) {
        n->ed_public_key = strdup(pub);
        n->ed_signature = strdup(sig);
        n->ed_directory = strdup(dir != NULL ? dir : "");
        if (n->ed_public_key == NULL || n->ed_signature == NULL || n->ed_directory == NULL)
            st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
out:
    ch_rpc_result_clear(&r);
    return st;
}

/* Step 4: the inventory, kept as JSON text for the helper (rpcutil#inventory). */
static ch_status step_inventory(const prov_pipeline *p, node_state *n, ch_error *err)
{
    ch_rpc_result r;
    ch_status st = prov_rpcwrap_call(p->rpc, n->identity, "rpcutil", "inventory", NULL,
                                     TRIES_INVENTORY, p->rpcutil_timeout_ms, &r, err);
    if (st == CH_OK && !json_is_object(r.data))
        st = ch_error_set(err, CH_ERR_INVALID, "rpcutil#inventory: no inventory received");
    if (st == CH_OK && (n->inventory = ch_json_encode_sorted(r.data, NULL)) == NULL)
        st = ch_error_set(err, CH_ERR_NOMEM, "cannot encode the inventory");
    ch_rpc_result_clear(&r);
    return st;
}

/* Step 5: a CSR for the identity, checked against the deny list (upstream host/csr.go validateCSR).
 */
static ch_status step_gencsr(const prov_pipeline *p, node_state *n, ch_error *err)
{
    json_t *data = json_pack("{s:s,s:s}", "token", p->cfg->token, "cn", n->identity);
    ch_rpc_result r;
    ch_status st = prov_rpcwrap_call(p->rpc, n->identity, "choria_provision", "gencsr", data,
                                     TRIES_GENCSR, p->provision_timeout_ms, &r, err);
    json_decref(data);
    if (st != CH_OK)
        goto out;
    const char *csr = data_string(&r, "csr"), *pub = data_string(&r, "public_key"),
               *ssldir = data_string(&r, "ssldir");
    ch_error e;
    if ((st = prov_csr_check(csr, csr != NULL ? strlen(csr) : 0, n->identity, p->deny, &e)) !=
        CH_OK) {
        ch_error_set(err, st, "invalid CSR: %s", e.msg);
        goto out;
    }
    n->csr = strdup(csr);
    n->csr_public_key = strdup(pub != NULL ? pub : "");
    n->csr_ssldir = strdup(ssldir != NULL ? ssldir : "");
    if (n->csr == NULL || n->csr_public_key == NULL || n->csr_ssldir == NULL)
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    n->have_csr = st == CH_OK;
out:
    ch_rpc_result_clear(&r);
    return st;
}

/* The helper's stderr as one log line: new lines folded, bounded. */
static void log_helper_stderr(const node_state *n, const ch_process_result *res)
{
    if (res->errout == NULL || res->errout_len == 0)
        return;
    char line[MAX_STDERR_LOG + 1];
    size_t len = res->errout_len < MAX_STDERR_LOG ? res->errout_len : MAX_STDERR_LOG;
    memcpy(line, res->errout, len);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    line[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r' || line[i] == '\0')
            line[i] = ' ';
    ch_warn("helper stderr for %s: %s%s", n->identity, line,
            res->errout_len > MAX_STDERR_LOG || res->errout_truncated ? " ..." : "");
}

/* Step 6: the helper (upstream host/helper.go). */
static ch_status step_helper(const prov_pipeline *p, node_state *n, ch_error *err)
{
    int64_t t0 = ch_now_mono_ms();
    ch_status st;
    if (is_paused(p->paused)) {
        st = ch_error_set(err, CH_ERR_UNSUPPORTED,
                          "provisioning is paused, cannot perform the helper");
        ch_metric_observe(p->metrics->helper_time, 0);
        return st;
    }
    prov_helper_csr csr = {.csr = n->csr, .public_key = n->csr_public_key, .ssldir = n->csr_ssldir};
    prov_helper_ed25519 ed = {
        .public_key = n->ed_public_key, .directory = n->ed_directory, .signature = n->ed_signature};
    prov_helper_input in = {.identity = n->identity,
                            .csr = n->have_csr ? &csr : NULL,
                            .ed25519 = n->ed_public_key != NULL ? &ed : NULL,
                            .inventory = n->inventory,
                            .jwt = n->claims};
    ch_error e;
    if (p->helpers != NULL) { /* stderr goes to the log as the helper writes it */
        st = prov_helper_pool_run(p->helpers, &in, &n->reply, &e);
    } else {
        ch_process_run_opts opts = {.cancel = p->stopping,
                                    .timeout_ms = p->cfg->helper_timeout_ns / 1000000};
        ch_process_result res;
        st = prov_helper_run(p->cfg->helper, &in, &opts, &n->reply, &res, &e);
        log_helper_stderr(n, &res);
        ch_process_result_clear(&res);
    }
    ch_metric_observe(p->metrics->helper_time, (double)(ch_now_mono_ms() - t0) / 1000.0);
    if (st != CH_OK) {
        ch_metric_inc(p->metrics->helper_errors);
        ch_error_set(err, st, "could not invoke configure helper: %s", e.msg);
    }
    return st;
}

/* Step 8: the helper asked for the node to be shut down (upstream host/host.go). A refusal by the
 * node is only a warning, as upstream; no reply at all is a failure. */
static ch_status step_shutdown(const prov_pipeline *p, node_state *n, ch_error *err)
{
    ch_info("Shutting down host %s based on helper output%s%s", n->identity,
            n->reply->msg[0] != '\0' ? ": " : "", n->reply->msg);
    json_t *data = token_data(p);
    ch_rpc_result r;
    ch_error e;
    ch_status st = prov_rpcwrap_call(p->rpc, n->identity, "choria_provision", "shutdown", data,
                                     TRIES_SHUTDOWN, p->provision_timeout_ms, &r, &e);
    json_decref(data);
    if (st == CH_OK) {
        ch_metric_inc(p->metrics->helper_shutdown_requests);
    } else if (r.body != NULL && r.statuscode != 0) {
        ch_warn("Shutdown request to %s was refused: %s (%d)", n->identity, r.statusmsg,
                r.statuscode);
        st = CH_OK;
    } else {
        ch_error_set(err, st, "%s", e.msg);
    }
    ch_rpc_result_clear(&r);
    return st;
}

/* Step 11: the helper's private key, encrypted for the node with an X25519 shared secret in
 * Go's legacy PEM encryption (x509.EncryptPEMBlock, as upstream). */
static ch_status encrypt_key(node_state *n, ch_error *err)
{
    if (n->ecdh_public[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID,
                            "private key received from helper but server "
                            "did not start Diffie-Hellman exchange");
    const char *pem = n->reply->key;
    BIO *bio = BIO_new_mem_buf(pem, (int)strlen(pem));
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long der_len = 0;
    ch_status st = CH_OK;
    if (bio == NULL || PEM_read_bio(bio, &name, &header, &der, &der_len) != 1) {
        st = ch_error_set(err, CH_ERR_INVALID, "bad key received");
        goto out;
    }
    unsigned char peer[CH_PKI_X25519_LEN], priv[CH_PKI_X25519_LEN], pub[CH_PKI_X25519_LEN],
        secret[CH_PKI_X25519_LEN];
    ch_pki_hex_decode(n->ecdh_public, strlen(n->ecdh_public), peer, sizeof(peer), NULL);
    if ((st = ch_pki_x25519_keypair(priv, pub, err)) == CH_OK &&
        (st = ch_pki_x25519_derive(priv, peer, secret, err)) == CH_OK)
        st = ch_pki_pem_encrypt("RSA PRIVATE KEY", der, (size_t)der_len, secret, sizeof(secret),
                                &n->encrypted_key, err);
    ch_hex_encode(pub, sizeof(pub), n->my_ecdh_public);
    OPENSSL_cleanse(priv, sizeof(priv));
    OPENSSL_cleanse(secret, sizeof(secret));
out:
    if (der != NULL)
        OPENSSL_clear_free(der, (size_t)der_len);
    OPENSSL_free(name);
    OPENSSL_free(header);
    BIO_free(bio);
    return st;
}

static json_t *kv_object(const prov_helper_map *m)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < m->count; i++)
        json_object_set_new(o, m->items[i].key, json_string(m->items[i].value));
    return o;
}

/* Step 13: configure (choria_provision#configure). An empty configuration fails at once: upstream
 * retried this local error five times with back-off. */
static ch_status step_configure(const prov_pipeline *p, node_state *n, ch_error *err)
{
    const prov_helper_reply *h = n->reply;
    if (h->configuration.count == 0)
        return ch_error_set(err, CH_ERR_INVALID, "empty configuration");
    json_t *conf = kv_object(&h->configuration);
    char *conf_text = conf != NULL ? ch_json_encode_sorted(conf, NULL) : NULL;
    json_decref(conf);
    const char *ssldir = n->have_csr && n->csr_ssldir[0] != '\0' ? n->csr_ssldir : h->ssldir;
    json_t *data =
        conf_text == NULL
            ? NULL
            : json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:s}", "config", conf_text, "token",
                        p->cfg->token, "ca", h->ca, "certificate", h->certificate, "ssldir", ssldir,
                        "key", n->encrypted_key != NULL ? n->encrypted_key : "", "ecdh_public",
                        n->encrypted_key != NULL ? n->my_ecdh_public : "", "action_policies",
                        kv_object(&h->action_policies), "opa_policies", kv_object(&h->opa_policies),
                        "server_jwt", n->server_jwt != NULL ? n->server_jwt : "");
    free(conf_text);
    if (data == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "cannot encode the configure request");
    ch_rpc_result r;
    ch_status st = prov_rpcwrap_call(p->rpc, n->identity, "choria_provision", "configure", data,
                                     TRIES_CONFIGURE, p->provision_timeout_ms, &r, err);
    json_decref(data);
    ch_rpc_result_clear(&r);
    return st;
}

/* Step 14: restart with splay 1 (the node waits 2 s). */
static ch_status step_restart(const prov_pipeline *p, node_state *n, ch_error *err)
{
    json_t *data = json_pack("{s:s,s:i}", "token", p->cfg->token, "splay", 1);
    ch_rpc_result r;
    ch_status st = prov_rpcwrap_call(p->rpc, n->identity, "choria_provision", "restart", data,
                                     TRIES_RESTART, p->provision_timeout_ms, &r, err);
    json_decref(data);
    ch_rpc_result_clear(&r);
    return st;
}

/* Steps 9-14, after a helper reply that neither deferred nor asked for a shutdown. */
static ch_status configure_and_restart(const prov_pipeline *p, node_state *n, ch_error *err)
{
    ch_status st = CH_OK;
    if (p->cfg->features.ed25519)
        st = prov_srvjwt_issue(p->signer, n->identity, n->ed_public_key, n->reply, ch_now_unix(),
                               &n->server_jwt, err);
    if (st == CH_OK && n->reply->key[0] != '\0')
        st = encrypt_key(n, err);
    if (st == CH_OK)
        st = step_configure(p, n, err);
    if (st == CH_OK)
        st = step_restart(p, n, err);
    return st;
}

ch_status prov_pipeline_run(const prov_pipeline *p, const char *identity,
                            prov_pipeline_outcome *outcome, ch_error *err)
{
    node_state n = {.identity = identity};
    const prov_config_features *f = &p->cfg->features;
    *outcome = PROV_PIPELINE_FAILED;
    ch_status st = CH_OK;
    if (f->jwt)
        st = step_jwt(p, &n, err);
    if (st == CH_OK && f->ed25519)
        st = step_gen25519(p, &n, err);
    if (st == CH_OK)
        st = step_inventory(p, &n, err);
    if (st == CH_OK && f->pki)
        st = step_gencsr(p, &n, err);
    if (st == CH_OK)
        st = step_helper(p, &n, err);
    if (st == CH_OK && n.reply->defer) {
        st = ch_error_set(err, CH_ERR_UNSUPPORTED, "configuration deferred: %s", n.reply->msg);
    } else if (st == CH_OK && n.reply->shutdown) {
        st = step_shutdown(p, &n, err);
        if (st == CH_OK)
            *outcome = PROV_PIPELINE_SHUT_DOWN;
    } else if (st == CH_OK) {
        st = configure_and_restart(p, &n, err);
        if (st == CH_OK)
            *outcome = PROV_PIPELINE_PROVISIONED;
    }
    node_state_clear(&n);
    return st;
}
