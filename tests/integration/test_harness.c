/* Proves the test harness: real nats-server single node and cluster, nats.c round trips,
 * JetStream KV, restart with reconnect, fail-over, child processes with line reads and
 * timeouts, and that nothing is left behind when a test fails, aborts, exits or is killed.
 *
 * The crash-safety tests run this executable again with CHT_SELFTEST=<mode>: the child
 * starts a broker, reports its pid and directory in a file and then misbehaves. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "choria/util.h"
#include "harness.h"

#define NS_PER_SEC (1000LL * 1000 * 1000)

static bool dir_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool pid_gone_within(pid_t pid, int ms)
{
    int64_t deadline = ch_now_mono_ms() + ms;
    while (cht_pid_alive(pid)) {
        if (ch_now_mono_ms() >= deadline)
            return false;
        usleep(20 * 1000);
    }
    return true;
}

/* --------------------------------------------------------------------------------------
 * Fixtures: whatever a test started is freed in teardown, also after a failed assertion. */

typedef struct {
    cht_broker *broker;
    cht_cluster *cluster;
    cht_proc *proc;
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    char dir[256]; /* cht_temp_dir, or "" */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    *state = f;
    return f == NULL ? -1 : 0;
}

static int setup_broker(void **state)
{
    ch_error err;
    if (setup(state) != 0)
        return -1;
    fixture *f = *state;
    if (cht_broker_start(NULL, &f->broker, &err) != CH_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f == NULL)
        return 0;
    kvStore_Destroy(f->kv);
    jsCtx_Destroy(f->js);
    natsConnection_Destroy(f->nc);
    cht_proc_free(f->proc);
    cht_cluster_free(f->cluster);
    cht_broker_free(f->broker);
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

static void create_kv(fixture *f, const char *bucket, int replicas, int64_t ttl_ns)
{
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = bucket;
    kc.History = 1;
    kc.TTL = ttl_ns; /* nanoseconds: nats.c copies it into the stream's MaxAge */
    kc.Replicas = replicas;
    kc.StorageType = js_FileStorage;
    assert_int_equal(natsConnection_JetStream(&f->js, f->nc, NULL), NATS_OK);
    natsStatus s = js_CreateKeyValue(&f->kv, f->js, &kc);
    if (s != NATS_OK)
        fail_msg("js_CreateKeyValue(%s, R%d): %s %s", bucket, replicas, natsStatus_GetText(s),
                 nats_GetLastError(NULL));
}

static void assert_kv_value(kvStore *kv, const char *key, const char *want)
{
    kvEntry *e = NULL;
    assert_int_equal(kvStore_Get(&e, kv, key), NATS_OK);
    assert_string_equal(kvEntry_ValueString(e), want);
    kvEntry_Destroy(e);
}

/* --------------------------------------------------------------------------------------
 * Single broker */

static void test_broker_is_healthy_on_loopback_with_working_accessors(void **state)
{
    fixture *f = *state;
    cht_broker *b = f->broker;
    char want[64];
    snprintf(want, sizeof(want), "nats://127.0.0.1:%d", cht_broker_port(b));
    assert_string_equal(cht_broker_url(b), want);
    assert_in_range(cht_broker_port(b), 1, 65535);
    assert_in_range(cht_broker_http_port(b), 1, 65535);
    assert_int_not_equal(cht_broker_port(b), cht_broker_http_port(b));
    assert_int_equal(cht_broker_cluster_port(b), 0);
    assert_true(cht_broker_running(b));
    assert_true(cht_pid_alive(cht_broker_pid(b)));
    assert_true(dir_exists(cht_broker_dir(b)));
    assert_int_equal(access(cht_broker_config_path(b), R_OK), 0);

    int status = 0;
    char *body = NULL;
    ch_error err;
    CHT_CHECK(cht_http_get(cht_broker_http_port(b), "/healthz?js-enabled-only=true", 2000, &status,
                           &body, &err),
              &err);
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, "ok"));
    free(body);
    CHT_CHECK(cht_http_get(cht_broker_http_port(b), "/varz", 2000, &status, &body, &err), &err);
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, "\"server_name\": \"cht\""));
    free(body);
    CHT_CHECK(cht_http_get(cht_broker_http_port(b), "/no-such-page", 2000, &status, NULL, &err),
              &err);
    assert_int_equal(status, 404);

    char *log = cht_file_tail(cht_broker_log_path(b), 65536);
    assert_non_null(log);
    assert_non_null(strstr(log, "Server is ready"));
    free(log);
}

static void test_broker_pubsub_round_trip(void **state)
{
    fixture *f = *state;
    ch_error err;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    CHT_CHECK(cht_nats_connect(cht_broker_url(f->broker), 2000, &f->nc, &err), &err);
    assert_int_equal(natsConnection_SubscribeSync(&sub, f->nc, "cht.ping"), NATS_OK);
    assert_int_equal(natsConnection_FlushTimeout(f->nc, 2000), NATS_OK);
    CHT_CHECK(cht_nats_publish(f->nc, "cht.ping", "hello\0bin", 9, &err), &err);
    natsStatus s = natsSubscription_NextMsg(&m, sub, 2000);
    natsSubscription_Destroy(sub);
    assert_int_equal(s, NATS_OK);
    assert_int_equal(natsMsg_GetDataLength(m), 9);
    assert_memory_equal(natsMsg_GetData(m), "hello\0bin", 9);
    natsMsg_Destroy(m);
}

static void test_broker_jetstream_kv_put_get_with_ttl_in_nanoseconds(void **state)
{
    fixture *f = *state;
    ch_error err;
    uint64_t rev = 0;
    kvStatus *sts = NULL;
    CHT_CHECK(cht_nats_connect(cht_broker_url(f->broker), 2000, &f->nc, &err), &err);
    create_kv(f, "CHT_SINGLE", 1, 60 * NS_PER_SEC);
    assert_int_equal(kvStore_PutString(&rev, f->kv, "greeting", "hello"), NATS_OK);
    assert_in_range(rev, 1, UINT64_MAX);
    assert_kv_value(f->kv, "greeting", "hello");
    assert_int_equal(kvStore_Status(&sts, f->kv), NATS_OK);
    assert_int_equal(kvStatus_TTL(sts), 60 * NS_PER_SEC);
    kvStatus_Destroy(sts);
}

typedef struct {
    int reconnects;
    int disconnects;
} conn_events;

static void on_reconnected(natsConnection *nc, void *closure)
{
    __atomic_add_fetch(&((conn_events *)closure)->reconnects, 1, __ATOMIC_SEQ_CST);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    __atomic_add_fetch(&((conn_events *)closure)->disconnects, 1, __ATOMIC_SEQ_CST);
}

static void test_broker_restart_keeps_port_and_store_and_client_reconnects(void **state)
{
    fixture *f = *state;
    ch_error err;
    natsOptions *o = NULL;
    natsSubscription *sub = NULL;
    natsMsg *m = NULL;
    conn_events ev = {0, 0};
    int port = cht_broker_port(f->broker);
    pid_t old_pid = cht_broker_pid(f->broker);

    CHT_CHECK(cht_nats_options(cht_broker_url(f->broker), 2000, &o, &err), &err);
    assert_int_equal(natsOptions_SetReconnectedCB(o, on_reconnected, &ev), NATS_OK);
    assert_int_equal(natsOptions_SetDisconnectedCB(o, on_disconnected, &ev), NATS_OK);
    natsStatus s = natsConnection_Connect(&f->nc, o);
    natsOptions_Destroy(o);
    assert_int_equal(s, NATS_OK);
    create_kv(f, "CHT_RESTART", 1, 60 * NS_PER_SEC);
    uint64_t rev = 0;
    assert_int_equal(kvStore_PutString(&rev, f->kv, "k", "before"), NATS_OK);
    assert_int_equal(natsConnection_SubscribeSync(&sub, f->nc, "cht.after"), NATS_OK);

    CHT_CHECK(cht_broker_restart(f->broker, &err), &err);
    assert_int_equal(cht_broker_port(f->broker), port);
    assert_int_not_equal(cht_broker_pid(f->broker), old_pid);
    assert_false(cht_pid_alive(old_pid));

    int64_t deadline = ch_now_mono_ms() + 10000;
    while (__atomic_load_n(&ev.reconnects, __ATOMIC_SEQ_CST) == 0 && ch_now_mono_ms() < deadline)
        usleep(20 * 1000);
    assert_in_range(__atomic_load_n(&ev.disconnects, __ATOMIC_SEQ_CST), 1, INT_MAX);
    assert_int_equal(__atomic_load_n(&ev.reconnects, __ATOMIC_SEQ_CST), 1);

    /* The subscription was resent on reconnect and the store survived the restart. */
    CHT_CHECK(cht_nats_publish(f->nc, "cht.after", "x", 1, &err), &err);
    s = natsSubscription_NextMsg(&m, sub, 2000);
    natsSubscription_Destroy(sub);
    assert_int_equal(s, NATS_OK);
    natsMsg_Destroy(m);
    assert_kv_value(f->kv, "k", "before");
}

static void test_broker_crash_kills_at_once_and_restart_recovers(void **state)
{
    fixture *f = *state;
    ch_error err;
    pid_t pid = cht_broker_pid(f->broker);
    CHT_CHECK(cht_broker_crash(f->broker, &err), &err);
    assert_false(cht_broker_running(f->broker));
    assert_int_equal(cht_broker_pid(f->broker), 0);
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    char *log = cht_file_tail(cht_broker_log_path(f->broker), 65536);
    assert_non_null(log);
    assert_null(strstr(log, "Server Exiting")); /* SIGKILL: no orderly shutdown */
    free(log);
    CHT_CHECK(cht_broker_restart(f->broker, &err), &err);
    assert_true(cht_broker_running(f->broker));
    CHT_CHECK(cht_nats_connect(cht_broker_url(f->broker), 2000, &f->nc, &err), &err);
}

static void test_broker_wait_ready_times_out_when_broker_hangs(void **state)
{
    fixture *f = *state;
    ch_error err;
    CHT_CHECK(cht_broker_signal(f->broker, SIGSTOP, &err), &err);
    int64_t t0 = ch_now_mono_ms();
    ch_status st = cht_broker_wait_ready(f->broker, 500, &err);
    int64_t took = ch_now_mono_ms() - t0;
    CHT_CHECK(cht_broker_signal(f->broker, SIGCONT, &err), &err);
    assert_int_equal(st, CH_ERR_TIMEOUT);
    assert_in_range(took, 450, 1999);
    assert_non_null(strstr(err.msg, "not ready after 500 ms"));
    CHT_CHECK(cht_broker_wait_ready(f->broker, 0, &err), &err);
}

static void test_broker_free_stops_pid_and_removes_dir(void **state)
{
    fixture *f = *state;
    pid_t pid = cht_broker_pid(f->broker);
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", cht_broker_dir(f->broker));
    assert_true(dir_exists(dir));
    cht_broker_free(f->broker);
    f->broker = NULL;
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    if (getenv("CHT_KEEP") == NULL)
        assert_false(dir_exists(dir));
}

static void test_broker_options_auth_and_jetstream_off(void **state)
{
    fixture *f = *state;
    ch_error err;
    cht_broker_opts o;
    cht_broker_opts_init(&o);
    o.jetstream = false;
    o.server_name = "custom";
    o.extra_config = "authorization {\n  users = [ {user: \"prov\", password: \"s3cret\"} ]\n}";
    CHT_CHECK(cht_broker_start(&o, &f->broker, &err), &err);

    natsConnection *nc = NULL;
    assert_int_not_equal(cht_nats_connect(cht_broker_url(f->broker), 2000, &nc, &err), CH_OK);
    assert_null(nc);
    char url[128];
    snprintf(url, sizeof(url), "nats://prov:s3cret@127.0.0.1:%d", cht_broker_port(f->broker));
    CHT_CHECK(cht_nats_connect(url, 2000, &f->nc, &err), &err);

    int status = 0;
    char *body = NULL;
    CHT_CHECK(cht_http_get(cht_broker_http_port(f->broker), "/varz", 2000, &status, &body, &err),
              &err);
    assert_non_null(strstr(body, "\"server_name\": \"custom\""));
    free(body);
    /* Without JetStream the broker answers no KV requests. */
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = "NOPE";
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 1000;
    assert_int_equal(natsConnection_JetStream(&f->js, f->nc, &jo), NATS_OK);
    assert_int_not_equal(js_CreateKeyValue(&f->kv, f->js, &kc), NATS_OK);
}

static void test_broker_start_fails_fast_and_loudly_on_bad_config(void **state)
{
    fixture *f = *state;
    ch_error err;
    cht_broker_opts o;
    cht_broker_opts_init(&o);
    o.extra_config = "this is { not valid";
    int64_t t0 = ch_now_mono_ms();
    assert_int_not_equal(cht_broker_start(&o, &f->broker, &err), CH_OK);
    assert_null(f->broker);
    assert_in_range(ch_now_mono_ms() - t0, 0, 4999); /* noticed the exit, did not wait 10 s */
    assert_non_null(strstr(err.msg, "exited"));
    assert_non_null(strstr(err.msg, "nats-server.log"));
}

/* --------------------------------------------------------------------------------------
 * Cluster */

static int name_to_index(const char *name)
{
    return (name[0] == 'n' && name[1] >= '1' && name[1] <= '9') ? name[1] - '1' : -1;
}

static void test_cluster_r3_kv_stays_writable_after_leader_crash(void **state)
{
    fixture *f = *state;
    ch_error err;
    char leader[64];
    CHT_CHECK(cht_cluster_start(NULL, &f->cluster, &err), &err);
    cht_cluster *c = f->cluster;
    assert_int_equal(cht_cluster_size(c), 3);
    char want[256];
    snprintf(want, sizeof(want), "%s,%s,%s", cht_cluster_url(c, 0), cht_cluster_url(c, 1),
             cht_cluster_url(c, 2));
    assert_string_equal(cht_cluster_urls(c), want);
    assert_string_equal(cht_broker_name(cht_cluster_node(c, 2)), "n3");
    assert_in_range(cht_broker_cluster_port(cht_cluster_node(c, 0)), 1, 65535);
    assert_null(cht_cluster_node(c, 3));

    CHT_CHECK(cht_nats_connect(cht_cluster_urls(c), 2000, &f->nc, &err), &err);
    create_kv(f, "CHT_R3", 3, 60 * NS_PER_SEC);
    uint64_t rev = 0;
    assert_int_equal(kvStore_PutString(&rev, f->kv, "leader", "a"), NATS_OK);
    kvStatus *sts = NULL;
    assert_int_equal(kvStore_Status(&sts, f->kv), NATS_OK);
    assert_int_equal(kvStatus_Replicas(sts), 3);
    kvStatus_Destroy(sts);

    /* Crash the node that leads the bucket's stream: the worst case for a writer. */
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, f->js, "KV_CHT_R3", NULL, NULL), NATS_OK);
    assert_non_null(si->Cluster);
    int victim = name_to_index(si->Cluster->Leader);
    jsStreamInfo_Destroy(si);
    assert_in_range(victim, 0, 2);
    pid_t victim_pid = cht_broker_pid(cht_cluster_node(c, victim));
    CHT_CHECK(cht_cluster_crash_node(c, victim, &err), &err);
    assert_false(cht_pid_alive(victim_pid));

    /* Update with compare-and-set until the stream has a new leader (bounded). */
    natsStatus s = NATS_ERR;
    int64_t deadline = ch_now_mono_ms() + 20000;
    while (s != NATS_OK && ch_now_mono_ms() < deadline) {
        kvEntry *e = NULL;
        if (kvStore_Get(&e, f->kv, "leader") == NATS_OK) {
            s = kvStore_UpdateString(&rev, f->kv, "leader", "b", kvEntry_Revision(e));
            kvEntry_Destroy(e);
        }
        if (s != NATS_OK)
            usleep(200 * 1000);
    }
    assert_int_equal(s, NATS_OK);
    /* Reads are direct gets that any replica may answer, so a follower can lag a moment. */
    char *value = NULL;
    deadline = ch_now_mono_ms() + 5000;
    do {
        kvEntry *e = NULL;
        free(value);
        value = NULL;
        if (kvStore_Get(&e, f->kv, "leader") == NATS_OK)
            value = strdup(kvEntry_ValueString(e));
        kvEntry_Destroy(e);
    } while ((value == NULL || strcmp(value, "b") != 0) && ch_now_mono_ms() < deadline &&
             usleep(50 * 1000) == 0);
    assert_non_null(value);
    assert_string_equal(value, "b");
    free(value);
    CHT_CHECK(cht_cluster_wait_meta_leader(c, 15000, leader, sizeof(leader), &err), &err);
    assert_int_not_equal(name_to_index(leader), victim);

    /* The crashed node comes back on its ports and rejoins. */
    CHT_CHECK(cht_cluster_restart_node(c, victim, &err), &err);
    CHT_CHECK(cht_cluster_wait_meta_leader(c, 15000, leader, sizeof(leader), &err), &err);

    /* Freeing stops every node and removes every directory. */
    pid_t pids[3];
    char dirs[3][1024];
    for (int i = 0; i < 3; i++) {
        pids[i] = cht_broker_pid(cht_cluster_node(c, i));
        snprintf(dirs[i], sizeof(dirs[i]), "%s", cht_broker_dir(cht_cluster_node(c, i)));
        assert_in_range(pids[i], 1, INT_MAX);
    }
    kvStore_Destroy(f->kv);
    f->kv = NULL;
    cht_cluster_free(c);
    f->cluster = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kill(pids[i], 0), -1);
        if (getenv("CHT_KEEP") == NULL)
            assert_false(dir_exists(dirs[i]));
    }
}

/* --------------------------------------------------------------------------------------
 * Child processes */

static void spawn(fixture *f, const char *const *argv, const char *const *env,
                  const char *stderr_file, bool stdin_pipe)
{
    ch_error err;
    cht_proc_opts o = {
        .argv = argv, .env = env, .stderr_file = stderr_file, .stdin_pipe = stdin_pipe};
    CHT_CHECK(cht_proc_spawn(&o, &f->proc, &err), &err);
}

static void expect_line(cht_proc *p, int timeout_ms, const char *want)
{
    char *line = NULL;
    cht_read_status rs = cht_proc_read_line(p, timeout_ms, &line);
    if (rs != CHT_READ_LINE)
        fail_msg("wanted line '%s', got %s", want, cht_read_status_text(rs));
    assert_string_equal(line, want);
    free(line);
}

static void test_proc_reads_lines_with_timeouts_stderr_env_and_exit_status(void **state)
{
    fixture *f = *state;
    ch_error err;
    char errfile[] = "/tmp/cht-stderr-XXXXXX";
    int fd = mkstemp(errfile);
    assert_in_range(fd, 0, INT_MAX);
    close(fd);
    const char *argv[] = {"/bin/sh", "-c",
                          "echo one; echo two >&2; sleep 0.3; echo \"three $CHT_VAR\"; exit 3",
                          NULL};
    const char *env[] = {"CHT_VAR=from-env", NULL};
    spawn(f, argv, env, errfile, false);
    assert_in_range(cht_proc_pid(f->proc), 1, INT_MAX);

    expect_line(f->proc, 2000, "one");
    char *line = NULL;
    int64_t t0 = ch_now_mono_ms();
    assert_int_equal(cht_proc_read_line(f->proc, 100, &line), CHT_READ_TIMEOUT);
    int64_t took = ch_now_mono_ms() - t0;
    assert_null(line);
    assert_in_range(took, 95, 1999); /* the bound, not the next line 2 s later */
    expect_line(f->proc, 2000, "three from-env");
    assert_int_equal(cht_proc_read_line(f->proc, 2000, &line), CHT_READ_EOF);

    int ws = 0;
    CHT_CHECK(cht_proc_wait(f->proc, 2000, &ws, &err), &err);
    assert_true(cht_proc_exited(f->proc));
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 3);
    assert_string_equal(cht_proc_stderr(f->proc), "two\n");
    char *saved = cht_file_tail(errfile, 1024);
    unlink(errfile);
    assert_non_null(saved);
    assert_string_equal(saved, "two\n");
    free(saved);
}

static void test_proc_read_until_then_signal_and_wait(void **state)
{
    fixture *f = *state;
    ch_error err;
    const char *argv[] = {"/bin/sh", "-c",
                          "for i in 1 2 3 4 5; do echo line$i; done; exec sleep 30", NULL};
    spawn(f, argv, NULL, NULL, false);
    char *line = NULL;
    assert_int_equal(cht_proc_read_until(f->proc, "ne4", 2000, &line), CHT_READ_LINE);
    assert_string_equal(line, "line4");
    free(line);
    expect_line(f->proc, 2000, "line5");
    assert_int_equal(cht_proc_read_until(f->proc, "never", 100, NULL), CHT_READ_TIMEOUT);

    int ws = 0;
    int64_t t0 = ch_now_mono_ms();
    assert_int_equal(cht_proc_wait(f->proc, 100, &ws, &err), CH_ERR_TIMEOUT);
    assert_in_range(ch_now_mono_ms() - t0, 0, 1999); /* gave up, did not wait for sleep 30 */
    assert_false(cht_proc_exited(f->proc));
    CHT_CHECK(cht_proc_signal(f->proc, SIGTERM, &err), &err);
    CHT_CHECK(cht_proc_wait(f->proc, 2000, &ws, &err), &err);
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGTERM);
    assert_int_not_equal(cht_proc_signal(f->proc, SIGTERM, &err), CH_OK);
}

static void test_proc_free_kills_a_running_child(void **state)
{
    fixture *f = *state;
    const char *argv[] = {"sleep", "30", NULL}; /* found through PATH */
    spawn(f, argv, NULL, NULL, false);
    pid_t pid = cht_proc_pid(f->proc);
    assert_true(cht_pid_alive(pid));
    int64_t t0 = ch_now_mono_ms();
    cht_proc_free(f->proc);
    f->proc = NULL;
    assert_in_range(ch_now_mono_ms() - t0, 0, 1999);
    assert_int_equal(kill(pid, 0), -1);
}

static void test_proc_long_lines_are_split_at_the_bound(void **state)
{
    fixture *f = *state;
    const char *argv[] = {"/bin/sh", "-c", "head -c 70000 /dev/zero | tr '\\000' x; echo; echo end",
                          NULL};
    spawn(f, argv, NULL, NULL, false);
    char *line = NULL;
    assert_int_equal(cht_proc_read_line(f->proc, 3000, &line), CHT_READ_LINE);
    assert_int_equal(strlen(line), CHT_LINE_MAX);
    free(line);
    assert_int_equal(cht_proc_read_line(f->proc, 3000, &line), CHT_READ_LINE);
    assert_int_equal(strlen(line), 70000 - CHT_LINE_MAX);
    free(line);
    expect_line(f->proc, 3000, "end");
}

static void test_proc_stdin_pipe_and_partial_last_line(void **state)
{
    fixture *f = *state;
    ch_error err;
    const char *argv[] = {"cat", NULL};
    spawn(f, argv, NULL, NULL, true);
    CHT_CHECK(cht_proc_write_stdin(f->proc, "hello\nno-newline", 16, &err), &err);
    expect_line(f->proc, 2000, "hello");
    char *line = NULL;
    assert_int_equal(cht_proc_read_line(f->proc, 100, &line), CHT_READ_TIMEOUT);
    cht_proc_close_stdin(f->proc);
    expect_line(f->proc, 2000, "no-newline");
    assert_int_equal(cht_proc_read_line(f->proc, 2000, &line), CHT_READ_EOF);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(f->proc, 2000, &ws, &err), &err);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

static void test_proc_and_bin_path_fail_clearly_on_missing_programs(void **state)
{
    ch_error err;
    cht_proc *p = NULL;
    const char *argv[] = {"/nonexistent/program", NULL};
    cht_proc_opts o = {.argv = argv};
    assert_int_equal(cht_proc_spawn(&o, &p, &err), CH_ERR_NOT_FOUND);
    assert_null(p);
    assert_non_null(strstr(err.msg, "/nonexistent/program"));

    /* A file that exists but cannot be executed fails in execve: reported, not a hang. */
    const char *argv2[] = {"/dev/null", NULL};
    o.argv = argv2;
    assert_int_not_equal(cht_proc_spawn(&o, &p, &err), CH_OK);
    assert_null(p);

    char path[4096];
    assert_int_equal(cht_bin_path("no-such-binary", path, sizeof(path), &err), CH_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "no-such-binary"));
    CHT_CHECK(cht_bin_path("choria", path, sizeof(path), &err), &err);
    assert_int_equal(access(path, X_OK), 0);
}

/* --------------------------------------------------------------------------------------
 * Temporary directories, files and choria-provisioner */

static char *read_text(const char *path)
{
    char *text = NULL;
    ch_error err;
    CHT_CHECK(ch_read_file(path, 1024 * 1024, &text, NULL, &err), &err);
    return text;
}

static void test_temp_dir_holds_written_files_until_removed(void **state)
{
    fixture *f = *state;
    ch_error err;
    char path[512], small[8];
    CHT_CHECK(cht_temp_dir("selftest", f->dir, sizeof(f->dir), &err), &err);
    assert_non_null(strstr(f->dir, "/cht-selftest-"));
    struct stat sb;
    assert_int_equal(stat(f->dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/%s", f->dir, CHT_OWNER_FILE);
    char *text = read_text(path);
    assert_int_equal(atol(text), (long)getpid());
    free(text);

    snprintf(path, sizeof(path), "%s/a.conf", f->dir);
    CHT_CHECK(cht_write_file(path, &err, "port = %d\nname = %s\n", 4222, "x"), &err);
    CHT_CHECK(cht_write_file(path, &err, "short\n"), &err); /* truncates */
    text = read_text(path);
    assert_string_equal(text, "short\n");
    free(text);
    snprintf(path, sizeof(path), "%s/missing/a.conf", f->dir);
    assert_int_equal(cht_write_file(path, &err, "x"), CH_ERR_IO);
    assert_non_null(strstr(err.msg, path));

    assert_int_equal(cht_temp_dir("no/slash", small, sizeof(small), &err), CH_ERR_INVALID);
    assert_string_equal(small, "");
    assert_int_equal(cht_temp_dir("selftest", small, sizeof(small), &err), CH_ERR_TOO_LARGE);
    assert_string_equal(small, "");

    CHT_CHECK(cht_temp_dir_remove(f->dir, &err), &err);
    if (getenv("CHT_KEEP") == NULL)
        assert_false(dir_exists(f->dir));
    f->dir[0] = '\0';
    CHT_CHECK(cht_temp_dir_remove(f->dir, &err), &err);
    CHT_CHECK(cht_temp_dir_remove(NULL, &err), &err);
}

static void test_provisioner_start_waits_for_healthz_with_the_monitor_lines_appended(void **state)
{
    fixture *f = *state;
    ch_error err;
    char client[300], pid[300], path[300], want[128];
    int port = 0, status = 0;
    CHT_CHECK(cht_temp_dir("selftest", f->dir, sizeof(f->dir), &err), &err);
    snprintf(client, sizeof(client),
             "identity = p.example.net\nplugin.choria.middleware_hosts = %s\n",
             cht_broker_url(f->broker));
    snprintf(pid, sizeof(pid), "%s/p.pid", f->dir);
    const char *args[] = {"--pid", pid, NULL};
    const char *env[] = {"CHORIA_PROVISIONER_BACKOFF_PERCENT=10", NULL};
    cht_provisioner_opts o = {.dir = f->dir,
                              .config = "site: selftest\nhelper: /bin/true", /* no newline */
                              .config_name = "p.yaml",
                              .client_config = client,
                              .extra_args = args,
                              .env = env};
    CHT_CHECK(cht_provisioner_start(&o, &f->proc, &port, &err), &err);
    assert_in_range(port, 1, 65535);
    CHT_CHECK(cht_http_get(port, "/healthz", 2000, &status, NULL, &err), &err);
    assert_int_equal(status, 200);
    /* complete as soon as /healthz answers: written before the listener starts */
    char *pid_text = read_text(pid);
    snprintf(want, sizeof(want), "%d\n", (int)cht_proc_pid(f->proc));
    assert_string_equal(pid_text, want);
    free(pid_text);

    snprintf(path, sizeof(path), "%s/p.yaml", f->dir);
    snprintf(want, sizeof(want),
             "site: selftest\nhelper: /bin/true\nmonitor_port: %d\nmonitor_bind: 127.0.0.1\n",
             port);
    char *text = read_text(path);
    assert_string_equal(text, want);
    free(text);
    snprintf(path, sizeof(path), "%s/client.conf", f->dir);
    text = read_text(path);
    assert_string_equal(text, client);
    free(text);
}

static void test_provisioner_start_reports_an_early_exit_and_a_timeout(void **state)
{
    fixture *f = *state;
    ch_error err;
    cht_proc *p = NULL;
    int port = -1;
    CHT_CHECK(cht_temp_dir("selftest", f->dir, sizeof(f->dir), &err), &err);
    cht_provisioner_opts o = {.dir = f->dir, .config = "interval: 10s\nhelper: /bin/true\n"};
    assert_int_equal(cht_provisioner_start(&o, &p, &port, &err), CH_ERR_CONNECTION);
    assert_null(p);
    assert_int_equal(port, 0);
    assert_non_null(strstr(err.msg, "exited"));
    assert_non_null(strstr(err.msg, "interval is too small")); /* its last stderr line */

    char client[300];
    snprintf(client, sizeof(client), "plugin.choria.middleware_hosts = %s\n",
             cht_broker_url(f->broker));
    cht_provisioner_opts never = {.dir = f->dir,
                                  .config = "site: t\nhelper: /bin/true\n",
                                  .client_config = client,
                                  .ready_series = "choria_provisioner_paused{site=\"t\"}",
                                  .ready_value = 42,
                                  .ready_timeout_ms = 1500};
    int64_t t0 = ch_now_mono_ms();
    assert_int_equal(cht_provisioner_start(&never, &p, &port, &err), CH_ERR_TIMEOUT);
    assert_in_range(ch_now_mono_ms() - t0, 1500, 10000);
    assert_null(p);
    assert_non_null(strstr(err.msg, "choria_provisioner_paused{site=\"t\"} is not 42"));

    cht_provisioner_opts none = {.dir = f->dir};
    assert_int_equal(cht_provisioner_start(&none, &p, NULL, &err), CH_ERR_INVALID);
}

/* --------------------------------------------------------------------------------------
 * Crash safety: run ourselves as a child that starts a broker and then misbehaves. */

static cht_broker *selftest_broker; /* reachable at exit, so LSan sees no leak */

static int selftest_start(void)
{
    ch_error err;
    if (cht_broker_start(NULL, &selftest_broker, &err) != CH_OK) {
        fprintf(stderr, "selftest: %s\n", err.msg);
        return -1;
    }
    FILE *out = fopen(getenv("CHT_SELFTEST_OUT"), "w");
    if (out == NULL)
        return -1;
    fprintf(out, "%ld %s\n", (long)cht_broker_pid(selftest_broker),
            cht_broker_dir(selftest_broker));
    fclose(out);
    printf("selftest: broker ready\n");
    fflush(stdout);
    return 0;
}

static int selftest_setup(void **state)
{
    return selftest_start();
}

static int selftest_teardown(void **state)
{
    cht_broker_free(selftest_broker);
    selftest_broker = NULL;
    printf("selftest: teardown ran\n");
    fflush(stdout);
    return 0;
}

static void selftest_failing_assertion(void **state)
{
    assert_int_equal(1, 2);
}

static int selftest_main(const char *mode)
{
    struct rlimit no_core = {0, 0}; /* abort/segv modes must not leave core files around */
    setrlimit(RLIMIT_CORE, &no_core);
    if (strcmp(mode, "assert") == 0) {
        const struct CMUnitTest tests[] = {cmocka_unit_test_setup_teardown(
            selftest_failing_assertion, selftest_setup, selftest_teardown)};
        return cmocka_run_group_tests(tests, NULL, NULL);
    }
    if (selftest_start() != 0)
        return 100;
    if (strcmp(mode, "abort") == 0)
        abort();
    if (strcmp(mode, "exit") == 0)
        exit(0);
    if (strcmp(mode, "segv") == 0)
        raise(SIGSEGV);
    for (int i = 0; i < 600; i++) /* "hang": wait to be killed, 60 s at most */
        usleep(100 * 1000);
    return 101;
}

/* Runs the selftest child in mode; returns its wait status and the broker it started. */
static int run_selftest(fixture *f, const char *mode, int signal_after_ready, pid_t *broker_pid,
                        char *dir, size_t dir_size)
{
    ch_error err;
    char out[] = "/tmp/cht-selftest-XXXXXX";
    int fd = mkstemp(out);
    assert_in_range(fd, 0, INT_MAX);
    close(fd);
    char env_mode[64], env_out[128];
    snprintf(env_mode, sizeof(env_mode), "CHT_SELFTEST=%s", mode);
    snprintf(env_out, sizeof(env_out), "CHT_SELFTEST_OUT=%s", out);
    const char *argv[] = {"/proc/self/exe", NULL};
    const char *env[] = {env_mode, env_out, NULL};
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_in_range(n, 1, sizeof(self) - 1);
    self[n] = '\0';
    argv[0] = self;
    spawn(f, argv, env, NULL, false);

    char *line = NULL;
    cht_read_status rs = cht_proc_read_until(f->proc, "broker ready", 15000, &line);
    free(line);
    if (rs != CHT_READ_LINE)
        fail_msg("selftest %s: %s; stderr: %s", mode, cht_read_status_text(rs),
                 cht_proc_stderr(f->proc));
    FILE *in = fopen(out, "r");
    assert_non_null(in);
    long pid = 0;
    char fmt[32];
    snprintf(fmt, sizeof(fmt), "%%ld %%%zus", dir_size - 1);
    int got = fscanf(in, fmt, &pid, dir);
    fclose(in);
    unlink(out);
    assert_int_equal(got, 2);
    *broker_pid = (pid_t)pid;
    if (signal_after_ready != 0)
        CHT_CHECK(cht_proc_signal(f->proc, signal_after_ready, &err), &err);
    int ws = 0;
    CHT_CHECK(cht_proc_wait(f->proc, 20000, &ws, &err), &err);
    return ws;
}

static void assert_broker_cleaned(pid_t pid, const char *dir)
{
    assert_true(pid_gone_within(pid, 5000));
    if (getenv("CHT_KEEP") == NULL)
        assert_false(dir_exists(dir));
}

static void test_failed_assertion_still_runs_teardown(void **state)
{
    fixture *f = *state;
    pid_t pid;
    char dir[1024];
    int ws = run_selftest(f, "assert", 0, &pid, dir, sizeof(dir));
    char *line = NULL;
    assert_int_equal(cht_proc_read_until(f->proc, "teardown ran", 1000, &line), CHT_READ_LINE);
    free(line);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 1); /* one failed test */
    assert_broker_cleaned(pid, dir);
}

static void test_abort_kills_brokers_and_removes_dirs(void **state)
{
    fixture *f = *state;
    pid_t pid;
    char dir[1024];
    int ws = run_selftest(f, "abort", 0, &pid, dir, sizeof(dir));
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGABRT); /* the handler re-raised after cleaning */
    assert_broker_cleaned(pid, dir);
}

static void test_segv_kills_brokers_and_removes_dirs(void **state)
{
    fixture *f = *state;
    pid_t pid;
    char dir[1024];
    int ws = run_selftest(f, "segv", 0, &pid, dir, sizeof(dir));
    if (!WIFSIGNALED(ws)) { /* ASan exits */
        assert_true(WIFEXITED(ws));
        assert_int_not_equal(WEXITSTATUS(ws), 0);
    }
    assert_broker_cleaned(pid, dir);
}

static void test_exit_without_free_kills_brokers_and_removes_dirs(void **state)
{
    fixture *f = *state;
    pid_t pid;
    char dir[1024];
    int ws = run_selftest(f, "exit", 0, &pid, dir, sizeof(dir));
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    assert_broker_cleaned(pid, dir);
}

static void test_sigterm_of_test_process_kills_brokers_and_removes_dirs(void **state)
{
    fixture *f = *state;
    pid_t pid;
    char dir[1024];
    int ws = run_selftest(f, "hang", SIGTERM, &pid, dir, sizeof(dir));
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGTERM);
    assert_broker_cleaned(pid, dir);
}

static void test_sigkill_of_test_process_still_kills_broker_by_pdeathsig(void **state)
{
    fixture *f = *state;
    ch_error err;
    pid_t pid;
    char dir[1024];
    /* The orphaned nats-server is reparented to us, so we can reap it and leave no zombie
     * for an init that may never reap. */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    int ws = run_selftest(f, "hang", SIGKILL, &pid, dir, sizeof(dir));
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGKILL);
    assert_true(pid_gone_within(pid, 5000)); /* nobody could clean up: the kernel did */
    int64_t deadline = ch_now_mono_ms() + 2000;
    while (waitpid(pid, NULL, WNOHANG) == 0 && ch_now_mono_ms() < deadline)
        usleep(10 * 1000);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    assert_int_equal(kill(pid, 0), -1);
    assert_true(dir_exists(dir)); /* the next harness run sweeps it; we do now */
    CHT_CHECK(cht_remove_tree(dir, &err), &err);
    assert_false(dir_exists(dir));
}

static int group_teardown(void **state)
{
    nats_CloseAndWait(2000); /* frees nats.c's library state, so ASan sees no leaks */
    return 0;
}

int main(void)
{
    const char *mode = getenv("CHT_SELFTEST");
    if (mode != NULL)
        return selftest_main(mode);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_broker_is_healthy_on_loopback_with_working_accessors,
                                        setup_broker, teardown),
        cmocka_unit_test_setup_teardown(test_broker_pubsub_round_trip, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(test_broker_jetstream_kv_put_get_with_ttl_in_nanoseconds,
                                        setup_broker, teardown),
        cmocka_unit_test_setup_teardown(
            test_broker_restart_keeps_port_and_store_and_client_reconnects, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(test_broker_crash_kills_at_once_and_restart_recovers,
                                        setup_broker, teardown),
        cmocka_unit_test_setup_teardown(test_broker_wait_ready_times_out_when_broker_hangs,
                                        setup_broker, teardown),
        cmocka_unit_test_setup_teardown(test_broker_free_stops_pid_and_removes_dir, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_broker_options_auth_and_jetstream_off, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_broker_start_fails_fast_and_loudly_on_bad_config,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_r3_kv_stays_writable_after_leader_crash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_proc_reads_lines_with_timeouts_stderr_env_and_exit_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proc_read_until_then_signal_and_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proc_free_kills_a_running_child, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proc_long_lines_are_split_at_the_bound, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_proc_stdin_pipe_and_partial_last_line, setup,
                                        teardown),
        cmocka_unit_test(test_proc_and_bin_path_fail_clearly_on_missing_programs),
        cmocka_unit_test_setup_teardown(test_temp_dir_holds_written_files_until_removed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_provisioner_start_waits_for_healthz_with_the_monitor_lines_appended, setup_broker,
            teardown),
        cmocka_unit_test_setup_teardown(test_provisioner_start_reports_an_early_exit_and_a_timeout,
                                        setup_broker, teardown),
        cmocka_unit_test_setup_teardown(test_failed_assertion_still_runs_teardown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_kills_brokers_and_removes_dirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segv_kills_brokers_and_removes_dirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_without_free_kills_brokers_and_removes_dirs,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_of_test_process_kills_brokers_and_removes_dirs,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_sigkill_of_test_process_still_kills_broker_by_pdeathsig, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
