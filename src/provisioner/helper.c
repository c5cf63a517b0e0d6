/* The provisioning helper's contract: the request document on its stdin, the reply on its
 * stdout, and running it through the process module. */
#include "helper.h"

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

void prov_helper_reply_free(prov_helper_reply *r)
{
    if (r == NULL)
        return;
    free(r->msg);
    free(r->key);
    free(r->certificate);
    free(r->ca);
    free(r->ssldir);
    free(r->upgrade);
    prov_helper_kv *maps[] = {r->configuration, r->action_policies, r->opa_policies};
    size_t counts[] = {r->configuration_count, r->action_policies_count, r->opa_policies_count};
    for (int m = 0; m < 3; m++) {
        for (size_t i = 0; i < counts[m]; i++) {
            free(maps[m][i].key);
            free(maps[m][i].value);
        }
        free(maps[m]);
    }
    json_decref(r->server_claims);
    free(r);
}

static ch_status type_err(ch_error *err, const json_t *v, const char *key, const char *type)
{
    return ch_error_set(err, CH_ERR_INVALID,
                        "json: cannot unmarshal %s into Go struct field %s of type %s",
                        ch_json_go_type(v), key, type);
}

static bool nul_free(const json_t *s)
{
    return strlen(json_string_value(s)) == json_string_length(s);
}

static ch_status get_string(const json_t *v, const char *key, char **dst, ch_error *err)
{
    if (json_is_null(v))
        return CH_OK;
    if (!json_is_string(v))
        return type_err(err, v, key, "string");
    if (!nul_free(v))
        return ch_error_set(err, CH_ERR_INVALID, "%s contains a NUL byte", key);
    char *s = strdup(json_string_value(v));
    if (s == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    free(*dst);
    *dst = s;
    return CH_OK;
}

static ch_status get_map(const json_t *v, const char *key, const char *suffix, prov_helper_kv **dst,
                         size_t *count, ch_error *err)
{
    if (json_is_null(v))
        return CH_OK;
    if (!json_is_object(v))
        return type_err(err, v, key, "map[string]string");
    size_t n = json_object_size(v), i = 0;
    prov_helper_kv *kv = calloc(n ? n : 1, sizeof(*kv));
    if (kv == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    ch_status st = CH_OK;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)v, k, val)
    {
        if (!json_is_string(val)) {
            st = ch_error_set(err, CH_ERR_INVALID,
                              "json: cannot unmarshal %s into Go value of type string (%s.%.64s)",
                              ch_json_go_type(val), key, k);
            break;
        }
        size_t kl = strlen(k), sl = suffix != NULL ? strlen(suffix) : 0;
        if (kl == 0 || !nul_free(val) ||
            (suffix != NULL &&
             (kl <= sl || strcmp(k + kl - sl, suffix) != 0 || strchr(k, '/') != NULL))) {
            st = ch_error_set(err, CH_ERR_INVALID, "%s: invalid name or value for %.64s%s%s", key,
                              k, suffix != NULL ? ", names must end in " : "",
                              suffix != NULL ? suffix : "");
            break;
        }
        kv[i].key = strdup(k);
        kv[i].value = strdup(json_string_value(val));
        i++;
        if (kv[i - 1].key == NULL || kv[i - 1].value == NULL) {
            st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
            break;
        }
    }
    if (st != CH_OK) {
        for (size_t j = 0; j < i; j++) {
            free(kv[j].key);
            free(kv[j].value);
        }
        free(kv);
        return st;
    }
    *dst = kv;
    *count = i;
    return CH_OK;
}

static ch_status check_str_list(const json_t *v, const char *key, ch_error *err)
{
    if (json_is_null(v))
        return CH_OK;
    if (!json_is_array(v))
        return type_err(err, v, key, "[]string");
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_string(json_array_get(v, i)) && !json_is_null(json_array_get(v, i)))
            return type_err(err, json_array_get(v, i), key, "string");
    return CH_OK;
}

/* The honoured server claims (spec 8.3) must have the types go-choria decodes them into. */
static ch_status check_claims(const json_t *v, ch_error *err)
{
    if (!json_is_object(v))
        return type_err(err, v, "server_claims", "tokens.ServerClaims");
    const char *k;
    json_t *x;
    ch_status st = CH_OK;
    json_object_foreach((json_t *)v, k, x)
    {
        if (json_is_null(x))
            continue;
        if (strcasecmp(k, "ou") == 0 && !json_is_string(x))
            st = type_err(err, x, "server_claims.ou", "string");
        else if (strcasecmp(k, "exp") == 0 && !json_is_integer(x))
            st = type_err(err, x, "server_claims.exp", "int64");
        else if (strcasecmp(k, "collectives") == 0 || strcasecmp(k, "pub_subjects") == 0)
            st = check_str_list(x, "server_claims list", err);
        else if (strcasecmp(k, "permissions") == 0) {
            if (!json_is_object(x)) {
                st = type_err(err, x, "server_claims.permissions", "tokens.ServerPermissions");
            } else {
                const char *pk;
                json_t *pv;
                json_object_foreach(x, pk, pv)
                {
                    if (st == CH_OK && !json_is_boolean(pv) && !json_is_null(pv))
                        st = type_err(err, pv, "server_claims.permissions", "bool");
                }
            }
        }
        if (st != CH_OK)
            return st;
    }
    return CH_OK;
}

ch_status prov_helper_reply_parse(const char *buf, size_t len, size_t max_size,
                                  prov_helper_reply **out, ch_error *err)
{
    *out = NULL;
    if (max_size == 0)
        max_size = CH_PROCESS_MAX_OUTPUT;
    json_t *doc = ch_json_parse(buf, len, max_size, CH_MAX_JSON_DEPTH, err);
    if (doc == NULL)
        return err != NULL && err->code != CH_OK ? err->code : CH_ERR_INVALID;
    ch_status st = CH_OK;
    prov_helper_reply *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!json_is_object(doc)) {
        st = ch_error_set(err, CH_ERR_INVALID,
                          "json: cannot unmarshal %s into Go value of type "
                          "provisioner.ConfigResponse",
                          ch_json_go_type(doc));
        goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v)
    {
        char **sp = NULL;
        bool *bp = NULL;
        const char *name = NULL;
        if (strcasecmp(k, "defer") == 0)
            bp = &r->defer, name = "defer";
        else if (strcasecmp(k, "shutdown") == 0)
            bp = &r->shutdown, name = "shutdown";
        else if (strcasecmp(k, "msg") == 0)
            sp = &r->msg, name = "msg";
        else if (strcasecmp(k, "key") == 0)
            sp = &r->key, name = "key";
        else if (strcasecmp(k, "certificate") == 0)
            sp = &r->certificate, name = "certificate";
        else if (strcasecmp(k, "ca") == 0)
            sp = &r->ca, name = "ca";
        else if (strcasecmp(k, "ssldir") == 0)
            sp = &r->ssldir, name = "ssldir";
        else if (strcasecmp(k, "upgrade") == 0)
            sp = &r->upgrade, name = "upgrade";
        if (bp != NULL) {
            if (!json_is_boolean(v) && !json_is_null(v))
                st = type_err(err, v, name, "bool");
            else if (json_is_boolean(v))
                *bp = json_is_true(v);
        } else if (sp != NULL) {
            st = get_string(v, name, sp, err);
        } else if (strcasecmp(k, "configuration") == 0) {
            if (r->configuration != NULL)
                st = ch_error_set(err, CH_ERR_INVALID, "configuration given twice");
            else
                st = get_map(v, "configuration", NULL, &r->configuration, &r->configuration_count,
                             err);
        } else if (strcasecmp(k, "action_policies") == 0) {
            if (r->action_policies != NULL)
                st = ch_error_set(err, CH_ERR_INVALID, "action_policies given twice");
            else
                st = get_map(v, "action_policies", ".policy", &r->action_policies,
                             &r->action_policies_count, err);
        } else if (strcasecmp(k, "opa_policies") == 0) {
            if (r->opa_policies != NULL)
                st = ch_error_set(err, CH_ERR_INVALID, "opa_policies given twice");
            else
                st = get_map(v, "opa_policies", ".rego", &r->opa_policies, &r->opa_policies_count,
                             err);
        } else if (strcasecmp(k, "server_claims") == 0 && !json_is_null(v)) {
            st = check_claims(v, err);
            if (st == CH_OK) {
                json_decref(r->server_claims);
                r->server_claims = json_deep_copy(v);
                if (r->server_claims == NULL)
                    st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
            }
        }
        if (st != CH_OK)
            goto done;
    }
    char **strs[] = {&r->msg, &r->key, &r->certificate, &r->ca, &r->ssldir, &r->upgrade};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (*strs[i] == NULL && (*strs[i] = strdup("")) == NULL) {
            st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
            goto done;
        }
done:
    json_decref(doc);
    if (st != CH_OK)
        prov_helper_reply_free(r);
    else
        *out = r;
    return st;
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
