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

typedef enum { T_INT, T_STR, T_BOOL, T_STRLIST, T_FEATURES } ftype;

typedef struct {
    const char *key;
    ftype type;
    size_t off; /* offsetof into prov_config, or into prov_config_features */
} field;

#define F(k, t, m)                                                                                 \
    {                                                                                              \
        k, t, offsetof(prov_config, m)                                                             \
    }
static const field FIELDS[] = {
    F("workers", T_INT, workers),
    F("interval", T_STR, interval),
    F("logfile", T_STR, logfile),
    F("loglevel", T_STR, loglevel),
    F("logformat", T_STR, logformat),
    F("monitor_bind", T_STR, monitor_bind),
    F("helper", T_STR, helper),
    F("token", T_STR, token),
    F("lifecycle_component", T_STR, lifecycle_component),
    F("choria_insecure", T_BOOL, choria_insecure),
    F("site", T_STR, site),
    F("monitor_port", T_INT, monitor_port),
    F("broker_port", T_INT, broker_port),
    F("broker_provisioning_password", T_STR, broker_provisioning_password),
    F("cert_deny_list", T_STRLIST, cert_deny_list),
    F("jwt_verify_cert", T_STR, jwt_verify_cert),
    F("jwt_signing_key", T_STR, jwt_signing_key),
    F("jwt_signing_token", T_STR, jwt_signing_token),
    F("server_jwt_validity", T_STR, server_jwt_validity),
    F("rego_policy", T_STR, rego_policy),
    F("leader_election", T_BOOL, leader_election),
    F("leader_election_api_prefix", T_STR, leader_election_api_prefix),
    F("upgrades_repository", T_STR, upgrades_repository),
    F("upgrades_optional", T_BOOL, upgrades_optional),
    F("features", T_FEATURES, features),
};
#undef F

#define FF(k, m)                                                                                   \
    {                                                                                              \
        k, T_BOOL, offsetof(prov_config_features, m)                                               \
    }
static const field FEATURES[] = {FF("pki", pki), FF("jwt", jwt), FF("ed25519", ed25519),
                                 FF("upgrades", upgrades)};
#undef FF

static const char *go_type(ftype t)
{
    switch (t) {
    case T_INT:
        return "int";
    case T_STR:
        return "string";
    case T_BOOL:
        return "bool";
    case T_STRLIST:
        return "[]string";
    default:
        return "config.Features";
    }
}

/* Go's decoder: an exact key match wins, else a case-insensitive one. */
static const field *find(const field *fs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(fs[i].key, key) == 0)
            return &fs[i];
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(fs[i].key, key) == 0)
            return &fs[i];
    return NULL;
}

static ch_status type_error(ch_error *err, const char *name, const json_t *v, const char *path,
                            ftype t)
{
    return ch_error_set(err, CH_ERR_INVALID,
                        "could not parse config file %s as YAML: json: cannot unmarshal %s into "
                        "Go struct field Config.%s of type %s",
                        name, ch_json_go_type(v), path, go_type(t));
}

/* A scalar as a string field sees it: ghodss/yaml turns numbers and booleans given for a
 * string into their text. NULL for objects and arrays (and on no memory). */
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

/* A string field must not hold NUL bytes: everything downstream is a C string. */
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

static void free_list(char **items, size_t n)
{
    for (size_t i = 0; items != NULL && i < n; i++)
        free(items[i]);
    free(items);
}

static ch_status add_unknown(prov_config *c, const char *prefix, const char *key, ch_error *err)
{
    if (c->unknown_count >= 256) /* enough to warn about; the rest are dropped */
        return CH_OK;
    char **n = realloc(c->unknown_keys, (c->unknown_count + 1) * sizeof(*n));
    if (n == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    c->unknown_keys = n;
    size_t len = strlen(prefix) + strlen(key) + 1;
    n[c->unknown_count] = malloc(len);
    if (n[c->unknown_count] == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    snprintf(n[c->unknown_count++], len, "%s%s", prefix, key);
    return CH_OK;
}

static ch_status set_field(prov_config *c, void *base, const field *f, const char *path,
                           const json_t *v, const char *name, ch_error *err)
{
    if (json_is_null(v)) /* Go leaves the field alone */
        return CH_OK;
    char *p = (char *)base + f->off;
    switch (f->type) {
    case T_INT: {
        /* integral reals (4.0) decode into an int in Go too; no libm in libchoria's link */
        double d = json_is_real(v) ? json_real_value(v) : 0;
        if (!json_is_integer(v) &&
            !(json_is_real(v) && d > -9e15 && d < 9e15 && (double)(int64_t)d == d))
            return type_error(err, name, v, path, f->type);
        int64_t i = json_is_integer(v) ? json_integer_value(v) : (int64_t)d;
        if (f->off == offsetof(prov_config, broker_port)) {
            *(int64_t *)(void *)p = i;
        } else {
            if (i < INT32_MIN || i > INT32_MAX)
                return ch_error_set(err, CH_ERR_INVALID, "%s: %" PRId64 " is out of range", path,
                                    i);
            *(int *)(void *)p = (int)i;
        }
        return CH_OK;
    }
    case T_BOOL: {
        bool b;
        if (json_is_boolean(v))
            b = json_is_true(v);
        else if (!json_is_string(v) || !yaml11_bool(json_string_value(v), &b))
            return type_error(err, name, v, path, f->type);
        *(bool *)(void *)p = b;
        return CH_OK;
    }
    case T_STR: {
        if (has_nul(v))
            return ch_error_set(err, CH_ERR_INVALID, "%s: value contains a NUL byte", path);
        char *s = scalar_text(v);
        if (s == NULL)
            return json_is_object(v) || json_is_array(v)
                       ? type_error(err, name, v, path, f->type)
                       : ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        free(*(char **)(void *)p);
        *(char **)(void *)p = s;
        return CH_OK;
    }
    case T_STRLIST: {
        if (!json_is_array(v))
            return type_error(err, name, v, path, f->type);
        size_t n = json_array_size(v);
        if (n > PROV_CONFIG_MAX_DENY)
            return ch_error_set(err, CH_ERR_TOO_LARGE, "%s: more than %d entries", path,
                                PROV_CONFIG_MAX_DENY);
        char **items = calloc(n ? n : 1, sizeof(*items));
        if (items == NULL)
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(v, i);
            if (has_nul(e) || json_is_null(e) || (items[i] = scalar_text(e)) == NULL) {
                free_list(items, n);
                if (has_nul(e))
                    return ch_error_set(err, CH_ERR_INVALID, "%s: entry contains a NUL byte", path);
                /* Go turns a null entry into ""; an empty pattern matches everything and
                 * would refuse every CSR, so it is refused here instead */
                if (json_is_null(e))
                    return ch_error_set(err, CH_ERR_INVALID, "%s: entry %zu is null", path, i);
                return json_is_object(e) || json_is_array(e)
                           ? ch_error_set(err, CH_ERR_INVALID,
                                          "could not parse config file %s as YAML: json: cannot "
                                          "unmarshal %s into Go struct field Config.%s of type "
                                          "string",
                                          name, ch_json_go_type(e), path)
                           : ch_error_set(err, CH_ERR_NOMEM, "out of memory");
            }
        }
        free_list(c->cert_deny_list, c->cert_deny_count);
        c->cert_deny_list = items;
        c->cert_deny_count = n;
        return CH_OK;
    }
    case T_FEATURES: {
        if (!json_is_object(v))
            return type_error(err, name, v, path, f->type);
        const char *k;
        json_t *fv;
        json_object_foreach((json_t *)v, k, fv)
        {
            const field *ff = find(FEATURES, sizeof(FEATURES) / sizeof(FEATURES[0]), k);
            char sub[128];
            snprintf(sub, sizeof(sub), "features.%.100s", ff != NULL ? ff->key : k);
            ch_status st = ff != NULL ? set_field(c, p, ff, sub, fv, name, err)
                                      : add_unknown(c, "features.", k, err);
            if (st != CH_OK)
                return st;
        }
        return CH_OK;
    }
    }
    return ch_error_set(err, CH_ERR_INTERNAL, "unknown field type");
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
    free_list(c->cert_deny_list, c->cert_deny_count);
    c->cert_deny_count = 0;
    c->cert_deny_list = calloc(n, sizeof(char *));
    if (c->cert_deny_list == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if ((c->cert_deny_list[i] = strdup(DEFAULT_DENY[i])) == NULL)
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        c->cert_deny_count++;
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
        dup_default(&c->server_jwt_validity, "1y", err) != CH_OK)
        return CH_ERR_NOMEM;
    return CH_OK;
}

/* Validation in upstream's order (spec 3.2), with the range checks this port adds. */
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
    if (c->cert_deny_count == 0 && set_default_deny(c, err) != CH_OK)
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
        goto done;
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
        goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v)
    {
        const field *f = find(FIELDS, sizeof(FIELDS) / sizeof(FIELDS[0]), k);
        st = f != NULL ? set_field(c, c, f, f->key, v, name, err) : add_unknown(c, "", k, err);
        if (st != CH_OK)
            goto done;
    }
    st = validate(c, err);
done:
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
    free_list(c->cert_deny_list, c->cert_deny_count);
    free_list(c->unknown_keys, c->unknown_count);
    free(c);
}
