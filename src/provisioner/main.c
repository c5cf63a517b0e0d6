/* choria-provisioner: command line, configuration, logging, signals and the PID file around the
 * provisioner (upstream cmd/provisioner.go). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "choria/config.h"
#include "choria/log.h"
#include "choria/process.h"
#include "choria/protocol.h"
#include "choria/security.h"
#include "config.h"
#include "provisioner.h"

static const char USAGE[] =
    "usage: choria-provisioner [--help] [--version] [--debug] [run] --config=FILE\n"
    "           [--choria-config=FILE] [--pid=FILE]\n"
    "\n"
    "Choria zero-touch provisioner: finds Choria servers in provisioning mode, asks a helper\n"
    "program for their configuration and certificate, then configures and restarts them.\n"
    "\n"
    "Commands:\n"
    "  run    Runs the provisioner (the default command)\n"
    "\n"
    "Flags:\n"
    "  --config=FILE         Provisioner configuration, YAML or JSON (required)\n"
    "  --choria-config=FILE  Choria client configuration with the brokers and identity\n"
    "                        (default: ~/.choriarc, ~/.mcollective, /etc/choria/client.conf,\n"
    "                        /usr/local/etc/choria/client.conf)\n"
    "  --pid=FILE            Write the process id to FILE, removed at exit\n"
    "  --debug               Log at debug level\n"
    "  --version             Show the version\n"
    "  -h, --help            Show this help\n"
    "\n"
    "Signals: SIGINT and SIGTERM stop, SIGHUP reopens the log file.\n";

typedef struct {
    const char *config;
    const char *choria_config;
    const char *pid_file;
    bool debug;
} args;

/* 0 = run, 1 = exit 0 (help/version), -1 = usage error. */
static int parse_args(int argc, char **argv, args *a)
{
    static const struct option LONG[] = {{"config", required_argument, NULL, 'c'},
                                         {"choria-config", required_argument, NULL, 'C'},
                                         {"pid", required_argument, NULL, 'p'},
                                         {"debug", no_argument, NULL, 'd'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", LONG, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->config = optarg;
            break;
        case 'C':
            a->choria_config = optarg;
            break;
        case 'p':
            a->pid_file = optarg;
            break;
        case 'd':
            a->debug = true;
            break;
        case 'V':
            printf("%s\n", CH_VERSION);
            return 1;
        case 'h':
            fputs(USAGE, stdout);
            return 1;
        default:
            fprintf(stderr, "choria-provisioner: unknown or incomplete flag '%s', try --help\n",
                    argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc && strcmp(argv[optind], "run") == 0) {
        optind++;
        return parse_args(argc, argv, a);
    }
    if (optind < argc) {
        fprintf(stderr, "choria-provisioner: unknown command '%s', try --help\n", argv[optind]);
        return -1;
    }
    if (a->config == NULL) {
        fprintf(stderr, "choria-provisioner: --config is required, try --help\n");
        return -1;
    }
    return 0;
}

/* Log destination and level from the provisioner config (upstream passes them to Choria). */
static ch_status setup_logging(const prov_config *cfg, bool debug, ch_error *err)
{
    ch_log_level level = CH_LOG_INFO;
    ch_log_level_parse(cfg->loglevel, &level);
    if (debug)
        level = CH_LOG_DEBUG;
    const char *file = cfg->logfile;
    if (strcasecmp(file, "discard") == 0)
        level = CH_LOG_OFF;
    ch_log_set_level(level);
    const char *path = strcasecmp(file, "stderr") == 0 || strcasecmp(file, "discard") == 0 ? NULL
                       : strcasecmp(file, "stdout") == 0 ? "/dev/stdout"
                                                         : file;
    ch_status st = ch_log_set_file(path, err);
    /* JSON only into a file that is not a terminal, where a machine reads it. */
    bool json = strcasecmp(cfg->logformat, "json") == 0 &&
                !(path == NULL ? isatty(STDERR_FILENO)
                               : strcmp(path, "/dev/stdout") == 0 && isatty(STDOUT_FILENO));
    ch_log_set_json(json);
    return st;
}

typedef struct {
    ch_config *cfg;
    ch_config_resolved *resolved;
    ch_config_security security;
} choria_config;

static ch_status load_choria_config(const char *path, choria_config *cc, ch_error *err)
{
    char *found = path == NULL ? ch_config_find_client_config(NULL, NULL) : NULL;
    const char *use = path != NULL ? path : found;
    ch_status st = CH_OK;
    cc->cfg = ch_config_new();
    if (cc->cfg == NULL)
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    else if (use == NULL)
        st = ch_error_set(err, CH_ERR_NOT_FOUND,
                          "no Choria client configuration found, give one with --choria-config");
    else if ((st = ch_config_load_file(cc->cfg, use, err)) == CH_OK)
        st = ch_config_resolve(cc->cfg, &cc->resolved, err);
    if (st == CH_OK && cc->resolved->middleware_count == 0)
        st =
            ch_error_set(err, CH_ERR_INVALID, "%s: plugin.choria.middleware_hosts is not set", use);
    if (st == CH_OK)
        st = ch_config_security_resolve(cc->cfg, cc->resolved, NULL, &cc->security, err);
    free(found);
    return st;
}

/* Written whole under a temporary name and renamed, before the daemon answers /healthz:
 * whoever sees it healthy finds the pid file complete. */
static bool write_pid(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        ch_warn("cannot write pid file %s: the name is too long", path);
        return false;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ch_warn("cannot write pid file %s: %s", path, strerror(errno));
        return false;
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    bool ok = write(fd, buf, (size_t)n) == n;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        ch_warn("cannot write pid file %s: %s", path, strerror(errno));
        unlink(tmp);
        return false;
    }
    return true;
}

/* Waits for SIGINT/SIGTERM, reopening the log on SIGHUP. The signals are blocked in every
 * thread (set before any thread starts) and taken here with sigwait. */
static void wait_for_stop(const sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            ch_error err;
            if (ch_log_reopen(&err) != CH_OK)
                fprintf(stderr, "choria-provisioner: cannot reopen the log: %s\n", err.msg);
            else
                ch_info("Log file reopened");
            continue;
        }
        ch_info("Stopping on signal %d", sig);
        return;
    }
}

/* The brokers of the Choria client configuration, as NATS user "provisioner" when
 * broker_provisioning_password is set (the broker's provisioning account). */
static ch_status connection_settings(const prov_config *cfg, const choria_config *cc,
                                     ch_conn_settings *conn, ch_error *err)
{
    const char *hosts = ch_config_get(cc->cfg, "plugin.choria.middleware_hosts");
    ch_status st = ch_conn_settings_set(&conn->name, cc->resolved->identity, err);
    if (st == CH_OK && hosts != NULL)
        st = ch_conn_settings_add_servers(conn, hosts, err);
    if (st == CH_OK && cfg->broker_provisioning_password[0] != '\0') {
        st = ch_conn_settings_set(&conn->user, "provisioner", err);
        if (st == CH_OK)
            st = ch_conn_settings_set(&conn->password, cfg->broker_provisioning_password, err);
    }
    /* upstream's choria_insecure turns TLS off as well as request signing */
    if (st == CH_OK)
        st = ch_conn_settings_apply_security(conn, &cc->security,
                                             cfg->choria_insecure || cc->resolved->insecure, err);
    return st;
}

static int backoff_percent_from_env(void)
{
    const char *v = getenv("CHORIA_PROVISIONER_BACKOFF_PERCENT");
    int pct = v != NULL ? atoi(v) : 0;
    return pct > 0 && pct <= 100 ? pct : 0;
}

static int run(const args *a, const sigset_t *signals)
{
    ch_error err;
    ch_error_clear(&err);
    prov_config *cfg = NULL;
    choria_config cc = {0};
    ch_conn_settings conn = {0};
    prov_daemon *p = NULL;
    bool pid_written = false;
    ch_security *security = NULL;
    int rc = 1;
    if (prov_config_load(a->config, &cfg, &err) != CH_OK) {
        fprintf(stderr, "choria-provisioner: Provisioning could not be configured: %s\n", err.msg);
        goto out;
    }
    if (setup_logging(cfg, a->debug, &err) != CH_OK) {
        fprintf(stderr, "choria-provisioner: logfile: %s\n", err.msg);
        goto out;
    }
    for (size_t i = 0; i < cfg->unknown_keys.count; i++)
        ch_warn("Unknown configuration key %s in %s is ignored", cfg->unknown_keys.items[i],
                a->config);
    if (load_choria_config(a->choria_config, &cc, &err) != CH_OK) {
        fprintf(stderr, "choria-provisioner: Choria configuration: %s\n", err.msg);
        goto out;
    }
    if (connection_settings(cfg, &cc, &conn, &err) != CH_OK) {
        fprintf(stderr, "choria-provisioner: Choria configuration: %s\n", err.msg);
        goto out;
    }
    bool insecure = cfg->choria_insecure || cc.resolved->insecure;
    if (ch_security_from_config(&cc.security, insecure, CH_SECURITY_SIGN, &security, &err) !=
        CH_OK) {
        fprintf(stderr, "choria-provisioner: Choria security: %s\n", err.msg);
        goto out;
    }
    const char *caller = ch_security_callerid(security);
    ch_info("Requests are signed by the %s security provider as %s, protocol %s",
            ch_security_name(security), caller != NULL ? caller : cc.security.certname,
            ch_protocol_for_security(security)->name);
    if (ch_protocol_for_security(security) == ch_protocol_v2())
        ch_info("Protocol v2: only nodes whose provisioning JWT says v2 will answer");
    prov_daemon_opts po = {.cfg = cfg,
                           .security = security,
                           .certname = cc.security.certname,
                           .config_file = a->config,
                           .conn = &conn,
                           .discovery_timeout_ms = cc.resolved->discovery_timeout * 1000,
                           .backoff_percent = backoff_percent_from_env()};
    pid_written = a->pid_file != NULL && write_pid(a->pid_file);
    if (prov_daemon_start(&po, &p, &err) != CH_OK) {
        ch_error("Provisioning could not start: %s", err.msg);
        if (ch_log_get_level() == CH_LOG_OFF || strcasecmp(cfg->logfile, "stderr") != 0)
            fprintf(stderr, "choria-provisioner: Provisioning could not start: %s\n", err.msg);
        goto out;
    }
    wait_for_stop(signals);
    rc = 0;
out:
    prov_daemon_stop(p);
    if (pid_written)
        unlink(a->pid_file);
    ch_conn_settings_clear(&conn);
    ch_security_free(security);
    ch_config_security_clear(&cc.security);
    ch_config_resolved_free(cc.resolved);
    ch_config_free(cc.cfg);
    prov_config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    args a = {0};
    int parsed = parse_args(argc, argv, &a);
    if (parsed != 0)
        return parsed > 0 ? 0 : 1;
    sigset_t signals;
    ch_process_take_stop_signals(&signals, true);
    return run(&a, &signals);
}
