/* Small helpers shared by every program: encodings, digests, ids, time, back-off. */
#include "choria/util.h"

#include <errno.h>
#include <ftw.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ch_base64_encode(const void *data, size_t len)
{
    const unsigned char *in = data;
    size_t out_len = 4 * ((len + 2) / 3);
    char *out = malloc(out_len + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = (i + 1 < len) ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

ch_status ch_base64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    unsigned char *buf = malloc(len / 4 * 3 + 4);
    if (buf == NULL)
        return CH_ERR_NOMEM;

    /* Collect sextets, skipping CR/LF as Go's StdEncoding does. */
    uint32_t acc = 0;
    int quad = 0, pad = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            pad++;
            if (quad < 2 || quad + pad > 4)
                goto out;
            if (quad + pad == 4) {
                if (quad == 2) {
                    /* Like Go's StdEncoding, non-zero trailing bits are tolerated. */
                    buf[o++] = (unsigned char)(acc >> 4);
                } else {
                    buf[o++] = (unsigned char)(acc >> 10);
                    buf[o++] = (unsigned char)(acc >> 2);
                }
                quad = 0;
                acc = 0;
                /* Nothing but CR/LF may follow the padding. */
                for (size_t j = i + 1; j < len; j++)
                    if (in[j] != '\r' && in[j] != '\n')
                        goto out;
                break;
            }
            continue;
        }
        if (pad > 0)
            goto out;
        int v = b64_value(c);
        if (v < 0)
            goto out;
        acc = acc << 6 | (uint32_t)v;
        if (++quad == 4) {
            buf[o++] = (unsigned char)(acc >> 16);
            buf[o++] = (unsigned char)(acc >> 8);
            buf[o++] = (unsigned char)acc;
            quad = 0;
            acc = 0;
        }
    }
    if (quad != 0)
        goto out;
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return CH_OK;

out:
    free(buf);
    return CH_ERR_INVALID;
}

void ch_hex_encode(const void *data, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *in = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * len] = '\0';
}

void ch_md5_hex(const void *data, size_t len, char out[33])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_Digest(data, len, digest, &dlen, EVP_md5(), NULL);
    ch_hex_encode(digest, 16, out);
}

void ch_sha256(const void *data, size_t len, unsigned char out[32])
{
    SHA256(data, len, out);
}

bool ch_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void uuid_bytes(unsigned char b[16])
{
    if (!ch_random_bytes(b, 16)) {
        /* getrandom only fails on ancient kernels; keep ids unique enough to work. */
        for (int i = 0; i < 16; i++)
            b[i] = (unsigned char)rand();
    }
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
}

void ch_uuid_v4(char out[37])
{
    unsigned char b[16];
    char hex[33];
    uuid_bytes(b);
    ch_hex_encode(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

void ch_request_id(char out[33])
{
    unsigned char b[16];
    uuid_bytes(b);
    ch_hex_encode(b, 16, out);
}

int64_t ch_now_unix(void)
{
    return (int64_t)time(NULL);
}

uint64_t ch_hash_fnv1a(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = UINT64_C(14695981039346656037); /* the 64-bit offset basis */
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

int64_t ch_now_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ch_cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t a;
    int rc = pthread_condattr_init(&a);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &a);
    pthread_condattr_destroy(&a);
    return rc;
}

bool ch_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t deadline_ms)
{
    if (deadline_ms <= ch_now_mono_ms())
        return false;
    struct timespec ts = {.tv_sec = deadline_ms / 1000,
                          .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
    return pthread_cond_timedwait(cond, mu, &ts) != ETIMEDOUT;
}

void ch_format_rfc3339(int64_t unix_seconds, char *out, size_t out_size)
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    /* gmtime_r fails for years beyond int; never format an uninitialised tm. */
    if (gmtime_r(&t, &tm) == NULL) {
        if (out_size > 0)
            out[0] = '\0';
        return;
    }
    strftime(out, out_size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool parse_digits(const char **p, int n, int *value)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *value = v;
    return true;
}

static int days_in_month(int year, int mon)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return mon == 2 && leap ? 29 : days[mon - 1];
}

ch_status ch_parse_rfc3339(const char *s, int64_t *unix_seconds)
{
    struct tm tm = {0};
    int year, mon, day, hour, min, sec;
    const char *p = s;
    if (!parse_digits(&p, 4, &year) || *p++ != '-' || !parse_digits(&p, 2, &mon) || *p++ != '-' ||
        !parse_digits(&p, 2, &day) || (*p != 'T' && *p != 't'))
        return CH_ERR_INVALID;
    p++;
    if (!parse_digits(&p, 2, &hour) || *p++ != ':' || !parse_digits(&p, 2, &min) || *p++ != ':' ||
        !parse_digits(&p, 2, &sec))
        return CH_ERR_INVALID;
    /* Go's time.Parse: the day must exist in its month, seconds end at 59 */
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 || min > 59 ||
        sec > 59)
        return CH_ERR_INVALID;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return CH_ERR_INVALID;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (!parse_digits(&p, 2, &oh) || *p++ != ':' || !parse_digits(&p, 2, &om))
            return CH_ERR_INVALID;
        offset = sign * (oh * 3600 + om * 60);
    } else {
        return CH_ERR_INVALID;
    }
    if (*p != '\0')
        return CH_ERR_INVALID;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    *unix_seconds = (int64_t)timegm(&tm) - offset;
    return CH_OK;
}

bool ch_identity_valid(const char *identity)
{
    if (identity == NULL)
        return false;
    size_t len = strlen(identity);
    if (len == 0 || len > CH_MAX_IDENTITY_LEN)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = identity[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok || ++label > 63)
            return false;
    }
    return label > 0;
}

ch_status ch_fqdn(char *out, size_t out_size)
{
    char host[256];
    if (gethostname(host, sizeof(host)) != 0)
        return CH_ERR_IO;
    host[sizeof(host) - 1] = '\0';

    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = AI_CANONNAME;
    const char *name = host;
    if (getaddrinfo(host, NULL, &hints, &res) == 0 && res != NULL && res->ai_canonname != NULL)
        name = res->ai_canonname;
    int n = snprintf(out, out_size, "%s", name);
    if (res != NULL)
        freeaddrinfo(res);
    return (n < 0 || (size_t)n >= out_size) ? CH_ERR_TOO_LARGE : CH_OK;
}

int64_t ch_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms)
{
    int64_t d = base_ms;
    for (int i = 0; i < attempt && d < max_ms; i++)
        d = d <= max_ms / 2 ? d * 2 : max_ms; /* never past max_ms, never overflowing */
    if (d > max_ms)
        d = max_ms;
    if (d <= 1)
        return d;
    uint64_t r = 0;
    if (!ch_random_bytes(&r, sizeof(r)))
        r = (uint64_t)rand();
    uint64_t v = (uint64_t)d / 2 + r % (uint64_t)d; /* < 1.5 * INT64_MAX fits unsigned */
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

ch_status ch_read_file(const char *path, size_t max, char **out, size_t *out_len, ch_error *err)
{
    *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ch_error_set(err, errno == ENOENT ? CH_ERR_NOT_FOUND : CH_ERR_IO,
                            "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size > max) {
        close(fd);
        return ch_error_set(err, CH_ERR_TOO_LARGE, "%s is larger than %zu bytes", path, max);
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ch_status s = CH_OK;
    while (buf != NULL) {
        if (len + 1 >= cap) {
            if (cap > max + 1) {
                s = ch_error_set(err, CH_ERR_TOO_LARGE, "%s is larger than %zu bytes", path, max);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s = ch_error_set(err, CH_ERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            s = ch_error_set(err, CH_ERR_TOO_LARGE, "%s is larger than %zu bytes", path, max);
            break;
        }
    }
    close(fd);
    if (buf == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory reading %s", path);
    if (s != CH_OK) {
        free(buf);
        return s;
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len != NULL)
        *out_len = len;
    return CH_OK;
}

/* Unpadded base64url as golang-jwt's DecodeSegment (RawURLEncoding; Go skips CR and LF). */
ch_status ch_base64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    char *std = malloc(len + 4);
    size_t n = 0;
    ch_status st;
    if (std == NULL)
        return CH_ERR_NOMEM;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '\r' || c == '\n')
            continue;
        if (c == '+' || c == '/' || c == '=') {
            free(std);
            return CH_ERR_INVALID;
        }
        std[n++] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    if (n % 4 == 1) {
        free(std);
        return CH_ERR_INVALID;
    }
    while (n % 4 != 0)
        std[n++] = '=';
    st = ch_base64_decode(std, n, out, out_len);
    free(std);
    return st;
}

char *ch_base64url_encode(const void *data, size_t len)
{
    char *s = ch_base64_encode(data, len);
    if (s == NULL)
        return NULL;
    for (char *p = s; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    s[strcspn(s, "=")] = '\0';
    return s;
}

bool ch_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

void ch_trim(const char **s, size_t *len)
{
    while (*len > 0 && ch_is_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ch_is_space((*s)[*len - 1]))
        (*len)--;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

ch_status ch_remove_tree(const char *path, ch_error *err)
{
    struct stat sb;
    char real[PATH_MAX];
    if (path == NULL || path[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "refusing to remove ''");
    if (lstat(path, &sb) != 0 && errno == ENOENT)
        return CH_OK;
    /* "/", "//", "/." and a link to the root all resolve to it */
    if (realpath(path, real) != NULL && strcmp(real, "/") == 0)
        return ch_error_set(err, CH_ERR_INVALID, "refusing to remove '%s'", path);
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return ch_error_set(err, CH_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return CH_OK;
}
