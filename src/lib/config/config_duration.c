/* go-choria durations: parsing (util.ParseDuration and Go's time.ParseDuration) and Go's
 * Duration.String(). */
#include "choria/config.h"

#include <locale.h>
#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "choria/util.h"

/* ---- durations ---- */

#define NS_PER_HOUR INT64_C(3600000000000)

/* The number before a w/d/M/y unit: Go strconv.ParseFloat(s, 32) on the decimal forms. */
static ch_status parse_float32(const char *s, size_t len, float *out)
{
    size_t i = 0, digits = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < len && s[i] == '.')
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    if (digits > 0 && i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp_digits = 0;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            exp_digits++;
        if (exp_digits == 0)
            return CH_ERR_INVALID;
    }
    if (digits == 0 || i != len)
        return CH_ERR_INVALID;

    /* strtof honours LC_NUMERIC; the syntax is Go's, so parse in the C locale. */
    locale_t c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0)
        return CH_ERR_NOMEM;
    char *end = NULL;
    float f = strtof_l(s, &end, c_locale);
    freelocale(c_locale);
    if (end != s + len)
        return CH_ERR_INVALID;
    if (isinf(f))
        return CH_ERR_TOO_LARGE;
    *out = f;
    return CH_OK;
}

/* clang-format off */
static const struct {
    const char *name;
    uint64_t ns;
} go_units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
    {"ms", 1000000},
    {"s", 1000000000},
    {"m", 60000000000},
    {"h", 3600000000000},
};
/* clang-format on */

/* Go time.ParseDuration, step for step (including its overflow rules). */
static ch_status go_parse_duration(const char *orig, size_t len, int64_t *ns, ch_error *err)
{
    const uint64_t limit = (uint64_t)1 << 63;
    const char *s = orig, *end = orig + len;
    uint64_t d = 0;
    bool neg = false;
    if (s < end && (*s == '-' || *s == '+')) {
        neg = *s == '-';
        s++;
    }
    if (end - s == 1 && *s == '0') {
        *ns = 0;
        return CH_OK;
    }
    if (s == end)
        goto out;
    while (s < end) {
        uint64_t v = 0, f = 0;
        double scale = 1;
        if (!(*s == '.' || (*s >= '0' && *s <= '9')))
            goto out;
        const char *start = s;
        for (; s < end && *s >= '0' && *s <= '9'; s++) {
            if (v > limit / 10)
                goto out;
            v = v * 10 + (uint64_t)(*s - '0');
            if (v > limit)
                goto out;
        }
        bool pre = s != start, post = false;
        if (s < end && *s == '.') {
            bool overflow = false;
            s++;
            start = s;
            for (; s < end && *s >= '0' && *s <= '9'; s++) {
                if (overflow)
                    continue;
                if (f > (limit - 1) / 10) {
                    overflow = true;
                    continue;
                }
                uint64_t y = f * 10 + (uint64_t)(*s - '0');
                if (y > limit) {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10;
            }
            post = s != start;
        }
        if (!pre && !post)
            goto out;
        const char *unit = s;
        while (s < end && *s != '.' && !(*s >= '0' && *s <= '9'))
            s++;
        size_t ulen = (size_t)(s - unit);
        if (ulen == 0)
            return ch_error_set(err, CH_ERR_INVALID, "time: missing unit in duration \"%.64s\"",
                                orig);
        uint64_t u = 0;
        for (size_t i = 0; i < sizeof(go_units) / sizeof(go_units[0]); i++)
            if (strlen(go_units[i].name) == ulen && memcmp(go_units[i].name, unit, ulen) == 0)
                u = go_units[i].ns;
        if (u == 0)
            return ch_error_set(err, CH_ERR_INVALID,
                                "time: unknown unit \"%.*s\" in duration \"%.64s\"",
                                (int)(ulen > 16 ? 16 : ulen), unit, orig);
        if (v > limit / u)
            goto out;
        v *= u;
        if (f > 0) {
            v += (uint64_t)((double)f * ((double)u / scale));
            if (v > limit)
                goto out;
        }
        d += v;
        if (d > limit)
            goto out;
    }
    if (neg) {
        *ns = (int64_t)(0 - d); /* d == 2^63 gives INT64_MIN, as in Go */
        return CH_OK;
    }
    if (d > limit - 1)
        goto out;
    *ns = (int64_t)d;
    return CH_OK;

out:
    return ch_error_set(err, CH_ERR_INVALID, "time: invalid duration \"%.64s\"", orig);
}

ch_status ch_config_parse_duration(const char *str, int64_t *ns, ch_error *err)
{
    if (str == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no duration");
    size_t len = strlen(str);
    const char *s = str;
    ch_trim(&s, &len);
    *ns = 0;
    if (len == 0)
        return CH_OK;

    double factor; /* hours per unit, multiplied in Go's order */
    char unit = s[len - 1];
    switch (unit) {
    case 's':
    case 'S':
    case 'm':
    case 'h':
    case 'H':
        return go_parse_duration(s, len, ns, err);
    case 'w':
    case 'W':
    case 'd':
    case 'D':
    case 'M':
    case 'Y':
    case 'y':
        break;
    default:
        if ((unsigned char)unit >= 0x20 && (unsigned char)unit < 0x7f)
            return ch_error_set(err, CH_ERR_INVALID, "invalid time unit %c", unit);
        return ch_error_set(err, CH_ERR_INVALID, "invalid time unit \\x%02x", (unsigned char)unit);
    }

    float f;
    ch_status st = parse_float32(s, len - 1, &f);
    if (st == CH_ERR_NOMEM)
        return ch_error_set(err, st, "out of memory parsing a duration");
    if (st != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "strconv.ParseFloat: parsing \"%.*s\": %s",
                            (int)(len - 1 > 64 ? 64 : len - 1), s,
                            st == CH_ERR_TOO_LARGE ? "value out of range" : "invalid syntax");
    double v = f;
    if (unit == 'w' || unit == 'W')
        factor = v * 7 * 24;
    else if (unit == 'd' || unit == 'D')
        factor = v * 24;
    else if (unit == 'M')
        factor = v * 24 * 30;
    else
        factor = v * 24 * 365;
    /* Go truncates to whole hours, then multiplies by time.Hour (wrapping on overflow). */
    if (!(factor > -3e6 && factor < 3e6))
        return ch_error_set(err, CH_ERR_INVALID, "duration \"%.64s\" is out of range", s);
    int64_t hours = (int64_t)factor;
    if (hours > INT64_MAX / NS_PER_HOUR || hours < INT64_MIN / NS_PER_HOUR)
        return ch_error_set(err, CH_ERR_INVALID, "duration \"%.64s\" is out of range", s);
    *ns = hours * NS_PER_HOUR;
    return CH_OK;
}

/* Go's fmtFrac: the fraction of v / 10^prec without trailing zeros, written backwards. */
static size_t fmt_frac(char *buf, size_t w, uint64_t *v, int prec)
{
    bool print = false;
    for (int i = 0; i < prec; i++) {
        unsigned digit = (unsigned)(*v % 10);
        print = print || digit != 0;
        if (print)
            buf[--w] = (char)('0' + digit);
        *v /= 10;
    }
    if (print)
        buf[--w] = '.';
    return w;
}

static size_t fmt_int(char *buf, size_t w, uint64_t v)
{
    if (v == 0) {
        buf[--w] = '0';
        return w;
    }
    while (v > 0) {
        buf[--w] = (char)('0' + v % 10);
        v /= 10;
    }
    return w;
}

void ch_config_format_duration(int64_t ns, char *out, size_t out_size)
{
    char buf[32];
    size_t w = sizeof(buf);
    bool neg = ns < 0;
    uint64_t u = neg ? 0 - (uint64_t)ns : (uint64_t)ns;

    if (u < 1000000000) {
        /* Under a second: the largest of ns, µs, ms, as Go does. */
        int prec = 0;
        buf[--w] = 's';
        if (u == 0) {
            buf[--w] = '0';
            goto out;
        } else if (u < 1000) {
            buf[--w] = 'n';
        } else if (u < 1000000) {
            prec = 3;
            buf[--w] = '\xb5';
            buf[--w] = '\xc2';
        } else {
            prec = 6;
            buf[--w] = 'm';
        }
        w = fmt_frac(buf, w, &u, prec);
        w = fmt_int(buf, w, u);
    } else {
        buf[--w] = 's';
        w = fmt_frac(buf, w, &u, 9);
        w = fmt_int(buf, w, u % 60);
        u /= 60;
        if (u > 0) {
            buf[--w] = 'm';
            w = fmt_int(buf, w, u % 60);
            u /= 60;
            if (u > 0) {
                buf[--w] = 'h';
                w = fmt_int(buf, w, u);
            }
        }
    }
out:
    if (neg)
        buf[--w] = '-';
    snprintf(out, out_size, "%.*s", (int)(sizeof(buf) - w), buf + w);
}
