/* Strict, allocation-free JSON scanning into a token array; see jscan.h. */
#include "choria/jscan.h"

#include <stdlib.h>
#include <string.h>

/* Token offsets are 32 bits wide. */
_Static_assert(CH_MAX_MESSAGE_SIZE < UINT32_MAX, "a JSON text must fit 32-bit offsets");

/* ---- scanning ---- */

typedef struct {
    uint32_t tok;  /* token index of the open container */
    uint32_t size; /* members or elements seen so far */
    bool object;
} level;

typedef struct {
    const unsigned char *s;
    size_t len;
    size_t pos;
    ch_jscan_token *tokens;
    size_t max;   /* tokens[] capacity; tokens past it are counted, not written */
    size_t count; /* tokens the text has produced so far */
    int depth;
    level stack[CH_MAX_JSON_DEPTH];
    const char *why; /* the reason of a failure, NULL while all is well */
    size_t where;
    bool too_deep;
} scanner;

typedef enum { FAIL = 0, DONE, OPENED } step;

static step fail_at(scanner *sc, size_t where, const char *why)
{
    sc->why = why;
    sc->where = where;
    return FAIL;
}

static step fail(scanner *sc, const char *why)
{
    return fail_at(sc, sc->pos, why);
}

static int peek(const scanner *sc)
{
    return sc->pos < sc->len ? sc->s[sc->pos] : -1;
}

static void skip_ws_slow(scanner *sc)
{
    while (sc->pos < sc->len) {
        unsigned char c = sc->s[sc->pos];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            break;
        sc->pos++;
    }
}

/* Most documents are compact: the common case, no white space, stays inline. */
static inline void skip_ws(scanner *sc)
{
    if (sc->pos >= sc->len || sc->s[sc->pos] <= ' ')
        skip_ws_slow(sc);
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Starts a token at offset start; returns its index. */
static size_t add_token(scanner *sc, ch_jscan_type type, size_t start)
{
    size_t i = sc->count++;
    if (i < sc->max)
        sc->tokens[i] = (ch_jscan_token){.start = (uint32_t)start,
                                         .end = (uint32_t)start,
                                         .next = (uint32_t)(i + 1),
                                         .type = (uint8_t)type};
    return i;
}

static void end_token(scanner *sc, size_t i, size_t end, uint8_t flags)
{
    if (i < sc->max) {
        sc->tokens[i].end = (uint32_t)end;
        sc->tokens[i].flags = flags;
    }
}

/* The high bit of each byte of x that needs a closer look inside a string: '"', '\\', a
 * control character or a non-ASCII byte. Each term flags one kind of special byte; a
 * borrow only spills out of a byte that is special itself, into the byte above it, so the
 * lowest flagged byte is always a special one (and 0 means none is). */
static uint64_t special8(uint64_t x)
{
    const uint64_t ones = UINT64_C(0x0101010101010101);
    const uint64_t high = UINT64_C(0x8080808080808080);
    uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
    return ((x - ones * 0x20) | (quote - ones) | (backslash - ones) | x) & high;
}

static bool plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Skips the bytes of a string that need no checking, 8 at a time where possible: strings
 * are most of a Choria document. */
static const unsigned char *skip_plain(const unsigned char *p, const unsigned char *end)
{
    uint64_t x, special;
    while (end - p >= 8) {
        memcpy(&x, p, sizeof(x));
        if ((special = special8(x)) != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return p + (__builtin_ctzll(special) >> 3); /* the first byte in memory */
#else
            break;
#endif
        }
        p += 8;
    }
    while (p < end && plain(*p))
        p++;
    return p;
}

/* Length of the well-formed UTF-8 sequence at p (n bytes available), 0 when it is not
 * one: Unicode's table of well-formed byte sequences, which rules out overlong forms,
 * surrogates and code points above U+10FFFF through the second byte's range. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : lo;
        hi = c == 0xED ? 0x9F : hi;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : lo;
        hi = c == 0xF4 ? 0x8F : hi;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

static int hex_value(unsigned char c)
{
    if (is_digit(c))
        return c - '0';
    c |= 0x20; /* lower case */
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The value of 4 hex digits at p (n bytes available), -1 when they are not that. */
static int32_t hex4(const unsigned char *p, size_t n)
{
    int32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        int d = i < n ? hex_value(p[i]) : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* Length of the valid escape at p (its backslash; n bytes available), 0 with *why set
 * when it is not one. */
static size_t escape_len(const unsigned char *p, size_t n, const char **why)
{
    *why = "unterminated string";
    if (n < 2)
        return 0;
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        return 2;
    case 'u':
        break;
    default:
        *why = "invalid escape in string";
        return 0;
    }
    int32_t cp = hex4(p + 2, n - 2);
    *why = "invalid \\u escape in string";
    if (cp < 0)
        return 0;
    if (cp < 0xD800 || cp > 0xDFFF)
        return 6;
    /* A high surrogate must be followed by the escape of a low one. */
    int32_t low = cp <= 0xDBFF && n >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8, 4) : -1;
    *why = "lone UTF-16 surrogate in string";
    return low >= 0xDC00 && low <= 0xDFFF ? 12 : 0;
}

/* A string at sc->pos (its opening quote) into one token. */
static step scan_string(scanner *sc)
{
    const unsigned char *p = sc->s + sc->pos + 1, *end = sc->s + sc->len;
    size_t tok = add_token(sc, CH_JSCAN_STRING, sc->pos + 1);
    uint8_t flags = 0;
    for (;;) {
        p = skip_plain(p, end);
        if (p == end)
            return fail_at(sc, sc->len, "unterminated string");
        if (*p == '"')
            break;
        size_t n;
        const char *why;
        if (*p == '\\') {
            flags = CH_JSCAN_ESCAPED;
            if ((n = escape_len(p, (size_t)(end - p), &why)) == 0)
                return fail_at(sc, (size_t)(p - sc->s), why);
            p += n;
        } else if (*p < 0x20) {
            return fail_at(sc, (size_t)(p - sc->s), "control character in string");
        } else {
            if ((n = utf8_seq(p, (size_t)(end - p))) == 0)
                return fail_at(sc, (size_t)(p - sc->s), "invalid UTF-8 in string");
            p += n;
        }
    }
    end_token(sc, tok, (size_t)(p - sc->s), flags);
    sc->pos = (size_t)(p - sc->s) + 1;
    return DONE;
}

/* Skips the digits at sc->pos; fails unless there is at least one. */
static step digits(scanner *sc, const char *why)
{
    if (!is_digit(peek(sc)))
        return fail(sc, why);
    while (is_digit(peek(sc)))
        sc->pos++;
    return DONE;
}

/* -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? */
static step scan_number(scanner *sc)
{
    size_t tok = add_token(sc, CH_JSCAN_NUMBER, sc->pos);
    uint8_t flags = 0;
    if (peek(sc) == '-')
        sc->pos++;
    if (peek(sc) == '0') {
        sc->pos++;
        if (is_digit(peek(sc)))
            return fail(sc, "leading zero in number");
    } else if (!digits(sc, "expected a digit")) {
        return FAIL;
    }
    if (peek(sc) == '.') {
        sc->pos++;
        flags = CH_JSCAN_FRACTION;
        if (!digits(sc, "expected a digit after the decimal point"))
            return FAIL;
    }
    if (peek(sc) == 'e' || peek(sc) == 'E') {
        sc->pos++;
        flags = CH_JSCAN_FRACTION;
        if (peek(sc) == '+' || peek(sc) == '-')
            sc->pos++;
        if (!digits(sc, "expected a digit in the exponent"))
            return FAIL;
    }
    end_token(sc, tok, sc->pos, flags);
    return DONE;
}

static step scan_literal(scanner *sc, const char *word, size_t n, ch_jscan_type type)
{
    if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
        return fail(sc, "invalid literal");
    size_t tok = add_token(sc, type, sc->pos);
    sc->pos += n;
    end_token(sc, tok, sc->pos, 0);
    return DONE;
}

/* An object key and its colon; the member's value follows. */
static step scan_key(scanner *sc)
{
    if (peek(sc) != '"')
        return fail(sc, "expected a string key");
    sc->stack[sc->depth - 1].size++;
    if (!scan_string(sc))
        return FAIL;
    skip_ws(sc);
    if (peek(sc) != ':')
        return fail(sc, "expected ':' after an object key");
    sc->pos++;
    skip_ws(sc);
    return DONE;
}

static void close_container(scanner *sc)
{
    const level *l = &sc->stack[--sc->depth];
    sc->pos++;
    if (l->tok < sc->max) {
        ch_jscan_token *t = &sc->tokens[l->tok];
        t->end = (uint32_t)sc->pos;
        t->next = (uint32_t)sc->count;
        t->size = l->size;
    }
}

/* '{' or '[' at sc->pos. DONE for an empty container, OPENED when a value follows. */
static step open_container(scanner *sc, bool object)
{
    if (sc->depth == CH_MAX_JSON_DEPTH) {
        sc->too_deep = true;
        return fail(sc, "nesting too deep");
    }
    size_t tok = add_token(sc, object ? CH_JSCAN_OBJECT : CH_JSCAN_ARRAY, sc->pos);
    sc->stack[sc->depth++] = (level){.tok = (uint32_t)tok, .object = object};
    sc->pos++;
    skip_ws(sc);
    if (peek(sc) == (object ? '}' : ']')) {
        close_container(sc);
        return DONE;
    }
    return object ? (scan_key(sc) ? OPENED : FAIL) : OPENED;
}

/* One value at sc->pos; a container is only opened. */
static step scan_value(scanner *sc)
{
    if (sc->depth > 0 && !sc->stack[sc->depth - 1].object)
        sc->stack[sc->depth - 1].size++;
    int c = peek(sc);
    switch (c) {
    case '{':
        return open_container(sc, true);
    case '[':
        return open_container(sc, false);
    case '"':
        return scan_string(sc);
    case 't':
        return scan_literal(sc, "true", 4, CH_JSCAN_TRUE);
    case 'f':
        return scan_literal(sc, "false", 5, CH_JSCAN_FALSE);
    case 'n':
        return scan_literal(sc, "null", 4, CH_JSCAN_NULL);
    case -1:
        return fail(sc, "unexpected end of input");
    default:
        if (c == '-' || is_digit(c))
            return scan_number(sc);
        return fail(sc, "expected a value");
    }
}

/* After a value: closes finished containers and moves to the next value. DONE when the
 * text is complete, OPENED when another value follows. */
static step after_value(scanner *sc)
{
    for (;;) {
        skip_ws(sc);
        if (sc->depth == 0)
            return sc->pos == sc->len ? DONE : fail(sc, "unexpected data after the JSON value");
        bool object = sc->stack[sc->depth - 1].object;
        int c = peek(sc);
        if (c == ',') {
            sc->pos++;
            skip_ws(sc);
            return object ? (scan_key(sc) ? OPENED : FAIL) : OPENED;
        }
        if (c != (object ? '}' : ']'))
            return fail(sc, c < 0    ? "unexpected end of input"
                            : object ? "expected ',' or '}' after an object member"
                                     : "expected ',' or ']' after an array element");
        close_container(sc);
    }
}

static step scan_text(scanner *sc)
{
    skip_ws(sc);
    for (;;) {
        step st = scan_value(sc);
        if (st == DONE)
            st = after_value(sc);
        if (st != OPENED)
            return st;
    }
}

ch_status ch_jscan_parse(ch_jscan_doc *doc, const char *text, size_t len, ch_jscan_token *tokens,
                         size_t max_tokens, ch_error *err)
{
    *doc = (ch_jscan_doc){.text = text, .len = len, .tokens = tokens};
    if (text == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no JSON data");
    if (len > CH_MAX_MESSAGE_SIZE)
        return ch_error_set(err, CH_ERR_TOO_LARGE,
                            "JSON document of %zu bytes exceeds the limit of %d", len,
                            CH_MAX_MESSAGE_SIZE);
    scanner sc = {.s = (const unsigned char *)text,
                  .len = len,
                  .tokens = tokens,
                  .max = tokens != NULL ? max_tokens : 0};
    if (!scan_text(&sc)) {
        doc->error_offset = sc.where;
        if (sc.too_deep)
            return ch_error_set(err, CH_ERR_TOO_LARGE,
                                "JSON nesting exceeds the limit of %d at offset %zu",
                                CH_MAX_JSON_DEPTH, sc.where);
        return ch_error_set(err, CH_ERR_INVALID, "invalid JSON at offset %zu: %s", sc.where,
                            sc.why);
    }
    doc->needed = sc.count;
    if (sc.count > sc.max)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "JSON document has %zu values, more than %zu",
                            sc.count, sc.max);
    doc->count = sc.count;
    return CH_OK;
}

ch_status ch_jscan_parse_grow(ch_jscan_doc *doc, const char *text, size_t len,
                              ch_jscan_token *tokens, size_t max_tokens, size_t limit,
                              ch_jscan_token **heap, ch_error *err)
{
    *heap = NULL;
    ch_status s = ch_jscan_parse(doc, text, len, tokens, max_tokens, err);
    if (s != CH_ERR_TOO_LARGE || doc->needed <= max_tokens)
        return s;
    if (doc->needed > limit)
        return ch_error_set(err, CH_ERR_TOO_LARGE,
                            "JSON document has %zu values, more than the limit of %zu", doc->needed,
                            limit);
    if ((*heap = malloc(doc->needed * sizeof(**heap))) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory scanning JSON");
    return ch_jscan_parse(doc, text, len, *heap, doc->needed, err);
}

/* ---- decoding strings ---- */

static size_t utf8_encode(uint32_t cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escape at *pp (its backslash) into out and moves *pp past it. The scan has
 * validated it, so there are no checks here. */
static size_t decode_escape(const unsigned char **pp, unsigned char out[4])
{
    const unsigned char *p = *pp;
    static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
    if (p[1] != 'u') {
        const char *m = strchr(from, p[1]);
        out[0] = m != NULL ? (unsigned char)to[m - from] : p[1];
        *pp = p + 2;
        return 1;
    }
    uint32_t cp = (uint32_t)hex4(p + 2, 4);
    *pp = p + 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)hex4(p + 8, 4) - 0xDC00);
        *pp = p + 12;
    }
    return utf8_encode(cp, out);
}

/* Reads a string token's decoded bytes one at a time, for comparing and hashing. */
typedef struct {
    const unsigned char *p, *end;
    unsigned char buf[4];
    size_t n, i; /* buf[i..n) is pending */
} cursor;

static void cursor_init(cursor *c, const ch_jscan_doc *doc, int tok)
{
    const ch_jscan_token *t = &doc->tokens[tok];
    c->p = (const unsigned char *)doc->text + t->start;
    c->end = (const unsigned char *)doc->text + t->end;
    c->n = c->i = 0;
}

/* The next decoded byte, -1 at the end. */
static int cursor_next(cursor *c)
{
    if (c->i < c->n)
        return c->buf[c->i++];
    if (c->p == c->end)
        return -1;
    if (*c->p != '\\')
        return *c->p++;
    c->n = decode_escape(&c->p, c->buf);
    c->i = 1;
    return c->buf[0];
}

static const char *raw(const ch_jscan_doc *doc, int tok, size_t *len)
{
    const ch_jscan_token *t = &doc->tokens[tok];
    *len = t->end - t->start;
    return doc->text + t->start;
}

static bool escaped(const ch_jscan_doc *doc, int tok)
{
    return doc->tokens[tok].type == CH_JSCAN_STRING && (doc->tokens[tok].flags & CH_JSCAN_ESCAPED);
}

bool ch_jscan_string_eqn(const ch_jscan_doc *doc, int tok, const char *s, size_t n)
{
    size_t len;
    const char *r = raw(doc, tok, &len);
    if (doc->tokens[tok].type != CH_JSCAN_STRING || n > len)
        return false; /* escapes only ever shorten a string */
    if (!escaped(doc, tok))
        return n == len && memcmp(r, s, n) == 0;
    cursor c;
    cursor_init(&c, doc, tok);
    for (size_t i = 0; i < n; i++)
        if (cursor_next(&c) != (unsigned char)s[i])
            return false;
    return cursor_next(&c) < 0;
}

bool ch_jscan_string_eq(const ch_jscan_doc *doc, int tok, const char *s)
{
    return ch_jscan_string_eqn(doc, tok, s, strlen(s));
}

/* Appends src[0..n) at *o of buf[size], keeping room for the NUL; *o counts every byte. */
static void put(char *buf, size_t size, size_t *o, const void *src, size_t n)
{
    if (*o + 1 < size)
        memcpy(buf + *o, src, *o + n < size ? n : size - 1 - *o);
    *o += n;
}

size_t ch_jscan_string_copy(const ch_jscan_doc *doc, int tok, char *buf, size_t size)
{
    size_t len, o = 0;
    const unsigned char *p = (const unsigned char *)raw(doc, tok, &len), *end = p + len;
    if (!escaped(doc, tok)) {
        put(buf, size, &o, p, len);
    } else {
        while (p < end) {
            const unsigned char *bs = memchr(p, '\\', (size_t)(end - p));
            if (bs == NULL)
                bs = end;
            put(buf, size, &o, p, (size_t)(bs - p));
            if ((p = bs) < end) {
                unsigned char ch[4];
                size_t n = decode_escape(&p, ch);
                put(buf, size, &o, ch, n);
            }
        }
    }
    if (size > 0)
        buf[o < size ? o : size - 1] = '\0';
    return o;
}

ch_status ch_jscan_string_dup(const ch_jscan_doc *doc, int tok, char **out, size_t *len)
{
    size_t n;
    if (escaped(doc, tok))
        n = ch_jscan_string_copy(doc, tok, NULL, 0);
    else
        (void)raw(doc, tok, &n);
    *out = malloc(n + 1);
    if (*out == NULL)
        return CH_ERR_NOMEM;
    ch_jscan_string_copy(doc, tok, *out, n + 1);
    if (len != NULL)
        *len = n;
    return CH_OK;
}

/* ---- objects ---- */

/* ch_jscan_string_eqn for a key token, plain keys first and inline: lookups are the hot
 * path of reading a document. */
static bool key_is(const ch_jscan_doc *doc, int k, const char *key, size_t n)
{
    const ch_jscan_token *t = &doc->tokens[k];
    const char *r = doc->text + t->start;
    if (t->flags & CH_JSCAN_ESCAPED)
        return ch_jscan_string_eqn(doc, k, key, n);
    return t->end - t->start == n && (n == 0 || (r[0] == key[0] && memcmp(r, key, n) == 0));
}

int ch_jscan_object_get(const ch_jscan_doc *doc, int obj, const char *key)
{
    if (doc->tokens[obj].type != CH_JSCAN_OBJECT)
        return -1;
    size_t n = strlen(key);
    for (int k = ch_jscan_first(doc, obj); k >= 0; k = ch_jscan_next_member(doc, obj, k))
        if (key_is(doc, k, key, n))
            return k + 1;
    return -1;
}

void ch_jscan_object_lookup(const ch_jscan_doc *doc, int obj, const ch_jscan_key *keys, size_t n,
                            int *values)
{
    for (size_t i = 0; i < n; i++)
        values[i] = -1;
    if (doc->tokens[obj].type != CH_JSCAN_OBJECT)
        return;
    for (int k = ch_jscan_first(doc, obj); k >= 0; k = ch_jscan_next_member(doc, obj, k))
        for (size_t i = 0; i < n; i++)
            if (values[i] < 0 && key_is(doc, k, keys[i].name, keys[i].len)) {
                values[i] = k + 1;
                break;
            }
}

static bool keys_equal(const ch_jscan_doc *doc, int a, int b)
{
    size_t alen, blen;
    const char *ar = raw(doc, a, &alen), *br = raw(doc, b, &blen);
    if (!escaped(doc, a) && !escaped(doc, b))
        return alen == blen && memcmp(ar, br, alen) == 0;
    cursor ca, cb;
    cursor_init(&ca, doc, a);
    cursor_init(&cb, doc, b);
    for (;;) {
        int x = cursor_next(&ca);
        if (x != cursor_next(&cb))
            return false;
        if (x < 0)
            return true;
    }
}

/* FNV-1a of the decoded key. */
static uint32_t key_hash(const ch_jscan_doc *doc, int k)
{
    uint32_t h = 2166136261u;
    cursor c;
    cursor_init(&c, doc, k);
    for (int b; (b = cursor_next(&c)) >= 0;)
        h = (h ^ (uint32_t)b) * 16777619u;
    return h;
}

static ch_status duplicate(const ch_jscan_doc *doc, int key, ch_error *err)
{
    char name[65];
    ch_jscan_string_copy(doc, key, name, sizeof(name));
    return ch_error_set(err, CH_ERR_INVALID, "invalid JSON at offset %u: duplicate object key '%s'",
                        (unsigned)doc->tokens[key].start - 1, name);
}

/* Objects with few members compare every pair: cheaper than hashing. */
#define PAIRWISE_MAX 16
/* Hash slots that live on the stack; larger tables are malloc'd. */
#define STACK_SLOTS 1024

static ch_status check_hashed(const ch_jscan_doc *doc, int obj, ch_error *err)
{
    uint32_t stack_slots[STACK_SLOTS], *slots = stack_slots;
    size_t cap = 32;
    while (cap < 2 * (size_t)doc->tokens[obj].size)
        cap *= 2;
    if (cap > STACK_SLOTS && (slots = calloc(cap, sizeof(*slots))) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory checking JSON keys");
    if (slots == stack_slots)
        memset(slots, 0, cap * sizeof(*slots));
    ch_status s = CH_OK;
    for (int k = ch_jscan_first(doc, obj); k >= 0 && s == CH_OK;
         k = ch_jscan_next_member(doc, obj, k)) {
        size_t h = key_hash(doc, k) & (cap - 1);
        for (; slots[h] != 0 && s == CH_OK; h = (h + 1) & (cap - 1))
            if (keys_equal(doc, (int)slots[h] - 1, k))
                s = duplicate(doc, k, err);
        slots[h] = (uint32_t)k + 1; /* slot values are token index + 1; 0 is empty */
    }
    if (slots != stack_slots)
        free(slots);
    return s;
}

/* Length and first bytes of a plain key, so that most pairs differ without a memcmp. */
static uint64_t key_signature(const ch_jscan_doc *doc, int k)
{
    size_t len;
    const char *r = raw(doc, k, &len);
    uint32_t head = 0;
    for (size_t i = 0; i < len && i < 4; i++)
        head = head << 8 | (unsigned char)r[i];
    return (uint64_t)len << 32 | head;
}

static ch_status check_pairwise(const ch_jscan_doc *doc, int obj, ch_error *err)
{
    int keys[PAIRWISE_MAX];
    uint64_t sig[PAIRWISE_MAX];
    bool any_escaped = false;
    size_t n = 0;
    for (int k = ch_jscan_first(doc, obj); k >= 0; k = ch_jscan_next_member(doc, obj, k)) {
        keys[n] = k;
        sig[n++] = key_signature(doc, k);
        any_escaped |= escaped(doc, k);
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if ((any_escaped || sig[i] == sig[j]) && keys_equal(doc, keys[j], keys[i]))
                return duplicate(doc, keys[i], err);
    return CH_OK;
}

ch_status ch_jscan_object_check_duplicates(const ch_jscan_doc *doc, int obj, ch_error *err)
{
    if (doc->tokens[obj].type != CH_JSCAN_OBJECT || doc->tokens[obj].size < 2)
        return CH_OK;
    if (doc->tokens[obj].size > PAIRWISE_MAX)
        return check_hashed(doc, obj, err);
    return check_pairwise(doc, obj, err);
}

ch_status ch_jscan_check_duplicates(const ch_jscan_doc *doc, ch_error *err)
{
    for (size_t i = 0; i < doc->count; i++) {
        ch_status s = ch_jscan_object_check_duplicates(doc, (int)i, err);
        if (s != CH_OK)
            return s;
    }
    return CH_OK;
}

/* ---- integers ---- */

/* The magnitude and sign of integer token tok: CH_ERR_INVALID when tok is not an
 * integer, CH_ERR_TOO_LARGE above UINT64_MAX (*negative is set then too). */
static ch_status integer(const ch_jscan_doc *doc, int tok, bool *negative, uint64_t *out)
{
    const ch_jscan_token *t = &doc->tokens[tok];
    if (t->type != CH_JSCAN_NUMBER || (t->flags & CH_JSCAN_FRACTION))
        return CH_ERR_INVALID;
    const char *p = doc->text + t->start, *end = doc->text + t->end;
    *negative = *p == '-';
    uint64_t v = 0;
    for (p += *negative; p < end; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return CH_ERR_TOO_LARGE;
        v = v * 10 + d;
    }
    *out = v;
    return CH_OK;
}

ch_status ch_jscan_int64(const ch_jscan_doc *doc, int tok, int64_t *out)
{
    const uint64_t min_magnitude = UINT64_C(1) << 63; /* |INT64_MIN| = INT64_MAX + 1 */
    bool negative;
    uint64_t v;
    ch_status s = integer(doc, tok, &negative, &v);
    if (s != CH_OK)
        return s;
    if (v > (negative ? min_magnitude : (uint64_t)INT64_MAX))
        return CH_ERR_TOO_LARGE;
    *out = !negative ? (int64_t)v : v == min_magnitude ? INT64_MIN : -(int64_t)v;
    return CH_OK;
}

ch_status ch_jscan_uint64(const ch_jscan_doc *doc, int tok, uint64_t *out)
{
    bool negative = false;
    uint64_t v;
    ch_status s = integer(doc, tok, &negative, &v);
    if (s == CH_ERR_INVALID || negative)
        return CH_ERR_INVALID;
    if (s == CH_OK)
        *out = v;
    return s;
}
