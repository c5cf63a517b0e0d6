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

/* The value of key in object obj; -1 when it is missing or null, which go-choria's
 * decoder treats alike. */
static int field(const ch_jscan_doc *doc, int obj, const char *key)
{
    int v = ch_jscan_object_get(doc, obj, key);
    return v >= 0 && ch_jscan_type_of(doc, v) == CH_JSCAN_NULL ? -1 : v;
}

/* The value of key in obj when it is a string, else -1. */
static int string_field(const ch_jscan_doc *doc, int obj, const char *key)
{
    int v = ch_jscan_object_get(doc, obj, key);
    return v >= 0 && ch_jscan_type_of(doc, v) == CH_JSCAN_STRING ? v : -1;
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

/* go-choria EventFormatFromJSON, plus the legacy protocol ids (see the header). */
static ch_lifecycle_format detect_format(const ch_jscan_doc *doc, int obj)
{
    if (ch_jscan_type_of(doc, obj) != CH_JSCAN_OBJECT)
        return CH_LIFECYCLE_FORMAT_UNKNOWN;
    int protocol = string_field(doc, obj, "protocol");
    if (protocol >= 0 && (string_has_prefix(doc, protocol, CH_LIFECYCLE_SOURCE) ||
                          string_has_prefix(doc, protocol, "choria:lifecycle")))
        return CH_LIFECYCLE_FORMAT_CHORIA;
    int specversion = string_field(doc, obj, "specversion");
    int source = string_field(doc, obj, "source");
    if (specversion >= 0 && source >= 0 && ch_jscan_string_eq(doc, specversion, "1.0") &&
        ch_jscan_string_eq(doc, source, CH_LIFECYCLE_SOURCE))
        return CH_LIFECYCLE_FORMAT_CLOUDEVENT;
    return CH_LIFECYCLE_FORMAT_UNKNOWN;
}

/* Copies the string at key into *slot; missing or null leaves *slot as it is. */
static ch_status take_string(const ch_jscan_doc *doc, int obj, const char *key, char **slot,
                             ch_error *err)
{
    int v = field(doc, obj, key);
    char *copy;
    size_t len;
    if (v < 0)
        return CH_OK;
    if (ch_jscan_type_of(doc, v) != CH_JSCAN_STRING)
        return ch_error_set(err, CH_ERR_INVALID, "event field %s must be a string", key);
    if (ch_jscan_string_dup(doc, v, &copy, &len) != CH_OK)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing an event");
    /* Only a \u0000 escape can put a NUL into a string; the scan rejects raw ones. */
    if ((doc->tokens[v].flags & CH_JSCAN_ESCAPED) && memchr(copy, '\0', len) != NULL) {
        free(copy);
        return ch_error_set(err, CH_ERR_INVALID, "event field %s contains a NUL character", key);
    }
    free(*slot);
    *slot = copy;
    return CH_OK;
}

static ch_status require_string(const ch_lifecycle_event *ev, const char *value, const char *key,
                                ch_error *err)
{
    if (value == NULL || value[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "%s event has no %s",
                            ch_lifecycle_type_name(ev->type), key);
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

static ch_status parse_governor(const ch_jscan_doc *doc, int obj, ch_lifecycle_event *ev,
                                ch_error *err)
{
    ch_status s;
    if ((s = take_string(doc, obj, "governor", &ev->governor, err)) != CH_OK ||
        (s = take_string(doc, obj, "event_type", &ev->event_type, err)) != CH_OK)
        return s;
    int seq = field(doc, obj, "sequence");
    int64_t v;
    if (seq >= 0) {
        if (ch_jscan_int64(doc, seq, &v) != CH_OK || v < 0)
            return ch_error_set(err, CH_ERR_INVALID,
                                "event field sequence must be a non-negative integer");
        ev->sequence = (uint64_t)v;
    }
    if (ev->governor == NULL || ev->governor[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "governor name is not set");
    return CH_OK;
}

static ch_status parse_choria(const ch_jscan_doc *doc, int obj, ch_lifecycle_event *ev,
                              ch_error *err)
{
    int protocol = string_field(doc, obj, "protocol");
    if ((ev->type = protocol_type(doc, protocol)) == CH_LIFECYCLE_UNKNOWN) {
        char shown[81] = "";
        if (protocol >= 0)
            ch_jscan_string_copy(doc, protocol, shown, sizeof(shown));
        return ch_error_set(err, CH_ERR_INVALID, "unknown protocol '%s' received", shown);
    }

    ch_status s;
    if ((s = take_string(doc, obj, "id", &ev->id, err)) != CH_OK ||
        (s = take_string(doc, obj, "identity", &ev->identity, err)) != CH_OK ||
        (s = take_string(doc, obj, "component", &ev->component, err)) != CH_OK)
        return s;
    /* go-choria pre-fills id and timestamp before unmarshalling over them. */
    if (ev->id == NULL && set_fresh_id(ev) != CH_OK)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing an event");
    int ts = field(doc, obj, "timestamp");
    if (ts < 0)
        ev->timestamp = ch_now_unix();
    else if (ch_jscan_int64(doc, ts, &ev->timestamp) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "event field timestamp must be an integer");
    if ((s = require_string(ev, ev->identity, "identity", err)) != CH_OK ||
        (s = require_string(ev, ev->component, "component", err)) != CH_OK)
        return s;

    switch (ev->type) {
    case CH_LIFECYCLE_STARTUP:
    case CH_LIFECYCLE_ALIVE:
        return take_string(doc, obj, "version", &ev->version, err);
    case CH_LIFECYCLE_UPGRADED:
        if ((s = take_string(doc, obj, "version", &ev->version, err)) != CH_OK)
            return s;
        return take_string(doc, obj, "new_version", &ev->new_version, err);
    case CH_LIFECYCLE_GOVERNOR:
        return parse_governor(doc, obj, ev, err);
    default:
        return CH_OK;
    }
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
static ch_status data_is_json(const ch_jscan_doc *doc, int root, bool *json, ch_error *err)
{
    int ct = string_field(doc, root, "datacontenttype");
    char buf[64], *heap = NULL;
    const char *value = NULL;
    ch_status s = ct >= 0 ? c_string(doc, ct, buf, sizeof(buf), &heap, &value) : CH_OK;
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
static ch_status parse_inner(const ch_jscan_doc *doc, int inner, ch_lifecycle_event *ev,
                             ch_error *err)
{
    ch_lifecycle_format f = detect_format(doc, inner);
    if (f == CH_LIFECYCLE_FORMAT_CLOUDEVENT)
        return ch_error_set(err, CH_ERR_UNSUPPORTED, "a CloudEvent inside a CloudEvent");
    if (f != CH_LIFECYCLE_FORMAT_CHORIA)
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent data is not a lifecycle event");
    return parse_choria(doc, inner, ev, err);
}

static ch_status parse_inner_bytes(const char *data, size_t len, ch_lifecycle_event *ev,
                                   ch_error *err)
{
    scanned sd;
    ch_status s = scan_json(&sd, data, len, err);
    if (s == CH_OK)
        s = parse_inner(&sd.doc, 0, ev, err);
    free(sd.heap);
    return s;
}

/* The inner event of a string token: the document itself, or its base64 form. */
static ch_status parse_inner_string(const ch_jscan_doc *doc, int tok, bool base64,
                                    ch_lifecycle_event *ev, ch_error *err)
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
        s = parse_inner_bytes(base64 ? (const char *)raw : text, base64 ? raw_len : len, ev, err);
    free(raw);
    free(text);
    return s;
}

static ch_status check_attribute(const ch_jscan_doc *doc, int root, const char *key, ch_error *err)
{
    int v = field(doc, root, key);
    if (v >= 0 && ch_jscan_type_of(doc, v) != CH_JSCAN_STRING)
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent attribute %s must be a string", key);
    return CH_OK;
}

/* `time`, when a non-empty string, must be RFC 3339. */
static ch_status check_time(const ch_jscan_doc *doc, int root, ch_error *err)
{
    int when = string_field(doc, root, "time");
    if (when < 0 || ch_jscan_string_eq(doc, when, ""))
        return CH_OK;
    char buf[64], *heap = NULL;
    const char *value = NULL;
    int64_t unused;
    ch_status s = c_string(doc, when, buf, sizeof(buf), &heap, &value);
    if (s == CH_OK && ch_parse_rfc3339(value, &unused) != CH_OK)
        s = CH_ERR_INVALID;
    if (s == CH_ERR_NOMEM)
        ch_error_set(err, s, "out of memory parsing an event");
    else if (s != CH_OK)
        ch_error_set(err, s, "CloudEvent time '%.40s' is not RFC 3339", value);
    free(heap);
    return s;
}

static ch_status parse_cloudevent(const ch_jscan_doc *doc, int root, ch_lifecycle_event *ev,
                                  ch_error *err)
{
    static const char *const attributes[] = {"id", "type", "subject", "datacontenttype", "time"};
    ch_status s;
    for (size_t i = 0; i < sizeof(attributes) / sizeof(attributes[0]); i++)
        if ((s = check_attribute(doc, root, attributes[i], err)) != CH_OK)
            return s;
    if ((s = check_time(doc, root, err)) != CH_OK)
        return s;

    int b64 = field(doc, root, "data_base64");
    if (b64 >= 0) {
        if (ch_jscan_type_of(doc, b64) != CH_JSCAN_STRING)
            return ch_error_set(err, CH_ERR_INVALID, "CloudEvent data_base64 must be a string");
        return parse_inner_string(doc, b64, true, ev, err);
    }
    int data = field(doc, root, "data");
    bool json = true;
    if (data < 0)
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent carries no data");
    if ((s = data_is_json(doc, root, &json, err)) != CH_OK)
        return s;
    if (json)
        return parse_inner(doc, data, ev, err); /* in place: no second parse */
    /* Any other content type carries the document as a string. */
    if (ch_jscan_type_of(doc, data) != CH_JSCAN_STRING)
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent data must be a string");
    return parse_inner_string(doc, data, false, ev, err);
}

ch_status ch_lifecycle_parse(const void *data, size_t len, ch_lifecycle_event **out, ch_error *err)
{
    ch_error local;
    ch_lifecycle_event *ev = NULL;
    scanned sd;
    *out = NULL;
    if (err == NULL)
        err = &local;

    ch_status s = scan_json(&sd, data, len, err);
    if (s != CH_OK)
        goto out;
    ch_lifecycle_format format = detect_format(&sd.doc, 0);
    if (format == CH_LIFECYCLE_FORMAT_UNKNOWN) {
        s = ch_error_set(err, CH_ERR_INVALID, "unsupported event format");
        goto out;
    }
    if ((ev = calloc(1, sizeof(*ev))) == NULL) {
        s = ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing an event");
        goto out;
    }
    ev->format = format;
    if (format == CH_LIFECYCLE_FORMAT_CHORIA)
        s = parse_choria(&sd.doc, 0, ev, err);
    else
        s = parse_cloudevent(&sd.doc, 0, ev, err);

out:
    free(sd.heap);
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

static void display_governor(ch_buf *b, const ch_lifecycle_event *ev)
{
    const char *id = S(ev->identity), *gov = S(ev->governor), *stage = S(ev->event_type);
    uint64_t seq = ev->sequence;
    if (strcmp(stage, CH_GOVERNOR_EXIT) == 0) {
        if (seq > 0)
            ch_buf_printf(b, "[governor] %s: vacated slot %" PRIu64 " on %s", id, seq, gov);
        else
            ch_buf_printf(b, "[governor] %s: vacated %s", id, gov);
    } else if (strcmp(stage, CH_GOVERNOR_ENTER) == 0) {
        if (seq > 0)
            ch_buf_printf(b, "[governor] %s: obtained slot %" PRIu64 " on %s", id, seq, gov);
        else
            ch_buf_printf(b, "[governor] %s: obtained slot on %s", id, gov);
    } else if (strcmp(stage, CH_GOVERNOR_TIMEOUT) == 0) {
        ch_buf_printf(b, "[governor] %s: failed to obtain a slot on %s", id, gov);
    } else if (strcmp(stage, CH_GOVERNOR_EVICTION) == 0) {
        if (seq > 0)
            ch_buf_printf(b, "[governor] %s: evicted from slot %" PRIu64 " on %s", id, seq, gov);
        else
            ch_buf_printf(b, "[governor] %s: evicted from %s", id, gov);
    } else {
        ch_buf_printf(b, "[governor] %s: unknown stage on Governor %s", id, gov);
    }
}

char *ch_lifecycle_event_display(const ch_lifecycle_event *ev)
{
    ch_buf b;
    ch_buf_init(&b);
    const char *id = S(ev->identity), *comp = S(ev->component);
    switch (ev->type) {
    case CH_LIFECYCLE_STARTUP:
    case CH_LIFECYCLE_ALIVE:
        ch_buf_printf(&b, "[%s] %s: %s version %s", type_names[ev->type], id, comp, S(ev->version));
        break;
    case CH_LIFECYCLE_UPGRADED:
        ch_buf_printf(&b, "[upgraded] %s: %s version %s to %s", id, comp, S(ev->version),
                      S(ev->new_version));
        break;
    case CH_LIFECYCLE_GOVERNOR:
        display_governor(&b, ev);
        break;
    default:
        ch_buf_printf(&b, "[%s] %s: %s", ch_lifecycle_type_name(ev->type), id, comp);
        break;
    }
    return ch_buf_steal(&b, NULL);
}

bool ch_lifecycle_event_matches(const ch_lifecycle_event *ev, const char *component,
                                ch_lifecycle_type type)
{
    if (component != NULL && component[0] != '\0' && strcmp(S(ev->component), component) != 0)
        return false;
    return type == CH_LIFECYCLE_UNKNOWN || ev->type == type;
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
