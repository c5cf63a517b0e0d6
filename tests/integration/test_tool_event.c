/* `choria tool event` against a real nats-server: every event type in both wire formats,
 * garbage, filters, --debug, --config, broker restarts and signals, checked line by line. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/util.h"
#include "harness.h"

#define LINE_TIMEOUT_MS 5000

typedef struct {
    cht_broker *broker;
    natsConnection *nc;
    cht_proc *viewer;
    char tmpdir[256];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ch_error err;
    if (cht_broker_start(NULL, &f->broker, &err) != CH_OK ||
        cht_nats_connect(cht_broker_url(f->broker), 5000, &f->nc, &err) != CH_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    if (cht_temp_dir("event-test", f->tmpdir, sizeof(f->tmpdir), &err) != CH_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_proc_free(f->viewer);
    if (f->nc != NULL) {
        natsConnection_Close(f->nc);
        natsConnection_Destroy(f->nc);
    }
    cht_broker_free(f->broker);
    cht_temp_dir_remove(f->tmpdir, NULL);
    free(f);
    return 0;
}

/* Starts the viewer with extra arguments and checks its banner line. */
static void start_viewer(fixture *f, const char *const *extra, const char *const *env)
{
    char bin[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[16] = {bin, "tool", "event"};
    int n = 3;
    bool has_source = false;
    for (; extra != NULL && *extra != NULL && n < 13; extra++) {
        has_source |= strcmp(*extra, "--config") == 0;
        argv[n++] = *extra;
    }
    if (!has_source) {
        argv[n++] = "--server";
        argv[n++] = cht_broker_url(f->broker);
    }
    argv[n] = NULL;
    cht_proc_opts o = {.argv = argv, .env = env};
    CHT_CHECK(cht_proc_spawn(&o, &f->viewer, &err), &err);

    char expected[256];
    snprintf(expected, sizeof(expected),
             "Waiting for events from topic choria.lifecycle.event.> on %s",
             cht_broker_url(f->broker));
    char *line = NULL;
    cht_read_status rs = cht_proc_read_line(f->viewer, 10000, &line);
    if (rs != CHT_READ_LINE)
        fail_msg("no banner (%s); stderr: %s", cht_read_status_text(rs),
                 cht_proc_stderr(f->viewer));
    assert_string_equal(line, expected);
    free(line);
}

static void publish(fixture *f, const char *subject, const char *body)
{
    ch_error err;
    CHT_CHECK(cht_nats_publish(f->nc, subject, body, strlen(body), &err), &err);
}

/* Reads the next line and checks it is "HH:MM:SS <display>" with the local time now. */
static void expect_line(fixture *f, const char *display)
{
    char *line = NULL;
    cht_read_status rs = cht_proc_read_line(f->viewer, LINE_TIMEOUT_MS, &line);
    if (rs != CHT_READ_LINE)
        fail_msg("expected '%s', got %s; stderr: %s", display, cht_read_status_text(rs),
                 cht_proc_stderr(f->viewer));
    assert_in_range(strlen(line), 10, SIZE_MAX);
    assert_string_equal(line + 9, display);

    int h, m, s;
    assert_int_equal(sscanf(line, "%2d:%2d:%2d ", &h, &m, &s), 3);
    assert_int_equal(line[2], ':');
    assert_int_equal(line[5], ':');
    assert_int_equal(line[8], ' ');
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    long shown = h * 3600 + m * 60 + s;
    long local = tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
    long diff = labs(local - shown);
    /* local receive time, not event time: within 5 s, also across midnight */
    assert_not_in_range(diff, 6, 86400 - 6);
    free(line);
}

static void expect_raw_line(fixture *f, const char *raw)
{
    char *line = NULL;
    cht_read_status rs = cht_proc_read_line(f->viewer, LINE_TIMEOUT_MS, &line);
    if (rs != CHT_READ_LINE)
        fail_msg("expected raw '%s', got %s", raw, cht_read_status_text(rs));
    assert_string_equal(line, raw);
    free(line);
}

/* Nothing more on stdout for a moment. */
static void expect_quiet(fixture *f)
{
    char *line = NULL;
    cht_read_status rs = cht_proc_read_line(f->viewer, 300, &line);
    if (rs == CHT_READ_LINE)
        fail_msg("unexpected line '%s'", line);
    assert_int_equal(rs, CHT_READ_TIMEOUT);
}

/* One event of each type in the Choria format, with the event's timestamp far in the past
 * to prove that the viewer shows its own receive time. */
static const char *choria_events[][3] = {
    {"choria.lifecycle.event.startup.ginkgo",
     "{\"protocol\":\"io.choria.lifecycle.v1.startup\",\"id\":\"01e72410-d734-4611-9485-"
     "8c6a2dd2579b\",\"identity\":\"ginkgo.example.net\",\"component\":\"ginkgo\","
     "\"timestamp\":1535106973,\"version\":\"1.2.3\"}",
     "[startup] ginkgo.example.net: ginkgo version 1.2.3"},
    {"choria.lifecycle.event.shutdown.server",
     "{\"protocol\":\"io.choria.lifecycle.v1.shutdown\",\"id\":\"cb6f1dbc-d65b-49b9-907e-"
     "e4a51bee75f8\",\"identity\":\"dev1.devco.net\",\"component\":\"server\",\"timestamp\":"
     "1575482338}",
     "[shutdown] dev1.devco.net: server"},
    {"choria.lifecycle.event.provisioned.provision_mode_server",
     "{\"protocol\":\"io.choria.lifecycle.v1.provisioned\",\"id\":\"a1\",\"identity\":"
     "\"n1.choria.local\",\"component\":\"provision_mode_server\",\"timestamp\":1700000000}",
     "[provisioned] n1.choria.local: provision_mode_server"},
    {"choria.lifecycle.event.alive.server",
     "{\"protocol\":\"io.choria.lifecycle.v1.alive\",\"id\":\"a2\",\"identity\":\"n2.choria."
     "local\",\"component\":\"server\",\"timestamp\":1700000000,\"version\":\"0.30.2\"}",
     "[alive] n2.choria.local: server version 0.30.2"},
    {"choria.lifecycle.event.upgraded.server",
     "{\"protocol\":\"io.choria.lifecycle.v1.upgraded\",\"id\":\"a3\",\"identity\":\"n3.choria."
     "local\",\"component\":\"server\",\"timestamp\":1700000000,\"version\":\"0.29.4\","
     "\"new_version\":\"0.30.2\"}",
     "[upgraded] n3.choria.local: server version 0.29.4 to 0.30.2"},
    {"choria.lifecycle.event.governor.server",
     "{\"protocol\":\"io.choria.lifecycle.v1.governor\",\"id\":\"a4\",\"identity\":\"n4.choria."
     "local\",\"component\":\"server\",\"timestamp\":1700000000,\"governor\":\"PROV\","
     "\"sequence\":3,\"event_type\":\"enter\"}",
     "[governor] n4.choria.local: obtained slot 3 on PROV"},
    {"choria.lifecycle.event.startup.server",
     "{\"protocol\":\"choria:lifecycle:startup:1\",\"id\":\"a5\",\"identity\":\"legacy.example."
     "net\",\"component\":\"server\",\"timestamp\":1700000000,\"version\":\"0.9.0\"}",
     "[startup] legacy.example.net: server version 0.9.0"},
};

/* The CloudEvents envelope around a Choria-format event. */
static char *cloudevent(const char *type, const char *identity, const char *data)
{
    char *out = NULL;
    if (asprintf(&out,
                 "{\"specversion\":\"1.0\",\"id\":\"01e72410-d734-4611-9485-8c6a2dd2579b\","
                 "\"source\":\"io.choria.lifecycle\",\"type\":\"io.choria.lifecycle.v1.%s\","
                 "\"subject\":\"%s\",\"datacontenttype\":\"application/json\",\"time\":"
                 "\"2018-08-24T10:36:13Z\",\"data\":%s}",
                 type, identity, data) < 0)
        return NULL;
    return out;
}

static const char *garbage[] = {
    "not json at all",
    "{\"protocol\":\"other\"}",
    "{\"specversion\":\"0.1\",\"source\":\"message/io.choria.lifecycle\"}",
    "{\"specversion\":\"1.0\",\"source\":\"io.choria.lifecycle\",\"data\":{}}",
    "{\"protocol\":\"io.choria.lifecycle.v1.nosuchtype\",\"identity\":\"x\",\"component\":"
    "\"y\",\"timestamp\":1}",
    "{\"protocol\":\"io.choria.lifecycle.v1.governor\",\"identity\":\"x\",\"component\":\"y\","
    "\"timestamp\":1}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "",
};

static void all_event_types_in_both_formats_are_shown_and_garbage_is_skipped(void **state)
{
    fixture *f = *state;
    start_viewer(f, NULL, NULL);
    size_t n = sizeof(choria_events) / sizeof(choria_events[0]);

    for (size_t i = 0; i < n; i++)
        publish(f, choria_events[i][0], choria_events[i][1]);
    for (size_t i = 0; i < n; i++)
        expect_line(f, choria_events[i][2]);

    /* The same events inside CloudEvents envelopes, GOLDEN.md's exact bytes first. */
    for (size_t i = 0; i < n; i++) {
        char *ce = cloudevent("x", "y", choria_events[i][1]);
        publish(f, choria_events[i][0], ce);
        free(ce);
    }
    for (size_t i = 0; i < n; i++)
        expect_line(f, choria_events[i][2]);

    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
        publish(f, "choria.lifecycle.event.startup.server", garbage[i]);
    publish(f, choria_events[1][0], choria_events[1][1]); /* a sentinel after the garbage */
    expect_line(f, choria_events[1][2]);
    expect_quiet(f);
}

static void golden_cloudevent_is_shown_as_go_choria_shows_it(void **state)
{
    fixture *f = *state;
    start_viewer(f, NULL, NULL);
    publish(f, "choria.lifecycle.event.startup.ginkgo",
            "{\"specversion\":\"1.0\",\"id\":\"01e72410-d734-4611-9485-8c6a2dd2579b\","
            "\"source\":\"io.choria.lifecycle\",\"type\":\"io.choria.lifecycle.v1.startup\","
            "\"subject\":\"ginkgo.example.net\",\"datacontenttype\":\"application/json\","
            "\"time\":\"2018-08-24T10:36:13Z\",\"data\":{\"protocol\":\"io.choria.lifecycle.v1."
            "startup\",\"id\":\"01e72410-d734-4611-9485-8c6a2dd2579b\",\"identity\":\"ginkgo."
            "example.net\",\"component\":\"ginkgo\",\"timestamp\":1535106973,\"version\":\"1.2."
            "3\"}}");
    expect_line(f, "[startup] ginkgo.example.net: ginkgo version 1.2.3");
}

static void component_filter_shows_only_that_component(void **state)
{
    fixture *f = *state;
    const char *args[] = {"--component", "provision_mode_server", NULL};
    start_viewer(f, args, NULL);
    publish(f, choria_events[0][0], choria_events[0][1]);        /* ginkgo */
    publish(f, choria_events[2][0], choria_events[2][1]);        /* provision_mode_server */
    char *ce = cloudevent("startup", "n1", choria_events[3][1]); /* server */
    publish(f, choria_events[3][0], ce);
    free(ce);
    ce = cloudevent("provisioned", "n1", choria_events[2][1]);
    publish(f, choria_events[2][0], ce);
    free(ce);
    expect_line(f, choria_events[2][2]);
    expect_line(f, choria_events[2][2]);
    expect_quiet(f);
}

static void type_filter_shows_only_that_type(void **state)
{
    fixture *f = *state;
    const char *args[] = {"--type", "upgraded", NULL};
    start_viewer(f, args, NULL);
    size_t n = sizeof(choria_events) / sizeof(choria_events[0]);
    for (size_t i = 0; i < n; i++)
        publish(f, choria_events[i][0], choria_events[i][1]);
    expect_line(f, choria_events[4][2]);
    expect_quiet(f);
}

static void component_and_type_filters_combine(void **state)
{
    fixture *f = *state;
    const char *args[] = {"--type", "startup", "--component", "server", NULL};
    start_viewer(f, args, NULL);
    size_t n = sizeof(choria_events) / sizeof(choria_events[0]);
    for (size_t i = 0; i < n; i++)
        publish(f, choria_events[i][0], choria_events[i][1]);
    expect_line(f, choria_events[6][2]); /* the only startup of component server */
    expect_quiet(f);
}

static void debug_prints_raw_bodies_of_matching_events(void **state)
{
    fixture *f = *state;
    const char *args[] = {"--debug", "--type", "shutdown", NULL};
    start_viewer(f, args, NULL);
    char *ce = cloudevent("shutdown", "dev1.devco.net", choria_events[1][1]);
    publish(f, choria_events[0][0], choria_events[0][1]);
    publish(f, choria_events[1][0], choria_events[1][1]);
    publish(f, choria_events[1][0], ce);
    publish(f, choria_events[1][0], "garbage");
    expect_raw_line(f, choria_events[1][1]);
    expect_raw_line(f, ce);
    expect_quiet(f);
    free(ce);
}

static void config_file_supplies_the_brokers(void **state)
{
    fixture *f = *state;
    char path[512];
    ch_error err;
    snprintf(path, sizeof(path), "%s/client.conf", f->tmpdir);
    CHT_CHECK(cht_write_file(path, &err,
                             "# a client config\nidentity = viewer.example.net\n"
                             "plugin.choria.middleware_hosts = 127.0.0.1:%d\n",
                             cht_broker_port(f->broker)),
              &err);
    const char *args[] = {"--config", path, NULL};
    start_viewer(f, args, NULL);
    publish(f, choria_events[3][0], choria_events[3][1]);
    expect_line(f, choria_events[3][2]);
}

static void default_client_config_is_read_from_home_choriarc(void **state)
{
    fixture *f = *state;
    char path[512], home[300];
    ch_error err;
    snprintf(path, sizeof(path), "%s/.choriarc", f->tmpdir);
    CHT_CHECK(cht_write_file(path, &err, "plugin.choria.middleware_hosts = nats://127.0.0.1:%d\n",
                             cht_broker_port(f->broker)),
              &err);
    snprintf(home, sizeof(home), "HOME=%s", f->tmpdir);
    const char *env[] = {home, NULL};
    /* No --server and no --config: the viewer must find ~/.choriarc by itself. */
    char bin[512];
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[] = {bin, "tool", "event", NULL};
    cht_proc_opts o = {.argv = argv, .env = env};
    CHT_CHECK(cht_proc_spawn(&o, &f->viewer, &err), &err);
    char *line = NULL;
    assert_int_equal(cht_proc_read_line(f->viewer, 10000, &line), CHT_READ_LINE);
    char expected[256];
    snprintf(expected, sizeof(expected),
             "Waiting for events from topic choria.lifecycle.event.> on %s",
             cht_broker_url(f->broker));
    assert_string_equal(line, expected);
    free(line);
}

static void missing_config_file_is_a_clear_error(void **state)
{
    fixture *f = *state;
    char bin[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[] = {bin, "tool", "event", "--config", "/nonexistent/client.conf", NULL};
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->viewer, &err), &err);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(f->viewer, 5000, &ws, &err), &err);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 1);
    assert_non_null(strstr(cht_proc_stderr(f->viewer), "/nonexistent/client.conf"));
}

static void unknown_type_is_refused_with_the_valid_names(void **state)
{
    fixture *f = *state;
    const char *args[] = {"--type", "bogus", NULL};
    char bin[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[] = {bin, "tool", "event", args[0], args[1], NULL};
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->viewer, &err), &err);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(f->viewer, 5000, &ws, &err), &err);
    assert_int_equal(WEXITSTATUS(ws), 1);
    assert_non_null(strstr(cht_proc_stderr(f->viewer), "alive,governor,provisioned"));
}

static void help_describes_the_flags(void **state)
{
    fixture *f = *state;
    char bin[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[] = {bin, "tool", "event", "--help", NULL};
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->viewer, &err), &err);
    bool component = false, type = false, config = false, server = false, debug = false;
    char *line = NULL;
    while (cht_proc_read_line(f->viewer, 5000, &line) == CHT_READ_LINE) {
        component |= strstr(line, "--component") != NULL;
        type |= strstr(line, "--type") != NULL;
        config |= strstr(line, "--config") != NULL;
        server |= strstr(line, "--server") != NULL;
        debug |= strstr(line, "--debug") != NULL;
        free(line);
    }
    assert_true(component && type && config && server && debug);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(f->viewer, 5000, &ws, &err), &err);
    assert_int_equal(WEXITSTATUS(ws), 0);
}

static void survives_a_broker_restart(void **state)
{
    fixture *f = *state;
    start_viewer(f, NULL, NULL);
    publish(f, choria_events[0][0], choria_events[0][1]);
    expect_line(f, choria_events[0][2]);

    ch_error err;
    CHT_CHECK(cht_broker_restart(f->broker, &err), &err);
    /* The viewer says on stderr when it is back; then the subscription is live again. */
    bool back = false;
    for (int i = 0; i < 200 && !back; i++) {
        back = strstr(cht_proc_stderr(f->viewer), "reconnected") != NULL;
        if (!back)
            usleep(50 * 1000);
    }
    if (!back)
        fail_msg("viewer did not reconnect; stderr: %s", cht_proc_stderr(f->viewer));
    /* Our own publisher reconnects too; give it a moment, then publish. */
    for (int i = 0; i < 100 && natsConnection_Status(f->nc) != NATS_CONN_STATUS_CONNECTED; i++)
        usleep(50 * 1000);
    usleep(200 * 1000); /* the viewer's SUB is replayed right after its reconnect */
    publish(f, choria_events[2][0], choria_events[2][1]);
    expect_line(f, choria_events[2][2]);
}

static void exits_zero_on_signal(int sig, fixture *f)
{
    start_viewer(f, NULL, NULL);
    ch_error err;
    CHT_CHECK(cht_proc_signal(f->viewer, sig, &err), &err);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(f->viewer, 5000, &ws, &err), &err);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

static void exits_zero_on_sigint(void **state)
{
    exits_zero_on_signal(SIGINT, *state);
}

static void exits_zero_on_sigterm(void **state)
{
    exits_zero_on_signal(SIGTERM, *state);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(all_event_types_in_both_formats_are_shown_and_garbage_is_skipped),
        T(golden_cloudevent_is_shown_as_go_choria_shows_it),
        T(component_filter_shows_only_that_component),
        T(type_filter_shows_only_that_type),
        T(component_and_type_filters_combine),
        T(debug_prints_raw_bodies_of_matching_events),
        T(config_file_supplies_the_brokers),
        T(default_client_config_is_read_from_home_choriarc),
        T(missing_config_file_is_a_clear_error),
        T(unknown_type_is_refused_with_the_valid_names),
        T(help_describes_the_flags),
        T(survives_a_broker_restart),
        T(exits_zero_on_sigint),
        T(exits_zero_on_sigterm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
