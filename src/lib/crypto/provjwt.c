/* Unverified provisioning JWT parsing (see provjwt.h). */
#include "choria/provjwt.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "choria/json.h"
#include "choria/jwt.h"
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

/* jwt.NumericDate: any JSON number, seconds, rounded down. */
static ch_status decode_date(const ch_json_field *f, const json_t *v, void *dst, const char *path,
                             ch_error *err)
{
    if (!json_is_number(v))
        return ch_error_set(err, CH_ERR_INVALID,
                            "could not parse NumericData: json: cannot unmarshal %s into Go "
                            "value of type json.Number",
                            ch_json_go_type(v));
    double d = json_number_value(v);
    /* Clamped: a C cast of an out-of-range double is undefined. */
    const double lim = 4.0e18;
    int64_t s = d >= lim ? (int64_t)lim : d <= -lim ? -(int64_t)lim : (int64_t)d;
    if ((double)s > d)
        s--; /* towards minus infinity, as Go's math.Floor; no libm needed */
    *(int64_t *)dst = s;
    return CH_OK;
}

/* jwt.ClaimStrings: a string or an array of strings; not kept. */
static ch_status check_audience(const ch_json_field *f, const json_t *v, void *dst,
                                const char *path, ch_error *err)
{
    if (json_is_string(v))
        return CH_OK;
    if (!json_is_array(v))
        return ch_error_set(err, CH_ERR_INVALID, "invalid type for claim aud");
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_string(json_array_get(v, i)))
            return ch_json_type_error(err, json_array_get(v, i), path, "string");
    return CH_OK;
}

#define STR(key, member) CH_JSON_FIELD(ch_provjwt, key, CH_JSON_STRING, member)
#define BOOL(key, member) CH_JSON_FIELD(ch_provjwt, key, CH_JSON_BOOL, member)
#define DATE(key, member)                                                                          \
    {                                                                                              \
        .name = (key), .kind = CH_JSON_INT, .offset = offsetof(ch_provjwt, member),                \
        .decode = decode_date                                                                      \
    }
static const ch_json_field claim_fields[] = {
    STR("cht", token),
    BOOL("chs", secure),
    STR("chu", urls),
    STR("chsrv", srv_domain),
    BOOL("chpd", provision_default),
    STR("chrd", registration_data),
    STR("chf", facts),
    STR("chusr", nats_user),
    STR("chpwd", nats_password),
    {.name = "extensions",
     .kind = CH_JSON_OBJECT,
     .offset = offsetof(ch_provjwt, extensions),
     .go_type = "tokens.MapClaims"},
    STR("ou", org_unit),
    BOOL("v2", protocol_v2),
    BOOL("update", allow_update),
    STR("purpose", purpose),
    STR("tcs", tcs),
    STR("public_key", public_key),
    DATE("issexp", issuer_expires_at),
    STR("iss", issuer),
    STR("sub", subject),
    {.name = "aud", .kind = CH_JSON_CHECK, .decode = check_audience},
    DATE("exp", expires_at),
    DATE("nbf", not_before),
    DATE("iat", issued_at),
    STR("jti", id),
};
#undef STR
#undef BOOL
#undef DATE
static const ch_json_struct claims_struct = {"tokens.ProvisioningClaims", claim_fields,
                                             sizeof(claim_fields) / sizeof(claim_fields[0])};

/* Decodes the claims object into j. Empty strings become NULL, as the checks below treat an
 * absent and an empty claim alike; extensions get their own reference. */
static ch_status decode_claims(const json_t *claims, ch_provjwt *j, ch_error *err)
{
    ch_error e;
    if (ch_json_decode(claims, &claims_struct, j, &e) != CH_OK) {
        j->extensions = NULL; /* borrowed until the end */
        return ch_error_set(err, e.code, "token is malformed: could not JSON decode claim: %s",
                            e.msg);
    }
    for (size_t i = 0; i < claims_struct.nfields; i++) {
        char **s = (char **)((char *)j + claim_fields[i].offset);
        if (claim_fields[i].kind == CH_JSON_STRING && *s != NULL && (*s)[0] == '\0') {
            free(*s);
            *s = NULL;
        }
    }
    json_incref(j->extensions);
    return CH_OK;
}

/* golang-jwt's ParseUnverified refuses a header without a known alg. */
static ch_status check_alg(const json_t *header, ch_provjwt *j, ch_error *err)
{
    const char *alg = ch_json_get_string(header, "alg");
    bool known = false;
    if (alg == NULL)
        return ch_error_set(err, CH_ERR_INVALID,
                            "token is unverifiable: signing method (alg) is unspecified");
    for (size_t i = 0; i < sizeof(known_algs) / sizeof(known_algs[0]); i++)
        known = known || strcmp(alg, known_algs[i]) == 0;
    if (!known)
        return ch_error_set(err, CH_ERR_INVALID,
                            "token is unverifiable: signing method (alg) is unavailable");
    if ((j->alg = strdup(alg)) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    return CH_OK;
}

/* tokens.IsProvisioningToken, then builddefaults.SetBuildBasedOnJWT. */
static ch_status check_provisioning(ch_provjwt *j, ch_error *err)
{
    bool by_sub = j->subject != NULL && strcmp(j->subject, CH_PROVJWT_PURPOSE) == 0;
    bool by_purpose = j->purpose != NULL && strcmp(j->purpose, CH_PROVJWT_PURPOSE) == 0;
    if (!by_sub && !by_purpose)
        return ch_error_set(err, CH_ERR_INVALID, "token is not a provisioning token");
    if (j->token == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no auth token");
    if (j->urls == NULL && j->srv_domain == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no srv domain or urls");
    if (j->urls != NULL && j->srv_domain != NULL)
        return ch_error_set(err, CH_ERR_INVALID, "both srv domain and URLs supplied");
    if (j->org_unit == NULL && (j->org_unit = strdup("choria")) == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    return CH_OK;
}

ch_status ch_provjwt_from_json(const json_t *header, const json_t *claims, ch_provjwt **out,
                               ch_error *err)
{
    *out = NULL;
    if (!json_is_object(header) && !json_is_null(header))
        return ch_error_set(err, CH_ERR_INVALID,
                            "token is malformed: could not JSON decode header: json: cannot "
                            "unmarshal %s into Go value of type map[string]interface {}",
                            ch_json_go_type(header));
    ch_provjwt *j = calloc(1, sizeof(*j));
    ch_status st = j != NULL ? decode_claims(claims, j, err)
                             : ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    if (st == CH_OK)
        st = check_alg(header, j, err);
    if (st == CH_OK)
        st = check_provisioning(j, err);
    if (st != CH_OK) {
        ch_provjwt_free(j);
        return st;
    }
    *out = j;
    return CH_OK;
}

ch_status ch_provjwt_parse(const char *text, size_t len, ch_provjwt **out, ch_error *err)
{
    ch_jwt_parts parts;
    json_t *header = NULL, *claims = NULL;
    *out = NULL;
    ch_status st = ch_jwt_split(text, len, &parts, err);
    if (st == CH_OK)
        st = ch_jwt_decode_segment(parts.header, parts.header_len, "header", &header, err);
    if (st == CH_OK)
        st = ch_jwt_decode_segment(parts.claims, parts.claims_len, "claim", &claims, err);
    if (st == CH_OK)
        st = ch_provjwt_from_json(header, claims, out, err);
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
