/* How many lifecycle events per second `choria tool event` formats without loss, next to
 * how many the same broker delivers to a bare nats.c subscriber in the same run.
 *
 * Each round publishes N CloudEvents-format startup events as fast as one nats.c publisher
 * can, and measures from the first publish until the consumer has the last one:
 *   bare: a synchronous nats.c subscription in this process, counting messages;
 *   tool: `choria tool event` with stdout redirected to a file, counting lines.
 * Rounds alternate between the two so machine noise hits both alike; medians are reported.
 * A tool round that ends with fewer lines than events is reported as loss. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "choria/lifecycle.h"
#include "choria/util.h"
#include "harness.h"

#define ROUND_TIMEOUT_MS 60000

typedef struct {
    char **bodies;
    size_t *lens;
    char **subjects;
    int n;
} event_set;

static void die(const char *what, const ch_error *err)
{
    fprintf(stderr, "bench: %s: %s\n", what, err != NULL ? err->msg : "");
    exit(1);
}

static void build_events(event_set *set, int n)
{
    set->n = n;
    set->bodies = calloc((size_t)n, sizeof(char *));
    set->lens = calloc((size_t)n, sizeof(size_t));
    set->subjects = calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        char identity[64];
        snprintf(identity, sizeof(identity), "n%d.bench.example.net", i % 10000);
        ch_lifecycle_event *ev = NULL;
        ch_error err;
        if (ch_lifecycle_event_new(CH_LIFECYCLE_STARTUP, identity, "provision_mode_server",
                                   "0.30.2", &ev, &err) != CH_OK ||
            ch_lifecycle_encode(ev, CH_LIFECYCLE_FORMAT_CLOUDEVENT, &set->bodies[i], &set->lens[i],
                                &err) != CH_OK)
            die("encode", &err);
        set->subjects[i] = strdup("choria.lifecycle.event.startup.provision_mode_server");
        ch_lifecycle_event_free(ev);
    }
}

static void publish_all(natsConnection *nc, const event_set *set)
{
    for (int i = 0; i < set->n; i++) {
        if (natsConnection_Publish(nc, set->subjects[i], set->bodies[i], (int)set->lens[i]) !=
            NATS_OK) {
            fprintf(stderr, "bench: publish failed\n");
            exit(1);
        }
    }
    natsConnection_FlushTimeout(nc, 30000);
}

/* Bare subscriber round: returns events/s, or -1 on loss. */
static double round_bare(const char *url, natsConnection *pub, const event_set *set)
{
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    ch_error err;
    if (cht_nats_connect(url, 5000, &nc, &err) != CH_OK)
        die("connect", &err);
    natsConnection_SubscribeSync(&sub, nc, CH_LIFECYCLE_SUBJECT_ALL);
    natsSubscription_SetPendingLimits(sub, 10000000, 1024 * 1024 * 1024);
    natsConnection_FlushTimeout(nc, 5000);

    int64_t start = ch_now_mono_ms();
    publish_all(pub, set);
    int got = 0;
    while (got < set->n && ch_now_mono_ms() - start < ROUND_TIMEOUT_MS) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, 1000) == NATS_OK) {
            got++;
            natsMsg_Destroy(m);
        }
    }
    int64_t elapsed = ch_now_mono_ms() - start;
    natsSubscription_Destroy(sub);
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
    if (got < set->n) {
        fprintf(stderr, "bench: bare subscriber got %d of %d\n", got, set->n);
        return -1;
    }
    return set->n * 1000.0 / (double)(elapsed > 0 ? elapsed : 1);
}

/* Newlines in path from *offset on, added to *lines. */
static void count_lines(const char *path, off_t *offset, long *lines)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    char buf[1 << 16];
    ssize_t r;
    while ((r = pread(fd, buf, sizeof(buf), *offset)) > 0) {
        for (ssize_t i = 0; i < r; i++)
            *lines += buf[i] == '\n';
        *offset += r;
    }
    close(fd);
}

static double round_tool(const char *url, natsConnection *pub, const event_set *set,
                         const char *choria, const char *dir, long *lost)
{
    char out[512], cmd[2048];
    snprintf(out, sizeof(out), "%s/tool-event.out", dir);
    unlink(out);
    snprintf(cmd, sizeof(cmd), "exec '%s' tool event --server '%s' > '%s'", choria, url, out);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    cht_proc_opts o = {.argv = argv};
    cht_proc *p = NULL;
    ch_error err;
    if (cht_proc_spawn(&o, &p, &err) != CH_OK)
        die("spawn choria tool event", &err);

    off_t offset = 0;
    long lines = 0;
    int64_t t0 = ch_now_mono_ms();
    while (lines < 1 && ch_now_mono_ms() - t0 < 10000) { /* the banner: subscribed */
        count_lines(out, &offset, &lines);
        usleep(2000);
    }
    if (lines < 1)
        die("choria tool event printed no banner", NULL);

    int64_t start = ch_now_mono_ms();
    publish_all(pub, set);
    while (lines < set->n + 1 && ch_now_mono_ms() - start < ROUND_TIMEOUT_MS) {
        count_lines(out, &offset, &lines);
        if (lines < set->n + 1)
            usleep(1000);
    }
    int64_t elapsed = ch_now_mono_ms() - start;
    cht_proc_free(p);
    *lost = set->n + 1 - lines;
    if (*lost > 0)
        return -1;
    return set->n * 1000.0 / (double)(elapsed > 0 ? elapsed : 1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (n <= 0 || rounds <= 0 || rounds > 50) {
        fprintf(stderr, "usage: bench_event_rate [EVENTS] [ROUNDS]\n");
        return 2;
    }
    char choria[512];
    ch_error err;
    if (cht_bin_path("choria", choria, sizeof(choria), &err) != CH_OK)
        die("choria binary", &err);

    cht_broker *broker = NULL;
    cht_broker_opts bo;
    cht_broker_opts_init(&bo);
    bo.jetstream = false;
    if (cht_broker_start(&bo, &broker, &err) != CH_OK)
        die("broker", &err);
    natsConnection *pub = NULL;
    if (cht_nats_connect(cht_broker_url(broker), 5000, &pub, &err) != CH_OK)
        die("connect", &err);

    event_set set;
    build_events(&set, n);
    double *bare = calloc((size_t)rounds, sizeof(double));
    double *tool = calloc((size_t)rounds, sizeof(double));
    long total_lost = 0;
    for (int r = 0; r < rounds; r++) {
        long lost = 0;
        bare[r] = round_bare(cht_broker_url(broker), pub, &set);
        tool[r] =
            round_tool(cht_broker_url(broker), pub, &set, choria, cht_broker_dir(broker), &lost);
        total_lost += lost;
        printf("round %d: bare %.0f events/s, choria tool event %.0f events/s%s\n", r + 1, bare[r],
               tool[r], lost > 0 ? " (LOSS)" : "");
        fflush(stdout);
    }
    qsort(bare, (size_t)rounds, sizeof(double), cmp_double);
    qsort(tool, (size_t)rounds, sizeof(double), cmp_double);
    double mb = bare[rounds / 2], mt = tool[rounds / 2];
    printf("\n| events per round | rounds | bare nats.c subscriber (median) | choria tool event "
           "(median) | ratio | lost |\n|---|---|---|---|---|---|\n");
    printf("| %d | %d | %.0f/s | %.0f/s | %.2f | %ld |\n", n, rounds, mb, mt, mb > 0 ? mt / mb : 0,
           total_lost);

    natsConnection_Close(pub);
    natsConnection_Destroy(pub);
    cht_broker_free(broker);
    return total_lost > 0 ? 1 : 0;
}
