/* Lifecycle events: build, encode (Choria and CloudEvents), parse, subject, display. */
#include "choria/lifecycle.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "choria/jscan.h"
#include "choria/json.h"
#include "choria/util.h"

#define S(x) ((x) != NULL ? (x) : "")

static const char *const type_names[CH_LIFECYCLE_TYPE_COUNT] = {
    "startup", "shutdown", "provisioned", "alive", "governor", "upgraded",
};

static const char *const protocols[CH_LIFECYCLE_TYPE_COUNT] = {
    "io.choria.lifecycle.v1.startup",     "io.choria.lifecycle.v1.shutdown",
    "io.choria.lifecycle.v1.provisioned", "io.choria.lifecycle.v1.alive",
    "io.choria.lifecycle.v1.governor",    "io.choria.lifecycle.v1.upgraded",
};

static const char *const legacy_protocols[CH_LIFECYCLE_TYPE_COUNT] = {
    "choria:lifecycle:startup:1", "choria:lifecycle:shutdown:1", "choria:lifecycle:provisioned:1",
    "choria:lifecycle:alive:1",   "choria:lifecycle:governor:1", "choria:lifecycle:upgraded:1",
};

/* 9999-12-31T23:59:59Z: RFC 3339 has four-digit years. */
#define MAX_CLOUDEVENT_TIME INT64_C(253402300799)

static bool type_valid(ch_lifecycle_type type)
{
    return type >= CH_LIFECYCLE_STARTUP && type <= CH_LIFECYCLE_UPGRADED;
}

const char *ch_lifecycle_type_name(ch_lifecycle_type type)
{
    return type_valid(type) ? type_names[type] : "unknown";
}

ch_lifecycle_type ch_lifecycle_type_from_name(const char *name)
{
    if (name == NULL)
        return CH_LIFECYCLE_UNKNOWN;
    for (int i = 0; i < CH_LIFECYCLE_TYPE_COUNT; i++)
        if (strcmp(name, type_names[i]) == 0)
            return (ch_lifecycle_type)i;
    return CH_LIFECYCLE_UNKNOWN;
}

const char *ch_lifecycle_format_name(ch_lifecycle_format format)
{
    switch (format) {
    case CH_LIFECYCLE_FORMAT_CHORIA:
        return "choria";
    case CH_LIFECYCLE_FORMAT_CLOUDEVENT:
        return "cloudevent";
    default:
        return "unknown";
    }
}

const char *ch_lifecycle_protocol(ch_lifecycle_type type)
{
    return type_valid(type) ? protocols[type] : NULL;
}

static ch_status set_str(char **slot, const char *value)
{
    char *copy = NULL;
    if (value != NULL && (copy = strdup(value)) == NULL)
        return CH_ERR_NOMEM;
    free(*slot);
    *slot = copy;
    return CH_OK;
}

ch_status ch_lifecycle_event_set_id(ch_lifecycle_event *ev, const char *value)
{
    return set_str(&ev->id, value);
}

ch_status ch_lifecycle_event_set_identity(ch_lifecycle_event *ev, const char *value)
{
    return set_str(&ev->identity, value);
}

ch_status ch_lifecycle_event_set_component(ch_lifecycle_event *ev, const char *value)
{
    return set_str(&ev->component, value);
}

ch_status ch_lifecycle_event_set_version(ch_lifecycle_event *ev, const char *value)
{
    return set_str(&ev->version, value);
}

ch_status ch_lifecycle_event_set_new_version(ch_lifecycle_event *ev, const char *value)
{
    return set_str(&ev->new_version, value);
}

ch_status ch_lifecycle_event_set_governor(ch_lifecycle_event *ev, const char *name,
                                          uint64_t sequence, const char *event_type)
{
    if (set_str(&ev->governor, name) != CH_OK || set_str(&ev->event_type, event_type) != CH_OK)
        return CH_ERR_NOMEM;
    ev->sequence = sequence;
    return CH_OK;
}

void ch_lifecycle_event_free(ch_lifecycle_event *ev)
{
    if (ev == NULL)
        return;
    free(ev->id);
    free(ev->identity);
    free(ev->component);
    free(ev->version);
    free(ev->new_version);
    free(ev->governor);
    free(ev->event_type);
    free(ev);
}

static ch_status set_fresh_id(ch_lifecycle_event *ev)
{
    char id[37];
    ch_uuid_v4(id);
    return set_str(&ev->id, id);
}

ch_status ch_lifecycle_event_new(ch_lifecycle_type type, const char *identity,
                                 const char *component, const char *version,
                                 ch_lifecycle_event **out, ch_error *err)
{
    *out = NULL;
    if (!type_valid(type))
        return ch_error_set(err, CH_ERR_INVALID, "unknown event type");
    ch_lifecycle_event *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory creating an event");
    ev->type = type;
    ev->format = CH_LIFECYCLE_FORMAT_CHORIA;
    ev->timestamp = ch_now_unix();
    if (set_fresh_id(ev) != CH_OK || set_str(&ev->identity, identity) != CH_OK ||
        set_str(&ev->component, component) != CH_OK || set_str(&ev->version, version) != CH_OK) {
        ch_lifecycle_event_free(ev);
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory creating an event");
    }
    *out = ev;
    return CH_OK;
}

/* ---- encoding ---- */

static void append_str(ch_buf *b, const char *s)
{
    ch_buf_append_json_string(b, S(s), strlen(S(s)));
}

/* The Choria-format document: Go json.Marshal of the typed event struct. */
static void append_choria(ch_buf *b, const ch_lifecycle_event *ev)
{
    ch_buf_append_str(b, "{\"protocol\":");
    append_str(b, protocols[ev->type]);
    ch_buf_append_str(b, ",\"id\":");
    append_str(b, ev->id);
    ch_buf_append_str(b, ",\"identity\":");
    append_str(b, ev->identity);
    ch_buf_append_str(b, ",\"component\":");
    append_str(b, ev->component);
    ch_buf_printf(b, ",\"timestamp\":%" PRId64, ev->timestamp);
    switch (ev->type) {
    case CH_LIFECYCLE_STARTUP:
    case CH_LIFECYCLE_ALIVE:
        ch_buf_append_str(b, ",\"version\":");
        append_str(b, ev->version);
        break;
    case CH_LIFECYCLE_UPGRADED:
        ch_buf_append_str(b, ",\"version\":");
        append_str(b, ev->version);
        ch_buf_append_str(b, ",\"new_version\":");
        append_str(b, ev->new_version);
        break;
    case CH_LIFECYCLE_GOVERNOR:
        ch_buf_append_str(b, ",\"governor\":");
        append_str(b, ev->governor);
        ch_buf_printf(b, ",\"sequence\":%" PRIu64, ev->sequence);
        ch_buf_append_str(b, ",\"event_type\":");
        append_str(b, ev->event_type);
        break;
    default:
        break;
    }
    ch_buf_append_str(b, "}");
}

/* A string as sdk-go's envelope writer (jsoniter ConfigFastest) writes it: only '"', '\\'
 * and control characters are escaped, '<' '>' '&' stay raw. jsoniter would also copy
 * invalid UTF-8 raw; U+FFFD is written instead so the document stays valid JSON. */
static void append_jsoniter_str(ch_buf *b, const char *str, size_t len)
{
    ch_buf_append_json_string_as(b, str, len, CH_JSON_ESCAPE_JSONITER);
}

/* s without leading and trailing ASCII white space, as (start, length). */
static const char *trimmed(const char *s, size_t *len)
{
    *len = strlen(s);
    ch_trim(&s, len);
    return s;
}

static ch_status append_cloudevent(ch_buf *b, const ch_lifecycle_event *ev, ch_error *err)
{
    size_t id_len, subject_len;
    const char *id = trimmed(S(ev->id), &id_len);
    const char *subject = trimmed(S(ev->identity), &subject_len);
    char when[32];

    /* sdk-go's Validate() refuses an empty id; SetSubject("") leaves the subject out. */
    if (id_len == 0)
        return ch_error_set(err, CH_ERR_INVALID, "a CloudEvent needs a non-empty id");
    if (ev->timestamp < 0 || ev->timestamp > MAX_CLOUDEVENT_TIME)
        return ch_error_set(err, CH_ERR_INVALID,
                            "timestamp %" PRId64 " is outside the years 1970 to 9999",
                            ev->timestamp);
    ch_format_rfc3339(ev->timestamp, when, sizeof(when));

    ch_buf_append_str(b, "{\"specversion\":\"1.0\",\"id\":");
    append_jsoniter_str(b, id, id_len);
    ch_buf_append_str(b, ",\"source\":\"" CH_LIFECYCLE_SOURCE "\",\"type\":");
    append_jsoniter_str(b, protocols[ev->type], strlen(protocols[ev->type]));
    if (subject_len > 0) {
        ch_buf_append_str(b, ",\"subject\":");
        append_jsoniter_str(b, subject, subject_len);
    }
    ch_buf_append_str(b, ",\"datacontenttype\":\"application/json\",\"time\":");
    append_jsoniter_str(b, when, strlen(when));
    ch_buf_append_str(b, ",\"data\":");
    append_choria(b, ev);
    ch_buf_append_str(b, "}");
    return CH_OK;
}

ch_status ch_lifecycle_encode(const ch_lifecycle_event *ev, ch_lifecycle_format format, char **out,
                              size_t *out_len, ch_error *err)
{
    *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    if (ev == NULL || !type_valid(ev->type))
        return ch_error_set(err, CH_ERR_INVALID, "cannot encode an event of unknown type");

    ch_buf b;
    ch_buf_init(&b);
    ch_status s = CH_OK;
    if (format == CH_LIFECYCLE_FORMAT_CHORIA)
        append_choria(&b, ev);
    else if (format == CH_LIFECYCLE_FORMAT_CLOUDEVENT)
        s = append_cloudevent(&b, ev, err);
    else
        s = ch_error_set(err, CH_ERR_INVALID, "do not know how to publish this format event");
    if (s != CH_OK) {
        ch_buf_free(&b);
        return s;
    }
    *out = ch_buf_steal(&b, out_len);
    if (*out == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory encoding an event");
    return CH_OK;
}

/* ---- parsing ---- */

/* Real events have about 20 JSON values, so tokens live on the stack; a bigger document
 * gets a heap array, up to a bound that keeps a hostile 8 MB message from costing more
 * than a few MB. */
#define STACK_TOKENS 256
#define MAX_TOKENS 65536

typedef struct {
    ch_jscan_doc doc;
    ch_jscan_token *heap; /* set when the stack array was too small; free it */
    ch_jscan_token stack[STACK_TOKENS];
} scanned;

/* Scans text bounded by CH_MAX_MESSAGE_SIZE and CH_MAX_JSON_DEPTH, rejecting duplicate
 * keys at any depth (as the jansson parse with JSON_REJECT_DUPLICATES did). The caller
 * frees sd->heap, which is set only once this returns. */
static ch_status scan_json(scanned *sd, const char *text, size_t len, ch_error *err)
{
    ch_status s = ch_jscan_parse_grow(&sd->doc, text, len, sd->stack, STACK_TOKENS, MAX_TOKENS,
                                      &sd->heap, err);
    return s != CH_OK ? s : ch_jscan_check_duplicates(&sd->doc, err);
}

/* Every member the rules read, of an envelope or of an event: one walk over an object finds
 * them all (the viewer reads thousands of events a second). */
enum {
    K_PROTOCOL,
    K_SPECVERSION,
    K_SOURCE,
    K_ID,
    K_TYPE,
    K_SUBJECT,
    K_DATACONTENTTYPE,
    K_TIME,
    K_DATA_BASE64,
    K_DATA,
    K_IDENTITY,
    K_COMPONENT,
    K_TIMESTAMP,
    K_VERSION,
    K_NEW_VERSION,
    K_GOVERNOR,
    K_EVENT_TYPE,
    K_SEQUENCE,
    K_COUNT
};

static const ch_jscan_key member_keys[K_COUNT] = {
    CH_JSCAN_KEY("protocol"),
    CH_JSCAN_KEY("specversion"),
    CH_JSCAN_KEY("source"),
    CH_JSCAN_KEY("id"),
    CH_JSCAN_KEY("type"),
    CH_JSCAN_KEY("subject"),
    CH_JSCAN_KEY("datacontenttype"),
    CH_JSCAN_KEY("time"),
    CH_JSCAN_KEY("data_base64"),
    CH_JSCAN_KEY("data"),
    CH_JSCAN_KEY("identity"),
    CH_JSCAN_KEY("component"),
    CH_JSCAN_KEY("timestamp"),
    CH_JSCAN_KEY("version"),
    CH_JSCAN_KEY("new_version"),
    CH_JSCAN_KEY("governor"),
    CH_JSCAN_KEY("event_type"),
    CH_JSCAN_KEY("sequence"),
};

/* One object's members: m[K_x] is the value token of key x, -1 when it is missing. */
typedef struct {
    const ch_jscan_doc *doc;
    int m[K_COUNT];
} members;

static void members_of(members *ms, const ch_jscan_doc *doc, int obj)
{
    ms->doc = doc;
    ch_jscan_object_lookup(doc, obj, member_keys, K_COUNT, ms->m);
}

/* The value of key; -1 when it is missing or null, which go-choria's decoder treats alike. */
static int field(const members *ms, int key)
{
    int v = ms->m[key];
    return v >= 0 && ch_jscan_type_of(ms->doc, v) == CH_JSCAN_NULL ? -1 : v;
}

/* The value of key when it is a string, else -1. */
static int string_field(const members *ms, int key)
{
    int v = ms->m[key];
    return v >= 0 && ch_jscan_type_of(ms->doc, v) == CH_JSCAN_STRING ? v : -1;
}

static bool string_has_prefix(const ch_jscan_doc *doc, int tok, const char *prefix)
{
    char head[32];
    size_t n = strlen(prefix); /* short literals only */
    return ch_jscan_string_copy(doc, tok, head, n + 1) >= n && memcmp(head, prefix, n) == 0;
}

/* String token tok as a C string in *out: in buf[size] when it fits, else in a malloc'd
 * *heap that the caller frees. CH_ERR_INVALID when it holds a NUL byte (from \u0000), which
 * a C string would silently cut off. */
static ch_status c_string(const ch_jscan_doc *doc, int tok, char *buf, size_t size, char **heap,
                          const char **out)
{
    size_t n = ch_jscan_string_copy(doc, tok, buf, size);
    *heap = NULL;
    *out = buf;
    if (n >= size) {
        if (ch_jscan_string_dup(doc, tok, heap, NULL) != CH_OK)
            return CH_ERR_NOMEM;
        *out = *heap;
    }
    return strlen(*out) == n ? CH_OK : CH_ERR_INVALID;
}

/* go-choria EventFormatFromJSON, plus the legacy protocol ids (see the header). Not an
 * object: every member is missing. */
static ch_lifecycle_format detect_format(const members *ms)
{
    int protocol = string_field(ms, K_PROTOCOL);
    if (protocol >= 0 && (string_has_prefix(ms->doc, protocol, CH_LIFECYCLE_SOURCE) ||
                          string_has_prefix(ms->doc, protocol, "choria:lifecycle")))
        return CH_LIFECYCLE_FORMAT_CHORIA;
    int specversion = string_field(ms, K_SPECVERSION);
    int source = string_field(ms, K_SOURCE);
    if (specversion >= 0 && source >= 0 && ch_jscan_string_eq(ms->doc, specversion, "1.0") &&
        ch_jscan_string_eq(ms->doc, source, CH_LIFECYCLE_SOURCE))
        return CH_LIFECYCLE_FORMAT_CLOUDEVENT;
    return CH_LIFECYCLE_FORMAT_UNKNOWN;
}

/* What the rules accepted in one Choria-format object: the string tokens of its fields
 * (-1 when missing or null; only the fields of its type are set) in doc, which must outlive
 * it. Turning them into an event or a display line is the reader's business. */
typedef struct {
    const ch_jscan_doc *doc;
    ch_lifecycle_format format;
    ch_lifecycle_type type;
    int id, identity, component, version, new_version, governor, event_type;
    bool has_timestamp;
    int64_t timestamp;
    uint64_t sequence;
} fields;

/* Who reads the fields, while the documents they point into live. */
typedef struct {
    ch_status (*take)(const fields *f, void *closure, ch_error *err);
    void *closure;
} reader;

/* Whether string token tok decodes to bytes with a NUL (only a \u0000 escape can put one
 * there; the scan rejects raw ones). */
static ch_status has_nul(const ch_jscan_doc *doc, int tok, bool *nul)
{
    char *copy;
    size_t len;
    *nul = false;
    if (!(doc->tokens[tok].flags & CH_JSCAN_ESCAPED))
        return CH_OK;
    if (ch_jscan_string_dup(doc, tok, &copy, &len) != CH_OK)
        return CH_ERR_NOMEM;
    *nul = memchr(copy, '\0', len) != NULL;
    free(copy);
    return CH_OK;
}

/* The string at key into *tok; missing or null is -1. */
static ch_status take_string(const members *ms, int key, int *tok, ch_error *err)
{
    int v = field(ms, key);
    const char *name = member_keys[key].name;
    bool nul;
    *tok = -1;
    if (v < 0)
        return CH_OK;
    if (ch_jscan_type_of(ms->doc, v) != CH_JSCAN_STRING)
        return ch_error_set(err, CH_ERR_INVALID, "event field %s must be a string", name);
    if (has_nul(ms->doc, v, &nul) != CH_OK)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing an event");
    if (nul)
        return ch_error_set(err, CH_ERR_INVALID, "event field %s contains a NUL character", name);
    *tok = v;
    return CH_OK;
}

/* Non-empty: an escape always decodes to at least one byte. */
static ch_status require_string(const fields *f, int tok, const char *key, ch_error *err)
{
    if (tok < 0 || f->doc->tokens[tok].end == f->doc->tokens[tok].start)
        return ch_error_set(err, CH_ERR_INVALID, "%s event has no %s",
                            ch_lifecycle_type_name(f->type), key);
    return CH_OK;
}

static ch_lifecycle_type protocol_type(const ch_jscan_doc *doc, int protocol)
{
    for (int i = 0; protocol >= 0 && i < CH_LIFECYCLE_TYPE_COUNT; i++)
        if (ch_jscan_string_eq(doc, protocol, protocols[i]) ||
            ch_jscan_string_eq(doc, protocol, legacy_protocols[i]))
            return (ch_lifecycle_type)i;
    return CH_LIFECYCLE_UNKNOWN;
}

static ch_status parse_governor(const members *ms, fields *f, ch_error *err)
{
    ch_status s;
    if ((s = take_string(ms, K_GOVERNOR, &f->governor, err)) != CH_OK ||
        (s = take_string(ms, K_EVENT_TYPE, &f->event_type, err)) != CH_OK)
        return s;
    int seq = field(ms, K_SEQUENCE);
    int64_t v;
    if (seq >= 0) {
        if (ch_jscan_int64(ms->doc, seq, &v) != CH_OK || v < 0)
            return ch_error_set(err, CH_ERR_INVALID,
                                "event field sequence must be a non-negative integer");
        f->sequence = (uint64_t)v;
    }
    if (f->governor < 0 || f->doc->tokens[f->governor].end == f->doc->tokens[f->governor].start)
        return ch_error_set(err, CH_ERR_INVALID, "governor name is not set");
    return CH_OK;
}

static ch_status parse_choria(const members *ms, fields *f, ch_error *err)
{
    int protocol = string_field(ms, K_PROTOCOL);
    if ((f->type = protocol_type(ms->doc, protocol)) == CH_LIFECYCLE_UNKNOWN) {
        char shown[81] = "";
        if (protocol >= 0)
            ch_jscan_string_copy(ms->doc, protocol, shown, sizeof(shown));
        return ch_error_set(err, CH_ERR_INVALID, "unknown protocol '%s' received", shown);
    }

    ch_status s;
    if ((s = take_string(ms, K_ID, &f->id, err)) != CH_OK ||
        (s = take_string(ms, K_IDENTITY, &f->identity, err)) != CH_OK ||
        (s = take_string(ms, K_COMPONENT, &f->component, err)) != CH_OK)
        return s;
    int ts = field(ms, K_TIMESTAMP);
    f->has_timestamp = ts >= 0;
    if (ts >= 0 && ch_jscan_int64(ms->doc, ts, &f->timestamp) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "event field timestamp must be an integer");
    if ((s = require_string(f, f->identity, "identity", err)) != CH_OK ||
        (s = require_string(f, f->component, "component", err)) != CH_OK)
        return s;

    switch (f->type) {
    case CH_LIFECYCLE_STARTUP:
    case CH_LIFECYCLE_ALIVE:
        return take_string(ms, K_VERSION, &f->version, err);
    case CH_LIFECYCLE_UPGRADED:
        if ((s = take_string(ms, K_VERSION, &f->version, err)) != CH_OK)
            return s;
        return take_string(ms, K_NEW_VERSION, &f->new_version, err);
    case CH_LIFECYCLE_GOVERNOR:
        return parse_governor(ms, f, err);
    default:
        return CH_OK;
    }
}

/* A Choria-format object to its reader. */
static ch_status read_choria(const members *ms, ch_lifecycle_format format, const reader *r,
                             ch_error *err)
{
    fields f = {.doc = ms->doc,
                .format = format,
                .id = -1,
                .identity = -1,
                .component = -1,
                .version = -1,
                .new_version = -1,
                .governor = -1,
                .event_type = -1};
    ch_status s = parse_choria(ms, &f, err);
    return s != CH_OK ? s : r->take(&f, r->closure, err);
}

/* sdk-go treats a missing content type, application/json, text/json and +json types as
 * JSON; only the media type counts (parameters after ';' are ignored, case-insensitive). */
static bool content_type_is_json(const char *ct)
{
    if (ct == NULL)
        return true;
    size_t n = strcspn(ct, ";");
    ch_trim(&ct, &n);
    return n == 0 || (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n == 9 && strncasecmp(ct, "text/json", 9) == 0) ||
           (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

/* Whether the CloudEvent's data is JSON, by its datacontenttype. */
static ch_status data_is_json(const members *root, bool *json, ch_error *err)
{
    int ct = string_field(root, K_DATACONTENTTYPE);
    char buf[64], *heap = NULL;
    const char *value = NULL;
    ch_status s = ct >= 0 ? c_string(root->doc, ct, buf, sizeof(buf), &heap, &value) : CH_OK;
    if (s == CH_OK)
        *json = content_type_is_json(value);
    else if (s == CH_ERR_NOMEM)
        ch_error_set(err, s, "out of memory parsing an event");
    else
        ch_error_set(err, s, "CloudEvent datacontenttype contains a NUL character");
    free(heap);
    return s;
}

/* The inner event of a CloudEvent: a Choria-format object. */
static ch_status parse_inner(const ch_jscan_doc *doc, int inner, const reader *r, ch_error *err)
{
    members ms;
    members_of(&ms, doc, inner);
    ch_lifecycle_format f = detect_format(&ms);
    if (f == CH_LIFECYCLE_FORMAT_CLOUDEVENT)
        return ch_error_set(err, CH_ERR_UNSUPPORTED, "a CloudEvent inside a CloudEvent");
    if (f != CH_LIFECYCLE_FORMAT_CHORIA)
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent data is not a lifecycle event");
    return read_choria(&ms, CH_LIFECYCLE_FORMAT_CLOUDEVENT, r, err);
}

static ch_status parse_inner_bytes(const char *data, size_t len, const reader *r, ch_error *err)
{
    scanned sd;
    ch_status s = scan_json(&sd, data, len, err);
    if (s == CH_OK)
        s = parse_inner(&sd.doc, 0, r, err);
    free(sd.heap);
    return s;
}

/* The inner event of a string token: the document itself, or its base64 form. */
static ch_status parse_inner_string(const ch_jscan_doc *doc, int tok, bool base64, const reader *r,
                                    ch_error *err)
{
    char *text = NULL;
    unsigned char *raw = NULL;
    size_t len = 0, raw_len = 0;
    ch_status s = ch_jscan_string_dup(doc, tok, &text, &len);
    if (s == CH_OK && base64)
        s = ch_base64_decode(text, len, &raw, &raw_len);
    if (s == CH_ERR_NOMEM)
        ch_error_set(err, s, "out of memory decoding CloudEvent data");
    else if (s != CH_OK)
        s = ch_error_set(err, CH_ERR_INVALID, "CloudEvent data_base64 is not base64");
    else
        s = parse_inner_bytes(base64 ? (const char *)raw : text, base64 ? raw_len : len, r, err);
    free(raw);
    free(text);
    return s;
}

static ch_status check_attribute(const members *root, int key, ch_error *err)
{
    int v = field(root, key);
    if (v >= 0 && ch_jscan_type_of(root->doc, v) != CH_JSCAN_STRING)
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent attribute %s must be a string",
                            member_keys[key].name);
    return CH_OK;
}

/* `time`, when a non-empty string, must be RFC 3339. */
static ch_status check_time(const members *root, ch_error *err)
{
    int when = string_field(root, K_TIME);
    if (when < 0 || ch_jscan_string_eq(root->doc, when, ""))
        return CH_OK;
    char buf[64], *heap = NULL;
    const char *value = NULL;
    int64_t unused;
    ch_status s = c_string(root->doc, when, buf, sizeof(buf), &heap, &value);
    if (s == CH_OK && ch_parse_rfc3339(value, &unused) != CH_OK)
        s = CH_ERR_INVALID;
    if (s == CH_ERR_NOMEM)
        ch_error_set(err, s, "out of memory parsing an event");
    else if (s != CH_OK)
        ch_error_set(err, s, "CloudEvent time '%.40s' is not RFC 3339", value);
    free(heap);
    return s;
}

static ch_status parse_cloudevent(const members *root, const reader *r, ch_error *err)
{
    static const int attributes[] = {K_ID, K_TYPE, K_SUBJECT, K_DATACONTENTTYPE, K_TIME};
    ch_status s;
    for (size_t i = 0; i < sizeof(attributes) / sizeof(attributes[0]); i++)
        if ((s = check_attribute(root, attributes[i], err)) != CH_OK)
            return s;
    if ((s = check_time(root, err)) != CH_OK)
        return s;

    const ch_jscan_doc *doc = root->doc;
    int b64 = field(root, K_DATA_BASE64);
    if (b64 >= 0) {
        if (ch_jscan_type_of(doc, b64) != CH_JSCAN_STRING)
            return ch_error_set(err, CH_ERR_INVALID, "CloudEvent data_base64 must be a string");
        return parse_inner_string(doc, b64, true, r, err);
    }
    int data = field(root, K_DATA);
    bool json = true;
    if (data < 0)
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent carries no data");
    if ((s = data_is_json(root, &json, err)) != CH_OK)
        return s;
    if (json)
        return parse_inner(doc, data, r, err); /* in place: no second parse */
    /* Any other content type carries the document as a string. */
    if (ch_jscan_type_of(doc, data) != CH_JSCAN_STRING)
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent data must be a string");
    return parse_inner_string(doc, data, false, r, err);
}

/* Scans data, applies every rule and hands the fields to r. */
static ch_status parse_for(const void *data, size_t len, const reader *r, ch_error *err)
{
    scanned sd;
    members root;
    ch_status s = scan_json(&sd, data, len, err);
    if (s == CH_OK) {
        members_of(&root, &sd.doc, 0);
        ch_lifecycle_format format = detect_format(&root);
        if (format == CH_LIFECYCLE_FORMAT_CHORIA)
            s = read_choria(&root, format, r, err);
        else if (format == CH_LIFECYCLE_FORMAT_CLOUDEVENT)
            s = parse_cloudevent(&root, r, err);
        else
            s = ch_error_set(err, CH_ERR_INVALID, "unsupported event format");
    }
    free(sd.heap);
    return s;
}

static ch_status dup_field(const fields *f, int tok, char **slot)
{
    return tok < 0 ? CH_OK : ch_jscan_string_dup(f->doc, tok, slot, NULL);
}

/* Fields into the event at closure. go-choria pre-fills id and timestamp before
 * unmarshalling over them. */
static ch_status take_event(const fields *f, void *closure, ch_error *err)
{
    ch_lifecycle_event *ev = closure;
    ev->format = f->format;
    ev->type = f->type;
    ev->timestamp = f->has_timestamp ? f->timestamp : ch_now_unix();
    ev->sequence = f->sequence;
    if (dup_field(f, f->id, &ev->id) != CH_OK ||
        dup_field(f, f->identity, &ev->identity) != CH_OK ||
        dup_field(f, f->component, &ev->component) != CH_OK ||
        dup_field(f, f->version, &ev->version) != CH_OK ||
        dup_field(f, f->new_version, &ev->new_version) != CH_OK ||
        dup_field(f, f->governor, &ev->governor) != CH_OK ||
        dup_field(f, f->event_type, &ev->event_type) != CH_OK ||
        (ev->id == NULL && set_fresh_id(ev) != CH_OK))
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing an event");
    return CH_OK;
}

ch_status ch_lifecycle_parse(const void *data, size_t len, ch_lifecycle_event **out, ch_error *err)
{
    ch_error local;
    *out = NULL;
    if (err == NULL)
        err = &local;
    ch_lifecycle_event *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing an event");
    reader r = {.take = take_event, .closure = ev};
    ch_status s = parse_for(data, len, &r, err);
    if (s != CH_OK)
        ch_lifecycle_event_free(ev);
    else
        *out = ev;
    return s;
}

/* ---- subject, display, filter ---- */

ch_status ch_lifecycle_subject(const ch_lifecycle_event *ev, char *out, size_t out_size,
                               ch_error *err)
{
    if (out_size > 0)
        out[0] = '\0';
    if (!type_valid(ev->type))
        return ch_error_set(err, CH_ERR_INVALID, "event has an unknown type");
    const char *component = S(ev->component);
    if (component[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID,
                            "event is not complete, component has not been set");
    for (const unsigned char *p = (const unsigned char *)component; *p != '\0'; p++)
        if (*p == '.' || *p == '*' || *p == '>' || *p <= ' ' || *p == 0x7f)
            return ch_error_set(err, CH_ERR_INVALID,
                                "component '%.64s' cannot be used in a subject", component);
    int n =
        snprintf(out, out_size, "choria.lifecycle.event.%s.%s", type_names[ev->type], component);
    if (n < 0 || (size_t)n >= out_size || n > CH_MAX_SUBJECT_LEN) {
        if (out_size > 0)
            out[0] = '\0';
        return ch_error_set(err, CH_ERR_TOO_LARGE, "lifecycle subject is too long");
    }
    return CH_OK;
}

/* The strings a display line shows, not necessarily NUL-terminated: an event's own, or
 * straight from the message being read. */
typedef struct {
    const char *p;
    size_t n;
} text;

typedef struct {
    ch_lifecycle_type type;
    text identity, component, version, new_version, governor, stage;
    uint64_t sequence;
} display_view;

static text text_of(const char *s)
{
    return (text){S(s), strlen(S(s))};
}

static bool text_is(text t, const char *s)
{
    return t.n == strlen(s) && memcmp(t.p, s, t.n) == 0;
}

/* Appends the pieces of a line: the viewer formats every event, so no printf. */
static void put_text(ch_buf *b, text t)
{
    ch_buf_append(b, t.p, t.n);
}

static void put_str(ch_buf *b, const char *s)
{
    ch_buf_append(b, s, strlen(s));
}

static void put_u64(ch_buf *b, uint64_t v)
{
    char digits[20];
    size_t i = sizeof(digits);
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    ch_buf_append(b, digits + i, sizeof(digits) - i);
}

/* "[governor] <identity>: <what> <gov>", where what depends on the stage and whether a slot
 * number is known. */
static void display_governor(ch_buf *b, const display_view *v)
{
    const char *with_slot = NULL, *without = NULL;
    if (text_is(v->stage, CH_GOVERNOR_EXIT)) {
        with_slot = "vacated slot ";
        without = "vacated ";
    } else if (text_is(v->stage, CH_GOVERNOR_ENTER)) {
        with_slot = "obtained slot ";
        without = "obtained slot on ";
    } else if (text_is(v->stage, CH_GOVERNOR_TIMEOUT)) {
        without = "failed to obtain a slot on ";
    } else if (text_is(v->stage, CH_GOVERNOR_EVICTION)) {
        with_slot = "evicted from slot ";
        without = "evicted from ";
    } else {
        without = "unknown stage on Governor ";
    }
    put_str(b, "[governor] ");
    put_text(b, v->identity);
    put_str(b, ": ");
    if (with_slot != NULL && v->sequence > 0) {
        put_str(b, with_slot);
        put_u64(b, v->sequence);
        put_str(b, " on ");
    } else {
        put_str(b, without);
    }
    put_text(b, v->governor);
}

/* go-choria's Event.String() of each type. */
static void display_line(ch_buf *b, const display_view *v)
{
    if (v->type == CH_LIFECYCLE_GOVERNOR) {
        display_governor(b, v);
        return;
    }
    put_str(b, "[");
    put_str(b, ch_lifecycle_type_name(v->type));
    put_str(b, "] ");
    put_text(b, v->identity);
    put_str(b, ": ");
    put_text(b, v->component);
    if (v->type == CH_LIFECYCLE_STARTUP || v->type == CH_LIFECYCLE_ALIVE ||
        v->type == CH_LIFECYCLE_UPGRADED) {
        put_str(b, " version ");
        put_text(b, v->version);
    }
    if (v->type == CH_LIFECYCLE_UPGRADED) {
        put_str(b, " to ");
        put_text(b, v->new_version);
    }
}

char *ch_lifecycle_event_display(const ch_lifecycle_event *ev)
{
    display_view v = {.type = ev->type,
                      .identity = text_of(ev->identity),
                      .component = text_of(ev->component),
                      .version = text_of(ev->version),
                      .new_version = text_of(ev->new_version),
                      .governor = text_of(ev->governor),
                      .stage = text_of(ev->event_type),
                      .sequence = ev->sequence};
    ch_buf b;
    ch_buf_init(&b);
    display_line(&b, &v);
    return ch_buf_steal(&b, NULL);
}

bool ch_lifecycle_event_matches(const ch_lifecycle_event *ev, const char *component,
                                ch_lifecycle_type type)
{
    if (component != NULL && component[0] != '\0' && strcmp(S(ev->component), component) != 0)
        return false;
    return type == CH_LIFECYCLE_UNKNOWN || ev->type == type;
}

/* ---- the viewer's path: fields straight to a line ---- */

#define DISPLAY_FIELDS 6

typedef struct {
    const char *component;
    ch_lifecycle_type type;
    ch_buf *out;
    bool shown;
    char *decoded[DISPLAY_FIELDS]; /* escaped strings, decoded; freed by the caller */
    size_t ndecoded;
} show_state;

/* String token tok as text: in place, or decoded when it has escapes. */
static ch_status token_text(const fields *f, int tok, show_state *st, text *t)
{
    *t = (text){"", 0};
    if (tok < 0)
        return CH_OK;
    const ch_jscan_token *k = &f->doc->tokens[tok];
    if (!(k->flags & CH_JSCAN_ESCAPED)) {
        *t = (text){f->doc->text + k->start, k->end - k->start};
        return CH_OK;
    }
    char **slot = &st->decoded[st->ndecoded++];
    return ch_jscan_string_dup(f->doc, tok, slot, &t->n) == CH_OK ? (t->p = *slot, CH_OK)
                                                                  : CH_ERR_NOMEM;
}

static ch_status take_display(const fields *f, void *closure, ch_error *err)
{
    show_state *st = closure;
    if ((st->component != NULL && st->component[0] != '\0' &&
         !ch_jscan_string_eq(f->doc, f->component, st->component)) ||
        (st->type != CH_LIFECYCLE_UNKNOWN && f->type != st->type))
        return CH_OK;
    display_view v = {.type = f->type, .sequence = f->sequence};
    if (token_text(f, f->identity, st, &v.identity) != CH_OK ||
        token_text(f, f->component, st, &v.component) != CH_OK ||
        token_text(f, f->version, st, &v.version) != CH_OK ||
        token_text(f, f->new_version, st, &v.new_version) != CH_OK ||
        token_text(f, f->governor, st, &v.governor) != CH_OK ||
        token_text(f, f->event_type, st, &v.stage) != CH_OK)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing an event");
    display_line(st->out, &v);
    st->shown = true;
    return CH_OK;
}

ch_status ch_lifecycle_display_append(const void *data, size_t len, const char *component,
                                      ch_lifecycle_type type, ch_buf *out, bool *shown,
                                      ch_error *err)
{
    ch_error local;
    show_state st = {.component = component, .type = type, .out = out};
    reader r = {.take = take_display, .closure = &st};
    ch_status s = parse_for(data, len, &r, err != NULL ? err : &local);
    for (size_t i = 0; i < st.ndecoded; i++)
        free(st.decoded[i]);
    *shown = s == CH_OK && st.shown;
    return s;
}

/* ---- publishing ---- */

ch_status ch_lifecycle_publish(natsConnection *nc, const ch_lifecycle_event *ev,
                               ch_lifecycle_format format, ch_error *err)
{
    char subject[CH_MAX_SUBJECT_LEN];
    char *body = NULL;
    size_t len = 0;
    ch_status st = ch_lifecycle_subject(ev, subject, sizeof(subject), err);
    if (st == CH_OK)
        st = ch_lifecycle_encode(ev, format, &body, &len, err);
    if (st == CH_OK) {
        natsStatus ns = natsConnection_Publish(nc, subject, body, (int)len);
        if (ns != NATS_OK)
            st = ch_error_set(err, CH_ERR_CONNECTION, "publish to %s failed: %s", subject,
                              natsStatus_GetText(ns));
    }
    free(body);
    return st;
}

ch_status ch_lifecycle_announce(natsConnection *nc, ch_lifecycle_type type, const char *identity,
                                const char *component, const char *version, const char *new_version,
                                ch_lifecycle_format format, ch_error *err)
{
    ch_lifecycle_event *ev = NULL;
    ch_status st = ch_lifecycle_event_new(type, identity, component, version, &ev, err);
    if (st == CH_OK && new_version != NULL &&
        (st = ch_lifecycle_event_set_new_version(ev, new_version)) != CH_OK)
        ch_error_set(err, st, "invalid new version");
    if (st == CH_OK)
        st = ch_lifecycle_publish(nc, ev, format, err);
    ch_lifecycle_event_free(ev);
    return st;
}
