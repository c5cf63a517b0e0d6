/* json: the growing buffer, Go's string escaping, bounded parsing, Go-compatible (and sorted)
 * encoding, depth counting, and the table-driven struct decoder with Go's error texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "choria/json.h"

/* ---- helpers ---- */

static json_t *parse(const char *text)
{
    ch_error err = {0};
    json_t *v = ch_json_parse(text, strlen(text), CH_MAX_MESSAGE_SIZE, CH_MAX_JSON_DEPTH, &err);
    if (v == NULL)
        fail_msg("'%s' refused: %s", text, err.msg);
    return v;
}

static void assert_prefix(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) != 0)
        fail_msg("'%s' does not start with '%s'", s, prefix);
}

/* The escaped literal ch_buf_append_json_string writes for s[0..len). */
static char *escaped(const char *s, size_t len)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_json_string(&b, s, len);
    return ch_buf_steal(&b, NULL);
}

static void assert_escapes(const char *s, size_t len, const char *want)
{
    char *got = escaped(s, len);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void assert_encodes(const json_t *v, const char *want)
{
    size_t len = 0;
    char *got = ch_json_encode(v, &len);
    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(got);
}

/* count arrays, one inside the other, around inner (or around nothing when inner is NULL) */
static json_t *nested_arrays(int count, json_t *inner)
{
    json_t *v = inner;
    for (int i = 0; i < count; i++) {
        json_t *a = json_array();
        assert_non_null(a);
        if (v != NULL)
            assert_int_equal(json_array_append_new(a, v), 0);
        v = a;
    }
    return v;
}

/* ---- ch_buf ---- */

static void buf_appends_bytes_and_keeps_them_nul_terminated(void **state)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append(&b, "abcdef", 3);
    ch_buf_append_str(&b, "-x");
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "abc-x");
    char big[1000];
    memset(big, 'z', sizeof(big));
    ch_buf_append(&b, big, sizeof(big));
    assert_int_equal(b.len, 1005);
    assert_in_range(b.cap, 1006, SIZE_MAX);
    assert_int_equal(b.data[1005], '\0');
    assert_int_equal(b.data[1004], 'z');
    assert_false(b.failed);
    ch_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void buf_printf_formats_in_place_and_grows_for_long_output(void **state)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_printf(&b, "%d-%s", 42, "x");
    assert_string_equal(b.data, "42-x");
    char long_text[5001];
    memset(long_text, 'q', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    ch_buf_printf(&b, "[%s]", long_text);
    assert_int_equal(b.len, 4 + 5002);
    assert_int_equal(b.data[4], '[');
    assert_int_equal(b.data[5005], ']');
    assert_int_equal(b.data[5006], '\0');
    assert_int_equal(strlen(b.data), b.len);
    ch_buf_free(&b);
}

static void buf_steal_hands_out_the_data_and_resets_the_buffer(void **state)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "hello");
    size_t len = 0;
    char *s = ch_buf_steal(&b, &len);
    assert_string_equal(s, "hello");
    assert_int_equal(len, 5);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(s);
}

static void steal_of_a_buffer_never_appended_to_gives_an_empty_string(void **state)
{
    ch_buf b;
    ch_buf_init(&b);
    size_t len = 99;
    char *empty = ch_buf_steal(&b, &len);
    assert_non_null(empty);
    assert_int_equal(len, 0);
    assert_string_equal(empty, "");
    free(empty);
}

static void a_failed_buffer_ignores_appends_and_steal_returns_null(void **state)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "kept");
    b.failed = true; /* as an allocation failure leaves it */
    ch_buf_append_str(&b, "lost");
    ch_buf_printf(&b, "%s", "lost");
    ch_buf_append_json_string(&b, "lost", 4);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "kept");
    size_t len = 99;
    assert_null(ch_buf_steal(&b, &len));
    assert_int_equal(len, 99);
    /* steal released the data: the leak checker would report it otherwise */
    assert_null(b.data);
    assert_false(b.failed);
}

/* ---- Go's string escaping ---- */

static void json_string_escapes_quotes_backslashes_and_control_characters_as_go(void **state)
{
    assert_escapes("plain text", 10, "\"plain text\"");
    assert_escapes("\"\\/", 3, "\"\\\"\\\\/\"");
    assert_escapes("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
    assert_escapes("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"");
    assert_escapes("a\0b", 3, "\"a\\u0000b\"");
    /* len bounds the input, not a NUL */
    assert_escapes("abcdef", 2, "\"ab\"");
    assert_escapes("", 0, "\"\"");
}

static void json_string_escapes_html_characters_and_line_separators(void **state)
{
    assert_escapes("<a href=x&y>", 12, "\"\\u003ca href=x\\u0026y\\u003e\"");
    assert_escapes("\xe2\x80\xa8|\xe2\x80\xa9", 7, "\"\\u2028|\\u2029\"");
    /* other multi-byte characters are written as they are */
    assert_escapes("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
                   "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
}

static void json_string_replaces_each_invalid_utf8_byte_with_ufffd(void **state)
{
    assert_escapes("a\xffz", 3, "\"a\\ufffdz\"");
    assert_escapes("\x80", 1, "\"\\ufffd\"");
    assert_escapes("\xc0\x80", 2, "\"\\ufffd\\ufffd\"");            /* overlong NUL */
    assert_escapes("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""); /* a surrogate */
    assert_escapes("x\xe2\x82", 3, "\"x\\ufffd\\ufffd\"");          /* cut short */
    /* a valid sequence cut by len is invalid too */
    assert_escapes("\xe2\x82\xac", 2, "\"\\ufffd\\ufffd\"");
}

static void assert_escapes_as(const char *s, size_t len, ch_json_escape style, const char *want)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_json_string_as(&b, s, len, style);
    char *got = ch_buf_steal(&b, NULL);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void jsoniter_style_escapes_only_what_json_requires(void **state)
{
    const char text[] = "<a&b>\b\f\n\"\\\x01\xe2\x80\xa8\xff";
    size_t len = sizeof(text) - 1;
    assert_escapes_as(text, len, CH_JSON_ESCAPE_JSONITER,
                      "\"<a&b>\\u0008\\u000c\\n\\\"\\\\\\u0001\xe2\x80\xa8\\ufffd\"");
    /* the Go style is what ch_buf_append_json_string writes */
    char *go = escaped(text, len);
    assert_escapes_as(text, len, CH_JSON_ESCAPE_GO, go);
    assert_string_equal(go, "\"\\u003ca\\u0026b\\u003e\\b\\f\\n\\\"\\\\\\u0001\\u2028\\ufffd\"");
    free(go);
}

static void utf8_seq_len_accepts_valid_sequences_of_one_to_four_bytes(void **state)
{
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"A", 1), 1);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\x7f", 1), 1);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xc3\xa9", 2), 2);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xe2\x82\xac", 3), 3);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xf4\x8f\xbf\xbf", 4), 4);
    /* only the first sequence counts */
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xc3\xa9zz", 4), 2);
}

static void utf8_seq_len_refuses_overlong_surrogate_out_of_range_and_cut_sequences(void **state)
{
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xc0\x80", 2), 0);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xe0\x80\x80", 3), 0);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xf0\x80\x80\x80", 4), 0);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xed\xa0\x80", 3), 0);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 0);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xf8\x88\x80\x80\x80", 5), 0);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\x80", 1), 0);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xe2\x41\xac", 3), 0);
    assert_int_equal(ch_utf8_seq_len((const unsigned char *)"\xe2\x82\xac", 2), 0);
}

/* ---- parsing ---- */

static void parse_reads_a_buffer_that_is_not_nul_terminated(void **state)
{
    const char text[] = "[1,2]garbage";
    ch_error err = {0};
    json_t *v = ch_json_parse(text, 5, 100, 4, &err);
    assert_non_null(v);
    assert_true(json_is_array(v));
    assert_int_equal(json_array_size(v), 2);
    json_decref(v);
    /* any value may be the document */
    v = ch_json_parse("42", 2, 100, 4, &err);
    assert_non_null(v);
    assert_int_equal(json_integer_value(v), 42);
    json_decref(v);
}

static void parse_refuses_a_document_larger_than_max_size(void **state)
{
    const char *text = "[1,2,3,4]";
    ch_error err = {0};
    json_t *v = ch_json_parse(text, 9, 9, 4, &err);
    assert_non_null(v);
    json_decref(v);
    assert_null(ch_json_parse(text, 9, 8, 4, &err));
    assert_int_equal(err.code, CH_ERR_TOO_LARGE);
    assert_string_equal(err.msg, "JSON document of 9 bytes exceeds the limit of 8");
}

static void parse_refuses_nesting_deeper_than_max_depth(void **state)
{
    ch_error err = {0};
    json_t *v = ch_json_parse("[{\"a\":[1]}]", 11, 100, 3, &err);
    assert_non_null(v);
    json_decref(v);
    assert_null(ch_json_parse("[{\"a\":[1]}]", 11, 100, 2, &err));
    assert_int_equal(err.code, CH_ERR_TOO_LARGE);
    assert_string_equal(err.msg, "JSON nesting exceeds the limit of 2");
    /* brackets inside strings are text */
    v = ch_json_parse("[\"[[[{{{\"]", 10, 100, 1, &err);
    assert_non_null(v);
    json_decref(v);
}

static void parse_refuses_duplicate_keys(void **state)
{
    ch_error err = {0};
    const char *text = "{\"a\":1,\"a\":2}";
    assert_null(ch_json_parse(text, strlen(text), 100, 4, &err));
    assert_int_equal(err.code, CH_ERR_INVALID);
    assert_prefix(err.msg, "invalid JSON at line 1 column 10: ");
    assert_non_null(strstr(err.msg, "duplicate object key"));
    /* the same key in different objects is fine */
    json_t *v = parse("[{\"a\":1},{\"a\":2}]");
    json_decref(v);
}

static void parse_errors_name_the_line_and_column(void **state)
{
    ch_error err = {0};
    const char *text = "{\n  \"a\": }";
    assert_null(ch_json_parse(text, strlen(text), 100, 4, &err));
    assert_int_equal(err.code, CH_ERR_INVALID);
    assert_prefix(err.msg, "invalid JSON at line 2 column 8: ");
}

static void parse_refuses_trailing_garbage_empty_input_and_no_buffer(void **state)
{
    ch_error err = {0};
    assert_null(ch_json_parse("[1] x", 5, 100, 4, &err));
    assert_int_equal(err.code, CH_ERR_INVALID);
    assert_prefix(err.msg, "invalid JSON at line 1 column 5: ");
    assert_null(ch_json_parse("", 0, 100, 4, &err));
    assert_int_equal(err.code, CH_ERR_INVALID);
    assert_null(ch_json_parse(NULL, 0, 100, 4, &err));
    assert_int_equal(err.code, CH_ERR_INVALID);
    assert_string_equal(err.msg, "no JSON data");
}

/* ---- depth ---- */

static void depth_counts_brackets_outside_strings(void **state)
{
    assert_int_equal(ch_json_depth("1", 1, 10), 0);
    assert_int_equal(ch_json_depth("{}", 2, 10), 1);
    assert_int_equal(ch_json_depth("[][][]", 6, 10), 1);
    assert_int_equal(ch_json_depth("[{\"a\":[1]}]", 11, 10), 3);
    assert_int_equal(ch_json_depth("[[1],[[[2]]]]", 13, 10), 4);
    assert_int_equal(ch_json_depth("\"[[[\"", 5, 10), 0);
    /* an escaped quote does not end the string */
    assert_int_equal(ch_json_depth("[\"\\\"[[\"]", 8, 10), 1);
}

static void depth_stops_counting_once_past_the_limit(void **state)
{
    char text[1000];
    memset(text, '[', sizeof(text));
    assert_int_equal(ch_json_depth(text, sizeof(text), 10), 11);
    assert_int_equal(ch_json_depth(text, 10, 10), 10);
}

static void depth_of_measures_decoded_values(void **state)
{
    json_t *scalar = json_integer(1);
    assert_int_equal(ch_json_depth_of(scalar, 10), 0);
    json_decref(scalar);
    json_t *v = parse("[]");
    assert_int_equal(ch_json_depth_of(v, 10), 1);
    json_decref(v);
    v = parse("{\"a\":[1,{\"b\":{}}],\"c\":2}");
    assert_int_equal(ch_json_depth_of(v, 10), 4);
    json_decref(v);
    v = parse("[[1],[[[2]]]]");
    assert_int_equal(ch_json_depth_of(v, 10), 4);
    json_decref(v);
}

static void depth_of_reports_a_value_deeper_than_the_limit_as_past_it(void **state)
{
    json_t *v = nested_arrays(200, json_integer(1));
    assert_int_equal(ch_json_depth_of(v, 10), 11); /* counting stops past the limit */
    json_decref(v);
}

/* ---- encoding ---- */

static void encode_keeps_insertion_order_and_writes_compact_json(void **state)
{
    json_t *v = json_object();
    json_object_set_new(v, "z", json_integer(1));
    json_object_set_new(v, "a", json_pack("[b,b,n,s]", 1, 0, "<x>"));
    json_object_set_new(v, "m", json_object());
    json_object_set_new(v, "k&", json_array());
    assert_encodes(v, "{\"z\":1,\"a\":[true,false,null,\"\\u003cx\\u003e\"],\"m\":{},"
                      "\"k\\u0026\":[]}");
    json_decref(v);
}

static void encode_writes_integers_exactly(void **state)
{
    json_t *v = json_pack("[I,I,i,i]", (json_int_t)INT64_MIN, (json_int_t)INT64_MAX, 0, -1);
    assert_encodes(v, "[-9223372036854775808,9223372036854775807,0,-1]");
    json_decref(v);
}

static void encode_writes_floats_as_go_formats_them(void **state)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {1.5, "1.5"},
        {0.1, "0.1"},
        {-2.25, "-2.25"},
        {100.0, "100"},
        {123456.789, "123456.789"},
        {0.000001, "0.000001"},
        {1e20, "100000000000000000000"},
        {1e21, "1e+21"},
        {1e-7, "1e-7"},
        {1.5e-7, "1.5e-7"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = json_real(cases[i].v);
        assert_encodes(v, cases[i].want);
        json_decref(v);
    }
}

static void encode_of_null_is_null(void **state)
{
    size_t len = 7;
    assert_null(ch_json_encode(NULL, &len));
    assert_null(ch_json_encode_sorted(NULL, &len));
    json_t *v = json_string("x");
    char *s = ch_json_encode(v, NULL);
    assert_string_equal(s, "\"x\"");
    free(s);
    json_decref(v);
}

static const char unsorted_doc[] = "{\"b\":1,\"B\":2,\"a\":{\"z\":1,\"y\":[{\"d\":1,\"c\":2}]},"
                                   "\"aa\":0,\"\xc3\xa9\":1}";
static const char sorted_doc[] = "{\"B\":2,\"a\":{\"y\":[{\"c\":2,\"d\":1}],\"z\":1},\"aa\":0,"
                                 "\"b\":1,\"\xc3\xa9\":1}";

static void encode_sorted_sorts_keys_bytewise_at_every_level(void **state)
{
    json_t *v = parse(unsorted_doc);
    size_t len = 0;
    char *s = ch_json_encode_sorted(v, &len);
    assert_non_null(s);
    assert_string_equal(s, sorted_doc);
    assert_int_equal(len, strlen(sorted_doc));
    free(s);
    /* the value itself is left in its order */
    assert_encodes(v, unsorted_doc);
    json_decref(v);
}

static void encode_sorted_refuses_values_nested_past_the_limit(void **state)
{
    json_t *ok = nested_arrays(CH_MAX_JSON_DEPTH, json_integer(1));
    char *s = ch_json_encode_sorted(ok, NULL);
    assert_non_null(s);
    assert_int_equal(strlen(s), 2 * CH_MAX_JSON_DEPTH + 1);
    free(s);
    json_decref(ok);
    json_t *deep = nested_arrays(CH_MAX_JSON_DEPTH + 1, json_integer(1));
    assert_null(ch_json_encode_sorted(deep, NULL));
    json_decref(deep);
}

static void sorted_copy_is_a_deep_copy_with_keys_in_sorted_order(void **state)
{
    json_t *v = parse(unsorted_doc);
    json_t *copy = ch_json_sorted_copy(v);
    assert_non_null(copy);
    assert_ptr_not_equal(copy, v);
    assert_true(json_equal(copy, v));
    assert_encodes(copy, sorted_doc);
    /* changing the copy leaves the original alone */
    json_object_set_new(json_object_get(copy, "a"), "z", json_integer(9));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "a"), "z")), 1);
    json_decref(copy);
    json_decref(v);
    assert_null(ch_json_sorted_copy(NULL));
}

static void sorted_copy_refuses_nesting_past_the_limit(void **state)
{
    json_t *ok = nested_arrays(CH_MAX_JSON_DEPTH, json_integer(1));
    json_t *copy = ch_json_sorted_copy(ok);
    assert_non_null(copy);
    assert_true(json_equal(copy, ok));
    json_decref(copy);
    json_decref(ok);
    json_t *deep = nested_arrays(CH_MAX_JSON_DEPTH + 1, json_integer(1));
    assert_null(ch_json_sorted_copy(deep));
    json_decref(deep);
    /* empty innermost containers nest just as deep */
    deep = nested_arrays(CH_MAX_JSON_DEPTH + 1, NULL);
    assert_int_equal(ch_json_depth_of(deep, CH_MAX_JSON_DEPTH), CH_MAX_JSON_DEPTH + 1);
    assert_null(ch_json_sorted_copy(deep));
    assert_null(ch_json_encode_sorted(deep, NULL));
    json_decref(deep);
}

/* ---- accessors ---- */

static void go_type_names_json_types_as_go_does(void **state)
{
    json_t *v = parse("[{},[],\"s\",1,1.5,true,false,null]");
    static const char *const want[] = {"object", "array", "string", "number",
                                       "number", "bool",  "bool",   "null"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_string_equal(ch_json_go_type(json_array_get(v, i)), want[i]);
    json_decref(v);
}

static void get_string_returns_string_members_only(void **state)
{
    json_t *v = parse("{\"s\":\"x\",\"n\":1,\"z\":null}");
    assert_string_equal(ch_json_get_string(v, "s"), "x");
    assert_null(ch_json_get_string(v, "n"));
    assert_null(ch_json_get_string(v, "z"));
    assert_null(ch_json_get_string(v, "missing"));
    json_t *arr = parse("[\"s\"]");
    assert_null(ch_json_get_string(arr, "s"));
    json_decref(arr);
    json_decref(v);
}

/* ---- the struct decoder ---- */

typedef struct {
    char *name;
    const char *bname;
    int64_t workers;
    bool enabled;
    const json_t *labels;
    const json_t *tags;
    const json_t *extra;
    const json_t *any;
    int64_t port;
    const json_t *hook;
} cfg;

static void cfg_clear(cfg *c)
{
    free(c->name);
    memset(c, 0, sizeof(*c));
}

static const ch_json_field cfg_fields[] = {
    CH_JSON_FIELD(cfg, "name", CH_JSON_STRING, name),
    CH_JSON_FIELD(cfg, "bname", CH_JSON_BSTRING, bname),
    CH_JSON_FIELD(cfg, "workers", CH_JSON_INT, workers),
    CH_JSON_FIELD(cfg, "enabled", CH_JSON_BOOL, enabled),
    CH_JSON_FIELD(cfg, "labels", CH_JSON_STRMAP, labels),
    CH_JSON_FIELD(cfg, "tags", CH_JSON_STRLIST, tags),
    CH_JSON_FIELD(cfg, "extra", CH_JSON_OBJECT, extra),
    CH_JSON_FIELD(cfg, "any", CH_JSON_VALUE, any),
    {.name = "version", .kind = CH_JSON_CHECK},
};

static const ch_json_struct cfg_struct = {
    .go_name = "config.Config",
    .fields = cfg_fields,
    .nfields = sizeof(cfg_fields) / sizeof(cfg_fields[0]),
};

/* The message decoding text into a zeroed cfg gives; fails the test if it decodes. */
static void assert_decode_error(const ch_json_struct *s, const char *text, const char *want)
{
    json_t *doc = parse(text);
    cfg c = {0};
    ch_error err = {0};
    assert_int_equal(ch_json_decode(doc, s, &c, &err), CH_ERR_INVALID);
    assert_int_equal(err.code, CH_ERR_INVALID);
    assert_string_equal(err.msg, want);
    cfg_clear(&c);
    json_decref(doc);
}

static void decode_fills_each_kind_from_its_key(void **state)
{
    json_t *doc = parse("{\"name\":\"n1\",\"bname\":\"b1\",\"workers\":-4,\"enabled\":true,"
                        "\"labels\":{\"a\":\"x\",\"b\":null},\"tags\":[\"t\",null],"
                        "\"extra\":{\"k\":[1]},\"any\":2.5,\"version\":\"v\"}");
    cfg c = {0};
    ch_error err = {0};
    assert_int_equal(ch_json_decode(doc, &cfg_struct, &c, &err), CH_OK);
    assert_string_equal(c.name, "n1");
    assert_ptr_not_equal(c.name, json_string_value(json_object_get(doc, "name")));
    assert_ptr_equal(c.bname, json_string_value(json_object_get(doc, "bname")));
    assert_int_equal(c.workers, -4);
    assert_true(c.enabled);
    assert_ptr_equal(c.labels, json_object_get(doc, "labels"));
    assert_ptr_equal(c.tags, json_object_get(doc, "tags"));
    assert_ptr_equal(c.extra, json_object_get(doc, "extra"));
    assert_ptr_equal(c.any, json_object_get(doc, "any"));
    cfg_clear(&c);
    json_decref(doc);
}

static void a_string_field_replaces_and_frees_its_previous_value(void **state)
{
    json_t *doc = parse("{\"name\":\"new\"}");
    cfg c = {.name = strdup("old")};
    assert_non_null(c.name);
    assert_int_equal(ch_json_decode(doc, &cfg_struct, &c, NULL), CH_OK);
    assert_string_equal(c.name, "new");
    cfg_clear(&c);
    json_decref(doc);
}

static void field_find_prefers_an_exact_match_then_the_first_case_insensitive_one(void **state)
{
    static const ch_json_field fields[] = {
        CH_JSON_FIELD(cfg, "id", CH_JSON_STRING, name),
        CH_JSON_FIELD(cfg, "ID", CH_JSON_BSTRING, bname),
    };
    static const ch_json_struct s = {.go_name = "T", .fields = fields, .nfields = 2};
    assert_ptr_equal(ch_json_field_find(&s, "id"), &fields[0]);
    assert_ptr_equal(ch_json_field_find(&s, "ID"), &fields[1]);
    assert_ptr_equal(ch_json_field_find(&s, "Id"), &fields[0]);
    assert_ptr_equal(ch_json_field_find(&s, "iD"), &fields[0]);
    assert_null(ch_json_field_find(&s, "idx"));
    assert_null(ch_json_field_find(&s, ""));
}

static void decode_matches_keys_case_insensitively_and_ignores_unknown_keys(void **state)
{
    json_t *doc =
        parse("{\"WORKERS\":3,\"Enabled\":true,\"unknown\":{\"deep\":[1]},\"nAmE\":\"x\"}");
    cfg c = {0};
    ch_error err = {0};
    assert_int_equal(ch_json_decode(doc, &cfg_struct, &c, &err), CH_OK);
    assert_int_equal(c.workers, 3);
    assert_true(c.enabled);
    assert_string_equal(c.name, "x");
    cfg_clear(&c);
    json_decref(doc);
}

static void decode_null_leaves_scalars_alone_and_clears_json_kinds(void **state)
{
    json_t *doc = parse("{\"name\":null,\"bname\":null,\"workers\":null,\"enabled\":null,"
                        "\"labels\":null,\"tags\":null,\"extra\":null,\"any\":null,"
                        "\"version\":null}");
    json_t *before = json_object();
    cfg c = {.name = strdup("keep"),
             .bname = "borrowed",
             .workers = 7,
             .enabled = true,
             .labels = before,
             .tags = before,
             .extra = before,
             .any = before};
    assert_non_null(c.name);
    ch_error err = {0};
    assert_int_equal(ch_json_decode(doc, &cfg_struct, &c, &err), CH_OK);
    assert_string_equal(c.name, "keep");
    assert_string_equal(c.bname, "borrowed");
    assert_int_equal(c.workers, 7);
    assert_true(c.enabled);
    assert_null(c.labels);
    assert_null(c.tags);
    assert_null(c.extra);
    assert_null(c.any);
    cfg_clear(&c);
    json_decref(before);
    json_decref(doc);
}

static int port_calls;
static char port_path[64];

static ch_status decode_port(const ch_json_field *f, const json_t *v, void *dst, const char *path,
                             ch_error *err)
{
    port_calls++;
    snprintf(port_path, sizeof(port_path), "%s", path);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535)
        return ch_json_type_error(err, v, path, f->go_type);
    *(int64_t *)dst = json_integer_value(v);
    return CH_OK;
}

static const ch_json_field hooked_fields[] = {
    {.name = "port",
     .kind = CH_JSON_INT,
     .offset = offsetof(cfg, port),
     .go_type = "uint16",
     .decode = decode_port},
    {.name = "hook", .kind = CH_JSON_VALUE, .offset = offsetof(cfg, hook), .decode = decode_port},
};

static const ch_json_struct hooked_struct = {
    .go_name = "config.Config", .fields = hooked_fields, .nfields = 2};

static void a_field_with_a_decode_function_never_sees_null(void **state)
{
    json_t *doc = parse("{\"port\":null,\"hook\":null}");
    json_t *before = json_object();
    cfg c = {.port = 80, .hook = before};
    port_calls = 0;
    assert_int_equal(ch_json_decode(doc, &hooked_struct, &c, NULL), CH_OK);
    assert_int_equal(port_calls, 0);
    assert_int_equal(c.port, 80);
    assert_ptr_equal(c.hook, before);
    json_decref(doc);

    doc = parse("{\"port\":8080}");
    assert_int_equal(ch_json_decode(doc, &hooked_struct, &c, NULL), CH_OK);
    assert_int_equal(port_calls, 1);
    assert_string_equal(port_path, "Config.port");
    assert_int_equal(c.port, 8080);
    json_decref(doc);
    json_decref(before);
}

static void a_decode_function_error_is_returned_as_it_is(void **state)
{
    assert_decode_error(&hooked_struct, "{\"port\":70000}",
                        "json: cannot unmarshal number into Go struct field Config.port of type "
                        "uint16");
}

static void type_errors_use_go_unmarshal_type_error_text(void **state)
{
    assert_decode_error(&cfg_struct, "{\"workers\":\"4\"}",
                        "json: cannot unmarshal string into Go struct field Config.workers of "
                        "type int");
    assert_decode_error(&cfg_struct, "{\"name\":1}",
                        "json: cannot unmarshal number into Go struct field Config.name of type "
                        "string");
    assert_decode_error(&cfg_struct, "{\"bname\":true}",
                        "json: cannot unmarshal bool into Go struct field Config.bname of type "
                        "string");
    assert_decode_error(&cfg_struct, "{\"enabled\":\"yes\"}",
                        "json: cannot unmarshal string into Go struct field Config.enabled of "
                        "type bool");
    assert_decode_error(&cfg_struct, "{\"labels\":[]}",
                        "json: cannot unmarshal array into Go struct field Config.labels of type "
                        "map[string]string");
    assert_decode_error(&cfg_struct, "{\"tags\":{}}",
                        "json: cannot unmarshal object into Go struct field Config.tags of type "
                        "[]string");
    assert_decode_error(&cfg_struct, "{\"extra\":[]}",
                        "json: cannot unmarshal array into Go struct field Config.extra of type "
                        "map[string]interface {}");
}

static void a_field_go_type_names_the_type_in_messages(void **state)
{
    static const ch_json_field fields[] = {
        {.name = "port", .kind = CH_JSON_INT, .offset = offsetof(cfg, port), .go_type = "uint16"},
    };
    static const ch_json_struct s = {.go_name = "config.Config", .fields = fields, .nfields = 1};
    assert_decode_error(&s, "{\"port\":\"80\"}",
                        "json: cannot unmarshal string into Go struct field Config.port of type "
                        "uint16");
}

static void a_fraction_for_an_int_field_is_named_by_its_value(void **state)
{
    assert_decode_error(&cfg_struct, "{\"workers\":1.5}",
                        "json: cannot unmarshal number 1.5 into Go struct field Config.workers of "
                        "type int");
    assert_decode_error(&cfg_struct, "{\"workers\":-0.25}",
                        "json: cannot unmarshal number -0.25 into Go struct field Config.workers "
                        "of type int");
}

static void a_fraction_for_an_int_is_named_by_its_shortest_exact_text(void **state)
{
    json_t *doc = parse("{\"workers\":3.14159265}");
    cfg c = {0};
    ch_error err = {0};
    assert_int_equal(ch_json_decode(doc, &cfg_struct, &c, &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, "json: cannot unmarshal number 3.14159265 into Go struct field "
                                 "Config.workers of type int");
    json_decref(doc);
}

static void a_fraction_for_a_field_that_is_not_an_int_names_the_field_and_type(void **state)
{
    json_t *doc = parse("{\"name\":1.5}");
    cfg c = {0};
    ch_error err = {0};
    assert_int_equal(ch_json_decode(doc, &cfg_struct, &c, &err), CH_ERR_INVALID);
    /* Go names the literal only when it was meant for an integer */
    assert_string_equal(err.msg,
                        "json: cannot unmarshal number into Go struct field Config.name of type "
                        "string");
    json_decref(doc);
}

static void a_document_that_is_not_an_object_is_a_go_value_error(void **state)
{
    static const struct {
        const char *doc, *want;
    } cases[] = {
        {"[1]", "json: cannot unmarshal array into Go value of type config.Config"},
        {"\"x\"", "json: cannot unmarshal string into Go value of type config.Config"},
        {"true", "json: cannot unmarshal bool into Go value of type config.Config"},
        {"7", "json: cannot unmarshal number into Go value of type config.Config"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_decode_error(&cfg_struct, cases[i].doc, cases[i].want);
}

static void a_null_or_missing_document_decodes_nothing(void **state)
{
    json_t *null = json_null();
    cfg c = {.workers = 5};
    ch_error err = {0};
    assert_int_equal(ch_json_decode(null, &cfg_struct, &c, &err), CH_OK);
    assert_int_equal(ch_json_decode(NULL, &cfg_struct, &c, &err), CH_OK);
    assert_int_equal(c.workers, 5);
    assert_null(c.name);
    json_decref(null);
}

static void a_string_holding_a_nul_byte_is_refused(void **state)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "name", json_stringn("a\0b", 3));
    cfg c = {0};
    ch_error err = {0};
    assert_int_equal(ch_json_decode(doc, &cfg_struct, &c, &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, "Config.name contains a NUL byte");
    assert_null(c.name);
    json_decref(doc);
}

static void strmap_and_strlist_refuse_members_that_are_not_strings(void **state)
{
    assert_decode_error(&cfg_struct, "{\"labels\":{\"a\":\"x\",\"b\":2,\"c\":true}}",
                        "json: cannot unmarshal number into Go struct field Config.labels of type "
                        "string");
    assert_decode_error(&cfg_struct, "{\"tags\":[\"x\",null,{\"o\":1}]}",
                        "json: cannot unmarshal object into Go struct field Config.tags of type "
                        "string");
    assert_decode_error(&cfg_struct, "{\"tags\":[[]]}",
                        "json: cannot unmarshal array into Go struct field Config.tags of type "
                        "string");
}

static int version_calls;
static const void *version_dst;

static ch_status check_version(const ch_json_field *f, const json_t *v, void *dst, const char *path,
                               ch_error *err)
{
    version_calls++;
    version_dst = dst;
    return json_is_string(v) ? CH_OK : ch_json_type_error(err, v, path, "string");
}

static void check_fields_store_nothing(void **state)
{
    /* at offset 0, a stray store would land in name */
    json_t *doc = parse("{\"version\":[1,2]}");
    cfg c = {0}, zero = {0};
    assert_int_equal(ch_json_decode(doc, &cfg_struct, &c, NULL), CH_OK);
    assert_memory_equal(&c, &zero, sizeof(c));
    json_decref(doc);

    static const ch_json_field fields[] = {
        {.name = "version", .kind = CH_JSON_CHECK, .decode = check_version},
    };
    static const ch_json_struct s = {.go_name = "config.Config", .fields = fields, .nfields = 1};
    doc = parse("{\"version\":\"1\"}");
    version_calls = 0;
    version_dst = &c;
    assert_int_equal(ch_json_decode(doc, &s, &c, NULL), CH_OK);
    assert_int_equal(version_calls, 1);
    assert_null(version_dst);
    assert_memory_equal(&c, &zero, sizeof(c));
    json_decref(doc);
    assert_decode_error(&s, "{\"version\":2}",
                        "json: cannot unmarshal number into Go struct field Config.version of "
                        "type string");
}

static void decode_at_starts_field_paths_with_the_prefix(void **state)
{
    json_t *doc = parse("{\"workers\":\"x\"}");
    cfg c = {0};
    ch_error err = {0};
    assert_int_equal(ch_json_decode_at(doc, &cfg_struct, &c, "Config.features", &err),
                     CH_ERR_INVALID);
    assert_string_equal(err.msg, "json: cannot unmarshal string into Go struct field "
                                 "Config.features.workers of type int");
    json_decref(doc);
    /* a struct named without a package is its own prefix */
    static const ch_json_struct bare = {.go_name = "Plain", .fields = cfg_fields, .nfields = 3};
    assert_decode_error(&bare, "{\"workers\":true}",
                        "json: cannot unmarshal bool into Go struct field Plain.workers of type "
                        "int");
}

static void decode_stops_at_the_first_error_keeping_earlier_fields(void **state)
{
    json_t *doc = parse("{\"name\":\"a\",\"workers\":\"x\",\"enabled\":true}");
    cfg c = {0};
    ch_error err = {0};
    assert_int_equal(ch_json_decode(doc, &cfg_struct, &c, &err), CH_ERR_INVALID);
    assert_string_equal(c.name, "a");
    assert_false(c.enabled);
    cfg_clear(&c);
    json_decref(doc);
}

static void type_error_names_the_value_path_and_type(void **state)
{
    ch_error err = {0};
    json_t *v = json_object();
    assert_int_equal(ch_json_type_error(&err, v, NULL, "pkg.T"), CH_ERR_INVALID);
    assert_int_equal(err.code, CH_ERR_INVALID);
    assert_string_equal(err.msg, "json: cannot unmarshal object into Go value of type pkg.T");
    assert_int_equal(ch_json_type_error(&err, v, "T.f", "[]string"), CH_ERR_INVALID);
    assert_string_equal(err.msg,
                        "json: cannot unmarshal object into Go struct field T.f of type []string");
    assert_int_equal(ch_json_type_error(NULL, v, "T.f", "int"), CH_ERR_INVALID);
    json_decref(v);
}

static void kind_go_type_names_the_go_type_of_each_kind(void **state)
{
    assert_string_equal(ch_json_kind_go_type(CH_JSON_STRING), "string");
    assert_string_equal(ch_json_kind_go_type(CH_JSON_BSTRING), "string");
    assert_string_equal(ch_json_kind_go_type(CH_JSON_INT), "int");
    assert_string_equal(ch_json_kind_go_type(CH_JSON_BOOL), "bool");
    assert_string_equal(ch_json_kind_go_type(CH_JSON_STRMAP), "map[string]string");
    assert_string_equal(ch_json_kind_go_type(CH_JSON_STRLIST), "[]string");
    assert_string_equal(ch_json_kind_go_type(CH_JSON_OBJECT), "map[string]interface {}");
    assert_string_equal(ch_json_kind_go_type(CH_JSON_VALUE), "interface {}");
    assert_string_equal(ch_json_kind_go_type(CH_JSON_CHECK), "interface {}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_appends_bytes_and_keeps_them_nul_terminated),
        cmocka_unit_test(buf_printf_formats_in_place_and_grows_for_long_output),
        cmocka_unit_test(buf_steal_hands_out_the_data_and_resets_the_buffer),
        cmocka_unit_test(steal_of_a_buffer_never_appended_to_gives_an_empty_string),
        cmocka_unit_test(a_failed_buffer_ignores_appends_and_steal_returns_null),
        cmocka_unit_test(json_string_escapes_quotes_backslashes_and_control_characters_as_go),
        cmocka_unit_test(json_string_escapes_html_characters_and_line_separators),
        cmocka_unit_test(json_string_replaces_each_invalid_utf8_byte_with_ufffd),
        cmocka_unit_test(jsoniter_style_escapes_only_what_json_requires),
        cmocka_unit_test(utf8_seq_len_accepts_valid_sequences_of_one_to_four_bytes),
        cmocka_unit_test(utf8_seq_len_refuses_overlong_surrogate_out_of_range_and_cut_sequences),
        cmocka_unit_test(parse_reads_a_buffer_that_is_not_nul_terminated),
        cmocka_unit_test(parse_refuses_a_document_larger_than_max_size),
        cmocka_unit_test(parse_refuses_nesting_deeper_than_max_depth),
        cmocka_unit_test(parse_refuses_duplicate_keys),
        cmocka_unit_test(parse_errors_name_the_line_and_column),
        cmocka_unit_test(parse_refuses_trailing_garbage_empty_input_and_no_buffer),
        cmocka_unit_test(depth_counts_brackets_outside_strings),
        cmocka_unit_test(depth_stops_counting_once_past_the_limit),
        cmocka_unit_test(depth_of_measures_decoded_values),
        cmocka_unit_test(depth_of_reports_a_value_deeper_than_the_limit_as_past_it),
        cmocka_unit_test(encode_keeps_insertion_order_and_writes_compact_json),
        cmocka_unit_test(encode_writes_integers_exactly),
        cmocka_unit_test(encode_writes_floats_as_go_formats_them),
        cmocka_unit_test(encode_of_null_is_null),
        cmocka_unit_test(encode_sorted_sorts_keys_bytewise_at_every_level),
        cmocka_unit_test(encode_sorted_refuses_values_nested_past_the_limit),
        cmocka_unit_test(sorted_copy_is_a_deep_copy_with_keys_in_sorted_order),
        cmocka_unit_test(sorted_copy_refuses_nesting_past_the_limit),
        cmocka_unit_test(go_type_names_json_types_as_go_does),
        cmocka_unit_test(get_string_returns_string_members_only),
        cmocka_unit_test(decode_fills_each_kind_from_its_key),
        cmocka_unit_test(a_string_field_replaces_and_frees_its_previous_value),
        cmocka_unit_test(field_find_prefers_an_exact_match_then_the_first_case_insensitive_one),
        cmocka_unit_test(decode_matches_keys_case_insensitively_and_ignores_unknown_keys),
        cmocka_unit_test(decode_null_leaves_scalars_alone_and_clears_json_kinds),
        cmocka_unit_test(a_field_with_a_decode_function_never_sees_null),
        cmocka_unit_test(a_decode_function_error_is_returned_as_it_is),
        cmocka_unit_test(type_errors_use_go_unmarshal_type_error_text),
        cmocka_unit_test(a_field_go_type_names_the_type_in_messages),
        cmocka_unit_test(a_fraction_for_an_int_field_is_named_by_its_value),
        cmocka_unit_test(a_fraction_for_a_field_that_is_not_an_int_names_the_field_and_type),
        cmocka_unit_test(a_fraction_for_an_int_is_named_by_its_shortest_exact_text),
        cmocka_unit_test(a_document_that_is_not_an_object_is_a_go_value_error),
        cmocka_unit_test(a_null_or_missing_document_decodes_nothing),
        cmocka_unit_test(a_string_holding_a_nul_byte_is_refused),
        cmocka_unit_test(strmap_and_strlist_refuse_members_that_are_not_strings),
        cmocka_unit_test(check_fields_store_nothing),
        cmocka_unit_test(decode_at_starts_field_paths_with_the_prefix),
        cmocka_unit_test(decode_stops_at_the_first_error_keeping_earlier_fields),
        cmocka_unit_test(type_error_names_the_value_path_and_type),
        cmocka_unit_test(kind_go_type_names_the_go_type_of_each_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
