/* util: strict base64 and base64url as Go decodes them, hex and digests against published
 * vectors, ids, RFC 3339 times, identities, back-off bounds, bounded file reads, FNV-1a,
 * trimming, tree removal that never leaves the tree, and waits on the monotonic clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "choria/util.h"
#include "harness.h"

/* ---- helpers ---- */

/* The test's own temporary directory (f->dir). */
typedef cht_dir_fixture fixture;
#define setup cht_dir_setup
#define teardown cht_dir_teardown

/* dir/name into a static buffer (one at a time). */
static const char *path_in(const char *dir, const char *name)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static bool exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static void assert_decodes(const char *in, const char *want, size_t want_len)
{
    unsigned char *out = NULL;
    size_t len = 99;
    if (ch_base64_decode(in, strlen(in), &out, &len) != CH_OK)
        fail_msg("base64 '%s' refused", in);
    assert_int_equal(len, want_len);
    assert_memory_equal(out, want, want_len);
    assert_int_equal(out[len], '\0');
    free(out);
}

static void assert_refused(const char *in, size_t in_len)
{
    unsigned char *out = (unsigned char *)"untouched";
    size_t len = 99;
    if (ch_base64_decode(in, in_len, &out, &len) != CH_ERR_INVALID)
        fail_msg("base64 '%s' accepted", in);
    assert_null(out);
    assert_int_equal(len, 0);
}

static void assert_url_decodes(const char *in, const char *want, size_t want_len)
{
    unsigned char *out = NULL;
    size_t len = 99;
    if (ch_base64url_decode(in, strlen(in), &out, &len) != CH_OK)
        fail_msg("base64url '%s' refused", in);
    assert_int_equal(len, want_len);
    assert_memory_equal(out, want, want_len);
    free(out);
}

static void assert_url_refused(const char *in)
{
    unsigned char *out = NULL;
    size_t len = 0;
    if (ch_base64url_decode(in, strlen(in), &out, &len) != CH_ERR_INVALID)
        fail_msg("base64url '%s' accepted", in);
    assert_null(out);
}

static void assert_is_lower_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (strchr("0123456789abcdef", s[i]) == NULL || s[i] == '\0')
            fail_msg("'%s': character %zu is not lower-case hex", s, i);
}

/* ---- base64 ---- */

static const struct {
    const char *plain, *encoded;
} rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void base64_encode_matches_the_rfc4648_vectors(void **state)
{
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        char *s = ch_base64_encode(rfc4648[i].plain, strlen(rfc4648[i].plain));
        assert_non_null(s);
        assert_string_equal(s, rfc4648[i].encoded);
        free(s);
    }
    char *s = ch_base64_encode("\xfb\xff\xbf\x00", 4);
    assert_string_equal(s, "+/+/AA==");
    free(s);
}

static void base64_decode_reverses_the_rfc4648_vectors(void **state)
{
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++)
        assert_decodes(rfc4648[i].encoded, rfc4648[i].plain, strlen(rfc4648[i].plain));
    assert_decodes("+/+/AA==", "\xfb\xff\xbf\x00", 4);
}

static void base64_decode_refuses_missing_or_misplaced_padding(void **state)
{
    static const char *const bad[] = {"Zg",       "Zg=",   "Zg===", "=Zg=",  "Z===",     "Zm9v=",
                                      "Zg==Zg==", "Zm9vY", "====",  "Zm9=v", "Zg==\r\nx"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_refused(bad[i], strlen(bad[i]));
}

static void base64_decode_refuses_characters_outside_the_alphabet(void **state)
{
    static const char *const bad[] = {"Zm9v YmFy", "Zm9v\tYmFy", "Zm9-",
                                      "Zm9_",      "Zm9v!A==",   "Zm9v\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_refused(bad[i], strlen(bad[i]));
    assert_refused("Zm\0v", 4);
}

static void base64_decode_skips_cr_and_lf_anywhere_as_go_does(void **state)
{
    assert_decodes("Zm9v\r\nYmFy\n", "foobar", 6);
    assert_decodes("Z\ng=\r=\n", "f", 1);
    assert_decodes("\r\n", "", 0);
}

static void base64_decode_tolerates_non_zero_trailing_bits_as_go_std_encoding(void **state)
{
    assert_decodes("Zh==", "f", 1);
    assert_decodes("Zm9=", "fo", 2);
}

static void base64url_encode_uses_the_url_alphabet_without_padding(void **state)
{
    char *s = ch_base64url_encode("\xfb\xff\xbf", 3);
    assert_string_equal(s, "-_-_");
    free(s);
    s = ch_base64url_encode("f", 1);
    assert_string_equal(s, "Zg");
    free(s);
    s = ch_base64url_encode("fo", 2);
    assert_string_equal(s, "Zm8");
    free(s);
    s = ch_base64url_encode("", 0);
    assert_string_equal(s, "");
    free(s);
}

static void base64url_decode_reads_unpadded_input_and_skips_cr_lf(void **state)
{
    assert_url_decodes("-_-_", "\xfb\xff\xbf", 3);
    assert_url_decodes("Zg", "f", 1);
    assert_url_decodes("Zm8", "fo", 2);
    assert_url_decodes("Zm9vYmFy", "foobar", 6);
    assert_url_decodes("Z\r\ng", "f", 1);
    assert_url_decodes("", "", 0);
}

static void base64url_decode_refuses_padding_and_the_standard_alphabet(void **state)
{
    static const char *const bad[] = {"Zg==", "Zg=",   "+/+/",   "Zm9v/A",
                                      "Z",    "Zm9vY", "Zm9v*A", "Zm 9v"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_url_refused(bad[i]);
}

/* ---- hex and digests ---- */

static void hex_encode_writes_lower_case_pairs(void **state)
{
    char out[16];
    memset(out, 'x', sizeof(out));
    ch_hex_encode("\x00\xab\xff\x10", 4, out);
    assert_string_equal(out, "00abff10");
    ch_hex_encode("", 0, out);
    assert_string_equal(out, "");
}

static void md5_hex_matches_the_rfc1321_vectors(void **state)
{
    char out[33];
    ch_md5_hex("", 0, out);
    assert_string_equal(out, "d41d8cd98f00b204e9800998ecf8427e");
    ch_md5_hex("abc", 3, out);
    assert_string_equal(out, "900150983cd24fb0d6963f7d28e17f72");
    ch_md5_hex("message digest", 14, out);
    assert_string_equal(out, "f96b697d7cb7938d525a2f31aaf161d0");
}

static void sha256_matches_the_fips180_vectors(void **state)
{
    unsigned char digest[32];
    char hex[65];
    ch_sha256("", 0, digest);
    ch_hex_encode(digest, 32, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ch_sha256("abc", 3, digest);
    ch_hex_encode(digest, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void fnv1a_matches_the_published_64_bit_vectors(void **state)
{
    assert_int_equal(ch_hash_fnv1a("", 0), UINT64_C(0xcbf29ce484222325));
    assert_int_equal(ch_hash_fnv1a("a", 1), UINT64_C(0xaf63dc4c8601ec8c));
    assert_int_equal(ch_hash_fnv1a("foobar", 6), UINT64_C(0x85944171f73967e8));
    /* len bounds the input */
    assert_int_equal(ch_hash_fnv1a("foobarbaz", 6), UINT64_C(0x85944171f73967e8));
}

/* ---- ids ---- */

static void request_id_is_32_lower_case_hex_of_a_v4_uuid(void **state)
{
    char a[33], b[33];
    ch_request_id(a);
    ch_request_id(b);
    assert_int_equal(strlen(a), 32);
    assert_is_lower_hex(a, 32);
    assert_int_equal(a[12], '4');
    assert_non_null(strchr("89ab", a[16]));
    assert_string_not_equal(a, b);
}

static void uuid_v4_has_dashes_the_version_and_the_variant(void **state)
{
    char a[37], b[37];
    ch_uuid_v4(a);
    ch_uuid_v4(b);
    assert_int_equal(strlen(a), 36);
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_is_lower_hex(a + i, 1);
    }
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
    assert_string_not_equal(a, b);
}

static void random_bytes_fill_the_whole_buffer(void **state)
{
    unsigned char buf[64] = {0}, zero[16] = {0};
    assert_true(ch_random_bytes(buf, sizeof(buf)));
    /* each 16-byte quarter is all zero with probability 2^-128 */
    for (size_t i = 0; i < sizeof(buf); i += 16)
        assert_memory_not_equal(buf + i, zero, 16);
}

/* ---- time ---- */

static void format_rfc3339_writes_utc_without_a_fraction(void **state)
{
    char out[32];
    ch_format_rfc3339(1535106973, out, sizeof(out));
    assert_string_equal(out, "2018-08-24T10:36:13Z");
    ch_format_rfc3339(0, out, sizeof(out));
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    ch_format_rfc3339(-1, out, sizeof(out));
    assert_string_equal(out, "1969-12-31T23:59:59Z");
    ch_format_rfc3339(951782400, out, sizeof(out));
    assert_string_equal(out, "2000-02-29T00:00:00Z");
}

static void parse_rfc3339_reads_utc_and_round_trips_with_format(void **state)
{
    static const int64_t times[] = {0, 1535106973, 951782400, -86400, 4102444799};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        char text[32];
        int64_t t = 12345;
        ch_format_rfc3339(times[i], text, sizeof(text));
        assert_int_equal(ch_parse_rfc3339(text, &t), CH_OK);
        assert_int_equal(t, times[i]);
    }
}

static void parse_rfc3339_applies_offsets(void **state)
{
    int64_t t = 0;
    assert_int_equal(ch_parse_rfc3339("2018-08-24T12:36:13+02:00", &t), CH_OK);
    assert_int_equal(t, 1535106973);
    assert_int_equal(ch_parse_rfc3339("2018-08-24T05:06:13-05:30", &t), CH_OK);
    assert_int_equal(t, 1535106973);
    assert_int_equal(ch_parse_rfc3339("2018-08-24T10:36:13+00:00", &t), CH_OK);
    assert_int_equal(t, 1535106973);
    assert_int_equal(ch_parse_rfc3339("1970-01-01T00:00:00+01:00", &t), CH_OK);
    assert_int_equal(t, -3600);
}

static void parse_rfc3339_drops_fractions_and_accepts_lower_case_t_and_z(void **state)
{
    int64_t t = 0;
    assert_int_equal(ch_parse_rfc3339("2018-08-24T10:36:13.5Z", &t), CH_OK);
    assert_int_equal(t, 1535106973);
    assert_int_equal(ch_parse_rfc3339("2018-08-24T12:36:13.999999999+02:00", &t), CH_OK);
    assert_int_equal(t, 1535106973);
    assert_int_equal(ch_parse_rfc3339("2018-08-24t10:36:13z", &t), CH_OK);
    assert_int_equal(t, 1535106973);
}

static void parse_rfc3339_refuses_malformed_input(void **state)
{
    static const char *const bad[] = {
        "",
        "2018-08-24",
        "2018-08-24 10:36:13Z",
        "2018-08-24T10:36:13",
        "2018-08-24T10:36:13.Z",
        "2018-08-24T10:36:13+0200",
        "2018-08-24T10:36:13+02",
        "2018-08-24T10:36:13Zjunk",
        "2018-08-24T10:36:13 Z",
        "18-08-24T10:36:13Z",
        "2018-8-24T10:36:13Z",
        "2018/08/24T10:36:13Z",
        "2018-13-01T00:00:00Z",
        "2018-00-01T00:00:00Z",
        "2018-08-00T00:00:00Z",
        "2018-08-32T00:00:00Z",
        "2018-08-24T24:00:00Z",
        "2018-08-24T10:60:00Z",
        "2018-08-24T10:00:60Z",
        "2018-02-30T00:00:00Z", /* days that do not exist, as Go's time.Parse refuses */
        "2019-02-29T00:00:00Z",
        "2018-04-31T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2018-08-24T10:36:61Z",
        "2018-08-24T1a:36:13Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t = 0;
        if (ch_parse_rfc3339(bad[i], &t) != CH_ERR_INVALID)
            fail_msg("'%s' accepted", bad[i]);
    }
}

static void parse_rfc3339_accepts_a_leap_day(void **state)
{
    int64_t t = 0;
    assert_int_equal(ch_parse_rfc3339("2020-02-29T00:00:00Z", &t), CH_OK);
    assert_int_equal(t, 1582934400);
}

static void now_unix_follows_the_wall_clock(void **state)
{
    int64_t before = (int64_t)time(NULL);
    int64_t now = ch_now_unix();
    int64_t after = (int64_t)time(NULL);
    assert_in_range(now, before, after);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void now_mono_ms_follows_the_monotonic_clock_and_never_goes_back(void **state)
{
    int64_t before = mono_ms();
    int64_t now = ch_now_mono_ms();
    int64_t after = mono_ms();
    assert_in_range(now, before, after);
    int64_t prev = now;
    for (int i = 0; i < 1000; i++) {
        int64_t t = ch_now_mono_ms();
        assert_in_range(t, prev, INT64_MAX);
        prev = t;
    }
    struct timespec nap = {.tv_nsec = 20 * 1000000L};
    nanosleep(&nap, NULL);
    assert_in_range(ch_now_mono_ms() - now, 20, 10000);
}

/* ---- condition variables on the monotonic clock ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool flag;
} waiter;

static void waiter_init(waiter *w)
{
    w->flag = false;
    assert_int_equal(pthread_mutex_init(&w->mu, NULL), 0);
    assert_int_equal(ch_cond_init_monotonic(&w->cond), 0);
}

static void waiter_destroy(waiter *w)
{
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
}

static void cond_wait_until_returns_false_at_once_for_a_deadline_already_passed(void **state)
{
    waiter w;
    waiter_init(&w);
    int64_t start = ch_now_mono_ms();
    pthread_mutex_lock(&w.mu);
    assert_false(ch_cond_wait_until(&w.cond, &w.mu, start - 1000));
    assert_false(ch_cond_wait_until(&w.cond, &w.mu, start));
    pthread_mutex_unlock(&w.mu);
    assert_in_range(ch_now_mono_ms() - start, 0, 50);
    waiter_destroy(&w);
}

static void cond_wait_until_returns_false_only_once_the_deadline_has_passed(void **state)
{
    waiter w;
    waiter_init(&w);
    int64_t start = ch_now_mono_ms();
    int64_t deadline = start + 60;
    pthread_mutex_lock(&w.mu);
    /* true is a spurious wake-up: wait again, as callers do */
    int wakes = 0;
    while (ch_cond_wait_until(&w.cond, &w.mu, deadline) && wakes < 100)
        wakes++;
    pthread_mutex_unlock(&w.mu);
    int64_t end = ch_now_mono_ms();
    assert_in_range(wakes, 0, 99);
    assert_in_range(end, deadline, start + 1000);
    waiter_destroy(&w);
}

static void *signal_soon(void *arg)
{
    waiter *w = arg;
    struct timespec nap = {.tv_nsec = 20 * 1000000L};
    nanosleep(&nap, NULL);
    pthread_mutex_lock(&w->mu);
    w->flag = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void cond_wait_until_returns_true_when_signalled(void **state)
{
    waiter w;
    waiter_init(&w);
    int64_t start = ch_now_mono_ms();
    int64_t deadline = start + 1000;
    pthread_t t;
    pthread_mutex_lock(&w.mu);
    assert_int_equal(pthread_create(&t, NULL, signal_soon, &w), 0);
    bool woke = true;
    while (!w.flag && woke)
        woke = ch_cond_wait_until(&w.cond, &w.mu, deadline);
    bool flag = w.flag;
    pthread_mutex_unlock(&w.mu);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(woke);
    assert_true(flag);
    assert_in_range(ch_now_mono_ms(), start, deadline - 1);
    waiter_destroy(&w);
}

/* ---- identities ---- */

static void identity_valid_accepts_dns_like_names_up_to_253_characters(void **state)
{
    static const char *const good[] = {
        "n1", "a", "n1.example.net", "web_01-a.Example.COM", "1.2.3.4", "-x-._y_"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!ch_identity_valid(good[i]))
            fail_msg("'%s' refused", good[i]);
    /* labels of 63, 63, 63 and 61 characters: 253 in all */
    char longest[CH_MAX_IDENTITY_LEN + 2];
    memset(longest, 'a', CH_MAX_IDENTITY_LEN);
    longest[63] = longest[127] = longest[191] = '.';
    longest[CH_MAX_IDENTITY_LEN] = '\0';
    assert_int_equal(strlen(longest), 253);
    assert_true(ch_identity_valid(longest));
    /* one more character is too long */
    longest[CH_MAX_IDENTITY_LEN] = 'a';
    longest[CH_MAX_IDENTITY_LEN + 1] = '\0';
    assert_false(ch_identity_valid(longest));
}

static void identity_valid_refuses_wildcards_spaces_and_empty_labels(void **state)
{
    static const char *const bad[] = {"",    "*",    ">",        "a.*", "a.>",  "a b",
                                      " a",  "a\t",  ".a",       "a.",  "a..b", ".",
                                      "a/b", "a\nb", "\xc3\xa9", "a:1", "a,b",  "a$"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ch_identity_valid(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    assert_false(ch_identity_valid(NULL));
}

static void identity_valid_refuses_a_label_longer_than_63_characters(void **state)
{
    char name[80];
    memset(name, 'a', 63);
    strcpy(name + 63, ".net");
    assert_true(ch_identity_valid(name));
    memset(name, 'a', 64);
    strcpy(name + 64, ".net");
    assert_false(ch_identity_valid(name));
}

/* ---- back-off ---- */

/* min and max of n back-offs */
static void backoff_range(int attempt, int64_t base, int64_t max, int64_t *lo, int64_t *hi)
{
    *lo = INT64_MAX;
    *hi = INT64_MIN;
    for (int i = 0; i < 500; i++) {
        int64_t d = ch_backoff_ms(attempt, base, max);
        *lo = d < *lo ? d : *lo;
        *hi = d > *hi ? d : *hi;
    }
}

static void backoff_doubles_from_the_base_with_jitter_in_half_to_three_halves(void **state)
{
    int64_t lo, hi;
    backoff_range(0, 100, 100000, &lo, &hi);
    assert_in_range(lo, 50, 149);
    assert_in_range(hi, 50, 149);
    assert_in_range(hi - lo, 1, 99); /* jittered: 500 equal draws of 100 values do not happen */
    backoff_range(3, 100, 100000, &lo, &hi);
    assert_in_range(lo, 400, 1199);
    assert_in_range(hi, 400, 1199);
    assert_in_range(hi - lo, 1, 799);
}

static void backoff_is_capped_at_max_before_the_jitter(void **state)
{
    int64_t lo, hi;
    backoff_range(10, 100, 1000, &lo, &hi);
    assert_in_range(lo, 500, 1499);
    assert_in_range(hi, 500, 1499);
    backoff_range(1000, 100, 1000, &lo, &hi);
    assert_in_range(lo, 500, 1499);
    assert_in_range(hi, 500, 1499);
    /* a base above the cap is capped too */
    backoff_range(0, 5000, 1000, &lo, &hi);
    assert_in_range(lo, 500, 1499);
    assert_in_range(hi, 500, 1499);
}

static void backoff_near_the_int64_limit_stays_in_range_without_overflow(void **state)
{
    for (int i = 0; i < 50; i++) {
        int64_t d = ch_backoff_ms(70, 3, INT64_MAX);
        assert_true(d >= INT64_MAX / 2);
    }
}

static void backoff_of_one_millisecond_or_less_has_no_jitter(void **state)
{
    assert_int_equal(ch_backoff_ms(0, 1, 1), 1);
    assert_int_equal(ch_backoff_ms(5, 1, 1), 1);
    assert_int_equal(ch_backoff_ms(3, 0, 1000), 0);
}

/* ---- reading files ---- */

static void read_file_returns_the_contents_nul_terminated(void **state)
{
    fixture *f = *state;
    const char *path = path_in(f->dir, "data");
    write_file(path, "hello\0world", 11);
    char *out = NULL;
    size_t len = 0;
    ch_error err = {0};
    assert_int_equal(ch_read_file(path, 100, &out, &len, &err), CH_OK);
    assert_int_equal(len, 11);
    assert_memory_equal(out, "hello\0world", 11);
    assert_int_equal(out[11], '\0');
    free(out);
    /* the length is optional */
    assert_int_equal(ch_read_file(path, 100, &out, NULL, &err), CH_OK);
    assert_string_equal(out, "hello");
    free(out);
}

static void read_file_accepts_exactly_max_bytes_and_refuses_one_more(void **state)
{
    fixture *f = *state;
    char data[5000];
    memset(data, 'x', sizeof(data));
    const char *path = path_in(f->dir, "big");
    write_file(path, data, sizeof(data));
    char *out = NULL;
    size_t len = 0;
    ch_error err = {0};
    assert_int_equal(ch_read_file(path, 5000, &out, &len, &err), CH_OK);
    assert_int_equal(len, 5000);
    assert_memory_equal(out, data, 5000);
    free(out);
    out = (char *)"untouched";
    assert_int_equal(ch_read_file(path, 4999, &out, &len, &err), CH_ERR_TOO_LARGE);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "4999"));
}

static void read_file_bounds_a_source_that_has_no_size(void **state)
{
    char *out = NULL;
    ch_error err = {0};
    assert_int_equal(ch_read_file("/dev/zero", 100, &out, NULL, &err), CH_ERR_TOO_LARGE);
    assert_null(out);
    assert_string_equal(err.msg, "/dev/zero is larger than 100 bytes");
}

static void read_file_reports_a_missing_file_as_not_found(void **state)
{
    fixture *f = *state;
    const char *path = path_in(f->dir, "missing");
    char *out = NULL;
    ch_error err = {0};
    assert_int_equal(ch_read_file(path, 100, &out, NULL, &err), CH_ERR_NOT_FOUND);
    assert_int_equal(err.code, CH_ERR_NOT_FOUND);
    assert_null(out);
    assert_non_null(strstr(err.msg, path));
}

static void read_file_reports_a_directory_as_an_io_error(void **state)
{
    fixture *f = *state;
    char *out = NULL;
    ch_error err = {0};
    assert_int_equal(ch_read_file(f->dir, 100, &out, NULL, &err), CH_ERR_IO);
    assert_null(out);
    assert_non_null(strstr(err.msg, f->dir));
}

/* ---- white space ---- */

static void is_space_matches_go_ascii_white_space(void **state)
{
    static const char spaces[] = " \t\n\v\f\r";
    for (size_t i = 0; i < sizeof(spaces) - 1; i++)
        assert_true(ch_is_space(spaces[i]));
    static const char others[] = "a_0.\x01\x1f\x7f\x85\xa0";
    for (size_t i = 0; i < sizeof(others) - 1; i++)
        assert_false(ch_is_space(others[i]));
    assert_false(ch_is_space('\0'));
}

static void trim_drops_leading_and_trailing_white_space_only(void **state)
{
    const char *text = " \t a b \r\n";
    const char *s = text;
    size_t len = strlen(text);
    ch_trim(&s, &len);
    assert_ptr_equal(s, text + 3);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "a b", 3);

    s = " \v\f ";
    len = 4;
    ch_trim(&s, &len);
    assert_int_equal(len, 0);

    s = "";
    len = 0;
    ch_trim(&s, &len);
    assert_int_equal(len, 0);

    /* only [s, s + len) is looked at */
    text = "x  y";
    s = text;
    len = 2;
    ch_trim(&s, &len);
    assert_ptr_equal(s, text);
    assert_int_equal(len, 1);
}

/* ---- removing trees ---- */

static void make_dir(const char *path)
{
    if (mkdir(path, 0700) != 0)
        fail_msg("mkdir %s: %s", path, strerror(errno));
}

static void remove_tree_removes_a_nested_tree(void **state)
{
    fixture *f = *state;
    char root[256], p[320];
    snprintf(root, sizeof(root), "%s/tree", f->dir);
    make_dir(root);
    snprintf(p, sizeof(p), "%s/a", root);
    make_dir(p);
    snprintf(p, sizeof(p), "%s/a/b", root);
    make_dir(p);
    snprintf(p, sizeof(p), "%s/a/b/empty", root);
    make_dir(p);
    snprintf(p, sizeof(p), "%s/a/b/file", root);
    write_file(p, "x", 1);
    snprintf(p, sizeof(p), "%s/top", root);
    write_file(p, "y", 1);
    snprintf(p, sizeof(p), "%s/a/dangling", root);
    assert_int_equal(symlink("/nonexistent/target", p), 0);
    ch_error err = {0};
    assert_int_equal(ch_remove_tree(root, &err), CH_OK);
    assert_false(exists(root));
    assert_true(exists(f->dir));
}

static void remove_tree_never_follows_a_symlink_out_of_the_tree(void **state)
{
    fixture *f = *state;
    char root[256], outside[256], kept[320], p[320];
    snprintf(outside, sizeof(outside), "%s/outside", f->dir);
    make_dir(outside);
    snprintf(kept, sizeof(kept), "%s/kept", outside);
    write_file(kept, "k", 1);
    snprintf(root, sizeof(root), "%s/tree", f->dir);
    make_dir(root);
    snprintf(p, sizeof(p), "%s/to_dir", root);
    assert_int_equal(symlink(outside, p), 0);
    snprintf(p, sizeof(p), "%s/to_file", root);
    assert_int_equal(symlink(kept, p), 0);
    ch_error err = {0};
    assert_int_equal(ch_remove_tree(root, &err), CH_OK);
    assert_false(exists(root));
    assert_true(exists(outside));
    assert_true(exists(kept));
}

static void remove_tree_unlinks_a_symlink_given_as_the_root(void **state)
{
    fixture *f = *state;
    char link[256], target[256], kept[320];
    snprintf(target, sizeof(target), "%s/target", f->dir);
    make_dir(target);
    snprintf(kept, sizeof(kept), "%s/kept", target);
    write_file(kept, "k", 1);
    snprintf(link, sizeof(link), "%s/link", f->dir);
    assert_int_equal(symlink(target, link), 0);
    ch_error err = {0};
    assert_int_equal(ch_remove_tree(link, &err), CH_OK);
    assert_false(exists(link));
    assert_true(exists(kept));
}

static void remove_tree_of_a_missing_path_is_fine(void **state)
{
    fixture *f = *state;
    ch_error err = {0};
    assert_int_equal(ch_remove_tree(path_in(f->dir, "missing"), &err), CH_OK);
    assert_int_equal(ch_remove_tree(path_in(f->dir, "missing/deeper"), &err), CH_OK);
}

static void remove_tree_refuses_an_empty_path(void **state)
{
    ch_error err = {0};
    assert_int_equal(ch_remove_tree("", &err), CH_ERR_INVALID);
    assert_int_equal(err.code, CH_ERR_INVALID);
    assert_int_equal(ch_remove_tree(NULL, &err), CH_ERR_INVALID);
}

static void remove_tree_refuses_the_root_directory(void **state)
{
    /* Should the guard ever break, "/" must not be the host's: the call runs in a child
     * confined to a directory of its own, and a file there shows whether anything was
     * removed. */
    fixture *f = *state;
    char jail[256], sentinel[320];
    snprintf(jail, sizeof(jail), "%s/jail", f->dir);
    make_dir(jail);
    snprintf(sentinel, sizeof(sentinel), "%s/sentinel", jail);
    write_file(sentinel, "s", 1);
    pid_t pid = fork();
    assert_in_range(pid, 0, INT32_MAX);
    if (pid == 0) {
        if (chroot(jail) != 0 || chdir("/") != 0)
            _exit(100);
        ch_error err = {0};
        /* every spelling of the root, as one refused status each */
        bool refused = ch_remove_tree("/", &err) == CH_ERR_INVALID &&
                       ch_remove_tree("//", &err) == CH_ERR_INVALID &&
                       ch_remove_tree("/./", &err) == CH_ERR_INVALID;
        _exit(refused ? (int)CH_ERR_INVALID : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 100)
        fail_msg("cannot confine the check in a chroot: it needs CAP_SYS_CHROOT");
    assert_int_equal(WEXITSTATUS(status), CH_ERR_INVALID);
    assert_true(exists(sentinel));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base64_encode_matches_the_rfc4648_vectors),
        cmocka_unit_test(base64_decode_reverses_the_rfc4648_vectors),
        cmocka_unit_test(base64_decode_refuses_missing_or_misplaced_padding),
        cmocka_unit_test(base64_decode_refuses_characters_outside_the_alphabet),
        cmocka_unit_test(base64_decode_skips_cr_and_lf_anywhere_as_go_does),
        cmocka_unit_test(base64_decode_tolerates_non_zero_trailing_bits_as_go_std_encoding),
        cmocka_unit_test(base64url_encode_uses_the_url_alphabet_without_padding),
        cmocka_unit_test(base64url_decode_reads_unpadded_input_and_skips_cr_lf),
        cmocka_unit_test(base64url_decode_refuses_padding_and_the_standard_alphabet),
        cmocka_unit_test(hex_encode_writes_lower_case_pairs),
        cmocka_unit_test(md5_hex_matches_the_rfc1321_vectors),
        cmocka_unit_test(sha256_matches_the_fips180_vectors),
        cmocka_unit_test(fnv1a_matches_the_published_64_bit_vectors),
        cmocka_unit_test(request_id_is_32_lower_case_hex_of_a_v4_uuid),
        cmocka_unit_test(uuid_v4_has_dashes_the_version_and_the_variant),
        cmocka_unit_test(random_bytes_fill_the_whole_buffer),
        cmocka_unit_test(format_rfc3339_writes_utc_without_a_fraction),
        cmocka_unit_test(parse_rfc3339_reads_utc_and_round_trips_with_format),
        cmocka_unit_test(parse_rfc3339_applies_offsets),
        cmocka_unit_test(parse_rfc3339_drops_fractions_and_accepts_lower_case_t_and_z),
        cmocka_unit_test(parse_rfc3339_refuses_malformed_input),
        cmocka_unit_test(parse_rfc3339_accepts_a_leap_day),
        cmocka_unit_test(now_unix_follows_the_wall_clock),
        cmocka_unit_test(backoff_near_the_int64_limit_stays_in_range_without_overflow),
        cmocka_unit_test(now_mono_ms_follows_the_monotonic_clock_and_never_goes_back),
        cmocka_unit_test(cond_wait_until_returns_false_at_once_for_a_deadline_already_passed),
        cmocka_unit_test(cond_wait_until_returns_false_only_once_the_deadline_has_passed),
        cmocka_unit_test(cond_wait_until_returns_true_when_signalled),
        cmocka_unit_test(identity_valid_accepts_dns_like_names_up_to_253_characters),
        cmocka_unit_test(identity_valid_refuses_wildcards_spaces_and_empty_labels),
        cmocka_unit_test(identity_valid_refuses_a_label_longer_than_63_characters),
        cmocka_unit_test(backoff_doubles_from_the_base_with_jitter_in_half_to_three_halves),
        cmocka_unit_test(backoff_is_capped_at_max_before_the_jitter),
        cmocka_unit_test(backoff_of_one_millisecond_or_less_has_no_jitter),
        cmocka_unit_test_setup_teardown(read_file_returns_the_contents_nul_terminated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(read_file_accepts_exactly_max_bytes_and_refuses_one_more,
                                        setup, teardown),
        cmocka_unit_test(read_file_bounds_a_source_that_has_no_size),
        cmocka_unit_test_setup_teardown(read_file_reports_a_missing_file_as_not_found, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(read_file_reports_a_directory_as_an_io_error, setup,
                                        teardown),
        cmocka_unit_test(is_space_matches_go_ascii_white_space),
        cmocka_unit_test(trim_drops_leading_and_trailing_white_space_only),
        cmocka_unit_test_setup_teardown(remove_tree_removes_a_nested_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_tree_never_follows_a_symlink_out_of_the_tree, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(remove_tree_unlinks_a_symlink_given_as_the_root, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(remove_tree_of_a_missing_path_is_fine, setup, teardown),
        cmocka_unit_test(remove_tree_refuses_an_empty_path),
        cmocka_unit_test_setup_teardown(remove_tree_refuses_the_root_directory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
