#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "choria/metrics.h"

static char *render(ch_metrics *m)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_error err;
    assert_int_equal(ch_metrics_render(m, &b, &err), CH_OK);
    char *s = ch_buf_steal(&b, NULL);
    assert_non_null(s);
    return s;
}

static ch_metric *series(ch_metric_family *f, const char *const *values)
{
    ch_metric *s = NULL;
    ch_error err;
    assert_int_equal(ch_metric_family_series(f, values, &s, &err), CH_OK);
    assert_non_null(s);
    return s;
}

static void test_exposition_bytes_exact_sorted_with_help_and_type(void **state)
{
    ch_metrics *m = ch_metrics_new();
    ch_metric_family *cnt, *gauge, *sum, *quant, *empty;
    ch_error err;
    const char *const two[] = {"site", "rpc"};
    const char *const one[] = {"site"};
    const double obj[] = {0.9, 0.5};

    assert_int_equal(ch_metrics_family_add(m, "b_requests", "Requests served", CH_METRIC_COUNTER,
                                           two, 2, NULL, 0, &cnt, &err),
                     CH_OK);
    assert_int_equal(ch_metrics_family_add(m, "a_gauge", "A gauge", CH_METRIC_GAUGE, NULL, 0, NULL,
                                           0, &gauge, &err),
                     CH_OK);
    assert_int_equal(
        ch_metrics_family_add(m, "c_time", "Time", CH_METRIC_SUMMARY, one, 1, NULL, 0, &sum, &err),
        CH_OK);
    assert_int_equal(ch_metrics_family_add(m, "d_q", "Quantiles", CH_METRIC_SUMMARY, NULL, 0, obj,
                                           2, &quant, &err),
                     CH_OK);
    assert_int_equal(ch_metrics_family_add(m, "e_empty", "Never used", CH_METRIC_COUNTER, one, 1,
                                           NULL, 0, &empty, &err),
                     CH_OK);

    ch_metric *xy = series(cnt, (const char *const[]){"lab", "x#y"});
    ch_metric_inc(xy);
    ch_metric_inc(xy);
    ch_metric_inc(xy);
    ch_metric_add(series(cnt, (const char *const[]){"lab", "a#b"}), 2.5);
    ch_metric_set(series(gauge, NULL), -4);
    ch_metric *t = series(sum, (const char *const[]){"s"});
    ch_metric_observe(t, 0.25);
    ch_metric_observe(t, 0.5);
    ch_metric *q = series(quant, NULL);
    for (int i = 1; i <= 10; i++)
        ch_metric_observe(q, i);

    char *out = render(m);
    assert_string_equal(out, "# HELP a_gauge A gauge\n"
                             "# TYPE a_gauge gauge\n"
                             "a_gauge -4\n"
                             "# HELP b_requests Requests served\n"
                             "# TYPE b_requests counter\n"
                             "b_requests{site=\"lab\",rpc=\"a#b\"} 2.5\n"
                             "b_requests{site=\"lab\",rpc=\"x#y\"} 3\n"
                             "# HELP c_time Time\n"
                             "# TYPE c_time summary\n"
                             "c_time_sum{site=\"s\"} 0.75\n"
                             "c_time_count{site=\"s\"} 2\n"
                             "# HELP d_q Quantiles\n"
                             "# TYPE d_q summary\n"
                             "d_q{quantile=\"0.5\"} 5\n"
                             "d_q{quantile=\"0.9\"} 9\n"
                             "d_q_sum 55\n"
                             "d_q_count 10\n");
    free(out);
    ch_metrics_free(m);
}

static void test_label_values_and_help_are_escaped(void **state)
{
    ch_metrics *m = ch_metrics_new();
    ch_metric_family *f;
    ch_error err;
    const char *const one[] = {"site"};
    assert_int_equal(ch_metrics_family_add(m, "x", "back\\slash\nnew \"quoted\"", CH_METRIC_COUNTER,
                                           one, 1, NULL, 0, &f, &err),
                     CH_OK);
    series(f, (const char *const[]){"a\"b\\c\nd"});
    char *out = render(m);
    /* HELP escapes only backslash and newline; label values also the double quote. */
    assert_string_equal(out, "# HELP x back\\\\slash\\nnew \"quoted\"\n"
                             "# TYPE x counter\n"
                             "x{site=\"a\\\"b\\\\c\\nd\"} 0\n");
    free(out);
    ch_metrics_free(m);
}

static void test_floats_use_shortest_round_trip_form(void **state)
{
    ch_metrics *m = ch_metrics_new();
    ch_metric_family *f;
    ch_error err;
    const char *const one[] = {"k"};
    assert_int_equal(ch_metrics_family_add(m, "g", "h", CH_METRIC_GAUGE, one, 1, NULL, 0, &f, &err),
                     CH_OK);
    ch_metric_set(series(f, (const char *const[]){"a"}), 0.1);
    ch_metric_set(series(f, (const char *const[]){"b"}), 1e20);
    ch_metric_set(series(f, (const char *const[]){"c"}), INFINITY);
    ch_metric_set(series(f, (const char *const[]){"d"}), -INFINITY);
    ch_metric_set(series(f, (const char *const[]){"e"}), NAN);
    ch_metric_set(series(f, (const char *const[]){"f"}), 1.0 / 3.0);
    ch_metric_set(series(f, (const char *const[]){"g"}), 123456789);
    char *out = render(m);
    assert_string_equal(out, "# HELP g h\n# TYPE g gauge\n"
                             "g{k=\"a\"} 0.1\n"
                             "g{k=\"b\"} 1e+20\n"
                             "g{k=\"c\"} +Inf\n"
                             "g{k=\"d\"} -Inf\n"
                             "g{k=\"e\"} NaN\n"
                             "g{k=\"f\"} 0.3333333333333333\n"
                             "g{k=\"g\"} 123456789\n");
    free(out);
    ch_metrics_free(m);
}

static void test_invalid_families_and_labels_are_refused(void **state)
{
    ch_metrics *m = ch_metrics_new();
    ch_metric_family *f;
    ch_error err;
    const char *const dup[] = {"a", "a"};
    const char *const reserved[] = {"__x"};
    const char *const quantile[] = {"quantile"};
    const char *const bad[] = {"a-b"};
    const double bad_obj[] = {1.0};
    const double obj[] = {0.5};

    assert_int_equal(
        ch_metrics_family_add(m, "9x", "", CH_METRIC_COUNTER, NULL, 0, NULL, 0, &f, &err),
        CH_ERR_INVALID);
    assert_int_equal(
        ch_metrics_family_add(m, "a b", "", CH_METRIC_COUNTER, NULL, 0, NULL, 0, &f, &err),
        CH_ERR_INVALID);
    assert_int_equal(
        ch_metrics_family_add(m, "x", "", CH_METRIC_COUNTER, dup, 2, NULL, 0, &f, &err),
        CH_ERR_INVALID);
    assert_int_equal(
        ch_metrics_family_add(m, "x", "", CH_METRIC_COUNTER, reserved, 1, NULL, 0, &f, &err),
        CH_ERR_INVALID);
    assert_int_equal(
        ch_metrics_family_add(m, "x", "", CH_METRIC_SUMMARY, quantile, 1, NULL, 0, &f, &err),
        CH_ERR_INVALID);
    assert_int_equal(ch_metrics_family_add(m, "x", "", CH_METRIC_GAUGE, bad, 1, NULL, 0, &f, &err),
                     CH_ERR_INVALID);
    assert_int_equal(
        ch_metrics_family_add(m, "x", "", CH_METRIC_SUMMARY, NULL, 0, bad_obj, 1, &f, &err),
        CH_ERR_INVALID);
    assert_int_equal(ch_metrics_family_add(m, "x", "", CH_METRIC_GAUGE, NULL, 0, obj, 1, &f, &err),
                     CH_ERR_INVALID);
    assert_int_equal(
        ch_metrics_family_add(m, "ns:x", "", CH_METRIC_COUNTER, NULL, 0, NULL, 0, &f, &err), CH_OK);
    assert_int_equal(
        ch_metrics_family_add(m, "ns:x", "", CH_METRIC_GAUGE, NULL, 0, NULL, 0, &f, &err),
        CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "registered twice"));

    const char *const one[] = {"site"};
    assert_int_equal(
        ch_metrics_family_add(m, "y", "", CH_METRIC_COUNTER, one, 1, NULL, 0, &f, &err), CH_OK);
    char big[CH_METRICS_LABEL_VALUE_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ch_metric *s = NULL;
    assert_int_equal(ch_metric_family_series(f, (const char *const[]){big}, &s, &err),
                     CH_ERR_TOO_LARGE);
    assert_int_equal(ch_metric_family_series(f, (const char *const[]){NULL}, &s, &err),
                     CH_ERR_INVALID);
    assert_null(s);
    ch_metrics_free(m);
}

static void test_counters_ignore_decrease_and_calls_of_other_types(void **state)
{
    ch_metrics *m = ch_metrics_new();
    ch_metric_family *c, *g;
    ch_error err;
    assert_int_equal(
        ch_metrics_family_add(m, "c", "", CH_METRIC_COUNTER, NULL, 0, NULL, 0, &c, &err), CH_OK);
    assert_int_equal(ch_metrics_family_add(m, "g", "", CH_METRIC_GAUGE, NULL, 0, NULL, 0, &g, &err),
                     CH_OK);
    ch_metric *cs = series(c, NULL), *gs = series(g, NULL);
    ch_metric_add(cs, 5);
    ch_metric_add(cs, -2);
    ch_metric_dec(cs);
    ch_metric_set(cs, 100);
    ch_metric_observe(cs, 7);
    ch_metric_add(cs, NAN);
    assert_float_equal(ch_metric_value(cs), 5, 0);
    ch_metric_inc(gs);
    ch_metric_inc(gs);
    ch_metric_dec(gs);
    ch_metric_add(gs, -3);
    ch_metric_observe(gs, 9);
    assert_float_equal(ch_metric_value(gs), -2, 0);
    ch_metric_inc(NULL); /* an unconfigured handle is harmless */
    ch_metric_observe(NULL, 1);
    assert_int_equal(ch_metric_count(NULL), 0);
    ch_metrics_free(m);
}

#define THREADS 4
#define PER_THREAD 100000

typedef struct {
    ch_metric *counter, *gauge, *summary;
    ch_metric_family *fam;
    ch_metric *created;
} race;

static void *hammer(void *arg)
{
    race *r = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        ch_metric_inc(r->counter);
        ch_metric_inc(r->gauge);
        ch_metric_dec(r->gauge);
        ch_metric_observe(r->summary, 1.0);
    }
    return NULL;
}

static void *create(void *arg)
{
    race *r = arg;
    ch_metric *s = NULL;
    if (ch_metric_family_series(r->fam, (const char *const[]){"same"}, &s, NULL) == CH_OK)
        r->created = s;
    return NULL;
}

static void test_four_threads_of_100k_updates_lose_nothing(void **state)
{
    ch_metrics *m = ch_metrics_new();
    ch_metric_family *c, *g, *s;
    ch_error err;
    const double obj[] = {0.5};
    assert_int_equal(
        ch_metrics_family_add(m, "c", "", CH_METRIC_COUNTER, NULL, 0, NULL, 0, &c, &err), CH_OK);
    assert_int_equal(ch_metrics_family_add(m, "g", "", CH_METRIC_GAUGE, NULL, 0, NULL, 0, &g, &err),
                     CH_OK);
    assert_int_equal(
        ch_metrics_family_add(m, "s", "", CH_METRIC_SUMMARY, NULL, 0, obj, 1, &s, &err), CH_OK);
    race r = {series(c, NULL), series(g, NULL), series(s, NULL), NULL, NULL};
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &r), 0);
    /* Render concurrently too: the HTTP thread reads while workers write. */
    for (int i = 0; i < 20; i++)
        free(render(m));
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);

    assert_float_equal(ch_metric_value(r.counter), THREADS * PER_THREAD, 0);
    assert_float_equal(ch_metric_value(r.gauge), 0, 0);
    assert_int_equal(ch_metric_count(r.summary), THREADS * PER_THREAD);
    assert_float_equal(ch_metric_value(r.summary), THREADS * PER_THREAD, 0);
    char *out = render(m);
    assert_non_null(strstr(out, "\nc 400000\n"));
    assert_non_null(strstr(out, "\ns{quantile=\"0.5\"} 1\n"));
    free(out);
    ch_metrics_free(m);
}

static void test_racing_creation_of_one_label_set_yields_one_series(void **state)
{
    ch_metrics *m = ch_metrics_new();
    ch_metric_family *f;
    ch_error err;
    const char *const one[] = {"k"};
    assert_int_equal(
        ch_metrics_family_add(m, "f", "", CH_METRIC_COUNTER, one, 1, NULL, 0, &f, &err), CH_OK);
    race r[8];
    pthread_t th[8];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 8; i++) {
        r[i].fam = f;
        assert_int_equal(pthread_create(&th[i], NULL, create, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++)
        assert_ptr_equal(r[i].created, r[0].created);
    char *out = render(m);
    assert_string_equal(out, "# HELP f \n# TYPE f counter\nf{k=\"same\"} 0\n");
    free(out);
    ch_metrics_free(m);
}

static double quantile_of(const char *out, const char *q)
{
    char key[64];
    snprintf(key, sizeof(key), "{quantile=\"%s\"} ", q);
    const char *p = strstr(out, key);
    assert_non_null(p);
    return strtod(p + strlen(key), NULL);
}

static void test_summary_quantiles_follow_the_recent_window(void **state)
{
    ch_metrics *m = ch_metrics_new();
    ch_metric_family *f;
    ch_error err;
    const double obj[] = {0.5, 0.9, 0.99};
    assert_int_equal(
        ch_metrics_family_add(m, "lat", "", CH_METRIC_SUMMARY, NULL, 0, obj, 3, &f, &err), CH_OK);
    ch_metric *s = series(f, NULL);

    char *out = render(m); /* no observations: NaN, as client_golang */
    assert_non_null(strstr(out, "lat{quantile=\"0.5\"} NaN\n"));
    assert_non_null(strstr(out, "lat_count 0\n"));
    free(out);

    /* 1..1000 in a shuffled order */
    for (int i = 0; i < 1000; i++)
        ch_metric_observe(s, (double)((i * 337) % 1000 + 1));
    out = render(m);
    assert_float_equal(quantile_of(out, "0.5"), 500, 1);
    assert_float_equal(quantile_of(out, "0.9"), 900, 1);
    assert_float_equal(quantile_of(out, "0.99"), 990, 1);
    assert_non_null(strstr(out, "lat_sum 500500\nlat_count 1000\n"));
    free(out);

    /* 5000 slow observations push the old ones out of the window; sum/count keep all. */
    for (int i = 0; i < 5000; i++)
        ch_metric_observe(s, 10000 + i % 10);
    out = render(m);
    assert_true(quantile_of(out, "0.5") >= 10000 && quantile_of(out, "0.5") <= 10009);
    assert_true(quantile_of(out, "0.99") <= 10009);
    assert_non_null(strstr(out, "lat_count 6000\n"));
    free(out);
    ch_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition_bytes_exact_sorted_with_help_and_type),
        cmocka_unit_test(test_label_values_and_help_are_escaped),
        cmocka_unit_test(test_floats_use_shortest_round_trip_form),
        cmocka_unit_test(test_invalid_families_and_labels_are_refused),
        cmocka_unit_test(test_counters_ignore_decrease_and_calls_of_other_types),
        cmocka_unit_test(test_four_threads_of_100k_updates_lose_nothing),
        cmocka_unit_test(test_racing_creation_of_one_label_set_yields_one_series),
        cmocka_unit_test(test_summary_quantiles_follow_the_recent_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
