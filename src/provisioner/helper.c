/* The provisioning helper's contract: the request document on its stdin, the reply on its
 * stdout, and running it through the process module. */
#include "helper.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "choria/json.h"
#include "choria/process.h"

/* ---- input ---------------------------------------------------------------------------- */

static void put_str(ch_buf *b, const char *s)
{
    s = s != NULL ? s : "";
    ch_buf_append_json_string(b, s, strlen(s));
}

char *prov_helper_input_encode(const prov_helper_input *in, size_t *len)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"identity\":");
    put_str(&b, in->identity);
    ch_buf_append_str(&b, ",\"csr\":");
    if (in->csr != NULL) {
        ch_buf_append_str(&b, "{\"csr\":");
        put_str(&b, in->csr->csr);
        ch_buf_append_str(&b, ",\"public_key\":");
        put_str(&b, in->csr->public_key);
        ch_buf_append_str(&b, ",\"ssldir\":");
        put_str(&b, in->csr->ssldir);
        ch_buf_append_str(&b, "}");
    } else {
        ch_buf_append_str(&b, "null");
    }
    ch_buf_append_str(&b, ",\"ed25519_pubkey\":");
    if (in->ed25519 != NULL) {
        ch_buf_append_str(&b, "{\"public_key\":");
        put_str(&b, in->ed25519->public_key);
        ch_buf_append_str(&b, ",\"directory\":");
        put_str(&b, in->ed25519->directory);
        ch_buf_append_str(&b, ",\"signature\":");
        put_str(&b, in->ed25519->signature);
        ch_buf_append_str(&b, "}");
    } else {
        ch_buf_append_str(&b, "null");
    }
    ch_buf_append_str(&b, ",\"inventory\":");
    put_str(&b, in->inventory);
    ch_buf_append_str(&b, ",\"jwt\":");
    if (in->jwt != NULL && !json_is_null(in->jwt)) {
        char *j = ch_json_encode(in->jwt, NULL);
        if (j == NULL) {
            ch_buf_free(&b);
            return NULL;
        }
        ch_buf_append_str(&b, j);
        free(j);
    } else {
        ch_buf_append_str(&b, "null");
    }
    ch_buf_append_str(&b, "}");
    return ch_buf_steal(&b, len);
}

/* ---- reply ---------------------------------------------------------------------------- */

static void map_clear(prov_helper_map *m)
{
    for (size_t i = 0; i < m->count; i++) {
        free(m->items[i].key);
        free(m->items[i].value);
    }
    free(m->items);
    memset(m, 0, sizeof(*m));
}

void prov_helper_reply_free(prov_helper_reply *r)
{
    if (r == NULL)
        return;
    char *strs[] = {r->msg, r->key, r->certificate, r->ca, r->ssldir, r->upgrade};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(strs[i]);
    map_clear(&r->configuration);
    map_clear(&r->action_policies);
    map_clear(&r->opa_policies);
    json_decref(r->server_claims);
    free(r);
}

/* A name the policy directory may hold: it ends in suffix and has no '/'. */
static bool policy_name(const char *name, const char *suffix)
{
    size_t kl = strlen(name), sl = strlen(suffix);
    return kl > sl && strcmp(name + kl - sl, suffix) == 0 && strchr(name, '/') == NULL;
}

/* A map[string]string member: every value a string without NUL bytes, every name non-empty
 * (and a policy name when suffix is given). Given twice (two keys Go would both match) it is
 * refused rather than silently merged. */
static ch_status decode_map(const json_t *v, const char *path, const char *suffix,
                            prov_helper_map *m, ch_error *err)
{
    if (m->items != NULL)
        return ch_error_set(err, CH_ERR_INVALID, "%s given twice", path);
    if (!json_is_object(v))
        return ch_json_type_error(err, v, path, "map[string]string");
    m->items = calloc(json_object_size(v) + 1, sizeof(*m->items));
    if (m->items == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)v, k, val)
    {
        if (!json_is_string(val)) {
            char sub[256]; /* Go names the map key in the path too */
            snprintf(sub, sizeof(sub), "%s.%.64s", path, k);
            return ch_json_type_error(err, val, sub, "string");
        }
        if (k[0] == '\0' || strlen(json_string_value(val)) != json_string_length(val) ||
            (suffix != NULL && !policy_name(k, suffix)))
            return ch_error_set(err, CH_ERR_INVALID, "%s: invalid name or value for %.64s%s%s",
                                path, k, suffix != NULL ? ", names must end in " : "",
                                suffix != NULL ? suffix : "");
        prov_helper_kv *kv = &m->items[m->count++];
        if ((kv->key = strdup(k)) == NULL || (kv->value = strdup(json_string_value(val))) == NULL)
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
    return CH_OK;
}

static ch_status decode_configuration(const ch_json_field *f, const json_t *v, void *dst,
                                      const char *path, ch_error *err)
{
    return decode_map(v, path, NULL, dst, err);
}

static ch_status decode_action_policies(const ch_json_field *f, const json_t *v, void *dst,
                                        const char *path, ch_error *err)
{
    return decode_map(v, path, ".policy", dst, err);
}

static ch_status decode_opa_policies(const ch_json_field *f, const json_t *v, void *dst,
                                     const char *path, ch_error *err)
{
    return decode_map(v, path, ".rego", dst, err);
}

/* A []string member: strings or nulls. */
static ch_status check_str_list(const json_t *v, const char *path, ch_error *err)
{
    if (!json_is_array(v))
        return ch_json_type_error(err, v, path, "[]string");
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_string(json_array_get(v, i)) && !json_is_null(json_array_get(v, i)))
            return ch_json_type_error(err, json_array_get(v, i), path, "string");
    return CH_OK;
}

/* tokens.ServerPermissions: booleans (or nulls). */
static ch_status check_permissions(const json_t *v, const char *path, ch_error *err)
{
    if (!json_is_object(v))
        return ch_json_type_error(err, v, path, "tokens.ServerPermissions");
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        if (!json_is_boolean(x) && !json_is_null(x))
            return ch_json_type_error(err, x, path, "bool");
    }
    return CH_OK;
}

/* The honoured server claims (tokens.ServerClaims fields the helper may set) must have the types
 * go-choria decodes them into; the object stays borrowed until the reply is complete. */
static ch_status check_claims(const ch_json_field *f, const json_t *v, void *dst, const char *path,
                              ch_error *err)
{
    if (!json_is_object(v))
        return ch_json_type_error(err, v, path, "tokens.ServerClaims");
    const char *k;
    json_t *x;
    ch_status st = CH_OK;
    json_object_foreach((json_t *)v, k, x)
    {
        if (st != CH_OK || json_is_null(x))
            continue;
        if (strcasecmp(k, "ou") == 0 && !json_is_string(x))
            st = ch_json_type_error(err, x, "ServerClaims.ou", "string");
        else if (strcasecmp(k, "exp") == 0 && !json_is_integer(x))
            st = ch_json_type_error(err, x, "ServerClaims.exp", "int64");
        else if (strcasecmp(k, "collectives") == 0 || strcasecmp(k, "pub_subjects") == 0)
            st = check_str_list(x, "ServerClaims list", err);
        else if (strcasecmp(k, "permissions") == 0)
            st = check_permissions(x, "ServerClaims.permissions", err);
    }
    if (st == CH_OK)
        *(const json_t **)dst = v;
    return st;
}

#define STR(key, member) CH_JSON_FIELD(prov_helper_reply, key, CH_JSON_STRING, member)
#define MAP(key, member, fn)                                                                       \
    {                                                                                              \
        .name = (key), .kind = CH_JSON_STRMAP, .offset = offsetof(prov_helper_reply, member),      \
        .decode = (fn)                                                                             \
    }
static const ch_json_field reply_fields[] = {
    CH_JSON_FIELD(prov_helper_reply, "defer", CH_JSON_BOOL, defer),
    CH_JSON_FIELD(prov_helper_reply, "shutdown", CH_JSON_BOOL, shutdown),
    STR("msg", msg),
    STR("key", key),
    STR("certificate", certificate),
    STR("ca", ca),
    STR("ssldir", ssldir),
    STR("upgrade", upgrade),
    MAP("configuration", configuration, decode_configuration),
    MAP("action_policies", action_policies, decode_action_policies),
    MAP("opa_policies", opa_policies, decode_opa_policies),
    {.name = "server_claims",
     .kind = CH_JSON_OBJECT,
     .offset = offsetof(prov_helper_reply, server_claims),
     .decode = check_claims},
};
#undef STR
#undef MAP
static const ch_json_struct reply_struct = {"provisioner.ConfigResponse", reply_fields,
                                            sizeof(reply_fields) / sizeof(reply_fields[0])};

/* Absent strings are "", and the server claims become the reply's own copy. */
static ch_status complete_reply(prov_helper_reply *r, ch_error *err)
{
    char **strs[] = {&r->msg, &r->key, &r->certificate, &r->ca, &r->ssldir, &r->upgrade};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (*strs[i] == NULL && (*strs[i] = strdup("")) == NULL)
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    if (r->server_claims != NULL && (r->server_claims = json_deep_copy(r->server_claims)) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    return CH_OK;
}

ch_status prov_helper_reply_parse(const char *buf, size_t len, size_t max_size,
                                  prov_helper_reply **out, ch_error *err)
{
    *out = NULL;
    json_t *doc = ch_json_parse(buf, len, max_size > 0 ? max_size : CH_PROCESS_MAX_OUTPUT,
                                CH_MAX_JSON_DEPTH, err);
    if (doc == NULL)
        return err != NULL && err->code != CH_OK ? err->code : CH_ERR_INVALID;
    prov_helper_reply *r = calloc(1, sizeof(*r));
    ch_status st = r != NULL ? CH_OK : ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    if (st == CH_OK && json_is_null(doc)) /* Go's decoder accepts it into a struct; we do not */
        st = ch_json_type_error(err, doc, NULL, reply_struct.go_name);
    if (st == CH_OK)
        st = ch_json_decode(doc, &reply_struct, r, err);
    if (st == CH_OK)
        st = complete_reply(r, err);
    else if (r != NULL)
        r->server_claims = NULL; /* still borrowed from doc */
    json_decref(doc);
    if (st != CH_OK) {
        prov_helper_reply_free(r);
        return st;
    }
    *out = r;
    return CH_OK;
}

/* ---- running -------------------------------------------------------------------------- */

/* Encodes the request and runs the helper; too much output is worded as upstream words it. */
static ch_status helper_exec(char *const *argv, const prov_helper_input *in,
                             const ch_process_run_opts *opts, ch_process_result *res, ch_error *err)
{
    size_t len = 0;
    char *input = prov_helper_input_encode(in, &len);
    if (input == NULL) {
        memset(res, 0, sizeof(*res));
        return ch_error_set(err, CH_ERR_NOMEM, "could not encode the helper input");
    }
    ch_process_run_opts o = opts != NULL ? *opts : (ch_process_run_opts){0};
    if (o.timeout_ms <= 0)
        o.timeout_ms = PROV_HELPER_TIMEOUT_MS;
    ch_error e;
    ch_status st = ch_process_run(argv, input, len, &o, res, &e);
    free(input);
    if (st == CH_ERR_TOO_LARGE) /* upstream's word for it */
        return ch_error_set(err, st, "helper output exceeds %zu bytes",
                            o.max_output > 0 ? o.max_output : CH_PROCESS_MAX_OUTPUT);
    return st == CH_OK ? CH_OK : ch_error_set(err, st, "%s", e.msg);
}

ch_status prov_helper_run(const char *command, const prov_helper_input *in,
                          const ch_process_run_opts *opts, prov_helper_reply **reply,
                          ch_process_result *res, ch_error *err)
{
    *reply = NULL;
    memset(res, 0, sizeof(*res));
    char **argv = NULL;
    ch_error e;
    if (ch_process_split(command, &argv, NULL, &e) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "cannot parse helper command: %s", e.msg);
    ch_status st = helper_exec(argv, in, opts, res, err);
    if (st == CH_OK && res->out_len == 0)
        st = ch_error_set(err, CH_ERR_INVALID, "cannot read %s output: zero bytes received",
                          argv[0]);
    else if (st == CH_OK &&
             (st = prov_helper_reply_parse(
                  res->out, res->out_len, opts != NULL ? opts->max_output : 0, reply, &e)) != CH_OK)
        st = ch_error_set(err, st, "cannot decode output from %s: %s", argv[0], e.msg);
    ch_process_argv_free(argv);
    return st;
}
