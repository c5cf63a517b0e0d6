/* `choria jwt provisioning FILE SIGNING-KEY`: writes a signed provisioning JWT, as go-choria's
 * cmd/jwt_provisioner.go does. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "choria/config.h"
#include "choria/pki.h"
#include "choria/jwt.h"
#include "choria/util.h"
#include "cli.h"

#define MAX_URLS 64
#define MAX_KEY_FILE (256 * 1024)

typedef struct {
    const char *file, *signing_key;
    const char *token, *srv, *registration, *facts, *username, *password, *extensions, *org;
    const char *validity;
    const char *urls[MAX_URLS];
    int url_count;
    bool insecure, provision_default, v2, upgrade;
} jwt_opts;

static int parse_args(int argc, char **argv, jwt_opts *o)
{
    static const struct option longopts[] = {
        {"token", required_argument, NULL, 't'},
        {"urls", required_argument, NULL, 'u'},
        {"srv", required_argument, NULL, 's'},
        {"default", no_argument, NULL, 'D'},
        {"insecure", no_argument, NULL, 'i'},
        {"no-insecure", no_argument, NULL, 'I'},
        {"registration", required_argument, NULL, 'r'},
        {"facts", required_argument, NULL, 'f'},
        {"username", required_argument, NULL, 'U'},
        {"password", required_argument, NULL, 'P'},
        {"extensions", required_argument, NULL, 'e'},
        {"org", required_argument, NULL, 'o'},
        {"protocol-v2", no_argument, NULL, '2'},
        {"upgrade", no_argument, NULL, 'g'},
        {"update", no_argument, NULL, 'g'},
        {"validity", required_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->insecure = true;
    o->org = "choria";
    o->validity = "1y";
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            o->token = optarg;
            break;
        case 'u':
            if (o->url_count == MAX_URLS) {
                fprintf(stderr, "choria: at most %d --urls\n", MAX_URLS);
                return 1;
            }
            o->urls[o->url_count++] = optarg;
            break;
        case 's':
            o->srv = optarg;
            break;
        case 'D':
            o->provision_default = true;
            break;
        case 'i':
            o->insecure = true;
            break;
        case 'I':
            o->insecure = false;
            break;
        case 'r':
            o->registration = optarg;
            break;
        case 'f':
            o->facts = optarg;
            break;
        case 'U':
            o->username = optarg;
            break;
        case 'P':
            o->password = optarg;
            break;
        case 'e':
            o->extensions = optarg;
            break;
        case 'o':
            o->org = optarg;
            break;
        case '2':
            o->v2 = true;
            break;
        case 'g':
            o->upgrade = true;
            break;
        case 'v':
            o->validity = optarg;
            break;
        default:
            fprintf(stderr, "choria: invalid flag, try --help\n");
            return 1;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "choria: jwt provisioning needs FILE and SIGNING-KEY, try --help\n");
        return 1;
    }
    o->file = argv[optind];
    o->signing_key = argv[optind + 1];
    return 0;
}

static void set_opt_string(json_t *claims, const char *key, const char *value)
{
    if (value != NULL && value[0] != '\0')
        json_object_set_new(claims, key, json_string(value));
}

/* The claims in go-choria's ProvisioningClaims order. */
static json_t *build_claims(const jwt_opts *o, int64_t validity_s, ch_error *err)
{
    char urls[4096] = "";
    for (int i = 0; i < o->url_count; i++)
        snprintf(urls + strlen(urls), sizeof(urls) - strlen(urls), "%s%s", i > 0 ? "," : "",
                 o->urls[i]);
    json_t *ext = NULL;
    if (o->extensions != NULL) {
        ext = json_loads(o->extensions, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(ext)) {
            json_decref(ext);
            ch_error_set(err, CH_ERR_INVALID, "--extensions must be a JSON object");
            return NULL;
        }
    }
    char jti[33];
    ch_request_id(jti);
    int64_t now = ch_now_unix();
    json_t *c = json_object();
    json_object_set_new(c, "cht", json_string(o->token));
    json_object_set_new(c, "chs", json_boolean(!o->insecure));
    set_opt_string(c, "chu", urls);
    set_opt_string(c, "chsrv", o->srv);
    json_object_set_new(c, "chpd", json_boolean(o->provision_default));
    set_opt_string(c, "chrd", o->registration);
    set_opt_string(c, "chf", o->facts);
    set_opt_string(c, "chusr", o->username);
    set_opt_string(c, "chpwd", o->password);
    json_object_set_new(c, "extensions", ext != NULL ? ext : json_null());
    json_object_set_new(c, "ou", json_string(o->org));
    if (o->v2)
        json_object_set_new(c, "v2", json_true());
    if (o->upgrade)
        json_object_set_new(c, "update", json_true());
    json_object_set_new(c, "purpose", json_string("choria_provisioning"));
    json_object_set_new(c, "iss", json_string("Choria C " CH_VERSION));
    json_object_set_new(c, "sub", json_string("choria_provisioning"));
    json_object_set_new(c, "exp", json_integer(now + validity_s));
    json_object_set_new(c, "nbf", json_integer(now));
    json_object_set_new(c, "iat", json_integer(now));
    json_object_set_new(c, "jti", json_string(jti));
    return c;
}

/* RS256 for an RSA PEM key, EdDSA for a hex ed25519 seed (go-choria's two key kinds). */
/* The token carries the provisioning token and the broker password: 0600 from the start,
 * also when the file existed with a wider mode. */
static ch_status write_private(const char *path, const char *text, ch_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return ch_error_set(err, CH_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len;
    ok = close(fd) == 0 && ok;
    return ok ? CH_OK : ch_error_set(err, CH_ERR_IO, "cannot write %s", path);
}

static ch_status sign_file(const jwt_opts *o, const json_t *claims, ch_error *err)
{
    char *key = NULL, *jwt = NULL;
    size_t len = 0;
    ch_status st = ch_read_file(o->signing_key, MAX_KEY_FILE, &key, &len, err);
    if (st != CH_OK)
        return st;
    const char *alg = strstr(key, "-----BEGIN") != NULL ? "RS256" : "EdDSA";
    if (strcmp(alg, "EdDSA") == 0)
        key[strcspn(key, " \r\n\t")] = '\0';
    st = ch_jwt_sign(alg, key, claims, &jwt, err);
    ch_pki_free_secret(key, len);
    if (st != CH_OK)
        return st;
    st = write_private(o->file, jwt, err);
    free(jwt);
    return st;
}

int cli_jwt_provisioning(int argc, char **argv)
{
    jwt_opts o;
    if (parse_args(argc, argv, &o) != 0)
        return 1;
    ch_error err;
    ch_error_clear(&err);
    int64_t validity_ns = 0;
    if (o.token == NULL || o.token[0] == '\0') {
        fprintf(stderr, "choria: --token is required\n");
        return 1;
    }
    if ((o.url_count == 0) == (o.srv == NULL)) {
        fprintf(stderr, "choria: give either --urls or --srv\n");
        return 1;
    }
    if (ch_config_parse_duration(o.validity, &validity_ns, &err) != CH_OK || validity_ns <= 0) {
        fprintf(stderr, "choria: invalid --validity %s\n", o.validity);
        return 1;
    }
    json_t *claims = build_claims(&o, validity_ns / 1000000000, &err);
    ch_status st = claims != NULL ? sign_file(&o, claims, &err) : CH_ERR_INVALID;
    json_decref(claims);
    if (st != CH_OK) {
        fprintf(stderr, "choria: %s\n", err.msg);
        return 1;
    }
    printf("Saved token to %s, use 'choria jwt view %s' to view it\n", o.file, o.file);
    return 0;
}
