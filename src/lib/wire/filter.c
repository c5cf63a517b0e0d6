/* Choria request filters: decode, encode, and match against a node. */
#include "choria/filter.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choria/goregex.h"

static const char *const op_texts[] = {"==", "!=", "<", "<=", ">", ">=", "=~"};

const char *ch_fact_op_text(ch_fact_op op)
{
    if ((unsigned)op >= sizeof(op_texts) / sizeof(op_texts[0]))
        return "?";
    return op_texts[op];
}

ch_status ch_fact_op_parse(const char *text, ch_fact_op *op)
{
    for (size_t i = 0; text != NULL && i < sizeof(op_texts) / sizeof(op_texts[0]); i++) {
        if (strcmp(text, op_texts[i]) == 0) {
            *op = (ch_fact_op)i;
            return CH_OK;
        }
    }
    return CH_ERR_INVALID;
}

bool ch_filter_is_empty(const ch_filter *f)
{
    return f == NULL || (f->n_facts == 0 && f->n_classes == 0 && f->n_agents == 0 &&
                         f->n_identities == 0 && f->n_compound == 0);
}

void ch_filter_clear(ch_filter *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < sizeof(f->alloc_) / sizeof(f->alloc_[0]); i++)
        free(f->alloc_[i]);
    memset(f, 0, sizeof(*f));
}

/* ---- decoding ---------------------------------------------------------------------- */

static ch_status check_string(const json_t *v, const char *what, size_t i, bool nonempty,
                              ch_error *err)
{
    if (!json_is_string(v))
        return ch_error_set(err, CH_ERR_INVALID, "filter: %s[%zu] must be a string", what, i);
    size_t n = json_string_length(v);
    if (nonempty && n == 0)
        return ch_error_set(err, CH_ERR_INVALID, "filter: %s[%zu] must not be empty", what, i);
    if (n > CH_FILTER_MAX_STRING)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "filter: %s[%zu] is longer than %d bytes", what,
                            i, CH_FILTER_MAX_STRING);
    return CH_OK;
}

/* obj[key] must be an array (or absent when optional) of at most CH_FILTER_MAX_ENTRIES. */
static ch_status get_list(json_t *obj, const char *key, bool required, json_t **out, ch_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL) {
        if (required)
            return ch_error_set(err, CH_ERR_INVALID, "filter: %s is required", key);
        return CH_OK;
    }
    if (!json_is_array(v))
        return ch_error_set(err, CH_ERR_INVALID, "filter: %s must be an array", key);
    if (json_array_size(v) > CH_FILTER_MAX_ENTRIES)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "filter: %s has more than %d entries", key,
                            CH_FILTER_MAX_ENTRIES);
    *out = v;
    return CH_OK;
}

static ch_status parse_strings(json_t *arr, const char *key, const char *const **out, size_t *n,
                               void **alloc, ch_error *err)
{
    *out = NULL;
    *n = 0;
    size_t count = arr ? json_array_size(arr) : 0;
    if (count == 0)
        return CH_OK;
    const char **list = calloc(count, sizeof(*list));
    if (list == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing a filter");
    *alloc = list;
    for (size_t i = 0; i < count; i++) {
        json_t *v = json_array_get(arr, i);
        ch_status s = check_string(v, key, i, false, err);
        if (s != CH_OK)
            return s;
        list[i] = json_string_value(v);
    }
    *out = list;
    *n = count;
    return CH_OK;
}

static ch_status parse_facts(json_t *arr, ch_filter *f, ch_error *err)
{
    size_t count = arr ? json_array_size(arr) : 0;
    if (count == 0)
        return CH_OK;
    ch_fact_filter *facts = calloc(count, sizeof(*facts));
    if (facts == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing a filter");
    f->alloc_[0] = facts;
    for (size_t i = 0; i < count; i++) {
        json_t *item = json_array_get(arr, i);
        if (!json_is_object(item))
            return ch_error_set(err, CH_ERR_INVALID, "filter: fact[%zu] must be an object", i);
        json_t *fact = json_object_get(item, "fact");
        json_t *op = json_object_get(item, "operator");
        json_t *value = json_object_get(item, "value");
        if (fact == NULL || op == NULL || value == NULL)
            return ch_error_set(err, CH_ERR_INVALID,
                                "filter: fact[%zu] needs fact, operator and value", i);
        ch_status s = check_string(fact, "fact", i, true, err);
        if (s == CH_OK)
            s = check_string(value, "fact value", i, true, err);
        if (s == CH_OK)
            s = check_string(op, "fact operator", i, true, err);
        if (s != CH_OK)
            return s;
        if (ch_fact_op_parse(json_string_value(op), &facts[i].op) != CH_OK)
            return ch_error_set(err, CH_ERR_INVALID, "filter: fact[%zu] has unknown operator %s", i,
                                json_string_value(op));
        facts[i].fact = json_string_value(fact);
        facts[i].value = json_string_value(value);
    }
    f->facts = facts;
    f->n_facts = count;
    return CH_OK;
}

/* go-choria decodes compound as [][]map[string]string: anything else fails to unmarshal. */
static ch_status check_compound(json_t *arr, ch_error *err)
{
    for (size_t i = 0; arr != NULL && i < json_array_size(arr); i++) {
        json_t *group = json_array_get(arr, i);
        if (!json_is_array(group))
            return ch_error_set(err, CH_ERR_INVALID, "filter: compound[%zu] must be an array", i);
        if (json_array_size(group) > CH_FILTER_MAX_ENTRIES)
            return ch_error_set(err, CH_ERR_TOO_LARGE, "filter: compound[%zu] is too long", i);
        for (size_t j = 0; j < json_array_size(group); j++) {
            json_t *m = json_array_get(group, j);
            const char *k;
            json_t *v;
            if (!json_is_object(m))
                return ch_error_set(err, CH_ERR_INVALID,
                                    "filter: compound[%zu][%zu] must be an object", i, j);
            json_object_foreach(m, k, v)
            {
                if (!json_is_string(v))
                    return ch_error_set(err, CH_ERR_INVALID,
                                        "filter: compound[%zu][%zu].%s must be a string", i, j, k);
            }
        }
    }
    return CH_OK;
}

ch_status ch_filter_parse(json_t *obj, ch_filter *out, ch_error *err)
{
    json_t *fact, *cls, *agent, *ident, *compound;
    ch_status s;
    memset(out, 0, sizeof(*out));
    if (!json_is_object(obj))
        return ch_error_set(err, CH_ERR_INVALID, "filter must be an object");
    if ((s = get_list(obj, "fact", true, &fact, err)) != CH_OK ||
        (s = get_list(obj, "cf_class", true, &cls, err)) != CH_OK ||
        (s = get_list(obj, "agent", false, &agent, err)) != CH_OK ||
        (s = get_list(obj, "identity", true, &ident, err)) != CH_OK ||
        (s = get_list(obj, "compound", true, &compound, err)) != CH_OK)
        return s;
    if ((s = parse_facts(fact, out, err)) != CH_OK ||
        (s = parse_strings(cls, "cf_class", &out->classes, &out->n_classes, &out->alloc_[1],
                           err)) != CH_OK ||
        (s = parse_strings(agent, "agent", &out->agents, &out->n_agents, &out->alloc_[2], err)) !=
            CH_OK ||
        (s = parse_strings(ident, "identity", &out->identities, &out->n_identities, &out->alloc_[3],
                           err)) != CH_OK ||
        (s = check_compound(compound, err)) != CH_OK) {
        ch_filter_clear(out);
        return s;
    }
    out->compound = compound;
    out->n_compound = json_array_size(compound);
    return CH_OK;
}

static ch_status validate_list(const char *const *list, size_t n, const char *what, ch_error *err)
{
    if (n > CH_FILTER_MAX_ENTRIES)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "filter: %s has more than %d entries", what,
                            CH_FILTER_MAX_ENTRIES);
    for (size_t i = 0; i < n; i++) {
        if (list == NULL || list[i] == NULL)
            return ch_error_set(err, CH_ERR_INVALID, "filter: %s[%zu] is NULL", what, i);
        if (strlen(list[i]) > CH_FILTER_MAX_STRING)
            return ch_error_set(err, CH_ERR_TOO_LARGE, "filter: %s[%zu] is longer than %d bytes",
                                what, i, CH_FILTER_MAX_STRING);
    }
    return CH_OK;
}

ch_status ch_filter_validate(const ch_filter *f, ch_error *err)
{
    ch_status s;
    if (f == NULL)
        return CH_OK;
    if ((s = validate_list(f->classes, f->n_classes, "cf_class", err)) != CH_OK ||
        (s = validate_list(f->agents, f->n_agents, "agent", err)) != CH_OK ||
        (s = validate_list(f->identities, f->n_identities, "identity", err)) != CH_OK)
        return s;
    if (f->n_facts > CH_FILTER_MAX_ENTRIES)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "filter: fact has more than %d entries",
                            CH_FILTER_MAX_ENTRIES);
    for (size_t i = 0; i < f->n_facts; i++) {
        const ch_fact_filter *ff = &f->facts[i];
        if (ff->fact == NULL || ff->fact[0] == '\0' || ff->value == NULL || ff->value[0] == '\0')
            return ch_error_set(err, CH_ERR_INVALID,
                                "filter: fact[%zu] needs a non-empty fact and value", i);
        if (strlen(ff->fact) > CH_FILTER_MAX_STRING || strlen(ff->value) > CH_FILTER_MAX_STRING)
            return ch_error_set(err, CH_ERR_TOO_LARGE, "filter: fact[%zu] is too long", i);
        if ((unsigned)ff->op > CH_FACT_OP_RE)
            return ch_error_set(err, CH_ERR_INVALID, "filter: fact[%zu] has an unknown operator",
                                i);
    }
    if (f->n_compound > 0) {
        if (!json_is_array(f->compound) || json_array_size(f->compound) != f->n_compound)
            return ch_error_set(err, CH_ERR_INVALID,
                                "filter: compound count does not match its JSON array");
        if (f->n_compound > CH_FILTER_MAX_ENTRIES)
            return ch_error_set(err, CH_ERR_TOO_LARGE, "filter: compound has too many entries");
        return check_compound(f->compound, err);
    }
    return CH_OK;
}

/* ---- encoding ---------------------------------------------------------------------- */

static void encode_strings(ch_buf *b, const char *const *list, size_t n)
{
    ch_buf_append(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            ch_buf_append(b, ",", 1);
        const char *s = list[i] ? list[i] : "";
        ch_buf_append_json_string(b, s, strlen(s));
    }
    ch_buf_append(b, "]", 1);
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A Go map encodes with its keys sorted bytewise. */
static void encode_sorted_object(ch_buf *b, json_t *obj)
{
    size_t n = json_object_size(obj), i = 0;
    const char **keys = n ? calloc(n, sizeof(*keys)) : NULL;
    const char *k;
    json_t *v;
    if (n > 0 && keys == NULL) {
        b->failed = true;
        return;
    }
    json_object_foreach(obj, k, v)
    {
        keys[i++] = k;
    }
    qsort(keys, n, sizeof(*keys), cmp_keys);
    ch_buf_append(b, "{", 1);
    for (i = 0; i < n; i++) {
        size_t vlen = 0;
        char *enc = ch_json_encode(json_object_get(obj, keys[i]), &vlen);
        if (enc == NULL) {
            b->failed = true;
            break;
        }
        if (i > 0)
            ch_buf_append(b, ",", 1);
        ch_buf_append_json_string(b, keys[i], strlen(keys[i]));
        ch_buf_append(b, ":", 1);
        ch_buf_append(b, enc, vlen);
        free(enc);
    }
    ch_buf_append(b, "}", 1);
    free(keys);
}

static void encode_compound(ch_buf *b, const ch_filter *f)
{
    ch_buf_append(b, "[", 1);
    for (size_t i = 0; f->n_compound > 0 && i < json_array_size(f->compound); i++) {
        json_t *group = json_array_get(f->compound, i);
        if (i > 0)
            ch_buf_append(b, ",", 1);
        ch_buf_append(b, "[", 1);
        for (size_t j = 0; j < json_array_size(group); j++) {
            if (j > 0)
                ch_buf_append(b, ",", 1);
            encode_sorted_object(b, json_array_get(group, j));
        }
        ch_buf_append(b, "]", 1);
    }
    ch_buf_append(b, "]", 1);
}

void ch_filter_encode(const ch_filter *f, ch_buf *b)
{
    static const ch_filter empty;
    if (f == NULL)
        f = &empty;
    ch_buf_append_str(b, "{\"fact\":[");
    for (size_t i = 0; i < f->n_facts; i++) {
        const ch_fact_filter *ff = &f->facts[i];
        const char *fact = ff->fact ? ff->fact : "", *value = ff->value ? ff->value : "";
        if (i > 0)
            ch_buf_append(b, ",", 1);
        ch_buf_append_str(b, "{\"fact\":");
        ch_buf_append_json_string(b, fact, strlen(fact));
        ch_buf_append_str(b, ",\"operator\":");
        const char *op = ch_fact_op_text(ff->op);
        ch_buf_append_json_string(b, op, strlen(op));
        ch_buf_append_str(b, ",\"value\":");
        ch_buf_append_json_string(b, value, strlen(value));
        ch_buf_append(b, "}", 1);
    }
    ch_buf_append_str(b, "],\"cf_class\":");
    encode_strings(b, f->classes, f->n_classes);
    ch_buf_append_str(b, ",\"agent\":");
    encode_strings(b, f->agents, f->n_agents);
    ch_buf_append_str(b, ",\"identity\":");
    encode_strings(b, f->identities, f->n_identities);
    ch_buf_append_str(b, ",\"compound\":");
    encode_compound(b, f);
    ch_buf_append(b, "}", 1);
}

/* ---- regular expressions ----------------------------------------------------------- */

static ch_status rx_compile(const char *pattern, size_t len, regex_t *re, ch_error *err)
{
    if (len > CH_FILTER_MAX_STRING)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "regular expression longer than %d bytes",
                            CH_FILTER_MAX_STRING);
    return ch_goregex_compile(pattern, len, re, err);
}

static bool rx_exec(const regex_t *re, const char *subject)
{
    return ch_goregex_match(re, subject);
}

/* One-shot match of subject against pattern[0..len). */
static ch_status rx_match(const char *pattern, size_t len, const char *subject, bool *matched,
                          ch_error *err)
{
    regex_t re;
    ch_status s = rx_compile(pattern, len, &re, err);
    *matched = false;
    if (s != CH_OK)
        return s;
    *matched = rx_exec(&re, subject);
    regfree(&re);
    return CH_OK;
}

/* Identity, agent and class entries are regexes when wrapped in slashes. */
static bool is_slash_regex(const char *needle, size_t len)
{
    return len >= 1 && needle[0] == '/' && needle[len - 1] == '/';
}

/* Whether needle (exact or /regex/) matches one entry of list. */
static ch_status match_any(const char *needle, const char *const *list, size_t n, bool *matched,
                           ch_error *err)
{
    size_t len = strlen(needle);
    *matched = false;
    if (!is_slash_regex(needle, len)) {
        for (size_t i = 0; i < n; i++)
            if (list[i] != NULL && strcmp(list[i], needle) == 0)
                *matched = true;
        return CH_OK;
    }
    /* strings.TrimPrefix + TrimSuffix: one slash each side ("/" alone becomes "") */
    const char *pat = needle + 1;
    size_t plen = len >= 2 ? len - 2 : 0;
    regex_t re;
    ch_status s = rx_compile(pat, plen, &re, err);
    if (s != CH_OK)
        return s;
    for (size_t i = 0; i < n && !*matched; i++)
        if (list[i] != NULL && rx_exec(&re, list[i]))
            *matched = true;
    regfree(&re);
    return CH_OK;
}

/* ---- fact lookup (gjson paths) ----------------------------------------------------- */

/* Wildcards are marked in an unescaped path component with these bytes, which never occur
 * in the valid UTF-8 of a JSON key, so an escaped '\*' stays a literal '*'. */
#define WILD_STAR '\xfe'
#define WILD_ONE '\xff'

/* Glob of the marked pattern over key[0..klen); iterative with one backtrack point. */
static bool glob_match(const char *pat, size_t plen, const char *key, size_t klen)
{
    size_t p = 0, k = 0, star_p = (size_t)-1, star_k = 0;
    while (k < klen) {
        if (p < plen && (pat[p] == WILD_ONE || pat[p] == key[k])) {
            p++;
            k++;
        } else if (p < plen && pat[p] == WILD_STAR) {
            star_p = p++;
            star_k = k;
        } else if (star_p != (size_t)-1) {
            p = star_p + 1;
            k = ++star_k;
        } else {
            return false;
        }
    }
    while (p < plen && pat[p] == WILD_STAR)
        p++;
    return p == plen;
}

static bool is_index(const char *s, size_t n, size_t *idx)
{
    size_t v = 0;
    if (n == 0 || n > 9)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *idx = v;
    return true;
}

/* Resolves path[i..plen) below cur. A wildcard component tries each matching key in document
 * order and keeps the first that resolves the rest of the path, as gjson does; every node is
 * visited at most once per wildcard level, so the cost stays linear in the document. */
static json_t *lookup_from(const json_t *cur, const char *path, size_t plen, size_t i, int depth)
{
    char comp[CH_FILTER_MAX_STRING];
    size_t n = 0, idx;
    bool wild = false;
    if (cur == NULL || depth > CH_MAX_JSON_DEPTH)
        return NULL;
    while (i < plen && path[i] != '.') {
        char c = path[i];
        if (c == '\\' && i + 1 < plen) {
            c = path[++i];
        } else if (c == '*') {
            c = WILD_STAR;
            wild = true;
        } else if (c == '?') {
            c = WILD_ONE;
            wild = true;
        }
        comp[n++] = c;
        i++;
    }
    bool last = i >= plen;
    if (!last && ++i >= plen)
        return NULL; /* a trailing dot names nothing */
    if (json_is_object(cur) && wild) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)cur, k, v)
        {
            if (!glob_match(comp, n, k, strlen(k)))
                continue;
            json_t *found = last ? v : lookup_from(v, path, plen, i, depth + 1);
            if (found != NULL)
                return found;
        }
        return NULL;
    }
    json_t *next = NULL;
    if (json_is_object(cur))
        next = json_object_getn(cur, comp, n);
    else if (json_is_array(cur) && !wild && is_index(comp, n, &idx))
        next = json_array_get(cur, idx);
    return last ? next : lookup_from(next, path, plen, i, depth + 1);
}

json_t *ch_filter_fact_lookup(const json_t *facts, const char *path)
{
    size_t plen;
    if (facts == NULL || path == NULL || (plen = strlen(path)) == 0 || plen > CH_FILTER_MAX_STRING)
        return NULL;
    return lookup_from(facts, path, plen, 0, 0);
}

/* ---- fact matching ----------------------------------------------------------------- */

/* strconv.ParseBool truth: "1", "t", "T", "TRUE", "true", "True"; errors are false. */
static bool truthy(const char *v)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (strcmp(v, yes[i]) == 0)
            return true;
    return false;
}

/* truthy() of the lower-cased value. The copy loop is bounded by the buffer, not by strlen(v):
 * every accepted spelling fits, and gcc can then prove each store lands inside low[]. */
static bool truthy_lower(const char *v)
{
    char low[8];
    size_t i = 0;
    for (; i < sizeof(low) - 1 && v[i] != '\0'; i++)
        low[i] = (char)tolower((unsigned char)v[i]);
    if (v[i] != '\0')
        return false;
    low[i] = '\0';
    return truthy(low);
}

/* strconv.Atoi: optional sign, decimal digits, int64 range; nothing else. */
static bool parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    uint64_t v = 0, limit;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (*p == '\0')
        return false;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* strconv.ParseFloat, close enough: the whole string must be a number, no leading space. */
static bool parse_float(const char *s, double *out)
{
    char *end = NULL;
    if (*s == '\0' || isspace((unsigned char)*s))
        return false;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0')
        return false;
    if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL))
        return false;
    *out = v;
    return true;
}

/* gjson Result.Int(): integers exactly, floats truncated toward zero. */
static int64_t fact_int(const json_t *v)
{
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    double d = json_real_value(v);
    if (isnan(d))
        return 0;
    if (d >= 9223372036854775807.0)
        return INT64_MAX;
    if (d <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)d;
}

static double fact_float(const json_t *v)
{
    return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static bool ordered(ch_fact_op op, int cmp)
{
    switch (op) {
    case CH_FACT_OP_LT:
        return cmp < 0;
    case CH_FACT_OP_LE:
        return cmp <= 0;
    case CH_FACT_OP_GT:
        return cmp > 0;
    case CH_FACT_OP_GE:
        return cmp >= 0;
    default:
        return false;
    }
}

static ch_status eval_string(const ch_fact_filter *ff, const json_t *v, bool *m, ch_error *err)
{
    const char *s = json_string_value(v);
    size_t slen = json_string_length(v), vlen = strlen(ff->value);
    int cmp = cmp_bytes(s, slen, ff->value, vlen);
    switch (ff->op) {
    case CH_FACT_OP_EQ:
        *m = cmp == 0;
        return CH_OK;
    case CH_FACT_OP_NE:
        *m = cmp != 0;
        return CH_OK;
    case CH_FACT_OP_RE: {
        /* strings.TrimLeft/TrimRight: every leading and trailing slash goes */
        const char *p = ff->value;
        size_t n = vlen;
        while (n > 0 && *p == '/') {
            p++;
            n--;
        }
        while (n > 0 && p[n - 1] == '/')
            n--;
        return rx_match(p, n, s, m, err);
    }
    default:
        *m = ordered(ff->op, cmp);
        return CH_OK;
    }
}

static ch_status eval_number(const ch_fact_filter *ff, const json_t *v, bool *m, ch_error *err)
{
    bool as_float = strchr(ff->value, '.') != NULL;
    char text[64];
    if (ff->op == CH_FACT_OP_RE) {
        const char *p = ff->value;
        size_t n = strlen(p);
        while (n > 0 && *p == '/') {
            p++;
            n--;
        }
        while (n > 0 && p[n - 1] == '/')
            n--;
        if (as_float)
            snprintf(text, sizeof(text), "%.4f", fact_float(v));
        else
            snprintf(text, sizeof(text), "%" PRId64, fact_int(v));
        return rx_match(p, n, text, m, err);
    }
    if (as_float) {
        double want, have = fact_float(v);
        if (!parse_float(ff->value, &want))
            return ch_error_set(err, CH_ERR_INVALID, "fact %s: '%s' is not a number", ff->fact,
                                ff->value);
        switch (ff->op) {
        case CH_FACT_OP_EQ:
            *m = have == want;
            break;
        case CH_FACT_OP_NE:
            *m = have != want;
            break;
        case CH_FACT_OP_LT:
            *m = have < want;
            break;
        case CH_FACT_OP_LE:
            *m = have <= want;
            break;
        case CH_FACT_OP_GT:
            /* Upstream's gtMatch uses >= for floats (a bug); strict > is what the operator
             * promises, so a fact equal to the value does not match here. */
            *m = have > want;
            break;
        default:
            *m = have >= want;
            break;
        }
        return CH_OK;
    }
    int64_t have = fact_int(v);
    if (ff->op == CH_FACT_OP_EQ || ff->op == CH_FACT_OP_NE) {
        /* strconv.Itoa(fact) == value: "05" does not equal 5 */
        snprintf(text, sizeof(text), "%" PRId64, have);
        bool eq = strcmp(text, ff->value) == 0;
        *m = ff->op == CH_FACT_OP_EQ ? eq : !eq;
        return CH_OK;
    }
    int64_t want;
    if (!parse_int(ff->value, &want))
        return ch_error_set(err, CH_ERR_INVALID, "fact %s: '%s' is not an integer", ff->fact,
                            ff->value);
    *m = ordered(ff->op, have < want ? -1 : have > want ? 1 : 0);
    return CH_OK;
}

/* Upstream: == uses ParseBool(value), =~ and != ParseBool(lower(value)). Upstream's != on a
 * false fact returns falsey(value), i.e. the same as ==, which is a bug; here != is the
 * negation of the comparison so `false_fact != true` matches and `!= false` does not. */
static ch_status eval_bool(const ch_fact_filter *ff, bool fact, bool *m, ch_error *err)
{
    switch (ff->op) {
    case CH_FACT_OP_EQ:
        *m = fact == truthy(ff->value);
        return CH_OK;
    case CH_FACT_OP_RE:
        *m = fact == truthy_lower(ff->value);
        return CH_OK;
    case CH_FACT_OP_NE:
        *m = fact != truthy_lower(ff->value);
        return CH_OK;
    default:
        return ch_error_set(err, CH_ERR_INVALID, "fact %s: cannot compare a boolean with %s",
                            ff->fact, ch_fact_op_text(ff->op));
    }
}

ch_status ch_filter_match_fact(const ch_fact_filter *ff, const json_t *facts, ch_error *err)
{
    bool m = false;
    ch_status s = CH_OK;
    if (ff == NULL || ff->fact == NULL || ff->value == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "incomplete fact filter");
    json_t *v = ch_filter_fact_lookup(facts, ff->fact);
    if (v == NULL)
        return ch_error_set(err, CH_ERR_NO_MATCH, "fact %s does not exist", ff->fact);
    switch (json_typeof(v)) {
    case JSON_STRING:
        s = eval_string(ff, v, &m, err);
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        s = eval_number(ff, v, &m, err);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        s = eval_bool(ff, json_is_true(v), &m, err);
        break;
    default: /* null, object, array */
        if (ff->op != CH_FACT_OP_EQ && ff->op != CH_FACT_OP_NE && ff->op != CH_FACT_OP_RE)
            return ch_error_set(err, CH_ERR_INVALID, "fact %s: cannot compare a %s with %s",
                                ff->fact, json_is_null(v) ? "null" : "structured value",
                                ch_fact_op_text(ff->op));
        m = false;
        break;
    }
    if (s != CH_OK)
        return s;
    if (!m)
        return ch_error_set(err, CH_ERR_NO_MATCH, "fact %s %s %s does not match", ff->fact,
                            ch_fact_op_text(ff->op), ff->value);
    return CH_OK;
}

/* ---- whole filter ------------------------------------------------------------------ */

static ch_status match_identity(const ch_filter *f, const char *identity, ch_error *err)
{
    ch_error first_bad = {CH_OK, ""};
    const char *id = identity ? identity : "";
    for (size_t i = 0; i < f->n_identities; i++) {
        bool m = false;
        ch_error e;
        ch_status s = match_any(f->identities[i], &id, 1, &m, &e);
        if (s != CH_OK && first_bad.code == CH_OK)
            first_bad = e; /* an OR still matches through another entry */
        if (s == CH_OK && m)
            return CH_OK;
    }
    if (first_bad.code != CH_OK)
        return ch_error_set(err, first_bad.code, "identity filter: %s", first_bad.msg);
    return ch_error_set(err, CH_ERR_NO_MATCH, "identity %s does not match the identity filter", id);
}

static ch_status match_all(const char *const *needles, size_t n, const char *const *list,
                           size_t list_n, const char *what, ch_error *err)
{
    for (size_t i = 0; i < n; i++) {
        bool m = false;
        ch_error e;
        ch_status s = match_any(needles[i], list, list_n, &m, &e);
        if (s != CH_OK)
            return ch_error_set(err, s, "%s filter: %s", what, e.msg);
        if (!m)
            return ch_error_set(err, CH_ERR_NO_MATCH, "%s filter %s does not match", what,
                                needles[i]);
    }
    return CH_OK;
}

ch_status ch_filter_match(const ch_filter *f, const char *identity, const char *const *agents,
                          size_t n_agents, const char *const *classes, size_t n_classes,
                          const json_t *facts, ch_error *err)
{
    ch_status s;
    if (f != NULL && f->n_compound > 0)
        return ch_error_set(err, CH_ERR_UNSUPPORTED, "compound filters are not supported");
    if (ch_filter_is_empty(f))
        return CH_OK;
    if (f->n_identities > 0 && (s = match_identity(f, identity, err)) != CH_OK)
        return s;
    if ((s = match_all(f->agents, f->n_agents, agents, agents ? n_agents : 0, "agent", err)) !=
        CH_OK)
        return s;
    if ((s = match_all(f->classes, f->n_classes, classes, classes ? n_classes : 0, "class", err)) !=
        CH_OK)
        return s;
    for (size_t i = 0; i < f->n_facts; i++)
        if ((s = ch_filter_match_fact(&f->facts[i], facts, err)) != CH_OK)
            return s;
    return CH_OK;
}
