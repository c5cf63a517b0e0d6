/* JSON with bounds on input and Go-compatible output.
 *
 * Parsing goes through jansson after a cheap pre-scan that enforces the size and
 * nesting bounds, so a hostile document cannot make jansson recurse deeply.
 * Encoding reproduces Go's encoding/json compact form byte for byte: keys in
 * insertion order, '<' '>' '&' U+2028 U+2029 escaped as \u003c etc, integers exact. */
#ifndef CHORIA_JSON_H
#define CHORIA_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "choria/common.h"

/* Parses buf[0..len) (not necessarily NUL-terminated). Rejects input larger than
 * max_size, nested deeper than max_depth, or with trailing garbage. Duplicate keys
 * are rejected. Returns a new reference or NULL with err set. */
json_t *ch_json_parse(const char *buf, size_t len, size_t max_size, int max_depth, ch_error *err);

/* Go-compatible compact encoding. Returns a malloc'd string (caller frees) and its
 * length in *len if len is not NULL; NULL on no memory or an unencodable value. */
char *ch_json_encode(const json_t *value, size_t *len);

/* The same with every object's keys sorted bytewise, as Go's json.Marshal encodes a map
 * (upstream sorts an inventory or a configuration this way). NULL also when value nests
 * deeper than CH_MAX_JSON_DEPTH. */
char *ch_json_encode_sorted(const json_t *value, size_t *len);

/* A deep copy of v whose objects hold their keys in sorted order, so that ch_json_encode
 * writes them as Go writes a map. NULL for NULL, no memory, or nesting past
 * CH_MAX_JSON_DEPTH. */
json_t *ch_json_sorted_copy(const json_t *v);

/* The nesting depth of a decoded value (0 for a scalar); stops counting past limit. */
int ch_json_depth_of(const json_t *v, int limit);

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

/* How a JSON string literal is escaped. Both write '"', '\\', \n \r \t escaped, other
 * control characters as \u00XX and invalid UTF-8 as \ufffd (so the output is always JSON). */
typedef enum {
    CH_JSON_ESCAPE_GO,       /* encoding/json: also \b \f, '<' '>' '&' and U+2028/9 escaped */
    CH_JSON_ESCAPE_JSONITER, /* jsoniter (sdk-go's CloudEvents envelope): nothing more */
} ch_json_escape;

/* ch_buf_append_json_string in the given style. */
void ch_buf_append_json_string_as(ch_buf *b, const char *s, size_t len, ch_json_escape style);
/* Takes ownership of the NUL-terminated data; returns NULL if any append failed. */
char *ch_buf_steal(ch_buf *b, size_t *len);

/* Deepest bracket nesting of a JSON text, ignoring brackets inside strings; stops counting
 * once past limit, so a hostile document costs no more than that. Run it before a parser that
 * recurses (jansson does). */
int ch_json_depth(const char *buf, size_t len, int limit);

/* The JSON type of v as Go's encoding/json names it in errors: "object", "array", "string",
 * "number", "bool" or "null". */
const char *ch_json_go_type(const json_t *v);

/* Object accessors that return NULL / default when the key is missing or of the wrong type. */
const char *ch_json_get_string(const json_t *obj, const char *key);

/* ---- decoding into a C struct as Go's encoding/json decodes into a Go struct ----
 *
 * One table per struct: each JSON key a field, its kind, where it goes, and optionally a
 * function that decodes it instead. Keys match a field's name exactly, else
 * case-insensitively (Go's rule); unknown keys are ignored; null leaves a field as it is,
 * except the json_t kinds decoded by their own rule, which become NULL (a Go map or pointer);
 * a field with a decode function never sees null. A value of the wrong type is
 * CH_ERR_INVALID with Go's message, made by ch_json_type_error and nowhere else.
 *
 * Memory: CH_JSON_STRING fields are malloc'd copies owned by the caller's struct (a previous
 * value is freed); CH_JSON_BSTRING and the json_t kinds are borrowed from the document and
 * valid while it lives. */

typedef enum {
    CH_JSON_STRING,  /* char *, malloc'd; a string holding a NUL byte is refused */
    CH_JSON_BSTRING, /* const char *, borrowed */
    CH_JSON_INT,     /* int64_t; a number with a fraction is refused as Go refuses it */
    CH_JSON_BOOL,    /* bool */
    CH_JSON_STRMAP,  /* json_t *: an object whose values are strings (or null) */
    CH_JSON_STRLIST, /* json_t *: an array of strings (or nulls) */
    CH_JSON_OBJECT,  /* json_t *: an object */
    CH_JSON_VALUE,   /* json_t *: any value */
    CH_JSON_CHECK,   /* nothing stored: decode only checks the value (dst is NULL) */
} ch_json_kind;

typedef struct ch_json_field ch_json_field;

/* Decodes a non-null v for field f into dst (the field's address in the caller's struct);
 * path is "<Struct>.<key>" for messages. */
typedef ch_status (*ch_json_field_fn)(const ch_json_field *f, const json_t *v, void *dst,
                                      const char *path, ch_error *err);

struct ch_json_field {
    const char *name;        /* the JSON key (the Go field's json tag) */
    ch_json_kind kind;       /* what dst holds, and how it is decoded when decode is NULL */
    size_t offset;           /* of the destination in the caller's struct (offsetof) */
    const char *go_type;     /* the Go type named in messages; NULL: the kind's own */
    ch_json_field_fn decode; /* optional: decodes instead of the kind's rule */
};

/* A table row: key decoded by kind into the member of type T. */
#define CH_JSON_FIELD(T, key, kind_, member)                                                       \
    {                                                                                              \
        .name = (key), .kind = (kind_), .offset = offsetof(T, member)                              \
    }

typedef struct {
    const char *go_name; /* the Go type, e.g. "provision.ConfigureRequest" */
    const ch_json_field *fields;
    size_t nfields;
} ch_json_struct;

/* Decodes obj into out. A document that is not an object (null is a no-op) is
 * "json: cannot unmarshal <type> into Go value of type <go_name>". Stops at the first error;
 * fields decoded before it keep their values (callers free out either way). */
ch_status ch_json_decode(const json_t *obj, const ch_json_struct *s, void *out, ch_error *err);

/* ch_json_decode for a struct nested in another: field paths in messages start with
 * path_prefix ("Config.features" gives "Config.features.pki") instead of s's own name. */
ch_status ch_json_decode_at(const json_t *obj, const ch_json_struct *s, void *out,
                            const char *path_prefix, ch_error *err);

/* The field of s that key names, by Go's rule; NULL when none. */
const ch_json_field *ch_json_field_find(const ch_json_struct *s, const char *key);

/* Go's UnmarshalTypeError text, the one place it is made: "json: cannot unmarshal <type of v>
 * into Go struct field <path> of type <go_type>" (path NULL: "into Go value of type ...").
 * A number given for an integer is "number <v>", as Go names it. Returns CH_ERR_INVALID. */
ch_status ch_json_type_error(ch_error *err, const json_t *v, const char *path, const char *go_type);

/* The Go type a kind decodes as: "string", "int", "bool", "map[string]string", ... */
const char *ch_json_kind_go_type(ch_json_kind kind);

#endif
