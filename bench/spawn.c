/* What starting a child costs in a process with many threads (issue #12): ch_process_spawn
 * (vfork) next to glibc's posix_spawnp set up exactly as process.c used to set it up (its
 * signal attributes, pipes for the three streams, descriptors closed, own process group),
 * same run. THREADS threads each spawn and reap PROGRAM (its exit status does not matter)
 * until SPAWNS children have run; rounds alternate between the two so machine noise hits both
 * alike; medians are reported, of spawns per second and of this process's own CPU time
 * (all threads, user + system; not the children's) per spawn.
 *
 * build/bin/bench_spawn [SPAWNS [ROUNDS [THREADS [PROGRAM]]]] (defaults 4000, 5, 8,
 * /bin/true); bench_provision's helper is build/bin/choria-demo-helper. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "choria/process.h"

extern char **environ;

typedef struct {
    char *const *argv;
    atomic_int left;
    atomic_int failed;
} job;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- posix_spawnp, as process.c set it up ---- */

static int pipe_above_std(int p[2])
{
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        if (p[i] <= 2) {
            int n = fcntl(p[i], F_DUPFD_CLOEXEC, 3);
            close(p[i]);
            p[i] = n;
        }
    return 0;
}

static int spawn_posix(char *const *argv)
{
    static const int defaults[] = {SIGPIPE, SIGINT,  SIGTERM, SIGHUP,
                                   SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defs;
    int pipes[3][2], rc = 0;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    for (int s = 0; s < 3; s++) {
        if (pipe_above_std(pipes[s]) != 0)
            return -1;
        posix_spawn_file_actions_adddup2(&fa, pipes[s][s == 0 ? 0 : 1], s);
    }
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    sigemptyset(&none);
    sigemptyset(&defs);
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        sigaddset(&defs, defaults[i]);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defs);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    pid_t pid;
    rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    for (int s = 0; s < 3; s++) {
        close(pipes[s][0]);
        close(pipes[s][1]);
    }
    if (rc != 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        ;
    return 0;
}

/* ---- ch_process_spawn ---- */

static int spawn_ch(char *const *argv)
{
    ch_process_opts o = {.argv = argv,
                         .own_group = true,
                         .in = CH_PROCESS_PIPE,
                         .out = CH_PROCESS_PIPE,
                         .errout = CH_PROCESS_PIPE};
    ch_process *p = NULL;
    int code = -1;
    if (ch_process_spawn(&o, &p, NULL) != CH_OK)
        return -1;
    ch_process_close_fd(p, 0);
    ch_status st = ch_process_wait(p, -1, &code, NULL);
    ch_process_free(p);
    return st == CH_OK ? 0 : -1;
}

/* ---- the rounds ---- */

typedef struct {
    job *j;
    int (*spawn)(char *const *argv);
} worker_arg;

static void *worker(void *arg)
{
    worker_arg *w = arg;
    while (atomic_fetch_sub(&w->j->left, 1) > 0)
        if (w->spawn(w->j->argv) != 0)
            atomic_fetch_add(&w->j->failed, 1);
    return NULL;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Spawns per second with threads threads, or -1 when one could not start; *cpu_us gets this
 * process's CPU time per spawn. */
static double round_of(int (*spawn)(char *const *), char *const *argv, int spawns, int threads,
                       double *cpu_us)
{
    job j = {.argv = argv};
    atomic_init(&j.left, spawns);
    atomic_init(&j.failed, 0);
    pthread_t tids[64];
    worker_arg w = {.j = &j, .spawn = spawn};
    double start = now_s(), cpu = cpu_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&tids[i], NULL, worker, &w);
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    double elapsed = now_s() - start;
    *cpu_us = (cpu_s() - cpu) * 1e6 / spawns;
    return atomic_load(&j.failed) > 0 ? -1 : spawns / elapsed;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int spawns = argc > 1 ? atoi(argv[1]) : 4000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    int threads = argc > 3 ? atoi(argv[3]) : 8;
    char *program = argc > 4 ? argv[4] : "/bin/true";
    char *child[] = {program, NULL};
    if (spawns < 1 || rounds < 1 || rounds > 99 || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: bench_spawn [SPAWNS [ROUNDS [THREADS [PROGRAM]]]]\n");
        return 2;
    }
    double posix[100], ch[100], posix_cpu[100], ch_cpu[100];
    for (int r = 0; r < rounds; r++) {
        posix[r] = round_of(spawn_posix, child, spawns, threads, &posix_cpu[r]);
        ch[r] = round_of(spawn_ch, child, spawns, threads, &ch_cpu[r]);
        if (posix[r] < 0 || ch[r] < 0) {
            fprintf(stderr, "bench: %s could not be started\n", program);
            return 1;
        }
        printf("round %d: posix_spawnp %.0f/s %.1f us cpu, ch_process_spawn %.0f/s %.1f us cpu\n",
               r + 1, posix[r], posix_cpu[r], ch[r], ch_cpu[r]);
    }
    qsort(posix, (size_t)rounds, sizeof(double), cmp_double);
    qsort(ch, (size_t)rounds, sizeof(double), cmp_double);
    qsort(posix_cpu, (size_t)rounds, sizeof(double), cmp_double);
    qsort(ch_cpu, (size_t)rounds, sizeof(double), cmp_double);
    int m = rounds / 2;
    printf("\n| program | threads | spawns per round | rounds | posix_spawnp (median) | "
           "ch_process_spawn (median) | ratio |\n|---|---|---|---|---|---|---|\n");
    printf("| %s | %d | %d | %d | %.0f/s, %.1f us CPU | %.0f/s, %.1f us CPU | rate %.2f, CPU "
           "%.2f |\n",
           program, threads, spawns, rounds, posix[m], posix_cpu[m], ch[m], ch_cpu[m],
           ch[m] / posix[m], ch_cpu[m] / posix_cpu[m]);
    return 0;
}
