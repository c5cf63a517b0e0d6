/* Lifecycle events: build, encode (Choria and CloudEvents), parse, subject, display. */
#include "choria/lifecycle.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* A string as sdk-go's envelope writer (jsoniter ConfigFastest) writes it: only '"', '\\'
 * and control characters are escaped, '<' '>' '&' stay raw. jsoniter would also copy
 * invalid UTF-8 raw; we write U+FFFD instead so the document stays valid JSON. */
static void append_jsoniter_str(ch_buf *b, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t start = 0, i = 0;
    ch_buf_append(b, "\"", 1);
    while (i < len) {
        const char *esc = NULL;
        char tmp[7];
        size_t adv = 1;
        if (s[i] == '"')
            esc = "\\\"";
        else if (s[i] == '\\')
            esc = "\\\\";
        else if (s[i] == '\n')
            esc = "\\n";
        else if (s[i] == '\r')
            esc = "\\r";
        else if (s[i] == '\t')
            esc = "\\t";
        else if (s[i] < 0x20) {
            snprintf(tmp, sizeof(tmp), "\\u00%c%c", hex[s[i] >> 4], hex[s[i] & 15]);
            esc = tmp;
        } else if (s[i] >= 0x80) {
            adv = utf8_len(s + i, len - i);
            if (adv == 0) {
                esc = "\\ufffd";
                adv = 1;
            }
        }
        if (esc != NULL) {
            ch_buf_append(b, str + start, i - start);
            ch_buf_append_str(b, esc);
            start = i + adv;
        }
        i += adv;
    }
    ch_buf_append(b, str + start, len - start);
    ch_buf_append(b, "\"", 1);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* s without leading and trailing ASCII white space, as (start, length). */
static const char *trimmed(const char *s, size_t *len)
{
    size_t n = strlen(s);
    while (n > 0 && is_space(*s)) {
        s++;
        n--;
    }
    while (n > 0 && is_space(s[n - 1]))
        n--;
    *len = n;
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

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* go-choria EventFormatFromJSON, plus the legacy protocol ids (see the header). */
static ch_lifecycle_format detect_format(const json_t *root)
{
    if (!json_is_object(root))
        return CH_LIFECYCLE_FORMAT_UNKNOWN;
    const char *protocol = ch_json_get_string(root, "protocol");
    if (protocol != NULL &&
        (has_prefix(protocol, CH_LIFECYCLE_SOURCE) || has_prefix(protocol, "choria:lifecycle")))
        return CH_LIFECYCLE_FORMAT_CHORIA;
    const char *specversion = ch_json_get_string(root, "specversion");
    const char *source = ch_json_get_string(root, "source");
    if (specversion != NULL && source != NULL && strcmp(specversion, "1.0") == 0 &&
        strcmp(source, CH_LIFECYCLE_SOURCE) == 0)
        return CH_LIFECYCLE_FORMAT_CLOUDEVENT;
    return CH_LIFECYCLE_FORMAT_UNKNOWN;
}

/* Copies the string at key into *slot; missing or null leaves *slot as it is. */
static ch_status take_string(const json_t *obj, const char *key, char **slot, ch_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return CH_OK;
    if (!json_is_string(v))
        return ch_error_set(err, CH_ERR_INVALID, "event field %s must be a string", key);
    if (set_str(slot, json_string_value(v)) != CH_OK)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing an event");
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

static ch_status parse_choria(const json_t *obj, ch_lifecycle_event *ev, ch_error *err)
{
    const char *protocol = ch_json_get_string(obj, "protocol");
    ev->type = CH_LIFECYCLE_UNKNOWN;
    for (int i = 0; protocol != NULL && i < CH_LIFECYCLE_TYPE_COUNT; i++)
        if (strcmp(protocol, protocols[i]) == 0 || strcmp(protocol, legacy_protocols[i]) == 0)
            ev->type = (ch_lifecycle_type)i;
    if (ev->type == CH_LIFECYCLE_UNKNOWN)
        return ch_error_set(err, CH_ERR_INVALID, "unknown protocol '%.80s' received", S(protocol));

    ch_status s;
    if ((s = take_string(obj, "id", &ev->id, err)) != CH_OK ||
        (s = take_string(obj, "identity", &ev->identity, err)) != CH_OK ||
        (s = take_string(obj, "component", &ev->component, err)) != CH_OK)
        return s;
    /* go-choria pre-fills id and timestamp before unmarshalling over them. */
    if (ev->id == NULL && set_fresh_id(ev) != CH_OK)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing an event");
    json_t *ts = json_object_get(obj, "timestamp");
    if (ts == NULL || json_is_null(ts))
        ev->timestamp = ch_now_unix();
    else if (json_is_integer(ts))
        ev->timestamp = (int64_t)json_integer_value(ts);
    else
        return ch_error_set(err, CH_ERR_INVALID, "event field timestamp must be an integer");
    if ((s = require_string(ev, ev->identity, "identity", err)) != CH_OK ||
        (s = require_string(ev, ev->component, "component", err)) != CH_OK)
        return s;

    switch (ev->type) {
    case CH_LIFECYCLE_STARTUP:
    case CH_LIFECYCLE_ALIVE:
        return take_string(obj, "version", &ev->version, err);
    case CH_LIFECYCLE_UPGRADED:
        if ((s = take_string(obj, "version", &ev->version, err)) != CH_OK)
            return s;
        return take_string(obj, "new_version", &ev->new_version, err);
    case CH_LIFECYCLE_GOVERNOR: {
        if ((s = take_string(obj, "governor", &ev->governor, err)) != CH_OK ||
            (s = take_string(obj, "event_type", &ev->event_type, err)) != CH_OK)
            return s;
        json_t *seq = json_object_get(obj, "sequence");
        if (seq != NULL && !json_is_null(seq)) {
            if (!json_is_integer(seq) || json_integer_value(seq) < 0)
                return ch_error_set(err, CH_ERR_INVALID,
                                    "event field sequence must be a non-negative integer");
            ev->sequence = (uint64_t)json_integer_value(seq);
        }
        if (ev->governor == NULL || ev->governor[0] == '\0')
            return ch_error_set(err, CH_ERR_INVALID, "governor name is not set");
        return CH_OK;
    }
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
    while (n > 0 && is_space(*ct)) {
        ct++;
        n--;
    }
    while (n > 0 && is_space(ct[n - 1]))
        n--;
    return n == 0 || (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n == 9 && strncasecmp(ct, "text/json", 9) == 0) ||
           (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

/* The inner event of a CloudEvent: a Choria-format object. */
static ch_status parse_inner(const json_t *inner, ch_lifecycle_event *ev, ch_error *err)
{
    ch_lifecycle_format f = detect_format(inner);
    if (f == CH_LIFECYCLE_FORMAT_CLOUDEVENT)
        return ch_error_set(err, CH_ERR_UNSUPPORTED, "a CloudEvent inside a CloudEvent");
    if (f != CH_LIFECYCLE_FORMAT_CHORIA)
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent data is not a lifecycle event");
    return parse_choria(inner, ev, err);
}

static ch_status parse_inner_bytes(const char *data, size_t len, ch_lifecycle_event *ev,
                                   ch_error *err)
{
    json_t *inner = ch_json_parse(data, len, CH_MAX_MESSAGE_SIZE, CH_MAX_JSON_DEPTH, err);
    if (inner == NULL)
        return err->code;
    ch_status s = parse_inner(inner, ev, err);
    json_decref(inner);
    return s;
}

static ch_status check_attribute(const json_t *root, const char *key, ch_error *err)
{
    json_t *v = json_object_get(root, key);
    if (v != NULL && !json_is_null(v) && !json_is_string(v))
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent attribute %s must be a string", key);
    return CH_OK;
}

static ch_status parse_cloudevent(const json_t *root, ch_lifecycle_event *ev, ch_error *err)
{
    static const char *const attributes[] = {"id", "type", "subject", "datacontenttype", "time"};
    ch_status s;
    for (size_t i = 0; i < sizeof(attributes) / sizeof(attributes[0]); i++)
        if ((s = check_attribute(root, attributes[i], err)) != CH_OK)
            return s;
    const char *when = ch_json_get_string(root, "time");
    int64_t unused;
    if (when != NULL && when[0] != '\0' && ch_parse_rfc3339(when, &unused) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent time '%.40s' is not RFC 3339", when);

    json_t *b64 = json_object_get(root, "data_base64");
    json_t *data = json_object_get(root, "data");
    if (b64 != NULL && !json_is_null(b64)) {
        unsigned char *raw = NULL;
        size_t raw_len = 0;
        if (!json_is_string(b64))
            return ch_error_set(err, CH_ERR_INVALID, "CloudEvent data_base64 must be a string");
        s = ch_base64_decode(json_string_value(b64), json_string_length(b64), &raw, &raw_len);
        if (s == CH_ERR_NOMEM)
            return ch_error_set(err, s, "out of memory decoding CloudEvent data");
        if (s != CH_OK)
            return ch_error_set(err, CH_ERR_INVALID, "CloudEvent data_base64 is not base64");
        s = parse_inner_bytes((const char *)raw, raw_len, ev, err);
        free(raw);
        return s;
    }
    if (data == NULL || json_is_null(data))
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent carries no data");
    if (content_type_is_json(ch_json_get_string(root, "datacontenttype")))
        return parse_inner(data, ev, err);
    /* Any other content type carries the document as a string. */
    if (!json_is_string(data))
        return ch_error_set(err, CH_ERR_INVALID, "CloudEvent data must be a string");
    return parse_inner_bytes(json_string_value(data), json_string_length(data), ev, err);
}

ch_status ch_lifecycle_parse(const void *data, size_t len, ch_lifecycle_event **out, ch_error *err)
{
    ch_error local;
    ch_lifecycle_event *ev = NULL;
    ch_status s;
    *out = NULL;
    if (err == NULL)
        err = &local;

    json_t *root = ch_json_parse(data, len, CH_MAX_MESSAGE_SIZE, CH_MAX_JSON_DEPTH, err);
    if (root == NULL)
        return err->code;
    ch_lifecycle_format format = detect_format(root);
    if (format == CH_LIFECYCLE_FORMAT_UNKNOWN) {
        s = ch_error_set(err, CH_ERR_INVALID, "unsupported event format");
        goto done;
    }
    if ((ev = calloc(1, sizeof(*ev))) == NULL) {
        s = ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing an event");
        goto done;
    }
    ev->format = format;
    if (format == CH_LIFECYCLE_FORMAT_CHORIA)
        s = parse_choria(root, ev, err);
    else
        s = parse_cloudevent(root, ev, err);

done:
    json_decref(root);
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
