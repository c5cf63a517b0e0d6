/* Choria lifecycle events (go-choria `lifecycle/`): build, encode in the Choria and the
 * CloudEvents 1.0 formats, parse either format, the subject they are published on, the
 * one-line display string of `choria tool event`, and the viewer's filter.
 *
 * Parsing rules (go-choria parses by json.Unmarshal into a typed struct; we follow it except
 * where noted):
 * - Format detection as go-choria EventFormatFromJSON: a top-level string `protocol` starting
 *   with "io.choria.lifecycle" is the Choria format; `specversion` "1.0" together with
 *   `source` "io.choria.lifecycle" is a CloudEvent whose `data` holds a Choria-format event;
 *   anything else is rejected. Deviation: a top-level legacy protocol
 *   "choria:lifecycle:<type>:1" is also accepted as the Choria format (go-choria's detector
 *   misses it, so upstream never parses one although its per-type parsers would accept it).
 * - `protocol` must be exactly "io.choria.lifecycle.v1.<type>" or the legacy id, for one of
 *   the six known types; legacy ids are normalised.
 * - Required: `identity` and `component`, non-empty strings (every upstream schema requires
 *   them; an event without them cannot be attributed or routed). Stricter than go-choria.
 * - Lenient as go-choria: a missing or null `id` gets a fresh UUID and a missing or null
 *   `timestamp` gets the current time (go-choria pre-fills both before unmarshalling);
 *   missing `version`, `new_version`, `event_type` and `sequence` are empty/0.
 * - A governor event needs a non-empty `governor` (as go-choria); `event_type` may be any
 *   string (the display line then says "unknown stage").
 * - Keys are matched exactly (Go's decoder also matches them case-insensitively; we do not),
 *   key order does not matter, unknown fields and fields of other types are ignored, a known
 *   field of the wrong JSON type is an error (as Go), `timestamp` must be an integer and
 *   `sequence` a non-negative integer below 2^63 (Go allows up to 2^64-1).
 * - CloudEvent envelope: `time`, when a non-empty string, must be RFC 3339; the event is in
 *   `data` (a JSON object, or a string when `datacontenttype` is not JSON) or in
 *   `data_base64`, as sdk-go reads it. The inner event must be in the Choria format (go-choria
 *   would recurse into a CloudEvent inside a CloudEvent; we refuse that).
 * Input is bounded by CH_MAX_MESSAGE_SIZE and CH_MAX_JSON_DEPTH. Strings may hold any valid
 * UTF-8; code that puts `identity` into a subject must check it with ch_identity_valid(). */
#ifndef CHORIA_LIFECYCLE_H
#define CHORIA_LIFECYCLE_H

#include <nats/nats.h>

#include "choria/common.h"
#include "choria/json.h"

typedef enum {
    CH_LIFECYCLE_UNKNOWN = -1,
    CH_LIFECYCLE_STARTUP = 0,
    CH_LIFECYCLE_SHUTDOWN,
    CH_LIFECYCLE_PROVISIONED,
    CH_LIFECYCLE_ALIVE,
    CH_LIFECYCLE_GOVERNOR,
    CH_LIFECYCLE_UPGRADED,
} ch_lifecycle_type;

#define CH_LIFECYCLE_TYPE_COUNT 6

typedef enum {
    CH_LIFECYCLE_FORMAT_UNKNOWN = 0,
    CH_LIFECYCLE_FORMAT_CHORIA,     /* the bare event JSON ("legacy" format in go-choria) */
    CH_LIFECYCLE_FORMAT_CLOUDEVENT, /* CloudEvents 1.0 envelope, go-choria's default */
} ch_lifecycle_format;

/* Governor stages (`event_type`). */
#define CH_GOVERNOR_ENTER "enter"
#define CH_GOVERNOR_EXIT "exit"
#define CH_GOVERNOR_TIMEOUT "timeouts"
#define CH_GOVERNOR_EVICTION "eviction"

/* The source of every CloudEvent and the prefix of every protocol id. */
#define CH_LIFECYCLE_SOURCE "io.choria.lifecycle"

/* One event. String fields are malloc'd and owned by the event; NULL reads as "". Use the
 * setters to replace them. Fields that do not belong to `type` are ignored by the encoders. */
typedef struct {
    ch_lifecycle_type type;
    ch_lifecycle_format format; /* what parse found; new() sets CH_LIFECYCLE_FORMAT_CHORIA */
    char *id;                   /* v4 UUID with dashes */
    char *identity;
    char *component;
    int64_t timestamp; /* Unix seconds */
    char *version;     /* startup, alive, upgraded (the old version) */
    char *new_version; /* upgraded */
    char *governor;    /* governor: the governor's name */
    uint64_t sequence; /* governor: the slot */
    char *event_type;  /* governor: CH_GOVERNOR_* */
} ch_lifecycle_event;

/* "startup", "shutdown", "provisioned", "alive", "governor", "upgraded"; "unknown" otherwise.
 * (go-choria's Type.String() says "Startup" for Shutdown; that quirk is not reproduced.) */
const char *ch_lifecycle_type_name(ch_lifecycle_type type);

/* The type named name (exact, lower case), CH_LIFECYCLE_UNKNOWN when it is none. */
ch_lifecycle_type ch_lifecycle_type_from_name(const char *name);

/* "choria", "cloudevent" or "unknown". */
const char *ch_lifecycle_format_name(ch_lifecycle_format format);

/* A new event of type with a fresh id (ch_uuid_v4), timestamp now, the given identity,
 * component and version (each may be NULL) and format CH_LIFECYCLE_FORMAT_CHORIA. */
ch_status ch_lifecycle_event_new(ch_lifecycle_type type, const char *identity,
                                 const char *component, const char *version,
                                 ch_lifecycle_event **out, ch_error *err);

void ch_lifecycle_event_free(ch_lifecycle_event *ev);

/* Replace one string field with a copy of value (NULL clears it). CH_ERR_NOMEM on failure,
 * leaving the old value in place. */
ch_status ch_lifecycle_event_set_id(ch_lifecycle_event *ev, const char *value);
ch_status ch_lifecycle_event_set_identity(ch_lifecycle_event *ev, const char *value);
ch_status ch_lifecycle_event_set_component(ch_lifecycle_event *ev, const char *value);
ch_status ch_lifecycle_event_set_version(ch_lifecycle_event *ev, const char *value);
ch_status ch_lifecycle_event_set_new_version(ch_lifecycle_event *ev, const char *value);
/* Sets governor name, sequence and stage (event_type may be any CH_GOVERNOR_* string). */
ch_status ch_lifecycle_event_set_governor(ch_lifecycle_event *ev, const char *name,
                                          uint64_t sequence, const char *event_type);

/* "io.choria.lifecycle.v1.<type>", NULL for an unknown type. */
const char *ch_lifecycle_protocol(ch_lifecycle_type type);

/* Encodes byte for byte as go-choria does. Choria format: protocol, id, identity,
 * component, timestamp, then version (startup, alive), version + new_version (upgraded) or
 * governor + sequence + event_type (governor), Go json.Marshal escaping. CloudEvent:
 * specversion, id, source, type, subject, datacontenttype, time, data (the Choria form),
 * with sdk-go's envelope rules: attributes escaped as jsoniter does (no HTML escaping;
 * invalid UTF-8 becomes U+FFFD so the output stays valid JSON), id and subject trimmed of
 * white space, subject omitted when the identity is blank, an empty id is an error, and
 * the timestamp must fall in 1970..9999. *out is malloc'd and NUL-terminated. */
ch_status ch_lifecycle_encode(const ch_lifecycle_event *ev, ch_lifecycle_format format, char **out,
                              size_t *out_len, ch_error *err);

/* Parses an event in either format (see the rules at the top). On success *out is a new
 * event whose `format` says which format the input was in. */
ch_status ch_lifecycle_parse(const void *data, size_t len, ch_lifecycle_event **out, ch_error *err);

/* "choria.lifecycle.event.<type>.<component>" into out. An empty component fails with
 * "event is not complete, component has not been set" (go-choria's words); a component
 * with '.', '*', '>' or white space, which would change the subject's meaning, is
 * CH_ERR_INVALID; CH_ERR_TOO_LARGE when out_size or CH_MAX_SUBJECT_LEN is too small. */
ch_status ch_lifecycle_subject(const ch_lifecycle_event *ev, char *out, size_t out_size,
                               ch_error *err);

/* The subject `choria tool event` and the provisioner subscribe to. */
#define CH_LIFECYCLE_SUBJECT_ALL "choria.lifecycle.event.>"

/* The components Choria servers announce themselves as. */
#define CH_LIFECYCLE_COMPONENT_PROVISION_MODE "provision_mode_server"
#define CH_LIFECYCLE_COMPONENT_SERVER "server"

/* Encodes ev in format and publishes it on its subject over nc (any thread; nats.c
 * serialises publishes). CH_ERR_CONNECTION when nats.c refuses the publish. */
ch_status ch_lifecycle_publish(natsConnection *nc, const ch_lifecycle_event *ev,
                               ch_lifecycle_format format, ch_error *err);

/* Builds an event of type for identity, component and version (new_version: the version an
 * upgraded event moves to, else NULL) and publishes it as ch_lifecycle_publish does. */
ch_status ch_lifecycle_announce(natsConnection *nc, ch_lifecycle_type type, const char *identity,
                                const char *component, const char *version, const char *new_version,
                                ch_lifecycle_format format, ch_error *err);

/* The display line of go-choria's Event.String(), e.g.
 * "[startup] n1.example.net: provision_mode_server version 0.26.15". Malloc'd; NULL on no
 * memory. Strings are printed raw, as go-choria does. */
char *ch_lifecycle_event_display(const ch_lifecycle_event *ev);

/* The viewer's filter: component (NULL or "" = any) must equal the event's component
 * exactly, and type (CH_LIFECYCLE_UNKNOWN = any) must equal its type. */
bool ch_lifecycle_event_matches(const ch_lifecycle_event *ev, const char *component,
                                ch_lifecycle_type type);

/* The viewer's path, without building an event: parses data by the rules and with the
 * errors of ch_lifecycle_parse, and when the event passes the filter of
 * ch_lifecycle_event_matches (component, type) appends its ch_lifecycle_event_display line
 * (no line end) to out and sets *shown; otherwise out is unchanged and *shown is false.
 * Nothing is allocated but out's growth, unless a displayed string has JSON escapes; an
 * allocation failure of out shows in out->failed. Any thread; data is only read. */
ch_status ch_lifecycle_display_append(const void *data, size_t len, const char *component,
                                      ch_lifecycle_type type, ch_buf *out, bool *shown,
                                      ch_error *err);

#endif
