/* Unverified provisioning JWT parsing (see provjwt.h). */
#include "choria/provjwt.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "choria/json.h"
#include "choria/util.h"

/* Signing methods golang-jwt v5 registers; ParseUnverified refuses any other alg. */
static const char *const known_algs[] = {"HS256", "HS384", "HS512", "RS256", "RS384",
                                         "RS512", "ES256", "ES384", "ES512", "PS256",
                                         "PS384", "PS512", "EdDSA", "none"};

void ch_provjwt_free(ch_provjwt *j)
{
    if (j == NULL)
        return;
    free(j->alg);
    free(j->token);
    free(j->urls);
    free(j->srv_domain);
    free(j->registration_data);
    free(j->facts);
    free(j->nats_user);
    free(j->nats_password);
    json_decref(j->extensions);
    free(j->org_unit);
    free(j->purpose);
    free(j->subject);
    free(j->issuer);
    free(j->id);
    free(j->public_key);
    free(j->tcs);
    free(j);
}

typedef enum { F_STR, F_BOOL, F_OBJ, F_DATE, F_AUD } ftype;

typedef struct {
    const char *name;
    ftype type;
    size_t off;
} field;

#define FLD(n, t, m)                                                                               \
    {                                                                                              \
        n, t, offsetof(ch_provjwt, m)                                                              \
    }
static const field fields[] = {
    FLD("cht", F_STR, token),
    FLD("chs", F_BOOL, secure),
    FLD("chu", F_STR, urls),
    FLD("chsrv", F_STR, srv_domain),
    FLD("chpd", F_BOOL, provision_default),
    FLD("chrd", F_STR, registration_data),
    FLD("chf", F_STR, facts),
    FLD("chusr", F_STR, nats_user),
    FLD("chpwd", F_STR, nats_password),
    FLD("extensions", F_OBJ, extensions),
    FLD("ou", F_STR, org_unit),
    FLD("v2", F_BOOL, protocol_v2),
    FLD("update", F_BOOL, allow_update),
    FLD("purpose", F_STR, purpose),
    FLD("tcs", F_STR, tcs),
    FLD("public_key", F_STR, public_key),
    FLD("issexp", F_DATE, issuer_expires_at),
    FLD("iss", F_STR, issuer),
    FLD("sub", F_STR, subject),
    {"aud", F_AUD, 0},
    FLD("exp", F_DATE, expires_at),
    FLD("nbf", F_DATE, not_before),
    FLD("iat", F_DATE, issued_at),
    FLD("jti", F_STR, id),
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

/* Go's json field matching: an exact name first, else a case-insensitive one. */
static const field *find_field(const char *key)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(fields[i].name, key) == 0)
            return &fields[i];
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcasecmp(fields[i].name, key) == 0)
            return &fields[i];
    return NULL;
}

static ch_status type_error(ch_error *err, const json_t *v, const field *f, const char *gotype)
{
    return ch_error_set(err, CH_ERR_INVALID,
                        "token is malformed: could not JSON decode claim: json: cannot unmarshal "
                        "%s into Go struct field ProvisioningClaims.%s of type %s",
                        ch_json_go_type(v), f->name, gotype);
}

static ch_status set_field(ch_provjwt *j, const field *f, json_t *v, ch_error *err)
{
    char *base = (char *)j;
    if (json_is_null(v)) {
        if (f->type == F_OBJ) {
            json_decref(j->extensions);
            j->extensions = NULL;
        }
        return CH_OK; /* Go leaves non-pointer fields alone on null */
    }
    switch (f->type) {
    case F_STR: {
        if (!json_is_string(v))
            return type_error(err, v, f, "string");
        char **dst = (char **)(base + f->off);
        free(*dst);
        *dst = NULL;
        if (json_string_length(v) > 0 && (*dst = strdup(json_string_value(v))) == NULL)
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        return CH_OK;
    }
    case F_BOOL:
        if (!json_is_boolean(v))
            return type_error(err, v, f, "bool");
        *(bool *)(base + f->off) = json_is_true(v);
        return CH_OK;
    case F_OBJ:
        if (!json_is_object(v))
            return type_error(err, v, f, "tokens.MapClaims");
        json_decref(j->extensions);
        j->extensions = json_incref(v);
        return CH_OK;
    case F_DATE: {
        if (!json_is_number(v))
            return ch_error_set(err, CH_ERR_INVALID,
                                "token is malformed: could not JSON decode claim: could not "
                                "parse NumericData: json: cannot unmarshal %s into Go value of "
                                "type json.Number",
                                ch_json_go_type(v));
        double d = json_number_value(v);
        /* Clamped: a C cast of an out-of-range double is undefined. */
        const double lim = 4.0e18;
        int64_t s = d >= lim ? (int64_t)lim : d <= -lim ? -(int64_t)lim : (int64_t)d;
        if ((double)s > d)
            s--; /* towards minus infinity, as Go's math.Floor; no libm needed */
        *(int64_t *)(base + f->off) = s;
        return CH_OK;
    }
    case F_AUD: {
        /* jwt.ClaimStrings: a string or an array of strings; not kept. */
        if (json_is_string(v))
            return CH_OK;
        if (json_is_array(v)) {
            for (size_t i = 0; i < json_array_size(v); i++)
                if (!json_is_string(json_array_get(v, i)))
                    return type_error(err, json_array_get(v, i), f, "string");
            return CH_OK;
        }
        return ch_error_set(err, CH_ERR_INVALID,
                            "token is malformed: could not JSON decode claim: invalid type for "
                            "claim aud");
    }
    }
    return CH_OK;
}

static ch_status decode_segment(const char *seg, size_t len, const char *what, json_t **out,
                                ch_error *err)
{
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    ch_error jerr = {0};
    *out = NULL;
    ch_status st = ch_base64url_decode(seg, len, &raw, &raw_len);
    if (st == CH_ERR_NOMEM)
        return ch_error_set(err, st, "out of memory");
    if (st != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "token is malformed: could not base64 decode %s",
                            what);
    *out = ch_json_parse((const char *)raw, raw_len, CH_PROVJWT_MAX_SIZE, CH_MAX_JSON_DEPTH, &jerr);
    free(raw);
    if (*out == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "token is malformed: could not JSON decode %s: %s",
                            what, jerr.msg);
    return CH_OK;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

ch_status ch_provjwt_parse(const char *text, size_t len, ch_provjwt **out, ch_error *err)
{
    *out = NULL;
    if (text == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "token is malformed: empty token");
    if (len > CH_PROVJWT_MAX_SIZE)
        return ch_error_set(err, CH_ERR_TOO_LARGE,
                            "provisioning JWT of %zu bytes exceeds the limit of %d bytes", len,
                            CH_PROVJWT_MAX_SIZE);
    while (len > 0 && is_ws(text[0])) {
        text++;
        len--;
    }
    while (len > 0 && is_ws(text[len - 1]))
        len--;
    if (memchr(text, '\0', len) != NULL)
        return ch_error_set(err, CH_ERR_INVALID, "token is malformed: NUL byte in token");

    const char *d1 = memchr(text, '.', len);
    const char *d2 = d1 != NULL ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - text)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - text)) != NULL)
        return ch_error_set(err, CH_ERR_INVALID,
                            "token is malformed: token contains an invalid number of segments");

    json_t *header = NULL, *claims = NULL;
    ch_provjwt *j = calloc(1, sizeof(*j));
    ch_status st = CH_OK;
    if (j == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((st = decode_segment(text, (size_t)(d1 - text), "header", &header, err)) != CH_OK)
        goto out;
    if (!json_is_object(header) && !json_is_null(header)) {
        st = ch_error_set(err, CH_ERR_INVALID,
                          "token is malformed: could not JSON decode header: json: cannot "
                          "unmarshal %s into Go value of type map[string]interface {}",
                          ch_json_go_type(header));
        goto out;
    }
    if ((st = decode_segment(d1 + 1, (size_t)(d2 - d1 - 1), "claim", &claims, err)) != CH_OK)
        goto out;
    if (!json_is_object(claims) && !json_is_null(claims)) {
        st = ch_error_set(err, CH_ERR_INVALID,
                          "token is malformed: could not JSON decode claim: json: cannot "
                          "unmarshal %s into Go value of type tokens.ProvisioningClaims",
                          ch_json_go_type(claims));
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(claims, key, v)
    {
        const field *f = find_field(key);
        if (f != NULL && (st = set_field(j, f, v, err)) != CH_OK)
            goto out;
    }

    const char *alg = ch_json_get_string(header, "alg");
    if (alg == NULL) {
        st = ch_error_set(err, CH_ERR_INVALID,
                          "token is unverifiable: signing method (alg) is unspecified");
        goto out;
    }
    bool known = false;
    for (size_t i = 0; i < sizeof(known_algs) / sizeof(known_algs[0]); i++)
        known = known || strcmp(alg, known_algs[i]) == 0;
    if (!known) {
        st = ch_error_set(err, CH_ERR_INVALID,
                          "token is unverifiable: signing method (alg) is unavailable");
        goto out;
    }
    if ((j->alg = strdup(alg)) == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto out;
    }

    /* tokens.IsProvisioningToken, then builddefaults.SetBuildBasedOnJWT. */
    bool by_sub = j->subject != NULL && strcmp(j->subject, CH_PROVJWT_PURPOSE) == 0;
    bool by_purpose = j->purpose != NULL && strcmp(j->purpose, CH_PROVJWT_PURPOSE) == 0;
    if (!by_sub && !by_purpose) {
        st = ch_error_set(err, CH_ERR_INVALID, "token is not a provisioning token");
        goto out;
    }
    if (j->token == NULL) {
        st = ch_error_set(err, CH_ERR_INVALID, "no auth token");
        goto out;
    }
    if (j->urls == NULL && j->srv_domain == NULL) {
        st = ch_error_set(err, CH_ERR_INVALID, "no srv domain or urls");
        goto out;
    }
    if (j->urls != NULL && j->srv_domain != NULL) {
        st = ch_error_set(err, CH_ERR_INVALID, "both srv domain and URLs supplied");
        goto out;
    }
    if (j->org_unit == NULL && (j->org_unit = strdup("choria")) == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto out;
    }
    *out = j;
    j = NULL;
out:
    ch_provjwt_free(j);
    json_decref(header);
    json_decref(claims);
    return st;
}

ch_status ch_provjwt_load_file(const char *path, ch_provjwt **out, ch_error *err)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    ch_status st = ch_read_file(path, CH_PROVJWT_MAX_SIZE, &text, &len, err);
    if (st != CH_OK)
        return st;
    st = ch_provjwt_parse(text, len, out, err);
    free(text);
    return st;
}

bool ch_provjwt_expired(const ch_provjwt *j, int64_t now)
{
    if (j->expires_at != 0 && now >= j->expires_at)
        return true;
    return j->issuer_expires_at != 0 && now >= j->issuer_expires_at;
}
