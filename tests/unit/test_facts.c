/* Facts files: JSON and YAML, the ':' path list, shallow merge, sorted keys, and every kind of
 * file that must be skipped rather than break the node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/facts.h"
#include "choria/json.h"
#include "choria/log.h"
#include "harness.h"

typedef struct {
    char dir[64];
    char paths[16][128];
    int n;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ch_error err;
    assert_non_null(f);
    CHT_CHECK(cht_temp_dir("facts", f->dir, sizeof(f->dir), &err), &err);
    ch_log_set_level(CH_LOG_OFF); /* skipped files are logged; keep the test output clean */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

/* Writes a file in the fixture directory and returns its path. */
static const char *write_file(fixture *f, const char *name, const char *text, size_t len)
{
    assert_in_range(f->n, 0, 15);
    char *p = f->paths[f->n++];
    char path[sizeof(f->paths[0])]; /* a local buffer: gcc -O2 suspects overlap with f->dir */
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    memcpy(p, path, sizeof(path));
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    fclose(fp);
    return p;
}

static const char *write_str(fixture *f, const char *name, const char *text)
{
    return write_file(f, name, text, strlen(text));
}

static void assert_encodes(const json_t *v, const char *want)
{
    char *got = ch_json_encode(v, NULL);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void assert_loads(const char *paths, size_t want_loaded, const char *want)
{
    json_t *facts = NULL;
    size_t loaded = 99;
    ch_error e;
    assert_int_equal(ch_facts_load(paths, &facts, &loaded, &e), CH_OK);
    assert_non_null(facts);
    assert_int_equal(loaded, want_loaded);
    assert_encodes(facts, want);
    json_decref(facts);
}

static void test_json_file_loads_with_sorted_keys(void **state)
{
    fixture *f = *state;
    const char *p = write_str(f, "facts.json",
                              "{\"z\":1,\"a\":{\"y\":[{\"d\":1,\"c\":2}],\"b\":1.5},\"m\":null}");
    assert_loads(p, 1, "{\"a\":{\"b\":1.5,\"y\":[{\"c\":2,\"d\":1}]},\"m\":null,\"z\":1}");
}

static void test_yaml_file_converts_scalars_like_go_yaml(void **state)
{
    fixture *f = *state;
    const char *p = write_str(f, "facts.yaml",
                              "---\n"
                              "string: hello world\n"
                              "quoted_number: \"42\"\n"
                              "single: 'true'\n"
                              "int: 42\n"
                              "negative: -7\n"
                              "float: 1.5\n"
                              "exp: 1.0e+3\n"
                              "no_dot_exp: 1e3\n"
                              "hex: 0x1F\n"
                              "octal: 0o17\n"
                              "leading_zero: 017\n"
                              "binary: 0b101\n"
                              "underscored: 1_000\n"
                              "yes_is_a_string: yes\n"
                              "t: True\n"
                              "f: FALSE\n"
                              "n1: ~\n"
                              "n2: null\n"
                              "empty:\n"
                              "tagged: !!str 12\n"
                              "block: |\n  line1\n  line2\n"
                              "list: [1, two, 3.0]\n"
                              "nested:\n  b: 2\n  a: 1\n"
                              "42: numeric key\n");
    assert_loads(p, 1,
                 "{\"42\":\"numeric key\",\"binary\":5,\"block\":\"line1\\nline2\\n\","
                 "\"empty\":null,\"exp\":1000,\"f\":false,\"float\":1.5,\"hex\":31,\"int\":42,"
                 "\"leading_zero\":15,\"list\":[1,\"two\",3],\"n1\":null,\"n2\":null,"
                 "\"negative\":-7,\"nested\":{\"a\":1,\"b\":2},\"no_dot_exp\":\"1e3\","
                 "\"octal\":15,\"quoted_number\":\"42\",\"single\":\"true\","
                 "\"string\":\"hello world\",\"t\":true,\"tagged\":\"12\",\"underscored\":1000,"
                 "\"yes_is_a_string\":\"yes\"}");
}

static void test_yaml_aliases_are_followed(void **state)
{
    fixture *f = *state;
    const char *p = write_str(f, "alias.yaml", "base: &b {x: 1}\ncopy: *b\n");
    assert_loads(p, 1, "{\"base\":{\"x\":1},\"copy\":{\"x\":1}}");
}

static void test_yaml_alias_bomb_is_bounded(void **state)
{
    fixture *f = *state;
    const char *p = write_str(f, "bomb.yaml",
                              "a: &a [1,1,1,1,1,1,1,1,1,1]\n"
                              "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                              "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                              "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                              "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                              "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                              "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n");
    assert_loads(p, 0, "{}");
    json_t *out = NULL;
    ch_error e;
    FILE *fp = fopen(p, "rb");
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    assert_int_equal(ch_facts_parse(buf, n, true, &out, &e), CH_ERR_TOO_LARGE);
    assert_null(out);
}

static void test_files_merge_shallowly_later_wins(void **state)
{
    fixture *f = *state;
    const char *a = write_str(f, "a.json", "{\"os\":{\"family\":\"debian\",\"x\":1},\"only_a\":1}");
    const char *b = write_str(f, "b.yaml", "os:\n  family: redhat\nonly_b: 2\n");
    char paths[512];
    snprintf(paths, sizeof(paths), "%s:%s", a, b);
    assert_loads(paths, 2, "{\"only_a\":1,\"only_b\":2,\"os\":{\"family\":\"redhat\"}}");
    snprintf(paths, sizeof(paths), "%s::%s:", b, a); /* empty entries are ignored */
    assert_loads(paths, 2, "{\"only_a\":1,\"only_b\":2,\"os\":{\"family\":\"debian\",\"x\":1}}");
}

static void test_missing_file_is_skipped(void **state)
{
    fixture *f = *state;
    const char *a = write_str(f, "a.json", "{\"a\":1}");
    char paths[512];
    snprintf(paths, sizeof(paths), "%s/nosuch.json:%s:%s/nosuch.yaml", f->dir, a, f->dir);
    assert_loads(paths, 1, "{\"a\":1}");
}

static void test_oversized_file_is_skipped(void **state)
{
    fixture *f = *state;
    size_t n = CH_FACTS_MAX_FILE_SIZE + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    memcpy(big, "{\"big\":1}", 9); /* valid JSON followed by white space */
    const char *p = write_file(f, "big.json", big, n);
    const char *ok = write_file(f, "fits.json", big, n - 1);
    free(big);
    char paths[512];
    snprintf(paths, sizeof(paths), "%s:%s", ok, p);
    assert_loads(p, 0, "{}");
    assert_loads(paths, 1, "{\"big\":1}");
}

static void test_unusable_files_are_skipped(void **state)
{
    fixture *f = *state;
    const char *bad[] = {
        write_str(f, "garbage.json", "{not json"),
        write_str(f, "array.json", "[1,2]"),
        write_str(f, "list.yaml", "- a\n- b\n"),
        write_str(f, "inf.yaml", "x: .inf\n"),
        write_str(f, "broken.yaml", "a: [1, 2\n"),
        write_str(f, "facts.yml", "a: 1\n"), /* not "yaml": read as JSON, as Go does */
        write_str(f, "hang.yaml", "%\x80"),  /* libfyaml 0.7.12 would loop forever */
        write_str(f, "nul.yaml", "a: 1\n\x01"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_loads(bad[i], 0, "{}");
}

static void test_no_paths_give_empty_facts(void **state)
{
    (void)state;
    assert_loads(NULL, 0, "{}");
    assert_loads("", 0, "{}");
    assert_loads(":::", 0, "{}");
}

static void test_null_and_empty_documents_are_empty_objects(void **state)
{
    fixture *f = *state;
    assert_loads(write_str(f, "null.json", "null"), 1, "{}");
    assert_loads(write_str(f, "empty.yaml", ""), 1, "{}");
}

static void test_parse_rejects_non_objects_with_go_message(void **state)
{
    (void)state;
    json_t *out = NULL;
    ch_error e;
    assert_int_equal(ch_facts_parse("\"x\"", 3, false, &out, &e), CH_ERR_INVALID);
    assert_null(out);
    assert_string_equal(e.msg, "json: cannot unmarshal string into Go value of type "
                               "map[string]interface {}");
}

static void test_sorted_copy_sorts_every_level(void **state)
{
    (void)state;
    json_error_t je;
    json_t *v = json_loads("[{\"b\":{\"d\":1,\"c\":2},\"a\":[]},3]", 0, &je);
    json_t *c = ch_json_sorted_copy(v);
    assert_encodes(c, "[{\"a\":[],\"b\":{\"c\":2,\"d\":1}},3]");
    json_decref(c);
    json_decref(v);
    assert_null(ch_json_sorted_copy(NULL));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_json_file_loads_with_sorted_keys),
        T(test_yaml_file_converts_scalars_like_go_yaml),
        T(test_yaml_aliases_are_followed),
        T(test_yaml_alias_bomb_is_bounded),
        T(test_files_merge_shallowly_later_wins),
        T(test_missing_file_is_skipped),
        T(test_oversized_file_is_skipped),
        T(test_unusable_files_are_skipped),
        T(test_no_paths_give_empty_facts),
        T(test_null_and_empty_documents_are_empty_objects),
        T(test_parse_rejects_non_objects_with_go_message),
        T(test_sorted_copy_sorts_every_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
