/* Differential fuzzing of the JSON scanner against jansson: for every input nested no
 * deeper than CH_MAX_JSON_DEPTH, both accept or both reject; when both accept, the tree
 * the tokens describe equals jansson's (types, strings, integers, reals, object members,
 * duplicate keys). Any mismatch aborts.
 *
 * Documented differences, where jansson rejects valid RFC 8259 text (checked by its error
 * code and by finding the cause among the tokens):
 * - integers outside int64 ("too big integer"): json_int_t is 64 bits;
 * - reals that overflow a double, such as 1e400 ("real number overflow");
 * - \u0000 in an object key ("NUL byte in object key not supported"), even with
 *   JSON_ALLOW_NUL, which lets jansson accept it in string values.
 * And where jansson accepts invalid text: its reader marks the end of its look-ahead
 * buffer with a NUL byte, so a raw NUL right after a number or a literal (the byte it
 * reads ahead and puts back) is skipped, e.g. "[1\0]" parses as [1]. The text without that
 * byte must then compare equal. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choria/jscan.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* Decoded string token tok; the caller frees it. */
static char *dup_string(const ch_jscan_doc *doc, int tok, size_t *len)
{
    char *s = NULL;
    CHECK(ch_jscan_string_dup(doc, tok, &s, len) == CH_OK);
    return s;
}

/* The double a number token stands for, as jansson computes it; *overflow as jansson
 * decides it. */
static double real_value(const ch_jscan_doc *doc, int tok, bool *overflow)
{
    char *text = dup_string(doc, tok, NULL);
    errno = 0;
    double v = strtod(text, NULL);
    *overflow = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
    free(text);
    return v;
}

/* Whether a number jansson cannot hold (see the top) is anywhere in the document. */
static bool has_number_jansson_refuses(const ch_jscan_doc *doc)
{
    for (size_t i = 0; i < doc->count; i++) {
        const ch_jscan_token *t = &doc->tokens[i];
        int64_t iv;
        bool overflow = false;
        if (t->type != CH_JSCAN_NUMBER)
            continue;
        if (t->flags & CH_JSCAN_FRACTION)
            (void)real_value(doc, (int)i, &overflow);
        else
            overflow = ch_jscan_int64(doc, (int)i, &iv) == CH_ERR_TOO_LARGE;
        if (overflow)
            return true;
    }
    return false;
}

static bool has_key_with_nul(const ch_jscan_doc *doc)
{
    for (size_t i = 0; i < doc->count; i++) {
        if (doc->tokens[i].type != CH_JSCAN_OBJECT)
            continue;
        for (int k = ch_jscan_first(doc, (int)i); k >= 0;
             k = ch_jscan_next_member(doc, (int)i, k)) {
            size_t len;
            char *key = dup_string(doc, k, &len);
            bool nul = memchr(key, '\0', len) != NULL;
            free(key);
            if (nul)
                return true;
        }
    }
    return false;
}

static void same_value(const ch_jscan_doc *doc, int tok, const json_t *j);

static void same_string(const ch_jscan_doc *doc, int tok, const json_t *j)
{
    size_t len;
    char *s = dup_string(doc, tok, &len);
    CHECK(json_is_string(j) && json_string_length(j) == len);
    CHECK(memcmp(s, json_string_value(j), len) == 0);
    CHECK(ch_jscan_string_eqn(doc, tok, s, len));
    CHECK(len == 0 || !ch_jscan_string_eqn(doc, tok, s, len - 1));
    /* A truncated copy is a prefix and still reports the whole length. */
    char head[8];
    CHECK(ch_jscan_string_copy(doc, tok, head, sizeof(head)) == len);
    CHECK(memcmp(head, s, len < sizeof(head) ? len : sizeof(head) - 1) == 0);
    free(s);
}

static void same_number(const ch_jscan_doc *doc, int tok, const json_t *j)
{
    if (doc->tokens[tok].flags & CH_JSCAN_FRACTION) {
        bool overflow;
        double v = real_value(doc, tok, &overflow);
        int64_t unused;
        CHECK(json_is_real(j) && !overflow && v == json_real_value(j));
        CHECK(ch_jscan_int64(doc, tok, &unused) == CH_ERR_INVALID);
        return;
    }
    int64_t v;
    uint64_t u;
    CHECK(json_is_integer(j) && ch_jscan_int64(doc, tok, &v) == CH_OK);
    CHECK(v == json_integer_value(j));
    bool negative = doc->text[doc->tokens[tok].start] == '-';
    ch_status us = ch_jscan_uint64(doc, tok, &u);
    CHECK(negative ? us == CH_ERR_INVALID : us == CH_OK && u == (uint64_t)v);
}

/* Whether member key k of obj is the last one with its key: jansson keeps that one. */
static bool last_of_its_key(const ch_jscan_doc *doc, int obj, int k)
{
    size_t len;
    char *key = dup_string(doc, k, &len);
    bool last = true;
    for (int m = ch_jscan_next_member(doc, obj, k); m >= 0 && last;
         m = ch_jscan_next_member(doc, obj, m))
        last = !ch_jscan_string_eqn(doc, m, key, len);
    free(key);
    return last;
}

static void same_object(const ch_jscan_doc *doc, int obj, const json_t *j)
{
    size_t distinct = 0;
    CHECK(json_is_object(j));
    for (int k = ch_jscan_first(doc, obj); k >= 0; k = ch_jscan_next_member(doc, obj, k)) {
        size_t len;
        char *key = dup_string(doc, k, &len);
        json_t *v = json_object_getn(j, key, len);
        CHECK(v != NULL);
        /* ch_jscan_object_get finds the first member with this key (jansson accepted the
         * text, so no key holds a NUL and key is a whole C string). */
        int first = ch_jscan_object_get(doc, obj, key);
        CHECK(first >= 0 && first <= k + 1 && ch_jscan_string_eqn(doc, first - 1, key, len));
        if (last_of_its_key(doc, obj, k)) {
            distinct++;
            same_value(doc, k + 1, v);
        }
        free(key);
    }
    CHECK(json_object_size(j) == distinct);
    bool unique = distinct == doc->tokens[obj].size;
    CHECK(unique == (ch_jscan_object_check_duplicates(doc, obj, NULL) == CH_OK));
}

static void same_array(const ch_jscan_doc *doc, int arr, const json_t *j)
{
    size_t i = 0;
    CHECK(json_is_array(j) && json_array_size(j) == doc->tokens[arr].size);
    for (int e = ch_jscan_first(doc, arr); e >= 0; e = ch_jscan_next_element(doc, arr, e))
        same_value(doc, e, json_array_get(j, i++));
    CHECK(i == json_array_size(j));
}

static void same_value(const ch_jscan_doc *doc, int tok, const json_t *j)
{
    switch (ch_jscan_type_of(doc, tok)) {
    case CH_JSCAN_OBJECT:
        same_object(doc, tok, j);
        break;
    case CH_JSCAN_ARRAY:
        same_array(doc, tok, j);
        break;
    case CH_JSCAN_STRING:
        same_string(doc, tok, j);
        break;
    case CH_JSCAN_NUMBER:
        same_number(doc, tok, j);
        break;
    case CH_JSCAN_TRUE:
        CHECK(json_is_true(j));
        break;
    case CH_JSCAN_FALSE:
        CHECK(json_is_false(j));
        break;
    case CH_JSCAN_NULL:
        CHECK(json_is_null(j));
        break;
    default:
        abort();
    }
}

/* Nesting of arrays and objects in a jansson tree. */
static int depth_of(const json_t *j)
{
    int max = 0;
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) {
            int d = depth_of(json_array_get(j, i));
            max = d > max ? d : max;
        }
    } else if (json_is_object(j)) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)j, key, v)
        {
            int d = depth_of(v);
            max = d > max ? d : max;
        }
    } else {
        return 0;
    }
    return max + 1;
}

/* Scanning with too few tokens, or none, gives the same verdict and count. */
static void token_limit_is_consistent(const char *text, size_t size, const ch_jscan_doc *full)
{
    ch_jscan_doc doc;
    CHECK(ch_jscan_parse(&doc, text, size, NULL, 0, NULL) == CH_ERR_TOO_LARGE);
    CHECK(doc.needed == full->count);
    ch_jscan_token few[2];
    ch_status s = ch_jscan_parse(&doc, text, size, few, 2, NULL);
    CHECK(full->count <= 2 ? s == CH_OK : s == CH_ERR_TOO_LARGE && doc.needed == full->count);
}

static void differential(const char *text, size_t size);

/* The jansson bug above: the scanner stopped at a raw NUL that follows a number or a
 * literal. Compares the text without it instead. */
static bool nul_jansson_skips(const char *text, size_t size, const ch_jscan_doc *doc)
{
    size_t at = doc->error_offset;
    if (at == 0 || at >= size || text[at] != '\0')
        return false;
    char c = text[at - 1];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
        return false;
    char *rest = malloc(size);
    CHECK(rest != NULL);
    memcpy(rest, text, at);
    memcpy(rest + at, text + at + 1, size - at - 1);
    differential(rest, size - 1);
    free(rest);
    return true;
}

static void differential(const char *text, size_t size)
{
    ch_jscan_token *tokens = malloc((size + 1) * sizeof(*tokens)); /* a token is >= 1 byte */
    ch_jscan_doc doc;
    ch_error err;
    json_error_t jerr;
    if (tokens == NULL)
        return;
    ch_status s = ch_jscan_parse(&doc, text, size, tokens, size + 1, &err);
    json_t *j = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

    if (s == CH_ERR_TOO_LARGE) {
        /* Only nesting can be too large here; valid text must really nest that deep. */
        CHECK(size <= CH_MAX_MESSAGE_SIZE && strstr(err.msg, "nesting") != NULL);
        CHECK(j == NULL || depth_of(j) > CH_MAX_JSON_DEPTH);
    } else if (s == CH_ERR_INVALID) {
        CHECK(err.msg[0] != '\0' && doc.error_offset <= size);
        CHECK(j == NULL || nul_jansson_skips(text, size, &doc));
        CHECK(ch_jscan_parse(&doc, text, size, NULL, 0, NULL) == CH_ERR_INVALID);
    } else {
        CHECK(s == CH_OK);
        token_limit_is_consistent(text, size, &doc);
        if (j == NULL) {
            enum json_error_code code = json_error_code(&jerr);
            CHECK((code == json_error_numeric_overflow && has_number_jansson_refuses(&doc)) ||
                  (code == json_error_null_byte_in_key && has_key_with_nul(&doc)));
        } else {
            same_value(&doc, 0, j);
            json_t *strict = json_loadb(
                text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
            CHECK((strict != NULL) == (ch_jscan_check_duplicates(&doc, NULL) == CH_OK));
            json_decref(strict);
        }
    }
    json_decref(j);
    free(tokens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    differential((const char *)data, size);
    return 0;
}
