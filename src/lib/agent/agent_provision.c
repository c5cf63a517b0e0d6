/* The choria_provision agent, node side (go-choria providers/agent/mcorpc/golang/provision).
 *
 * Pure library code: files are written here, but everything the host must do (publish a
 * lifecycle event, restart, shut down) is queued while the action runs under the node's
 * provisioning mutex and handed to the ch_node_host callbacks after the mutex is released.
 *
 * Differences from go-choria, all on the side of safety:
 * - configure validates everything (config JSON, private key decryption, the rendered config,
 *   policy names) before it writes anything, and writes the config last, so any error leaves
 *   the existing config untouched. Policy names may not leave their directory.
 * - Sizes are bounded (see the limits below); the config JSON may not repeat a key.
 * - Files are replaced atomically with exact modes; created directories get exact modes.
 * - gen25519 stops when it cannot remove an old server.jwt (go-choria carries on).
 * - restart treats a negative splay like 0 (go-choria panics) and caps it at a day. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "choria/agent.h"
#include "choria/config.h"
#include "choria/confwrite.h"
#include "choria/json.h"
#include "choria/log.h"
#include "choria/pki.h"
#include "choria/process.h"
#include "choria/provjwt.h"
#include "choria/util.h"

#define AGENT_NAME "choria_provision"
#define LOCK_WINDOW_MS (2 * 60 * 1000)
#define LOCKED_MSG "Could not obtain provisioning lock"

/* Bounds on what configure accepts (go-choria has none). */
#define MAX_CONFIG_TEXT (256 * 1024)
#define MAX_CONFIG_KEYS 1024
#define MAX_KEY_LEN 256
#define MAX_VALUE_LEN 4096
#define MAX_POLICIES 256
#define MAX_POLICY_SIZE (256 * 1024)
#define MAX_POLICIES_TOTAL (4 * 1024 * 1024)
#define MAX_CERT_SIZE (64 * 1024)
#define MAX_CA_SIZE (1024 * 1024)
#define MAX_KEY_SIZE (64 * 1024)
#define MAX_SERVER_JWT_SIZE (64 * 1024)
#define MAX_SSLDIR_LEN 1024
#define MAX_SPLAY_SECONDS 86400
#define UPDATE_TIMEOUT_MS 15000

/* ---- small helpers ---- */

static const char *S(const char *s)
{
    return s != NULL ? s : "";
}

static bool empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

static void abort_msg(ch_rpc_reply *reply, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void abort_msg(ch_rpc_reply *reply, const char *fmt, ...)
{
    char msg[sizeof(reply->statusmsg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ch_rpc_reply_fail(reply, CH_RPC_ABORTED, "%s", msg);
}

/* Sets a string in the reply data; paths and file contents need not be valid UTF-8 (the
 * encoder replaces bad bytes as Go does). */
static void set_str(ch_rpc_reply *reply, const char *key, const char *value)
{
    json_object_set_new(reply->data, key, json_stringn_nocheck(S(value), strlen(S(value))));
}

static int64_t random_below(int64_t n)
{
    uint64_t r = 0;
    if (n <= 1 || !ch_random_bytes(&r, sizeof(r)))
        return 0;
    return (int64_t)(r % (uint64_t)n);
}

static void format_seconds(int64_t seconds, char out[CH_DURATION_STR_MAX])
{
    ch_config_format_duration(seconds * 1000000000LL, out, CH_DURATION_STR_MAX);
}

/* Go's filepath.Clean, in place (the result is never longer than the input). */
static void clean_path(char *p)
{
    size_t n = strlen(p), r = 0, w = 0, dotdot = 0;
    bool rooted = n > 0 && p[0] == '/';
    if (rooted)
        r = w = dotdot = 1;
    while (r < n) {
        if (p[r] == '/') {
            r++;
        } else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
            r++;
        } else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && p[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    p[w++] = '/';
                p[w++] = '.';
                p[w++] = '.';
                dotdot = w;
            }
        } else {
            if (w != (rooted ? 1u : 0u))
                p[w++] = '/';
            while (r < n && p[r] != '/')
                p[w++] = p[r++];
        }
    }
    if (w == 0)
        p[w++] = '.';
    p[w] = '\0';
}

/* Go's filepath.Dir into out (PATH_MAX). */
static bool path_dir(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    int n;
    if (slash == NULL)
        n = snprintf(out, size, ".");
    else
        n = snprintf(out, size, "%.*s", (int)(slash - path + 1), path);
    if (n < 0 || (size_t)n >= size)
        return false;
    clean_path(out);
    return true;
}

static bool path_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < size;
}

/* ---- Go json.Unmarshal into the request structs ---- */

/* Decodes data into out as the agent's Go request struct s; on a type mismatch replies
 * statuscode 4 with Go's message. Strings and maps are borrowed from data. */
static bool parse_args(const ch_rpc_request *req, ch_rpc_reply *reply, const char *action,
                       const ch_json_struct *s, void *out)
{
    ch_error e;
    if (ch_json_decode(req->data, s, out, &e) == CH_OK)
        return true;
    ch_rpc_reply_fail(reply, CH_RPC_INVALID_DATA, "Could not parse request data for %s#%s: %s",
                      AGENT_NAME, action, e.msg);
    return false;
}

/* ---- locking, token, host callbacks ---- */

/* What the host must do once the action has released the mutex. */
typedef struct {
    bool publish;
    ch_lifecycle_type event;
    char new_version[64];
    int64_t restart_ms;  /* -1 = none */
    int64_t shutdown_ms; /* -1 = none */
} host_todo;

static const char *env_str(const ch_rpc_request *req, int which)
{
    if (req->envelope == NULL)
        return "";
    switch (which) {
    case 0:
        return S(req->envelope->requestid);
    case 1:
        return S(req->envelope->callerid);
    default:
        return S(req->envelope->senderid);
    }
}
#define REQID(r) env_str(r, 0)
#define CALLER(r) env_str(r, 1)
#define SENDER(r) env_str(r, 2)

/* go-choria lockFor: one holder "<senderid>.<callerid>" for LOCK_WINDOW, extended on each
 * locked call. Called with the state mutex held. */
static bool try_lock(ch_provision_state *ps, const ch_rpc_request *req)
{
    char key[sizeof(ps->lock_owner)];
    int n = snprintf(key, sizeof(key), "%s.%s", SENDER(req), CALLER(req));
    if (n < 0 || (size_t)n >= sizeof(key))
        return false; /* cannot be told apart from a truncated other caller */
    int64_t now = ch_now_mono_ms();
    bool held = ps->lock_until_ms != 0 && now < ps->lock_until_ms;
    if (held && strcmp(ps->lock_owner, key) != 0)
        return false;
    memcpy(ps->lock_owner, key, (size_t)n + 1);
    ps->lock_until_ms = now + LOCK_WINDOW_MS;
    return true;
}

/* How this node writes its files: durable unless its host said otherwise (ch_node.no_sync). */
static unsigned write_flags(const ch_node *node)
{
    return node->no_sync ? CH_CONFWRITE_NO_SYNC : 0;
}

static bool check_token(const ch_node *node, const ch_rpc_request *req, const char *token,
                        ch_rpc_reply *reply)
{
    const char *want = node->provision_token;
    if (empty(want))
        return true;
    size_t wl = strlen(want), gl = strlen(S(token));
    if (wl == gl && CRYPTO_memcmp(want, S(token), wl) == 0)
        return true;
    /* go-choria logs the token given; we only say that it was wrong. */
    ch_error("Incorrect provisioning token given in request %s from %s (%s)", REQID(req),
             CALLER(req), SENDER(req));
    abort_msg(reply, "Incorrect provision token supplied");
    return false;
}

/* Arms the one-shot restart guard; false when a restart or shutdown is already pending. */
static bool arm_restart(ch_node *node)
{
    if (node->provision->restart_pending)
        return false;
    node->provision->restart_pending = true;
    return true;
}

typedef void (*body_fn)(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply,
                        host_todo *todo);

static void run_action(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply, bool locked,
                       body_fn body)
{
    ch_provision_state *ps = node->provision;
    host_todo todo = {.restart_ms = -1, .shutdown_ms = -1};
    if (ps == NULL) {
        abort_msg(reply, "The choria_provision agent is not active on this node");
        return;
    }
    pthread_mutex_lock(&ps->mutex);
    /* The lock is taken before the token and mode checks, as go-choria does. */
    if (locked && !try_lock(ps, req))
        abort_msg(reply, LOCKED_MSG);
    else
        body(node, req, reply, &todo);
    pthread_mutex_unlock(&ps->mutex);

    const ch_node_host *h = &node->host;
    if (todo.publish && h->publish_event != NULL) {
        ch_status st = h->publish_event(h->closure, todo.event,
                                        todo.new_version[0] != '\0' ? todo.new_version : NULL);
        if (st != CH_OK)
            ch_error("Could not publish %s lifecycle event: %s",
                     todo.event == CH_LIFECYCLE_UPGRADED ? "upgraded" : "provisioned",
                     ch_status_text(st));
    }
    if (todo.restart_ms >= 0 && h->restart != NULL)
        h->restart(h->closure, todo.restart_ms);
    if (todo.shutdown_ms >= 0 && h->shutdown != NULL)
        h->shutdown(h->closure, todo.shutdown_ms);
}

/* ---- configure ---- */

typedef struct {
    const char *token, *config, *key, *certificate, *ca, *ssldir, *ecdh_public, *server_jwt;
    json_t *action_policies, *opa_policies;
} configure_args;

#define CF(n, t, m) CH_JSON_FIELD(configure_args, n, t, m)
static const ch_json_field configure_fields[] = {
    CF("token", CH_JSON_BSTRING, token),
    CF("config", CH_JSON_BSTRING, config),
    CF("key", CH_JSON_BSTRING, key),
    CF("certificate", CH_JSON_BSTRING, certificate),
    CF("ca", CH_JSON_BSTRING, ca),
    CF("ssldir", CH_JSON_BSTRING, ssldir),
    CF("ecdh_public", CH_JSON_BSTRING, ecdh_public),
    CF("server_jwt", CH_JSON_BSTRING, server_jwt),
    CF("action_policies", CH_JSON_STRMAP, action_policies),
    CF("opa_policies", CH_JSON_STRMAP, opa_policies),
};
static const ch_json_struct configure_request = {"provision.ConfigureRequest", configure_fields,
                                                 sizeof(configure_fields) /
                                                     sizeof(configure_fields[0])};

/* The decoded `config` setting: keys and values borrowed from obj. */
typedef struct {
    json_t *obj;
    const char **keys;
    const char **values;
    size_t n;
} settings;

static void settings_clear(settings *s)
{
    json_decref(s->obj);
    free(s->keys);
    free(s->values);
    memset(s, 0, sizeof(*s));
}

/* json.Unmarshal(config, &map[string]string), bounded. */
static ch_status decode_settings(const char *text, settings *out, ch_error *err)
{
    size_t len = strlen(text);
    memset(out, 0, sizeof(*out));
    if (len > MAX_CONFIG_TEXT)
        return ch_error_set(err, CH_ERR_TOO_LARGE,
                            "configuration of %zu bytes exceeds the limit of %d bytes", len,
                            MAX_CONFIG_TEXT);
    if ((out->obj = ch_json_parse(text, len, MAX_CONFIG_TEXT, CH_MAX_JSON_DEPTH, err)) == NULL)
        return err != NULL ? err->code : CH_ERR_INVALID;
    if (json_is_null(out->obj))
        return CH_OK; /* Go: a nil map, so only the header line is written */
    if (!json_is_object(out->obj))
        return ch_json_type_error(err, out->obj, NULL, "map[string]string");
    size_t n = json_object_size(out->obj);
    if (n > MAX_CONFIG_KEYS)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "%zu settings exceed the limit of %d", n,
                            MAX_CONFIG_KEYS);
    out->keys = calloc(n + 1, sizeof(*out->keys));
    out->values = calloc(n + 1, sizeof(*out->values));
    if (out->keys == NULL || out->values == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    const char *k;
    json_t *v;
    json_object_foreach(out->obj, k, v)
    {
        if (!json_is_string(v) && !json_is_null(v))
            return ch_json_type_error(err, v, NULL, "string");
        const char *sv = json_is_string(v) ? json_string_value(v) : "";
        if (strlen(k) > MAX_KEY_LEN)
            return ch_error_set(err, CH_ERR_TOO_LARGE,
                                "setting %.40s... has a name longer than %d characters", k,
                                MAX_KEY_LEN);
        if (strlen(sv) > MAX_VALUE_LEN)
            return ch_error_set(err, CH_ERR_TOO_LARGE,
                                "the value of setting %.64s is longer than %d characters", k,
                                MAX_VALUE_LEN);
        out->keys[out->n] = k;
        out->values[out->n] = sv;
        out->n++;
    }
    return CH_OK;
}

/* A short %q-like quoting of a name for messages. */
static void quote(const char *s, char *out, size_t size)
{
    size_t w = 0;
    if (size < 8)
        return;
    out[w++] = '"';
    for (size_t i = 0; s[i] != '\0' && w + 6 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[w++] = '\\';
            out[w++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            w += (size_t)snprintf(out + w, size - w, "\\x%02x", c);
        } else {
            out[w++] = (char)c;
        }
        if (i >= 80) {
            out[w++] = '.';
            out[w++] = '.';
            break;
        }
    }
    out[w++] = '"';
    out[w] = '\0';
}

/* Why name cannot be a policy file in the policy directory; NULL when it can. */
static const char *bad_policy_name(const char *name)
{
    size_t len = strlen(name);
    if (strchr(name, '/') != NULL || strstr(name, "..") != NULL)
        return "it must not contain '/' or '..'";
    if (name[0] == '.')
        return "it must not start with a dot";
    if (len > NAME_MAX)
        return "it is too long";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return "it contains a control character";
    return NULL;
}

/* Names go-choria would accept (the suffix) and that stay inside the policy directory. */
static ch_status check_policies(const json_t *map, const char *suffix, ch_error *err)
{
    size_t n = json_object_size(map), total = 0, slen = strlen(suffix);
    if (n > MAX_POLICIES)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "%zu policies exceed the limit of %d", n,
                            MAX_POLICIES);
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)map, name, v)
    {
        char q[200];
        size_t len = strlen(name), blen = json_is_string(v) ? json_string_length(v) : 0;
        quote(name, q, sizeof(q));
        if (len < slen || strcmp(name + len - slen, suffix) != 0)
            return ch_error_set(err, CH_ERR_INVALID, "expected %s to have %s extension", q, suffix);
        if (bad_policy_name(name) != NULL)
            return ch_error_set(err, CH_ERR_INVALID, "invalid policy file name %s: %s", q,
                                bad_policy_name(name));
        if (blen > MAX_POLICY_SIZE)
            return ch_error_set(err, CH_ERR_TOO_LARGE,
                                "policy %s of %zu bytes exceeds the limit of %d bytes", q, blen,
                                MAX_POLICY_SIZE);
        if ((total += blen) > MAX_POLICIES_TOTAL)
            return ch_error_set(err, CH_ERR_TOO_LARGE,
                                "policies exceed the limit of %d bytes in total",
                                MAX_POLICIES_TOTAL);
    }
    return CH_OK;
}

/* go-choria writePolicies: replace dir with one holding the non-empty policies, 0400. */
static ch_status write_policies(const char *dir, const json_t *map, unsigned wflags, ch_error *err)
{
    ch_error e;
    if (ch_remove_tree(dir, &e) != CH_OK)
        return ch_error_set(err, CH_ERR_IO, "could not remove existing policies: %s", e.msg);
    if (ch_confwrite_mkdir_p(dir, 0700, &e) != CH_OK)
        return ch_error_set(err, e.code, "%s", e.msg);
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)map, name, v)
    {
        char path[PATH_MAX];
        if (!json_is_string(v) || json_string_length(v) == 0)
            continue;
        if (!path_join(path, sizeof(path), dir, name) ||
            ch_confwrite_file(path, json_string_value(v), json_string_length(v), 0400, wflags,
                              &e) != CH_OK)
            return ch_error_set(err, CH_ERR_IO, "saving policy %s failed: %s", name, e.msg);
        ch_info("Wrote policy to %s", path);
    }
    return CH_OK;
}

/* The ECDH public key as go-choria checks it: hex first, then that the node has a key, then
 * the point length. */
static ch_status check_ecdh_public(const ch_node *node, const char *hex, ch_error *err)
{
    size_t hlen = strlen(hex);
    if (hlen % 2 != 0)
        return ch_error_set(err, CH_ERR_INVALID, "encoding/hex: odd length hex string");
    if (strspn(hex, "0123456789abcdefABCDEF") != hlen)
        return ch_error_set(err, CH_ERR_INVALID, "encoding/hex: invalid byte in ECDH public key");
    if (!node->provision->ecdh_set)
        return ch_error_set(err, CH_ERR_INVALID, "private key not set");
    if (hlen != 2 * CH_PKI_X25519_LEN)
        return ch_error_set(err, CH_ERR_INVALID, "bad point length: %zu, expected %d", hlen / 2,
                            CH_PKI_X25519_LEN);
    return CH_OK;
}

/* go-choria decryptPrivateKey into a PKCS#1 PEM (*pem malloc'd, a secret). */
static ch_status decrypt_key(const ch_node *node, const configure_args *a, char **pem,
                             ch_error *err)
{
    unsigned char peer[CH_PKI_X25519_LEN], secret[CH_PKI_X25519_LEN];
    unsigned char *der = NULL;
    size_t der_len = 0;
    *pem = NULL;
    ch_status st = check_ecdh_public(node, a->ecdh_public, err);
    if (st == CH_OK)
        st = ch_pki_hex_decode(a->ecdh_public, strlen(a->ecdh_public), peer, sizeof(peer), err);
    if (st == CH_OK)
        st = ch_pki_x25519_derive(node->provision->ecdh_private, peer, secret, err);
    if (st == CH_OK)
        st =
            ch_pki_pem_decrypt(a->key, strlen(a->key), secret, sizeof(secret), &der, &der_len, err);
    if (st == CH_OK)
        st = ch_pki_pem_encode("RSA PRIVATE KEY", der, der_len, pem, err);
    OPENSSL_cleanse(secret, sizeof(secret));
    ch_pki_free_secret(der, der_len);
    return st;
}

static void free_pem_secret(char *pem)
{
    if (pem != NULL)
        ch_pki_free_secret(pem, strlen(pem));
}

static ch_status check_size(const char *what, const char *s, size_t max, ch_error *err)
{
    size_t len = strlen(S(s));
    if (len <= max)
        return CH_OK;
    return ch_error_set(err, CH_ERR_TOO_LARGE, "%s of %zu bytes exceeds the limit of %zu bytes",
                        what, len, max);
}

/* What configure decided before it writes anything. */
typedef struct {
    configure_args a;
    settings set;
    char confdir[PATH_MAX];
    bool tls;
    char *key_pem; /* the decrypted private key, a secret */
    char *text;    /* the new configuration file */
    size_t text_len, lines;
    unsigned wflags; /* CH_CONFWRITE_* for every file written */
} configure_plan;

static void configure_plan_clear(configure_plan *p)
{
    free_pem_secret(p->key_pem);
    free(p->text);
    settings_clear(&p->set);
}

/* The TLS material: sizes, and the private key decrypted when one came. */
static bool plan_tls(const ch_node *node, configure_plan *p, ch_rpc_reply *reply)
{
    ch_error e;
    configure_args *a = &p->a;
    p->tls = !empty(a->certificate) && !empty(a->ssldir) && !empty(a->ca);
    if (!p->tls)
        return true;
    if (check_size("certificate", a->certificate, MAX_CERT_SIZE, &e) != CH_OK ||
        check_size("CA", a->ca, MAX_CA_SIZE, &e) != CH_OK ||
        check_size("private key", a->key, MAX_KEY_SIZE, &e) != CH_OK ||
        check_size("ssldir", a->ssldir, MAX_SSLDIR_LEN, &e) != CH_OK) {
        abort_msg(reply, "TLS Setup Failed: %s", e.msg);
        return false;
    }
    if (empty(a->key))
        return true;
    ch_warn("Received a PRIVATE KEY over the network");
    if (decrypt_key(node, a, &p->key_pem, &e) != CH_OK) {
        abort_msg(reply, "TLS Setup Failed: could not decrypt private key: %s", e.msg);
        return false;
    }
    return true;
}

/* The new configuration file's text and the policies, all checked before anything is
 * written. */
static bool plan_files(const ch_rpc_request *req, configure_plan *p, ch_rpc_reply *reply)
{
    ch_error e;
    if (check_size("server JWT", p->a.server_jwt, MAX_SERVER_JWT_SIZE, &e) != CH_OK) {
        abort_msg(reply, "JWT Setup Failed: %s", e.msg);
        return false;
    }
    ch_confwrite_origin origin = {REQID(req), CALLER(req), SENDER(req)};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ch_confwrite_render(&origin, p->set.keys, p->set.values, p->set.n,
                            (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec, &p->text, &p->text_len,
                            &p->lines, &e) != CH_OK) {
        abort_msg(reply, "Could not write config: %s", e.msg);
        return false;
    }
    if (check_policies(p->a.action_policies, ".policy", &e) != CH_OK) {
        abort_msg(reply, "Could not save Action Policies: %s", e.msg);
        return false;
    }
    if (check_policies(p->a.opa_policies, ".rego", &e) != CH_OK) {
        abort_msg(reply, "Could not save Open Policy Agent Policies: %s", e.msg);
        return false;
    }
    return true;
}

/* Everything configure checks, in go-choria's order of stages, before writing anything. */
static bool plan_configure(ch_node *node, const ch_rpc_request *req, configure_plan *p,
                           ch_rpc_reply *reply)
{
    ch_error e;
    p->wflags = write_flags(node);
    if (!node->provision_mode) {
        abort_msg(reply, "Cannot reconfigure a server that is not in provisioning mode");
        return false;
    }
    if (empty(node->config_file)) {
        abort_msg(reply, "Cannot determine the configuration file to manage");
        return false;
    }
    if (!parse_args(req, reply, "configure", &configure_request, &p->a) ||
        !check_token(node, req, p->a.token, reply))
        return false;
    if (empty(p->a.config)) {
        abort_msg(reply, "Did not receive any configuration to write, cannot write a empty "
                         "configuration file");
        return false;
    }
    if (!empty(p->a.key) && empty(p->a.ecdh_public)) {
        abort_msg(reply, "EDCH Public Key not supplied while providing a private key");
        return false;
    }
    if (decode_settings(p->a.config, &p->set, &e) != CH_OK) {
        abort_msg(reply, "Could not decode configuration data: %s", e.msg);
        return false;
    }
    if (!path_dir(node->config_file, p->confdir, sizeof(p->confdir))) {
        abort_msg(reply, "Could not write config: configuration path is too long");
        return false;
    }
    return plan_tls(node, p, reply) && plan_files(req, p, reply);
}

/* A private key replaces the node's own, so its CSR is stale. */
static void remove_stale_csr(const char *ssldir)
{
    char path[PATH_MAX];
    if (!path_join(path, sizeof(path), ssldir, "csr.pem"))
        return;
    if (unlink(path) == 0)
        ch_warn("A PRIVATE KEY was received from the provisioner, removed CSR %s", path);
    else if (errno != ENOENT)
        ch_error("A PRIVATE KEY was received from the provisioner, could not remove CSR %s: %s",
                 path, strerror(errno));
}

/* One file of the ssl directory; false with the reply filled when it cannot be written. */
static bool write_ssl_file(const configure_plan *p, const char *name, const char *what,
                           const char *data, unsigned mode, ch_rpc_reply *reply)
{
    char path[PATH_MAX];
    ch_error e = {0};
    const char *ssldir = p->a.ssldir;
    if (!path_join(path, sizeof(path), ssldir, name) ||
        ch_confwrite_file(path, data, strlen(data), mode, p->wflags, &e) != CH_OK) {
        abort_msg(reply, "TLS Setup Failed: could not write %s to %s: %s", what, path, e.msg);
        return false;
    }
    return true;
}

static bool write_tls(const configure_plan *p, ch_rpc_reply *reply)
{
    ch_error e;
    const configure_args *a = &p->a;
    if (!p->tls)
        return true;
    if (ch_confwrite_mkdir_p(a->ssldir, 0700, &e) != CH_OK) {
        abort_msg(reply, "TLS Setup Failed: could not create ssl directory %s: %s", a->ssldir,
                  e.msg);
        return false;
    }
    if (!write_ssl_file(p, "certificate.pem", "Certificate", a->certificate, 0644, reply) ||
        !write_ssl_file(p, "ca.pem", "CA", a->ca, 0644, reply))
        return false;
    if (p->key_pem == NULL)
        return true;
    if (!write_ssl_file(p, "private.pem", "KEY", p->key_pem, 0600, reply))
        return false;
    remove_stale_csr(a->ssldir);
    return true;
}

/* server.jwt and the policy directories beside the configuration file. */
static bool write_jwt_and_policies(const configure_plan *p, ch_rpc_reply *reply)
{
    char path[PATH_MAX];
    ch_error e = {0};
    const configure_args *a = &p->a;
    if (!empty(a->server_jwt) && (!path_join(path, sizeof(path), p->confdir, "server.jwt") ||
                                  ch_confwrite_file(path, a->server_jwt, strlen(a->server_jwt),
                                                    0600, p->wflags, &e) != CH_OK)) {
        abort_msg(reply, "JWT Setup Failed: %s", e.msg);
        return false;
    }
    if (json_object_size(a->action_policies) > 0 &&
        (!path_join(path, sizeof(path), p->confdir, "policies") ||
         write_policies(path, a->action_policies, p->wflags, &e) != CH_OK)) {
        abort_msg(reply, "Could not save Action Policies: %s", e.msg);
        return false;
    }
    if (json_object_size(a->opa_policies) > 0 &&
        (!path_join(path, sizeof(path), p->confdir, "policies/rego") ||
         write_policies(path, a->opa_policies, p->wflags, &e) != CH_OK)) {
        abort_msg(reply, "Could not save Open Policy Agent Policies: %s", e.msg);
        return false;
    }
    return true;
}

/* Validates everything, then writes TLS, JWT and policies first and the configuration last,
 * so that a failure leaves the old configuration (which keeps the node in provisioning mode)
 * in place. */
static void do_configure(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply,
                         host_todo *todo)
{
    configure_plan p = {0};
    ch_error e;
    if (!plan_configure(node, req, &p, reply) || !write_tls(&p, reply) ||
        !write_jwt_and_policies(&p, reply))
        goto out;
    ch_warn("Rewriting configuration file %s in request %s from %s (%s) with %zu settings",
            node->config_file, REQID(req), CALLER(req), SENDER(req), p.set.n);
    if (ch_confwrite_install(node->config_file, p.text, p.text_len, p.wflags, &e) != CH_OK) {
        abort_msg(reply, "Could not write config: %s", e.msg);
        goto out;
    }
    todo->publish = true;
    todo->event = CH_LIFECYCLE_PROVISIONED;
    char msg[PATH_MAX + 64];
    snprintf(msg, sizeof(msg), "Wrote %zu lines to %s", p.lines, node->config_file);
    set_str(reply, "message", msg);
out:
    configure_plan_clear(&p);
}

/* ---- gencsr ---- */

typedef struct {
    const char *token, *cn, *c, *l, *o, *ou, *st;
} csr_args;

#define CS(n, m) CH_JSON_FIELD(csr_args, n, CH_JSON_BSTRING, m)
static const ch_json_field csr_fields[] = {CS("token", token), CS("cn", cn), CS("C", c),
                                           CS("L", l),         CS("O", o),   CS("OU", ou),
                                           CS("ST", st)};
static const ch_json_struct csr_request = {"provision.CSRRequest", csr_fields,
                                           sizeof(csr_fields) / sizeof(csr_fields[0])};

static void do_gencsr(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply,
                      host_todo *todo)
{
    (void)todo;
    csr_args a = {0};
    ch_pki_csr csr = {0};
    ch_error e = {0};
    char ssldir[PATH_MAX], path[PATH_MAX];

    if (!node->provision_mode) {
        abort_msg(reply, "Cannot reconfigure a server that is not in provisioning mode");
        goto out;
    }
    if (empty(node->config_file) && empty(node->ssldir)) {
        abort_msg(reply, "Cannot determine where to store SSL data, no configure file given and "
                         "no SSL directory configured");
        goto out;
    }
    if (!parse_args(req, reply, "gencsr", &csr_request, &a) ||
        !check_token(node, req, a.token, reply))
        goto out;

    bool ok;
    if (!empty(node->ssldir)) {
        ok = snprintf(ssldir, sizeof(ssldir), "%s", node->ssldir) < (int)sizeof(ssldir);
    } else {
        char dir[PATH_MAX];
        ok = path_dir(node->config_file, dir, sizeof(dir)) &&
             path_join(ssldir, sizeof(ssldir), dir, "ssl");
    }
    if (!ok) {
        abort_msg(reply, "Could not create SSL Directory: path is too long");
        goto out;
    }
    ch_info("Creating a new CSR in %s", ssldir);
    if (ch_confwrite_mkdir_p(ssldir, 0771, &e) != CH_OK) {
        abort_msg(reply, "Could not create SSL Directory %s: %s", ssldir, e.msg);
        goto out;
    }

    /* ST is parsed but never used, as in go-choria. */
    ch_pki_subject subj = {
        .cn = empty(a.cn) ? node->identity : a.cn, .c = a.c, .l = a.l, .o = a.o, .ou = a.ou};
    ch_status st = ch_pki_csr_generate(&subj, 2048, &csr, &e);
    if (st != CH_OK) {
        abort_msg(reply, "%s: %s",
                  st == CH_ERR_INVALID ? "Could not create CSR" : "Could not create private key",
                  e.msg);
        goto out;
    }
    if (!path_join(path, sizeof(path), ssldir, "private.pem") ||
        ch_confwrite_file(path, csr.key_pem, strlen(csr.key_pem), 0600, write_flags(node), &e) !=
            CH_OK) {
        abort_msg(reply, "Could not store private key: %s", e.msg);
        goto out;
    }
    if (!path_join(path, sizeof(path), ssldir, "csr.pem") ||
        ch_confwrite_file(path, csr.csr_pem, strlen(csr.csr_pem), 0644, write_flags(node), &e) !=
            CH_OK) {
        abort_msg(reply, "Could not store CSR: %s", e.msg);
        goto out;
    }
    set_str(reply, "csr", csr.csr_pem);
    set_str(reply, "public_key", csr.public_pem);
    set_str(reply, "ssldir", ssldir);
out:
    ch_pki_csr_clear(&csr);
}

/* ---- gen25519 ---- */

typedef struct {
    const char *token, *nonce;
} ed_args;

static const ch_json_field ed_fields[] = {CH_JSON_FIELD(ed_args, "token", CH_JSON_BSTRING, token),
                                          CH_JSON_FIELD(ed_args, "nonce", CH_JSON_BSTRING, nonce)};
static const ch_json_struct ed25519_request = {"provision.ED25519Request", ed_fields,
                                               sizeof(ed_fields) / sizeof(ed_fields[0])};

static void do_gen25519(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply,
                        host_todo *todo)
{
    (void)todo;
    ed_args a = {0};
    ch_error e = {0};
    unsigned char seed[CH_PKI_ED25519_SEED_LEN], pub[CH_PKI_ED25519_PUB_LEN],
        sig[CH_PKI_ED25519_SIG_LEN];
    char dir[PATH_MAX], abs[PATH_MAX], path[PATH_MAX];
    char seed_hex[2 * CH_PKI_ED25519_SEED_LEN + 1], pub_hex[2 * CH_PKI_ED25519_PUB_LEN + 1],
        sig_hex[2 * CH_PKI_ED25519_SIG_LEN + 1];

    if (!node->provision_mode) {
        abort_msg(reply, "Cannot reconfigure a server that is not in provisioning mode");
        return;
    }
    if (empty(node->config_file)) {
        abort_msg(reply, "Cannot determine where to store secure data, no configure file given");
        return;
    }
    if (!parse_args(req, reply, "gen25519", &ed25519_request, &a) ||
        !check_token(node, req, a.token, reply))
        return;

    /* filepath.Abs(filepath.Dir(ConfigFile)) */
    errno = 0;
    bool ok = path_dir(node->config_file, dir, sizeof(dir));
    if (ok && dir[0] != '/') {
        char cwd[PATH_MAX];
        ok = getcwd(cwd, sizeof(cwd)) != NULL && path_join(abs, sizeof(abs), cwd, dir);
    } else if (ok) {
        ok = snprintf(abs, sizeof(abs), "%s", dir) < (int)sizeof(abs);
    }
    if (!ok) {
        abort_msg(reply, "could not determine absolute path to config directory: %s",
                  errno != 0 ? strerror(errno) : "path too long");
        return;
    }
    clean_path(abs);
    ch_info("Creating a new ED25519 key in %s", abs);

    if (ch_pki_ed25519_keypair(seed, pub, &e) != CH_OK) {
        abort_msg(reply, "Could not create keypair: %s", e.msg);
        return;
    }
    /* A new seed invalidates server.jwt: it must go first. */
    if (!path_join(path, sizeof(path), abs, "server.jwt") ||
        (unlink(path) != 0 && errno != ENOENT)) {
        abort_msg(reply, "Could not remove existing jwt file: %s: %s", path, strerror(errno));
        goto out;
    }
    ch_hex_encode(seed, sizeof(seed), seed_hex);
    if (!path_join(path, sizeof(path), abs, "server.seed") ||
        ch_confwrite_file(path, seed_hex, strlen(seed_hex), 0600, write_flags(node), &e) != CH_OK) {
        abort_msg(reply, "Could not write key %s: %s", path, e.msg);
        goto out;
    }
    if (ch_pki_ed25519_sign(seed, S(a.nonce), strlen(S(a.nonce)), sig, &e) != CH_OK) {
        abort_msg(reply, "Could not sign the nonce: %s", e.msg);
        goto out;
    }
    ch_hex_encode(pub, sizeof(pub), pub_hex);
    ch_hex_encode(sig, sizeof(sig), sig_hex);
    set_str(reply, "public_key", pub_hex);
    set_str(reply, "directory", abs);
    set_str(reply, "signature", sig_hex);
out:
    OPENSSL_cleanse(seed, sizeof(seed));
    OPENSSL_cleanse(seed_hex, sizeof(seed_hex));
}

/* ---- jwt ---- */

typedef struct {
    const char *token;
} token_args;

static const ch_json_field token_fields[] = {
    CH_JSON_FIELD(token_args, "token", CH_JSON_BSTRING, token)};
static const ch_json_struct shutdown_request = {"provision.ShutdownRequest", token_fields,
                                                sizeof(token_fields) / sizeof(token_fields[0])};
static const ch_json_struct reprovision_request = {"provision.ReprovisionRequest", token_fields,
                                                   sizeof(token_fields) / sizeof(token_fields[0])};
static const ch_json_struct jwt_request = {"provision.JWTRequest", token_fields,
                                           sizeof(token_fields) / sizeof(token_fields[0])};

static void do_jwt(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply, host_todo *todo)
{
    (void)todo;
    token_args a = {0};
    ch_error e = {0};
    char *jwt = NULL, pub_hex[2 * CH_PKI_X25519_LEN + 1];
    size_t jwt_len = 0;
    unsigned char priv[CH_PKI_X25519_LEN], pub[CH_PKI_X25519_LEN];
    struct stat sb;

    if (!node->provision_mode) {
        abort_msg(reply, "Cannot reconfigure a server that is not in provisioning mode");
        return;
    }
    if (!parse_args(req, reply, "jwt", &jwt_request, &a) || !check_token(node, req, a.token, reply))
        return;
    if (empty(node->provisioning_jwt_file)) {
        abort_msg(reply, "No Provisioning JWT file has been configured");
        return;
    }
    if (stat(node->provisioning_jwt_file, &sb) != 0) {
        abort_msg(reply, "Provisioning JWT file does not exist");
        return;
    }
    if (ch_read_file(node->provisioning_jwt_file, CH_PROVJWT_MAX_SIZE, &jwt, &jwt_len, &e) !=
        CH_OK) {
        abort_msg(reply, "Could not read Provisioning JWT: %s", e.msg);
        return;
    }
    if (ch_pki_x25519_keypair(priv, pub, &e) != CH_OK) {
        abort_msg(reply, "Could not calculate EDCH keys: %s", e.msg);
        goto out;
    }
    memcpy(node->provision->ecdh_private, priv, sizeof(priv));
    node->provision->ecdh_set = true;
    ch_hex_encode(pub, sizeof(pub), pub_hex);
    json_object_set_new(reply->data, "jwt", json_stringn_nocheck(jwt, jwt_len));
    set_str(reply, "ecdh_public", pub_hex);
out:
    OPENSSL_cleanse(priv, sizeof(priv));
    free(jwt);
}

/* ---- restart, reprovision, shutdown ---- */

typedef struct {
    const char *token;
    int64_t splay;
} restart_args;

static const ch_json_field restart_fields[] = {
    CH_JSON_FIELD(restart_args, "token", CH_JSON_BSTRING, token),
    CH_JSON_FIELD(restart_args, "splay", CH_JSON_INT, splay)};
static const ch_json_struct restart_request = {"provision.RestartRequest", restart_fields,
                                               sizeof(restart_fields) / sizeof(restart_fields[0])};

static void do_restart(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply,
                       host_todo *todo)
{
    restart_args a = {0};
    ch_error e = {0};
    ch_config *cfg = NULL;
    bool provision = false;
    char d[CH_DURATION_STR_MAX];
    const char *file = S(node->config_file);

    if (!node->provision_mode && empty(node->provision_token)) {
        abort_msg(reply, "Cannot restart a server that is not in provisioning mode or with no "
                         "token set");
        goto out;
    }
    if (!parse_args(req, reply, "restart", &restart_request, &a) ||
        !check_token(node, req, a.token, reply))
        goto out;
    if ((cfg = ch_config_new()) == NULL) {
        abort_msg(reply,
                  "Configuration %s could not be parsed, restart cannot continue: out of "
                  "memory",
                  file);
        goto out;
    }
    if (empty(node->config_file) || ch_config_load_file(cfg, file, &e) != CH_OK ||
        ch_config_get_bool(cfg, "plugin.choria.server.provision", false, &provision, &e) != CH_OK) {
        abort_msg(reply, "Configuration %s could not be parsed, restart cannot continue: %s", file,
                  e.msg[0] != '\0' ? e.msg : "no configuration file");
        goto out;
    }
    if (provision) {
        abort_msg(reply, "Configuration %s enables provisioning, restart cannot continue", file);
        goto out;
    }
    int64_t splay = a.splay <= 0 ? 10 : a.splay > MAX_SPLAY_SECONDS ? MAX_SPLAY_SECONDS : a.splay;
    int64_t delay = random_below(splay) + 2;
    format_seconds(delay, d);
    ch_warn("Restarting server via request %s from %s (%s) with splay %s", REQID(req), CALLER(req),
            SENDER(req), d);
    if (arm_restart(node))
        todo->restart_ms = delay * 1000;
    char msg[96];
    snprintf(msg, sizeof(msg), "Restarting Choria Server after %s", d);
    set_str(reply, "message", msg);
out:
    ch_config_free(cfg);
}

static void do_reprovision(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply,
                           host_todo *todo)
{
    token_args a = {0};
    ch_error e = {0};
    ch_config *cur = NULL;
    char *text = NULL, d[CH_DURATION_STR_MAX];
    size_t text_len = 0, lines = 0, n = 0;
    const char *keys[5], *values[5];

    if (node->provision_mode) {
        abort_msg(reply, "Server is already in provisioning mode, cannot enable provisioning "
                         "mode again");
        goto out;
    }
    if (empty(node->config_file)) {
        abort_msg(reply, "Cannot determine the configuration file to manage");
        goto out;
    }
    if (!parse_args(req, reply, "reprovision", &reprovision_request, &a) ||
        !check_token(node, req, a.token, reply))
        goto out;

    /* The running config supplies logfile and file-content registration; a config that cannot
     * be read simply contributes nothing. */
    cur = ch_config_new();
    if (cur != NULL && ch_config_load_file(cur, node->config_file, NULL) != CH_OK) {
        ch_config_free(cur);
        cur = NULL;
    }
    keys[n] = "plugin.choria.server.provision", values[n++] = "1";
    keys[n] = "loglevel", values[n++] = "debug";
    const char *logfile = cur != NULL ? ch_config_get(cur, "logfile") : NULL;
    if (!empty(logfile))
        keys[n] = "logfile", values[n++] = logfile;
    const char *regdata =
        cur != NULL ? ch_config_get(cur, "plugin.choria.registration.file_content.data") : NULL;
    if (!empty(regdata)) {
        keys[n] = "registration", values[n++] = "file_content";
        keys[n] = "plugin.choria.registration.file_content.data", values[n++] = regdata;
    }
    ch_confwrite_origin origin = {REQID(req), CALLER(req), SENDER(req)};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ch_confwrite_render(&origin, keys, values, n,
                            (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec, &text, &text_len,
                            &lines, &e) != CH_OK ||
        ch_confwrite_install(node->config_file, text, text_len, write_flags(node), &e) != CH_OK) {
        abort_msg(reply, "Could not write config: %s", e.msg);
        goto out;
    }
    int64_t delay = random_below(10) + 2;
    format_seconds(delay, d);
    if (arm_restart(node))
        todo->restart_ms = delay * 1000;
    char msg[96];
    snprintf(msg, sizeof(msg), "Restarting after %s", d);
    set_str(reply, "message", msg);
out:
    free(text);
    ch_config_free(cur);
}

static void do_shutdown(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply,
                        host_todo *todo)
{
    token_args a = {0};
    char d[CH_DURATION_STR_MAX];
    if (!node->provision_mode && empty(node->provision_token)) {
        abort_msg(reply, "Cannot shutdown a server that is not in provisioning mode or with no "
                         "token set");
        return;
    }
    if (!parse_args(req, reply, "shutdown", &shutdown_request, &a) ||
        !check_token(node, req, a.token, reply))
        return;
    int64_t delay = random_below(10);
    format_seconds(delay, d);
    ch_warn("Shutting server down via request %s from %s (%s) with splay %s", REQID(req),
            CALLER(req), SENDER(req), d);
    /* go-choria's exit path shares the restart guard. */
    if (arm_restart(node))
        todo->shutdown_ms = delay * 1000;
    char msg[96];
    snprintf(msg, sizeof(msg), "Shutting Choria Server down after %s", d);
    set_str(reply, "message", msg);
}

/* ---- release_update ---- */

typedef struct {
    const char *token, *repository, *version;
} update_args;

static const ch_json_field update_fields[] = {
    CH_JSON_FIELD(update_args, "token", CH_JSON_BSTRING, token),
    CH_JSON_FIELD(update_args, "repository", CH_JSON_BSTRING, repository),
    CH_JSON_FIELD(update_args, "version", CH_JSON_BSTRING, version),
};
static const ch_json_struct update_request = {"provision.ReleaseUpdateRequest", update_fields,
                                              sizeof(update_fields) / sizeof(update_fields[0])};

/* Runs `command version repository` (no shell; its output goes to the log, stdin is
 * /dev/null) and waits up to UPDATE_TIMEOUT_MS, after which it is killed. */
static ch_status run_update(const char *command, const char *version, const char *repository,
                            ch_error *err)
{
    char *const argv[] = {(char *)command, (char *)version, (char *)repository, NULL};
    ch_process_opts o = {.argv = argv, .in = CH_PROCESS_NULL, .out = CH_PROCESS_TO_STDERR};
    ch_process *p = NULL;
    ch_error e;
    int code = 0;
    ch_status st = ch_process_spawn(&o, &p, &e);
    if (st != CH_OK)
        return ch_error_set(err, st, "could not run %s: %s", command, e.msg);
    st = ch_process_wait(p, UPDATE_TIMEOUT_MS, &code, &e);
    if (st == CH_ERR_TIMEOUT)
        st = ch_error_set(err, st, "%s did not finish within %d seconds", command,
                          UPDATE_TIMEOUT_MS / 1000);
    else if (st != CH_OK)
        st = ch_error_set(err, st, "%s", e.msg);
    else if (ch_process_term_signal(p) != 0)
        st = ch_error_set(err, CH_ERR_IO, "%s was killed by signal %d", command,
                          ch_process_term_signal(p));
    else if (code != 0)
        st = ch_error_set(err, CH_ERR_IO, "%s exited with status %d", command, code);
    ch_process_free(p);
    return st;
}

static bool version_valid(const char *v)
{
    size_t len = strlen(v);
    if (len == 0 || len > 32 || v[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)v[i] <= 0x20 || v[i] == 0x7f || v[i] == '/')
            return false;
    return true;
}

static void do_release_update(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply,
                              host_todo *todo)
{
    update_args a = {0};
    if (!node->provision_mode) {
        abort_msg(reply, "Cannot update a server that is not in provisioning mode");
        return;
    }
    if (!node->allow_update) {
        abort_msg(reply, "Version updates is not enabled in the configuration");
        return;
    }
    if (!parse_args(req, reply, "release_update", &update_request, &a) ||
        !check_token(node, req, a.token, reply))
        return;
    if (empty(node->update_command)) {
        abort_msg(reply, "release_update is not supported: no update command is configured");
        return;
    }
    const char *repo = S(a.repository);
    if (!version_valid(S(a.version))) {
        abort_msg(reply, "Update failed: invalid version %.40s", S(a.version));
        return;
    }
    if ((strncmp(repo, "http://", 7) != 0 && strncmp(repo, "https://", 8) != 0) ||
        strlen(repo) > 512 || strpbrk(repo, " \t\r\n") != NULL) {
        abort_msg(reply, "Update to version %s failed: invalid repository URL", a.version);
        return;
    }
    ch_warn("Updating to version %s from %s via request %s from %s (%s)", a.version, repo,
            REQID(req), CALLER(req), SENDER(req));
    ch_error e;
    if (run_update(node->update_command, a.version, repo, &e) != CH_OK) {
        abort_msg(reply, "Update to version %s failed: %s", a.version, e.msg);
        return;
    }
    todo->publish = true;
    todo->event = CH_LIFECYCLE_UPGRADED;
    snprintf(todo->new_version, sizeof(todo->new_version), "%s", a.version);
    if (arm_restart(node))
        todo->restart_ms = 2000;
    set_str(reply, "message", "Restarting Choria Server after 2s");
}

/* ---- the agent ---- */

#define LOCKED_ACTION(name, body)                                                                  \
    static void act_##name(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply)          \
    {                                                                                              \
        run_action(node, req, reply, true, body);                                                  \
    }
#define PLAIN_ACTION(name, body)                                                                   \
    static void act_##name(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply)          \
    {                                                                                              \
        run_action(node, req, reply, false, body);                                                 \
    }

LOCKED_ACTION(configure, do_configure)
LOCKED_ACTION(gen25519, do_gen25519)
LOCKED_ACTION(gencsr, do_gencsr)
LOCKED_ACTION(jwt, do_jwt)
LOCKED_ACTION(release_update, do_release_update)
PLAIN_ACTION(reprovision, do_reprovision)
PLAIN_ACTION(restart, do_restart)
PLAIN_ACTION(shutdown, do_shutdown)

static const ch_agent_action provision_actions[] = {
    {"configure", act_configure},
    {"gen25519", act_gen25519},
    {"gencsr", act_gencsr},
    {"jwt", act_jwt},
    {"release_update", act_release_update},
    {"reprovision", act_reprovision},
    {"restart", act_restart},
    {"shutdown", act_shutdown},
};

/* go-choria SupportsProvisioning(): in provisioning mode, or a provisioning token is known. */
static bool provision_active(const ch_node *node)
{
    return node->provision != NULL && (node->provision_mode || !empty(node->provision_token));
}

const ch_agent ch_agent_choria_provision = {
    .name = AGENT_NAME,
    .timeout_seconds = 20,
    .actions = provision_actions,
    .n_actions = sizeof(provision_actions) / sizeof(provision_actions[0]),
    .raw = NULL,
    .active = provision_active,
};
