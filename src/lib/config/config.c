/* Choria `key = value` configuration: the ordered store, the file format and the typed
 * accessors. Value parsers are config_values.c, durations config_duration.c, brokers
 * config_servers.c, resolved settings and the client config search config_settings.c. */
#include "choria/config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "choria/util.h"

/* ---- the store: entries in order of first appearance plus an open-addressing index ---- */

typedef struct {
    char *key;
    char *value;
} kv_entry;

struct ch_config {
    kv_entry *entries;
    size_t count;
    size_t cap;
    size_t *slots; /* entry index + 1; 0 marks a free slot */
    size_t nslots; /* a power of two, kept at least twice the count */
};

static uint64_t hash_key(const char *s, size_t len)
{
    return ch_hash_fnv1a(s, len);
}

/* The slot holding key, or the free slot where it would go. */
static size_t find_slot(const ch_config *cfg, const char *key, size_t len)
{
    size_t mask = cfg->nslots - 1;
    size_t i = (size_t)hash_key(key, len) & mask;
    while (cfg->slots[i] != 0) {
        const char *k = cfg->entries[cfg->slots[i] - 1].key;
        if (strncmp(k, key, len) == 0 && k[len] == '\0')
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

static bool grow_index(ch_config *cfg)
{
    size_t n = cfg->nslots ? cfg->nslots * 2 : 64;
    size_t *slots = calloc(n, sizeof(*slots));
    if (slots == NULL)
        return false;
    free(cfg->slots);
    cfg->slots = slots;
    cfg->nslots = n;
    for (size_t e = 0; e < cfg->count; e++) {
        const char *k = cfg->entries[e].key;
        cfg->slots[find_slot(cfg, k, strlen(k))] = e + 1;
    }
    return true;
}

ch_config *ch_config_new(void)
{
    ch_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg != NULL && !grow_index(cfg)) {
        free(cfg);
        cfg = NULL;
    }
    return cfg;
}

void ch_config_free(ch_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->count; i++) {
        free(cfg->entries[i].key);
        free(cfg->entries[i].value);
    }
    free(cfg->entries);
    free(cfg->slots);
    free(cfg);
}

/* Sets key[0..klen) to value[0..vlen). Only fails on no memory. */
static ch_status store_set(ch_config *cfg, const char *key, size_t klen, const char *value,
                           size_t vlen)
{
    char *k = NULL, *v = strndup(value, vlen);
    if (v == NULL)
        return CH_ERR_NOMEM;
    size_t slot = find_slot(cfg, key, klen);
    if (cfg->slots[slot] != 0) {
        kv_entry *e = &cfg->entries[cfg->slots[slot] - 1];
        free(e->value);
        e->value = v;
        return CH_OK;
    }
    /* A new key: make room in the entries and keep the index at most half full. */
    if (cfg->count == cfg->cap) {
        size_t cap = cfg->cap ? cfg->cap * 2 : 32;
        kv_entry *entries = realloc(cfg->entries, cap * sizeof(*entries));
        if (entries == NULL)
            goto out;
        cfg->entries = entries;
        cfg->cap = cap;
    }
    if ((cfg->count + 1) * 2 > cfg->nslots) {
        if (!grow_index(cfg))
            goto out;
        slot = find_slot(cfg, key, klen);
    }
    if ((k = strndup(key, klen)) == NULL)
        goto out;
    cfg->entries[cfg->count].key = k;
    cfg->entries[cfg->count].value = v;
    cfg->slots[slot] = ++cfg->count;
    return CH_OK;

out:
    free(v);
    return CH_ERR_NOMEM;
}

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

static bool key_valid(const char *key, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!key_char(key[i]))
            return false;
    return true;
}

/* One pass over the text; with cfg NULL it only validates. */
static ch_status parse_pass(ch_config *cfg, const char *source, const char *text, size_t len,
                            ch_error *err)
{
    size_t pos = 0;
    for (unsigned line_no = 1; pos < len; line_no++) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += n + (nl != NULL ? 1 : 0);
        if (n > CH_MAX_CONFIG_LINE)
            return ch_error_set(err, CH_ERR_TOO_LARGE, "%s:%u: line is longer than %d bytes",
                                source, line_no, CH_MAX_CONFIG_LINE);
        if (memchr(line, '\0', n) != NULL)
            return ch_error_set(err, CH_ERR_INVALID, "%s:%u: line contains a NUL byte", source,
                                line_no);
        ch_trim(&line, &n);
        if (n == 0 || line[0] == '#' || line[0] == ';')
            continue;
        const char *eq = memchr(line, '=', n);
        if (eq == NULL)
            return ch_error_set(err, CH_ERR_INVALID, "%s:%u: expected 'key = value', got '%.*s'",
                                source, line_no, (int)(n > 64 ? 64 : n), line);
        const char *key = line, *value = eq + 1;
        size_t klen = (size_t)(eq - line), vlen = n - klen - 1;
        ch_trim(&key, &klen);
        ch_trim(&value, &vlen);
        if (!key_valid(key, klen))
            return ch_error_set(err, CH_ERR_INVALID, "%s:%u: invalid key '%.*s'", source, line_no,
                                (int)(klen > 64 ? 64 : klen), key);
        if (vlen == 0)
            continue; /* go-choria's pattern needs a value: `key =` is skipped */
        if (cfg != NULL && store_set(cfg, key, klen, value, vlen) != CH_OK)
            return ch_error_set(err, CH_ERR_NOMEM, "%s: out of memory", source);
    }
    return CH_OK;
}

ch_status ch_config_parse(ch_config *cfg, const char *source, const char *text, size_t len,
                          ch_error *err)
{
    if (source == NULL)
        source = "config";
    if (text == NULL && len > 0)
        return ch_error_set(err, CH_ERR_INVALID, "%s: no text", source);
    if (len > CH_MAX_CONFIG_FILE_SIZE)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "%s is larger than %d bytes", source,
                            CH_MAX_CONFIG_FILE_SIZE);
    ch_status s = parse_pass(NULL, source, text, len, err);
    if (s == CH_OK)
        s = parse_pass(cfg, source, text, len, err);
    return s;
}

ch_status ch_config_load_file(ch_config *cfg, const char *path, ch_error *err)
{
    char *text = NULL;
    size_t len = 0;
    ch_status s = ch_read_file(path, CH_MAX_CONFIG_FILE_SIZE, &text, &len, err);
    if (s == CH_OK)
        s = ch_config_parse(cfg, path, text, len, err);
    free(text);
    return s;
}

ch_status ch_config_set(ch_config *cfg, const char *key, const char *value, ch_error *err)
{
    if (key == NULL || !key_valid(key, strlen(key)))
        return ch_error_set(err, CH_ERR_INVALID, "invalid key '%.64s'", key ? key : "");
    if (value == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no value for %s", key);
    if (store_set(cfg, key, strlen(key), value, strlen(value)) != CH_OK)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory setting %s", key);
    return CH_OK;
}

const char *ch_config_get(const ch_config *cfg, const char *key)
{
    if (cfg == NULL || key == NULL)
        return NULL;
    size_t slot = find_slot(cfg, key, strlen(key));
    return cfg->slots[slot] != 0 ? cfg->entries[cfg->slots[slot] - 1].value : NULL;
}

bool ch_config_has(const ch_config *cfg, const char *key)
{
    return ch_config_get(cfg, key) != NULL;
}

size_t ch_config_count(const ch_config *cfg)
{
    return cfg != NULL ? cfg->count : 0;
}

bool ch_config_entry(const ch_config *cfg, size_t index, const char **key, const char **value)
{
    if (cfg == NULL || index >= cfg->count)
        return false;
    if (key != NULL)
        *key = cfg->entries[index].key;
    if (value != NULL)
        *value = cfg->entries[index].value;
    return true;
}

/* ---- typed accessors ---- */

const char *ch_config_get_string(const ch_config *cfg, const char *key, const char *def)
{
    const char *v = ch_config_get(cfg, key);
    return v != NULL ? v : def;
}

ch_status ch_config_get_bool(const ch_config *cfg, const char *key, bool def, bool *out,
                             ch_error *err)
{
    const char *v = ch_config_get(cfg, key);
    *out = def;
    if (v == NULL)
        return CH_OK;
    if (ch_config_parse_bool(v, out) != CH_OK) {
        *out = def;
        return ch_error_set(err, CH_ERR_INVALID,
                            "%s: cannot convert string value '%.64s' into a boolean", key, v);
    }
    return CH_OK;
}

ch_status ch_config_get_int(const ch_config *cfg, const char *key, int64_t def, int64_t *out,
                            ch_error *err)
{
    const char *v = ch_config_get(cfg, key);
    *out = def;
    if (v == NULL)
        return CH_OK;
    if (ch_config_parse_int(v, out) != CH_OK) {
        *out = def;
        return ch_error_set(err, CH_ERR_INVALID, "%s: '%.64s' is not an integer", key, v);
    }
    return CH_OK;
}

ch_status ch_config_get_duration(const ch_config *cfg, const char *key, int64_t def_ns,
                                 int64_t *out_ns, ch_error *err)
{
    const char *v = ch_config_get(cfg, key);
    ch_error e;
    *out_ns = def_ns;
    if (v == NULL)
        return CH_OK;
    if (ch_config_parse_duration(v, out_ns, &e) != CH_OK) {
        *out_ns = def_ns;
        return ch_error_set(err, e.code, "%s: %s", key, e.msg);
    }
    return CH_OK;
}

ch_status ch_config_get_list(const ch_config *cfg, const char *key, const char *def,
                             ch_config_list *out, ch_error *err)
{
    const char *v = ch_config_get(cfg, key);
    if (ch_config_split_list(v != NULL ? v : def, out) != CH_OK)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory reading %s", key);
    return CH_OK;
}
