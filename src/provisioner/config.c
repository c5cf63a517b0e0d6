/* The provisioner's YAML/JSON configuration: decode as Go does, defaults, validation. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "choria/config.h"
#include "choria/facts.h"
#include "choria/json.h"
#include "choria/util.h"

#define MINUTE_NS (60LL * 1000000000LL)

/* upstream's defaults (config.Load), Go string escapes resolved */
static const char *const DEFAULT_DENY[] = {"\\.privileged.mcollective$", "\\.privileged.choria$",
                                           "\\.mcollective$", "\\.choria$"};

/* ---- decoding: ghodss/yaml turns YAML into JSON, then encoding/json fills config.Config ----
 * ghodss/yaml resolves scalars before the types are known: a number or boolean given for a
 * string field arrives as its text, "yes"/"on" arrive as booleans (YAML 1.1), and an integral
 * real decodes into an int. These rules are the field functions below; the table and Go's
 * messages are json.h's. */

/* A scalar as a string field sees it; NULL for objects and arrays (and on no memory). */
static char *scalar_text(const json_t *v)
{
    char buf[64];
    if (json_is_string(v))
        return strndup(json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v)) /* shortest text that reads back, as Go's 'g', -1 */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof(buf), "%.*g", prec, json_real_value(v));
            if (strtod(buf, NULL) == json_real_value(v))
                break;
        }
    else if (json_is_boolean(v))
        snprintf(buf, sizeof(buf), "%s", json_is_true(v) ? "true" : "false");
    else
        return NULL;
    return strdup(buf);
}

/* A string must not hold NUL bytes: everything downstream is a C string. */
static bool has_nul(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v);
}

static bool yaml11_bool(const char *s, bool *out)
{
    static const char *const T[] = {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", NULL};
    static const char *const N[] = {"n", "N", "no", "No", "NO", "off", "Off", "OFF", NULL};
    for (int i = 0; T[i] != NULL; i++) {
        if (strcmp(s, T[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(s, N[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* An integer, or a real without a fraction (4.0 decodes into an int in Go too). */
static bool integral(const json_t *v, int64_t *out)
{
    double d = json_is_real(v) ? json_real_value(v) : 0;
    if (json_is_integer(v))
        *out = json_integer_value(v);
    else if (json_is_real(v) && d > -9e15 && d < 9e15 && (double)(int64_t)d == d)
        *out = (int64_t)d;
    else
        return false;
    return true;
}

static ch_status decode_int(const ch_json_field *f, const json_t *v, void *dst, const char *path,
                            ch_error *err)
{
    int64_t i;
    if (!integral(v, &i))
        return ch_json_type_error(err, v, path, "int");
    if (i < INT32_MIN || i > INT32_MAX)
        return ch_error_set(err, CH_ERR_INVALID, "%s: %" PRId64 " is out of range", f->name, i);
    *(int *)dst = (int)i;
    return CH_OK;
}

static ch_status decode_int64(const ch_json_field *f, const json_t *v, void *dst, const char *path,
                              ch_error *err)
{
    if (!integral(v, (int64_t *)dst))
        return ch_json_type_error(err, v, path, "int");
    return CH_OK;
}

static ch_status decode_bool(const ch_json_field *f, const json_t *v, void *dst, const char *path,
                             ch_error *err)
{
    if (json_is_boolean(v))
        *(bool *)dst = json_is_true(v);
    else if (!json_is_string(v) || !yaml11_bool(json_string_value(v), (bool *)dst))
        return ch_json_type_error(err, v, path, "bool");
    return CH_OK;
}

static ch_status decode_text(const ch_json_field *f, const json_t *v, void *dst, const char *path,
                             ch_error *err)
{
    if (has_nul(v))
        return ch_error_set(err, CH_ERR_INVALID, "%s: value contains a NUL byte", f->name);
    char *s = scalar_text(v);
    if (s == NULL)
        return json_is_object(v) || json_is_array(v)
                   ? ch_json_type_error(err, v, path, "string")
                   : ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    free(*(char **)dst);
    *(char **)dst = s;
    return CH_OK;
}

/* One cert_deny_list entry. Go turns a null entry into ""; an empty pattern matches
 * everything and would refuse every CSR, so it is refused here instead. */
static ch_status deny_entry(const json_t *e, size_t i, const char *path, char **out, ch_error *err)
{
    if (has_nul(e))
        return ch_error_set(err, CH_ERR_INVALID, "cert_deny_list: entry contains a NUL byte");
    if (json_is_null(e))
        return ch_error_set(err, CH_ERR_INVALID, "cert_deny_list: entry %zu is null", i);
    if (json_is_object(e) || json_is_array(e))
        return ch_json_type_error(err, e, path, "string");
    return (*out = scalar_text(e)) != NULL ? CH_OK
                                           : ch_error_set(err, CH_ERR_NOMEM, "out of memory");
}

static ch_status decode_deny_list(const ch_json_field *f, const json_t *v, void *dst,
                                  const char *path, ch_error *err)
{
    if (!json_is_array(v))
        return ch_json_type_error(err, v, path, "[]string");
    size_t n = json_array_size(v);
    if (n > PROV_CONFIG_MAX_DENY)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "cert_deny_list: more than %d entries",
                            PROV_CONFIG_MAX_DENY);
    ch_config_list list = {.items = calloc(n + 1, sizeof(char *))};
    ch_status st = list.items != NULL ? CH_OK : ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == CH_OK && i < n; i++, list.count++)
        st = deny_entry(json_array_get(v, i), i, path, &list.items[i], err);
    ch_config_list *out = dst;
    ch_config_list_free(st == CH_OK ? out : &list);
    if (st == CH_OK)
        *out = list;
    return st;
}

#define FEATURE(key, member)                                                                       \
    {                                                                                              \
        .name = (key), .kind = CH_JSON_BOOL, .offset = offsetof(prov_config_features, member),     \
        .decode = decode_bool                                                                      \
    }
static const ch_json_field FEATURE_FIELDS[] = {FEATURE("pki", pki), FEATURE("jwt", jwt),
                                               FEATURE("ed25519", ed25519),
                                               FEATURE("upgrades", upgrades)};
#undef FEATURE
static const ch_json_struct FEATURES = {"config.Features", FEATURE_FIELDS,
                                        sizeof(FEATURE_FIELDS) / sizeof(FEATURE_FIELDS[0])};

static ch_status decode_features(const ch_json_field *f, const json_t *v, void *dst,
                                 const char *path, ch_error *err)
{
    if (!json_is_object(v))
        return ch_json_type_error(err, v, path, "config.Features");
    return ch_json_decode_at(v, &FEATURES, dst, path, err);
}

#define F(key, kind_, member, fn)                                                                  \
    {                                                                                              \
        .name = (key), .kind = (kind_), .offset = offsetof(prov_config, member), .decode = (fn)    \
    }
#define STR(key, member) F(key, CH_JSON_STRING, member, decode_text)
#define BOOL(key, member) F(key, CH_JSON_BOOL, member, decode_bool)
static const ch_json_field CONFIG_FIELDS[] = {
    F("workers", CH_JSON_INT, workers, decode_int),
    STR("interval", interval),
    STR("logfile", logfile),
    STR("loglevel", loglevel),
    STR("logformat", logformat),
    STR("monitor_bind", monitor_bind),
    STR("helper", helper),
    STR("helper_mode", helper_mode),
    F("helper_processes", CH_JSON_INT, helper_processes, decode_int),
    STR("helper_timeout", helper_timeout),
    STR("token", token),
    STR("lifecycle_component", lifecycle_component),
    BOOL("choria_insecure", choria_insecure),
    STR("site", site),
    F("monitor_port", CH_JSON_INT, monitor_port, decode_int),
    F("broker_port", CH_JSON_INT, broker_port, decode_int64),
    STR("broker_provisioning_password", broker_provisioning_password),
    F("cert_deny_list", CH_JSON_STRLIST, cert_deny_list, decode_deny_list),
    STR("jwt_verify_cert", jwt_verify_cert),
    STR("jwt_signing_key", jwt_signing_key),
    STR("jwt_signing_token", jwt_signing_token),
    STR("server_jwt_validity", server_jwt_validity),
    STR("rego_policy", rego_policy),
    BOOL("leader_election", leader_election),
    STR("leader_election_api_prefix", leader_election_api_prefix),
    STR("upgrades_repository", upgrades_repository),
    BOOL("upgrades_optional", upgrades_optional),
    F("features", CH_JSON_OBJECT, features, decode_features),
};
#undef F
#undef STR
#undef BOOL
static const ch_json_struct CONFIG = {"config.Config", CONFIG_FIELDS,
                                      sizeof(CONFIG_FIELDS) / sizeof(CONFIG_FIELDS[0])};

static ch_status add_unknown(prov_config *c, const char *prefix, const char *key, ch_error *err)
{
    if (c->unknown_keys.count >= 256) /* enough to warn about; the rest are dropped */
        return CH_OK;
    char **n = realloc(c->unknown_keys.items, (c->unknown_keys.count + 1) * sizeof(*n));
    if (n == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    c->unknown_keys.items = n;
    if (asprintf(&n[c->unknown_keys.count], "%s%s", prefix, key) < 0)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    c->unknown_keys.count++;
    return CH_OK;
}

/* The keys no field reads, top level and under features, for the caller to warn about. */
static ch_status collect_unknown(prov_config *c, const json_t *doc, ch_error *err)
{
    const char *k;
    json_t *v;
    ch_status st = CH_OK;
    json_object_foreach((json_t *)doc, k, v)
    {
        const ch_json_field *f = ch_json_field_find(&CONFIG, k);
        if (st == CH_OK && f == NULL)
            st = add_unknown(c, "", k, err);
        if (st != CH_OK || f == NULL || f->decode != decode_features || !json_is_object(v))
            continue;
        const char *fk;
        json_t *fv;
        json_object_foreach(v, fk, fv)
        {
            if (st == CH_OK && ch_json_field_find(&FEATURES, fk) == NULL)
                st = add_unknown(c, "features.", fk, err);
        }
    }
    return st;
}

/* Decodes doc into c; Go's type errors are prefixed as ghodss/yaml prefixes them. */
static ch_status decode_config(prov_config *c, const json_t *doc, const char *name, ch_error *err)
{
    ch_error e;
    ch_status st = ch_json_decode(doc, &CONFIG, c, &e);
    if (st != CH_OK && strncmp(e.msg, "json: ", 6) == 0)
        return ch_error_set(err, st, "could not parse config file %s as YAML: %s", name, e.msg);
    if (st != CH_OK)
        return ch_error_set(err, st, "%s", e.msg);
    return collect_unknown(c, doc, err);
}

static ch_status dup_default(char **dst, const char *s, ch_error *err)
{
    free(*dst);
    *dst = strdup(s);
    return *dst != NULL ? CH_OK : ch_error_set(err, CH_ERR_NOMEM, "out of memory");
}

static ch_status set_default_deny(prov_config *c, ch_error *err)
{
    size_t n = sizeof(DEFAULT_DENY) / sizeof(DEFAULT_DENY[0]);
    ch_config_list_free(&c->cert_deny_list);
    c->cert_deny_list.items = calloc(n + 1, sizeof(char *));
    if (c->cert_deny_list.items == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if ((c->cert_deny_list.items[i] = strdup(DEFAULT_DENY[i])) == NULL)
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        c->cert_deny_list.count++;
    }
    return CH_OK;
}

static int cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > PROV_CONFIG_MAX_WORKERS ? PROV_CONFIG_MAX_WORKERS : (int)n;
}

/* Empty strings for every string key so callers never see NULL. */
static ch_status init_defaults(prov_config *c, ch_error *err)
{
    char **strs[] = {&c->interval,
                     &c->logfile,
                     &c->loglevel,
                     &c->logformat,
                     &c->monitor_bind,
                     &c->leader_election_api_prefix,
                     &c->helper,
                     &c->helper_mode,
                     &c->helper_timeout,
                     &c->token,
                     &c->lifecycle_component,
                     &c->site,
                     &c->broker_provisioning_password,
                     &c->jwt_verify_cert,
                     &c->jwt_signing_key,
                     &c->jwt_signing_token,
                     &c->server_jwt_validity,
                     &c->rego_policy,
                     &c->upgrades_repository};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (dup_default(strs[i], "", err) != CH_OK)
            return err != NULL ? err->code : CH_ERR_NOMEM;
    if (dup_default(&c->interval, "1m", err) != CH_OK ||
        dup_default(&c->logfile, "stderr", err) != CH_OK ||
        dup_default(&c->loglevel, "info", err) != CH_OK ||
        dup_default(&c->logformat, "text", err) != CH_OK ||
        dup_default(&c->leader_election_api_prefix, "choria.streams", err) != CH_OK ||
        dup_default(&c->lifecycle_component, PROV_CONFIG_DEFAULT_COMPONENT, err) != CH_OK ||
        dup_default(&c->server_jwt_validity, "1y", err) != CH_OK ||
        dup_default(&c->helper_mode, "exec", err) != CH_OK ||
        dup_default(&c->helper_timeout, "10s", err) != CH_OK)
        return CH_ERR_NOMEM;
    return CH_OK;
}

/* helper_mode, helper_processes and helper_timeout (after workers is resolved). */
static ch_status validate_helper(prov_config *c, ch_error *err)
{
    ch_error e;
    if (c->helper_mode[0] == '\0' && dup_default(&c->helper_mode, "exec", err) != CH_OK)
        return CH_ERR_NOMEM;
    if (strcasecmp(c->helper_mode, "exec") != 0 && strcasecmp(c->helper_mode, "persistent") != 0)
        return ch_error_set(err, CH_ERR_INVALID,
                            "invalid helper_mode %s: must be exec or persistent", c->helper_mode);
    c->helper_persistent = strcasecmp(c->helper_mode, "persistent") == 0;
    if (c->helper_processes < 0 || c->helper_processes > PROV_CONFIG_MAX_WORKERS)
        return ch_error_set(err, CH_ERR_INVALID,
                            "helper_processes must be between 0 and %d, got %d",
                            PROV_CONFIG_MAX_WORKERS, c->helper_processes);
    if (c->helper_processes == 0)
        c->helper_processes = c->workers;
    if (c->helper_timeout[0] == '\0' && dup_default(&c->helper_timeout, "10s", err) != CH_OK)
        return CH_ERR_NOMEM;
    if (ch_config_parse_duration(c->helper_timeout, &c->helper_timeout_ns, &e) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "invalid helper_timeout duration: %s", e.msg);
    if (c->helper_timeout_ns < 1000000 || c->helper_timeout_ns > PROV_CONFIG_MAX_HELPER_TIMEOUT_NS)
        return ch_error_set(err, CH_ERR_INVALID,
                            "helper_timeout must be between 1ms and 1h, got %s", c->helper_timeout);
    return CH_OK;
}

/* Validation in upstream's order (config/config.go Load), with the range checks this port adds. */
static ch_status validate(prov_config *c, ch_error *err)
{
    ch_error e;
    if (c->lifecycle_component[0] == '\0' &&
        dup_default(&c->lifecycle_component, PROV_CONFIG_DEFAULT_COMPONENT, err) != CH_OK)
        return CH_ERR_NOMEM;
    /* upstream refuses . > *; whitespace would break the subject just the same */
    if (strpbrk(c->lifecycle_component, ".>* \t\r\n") != NULL ||
        strlen(c->lifecycle_component) > 128)
        return ch_error_set(err, CH_ERR_INVALID, "invalid lifecycle component: %s",
                            c->lifecycle_component);
    if (c->workers < 0 || c->workers > PROV_CONFIG_MAX_WORKERS)
        return ch_error_set(err, CH_ERR_INVALID, "workers must be between 0 and %d, got %d",
                            PROV_CONFIG_MAX_WORKERS, c->workers);
    if (c->workers == 0)
        c->workers = cpu_count();
    ch_status hs = validate_helper(c, err);
    if (hs != CH_OK)
        return hs;
    if (c->cert_deny_list.count == 0 && set_default_deny(c, err) != CH_OK)
        return CH_ERR_NOMEM;
    if (c->features.pki && c->features.ed25519)
        return ch_error_set(err, CH_ERR_INVALID, "can only enable one of pki or ed25519 features");
    if (c->features.ed25519)
        c->features.jwt = true;
    if (ch_config_parse_duration(c->interval, &c->interval_ns, &e) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "invalid interval duration: %s", e.msg);
    if (c->server_jwt_validity[0] == '\0' &&
        dup_default(&c->server_jwt_validity, "1y", err) != CH_OK)
        return CH_ERR_NOMEM;
    if (ch_config_parse_duration(c->server_jwt_validity, &c->server_jwt_validity_ns, &e) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "invalid server jwt validity duration: %s", e.msg);
    if (c->server_jwt_validity_ns <= 0)
        return ch_error_set(err, CH_ERR_INVALID,
                            "invalid server jwt validity duration: %s is not positive",
                            c->server_jwt_validity);
    if (c->interval_ns < MINUTE_NS)
        return ch_error_set(err, CH_ERR_INVALID,
                            "interval is too small, minimum is 1 minute.  Valid example values "
                            "are 10m or 10h");
    static const char *const LEVELS[] = {"debug", "info", "warn", "error", "fatal"};
    bool ok = c->loglevel[0] == '\0';
    for (size_t i = 0; !ok && i < sizeof(LEVELS) / sizeof(LEVELS[0]); i++)
        ok = strcasecmp(c->loglevel, LEVELS[i]) == 0;
    if (!ok)
        return ch_error_set(err, CH_ERR_INVALID,
                            "invalid loglevel %s: must be one of debug, info, warn, error, fatal",
                            c->loglevel);
    if (c->loglevel[0] == '\0' && dup_default(&c->loglevel, "info", err) != CH_OK)
        return CH_ERR_NOMEM;
    if (c->logfile[0] == '\0' && dup_default(&c->logfile, "stderr", err) != CH_OK)
        return CH_ERR_NOMEM;
    if (c->logformat[0] == '\0' && dup_default(&c->logformat, "text", err) != CH_OK)
        return CH_ERR_NOMEM;
    if (strcasecmp(c->logformat, "text") != 0 && strcasecmp(c->logformat, "json") != 0)
        return ch_error_set(err, CH_ERR_INVALID, "invalid logformat %s: must be text or json",
                            c->logformat);
    if (c->monitor_port < 0 || c->monitor_port > 65535)
        return ch_error_set(err, CH_ERR_INVALID, "monitor_port must be between 0 and 65535, got %d",
                            c->monitor_port);
    return CH_OK;
}

ch_status prov_config_new_default(prov_config **out, ch_error *err)
{
    *out = NULL;
    prov_config *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    ch_status st = init_defaults(c, err);
    if (st == CH_OK)
        st = validate(c, err);
    if (st != CH_OK) {
        prov_config_free(c);
        return st;
    }
    *out = c;
    return CH_OK;
}

/* Config errors are one line: values quoted into a message may hold newlines (a multi-line
 * YAML scalar), so control bytes are escaped Go-style. */
static void one_line(ch_error *err)
{
    if (err == NULL)
        return;
    char out[sizeof(err->msg)];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)err->msg; *p != '\0'; p++) {
        char esc[5] = {(char)*p, '\0'};
        if (*p == '\n')
            snprintf(esc, sizeof(esc), "\\n");
        else if (*p == '\r')
            snprintf(esc, sizeof(esc), "\\r");
        else if (*p == '\t')
            snprintf(esc, sizeof(esc), "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            snprintf(esc, sizeof(esc), "\\x%02x", *p);
        size_t n = strlen(esc);
        if (o + n >= sizeof(out))
            break;
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o] = '\0';
    memcpy(err->msg, out, o + 1);
}

ch_status prov_config_parse(const char *text, size_t len, const char *name, prov_config **out,
                            ch_error *err)
{
    *out = NULL;
    if (name == NULL)
        name = "config";
    if (text == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "file %s could not be parsed: no data", name);
    if (len > CH_MAX_CONFIG_FILE_SIZE)
        return ch_error_set(err, CH_ERR_TOO_LARGE,
                            "config file could not be read: %s is larger than %d bytes", name,
                            CH_MAX_CONFIG_FILE_SIZE);
    ch_error e;
    json_t *doc = NULL;
    prov_config *c = calloc(1, sizeof(*c));
    ch_status st = c != NULL ? init_defaults(c, err) : ch_error_set(err, CH_ERR_NOMEM, "no memory");
    if (st != CH_OK)
        goto out;
    /* JSON is YAML, so one parser serves both; facts.c screens out the bytes that hang
     * libfyaml and converts scalars as go-yaml resolves them. */
    st = ch_facts_parse(text, len, true, &doc, &e);
    if (st != CH_OK) {
        if (st == CH_ERR_NOMEM)
            ch_error_set(err, st, "out of memory");
        else if (strstr(e.msg, "cannot unmarshal") != NULL)
            ch_error_set(err, st, "could not parse config file %s as YAML: %s", name, e.msg);
        else
            ch_error_set(err, st, "file %s could not be parsed: %s", name, e.msg);
        goto out;
    }
    st = decode_config(c, doc, name, err);
    if (st != CH_OK)
        goto out;
    st = validate(c, err);
out:
    json_decref(doc);
    if (st != CH_OK) {
        prov_config_free(c);
        one_line(err);
    } else {
        *out = c;
    }
    return st;
}

ch_status prov_config_load(const char *path, prov_config **out, ch_error *err)
{
    *out = NULL;
    struct stat sb;
    if (path == NULL || stat(path, &sb) != 0) {
        ch_error_set(err, CH_ERR_NOT_FOUND, "file %s not found", path ? path : "(null)");
        one_line(err);
        return CH_ERR_NOT_FOUND;
    }
    char *text = NULL;
    size_t len = 0;
    ch_error e;
    if (ch_read_file(path, CH_MAX_CONFIG_FILE_SIZE, &text, &len, &e) != CH_OK) {
        ch_status st = ch_error_set(err, e.code, "config file could not be read: %s", e.msg);
        one_line(err);
        return st;
    }
    ch_status st = prov_config_parse(text, len, path, out, err);
    free(text);
    return st;
}

void prov_config_free(prov_config *c)
{
    if (c == NULL)
        return;
    char *strs[] = {c->interval,
                    c->logfile,
                    c->loglevel,
                    c->logformat,
                    c->monitor_bind,
                    c->leader_election_api_prefix,
                    c->helper,
                    c->helper_mode,
                    c->helper_timeout,
                    c->token,
                    c->lifecycle_component,
                    c->site,
                    c->broker_provisioning_password,
                    c->jwt_verify_cert,
                    c->jwt_signing_key,
                    c->jwt_signing_token,
                    c->server_jwt_validity,
                    c->rego_policy,
                    c->upgrades_repository};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(strs[i]);
    ch_config_list_free(&c->cert_deny_list);
    ch_config_list_free(&c->unknown_keys);
    free(c);
}
