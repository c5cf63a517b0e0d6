/* JSON with bounds on input and Go-compatible output.
 *
 * Parsing goes through jansson after a cheap pre-scan that enforces the size and
 * nesting bounds, so a hostile document cannot make jansson recurse deeply.
 * Encoding reproduces Go's encoding/json compact form byte for byte: keys in
 * insertion order, '<' '>' '&' U+2028 U+2029 escaped as \u003c etc, integers exact. */
#ifndef CHORIA_JSON_H
#define CHORIA_JSON_H

#include <jansson.h>

#include "choria/common.h"

/* Parses buf[0..len) (not necessarily NUL-terminated). Rejects input larger than
 * max_size, nested deeper than max_depth, or with trailing garbage. Duplicate keys
 * are rejected. Returns a new reference or NULL with err set. */
json_t *ch_json_parse(const char *buf, size_t len, size_t max_size, int max_depth, ch_error *err);

/* Go-compatible compact encoding. Returns a malloc'd string (caller frees) and its
 * length in *len if len is not NULL; NULL on no memory or an unencodable value. */
char *ch_json_encode(const json_t *value, size_t *len);

/* Length of the valid UTF-8 sequence at s[0..n) (1 to 4), or 0 when it is invalid: overlong,
 * a surrogate, above U+10FFFF or cut short. */
size_t ch_utf8_seq_len(const unsigned char *s, size_t n);

/* Appends the Go-escaped JSON string literal (with quotes) of s[0..len) to a growing
 * buffer. Used by encoders that build fixed-order documents by hand. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    bool failed; /* set on allocation failure; further appends are ignored */
} ch_buf;

void ch_buf_init(ch_buf *b);
void ch_buf_free(ch_buf *b);
void ch_buf_append(ch_buf *b, const char *s, size_t len);
void ch_buf_append_str(ch_buf *b, const char *s);
void ch_buf_printf(ch_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ch_buf_append_json_string(ch_buf *b, const char *s, size_t len);
/* Takes ownership of the NUL-terminated data; returns NULL if any append failed. */
char *ch_buf_steal(ch_buf *b, size_t *len);

/* The JSON type of v as Go's encoding/json names it in errors: "object", "array", "string",
 * "number", "bool" or "null". */
const char *ch_json_go_type(const json_t *v);

/* Object accessors that return NULL / default when the key is missing or of the wrong type. */
const char *ch_json_get_string(const json_t *obj, const char *key);

#endif
