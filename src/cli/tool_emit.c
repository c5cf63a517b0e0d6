/* `choria tool emit`: publishes lifecycle events. Not a go-choria command; it exists so demos,
 * tests and benchmarks can produce events in either wire format from the command line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "choria/conn.h"
#include "choria/lifecycle.h"
#include "choria/log.h"
#include "cli.h"

typedef struct {
    cli_broker_opts broker;
    ch_lifecycle_type type;
    const char *component, *identity, *version, *new_version, *governor, *governor_event;
    const char *raw;
    uint64_t sequence;
    ch_lifecycle_format format;
    long count;
    long interval_ms;
} emit_opts;

static bool parse_long(const char *s, long min, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < min)
        return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv, emit_opts *o)
{
    static const struct option longopts[] = {
        {"type", required_argument, NULL, 't'},
        {"component", required_argument, NULL, 'c'},
        {"identity", required_argument, NULL, 'i'},
        {"version", required_argument, NULL, 'v'},
        {"new-version", required_argument, NULL, 'n'},
        {"governor", required_argument, NULL, 'g'},
        {"governor-event", required_argument, NULL, 'e'},
        {"sequence", required_argument, NULL, 'q'},
        {"format", required_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'N'},
        {"interval", required_argument, NULL, 'I'},
        {"raw", required_argument, NULL, 'r'},
        {"config", required_argument, NULL, 'C'},
        {"server", required_argument, NULL, 's'},
        {"debug", no_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->type = CH_LIFECYCLE_UNKNOWN;
    o->component = "server";
    o->version = CH_VERSION;
    o->governor_event = CH_GOVERNOR_ENTER;
    o->format = CH_LIFECYCLE_FORMAT_CLOUDEVENT;
    o->count = 1;
    optind = 1;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            if ((o->type = ch_lifecycle_type_from_name(optarg)) == CH_LIFECYCLE_UNKNOWN) {
                fprintf(stderr, "choria: unknown event type '%s'\n", optarg);
                return 1;
            }
            break;
        case 'c':
            o->component = optarg;
            break;
        case 'i':
            o->identity = optarg;
            break;
        case 'v':
            o->version = optarg;
            break;
        case 'n':
            o->new_version = optarg;
            break;
        case 'g':
            o->governor = optarg;
            break;
        case 'e':
            o->governor_event = optarg;
            break;
        case 'q':
            if (!parse_long(optarg, 0, &v)) {
                fprintf(stderr, "choria: --sequence needs a number, got '%s'\n", optarg);
                return 1;
            }
            o->sequence = (uint64_t)v;
            break;
        case 'f':
            if (strcmp(optarg, "cloudevents") == 0 || strcmp(optarg, "cloudevent") == 0)
                o->format = CH_LIFECYCLE_FORMAT_CLOUDEVENT;
            else if (strcmp(optarg, "choria") == 0)
                o->format = CH_LIFECYCLE_FORMAT_CHORIA;
            else {
                fprintf(stderr, "choria: --format is cloudevents or choria, got '%s'\n", optarg);
                return 1;
            }
            break;
        case 'N':
        case 'I':
            if (!parse_long(optarg, 0, &v)) {
                fprintf(stderr, "choria: --%s needs a number, got '%s'\n",
                        c == 'N' ? "count" : "interval", optarg);
                return 1;
            }
            *(c == 'N' ? &o->count : &o->interval_ms) = v;
            break;
        case 'r':
            o->raw = optarg;
            break;
        default:
            if (cli_broker_option(c, optarg, &o->broker))
                break;
            fprintf(stderr, "choria: try 'choria tool emit --help'\n");
            return 1;
        }
    }
    if (o->type == CH_LIFECYCLE_UNKNOWN) {
        fprintf(stderr, "choria: --type is required, try 'choria tool emit --help'\n");
        return 1;
    }
    if (optind < argc) {
        fprintf(stderr, "choria: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    return 0;
}

static ch_status build_event(const emit_opts *o, const char *identity, ch_lifecycle_event **ev,
                             ch_error *err)
{
    ch_status s = ch_lifecycle_event_new(o->type, identity, o->component, o->version, ev, err);
    if (s == CH_OK && o->type == CH_LIFECYCLE_UPGRADED)
        s = ch_lifecycle_event_set_new_version(*ev, o->new_version);
    if (s == CH_OK && o->type == CH_LIFECYCLE_GOVERNOR)
        s = ch_lifecycle_event_set_governor(*ev, o->governor, o->sequence, o->governor_event);
    if (s != CH_OK && err->msg[0] == '\0')
        ch_error_set(err, s, "cannot build the event: %s", ch_status_text(s));
    return s;
}

/* Publishes one event (a fresh id and timestamp each time) or the raw text on its subject. */
static ch_status publish_one(natsConnection *nc, const emit_opts *o, const char *identity,
                             ch_error *err)
{
    ch_lifecycle_event *ev = NULL;
    char subject[CH_MAX_SUBJECT_LEN];
    ch_status s = build_event(o, identity, &ev, err);
    if (s == CH_OK && o->raw == NULL)
        s = ch_lifecycle_publish(nc, ev, o->format, err);
    else if (s == CH_OK && (s = ch_lifecycle_subject(ev, subject, sizeof(subject), err)) == CH_OK) {
        natsStatus ns = natsConnection_PublishString(nc, subject, o->raw);
        if (ns != NATS_OK)
            s = ch_error_set(err, CH_ERR_CONNECTION, "publish failed: %s", natsStatus_GetText(ns));
    }
    ch_lifecycle_event_free(ev);
    return s;
}

int cli_tool_emit(int argc, char **argv)
{
    emit_opts o;
    if (parse_args(argc, argv, &o) != 0)
        return 1;
    ch_log_set_level(o.broker.debug ? CH_LOG_DEBUG : CH_LOG_WARN);

    cli_client client;
    if (cli_client_load(&o.broker, &client) != CH_OK)
        return 1;
    const char *identity = o.identity != NULL ? o.identity : client.identity;
    ch_conn_opts copts = {0};
    ch_conn_opts_from_settings(&client.conn, &copts);
    copts.name = identity; /* the emitted events' identity names the connection too */
    natsConnection *nc = NULL;
    ch_error err;
    ch_error_clear(&err);
    ch_status s = ch_conn_connect(&copts, &nc, &err);
    for (long i = 0; s == CH_OK && i < o.count; i++) {
        s = publish_one(nc, &o, identity, &err);
        if (s == CH_OK && o.interval_ms > 0)
            nats_Sleep(o.interval_ms);
    }
    if (s == CH_OK && natsConnection_FlushTimeout(nc, 5000) != NATS_OK)
        s = ch_error_set(&err, CH_ERR_TIMEOUT, "could not flush events to the broker");
    if (s != CH_OK)
        fprintf(stderr, "choria: %s\n", err.msg);
    ch_conn_close(nc);
    cli_client_free(&client);
    nats_Close();
    return s == CH_OK ? 0 : 1;
}
