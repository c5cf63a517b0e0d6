/* The provisioning helper (spec section 8): split its command line shell-style, run it with no
 * shell, write the request JSON on stdin, read the reply JSON from stdout with a size bound and
 * a timeout, keep its stderr for the log, and decode the reply with strict types.
 *
 * No global state: any number of threads may run helpers at once. Every descriptor is
 * O_CLOEXEC so a helper never inherits another helper's pipes. The helper runs in its own
 * process group, which is killed (SIGKILL) on timeout or oversized output, then reaped.
 * SIGPIPE is blocked in the calling thread while writing stdin, so a helper that exits without
 * reading its input does not kill the caller (like Go, that EPIPE is not an error). */
#ifndef CHORIA_HELPER_H
#define CHORIA_HELPER_H

#include <stdatomic.h>
#include <stdint.h>

#include <jansson.h>

#include "choria/common.h"

#define CH_HELPER_DEFAULT_TIMEOUT_MS 10000 /* upstream's 10 s */
#define CH_HELPER_MAX_OUTPUT (1024 * 1024) /* default stdout bound */
#define CH_HELPER_MAX_STDERR (64 * 1024)   /* default stderr kept; the rest is drained */
#define CH_HELPER_MAX_COMMAND 65536        /* bytes of the command line */
#define CH_HELPER_MAX_ARGS 1024

/* ---- command line ------------------------------------------------------------------- */

/* Splits cmd as go-shellquote does: words separated by space, tab or newline; '...' literal;
 * "..." where backslash escapes only $ ` " \ and newline; a backslash outside quotes escapes
 * the next byte; backslash-newline is removed. No variables, globbing or comments. *argv is a
 * NULL-terminated malloc'd array (free with ch_helper_argv_free). Errors: "empty",
 * "Unterminated single-quoted string", "Unterminated double-quoted string",
 * "Unterminated backslash-escape", or a size bound. */
ch_status ch_helper_split(const char *cmd, char ***argv, size_t *argc, ch_error *err);
void ch_helper_argv_free(char **argv);

/* ---- request (stdin) ---------------------------------------------------------------- */

typedef struct {
    const char *csr;        /* PEM */
    const char *public_key; /* PEM */
    const char *ssldir;
} ch_helper_csr;

typedef struct {
    const char *public_key; /* hex */
    const char *directory;
    const char *signature; /* hex */
} ch_helper_ed25519;

typedef struct {
    const char *identity;
    const ch_helper_csr *csr;         /* NULL -> null */
    const ch_helper_ed25519 *ed25519; /* NULL -> null */
    const char *inventory;            /* the inventory reply as JSON text, sent as a string */
    const json_t *jwt;                /* verified provisioning claims object; NULL -> null */
} ch_helper_input;

/* The exact stdin document: {"identity":..,"csr":..,"ed25519_pubkey":..,"inventory":..,
 * "jwt":..} in that order, Go-escaped, all five keys always present (NULL strings are "").
 * malloc'd; NULL on no memory or an unencodable jwt. */
char *ch_helper_input_encode(const ch_helper_input *in, size_t *len);

/* ---- reply (stdout) ----------------------------------------------------------------- */

typedef struct {
    char *key;
    char *value;
} ch_helper_kv;

typedef struct {
    bool defer;
    bool shutdown;
    char *msg; /* never NULL, "" when absent; likewise key..upgrade */
    char *key;
    char *certificate;
    char *ca;
    char *ssldir;
    char *upgrade;
    ch_helper_kv *configuration; /* in the helper's order */
    size_t configuration_count;
    ch_helper_kv *action_policies; /* names end in ".policy" */
    size_t action_policies_count;
    ch_helper_kv *opa_policies; /* names end in ".rego" */
    size_t opa_policies_count;
    json_t *server_claims; /* object with type-checked honoured fields, or NULL */
} ch_helper_reply;

/* Decodes a reply of at most max_size bytes (0 = CH_HELPER_MAX_OUTPUT). Like Go's decoder,
 * keys match case-insensitively, null leaves a field empty and unknown keys are ignored;
 * unlike Go, duplicate keys are refused. A value of the wrong type is an error naming the key
 * (configuration and policy values must be strings; null values are refused too). Policy
 * names must end in ".policy" / ".rego" and contain no '/'. */
ch_status ch_helper_reply_parse(const char *buf, size_t len, size_t max_size, ch_helper_reply **out,
                                ch_error *err);
void ch_helper_reply_free(ch_helper_reply *r);

/* ---- running ------------------------------------------------------------------------ */

typedef struct {
    int64_t timeout_ms; /* <= 0: CH_HELPER_DEFAULT_TIMEOUT_MS */
    size_t max_output;  /* 0: CH_HELPER_MAX_OUTPUT */
    size_t max_stderr;  /* 0: CH_HELPER_MAX_STDERR */
    /* Optional: when it becomes true the helper is killed within 100 ms (daemon stopping). */
    const atomic_bool *cancel;
} ch_helper_opts;

typedef struct {
    char *out; /* stdout, NUL-terminated (NULL when nothing was read) */
    size_t out_len;
    char *errout; /* stderr, NUL-terminated, at most max_stderr bytes kept */
    size_t errout_len;
    bool errout_truncated;
    int exit_code;       /* exit status, or -1 when killed by a signal */
    int term_signal;     /* the signal when exit_code is -1 */
    int64_t duration_ms; /* start to reap */
} ch_helper_result;

/* Runs command (split with ch_helper_split) with input on stdin and collects its output in
 * *res (always initialised; clear with ch_helper_result_clear, also after an error, since
 * stderr is kept for the log). Errors: CH_ERR_INVALID "cannot parse helper command: %s",
 * CH_ERR_IO "cannot start %s: %s", CH_ERR_TIMEOUT "%s timed out after %lld ms",
 * CH_ERR_TOO_LARGE "helper output exceeds %zu bytes", CH_ERR_IO "could not wait for %s:
 * exit status %d" (or "signal: %s"), CH_ERR_EXPIRED "%s cancelled" when opts->cancel became
 * true. */
ch_status ch_helper_exec(const char *command, const char *input, size_t input_len,
                         const ch_helper_opts *opts, ch_helper_result *res, ch_error *err);
void ch_helper_result_clear(ch_helper_result *res);

/* exec + decode: encodes in, runs the helper, refuses empty output ("cannot read %s output:
 * zero bytes received") and decodes the reply ("cannot decode output from %s: %s"). */
ch_status ch_helper_run(const char *command, const ch_helper_input *in, const ch_helper_opts *opts,
                        ch_helper_reply **reply, ch_helper_result *res, ch_error *err);

#endif
