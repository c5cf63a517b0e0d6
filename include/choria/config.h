/* Choria `key = value` configuration files (go-choria config/), typed accessors, the
 * resolved client/server settings, client config discovery, and go-choria durations.
 *
 * File format, as go-choria parseConfigContents() reads it, with these decisions:
 * - One `key = value` per line; leading and trailing white space of the line, and white
 *   space around the first '=', is dropped. The value is everything after the first '='
 *   (it may contain '=' and '#'; there are no inline comments).
 * - Blank lines and lines whose first non-space character is '#' or ';' are comments
 *   (go-choria knows only '#').
 * - Later keys override earlier ones. Keys are case-sensitive and must be made of
 *   [A-Za-z0-9_.-] (go-choria takes anything before the '=').
 * - A line with an '=' but nothing after it (`key =`) is skipped, exactly as in go-choria,
 *   so it neither sets an empty value nor clears an earlier one.
 * - A non-comment line without '=', or with an invalid key, is an error naming the source
 *   and line number (go-choria silently ignores such lines; a typo should not go unnoticed).
 * - Bounds: CH_MAX_CONFIG_FILE_SIZE per file, CH_MAX_CONFIG_LINE per line, no NUL bytes.
 *   Lines end in LF or CRLF. A file that fails validation leaves the store unchanged. */
#ifndef CHORIA_CONFIG_H
#define CHORIA_CONFIG_H

#include "choria/common.h"
#include "choria/log.h"

/* ---- the generic store ---- */

/* Ordered key -> value store: iteration follows the first appearance of each key. */
typedef struct ch_config ch_config;

ch_config *ch_config_new(void); /* NULL on no memory */
void ch_config_free(ch_config *cfg);

/* Parses text[0..len) (source names it in errors, e.g. the path) into cfg. The whole text is
 * validated before anything is stored (only running out of memory can leave it half-applied). */
ch_status ch_config_parse(ch_config *cfg, const char *source, const char *text, size_t len,
                          ch_error *err);

/* Reads and parses a file (CH_ERR_NOT_FOUND when it does not exist). */
ch_status ch_config_load_file(ch_config *cfg, const char *path, ch_error *err);

/* Sets one key (same key rules as the file) to a copy of value. */
ch_status ch_config_set(ch_config *cfg, const char *key, const char *value, ch_error *err);

/* The raw value of key, NULL when it is not set. Valid until the key is set again. */
const char *ch_config_get(const ch_config *cfg, const char *key);
bool ch_config_has(const ch_config *cfg, const char *key);

/* Number of keys, and the index-th (0-based, in order of first appearance). */
size_t ch_config_count(const ch_config *cfg);
bool ch_config_entry(const ch_config *cfg, size_t index, const char **key, const char **value);

/* ---- value parsers, usable on their own ---- */

/* go-choria StrToBool: trimmed, case-insensitive 1|yes|true|y|t and 0|no|false|n|f. */
ch_status ch_config_parse_bool(const char *s, bool *out);

/* Go strconv.Atoi on the trimmed value: optional sign, decimal digits, int64 range. */
ch_status ch_config_parse_int(const char *s, int64_t *out);

/* A list of strings, owned by the list. */
typedef struct {
    char **items;
    size_t count;
} ch_config_list;

/* Frees the items and empties the list (NULL is fine). */
void ch_config_list_free(ch_config_list *list);

/* Splits s on ',' trimming every item and dropping empty ones. NULL s gives an empty list. */
ch_status ch_config_split_list(const char *s, ch_config_list *out);

/* go-choria util.ParseDuration into nanoseconds. The string is trimmed; "" is 0. By the last
 * byte: w/W weeks, d/D days, M 30-day months, Y/y 365-day years, with a decimal number
 * (float32 precision, sign and exponent allowed; the hours are truncated to whole hours as
 * Go does); s, S, m, h, H: Go time.ParseDuration ("1h30m", "90s", "500ms", "1.5h", "-2m",
 * units ns us µs μs ms s m h); any other last byte: "invalid time unit". Out-of-range values
 * are CH_ERR_INVALID instead of Go's silent wrap-around. inf, nan and hex floats, which
 * Go's ParseFloat would take, are refused. */
ch_status ch_config_parse_duration(const char *s, int64_t *ns, ch_error *err);

/* Go's time.Duration.String(): "0s", "500ms", "1.5µs", "30s", "1m0s", "1h0m0s", "-1.5s".
 * out must hold CH_DURATION_STR_MAX bytes (the output is truncated otherwise). */
#define CH_DURATION_STR_MAX 33
void ch_config_format_duration(int64_t ns, char *out, size_t out_size);

/* ---- typed accessors: a missing key gives the default; a bad value is CH_ERR_INVALID with
 * the key named in the message. ---- */

const char *ch_config_get_string(const ch_config *cfg, const char *key, const char *def);
ch_status ch_config_get_bool(const ch_config *cfg, const char *key, bool def, bool *out,
                             ch_error *err);
ch_status ch_config_get_int(const ch_config *cfg, const char *key, int64_t def, int64_t *out,
                            ch_error *err);
ch_status ch_config_get_duration(const ch_config *cfg, const char *key, int64_t def_ns,
                                 int64_t *out_ns, ch_error *err);
/* def is a comma list used when the key is missing (NULL: empty list). */
ch_status ch_config_get_list(const ch_config *cfg, const char *key, const char *def,
                             ch_config_list *out, ch_error *err);

/* ---- middleware hosts ---- */

typedef struct {
    char *host;    /* IPv6 addresses without brackets */
    uint16_t port; /* 4222 when the entry had none */
    char *url;     /* "nats://host:port", IPv6 in brackets */
    bool tls;      /* the entry said tls:// */
} ch_config_server;

/* Parses a comma list of `host`, `host:port`, `nats://host:port` or `tls://host:port`
 * (also `[v6addr]:port`). Every URL comes out as nats:// (as go-choria, which forces the
 * scheme; TLS is a matter of the security settings); a tls:// entry is marked tls. A bad entry
 * (other scheme, user info, path, bad host or port) is CH_ERR_INVALID naming it. go-choria requires
 * the port; we default it to 4222. *out is malloc'd (NULL when *count is 0). */
ch_status ch_config_parse_servers(const char *list, ch_config_server **out, size_t *count,
                                  ch_error *err);
void ch_config_servers_free(ch_config_server *servers, size_t count);

/* ---- the resolved client/server settings ---- */

typedef struct {
    char *identity;             /* `identity`, else the host's FQDN (ch_fqdn); ch_identity_valid */
    char *loglevel;             /* `loglevel` as written, default "info" */
    ch_log_level log_level;     /* loglevel parsed: debug, info, warn(ing), error, fatal */
    char *logfile;              /* `logfile`, NULL = stderr */
    ch_config_list collectives; /* `collectives`, default mcollective */
    char *main_collective;      /* `main_collective`, default the first collective */
    ch_config_server *middleware_hosts; /* `plugin.choria.middleware_hosts`, may be empty */
    size_t middleware_count;
    const char **middleware_urls; /* middleware_count URLs (into middleware_hosts) for conn */
    int64_t ttl;                  /* `ttl` seconds, default 60, must be > 0 */
    int64_t discovery_timeout;    /* `discovery_timeout` seconds, default 2, must be > 0 */
    bool legacy_lifecycle_format; /* `plugin.choria.legacy_lifecycle_format`, default false */
    char *security_provider;      /* `plugin.security.provider`, default "puppet" as go-choria */
    /* Project keys (not go-choria): `plugin.choria.security.insecure`, or the provisioner's
     * `choria_insecure`, true = unsigned "insecure" requests. */
    bool insecure;
} ch_config_resolved;

/* Resolves the settings above from cfg (other keys stay reachable through cfg). Collective
 * names must be non-empty and free of '.', '*', '>' and white space. */
ch_status ch_config_resolve(const ch_config *cfg, ch_config_resolved **out, ch_error *err);
void ch_config_resolved_free(ch_config_resolved *r);

/* ---- security material (plugin.security.*) ---- */

/* What go-choria's file, puppet and choria security providers read, resolved to paths. */
typedef struct {
    /* `plugin.security.provider` when the config names one ("file", "puppet", "choria"), else
     * NULL: then this project speaks plain NATS with unsigned requests, as it always has
     * (go-choria's default would be puppet). */
    char *provider;
    /* go-choria's certname (filesec/puppetsec option.go): $MCOLLECTIVE_CERTNAME, else
     * <$USER>.mcollective for a non-root process with $USER set, else the identity. */
    char *certname;
    /* file: plugin.security.file.{certificate,key,ca}; puppet: certs/<certname>.pem,
     * private_keys/<certname>.pem and certs/ca.pem under plugin.choria.ssldir; choria:
     * plugin.security.choria.{certificate,key,ca}. NULL when not set. */
    char *cert_file, *key_file, *ca_file;
    /* plugin.choria.security.certname_whitelist and .privileged_users, with go-choria's
     * defaults (\.mcollective$,\.choria$ and \.privileged.mcollective$,\.privileged.choria$) */
    ch_config_list allowed, privileged;
    /* choria only: plugin.security.choria.token_file (this side's JWT) and .seed_file (its
     * ed25519 seed, 64 hex characters); the Organization Issuers that sign callers' JWTs,
     * plugin.security.issuer.names with each plugin.security.issuer.<name>.public (hex ed25519
     * or a PEM file's path), parallel lists; plugin.security.choria.trusted_signers (hex keys,
     * the older alternative to issuers); plugin.security.choria.sign_replies, default true. */
    char *token_file, *seed_file;
    ch_config_list issuer_names, issuer_keys, trusted_signers;
    bool sign_replies;
} ch_config_security;

/* Resolves the above from cfg and r (the identity). An unknown provider is CH_ERR_INVALID;
 * files are not opened here. env NULL means getenv (tests pass their own lookup). */
ch_status ch_config_security_resolve(const ch_config *cfg, const ch_config_resolved *r,
                                     const char *(*env)(const char *name), ch_config_security *out,
                                     ch_error *err);
void ch_config_security_clear(ch_config_security *s);

/* ---- default client configuration ---- */

/* go-choria UserConfig(): the first existing, non-directory file of $HOME/.choriarc,
 * $HOME/.mcollective, /etc/choria/client.conf, /usr/local/etc/choria/client.conf,
 * /etc/puppetlabs/mcollective/client.cfg. home NULL means getenv("HOME") (empty or unset:
 * the home files are skipped); root (NULL = "") is prepended to the system paths, for tests.
 * Returns a malloc'd path, or NULL when none exists (go-choria then falls back to the last
 * path; callers can report that none was found). */
char *ch_config_find_client_config(const char *root, const char *home);

#endif
