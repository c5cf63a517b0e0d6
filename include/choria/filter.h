/* Choria request filters (the `filter` of a v1 request envelope): JSON decode and encode,
 * and matching against a node's identity, agents, classes and facts with go-choria's
 * semantics (protocol/filter.go, filter/{identity,agents,classes,facts}).
 *
 * Strings in a ch_filter are borrowed: from the caller when it builds a filter by hand, from
 * the parsed JSON document when ch_filter_parse() filled it. */
#ifndef CHORIA_FILTER_H
#define CHORIA_FILTER_H

#include <jansson.h>

#include "choria/common.h"
#include "choria/json.h"

#define CH_FILTER_MAX_ENTRIES 1024 /* entries in one list (fact, cf_class, agent, ...) */
#define CH_FILTER_MAX_STRING 1024  /* bytes in one entry: a fact path, value, regex, ... */

typedef enum {
    CH_FACT_OP_EQ, /* == */
    CH_FACT_OP_NE, /* != */
    CH_FACT_OP_LT, /* <  */
    CH_FACT_OP_LE, /* <= */
    CH_FACT_OP_GT, /* >  */
    CH_FACT_OP_GE, /* >= */
    CH_FACT_OP_RE, /* =~ */
} ch_fact_op;

/* One {"fact","operator","value"} entry. `fact` is a gjson-style dotted path. */
typedef struct {
    const char *fact;
    ch_fact_op op;
    const char *value;
} ch_fact_filter;

/* A filter. All lists may be empty (n == 0, pointer NULL). Entries of identities, agents and
 * classes are exact names or /regex/ (POSIX extended syntax). */
typedef struct {
    const ch_fact_filter *facts;
    size_t n_facts;
    const char *const *classes; /* JSON key "cf_class" */
    size_t n_classes;
    const char *const *agents;
    size_t n_agents;
    const char *const *identities;
    size_t n_identities;
    /* Compound (expr) filters are not evaluated by this implementation; they are kept as
     * the raw JSON array (borrowed, may be NULL) so they can be re-encoded and refused. */
    json_t *compound;
    size_t n_compound;
    void *alloc_[4]; /* private: arrays allocated by ch_filter_parse(), freed by clear */
} ch_filter;

/* "==", "!=", "<", "<=", ">", ">=", "=~". */
const char *ch_fact_op_text(ch_fact_op op);

/* Parses an operator; CH_ERR_INVALID for anything outside the schema's enum. */
ch_status ch_fact_op_parse(const char *text, ch_fact_op *op);

/* True when every list is empty (a NULL filter is empty). An empty filter matches all. */
bool ch_filter_is_empty(const ch_filter *f);

/* Fills *out from a decoded `filter` object following the request schema: keys fact,
 * cf_class, identity and compound are required, agent is optional; lists hold strings (facts:
 * objects with a non-empty fact, an operator from the enum and a non-empty value; compound:
 * arrays of objects of strings). Bounded by CH_FILTER_MAX_ENTRIES / CH_FILTER_MAX_STRING.
 * Strings are borrowed from obj, which must outlive *out. On error *out is cleared. */
ch_status ch_filter_parse(json_t *obj, ch_filter *out, ch_error *err);

/* Releases what ch_filter_parse() allocated and zeroes *f. Harmless on a zeroed or
 * caller-built filter (it frees only the private allocations). */
void ch_filter_clear(ch_filter *f);

/* Checks a caller-built filter against the same rules ch_filter_parse() enforces. */
ch_status ch_filter_validate(const ch_filter *f, ch_error *err);

/* Appends go-choria's encoding: {"fact":[...],"cf_class":[...],"agent":[...],
 * "identity":[...],"compound":[...]}; a NULL filter encodes as the empty filter. Compound
 * object keys are sorted, as Go encodes map[string]string. */
void ch_filter_encode(const ch_filter *f, ch_buf *b);

/* Looks a fact up by gjson-style path: components separated by '.', '\' escapes the next
 * character, a numeric component indexes an array, '*' and '?' are wildcards within an
 * object key (the first key, in document order, under which the rest of the path resolves).
 * gjson's modifiers, queries and '#' are not supported (they are looked up literally).
 * Returns a borrowed value or NULL when the fact does not exist. */
json_t *ch_filter_fact_lookup(const json_t *facts, const char *path);

/* Evaluates one fact filter (go-choria filter/facts/matchers.go):
 *  - a fact that does not exist never matches;
 *  - string facts: == != compare exactly, < <= > >= compare bytewise, =~ regex;
 *  - number facts: if the value contains '.', compare as floats (=~ against the fact as
 *    "%.4f"); else == != =~ use the integer text of the fact and < <= > >= parse the value as
 *    an integer;
 *  - true/false facts: == and =~ match when the fact equals the value's strconv.ParseBool
 *    truth ("1", "t", "true", ...; anything else is false), != when it differs;
 *  - null, object and array facts never match == != =~;
 *  - ordering on a bool, null, object or array fact is an error.
 * CH_OK: matches; CH_ERR_NO_MATCH: does not; CH_ERR_INVALID: could not be evaluated (bad
 * regex, unparsable number, ordering on a non-scalar), which callers treat as no match. */
ch_status ch_filter_match_fact(const ch_fact_filter *ff, const json_t *facts, ch_error *err);

/* Matches a node against the whole filter (protocol/filter.go MatchServerRequest):
 *  - a non-empty compound list is refused first: CH_ERR_UNSUPPORTED "compound filters are
 *    not supported";
 *  - an empty filter matches everything;
 *  - identity: OR of exact or /regex/ entries against identity;
 *  - agent: AND, each entry (exact or /regex/) must match one of agents[0..n_agents);
 *  - cf_class: AND against classes[0..n_classes), likewise;
 *  - fact: AND of ch_filter_match_fact() against facts (NULL facts: nothing exists).
 * Every non-empty section must match. Returns CH_OK on a match, CH_ERR_NO_MATCH (err says
 * which section failed) when not, another status when the filter cannot be evaluated (a
 * regex that does not compile, ...). Every status other than CH_OK means "do not process". */
ch_status ch_filter_match(const ch_filter *f, const char *identity, const char *const *agents,
                          size_t n_agents, const char *const *classes, size_t n_classes,
                          const json_t *facts, ch_error *err);

#endif
