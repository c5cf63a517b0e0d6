/* The Choria broker: nats-server configuration, supervision and JetStream set-up.
 *
 * Accounts (the layout of go-choria's network broker, broker/network/network_accounts.go and
 * choria_auth.go):
 * - `choria`: the fleet, with JetStream and the CHORIA_EVENTS stream; it imports the lifecycle
 *   events published in the provisioning account, so `choria tool event` sees both;
 * - `provisioning`: unprovisioned nodes (user node_user, from the JWT's chusr/chpwd) may only
 *   subscribe to their provisioning subjects and publish replies and lifecycle events; the
 *   provisioner (user `provisioner`) may use the provisioning subjects and, of JetStream, only
 *   the election bucket and its key `provisioner`.
 * Deliberate difference: the election bucket lives in the provisioning account itself (the
 * provisioner uses leader_election_api_prefix: $JS.API) instead of being imported from the
 * choria account under `choria.streams`; the permissions keep nodes away from it either way.
 * nats-server cannot verify provisioning JWTs, so nodes authenticate with chusr/chpwd. */
#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "choria/json.h"
#include "choria/leader.h"
#include "choria/log.h"
#include "choria/process.h"
#include "choria/util.h"

#define ADMIN_FLEET "choria-broker" /* internal users, random password */
#define ADMIN_PROVISIONING "choria-broker-provisioning"
#define EVENTS_STREAM "CHORIA_EVENTS"
#define ELECTION_STREAM "KV_" CH_LEADER_DEFAULT_BUCKET

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

/* The broker's certificate: its own keys, else its file security provider's (go-choria's
 * broker serves TLS with the provider's certificate). Both or neither, readable. */
static ch_status load_tls(const ch_config *cfg, brk_settings *s, ch_error *err)
{
    const char *cert = ch_config_get(cfg, "plugin.choria.network.tls.certificate");
    const char *key = ch_config_get(cfg, "plugin.choria.network.tls.key");
    const char *provider = ch_config_get(cfg, "plugin.security.provider");
    if (cert == NULL && key == NULL && provider != NULL && strcmp(provider, "file") == 0) {
        cert = ch_config_get(cfg, "plugin.security.file.certificate");
        key = ch_config_get(cfg, "plugin.security.file.key");
    }
    s->tls_cert = dup_or_null(cert);
    s->tls_key = dup_or_null(key);
    if ((s->tls_cert == NULL) != (s->tls_key == NULL))
        return ch_error_set(err, CH_ERR_INVALID,
                            "TLS needs both plugin.choria.network.tls.certificate and "
                            "plugin.choria.network.tls.key");
    const char *files[] = {s->tls_cert, s->tls_key};
    for (size_t i = 0; i < 2; i++)
        if (files[i] != NULL && access(files[i], R_OK) != 0)
            return ch_error_set(err, CH_ERR_INVALID, "TLS file %s cannot be read: %s", files[i],
                                strerror(errno));
    return CH_OK;
}

ch_status brk_settings_load(const ch_config *cfg, brk_settings *s, ch_error *err)
{
    memset(s, 0, sizeof(*s));
    int64_t client = 0, stats = 0, peer = 0, replicas = 0;
    ch_status st = ch_config_get_int(cfg, "plugin.choria.network.client_port", 4222, &client, err);
    if (st == CH_OK)
        st = ch_config_get_int(cfg, "plugin.choria.stats_port", 8222, &stats, err);
    if (st == CH_OK)
        st = ch_config_get_int(cfg, "plugin.choria.network.peer_port", 0, &peer, err);
    if (st == CH_OK)
        st = ch_config_get_list(cfg, "plugin.choria.network.peers", NULL, &s->peers, err);
    if (st == CH_OK)
        st = ch_config_get_duration(cfg, "plugin.choria.network.stream.leader_election_ttl",
                                    60000000000LL, &s->election_ttl_ns, err);
    if (st == CH_OK)
        st = ch_config_get_int(cfg, "plugin.choria.network.stream.leader_election_replicas", -1,
                               &replicas, err);
    if (st != CH_OK)
        return st;
    if (client < 1 || client > 65535 || stats < 1 || stats > 65535 || peer < 0 || peer > 65535)
        return ch_error_set(err, CH_ERR_INVALID,
                            "client_port and stats_port must be 1..65535, peer_port 0..65535");
    if (s->election_ttl_ns < 1000000000LL || s->election_ttl_ns > 3600000000000LL)
        return ch_error_set(err, CH_ERR_INVALID,
                            "plugin.choria.network.stream.leader_election_"
                            "ttl must be between 1s and 1h");
    s->client_port = (int)client;
    s->stats_port = (int)stats;
    s->peer_port = (int)peer;
    s->election_replicas = replicas > 0         ? (int)replicas
                           : s->peers.count > 0 ? (int)s->peers.count
                                                : 1;
    s->server_name = strdup(ch_config_get_string(cfg, "identity", "choria-broker"));
    s->listen_address =
        strdup(ch_config_get_string(cfg, "plugin.choria.network.listen_address", "0.0.0.0"));
    s->cluster_name =
        strdup(ch_config_get_string(cfg, "plugin.choria.network.cluster_name", "CHORIA"));
    s->store = dup_or_null(ch_config_get(cfg, "plugin.choria.network.stream.store"));
    s->provisioner_password =
        dup_or_null(ch_config_get(cfg, "plugin.choria.network.provisioning.client_password"));
    s->node_user = strdup(
        ch_config_get_string(cfg, "plugin.choria.network.provisioning.node_user", "provisioning"));
    s->node_password =
        dup_or_null(ch_config_get(cfg, "plugin.choria.network.provisioning.node_password"));
    s->choria_user = dup_or_null(ch_config_get(cfg, "plugin.choria.network.choria_user"));
    s->choria_password = dup_or_null(ch_config_get(cfg, "plugin.choria.network.choria_password"));
    if (s->store == NULL)
        return ch_error_set(err, CH_ERR_INVALID,
                            "plugin.choria.network.stream.store is required (JetStream holds the "
                            "election bucket)");
    if (s->provisioner_password == NULL || s->node_password == NULL)
        return ch_error_set(err, CH_ERR_INVALID,
                            "plugin.choria.network.provisioning.client_password and "
                            "plugin.choria.network.provisioning.node_password are required");
    return load_tls(cfg, s, err);
}

void brk_settings_free(brk_settings *s)
{
    char *strs[] = {s->server_name,          s->listen_address, s->cluster_name,  s->store,
                    s->provisioner_password, s->node_user,      s->node_password, s->choria_user,
                    s->choria_password,      s->tls_cert,       s->tls_key};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(strs[i]);
    ch_config_list_free(&s->peers);
    memset(s, 0, sizeof(*s));
}

/* A quoted nats-server config string (JSON escaping is valid there). */
static void q(ch_buf *b, const char *s)
{
    ch_buf_append_json_string(b, s, strlen(s));
}

static void user(ch_buf *b, const char *name, const char *password, const char *permissions)
{
    ch_buf_append_str(b, "      {user: ");
    q(b, name);
    ch_buf_append_str(b, ", password: ");
    q(b, password);
    if (permissions != NULL)
        ch_buf_printf(b, ", permissions: %s", permissions);
    ch_buf_append_str(b, "}\n");
}

/* Nodes: their own provisioning subjects, replies and lifecycle events, nothing else. */
static const char NODE_PERMISSIONS[] =
    "{publish: {allow: [\"provisioning.reply.>\", \"choria.lifecycle.event.>\"]}, "
    "subscribe: {allow: [\"provisioning.node.>\", \"provisioning.broadcast.>\"]}}";

/* The provisioner: the provisioning subjects, and of JetStream only the election bucket. */
static const char PROVISIONER_PERMISSIONS[] =
    "{publish: {allow: [\"provisioning.>\", \"choria.lifecycle.>\", \"_INBOX.>\", "
    "\"$JS.API.INFO\", \"$JS.API.STREAM.NAMES\", \"$JS.API.STREAM.INFO." ELECTION_STREAM "\", "
    "\"$JS.API.STREAM.MSG.GET." ELECTION_STREAM "\", "
    "\"$JS.API.DIRECT.GET." ELECTION_STREAM ".>\", "
    "\"$JS.API.CONSUMER.CREATE." ELECTION_STREAM "\", "
    "\"$JS.API.CONSUMER.CREATE." ELECTION_STREAM ".>\", "
    "\"$JS.API.CONSUMER.DELETE." ELECTION_STREAM ".>\", "
    "\"$JS.API.CONSUMER.INFO." ELECTION_STREAM ".>\", "
    "\"$JS.FC." ELECTION_STREAM ".>\", \"$JS.ACK." ELECTION_STREAM ".>\", "
    "\"$KV." CH_LEADER_DEFAULT_BUCKET ".provisioner\"]}, "
    "subscribe: {allow: [\"provisioning.>\", \"choria.lifecycle.>\", \"_INBOX.>\"]}}";

char *brk_nats_config(const brk_settings *s, const char *admin_password)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "# generated by choria broker run\nserver_name: ");
    q(&b, s->server_name);
    ch_buf_printf(&b, "\nlisten: \"%s:%d\"\nhttp: \"%s:%d\"\n", s->listen_address, s->client_port,
                  s->listen_address, s->stats_port);
    if (s->tls_cert != NULL) {
        /* no verify: a verify would ask every client for a certificate, which provisioning
         * nodes never present (upstream's anonymous TLS) */
        ch_buf_append_str(&b, "tls {\n  cert_file: ");
        q(&b, s->tls_cert);
        ch_buf_append_str(&b, "\n  key_file: ");
        q(&b, s->tls_key);
        ch_buf_append_str(&b, "\n  timeout: 2\n}\n");
    }
    ch_buf_append_str(&b, "jetstream {\n  store_dir: ");
    q(&b, s->store);
    ch_buf_append_str(&b, "\n}\n");
    if (s->peer_port > 0) {
        ch_buf_append_str(&b, "cluster {\n  name: ");
        q(&b, s->cluster_name);
        ch_buf_printf(&b, "\n  listen: \"%s:%d\"\n  routes: [\n", s->listen_address, s->peer_port);
        for (size_t i = 0; i < s->peers.count; i++) {
            ch_buf_append_str(&b, "    ");
            q(&b, s->peers.items[i]);
            ch_buf_append_str(&b, "\n");
        }
        ch_buf_append_str(&b, "  ]\n}\n");
    }
    ch_buf_append_str(&b, "accounts {\n  choria {\n    jetstream: enabled\n    users: [\n");
    user(&b, ADMIN_FLEET, admin_password, NULL);
    if (s->choria_user != NULL && s->choria_password != NULL)
        user(&b, s->choria_user, s->choria_password, NULL);
    ch_buf_append_str(&b, "    ]\n    imports: [\n      {stream: {account: provisioning, subject: "
                          "\"choria.lifecycle.>\"}}\n    ]\n  }\n");
    ch_buf_append_str(&b, "  provisioning {\n    jetstream: enabled\n    users: [\n");
    user(&b, ADMIN_PROVISIONING, admin_password, NULL);
    user(&b, "provisioner", s->provisioner_password, PROVISIONER_PERMISSIONS);
    user(&b, s->node_user, s->node_password, NODE_PERMISSIONS);
    ch_buf_append_str(&b, "    ]\n    exports: [\n      {stream: \"choria.lifecycle.>\"}\n    ]\n"
                          "  }\n}\n");
    return ch_buf_steal(&b, NULL);
}

/* ---- JetStream set-up ---- */

static natsConnection *admin_connect(const brk_settings *s, const char *name, const char *password,
                                     int timeout_ms)
{
    char url[300];
    const char *host = strcmp(s->listen_address, "0.0.0.0") == 0 ? "127.0.0.1" : s->listen_address;
    snprintf(url, sizeof(url), "nats://%s:%d", host, s->client_port);
    natsConnection *nc = NULL;
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        natsOptions *o = NULL;
        natsOptions_Create(&o);
        natsOptions_SetURL(o, url);
        natsOptions_SetUserInfo(o, name, password);
        if (s->tls_cert != NULL) { /* our own nats-server on this host */
            natsOptions_SetSecure(o, true);
            natsOptions_SkipServerVerification(o, true);
        }
        natsStatus st = natsConnection_Connect(&nc, o);
        natsOptions_Destroy(o);
        if (st == NATS_OK)
            return nc;
        nats_Sleep(100);
    }
    return NULL;
}

/* Creates what is missing, retrying while a cluster elects its JetStream leaders. */
static ch_status ensure_streams(const brk_settings *s, const char *password, ch_error *err)
{
    natsConnection *prov = admin_connect(s, ADMIN_PROVISIONING, password, 20000);
    natsConnection *fleet = prov != NULL ? admin_connect(s, ADMIN_FLEET, password, 5000) : NULL;
    jsCtx *pjs = NULL, *fjs = NULL;
    ch_status st = CH_OK;
    if (prov == NULL || fleet == NULL)
        st = ch_error_set(err, CH_ERR_CONNECTION,
                          "cannot connect to the broker to set up "
                          "JetStream");
    if (st == CH_OK && (natsConnection_JetStream(&pjs, prov, NULL) != NATS_OK ||
                        natsConnection_JetStream(&fjs, fleet, NULL) != NATS_OK))
        st = ch_error_set(err, CH_ERR_CONNECTION, "no JetStream");
    bool done_kv = false, done_events = false;
    for (int attempt = 0; st == CH_OK && attempt < 100 && !(done_kv && done_events); attempt++) {
        if (!done_kv) {
            kvStore *kv = NULL;
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = CH_LEADER_DEFAULT_BUCKET;
            kc.History = 1;
            kc.TTL = s->election_ttl_ns;
            kc.Replicas = s->election_replicas;
            done_kv = js_KeyValue(&kv, pjs, CH_LEADER_DEFAULT_BUCKET) == NATS_OK ||
                      js_CreateKeyValue(&kv, pjs, &kc) == NATS_OK;
            kvStore_Destroy(kv);
        }
        if (!done_events) {
            jsStreamConfig sc;
            jsStreamConfig_Init(&sc);
            const char *subjects[] = {"choria.lifecycle.>"};
            sc.Name = EVENTS_STREAM;
            sc.Subjects = subjects;
            sc.SubjectsLen = 1;
            sc.MaxAge = 24LL * 3600 * 1000000000;
            sc.Replicas = s->election_replicas;
            jsStreamInfo *si = NULL;
            done_events = js_GetStreamInfo(&si, fjs, EVENTS_STREAM, NULL, NULL) == NATS_OK ||
                          js_AddStream(&si, fjs, &sc, NULL, NULL) == NATS_OK;
            jsStreamInfo_Destroy(si);
        }
        if (!(done_kv && done_events))
            nats_Sleep(200);
    }
    if (st == CH_OK && !(done_kv && done_events))
        st = ch_error_set(
            err, CH_ERR_TIMEOUT, "could not create %s%s%s", done_kv ? "" : "the election bucket",
            !done_kv && !done_events ? " and " : "", done_events ? "" : EVENTS_STREAM);
    jsCtx_Destroy(pjs);
    jsCtx_Destroy(fjs);
    if (prov != NULL)
        natsConnection_Destroy(prov);
    if (fleet != NULL)
        natsConnection_Destroy(fleet);
    return st;
}

/* ---- supervision ---- */

static ch_status write_config(const brk_settings *s, const char *password, char *dir, char *path,
                              size_t size, ch_error *err)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, 256, "%s/choria-broker-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        return ch_error_set(err, CH_ERR_IO,
                            "cannot create a directory for the nats-server "
                            "configuration: %s",
                            strerror(errno));
    snprintf(path, size, "%s/nats-server.conf", dir);
    char *conf = brk_nats_config(s, password);
    /* it holds passwords: 0600 from its creation */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t len = conf != NULL ? strlen(conf) : 0;
    bool ok = conf != NULL && fd >= 0 && write(fd, conf, len) == (ssize_t)len;
    ok = (fd < 0 || close(fd) == 0) && ok;
    free(conf);
    if (ok)
        return CH_OK;
    unlink(path);
    rmdir(dir);
    return ch_error_set(err, CH_ERR_IO, "cannot write %s", path);
}

static ch_process *spawn_nats(const char *conf)
{
    const char *bin = getenv("CHORIA_NATS_SERVER");
    if (bin == NULL || bin[0] == '\0')
        bin = access("/usr/sbin/nats-server", X_OK) == 0 ? "/usr/sbin/nats-server" : "nats-server";
    char *const argv[] = {(char *)bin, "-c", (char *)conf, NULL};
    ch_process_opts o = {.argv = argv};
    ch_process *p = NULL;
    ch_error err;
    if (ch_process_spawn(&o, &p, &err) != CH_OK)
        fprintf(stderr, "choria: %s\n", err.msg);
    return p;
}

/* Forwards INT/TERM/HUP to nats-server until it exits; returns its exit status, except that
 * a stop we asked for is 0 (nats-server exits 1 after SIGTERM). */
static int supervise(ch_process *nats, const sigset_t *signals)
{
    struct timespec tick = {.tv_sec = 0, .tv_nsec = 200 * 1000000};
    bool stopping = false;
    for (;;) {
        int rc = 0;
        if (ch_process_wait(nats, 0, &rc, NULL) == CH_OK)
            return stopping && rc != 0 ? 0 : rc;
        int sig = sigtimedwait(signals, NULL, &tick);
        if (sig > 0) {
            stopping = stopping || sig != SIGHUP;
            ch_process_signal(nats, sig);
        }
    }
}

int brk_run(const brk_settings *s)
{
    unsigned char raw[16];
    char password[33], dir[256], conf[320];
    ch_random_bytes(raw, sizeof(raw));
    ch_hex_encode(raw, sizeof(raw), password);
    ch_error err;
    ch_error_clear(&err);
    if (mkdir(s->store, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "choria: cannot create %s: %s\n", s->store, strerror(errno));
        return 1;
    }
    if (write_config(s, password, dir, conf, sizeof(conf), &err) != CH_OK) {
        fprintf(stderr, "choria: %s\n", err.msg);
        return 1;
    }
    sigset_t signals;
    ch_process_take_stop_signals(&signals, true);
    ch_process *nats = spawn_nats(conf);
    int rc = 1;
    if (nats != NULL) {
        if (ensure_streams(s, password, &err) != CH_OK)
            ch_error("JetStream set-up failed: %s", err.msg);
        else
            ch_info("broker %s ready: election bucket %s and stream %s exist", s->server_name,
                    CH_LEADER_DEFAULT_BUCKET, EVENTS_STREAM);
        rc = supervise(nats, &signals);
    }
    ch_process_free(nats);
    unlink(conf);
    rmdir(dir);
    return rc;
}
