/* Go regular expressions on POSIX ERE: the rules RE2 and glibc disagree on, and a bound on
 * what glibc's compiler expands (see goregex.h). */
#include "choria/goregex.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* What the scan knows at one point of the pattern. size[d] is the expanded size of the group
 * open at depth d so far, rep[d] the largest product of {n} counts inside it. */
typedef struct {
    long size[CH_GOREGEX_MAX_NESTING + 1], rep[CH_GOREGEX_MAX_NESTING + 1];
    int depth;
    long last;     /* expanded size of the preceding atom; 0: nothing to repeat */
    long last_rep; /* product of the {n} counts applied to the preceding atom */
    int quant;     /* 1: just saw a repetition operator, 2: and a lazy '?' after it */
} scan;

/* RE2 syntax POSIX ERE reads as something else; NULL when p holds none. Escapes are read in
 * pairs, as RE2 reads them, inside brackets too. */
static const char *re2_only(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == '(' && p[i + 1] == '?')
            return "RE2 groups and flags (?...) are not supported";
        if (p[i] != '\\')
            continue;
        if (strchr("dDwWsSbBAz", p[i + 1]) != NULL && p[i + 1] != '\0')
            return "RE2 escapes such as \\d, \\w and \\s are not supported";
        if (p[i + 1] >= '1' && p[i + 1] <= '9')
            return "back-references are not supported";
        i++;
    }
    return NULL;
}

/* The length of a {m}, {m,} or {m,x} bound at p (0 when it is a literal '{'); the larger count
 * in *count, capped past the limit so it cannot overflow. */
static size_t parse_bound(const char *p, size_t n, long *count)
{
    size_t i = 1;
    long m = 0, x = -1;
    if (i >= n || !isdigit((unsigned char)p[i]))
        return 0;
    for (; i < n && isdigit((unsigned char)p[i]); i++)
        m = m <= 100000 ? m * 10 + (p[i] - '0') : m;
    if (i < n && p[i] == ',') {
        for (i++; i < n && isdigit((unsigned char)p[i]); i++)
            x = x < 0 ? p[i] - '0' : x <= 100000 ? x * 10 + (p[i] - '0') : x;
    }
    if (i >= n || p[i] != '}')
        return 0;
    *count = x > m ? x : m;
    return i + 1;
}

/* The index of the ']' closing the bracket expression that starts at p[i] == '['. */
static size_t bracket_end(const char *p, size_t n, size_t i)
{
    size_t j = i + 1;
    if (j < n && p[j] == '^')
        j++;
    if (j < n && p[j] == ']')
        j++;
    for (; j < n && p[j] != ']'; j++) {
        if (p[j] == '[' && j + 1 < n && (p[j + 1] == ':' || p[j + 1] == '.' || p[j + 1] == '=')) {
            char close = p[j + 1];
            for (j += 2; j + 1 < n && !(p[j] == close && p[j + 1] == ']'); j++) {
            }
            j++;
        }
    }
    return j;
}

/* An atom of expanded size 1 (a character, escape or bracket expression). */
static void atom(scan *s)
{
    s->quant = 0;
    s->last = 1;
    s->last_rep = 1;
    s->size[s->depth] += 1;
}

/* A repetition operator c at p[i] (bound text for '{'); *used is how many bytes it takes
 * (0: a literal '{'). NULL, or why the pattern is refused. */
static const char *repetition(scan *s, const char *p, size_t n, size_t i, size_t *used)
{
    long count = 0;
    char c = p[i];
    *used = c == '{' ? parse_bound(p + i, n - i, &count) : 1;
    if (*used == 0) {
        atom(s);
        return NULL;
    }
    if (c == '?' && s->quant == 1) { /* Go's lazy a*? a+? a?? a{n}? */
        s->quant = 2;
        return NULL;
    }
    if (s->quant != 0)
        return "nested repetition operator";
    long factor = c == '+' ? 2 : c == '{' ? (count > 0 ? count : 1) : 1;
    if (count > CH_GOREGEX_MAX_REPEAT || (c == '{' && s->last_rep * factor > CH_GOREGEX_MAX_REPEAT))
        return "repeat count exceeds 1000"; /* RE2: nested counts multiply to at most 1000 */
    if (c == '{') {
        s->last_rep *= factor;
        if (s->last_rep > s->rep[s->depth])
            s->rep[s->depth] = s->last_rep;
    }
    if (s->last > 0 && s->last > CH_GOREGEX_MAX_EXPANDED / factor)
        return "pattern expands too much";
    s->size[s->depth] += s->last * (factor - 1);
    s->last *= factor;
    s->quant = 1;
    return NULL;
}

/* A group opens or closes, or an alternative starts. */
static const char *structure(scan *s, char c)
{
    s->quant = 0;
    if (c == '(') {
        if (s->depth >= CH_GOREGEX_MAX_NESTING)
            return "nested too deeply";
        s->size[++s->depth] = 0;
        s->rep[s->depth] = 1;
        s->last = 0;
    } else if (c == ')') {
        s->last = s->size[s->depth];
        s->last_rep = s->rep[s->depth--];
        s->size[s->depth] += s->last;
        if (s->last_rep > s->rep[s->depth])
            s->rep[s->depth] = s->last_rep;
    } else {
        s->last = 0;
        s->last_rep = 1;
    }
    return NULL;
}

/* Why pattern p[0..n) is refused; NULL when it may be compiled. */
static const char *refusal(const char *p, size_t n)
{
    scan s = {.rep[0] = 1, .last_rep = 1};
    const char *why = re2_only(p, n);
    for (size_t i = 0; i < n && why == NULL; i++) {
        char c = p[i];
        size_t used = 1;
        if (c == '*' || c == '+' || c == '?' || c == '{') {
            why = repetition(&s, p, n, i, &used);
            i += used > 0 ? used - 1 : 0;
        } else if (c == '(' || (c == ')' && s.depth > 0) || c == '|') {
            why = structure(&s, c);
        } else {
            i = c == '\\' ? i + 1 : c == '[' ? bracket_end(p, n, i) : i;
            atom(&s);
        }
        if (why == NULL && s.size[s.depth] > CH_GOREGEX_MAX_EXPANDED)
            why = "pattern expands too much";
    }
    return why;
}

ch_status ch_goregex_compile(const char *pattern, size_t len, regex_t *re, ch_error *err)
{
    char buf[CH_GOREGEX_MAX_PATTERN + 1];
    if (len > CH_GOREGEX_MAX_PATTERN)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "regular expression longer than %d bytes",
                            CH_GOREGEX_MAX_PATTERN);
    const char *why = refusal(pattern, len);
    if (why != NULL)
        return ch_error_set(err, CH_ERR_INVALID, "invalid regular expression /%.*s/: %s",
                            (int)(len > 200 ? 200 : len), pattern, why);
    memcpy(buf, pattern, len);
    buf[len] = '\0';
    if (memchr(pattern, '\0', len) != NULL)
        return ch_error_set(err, CH_ERR_INVALID, "invalid regular expression: NUL byte");
    int rc = regcomp(re, buf, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof(msg));
        return ch_error_set(err, CH_ERR_INVALID, "invalid regular expression /%.200s/: %s", buf,
                            msg);
    }
    return CH_OK;
}

bool ch_goregex_match(const regex_t *re, const char *subject)
{
    return regexec(re, subject, 0, NULL, 0) == 0;
}
