/* Persistent helpers: long-lived processes answering one request per line. */
#include "helper_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "choria/log.h"
#include "choria/util.h"
#include "helper_stderr.h"

#define TICK_MS 100         /* cancel is checked this often */
#define STDERR_DRAIN_MS 500 /* for the last lines of stopped helpers */
#define EXIT_STATUS_WAIT_MS 200

typedef struct {
    int index;
    ch_process *proc; /* NULL: not running */
    bool busy;
    int failures;       /* in a row, for the back-off */
    int64_t not_before; /* no start before this (ch_now_mono_ms) */
    char identity[256]; /* the latest request, for its stderr lines; "" before the first */
    char *out;          /* stdout read so far of the current reply */
    size_t out_len, out_cap;
} slot;

struct prov_helper_pool {
    prov_helper_pool_opts o;
    char **argv;
    pthread_mutex_t mu;
    pthread_cond_t freed; /* a slot became free or may start again */
    slot *slots;
    size_t count;
    uint64_t starts;
    prov_stderr_pump *pump;
};

/* ---- stderr ---------------------------------------------------------------------------- */

static void log_stderr(void *closure, int index, pid_t pid, const char *line, size_t len, bool cut,
                       uint64_t suppressed)
{
    prov_helper_pool *p = closure;
    char identity[sizeof(p->slots[0].identity)];
    pthread_mutex_lock(&p->mu);
    snprintf(identity, sizeof(identity), "%s", p->slots[index].identity);
    pthread_mutex_unlock(&p->mu);
    if (suppressed > 0) {
        ch_warn("helper process %d (pid %d): %llu stderr lines not logged in the last second",
                index + 1, (int)pid, (unsigned long long)suppressed);
        return;
    }
    if (identity[0] != '\0')
        ch_warn("helper stderr for %s: %.*s%s", identity, (int)len, line, cut ? " ..." : "");
    else
        ch_warn("helper process %d (pid %d) stderr: %.*s%s", index + 1, (int)pid, (int)len, line,
                cut ? " ..." : "");
}

/* ---- processes ------------------------------------------------------------------------- */

/* Starts s's process; its stderr goes to the pump. Called without the lock, s busy. */
static ch_status start_process(prov_helper_pool *p, slot *s, ch_error *err)
{
    ch_process_opts po = {.argv = p->argv,
                          .own_group = true,
                          .in = CH_PROCESS_PIPE,
                          .out = CH_PROCESS_PIPE,
                          .errout = CH_PROCESS_PIPE};
    ch_status st = ch_process_spawn(&po, &s->proc, err);
    if (st != CH_OK)
        return st;
    fcntl(ch_process_fd(s->proc, 0), F_SETFL, O_NONBLOCK);
    int errfd = fcntl(ch_process_fd(s->proc, 2), F_DUPFD_CLOEXEC, 3);
    ch_process_close_fd(s->proc, 2);
    ch_error e;
    if (errfd < 0 || prov_stderr_pump_add(p->pump, errfd, s->index, ch_process_pid(s->proc), &e))
        ch_warn("helper process %d: its stderr is not logged", s->index + 1);
    pthread_mutex_lock(&p->mu);
    p->starts++;
    pthread_mutex_unlock(&p->mu);
    ch_debug("started helper process %d (pid %d)", s->index + 1, (int)ch_process_pid(s->proc));
    return CH_OK;
}

/* Kills s's process group and reaps it. */
static void end_process(slot *s)
{
    ch_process_free(s->proc);
    s->proc = NULL;
    s->out_len = 0;
}

/* After a failed request: the process goes and its slot waits out the back-off. */
static void retire(prov_helper_pool *p, slot *s, const char *why)
{
    pid_t pid = s->proc != NULL ? ch_process_pid(s->proc) : 0;
    end_process(s);
    int64_t delay =
        ch_backoff_ms(s->failures, PROV_HELPER_BACKOFF_MIN_MS, PROV_HELPER_BACKOFF_MAX_MS);
    pthread_mutex_lock(&p->mu);
    s->failures++;
    s->not_before = ch_now_mono_ms() + delay;
    pthread_mutex_unlock(&p->mu);
    if (pid > 0)
        ch_warn("helper process %d (pid %d) stopped after %s; starting it again in %lld ms",
                s->index + 1, (int)pid, why, (long long)delay);
}

/* How a process that closed its pipes ended, Go's wording; "" while it still runs. */
static void exit_status(slot *s, char *out, size_t size)
{
    int code = 0;
    out[0] = '\0';
    if (ch_process_wait(s->proc, EXIT_STATUS_WAIT_MS, &code, NULL) != CH_OK)
        return;
    int sig = ch_process_term_signal(s->proc);
    if (sig != 0)
        snprintf(out, size, ": signal: %s", strsignal(sig));
    else
        snprintf(out, size, ": exit status %d", code);
}

/* The process closed its stdin or stdout: how it exited, or that it closed it and runs on. */
static ch_status gone(prov_helper_pool *p, slot *s, const char *which, ch_error *err)
{
    char how[128];
    pid_t pid = ch_process_pid(s->proc);
    exit_status(s, how, sizeof(how));
    if (how[0] != '\0')
        return ch_error_set(err, CH_ERR_IO, "%s (pid %d) exited%s", p->argv[0], (int)pid, how);
    return ch_error_set(err, CH_ERR_IO, "%s (pid %d) closed its %s", p->argv[0], (int)pid, which);
}

/* ---- taking a slot ----------------------------------------------------------------------- */

/* A free slot, preferring one whose process runs; waits while every free one is in its
 * back-off and while all are busy. NULL once stopping. */
static slot *acquire(prov_helper_pool *p, const char *identity)
{
    pthread_mutex_lock(&p->mu);
    slot *got = NULL;
    while (got == NULL && !(p->o.stopping != NULL && atomic_load(p->o.stopping))) {
        int64_t now = ch_now_mono_ms(), wake = now + TICK_MS;
        for (size_t i = 0; i < p->count; i++) {
            slot *s = &p->slots[i];
            if (s->busy)
                continue;
            if (s->proc != NULL) {
                got = s;
                break;
            }
            if (s->not_before <= now && got == NULL)
                got = s;
            else if (s->not_before > now && s->not_before < wake)
                wake = s->not_before;
        }
        if (got == NULL)
            ch_cond_wait_until(&p->freed, &p->mu, wake);
    }
    if (got != NULL) {
        got->busy = true;
        snprintf(got->identity, sizeof(got->identity), "%s", identity != NULL ? identity : "");
    }
    pthread_mutex_unlock(&p->mu);
    return got;
}

static void release(prov_helper_pool *p, slot *s, bool ok)
{
    pthread_mutex_lock(&p->mu);
    s->busy = false; /* identity stays: stderr read after the reply is still about it */
    if (ok)
        s->failures = 0;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

/* Output or an exit between requests: the process is out of step with us. */
static bool out_of_step(slot *s)
{
    struct pollfd pf = {.fd = ch_process_fd(s->proc, 1), .events = POLLIN};
    return poll(&pf, 1, 0) > 0;
}

/* A process ready for a request: started, or restarted when it went out of step. */
static ch_status ready_process(prov_helper_pool *p, slot *s, ch_error *err)
{
    if (s->proc != NULL && out_of_step(s)) {
        char how[128];
        pid_t pid = ch_process_pid(s->proc);
        exit_status(s, how, sizeof(how));
        ch_warn("helper process %d (pid %d) %s between requests; starting it again", s->index + 1,
                (int)pid, how[0] != '\0' ? how + 2 : "wrote output");
        end_process(s);
    }
    return s->proc != NULL ? CH_OK : start_process(p, s, err);
}

/* ---- one request --------------------------------------------------------------------------- */

static bool cancelled(const prov_helper_pool *p)
{
    return p->o.stopping != NULL && atomic_load(p->o.stopping);
}

/* Waits until fd has events or the tick passes; a status when the deadline or cancel came. */
static ch_status wait_fd(prov_helper_pool *p, int fd, short events, int64_t deadline, ch_error *err)
{
    int64_t left = deadline - ch_now_mono_ms();
    if (left <= 0)
        return ch_error_set(err, CH_ERR_TIMEOUT, "%s timed out after %lld ms", p->argv[0],
                            (long long)p->o.timeout_ms);
    if (cancelled(p))
        return ch_error_set(err, CH_ERR_EXPIRED, "%s cancelled", p->argv[0]);
    struct pollfd pf = {.fd = fd, .events = events};
    if (poll(&pf, 1, left < TICK_MS ? (int)left : TICK_MS) < 0 && errno != EINTR)
        return ch_error_set(err, CH_ERR_IO, "%s: poll: %s", p->argv[0], strerror(errno));
    return CH_OK;
}

static ch_status send_request(prov_helper_pool *p, slot *s, const char *req, size_t len,
                              int64_t deadline, ch_error *err)
{
    int fd = ch_process_fd(s->proc, 0);
    size_t done = 0;
    while (done < len) {
        ssize_t w = ch_process_write_nosigpipe(fd, req + done, len - done);
        if (w > 0) {
            done += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EPIPE)
            return gone(p, s, "input", err);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return ch_error_set(err, CH_ERR_IO, "cannot write to %s: %s", p->argv[0],
                                strerror(errno));
        ch_status st = wait_fd(p, fd, POLLOUT, deadline, err);
        if (st != CH_OK)
            return st;
    }
    return CH_OK;
}

/* Reads into s->out until a newline; *line_len is the line without it. */
static ch_status read_line(prov_helper_pool *p, slot *s, int64_t deadline, size_t *line_len,
                           ch_error *err)
{
    int fd = ch_process_fd(s->proc, 1);
    size_t max = p->o.max_reply;
    for (;;) {
        char *nl = s->out_len > 0 ? memchr(s->out, '\n', s->out_len) : NULL;
        if (nl != NULL) {
            *line_len = (size_t)(nl - s->out);
            return CH_OK;
        }
        if (s->out_len > max)
            return ch_error_set(err, CH_ERR_TOO_LARGE, "helper output exceeds %zu bytes", max);
        if (s->out_cap - s->out_len < 4096) {
            size_t cap = s->out_cap == 0 ? 8192 : s->out_cap * 2;
            char *n = realloc(s->out, cap > max + 4096 ? max + 4096 : cap);
            if (n == NULL)
                return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
            s->out = n;
            s->out_cap = cap > max + 4096 ? max + 4096 : cap;
        }
        ssize_t n = read(fd, s->out + s->out_len, s->out_cap - s->out_len);
        if (n > 0) {
            s->out_len += (size_t)n;
            continue;
        }
        if (n == 0)
            return gone(p, s, "output", err);
        if (errno != EAGAIN && errno != EINTR)
            return ch_error_set(err, CH_ERR_IO, "cannot read %s output: %s", p->argv[0],
                                strerror(errno));
        ch_status st = wait_fd(p, fd, POLLIN, deadline, err);
        if (st != CH_OK)
            return st;
    }
}

/* The line is the whole answer: nothing may follow it, and it must decode. */
static ch_status decode_line(prov_helper_pool *p, slot *s, size_t len, prov_helper_reply **reply,
                             ch_error *err)
{
    if (s->out_len > len + 1)
        return ch_error_set(err, CH_ERR_INVALID, "%s wrote more than one line for one request",
                            p->argv[0]);
    if (len > 0 && s->out[len - 1] == '\r')
        len--;
    if (len == 0)
        return ch_error_set(err, CH_ERR_INVALID, "cannot read %s output: zero bytes received",
                            p->argv[0]);
    ch_error e;
    ch_status st = prov_helper_reply_parse(s->out, len, p->o.max_reply, reply, &e);
    if (st != CH_OK)
        return ch_error_set(err, st, "cannot decode output from %s: %s", p->argv[0], e.msg);
    return CH_OK;
}

static ch_status exchange(prov_helper_pool *p, slot *s, const char *req, size_t len,
                          prov_helper_reply **reply, ch_error *err)
{
    int64_t deadline = ch_now_mono_ms() + p->o.timeout_ms;
    s->out_len = 0;
    size_t line_len = 0;
    ch_status st = send_request(p, s, req, len, deadline, err);
    if (st == CH_OK)
        st = read_line(p, s, deadline, &line_len, err);
    if (st == CH_OK)
        st = decode_line(p, s, line_len, reply, err);
    s->out_len = 0;
    return st;
}

static char *encode_request(const prov_helper_input *in, size_t *len)
{
    char *doc = prov_helper_input_encode(in, len);
    char *line = doc != NULL ? realloc(doc, *len + 1) : NULL;
    if (line == NULL) {
        free(doc);
        return NULL;
    }
    line[(*len)++] = '\n';
    return line;
}

ch_status prov_helper_pool_run(prov_helper_pool *p, const prov_helper_input *in,
                               prov_helper_reply **reply, ch_error *err)
{
    *reply = NULL;
    size_t len = 0;
    char *req = encode_request(in, &len);
    if (req == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "could not encode the helper input");
    slot *s = acquire(p, in->identity);
    if (s == NULL) {
        free(req);
        return ch_error_set(err, CH_ERR_EXPIRED, "%s cancelled", p->argv[0]);
    }
    ch_error e;
    ch_status st = ready_process(p, s, &e);
    if (st == CH_OK)
        st = exchange(p, s, req, len, reply, &e);
    free(req);
    if (st != CH_OK) {
        retire(p, s, e.msg);
        ch_error_set(err, st, "%s", e.msg);
    }
    release(p, s, st == CH_OK);
    return st;
}

/* ---- the pool -------------------------------------------------------------------------------- */

static void start_all(prov_helper_pool *p)
{
    for (size_t i = 0; i < p->count; i++) {
        ch_error e;
        if (start_process(p, &p->slots[i], &e) != CH_OK) {
            ch_error("helper process %zu: %s", i + 1, e.msg);
            retire(p, &p->slots[i], e.msg);
        }
    }
}

ch_status prov_helper_pool_start(const prov_helper_pool_opts *o, prov_helper_pool **out,
                                 ch_error *err)
{
    *out = NULL;
    if (o->processes < 1 || o->processes > PROV_HELPER_POOL_MAX)
        return ch_error_set(err, CH_ERR_INVALID, "helper_processes must be between 1 and %d",
                            PROV_HELPER_POOL_MAX);
    prov_helper_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    p->o = *o;
    p->o.command = NULL;
    p->o.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : PROV_HELPER_TIMEOUT_MS;
    p->o.max_reply = o->max_reply > 0 ? o->max_reply : CH_PROCESS_MAX_OUTPUT;
    pthread_mutex_init(&p->mu, NULL);
    ch_cond_init_monotonic(&p->freed);
    ch_error e;
    ch_status st = ch_process_split(o->command, &p->argv, NULL, &e);
    if (st != CH_OK)
        st = ch_error_set(err, CH_ERR_INVALID, "cannot parse helper command: %s", e.msg);
    if (st == CH_OK && (p->slots = calloc(o->processes, sizeof(*p->slots))) == NULL)
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    if (st == CH_OK)
        st = prov_stderr_pump_start(&p->pump, log_stderr, p, err);
    if (st != CH_OK) {
        prov_helper_pool_stop(p);
        return st;
    }
    p->count = o->processes;
    for (size_t i = 0; i < p->count; i++)
        p->slots[i].index = (int)i;
    start_all(p);
    *out = p;
    return CH_OK;
}

uint64_t prov_helper_pool_starts(prov_helper_pool *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t n = p->starts;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Waits until every process has ended or the deadline passed; true when all have. */
static bool wait_all(prov_helper_pool *p, int64_t deadline)
{
    bool all = true;
    for (size_t i = 0; i < p->count; i++) {
        slot *s = &p->slots[i];
        int64_t left = deadline - ch_now_mono_ms();
        if (s->proc != NULL && ch_process_wait(s->proc, left > 0 ? left : 0, NULL, NULL) != CH_OK)
            all = false;
    }
    return all;
}

void prov_helper_pool_stop(prov_helper_pool *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->count; i++)
        if (p->slots[i].proc != NULL)
            ch_process_close_fd(p->slots[i].proc, 0); /* end of input: stop */
    if (!wait_all(p, ch_now_mono_ms() + PROV_HELPER_STOP_GRACE_MS)) {
        for (size_t i = 0; i < p->count; i++)
            if (p->slots[i].proc != NULL)
                ch_process_signal(p->slots[i].proc, SIGTERM);
        wait_all(p, ch_now_mono_ms() + 1000);
    }
    for (size_t i = 0; i < p->count; i++) {
        end_process(&p->slots[i]); /* SIGKILL for what still runs */
        free(p->slots[i].out);
    }
    prov_stderr_pump_stop(p->pump, STDERR_DRAIN_MS);
    ch_process_argv_free(p->argv);
    free(p->slots);
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
