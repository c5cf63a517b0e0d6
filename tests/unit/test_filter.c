/* Request filters: go-choria's matching semantics for identities, agents, classes and facts,
 * the JSON form, and refusal of compound filters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "choria/filter.h"
#include "choria/json.h"

static const char FACTS[] =
    "{\"os\":{\"family\":\"debian\",\"release\":{\"major\":\"12\"}},"
    "\"name\":\"n1\",\"count\":42,\"negative\":-7,\"load\":3.7,\"ratio\":0.5,"
    "\"virtual\":true,\"physical\":false,\"nothing\":null,\"empty\":\"\","
    "\"list\":[\"a\",{\"name\":\"eth1\"}],\"dotted.key\":\"yes\",\"big\":9007199254740993}";

static json_t *facts(void)
{
    ch_error err;
    json_t *f = ch_json_parse(FACTS, strlen(FACTS), 1 << 20, 64, &err);
    assert_non_null(f);
    return f;
}

/* Evaluates one fact filter against FACTS. */
static ch_status fact(const char *name, ch_fact_op op, const char *value)
{
    json_t *f = facts();
    ch_fact_filter ff = {name, op, value};
    ch_error err = {CH_OK, ""};
    ch_status s = ch_filter_match_fact(&ff, f, &err);
    json_decref(f);
    return s;
}

#define MATCH(name, op, value) assert_int_equal(fact(name, op, value), CH_OK)
#define NOMATCH(name, op, value) assert_int_equal(fact(name, op, value), CH_ERR_NO_MATCH)
#define BROKEN(name, op, value) assert_int_equal(fact(name, op, value), CH_ERR_INVALID)

static void operators_parse_and_print(void **state)
{
    (void)state;
    static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">=", "=~"};
    for (size_t i = 0; i < 7; i++) {
        ch_fact_op op;
        assert_int_equal(ch_fact_op_parse(ops[i], &op), CH_OK);
        assert_int_equal(op, (ch_fact_op)i);
        assert_string_equal(ch_fact_op_text(op), ops[i]);
    }
    ch_fact_op op;
    assert_int_equal(ch_fact_op_parse("=", &op), CH_ERR_INVALID);
    assert_int_equal(ch_fact_op_parse("~=", &op), CH_ERR_INVALID);
    assert_int_equal(ch_fact_op_parse(NULL, &op), CH_ERR_INVALID);
}

static void string_facts_compare_exactly_and_lexically(void **state)
{
    (void)state;
    MATCH("os.family", CH_FACT_OP_EQ, "debian");
    NOMATCH("os.family", CH_FACT_OP_EQ, "Debian");
    MATCH("os.family", CH_FACT_OP_NE, "redhat");
    NOMATCH("os.family", CH_FACT_OP_NE, "debian");
    /* "12" is a string fact: compared as text, so "12" < "9" */
    MATCH("os.release.major", CH_FACT_OP_LT, "9");
    NOMATCH("os.release.major", CH_FACT_OP_GT, "9");
    MATCH("os.release.major", CH_FACT_OP_LE, "12");
    MATCH("os.release.major", CH_FACT_OP_GE, "12");
    NOMATCH("os.release.major", CH_FACT_OP_GT, "12");
    MATCH("os.family", CH_FACT_OP_GT, "deb"); /* a longer string with the same prefix */
    MATCH("empty", CH_FACT_OP_LT, "a");
}

static void string_facts_match_regex_with_slashes_trimmed(void **state)
{
    (void)state;
    MATCH("os.family", CH_FACT_OP_RE, "/^deb/");
    MATCH("os.family", CH_FACT_OP_RE, "deb");
    MATCH("os.family", CH_FACT_OP_RE, "//ian$//");
    NOMATCH("os.family", CH_FACT_OP_RE, "/^ian/");
    MATCH("os.family", CH_FACT_OP_RE, "/DEB|deb/");
    BROKEN("os.family", CH_FACT_OP_RE, "/deb(/");
    /* Go's RE2 has no back-references; neither do we (they would be exponential) */
    BROKEN("os.family", CH_FACT_OP_RE, "(d)\\1");
    /* repeat counts past RE2's limit of 1000 */
    BROKEN("os.family", CH_FACT_OP_RE, "a{1001}");
    BROKEN("os.family", CH_FACT_OP_RE, "(a{100}){11}");
    BROKEN("os.family", CH_FACT_OP_RE, "((a{10}){10}){11}");
    NOMATCH("os.family", CH_FACT_OP_RE, "(a{10}){10}");
    NOMATCH("os.family", CH_FACT_OP_RE, "x{1000}");
    /* glibc copies the tree for every repetition: these would take gigabytes */
    BROKEN("os.family", CH_FACT_OP_RE, "w++");
    BROKEN("os.family", CH_FACT_OP_RE, "w*+");
    BROKEN("os.family", CH_FACT_OP_RE, "(((((((((((((((w+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)");
    BROKEN("os.family", CH_FACT_OP_RE, "(abcdefghijk){1000}");
    MATCH("os.family", CH_FACT_OP_RE, "^d.+?n$"); /* a lazy quantifier is not nested */
    MATCH("os.family", CH_FACT_OP_RE, "[[:alpha:]]{6}");
}

static void integer_facts_compare_as_integers(void **state)
{
    (void)state;
    MATCH("count", CH_FACT_OP_EQ, "42");
    NOMATCH("count", CH_FACT_OP_EQ, "042"); /* Itoa text compare */
    NOMATCH("count", CH_FACT_OP_EQ, "41");
    MATCH("count", CH_FACT_OP_NE, "41");
    NOMATCH("count", CH_FACT_OP_NE, "42");
    MATCH("count", CH_FACT_OP_GT, "9"); /* numeric, not lexical */
    NOMATCH("count", CH_FACT_OP_GT, "42");
    MATCH("count", CH_FACT_OP_GE, "42");
    MATCH("count", CH_FACT_OP_LT, "100");
    NOMATCH("count", CH_FACT_OP_LT, "42");
    MATCH("count", CH_FACT_OP_LE, "+42");
    MATCH("negative", CH_FACT_OP_LT, "-6");
    MATCH("big", CH_FACT_OP_EQ, "9007199254740993"); /* exact beyond 2^53 */
    BROKEN("count", CH_FACT_OP_LT, "abc");
    BROKEN("count", CH_FACT_OP_LT, "99999999999999999999");
    BROKEN("count", CH_FACT_OP_GE, " 1");
    MATCH("count", CH_FACT_OP_RE, "^4");
    MATCH("count", CH_FACT_OP_RE, "/^42$/");
    NOMATCH("count", CH_FACT_OP_RE, "^42\\.5"); /* the dot makes it "42.0000" */
    MATCH("count", CH_FACT_OP_RE, "^42\\.0");
}

static void values_with_a_dot_compare_as_floats(void **state)
{
    (void)state;
    MATCH("count", CH_FACT_OP_EQ, "42.0");
    MATCH("load", CH_FACT_OP_EQ, "3.7");
    NOMATCH("load", CH_FACT_OP_EQ, "3.70001");
    MATCH("load", CH_FACT_OP_NE, "3.8");
    MATCH("load", CH_FACT_OP_LT, "3.8");
    MATCH("load", CH_FACT_OP_LE, "3.7");
    MATCH("load", CH_FACT_OP_GE, "3.7");
    MATCH("load", CH_FACT_OP_GT, "3.6");
    /* strict '>' (upstream's float '>' is '>=') */
    NOMATCH("load", CH_FACT_OP_GT, "3.7");
    MATCH("ratio", CH_FACT_OP_LT, "1.0");
    BROKEN("load", CH_FACT_OP_LT, "3.x");
    BROKEN("load", CH_FACT_OP_EQ, "1.2.3");
    /* without a dot the float fact is truncated to its integer part, as gjson's Int() does */
    MATCH("load", CH_FACT_OP_EQ, "3");
    MATCH("load", CH_FACT_OP_GT, "2");
    NOMATCH("load", CH_FACT_OP_GT, "3");
    /* =~ formats the fact as %.4f when the pattern has a dot */
    MATCH("load", CH_FACT_OP_RE, "^3.7000$");
    MATCH("count", CH_FACT_OP_RE, "/^42\\.0000$/");
    MATCH("load", CH_FACT_OP_RE, "^3$"); /* integer text otherwise */
}

static void boolean_facts_compare_with_parsebool_truth(void **state)
{
    (void)state;
    MATCH("virtual", CH_FACT_OP_EQ, "true");
    MATCH("virtual", CH_FACT_OP_EQ, "1");
    MATCH("virtual", CH_FACT_OP_EQ, "t");
    MATCH("virtual", CH_FACT_OP_EQ, "TRUE");
    NOMATCH("virtual", CH_FACT_OP_EQ, "false");
    NOMATCH("virtual", CH_FACT_OP_EQ, "yes");  /* not a ParseBool word */
    NOMATCH("virtual", CH_FACT_OP_EQ, "tRuE"); /* == does not lower-case */
    MATCH("virtual", CH_FACT_OP_RE, "tRuE");   /* =~ does */
    MATCH("physical", CH_FACT_OP_EQ, "false");
    MATCH("physical", CH_FACT_OP_EQ, "0");
    MATCH("physical", CH_FACT_OP_EQ, "banana"); /* upstream: anything not true is false */
    NOMATCH("physical", CH_FACT_OP_EQ, "true");
    MATCH("virtual", CH_FACT_OP_NE, "false");
    NOMATCH("virtual", CH_FACT_OP_NE, "true");
    MATCH("physical", CH_FACT_OP_NE, "true");
    NOMATCH("physical", CH_FACT_OP_NE, "false"); /* upstream gets this one wrong */
    BROKEN("virtual", CH_FACT_OP_LT, "true");
    BROKEN("physical", CH_FACT_OP_GE, "false");
}

static void null_and_structured_facts_never_match(void **state)
{
    (void)state;
    NOMATCH("nothing", CH_FACT_OP_EQ, "null");
    NOMATCH("nothing", CH_FACT_OP_NE, "x");
    NOMATCH("os", CH_FACT_OP_EQ, "{}");
    NOMATCH("list", CH_FACT_OP_RE, ".");
    BROKEN("nothing", CH_FACT_OP_LT, "1");
    BROKEN("os", CH_FACT_OP_GT, "a");
}

static void missing_facts_never_match(void **state)
{
    (void)state;
    NOMATCH("nosuch", CH_FACT_OP_NE, "x");
    NOMATCH("os.nosuch", CH_FACT_OP_EQ, "x");
    NOMATCH("name.deeper", CH_FACT_OP_EQ, "n1");
    NOMATCH("list.5", CH_FACT_OP_EQ, "a");
    NOMATCH("os.", CH_FACT_OP_EQ, "debian");
    NOMATCH(".os", CH_FACT_OP_EQ, "debian");
    ch_fact_filter ff = {"name", CH_FACT_OP_EQ, "n1"};
    ch_error err;
    assert_int_equal(ch_filter_match_fact(&ff, NULL, &err), CH_ERR_NO_MATCH);
    assert_non_null(strstr(err.msg, "fact name does not exist"));
}

static void dotted_paths_follow_gjson(void **state)
{
    (void)state;
    MATCH("os.release.major", CH_FACT_OP_EQ, "12");
    MATCH("list.0", CH_FACT_OP_EQ, "a");
    MATCH("list.1.name", CH_FACT_OP_EQ, "eth1");
    MATCH("dotted\\.key", CH_FACT_OP_EQ, "yes");
    NOMATCH("dotted.key", CH_FACT_OP_EQ, "yes");
    MATCH("o?.family", CH_FACT_OP_EQ, "debian");
    MATCH("os.fam*", CH_FACT_OP_EQ, "debian");
    MATCH("*.release.major", CH_FACT_OP_EQ, "12");
    /* the wildcard backtracks: "list" is the first key with a ".1.name" below it */
    MATCH("l*.1.name", CH_FACT_OP_EQ, "eth1");
    MATCH("*.1.name", CH_FACT_OP_EQ, "eth1");
    NOMATCH("*.major", CH_FACT_OP_EQ, "12");
    NOMATCH("o\\?.family", CH_FACT_OP_EQ, "debian"); /* an escaped wildcard is literal */

    json_t *f = facts();
    assert_ptr_equal(ch_filter_fact_lookup(f, "os"), json_object_get(f, "os"));
    assert_null(ch_filter_fact_lookup(f, ""));
    assert_null(ch_filter_fact_lookup(f, NULL));
    assert_null(ch_filter_fact_lookup(NULL, "os"));
    json_decref(f);
}

static void identity_filter_is_an_or_of_exact_and_regex(void **state)
{
    (void)state;
    const char *ids[] = {"n2.example.net", "/^n1\\./"};
    ch_filter f = {.identities = ids, .n_identities = 2};
    ch_error err;
    assert_int_equal(ch_filter_match(&f, "n1.example.net", NULL, 0, NULL, 0, NULL, &err), CH_OK);
    assert_int_equal(ch_filter_match(&f, "n2.example.net", NULL, 0, NULL, 0, NULL, &err), CH_OK);
    assert_int_equal(ch_filter_match(&f, "n3.example.net", NULL, 0, NULL, 0, NULL, &err),
                     CH_ERR_NO_MATCH);
    assert_non_null(strstr(err.msg, "identity n3.example.net does not match"));
    /* exact entries do not match as substrings */
    assert_int_equal(ch_filter_match(&f, "xn2.example.net", NULL, 0, NULL, 0, NULL, &err),
                     CH_ERR_NO_MATCH);

    /* a broken regex is an error unless another entry matches */
    const char *bad[] = {"/n1(/", "n1"};
    ch_filter g = {.identities = bad, .n_identities = 2};
    assert_int_equal(ch_filter_match(&g, "n1", NULL, 0, NULL, 0, NULL, &err), CH_OK);
    assert_int_equal(ch_filter_match(&g, "n9", NULL, 0, NULL, 0, NULL, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "invalid regular expression"));
}

static void agent_filter_requires_every_entry(void **state)
{
    (void)state;
    const char *known[] = {"rpcutil", "choria_provision", "discovery"};
    const char *need_two[] = {"choria_provision", "rpcutil"};
    const char *need_missing[] = {"choria_provision", "puppet"};
    const char *need_regex[] = {"/^choria_/", "/util$/"};
    const char *bad_regex[] = {"/[/"};
    ch_filter f = {.agents = need_two, .n_agents = 2};
    ch_error err;
    assert_int_equal(ch_filter_match(&f, "n1", known, 3, NULL, 0, NULL, &err), CH_OK);
    f.agents = need_missing;
    assert_int_equal(ch_filter_match(&f, "n1", known, 3, NULL, 0, NULL, &err), CH_ERR_NO_MATCH);
    assert_non_null(strstr(err.msg, "agent filter puppet does not match"));
    f.agents = need_regex;
    assert_int_equal(ch_filter_match(&f, "n1", known, 3, NULL, 0, NULL, &err), CH_OK);
    assert_int_equal(ch_filter_match(&f, "n1", known, 1, NULL, 0, NULL, &err), CH_ERR_NO_MATCH);
    assert_int_equal(ch_filter_match(&f, "n1", NULL, 0, NULL, 0, NULL, &err), CH_ERR_NO_MATCH);
    f.agents = bad_regex;
    f.n_agents = 1;
    assert_int_equal(ch_filter_match(&f, "n1", known, 3, NULL, 0, NULL, &err), CH_ERR_INVALID);
}

static void class_filter_requires_every_entry(void **state)
{
    (void)state;
    const char *classes[] = {"base", "role::web", "profile::nginx"};
    const char *need[] = {"base", "/^role::/"};
    const char *need_db[] = {"base", "role::db"};
    ch_filter f = {.classes = need, .n_classes = 2};
    ch_error err;
    assert_int_equal(ch_filter_match(&f, "n1", NULL, 0, classes, 3, NULL, &err), CH_OK);
    f.classes = need_db;
    assert_int_equal(ch_filter_match(&f, "n1", NULL, 0, classes, 3, NULL, &err), CH_ERR_NO_MATCH);
    assert_non_null(strstr(err.msg, "class filter role::db"));
}

static void every_section_must_match(void **state)
{
    (void)state;
    json_t *f = facts();
    const char *agents[] = {"choria_provision"};
    const char *ids[] = {"n1"};
    ch_fact_filter two[] = {{"os.family", CH_FACT_OP_EQ, "debian"}, {"count", CH_FACT_OP_GT, "40"}};
    ch_fact_filter one_fails[] = {{"os.family", CH_FACT_OP_EQ, "debian"},
                                  {"count", CH_FACT_OP_GT, "50"}};
    ch_filter flt = {.facts = two,
                     .n_facts = 2,
                     .agents = agents,
                     .n_agents = 1,
                     .identities = ids,
                     .n_identities = 1};
    ch_error err;
    assert_int_equal(ch_filter_match(&flt, "n1", agents, 1, NULL, 0, f, &err), CH_OK);
    assert_int_equal(ch_filter_match(&flt, "n2", agents, 1, NULL, 0, f, &err), CH_ERR_NO_MATCH);
    assert_int_equal(ch_filter_match(&flt, "n1", NULL, 0, NULL, 0, f, &err), CH_ERR_NO_MATCH);
    flt.facts = one_fails;
    assert_int_equal(ch_filter_match(&flt, "n1", agents, 1, NULL, 0, f, &err), CH_ERR_NO_MATCH);
    assert_non_null(strstr(err.msg, "fact count > 50 does not match"));
    json_decref(f);
}

static void empty_filter_matches_everything(void **state)
{
    (void)state;
    ch_filter f = {0};
    ch_error err;
    assert_true(ch_filter_is_empty(&f));
    assert_true(ch_filter_is_empty(NULL));
    assert_int_equal(ch_filter_match(&f, "anything", NULL, 0, NULL, 0, NULL, &err), CH_OK);
    assert_int_equal(ch_filter_match(NULL, NULL, NULL, 0, NULL, 0, NULL, &err), CH_OK);
}

static void compound_filters_are_refused(void **state)
{
    (void)state;
    const char *doc = "{\"fact\":[],\"cf_class\":[],\"identity\":[\"n1\"],\"compound\":"
                      "[[{\"expr\":\"with('x')\"}]]}";
    ch_error err;
    json_t *j = ch_json_parse(doc, strlen(doc), 1 << 20, 64, &err);
    ch_filter f;
    assert_int_equal(ch_filter_parse(j, &f, &err), CH_OK);
    assert_false(ch_filter_is_empty(&f));
    /* refused even when the other sections match */
    assert_int_equal(ch_filter_match(&f, "n1", NULL, 0, NULL, 0, NULL, &err), CH_ERR_UNSUPPORTED);
    assert_string_equal(err.msg, "compound filters are not supported");
    ch_filter_clear(&f);
    json_decref(j);
}

static void filter_json_parses_and_encodes(void **state)
{
    (void)state;
    const char *doc = "{\"fact\":[{\"fact\":\"a.b\",\"operator\":\"=~\",\"value\":\"/x/\"}],"
                      "\"cf_class\":[\"c\"],\"agent\":[\"rpcutil\"],\"identity\":[\"n<1>\"],"
                      "\"compound\":[]}";
    ch_error err;
    json_t *j = ch_json_parse(doc, strlen(doc), 1 << 20, 64, &err);
    ch_filter f;
    assert_int_equal(ch_filter_parse(j, &f, &err), CH_OK);
    assert_int_equal(f.n_facts, 1);
    assert_int_equal(f.facts[0].op, CH_FACT_OP_RE);
    assert_string_equal(f.classes[0], "c");
    assert_string_equal(f.agents[0], "rpcutil");
    assert_string_equal(f.identities[0], "n<1>");
    ch_buf b;
    ch_buf_init(&b);
    ch_filter_encode(&f, &b);
    char *out = ch_buf_steal(&b, NULL);
    assert_string_equal(out, "{\"fact\":[{\"fact\":\"a.b\",\"operator\":\"=~\",\"value\":\"/x/\"}],"
                             "\"cf_class\":[\"c\"],\"agent\":[\"rpcutil\"],\"identity\":"
                             "[\"n\\u003c1\\u003e\"],\"compound\":[]}");
    free(out);
    ch_filter_clear(&f);
    ch_filter_clear(&f);
    json_decref(j);

    ch_buf_init(&b);
    ch_filter_encode(NULL, &b);
    out = ch_buf_steal(&b, NULL);
    assert_string_equal(out, "{\"fact\":[],\"cf_class\":[],\"agent\":[],\"identity\":[],"
                             "\"compound\":[]}");
    free(out);
}

static void filter_json_bounds_are_enforced(void **state)
{
    (void)state;
    ch_error err;
    ch_filter f;
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"fact\":[],\"identity\":[],\"compound\":[],\"cf_class\":[");
    for (int i = 0; i <= CH_FILTER_MAX_ENTRIES; i++)
        ch_buf_append_str(&b, i ? ",\"c\"" : "\"c\"");
    ch_buf_append_str(&b, "]}");
    size_t len;
    char *doc = ch_buf_steal(&b, &len);
    json_t *j = ch_json_parse(doc, len, 1 << 20, 64, &err);
    assert_int_equal(ch_filter_parse(j, &f, &err), CH_ERR_TOO_LARGE);
    assert_null(f.classes);
    json_decref(j);
    free(doc);

    char *long_value = malloc(CH_FILTER_MAX_STRING + 2);
    memset(long_value, 'v', CH_FILTER_MAX_STRING + 1);
    long_value[CH_FILTER_MAX_STRING + 1] = '\0';
    j = json_pack("{s:[{s:s,s:s,s:s}],s:[],s:[],s:[]}", "fact", "fact", "a", "operator",
                  "==", "value", long_value, "cf_class", "identity", "compound");
    assert_int_equal(ch_filter_parse(j, &f, &err), CH_ERR_TOO_LARGE);
    json_decref(j);
    ch_fact_filter ff = {"a", CH_FACT_OP_RE, long_value};
    ch_filter g = {.facts = &ff, .n_facts = 1};
    assert_int_equal(ch_filter_validate(&g, &err), CH_ERR_TOO_LARGE);
    json_t *facts_doc = json_pack("{s:s}", "a", "vvv");
    assert_int_equal(ch_filter_match_fact(&ff, facts_doc, &err), CH_ERR_TOO_LARGE);
    json_decref(facts_doc);
    free(long_value);

    j = json_pack("[]");
    assert_int_equal(ch_filter_parse(j, &f, &err), CH_ERR_INVALID);
    json_decref(j);
}

static void caller_built_filters_are_validated(void **state)
{
    (void)state;
    ch_error err;
    const char *ids[] = {"n1", NULL};
    ch_filter f = {.identities = ids, .n_identities = 2};
    assert_int_equal(ch_filter_validate(&f, &err), CH_ERR_INVALID);
    ch_fact_filter bad_op = {"a", (ch_fact_op)42, "b"};
    ch_filter g = {.facts = &bad_op, .n_facts = 1};
    assert_int_equal(ch_filter_validate(&g, &err), CH_ERR_INVALID);
    ch_filter h = {.n_compound = 1};
    assert_int_equal(ch_filter_validate(&h, &err), CH_ERR_INVALID);
    assert_int_equal(ch_filter_validate(NULL, &err), CH_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(operators_parse_and_print),
        cmocka_unit_test(string_facts_compare_exactly_and_lexically),
        cmocka_unit_test(string_facts_match_regex_with_slashes_trimmed),
        cmocka_unit_test(integer_facts_compare_as_integers),
        cmocka_unit_test(values_with_a_dot_compare_as_floats),
        cmocka_unit_test(boolean_facts_compare_with_parsebool_truth),
        cmocka_unit_test(null_and_structured_facts_never_match),
        cmocka_unit_test(missing_facts_never_match),
        cmocka_unit_test(dotted_paths_follow_gjson),
        cmocka_unit_test(identity_filter_is_an_or_of_exact_and_regex),
        cmocka_unit_test(agent_filter_requires_every_entry),
        cmocka_unit_test(class_filter_requires_every_entry),
        cmocka_unit_test(every_section_must_match),
        cmocka_unit_test(empty_filter_matches_everything),
        cmocka_unit_test(compound_filters_are_refused),
        cmocka_unit_test(filter_json_parses_and_encodes),
        cmocka_unit_test(filter_json_bounds_are_enforced),
        cmocka_unit_test(caller_built_filters_are_validated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
