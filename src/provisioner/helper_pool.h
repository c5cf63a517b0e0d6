/* Persistent helpers (helper_mode: persistent, this project's own): N long-lived helper
 * processes, each answering one request at a time. The line protocol: the provisioner writes
 * the request document (prov_helper_input_encode, which never contains a raw newline) and
 * "\n" on the helper's stdin; the helper writes one reply document (as in exec mode) and "\n"
 * on its stdout; end of input means stop.
 *
 * A request fails, and its helper process is killed (its whole process group) and started
 * again after a back-off (100 ms doubling to 5 s, reset by a good reply), when the helper
 * exits or closes its stdout, does not answer within the timeout, writes a line longer than
 * the bound, a reply that does not decode, or more than one line for one request. Output
 * between requests means the helper is out of step: it is restarted before the next request,
 * which does not fail for it. Stderr goes to the log line by line (helper_stderr.h). Helpers
 * start when the pool starts; one that cannot start is tried again by the next request.
 *
 * Threads: prov_helper_pool_run from any number of threads; each waits for a free process. */
#ifndef PROV_HELPER_POOL_H
#define PROV_HELPER_POOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "helper.h"

#define PROV_HELPER_POOL_MAX 4096
#define PROV_HELPER_BACKOFF_MIN_MS 100
#define PROV_HELPER_BACKOFF_MAX_MS 5000
#define PROV_HELPER_STOP_GRACE_MS 2000 /* after closing their stdin, before SIGTERM */

typedef struct {
    const char *command;         /* split as exec mode splits it; copied */
    size_t processes;            /* 1..PROV_HELPER_POOL_MAX */
    int64_t timeout_ms;          /* per request; <= 0: PROV_HELPER_TIMEOUT_MS */
    size_t max_reply;            /* bytes of a reply line; 0: CH_PROCESS_MAX_OUTPUT */
    const atomic_bool *stopping; /* a request in flight is abandoned when it turns true */
} prov_helper_pool_opts;

typedef struct prov_helper_pool prov_helper_pool;

/* Starts the processes. Fails only when the command cannot be split ("cannot parse helper
 * command: %s") or for want of memory or threads; a process that cannot be started is logged
 * and retried by the request that gets it. */
ch_status prov_helper_pool_start(const prov_helper_pool_opts *o, prov_helper_pool **out,
                                 ch_error *err);

/* One request: *reply as prov_helper_run gives it. Errors, where %s is the command's argv[0]:
 * those of starting a process ("cannot start %s: %s"), CH_ERR_TIMEOUT "%s timed out after %lld
 * ms", CH_ERR_EXPIRED "%s cancelled", CH_ERR_IO "%s (pid %d) exited: exit status %d" (or
 * "signal: ...") or "%s (pid %d) closed its output" (or input), CH_ERR_TOO_LARGE "helper output
 * exceeds %zu bytes", CH_ERR_INVALID "cannot read %s output: zero bytes received", "cannot decode
 * output from %s: %s" and "%s wrote more than one line for one request". */
ch_status prov_helper_pool_run(prov_helper_pool *p, const prov_helper_input *in,
                               prov_helper_reply **reply, ch_error *err);

/* Processes started so far, the first start included (for tests and the log). */
uint64_t prov_helper_pool_starts(prov_helper_pool *p);

/* Ends the processes: their stdin is closed, then SIGTERM after PROV_HELPER_STOP_GRACE_MS and
 * SIGKILL a second later; their last stderr lines are logged. No request may be running.
 * NULL is fine. */
void prov_helper_pool_stop(prov_helper_pool *p);

#endif
