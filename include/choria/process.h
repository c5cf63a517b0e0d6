/* Child processes, the one way this project starts them: the provisioner's helper, the node's
 * release_update command, `choria election run` and `choria broker run` all go through here.
 *
 * - Command lines are split as go-shellquote does (the provisioner's `helper` key); nothing
 *   runs a shell.
 * - vfork and exec (glibc's posix_spawn mmaps and munmaps a child stack per spawn, which in a
 *   process with many threads costs TLB shootdowns; bench_spawn measures it), with an empty
 *   signal mask and default dispositions for the signals a daemon blocks or ignores (a child
 *   must not inherit them), every descriptor above 2 closed, optionally its own process group
 *   so that a kill reaches what it started too, and argv[0] looked up in PATH as execvp does
 *   (no shell for a file that is not an executable). Exec failure is known when spawning
 *   returns.
 * - ch_process_run feeds stdin from a buffer and collects stdout and stderr with bounds, under
 *   a deadline and a cancel flag; ch_process_spawn / _wait / _signal / _free are for children
 *   that live longer (a supervised nats-server, a command under election control).
 * - Every child is reaped: _free kills (SIGKILL, the whole group when it has one) and waits for
 *   one that still runs.
 *
 * Threads: no global state; any number of threads may run processes at once, each ch_process
 * used by one thread at a time. SIGPIPE is blocked in the calling thread while it writes a
 * child's stdin, so a child that exits without reading does not kill the caller. */
#ifndef CHORIA_PROCESS_H
#define CHORIA_PROCESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "choria/common.h"

#define CH_PROCESS_MAX_COMMAND 65536        /* bytes of a command line */
#define CH_PROCESS_MAX_ARGS 1024            /* words of a command line */
#define CH_PROCESS_MAX_OUTPUT (1024 * 1024) /* default stdout bound of ch_process_run */
#define CH_PROCESS_MAX_STDERR (64 * 1024)   /* default stderr kept; the rest is drained */

/* ---- the daemon's own signals ---- */

/* For a program's main thread before it starts any thread (nats.c's included): blocks SIGINT
 * and SIGTERM, and SIGHUP with hup, so that threads started afterwards inherit the mask and
 * only the main loop's sigtimedwait(stop) takes them; ignores SIGPIPE so that a write to a
 * closed socket or pipe fails instead of killing the program. Children spawned here get the
 * defaults back. *stop gets the blocked set. */
void ch_process_take_stop_signals(sigset_t *stop, bool hup);

/* ---- command lines ---- */

/* Splits cmd as go-shellquote does: words separated by space, tab or newline; '...' literal;
 * "..." where backslash escapes only $ ` " \ and newline; a backslash outside quotes escapes
 * the next byte; backslash-newline is removed. No variables, globbing or comments. *argv is a
 * NULL-terminated malloc'd array (free with ch_process_argv_free); argc may be NULL. Errors:
 * CH_ERR_INVALID "empty", "Unterminated single-quoted string", "Unterminated double-quoted
 * string", "Unterminated backslash-escape"; CH_ERR_TOO_LARGE past the bounds above. */
ch_status ch_process_split(const char *cmd, char ***argv, size_t *argc, ch_error *err);
void ch_process_argv_free(char **argv);

/* ---- a child that lives on ---- */

typedef enum {
    CH_PROCESS_INHERIT = 0, /* the caller's descriptor */
    CH_PROCESS_NULL,        /* /dev/null */
    CH_PROCESS_PIPE,        /* a pipe to the caller: ch_process_fd */
    CH_PROCESS_TO_STDERR,   /* stdout only: the caller's stderr (a command's output to the log) */
} ch_process_stdio;

typedef struct {
    char *const *argv;       /* argv[0] is looked up in PATH unless it has a '/'; borrowed */
    bool own_group;          /* its own process group: signals and kills reach the whole group */
    ch_process_stdio in;     /* stdin; default inherit */
    ch_process_stdio out;    /* stdout */
    ch_process_stdio errout; /* stderr */
} ch_process_opts;

typedef struct ch_process ch_process;

/* Starts the child. CH_ERR_IO "cannot start %s: %s" when it cannot be spawned (a missing
 * program included), CH_ERR_INVALID without argv, CH_ERR_NOMEM. The pipe ends of the caller
 * are O_CLOEXEC and, for stdout and stderr, non-blocking. */
ch_status ch_process_spawn(const ch_process_opts *o, ch_process **out, ch_error *err);

pid_t ch_process_pid(const ch_process *p);

/* The caller's end of a CH_PROCESS_PIPE stream (0, 1 or 2); -1 when there is none or it was
 * closed with ch_process_close_fd. Owned by p. */
int ch_process_fd(const ch_process *p, int stream);
void ch_process_close_fd(ch_process *p, int stream);

/* Sends sig to the child (to its group with own_group). Harmless once it has been reaped. */
void ch_process_signal(ch_process *p, int sig);

/* Waits up to timeout_ms (0 polls, < 0 waits for good) for the child to end. CH_OK when it
 * has ended, with *code its exit status, or 128 + the signal that ended it (may be NULL);
 * CH_ERR_TIMEOUT while it runs on; CH_ERR_IO when it cannot be waited for. */
ch_status ch_process_wait(ch_process *p, int64_t timeout_ms, int *code, ch_error *err);

/* write(2) to a child's stdin with SIGPIPE blocked in this thread only; a SIGPIPE the write
 * raised is consumed so it is never delivered. Bytes written, or -1 with errno (EPIPE once the
 * child closed its end). */
ssize_t ch_process_write_nosigpipe(int fd, const void *buf, size_t n);

/* Whether the child ended by a signal, and which (after a successful ch_process_wait). */
int ch_process_term_signal(const ch_process *p);

/* Kills a child that still runs (SIGKILL, its group with own_group), reaps it, closes the
 * pipes and frees p. NULL is fine. */
void ch_process_free(ch_process *p);

/* ---- run to completion ---- */

typedef struct {
    int64_t timeout_ms;        /* <= 0: 10 s */
    size_t max_output;         /* stdout bound, 0: CH_PROCESS_MAX_OUTPUT */
    size_t max_stderr;         /* stderr kept, 0: CH_PROCESS_MAX_STDERR; the rest is drained */
    const atomic_bool *cancel; /* optional: when it turns true the child is killed in 100 ms */
} ch_process_run_opts;

typedef struct {
    char *out; /* stdout, NUL-terminated; NULL when nothing was read */
    size_t out_len;
    char *errout; /* stderr, NUL-terminated, at most max_stderr bytes kept */
    size_t errout_len;
    bool errout_truncated;
    int exit_code;       /* exit status, or -1 when a signal ended it */
    int term_signal;     /* that signal */
    int64_t duration_ms; /* start to reap */
} ch_process_result;

/* Runs argv in its own process group with input[0..input_len) on stdin, and collects its
 * output in *res (always initialised: clear it with ch_process_result_clear, after an error
 * too, since stderr is kept for the log). A child that does not read all of its input is not
 * an error (as Go's exec). The group is killed on timeout, cancel or too much output. Errors:
 * CH_ERR_IO "cannot start %s: %s", CH_ERR_TIMEOUT "%s timed out after %lld ms",
 * CH_ERR_TOO_LARGE "%s output exceeds %zu bytes", CH_ERR_EXPIRED "%s cancelled", CH_ERR_IO
 * "could not wait for %s: exit status %d" or "...: signal: %s" (Go's wording), where %s is
 * argv[0]. */
ch_status ch_process_run(char *const *argv, const char *input, size_t input_len,
                         const ch_process_run_opts *o, ch_process_result *res, ch_error *err);
void ch_process_result_clear(ch_process_result *res);

#endif
