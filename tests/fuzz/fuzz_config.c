/* Fuzzes the Choria config parser, the value parsers and settings resolution. Every duration
 * that parses must format to a Go duration string that parses back to the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choria/config.h"

static void check_duration(const char *s)
{
    int64_t ns = 0, back = 0;
    char text[CH_DURATION_STR_MAX];
    if (ch_config_parse_duration(s, &ns, NULL) != CH_OK)
        return;
    ch_config_format_duration(ns, text, sizeof(text));
    if (ch_config_parse_duration(text, &back, NULL) != CH_OK || back != ns)
        abort();
}

static void check_value(const char *v)
{
    bool b;
    int64_t i;
    ch_config_list list;
    ch_config_server *servers = NULL;
    size_t count = 0;
    check_duration(v);
    (void)ch_config_parse_bool(v, &b);
    (void)ch_config_parse_int(v, &i);
    if (ch_config_split_list(v, &list) == CH_OK) {
        for (size_t k = 0; k < list.count; k++)
            if (list.items[k][0] == '\0')
                abort();
        ch_config_list_free(&list);
    }
    if (ch_config_parse_servers(v, &servers, &count, NULL) == CH_OK) {
        for (size_t k = 0; k < count; k++)
            if (strncmp(servers[k].url, "nats://", 7) != 0 || servers[k].port == 0)
                abort();
        ch_config_servers_free(servers, count);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The raw input as one value too (bounded, NUL-terminated). */
    char small[512];
    size_t n = size < sizeof(small) - 1 ? size : sizeof(small) - 1;
    memcpy(small, data, n);
    small[n] = '\0';
    check_duration(small);

    ch_config *cfg = ch_config_new();
    if (cfg == NULL)
        return 0;
    ch_error err;
    if (ch_config_parse(cfg, "fuzz", (const char *)data, size, &err) != CH_OK) {
        if (ch_config_count(cfg) != 0 || err.msg[0] == '\0')
            abort();
        ch_config_free(cfg);
        return 0;
    }
    const char *key, *value;
    for (size_t i = 0; i < ch_config_count(cfg) && i < 64; i++) {
        if (!ch_config_entry(cfg, i, &key, &value) || ch_config_get(cfg, key) != value)
            abort();
        check_value(value);
    }
    /* Avoid the host name lookup on every run. */
    if (!ch_config_has(cfg, "identity"))
        (void)ch_config_set(cfg, "identity", "fuzz.example.net", NULL);
    ch_config_resolved *r = NULL;
    if (ch_config_resolve(cfg, &r, &err) == CH_OK) {
        if (r->collectives.count == 0 || r->ttl <= 0)
            abort();
        ch_config_resolved_free(r);
    }
    ch_config_free(cfg);
    return 0;
}
