/* Fuzzes choria_provision#configure: the input is the request's `data` JSON, run against a
 * node whose files live in a private temp dir. Oracle: a failed configure must leave the
 * existing config byte for byte as it was; a successful one must leave a config that parses.
 * Any ssldir in the input is pointed into the temp dir so the fuzzer cannot write elsewhere. */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "choria/agent.h"
#include "choria/config.h"
#include "choria/json.h"
#include "choria/log.h"
#include "choria/util.h"

#define ORIGINAL "plugin.choria.server.provision = true\nidentity = fuzz.example.net\n"

static char dir[64], conf[128], ssl[128];
static ch_provision_state ps;
static ch_action_fn configure;

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void init(void)
{
    strcpy(dir, "/tmp/fuzz-configure-XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(conf, sizeof(conf), "%s/server.conf", dir);
    snprintf(ssl, sizeof(ssl), "%s/ssl", dir);
    atexit(cleanup);
    pthread_mutex_init(&ps.mutex, NULL);
    /* A fixed X25519 key, as if `jwt` had been called, so the decryption path is reached. */
    for (int i = 0; i < 32; i++)
        ps.ecdh_private[i] = (unsigned char)(i * 7 + 1);
    ps.ecdh_set = true;
    ch_log_set_level(CH_LOG_OFF);
    for (size_t i = 0; i < ch_agent_choria_provision.n_actions; i++)
        if (strcmp(ch_agent_choria_provision.actions[i].name, "configure") == 0)
            configure = ch_agent_choria_provision.actions[i].fn;
    if (configure == NULL)
        abort();
}

static void write_original(void)
{
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        abort();
    fputs(ORIGINAL, f);
    fclose(f);
}

/* Go matches "ssldir" case-insensitively, so every spelling is redirected. */
static void confine_ssldir(json_t *data)
{
    const char *keys[16];
    size_t n = 0;
    const char *k;
    json_t *v;
    if (!json_is_object(data))
        return;
    json_object_foreach(data, k, v)
    {
        if (strcasecmp(k, "ssldir") == 0 && json_is_string(v) && n < 16)
            keys[n++] = k;
    }
    for (size_t i = 0; i < n; i++)
        json_object_set_new(data, keys[i], json_string(ssl));
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
    if (configure == NULL)
        init();
    json_t *data =
        ch_json_parse((const char *)buf, size, CH_MAX_MESSAGE_SIZE, CH_MAX_JSON_DEPTH, NULL);
    if (data == NULL)
        return 0;
    confine_ssldir(data);
    write_original();
    ps.lock_until_ms = 0;

    ch_request_envelope env = {.requestid = "0123456789abcdef0123456789abcdef",
                               .senderid = "prov.example.net",
                               .callerid = "choria=fuzz",
                               .collective = "provisioning",
                               .agent = "choria_provision",
                               .ttl = 60};
    ch_node node = {.identity = "fuzz.example.net",
                    .provision_mode = true,
                    .provision_token = (size % 2) != 0 ? "s3cret" : NULL,
                    .config_file = conf,
                    .provision = &ps};
    ch_rpc_request req = {
        .agent = "choria_provision", .action = "configure", .data = data, .envelope = &env};
    ch_rpc_reply reply = {.statuscode = CH_RPC_OK, .statusmsg = "OK", .data = json_object()};
    configure(&node, &req, &reply);

    char *now = NULL;
    size_t len = 0;
    if (ch_read_file(conf, 1 << 20, &now, &len, NULL) != CH_OK)
        abort();
    if (reply.statuscode != CH_RPC_OK) {
        if (strcmp(now, ORIGINAL) != 0 || json_object_size(reply.data) != 0)
            abort();
    } else {
        ch_config *cfg = ch_config_new();
        if (ch_config_parse(cfg, "fuzz", now, len, NULL) != CH_OK ||
            strncmp(json_string_value(json_object_get(reply.data, "message")), "Wrote ", 6) != 0)
            abort();
        ch_config_free(cfg);
    }
    free(now);
    json_decref(reply.data);
    json_decref(data);
    return 0;
}
