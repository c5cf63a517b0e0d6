/* `choria election view|info [REGEX]`, `evict NAME`, `file FILE [NAME]` and `run NAME COMMAND`:
 * the election bucket as go-choria's cmd/election_*.go show, change and use it, with the same
 * output as `choria election view`. */
#include <getopt.h>
#include <regex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "choria/config.h"
#include "choria/conn.h"
#include "choria/process.h"
#include "choria/leader.h"
#include "choria/log.h"
#include "choria/util.h"
#include "cli.h"

#define MAX_ROWS 1024
#define MAX_PEERS 16

typedef struct {
    cli_broker_opts broker;
    const char *bucket;
    const char *arg; /* regex for view, election name for evict */
    bool force, check, terminate;
} election_opts;

/* The flags every election command takes (each ignores those it has no use for); returns the
 * index of the first argument, or -1 after printing the error. */
static int parse_flags(int argc, char **argv, election_opts *o)
{
    static const struct option longopts[] = {
        {"bucket", required_argument, NULL, 'b'},
        {"force", no_argument, NULL, 'f'},
        {"check", no_argument, NULL, 'k'},
        {"terminate", no_argument, NULL, 't'},
        {"config", required_argument, NULL, CLI_OPT_CONFIG},
        {"server", required_argument, NULL, CLI_OPT_SERVER},
        {"debug", no_argument, NULL, CLI_OPT_DEBUG},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->bucket = CH_LEADER_DEFAULT_BUCKET;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'b')
            o->bucket = optarg;
        else if (c == 'f')
            o->force = true;
        else if (c == 'k')
            o->check = true;
        else if (c == 't')
            o->terminate = true;
        else if (!cli_broker_option(c, optarg, &o->broker)) {
            fprintf(stderr, "choria: invalid flag, try --help\n");
            return -1;
        }
    }
    return optind;
}

/* view and evict: at most one argument, required for evict. */
static int parse_args(int argc, char **argv, election_opts *o, bool arg_required)
{
    int first = parse_flags(argc, argv, o);
    if (first < 0)
        return 1;
    o->arg = first < argc ? argv[first] : NULL;
    if ((arg_required && o->arg == NULL) || argc - first > 1) {
        fprintf(stderr, "choria: %s, try --help\n",
                o->arg == NULL ? "an election name is required" : "too many arguments");
        return 1;
    }
    return 0;
}

/* Connects and binds the bucket; prints the error and returns false on failure. */
static bool open_bucket(const election_opts *o, natsConnection **nc, jsCtx **js, kvStore **kv)
{
    cli_client client;
    ch_log_set_level(o->broker.debug ? CH_LOG_DEBUG : CH_LOG_WARN);
    if (cli_client_load(&o->broker, &client) != CH_OK)
        return false;
    ch_conn_opts co = {0};
    ch_conn_opts_from_settings(&client.conn, &co);
    ch_error err;
    bool ok = ch_conn_connect(&co, nc, &err) == CH_OK;
    if (!ok)
        fprintf(stderr, "choria: %s\n", err.msg);
    cli_client_free(&client);
    if (ok && (natsConnection_JetStream(js, *nc, NULL) != NATS_OK ||
               js_KeyValue(kv, *js, o->bucket) != NATS_OK)) {
        const char *why = nats_GetLastError(NULL);
        fprintf(stderr, "choria: cannot access KV Bucket %s: %s\n", o->bucket,
                why != NULL ? why : "not found");
        ok = false;
    }
    return ok;
}

/* ---- view ---- */

/* go-choria compactStrings: drops the dot-separated labels every name ends with. */
static void compact_names(char **names, int n)
{
    if (n < 2)
        return;
    for (;;) {
        const char *dot = strrchr(names[0], '.');
        if (dot == NULL)
            return;
        size_t len = strlen(dot);
        for (int i = 1; i < n; i++) {
            size_t l = strlen(names[i]);
            if (l <= len || strcmp(names[i] + l - len, dot) != 0)
                return;
        }
        for (int i = 0; i < n; i++)
            names[i][strlen(names[i]) - len] = '\0';
    }
}

static size_t runes(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void repeat(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fputs(s, stdout);
}

static void cell_row(const char *a, const char *b, size_t wa, size_t wb)
{
    printf("│ %s", a);
    repeat(" ", wa - runes(a));
    printf(" │ %s", b);
    repeat(" ", wb - runes(b));
    printf(" │\n");
}

/* The UTF-8 box table of xlab/tablewriter with a centred title. */
static void print_table(char **keys, char **values, int n)
{
    size_t wa = runes("Election"), wb = runes("Leader");
    for (int i = 0; i < n; i++) {
        wa = runes(keys[i]) > wa ? runes(keys[i]) : wa;
        wb = runes(values[i]) > wb ? runes(values[i]) : wb;
    }
    const char *title = "Active Elections";
    size_t inner = wa + wb + 5, extra = inner - runes(title);
    printf("╭");
    repeat("─", inner);
    printf("╮\n│");
    repeat(" ", extra / 2);
    printf("%s", title);
    repeat(" ", extra - extra / 2);
    printf("│\n├");
    repeat("─", wa + 2);
    printf("┬");
    repeat("─", wb + 2);
    printf("┤\n");
    cell_row("Election", "Leader", wa, wb);
    printf("├");
    repeat("─", wa + 2);
    printf("┼");
    repeat("─", wb + 2);
    printf("┤\n");
    for (int i = 0; i < n; i++)
        cell_row(keys[i], values[i], wa, wb);
    printf("╰");
    repeat("─", wa + 2);
    printf("┴");
    repeat("─", wb + 2);
    printf("╯\n\n");
}

static void print_warnings(const char *bucket, const jsStreamInfo *si)
{
    const jsStreamConfig *c = si->Config;
    char age[CH_DURATION_STR_MAX];
    ch_config_format_duration(c->MaxAge, age, sizeof(age));
    if (c->MaxMsgsPerSubject != 1)
        printf("WARNING: %s is not a valid election bucket, historic entries are retained\n\n",
               bucket);
    if (c->MaxAge < 5000000000LL)
        printf("WARNING: %s is not a valid election bucket, maximum age %s is too low\n\n", bucket,
               age);
    else if (c->MaxAge > 3600000000000LL)
        printf("WARNING: %s is not a valid election bucket, maximum age %s is too high\n\n", bucket,
               age);
    else if (c->MaxAge > 60000000000LL)
        printf("WARNING: %s has a very high maximum age of %s, recovery time will be slow\n\n",
               bucket, age);
    if (c->Replicas > 1 && si->Cluster != NULL) {
        const jsClusterInfo *cl = si->Cluster;
        if (cl->Leader == NULL || cl->Leader[0] == '\0')
            printf("WARNING: %s does not have a cluster leader\n\n", bucket);
        for (int i = 0; i < cl->ReplicasLen; i++) {
            const jsPeerInfo *p = cl->Replicas[i];
            if (p->Offline)
                printf("WARNING: Replica peer %s is offline\n\n", p->Name);
            else if (!p->Current || p->Lag > 100)
                printf("WARNING: Replica peer %s is not current with %llu replication lag\n\n",
                       p->Name, (unsigned long long)p->Lag);
        }
    }
}

static void print_replicas(const jsStreamInfo *si)
{
    if (si->Config->Replicas <= 1 || si->Cluster == NULL) {
        printf("      Replicas: 1\n");
        return;
    }
    char *names[MAX_PEERS];
    int n = 0;
    const jsClusterInfo *cl = si->Cluster;
    names[n++] = strdup(cl->Leader != NULL ? cl->Leader : "");
    for (int i = 0; i < cl->ReplicasLen && n < MAX_PEERS; i++)
        names[n++] = strdup(cl->Replicas[i]->Name);
    compact_names(names, n);
    printf("      Replicas: %lld on hosts ", (long long)si->Config->Replicas);
    for (int i = 0; i < n; i++) {
        printf("%s%s%s", i ? ", " : "", names[i], i == 0 ? "*" : "");
        free(names[i]);
    }
    printf("\n");
}

static int view(const election_opts *o, jsCtx *js, kvStore *kv)
{
    regex_t re;
    if (regcomp(&re, o->arg != NULL ? o->arg : ".", REG_EXTENDED | REG_NOSUB) != 0) {
        fprintf(stderr, "choria: invalid election regex %s\n", o->arg);
        return 1;
    }
    char stream[200];
    snprintf(stream, sizeof(stream), "KV_%s", o->bucket);
    jsStreamInfo *si = NULL;
    if (js_GetStreamInfo(&si, js, stream, NULL, NULL) != NATS_OK) {
        fprintf(stderr, "choria: cannot access KV Bucket %s: no stream %s\n", o->bucket, stream);
        regfree(&re);
        return 1;
    }
    print_warnings(o->bucket, si);
    char created[64], age[CH_DURATION_STR_MAX];
    time_t t = (time_t)(si->Created / 1000000000);
    strftime(created, sizeof(created), "%d %b %y %H:%M %z", localtime(&t));
    ch_config_format_duration(si->Config->MaxAge, age, sizeof(age));
    printf("Election bucket information for %s\n\n", o->bucket);
    printf("       Created: %s\n", created);
    printf("       Storage: %s\n", si->Config->Storage == js_MemoryStorage ? "Memory" : "File");
    printf("  Maximum Time: %s\n", age);
    print_replicas(si);
    printf("     Elections: %llu\n", (unsigned long long)si->State.Msgs);
    if (si->State.Msgs > 0) {
        printf("\n");
        kvKeysList keys = {0};
        char *names[MAX_ROWS], *values[MAX_ROWS];
        int n = 0;
        if (kvStore_Keys(&keys, kv, NULL) == NATS_OK) {
            for (int i = 0; i < keys.Count && n < MAX_ROWS; i++) {
                kvEntry *e = NULL;
                if (regexec(&re, keys.Keys[i], 0, NULL, 0) != 0 ||
                    kvStore_Get(&e, kv, keys.Keys[i]) != NATS_OK)
                    continue;
                names[n] = strdup(keys.Keys[i]);
                values[n++] = strdup(kvEntry_ValueString(e));
                kvEntry_Destroy(e);
            }
        }
        kvKeysList_Destroy(&keys);
        print_table(names, values, n);
        for (int i = 0; i < n; i++)
            free(names[i]), free(values[i]);
    }
    jsStreamInfo_Destroy(si);
    regfree(&re);
    return 0;
}

int cli_election_view(int argc, char **argv)
{
    election_opts o;
    if (parse_args(argc, argv, &o, false) != 0)
        return 1;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    int rc = open_bucket(&o, &nc, &js, &kv) ? view(&o, js, kv) : 1;
    fflush(stdout);
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    ch_conn_close(nc);
    return rc;
}

/* ---- evict ---- */

static bool confirm(const char *question)
{
    printf("? %s (y/N) ", question);
    fflush(stdout);
    char line[64];
    if (fgets(line, sizeof(line), stdin) == NULL)
        return false;
    return line[0] == 'y' || line[0] == 'Y';
}

int cli_election_evict(int argc, char **argv)
{
    election_opts o;
    if (parse_args(argc, argv, &o, true) != 0)
        return 1;
    char question[512];
    snprintf(question, sizeof(question), "Evict the current leader from election %s in bucket %s",
             o.arg, o.bucket);
    if (!o.force && !confirm(question))
        return 0;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    kvStore *kv = NULL;
    int rc = 1;
    if (open_bucket(&o, &nc, &js, &kv)) {
        if (kvStore_Delete(kv, o.arg) == NATS_OK) {
            printf("Evicted the leader from election %s in bucket %s\n", o.arg, o.bucket);
            rc = 0;
        } else {
            const char *why = nats_GetLastError(NULL);
            fprintf(stderr, "choria: could not evict: %s\n", why != NULL ? why : "unknown");
        }
    }
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    ch_conn_close(nc);
    return rc;
}

/* ---- file and run: campaign from the command line ---- */

typedef struct {
    atomic_int won, lost; /* events not yet handled by the main loop */
} campaign_events;

static void on_campaign_won(void *c)
{
    atomic_fetch_add(&((campaign_events *)c)->won, 1);
}

static void on_campaign_lost(void *c)
{
    atomic_fetch_add(&((campaign_events *)c)->lost, 1);
}

/* Connects and starts campaigning for name as this client's identity. */
static ch_leader *campaign(const election_opts *o, const char *name, campaign_events *ev,
                           natsConnection **nc)
{
    cli_client client;
    ch_log_set_level(o->broker.debug ? CH_LOG_DEBUG : CH_LOG_WARN);
    if (cli_client_load(&o->broker, &client) != CH_OK)
        return NULL;
    ch_conn_opts co = {0};
    ch_conn_opts_from_settings(&client.conn, &co);
    ch_error err;
    ch_leader *l = NULL;
    if (ch_conn_connect(&co, nc, &err) == CH_OK) {
        ch_leader_opts lo = {.nc = *nc,
                             .bucket = o->bucket,
                             .key = name,
                             .identity = client.identity,
                             .won = on_campaign_won,
                             .lost = on_campaign_lost,
                             .closure = ev};
        if (ch_leader_start(&lo, &l, &err) != CH_OK)
            l = NULL;
    }
    if (l == NULL)
        fprintf(stderr, "choria: %s\n", err.msg);
    cli_client_free(&client);
    return l;
}

static void write_state_file(const char *path, long count)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char ts[64], tmp[4096];
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    char zone[8];
    strftime(zone, sizeof(zone), "%z", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%06ld%.3s:%s", (long)tv.tv_usec, zone, zone + 3);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (fp == NULL)
        return;
    fprintf(fp, "{\"count\":%ld,\"timestamp\":\"%s\"}", count, ts);
    fclose(fp);
    chmod(tmp, 0644);
    rename(tmp, path);
}

int cli_election_file(int argc, char **argv)
{
    election_opts o;
    int first = parse_flags(argc, argv, &o);
    if (first < 0)
        return 1;
    if (first >= argc) {
        fprintf(stderr, "choria: a file is required, try --help\n");
        return 1;
    }
    bool check = o.check;
    const char *path = argv[first], *name = first + 1 < argc ? argv[first + 1] : "file";
    if (check) {
        struct stat sb;
        return stat(path, &sb) == 0 && time(NULL) - sb.st_mtime <= 60 ? 0 : 1;
    }
    cli_install_stop_signals();
    campaign_events ev = {0};
    natsConnection *nc = NULL;
    ch_leader *l = campaign(&o, name, &ev, &nc);
    long count = 0;
    while (l != NULL && !cli_should_stop()) {
        if (ch_leader_is_leader(l))
            write_state_file(path, ++count);
        else if (atomic_exchange(&ev.lost, 0) > 0)
            unlink(path);
        nats_Sleep(1000);
    }
    int rc = l != NULL ? 0 : 1;
    ch_leader_stop(l);
    unlink(path);
    ch_conn_close(nc);
    return rc;
}

/* Starts the command with the caller's stdio; NULL (and a message) when it cannot. */
static ch_process *start_command(char **argv)
{
    ch_process_opts o = {.argv = argv};
    ch_process *p = NULL;
    ch_error err;
    if (ch_process_spawn(&o, &p, &err) != CH_OK)
        fprintf(stderr, "choria: %s\n", err.msg);
    return p;
}

/* Whether the command ended (its exit code into *rc, 128 + signal when killed). */
static bool command_ended(ch_process *p, int *rc)
{
    return p != NULL && ch_process_wait(p, 0, rc, NULL) == CH_OK;
}

int cli_election_run(int argc, char **argv)
{
    election_opts o;
    int first = parse_flags(argc, argv, &o);
    if (first < 0)
        return 1;
    bool terminate = o.terminate;
    if (argc - first < 2) {
        fprintf(stderr, "choria: an election name and a command are required, try --help\n");
        return 1;
    }
    const char *name = argv[first];
    /* The command may be one shell-quoted string or several words. */
    char **cmd = NULL;
    ch_error err;
    if (argc - first == 2) {
        if (ch_process_split(argv[first + 1], &cmd, NULL, &err) != CH_OK) {
            fprintf(stderr, "choria: cannot parse the command: %s\n", err.msg);
            return 1;
        }
    }
    char **words = cmd != NULL ? cmd : argv + first + 1;
    cli_install_stop_signals();
    campaign_events ev = {0};
    natsConnection *nc = NULL;
    ch_leader *l = campaign(&o, name, &ev, &nc);
    ch_process *child = NULL;
    int rc = l != NULL ? 0 : 1;
    while (l != NULL && !cli_should_stop() && !command_ended(child, &rc)) {
        if (atomic_exchange(&ev.won, 0) > 0) {
            if (child == NULL && (child = start_command(words)) == NULL) {
                rc = 1;
                break;
            }
            nats_Sleep(1000);
            ch_process_signal(child, SIGUSR1);
        }
        if (atomic_exchange(&ev.lost, 0) > 0 && child != NULL) {
            if (terminate) {
                ch_process_signal(child, SIGINT);
                nats_Sleep(1000);
                ch_process_signal(child, SIGTERM);
            } else {
                ch_process_signal(child, SIGUSR2);
            }
        }
        nats_Sleep(100);
    }
    if (child != NULL && cli_should_stop()) {
        ch_process_signal(child, SIGTERM);
        ch_process_wait(child, -1, &rc, NULL);
    }
    ch_process_free(child);
    ch_leader_stop(l);
    ch_conn_close(nc);
    ch_process_argv_free(cmd);
    return rc;
}
