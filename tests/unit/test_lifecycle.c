/* Lifecycle events: golden bytes, round trips, detection, display strings, hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "choria/json.h"
#include "choria/lifecycle.h"
#include "choria/util.h"

static const char golden_choria[] =
    "{\"protocol\":\"io.choria.lifecycle.v1.startup\",\"id\":\"01e72410-d734-4611-9485-"
    "8c6a2dd2579b\",\"identity\":\"ginkgo.example.net\",\"component\":\"ginkgo\",\"timestamp\":"
    "1535106973,\"version\":\"1.2.3\"}";

static const char golden_cloudevent[] =
    "{\"specversion\":\"1.0\",\"id\":\"01e72410-d734-4611-9485-8c6a2dd2579b\",\"source\":\"io."
    "choria.lifecycle\",\"type\":\"io.choria.lifecycle.v1.startup\",\"subject\":\"ginkgo."
    "example.net\",\"datacontenttype\":\"application/json\",\"time\":\"2018-08-24T10:36:13Z\","
    "\"data\":{\"protocol\":\"io.choria.lifecycle.v1.startup\",\"id\":\"01e72410-d734-4611-9485-"
    "8c6a2dd2579b\",\"identity\":\"ginkgo.example.net\",\"component\":\"ginkgo\",\"timestamp\":"
    "1535106973,\"version\":\"1.2.3\"}}";

static ch_lifecycle_event *golden_event(void)
{
    ch_lifecycle_event *ev = NULL;
    assert_int_equal(ch_lifecycle_event_new(CH_LIFECYCLE_STARTUP, "ginkgo.example.net", "ginkgo",
                                            "1.2.3", &ev, NULL),
                     CH_OK);
    assert_int_equal(ch_lifecycle_event_set_id(ev, "01e72410-d734-4611-9485-8c6a2dd2579b"), CH_OK);
    ev->timestamp = 1535106973;
    return ev;
}

static char *encode(const ch_lifecycle_event *ev, ch_lifecycle_format f)
{
    char *out = NULL;
    size_t len = 0;
    ch_error err = {0};
    ch_status s = ch_lifecycle_encode(ev, f, &out, &len, &err);
    if (s != CH_OK)
        fail_msg("encode failed: %s", err.msg);
    assert_int_equal(strlen(out), len);
    return out;
}

/* The viewer's path (ch_lifecycle_display_append) must accept exactly what parse accepts,
 * fail with the same error, and show the line the parsed event displays: every document
 * the tests below parse goes through both. */
static void check_viewer_path(const char *json, ch_status want, const ch_error *want_err,
                              const ch_lifecycle_event *ev)
{
    ch_buf out;
    ch_error err = {0};
    bool shown = true;
    ch_buf_init(&out);
    ch_buf_append(&out, "> ", 2);
    ch_status s = ch_lifecycle_display_append(json, strlen(json), NULL, CH_LIFECYCLE_UNKNOWN, &out,
                                              &shown, &err);
    if (s != want)
        fail_msg("viewer path of %s gave %d (%s), want %d", json, s, err.msg, want);
    if (s != CH_OK) {
        assert_false(shown);
        assert_string_equal(err.msg, want_err->msg);
        assert_string_equal(out.data, "> ");
    } else {
        char *line = ch_lifecycle_event_display(ev);
        assert_true(shown);
        assert_string_equal(out.data + 2, line);
        free(line);
    }
    ch_buf_free(&out);
}

static ch_lifecycle_event *parse_ok(const char *json)
{
    ch_lifecycle_event *ev = NULL;
    ch_error err = {0};
    if (ch_lifecycle_parse(json, strlen(json), &ev, &err) != CH_OK)
        fail_msg("parse of %s failed: %s", json, err.msg);
    assert_non_null(ev);
    check_viewer_path(json, CH_OK, NULL, ev);
    return ev;
}

static void parse_fails(const char *json, ch_status want, const char *msg_part)
{
    ch_lifecycle_event *ev = (ch_lifecycle_event *)0x1;
    ch_error err = {0};
    ch_status s = ch_lifecycle_parse(json, strlen(json), &ev, &err);
    if (s != want)
        fail_msg("parse of %s gave %d (%s), want %d", json, s, err.msg, want);
    assert_null(ev);
    if (msg_part != NULL && strstr(err.msg, msg_part) == NULL)
        fail_msg("error '%s' does not mention '%s'", err.msg, msg_part);
    check_viewer_path(json, want, &err, NULL);
}

static void encode_choria_matches_golden_bytes(void **state)
{
    (void)state;
    ch_lifecycle_event *ev = golden_event();
    char *out = encode(ev, CH_LIFECYCLE_FORMAT_CHORIA);
    assert_string_equal(out, golden_choria);
    free(out);
    ch_lifecycle_event_free(ev);
}

static void encode_cloudevent_matches_golden_bytes(void **state)
{
    (void)state;
    ch_lifecycle_event *ev = golden_event();
    char *out = encode(ev, CH_LIFECYCLE_FORMAT_CLOUDEVENT);
    assert_string_equal(out, golden_cloudevent);
    free(out);
    ch_lifecycle_event_free(ev);
}

static void parse_golden_documents_gives_the_fields_and_format(void **state)
{
    (void)state;
    const char *docs[] = {golden_choria, golden_cloudevent};
    ch_lifecycle_format formats[] = {CH_LIFECYCLE_FORMAT_CHORIA, CH_LIFECYCLE_FORMAT_CLOUDEVENT};
    for (int i = 0; i < 2; i++) {
        ch_lifecycle_event *ev = parse_ok(docs[i]);
        assert_int_equal(ev->format, formats[i]);
        assert_int_equal(ev->type, CH_LIFECYCLE_STARTUP);
        assert_string_equal(ev->id, "01e72410-d734-4611-9485-8c6a2dd2579b");
        assert_string_equal(ev->identity, "ginkgo.example.net");
        assert_string_equal(ev->component, "ginkgo");
        assert_string_equal(ev->version, "1.2.3");
        assert_int_equal(ev->timestamp, 1535106973);
        char *again = encode(ev, formats[i]);
        assert_string_equal(again, docs[i]);
        free(again);
        ch_lifecycle_event_free(ev);
    }
}

static ch_lifecycle_event *sample_event(ch_lifecycle_type t)
{
    ch_lifecycle_event *ev = NULL;
    assert_int_equal(
        ch_lifecycle_event_new(t, "n1.example.net", "provision_mode_server", "0.26.15", &ev, NULL),
        CH_OK);
    ev->timestamp = 1718000000 + t;
    if (t == CH_LIFECYCLE_UPGRADED)
        assert_int_equal(ch_lifecycle_event_set_new_version(ev, "0.27.0"), CH_OK);
    if (t == CH_LIFECYCLE_GOVERNOR)
        assert_int_equal(ch_lifecycle_event_set_governor(ev, "PROVISION", 3, CH_GOVERNOR_ENTER),
                         CH_OK);
    return ev;
}

static void round_trip_every_type_in_both_formats(void **state)
{
    (void)state;
    ch_lifecycle_format formats[] = {CH_LIFECYCLE_FORMAT_CHORIA, CH_LIFECYCLE_FORMAT_CLOUDEVENT};
    for (int t = 0; t < CH_LIFECYCLE_TYPE_COUNT; t++) {
        for (int f = 0; f < 2; f++) {
            ch_lifecycle_event *ev = sample_event((ch_lifecycle_type)t);
            char *doc = encode(ev, formats[f]);
            ch_lifecycle_event *back = parse_ok(doc);
            assert_int_equal(back->type, t);
            assert_int_equal(back->format, formats[f]);
            assert_string_equal(back->id, ev->id);
            assert_string_equal(back->identity, "n1.example.net");
            assert_string_equal(back->component, "provision_mode_server");
            assert_int_equal(back->timestamp, 1718000000 + t);
            if (t == CH_LIFECYCLE_STARTUP || t == CH_LIFECYCLE_ALIVE || t == CH_LIFECYCLE_UPGRADED)
                assert_string_equal(back->version, "0.26.15");
            else
                assert_null(back->version);
            if (t == CH_LIFECYCLE_UPGRADED)
                assert_string_equal(back->new_version, "0.27.0");
            if (t == CH_LIFECYCLE_GOVERNOR) {
                assert_string_equal(back->governor, "PROVISION");
                assert_int_equal(back->sequence, 3);
                assert_string_equal(back->event_type, "enter");
            }
            char *again = encode(back, formats[f]);
            assert_string_equal(again, doc);
            free(again);
            free(doc);
            ch_lifecycle_event_free(back);
            ch_lifecycle_event_free(ev);
        }
    }
}

static void choria_format_has_type_specific_fields_in_go_order(void **state)
{
    (void)state;
    const char *want[] = {
        ",\"timestamp\":1718000000,\"version\":\"0.26.15\"}",
        ",\"timestamp\":1718000001}",
        ",\"timestamp\":1718000002}",
        ",\"timestamp\":1718000003,\"version\":\"0.26.15\"}",
        (",\"timestamp\":1718000004,\"governor\":\"PROVISION\",\"sequence\":3,"
         "\"event_type\":\"enter\"}"),
        ",\"timestamp\":1718000005,\"version\":\"0.26.15\",\"new_version\":\"0.27.0\"}",
    };
    for (int t = 0; t < CH_LIFECYCLE_TYPE_COUNT; t++) {
        ch_lifecycle_event *ev = sample_event((ch_lifecycle_type)t);
        char *doc = encode(ev, CH_LIFECYCLE_FORMAT_CHORIA);
        char prefix[128];
        snprintf(prefix, sizeof(prefix), "{\"protocol\":\"io.choria.lifecycle.v1.%s\",\"id\":\"",
                 ch_lifecycle_type_name((ch_lifecycle_type)t));
        assert_memory_equal(doc, prefix, strlen(prefix));
        size_t n = strlen(doc), w = strlen(want[t]);
        assert_in_range(n, w + 1, SIZE_MAX);
        assert_string_equal(doc + n - w, want[t]);
        free(doc);
        ch_lifecycle_event_free(ev);
    }
}

static void legacy_protocol_ids_are_accepted_and_normalised(void **state)
{
    (void)state;
    for (int t = 0; t < CH_LIFECYCLE_TYPE_COUNT; t++) {
        char doc[512];
        const char *name = ch_lifecycle_type_name((ch_lifecycle_type)t);
        snprintf(doc, sizeof(doc),
                 "{\"protocol\":\"choria:lifecycle:%s:1\",\"id\":\"x\",\"identity\":\"n1\","
                 "\"component\":\"server\",\"timestamp\":5,\"governor\":\"G\"}",
                 name);
        ch_lifecycle_event *ev = parse_ok(doc);
        assert_int_equal(ev->type, t);
        assert_int_equal(ev->format, CH_LIFECYCLE_FORMAT_CHORIA);
        char *out = encode(ev, CH_LIFECYCLE_FORMAT_CHORIA);
        char want[128];
        snprintf(want, sizeof(want), "{\"protocol\":\"io.choria.lifecycle.v1.%s\",", name);
        assert_memory_equal(out, want, strlen(want));
        free(out);
        ch_lifecycle_event_free(ev);
    }
    /* Inside a CloudEvent too. */
    ch_lifecycle_event *ev = parse_ok(
        "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"id\":\"1\",\"data\":"
        "{\"protocol\":\"choria:lifecycle:provisioned:1\",\"identity\":\"n1\",\"component\":\"c\","
        "\"timestamp\":1}}");
    assert_int_equal(ev->type, CH_LIFECYCLE_PROVISIONED);
    assert_int_equal(ev->format, CH_LIFECYCLE_FORMAT_CLOUDEVENT);
    ch_lifecycle_event_free(ev);
}

static void unknown_formats_and_protocols_are_rejected(void **state)
{
    (void)state;
    parse_fails("{\"specversion\":\"0.1\",\"source\":\"message/io.choria.lifecycle\"}",
                CH_ERR_INVALID, "unsupported event format");
    parse_fails("{\"protocol\":\"other\"}", CH_ERR_INVALID, "unsupported event format");
    parse_fails("{\"specversion\":1.0,\"source\":\"io.choria.lifecycle\"}", CH_ERR_INVALID,
                "unsupported event format");
    parse_fails("{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle.x\"}", CH_ERR_INVALID,
                "unsupported event format");
    parse_fails("{\"protocol\":[\"io.choria.lifecycle.v1.startup\"]}", CH_ERR_INVALID,
                "unsupported event format");
    parse_fails("[]", CH_ERR_INVALID, "unsupported event format");
    parse_fails("\"io.choria.lifecycle\"", CH_ERR_INVALID, "unsupported event format");
    parse_fails("{}", CH_ERR_INVALID, "unsupported event format");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.bogus\",\"identity\":\"a\","
                "\"component\":\"b\"}",
                CH_ERR_INVALID, "unknown protocol");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v2.startup\",\"identity\":\"a\","
                "\"component\":\"b\"}",
                CH_ERR_INVALID, "unknown protocol");
    parse_fails("{\"protocol\":\"io.choria.lifecycle\",\"identity\":\"a\",\"component\":\"b\"}",
                CH_ERR_INVALID, "unknown protocol");
    parse_fails("{\"protocol\":\"choria:lifecycle:startup:2\",\"identity\":\"a\","
                "\"component\":\"b\"}",
                CH_ERR_INVALID, "unknown protocol");
    /* A CloudEvent whose data is no lifecycle event, or which has none. */
    parse_fails("{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\"}", CH_ERR_INVALID,
                "no data");
    parse_fails(
        "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"data\":{\"protocol\":"
        "\"other\"}}",
        CH_ERR_INVALID, "not a lifecycle event");
    parse_fails("{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"data\":\"x\"}",
                CH_ERR_INVALID, "not a lifecycle event");
}

static char *read_interop(const char *name)
{
    char path[1024];
    char *buf = NULL;
    snprintf(path, sizeof(path), "%s/lifecycle/%s", CH_TEST_DATA, name);
    ch_error err = {0};
    if (ch_read_file(path, 1 << 20, &buf, NULL, &err) != CH_OK)
        fail_msg("cannot read %s: %s", path, err.msg);
    return buf;
}

static void interop_choria_format_shutdown_parses(void **state)
{
    (void)state;
    char *doc = read_interop("choriaFormatShutdown.json");
    ch_lifecycle_event *ev = parse_ok(doc);
    assert_int_equal(ev->format, CH_LIFECYCLE_FORMAT_CHORIA);
    assert_int_equal(ev->type, CH_LIFECYCLE_SHUTDOWN);
    assert_string_equal(ev->id, "cb6f1dbc-d65b-49b9-907e-e4a51bee75f8");
    assert_string_equal(ev->identity, "dev1.devco.net");
    assert_string_equal(ev->component, "server");
    assert_int_equal(ev->timestamp, 1575482338);
    char *line = ch_lifecycle_event_display(ev);
    assert_string_equal(line, "[shutdown] dev1.devco.net: server");
    free(line);
    ch_lifecycle_event_free(ev);
    free(doc);
}

static void interop_cloudevent_shutdown_with_other_key_order_and_extra_version_parses(void **state)
{
    (void)state;
    char *doc = read_interop("cloudEventFormatShutdown.json");
    ch_lifecycle_event *ev = parse_ok(doc);
    assert_int_equal(ev->format, CH_LIFECYCLE_FORMAT_CLOUDEVENT);
    assert_int_equal(ev->type, CH_LIFECYCLE_SHUTDOWN);
    assert_string_equal(ev->id, "01e72410-d734-4611-9485-8c6a2dd2579b");
    assert_string_equal(ev->identity, "ginkgo.example.net");
    assert_string_equal(ev->component, "ginkgo");
    assert_int_equal(ev->timestamp, 1535106973);
    /* A shutdown event has no version: the extra field is ignored, as in go-choria. */
    assert_null(ev->version);
    char *subject = calloc(1, 128);
    assert_int_equal(ch_lifecycle_subject(ev, subject, 128, NULL), CH_OK);
    assert_string_equal(subject, "choria.lifecycle.event.shutdown.ginkgo");
    free(subject);
    ch_lifecycle_event_free(ev);
    free(doc);
}

static void check_display(ch_lifecycle_event *ev, const char *want)
{
    char *line = ch_lifecycle_event_display(ev);
    assert_non_null(line);
    assert_string_equal(line, want);
    free(line);
}

static void display_strings_match_go_choria_for_every_type(void **state)
{
    (void)state;
    ch_lifecycle_event *ev = NULL;
    assert_int_equal(
        ch_lifecycle_event_new(CH_LIFECYCLE_STARTUP, "node.example", "ginkgo", "1.2.3", &ev, NULL),
        CH_OK);
    check_display(ev, "[startup] node.example: ginkgo version 1.2.3");
    ev->type = CH_LIFECYCLE_ALIVE;
    check_display(ev, "[alive] node.example: ginkgo version 1.2.3");
    ev->type = CH_LIFECYCLE_SHUTDOWN;
    check_display(ev, "[shutdown] node.example: ginkgo");
    ev->type = CH_LIFECYCLE_PROVISIONED;
    check_display(ev, "[provisioned] node.example: ginkgo");
    ev->type = CH_LIFECYCLE_UPGRADED;
    assert_int_equal(ch_lifecycle_event_set_new_version(ev, "1.3.0"), CH_OK);
    check_display(ev, "[upgraded] node.example: ginkgo version 1.2.3 to 1.3.0");
    ch_lifecycle_event_free(ev);
}

static void display_strings_cover_every_governor_stage(void **state)
{
    (void)state;
    struct {
        const char *stage;
        uint64_t seq;
        const char *want;
    } cases[] = {
        {"enter", 2, "[governor] n1: obtained slot 2 on PROV"},
        {"enter", 0, "[governor] n1: obtained slot on PROV"},
        {"exit", 7, "[governor] n1: vacated slot 7 on PROV"},
        {"exit", 0, "[governor] n1: vacated PROV"},
        {"timeouts", 3, "[governor] n1: failed to obtain a slot on PROV"},
        {"eviction", 18446744073709551615ULL,
         "[governor] n1: evicted from slot 18446744073709551615 on PROV"},
        {"eviction", 0, "[governor] n1: evicted from PROV"},
        {"paused", 1, "[governor] n1: unknown stage on Governor PROV"},
        {NULL, 1, "[governor] n1: unknown stage on Governor PROV"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ch_lifecycle_event *ev = NULL;
        assert_int_equal(
            ch_lifecycle_event_new(CH_LIFECYCLE_GOVERNOR, "n1", "server", NULL, &ev, NULL), CH_OK);
        assert_int_equal(ch_lifecycle_event_set_governor(ev, "PROV", cases[i].seq, cases[i].stage),
                         CH_OK);
        check_display(ev, cases[i].want);
        ch_lifecycle_event_free(ev);
    }
}

static void governor_event_without_name_is_rejected(void **state)
{
    (void)state;
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.governor\",\"identity\":\"n1\","
                "\"component\":\"c\",\"timestamp\":1,\"sequence\":1,\"event_type\":\"enter\"}",
                CH_ERR_INVALID, "governor name is not set");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.governor\",\"identity\":\"n1\","
                "\"component\":\"c\",\"governor\":\"\",\"timestamp\":1}",
                CH_ERR_INVALID, "governor name is not set");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.governor\",\"identity\":\"n1\","
                "\"component\":\"c\",\"governor\":\"G\",\"sequence\":-1}",
                CH_ERR_INVALID, "sequence");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.governor\",\"identity\":\"n1\","
                "\"component\":\"c\",\"governor\":\"G\",\"sequence\":1.5}",
                CH_ERR_INVALID, "sequence");
    ch_lifecycle_event *ev =
        parse_ok("{\"protocol\":\"io.choria.lifecycle.v1.governor\",\"identity\":\"n1\","
                 "\"component\":\"c\",\"governor\":\"G\",\"timestamp\":1}");
    assert_int_equal(ev->sequence, 0);
    assert_null(ev->event_type);
    check_display(ev, "[governor] n1: unknown stage on Governor G");
    ch_lifecycle_event_free(ev);
}

static void required_fields_and_field_types_are_enforced(void **state)
{
    (void)state;
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.startup\",\"component\":\"c\","
                "\"timestamp\":1}",
                CH_ERR_INVALID, "no identity");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.startup\",\"identity\":\"\","
                "\"component\":\"c\",\"timestamp\":1}",
                CH_ERR_INVALID, "no identity");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.startup\",\"identity\":\"n\","
                "\"timestamp\":1}",
                CH_ERR_INVALID, "no component");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.startup\",\"identity\":5,"
                "\"component\":\"c\"}",
                CH_ERR_INVALID, "identity must be a string");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.startup\",\"identity\":\"n\","
                "\"component\":\"c\",\"timestamp\":\"1535106973\"}",
                CH_ERR_INVALID, "timestamp must be an integer");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.startup\",\"identity\":\"n\","
                "\"component\":\"c\",\"timestamp\":1535106973.5}",
                CH_ERR_INVALID, "timestamp must be an integer");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.startup\",\"identity\":\"n\","
                "\"component\":\"c\",\"version\":123}",
                CH_ERR_INVALID, "version must be a string");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.upgraded\",\"identity\":\"n\","
                "\"component\":\"c\",\"new_version\":true}",
                CH_ERR_INVALID, "new_version must be a string");
}

static void lenient_fields_default_like_go_choria(void **state)
{
    (void)state;
    int64_t before = ch_now_unix();
    /* No id, no timestamp, null version, unknown fields, a field of another type. */
    ch_lifecycle_event *ev =
        parse_ok("{\"extra\":{\"deep\":[1,2,3]},\"new_version\":42,\"version\":null,"
                 "\"component\":\"c\",\"identity\":\"n\",\"protocol\":"
                 "\"io.choria.lifecycle.v1.startup\"}");
    assert_int_equal(ev->type, CH_LIFECYCLE_STARTUP);
    assert_non_null(ev->id);
    assert_int_equal(strlen(ev->id), 36);
    assert_int_equal(ev->id[14], '4');
    assert_in_range(ev->timestamp, before, ch_now_unix());
    assert_null(ev->version);
    assert_null(ev->new_version);
    check_display(ev, "[startup] n: c version ");
    ch_lifecycle_event_free(ev);
}

static void cloudevent_data_variants_follow_sdk_go(void **state)
{
    (void)state;
    const char *inner = "{\"protocol\":\"io.choria.lifecycle.v1.alive\",\"identity\":\"n1\","
                        "\"component\":\"server\",\"timestamp\":7,\"version\":\"1\"}";
    char *b64 = ch_base64_encode(inner, strlen(inner));
    char doc[1024];

    snprintf(doc, sizeof(doc),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"id\":\"x\","
             "\"data_base64\":\"%s\"}",
             b64);
    ch_lifecycle_event *ev = parse_ok(doc);
    assert_int_equal(ev->type, CH_LIFECYCLE_ALIVE);
    assert_int_equal(ev->timestamp, 7);
    ch_lifecycle_event_free(ev);

    /* A non-JSON content type carries the document as a string. */
    ev =
        parse_ok("{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"datacontenttype\":"
                 "\"text/plain\",\"data\":\"{\\\"protocol\\\":\\\"io.choria.lifecycle.v1.alive\\\","
                 "\\\"identity\\\":\\\"n2\\\",\\\"component\\\":\\\"s\\\"}\"}");
    assert_string_equal(ev->identity, "n2");
    ch_lifecycle_event_free(ev);

    /* JSON content types with parameters and +json still carry an object. */
    snprintf(doc, sizeof(doc),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"datacontenttype\":"
             "\" Application/JSON; charset=utf-8\",\"data\":%s}",
             inner);
    ev = parse_ok(doc);
    ch_lifecycle_event_free(ev);
    snprintf(doc, sizeof(doc),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"datacontenttype\":"
             "\"application/x+json\",\"data\":%s}",
             inner);
    ev = parse_ok(doc);
    ch_lifecycle_event_free(ev);

    snprintf(doc, sizeof(doc),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"datacontenttype\":"
             "\"text/plain\",\"data\":%s}",
             inner);
    parse_fails(doc, CH_ERR_INVALID, "data must be a string");
    snprintf(doc, sizeof(doc),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"time\":\"yesterday\","
             "\"data\":%s}",
             inner);
    parse_fails(doc, CH_ERR_INVALID, "RFC 3339");
    snprintf(doc, sizeof(doc),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"subject\":5,"
             "\"data\":%s}",
             inner);
    parse_fails(doc, CH_ERR_INVALID, "subject must be a string");
    parse_fails("{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\","
                "\"data_base64\":\"!!\"}",
                CH_ERR_INVALID, "not base64");
    snprintf(doc, sizeof(doc),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"data\":%s}",
             golden_cloudevent);
    parse_fails(doc, CH_ERR_UNSUPPORTED, "CloudEvent inside a CloudEvent");
    free(b64);
}

static void cloudevent_envelope_follows_sdk_go_writer(void **state)
{
    (void)state;
    ch_lifecycle_event *ev = golden_event();
    char *out;

    /* jsoniter does not HTML-escape envelope attributes; Go's json.Marshal of data does. */
    assert_int_equal(ch_lifecycle_event_set_identity(ev, " a<b>&c\x01\t "), CH_OK);
    out = encode(ev, CH_LIFECYCLE_FORMAT_CLOUDEVENT);
    assert_non_null(strstr(out, ",\"subject\":\"a<b>&c\\u0001\",\"datacontenttype\""));
    assert_non_null(strstr(out, "\"identity\":\" a\\u003cb\\u003e\\u0026c\\u0001\\t \""));
    free(out);

    /* A blank identity leaves the subject out. */
    assert_int_equal(ch_lifecycle_event_set_identity(ev, "  "), CH_OK);
    out = encode(ev, CH_LIFECYCLE_FORMAT_CLOUDEVENT);
    assert_null(strstr(out, "\"subject\""));
    assert_non_null(strstr(out, "\"type\":\"io.choria.lifecycle.v1.startup\",\"datacontenttype\""));
    free(out);

    /* An empty id and a timestamp RFC 3339 cannot hold are errors. */
    char *none = (char *)0x1;
    ch_error err = {0};
    assert_int_equal(ch_lifecycle_event_set_id(ev, " "), CH_OK);
    assert_int_equal(ch_lifecycle_encode(ev, CH_LIFECYCLE_FORMAT_CLOUDEVENT, &none, NULL, &err),
                     CH_ERR_INVALID);
    assert_null(none);
    assert_int_equal(ch_lifecycle_event_set_id(ev, "x"), CH_OK);
    ev->timestamp = 253402300800;
    assert_int_equal(ch_lifecycle_encode(ev, CH_LIFECYCLE_FORMAT_CLOUDEVENT, &none, NULL, &err),
                     CH_ERR_INVALID);
    ev->timestamp = 253402300799;
    out = encode(ev, CH_LIFECYCLE_FORMAT_CLOUDEVENT);
    assert_non_null(strstr(out, "\"time\":\"9999-12-31T23:59:59Z\""));
    free(out);
    /* The Choria format has no such limits. */
    ev->timestamp = -5;
    out = encode(ev, CH_LIFECYCLE_FORMAT_CHORIA);
    assert_non_null(strstr(out, "\"timestamp\":-5,"));
    free(out);
    assert_int_equal(ch_lifecycle_encode(ev, CH_LIFECYCLE_FORMAT_UNKNOWN, &none, NULL, &err),
                     CH_ERR_INVALID);
    ev->type = CH_LIFECYCLE_UNKNOWN;
    assert_int_equal(ch_lifecycle_encode(ev, CH_LIFECYCLE_FORMAT_CHORIA, &none, NULL, &err),
                     CH_ERR_INVALID);
    ch_lifecycle_event_free(ev);
}

static void garbage_truncated_deep_and_huge_input_is_rejected(void **state)
{
    (void)state;
    ch_lifecycle_event *ev = NULL;
    ch_error err = {0};
    const char *garbage[] = {
        "",          " ",
        "null",      "{",
        "}",         "{\"protocol\":",
        "\x01\x02",  "{\"protocol\":\"io.choria.lifecycle.v1.startup\"} trailing",
        "\xff\xfe{}"};
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        assert_int_not_equal(ch_lifecycle_parse(garbage[i], strlen(garbage[i]), &ev, &err), CH_OK);
        assert_null(ev);
    }
    assert_int_not_equal(ch_lifecycle_parse(NULL, 0, &ev, NULL), CH_OK);
    /* Every strict prefix of both golden documents is invalid JSON. */
    const char *docs[] = {golden_choria, golden_cloudevent};
    for (int d = 0; d < 2; d++)
        for (size_t n = 0; n < strlen(docs[d]); n++) {
            assert_int_not_equal(ch_lifecycle_parse(docs[d], n, &ev, &err), CH_OK);
            assert_null(ev);
        }
    /* Nesting deeper than CH_MAX_JSON_DEPTH inside an unknown field. */
    size_t depth = CH_MAX_JSON_DEPTH + 10;
    char *deep = malloc(2 * depth + 256);
    int n = sprintf(deep, "{\"protocol\":\"io.choria.lifecycle.v1.shutdown\",\"identity\":\"n\","
                          "\"component\":\"c\",\"x\":");
    for (size_t i = 0; i < depth; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    assert_int_equal(ch_lifecycle_parse(deep, (size_t)n, &ev, &err), CH_ERR_TOO_LARGE);
    assert_null(ev);
    free(deep);
    /* Larger than CH_MAX_MESSAGE_SIZE. */
    size_t big = (size_t)CH_MAX_MESSAGE_SIZE + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    memcpy(huge, golden_choria, strlen(golden_choria));
    assert_int_equal(ch_lifecycle_parse(huge, big, &ev, &err), CH_ERR_TOO_LARGE);
    assert_null(ev);
    free(huge);
}

static void subject_names_type_and_component(void **state)
{
    (void)state;
    ch_lifecycle_event *ev = golden_event();
    char subject[CH_MAX_SUBJECT_LEN + 1];
    ch_error err = {0};
    assert_int_equal(ch_lifecycle_subject(ev, subject, sizeof(subject), &err), CH_OK);
    assert_string_equal(subject, "choria.lifecycle.event.startup.ginkgo");

    assert_int_equal(ch_lifecycle_event_set_component(ev, ""), CH_OK);
    assert_int_equal(ch_lifecycle_subject(ev, subject, sizeof(subject), &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, "event is not complete, component has not been set");
    assert_int_equal(ch_lifecycle_event_set_component(ev, NULL), CH_OK);
    assert_int_equal(ch_lifecycle_subject(ev, subject, sizeof(subject), &err), CH_ERR_INVALID);
    assert_string_equal(err.msg, "event is not complete, component has not been set");

    const char *bad[] = {"a.b", "a*", ">", "a b", "a\tb"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ch_lifecycle_event_set_component(ev, bad[i]), CH_OK);
        assert_int_equal(ch_lifecycle_subject(ev, subject, sizeof(subject), &err), CH_ERR_INVALID);
    }
    assert_int_equal(ch_lifecycle_event_set_component(ev, "provision_mode_server"), CH_OK);
    char small[20];
    assert_int_equal(ch_lifecycle_subject(ev, small, sizeof(small), &err), CH_ERR_TOO_LARGE);
    assert_string_equal(small, "");
    char *longc = malloc(CH_MAX_SUBJECT_LEN + 1);
    memset(longc, 'x', CH_MAX_SUBJECT_LEN);
    longc[CH_MAX_SUBJECT_LEN] = '\0';
    assert_int_equal(ch_lifecycle_event_set_component(ev, longc), CH_OK);
    char *big = malloc(4096);
    assert_int_equal(ch_lifecycle_subject(ev, big, 4096, &err), CH_ERR_TOO_LARGE);
    free(big);
    free(longc);
    ch_lifecycle_event_free(ev);
}

static void viewer_filter_matches_component_exactly_and_type(void **state)
{
    (void)state;
    ch_lifecycle_event *ev = sample_event(CH_LIFECYCLE_PROVISIONED);
    assert_true(ch_lifecycle_event_matches(ev, NULL, CH_LIFECYCLE_UNKNOWN));
    assert_true(ch_lifecycle_event_matches(ev, "", CH_LIFECYCLE_UNKNOWN));
    assert_true(ch_lifecycle_event_matches(ev, "provision_mode_server", CH_LIFECYCLE_UNKNOWN));
    assert_true(ch_lifecycle_event_matches(ev, "provision_mode_server", CH_LIFECYCLE_PROVISIONED));
    assert_true(ch_lifecycle_event_matches(ev, NULL, CH_LIFECYCLE_PROVISIONED));
    assert_false(ch_lifecycle_event_matches(ev, "provision_mode", CH_LIFECYCLE_UNKNOWN));
    assert_false(ch_lifecycle_event_matches(ev, "Provision_mode_server", CH_LIFECYCLE_UNKNOWN));
    assert_false(ch_lifecycle_event_matches(ev, NULL, CH_LIFECYCLE_STARTUP));
    assert_false(ch_lifecycle_event_matches(ev, "provision_mode_server", CH_LIFECYCLE_SHUTDOWN));
    ch_lifecycle_event_free(ev);
}

static void viewer_path_shows_only_what_passes_the_filter(void **state)
{
    (void)state;
    ch_buf out;
    bool shown = true;
    ch_buf_init(&out);
    ch_buf_append(&out, "x", 1);
    assert_int_equal(ch_lifecycle_display_append(golden_cloudevent, strlen(golden_cloudevent),
                                                 "other", CH_LIFECYCLE_UNKNOWN, &out, &shown, NULL),
                     CH_OK);
    assert_false(shown);
    assert_int_equal(ch_lifecycle_display_append(golden_cloudevent, strlen(golden_cloudevent),
                                                 "ginkgo", CH_LIFECYCLE_SHUTDOWN, &out, &shown,
                                                 NULL),
                     CH_OK);
    assert_false(shown);
    assert_string_equal(out.data, "x");
    assert_int_equal(ch_lifecycle_display_append(golden_choria, strlen(golden_choria), "ginkgo",
                                                 CH_LIFECYCLE_STARTUP, &out, &shown, NULL),
                     CH_OK);
    assert_true(shown);
    assert_string_equal(out.data, "x[startup] ginkgo.example.net: ginkgo version 1.2.3");
    /* The component filter compares the decoded string; a displayed escape is decoded. */
    static const char escaped[] =
        "{\"protocol\":\"io.choria.lifecycle.v1.governor\",\"identity\":\"caf\\u00e9\","
        "\"component\":\"g\\u0069nkgo\",\"governor\":\"a\\/b\",\"sequence\":7,"
        "\"event_type\":\"ent\\u0065r\"}";
    out.len = 0;
    assert_int_equal(ch_lifecycle_display_append(escaped, strlen(escaped), "ginkgo",
                                                 CH_LIFECYCLE_UNKNOWN, &out, &shown, NULL),
                     CH_OK);
    assert_true(shown);
    assert_string_equal(out.data, "[governor] caf\xc3\xa9: obtained slot 7 on a/b");
    ch_buf_free(&out);
}

static void type_names_round_trip(void **state)
{
    (void)state;
    const char *names[] = {"startup", "shutdown", "provisioned", "alive", "governor", "upgraded"};
    for (int t = 0; t < CH_LIFECYCLE_TYPE_COUNT; t++) {
        assert_string_equal(ch_lifecycle_type_name((ch_lifecycle_type)t), names[t]);
        assert_int_equal(ch_lifecycle_type_from_name(names[t]), t);
        char want[64];
        snprintf(want, sizeof(want), "io.choria.lifecycle.v1.%s", names[t]);
        assert_string_equal(ch_lifecycle_protocol((ch_lifecycle_type)t), want);
    }
    assert_int_equal(ch_lifecycle_type_from_name("Startup"), CH_LIFECYCLE_UNKNOWN);
    assert_int_equal(ch_lifecycle_type_from_name(""), CH_LIFECYCLE_UNKNOWN);
    assert_int_equal(ch_lifecycle_type_from_name(NULL), CH_LIFECYCLE_UNKNOWN);
    assert_string_equal(ch_lifecycle_type_name(CH_LIFECYCLE_UNKNOWN), "unknown");
    assert_string_equal(ch_lifecycle_type_name((ch_lifecycle_type)42), "unknown");
    assert_null(ch_lifecycle_protocol(CH_LIFECYCLE_UNKNOWN));
    assert_string_equal(ch_lifecycle_format_name(CH_LIFECYCLE_FORMAT_CHORIA), "choria");
    assert_string_equal(ch_lifecycle_format_name(CH_LIFECYCLE_FORMAT_CLOUDEVENT), "cloudevent");
    assert_string_equal(ch_lifecycle_format_name(CH_LIFECYCLE_FORMAT_UNKNOWN), "unknown");
}

static void new_event_has_fresh_id_and_current_time(void **state)
{
    (void)state;
    ch_lifecycle_event *a = NULL, *b = NULL;
    int64_t before = ch_now_unix();
    assert_int_equal(ch_lifecycle_event_new(CH_LIFECYCLE_STARTUP, "n", "c", "1", &a, NULL), CH_OK);
    assert_int_equal(ch_lifecycle_event_new(CH_LIFECYCLE_STARTUP, NULL, NULL, NULL, &b, NULL),
                     CH_OK);
    assert_int_equal(strlen(a->id), 36);
    assert_int_equal(a->id[8], '-');
    assert_int_equal(a->id[14], '4');
    assert_string_not_equal(a->id, b->id);
    assert_in_range(a->timestamp, before, ch_now_unix());
    assert_int_equal(a->format, CH_LIFECYCLE_FORMAT_CHORIA);
    assert_null(b->identity);
    /* NULL fields encode as empty strings. */
    char *out = encode(b, CH_LIFECYCLE_FORMAT_CHORIA);
    assert_non_null(strstr(out, "\"identity\":\"\",\"component\":\"\""));
    assert_non_null(strstr(out, "\"version\":\"\"}"));
    free(out);
    ch_lifecycle_event_free(a);
    ch_lifecycle_event_free(b);
    ch_lifecycle_event_free(NULL);

    ch_error err = {0};
    ch_lifecycle_event *c = (ch_lifecycle_event *)0x1;
    assert_int_equal(ch_lifecycle_event_new(CH_LIFECYCLE_UNKNOWN, "n", "c", "1", &c, &err),
                     CH_ERR_INVALID);
    assert_null(c);
    assert_string_equal(err.msg, "unknown event type");
}

/* ---- parsing on the JSON scanner: behaviour kept from the jansson parser and its edges ---- */

#define STARTUP_PREFIX "{\"protocol\":\"io.choria.lifecycle.v1.startup\",\"identity\":\"n\","

static void duplicate_keys_are_rejected_anywhere_in_the_document(void **state)
{
    (void)state;
    const char *inner = "{\"protocol\":\"io.choria.lifecycle.v1.alive\",\"identity\":\"n1\","
                        "\"identity\":\"n2\",\"component\":\"s\"}";
    char doc[512];
    parse_fails(STARTUP_PREFIX "\"component\":\"c\",\"component\":\"d\"}", CH_ERR_INVALID,
                "duplicate object key 'component'");
    /* Keys are compared once escapes are decoded. */
    parse_fails(STARTUP_PREFIX "\"component\":\"c\",\"comp\\u006fnent\":\"d\"}", CH_ERR_INVALID,
                "duplicate object key");
    /* Inside an unknown field, as jansson's JSON_REJECT_DUPLICATES did. */
    parse_fails(STARTUP_PREFIX "\"component\":\"c\",\"x\":[{\"a\":1,\"a\":1}]}", CH_ERR_INVALID,
                "duplicate object key 'a'");
    /* In a CloudEvent's data object, and in data carried as base64. */
    snprintf(doc, sizeof(doc),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"data\":%s}", inner);
    parse_fails(doc, CH_ERR_INVALID, "duplicate object key 'identity'");
    char *b64 = ch_base64_encode(inner, strlen(inner));
    snprintf(doc, sizeof(doc),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"data_base64\":\"%s\"}",
             b64);
    parse_fails(doc, CH_ERR_INVALID, "duplicate object key 'identity'");
    free(b64);
    /* The same key in different objects is fine. */
    ch_lifecycle_event *ev =
        parse_ok(STARTUP_PREFIX "\"component\":\"c\",\"x\":{\"identity\":1},\"y\":[{\"a\":1},"
                                "{\"a\":2}]}");
    assert_string_equal(ev->identity, "n");
    ch_lifecycle_event_free(ev);
}

static void escaped_keys_and_values_are_decoded(void **state)
{
    (void)state;
    ch_lifecycle_event *ev =
        parse_ok("{\"pr\\u006ftocol\":\"io.choria.lifecycle.v1.st\\u0061rtup\",\"identity\":"
                 "\"caf\\u00e9.example.net\",\"\\u0063omponent\":\"a\\/b\\\"c\\\\\",\"version\":"
                 "\"\\ud83d\\ude00\",\"timestamp\":5}");
    assert_int_equal(ev->type, CH_LIFECYCLE_STARTUP);
    assert_string_equal(ev->identity, "caf\xc3\xa9.example.net");
    assert_string_equal(ev->component, "a/b\"c\\");
    assert_string_equal(ev->version, "\xf0\x9f\x98\x80");
    ch_lifecycle_event_free(ev);
    /* The CloudEvent envelope's markers too; pretty-printed data is parsed in place. */
    ev = parse_ok("{ \"specversion\" : \"1.\\u0030\" ,\n \"source\" : \"io.choria.lifecycle\" ,\n"
                  " \"data\" : {\n  \"protocol\" : \"io.choria.lifecycle.v1.shutdown\" ,\n"
                  "  \"identity\" : \"n\" , \"component\" : \"c\" , \"timestamp\" : 9\n }\n}\n");
    assert_int_equal(ev->format, CH_LIFECYCLE_FORMAT_CLOUDEVENT);
    assert_int_equal(ev->type, CH_LIFECYCLE_SHUTDOWN);
    assert_int_equal(ev->timestamp, 9);
    ch_lifecycle_event_free(ev);
}

static void strings_that_a_c_string_would_cut_short_are_rejected(void **state)
{
    (void)state;
    char doc[512];
    const char *inner = "{\"protocol\":\"io.choria.lifecycle.v1.alive\",\"identity\":\"n1\","
                        "\"component\":\"s\"}";
    parse_fails(STARTUP_PREFIX "\"component\":\"c\\u0000evil\"}", CH_ERR_INVALID,
                "component contains a NUL character");
    parse_fails("{\"protocol\":\"io.choria.lifecycle.v1.startup\\u0000\",\"identity\":\"n\","
                "\"component\":\"c\"}",
                CH_ERR_INVALID, "unknown protocol");
    /* A time that is RFC 3339 up to a NUL is not RFC 3339. */
    snprintf(doc, sizeof(doc),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"time\":"
             "\"2018-08-24T10:36:13Z\\u0000x\",\"data\":%s}",
             inner);
    parse_fails(doc, CH_ERR_INVALID, "RFC 3339");
    snprintf(doc, sizeof(doc),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"datacontenttype\":"
             "\"application/json\\u0000;\",\"data\":%s}",
             inner);
    parse_fails(doc, CH_ERR_INVALID, "datacontenttype contains a NUL");
    /* Unknown fields may hold anything valid JSON allows, as in Go: NUL characters, integers
     * beyond 64 bits, reals beyond a double. (jansson refused these documents.) */
    ch_lifecycle_event *ev =
        parse_ok(STARTUP_PREFIX "\"component\":\"c\",\"x\":\"a\\u0000b\",\"big\":"
                                "123456789012345678901234567890,\"huge\":1e400}");
    assert_string_equal(ev->component, "c");
    ch_lifecycle_event_free(ev);
}

static void integer_fields_are_exact_at_their_limits(void **state)
{
    (void)state;
    ch_lifecycle_event *ev =
        parse_ok(STARTUP_PREFIX "\"component\":\"c\",\"timestamp\":-9223372036854775808}");
    assert_int_equal(ev->timestamp, INT64_MIN);
    ch_lifecycle_event_free(ev);
    ev = parse_ok(STARTUP_PREFIX "\"component\":\"c\",\"timestamp\":9223372036854775807}");
    assert_int_equal(ev->timestamp, INT64_MAX);
    ch_lifecycle_event_free(ev);
    parse_fails(STARTUP_PREFIX "\"component\":\"c\",\"timestamp\":9223372036854775808}",
                CH_ERR_INVALID, "timestamp must be an integer");
    parse_fails(STARTUP_PREFIX "\"component\":\"c\",\"timestamp\":1e3}", CH_ERR_INVALID,
                "timestamp must be an integer");

    const char *governor = "{\"protocol\":\"io.choria.lifecycle.v1.governor\",\"identity\":\"n\","
                           "\"component\":\"c\",\"governor\":\"G\",\"sequence\":";
    char doc[256];
    snprintf(doc, sizeof(doc), "%s9223372036854775807}", governor);
    ev = parse_ok(doc);
    assert_int_equal(ev->sequence, UINT64_C(9223372036854775807));
    ch_lifecycle_event_free(ev);
    snprintf(doc, sizeof(doc), "%s-0}", governor);
    ev = parse_ok(doc);
    assert_int_equal(ev->sequence, 0);
    ch_lifecycle_event_free(ev);
    const char *bad[] = {"9223372036854775808", "18446744073709551615", "-1", "1e2", "\"1\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(doc, sizeof(doc), "%s%s}", governor, bad[i]);
        parse_fails(doc, CH_ERR_INVALID, "sequence must be a non-negative integer");
    }
}

/* STARTUP_PREFIX + component + an unknown array of n zeros. */
static char *with_values(size_t n)
{
    char *doc = malloc(2 * n + 256);
    int o = sprintf(doc, STARTUP_PREFIX "\"component\":\"c\",\"x\":[");
    for (size_t i = 0; i < n; i++)
        o += sprintf(doc + o, i ? ",0" : "0");
    strcpy(doc + o, "]}");
    return doc;
}

static void long_attributes_and_documents_with_many_values_parse(void **state)
{
    (void)state;
    /* Past the stack token array: the scan moves to the heap. */
    char *doc = with_values(5000);
    ch_lifecycle_event *ev = parse_ok(doc);
    assert_string_equal(ev->component, "c");
    ch_lifecycle_event_free(ev);
    free(doc);
    /* Beyond 65536 values an event is refused rather than costing megabytes of tokens. */
    doc = with_values(70000);
    parse_fails(doc, CH_ERR_TOO_LARGE, "values");
    free(doc);

    /* Attributes longer than the parser's stack buffers. */
    char big[1024];
    char fraction[200];
    memset(fraction, '0', sizeof(fraction) - 1);
    fraction[sizeof(fraction) - 1] = '\0';
    snprintf(big, sizeof(big),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"time\":"
             "\"2018-08-24T10:36:13.%s1Z\",\"datacontenttype\":\"application/json; "
             "charset=utf-8; a=%s\",\"data\":{\"protocol\":\"io.choria.lifecycle.v1.alive\","
             "\"identity\":\"n\",\"component\":\"c\"}}",
             fraction, fraction);
    ev = parse_ok(big);
    assert_int_equal(ev->type, CH_LIFECYCLE_ALIVE);
    ch_lifecycle_event_free(ev);
    snprintf(big, sizeof(big),
             "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"time\":"
             "\"2018-08-24T10:36:13.%sZZ\",\"data\":{}}",
             fraction);
    parse_fails(big, CH_ERR_INVALID, "RFC 3339");
    /* An unknown protocol is quoted up to 80 bytes. */
    snprintf(big, sizeof(big), "{\"protocol\":\"io.choria.lifecycle.%s\"}", fraction);
    parse_fails(big, CH_ERR_INVALID, "unknown protocol 'io.choria.lifecycle.000");
    ch_error err = {0};
    assert_int_equal(ch_lifecycle_parse(big, strlen(big), &ev, &err), CH_ERR_INVALID);
    assert_int_equal(strlen(err.msg), strlen("unknown protocol '' received") + 80);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_choria_matches_golden_bytes),
        cmocka_unit_test(encode_cloudevent_matches_golden_bytes),
        cmocka_unit_test(parse_golden_documents_gives_the_fields_and_format),
        cmocka_unit_test(round_trip_every_type_in_both_formats),
        cmocka_unit_test(choria_format_has_type_specific_fields_in_go_order),
        cmocka_unit_test(legacy_protocol_ids_are_accepted_and_normalised),
        cmocka_unit_test(unknown_formats_and_protocols_are_rejected),
        cmocka_unit_test(interop_choria_format_shutdown_parses),
        cmocka_unit_test(interop_cloudevent_shutdown_with_other_key_order_and_extra_version_parses),
        cmocka_unit_test(display_strings_match_go_choria_for_every_type),
        cmocka_unit_test(display_strings_cover_every_governor_stage),
        cmocka_unit_test(governor_event_without_name_is_rejected),
        cmocka_unit_test(required_fields_and_field_types_are_enforced),
        cmocka_unit_test(lenient_fields_default_like_go_choria),
        cmocka_unit_test(cloudevent_data_variants_follow_sdk_go),
        cmocka_unit_test(cloudevent_envelope_follows_sdk_go_writer),
        cmocka_unit_test(garbage_truncated_deep_and_huge_input_is_rejected),
        cmocka_unit_test(subject_names_type_and_component),
        cmocka_unit_test(viewer_filter_matches_component_exactly_and_type),
        cmocka_unit_test(viewer_path_shows_only_what_passes_the_filter),
        cmocka_unit_test(type_names_round_trip),
        cmocka_unit_test(new_event_has_fresh_id_and_current_time),
        cmocka_unit_test(duplicate_keys_are_rejected_anywhere_in_the_document),
        cmocka_unit_test(escaped_keys_and_values_are_decoded),
        cmocka_unit_test(strings_that_a_c_string_would_cut_short_are_rejected),
        cmocka_unit_test(integer_fields_are_exact_at_their_limits),
        cmocka_unit_test(long_attributes_and_documents_with_many_values_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
