/* `choria tool event`: a rolling display of lifecycle events, as go-choria shows them.
 *
 * Messages are read in batches from a synchronous subscription on the main thread; each is
 * checked by the full parsing rules but never built into an event, and its line is formatted
 * straight into an output buffer, with no malloc or printf per event. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "choria/conn.h"
#include "choria/json.h"
#include "choria/lifecycle.h"
#include "choria/log.h"
#include "choria/util.h"
#include "cli.h"

typedef struct {
    cli_broker_opts broker;
    const char *component;
    ch_lifecycle_type type;
} event_opts;

/* Output is our own buffer, written when the subscription has nothing more pending (or it
 * holds FLUSH_BYTES, or its oldest line waited FLUSH_MS): a burst of events costs a few
 * writes, and a quiet stream still shows every line at once. */
#define FLUSH_BYTES (64 * 1024)
#define FLUSH_MS 100

/* Messages read from the subscription per look at its pending count. Their natsMsg_Destroy
 * is put off to the end of the batch: nats.c hands every destroyed message to its collector
 * thread, and a tight run of destroys wakes that thread once instead of once a message. */
#define BATCH 256

typedef struct {
    ch_buf buf;
    int64_t since; /* when the oldest unwritten line was added; 0 when there is none */
} output;

static void out_write(output *out)
{
    size_t done = 0;
    while (done < out->buf.len) {
        ssize_t n = write(STDOUT_FILENO, out->buf.data + done, out->buf.len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) /* a closed or full stdout loses the lines, as stdio would */
            break;
        done += (size_t)n;
    }
    out->buf.len = 0;
    out->since = 0;
}

/* Local "HH:MM:SS ", recomputed only when the second changes. */
static void put_clock(ch_buf *b)
{
    static time_t last = 0;
    static char text[16];
    static size_t len;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        localtime_r(&now, &tm);
        len = strftime(text, sizeof(text), "%H:%M:%S ", &tm);
        last = now;
    }
    ch_buf_append(b, text, len);
}

/* --debug: the raw body of every event that parses and passes the filter. */
static void show_raw(const event_opts *o, const char *data, size_t len, output *out,
                     const char *subject)
{
    ch_lifecycle_event *ev = NULL;
    ch_error err;
    if (ch_lifecycle_parse(data, len, &ev, &err) != CH_OK) {
        ch_debug("skipping message on %s: %s", subject, err.msg);
        return;
    }
    if (ch_lifecycle_event_matches(ev, o->component, o->type)) {
        ch_buf_append(&out->buf, data, len);
        ch_buf_append(&out->buf, "\n", 1);
    }
    ch_lifecycle_event_free(ev);
}

static void show(const event_opts *o, natsMsg *msg, output *out)
{
    const char *data = natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg), mark = out->buf.len;
    if (o->broker.debug) {
        show_raw(o, data, len, out, natsMsg_GetSubject(msg));
    } else {
        bool shown = false;
        ch_error err;
        put_clock(&out->buf);
        if (ch_lifecycle_display_append(data, len, o->component, o->type, &out->buf, &shown,
                                        &err) != CH_OK)
            ch_debug("skipping message on %s: %s", natsMsg_GetSubject(msg), err.msg);
        if (shown)
            ch_buf_append(&out->buf, "\n", 1);
        else if (out->buf.data != NULL)
            out->buf.data[out->buf.len = mark] = '\0';
    }
    if (out->buf.len > mark && out->since == 0)
        out->since = ch_now_mono_ms();
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

/* Reads up to max messages that are already pending; NATS_TIMEOUT when none came within
 * wait_ms. */
static natsStatus read_batch(const event_opts *o, natsSubscription *sub, int max, int64_t wait_ms,
                             output *out)
{
    natsMsg *held[BATCH];
    int n = 0;
    natsStatus s = NATS_OK;
    while (n < max && n < BATCH) {
        natsMsg *msg = NULL;
        if ((s = natsSubscription_NextMsg(&msg, sub, wait_ms)) != NATS_OK)
            break;
        show(o, msg, out);
        held[n++] = msg;
    }
    for (int i = 0; i < n; i++)
        natsMsg_Destroy(held[i]);
    return n > 0 ? NATS_OK : s;
}

static void read_events(const event_opts *o, natsSubscription *sub, output *out)
{
    int idle = BUSY_NAPS;
    while (!cli_should_stop()) {
        int pending = 0;
        natsSubscription_GetPending(sub, &pending, NULL);
        if (pending == 0) {
            out_write(out);
            if (idle < BUSY_NAPS) {
                nats_Sleep(1);
                idle++;
                continue;
            }
        }
        natsStatus s = read_batch(o, sub, pending > 0 ? pending : 1, 250, out);
        if (s == NATS_OK)
            idle = 0;
        else if (s != NATS_TIMEOUT && s != NATS_SLOW_CONSUMER) {
            ch_error("reading events failed: %s", natsStatus_GetText(s));
            break;
        }
        if (out->buf.len >= FLUSH_BYTES ||
            (out->since != 0 && ch_now_mono_ms() - out->since >= FLUSH_MS))
            out_write(out);
        if (out->buf.failed) {
            ch_error("out of memory formatting events");
            break;
        }
    }
    out_write(out);
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
    output out = {.since = 0};
    ch_buf_init(&out.buf);

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
    read_events(&o, sub, &out);
    rc = 0;

out:
    natsSubscription_Destroy(sub);
    ch_conn_close(nc);
    cli_client_free(&client);
    ch_buf_free(&out.buf);
    nats_Close();
    return rc;
}
