/* Bounded JSON parsing and Go-compatible JSON encoding. */
#include "choria/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ch_buf_init(ch_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void ch_buf_free(ch_buf *b)
{
    free(b->data);
    ch_buf_init(b);
}

static bool buf_reserve(ch_buf *b, size_t extra)
{
    if (b->failed)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *nd = realloc(b->data, cap);
    if (nd == NULL) {
        b->failed = true;
        return false;
    }
    b->data = nd;
    b->cap = cap;
    b->data[b->len] = '\0'; /* NUL-terminated even before the first append */
    return true;
}

void ch_buf_append(ch_buf *b, const char *s, size_t len)
{
    if (!buf_reserve(b, len))
        return;
    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void ch_buf_append_str(ch_buf *b, const char *s)
{
    ch_buf_append(b, s, strlen(s));
}

void ch_buf_printf(ch_buf *b, const char *fmt, ...)
{
    if (!buf_reserve(b, 64))
        return;
    /* Format into the spare room first; only a result that does not fit is formatted twice. */
    size_t room = b->cap - b->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->data[b->len] = '\0';
        return;
    }
    if ((size_t)n >= room) {
        if (!buf_reserve(b, (size_t)n))
            return;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

char *ch_buf_steal(ch_buf *b, size_t *len)
{
    if (b->failed || !buf_reserve(b, 0)) {
        ch_buf_free(b);
        return NULL;
    }
    char *d = b->data;
    if (len != NULL)
        *len = b->len;
    ch_buf_init(b);
    return d;
}

/* Length of the valid UTF-8 sequence at s (max n bytes), or 0 if invalid. */
size_t ch_utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        len = 2;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* The escape of the character at s[i] in style, NULL when it is written as it is; *adv is the
 * length of the character (a whole UTF-8 sequence). tmp holds a \u00XX escape. */
static const char *escape_at(const unsigned char *s, size_t i, size_t len, ch_json_escape style,
                             char tmp[7], size_t *adv)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char c = s[i];
    bool go = style == CH_JSON_ESCAPE_GO;
    *adv = 1;
    if (c == '"' || c == '\\') {
        tmp[0] = '\\', tmp[1] = (char)c, tmp[2] = '\0';
        return tmp;
    }
    if (c == '\n' || c == '\r' || c == '\t' || (go && (c == '\b' || c == '\f'))) {
        tmp[0] = '\\';
        tmp[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : c == '\b' ? 'b' : 'f';
        tmp[2] = '\0';
        return tmp;
    }
    if (c < 0x20 || (go && (c == '<' || c == '>' || c == '&'))) {
        snprintf(tmp, 7, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
        return tmp;
    }
    if (c < 0x80)
        return NULL;
    *adv = ch_utf8_seq_len(s + i, len - i);
    if (*adv == 0) { /* invalid UTF-8: Go writes U+FFFD; so do we for jsoniter, to stay JSON */
        *adv = 1;
        return "\\ufffd";
    }
    if (go && *adv == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9))
        return s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
    return NULL;
}

void ch_buf_append_json_string_as(ch_buf *b, const char *str, size_t len, ch_json_escape style)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t start = 0, i = 0, adv = 1;
    char tmp[7];
    ch_buf_append(b, "\"", 1);
    for (; i < len; i += adv) {
        const char *esc = escape_at(s, i, len, style, tmp, &adv);
        if (esc != NULL) {
            ch_buf_append(b, str + start, i - start);
            ch_buf_append_str(b, esc);
            start = i + adv;
        }
    }
    ch_buf_append(b, str + start, len - start);
    ch_buf_append(b, "\"", 1);
}

void ch_buf_append_json_string(ch_buf *b, const char *str, size_t len)
{
    ch_buf_append_json_string_as(b, str, len, CH_JSON_ESCAPE_GO);
}

/* Go's float formatting: shortest round-trip digits, fixed notation inside [1e-6, 1e21),
 * exponent form outside it with "e-07" shortened to "e-7". Floats are rare in Choria
 * documents; very large fixed values may differ from Go in the last digits. */
static void append_real(ch_buf *b, double v)
{
    char tmp[64];
    double a = fabs(v);
    bool exp_form = a != 0 && (a < 1e-6 || a >= 1e21);
    if (!isfinite(v)) {
        ch_buf_append_str(b, "null");
        return;
    }
    for (int prec = 0; prec <= 17; prec++) {
        if (exp_form)
            snprintf(tmp, sizeof(tmp), "%.*e", prec, v);
        else
            snprintf(tmp, sizeof(tmp), "%.*f", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    size_t n = strlen(tmp);
    if (exp_form && n >= 4 && tmp[n - 4] == 'e' && tmp[n - 3] == '-' && tmp[n - 2] == '0') {
        tmp[n - 2] = tmp[n - 1];
        tmp[n - 1] = '\0';
    }
    ch_buf_append_str(b, tmp);
}

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void encode_value(ch_buf *b, const json_t *v, bool sorted);

/* An object's members in iteration order, or bytewise sorted by key as Go encodes a map. */
static void encode_object(ch_buf *b, const json_t *v, bool sorted)
{
    size_t n = json_object_size(v), i = 0;
    const char **keys = sorted && n > 1 ? malloc(n * sizeof(*keys)) : NULL;
    const char *key;
    json_t *item;
    if (sorted && n > 1 && keys == NULL) {
        b->failed = true;
        return;
    }
    ch_buf_append(b, "{", 1);
    json_object_foreach((json_t *)v, key, item)
    {
        if (keys != NULL) {
            keys[i++] = key;
            continue;
        }
        if (i++ > 0)
            ch_buf_append(b, ",", 1);
        ch_buf_append_json_string(b, key, strlen(key));
        ch_buf_append(b, ":", 1);
        encode_value(b, item, sorted);
    }
    if (keys != NULL)
        qsort(keys, n, sizeof(*keys), key_cmp);
    for (i = 0; keys != NULL && i < n; i++) {
        if (i > 0)
            ch_buf_append(b, ",", 1);
        ch_buf_append_json_string(b, keys[i], strlen(keys[i]));
        ch_buf_append(b, ":", 1);
        encode_value(b, json_object_get(v, keys[i]), sorted);
    }
    free(keys);
    ch_buf_append(b, "}", 1);
}

static void encode_value(ch_buf *b, const json_t *v, bool sorted)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        encode_object(b, v, sorted);
        break;
    case JSON_ARRAY: {
        ch_buf_append(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0)
                ch_buf_append(b, ",", 1);
            encode_value(b, json_array_get(v, i), sorted);
        }
        ch_buf_append(b, "]", 1);
        break;
    }
    case JSON_STRING:
        ch_buf_append_json_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        ch_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        append_real(b, json_real_value(v));
        break;
    case JSON_TRUE:
        ch_buf_append(b, "true", 4);
        break;
    case JSON_FALSE:
        ch_buf_append(b, "false", 5);
        break;
    case JSON_NULL:
        ch_buf_append(b, "null", 4);
        break;
    }
}

char *ch_json_encode(const json_t *value, size_t *len)
{
    if (value == NULL)
        return NULL;
    ch_buf b;
    ch_buf_init(&b);
    encode_value(&b, value, false);
    return ch_buf_steal(&b, len);
}

char *ch_json_encode_sorted(const json_t *value, size_t *len)
{
    if (value == NULL || ch_json_depth_of(value, CH_MAX_JSON_DEPTH) > CH_MAX_JSON_DEPTH)
        return NULL;
    ch_buf b;
    ch_buf_init(&b);
    encode_value(&b, value, true);
    return ch_buf_steal(&b, len);
}

int ch_json_depth_of(const json_t *v, int limit)
{
    int max = 0;
    size_t i;
    const char *k;
    json_t *e;
    if (!json_is_array(v) && !json_is_object(v))
        return 0;
    if (limit <= 0)
        return 1; /* past the limit: counting stops here */
    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
        {
            int d = ch_json_depth_of(e, limit - 1);
            max = d > max ? d : max;
        }
    } else {
        json_object_foreach((json_t *)v, k, e)
        {
            int d = ch_json_depth_of(e, limit - 1);
            max = d > max ? d : max;
        }
    }
    return max + 1;
}

/* ---- sorted copies ---- */

static json_t *sorted_copy(const json_t *v, int depth);

static json_t *sorted_object(const json_t *v, int depth)
{
    size_t n = json_object_size(v), i = 0;
    const char **keys = malloc((n > 0 ? n : 1) * sizeof(*keys));
    json_t *out = keys != NULL ? json_object() : NULL;
    const char *k;
    json_t *item;
    json_object_foreach((json_t *)v, k, item)
    {
        if (keys != NULL)
            keys[i++] = k;
    }
    if (out != NULL)
        qsort(keys, n, sizeof(*keys), key_cmp);
    for (i = 0; out != NULL && i < n; i++) {
        json_t *copy = sorted_copy(json_object_get(v, keys[i]), depth + 1);
        if (copy == NULL || json_object_set_new(out, keys[i], copy) != 0) {
            json_decref(out);
            out = NULL;
        }
    }
    free(keys);
    return out;
}

static json_t *sorted_copy(const json_t *v, int depth)
{
    if (depth > CH_MAX_JSON_DEPTH)
        return NULL;
    if (json_is_object(v))
        return sorted_object(v, depth);
    if (!json_is_array(v))
        return json_copy((json_t *)v); /* scalars: a fresh reference is enough */
    json_t *out = json_array();
    for (size_t i = 0; out != NULL && i < json_array_size(v); i++) {
        json_t *item = sorted_copy(json_array_get(v, i), depth + 1);
        if (item == NULL || json_array_append_new(out, item) != 0) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

json_t *ch_json_sorted_copy(const json_t *v)
{
    if (v == NULL || ch_json_depth_of(v, CH_MAX_JSON_DEPTH) > CH_MAX_JSON_DEPTH)
        return NULL;
    return sorted_copy(v, 0);
}

int ch_json_depth(const char *buf, size_t len, int limit)
{
    int depth = 0, max = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                max = depth;
            if (max > limit)
                return max;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return max;
}

json_t *ch_json_parse(const char *buf, size_t len, size_t max_size, int max_depth, ch_error *err)
{
    if (buf == NULL) {
        ch_error_set(err, CH_ERR_INVALID, "no JSON data");
        return NULL;
    }
    if (len > max_size) {
        ch_error_set(err, CH_ERR_TOO_LARGE, "JSON document of %zu bytes exceeds the limit of %zu",
                     len, max_size);
        return NULL;
    }
    if (ch_json_depth(buf, len, max_depth) > max_depth) {
        ch_error_set(err, CH_ERR_TOO_LARGE, "JSON nesting exceeds the limit of %d", max_depth);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        ch_error_set(err, CH_ERR_INVALID, "invalid JSON at line %d column %d: %s", jerr.line,
                     jerr.column, jerr.text);
    return root;
}

const char *ch_json_get_string(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *ch_json_go_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    case JSON_NULL:
        return "null";
    }
    return "value";
}

/* ---- decoding into a C struct ---- */

const char *ch_json_kind_go_type(ch_json_kind kind)
{
    switch (kind) {
    case CH_JSON_STRING:
    case CH_JSON_BSTRING:
        return "string";
    case CH_JSON_INT:
        return "int";
    case CH_JSON_BOOL:
        return "bool";
    case CH_JSON_STRMAP:
        return "map[string]string";
    case CH_JSON_STRLIST:
        return "[]string";
    case CH_JSON_OBJECT:
        return "map[string]interface {}";
    case CH_JSON_VALUE:
    case CH_JSON_CHECK:
        return "interface {}";
    }
    return "interface {}";
}

/* Go names a number by its literal only when it was meant for an integer (the literal did not
 * parse as one); jansson keeps the value, so the shortest text that reads back stands in. */
static void number_text(const json_t *v, const char *go_type, char *out, size_t size)
{
    bool integer = strncmp(go_type, "int", 3) == 0 || strncmp(go_type, "uint", 4) == 0;
    if (!integer || !json_is_real(v)) {
        snprintf(out, size, "number");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, size, "number %.*g", prec, json_real_value(v));
        if (strtod(out + 7, NULL) == json_real_value(v))
            return;
    }
}

ch_status ch_json_type_error(ch_error *err, const json_t *v, const char *path, const char *go_type)
{
    char value[64];
    if (json_is_number(v))
        number_text(v, go_type, value, sizeof(value));
    else
        snprintf(value, sizeof(value), "%s", ch_json_go_type(v));
    if (path == NULL)
        return ch_error_set(err, CH_ERR_INVALID,
                            "json: cannot unmarshal %s into Go value of type %s", value, go_type);
    return ch_error_set(err, CH_ERR_INVALID,
                        "json: cannot unmarshal %s into Go struct field %s of type %s", value, path,
                        go_type);
}

const ch_json_field *ch_json_field_find(const ch_json_struct *s, const char *key)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (strcmp(s->fields[i].name, key) == 0)
            return &s->fields[i];
    for (size_t i = 0; i < s->nfields; i++)
        if (strcasecmp(s->fields[i].name, key) == 0)
            return &s->fields[i];
    return NULL;
}

static const char *field_go_type(const ch_json_field *f)
{
    return f->go_type != NULL ? f->go_type : ch_json_kind_go_type(f->kind);
}

/* The first member of an array or object that is neither a string nor null; NULL when none. */
static const json_t *first_non_string(const json_t *v)
{
    size_t i;
    const char *k;
    json_t *e;
    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e) && !json_is_null(e))
                return e;
        }
        return NULL;
    }
    json_object_foreach((json_t *)v, k, e)
    {
        if (!json_is_string(e) && !json_is_null(e))
            return e;
    }
    return NULL;
}

static ch_status decode_string(const ch_json_field *f, const json_t *v, void *dst, const char *path,
                               ch_error *err)
{
    if (!json_is_string(v))
        return ch_json_type_error(err, v, path, field_go_type(f));
    if (f->kind == CH_JSON_BSTRING) {
        *(const char **)dst = json_string_value(v);
        return CH_OK;
    }
    if (strlen(json_string_value(v)) != json_string_length(v))
        return ch_error_set(err, CH_ERR_INVALID, "%s contains a NUL byte", path);
    char *s = strdup(json_string_value(v));
    if (s == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    free(*(char **)dst);
    *(char **)dst = s;
    return CH_OK;
}

/* The kind's own rule for a non-null v. */
static ch_status decode_kind(const ch_json_field *f, const json_t *v, void *dst, const char *path,
                             ch_error *err)
{
    switch (f->kind) {
    case CH_JSON_STRING:
    case CH_JSON_BSTRING:
        return decode_string(f, v, dst, path, err);
    case CH_JSON_INT:
        if (!json_is_integer(v))
            return ch_json_type_error(err, v, path, field_go_type(f));
        *(int64_t *)dst = json_integer_value(v);
        return CH_OK;
    case CH_JSON_BOOL:
        if (!json_is_boolean(v))
            return ch_json_type_error(err, v, path, field_go_type(f));
        *(bool *)dst = json_is_true(v);
        return CH_OK;
    case CH_JSON_STRMAP:
    case CH_JSON_STRLIST:
        if (f->kind == CH_JSON_STRMAP ? !json_is_object(v) : !json_is_array(v))
            return ch_json_type_error(err, v, path, field_go_type(f));
        if (first_non_string(v) != NULL)
            return ch_json_type_error(err, first_non_string(v), path, "string");
        *(const json_t **)dst = v;
        return CH_OK;
    case CH_JSON_OBJECT:
        if (!json_is_object(v))
            return ch_json_type_error(err, v, path, field_go_type(f));
        *(const json_t **)dst = v;
        return CH_OK;
    case CH_JSON_VALUE:
        *(const json_t **)dst = v;
        return CH_OK;
    case CH_JSON_CHECK:
        return CH_OK;
    }
    return ch_error_set(err, CH_ERR_INTERNAL, "%s: unknown field kind", path);
}

/* The Go struct's own name for messages: the type without its package. */
static const char *struct_name(const ch_json_struct *s)
{
    const char *dot = strrchr(s->go_name, '.');
    return dot != NULL ? dot + 1 : s->go_name;
}

ch_status ch_json_decode(const json_t *obj, const ch_json_struct *s, void *out, ch_error *err)
{
    return ch_json_decode_at(obj, s, out, struct_name(s), err);
}

ch_status ch_json_decode_at(const json_t *obj, const ch_json_struct *s, void *out,
                            const char *path_prefix, ch_error *err)
{
    if (obj == NULL || json_is_null(obj))
        return CH_OK;
    if (!json_is_object(obj))
        return ch_json_type_error(err, obj, NULL, s->go_name);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        const ch_json_field *f = ch_json_field_find(s, key);
        if (f == NULL)
            continue;
        void *dst = f->kind != CH_JSON_CHECK ? (char *)out + f->offset : NULL;
        char path[192];
        snprintf(path, sizeof(path), "%.60s.%.128s", path_prefix, f->name);
        if (json_is_null(v)) {
            /* Go leaves a value alone and sets a map or pointer to nil */
            if (f->decode == NULL && f->kind >= CH_JSON_STRMAP && f->kind <= CH_JSON_VALUE)
                *(const json_t **)dst = NULL;
            continue;
        }
        ch_status st =
            f->decode != NULL ? f->decode(f, v, dst, path, err) : decode_kind(f, v, dst, path, err);
        if (st != CH_OK)
            return st;
    }
    return CH_OK;
}
