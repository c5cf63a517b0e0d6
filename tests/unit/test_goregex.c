/* Go regular expressions on POSIX ERE: what both read alike compiles and matches unanchored;
 * RE2-only syntax, back-references, nested repetition, counts past RE2's limit and patterns
 * that would expand past the bound are refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "choria/goregex.h"

static bool matches(const char *pattern, const char *subject)
{
    regex_t re;
    ch_error err;
    if (ch_goregex_compile(pattern, strlen(pattern), &re, &err) != CH_OK)
        fail_msg("/%s/ refused: %s", pattern, err.msg);
    bool m = ch_goregex_match(&re, subject);
    regfree(&re);
    return m;
}

static void refused(const char *pattern, const char *why)
{
    regex_t re;
    ch_error err;
    assert_int_equal(ch_goregex_compile(pattern, strlen(pattern), &re, &err), CH_ERR_INVALID);
    if (strstr(err.msg, why) == NULL)
        fail_msg("/%s/: '%s' does not say '%s'", pattern, err.msg, why);
}

static void patterns_both_syntaxes_read_alike_match_unanchored(void **state)
{
    assert_true(matches("\\.choria$", "n1.example.choria"));
    assert_false(matches("\\.choria$", "n1.choria.example"));
    assert_true(matches("^d.+?n$", "debian")); /* lazy, as Go allows */
    assert_true(matches("a{2,3}", "xaaay"));
    assert_true(matches("[[:digit:]]+", "abc7"));
    assert_true(matches("(web|db)[0-9]", "db1.example"));
    assert_true(matches("a)", "a)"));
}

static void re2_only_syntax_and_back_references_are_refused(void **state)
{
    refused("\\d+", "RE2 escapes");
    refused("[\\w]", "RE2 escapes");
    refused("\\bword", "RE2 escapes");
    refused("(?i)abc", "(?...)");
    refused("(a)\\1", "back-references");
    /* an escaped backslash is not the start of an escape */
    assert_true(matches("a\\\\d", "a\\d"));
}

static void nested_repetition_and_big_counts_are_refused(void **state)
{
    refused("w++", "nested repetition");
    refused("a**", "nested repetition");
    refused("a{1001}", "repeat count exceeds 1000");
    refused("(a{100}){11}", "repeat count exceeds 1000");
    refused("((((a{10}){10}){10}){10})", "repeat count exceeds 1000");
    assert_true(matches("(a{10}){10}",
                        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

static void patterns_that_expand_too_far_or_nest_too_deep_are_refused(void **state)
{
    refused("(abcdefghijk){1000}", "expands too much");
    char deep[512] = "";
    for (int i = 0; i < CH_GOREGEX_MAX_NESTING + 1; i++)
        strcat(deep, "(");
    refused(deep, "nested too deeply");
    char big[CH_GOREGEX_MAX_PATTERN + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    regex_t re;
    ch_error err;
    assert_int_equal(ch_goregex_compile(big, strlen(big), &re, &err), CH_ERR_TOO_LARGE);
    refused("[", "invalid regular expression");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(patterns_both_syntaxes_read_alike_match_unanchored),
        cmocka_unit_test(re2_only_syntax_and_back_references_are_refused),
        cmocka_unit_test(nested_repetition_and_big_counts_are_refused),
        cmocka_unit_test(patterns_that_expand_too_far_or_nest_too_deep_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
