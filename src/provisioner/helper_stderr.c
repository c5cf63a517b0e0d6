/* The stderr of long-lived helper processes, to the log line by line. */
#include "helper_stderr.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "choria/util.h"

#define POLL_TICK_MS 100

typedef struct {
    int fd;
    int slot;
    pid_t pid;
    char line[PROV_STDERR_MAX_LINE];
    size_t len;
    bool cut;                /* the current line went past the bound: drop to its newline */
    int64_t window_start_ms; /* the rate limit's current second */
    unsigned window_lines;
    uint64_t suppressed;
} stream;

struct prov_stderr_pump {
    prov_stderr_line_fn fn;
    void *closure;
    pthread_t thread;
    pthread_mutex_t mu;
    stream **streams; /* guarded by mu; only the thread removes */
    size_t count;
    int wake[2]; /* a byte written here makes the thread re-read the stream list */
    bool stopping;
    int64_t drain_deadline_ms;
};

static void report_suppressed(prov_stderr_pump *p, stream *s)
{
    if (s->suppressed > 0)
        p->fn(p->closure, s->slot, s->pid, "", 0, false, s->suppressed);
    s->suppressed = 0;
}

/* The current line is complete: log it unless this second's lines are used up. */
static void emit_line(prov_stderr_pump *p, stream *s)
{
    int64_t now = ch_now_mono_ms();
    if (now - s->window_start_ms >= 1000) {
        report_suppressed(p, s);
        s->window_start_ms = now;
        s->window_lines = 0;
    }
    size_t len = s->len;
    if (len > 0 && s->line[len - 1] == '\r')
        len--;
    if (s->window_lines++ < PROV_STDERR_LINES_PER_SECOND)
        p->fn(p->closure, s->slot, s->pid, s->line, len, s->cut, 0);
    else
        s->suppressed++;
    s->len = 0;
    s->cut = false;
}

static void take_bytes(prov_stderr_pump *p, stream *s, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n') {
            emit_line(p, s);
            continue;
        }
        if (s->len == sizeof(s->line)) {
            s->cut = true;
            continue;
        }
        s->line[s->len++] = (char)(c < 0x20 && c != '\r' ? ' ' : c);
    }
}

static void close_stream(prov_stderr_pump *p, stream *s)
{
    if (s->len > 0)
        emit_line(p, s);
    report_suppressed(p, s);
    close(s->fd);
    free(s);
}

/* Reads what stream i has; false at its end. */
static bool pump_stream(prov_stderr_pump *p, stream *s)
{
    char buf[16384];
    for (int rounds = 0; rounds < 4; rounds++) { /* bounded: other streams get their turn */
        ssize_t n = read(s->fd, buf, sizeof(buf));
        if (n > 0) {
            take_bytes(p, s, buf, (size_t)n);
            continue;
        }
        return n < 0 && (errno == EAGAIN || errno == EINTR);
    }
    return true;
}

/* The streams to poll, behind the wake pipe; false once the pump is done. */
static bool snapshot(prov_stderr_pump *p, struct pollfd *pf, stream **seen, size_t *n)
{
    pthread_mutex_lock(&p->mu);
    bool done = p->stopping && (p->count == 0 || ch_now_mono_ms() >= p->drain_deadline_ms);
    *n = p->count;
    pf[0] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
    for (size_t i = 0; i < p->count; i++) {
        seen[i] = p->streams[i];
        pf[i + 1] = (struct pollfd){.fd = p->streams[i]->fd, .events = POLLIN};
    }
    pthread_mutex_unlock(&p->mu);
    return !done;
}

static void remove_stream(prov_stderr_pump *p, stream *s)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->count; i++)
        if (p->streams[i] == s) {
            p->streams[i] = p->streams[--p->count];
            break;
        }
    pthread_mutex_unlock(&p->mu);
    close_stream(p, s);
}

static void *pump_loop(void *arg)
{
    prov_stderr_pump *p = arg;
    struct pollfd *pf = calloc(PROV_STDERR_MAX_STREAMS + 1, sizeof(*pf));
    stream **seen = calloc(PROV_STDERR_MAX_STREAMS, sizeof(*seen));
    size_t n = 0;
    while (pf != NULL && seen != NULL && snapshot(p, pf, seen, &n)) {
        if (poll(pf, n + 1, POLL_TICK_MS) <= 0)
            continue;
        char drain[64];
        if (pf[0].revents != 0)
            while (read(p->wake[0], drain, sizeof(drain)) > 0) {
            }
        for (size_t i = 0; i < n; i++)
            if (pf[i + 1].revents != 0 && !pump_stream(p, seen[i]))
                remove_stream(p, seen[i]);
    }
    free(pf);
    free(seen);
    return NULL;
}

ch_status prov_stderr_pump_start(prov_stderr_pump **out, prov_stderr_line_fn fn, void *closure,
                                 ch_error *err)
{
    *out = NULL;
    prov_stderr_pump *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    p->fn = fn;
    p->closure = closure;
    p->streams = calloc(PROV_STDERR_MAX_STREAMS, sizeof(*p->streams));
    pthread_mutex_init(&p->mu, NULL);
    if (p->streams == NULL || pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(p->streams);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return ch_error_set(err, CH_ERR_IO, "cannot start the helper stderr reader");
    }
    if (pthread_create(&p->thread, NULL, pump_loop, p) != 0) {
        close(p->wake[0]);
        close(p->wake[1]);
        free(p->streams);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return ch_error_set(err, CH_ERR_INTERNAL, "cannot start the helper stderr reader");
    }
    *out = p;
    return CH_OK;
}

ch_status prov_stderr_pump_add(prov_stderr_pump *p, int fd, int slot, pid_t pid, ch_error *err)
{
    stream *s = calloc(1, sizeof(*s));
    if (s == NULL || fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        free(s);
        close(fd);
        return ch_error_set(err, CH_ERR_NOMEM, "cannot follow the helper's stderr");
    }
    *s = (stream){.fd = fd, .slot = slot, .pid = pid, .window_start_ms = ch_now_mono_ms()};
    pthread_mutex_lock(&p->mu);
    bool room = p->count < PROV_STDERR_MAX_STREAMS;
    if (room)
        p->streams[p->count++] = s;
    pthread_mutex_unlock(&p->mu);
    if (!room) {
        close(fd);
        free(s);
        return ch_error_set(err, CH_ERR_TOO_LARGE, "too many helper stderr streams");
    }
    ssize_t w = write(p->wake[1], "", 1); /* a full wake pipe already wakes the thread */
    (void)w;
    return CH_OK;
}

void prov_stderr_pump_stop(prov_stderr_pump *p, int64_t drain_ms)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    p->drain_deadline_ms = ch_now_mono_ms() + (drain_ms > 0 ? drain_ms : 0);
    pthread_mutex_unlock(&p->mu);
    ssize_t w = write(p->wake[1], "", 1);
    (void)w;
    pthread_join(p->thread, NULL);
    for (size_t i = 0; i < p->count; i++)
        close_stream(p, p->streams[i]);
    close(p->wake[0]);
    close(p->wake[1]);
    free(p->streams);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
