/* Test harness: real nats-server processes and real project binaries for integration tests
 * and benchmarks.
 *
 * Everything listens on 127.0.0.1 on free ports picked at run time, lives in a fresh
 * temporary directory and is stopped and removed again, also when the test fails or the
 * test process dies:
 *   - cmocka runs teardown after a failed assertion, so put brokers and processes in
 *     setup/teardown fixtures and free them there;
 *   - a process-wide registry of started PIDs and temporary directories is cleaned by an
 *     atexit() hook and by a SIGABRT/SIGSEGV/SIGBUS/SIGINT/SIGTERM handler (which then
 *     chains to the previous handler, so ASan and cmocka still report);
 *   - every child gets PR_SET_PDEATHSIG=SIGKILL, so even a SIGKILLed test leaves no
 *     nats-server behind. The death signal follows the THREAD that spawned the child:
 *     spawn from the test's main thread, not from a short-lived worker thread.
 * Children run in their own process group; stdin is /dev/null unless asked for a pipe.
 * A broker, cluster or process object is used from one thread at a time.
 *
 * Set CHT_KEEP=1 to keep the temporary directories (config, store, logs) for inspection,
 * CHT_NATS_SERVER to use another nats-server binary.
 *
 * Unit tests may link the harness for cht_temp_dir and cht_write_file: those start nothing
 * and leave the process's SIGPIPE disposition alone (it is ignored once a child starts).
 *
 * Functions that can fail return ch_status and fill err (may be NULL). Long diagnostics
 * (the tail of a server log) are written to stderr because ch_error holds 256 bytes. */
#ifndef CH_TEST_HARNESS_H
#define CH_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <nats/nats.h>

#include "choria/common.h"

#define CHT_READY_TIMEOUT_MS 10000 /* default wait for /healthz */
/* The server.conf line that lets a provisioning-mode node use a harness broker, which speaks
 * plain NATS (upstream nodes provision over TLS only; tests/integration/test_security.c
 * provisions over TLS). */
#define PLAIN_PROVISIONING "plugin.choria.server.provision.tls = false"
#define CHT_STOP_GRACE_MS 5000           /* SIGTERM, then SIGKILL after this long */
#define CHT_LINE_MAX (64 * 1024)         /* longer stdout lines are split */
#define CHT_STDOUT_MAX (8 * 1024 * 1024) /* unread stdout kept; more is dropped and counted */
#define CHT_STDERR_MAX (1024 * 1024)     /* stderr kept for diagnostics (the newest part) */
#define CHT_HTTP_MAX (4 * 1024 * 1024)   /* largest HTTP response cht_http_get accepts */
#define CHT_CLUSTER_MAX 9

/* Fails the current cmocka test with err's message when call does not return CH_OK.
 * Only usable where cmocka.h is included. */
#define CHT_CHECK(call, errp)                                                                      \
    do {                                                                                           \
        ch_status cht_st_ = (call);                                                                \
        if (cht_st_ != CH_OK)                                                                      \
            fail_msg("%s failed: %s: %s", #call, ch_status_text(cht_st_), (errp)->msg);            \
    } while (0)

/* ---------------------------------------------------------------------------------------
 * Single broker */

typedef struct cht_broker cht_broker;

typedef struct {
    bool jetstream;            /* default true */
    const char *server_name;   /* default "cht" */
    const char *extra_config;  /* appended verbatim at the top level (accounts, users, ...) */
    int ready_timeout_ms;      /* default CHT_READY_TIMEOUT_MS */
    const char *js_max_memory; /* default "256MB" */
    const char *js_max_file;   /* default "1GB" */
} cht_broker_opts;

void cht_broker_opts_init(cht_broker_opts *o);

/* Starts nats-server (o may be NULL for the defaults) and waits until GET /healthz, and
 * /healthz?js-enabled-only=true with JetStream, answer 200. Retries with new ports if the
 * server lost a port race (address already in use). */
ch_status cht_broker_start(const cht_broker_opts *o, cht_broker **out, ch_error *err);

/* Stops the server (SIGTERM, CHT_STOP_GRACE_MS, SIGKILL), reaps it and removes the
 * temporary directory unless CHT_KEEP=1. Accepts NULL. */
void cht_broker_free(cht_broker *b);

const char *cht_broker_url(const cht_broker *b); /* "nats://127.0.0.1:<port>" */
int cht_broker_port(const cht_broker *b);
int cht_broker_http_port(const cht_broker *b);
int cht_broker_cluster_port(const cht_broker *b); /* 0 when not clustered */
const char *cht_broker_name(const cht_broker *b);
const char *cht_broker_dir(const cht_broker *b);
const char *cht_broker_config_path(const cht_broker *b);
const char *cht_broker_log_path(const cht_broker *b); /* server stdout+stderr, appended */
pid_t cht_broker_pid(const cht_broker *b);            /* 0 while stopped */
bool cht_broker_running(const cht_broker *b);

/* Graceful stop, keeps ports, config and store for cht_broker_restart. */
ch_status cht_broker_stop(cht_broker *b, ch_error *err);
/* kill -9 and reap, for fail-over tests. */
ch_status cht_broker_crash(cht_broker *b, ch_error *err);
/* Stops the server if it runs, starts it again on the same ports and store, waits ready. */
ch_status cht_broker_restart(cht_broker *b, ch_error *err);
/* Sends sig to the server (e.g. SIGSTOP/SIGCONT to simulate a hung broker); with SIGSTOP it
 * returns once the server is stopped. */
ch_status cht_broker_signal(cht_broker *b, int sig, ch_error *err);
/* Waits for /healthz (and the JetStream check when enabled); prints the log tail on failure. */
ch_status cht_broker_wait_ready(cht_broker *b, int timeout_ms, ch_error *err);

/* ---------------------------------------------------------------------------------------
 * JetStream cluster of n brokers on loopback, server names n1..nN */

typedef struct cht_cluster cht_cluster;

typedef struct {
    int nodes;                /* default 3, at most CHT_CLUSTER_MAX */
    const char *name;         /* cluster name, default "CHT" */
    const char *extra_config; /* appended to every node's config */
    int ready_timeout_ms;     /* healthz of all nodes plus meta leader, default 20000 */
} cht_cluster_opts;

void cht_cluster_opts_init(cht_cluster_opts *o);

/* Starts all nodes, waits for every /healthz and for a JetStream meta leader. */
ch_status cht_cluster_start(const cht_cluster_opts *o, cht_cluster **out, ch_error *err);
void cht_cluster_free(cht_cluster *c); /* stops all nodes, removes their directories */

int cht_cluster_size(const cht_cluster *c);
cht_broker *cht_cluster_node(cht_cluster *c, int i); /* 0-based; NULL if out of range */
const char *cht_cluster_url(const cht_cluster *c, int i);
const char *cht_cluster_urls(const cht_cluster *c); /* "nats://127.0.0.1:a,nats://..." */

ch_status cht_cluster_stop_node(cht_cluster *c, int i, ch_error *err);
ch_status cht_cluster_crash_node(cht_cluster *c, int i, ch_error *err);
ch_status cht_cluster_restart_node(cht_cluster *c, int i, ch_error *err);
ch_status cht_cluster_stop_all(cht_cluster *c, ch_error *err);

/* Polls /jsz on the running nodes until each of them names the same non-empty meta leader
 * that is not one of our stopped nodes (survivors name a crashed leader for a moment);
 * copies its server name into leader (may be NULL). */
ch_status cht_cluster_wait_meta_leader(cht_cluster *c, int timeout_ms, char *leader,
                                       size_t leader_size, ch_error *err);

/* ---------------------------------------------------------------------------------------
 * Child processes with captured output */

typedef struct cht_proc cht_proc;

typedef struct {
    const char *const *argv; /* argv[0]: a path, or a name looked up in PATH; NULL-ended */
    const char *const *env;  /* extra "KEY=VALUE" entries that add to / override environ */
    const char *stderr_file; /* if set, stderr is also appended to this file */
    const char *cwd;         /* working directory of the child, default inherited */
    bool stdin_pipe;         /* give the child a stdin pipe (cht_proc_write_stdin) */
} cht_proc_opts;

typedef enum {
    CHT_READ_LINE,    /* *line holds one line without its newline; caller frees */
    CHT_READ_TIMEOUT, /* no complete line within the timeout */
    CHT_READ_EOF,     /* stdout closed and no data left */
    CHT_READ_ERROR,
} cht_read_status;

const char *cht_read_status_text(cht_read_status s);

ch_status cht_proc_spawn(const cht_proc_opts *o, cht_proc **out, ch_error *err);
/* Sends SIGTERM if still alive, SIGKILL after CHT_STOP_GRACE_MS and to the process group,
 * reaps and frees. Accepts NULL. */
void cht_proc_free(cht_proc *p);

pid_t cht_proc_pid(const cht_proc *p);

/* One stdout line within timeout_ms (0: only what is already there). A partial last line
 * is returned at EOF; a line longer than CHT_LINE_MAX comes back in pieces. */
cht_read_status cht_proc_read_line(cht_proc *p, int timeout_ms, char **line);
/* Reads lines until one contains needle, or until pred(line, arg) is true; the matching
 * line goes to *line (may be NULL). Earlier lines are discarded. */
cht_read_status cht_proc_read_until(cht_proc *p, const char *needle, int timeout_ms, char **line);
cht_read_status cht_proc_read_until_fn(cht_proc *p, bool (*pred)(const char *line, void *arg),
                                       void *arg, int timeout_ms, char **line);
/* All stderr collected so far (the newest CHT_STDERR_MAX bytes), NUL-terminated; valid
 * until the next call on p. Reads what is available without blocking. */
const char *cht_proc_stderr(cht_proc *p);
/* Bytes of stdout dropped because more than CHT_STDOUT_MAX stayed unread. */
size_t cht_proc_stdout_dropped(const cht_proc *p);

ch_status cht_proc_write_stdin(cht_proc *p, const void *data, size_t len, ch_error *err);
void cht_proc_close_stdin(cht_proc *p);
ch_status cht_proc_signal(cht_proc *p, int sig, ch_error *err);
/* Waits for the exit while draining both pipes; *wstatus gets the waitpid() status
 * (WIFEXITED/WEXITSTATUS). CH_ERR_TIMEOUT if it still runs. Can be called again. */
ch_status cht_proc_wait(cht_proc *p, int timeout_ms, int *wstatus, ch_error *err);
bool cht_proc_exited(const cht_proc *p);

/* ---------------------------------------------------------------------------------------
 * choria-provisioner: the real binary started from two configuration texts */

#define CHT_PROVISIONER_MAX_ARGS 8 /* entries of cht_provisioner_opts.extra_args */

typedef struct {
    const char *dir;               /* where both files are written; required, must exist */
    const char *config;            /* provisioner YAML text; required */
    const char *config_name;       /* its file in dir, default "provisioner.yaml" */
    const char *client_config;     /* Choria client config text; NULL: no --choria-config */
    const char *client_name;       /* its file in dir, default "client.conf" */
    const char *const *extra_args; /* NULL-ended, appended to the command line */
    const char *const *env;        /* extra "KEY=VALUE" entries, as in cht_proc_opts */
    bool no_monitor;               /* no monitor_port lines; implies no_wait */
    bool no_wait;                  /* return right after the spawn */
    const char *ready_series;      /* wait until this /metrics series equals ready_value
                                    * instead of for /healthz, e.g.
                                    * choria_provisioner_paused{site="x"} */
    double ready_value;
    int ready_timeout_ms; /* default CHT_READY_TIMEOUT_MS */
} cht_provisioner_opts;

/* Writes <dir>/<client_name> and <dir>/<config_name>, picks a free port for /metrics and
 * /healthz and appends "monitor_port: <port>" and "monitor_bind: 127.0.0.1" to the YAML (so
 * config must not set them itself, and must end at the top level of its mapping), runs
 * `choria-provisioner run --config <yaml> [--choria-config <client>] <extra_args>` from
 * cht_bin_path and waits until GET /healthz answers 200 (or ready_series has ready_value).
 * *monitor_port (may be NULL) gets the port, 0 with no_monitor.
 *
 * CH_OK: *out is the running process; free it with cht_proc_free. On error *out is NULL and
 * any process started is stopped: CH_ERR_INVALID for missing dir or config, CH_ERR_IO when a
 * file cannot be written or the program cannot be started, CH_ERR_NOT_FOUND when the binary
 * is missing, CH_ERR_CONNECTION when it exited before it was ready, CH_ERR_TIMEOUT when it was
 * not ready within ready_timeout_ms. The last two put its last stderr line into err and all
 * of its stderr on our stderr. Call from the test's main thread (see cht_proc_spawn). */
ch_status cht_provisioner_start(const cht_provisioner_opts *o, cht_proc **out, int *monitor_port,
                                ch_error *err);

/* Member i of a group of provisioners in a leader election: identity p<i>.example.net,
 * files p<i>.yaml and pc<i>.conf and log p<i>.log in dir, the demo helper, election through
 * $JS.API; the broker password only when provisioning_password is set. */
typedef struct {
    const char *dir;                   /* required, must exist */
    int index;                         /* i */
    const char *site;                  /* required */
    int workers;                       /* default 4 */
    const char *urls;                  /* plugin.choria.middleware_hosts; required */
    const char *provisioning_password; /* broker_provisioning_password, NULL: none */
    bool no_wait;                      /* as in cht_provisioner_opts */
} cht_member_opts;

/* cht_provisioner_start for that member; same results. */
ch_status cht_provisioner_start_member(const cht_member_opts *m, cht_proc **out, int *monitor_port,
                                       ch_error *err);

/* ---------------------------------------------------------------------------------------
 * Temporary directories and files */

/* Each directory made by cht_temp_dir (and each broker's) holds this file with the PID of
 * the test process, so that a later run can remove what a SIGKILLed test left behind. Tests
 * that count the entries of such a directory skip it. */
#define CHT_OWNER_FILE "cht-owner"
#define CHT_TEMP_DIR_MAX 128 /* directories alive at once, the brokers' included */
#define CHT_TAG_MAX 64       /* characters of a cht_temp_dir tag */

/* Makes $TMPDIR/cht-<tag>-XXXXXX (TMPDIR defaults to /tmp; mode 0700) and copies its path
 * into out. The directory is registered with the harness: it goes at exit and on a fatal
 * signal even when the test never calls cht_temp_dir_remove. tag is 1 to CHT_TAG_MAX
 * characters of [A-Za-z0-9_-]. CH_ERR_INVALID for a bad tag, CH_ERR_TOO_LARGE when the path
 * does not fit out_size or CHT_TEMP_DIR_MAX directories exist already, CH_ERR_IO when mkdtemp
 * fails. On error out is "" (when out_size > 0). Any thread may call it. */
ch_status cht_temp_dir(const char *tag, char *out, size_t out_size, ch_error *err);

/* rm -rf of a directory from cht_temp_dir, without following symlinks, or with CHT_KEEP=1
 * only a note on stderr naming it; forgets it either way. CH_OK also for NULL and "" (a setup
 * that failed before making it); CH_ERR_IO when something in the tree could not be removed. */
ch_status cht_temp_dir_remove(const char *path, ch_error *err);

/* A cmocka fixture holding one such directory (tag "unit"): cht_dir_setup makes it and puts a
 * calloc'ed cht_dir_fixture in *state, cht_dir_teardown removes both. Setup returns -1 (the
 * test fails) with the reason on stderr, teardown -1 when the tree could not be removed. */
typedef struct {
    char dir[128]; /* $TMPDIR/cht-unit-XXXXXX; a longer TMPDIR fails the setup */
} cht_dir_fixture;

int cht_dir_setup(void **state);
int cht_dir_teardown(void **state);

/* Creates or truncates path and writes the printf-formatted text into it. err comes before
 * the format because the arguments end in the printf list. CH_ERR_IO names the path when it
 * cannot be created, written or closed. Tests wrap it: CHT_CHECK(cht_write_file(...), &err). */
ch_status cht_write_file(const char *path, ch_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Runs the printf-formatted command with /bin/sh; CH_ERR_INTERNAL names the command when it
 * does not exit 0. Tests use CHT_SH(fmt, ...), which fails the test. */
ch_status cht_sh(ch_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define CHT_SH(...)                                                                                \
    do {                                                                                           \
        ch_error cht_sh_err_;                                                                      \
        CHT_CHECK(cht_sh(&cht_sh_err_, __VA_ARGS__), &cht_sh_err_);                                \
    } while (0)

/* ---------------------------------------------------------------------------------------
 * Small helpers */

/* Full path of a project binary: $CH_BIN_DIR/<name> (or, without CH_BIN_DIR, the directory
 * of the running test executable). Fails when it is missing or not executable. */
ch_status cht_bin_path(const char *name, char *out, size_t out_size, ch_error *err);

/* HTTP/1.0 GET http://127.0.0.1:<port><path>. *status gets the HTTP status; *body (may be
 * NULL) a malloc'd NUL-terminated body. Bounded by timeout_ms and CHT_HTTP_MAX. */
ch_status cht_http_get(int port, const char *path, int timeout_ms, int *status, char **body,
                       ch_error *err);

/* Options with the url list (comma-separated), a connect timeout and fast reconnects
 * (every 100 ms, up to 300 times) for tests to add callbacks to. Caller destroys. */
ch_status cht_nats_options(const char *urls, int timeout_ms, natsOptions **out, ch_error *err);
/* Connects with cht_nats_options; the connection fails within about timeout_ms. */
ch_status cht_nats_connect(const char *urls, int timeout_ms, natsConnection **out, ch_error *err);
/* Publishes data and flushes (bounded by 5 s), so the broker has it on return. */
ch_status cht_nats_publish(natsConnection *nc, const char *subject, const void *data, size_t len,
                           ch_error *err);

/* Creates the KV bucket the leader election uses (history 1, ttl_s seconds, one replica) on
 * the broker at urls, as `choria broker run` does; CH_OK also when it exists already. */
ch_status cht_election_bucket_create(const char *urls, const char *bucket, int ttl_s,
                                     ch_error *err);

/* A free TCP port on 127.0.0.1 (bound and released: a small race remains); -1 if none. */
int cht_free_port(void);

/* The value of one Prometheus series line at http://127.0.0.1:<port>/metrics, e.g.
 * choria_provisioner_provisioned{site="x"}; -1 when absent or unreachable. */
double cht_metric(int port, const char *series);

/* The last max_bytes of a file, malloc'd and NUL-terminated; NULL if unreadable. */
char *cht_file_tail(const char *path, size_t max_bytes);

/* True while pid exists and is not a zombie (for grandchildren nobody reaps). */
bool cht_pid_alive(pid_t pid);

/* rm -rf of a directory tree, without following symlinks. */
ch_status cht_remove_tree(const char *path, ch_error *err);

#endif
