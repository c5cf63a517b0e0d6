/* Facts files: JSON or YAML objects, merged shallowly, keys sorted as Go re-encodes them. */
#include "choria/facts.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libfyaml.h>

#include "choria/json.h"
#include "choria/log.h"
#include "choria/util.h"

/* ---- YAML -> JSON ------------------------------------------------------------------ */

typedef struct {
    size_t nodes; /* values produced so far, aliases expanded */
    ch_error *err;
} yconv;

static bool is_one_of(const char *s, size_t n, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strlen(*words) == n && memcmp(*words, s, n) == 0)
            return true;
    return false;
}

static bool digit_in_base(char c, int base)
{
    if (base == 16)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    return c >= '0' && c < '0' + base;
}

/* go-yaml's number recognition (token.getNumberStat) and value: decimal, 0x, 0o, 0b and
 * leading-zero octal integers, and decimals with a '.' (an exponent only after the '.'), all
 * with optional '_' separators. Returns false for text that is not a number; on true *v is
 * the value, or NULL on no memory. */
static bool yaml_number(const char *s, size_t n, json_t **v)
{
    char buf[128];
    size_t m = 0;
    *v = NULL;
    if (n == 0 || n >= sizeof(buf) || s[0] == '_')
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '_')
            buf[m++] = s[i];
    buf[m] = '\0';
    const char *p = buf;
    bool neg = false;
    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    int base = 10;
    if (p[0] == '0' && p[1] == 'x')
        base = 16;
    else if (p[0] == '0' && p[1] == 'o')
        base = 8;
    else if (p[0] == '0' && p[1] == 'b')
        base = 2;
    if (base != 10) {
        p += 2;
    } else {
        bool dot = false, exp = false, digits = false;
        for (const char *q = p; *q != '\0'; q++) {
            if (*q >= '0' && *q <= '9') {
                digits = true;
            } else if (*q == '.' && !dot && !exp) {
                dot = true;
            } else if ((*q == 'e' || *q == 'E') && dot && !exp && digits) {
                exp = true;
                if (q[1] == '+' || q[1] == '-')
                    q++;
                if (q[1] < '0' || q[1] > '9')
                    return false;
            } else {
                return false;
            }
        }
        if (!digits)
            return false;
        if (dot) {
            *v = json_real(strtod(buf, NULL));
            return true;
        }
        if (p[0] == '0' && p[1] != '\0')
            base = 8; /* go-yaml reads a leading zero as octal */
    }
    if (*p == '\0')
        return false;
    for (const char *q = p; *q != '\0'; q++)
        if (!digit_in_base(*q, base))
            return false;
    errno = 0;
    unsigned long long u = strtoull(p, NULL, base);
    if (errno == ERANGE || u > (unsigned long long)INT64_MAX + (neg ? 1ULL : 0ULL)) {
        if (base != 10)
            return false;
        double d = strtod(p, NULL); /* beyond int64: what Go's float64 holds */
        *v = json_real(neg ? -d : d);
        return true;
    }
    *v = json_integer(neg ? (int64_t)(0 - u) : (int64_t)u);
    return true;
}

static const char *const YAML_NULLS[] = {"null", "Null", "NULL", "~", NULL};
static const char *const YAML_TRUES[] = {"true", "True", "TRUE", NULL};
static const char *const YAML_FALSES[] = {"false", "False", "FALSE", NULL};
static const char *const YAML_NONFINITE[] = {".inf",  ".Inf",  ".INF",  "-.inf", "-.Inf",
                                             "-.INF", "+.inf", "+.Inf", "+.INF", ".nan",
                                             ".NaN",  ".NAN",  NULL};

static json_t *yaml_value(struct fy_node *fyn, int depth, yconv *c);

static json_t *yaml_scalar(struct fy_node *fyn, yconv *c)
{
    size_t n = 0;
    const char *s = fy_node_get_scalar(fyn, &n);
    if (s == NULL)
        s = "";
    if (memchr(s, '\0', n) != NULL) {
        ch_error_set(c->err, CH_ERR_INVALID, "YAML string with a NUL byte");
        return NULL;
    }
    size_t tlen = 0;
    const char *tag = fy_node_get_tag(fyn, &tlen);
    bool str_tag = tag != NULL && ((tlen == 5 && memcmp(tag, "!!str", 5) == 0) ||
                                   (tlen == 21 && memcmp(tag, "tag:yaml.org,2002:str", 21) == 0));
    json_t *v = NULL;
    if (fy_node_get_style(fyn) == FYNS_PLAIN && !str_tag) {
        if (n == 0 || is_one_of(s, n, YAML_NULLS))
            v = json_null();
        else if (is_one_of(s, n, YAML_TRUES))
            v = json_true();
        else if (is_one_of(s, n, YAML_FALSES))
            v = json_false();
        else if (is_one_of(s, n, YAML_NONFINITE)) {
            ch_error_set(c->err, CH_ERR_INVALID, "YAML value %.*s cannot be represented in JSON",
                         (int)n, s);
            return NULL;
        } else if (yaml_number(s, n, &v)) {
            if (v == NULL) /* jansson refuses infinities, e.g. 1.0e400 */
                ch_error_set(c->err, CH_ERR_INVALID, "YAML number %.*s is out of range",
                             (int)(n > 64 ? 64 : n), s);
            return v;
        }
        if (v != NULL)
            return v;
    }
    v = json_stringn(s, n);
    if (v == NULL)
        ch_error_set(c->err, CH_ERR_INVALID, "YAML string is not valid UTF-8");
    return v;
}

/* libfyaml 0.7.12 resolves an alias whose name holds '/' as a path and reads past the end of
 * the (unterminated) alias text; such names are refused (YAML anchors cannot hold '/'). */
static struct fy_node *resolve_alias(struct fy_node *alias)
{
    size_t n = 0;
    const char *name = fy_node_get_scalar(alias, &n);
    if (name == NULL || memchr(name, '/', n) != NULL)
        return NULL;
    return fy_node_resolve_alias(alias);
}

static json_t *yaml_mapping(struct fy_node *fyn, int depth, yconv *c)
{
    json_t *obj = json_object();
    void *iter = NULL;
    struct fy_node_pair *pair;
    if (obj == NULL) {
        ch_error_set(c->err, CH_ERR_NOMEM, "out of memory");
        return NULL;
    }
    while ((pair = fy_node_mapping_iterate(fyn, &iter)) != NULL) {
        struct fy_node *k = fy_node_pair_key(pair);
        for (int hops = 0; k != NULL && fy_node_is_alias(k) && hops < 64; hops++)
            k = resolve_alias(k);
        if (k != NULL && !fy_node_is_scalar(k)) {
            ch_error_set(c->err, CH_ERR_UNSUPPORTED, "YAML mapping key that is not a scalar");
            goto out;
        }
        size_t kn = 0;
        const char *ks = k != NULL ? fy_node_get_scalar(k, &kn) : "";
        char *key = ks != NULL ? strndup(ks, kn) : strdup("");
        if (key == NULL) {
            ch_error_set(c->err, CH_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (strlen(key) != kn) {
            free(key);
            ch_error_set(c->err, CH_ERR_INVALID, "YAML key with a NUL byte");
            goto out;
        }
        json_t *v = yaml_value(fy_node_pair_value(pair), depth + 1, c);
        if (v == NULL || json_object_set_new(obj, key, v) != 0) {
            if (v != NULL)
                ch_error_set(c->err, CH_ERR_INVALID, "YAML key is not valid UTF-8");
            free(key);
            goto out;
        }
        free(key);
    }
    return obj;
out:
    json_decref(obj);
    return NULL;
}

static json_t *yaml_value(struct fy_node *fyn, int depth, yconv *c)
{
    if (depth > CH_MAX_JSON_DEPTH) {
        ch_error_set(c->err, CH_ERR_TOO_LARGE, "YAML nesting exceeds the limit of %d",
                     CH_MAX_JSON_DEPTH);
        return NULL;
    }
    if (++c->nodes > CH_FACTS_MAX_YAML_NODES) {
        ch_error_set(c->err, CH_ERR_TOO_LARGE, "YAML document expands to more than %d values",
                     CH_FACTS_MAX_YAML_NODES);
        return NULL;
    }
    if (fyn == NULL)
        return json_null(); /* "key:" with nothing after it */
    if (fy_node_is_alias(fyn)) {
        struct fy_node *target = resolve_alias(fyn);
        if (target == NULL) {
            ch_error_set(c->err, CH_ERR_INVALID, "YAML alias to an unknown anchor");
            return NULL;
        }
        /* depth + 1 bounds self-referencing aliases */
        return yaml_value(target, depth + 1, c);
    }
    switch (fy_node_get_type(fyn)) {
    case FYNT_SCALAR:
        return yaml_scalar(fyn, c);
    case FYNT_MAPPING:
        return yaml_mapping(fyn, depth, c);
    case FYNT_SEQUENCE: {
        json_t *arr = json_array();
        void *iter = NULL;
        struct fy_node *item;
        if (arr == NULL) {
            ch_error_set(c->err, CH_ERR_NOMEM, "out of memory");
            return NULL;
        }
        while ((item = fy_node_sequence_iterate(fyn, &iter)) != NULL) {
            json_t *v = yaml_value(item, depth + 1, c);
            if (v == NULL || json_array_append_new(arr, v) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    }
    ch_error_set(c->err, CH_ERR_INVALID, "unknown YAML node type");
    return NULL;
}

/* libfyaml diagnostics: keep the first message for our error instead of printing it. */
typedef struct {
    char msg[160];
} ydiag;

static void ydiag_output(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    ydiag *d = user;
    (void)diag;
    if (d->msg[0] != '\0')
        return;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        len--;
    /* drop the "<memory-@0x...>:" input name: a pointer is no use in a log */
    const char *end = len > 0 && buf[0] == '<' ? memchr(buf, '>', len) : NULL;
    if (end != NULL && (size_t)(end - buf) + 2 <= len && end[1] == ':') {
        len -= (size_t)(end - buf) + 2;
        buf = end + 2;
    }
    snprintf(d->msg, sizeof(d->msg), "%.*s", (int)len, buf);
}

/* Offset of the first byte that cannot be in a YAML stream (not UTF-8, or a C0 control other
 * than tab, LF and CR, or DEL), len when there is none. Checked up front because libfyaml
 * 0.7.12 loops forever on some invalid bytes (e.g. "%\x80"). */
static size_t yaml_text_bad_offset(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            /* Tabs too: libfyaml 0.7.12 crashes (SEGV in fy_diag_write) reporting some errors
             * on lines that hold tabs, and YAML does not need them. JSON with tabs still
             * parses: see ch_facts_parse(). */
            if ((c < 0x20 && c != '\n' && c != '\r') || c == 0x7f)
                return i;
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            n = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (n > len - i)
            return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n;
    }
    return len;
}

static json_t *parse_yaml(const char *text, size_t len, ch_error *err)
{
    ydiag d = {""};
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = ydiag_output;
    dcfg.user = &d;
    dcfg.level = FYET_ERROR;
    dcfg.colorize = false;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    /* duplicate keys: the last wins, as go-yaml allows them by default */
    struct fy_parse_cfg cfg = {.flags = FYPCF_DEFAULT_VERSION_AUTO | FYPCF_ALLOW_DUPLICATE_KEYS,
                               .diag = diag};
    struct fy_parser *fyp = diag != NULL ? fy_parser_create(&cfg) : NULL;
    struct fy_document *fyd = NULL;
    json_t *out = NULL;
    size_t bad = yaml_text_bad_offset((const unsigned char *)text, len);
    if (bad < len) {
        ch_error_set(err, CH_ERR_INVALID,
                     "invalid YAML: byte 0x%02x at offset %zu is not allowed in YAML text",
                     (unsigned char)text[bad], bad);
        goto out;
    }
    if (fyp == NULL || fy_parser_set_string(fyp, text, len) != 0) {
        ch_error_set(err, CH_ERR_NOMEM, "could not create a YAML parser");
        goto out;
    }
    /* The first document; an empty stream is Go's null, i.e. no facts. */
    fyd = fy_parse_load_document(fyp);
    if (fyd == NULL) {
        if (fy_parser_get_stream_error(fyp))
            ch_error_set(err, CH_ERR_INVALID, "invalid YAML: %s",
                         d.msg[0] != '\0' ? d.msg : "parse error");
        else
            out = json_null();
        goto out;
    }
    yconv c = {.nodes = 0, .err = err};
    struct fy_node *root = fy_document_root(fyd);
    out = root != NULL ? yaml_value(root, 0, &c) : json_null();
out:
    if (fyd != NULL)
        fy_parse_document_destroy(fyp, fyd);
    if (fyp != NULL)
        fy_parser_destroy(fyp);
    if (diag != NULL)
        fy_diag_destroy(diag);
    return out;
}

/* ---- parse and load ---------------------------------------------------------------- */

ch_status ch_facts_parse(const char *text, size_t len, bool yaml, json_t **out, ch_error *err)
{
    *out = NULL;
    if (text == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no facts data");
    if (len > CH_FACTS_MAX_FILE_SIZE)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "facts document of %zu bytes exceeds %d", len,
                            CH_FACTS_MAX_FILE_SIZE);
    /* JSON is YAML too; parse a JSON-looking text as JSON first so it never meets libfyaml. */
    size_t lead = 0;
    while (lead < len &&
           (text[lead] == ' ' || text[lead] == '\t' || text[lead] == '\n' || text[lead] == '\r'))
        lead++;
    json_t *doc = NULL;
    if (yaml && lead < len && text[lead] == '{')
        doc = ch_json_parse(text, len, CH_FACTS_MAX_FILE_SIZE, CH_MAX_JSON_DEPTH, NULL);
    if (doc == NULL)
        doc = yaml ? parse_yaml(text, len, err)
                   : ch_json_parse(text, len, CH_FACTS_MAX_FILE_SIZE, CH_MAX_JSON_DEPTH, err);
    if (doc == NULL)
        return err != NULL && err->code != CH_OK ? err->code : CH_ERR_INVALID;
    if (json_is_null(doc)) {
        json_decref(doc);
        *out = json_object();
        return *out != NULL ? CH_OK : ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
    if (!json_is_object(doc)) {
        ch_status s = ch_json_type_error(err, doc, NULL, "map[string]interface {}");
        json_decref(doc);
        return s;
    }
    *out = ch_json_sorted_copy(doc);
    json_decref(doc);
    return *out != NULL ? CH_OK : ch_error_set(err, CH_ERR_NOMEM, "out of memory");
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Reads and parses one file into *facts; false (logged) when it is skipped. */
static bool load_one(const char *path, size_t plen, json_t **facts, ch_status *fatal)
{
    ch_error e;
    char *text = NULL;
    size_t len = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT)
            ch_warn("Fact file %s does not exist", path);
        else
            ch_error("Could not read fact file %s: %s", path, strerror(errno));
        return false;
    }
    ch_status s = ch_read_file(path, CH_FACTS_MAX_FILE_SIZE, &text, &len, &e);
    if (s != CH_OK) {
        if (s == CH_ERR_NOMEM)
            *fatal = s;
        ch_error("Could not read fact file %s: %s", path, e.msg);
        return false;
    }
    bool yaml = ends_with(path, plen, "yaml");
    s = ch_facts_parse(text, len, yaml, facts, &e);
    free(text);
    if (s != CH_OK) {
        if (s == CH_ERR_NOMEM)
            *fatal = s;
        ch_error("Could not parse facts file %s%s: %s", path, yaml ? " as YAML" : "", e.msg);
        return false;
    }
    return true;
}

ch_status ch_facts_load(const char *paths, json_t **out, size_t *loaded, ch_error *err)
{
    ch_status fatal = CH_OK;
    size_t files = 0, entries = 0;
    json_t *merged = json_object();
    *out = NULL;
    if (loaded != NULL)
        *loaded = 0;
    if (merged == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    const char *p = paths != NULL ? paths : "";
    while (*p != '\0' && fatal == CH_OK) {
        const char *colon = strchr(p, ':');
        size_t n = colon != NULL ? (size_t)(colon - p) : strlen(p);
        if (n > 0) {
            char path[CH_FACTS_MAX_PATH];
            json_t *facts = NULL;
            if (++entries > CH_FACTS_MAX_FILES) {
                ch_error("Ignoring fact files after the first %d", CH_FACTS_MAX_FILES);
                break;
            }
            if (n >= sizeof(path) || memchr(p, '\0', n) != NULL) {
                ch_error("Ignoring a fact file path of %zu bytes", n);
            } else {
                memcpy(path, p, n);
                path[n] = '\0';
                if (load_one(path, n, &facts, &fatal)) {
                    /* shallow merge, later files win (Ruby Hash#merge) */
                    if (json_object_update(merged, facts) != 0)
                        fatal = CH_ERR_NOMEM;
                    files++;
                }
                json_decref(facts);
            }
        }
        p += n;
        if (*p == ':')
            p++;
    }
    if (fatal != CH_OK) {
        json_decref(merged);
        return ch_error_set(err, fatal, "out of memory loading facts");
    }
    /* merged keys in sorted order, as Go's encoding of the merged map */
    *out = ch_json_sorted_copy(merged);
    json_decref(merged);
    if (*out == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory loading facts");
    if (loaded != NULL)
        *loaded = files;
    return CH_OK;
}
