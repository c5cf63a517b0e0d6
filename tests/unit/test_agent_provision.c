/* The choria_provision agent against a temp-dir node and a host that records its callbacks:
 * every action's success path with files and modes, every abort in the order of the checks,
 * the provisioning lock, tokens, argument types, the private key round trip, hostile configure
 * input that must leave the existing config untouched, and writeConfig (confwrite). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "choria/agent.h"
#include "choria/config.h"
#include "choria/confwrite.h"
#include "choria/json.h"
#include "choria/log.h"
#include "choria/pki.h"
#include "choria/util.h"
#include "harness.h"

#define TOKEN "s3cret"
#define REQID "0123456789abcdef0123456789abcdef"
#define ORIGINAL_CONFIG                                                                            \
    "# original\nplugin.choria.server.provision = true\nlogfile = /var/log/x.log\n"
#define JWT_TEXT "eyJhbGciOiJFZERTQSJ9.eyJjaHQiOiJ0In0.c2ln\n"

typedef struct {
    int n_events;
    ch_lifecycle_type events[8];
    char version[64];
    int n_restart;
    int64_t restart_ms;
    int n_shutdown;
    int64_t shutdown_ms;
} recorder;

typedef struct {
    char dir[128];
    char conf[192];
    char jwtfile[192];
    ch_provision_state ps;
    ch_node node;
    recorder rec;
    ch_request_envelope env;
    ch_rpc_reply reply;
} fx;

static ch_status rec_event(void *closure, ch_lifecycle_type type, const char *new_version)
{
    recorder *r = closure;
    if (r->n_events < 8)
        r->events[r->n_events] = type;
    r->n_events++;
    snprintf(r->version, sizeof(r->version), "%s", new_version != NULL ? new_version : "");
    return CH_OK;
}

static void rec_restart(void *closure, int64_t ms)
{
    recorder *r = closure;
    r->n_restart++;
    r->restart_ms = ms;
}

static void rec_shutdown(void *closure, int64_t ms)
{
    recorder *r = closure;
    r->n_shutdown++;
    r->shutdown_ms = ms;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static char *read_text(const char *path)
{
    char *out = NULL;
    size_t len = 0;
    if (ch_read_file(path, 1 << 20, &out, &len, NULL) != CH_OK)
        return NULL;
    return out;
}

static unsigned mode_of(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 0;
    return sb.st_mode & 07777;
}

static bool exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    ch_error err;
    assert_non_null(f);
    CHT_CHECK(cht_temp_dir("provagent", f->dir, sizeof(f->dir), &err), &err);
    snprintf(f->conf, sizeof(f->conf), "%s/server.conf", f->dir);
    snprintf(f->jwtfile, sizeof(f->jwtfile), "%s/provisioning.jwt", f->dir);
    write_text(f->conf, ORIGINAL_CONFIG, 0640);
    write_text(f->jwtfile, JWT_TEXT, 0644);
    pthread_mutex_init(&f->ps.mutex, NULL);

    f->env.requestid = REQID;
    f->env.senderid = "prov.example.net";
    f->env.callerid = "choria=provisioner";
    f->env.collective = "provisioning";
    f->env.agent = "choria_provision";
    f->env.ttl = 60;

    f->node.identity = "node1.example.net";
    f->node.provision_mode = true;
    f->node.provision_token = TOKEN;
    f->node.provisioning_jwt_file = f->jwtfile;
    f->node.config_file = f->conf;
    f->node.provision = &f->ps;
    f->node.host.closure = &f->rec;
    f->node.host.publish_event = rec_event;
    f->node.host.restart = rec_restart;
    f->node.host.shutdown = rec_shutdown;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    json_decref(f->reply.data);
    cht_temp_dir_remove(f->dir, NULL);
    pthread_mutex_destroy(&f->ps.mutex);
    free(f);
    return 0;
}

static ch_action_fn find_action(const char *name)
{
    const ch_agent *a = &ch_agent_choria_provision;
    for (size_t i = 0; i < a->n_actions; i++)
        if (strcmp(a->actions[i].name, name) == 0)
            return a->actions[i].fn;
    fail_msg("no action %s", name);
    return NULL;
}

/* Runs action with data (stolen) and returns the reply (valid until the next call). */
static ch_rpc_reply *call_json(fx *f, const char *action, json_t *data)
{
    json_decref(f->reply.data);
    memset(&f->reply, 0, sizeof(f->reply));
    f->reply.statuscode = CH_RPC_OK;
    strcpy(f->reply.statusmsg, "OK");
    f->reply.data = json_object();
    ch_rpc_request req = {
        .agent = "choria_provision", .action = action, .data = data, .envelope = &f->env};
    find_action(action)(&f->node, &req, &f->reply);
    json_decref(data);
    return &f->reply;
}

static ch_rpc_reply *call(fx *f, const char *action, const char *data)
{
    ch_error err = {0};
    json_t *d = ch_json_parse(data, strlen(data), 1 << 24, 64, &err);
    if (d == NULL)
        fail_msg("bad test JSON %s: %s", data, err.msg);
    return call_json(f, action, d);
}

static void aborted(ch_rpc_reply *r, const char *msg)
{
    if (r->statuscode != CH_RPC_ABORTED || strcmp(r->statusmsg, msg) != 0)
        fail_msg("got %d '%s', want aborted '%s'", r->statuscode, r->statusmsg, msg);
    assert_int_equal(json_object_size(r->data), 0);
}

static void aborted_prefix(ch_rpc_reply *r, const char *prefix)
{
    if (r->statuscode != CH_RPC_ABORTED || strncmp(r->statusmsg, prefix, strlen(prefix)) != 0)
        fail_msg("got %d '%s', want aborted '%s...'", r->statuscode, r->statusmsg, prefix);
}

static void ok(ch_rpc_reply *r)
{
    if (r->statuscode != CH_RPC_OK)
        fail_msg("got %d '%s', want OK", r->statuscode, r->statusmsg);
}

static const char *data_str(ch_rpc_reply *r, const char *key)
{
    const char *s = ch_json_get_string(r->data, key);
    if (s == NULL)
        fail_msg("reply has no string %s", key);
    return s;
}

/* The reply data keys, in order, joined by ','. */
static void keys_are(ch_rpc_reply *r, const char *want)
{
    char got[256] = "";
    const char *k;
    json_t *v;
    json_object_foreach(r->data, k, v)
    {
        if (got[0] != '\0')
            strcat(got, ",");
        strcat(got, k);
    }
    assert_string_equal(got, want);
}

static void config_untouched(fx *f)
{
    char *now = read_text(f->conf);
    assert_non_null(now);
    assert_string_equal(now, ORIGINAL_CONFIG);
    free(now);
    assert_int_equal(mode_of(f->conf), 0640);
}

/* ---- activation, lock, token, arguments ---- */

static void active_only_with_state_and_mode_or_token(void **state)
{
    fx *f = *state;
    const ch_agent *a = &ch_agent_choria_provision;
    assert_string_equal(a->name, "choria_provision");
    assert_int_equal(a->timeout_seconds, 20);
    assert_int_equal(a->n_actions, 8);
    assert_true(a->active(&f->node));
    f->node.provision_mode = false;
    assert_true(a->active(&f->node)); /* a provisioned node that still knows the token */
    f->node.provision_token = "";
    assert_false(a->active(&f->node));
    f->node.provision_mode = true;
    assert_true(a->active(&f->node));
    f->node.provision = NULL;
    assert_false(a->active(&f->node));
    aborted(call(f, "jwt", "{}"), "The choria_provision agent is not active on this node");
}

static void lock_is_held_per_caller_before_mode_and_token_checks(void **state)
{
    fx *f = *state;
    ok(call(f, "jwt", "{\"token\":\"" TOKEN "\"}"));
    assert_string_equal(f->ps.lock_owner, "prov.example.net.choria=provisioner");
    int64_t until = f->ps.lock_until_ms;
    assert_in_range(until, ch_now_mono_ms() + 119001, ch_now_mono_ms() + 120000);

    /* Another caller: refused for every locked action, even with a wrong token or when the
     * node is not in provisioning mode (the lock comes first). */
    f->env.callerid = "choria=other";
    const char *locked[] = {"configure", "gen25519", "gencsr", "jwt", "release_update"};
    for (size_t i = 0; i < 5; i++)
        aborted(call(f, locked[i], "{\"token\":\"wrong\"}"), "Could not obtain provisioning lock");
    f->node.provision_mode = false;
    aborted(call(f, "jwt", "{}"), "Could not obtain provisioning lock");
    f->node.provision_mode = true;
    /* A different sender with the same caller id is another holder too. */
    f->env.callerid = "choria=provisioner";
    f->env.senderid = "prov2.example.net";
    aborted(call(f, "jwt", "{\"token\":\"" TOKEN "\"}"), "Could not obtain provisioning lock");
    /* Unlocked actions are not affected by the lock. */
    f->env.callerid = "choria=other";
    write_text(f->conf, "plugin.choria.server.provision=false\n", 0600);
    ok(call(f, "restart", "{\"token\":\"" TOKEN "\",\"splay\":1}"));

    /* The holder extends it; once it expires another caller takes it. */
    f->env.senderid = "prov.example.net";
    f->env.callerid = "choria=provisioner";
    f->ps.lock_until_ms = ch_now_mono_ms() + 10;
    ok(call(f, "jwt", "{\"token\":\"" TOKEN "\"}"));
    assert_in_range(f->ps.lock_until_ms, ch_now_mono_ms() + 119001, INT64_MAX);
    f->ps.lock_until_ms = ch_now_mono_ms() - 1;
    f->env.callerid = "choria=other";
    ok(call(f, "jwt", "{\"token\":\"" TOKEN "\"}"));
    assert_string_equal(f->ps.lock_owner, "prov.example.net.choria=other");
}

static void tokens_must_match_unless_none_is_known(void **state)
{
    fx *f = *state;
    aborted(call(f, "jwt", "{\"token\":\"wrong\"}"), "Incorrect provision token supplied");
    aborted(call(f, "jwt", "{}"), "Incorrect provision token supplied");
    aborted(call(f, "jwt", "{\"token\":\"s3cre\"}"), "Incorrect provision token supplied");
    aborted(call(f, "jwt", "{\"token\":\"s3crett\"}"), "Incorrect provision token supplied");
    ok(call(f, "jwt", "{\"token\":\"" TOKEN "\"}"));
    f->node.provision_token = NULL;
    ok(call(f, "jwt", "{\"token\":\"anything\"}"));
    ok(call(f, "jwt", "{}"));
    f->node.provision_token = "";
    ok(call(f, "jwt", "{\"token\":\"\"}"));
}

static void arguments_follow_go_json_unmarshal(void **state)
{
    fx *f = *state;
    /* A type mismatch is statuscode 4 and comes before the token check. */
    ch_rpc_reply *r = call(f, "configure", "{\"token\":5,\"config\":\"{}\"}");
    assert_int_equal(r->statuscode, CH_RPC_INVALID_DATA);
    assert_string_equal(r->statusmsg,
                        "Could not parse request data for choria_provision#configure: json: "
                        "cannot unmarshal number into Go struct field ConfigureRequest.token of "
                        "type string");
    r = call(f, "configure", "{\"token\":\"" TOKEN "\",\"config\":{\"a\":\"b\"}}");
    assert_int_equal(r->statuscode, CH_RPC_INVALID_DATA);
    assert_non_null(strstr(r->statusmsg, "object into Go struct field ConfigureRequest.config"));
    r = call(f, "configure",
             "{\"token\":\"" TOKEN "\",\"config\":\"{}\",\"action_policies\":"
             "{\"a.policy\":1}}");
    assert_int_equal(r->statuscode, CH_RPC_INVALID_DATA);
    assert_non_null(strstr(r->statusmsg, "ConfigureRequest.action_policies of type string"));
    r = call(f, "configure", "{\"token\":\"" TOKEN "\",\"config\":\"{}\",\"opa_policies\":[]}");
    assert_int_equal(r->statuscode, CH_RPC_INVALID_DATA);
    r = call(f, "restart", "{\"token\":\"" TOKEN "\",\"splay\":1.5}");
    assert_int_equal(r->statuscode, CH_RPC_INVALID_DATA);
    assert_string_equal(r->statusmsg, "Could not parse request data for choria_provision#restart: "
                                      "json: cannot unmarshal number 1.5 into Go struct field "
                                      "RestartRequest.splay of type int");
    r = call(f, "restart", "{\"token\":\"" TOKEN "\",\"splay\":\"1\"}");
    assert_int_equal(r->statuscode, CH_RPC_INVALID_DATA);
    r = call(f, "gen25519", "[1]");
    assert_int_equal(r->statuscode, CH_RPC_INVALID_DATA);
    assert_non_null(strstr(r->statusmsg, "Go value of type provision.ED25519Request"));
    config_untouched(f);
    assert_int_equal(f->rec.n_restart, 0);

    /* Unknown keys are ignored, null leaves a field empty, names match case-insensitively. */
    ok(call(f, "jwt", "{\"token\":\"" TOKEN "\",\"extra\":[1,{}],\"nonce\":null}"));
    ok(call(f, "jwt", "{\"TOKEN\":\"" TOKEN "\"}"));
    aborted(call(f, "jwt", "{\"token\":null}"), "Incorrect provision token supplied");
    /* null data is an empty request to Go, so it fails only at the token. */
    aborted(call(f, "jwt", "null"), "Incorrect provision token supplied");
}

/* ---- jwt ---- */

static void jwt_returns_the_file_verbatim_and_a_fresh_x25519_key(void **state)
{
    fx *f = *state;
    ch_rpc_reply *r = call(f, "jwt", "{\"token\":\"" TOKEN "\"}");
    ok(r);
    keys_are(r, "jwt,ecdh_public");
    assert_string_equal(data_str(r, "jwt"), JWT_TEXT);
    char first[65];
    snprintf(first, sizeof(first), "%s", data_str(r, "ecdh_public"));
    assert_int_equal(strlen(first), 64);
    for (int i = 0; i < 64; i++)
        assert_non_null(strchr("0123456789abcdef", first[i]));
    assert_true(f->ps.ecdh_set);
    /* The stored private key belongs to the public key sent. */
    unsigned char pub[32], other_priv[32], other_pub[32], s1[32], s2[32];
    assert_int_equal(ch_pki_hex_decode(first, 64, pub, 32, NULL), CH_OK);
    assert_int_equal(ch_pki_x25519_keypair(other_priv, other_pub, NULL), CH_OK);
    assert_int_equal(ch_pki_x25519_derive(f->ps.ecdh_private, other_pub, s1, NULL), CH_OK);
    assert_int_equal(ch_pki_x25519_derive(other_priv, pub, s2, NULL), CH_OK);
    assert_memory_equal(s1, s2, 32);

    r = call(f, "jwt", "{\"token\":\"" TOKEN "\"}");
    ok(r);
    assert_string_not_equal(data_str(r, "ecdh_public"), first);
    char *enc = ch_json_encode(r->data, NULL);
    const char *want = "{\"jwt\":\"eyJhbGciOiJFZERTQSJ9.eyJjaHQiOiJ0In0.c2ln\\n\","
                       "\"ecdh_public\":\"";
    assert_int_equal(strncmp(enc, want, strlen(want)), 0);
    free(enc);
}

static void jwt_aborts_in_order(void **state)
{
    fx *f = *state;
    f->node.provision_mode = false;
    aborted(call(f, "jwt", "{\"token\":\"wrong\"}"),
            "Cannot reconfigure a server that is not in provisioning mode");
    f->node.provision_mode = true;
    aborted(call(f, "jwt", "{\"token\":\"wrong\"}"), "Incorrect provision token supplied");
    f->node.provisioning_jwt_file = NULL;
    aborted(call(f, "jwt", "{\"token\":\"" TOKEN "\"}"),
            "No Provisioning JWT file has been configured");
    f->node.provisioning_jwt_file = "/nonexistent/provisioning.jwt";
    aborted(call(f, "jwt", "{\"token\":\"" TOKEN "\"}"), "Provisioning JWT file does not exist");
    f->node.provisioning_jwt_file = f->dir;
    aborted_prefix(call(f, "jwt", "{\"token\":\"" TOKEN "\"}"),
                   "Could not read Provisioning JWT: ");
    assert_false(f->ps.ecdh_set);
}

/* ---- gen25519 ---- */

static void gen25519_writes_the_seed_removes_server_jwt_and_signs_the_nonce(void **state)
{
    fx *f = *state;
    char jwt[256], seedf[256];
    snprintf(jwt, sizeof(jwt), "%s/server.jwt", f->dir);
    snprintf(seedf, sizeof(seedf), "%s/server.seed", f->dir);
    write_text(jwt, "old.jwt.value", 0600);
    const char *nonce = "a3f1c2d4e5b6a7980123456789abcdef";
    char data[200];
    snprintf(data, sizeof(data), "{\"nonce\":\"%s\",\"token\":\"" TOKEN "\"}", nonce);
    ch_rpc_reply *r = call(f, "gen25519", data);
    ok(r);
    keys_are(r, "public_key,directory,signature");
    assert_string_equal(data_str(r, "directory"), f->dir);
    assert_false(exists(jwt));

    char *seed_hex = read_text(seedf);
    assert_non_null(seed_hex);
    assert_int_equal(strlen(seed_hex), 64); /* no newline */
    for (int i = 0; i < 64; i++)
        assert_non_null(strchr("0123456789abcdef", seed_hex[i]));
    assert_int_equal(mode_of(seedf), 0600);

    unsigned char seed[32], pub[32], from_seed[32], sig[64];
    assert_int_equal(ch_pki_hex_decode(seed_hex, 64, seed, 32, NULL), CH_OK);
    assert_int_equal(ch_pki_hex_decode(data_str(r, "public_key"), 64, pub, 32, NULL), CH_OK);
    assert_int_equal(ch_pki_hex_decode(data_str(r, "signature"), 128, sig, 64, NULL), CH_OK);
    assert_int_equal(ch_pki_ed25519_public(seed, from_seed, NULL), CH_OK);
    assert_memory_equal(pub, from_seed, 32);
    /* The provisioner's check: ed25519.Verify(pk, []byte(nonce), sig). */
    assert_true(ch_pki_ed25519_verify(pub, nonce, strlen(nonce), sig));
    assert_false(ch_pki_ed25519_verify(pub, "other", 5, sig));
    free(seed_hex);
    config_untouched(f);
}

static void gen25519_makes_a_relative_config_directory_absolute(void **state)
{
    fx *f = *state;
    char cwd[512], real[512];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->dir), 0);
    assert_non_null(getcwd(real, sizeof(real)));
    f->node.config_file = "./sub/../server.conf";
    ch_rpc_reply *r = call(f, "gen25519", "{\"nonce\":\"n\",\"token\":\"" TOKEN "\"}");
    assert_int_equal(chdir(cwd), 0);
    ok(r);
    assert_string_equal(data_str(r, "directory"), real);
}

static void gen25519_aborts_in_order(void **state)
{
    fx *f = *state;
    f->node.provision_mode = false;
    aborted(call(f, "gen25519", "{}"),
            "Cannot reconfigure a server that is not in provisioning mode");
    f->node.provision_mode = true;
    f->node.config_file = NULL;
    aborted(call(f, "gen25519", "{\"token\":\"wrong\"}"),
            "Cannot determine where to store secure data, no configure file given");
    f->node.config_file = f->conf;
    aborted(call(f, "gen25519", "{\"token\":\"wrong\"}"), "Incorrect provision token supplied");
    /* server.jwt that cannot be removed (a non-empty directory) stops it before the seed. */
    char jwt[256], inner[300], seedf[256];
    snprintf(jwt, sizeof(jwt), "%s/server.jwt", f->dir);
    snprintf(inner, sizeof(inner), "%s/x", jwt);
    snprintf(seedf, sizeof(seedf), "%s/server.seed", f->dir);
    assert_int_equal(mkdir(jwt, 0700), 0);
    write_text(inner, "x", 0600);
    aborted_prefix(call(f, "gen25519", "{\"token\":\"" TOKEN "\"}"),
                   "Could not remove existing jwt file: ");
    assert_false(exists(seedf));
}

/* ---- gencsr ---- */

static X509_REQ *parse_csr(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509_REQ *req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(req);
    return req;
}

static void gencsr_writes_key_and_csr_with_modes_and_replies_in_order(void **state)
{
    fx *f = *state;
    char ssldir[256], key[300], csrf[300];
    snprintf(ssldir, sizeof(ssldir), "%s/ssl", f->dir);
    snprintf(key, sizeof(key), "%s/private.pem", ssldir);
    snprintf(csrf, sizeof(csrf), "%s/csr.pem", ssldir);
    mode_t old = umask(022);
    ch_rpc_reply *r = call(f, "gencsr",
                           "{\"token\":\"" TOKEN "\",\"C\":\"GB\",\"L\":\"London\","
                           "\"O\":\"Choria\",\"OU\":\"Ops\",\"ST\":\"Kent\"}");
    umask(old);
    ok(r);
    keys_are(r, "csr,public_key,ssldir");
    assert_string_equal(data_str(r, "ssldir"), ssldir);
    assert_int_equal(mode_of(ssldir), 0771);
    assert_int_equal(mode_of(key), 0600);
    assert_int_equal(mode_of(csrf), 0644);

    char *csr_text = read_text(csrf), *key_text = read_text(key);
    assert_string_equal(csr_text, data_str(r, "csr"));
    assert_int_equal(strncmp(key_text, "-----BEGIN RSA PRIVATE KEY-----\n", 32), 0);
    assert_int_equal(strncmp(data_str(r, "public_key"), "-----BEGIN PUBLIC KEY-----\n", 27), 0);

    X509_REQ *req = parse_csr(csr_text);
    BIO *bio = BIO_new_mem_buf(key_text, -1);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(pkey);
    assert_int_equal(EVP_PKEY_get_bits(pkey), 2048);
    assert_int_equal(X509_REQ_verify(req, pkey), 1);
    X509_NAME *name = X509_REQ_get_subject_name(req);
    /* C, L, O, OU, CN (ST ignored); CN defaults to the identity. */
    int want[] = {NID_countryName, NID_localityName, NID_organizationName,
                  NID_organizationalUnitName, NID_commonName};
    assert_int_equal(X509_NAME_entry_count(name), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(name, i))),
                         want[i]);
    char cn[256];
    X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, "node1.example.net");
    EVP_PKEY_free(pkey);
    X509_REQ_free(req);
    free(csr_text);
    free(key_text);

    /* A configured ssldir wins, and cn can be given. */
    char custom[256];
    snprintf(custom, sizeof(custom), "%s/custom/ssl", f->dir);
    f->node.ssldir = custom;
    f->node.config_file = NULL;
    r = call(f, "gencsr", "{\"token\":\"" TOKEN "\",\"cn\":\"other.example.net\"}");
    ok(r);
    assert_string_equal(data_str(r, "ssldir"), custom);
    req = parse_csr(data_str(r, "csr"));
    name = X509_REQ_get_subject_name(req);
    assert_int_equal(X509_NAME_entry_count(name), 1);
    X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, "other.example.net");
    X509_REQ_free(req);
}

static void gencsr_aborts_in_order(void **state)
{
    fx *f = *state;
    f->node.provision_mode = false;
    aborted(call(f, "gencsr", "{}"),
            "Cannot reconfigure a server that is not in provisioning mode");
    f->node.provision_mode = true;
    f->node.config_file = NULL;
    aborted(call(f, "gencsr", "{\"token\":\"wrong\"}"),
            "Cannot determine where to store SSL data, no configure file given and no SSL "
            "directory configured");
    f->node.config_file = f->conf;
    aborted(call(f, "gencsr", "{\"token\":\"wrong\"}"), "Incorrect provision token supplied");
    /* ssl exists as a file: the directory cannot be made. */
    char ssl[256];
    snprintf(ssl, sizeof(ssl), "%s/ssl", f->dir);
    write_text(ssl, "x", 0600);
    aborted_prefix(call(f, "gencsr", "{\"token\":\"" TOKEN "\"}"),
                   "Could not create SSL Directory ");
}

/* ---- configure ---- */

/* Plays the provisioner: encrypts der for the node's last jwt key (section 2.6). */
static void provisioner_encrypt(fx *f, const unsigned char *der, size_t der_len, char **pem,
                                char pub_hex[65])
{
    ch_rpc_reply *r = call(f, "jwt", "{\"token\":\"" TOKEN "\"}");
    ok(r);
    unsigned char node_pub[32], priv[32], pub[32], secret[32];
    assert_int_equal(ch_pki_hex_decode(data_str(r, "ecdh_public"), 64, node_pub, 32, NULL), CH_OK);
    assert_int_equal(ch_pki_x25519_keypair(priv, pub, NULL), CH_OK);
    assert_int_equal(ch_pki_x25519_derive(priv, node_pub, secret, NULL), CH_OK);
    assert_int_equal(ch_pki_pem_encrypt("RSA PRIVATE KEY", der, der_len, secret, 32, pem, NULL),
                     CH_OK);
    ch_hex_encode(pub, 32, pub_hex);
}

static void configure_writes_everything_with_modes_and_the_decrypted_key(void **state)
{
    fx *f = *state;
    char ssldir[256], p[400];
    snprintf(ssldir, sizeof(ssldir), "%s/ssl", f->dir);

    /* gencsr first, so that there is a csr.pem for configure to remove. */
    ok(call(f, "gencsr", "{\"token\":\"" TOKEN "\"}"));
    snprintf(p, sizeof(p), "%s/csr.pem", ssldir);
    assert_true(exists(p));

    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    unsigned char *der = NULL;
    int der_len = i2d_PrivateKey(key, &der);
    assert_in_range(der_len, 1, INT_MAX);
    char *enc = NULL, pub_hex[65];
    provisioner_encrypt(f, der, (size_t)der_len, &enc, pub_hex);

    json_t *data = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "token", TOKEN, "config",
        "{\"plugin.choria.server.provision\":\"false\",\"identity\":\"node1.example.net\","
        "\"plugin.choria.middleware_hosts\":\"b1:4222,b2:4222\",\"empty\":\"\"}",
        "certificate", "-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n", "ca",
        "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n", "ssldir", ssldir, "key",
        enc, "ecdh_public", pub_hex, "server_jwt", "server.jwt.value", "action_policies",
        "default.policy", "policy text", "skipped.policy", "", "opa_policies", "default.rego",
        "package choria");
    assert_non_null(data);
    ch_rpc_reply *r = call_json(f, "configure", data);
    ok(r);
    keys_are(r, "message");
    char want[300];
    snprintf(want, sizeof(want), "Wrote 5 lines to %s", f->conf);
    assert_string_equal(data_str(r, "message"), want);

    /* The config: header line, then the settings; mode 0600. */
    char *conf = read_text(f->conf);
    char head[200];
    snprintf(head, sizeof(head),
             "# configuration file written in request " REQID
             " from choria=provisioner (prov.example.net) at ");
    assert_int_equal(strncmp(conf, head, strlen(head)), 0);
    assert_non_null(strstr(conf, "\nplugin.choria.server.provision=false\nidentity=node1.example."
                                 "net\nplugin.choria.middleware_hosts=b1:4222,b2:4222\nempty=\n"));
    assert_int_equal(mode_of(f->conf), 0600);
    ch_config *cfg = ch_config_new();
    assert_int_equal(ch_config_load_file(cfg, f->conf, NULL), CH_OK);
    assert_string_equal(ch_config_get(cfg, "plugin.choria.server.provision"), "false");
    ch_config_free(cfg);
    free(conf);

    snprintf(p, sizeof(p), "%s/certificate.pem", ssldir);
    assert_int_equal(mode_of(p), 0644);
    char *t = read_text(p);
    assert_string_equal(t, "-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n");
    free(t);
    snprintf(p, sizeof(p), "%s/ca.pem", ssldir);
    assert_int_equal(mode_of(p), 0644);
    snprintf(p, sizeof(p), "%s/csr.pem", ssldir);
    assert_false(exists(p));

    /* The private key arrives decrypted, as PKCS#1 PEM, byte for byte the provisioner's. */
    snprintf(p, sizeof(p), "%s/private.pem", ssldir);
    assert_int_equal(mode_of(p), 0600);
    t = read_text(p);
    BIO *bio = BIO_new_mem_buf(t, -1);
    char *label = NULL, *hdr = NULL;
    unsigned char *got = NULL;
    long got_len = 0;
    assert_int_equal(PEM_read_bio(bio, &label, &hdr, &got, &got_len), 1);
    assert_string_equal(label, "RSA PRIVATE KEY");
    assert_string_equal(hdr, "");
    assert_int_equal(got_len, der_len);
    assert_memory_equal(got, der, (size_t)der_len);
    OPENSSL_free(label);
    OPENSSL_free(hdr);
    OPENSSL_free(got);
    BIO_free(bio);
    free(t);

    snprintf(p, sizeof(p), "%s/server.jwt", f->dir);
    assert_int_equal(mode_of(p), 0600);
    t = read_text(p);
    assert_string_equal(t, "server.jwt.value");
    free(t);
    snprintf(p, sizeof(p), "%s/policies", f->dir);
    assert_int_equal(mode_of(p), 0700);
    snprintf(p, sizeof(p), "%s/policies/default.policy", f->dir);
    assert_int_equal(mode_of(p), 0400);
    snprintf(p, sizeof(p), "%s/policies/skipped.policy", f->dir);
    assert_false(exists(p)); /* empty bodies are skipped */
    snprintf(p, sizeof(p), "%s/policies/rego", f->dir);
    assert_int_equal(mode_of(p), 0700);
    snprintf(p, sizeof(p), "%s/policies/rego/default.rego", f->dir);
    assert_int_equal(mode_of(p), 0400);
    t = read_text(p);
    assert_string_equal(t, "package choria");
    free(t);

    assert_int_equal(f->rec.n_events, 1);
    assert_int_equal(f->rec.events[0], CH_LIFECYCLE_PROVISIONED);
    assert_int_equal(f->rec.n_restart, 0);

    /* No temp files are left behind. */
    DIR *d = opendir(f->dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        assert_null(strstr(de->d_name, "provision") != NULL &&
                            strcmp(de->d_name, "provisioning.jwt") != 0
                        ? de->d_name
                        : NULL);
    closedir(d);

    OPENSSL_free(der);
    free(enc);
    EVP_PKEY_free(key);
}

static void configure_minimal_request_and_tls_needs_all_three(void **state)
{
    fx *f = *state;
    char ssldir[256];
    snprintf(ssldir, sizeof(ssldir), "%s/ssl", f->dir);
    /* What the provisioner sends when it has no PKI: empty strings and empty maps. */
    char data[600];
    snprintf(data, sizeof(data),
             "{\"ca\":\"\",\"certificate\":\"-----BEGIN CERTIFICATE-----\",\"config\":"
             "\"{\\\"plugin.choria.server.provision\\\":\\\"false\\\"}\",\"ecdh_public\":\"\","
             "\"key\":\"\",\"server_jwt\":\"\",\"ssldir\":\"%s\",\"token\":\"" TOKEN "\","
             "\"action_policies\":{},\"opa_policies\":{}}",
             ssldir);
    ch_rpc_reply *r = call(f, "configure", data);
    ok(r);
    char want[300];
    snprintf(want, sizeof(want), "Wrote 2 lines to %s", f->conf);
    assert_string_equal(data_str(r, "message"), want);
    assert_false(exists(ssldir));
    char p[300];
    snprintf(p, sizeof(p), "%s/policies", f->dir);
    assert_false(exists(p));
    snprintf(p, sizeof(p), "%s/server.jwt", f->dir);
    assert_false(exists(p));
    assert_int_equal(f->rec.n_events, 1);
}

/* Each case: the request data and the exact abort message. Nothing may be written. */
static void configure_fails(fx *f, const char *data, const char *msg, bool prefix)
{
    ch_rpc_reply *r = call(f, "configure", data);
    if (prefix)
        aborted_prefix(r, msg);
    else
        aborted(r, msg);
    config_untouched(f);
    char p[300];
    const char *never[] = {"ssl", "server.jwt", "policies"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", f->dir, never[i]);
        if (exists(p))
            fail_msg("%s was written for '%s'", p, msg);
    }
    assert_int_equal(f->rec.n_events, 0);
}

#define TLS_PART(dir)                                                                              \
    "\"certificate\":\"-----BEGIN CERTIFICATE-----\",\"ca\":\"-----BEGIN CERTIFICATE-----\","      \
    "\"ssldir\":\"" dir "\""

static void configure_aborts_in_order_and_leaves_the_config_untouched(void **state)
{
    fx *f = *state;
    char buf[4096], ssl[256];
    snprintf(ssl, sizeof(ssl), "%s/ssl", f->dir);

    f->node.provision_mode = false;
    configure_fails(f, "{\"token\":\"wrong\",\"config\":\"\"}",
                    "Cannot reconfigure a server that is not in provisioning mode", false);
    f->node.provision_mode = true;
    f->node.config_file = NULL;
    configure_fails(f, "{\"token\":\"wrong\"}", "Cannot determine the configuration file to manage",
                    false);
    f->node.config_file = f->conf;
    configure_fails(f, "{\"token\":\"wrong\",\"config\":\"\"}",
                    "Incorrect provision token supplied", false);
    configure_fails(f, "{\"token\":\"" TOKEN "\",\"config\":\"\",\"key\":\"k\"}",
                    "Did not receive any configuration to write, cannot write a empty "
                    "configuration file",
                    false);
    configure_fails(f, "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a\\\":1}\",\"key\":\"k\"}",
                    "EDCH Public Key not supplied while providing a private key", false);
    configure_fails(f, "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a\\\":1}\"}",
                    "Could not decode configuration data: json: cannot unmarshal number into Go "
                    "value of type string",
                    false);
    configure_fails(f, "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a\\\":{\\\"b\\\":\\\"c\\\"}}\"}",
                    "Could not decode configuration data: json: cannot unmarshal object into Go "
                    "value of type string",
                    false);
    configure_fails(f, "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a\\\":true}\"}",
                    "Could not decode configuration data: json: cannot unmarshal bool into Go "
                    "value of type string",
                    false);
    configure_fails(f, "{\"token\":\"" TOKEN "\",\"config\":\"[\\\"a\\\"]\"}",
                    "Could not decode configuration data: json: cannot unmarshal array into Go "
                    "value of type map[string]string",
                    false);
    configure_fails(f, "{\"token\":\"" TOKEN "\",\"config\":\"{nope\"}",
                    "Could not decode configuration data: invalid JSON", true);

    /* TLS stage: the key needs a jwt call in this process, a valid point, encryption. */
    snprintf(buf, sizeof(buf),
             "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a\\\":\\\"b\\\"}\",\"key\":\"k\","
             "\"ecdh_public\":\"%064d\"," TLS_PART("%s") "}",
             0, ssl);
    configure_fails(f, buf, "TLS Setup Failed: could not decrypt private key: private key not set",
                    false);
    snprintf(buf, sizeof(buf),
             "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a\\\":\\\"b\\\"}\",\"key\":\"k\","
             "\"ecdh_public\":\"zz\"," TLS_PART("%s") "}",
             ssl);
    configure_fails(f, buf, "TLS Setup Failed: could not decrypt private key: encoding/hex", true);
    ok(call(f, "jwt", "{\"token\":\"" TOKEN "\"}"));
    snprintf(buf, sizeof(buf),
             "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a\\\":\\\"b\\\"}\",\"key\":\"k\","
             "\"ecdh_public\":\"00ff\"," TLS_PART("%s") "}",
             ssl);
    configure_fails(f, buf,
                    "TLS Setup Failed: could not decrypt private key: bad point length: 2, "
                    "expected 32",
                    false);
    unsigned char priv[32], pub[32];
    char pub_hex[65];
    assert_int_equal(ch_pki_x25519_keypair(priv, pub, NULL), CH_OK);
    ch_hex_encode(pub, 32, pub_hex);
    snprintf(buf, sizeof(buf),
             "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a\\\":\\\"b\\\"}\",\"key\":\"-----BEGIN "
             "RSA PRIVATE KEY-----\\nAAAA\\n-----END RSA PRIVATE KEY-----\\n\","
             "\"ecdh_public\":\"%s\"," TLS_PART("%s") "}",
             pub_hex, ssl);
    configure_fails(f, buf, "TLS Setup Failed: could not decrypt private key: key is not encrypted",
                    false);
    snprintf(
        buf, sizeof(buf),
        "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a\\\":\\\"b\\\"}\",\"key\":\"garbage\","
        "\"ecdh_public\":\"%s\"," TLS_PART("%s") ",\"action_policies\":{\"../x.policy\":\"x\"}}",
        pub_hex, ssl);
    configure_fails(f, buf, "TLS Setup Failed: could not decrypt private key: bad key received",
                    false);

    /* writeConfig stage: values may not break lines, keys must be config keys. */
    configure_fails(f,
                    "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a\\\":\\\"b\\\\nplugin.choria."
                    "server.provision=true\\\"}\",\"action_policies\":{\"x.txt\":\"x\"}}",
                    "Could not write config: the value of configuration key \"a\" contains a line "
                    "break",
                    false);
    configure_fails(f, "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a\\\":\\\"b\\\\r\\\"}\"}",
                    "Could not write config: the value of configuration key \"a\" contains a line "
                    "break",
                    false);
    configure_fails(f, "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a b\\\":\\\"c\\\"}\"}",
                    "Could not write config: configuration key \"a b\" contains white space or a "
                    "control character",
                    false);
    configure_fails(f, "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a=b\\\":\\\"c\\\"}\"}",
                    "Could not write config: configuration key \"a=b\" contains '='", false);
    configure_fails(f, "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"\\\":\\\"c\\\"}\"}",
                    "Could not write config: configuration key \"\" is empty", false);
    configure_fails(f, "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"a:b\\\":\\\"c\\\"}\"}",
                    "Could not write config: generated configuration could not be parsed: ", true);

    /* Policies: the suffix, and names that would leave the policy directory. */
    configure_fails(f,
                    "{\"token\":\"" TOKEN "\",\"config\":\"{}\",\"action_policies\":"
                    "{\"ok.policy\":\"x\",\"x.txt\":\"x\"}}",
                    "Could not save Action Policies: expected \"x.txt\" to have .policy extension",
                    false);
    configure_fails(f,
                    "{\"token\":\"" TOKEN "\",\"config\":\"{}\",\"action_policies\":"
                    "{\"\":\"x\"}}",
                    "Could not save Action Policies: expected \"\" to have .policy extension",
                    false);
    const char *escaping[] = {"../x.policy",    "/etc/x.policy", "a/b.policy",  ".policy",
                              ".hidden.policy", "a..b.policy",   "a\\nb.policy"};
    for (size_t i = 0; i < sizeof(escaping) / sizeof(escaping[0]); i++) {
        snprintf(buf, sizeof(buf),
                 "{\"token\":\"" TOKEN "\",\"config\":\"{}\",\"action_policies\":{\"%s\":\"x\"}}",
                 escaping[i]);
        configure_fails(f, buf, "Could not save Action Policies: invalid policy file name ", true);
    }
    configure_fails(
        f,
        "{\"token\":\"" TOKEN "\",\"config\":\"{}\",\"opa_policies\":"
        "{\"x.policy\":\"x\"}}",
        "Could not save Open Policy Agent Policies: expected \"x.policy\" to have .rego "
        "extension",
        false);
    configure_fails(f,
                    "{\"token\":\"" TOKEN "\",\"config\":\"{}\",\"action_policies\":"
                    "{\"a.policy\":\"x\"},\"opa_policies\":{\"../../x.rego\":\"x\"}}",
                    "Could not save Open Policy Agent Policies: invalid policy file name "
                    "\"../../x.rego\": it must not contain '/' or '..'",
                    false);
    assert_int_equal(f->rec.n_restart, 0);
}

static void configure_refuses_oversized_input(void **state)
{
    fx *f = *state;
    char ssl[256];
    snprintf(ssl, sizeof(ssl), "%s/ssl", f->dir);

    /* config text over 256 KiB */
    size_t n = 300 * 1024;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"a\":\"b\"", 8);
    big[n - 1] = '}';
    big[n] = '\0';
    json_t *d = json_pack("{s:s, s:s}", "token", TOKEN, "config", big);
    aborted_prefix(call_json(f, "configure", d),
                   "Could not decode configuration data: configuration of 307200 bytes exceeds "
                   "the limit");
    /* more than 1024 settings */
    json_t *obj = json_object();
    for (int i = 0; i < 1100; i++) {
        char k[32];
        snprintf(k, sizeof(k), "key%d", i);
        json_object_set_new(obj, k, json_string("v"));
    }
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    d = json_pack("{s:s, s:s}", "token", TOKEN, "config", text);
    aborted(call_json(f, "configure", d),
            "Could not decode configuration data: 1100 settings exceed the limit of 1024");
    free(text);
    /* a value over 4096 characters */
    char *val = malloc(5000 + 32);
    strcpy(val, "{\"a\":\"");
    memset(val + 6, 'x', 5000);
    strcpy(val + 5006, "\"}");
    d = json_pack("{s:s, s:s}", "token", TOKEN, "config", val);
    aborted(call_json(f, "configure", d),
            "Could not decode configuration data: the value of setting a is longer than 4096 "
            "characters");
    free(val);
    /* a certificate over 64 KiB */
    memset(big, 'C', 70000);
    big[70000] = '\0';
    d = json_pack("{s:s, s:s, s:s, s:s, s:s}", "token", TOKEN, "config", "{}", "certificate", big,
                  "ca", "ca", "ssldir", ssl);
    aborted(call_json(f, "configure", d),
            "TLS Setup Failed: certificate of 70000 bytes exceeds the limit of 65536 bytes");
    /* server_jwt over 64 KiB */
    d = json_pack("{s:s, s:s, s:s}", "token", TOKEN, "config", "{}", "server_jwt", big);
    aborted(call_json(f, "configure", d),
            "JWT Setup Failed: server JWT of 70000 bytes exceeds the limit of 65536 bytes");
    /* more than 256 policies */
    obj = json_object();
    for (int i = 0; i < 300; i++) {
        char k[32];
        snprintf(k, sizeof(k), "p%d.policy", i);
        json_object_set_new(obj, k, json_string("x"));
    }
    d = json_pack("{s:s, s:s, s:o}", "token", TOKEN, "config", "{}", "action_policies", obj);
    aborted(call_json(f, "configure", d),
            "Could not save Action Policies: 300 policies exceed the limit of 256");
    free(big);
    config_untouched(f);
    char p[300];
    snprintf(p, sizeof(p), "%s/policies", f->dir);
    assert_false(exists(p));
    assert_false(exists(ssl));
    assert_int_equal(f->rec.n_events, 0);
}

static void configure_through_a_symlinked_config_replaces_the_real_file(void **state)
{
    fx *f = *state;
    char real_dir[256], real[300], link[300];
    snprintf(real_dir, sizeof(real_dir), "%s/real", f->dir);
    snprintf(real, sizeof(real), "%s/server.conf", real_dir);
    snprintf(link, sizeof(link), "%s/link.conf", f->dir);
    assert_int_equal(mkdir(real_dir, 0700), 0);
    write_text(real, "plugin.choria.server.provision=true\n", 0644);
    assert_int_equal(symlink(real, link), 0);
    f->node.config_file = link;
    ok(call(f, "configure", "{\"token\":\"" TOKEN "\",\"config\":\"{\\\"x\\\":\\\"y\\\"}\"}"));
    struct stat sb;
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    char *t = read_text(real);
    assert_non_null(strstr(t, "\nx=y\n"));
    free(t);
    assert_int_equal(mode_of(real), 0600);
}

/* ---- restart, reprovision, shutdown ---- */

static void restart_replies_then_asks_the_host_once(void **state)
{
    fx *f = *state;
    write_text(f->conf, "plugin.choria.server.provision = false\n", 0600);
    ch_rpc_reply *r = call(f, "restart", "{\"splay\":1,\"token\":\"" TOKEN "\"}");
    ok(r);
    keys_are(r, "message");
    assert_string_equal(data_str(r, "message"), "Restarting Choria Server after 2s");
    assert_int_equal(f->rec.n_restart, 1);
    assert_int_equal(f->rec.restart_ms, 2000);
    assert_true(f->ps.restart_pending);
    /* A second restart replies but does not restart twice. */
    ok(call(f, "restart", "{\"splay\":1,\"token\":\"" TOKEN "\"}"));
    assert_int_equal(f->rec.n_restart, 1);
    assert_int_equal(f->rec.n_shutdown, 0);

    /* The default splay of 10 gives 2..11 s; the host clears the guard when it is back. */
    f->ps.restart_pending = false;
    r = call(f, "restart", "{\"token\":\"" TOKEN "\"}");
    ok(r);
    int secs = 0;
    assert_int_equal(sscanf(data_str(r, "message"), "Restarting Choria Server after %ds", &secs),
                     1);
    assert_in_range(secs, 2, 11);
    assert_int_equal(f->rec.restart_ms, secs * 1000);
    /* A provisioned node that still has the token may be restarted. */
    f->ps.restart_pending = false;
    f->node.provision_mode = false;
    ok(call(f, "restart", "{\"token\":\"" TOKEN "\",\"splay\":-5}"));
}

static void restart_aborts_in_order(void **state)
{
    fx *f = *state;
    f->node.provision_mode = false;
    f->node.provision_token = NULL;
    aborted(call(f, "restart", "{}"),
            "Cannot restart a server that is not in provisioning mode or with no token set");
    f->node.provision_mode = true;
    f->node.provision_token = TOKEN;
    aborted(call(f, "restart", "{\"token\":\"x\"}"), "Incorrect provision token supplied");
    char want[400];
    snprintf(want, sizeof(want), "Configuration %s enables provisioning, restart cannot continue",
             f->conf);
    aborted(call(f, "restart", "{\"token\":\"" TOKEN "\"}"), want);
    write_text(f->conf, "plugin.choria.server.provision = maybe\n", 0600);
    snprintf(want, sizeof(want),
             "Configuration %s could not be parsed, restart cannot continue: ", f->conf);
    aborted_prefix(call(f, "restart", "{\"token\":\"" TOKEN "\"}"), want);
    write_text(f->conf, "this is not a config\n", 0600);
    aborted_prefix(call(f, "restart", "{\"token\":\"" TOKEN "\"}"), want);
    unlink(f->conf);
    aborted_prefix(call(f, "restart", "{\"token\":\"" TOKEN "\"}"), want);
    assert_int_equal(f->rec.n_restart, 0);
    assert_false(f->ps.restart_pending);
}

static void reprovision_writes_a_provisioning_config_and_restarts(void **state)
{
    fx *f = *state;
    aborted(call(f, "reprovision", "{\"token\":\"" TOKEN "\"}"),
            "Server is already in provisioning mode, cannot enable provisioning mode again");
    f->node.provision_mode = false;
    f->node.config_file = NULL;
    aborted(call(f, "reprovision", "{\"token\":\"" TOKEN "\"}"),
            "Cannot determine the configuration file to manage");
    f->node.config_file = f->conf;
    aborted(call(f, "reprovision", "{\"token\":\"bad\"}"), "Incorrect provision token supplied");
    assert_int_equal(f->rec.n_restart, 0);

    write_text(f->conf,
               "plugin.choria.server.provision=false\nlogfile=/var/log/choria.log\n"
               "identity=n1\nplugin.choria.registration.file_content.data=/etc/reg.json\n",
               0600);
    ch_rpc_reply *r = call(f, "reprovision", "{\"token\":\"" TOKEN "\"}");
    ok(r);
    int secs = 0;
    assert_int_equal(sscanf(data_str(r, "message"), "Restarting after %ds", &secs), 1);
    assert_in_range(secs, 2, 11);
    assert_int_equal(f->rec.n_restart, 1);
    assert_int_equal(f->rec.restart_ms, secs * 1000);
    char *t = read_text(f->conf);
    assert_non_null(strstr(t, "\nplugin.choria.server.provision=1\nloglevel=debug\n"
                              "logfile=/var/log/choria.log\nregistration=file_content\n"
                              "plugin.choria.registration.file_content.data=/etc/reg.json\n"));
    assert_null(strstr(t, "identity"));
    free(t);
}

static void shutdown_replies_then_asks_the_host(void **state)
{
    fx *f = *state;
    f->node.provision_mode = false;
    f->node.provision_token = "";
    aborted(call(f, "shutdown", "{}"),
            "Cannot shutdown a server that is not in provisioning mode or with no token set");
    f->node.provision_token = TOKEN;
    aborted(call(f, "shutdown", "{\"token\":\"x\"}"), "Incorrect provision token supplied");
    ch_rpc_reply *r = call(f, "shutdown", "{\"token\":\"" TOKEN "\"}");
    ok(r);
    int secs = -1;
    assert_int_equal(sscanf(data_str(r, "message"), "Shutting Choria Server down after %ds", &secs),
                     1);
    assert_in_range(secs, 0, 9);
    assert_int_equal(f->rec.n_shutdown, 1);
    assert_int_equal(f->rec.shutdown_ms, secs * 1000);
    assert_int_equal(f->rec.n_restart, 0);
    assert_int_equal(f->rec.n_events, 0);
}

/* ---- release_update ---- */

static void release_update_aborts_without_an_update_command(void **state)
{
    fx *f = *state;
    const char *d = "{\"repository\":\"https://repo.example.net\",\"token\":\"" TOKEN
                    "\",\"version\":\"1.2.3\"}";
    f->node.provision_mode = false;
    aborted(call(f, "release_update", d),
            "Cannot update a server that is not in provisioning mode");
    f->node.provision_mode = true;
    aborted(call(f, "release_update", d), "Version updates is not enabled in the configuration");
    f->node.allow_update = true;
    aborted(call(f, "release_update", "{\"token\":\"x\"}"), "Incorrect provision token supplied");
    aborted(call(f, "release_update", d),
            "release_update is not supported: no update command is configured");
    assert_int_equal(f->rec.n_events + f->rec.n_restart, 0);
}

static void release_update_runs_the_command_without_a_shell(void **state)
{
    fx *f = *state;
    char script[256], out[256], body[700];
    snprintf(script, sizeof(script), "%s/update.sh", f->dir);
    snprintf(out, sizeof(out), "%s/update.out", f->dir);
    snprintf(body, sizeof(body),
             "#!/bin/sh\nprintf '%%s|%%s|%%s' \"$#\" \"$1\" \"$2\" > %s\n"
             "[ \"$1\" = 9.9.9 ] && exit 3\nexit 0\n",
             out);
    write_text(script, body, 0700);
    f->node.allow_update = true;
    f->node.update_command = script;

    ch_rpc_reply *r = call(f, "release_update",
                           "{\"repository\":\"https://repo.example.net/a;b\","
                           "\"token\":\"" TOKEN "\",\"version\":\"1.2.3\"}");
    ok(r);
    assert_string_equal(data_str(r, "message"), "Restarting Choria Server after 2s");
    char *t = read_text(out);
    assert_string_equal(t, "2|1.2.3|https://repo.example.net/a;b");
    free(t);
    assert_int_equal(f->rec.n_events, 1);
    assert_int_equal(f->rec.events[0], CH_LIFECYCLE_UPGRADED);
    assert_string_equal(f->rec.version, "1.2.3");
    assert_int_equal(f->rec.n_restart, 1);
    assert_int_equal(f->rec.restart_ms, 2000);

    aborted_prefix(call(f, "release_update",
                        "{\"repository\":\"https://r\",\"token\":\"" TOKEN
                        "\",\"version\":\"9.9.9\"}"),
                   "Update to version 9.9.9 failed: ");
}

static void release_update_failures_are_reported(void **state)
{
    fx *f = *state;
    char script[256];
    snprintf(script, sizeof(script), "%s/fail.sh", f->dir);
    write_text(script, "#!/bin/sh\nexit 3\n", 0700);
    f->node.allow_update = true;
    f->node.update_command = script;
    char want[400];
    snprintf(want, sizeof(want), "Update to version 9.9.9 failed: %s exited with status 3", script);
    aborted(call(f, "release_update",
                 "{\"repository\":\"https://r\",\"token\":\"" TOKEN "\",\"version\":\"9.9.9\"}"),
            want);
    aborted(call(f, "release_update",
                 "{\"repository\":\"https://r\",\"token\":\"" TOKEN "\",\"version\":\"-rf\"}"),
            "Update failed: invalid version -rf");
    aborted(call(f, "release_update",
                 "{\"repository\":\"file:///etc\",\"token\":\"" TOKEN "\",\"version\":\"1.0\"}"),
            "Update to version 1.0 failed: invalid repository URL");
    f->node.update_command = "/nonexistent/updater";
    aborted_prefix(call(f, "release_update",
                        "{\"repository\":\"https://r\",\"token\":\"" TOKEN
                        "\",\"version\":\"1.0\"}"),
                   "Update to version 1.0 failed: ");
    assert_int_equal(f->rec.n_events + f->rec.n_restart, 0);
}

/* ---- confwrite (writeConfig) ---- */

static void confwrite_header_and_lines_follow_go_choria(void **state)
{
    (void)state;
    const char *keys[] = {"identity", "plugin.choria.middleware_hosts"};
    const char *values[] = {"n1.example.net", "b1:4222, b2:4222"};
    ch_confwrite_origin o = {REQID, "choria=prov\nidentity=evil", "prov.example.net"};
    char *text = NULL;
    size_t len = 0, lines = 0;
    setenv("TZ", "UTC", 1);
    tzset();
    assert_int_equal(
        ch_confwrite_render(&o, keys, values, 2, 1718030146123456789LL, &text, &len, &lines, NULL),
        CH_OK);
    assert_int_equal(lines, 3);
    assert_string_equal(text, "# configuration file written in request " REQID
                              " from choria=prov_identity=evil (prov.example.net) at 2024-06-10 "
                              "14:35:46.123456789 +0000 UTC\n"
                              "identity=n1.example.net\n"
                              "plugin.choria.middleware_hosts=b1:4222, b2:4222\n");
    assert_int_equal(len, strlen(text));
    free(text);

    char t[96];
    ch_confwrite_format_time(1718030146120000000LL, t, sizeof(t));
    assert_string_equal(t, "2024-06-10 14:35:46.12 +0000 UTC");
    ch_confwrite_format_time(1718030146000000000LL, t, sizeof(t));
    assert_string_equal(t, "2024-06-10 14:35:46 +0000 UTC");

    /* No settings: only the header. */
    assert_int_equal(ch_confwrite_render(NULL, NULL, NULL, 0, 0, &text, &len, &lines, NULL), CH_OK);
    assert_int_equal(lines, 1);
    const char *head = "# configuration file written in request  from  () at 1970-01-01 00:00:00 "
                       "+0000 UTC\n";
    assert_string_equal(text, head);
    free(text);
}

static void confwrite_install_and_file_are_atomic_with_exact_modes(void **state)
{
    fx *f = *state;
    ch_error err = {0};
    mode_t old = umask(077);
    assert_int_equal(ch_confwrite_install(f->conf, "a=b\n", 4, 0, &err), CH_OK);
    char *t = read_text(f->conf);
    assert_string_equal(t, "a=b\n");
    free(t);
    assert_int_equal(mode_of(f->conf), 0600);

    char p[300], d[300];
    snprintf(p, sizeof(p), "%s/f.pem", f->dir);
    assert_int_equal(ch_confwrite_file(p, "x", 1, 0644, 0, &err), CH_OK);
    assert_int_equal(mode_of(p), 0644);
    assert_int_equal(ch_confwrite_file(p, "yy", 2, 0400, 0, &err), CH_OK);
    assert_int_equal(mode_of(p), 0400);
    t = read_text(p);
    assert_string_equal(t, "yy");
    free(t);

    snprintf(d, sizeof(d), "%s/a/b//c/", f->dir);
    assert_int_equal(ch_confwrite_mkdir_p(d, 0771, &err), CH_OK);
    snprintf(d, sizeof(d), "%s/a/b/c", f->dir);
    assert_int_equal(mode_of(d), 0771);
    assert_int_equal(ch_confwrite_mkdir_p(d, 0700, &err), CH_OK); /* existing: kept */
    assert_int_equal(mode_of(d), 0771);
    assert_int_equal(ch_confwrite_mkdir_p(p, 0700, &err), CH_ERR_IO);
    assert_non_null(strstr(err.msg, "not a directory"));
    umask(old);

    assert_int_equal(ch_confwrite_install("/nonexistent-dir/x.conf", "a=b\n", 4, 0, &err),
                     CH_ERR_IO);
    assert_non_null(strstr(err.msg, "cannot create a temp file in /nonexistent-dir"));
    assert_int_equal(ch_confwrite_install("", "", 0, 0, &err), CH_ERR_INVALID);

    /* Only the files written, no temp files (and the harness's owner file). */
    int n = 0;
    DIR *dir = opendir(f->dir);
    struct dirent *de;
    while ((de = readdir(dir)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
            strcmp(de->d_name, CHT_OWNER_FILE) != 0)
            n++;
    closedir(dir);
    assert_int_equal(n, 4); /* server.conf, provisioning.jwt, f.pem, a */
}

/* Dirty and under-writeback pages of the file at path, via cachestat(2) (Linux 6.5). -1 when
 * the kernel cannot tell. */
static long long unflushed_pages(const char *path)
{
#ifdef __linux__
    struct {
        uint64_t off, len;
    } range = {0, 0}; /* len 0: to the end of the file */
    struct {
        uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
    } cs = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long r = syscall(451 /* __NR_cachestat */, fd, &range, &cs, 0);
    close(fd);
    return r == 0 ? (long long)(cs.nr_dirty + cs.nr_writeback) : -1;
#else
    return -1;
#endif
}

/* CH_CONFWRITE_NO_SYNC writes the same bytes and modes, and leaves them in the page cache
 * unflushed where the durable write flushed them. The cache is the only witness that fsync was
 * skipped; on a file system where fsync leaves pages dirty (tmpfs) or a kernel without
 * cachestat the test cannot tell and skips that part. */
static void confwrite_no_sync_writes_the_same_file_without_flushing_it(void **state)
{
    fx *f = *state;
    ch_error err = {0};
    char p[300];
    snprintf(p, sizeof(p), "%s/nosync.conf", f->dir);
    assert_int_equal(ch_confwrite_install(p, "a=b\n", 4, CH_CONFWRITE_NO_SYNC, &err), CH_OK);
    char *t = read_text(p);
    assert_string_equal(t, "a=b\n");
    free(t);
    assert_int_equal(mode_of(p), 0600);
    long long nosync = unflushed_pages(p);
    assert_int_equal(ch_confwrite_file(p, "yy", 2, 0400, CH_CONFWRITE_NO_SYNC, &err), CH_OK);
    t = read_text(p);
    assert_string_equal(t, "yy");
    free(t);
    assert_int_equal(mode_of(p), 0400);

    assert_int_equal(ch_confwrite_install(f->conf, "c=d\n", 4, 0, &err), CH_OK);
    long long durable = unflushed_pages(f->conf);
    if (durable != 0 || nosync < 0)
        skip(); /* cannot tell flushed from unflushed pages here */
    assert_in_range(nosync, 1, 1000);
}

/* A node with no_sync still installs the configuration configure sends. */
static void configure_on_a_no_sync_node_writes_the_config(void **state)
{
    fx *f = *state;
    f->node.no_sync = true;
    ch_rpc_reply *r = call(f, "configure",
                           "{\"config\":\"{\\\"plugin.choria.server.provision\\\":\\\"false\\\","
                           "\\\"identity\\\":\\\"n1\\\"}\",\"token\":\"" TOKEN "\"}");
    ok(r);
    char *t = read_text(f->conf);
    assert_non_null(strstr(t, "\nplugin.choria.server.provision=false\n"));
    assert_non_null(strstr(t, "\nidentity=n1\n"));
    free(t);
    assert_int_equal(f->rec.n_events, 1);
}

int main(void)
{
    ch_log_set_level(CH_LOG_OFF);
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(active_only_with_state_and_mode_or_token),
        T(lock_is_held_per_caller_before_mode_and_token_checks),
        T(tokens_must_match_unless_none_is_known),
        T(arguments_follow_go_json_unmarshal),
        T(jwt_returns_the_file_verbatim_and_a_fresh_x25519_key),
        T(jwt_aborts_in_order),
        T(gen25519_writes_the_seed_removes_server_jwt_and_signs_the_nonce),
        T(gen25519_makes_a_relative_config_directory_absolute),
        T(gen25519_aborts_in_order),
        T(gencsr_writes_key_and_csr_with_modes_and_replies_in_order),
        T(gencsr_aborts_in_order),
        T(configure_writes_everything_with_modes_and_the_decrypted_key),
        T(configure_minimal_request_and_tls_needs_all_three),
        T(configure_aborts_in_order_and_leaves_the_config_untouched),
        T(configure_refuses_oversized_input),
        T(configure_through_a_symlinked_config_replaces_the_real_file),
        T(restart_replies_then_asks_the_host_once),
        T(restart_aborts_in_order),
        T(reprovision_writes_a_provisioning_config_and_restarts),
        T(shutdown_replies_then_asks_the_host),
        T(release_update_aborts_without_an_update_command),
        T(release_update_runs_the_command_without_a_shell),
        T(release_update_failures_are_reported),
        T(confwrite_header_and_lines_follow_go_choria),
        T(confwrite_install_and_file_are_atomic_with_exact_modes),
        T(confwrite_no_sync_writes_the_same_file_without_flushing_it),
        T(configure_on_a_no_sync_node_writes_the_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
