/* The provisioning helper's contract (upstream host/helper.go): the request document the
 * provisioner writes on the helper's stdin, the reply it reads from its stdout with strict
 * types, and one run of the helper through the process module (choria/process.h), which
 * bounds its output, keeps its stderr for the log and kills its process group on timeout or
 * cancel. No global state: any number of workers may run helpers at once. */
#ifndef PROV_HELPER_H
#define PROV_HELPER_H

#include <stdint.h>

#include <jansson.h>

#include "choria/common.h"
#include "choria/process.h"

#define PROV_HELPER_TIMEOUT_MS 10000 /* upstream's 10 s */

/* ---- request (stdin) ---------------------------------------------------------------- */

typedef struct {
    const char *csr;        /* PEM */
    const char *public_key; /* PEM */
    const char *ssldir;
} prov_helper_csr;

typedef struct {
    const char *public_key; /* hex */
    const char *directory;
    const char *signature; /* hex */
} prov_helper_ed25519;

typedef struct {
    const char *identity;
    const prov_helper_csr *csr;         /* NULL -> null */
    const prov_helper_ed25519 *ed25519; /* NULL -> null */
    const char *inventory;              /* the inventory reply as JSON text, sent as a string */
    const json_t *jwt;                  /* verified provisioning claims object; NULL -> null */
} prov_helper_input;

/* The exact stdin document: {"identity":..,"csr":..,"ed25519_pubkey":..,"inventory":..,
 * "jwt":..} in that order, Go-escaped, all five keys always present (NULL strings are "").
 * malloc'd; NULL on no memory or an unencodable jwt. */
char *prov_helper_input_encode(const prov_helper_input *in, size_t *len);

/* ---- reply (stdout) ----------------------------------------------------------------- */

typedef struct {
    char *key;
    char *value;
} prov_helper_kv;

/* A map[string]string of the reply, in the helper's order. */
typedef struct {
    prov_helper_kv *items;
    size_t count;
} prov_helper_map;

typedef struct {
    bool defer;
    bool shutdown;
    char *msg; /* never NULL, "" when absent; likewise key..upgrade */
    char *key;
    char *certificate;
    char *ca;
    char *ssldir;
    char *upgrade;
    prov_helper_map configuration;
    prov_helper_map action_policies; /* names end in ".policy" */
    prov_helper_map opa_policies;    /* names end in ".rego" */
    json_t *server_claims;           /* object with type-checked honoured fields, or NULL */
} prov_helper_reply;

/* Decodes a reply of at most max_size bytes (0 = CH_PROCESS_MAX_OUTPUT). Like Go's decoder,
 * keys match case-insensitively, null leaves a field empty and unknown keys are ignored;
 * unlike Go, duplicate keys are refused. A value of the wrong type is an error naming the key
 * (configuration and policy values must be strings; null values are refused too). Policy
 * names must end in ".policy" / ".rego" and contain no '/'. */
ch_status prov_helper_reply_parse(const char *buf, size_t len, size_t max_size,
                                  prov_helper_reply **out, ch_error *err);
void prov_helper_reply_free(prov_helper_reply *r);

/* ---- running ------------------------------------------------------------------------ */

/* Splits command (ch_process_split), runs it with the encoded input on stdin under opts
 * (timeout_ms <= 0: PROV_HELPER_TIMEOUT_MS), refuses empty output and decodes the reply into
 * *reply (malloc'd, free with prov_helper_reply_free). *res is always initialised and holds
 * stdout and stderr for the log: clear it with ch_process_result_clear, after an error too.
 * Errors: CH_ERR_INVALID "cannot parse helper command: %s", the errors of ch_process_run
 * (with "helper output exceeds %zu bytes" for CH_ERR_TOO_LARGE), CH_ERR_INVALID "cannot read
 * %s output: zero bytes received" and "cannot decode output from %s: %s". */
ch_status prov_helper_run(const char *command, const prov_helper_input *in,
                          const ch_process_run_opts *opts, prov_helper_reply **reply,
                          ch_process_result *res, ch_error *err);

#endif
