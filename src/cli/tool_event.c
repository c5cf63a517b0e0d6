/* `choria tool event`: a rolling display of lifecycle events, as go-choria shows them.
 *
 * Messages are read from a synchronous subscription on the main thread. Output is fully
 * buffered and flushed whenever the subscription has nothing more pending, so a burst of
 * events costs one write, and a quiet stream still shows every line at once. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "choria/conn.h"
#include "choria/lifecycle.h"
#include "choria/log.h"
#include "cli.h"

typedef struct {
    cli_broker_opts broker;
    const char *component;
    ch_lifecycle_type type;
} event_opts;

/* Local "HH:MM:SS", recomputed only when the second changes. */
static const char *clock_now(void)
{
    static time_t last = 0;
    static char buf[16];
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
        last = now;
    }
    return buf;
}

static void show(const event_opts *o, natsMsg *msg)
{
    const char *data = natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    ch_lifecycle_event *ev = NULL;
    ch_error err;
    if (ch_lifecycle_parse(data, (size_t)len, &ev, &err) != CH_OK) {
        ch_debug("skipping message on %s: %s", natsMsg_GetSubject(msg), err.msg);
        return;
    }
    if (ch_lifecycle_event_matches(ev, o->component, o->type)) {
        if (o->broker.debug) {
            fwrite(data, 1, (size_t)len, stdout);
            fputc('\n', stdout);
        } else {
            char *line = ch_lifecycle_event_display(ev);
            if (line != NULL)
                printf("%s %s\n", clock_now(), line);
            free(line);
        }
    }
    ch_lifecycle_event_free(ev);
}

static void on_conn_event(const char *event, const char *url, void *closure)
{
    (void)closure;
    if (cli_should_stop()) /* closing at the user's request is not worth a warning */
        return;
    if (strcmp(event, "disconnected") == 0)
        ch_warn("disconnected from the broker, reconnecting");
    else if (strcmp(event, "reconnected") == 0)
        ch_warn("reconnected to %s", url);
    else if (strcmp(event, "connect failed") == 0)
        ch_warn("could not connect to the broker, retrying: %s", url);
}

static int parse_args(int argc, char **argv, event_opts *o)
{
    static const struct option longopts[] = {
        {"component", required_argument, NULL, 'c'}, {"type", required_argument, NULL, 't'},
        {"config", required_argument, NULL, 'C'},    {"server", required_argument, NULL, 's'},
        {"debug", no_argument, NULL, 'd'},           {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->type = CH_LIFECYCLE_UNKNOWN;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->component = optarg;
            break;
        case 't':
            o->type = ch_lifecycle_type_from_name(optarg);
            if (o->type == CH_LIFECYCLE_UNKNOWN) {
                fprintf(stderr,
                        "choria: enum value must be one of alive,governor,provisioned,"
                        "shutdown,startup,upgraded, got '%s'\n",
                        optarg);
                return 1;
            }
            break;
        default:
            if (cli_broker_option(c, optarg, &o->broker))
                break;
            fprintf(stderr, "choria: try 'choria tool event --help'\n");
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "choria: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    return 0;
}

/* Between failed first connections: naps until ms passed or the user stopped us. */
static bool wait_retry(int64_t ms, void *closure)
{
    (void)closure;
    for (int64_t waited = 0; waited < ms && !cli_should_stop(); waited += 50)
        nats_Sleep(50);
    return !cli_should_stop();
}

/* Waits (bounded by the stop flag) until the first connection is up. */
static bool wait_connected(natsConnection *nc)
{
    while (!cli_should_stop()) {
        if (natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED)
            return true;
        nats_Sleep(50);
    }
    return false;
}

/* While events stream in, an empty queue is met with a 1 ms nap instead of a blocking wait:
 * a blocked reader makes nats.c wake this thread once per message, and those context
 * switches cost more than formatting the event. After BUSY_NAPS idle naps it blocks again. */
#define BUSY_NAPS 50

static void read_events(const event_opts *o, natsSubscription *sub)
{
    int idle = BUSY_NAPS;
    while (!cli_should_stop()) {
        int pending = 0;
        natsSubscription_GetPending(sub, &pending, NULL);
        if (pending == 0 && idle < BUSY_NAPS) {
            fflush(stdout);
            nats_Sleep(1);
            idle++;
            continue;
        }
        natsMsg *msg = NULL;
        natsStatus s = natsSubscription_NextMsg(&msg, sub, 250);
        if (s == NATS_OK) {
            show(o, msg);
            natsMsg_Destroy(msg);
            idle = 0;
        } else if (s == NATS_TIMEOUT) {
            fflush(stdout);
        } else if (s != NATS_SLOW_CONSUMER) {
            ch_error("reading events failed: %s", natsStatus_GetText(s));
            break;
        }
    }
    fflush(stdout);
}

int cli_tool_event(int argc, char **argv)
{
    event_opts o;
    if (parse_args(argc, argv, &o) != 0)
        return 1;
    ch_log_set_level(o.broker.debug ? CH_LOG_DEBUG : CH_LOG_WARN);
    cli_install_stop_signals();

    cli_client client;
    if (cli_client_load(&o.broker, &client) != CH_OK)
        return 1;

    ch_conn_opts copts = {
        .retry_initial_connect = true, .wait_retry = wait_retry, .on_event = on_conn_event};
    ch_conn_opts_from_settings(&client.conn, &copts);
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    ch_error err;
    int rc = 1;
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));

    if (ch_conn_connect(&copts, &nc, &err) != CH_OK) {
        if (cli_should_stop())
            rc = 0;
        else
            fprintf(stderr, "choria: %s\n", err.msg);
        goto out;
    }
    natsStatus s = natsConnection_SubscribeSync(&sub, nc, CH_LIFECYCLE_SUBJECT_ALL);
    /* A viewer should see bursts, not drop them: allow a deep client-side queue. */
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(sub, 1000000, 512 * 1024 * 1024);
    if (s != NATS_OK) {
        fprintf(stderr, "choria: cannot subscribe to %s: %s\n", CH_LIFECYCLE_SUBJECT_ALL,
                natsStatus_GetText(s));
        goto out;
    }
    if (!wait_connected(nc)) {
        rc = 0;
        goto out;
    }
    /* The banner promises the subscription is live: make sure the broker has it. */
    natsConnection_FlushTimeout(nc, 2000);
    char url[512];
    ch_conn_connected_url(nc, url, sizeof(url));
    printf("Waiting for events from topic %s on %s\n", CH_LIFECYCLE_SUBJECT_ALL, url);
    fflush(stdout);
    read_events(&o, sub);
    rc = 0;

out:
    natsSubscription_Destroy(sub);
    ch_conn_close(nc);
    cli_client_free(&client);
    nats_Close();
    return rc;
}
