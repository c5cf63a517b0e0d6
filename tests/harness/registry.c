/* Process-wide registry of started PIDs and temporary directories, cleaned by atexit() and
 * by a handler for fatal and terminating signals. The handler only uses async-signal-safe
 * calls: kill, waitpid, nanosleep and a getdents64/unlinkat tree removal. This is the one
 * piece of global mutable state in the harness, and it has to be: a crash has no caller. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REG_PIDS 256
#define REG_DIRS CHT_TEMP_DIR_MAX
#define REG_DIR_LEN 1024
#define RM_MAX_DEPTH 32

static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t reg_owner;
static bool reg_keep_dirs;
static int reg_cleaning;
static pid_t reg_pids[REG_PIDS];
static int reg_dir_used[REG_DIRS];
static char reg_dirs[REG_DIRS][REG_DIR_LEN];

static const int reg_signals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGINT, SIGTERM};
static struct sigaction reg_old[sizeof(reg_signals) / sizeof(reg_signals[0])];
static int reg_installed[sizeof(reg_signals) / sizeof(reg_signals[0])];

struct dent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Async-signal-safe rm -rf of parent/name: never follows symlinks, bounded depth. Rescans a
 * directory from the start after each batch so removals cannot make getdents skip entries. */
static int rm_at(int parent, const char *name, int depth)
{
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return 0;
    if ((errno != EISDIR && errno != EPERM) || depth > RM_MAX_DEPTH)
        return -1;
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    for (int pass = 0; pass < 100000; pass++) {
        _Alignas(8) char buf[2048];
        if (lseek(fd, 0, SEEK_SET) < 0)
            break;
        long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        int removed = 0, seen = 0;
        for (long off = 0; off < n;) {
            struct dent64 *d = (struct dent64 *)(buf + off);
            off += d->d_reclen;
            if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
                continue;
            seen++;
            if (rm_at(fd, d->d_name, depth + 1) == 0)
                removed++;
        }
        if (seen == 0 || removed == 0)
            break;
    }
    close(fd);
    return (unlinkat(parent, name, AT_REMOVEDIR) == 0 || errno == ENOENT) ? 0 : -1;
}

static int rm_tree(const char *path)
{
    return rm_at(AT_FDCWD, path, 0);
}

ch_status cht_remove_tree(const char *path, ch_error *err)
{
    if (path == NULL || path[0] == '\0' || strcmp(path, "/") == 0)
        return ch_error_set(err, CH_ERR_INVALID, "refusing to remove '%s'", path ? path : "");
    if (rm_tree(path) != 0)
        return ch_error_set(err, CH_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return CH_OK;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Kills everything registered, reaps it (bounded to about 2 s) and removes the directories.
 * Runs at most once, and only in the process that registered (not in a forked child). */
static void cleanup_all(void)
{
    if (reg_owner == 0 || getpid() != reg_owner)
        return;
    if (__atomic_exchange_n(&reg_cleaning, 1, __ATOMIC_SEQ_CST) != 0)
        return;
    for (int i = 0; i < REG_PIDS; i++) {
        pid_t p = __atomic_load_n(&reg_pids[i], __ATOMIC_SEQ_CST);
        if (p > 0) {
            kill(p, SIGKILL);
            kill(-p, SIGKILL); /* its process group: anything it spawned */
        }
    }
    for (int round = 0; round < 200; round++) {
        int left = 0;
        for (int i = 0; i < REG_PIDS; i++) {
            pid_t p = __atomic_load_n(&reg_pids[i], __ATOMIC_SEQ_CST);
            if (p <= 0)
                continue;
            pid_t r = waitpid(p, NULL, WNOHANG);
            if (r == p || (r < 0 && errno == ECHILD))
                __atomic_store_n(&reg_pids[i], 0, __ATOMIC_SEQ_CST);
            else
                left++;
        }
        if (left == 0)
            break;
        pause_ms(10);
    }
    if (!reg_keep_dirs) {
        for (int i = 0; i < REG_DIRS; i++) {
            if (__atomic_load_n(&reg_dir_used[i], __ATOMIC_SEQ_CST))
                rm_tree(reg_dirs[i]);
        }
    }
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    cleanup_all();
    for (size_t i = 0; i < sizeof(reg_signals) / sizeof(reg_signals[0]); i++) {
        if (reg_signals[i] == sig)
            sigaction(sig, &reg_old[i], NULL);
    }
    errno = saved;
    /* A real fault re-executes the faulting instruction under the old handler (ASan,
     * default core dump) so its report stays accurate; anything else is raised again. */
    if ((sig == SIGSEGV || sig == SIGBUS) && si != NULL && si->si_code > 0)
        return;
    raise(sig);
}

/* Removes cht-* directories left by test processes that died without cleaning (SIGKILL).
 * A directory is only touched when its owner file names a process that no longer exists. */
static void sweep_stale(const char *base)
{
    DIR *d = opendir(base);
    if (d == NULL)
        return;
    struct dirent *e;
    int budget = 10000;
    while ((e = readdir(d)) != NULL && budget-- > 0) {
        if (strncmp(e->d_name, "cht-", 4) != 0)
            continue;
        char path[REG_DIR_LEN], owner[REG_DIR_LEN + 16];
        if (snprintf(path, sizeof(path), "%s/%s", base, e->d_name) >= (int)sizeof(path))
            continue;
        snprintf(owner, sizeof(owner), "%s/%s", path, CHT_OWNER_FILE);
        FILE *f = fopen(owner, "r");
        if (f == NULL)
            continue;
        long pid = 0;
        int ok = fscanf(f, "%ld", &pid) == 1;
        fclose(f);
        if (ok && pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            rm_tree(path);
    }
    closedir(d);
}

static const char *temp_base(void)
{
    const char *t = getenv("TMPDIR");
    return (t != NULL && t[0] != '\0') ? t : "/tmp";
}

static void reg_init_once(void)
{
    reg_owner = getpid();
    const char *keep = getenv("CHT_KEEP");
    reg_keep_dirs = keep != NULL && strcmp(keep, "1") == 0;
    atexit(cleanup_all);
    for (size_t i = 0; i < sizeof(reg_signals) / sizeof(reg_signals[0]); i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_signal;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        if (sigaction(reg_signals[i], NULL, &reg_old[i]) != 0)
            continue;
        if (reg_old[i].sa_handler == SIG_IGN)
            continue; /* the process chose to ignore it; do not turn it into a cleanup */
        if (sigaction(reg_signals[i], &sa, NULL) == 0)
            reg_installed[i] = 1;
    }
    sweep_stale(temp_base());
}

void cht__reg_init(void)
{
    pthread_once(&reg_once, reg_init_once);
}

static void ignore_sigpipe_once(void)
{
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, NULL);
}

/* A write to the stdin pipe of a child that exited must fail with EPIPE, not kill the test.
 * Only tests that start children get this: a unit test that merely uses cht_temp_dir keeps
 * the default disposition, so it still sees a SIGPIPE the code under test fails to block.
 * Children get SIGPIPE back to default before exec. */
void cht__ignore_sigpipe(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, ignore_sigpipe_once);
}

bool cht__reg_keep(void)
{
    cht__reg_init();
    return reg_keep_dirs;
}

void cht__reg_pid_add(pid_t pid)
{
    cht__reg_init();
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < REG_PIDS; i++) {
        if (__atomic_load_n(&reg_pids[i], __ATOMIC_SEQ_CST) == 0) {
            __atomic_store_n(&reg_pids[i], pid, __ATOMIC_SEQ_CST);
            break;
        }
    }
    /* A full table only loses the crash cleanup; PDEATHSIG still protects the child. */
    pthread_mutex_unlock(&reg_lock);
}

void cht__reg_pid_del(pid_t pid)
{
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < REG_PIDS; i++) {
        if (__atomic_load_n(&reg_pids[i], __ATOMIC_SEQ_CST) == pid)
            __atomic_store_n(&reg_pids[i], 0, __ATOMIC_SEQ_CST);
    }
    pthread_mutex_unlock(&reg_lock);
}

/* A tag becomes part of a file name that sweep_stale and people read: keep it plain. */
static bool tag_ok(const char *tag)
{
    if (tag == NULL || tag[0] == '\0' || strlen(tag) > CHT_TAG_MAX)
        return false;
    for (const char *c = tag; *c != '\0'; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return false;
    }
    return true;
}

ch_status cht_temp_dir(const char *tag, char *out, size_t out_size, ch_error *err)
{
    if (out == NULL || out_size == 0)
        return ch_error_set(err, CH_ERR_INVALID, "no buffer for the temporary directory");
    out[0] = '\0';
    if (!tag_ok(tag))
        return ch_error_set(err, CH_ERR_INVALID, "bad temporary directory tag '%s'",
                            tag != NULL ? tag : "");
    cht__reg_init();
    const char *base = temp_base();
    int n = snprintf(out, out_size, "%s/cht-%s-XXXXXX", base, tag);
    if (n < 0 || (size_t)n >= out_size || (size_t)n >= REG_DIR_LEN) {
        out[0] = '\0';
        return ch_error_set(err, CH_ERR_TOO_LARGE, "temporary directory path too long: %s", base);
    }
    if (mkdtemp(out) == NULL) {
        out[0] = '\0';
        return ch_error_set(err, CH_ERR_IO, "mkdtemp under %s: %s", base, strerror(errno));
    }

    char owner[REG_DIR_LEN + 16];
    snprintf(owner, sizeof(owner), "%s/%s", out, CHT_OWNER_FILE);
    FILE *f = fopen(owner, "w");
    if (f != NULL) {
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }

    pthread_mutex_lock(&reg_lock);
    int slot = -1;
    for (int i = 0; i < REG_DIRS && slot < 0; i++) {
        if (!__atomic_load_n(&reg_dir_used[i], __ATOMIC_SEQ_CST))
            slot = i;
    }
    if (slot >= 0) {
        /* Path first, flag second: the signal handler reads the flag without the lock. */
        snprintf(reg_dirs[slot], REG_DIR_LEN, "%s", out);
        __atomic_store_n(&reg_dir_used[slot], 1, __ATOMIC_SEQ_CST);
    }
    pthread_mutex_unlock(&reg_lock);
    if (slot < 0) {
        rm_tree(out);
        out[0] = '\0';
        return ch_error_set(err, CH_ERR_TOO_LARGE, "more than %d temporary directories", REG_DIRS);
    }
    return CH_OK;
}

ch_status cht_temp_dir_remove(const char *path, ch_error *err)
{
    if (path == NULL || path[0] == '\0')
        return CH_OK;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < REG_DIRS; i++) {
        if (__atomic_load_n(&reg_dir_used[i], __ATOMIC_SEQ_CST) && strcmp(reg_dirs[i], path) == 0)
            __atomic_store_n(&reg_dir_used[i], 0, __ATOMIC_SEQ_CST);
    }
    pthread_mutex_unlock(&reg_lock);
    if (cht__reg_keep()) {
        fprintf(stderr, "cht: CHT_KEEP=1, kept %s\n", path);
        return CH_OK;
    }
    if (rm_tree(path) != 0)
        return ch_error_set(err, CH_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return CH_OK;
}

int cht_dir_setup(void **state)
{
    cht_dir_fixture *f = calloc(1, sizeof(*f));
    ch_error err;
    if (f == NULL)
        return -1;
    if (cht_temp_dir("unit", f->dir, sizeof(f->dir), &err) != CH_OK) {
        fprintf(stderr, "cht_dir_setup: %s\n", err.msg);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

int cht_dir_teardown(void **state)
{
    cht_dir_fixture *f = *state;
    ch_error err;
    ch_status st = cht_temp_dir_remove(f->dir, &err);
    if (st != CH_OK)
        fprintf(stderr, "cht_dir_teardown: %s\n", err.msg);
    free(f);
    *state = NULL;
    return st == CH_OK ? 0 : -1;
}
