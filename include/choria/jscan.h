/* A strict RFC 8259 JSON scanner that allocates nothing.
 *
 * ch_jscan_parse validates a whole JSON text (grammar, escapes, surrogate pairs, UTF-8,
 * number syntax, nothing but white space after the value) and describes it in a
 * caller-provided token array, jsmn-like: one token per value in document order, an
 * object's members as key token then value token. Values stay in the text; the helpers
 * below compare, decode and convert them on demand, so reading a few fields of a document
 * costs one pass over it and no malloc.
 *
 * Where RFC 8259 leaves behaviour open: a lone UTF-16 surrogate escape (\uD800 without its
 * pair) is rejected, as jansson does, because it decodes to no valid UTF-8; \u0000 is
 * accepted (callers that need C strings check for it); duplicate keys are accepted by the
 * scanner and ch_jscan_check_duplicates rejects them where that matters. Numbers are
 * checked for syntax only, so integers beyond 64 bits and 1e400 are valid.
 *
 * Bounds: the text is at most CH_MAX_MESSAGE_SIZE bytes and nests at most
 * CH_MAX_JSON_DEPTH arrays/objects. A document, its token array and every index into it
 * must outlive the helpers' use of them; tokens point into the text, which must not change. */
#ifndef CHORIA_JSCAN_H
#define CHORIA_JSCAN_H

#include "choria/common.h"

typedef enum {
    CH_JSCAN_OBJECT = 1,
    CH_JSCAN_ARRAY,
    CH_JSCAN_STRING,
    CH_JSCAN_NUMBER,
    CH_JSCAN_TRUE,
    CH_JSCAN_FALSE,
    CH_JSCAN_NULL,
} ch_jscan_type;

/* Token flags. */
#define CH_JSCAN_ESCAPED 0x01  /* a string with backslash escapes: decode before use */
#define CH_JSCAN_FRACTION 0x02 /* a number with a fraction or an exponent */

typedef struct {
    uint32_t start; /* byte offset: a string's first content byte (after the quote), else */
    uint32_t end;   /* the value's first byte; end is one past the last (before the quote) */
    uint32_t next;  /* index of the first token after this value and everything inside it */
    uint32_t size;  /* members of an object, elements of an array, 0 otherwise */
    uint8_t type;   /* ch_jscan_type */
    uint8_t flags;  /* CH_JSCAN_ESCAPED, CH_JSCAN_FRACTION */
} ch_jscan_token;

typedef struct {
    const char *text;
    size_t len;
    ch_jscan_token *tokens;
    size_t count;        /* tokens written; the root value is token 0 */
    size_t needed;       /* tokens the text needs: > max_tokens when CH_ERR_TOO_LARGE said so */
    size_t error_offset; /* where the text went wrong, after CH_ERR_INVALID */
} ch_jscan_doc;

/* Scans text[0..len) (not necessarily NUL-terminated) into tokens[0..max_tokens); tokens
 * may be NULL with max_tokens 0 to only validate and count.
 * CH_ERR_INVALID: not JSON, with the byte offset and reason in err and doc->error_offset.
 * CH_ERR_TOO_LARGE: len or nesting over the bounds, or more than max_tokens tokens; in the
 * last case the whole text was still validated and doc->needed says how many it takes. */
ch_status ch_jscan_parse(ch_jscan_doc *doc, const char *text, size_t len, ch_jscan_token *tokens,
                         size_t max_tokens, ch_error *err);

/* ch_jscan_parse into tokens[0..max_tokens), and when the text needs more tokens but no
 * more than limit, again into a malloc'd array that *heap then owns (NULL otherwise; the
 * caller frees it once done with doc). Small documents cost no malloc. */
ch_status ch_jscan_parse_grow(ch_jscan_doc *doc, const char *text, size_t len,
                              ch_jscan_token *tokens, size_t max_tokens, size_t limit,
                              ch_jscan_token **heap, ch_error *err);

/* CH_ERR_INVALID naming the key and its offset when an object in doc (every object, or
 * just obj) has two keys that are equal once escapes are decoded, as jansson's
 * JSON_REJECT_DUPLICATES does. CH_ERR_NOMEM is possible for objects of many members. */
ch_status ch_jscan_check_duplicates(const ch_jscan_doc *doc, ch_error *err);
ch_status ch_jscan_object_check_duplicates(const ch_jscan_doc *doc, int obj, ch_error *err);

static inline ch_jscan_type ch_jscan_type_of(const ch_jscan_doc *doc, int tok)
{
    return (ch_jscan_type)doc->tokens[tok].type;
}

/* Iteration. Members of object obj:
 *   for (int k = ch_jscan_first(doc, obj); k >= 0; k = ch_jscan_next_member(doc, obj, k))
 *       key is token k, its value token k + 1
 * Elements of array arr:
 *   for (int e = ch_jscan_first(doc, arr); e >= 0; e = ch_jscan_next_element(doc, arr, e)) */
static inline int ch_jscan_first(const ch_jscan_doc *doc, int container)
{
    return doc->tokens[container].size > 0 ? container + 1 : -1;
}

static inline int ch_jscan_next_element(const ch_jscan_doc *doc, int arr, int elem)
{
    uint32_t n = doc->tokens[elem].next;
    return n < doc->tokens[arr].next ? (int)n : -1;
}

static inline int ch_jscan_next_member(const ch_jscan_doc *doc, int obj, int key)
{
    return ch_jscan_next_element(doc, obj, key + 1);
}

/* The value token of the member of object obj whose decoded key is key (so "\u0069d"
 * matches "id"); the first such member; -1 when there is none or obj is not an object. */
int ch_jscan_object_get(const ch_jscan_doc *doc, int obj, const char *key);

/* A key for ch_jscan_object_lookup: CH_JSCAN_KEY("id"). */
typedef struct {
    const char *name;
    size_t len;
} ch_jscan_key;

#define CH_JSCAN_KEY(literal)                                                                      \
    {                                                                                              \
        (literal), sizeof(literal) - 1                                                             \
    }

/* ch_jscan_object_get for n keys in one pass over the members of obj: values[i] is the
 * value token of the first member whose decoded key is keys[i], -1 when there is none (all
 * -1 when obj is not an object). Reading several fields this way costs one walk instead of
 * one per field. */
void ch_jscan_object_lookup(const ch_jscan_doc *doc, int obj, const ch_jscan_key *keys, size_t n,
                            int *values);

/* Whether string token tok decodes to exactly s[0..n) / the C string s. False for other
 * token types. */
bool ch_jscan_string_eqn(const ch_jscan_doc *doc, int tok, const char *s, size_t n);
bool ch_jscan_string_eq(const ch_jscan_doc *doc, int tok, const char *s);

/* Copies the decoded string token tok (another token's raw text) into buf, truncated to
 * size - 1 bytes and NUL-terminated when size > 0, as snprintf does. Returns the full
 * decoded length; a string may contain NUL bytes (from \u0000). */
size_t ch_jscan_string_copy(const ch_jscan_doc *doc, int tok, char *buf, size_t size);

/* The decoded string token tok (another token's raw text) as a malloc'd NUL-terminated
 * copy in *out, its length in *len (may be NULL). CH_ERR_NOMEM on failure. */
ch_status ch_jscan_string_dup(const ch_jscan_doc *doc, int tok, char **out, size_t *len);

/* A number token holding an integer (no fraction, no exponent), exactly. CH_ERR_INVALID
 * when tok is not such a number (or, for uint64, is negative, even "-0"); CH_ERR_TOO_LARGE
 * when it does not fit. *out is untouched on failure. */
ch_status ch_jscan_int64(const ch_jscan_doc *doc, int tok, int64_t *out);
ch_status ch_jscan_uint64(const ch_jscan_doc *doc, int tok, uint64_t *out);

#endif
