/* Choria key = value configuration, typed accessors, resolved settings, durations. */
#include "choria/config.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
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
            goto nomem;
        cfg->entries = entries;
        cfg->cap = cap;
    }
    if ((cfg->count + 1) * 2 > cfg->nslots) {
        if (!grow_index(cfg))
            goto nomem;
        slot = find_slot(cfg, key, klen);
    }
    if ((k = strndup(key, klen)) == NULL)
        goto nomem;
    cfg->entries[cfg->count].key = k;
    cfg->entries[cfg->count].value = v;
    cfg->slots[slot] = ++cfg->count;
    return CH_OK;

nomem:
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

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Narrows [*s, *s + *len) to drop leading and trailing ASCII white space. */
static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_space((*s)[*len - 1]))
        (*len)--;
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
        trim(&line, &n);
        if (n == 0 || line[0] == '#' || line[0] == ';')
            continue;
        const char *eq = memchr(line, '=', n);
        if (eq == NULL)
            return ch_error_set(err, CH_ERR_INVALID, "%s:%u: expected 'key = value', got '%.*s'",
                                source, line_no, (int)(n > 64 ? 64 : n), line);
        const char *key = line, *value = eq + 1;
        size_t klen = (size_t)(eq - line), vlen = n - klen - 1;
        trim(&key, &klen);
        trim(&value, &vlen);
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

/* ---- value parsers ---- */

static bool word_in(const char *s, size_t len, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strlen(*words) == len && strncasecmp(s, *words, len) == 0)
            return true;
    return false;
}

ch_status ch_config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "yes", "true", "y", "t", NULL};
    static const char *const no[] = {"0", "no", "false", "n", "f", NULL};
    if (s == NULL)
        return CH_ERR_INVALID;
    size_t len = strlen(s);
    trim(&s, &len);
    if (word_in(s, len, yes))
        *out = true;
    else if (word_in(s, len, no))
        *out = false;
    else
        return CH_ERR_INVALID;
    return CH_OK;
}

ch_status ch_config_parse_int(const char *s, int64_t *out)
{
    if (s == NULL)
        return CH_ERR_INVALID;
    size_t len = strlen(s);
    trim(&s, &len);
    bool neg = false;
    if (len > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        s++;
        len--;
    }
    if (len == 0)
        return CH_ERR_INVALID;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return CH_ERR_INVALID;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return CH_ERR_INVALID;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return CH_OK;
}

void ch_config_list_free(ch_config_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

ch_status ch_config_split_list(const char *s, ch_config_list *out)
{
    out->items = NULL;
    out->count = 0;
    if (s == NULL)
        return CH_OK;
    size_t cap = 1;
    for (const char *p = s; *p != '\0'; p++)
        cap += *p == ',';
    char **items = calloc(cap, sizeof(*items));
    if (items == NULL)
        return CH_ERR_NOMEM;
    size_t count = 0;
    const char *p = s;
    for (;;) {
        size_t n = strcspn(p, ",");
        const char *item = p;
        size_t len = n;
        trim(&item, &len);
        if (len > 0 && (items[count++] = strndup(item, len)) == NULL) {
            out->items = items;
            out->count = count - 1;
            ch_config_list_free(out);
            return CH_ERR_NOMEM;
        }
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    out->items = items;
    out->count = count;
    return CH_OK;
}

/* ---- durations ---- */

#define NS_PER_HOUR INT64_C(3600000000000)

/* The number before a w/d/M/y unit: Go strconv.ParseFloat(s, 32) on the decimal forms. */
static ch_status parse_float32(const char *s, size_t len, float *out)
{
    size_t i = 0, digits = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < len && s[i] == '.')
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    if (digits > 0 && i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp_digits = 0;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            exp_digits++;
        if (exp_digits == 0)
            return CH_ERR_INVALID;
    }
    if (digits == 0 || i != len)
        return CH_ERR_INVALID;

    /* strtof honours LC_NUMERIC; the syntax is Go's, so parse in the C locale. */
    locale_t c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0)
        return CH_ERR_NOMEM;
    char *end = NULL;
    float f = strtof_l(s, &end, c_locale);
    freelocale(c_locale);
    if (end != s + len)
        return CH_ERR_INVALID;
    if (isinf(f))
        return CH_ERR_TOO_LARGE;
    *out = f;
    return CH_OK;
}

/* clang-format off */
static const struct {
    const char *name;
    uint64_t ns;
} go_units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
    {"ms", 1000000},
    {"s", 1000000000},
    {"m", 60000000000},
    {"h", 3600000000000},
};
/* clang-format on */

/* Go time.ParseDuration, step for step (including its overflow rules). */
static ch_status go_parse_duration(const char *orig, size_t len, int64_t *ns, ch_error *err)
{
    const uint64_t limit = (uint64_t)1 << 63;
    const char *s = orig, *end = orig + len;
    uint64_t d = 0;
    bool neg = false;
    if (s < end && (*s == '-' || *s == '+')) {
        neg = *s == '-';
        s++;
    }
    if (end - s == 1 && *s == '0') {
        *ns = 0;
        return CH_OK;
    }
    if (s == end)
        goto invalid;
    while (s < end) {
        uint64_t v = 0, f = 0;
        double scale = 1;
        if (!(*s == '.' || (*s >= '0' && *s <= '9')))
            goto invalid;
        const char *start = s;
        for (; s < end && *s >= '0' && *s <= '9'; s++) {
            if (v > limit / 10)
                goto invalid;
            v = v * 10 + (uint64_t)(*s - '0');
            if (v > limit)
                goto invalid;
        }
        bool pre = s != start, post = false;
        if (s < end && *s == '.') {
            bool overflow = false;
            s++;
            start = s;
            for (; s < end && *s >= '0' && *s <= '9'; s++) {
                if (overflow)
                    continue;
                if (f > (limit - 1) / 10) {
                    overflow = true;
                    continue;
                }
                uint64_t y = f * 10 + (uint64_t)(*s - '0');
                if (y > limit) {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10;
            }
            post = s != start;
        }
        if (!pre && !post)
            goto invalid;
        const char *unit = s;
        while (s < end && *s != '.' && !(*s >= '0' && *s <= '9'))
            s++;
        size_t ulen = (size_t)(s - unit);
        if (ulen == 0)
            return ch_error_set(err, CH_ERR_INVALID, "time: missing unit in duration \"%.64s\"",
                                orig);
        uint64_t u = 0;
        for (size_t i = 0; i < sizeof(go_units) / sizeof(go_units[0]); i++)
            if (strlen(go_units[i].name) == ulen && memcmp(go_units[i].name, unit, ulen) == 0)
                u = go_units[i].ns;
        if (u == 0)
            return ch_error_set(err, CH_ERR_INVALID,
                                "time: unknown unit \"%.*s\" in duration \"%.64s\"",
                                (int)(ulen > 16 ? 16 : ulen), unit, orig);
        if (v > limit / u)
            goto invalid;
        v *= u;
        if (f > 0) {
            v += (uint64_t)((double)f * ((double)u / scale));
            if (v > limit)
                goto invalid;
        }
        d += v;
        if (d > limit)
            goto invalid;
    }
    if (neg) {
        *ns = (int64_t)(0 - d); /* d == 2^63 gives INT64_MIN, as in Go */
        return CH_OK;
    }
    if (d > limit - 1)
        goto invalid;
    *ns = (int64_t)d;
    return CH_OK;

invalid:
    return ch_error_set(err, CH_ERR_INVALID, "time: invalid duration \"%.64s\"", orig);
}

ch_status ch_config_parse_duration(const char *str, int64_t *ns, ch_error *err)
{
    if (str == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no duration");
    size_t len = strlen(str);
    const char *s = str;
    trim(&s, &len);
    *ns = 0;
    if (len == 0)
        return CH_OK;

    double factor; /* hours per unit, multiplied in Go's order */
    char unit = s[len - 1];
    switch (unit) {
    case 's':
    case 'S':
    case 'm':
    case 'h':
    case 'H':
        return go_parse_duration(s, len, ns, err);
    case 'w':
    case 'W':
    case 'd':
    case 'D':
    case 'M':
    case 'Y':
    case 'y':
        break;
    default:
        if ((unsigned char)unit >= 0x20 && (unsigned char)unit < 0x7f)
            return ch_error_set(err, CH_ERR_INVALID, "invalid time unit %c", unit);
        return ch_error_set(err, CH_ERR_INVALID, "invalid time unit \\x%02x", (unsigned char)unit);
    }

    float f;
    ch_status st = parse_float32(s, len - 1, &f);
    if (st == CH_ERR_NOMEM)
        return ch_error_set(err, st, "out of memory parsing a duration");
    if (st != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "strconv.ParseFloat: parsing \"%.*s\": %s",
                            (int)(len - 1 > 64 ? 64 : len - 1), s,
                            st == CH_ERR_TOO_LARGE ? "value out of range" : "invalid syntax");
    double v = f;
    if (unit == 'w' || unit == 'W')
        factor = v * 7 * 24;
    else if (unit == 'd' || unit == 'D')
        factor = v * 24;
    else if (unit == 'M')
        factor = v * 24 * 30;
    else
        factor = v * 24 * 365;
    /* Go truncates to whole hours, then multiplies by time.Hour (wrapping on overflow). */
    if (!(factor > -3e6 && factor < 3e6))
        return ch_error_set(err, CH_ERR_INVALID, "duration \"%.64s\" is out of range", s);
    int64_t hours = (int64_t)factor;
    if (hours > INT64_MAX / NS_PER_HOUR || hours < INT64_MIN / NS_PER_HOUR)
        return ch_error_set(err, CH_ERR_INVALID, "duration \"%.64s\" is out of range", s);
    *ns = hours * NS_PER_HOUR;
    return CH_OK;
}

/* Go's fmtFrac: the fraction of v / 10^prec without trailing zeros, written backwards. */
static size_t fmt_frac(char *buf, size_t w, uint64_t *v, int prec)
{
    bool print = false;
    for (int i = 0; i < prec; i++) {
        unsigned digit = (unsigned)(*v % 10);
        print = print || digit != 0;
        if (print)
            buf[--w] = (char)('0' + digit);
        *v /= 10;
    }
    if (print)
        buf[--w] = '.';
    return w;
}

static size_t fmt_int(char *buf, size_t w, uint64_t v)
{
    if (v == 0) {
        buf[--w] = '0';
        return w;
    }
    while (v > 0) {
        buf[--w] = (char)('0' + v % 10);
        v /= 10;
    }
    return w;
}

void ch_config_format_duration(int64_t ns, char *out, size_t out_size)
{
    char buf[32];
    size_t w = sizeof(buf);
    bool neg = ns < 0;
    uint64_t u = neg ? 0 - (uint64_t)ns : (uint64_t)ns;

    if (u < 1000000000) {
        /* Under a second: the largest of ns, µs, ms, as Go does. */
        int prec = 0;
        buf[--w] = 's';
        if (u == 0) {
            buf[--w] = '0';
            goto done;
        } else if (u < 1000) {
            buf[--w] = 'n';
        } else if (u < 1000000) {
            prec = 3;
            buf[--w] = '\xb5';
            buf[--w] = '\xc2';
        } else {
            prec = 6;
            buf[--w] = 'm';
        }
        w = fmt_frac(buf, w, &u, prec);
        w = fmt_int(buf, w, u);
    } else {
        buf[--w] = 's';
        w = fmt_frac(buf, w, &u, 9);
        w = fmt_int(buf, w, u % 60);
        u /= 60;
        if (u > 0) {
            buf[--w] = 'm';
            w = fmt_int(buf, w, u % 60);
            u /= 60;
            if (u > 0) {
                buf[--w] = 'h';
                w = fmt_int(buf, w, u);
            }
        }
    }
done:
    if (neg)
        buf[--w] = '-';
    snprintf(out, out_size, "%.*s", (int)(sizeof(buf) - w), buf + w);
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

/* ---- middleware hosts ---- */

void ch_config_servers_free(ch_config_server *servers, size_t count)
{
    if (servers == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        free(servers[i].host);
        free(servers[i].url);
    }
    free(servers);
}

static bool all_chars_in(const char *s, size_t len, const char *allowed_extra, bool alnum)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (alnum &&
                   ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) ||
                  (c != '\0' && strchr(allowed_extra, c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

/* One `[scheme://]host[:port]` entry. */
static ch_status parse_server(const char *entry, ch_config_server *out, ch_error *err)
{
    const char *p = entry, *why;
    const char *sep = strstr(p, "://");
    if (sep != NULL) {
        size_t n = (size_t)(sep - p);
        if (!((n == 4 && strncasecmp(p, "nats", 4) == 0) ||
              (n == 3 && strncasecmp(p, "tls", 3) == 0))) {
            why = "only nats:// and tls:// are supported";
            goto bad;
        }
        out->tls = n == 3;
        p = sep + 3;
    }
    size_t len = strlen(p);
    if (len > 0 && p[len - 1] == '/')
        len--;
    if (memchr(p, '@', len) != NULL) {
        why = "user names and passwords belong in plugin.nats.user and plugin.nats.pass";
        goto bad;
    }
    if (strcspn(p, "/?#") < len) {
        why = "a broker address has no path";
        goto bad;
    }

    const char *host, *port = NULL;
    size_t hlen, plen = 0;
    bool v6 = p[0] == '[';
    if (v6) {
        const char *close = memchr(p, ']', len);
        if (close == NULL) {
            why = "missing ']'";
            goto bad;
        }
        host = p + 1;
        hlen = (size_t)(close - host);
        const char *rest = close + 1;
        size_t rlen = len - (size_t)(rest - p);
        if (rlen > 0) {
            if (rest[0] != ':') {
                why = "junk after ']'";
                goto bad;
            }
            port = rest + 1;
            plen = rlen - 1;
        }
        if (hlen == 0 || memchr(host, ':', hlen) == NULL ||
            !all_chars_in(host, hlen, "0123456789abcdefABCDEF:.", false)) {
            why = "not an IPv6 address";
            goto bad;
        }
    } else {
        const char *colon = memchr(p, ':', len);
        host = p;
        hlen = colon != NULL ? (size_t)(colon - p) : len;
        if (colon != NULL) {
            port = colon + 1;
            plen = len - hlen - 1;
            if (memchr(port, ':', plen) != NULL) {
                why = "IPv6 addresses must be written in brackets";
                goto bad;
            }
        }
        if (hlen == 0 || hlen > CH_MAX_IDENTITY_LEN || !all_chars_in(host, hlen, "._-", true)) {
            why = "bad host name";
            goto bad;
        }
    }

    unsigned long portnum = 4222;
    if (port != NULL) {
        portnum = 0;
        if (plen == 0 || plen > 5 || !all_chars_in(port, plen, "0123456789", false)) {
            why = "bad port";
            goto bad;
        }
        for (size_t i = 0; i < plen; i++)
            portnum = portnum * 10 + (unsigned long)(port[i] - '0');
        if (portnum == 0 || portnum > 65535) {
            why = "port out of range";
            goto bad;
        }
    }

    out->host = strndup(host, hlen);
    out->port = (uint16_t)portnum;
    size_t ulen = hlen + 32;
    out->url = malloc(ulen);
    if (out->host == NULL || out->url == NULL) {
        free(out->host);
        free(out->url);
        out->host = out->url = NULL;
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing middleware hosts");
    }
    snprintf(out->url, ulen, v6 ? "nats://[%s]:%lu" : "nats://%s:%lu", out->host, portnum);
    return CH_OK;

bad:
    return ch_error_set(err, CH_ERR_INVALID, "invalid middleware host '%.100s': %s", entry, why);
}

ch_status ch_config_parse_servers(const char *list, ch_config_server **out, size_t *count,
                                  ch_error *err)
{
    ch_config_list items;
    ch_status s = CH_OK;
    *out = NULL;
    *count = 0;
    if (ch_config_split_list(list, &items) != CH_OK)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing middleware hosts");
    if (items.count == 0)
        goto done;
    ch_config_server *servers = calloc(items.count, sizeof(*servers));
    if (servers == NULL) {
        s = ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing middleware hosts");
        goto done;
    }
    size_t n = 0;
    for (; n < items.count; n++)
        if ((s = parse_server(items.items[n], &servers[n], err)) != CH_OK)
            break;
    if (s != CH_OK) {
        ch_config_servers_free(servers, n);
        goto done;
    }
    *out = servers;
    *count = n;

done:
    ch_config_list_free(&items);
    return s;
}

/* ---- resolved settings ---- */

void ch_config_resolved_free(ch_config_resolved *r)
{
    if (r == NULL)
        return;
    free(r->identity);
    free(r->loglevel);
    free(r->logfile);
    ch_config_list_free(&r->collectives);
    free(r->main_collective);
    ch_config_servers_free(r->middleware_hosts, r->middleware_count);
    free(r->middleware_urls);
    free(r->security_provider);
    free(r);
}

static bool collective_valid(const char *c)
{
    if (c[0] == '\0')
        return false;
    for (const unsigned char *p = (const unsigned char *)c; *p != '\0'; p++)
        if (*p == '.' || *p == '*' || *p == '>' || *p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

static ch_status resolve_identity(const ch_config *cfg, ch_config_resolved *r, ch_error *err)
{
    const char *id = ch_config_get(cfg, "identity");
    char fqdn[256];
    if (id == NULL || id[0] == '\0') {
        if (ch_fqdn(fqdn, sizeof(fqdn)) != CH_OK)
            return ch_error_set(err, CH_ERR_NOT_FOUND,
                                "could not determine the host name, please set identity in the "
                                "configuration");
        id = fqdn;
    }
    if (!ch_identity_valid(id))
        return ch_error_set(err, CH_ERR_INVALID, "identity '%.100s' is not a valid identity", id);
    if ((r->identity = strdup(id)) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    return CH_OK;
}

static ch_status resolve_collectives(const ch_config *cfg, ch_config_resolved *r, ch_error *err)
{
    ch_status s = ch_config_get_list(cfg, "collectives", "mcollective", &r->collectives, err);
    if (s != CH_OK)
        return s;
    if (r->collectives.count == 0)
        return ch_error_set(err, CH_ERR_INVALID, "collectives: no collective given");
    for (size_t i = 0; i < r->collectives.count; i++)
        if (!collective_valid(r->collectives.items[i]))
            return ch_error_set(err, CH_ERR_INVALID, "collectives: invalid collective '%.64s'",
                                r->collectives.items[i]);
    const char *main = ch_config_get_string(cfg, "main_collective", r->collectives.items[0]);
    if (!collective_valid(main))
        return ch_error_set(err, CH_ERR_INVALID, "main_collective: invalid collective '%.64s'",
                            main);
    if ((r->main_collective = strdup(main)) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    return CH_OK;
}

static ch_status resolve_numbers(const ch_config *cfg, ch_config_resolved *r, ch_error *err)
{
    ch_status s;
    if ((s = ch_config_get_int(cfg, "ttl", 60, &r->ttl, err)) != CH_OK ||
        (s = ch_config_get_int(cfg, "discovery_timeout", 2, &r->discovery_timeout, err)) != CH_OK)
        return s;
    if (r->ttl <= 0)
        return ch_error_set(err, CH_ERR_INVALID, "ttl: must be a positive number of seconds");
    if (r->discovery_timeout <= 0)
        return ch_error_set(err, CH_ERR_INVALID,
                            "discovery_timeout: must be a positive number of seconds");
    if ((s = ch_config_get_bool(cfg, "plugin.choria.legacy_lifecycle_format", false,
                                &r->legacy_lifecycle_format, err)) != CH_OK)
        return s;
    const char *insecure_key = ch_config_has(cfg, "plugin.choria.security.insecure")
                                   ? "plugin.choria.security.insecure"
                                   : "choria_insecure";
    return ch_config_get_bool(cfg, insecure_key, false, &r->insecure, err);
}

static ch_status resolve_strings(const ch_config *cfg, ch_config_resolved *r, ch_error *err)
{
    const char *level = ch_config_get_string(cfg, "loglevel", "info");
    if (ch_log_level_parse(level, &r->log_level) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID,
                            "loglevel: '%.32s' is not one of debug, info, warn, error, fatal",
                            level);
    const char *logfile = ch_config_get(cfg, "logfile");
    const char *provider = ch_config_get_string(cfg, "plugin.security.provider", "puppet");
    r->loglevel = strdup(level);
    r->security_provider = strdup(provider);
    if (logfile != NULL && logfile[0] != '\0')
        r->logfile = strdup(logfile);
    if (r->loglevel == NULL || r->security_provider == NULL ||
        (logfile != NULL && logfile[0] != '\0' && r->logfile == NULL))
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    return CH_OK;
}

ch_status ch_config_resolve(const ch_config *cfg, ch_config_resolved **out, ch_error *err)
{
    *out = NULL;
    ch_config_resolved *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    ch_status s;
    if ((s = resolve_strings(cfg, r, err)) != CH_OK ||
        (s = resolve_numbers(cfg, r, err)) != CH_OK ||
        (s = resolve_collectives(cfg, r, err)) != CH_OK ||
        (s = ch_config_parse_servers(ch_config_get(cfg, "plugin.choria.middleware_hosts"),
                                     &r->middleware_hosts, &r->middleware_count, err)) != CH_OK ||
        (s = resolve_identity(cfg, r, err)) != CH_OK)
        goto fail;
    if (r->middleware_count > 0) {
        r->middleware_urls = calloc(r->middleware_count, sizeof(*r->middleware_urls));
        if (r->middleware_urls == NULL) {
            s = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < r->middleware_count; i++)
            r->middleware_urls[i] = r->middleware_hosts[i].url;
    }
    *out = r;
    return CH_OK;

fail:
    ch_config_resolved_free(r);
    return s;
}

/* ---- default client configuration ---- */

static char *existing_file(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    struct stat st;
    if (path == NULL)
        return NULL;
    snprintf(path, n, "%s%s%s", dir, (dir[0] != '\0' && name[0] != '/') ? "/" : "", name);
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
        return path;
    free(path);
    return NULL;
}

char *ch_config_find_client_config(const char *root, const char *home)
{
    static const char *const home_files[] = {".choriarc", ".mcollective"};
    static const char *const system_files[] = {
        "/etc/choria/client.conf",
        "/usr/local/etc/choria/client.conf",
        "/etc/puppetlabs/mcollective/client.cfg",
    };
    char *path;
    if (home == NULL)
        home = getenv("HOME");
    if (home != NULL && home[0] != '\0')
        for (size_t i = 0; i < 2; i++)
            if ((path = existing_file(home, home_files[i])) != NULL)
                return path;
    if (root == NULL)
        root = "";
    for (size_t i = 0; i < 3; i++)
        if ((path = existing_file(root, system_files[i])) != NULL)
            return path;
    return NULL;
}
