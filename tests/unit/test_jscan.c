/* JSON scanner: RFC 8259 grammar (JSONTestSuite classics), tokens, lookups with escapes,
 * exact integers, duplicate keys, and the depth, token and size bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "choria/jscan.h"

#define TOKENS 8192
static ch_jscan_token tokens[TOKENS];

static ch_jscan_doc scan_ok_n(const char *json, size_t len)
{
    ch_jscan_doc doc;
    ch_error err = {0};
    if (ch_jscan_parse(&doc, json, len, tokens, TOKENS, &err) != CH_OK)
        fail_msg("scan of '%s' failed: %s", json, err.msg);
    assert_in_range(doc.count, 1, SIZE_MAX);
    assert_int_equal(doc.count, doc.needed);
    assert_int_equal(doc.tokens[0].next, doc.count);
    return doc;
}

static ch_jscan_doc scan_ok(const char *json)
{
    return scan_ok_n(json, strlen(json));
}

typedef struct {
    const char *json;
    size_t offset;   /* where the error is reported */
    const char *why; /* part of the message */
    size_t len;      /* 0: strlen(json) */
} bad_case;

static void check_bad(const bad_case *c)
{
    ch_jscan_doc doc;
    ch_error err = {0};
    size_t len = c->len ? c->len : strlen(c->json);
    ch_status s = ch_jscan_parse(&doc, c->json, len, tokens, TOKENS, &err);
    if (s != CH_ERR_INVALID)
        fail_msg("scan of '%s' gave %d (%s), want CH_ERR_INVALID", c->json, s, err.msg);
    if (doc.error_offset != c->offset || strstr(err.msg, c->why) == NULL)
        fail_msg("scan of '%s': '%s' at %zu, want '%s' at %zu", c->json, err.msg, doc.error_offset,
                 c->why, c->offset);
    char where[48];
    snprintf(where, sizeof(where), "offset %zu:", c->offset);
    assert_non_null(strstr(err.msg, where));
    assert_int_equal(doc.count, 0);
}

static void valid_rfc_8259_texts_are_accepted(void **state)
{
    (void)state;
    const char *valid[] = {
        "0",
        "-0",
        "1",
        "-1",
        "0.5",
        "-0.0",
        "1.5e10",
        "1E400",
        "-1E-2",
        "1e+2",
        "0e0",
        "123456789012345678901234567890",
        "\"\"",
        "\"a\"",
        "[]",
        "{}",
        " [ 1 , 2 ] ",
        "\t\n\r {} \t\n\r",
        "true",
        "false",
        "null",
        "[[[]]]",
        "[{}]",
        "{\"\":0}",
        "{\"a\":{\"b\":[true,false,null]}}",
        "{\"a\" : 1 , \"b\" : [ ] }",
        /* escapes: every short one, \u0000, a surrogate pair, upper and lower case hex */
        "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"",
        "\"\\u0000\"",
        "\"\\ud83d\\ude00\"",
        "\"\\uD83D\\uDE00\"",
        "\"\\u00e9\\u00E9\"",
        "\"\\uFFFF\"",
        /* raw UTF-8 at the edges of each length, DEL, U+2028, noncharacters */
        "\"\x7f\"",
        "\"\xc2\x80\"",
        "\"\xdf\xbf\"",
        "\"\xe0\xa0\x80\"",
        "\"\xed\x9f\xbf\"",
        "\"\xee\x80\x80\"",
        "\"\xef\xbf\xbf\"",
        "\"\xf0\x90\x80\x80\"",
        "\"\xf4\x8f\xbf\xbf\"",
        "\"\xe2\x80\xa8\"",
        /* long strings exercise the 8-byte fast path around special bytes */
        "\"abcdefghijklmnopqrstuvwxyz0123456789\\nABCDEFGHIJ\xc3\xa9KLMNOPQRSTUVWXYZ\"",
    };
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        (void)scan_ok(valid[i]);
}

static void invalid_texts_are_rejected_with_offset_and_reason(void **state)
{
    (void)state;
    const bad_case bad[] = {
        {"", 0, "unexpected end of input", 0},
        {"   ", 3, "unexpected end of input", 0},
        /* numbers */
        {"01", 1, "leading zero", 0},
        {"-01", 2, "leading zero", 0},
        {"00", 1, "leading zero", 0},
        {"1.", 2, "after the decimal point", 0},
        {"1.e3", 2, "after the decimal point", 0},
        {".5", 0, "expected a value", 0},
        {"+1", 0, "expected a value", 0},
        {"-", 1, "expected a digit", 0},
        {"-a", 1, "expected a digit", 0},
        {"1e", 2, "in the exponent", 0},
        {"1e+", 3, "in the exponent", 0},
        {"1E-x", 3, "in the exponent", 0},
        {"0x10", 1, "unexpected data after the JSON value", 0},
        {"NaN", 0, "expected a value", 0},
        {"Infinity", 0, "expected a value", 0},
        {"-Infinity", 1, "expected a digit", 0},
        {"1 2", 2, "unexpected data after the JSON value", 0},
        /* structure */
        {"[1,]", 3, "expected a value", 0},
        {"[,1]", 1, "expected a value", 0},
        {"{\"a\":1,}", 7, "expected a string key", 0},
        {"{,}", 1, "expected a string key", 0},
        {"[1 2]", 3, "expected ',' or ']'", 0},
        {"{\"a\":1 \"b\":2}", 7, "expected ',' or '}'", 0},
        {"{\"a\" 1}", 5, "expected ':'", 0},
        {"{\"a\"}", 4, "expected ':'", 0},
        {"{\"a\":}", 5, "expected a value", 0},
        {"{\"a\":1", 6, "unexpected end of input", 0},
        {"[", 1, "unexpected end of input", 0},
        {"[1", 2, "unexpected end of input", 0},
        {"{", 1, "expected a string key", 0},
        {"{'a':1}", 1, "expected a string key", 0},
        {"{a:1}", 1, "expected a string key", 0},
        {"{1:1}", 1, "expected a string key", 0},
        {"[1]]", 3, "unexpected data after the JSON value", 0},
        {"]", 0, "expected a value", 0},
        {"[}", 1, "expected a value", 0},
        {"{]", 1, "expected a string key", 0},
        {"[1}", 2, "expected ',' or ']'", 0},
        {"{\"a\":1]", 6, "expected ',' or '}'", 0},
        {"{} x", 3, "unexpected data after the JSON value", 0},
        {"[] []", 3, "unexpected data after the JSON value", 0},
        {"tru", 0, "invalid literal", 0},
        {"nul", 0, "invalid literal", 0},
        {"True", 0, "expected a value", 0},
        {"truex", 4, "unexpected data after the JSON value", 0},
        {"[true false]", 6, "expected ',' or ']'", 0},
        /* white space is only space, tab, CR and LF; no byte order mark */
        {"\v[]", 0, "expected a value", 0},
        {"\f[]", 0, "expected a value", 0},
        {"[1,\xc2\xa0 2]", 3, "expected a value", 0},
        {"\xef\xbb\xbf{}", 0, "expected a value", 0},
        {"[\"a\",\0]", 5, "expected a value", 7},
        {"{}\0", 2, "unexpected data after the JSON value", 3},
        /* strings */
        {"\"abc", 4, "unterminated string", 0},
        {"\"abc\\", 4, "unterminated string", 0},
        {"[\"a]", 4, "unterminated string", 0},
        {"\"\\x\"", 1, "invalid escape", 0},
        {"\"\\a\"", 1, "invalid escape", 0},
        {"\"\\U0041\"", 1, "invalid escape", 0},
        {"\"\\'\"", 1, "invalid escape", 0},
        {"\"\\u12\"", 1, "invalid \\u escape", 0},
        {"\"\\u12G4\"", 1, "invalid \\u escape", 0},
        {"\"\\u-123\"", 1, "invalid \\u escape", 0},
        {"\"ab\\u", 3, "invalid \\u escape", 0},
        {"\"\\uD800\"", 1, "lone UTF-16 surrogate", 0},
        {"\"\\uDBFF\"", 1, "lone UTF-16 surrogate", 0},
        {"\"\\uDC00\"", 1, "lone UTF-16 surrogate", 0},
        {"\"\\uDFFF\\uD800\"", 1, "lone UTF-16 surrogate", 0},
        {"\"\\uD800\\u0041\"", 1, "lone UTF-16 surrogate", 0},
        {"\"\\uD800\\uD800\"", 1, "lone UTF-16 surrogate", 0},
        {"\"\\uD800\\n\"", 1, "lone UTF-16 surrogate", 0},
        {"\"\\uD800abcdef\"", 1, "lone UTF-16 surrogate", 0},
        {"\"x\\uD83D", 2, "lone UTF-16 surrogate", 0},
        {"\"a\x01\"", 2, "control character", 0},
        {"\"a\nb\"", 2, "control character", 0},
        {"\"\t\"", 1, "control character", 0},
        {"\"\x1f\"", 1, "control character", 0},
        {"\"ab\0\"", 3, "control character", 5},
        {"\"0123456789abcdef\x7f\x01\"", 18, "control character", 0},
        /* UTF-8: overlong forms, surrogates, beyond U+10FFFF, stray and missing bytes */
        {"\"\xc0\xaf\"", 1, "invalid UTF-8", 0},
        {"\"\xc1\xbf\"", 1, "invalid UTF-8", 0},
        {"\"\xe0\x80\xaf\"", 1, "invalid UTF-8", 0},
        {"\"\xe0\x9f\xbf\"", 1, "invalid UTF-8", 0},
        {"\"\xf0\x80\x80\xaf\"", 1, "invalid UTF-8", 0},
        {"\"\xf0\x8f\xbf\xbf\"", 1, "invalid UTF-8", 0},
        {"\"\xed\xa0\x80\"", 1, "invalid UTF-8", 0},
        {"\"\xed\xbf\xbf\"", 1, "invalid UTF-8", 0},
        {"\"\xf4\x90\x80\x80\"", 1, "invalid UTF-8", 0},
        {"\"\xf5\x80\x80\x80\"", 1, "invalid UTF-8", 0},
        {"\"\xff\"", 1, "invalid UTF-8", 0},
        {"\"\x80\"", 1, "invalid UTF-8", 0},
        {"\"\xbf\"", 1, "invalid UTF-8", 0},
        {"\"\xc3\"", 1, "invalid UTF-8", 0},
        {"\"\xc3", 1, "invalid UTF-8", 0},
        {"\"\xe2\x82\"", 1, "invalid UTF-8", 0},
        {"\"\xe2\x28\xa1\"", 1, "invalid UTF-8", 0},
        {"\"\xf0\x9f\x98\"", 1, "invalid UTF-8", 0},
        {"\"abcdefghijklmno\xc3(\"", 16, "invalid UTF-8", 0},
        {"\xc3\xa9", 0, "expected a value", 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_bad(&bad[i]);
}

static void scanning_stops_at_len_without_a_terminator(void **state)
{
    (void)state;
    /* The bytes after len are never read: "[1]" cut to "[1" is incomplete, "truex" cut to
     * "true" is complete. */
    const bad_case cut = {"[1]", 2, "unexpected end of input", 2};
    check_bad(&cut);
    ch_jscan_doc doc = scan_ok_n("truex", 4);
    assert_int_equal(doc.tokens[0].type, CH_JSCAN_TRUE);
    doc = scan_ok_n("\"ab\"cdef", 4);
    assert_int_equal(doc.tokens[0].end, 3);
}

static void tokens_describe_types_offsets_sizes_and_subtrees(void **state)
{
    (void)state;
    const char *json = "{\"a\":[1,{\"b\":null}],\"c\":\"x\\ny\",\"d\":-2.5e1}";
    ch_jscan_doc doc = scan_ok(json);
    static const struct {
        ch_jscan_type type;
        uint32_t start, end, next, size;
        uint8_t flags;
    } want[] = {
        {CH_JSCAN_OBJECT, 0, 42, 11, 3, 0},
        {CH_JSCAN_STRING, 2, 3, 2, 0, 0},
        {CH_JSCAN_ARRAY, 5, 19, 7, 2, 0},
        {CH_JSCAN_NUMBER, 6, 7, 4, 0, 0},
        {CH_JSCAN_OBJECT, 8, 18, 7, 1, 0},
        {CH_JSCAN_STRING, 10, 11, 6, 0, 0},
        {CH_JSCAN_NULL, 13, 17, 7, 0, 0},
        {CH_JSCAN_STRING, 21, 22, 8, 0, 0},
        {CH_JSCAN_STRING, 25, 29, 9, 0, CH_JSCAN_ESCAPED},
        {CH_JSCAN_STRING, 32, 33, 10, 0, 0},
        {CH_JSCAN_NUMBER, 35, 41, 11, 0, CH_JSCAN_FRACTION},
    };
    assert_int_equal(strlen(json), 42);
    assert_int_equal(doc.count, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < doc.count; i++) {
        const ch_jscan_token *t = &doc.tokens[i];
        if (t->type != want[i].type || t->start != want[i].start || t->end != want[i].end ||
            t->next != want[i].next || t->size != want[i].size || t->flags != want[i].flags)
            fail_msg("token %zu: type %d [%u,%u) next %u size %u flags %u", i, t->type, t->start,
                     t->end, t->next, t->size, t->flags);
    }
}

static void iteration_visits_members_and_elements_in_order(void **state)
{
    (void)state;
    ch_jscan_doc doc = scan_ok("{\"a\":[1,[2,3],{\"x\":[]},4],\"b\":{},\"c\":[]}");
    char keys[8] = "";
    size_t nk = 0;
    int arr = -1;
    for (int k = ch_jscan_first(&doc, 0); k >= 0 && nk < sizeof(keys) - 1;
         k = ch_jscan_next_member(&doc, 0, k)) {
        keys[nk++] = doc.text[doc.tokens[k].start];
        if (arr < 0)
            arr = k + 1;
    }
    assert_string_equal(keys, "abc");
    ch_jscan_type types[8];
    size_t ne = 0;
    for (int e = ch_jscan_first(&doc, arr); e >= 0 && ne < sizeof(types) / sizeof(types[0]);
         e = ch_jscan_next_element(&doc, arr, e))
        types[ne++] = ch_jscan_type_of(&doc, e);
    assert_int_equal(ne, 4);
    assert_int_equal(types[0], CH_JSCAN_NUMBER);
    assert_int_equal(types[1], CH_JSCAN_ARRAY);
    assert_int_equal(types[2], CH_JSCAN_OBJECT);
    assert_int_equal(types[3], CH_JSCAN_NUMBER);
    /* Empty containers have no first child. */
    assert_int_equal(ch_jscan_first(&doc, ch_jscan_object_get(&doc, 0, "b")), -1);
    assert_int_equal(ch_jscan_first(&doc, ch_jscan_object_get(&doc, 0, "c")), -1);
}

static void object_lookup_compares_keys_with_escapes_decoded(void **state)
{
    (void)state;
    ch_jscan_doc doc = scan_ok("{\"\\u0069d\":1,\"n\\u00e9\":2,\"\\ud83d\\ude00\":3,\"a\\/b\":4,"
                               "\"x\\\"y\":5,\"\":6,\"nul\\u0000\":7,\"plain\":8}");
    static const struct {
        const char *key;
        const char *value;
    } found[] = {
        {"id", "1"}, {"n\xc3\xa9", "2"}, {"\xf0\x9f\x98\x80", "3"}, {"a/b", "4"}, {"x\"y", "5"},
        {"", "6"},   {"plain", "8"},
    };
    for (size_t i = 0; i < sizeof(found) / sizeof(found[0]); i++) {
        int v = ch_jscan_object_get(&doc, 0, found[i].key);
        if (v < 0)
            fail_msg("key '%s' not found", found[i].key);
        assert_memory_equal(doc.text + doc.tokens[v].start, found[i].value, 1);
    }
    const char *missing[] = {"i", "idd", "ID", "n", "nul", "a\\/b", "\\u0069d", "plai"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
        assert_int_equal(ch_jscan_object_get(&doc, 0, missing[i]), -1);
    /* The key with an escaped NUL matches only with its length. */
    bool nul_found = false;
    for (int m = ch_jscan_first(&doc, 0); m >= 0; m = ch_jscan_next_member(&doc, 0, m))
        nul_found |= ch_jscan_string_eqn(&doc, m, "nul\0", 4);
    assert_true(nul_found);
    /* Not an object: nothing to find. */
    doc = scan_ok("[\"id\",1]");
    assert_int_equal(ch_jscan_object_get(&doc, 0, "id"), -1);
    /* The first of duplicate keys wins. */
    doc = scan_ok("{\"a\":1,\"a\":2}");
    assert_int_equal(ch_jscan_object_get(&doc, 0, "a"), 2);
}

static void lookup_of_many_keys_agrees_with_one_get_per_key(void **state)
{
    (void)state;
    ch_jscan_doc doc = scan_ok("{\"\\u0069d\":1,\"a\":{\"id\":2},\"plain\":3,\"a\":4}");
    static const ch_jscan_key keys[] = {CH_JSCAN_KEY("plain"), CH_JSCAN_KEY("id"),
                                        CH_JSCAN_KEY("missing"), CH_JSCAN_KEY("a"),
                                        CH_JSCAN_KEY("")};
    int values[5];
    ch_jscan_object_lookup(&doc, 0, keys, 5, values);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(values[i], ch_jscan_object_get(&doc, 0, keys[i].name));
    assert_int_equal(values[2], -1);
    assert_memory_equal(doc.text + doc.tokens[values[3]].start, "{", 1); /* the first "a" */
    /* Not an object: every key is missing. */
    doc = scan_ok("[\"id\",1]");
    values[1] = 0;
    ch_jscan_object_lookup(&doc, 0, keys, 5, values);
    assert_int_equal(values[1], -1);
}

static void strings_compare_copy_and_dup_decoded(void **state)
{
    (void)state;
    ch_jscan_doc doc = scan_ok("[\"a\\tb\\u00e9\\ud83d\\ude00\\u0000z\",\"plain\",1.5e3,true]");
    const char want[] = "a\tb\xc3\xa9\xf0\x9f\x98\x80\0z";
    size_t want_len = sizeof(want) - 1;
    char buf[64];

    assert_true(ch_jscan_string_eqn(&doc, 1, want, want_len));
    assert_false(ch_jscan_string_eqn(&doc, 1, want, want_len - 1));
    assert_false(ch_jscan_string_eq(&doc, 1, "a\tb")); /* stops at the C string's NUL */
    assert_int_equal(ch_jscan_string_copy(&doc, 1, buf, sizeof(buf)), want_len);
    assert_memory_equal(buf, want, want_len + 1);
    /* Truncation keeps the NUL and still reports the full length, as snprintf. */
    memset(buf, 'X', sizeof(buf));
    assert_int_equal(ch_jscan_string_copy(&doc, 1, buf, 5), want_len);
    assert_memory_equal(buf, "a\tb\xc3", 5);
    assert_int_equal(ch_jscan_string_copy(&doc, 1, NULL, 0), want_len);
    assert_int_equal(ch_jscan_string_copy(&doc, 2, buf, 3), 5);
    assert_string_equal(buf, "pl");

    char *copy = NULL;
    size_t len = 0;
    assert_int_equal(ch_jscan_string_dup(&doc, 1, &copy, &len), CH_OK);
    assert_int_equal(len, want_len);
    assert_memory_equal(copy, want, want_len + 1);
    free(copy);
    assert_int_equal(ch_jscan_string_dup(&doc, 2, &copy, NULL), CH_OK);
    assert_string_equal(copy, "plain");
    free(copy);

    /* Other tokens: never equal to a string, copied as their raw text. */
    assert_false(ch_jscan_string_eq(&doc, 3, "1.5e3"));
    assert_false(ch_jscan_string_eq(&doc, 4, "true"));
    assert_int_equal(ch_jscan_string_copy(&doc, 3, buf, sizeof(buf)), 5);
    assert_string_equal(buf, "1.5e3");
    assert_int_equal(ch_jscan_string_dup(&doc, 4, &copy, NULL), CH_OK);
    assert_string_equal(copy, "true");
    free(copy);
}

static void int64(const char *json, ch_status want, int64_t value)
{
    ch_jscan_doc doc = scan_ok(json);
    int64_t v = 42;
    ch_status s = ch_jscan_int64(&doc, 0, &v);
    if (s != want)
        fail_msg("int64 of %s gave %d, want %d", json, s, want);
    assert_int_equal(v, s == CH_OK ? value : 42); /* untouched on failure */
}

static void uint64(const char *json, ch_status want, uint64_t value)
{
    ch_jscan_doc doc = scan_ok(json);
    uint64_t v = 42;
    ch_status s = ch_jscan_uint64(&doc, 0, &v);
    if (s != want)
        fail_msg("uint64 of %s gave %d, want %d", json, s, want);
    assert_int_equal(v, s == CH_OK ? value : 42); /* untouched on failure */
}

static void integers_convert_exactly_at_the_64_bit_edges(void **state)
{
    (void)state;
    int64("0", CH_OK, 0);
    int64("-0", CH_OK, 0);
    int64("1535106973", CH_OK, 1535106973);
    int64("-5", CH_OK, -5);
    int64("9223372036854775807", CH_OK, INT64_MAX);
    int64("9223372036854775808", CH_ERR_TOO_LARGE, 0);
    int64("-9223372036854775808", CH_OK, INT64_MIN);
    int64("-9223372036854775809", CH_ERR_TOO_LARGE, 0);
    int64("18446744073709551616", CH_ERR_TOO_LARGE, 0);
    int64("-99999999999999999999999", CH_ERR_TOO_LARGE, 0);
    uint64("0", CH_OK, 0);
    uint64("9223372036854775808", CH_OK, UINT64_C(9223372036854775808));
    uint64("18446744073709551615", CH_OK, UINT64_MAX);
    uint64("18446744073709551616", CH_ERR_TOO_LARGE, 0);
    uint64("184467440737095516150", CH_ERR_TOO_LARGE, 0);
    uint64("-1", CH_ERR_INVALID, 0);
    uint64("-0", CH_ERR_INVALID, 0);
    uint64("-99999999999999999999999", CH_ERR_INVALID, 0);
    /* Fractions and exponents are not integers, even when their value is whole. */
    const char *not_integers[] = {"1.0",   "1e2",  "1E0",  "-0.0", "0e0",
                                  "\"1\"", "true", "null", "[1]"};
    for (size_t i = 0; i < sizeof(not_integers) / sizeof(not_integers[0]); i++) {
        int64(not_integers[i], CH_ERR_INVALID, 0);
        uint64(not_integers[i], CH_ERR_INVALID, 0);
    }
}

static ch_status dups(const char *json, ch_error *err)
{
    ch_jscan_doc doc = scan_ok(json);
    return ch_jscan_check_duplicates(&doc, err);
}

/* {"k0":0,"k1":1,...} with n keys; the last key is k<dup> again when dup >= 0. */
static char *many_keys(size_t n, long dup)
{
    char *json = malloc(n * 24 + 16);
    size_t o = 0;
    json[o++] = '{';
    for (size_t i = 0; i < n; i++) {
        long key = (i == n - 1 && dup >= 0) ? dup : (long)i;
        o += (size_t)sprintf(json + o, "%s\"k%ld\":%zu", i ? "," : "", key, i);
    }
    json[o++] = '}';
    json[o] = '\0';
    return json;
}

static void duplicate_keys_are_found_with_escapes_decoded_at_any_depth(void **state)
{
    (void)state;
    ch_error err = {0};
    assert_int_equal(dups("{\"a\":1,\"b\":2,\"ab\":3,\"abcdX\":4,\"abcdY\":5}", &err), CH_OK);
    assert_int_equal(dups("{\"nul\":1,\"nul\\u0000\":2}", &err), CH_OK);
    assert_int_equal(dups("[{\"a\":1},{\"a\":2}]", &err), CH_OK);
    assert_int_equal(dups("{\"a\":1,\"a\":2}", &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "duplicate object key 'a'"));
    assert_non_null(strstr(err.msg, "offset 7"));
    assert_int_equal(dups("{\"id\":1,\"x\":0,\"\\u0069d\":2}", &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "duplicate object key 'id'"));
    assert_int_equal(dups("{\"\\u00e9\":1,\"\xc3\xa9\":2}", &err), CH_ERR_INVALID);

    /* Anywhere in the document, but only where asked for per object. */
    ch_jscan_doc doc = scan_ok("{\"x\":[{\"y\":{\"k\":1,\"k\":2}}]}");
    assert_int_equal(ch_jscan_object_check_duplicates(&doc, 0, &err), CH_OK);
    assert_int_equal(ch_jscan_check_duplicates(&doc, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "'k'"));
    assert_int_equal(ch_jscan_object_check_duplicates(&doc, 1, &err), CH_OK); /* an array */

    /* Larger objects are hashed, on the stack and then on the heap. */
    size_t sizes[] = {17, 100, 3000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *json = many_keys(sizes[i], -1);
        assert_int_equal(dups(json, &err), CH_OK);
        free(json);
        json = many_keys(sizes[i], (long)sizes[i] / 3);
        assert_int_equal(dups(json, &err), CH_ERR_INVALID);
        free(json);
    }
}

/* depth nested arrays, or objects {"a":...} when objects is set. */
static char *nested(size_t depth, bool objects)
{
    char *json = malloc(depth * 6 + 2);
    size_t o = 0;
    for (size_t i = 0; i < depth; i++)
        o += (size_t)sprintf(json + o, "%s", objects ? "{\"a\":" : "[");
    json[o++] = '0';
    for (size_t i = 0; i < depth; i++)
        json[o++] = objects ? '}' : ']';
    json[o] = '\0';
    return json;
}

static void nesting_deeper_than_the_limit_is_too_large(void **state)
{
    (void)state;
    for (int objects = 0; objects <= 1; objects++) {
        char *json = nested(CH_MAX_JSON_DEPTH, objects);
        (void)scan_ok(json);
        free(json);
        json = nested(CH_MAX_JSON_DEPTH + 1, objects);
        ch_jscan_doc doc;
        ch_error err = {0};
        assert_int_equal(ch_jscan_parse(&doc, json, strlen(json), tokens, TOKENS, &err),
                         CH_ERR_TOO_LARGE);
        assert_int_equal(doc.error_offset, objects ? 5 * CH_MAX_JSON_DEPTH : CH_MAX_JSON_DEPTH);
        assert_non_null(strstr(err.msg, "nesting"));
        free(json);
    }
    /* An unclosed tower of brackets fails at the limit, not at the end. */
    char deep[CH_MAX_JSON_DEPTH * 2];
    memset(deep, '[', sizeof(deep));
    ch_jscan_doc doc;
    assert_int_equal(ch_jscan_parse(&doc, deep, sizeof(deep), tokens, TOKENS, NULL),
                     CH_ERR_TOO_LARGE);
}

static void token_limit_still_validates_and_counts_the_whole_text(void **state)
{
    (void)state;
    ch_jscan_doc doc;
    ch_error err = {0};
    ch_jscan_token few[4];
    assert_int_equal(ch_jscan_parse(&doc, "[1,[2],3]", 9, few, 2, &err), CH_ERR_TOO_LARGE);
    assert_int_equal(doc.needed, 5);
    assert_int_equal(doc.count, 0);
    assert_int_equal(ch_jscan_parse(&doc, "[1,[2],3]", 9, NULL, 0, &err), CH_ERR_TOO_LARGE);
    assert_int_equal(doc.needed, 5);
    /* A syntax error after the limit still wins. */
    assert_int_equal(ch_jscan_parse(&doc, "[1,[2],x]", 9, few, 2, &err), CH_ERR_INVALID);
    assert_int_equal(doc.error_offset, 7);
    assert_int_equal(ch_jscan_parse(&doc, "[1,[2]]", 7, few, 4, &err), CH_OK);
    assert_int_equal(doc.count, 4);

    /* parse_grow: no heap when the stack array suffices, an exact heap array when it does
     * not, nothing above the limit. */
    ch_jscan_token *heap = (ch_jscan_token *)0x1;
    assert_int_equal(ch_jscan_parse_grow(&doc, "[1]", 3, few, 4, 10, &heap, &err), CH_OK);
    assert_null(heap);
    assert_ptr_equal(doc.tokens, few);
    const char *seven = "[1,2,3,4,5,6]";
    assert_int_equal(ch_jscan_parse_grow(&doc, seven, strlen(seven), few, 4, 7, &heap, &err),
                     CH_OK);
    assert_non_null(heap);
    assert_ptr_equal(doc.tokens, heap);
    assert_int_equal(doc.count, 7);
    assert_int_equal(ch_jscan_int64(&doc, 6, &(int64_t){0}), CH_OK);
    free(heap);
    assert_int_equal(ch_jscan_parse_grow(&doc, seven, strlen(seven), few, 4, 6, &heap, &err),
                     CH_ERR_TOO_LARGE);
    assert_null(heap);
    assert_non_null(strstr(err.msg, "limit of 6"));
}

static void size_limit_and_missing_text_are_refused(void **state)
{
    (void)state;
    ch_jscan_doc doc;
    ch_error err = {0};
    assert_int_equal(ch_jscan_parse(&doc, NULL, 0, tokens, TOKENS, &err), CH_ERR_INVALID);
    size_t big = CH_MAX_MESSAGE_SIZE;
    char *text = malloc(big + 1);
    memset(text, ' ', big + 1);
    text[big / 2] = '0';
    assert_int_equal(ch_jscan_parse(&doc, text, big, tokens, TOKENS, &err), CH_OK);
    assert_int_equal(ch_jscan_parse(&doc, text, big + 1, tokens, TOKENS, &err), CH_ERR_TOO_LARGE);
    assert_non_null(strstr(err.msg, "exceeds the limit"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_rfc_8259_texts_are_accepted),
        cmocka_unit_test(invalid_texts_are_rejected_with_offset_and_reason),
        cmocka_unit_test(scanning_stops_at_len_without_a_terminator),
        cmocka_unit_test(tokens_describe_types_offsets_sizes_and_subtrees),
        cmocka_unit_test(iteration_visits_members_and_elements_in_order),
        cmocka_unit_test(object_lookup_compares_keys_with_escapes_decoded),
        cmocka_unit_test(lookup_of_many_keys_agrees_with_one_get_per_key),
        cmocka_unit_test(strings_compare_copy_and_dup_decoded),
        cmocka_unit_test(integers_convert_exactly_at_the_64_bit_edges),
        cmocka_unit_test(duplicate_keys_are_found_with_escapes_decoded_at_any_depth),
        cmocka_unit_test(nesting_deeper_than_the_limit_is_too_large),
        cmocka_unit_test(token_limit_still_validates_and_counts_the_whole_text),
        cmocka_unit_test(size_limit_and_missing_text_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
