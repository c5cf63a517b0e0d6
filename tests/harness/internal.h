/* Shared between the harness files only; tests include harness.h. */
#ifndef CH_TEST_HARNESS_INTERNAL_H
#define CH_TEST_HARNESS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "choria/common.h"
#include "harness.h"

/* registry.c: what the atexit hook and the signal handler clean up. */
void cht__reg_init(void);
void cht__reg_pid_add(pid_t pid);
void cht__reg_pid_del(pid_t pid);
bool cht__reg_keep(void); /* CHT_KEEP=1 */
/* SIGPIPE ignored in the whole test process, once; called before the first child starts. */
void cht__ignore_sigpipe(void);

/* proc.c: fork+exec with PDEATHSIG, a new process group, fds 0/1/2 from the given fds
 * (-1: /dev/null) and every other fd closed. Reports exec failures to the caller. */
typedef struct {
    const char *path;
    char *const *argv;
    char *const *envp;
    int stdin_fd, stdout_fd, stderr_fd;
    const char *cwd;
} cht__spawn_spec;

ch_status cht__spawn(const cht__spawn_spec *s, pid_t *pid, ch_error *err);
/* Looks name up in PATH unless it contains a '/'. */
ch_status cht__resolve_exe(const char *name, char *out, size_t out_size, ch_error *err);
/* environ plus/overridden by extra (NULL-ended "K=V" list); free with cht__env_free. */
char **cht__env_build(const char *const *extra);
void cht__env_free(char **env);

/* Reaps pid if it exited; true and *wstatus once it has. */
bool cht__pid_reap(pid_t pid, int *wstatus);
/* Sends first_sig (0: straight to SIGKILL), waits up to grace_ms, then SIGKILL and waits up
 * to 5 s more. True if the process was reaped. Unregisters it. */
bool cht__pid_stop(pid_t pid, int first_sig, int grace_ms, int *wstatus);

/* The state letter of /proc/<pid>/stat ('R', 'S', 'T', 'Z', ...), '\0' if unknown. */
char cht__pid_state(pid_t pid);
void cht__sleep_ms(int ms);
int64_t cht__now_ms(void);
/* broker.c: creates the directory and config of a broker without starting it. cluster_block
 * (may be NULL) is appended to the config; ports must be free. */
ch_status cht__broker_new(const cht_broker_opts *o, const char *label, int port, int http_port,
                          int cluster_port, const char *cluster_block, cht_broker **out,
                          ch_error *err);
ch_status cht__broker_spawn(cht_broker *b, ch_error *err);
/* Like cht_broker_wait_ready; *addr_in_use is set when the server died on a port race. */
ch_status cht__broker_wait(cht_broker *b, int timeout_ms, bool *addr_in_use, ch_error *err);
/* Binds n loopback sockets to port 0 at once (so the ports differ) and reports their ports. */
ch_status cht__free_ports(int n, int *ports, ch_error *err);

/* Prints "cht: <what>" plus the last bytes of the log to stderr. */
void cht__print_log_tail(const char *what, const char *log_path);

#endif
