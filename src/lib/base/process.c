/* Child processes: command-line splitting, spawn, pumping bounded output, reaping, killing. */
#include "choria/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "choria/json.h"
#include "choria/util.h"

extern char **environ;

#define DEFAULT_RUN_TIMEOUT_MS 10000
#define PUMP_TICK_MS 100 /* how soon a cancel is noticed */

struct ch_process {
    pid_t pid;
    bool own_group;
    bool reaped;
    int status; /* waitpid status once reaped */
    int fd[3];  /* the caller's pipe ends, -1 when none */
};

/* ---- command lines ---- */

void ch_process_argv_free(char **argv)
{
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
        free(argv[i]);
    free(argv);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n';
}

/* A double-quoted part starting after the quote at *i; appends to word. */
static ch_status scan_double(const char *cmd, size_t n, size_t *i, char *word, size_t *wl,
                             ch_error *err)
{
    for (;;) {
        if (*i >= n)
            return ch_error_set(err, CH_ERR_INVALID, "Unterminated double-quoted string");
        char c = cmd[(*i)++];
        if (c == '"')
            return CH_OK;
        if (c == '\\' && *i < n && strchr("$`\"\\\n", cmd[*i]) != NULL) {
            c = cmd[(*i)++];
            if (c == '\n')
                continue;
        }
        word[(*wl)++] = c;
    }
}

/* One word starting at a non-blank cmd[*i]; *have is false when it was nothing at all
 * (a lone backslash-newline), true for '' (an empty word). */
static ch_status scan_word(const char *cmd, size_t n, size_t *i, char *word, size_t *wl, bool *have,
                           ch_error *err)
{
    *wl = 0;
    *have = false;
    while (*i < n && !is_blank(cmd[*i])) {
        char c = cmd[(*i)++];
        *have = true;
        if (c == '\\') {
            if (*i >= n)
                return ch_error_set(err, CH_ERR_INVALID, "Unterminated backslash-escape");
            c = cmd[(*i)++];
            if (c != '\n')
                word[(*wl)++] = c;
        } else if (c == '\'') {
            const char *end = memchr(cmd + *i, '\'', n - *i);
            if (end == NULL)
                return ch_error_set(err, CH_ERR_INVALID, "Unterminated single-quoted string");
            memcpy(word + *wl, cmd + *i, (size_t)(end - (cmd + *i)));
            *wl += (size_t)(end - (cmd + *i));
            *i = (size_t)(end - cmd) + 1;
        } else if (c == '"') {
            ch_status st = scan_double(cmd, n, i, word, wl, err);
            if (st != CH_OK)
                return st;
        } else {
            word[(*wl)++] = c;
        }
    }
    return CH_OK;
}

void ch_process_take_stop_signals(sigset_t *stop, bool hup)
{
    sigemptyset(stop);
    sigaddset(stop, SIGINT);
    sigaddset(stop, SIGTERM);
    if (hup)
        sigaddset(stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, stop, NULL);
    signal(SIGPIPE, SIG_IGN);
}

ch_status ch_process_split(const char *cmd, char ***argv, size_t *argc, ch_error *err)
{
    *argv = NULL;
    if (argc != NULL)
        *argc = 0;
    if (cmd == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "empty");
    size_t n = strlen(cmd);
    if (n > CH_PROCESS_MAX_COMMAND)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "command longer than %d bytes",
                            CH_PROCESS_MAX_COMMAND);
    char **words = calloc(CH_PROCESS_MAX_ARGS + 1, sizeof(*words));
    char *word = malloc(n + 1); /* a word is never longer than the command */
    size_t count = 0, i = 0, wl = 0;
    ch_status st =
        words != NULL && word != NULL ? CH_OK : ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    while (st == CH_OK && i < n) {
        bool have = false;
        while (i < n && is_blank(cmd[i]))
            i++;
        if (i < n)
            st = scan_word(cmd, n, &i, word, &wl, &have, err);
        if (st != CH_OK || !have)
            continue;
        if (count >= CH_PROCESS_MAX_ARGS)
            st = ch_error_set(err, CH_ERR_TOO_LARGE, "more than %d arguments", CH_PROCESS_MAX_ARGS);
        else if ((words[count++] = strndup(word, wl)) == NULL)
            st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
    if (st == CH_OK && count == 0)
        st = ch_error_set(err, CH_ERR_INVALID, "empty");
    free(word);
    if (st != CH_OK) {
        ch_process_argv_free(words);
        return st;
    }
    *argv = words;
    if (argc != NULL)
        *argc = count;
    return CH_OK;
}

/* ---- spawning ---- */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Moves fd above the standard descriptors (keeping O_CLOEXEC) so the child's dup2 onto 0-2
 * can never be a no-op that leaves the close-on-exec flag set. */
static int above_std(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return n;
}

static bool make_pipe(int p[2])
{
    if (pipe2(p, O_CLOEXEC) != 0)
        return false;
    p[0] = above_std(p[0]);
    p[1] = above_std(p[1]);
    return p[0] >= 0 && p[1] >= 0;
}

/* ---- the child, between vfork and exec ---- */

/* glibc's posix_spawn runs the child on a stack it mmaps for every spawn and munmaps after;
 * in a process with many threads that munmap costs a TLB shootdown on every CPU the process
 * runs on (bench/README.md, bench_spawn). vfork borrows the calling thread's stack instead.
 * The child shares the parent's memory until it execs, so it only makes async-signal-safe
 * calls on what the parent prepared here, and reports a failure through `error`, which the
 * parent reads once vfork returns (the parent is suspended until the child execs or exits,
 * so the failure is known synchronously, as posix_spawn's is). */
typedef struct {
    char *const *argv;
    char **paths; /* where to look for argv[0], in order: NULL-terminated */
    int onto[3];  /* the descriptor to put onto 0, 1, 2; -1 keeps the caller's */
    bool own_group;
    volatile int error; /* set by the child: why it could not exec */
} child_plan;

/* Signals a daemon blocks, ignores or handles, which a child gets back at their defaults. */
static const int default_signals[] = {SIGPIPE, SIGINT,  SIGTERM, SIGHUP,
                                      SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2};

/* The list above at its defaults, and every other handled signal too: between the empty mask
 * and the exec a handler would run in the parent's memory. Ignored signals stay ignored, as
 * posix_spawn's POSIX_SPAWN_SETSIGDEF leaves them. */
static void child_signals(void)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigset_t defaults;
    sigemptyset(&defaults);
    for (size_t i = 0; i < sizeof(default_signals) / sizeof(default_signals[0]); i++)
        sigaddset(&defaults, default_signals[i]);
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction now;
        if (sigismember(&defaults, sig) == 1 ||
            (sigaction(sig, NULL, &now) == 0 && now.sa_handler != SIG_IGN &&
             now.sa_handler != SIG_DFL))
            sigaction(sig, &dfl, NULL);
    }
}

/* execvp's search over the prepared paths: EACCES on one is remembered and the search goes
 * on, as do "not there" errors; anything else ends it. No shell for ENOEXEC (as posix_spawnp). */
static int child_exec(const child_plan *plan)
{
    bool denied = false;
    for (char **path = plan->paths; *path != NULL; path++) {
        execve(*path, plan->argv, environ);
        if (errno == EACCES)
            denied = true;
        else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV &&
                 errno != ETIMEDOUT)
            return errno;
    }
    return denied ? EACCES : errno;
}

__attribute__((noreturn)) static void run_child(child_plan *plan)
{
    sigset_t none;
    int rc = 0;
    child_signals();
    if (plan->own_group && setpgid(0, 0) != 0)
        rc = errno;
    for (int fd = 0; fd < 3 && rc == 0; fd++)
        if (plan->onto[fd] >= 0 && dup2(plan->onto[fd], fd) < 0)
            rc = errno;
    if (rc == 0) {
        closefrom(3);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        rc = child_exec(plan);
    }
    plan->error = rc != 0 ? rc : ENOEXEC;
    _exit(127);
}

/* Kept apart so that nothing of the caller's frame lives across vfork's return. */
static pid_t vfork_exec(child_plan *plan)
{
    pid_t pid = vfork();
    if (pid == 0)
        run_child(plan);
    return pid;
}

/* ---- spawning ---- */

/* Where to look for name: itself when it has a '/', else "dir/name" for each directory of
 * $PATH (glibc's default "/bin:/usr/bin" without one; an empty entry is the working
 * directory). One malloc'd block: free it once. */
static char **search_paths(const char *name)
{
    const char *path = strchr(name, '/') != NULL ? "" : getenv("PATH");
    if (path == NULL)
        path = "/bin:/usr/bin";
    size_t dirs = 1, nlen = strlen(name), plen = strlen(path);
    for (const char *c = path; *c != '\0'; c++)
        dirs += *c == ':';
    char **list = malloc((dirs + 1) * sizeof(char *) + plen + dirs * (nlen + 2));
    if (list == NULL)
        return NULL;
    char *text = (char *)(list + dirs + 1);
    const char *dir = path;
    for (size_t i = 0; i < dirs; i++) {
        size_t dlen = strcspn(dir, ":");
        list[i] = text;
        memcpy(text, dir, dlen);
        text += dlen;
        if (dlen > 0)
            *text++ = '/';
        memcpy(text, name, nlen + 1);
        text += nlen + 1;
        dir += dlen + (dir[dlen] == ':');
    }
    list[dirs] = NULL;
    return list;
}

/* What goes onto one standard stream of the child; pipe[] holds the pipe when it is one. */
static bool stream_plan(int stream, ch_process_stdio how, int pipe[2], int *null_fd, int *onto)
{
    *onto = -1;
    switch (how) {
    case CH_PROCESS_NULL:
        *null_fd = above_std(open("/dev/null", (stream == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC));
        *onto = *null_fd;
        return *null_fd >= 0;
    case CH_PROCESS_PIPE:
        if (!make_pipe(pipe))
            return false;
        *onto = pipe[stream == 0 ? 0 : 1];
        return true;
    case CH_PROCESS_TO_STDERR:
        *onto = 2;
        return true;
    default:
        return true;
    }
}

/* vfork with every signal blocked, so that no handler of the parent runs in the child before
 * it has reset them; the caller's mask is back once the child has exec'd or failed. */
static ch_status start_child(child_plan *plan, pid_t *pid, ch_error *err)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    *pid = vfork_exec(plan);
    int vfork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (*pid < 0)
        return ch_error_set(err, CH_ERR_IO, "cannot start %s: %s", plan->argv[0],
                            strerror(vfork_errno));
    if (plan->error != 0) {
        while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
            ;
        *pid = -1;
        return ch_error_set(err, CH_ERR_IO, "cannot start %s: %s", plan->argv[0],
                            strerror(plan->error));
    }
    return CH_OK;
}

static ch_status spawn_child(const ch_process_opts *o, ch_process *p, int pipes[3][2],
                             ch_error *err)
{
    const ch_process_stdio how[3] = {
        o->in, o->out, o->errout == CH_PROCESS_TO_STDERR ? CH_PROCESS_INHERIT : o->errout};
    child_plan plan = {.argv = o->argv, .own_group = o->own_group, .error = 0};
    int null_fd[3] = {-1, -1, -1};
    ch_status st = CH_OK;
    for (int s = 0; s < 3 && st == CH_OK; s++)
        if (!stream_plan(s, how[s], pipes[s], &null_fd[s], &plan.onto[s]))
            st = ch_error_set(err, CH_ERR_IO, "cannot start %s: %s", o->argv[0],
                              strerror(errno != 0 ? errno : EMFILE));
    if (st == CH_OK && (plan.paths = search_paths(o->argv[0])) == NULL)
        st = ch_error_set(err, CH_ERR_NOMEM, "cannot start %s: out of memory", o->argv[0]);
    if (st == CH_OK)
        st = start_child(&plan, &p->pid, err);
    free(plan.paths);
    for (int s = 0; s < 3; s++)
        close_fd(&null_fd[s]);
    return st;
}

ch_status ch_process_spawn(const ch_process_opts *o, ch_process **out, ch_error *err)
{
    *out = NULL;
    if (o == NULL || o->argv == NULL || o->argv[0] == NULL || o->argv[0][0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "no program to start");
    ch_process *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    p->pid = -1;
    p->own_group = o->own_group;
    int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    ch_status st = spawn_child(o, p, pipes, err);
    for (int s = 0; s < 3; s++) {
        /* the child's ends are its own now; the caller keeps the other */
        close_fd(&pipes[s][s == 0 ? 0 : 1]);
        p->fd[s] = pipes[s][s == 0 ? 1 : 0];
        if (s > 0 && p->fd[s] >= 0)
            fcntl(p->fd[s], F_SETFL, O_NONBLOCK);
    }
    if (st != CH_OK) {
        p->reaped = true; /* nothing was started */
        ch_process_free(p);
        return st;
    }
    *out = p;
    return CH_OK;
}

pid_t ch_process_pid(const ch_process *p)
{
    return p != NULL ? p->pid : -1;
}

int ch_process_fd(const ch_process *p, int stream)
{
    return p != NULL && stream >= 0 && stream < 3 ? p->fd[stream] : -1;
}

void ch_process_close_fd(ch_process *p, int stream)
{
    if (p != NULL && stream >= 0 && stream < 3)
        close_fd(&p->fd[stream]);
}

void ch_process_signal(ch_process *p, int sig)
{
    if (p == NULL || p->pid <= 0 || p->reaped)
        return;
    if (p->own_group)
        kill(-p->pid, sig);
    kill(p->pid, sig); /* also when setpgid failed */
}

/* ---- waiting ---- */

ch_status ch_process_wait(ch_process *p, int64_t timeout_ms, int *code, ch_error *err)
{
    int64_t deadline = timeout_ms >= 0 ? ch_now_mono_ms() + timeout_ms : INT64_MAX;
    for (long nap_us = 200; !p->reaped;) {
        pid_t w = waitpid(p->pid, &p->status, timeout_ms < 0 ? 0 : WNOHANG);
        if (w == p->pid) {
            p->reaped = true;
            break;
        }
        if (w < 0 && errno != EINTR) {
            p->reaped = true; /* nothing left to reap */
            return ch_error_set(err, CH_ERR_IO, "could not wait for process %d: %s", (int)p->pid,
                                strerror(errno));
        }
        if (w == 0 && ch_now_mono_ms() >= deadline)
            return ch_error_set(err, CH_ERR_TIMEOUT, "process %d still runs", (int)p->pid);
        if (w == 0) {
            struct timespec ts = {0, nap_us * 1000};
            nanosleep(&ts, NULL);
            nap_us = nap_us < 10000 ? nap_us * 2 : nap_us;
        }
    }
    if (code != NULL)
        *code = WIFEXITED(p->status) ? WEXITSTATUS(p->status) : 128 + WTERMSIG(p->status);
    return CH_OK;
}

int ch_process_term_signal(const ch_process *p)
{
    return p != NULL && p->reaped && WIFSIGNALED(p->status) ? WTERMSIG(p->status) : 0;
}

void ch_process_free(ch_process *p)
{
    if (p == NULL)
        return;
    if (p->pid > 0 && !p->reaped) {
        ch_process_signal(p, SIGKILL);
        ch_process_wait(p, -1, NULL, NULL);
    }
    for (int s = 0; s < 3; s++)
        close_fd(&p->fd[s]);
    free(p);
}

/* ---- run to completion ---- */

void ch_process_result_clear(ch_process_result *res)
{
    if (res == NULL)
        return;
    free(res->out);
    free(res->errout);
    memset(res, 0, sizeof(*res));
}

ssize_t ch_process_write_nosigpipe(int fd, const void *p, size_t n)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    ssize_t w = write(fd, p, n);
    int saved = errno;
    if (w < 0 && saved == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return w;
}

/* What one run pumps: the child, its input, what it wrote so far, and the bounds. */
typedef struct {
    ch_process *p;
    const char *name; /* argv[0], for messages */
    const char *input;
    size_t input_len, written;
    ch_buf out, errout;
    size_t max_out, max_err;
    bool errout_truncated;
} run_state;

/* Feeds stdin; closes it when done or when the child stopped reading (EPIPE is not an error,
 * as in Go). */
static void pump_stdin(run_state *r)
{
    int fd = r->p->fd[0];
    ssize_t w = ch_process_write_nosigpipe(fd, r->input + r->written, r->input_len - r->written);
    if (w > 0)
        r->written += (size_t)w;
    if ((w < 0 && errno != EAGAIN && errno != EINTR) || r->written == r->input_len)
        ch_process_close_fd(r->p, 0);
}

/* Reads what a stream has; closes it at its end. Stdout over its bound is an error; stderr
 * over its bound is drained and marked truncated. */
static ch_status pump_output(run_state *r, int stream, ch_error *err)
{
    char chunk[65536];
    ssize_t n = read(r->p->fd[stream], chunk, sizeof(chunk));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        ch_process_close_fd(r->p, stream);
        return CH_OK;
    }
    if (n < 0)
        return CH_OK;
    ch_buf *b = stream == 1 ? &r->out : &r->errout;
    size_t keep = (size_t)n;
    if (stream == 1 && b->len + keep > r->max_out)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "%s output exceeds %zu bytes", r->name,
                            r->max_out);
    if (stream == 2 && b->len + keep > r->max_err) {
        keep = b->len < r->max_err ? r->max_err - b->len : 0;
        r->errout_truncated = true;
    }
    ch_buf_append(b, chunk, keep);
    return b->failed ? ch_error_set(err, CH_ERR_NOMEM, "out of memory") : CH_OK;
}

/* Pumps stdin, stdout and stderr until both outputs end, the deadline passes or cancel. */
static ch_status pump(run_state *r, int64_t deadline, int64_t timeout_ms, const atomic_bool *cancel,
                      ch_error *err)
{
    ch_status st = CH_OK;
    while (st == CH_OK && (r->p->fd[1] >= 0 || r->p->fd[2] >= 0)) {
        int64_t left = deadline - ch_now_mono_ms();
        if (left <= 0)
            return ch_error_set(err, CH_ERR_TIMEOUT, "%s timed out after %lld ms", r->name,
                                (long long)timeout_ms);
        if (cancel != NULL && atomic_load(cancel))
            return ch_error_set(err, CH_ERR_EXPIRED, "%s cancelled", r->name);
        struct pollfd pf[3];
        for (int s = 0; s < 3; s++)
            pf[s] = (struct pollfd){.fd = r->p->fd[s], .events = s == 0 ? POLLOUT : POLLIN};
        int pr = poll(pf, 3, left > PUMP_TICK_MS ? PUMP_TICK_MS : (int)left);
        if (pr < 0 && errno != EINTR)
            return ch_error_set(err, CH_ERR_IO, "cannot read %s output: poll: %s", r->name,
                                strerror(errno));
        if (pr > 0 && pf[0].revents != 0)
            pump_stdin(r);
        for (int s = 1; s < 3 && pr > 0 && st == CH_OK; s++)
            if (pf[s].revents != 0)
                st = pump_output(r, s, err);
    }
    return st;
}

/* The outcome of a child that was reaped: Go's exec wording for a failure. */
static ch_status exit_outcome(run_state *r, ch_process_result *res, ch_error *err)
{
    int code = 0;
    ch_process_wait(r->p, 0, &code, NULL);
    res->term_signal = ch_process_term_signal(r->p);
    if (res->term_signal != 0)
        return ch_error_set(err, CH_ERR_IO, "could not wait for %s: signal: %s", r->name,
                            strsignal(res->term_signal));
    res->exit_code = code;
    if (code != 0)
        return ch_error_set(err, CH_ERR_IO, "could not wait for %s: exit status %d", r->name, code);
    return CH_OK;
}

/* Hands what a stream collected to the result: NULL when nothing was read. */
static void keep_output(ch_buf *b, char **out, size_t *len)
{
    *len = b->len;
    if (b->len == 0) {
        ch_buf_free(b);
        *out = NULL;
        return;
    }
    *out = ch_buf_steal(b, NULL);
}

ch_status ch_process_run(char *const *argv, const char *input, size_t input_len,
                         const ch_process_run_opts *o, ch_process_result *res, ch_error *err)
{
    static const ch_process_run_opts defaults = {0};
    o = o != NULL ? o : &defaults;
    memset(res, 0, sizeof(*res));
    res->exit_code = -1;
    int64_t timeout = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_RUN_TIMEOUT_MS;
    int64_t start = ch_now_mono_ms(), deadline = start + timeout;
    run_state r = {.name = argv != NULL && argv[0] != NULL ? argv[0] : "",
                   .input = input,
                   .input_len = input_len,
                   .max_out = o->max_output > 0 ? o->max_output : CH_PROCESS_MAX_OUTPUT,
                   .max_err = o->max_stderr > 0 ? o->max_stderr : CH_PROCESS_MAX_STDERR};
    ch_process_opts po = {.argv = argv,
                          .own_group = true,
                          .in = CH_PROCESS_PIPE,
                          .out = CH_PROCESS_PIPE,
                          .errout = CH_PROCESS_PIPE};
    ch_status st = ch_process_spawn(&po, &r.p, err);
    if (st == CH_OK) {
        fcntl(r.p->fd[0], F_SETFL, O_NONBLOCK);
        if (input_len == 0)
            ch_process_close_fd(r.p, 0);
        st = pump(&r, deadline, timeout, o->cancel, err);
    }
    ch_process_close_fd(r.p, 0);
    /* Both streams ended; the child may still run (it closed them itself), so the wait is
     * bounded by the same deadline. */
    if (st == CH_OK && ch_process_wait(r.p, deadline - ch_now_mono_ms(), NULL, NULL) != CH_OK)
        st = ch_error_set(err, CH_ERR_TIMEOUT, "%s timed out after %lld ms", r.name,
                          (long long)timeout);
    if (st == CH_OK)
        st = exit_outcome(&r, res, err);
    else if (r.p != NULL) {
        ch_process_signal(r.p, SIGKILL);
        ch_process_wait(r.p, -1, NULL, NULL);
        res->term_signal = ch_process_term_signal(r.p);
    }
    ch_process_free(r.p);
    keep_output(&r.out, &res->out, &res->out_len);
    keep_output(&r.errout, &res->errout, &res->errout_len);
    res->errout_truncated = r.errout_truncated;
    res->duration_ms = ch_now_mono_ms() - start;
    return st;
}
