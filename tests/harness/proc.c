/* Child processes: fork+exec with PDEATHSIG, captured stdout/stderr, line reads with
 * timeouts, bounded buffers, stop with SIGTERM then SIGKILL. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "choria/util.h"

extern char **environ;

struct cht_proc {
    pid_t pid;
    bool exited;
    int wstatus;
    int out_fd, err_fd, in_fd, err_file_fd;
    char *out;      /* unread stdout */
    size_t out_len; /* capacity is CHT_STDOUT_MAX + 1 */
    size_t out_dropped;
    char *err; /* newest stderr, NUL-terminated */
    size_t err_len;
};

int64_t cht__now_ms(void)
{
    return ch_now_mono_ms();
}

void cht__sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

char cht__pid_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return '\0';
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return '\0';
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')'); /* the command name may contain spaces and ')' */
    if (rp == NULL || rp[1] == '\0' || rp[2] == '\0')
        return '\0';
    return rp[2];
}

bool cht_pid_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return false;
    /* A dead grandchild stays a zombie until its new parent reaps it; that is gone too. */
    char st = cht__pid_state(pid);
    return st != 'Z' && st != 'X';
}

ch_status cht__resolve_exe(const char *name, char *out, size_t out_size, ch_error *err)
{
    if (name == NULL || name[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "empty program name");
    if (strchr(name, '/') != NULL) {
        if (access(name, X_OK) != 0)
            return ch_error_set(err, CH_ERR_NOT_FOUND, "%s: %s", name, strerror(errno));
        if ((size_t)snprintf(out, out_size, "%s", name) >= out_size)
            return ch_error_set(err, CH_ERR_TOO_LARGE, "path too long: %s", name);
        return CH_OK;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    const char *p = path;
    while (*p != '\0') {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            int n = snprintf(out, out_size, "%.*s/%s", (int)len, p, name);
            if (n > 0 && (size_t)n < out_size && access(out, X_OK) == 0)
                return CH_OK;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return ch_error_set(err, CH_ERR_NOT_FOUND, "%s not found in PATH", name);
}

char **cht__env_build(const char *const *extra)
{
    size_t n_env = 0, n_extra = 0;
    while (environ != NULL && environ[n_env] != NULL)
        n_env++;
    while (extra != NULL && extra[n_extra] != NULL)
        n_extra++;
    char **env = calloc(n_env + n_extra + 1, sizeof(char *));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        bool overridden = false;
        for (size_t j = 0; j < n_extra && !overridden; j++)
            overridden = strncmp(extra[j], environ[i], klen) == 0 && extra[j][klen] == '=';
        if (!overridden)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < n_extra; j++)
        env[k++] = (char *)extra[j];
    env[k] = NULL;
    return env;
}

void cht__env_free(char **env)
{
    free(env); /* the strings belong to environ and to the caller */
}

/* Runs in the forked child of a possibly multi-threaded parent: async-signal-safe calls
 * only until execve. */
static void child_exec(const cht__spawn_spec *s, pid_t parent, int report_fd)
{
    int e;
    if (report_fd < 3) /* keep it clear of the stdio slots dup2 overwrites below */
        report_fd = fcntl(report_fd, F_DUPFD_CLOEXEC, 3);
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        goto fail;
    if (getppid() != parent) /* the parent died before prctl: nobody will stop us */
        _exit(127);

    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    const int reset[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2};
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
        sigaction(reset[i], &dfl, NULL);

    int devnull = open("/dev/null", O_RDWR);
    int fds[3] = {s->stdin_fd, s->stdout_fd, s->stderr_fd};
    for (int i = 0; i < 3; i++) {
        int from = fds[i] >= 0 ? fds[i] : devnull;
        if (from < 0 || dup2(from, i) < 0)
            goto fail;
    }
    /* Only 0, 1, 2 and the exec report pipe (close-on-exec) survive into the program. */
    if ((report_fd > 3 && close_range(3, (unsigned)report_fd - 1, 0) != 0) ||
        close_range((unsigned)report_fd + 1, ~0U, 0) != 0) {
        for (int fd = 3; fd < 65536; fd++) {
            if (fd != report_fd)
                close(fd);
        }
    }
    if (s->cwd != NULL && chdir(s->cwd) != 0)
        goto fail;
    execve(s->path, s->argv, s->envp);
fail:
    e = errno;
    if (write(report_fd, &e, sizeof(e)) < 0) {
    }
    _exit(127);
}

ch_status cht__spawn(const cht__spawn_spec *s, pid_t *pid, ch_error *err)
{
    cht__reg_init();
    cht__ignore_sigpipe();
    int rep[2];
    if (pipe2(rep, O_CLOEXEC) != 0)
        return ch_error_set(err, CH_ERR_IO, "pipe: %s", strerror(errno));
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        int e = errno;
        close(rep[0]);
        close(rep[1]);
        return ch_error_set(err, CH_ERR_IO, "fork: %s", strerror(e));
    }
    if (child == 0) {
        close(rep[0]);
        child_exec(s, parent, rep[1]);
    }
    setpgid(child, child); /* also here, so a kill of the group cannot race the child */
    cht__reg_pid_add(child);
    close(rep[1]);

    /* EOF means execve succeeded (the pipe was close-on-exec); an int is its errno. */
    int child_errno = 0;
    ssize_t n;
    do {
        n = read(rep[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    close(rep[0]);
    if (n > 0) {
        int ws;
        waitpid(child, &ws, 0); /* it calls _exit right after the report */
        cht__reg_pid_del(child);
        return ch_error_set(err, CH_ERR_IO, "cannot run %s: %s", s->path, strerror(child_errno));
    }
    *pid = child;
    return CH_OK;
}

bool cht__pid_reap(pid_t pid, int *wstatus)
{
    int ws = 0;
    pid_t r = waitpid(pid, &ws, WNOHANG);
    if (r == pid) {
        cht__reg_pid_del(pid);
        if (wstatus != NULL)
            *wstatus = ws;
        return true;
    }
    if (r < 0 && errno == ECHILD) { /* reaped elsewhere */
        cht__reg_pid_del(pid);
        if (wstatus != NULL)
            *wstatus = 0;
        return true;
    }
    return false;
}

static bool reap_within(pid_t pid, int ms, int *wstatus)
{
    int64_t deadline = cht__now_ms() + ms;
    for (;;) {
        if (cht__pid_reap(pid, wstatus))
            return true;
        if (cht__now_ms() >= deadline)
            return false;
        cht__sleep_ms(5);
    }
}

bool cht__pid_stop(pid_t pid, int first_sig, int grace_ms, int *wstatus)
{
    if (pid <= 0)
        return true;
    if (first_sig != 0 && first_sig != SIGKILL) {
        kill(pid, first_sig);
        kill(pid, SIGCONT); /* a stopped process cannot act on SIGTERM */
        if (reap_within(pid, grace_ms, wstatus))
            return true;
        fprintf(stderr, "cht: pid %ld ignored signal %d for %d ms, sending SIGKILL\n", (long)pid,
                first_sig, grace_ms);
    }
    kill(pid, SIGKILL);
    return reap_within(pid, 5000, wstatus);
}

/* --------------------------------------------------------------------------------------- */

const char *cht_read_status_text(cht_read_status s)
{
    switch (s) {
    case CHT_READ_LINE:
        return "line";
    case CHT_READ_TIMEOUT:
        return "timeout";
    case CHT_READ_EOF:
        return "eof";
    case CHT_READ_ERROR:
        return "error";
    }
    return "unknown";
}

ch_status cht_proc_spawn(const cht_proc_opts *o, cht_proc **out, ch_error *err)
{
    *out = NULL;
    if (o == NULL || o->argv == NULL || o->argv[0] == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "cht_proc_spawn needs argv");
    char exe[4096];
    ch_status st = cht__resolve_exe(o->argv[0], exe, sizeof(exe), err);
    if (st != CH_OK)
        return st;

    cht_proc *p = calloc(1, sizeof(*p));
    if (p != NULL)
        p->out_fd = p->err_fd = p->in_fd = p->err_file_fd = -1;
    char **env = cht__env_build(o->env);
    int op[2] = {-1, -1}, ep[2] = {-1, -1}, ip[2] = {-1, -1};
    if (p == NULL || env == NULL || (p->out = malloc(CHT_STDOUT_MAX + 1)) == NULL ||
        (p->err = malloc(CHT_STDERR_MAX + 1)) == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto out;
    }
    p->err[0] = '\0';
    if (pipe2(op, O_CLOEXEC) != 0 || pipe2(ep, O_CLOEXEC) != 0 ||
        (o->stdin_pipe && pipe2(ip, O_CLOEXEC) != 0)) {
        st = ch_error_set(err, CH_ERR_IO, "pipe: %s", strerror(errno));
        goto out;
    }
    if (o->stderr_file != NULL) {
        p->err_file_fd = open(o->stderr_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (p->err_file_fd < 0) {
            st = ch_error_set(err, CH_ERR_IO, "%s: %s", o->stderr_file, strerror(errno));
            goto out;
        }
    }
    cht__spawn_spec spec = {.path = exe,
                            .argv = (char *const *)o->argv,
                            .envp = env,
                            .stdin_fd = ip[0],
                            .stdout_fd = op[1],
                            .stderr_fd = ep[1],
                            .cwd = o->cwd};
    st = cht__spawn(&spec, &p->pid, err);
    if (st != CH_OK)
        goto out;
    p->out_fd = op[0];
    p->err_fd = ep[0];
    p->in_fd = ip[1];
    op[0] = ep[0] = ip[1] = -1;
    fcntl(p->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(p->err_fd, F_SETFL, O_NONBLOCK);
    *out = p;
    p = NULL;
out:
    for (int i = 0; i < 2; i++) {
        if (op[i] >= 0)
            close(op[i]);
        if (ep[i] >= 0)
            close(ep[i]);
        if (ip[i] >= 0)
            close(ip[i]);
    }
    cht__env_free(env);
    cht_proc_free(p);
    return st;
}

pid_t cht_proc_pid(const cht_proc *p)
{
    return p->pid;
}

size_t cht_proc_stdout_dropped(const cht_proc *p)
{
    return p->out_dropped;
}

bool cht_proc_exited(const cht_proc *p)
{
    return p->exited;
}

static void err_append(cht_proc *p, const char *data, size_t n)
{
    if (p->err_file_fd >= 0 && write(p->err_file_fd, data, n) < 0) {
    }
    if (n >= CHT_STDERR_MAX) {
        data += n - CHT_STDERR_MAX;
        n = CHT_STDERR_MAX;
    }
    if (p->err_len + n > CHT_STDERR_MAX) { /* keep the newest text */
        size_t drop = p->err_len + n - CHT_STDERR_MAX;
        memmove(p->err, p->err + drop, p->err_len - drop);
        p->err_len -= drop;
    }
    memcpy(p->err + p->err_len, data, n);
    p->err_len += n;
    p->err[p->err_len] = '\0';
}

/* Reads whatever one fd has (bounded per call); closes it at EOF. */
static void drain(cht_proc *p, int *fd, bool is_out)
{
    char buf[16384];
    for (int i = 0; i < 64; i++) {
        ssize_t n = read(*fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            close(*fd);
            *fd = -1;
            return;
        }
        if (!is_out) {
            err_append(p, buf, (size_t)n);
            continue;
        }
        size_t room = CHT_STDOUT_MAX - p->out_len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(p->out + p->out_len, buf, take);
        p->out_len += take;
        p->out_dropped += (size_t)n - take;
    }
}

/* Waits up to timeout_ms for output on either pipe and reads it. Draining stderr here too
 * keeps a chatty child from blocking on a full stderr pipe while we wait for stdout. */
static void pump(cht_proc *p, int timeout_ms)
{
    struct pollfd pf[2];
    int n = 0;
    if (p->out_fd >= 0)
        pf[n++] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
    if (p->err_fd >= 0)
        pf[n++] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
    if (n == 0) {
        if (timeout_ms > 0)
            cht__sleep_ms(timeout_ms);
        return;
    }
    int r = poll(pf, (nfds_t)n, timeout_ms);
    if (r <= 0)
        return;
    for (int i = 0; i < n; i++) {
        if (pf[i].revents == 0)
            continue;
        if (pf[i].fd == p->out_fd)
            drain(p, &p->out_fd, true);
        else
            drain(p, &p->err_fd, false);
    }
}

/* Takes the first len bytes of the stdout buffer as a line (skip bytes of separator). */
static char *take_line(cht_proc *p, size_t len, size_t skip)
{
    size_t n = len;
    if (n > 0 && p->out[n - 1] == '\r')
        n--;
    char *line = malloc(n + 1);
    if (line == NULL)
        return NULL;
    memcpy(line, p->out, n);
    line[n] = '\0';
    memmove(p->out, p->out + len + skip, p->out_len - len - skip);
    p->out_len -= len + skip;
    return line;
}

static cht_read_status line_or_error(char *l, char **line)
{
    *line = l;
    return l != NULL ? CHT_READ_LINE : CHT_READ_ERROR;
}

cht_read_status cht_proc_read_line(cht_proc *p, int timeout_ms, char **line)
{
    *line = NULL;
    int64_t deadline = cht__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    bool polled = false;
    for (;;) {
        size_t scan = p->out_len < CHT_LINE_MAX ? p->out_len : CHT_LINE_MAX;
        char *nl = memchr(p->out, '\n', scan);
        if (nl != NULL)
            return line_or_error(take_line(p, (size_t)(nl - p->out), 1), line);
        if (p->out_len >= CHT_LINE_MAX)
            return line_or_error(take_line(p, CHT_LINE_MAX, 0), line);
        if (p->out_fd < 0) /* EOF: a last line without newline, then EOF */
            return p->out_len > 0 ? line_or_error(take_line(p, p->out_len, 0), line) : CHT_READ_EOF;
        int64_t left = deadline - cht__now_ms();
        if (left <= 0 && polled)
            return CHT_READ_TIMEOUT;
        pump(p, left > 0 ? (int)left : 0);
        polled = true;
    }
}

cht_read_status cht_proc_read_until_fn(cht_proc *p, bool (*pred)(const char *line, void *arg),
                                       void *arg, int timeout_ms, char **line)
{
    if (line != NULL)
        *line = NULL;
    int64_t deadline = cht__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int64_t left = deadline - cht__now_ms();
        char *l = NULL;
        cht_read_status rs = cht_proc_read_line(p, left > 0 ? (int)left : 0, &l);
        if (rs != CHT_READ_LINE)
            return rs;
        if (pred(l, arg)) {
            if (line != NULL)
                *line = l;
            else
                free(l);
            return CHT_READ_LINE;
        }
        free(l);
    }
}

static bool has_substring(const char *line, void *needle)
{
    return strstr(line, (const char *)needle) != NULL;
}

cht_read_status cht_proc_read_until(cht_proc *p, const char *needle, int timeout_ms, char **line)
{
    return cht_proc_read_until_fn(p, has_substring, (void *)needle, timeout_ms, line);
}

const char *cht_proc_stderr(cht_proc *p)
{
    if (p->err_fd >= 0)
        drain(p, &p->err_fd, false);
    return p->err;
}

ch_status cht_proc_write_stdin(cht_proc *p, const void *data, size_t len, ch_error *err)
{
    if (p->in_fd < 0)
        return ch_error_set(err, CH_ERR_INVALID, "no stdin pipe (set stdin_pipe)");
    const char *d = data;
    while (len > 0) {
        ssize_t n = write(p->in_fd, d, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ch_error_set(err, CH_ERR_IO, "write to stdin: %s", strerror(errno));
        d += n;
        len -= (size_t)n;
    }
    return CH_OK;
}

void cht_proc_close_stdin(cht_proc *p)
{
    if (p->in_fd >= 0)
        close(p->in_fd);
    p->in_fd = -1;
}

ch_status cht_proc_signal(cht_proc *p, int sig, ch_error *err)
{
    if (p->exited)
        return ch_error_set(err, CH_ERR_INVALID, "pid %ld already exited", (long)p->pid);
    if (kill(p->pid, sig) != 0)
        return ch_error_set(err, CH_ERR_IO, "kill(%ld, %d): %s", (long)p->pid, sig,
                            strerror(errno));
    return CH_OK;
}

ch_status cht_proc_wait(cht_proc *p, int timeout_ms, int *wstatus, ch_error *err)
{
    int64_t deadline = cht__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    while (!p->exited) {
        if (cht__pid_reap(p->pid, &p->wstatus)) {
            p->exited = true;
            break;
        }
        int64_t left = deadline - cht__now_ms();
        if (left <= 0)
            return ch_error_set(err, CH_ERR_TIMEOUT, "pid %ld still running after %d ms",
                                (long)p->pid, timeout_ms);
        pump(p, left < 10 ? (int)left : 10);
    }
    pump(p, 0); /* pick up the last output; do not block on pipes a grandchild may hold */
    if (wstatus != NULL)
        *wstatus = p->wstatus;
    return CH_OK;
}

void cht_proc_free(cht_proc *p)
{
    if (p == NULL)
        return;
    if (p->pid > 0 && !p->exited) {
        if (!cht__pid_stop(p->pid, SIGTERM, CHT_STOP_GRACE_MS, &p->wstatus))
            fprintf(stderr, "cht: could not reap pid %ld\n", (long)p->pid);
    }
    if (p->pid > 0)
        kill(-p->pid, SIGKILL); /* whatever it left behind in its process group */
    if (p->out_fd >= 0)
        close(p->out_fd);
    if (p->err_fd >= 0)
        close(p->err_fd);
    if (p->in_fd >= 0)
        close(p->in_fd);
    if (p->err_file_fd >= 0)
        close(p->err_file_fd);
    free(p->out);
    free(p->err);
    free(p);
}
