/* Go regular expressions (RE2 syntax, as go-choria's filters and the provisioner's
 * cert_deny_list are written) compiled as POSIX extended expressions, refusing what the two
 * read differently and what would make glibc's compiler blow up.
 *
 * Refused, with a message naming the pattern and the reason:
 * - RE2-only syntax POSIX ERE would silently read as something else: \d \D \w \W \s \S \b \B
 *   \A \z and groups or flags starting "(?";
 * - back-references (RE2 has none);
 * - a repetition operator applied to another (a** a+*; RE2 refuses them), and repeat counts
 *   over 1000, nested counts multiplying past 1000 (RE2's limit);
 * - patterns whose repetitions expand past CH_GOREGEX_MAX_EXPANDED atoms or nest past
 *   CH_GOREGEX_MAX_NESTING groups: glibc copies the repeated tree, so `w+++...` took gigabytes
 *   (found by the fuzzer).
 * Go's lazy operators (a*? a+? a?? a{n}?) are accepted and match as the greedy ones: with
 * REG_NOSUB only whether a match exists is asked, which laziness does not change.
 *
 * Pure functions; the compiled regex_t is the caller's (regfree it). */
#ifndef CHORIA_GOREGEX_H
#define CHORIA_GOREGEX_H

#include <regex.h>
#include <stddef.h>

#include "choria/common.h"

#define CH_GOREGEX_MAX_PATTERN 1024   /* bytes of one pattern */
#define CH_GOREGEX_MAX_REPEAT 1000    /* RE2's limit on (nested) repeat counts */
#define CH_GOREGEX_MAX_NESTING 100    /* groups */
#define CH_GOREGEX_MAX_EXPANDED 10000 /* atoms after expanding every repetition */

/* Compiles pattern[0..len) with REG_EXTENDED | REG_NOSUB (unanchored, as Go's MatchString).
 * CH_ERR_INVALID "invalid regular expression /<pattern>/: <why>", CH_ERR_TOO_LARGE past
 * CH_GOREGEX_MAX_PATTERN. */
ch_status ch_goregex_compile(const char *pattern, size_t len, regex_t *re, ch_error *err);

/* Whether subject matches a pattern compiled by ch_goregex_compile. */
bool ch_goregex_match(const regex_t *re, const char *subject);

#endif
