/* Prometheus registry and text exposition format 0.0.4. */
#include "choria/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ch_metric {
    ch_metric_family *fam;
    ch_metric *_Atomic next;
    char *labels[CH_METRICS_MAX_LABELS];
    /* Doubles kept as their bit patterns so plain 64-bit atomics (and CAS for add) work. */
    _Atomic uint64_t value; /* counter/gauge value, summary sum */
    _Atomic uint64_t count; /* summary observations */
    _Atomic uint64_t head;  /* next ring slot (summaries with objectives) */
    _Atomic uint64_t *ring; /* CH_METRICS_WINDOW doubles, NaN = not written yet */
};

struct ch_metric_family {
    ch_metrics *reg;
    ch_metric_family *next; /* registry list, guarded by reg->mu */
    char *name;
    char *help;
    ch_metric_type type;
    size_t nlabels;
    char *label_names[CH_METRICS_MAX_LABELS];
    size_t nobjectives;
    double objectives[CH_METRICS_MAX_OBJECTIVES];
    ch_metric *_Atomic series; /* prepended under reg->mu, read lock-free */
};

struct ch_metrics {
    pthread_mutex_t mu;
    ch_metric_family *families;
    size_t nfamilies;
};

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, dbits(bitsd(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

ch_metrics *ch_metrics_new(void)
{
    ch_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

static void series_free(ch_metric *s)
{
    for (size_t i = 0; i < CH_METRICS_MAX_LABELS; i++)
        free(s->labels[i]);
    free(s->ring);
    free(s);
}

static void family_free(ch_metric_family *f)
{
    ch_metric *s = atomic_load(&f->series);
    while (s != NULL) {
        ch_metric *next = atomic_load(&s->next);
        series_free(s);
        s = next;
    }
    for (size_t i = 0; i < CH_METRICS_MAX_LABELS; i++)
        free(f->label_names[i]);
    free(f->name);
    free(f->help);
    free(f);
}

void ch_metrics_free(ch_metrics *m)
{
    if (m == NULL)
        return;
    ch_metric_family *f = m->families;
    while (f != NULL) {
        ch_metric_family *next = f->next;
        family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static bool valid_name(const char *s, bool colon)
{
    if (s == NULL || *s == '\0' || strlen(s) > CH_METRICS_NAME_MAX)
        return false;
    for (size_t i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static ch_metric_family *find_family(ch_metrics *m, const char *name)
{
    for (ch_metric_family *f = m->families; f != NULL; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static ch_status check_family(const char *name, ch_metric_type type, const char *const *label_names,
                              size_t nlabels, const double *objectives, size_t nobjectives,
                              ch_error *err)
{
    if (!valid_name(name, true))
        return ch_error_set(err, CH_ERR_INVALID, "invalid metric name");
    if (type != CH_METRIC_COUNTER && type != CH_METRIC_GAUGE && type != CH_METRIC_SUMMARY)
        return ch_error_set(err, CH_ERR_INVALID, "%s: invalid metric type", name);
    if (nlabels > CH_METRICS_MAX_LABELS || (nlabels > 0 && label_names == NULL))
        return ch_error_set(err, CH_ERR_INVALID, "%s: too many labels", name);
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_name(label_names[i], false) || strncmp(label_names[i], "__", 2) == 0 ||
            (type == CH_METRIC_SUMMARY && strcmp(label_names[i], "quantile") == 0))
            return ch_error_set(err, CH_ERR_INVALID, "%s: invalid label name", name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(label_names[i], label_names[j]) == 0)
                return ch_error_set(err, CH_ERR_INVALID, "%s: duplicate label %s", name,
                                    label_names[i]);
    }
    if (nobjectives > 0 && type != CH_METRIC_SUMMARY)
        return ch_error_set(err, CH_ERR_INVALID, "%s: objectives on a non-summary", name);
    if (nobjectives > CH_METRICS_MAX_OBJECTIVES || (nobjectives > 0 && objectives == NULL))
        return ch_error_set(err, CH_ERR_INVALID, "%s: too many objectives", name);
    for (size_t i = 0; i < nobjectives; i++)
        if (!(objectives[i] > 0 && objectives[i] < 1))
            return ch_error_set(err, CH_ERR_INVALID, "%s: objective outside (0,1)", name);
    return CH_OK;
}

ch_status ch_metrics_family_add(ch_metrics *m, const char *name, const char *help,
                                ch_metric_type type, const char *const *label_names, size_t nlabels,
                                const double *objectives, size_t nobjectives,
                                ch_metric_family **out, ch_error *err)
{
    ch_status st;
    if (m == NULL || out == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no registry");
    *out = NULL;
    st = check_family(name, type, label_names, nlabels, objectives, nobjectives, err);
    if (st != CH_OK)
        return st;

    ch_metric_family *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    f->reg = m;
    f->type = type;
    f->nlabels = nlabels;
    f->nobjectives = nobjectives;
    f->name = strdup(name);
    f->help = strdup(help != NULL ? help : "");
    bool oom = f->name == NULL || f->help == NULL;
    for (size_t i = 0; i < nlabels; i++) {
        f->label_names[i] = strdup(label_names[i]);
        oom = oom || f->label_names[i] == NULL;
    }
    for (size_t i = 0; i < nobjectives; i++)
        f->objectives[i] = objectives[i];
    /* Ascending quantiles in the output, whatever order the caller gave. */
    for (size_t i = 1; i < nobjectives; i++)
        for (size_t j = i; j > 0 && f->objectives[j - 1] > f->objectives[j]; j--) {
            double t = f->objectives[j];
            f->objectives[j] = f->objectives[j - 1];
            f->objectives[j - 1] = t;
        }
    if (oom) {
        family_free(f);
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }

    pthread_mutex_lock(&m->mu);
    if (find_family(m, name) != NULL) {
        pthread_mutex_unlock(&m->mu);
        family_free(f);
        return ch_error_set(err, CH_ERR_INVALID, "metric %s registered twice", name);
    }
    f->next = m->families;
    m->families = f;
    m->nfamilies++;
    pthread_mutex_unlock(&m->mu);
    *out = f;
    return CH_OK;
}

static ch_metric *find_series(ch_metric_family *f, const char *const *values)
{
    for (ch_metric *s = atomic_load_explicit(&f->series, memory_order_acquire); s != NULL;
         s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        size_t i = 0;
        while (i < f->nlabels && strcmp(s->labels[i], values[i]) == 0)
            i++;
        if (i == f->nlabels)
            return s;
    }
    return NULL;
}

static ch_metric *series_new(ch_metric_family *f, const char *const *values)
{
    ch_metric *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->fam = f;
    bool oom = false;
    for (size_t i = 0; i < f->nlabels; i++) {
        s->labels[i] = strdup(values[i]);
        oom = oom || s->labels[i] == NULL;
    }
    if (!oom && f->nobjectives > 0) {
        s->ring = malloc(CH_METRICS_WINDOW * sizeof(*s->ring));
        oom = s->ring == NULL;
        for (size_t i = 0; !oom && i < CH_METRICS_WINDOW; i++)
            atomic_init(&s->ring[i], dbits(NAN));
    }
    if (oom) {
        series_free(s);
        return NULL;
    }
    atomic_init(&s->value, dbits(0.0));
    return s;
}

ch_status ch_metric_family_series(ch_metric_family *f, const char *const *label_values,
                                  ch_metric **out, ch_error *err)
{
    if (f == NULL || out == NULL || (f->nlabels > 0 && label_values == NULL))
        return ch_error_set(err, CH_ERR_INVALID, "no metric family or label values");
    *out = NULL;
    for (size_t i = 0; i < f->nlabels; i++) {
        if (label_values[i] == NULL)
            return ch_error_set(err, CH_ERR_INVALID, "%s: missing value for label %s", f->name,
                                f->label_names[i]);
        if (strlen(label_values[i]) > CH_METRICS_LABEL_VALUE_MAX)
            return ch_error_set(err, CH_ERR_TOO_LARGE, "%s: value for label %s too long", f->name,
                                f->label_names[i]);
    }
    ch_metric *s = find_series(f, label_values);
    if (s != NULL) {
        *out = s;
        return CH_OK;
    }

    pthread_mutex_lock(&f->reg->mu);
    s = find_series(f, label_values); /* another thread may have created it meanwhile */
    if (s == NULL) {
        s = series_new(f, label_values);
        if (s != NULL) {
            atomic_store_explicit(&s->next, atomic_load(&f->series), memory_order_relaxed);
            atomic_store_explicit(&f->series, s, memory_order_release);
        }
    }
    pthread_mutex_unlock(&f->reg->mu);
    if (s == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    *out = s;
    return CH_OK;
}

void ch_metric_inc(ch_metric *s)
{
    ch_metric_add(s, 1);
}

void ch_metric_dec(ch_metric *s)
{
    if (s != NULL && s->fam->type == CH_METRIC_GAUGE)
        atomic_add_double(&s->value, -1);
}

void ch_metric_add(ch_metric *s, double v)
{
    if (s == NULL || isnan(v) || s->fam->type == CH_METRIC_SUMMARY)
        return;
    if (s->fam->type == CH_METRIC_COUNTER && v < 0)
        return;
    atomic_add_double(&s->value, v);
}

void ch_metric_set(ch_metric *s, double v)
{
    if (s != NULL && s->fam->type == CH_METRIC_GAUGE)
        atomic_store_explicit(&s->value, dbits(v), memory_order_relaxed);
}

void ch_metric_observe(ch_metric *s, double v)
{
    if (s == NULL || isnan(v) || s->fam->type != CH_METRIC_SUMMARY)
        return;
    atomic_add_double(&s->value, v);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    if (s->ring != NULL) {
        uint64_t i = atomic_fetch_add_explicit(&s->head, 1, memory_order_relaxed);
        atomic_store_explicit(&s->ring[i % CH_METRICS_WINDOW], dbits(v), memory_order_relaxed);
    }
}

double ch_metric_value(const ch_metric *s)
{
    if (s == NULL)
        return 0;
    return bitsd(atomic_load_explicit(&((ch_metric *)s)->value, memory_order_relaxed));
}

uint64_t ch_metric_count(const ch_metric *s)
{
    if (s == NULL)
        return 0;
    return atomic_load_explicit(&((ch_metric *)s)->count, memory_order_relaxed);
}

/* ---------------------------------------------------------------------------------------
 * Exposition */

/* Go's strconv 'g' -1 gives the shortest round-trip form; integers are written in full
 * (both parse the same) because "1500" reads better than "1.5e+03". */
static void put_float(ch_buf *b, double v)
{
    if (isnan(v)) {
        ch_buf_append_str(b, "NaN");
        return;
    }
    if (isinf(v)) {
        ch_buf_append_str(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == 0) {
        ch_buf_append_str(b, "0");
        return;
    }
    /* (libm is not linked into libchoria, hence no trunc/fabs/ceil here) */
    if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v) {
        ch_buf_printf(b, "%.0f", v);
        return;
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    ch_buf_append_str(b, tmp);
}

static void put_escaped(ch_buf *b, const char *s, bool quote)
{
    const char *run = s;
    for (; *s != '\0'; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (quote && *s == '"')
            rep = "\\\"";
        if (rep != NULL) {
            ch_buf_append(b, run, (size_t)(s - run));
            ch_buf_append_str(b, rep);
            run = s + 1;
        }
    }
    ch_buf_append(b, run, (size_t)(s - run));
}

/* name{l1="v1",l2="v2"[,quantile="q"]} value */
static void put_sample(ch_buf *b, const ch_metric *s, const char *suffix, const double *quantile,
                       double v)
{
    const ch_metric_family *f = s->fam;
    ch_buf_append_str(b, f->name);
    ch_buf_append_str(b, suffix);
    if (f->nlabels > 0 || quantile != NULL) {
        ch_buf_append_str(b, "{");
        for (size_t i = 0; i < f->nlabels; i++) {
            ch_buf_printf(b, "%s%s=\"", i > 0 ? "," : "", f->label_names[i]);
            put_escaped(b, s->labels[i], true);
            ch_buf_append_str(b, "\"");
        }
        if (quantile != NULL) {
            ch_buf_printf(b, "%squantile=\"", f->nlabels > 0 ? "," : "");
            put_float(b, *quantile);
            ch_buf_append_str(b, "\"");
        }
        ch_buf_append_str(b, "}");
    }
    ch_buf_append_str(b, " ");
    put_float(b, v);
    ch_buf_append_str(b, "\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void put_summary(ch_buf *b, ch_metric *s, double *scratch)
{
    const ch_metric_family *f = s->fam;
    if (f->nobjectives > 0) {
        size_t n = 0;
        for (size_t i = 0; i < CH_METRICS_WINDOW; i++) {
            double v = bitsd(atomic_load_explicit(&s->ring[i], memory_order_relaxed));
            if (!isnan(v))
                scratch[n++] = v;
        }
        qsort(scratch, n, sizeof(*scratch), cmp_double);
        for (size_t q = 0; q < f->nobjectives; q++) {
            double v = NAN;
            if (n > 0) {
                /* index ceil(q*n)-1: the smallest value with at least q*n at or below it */
                double rank = f->objectives[q] * (double)n;
                size_t idx = (size_t)rank;
                if ((double)idx == rank && idx > 0)
                    idx--;
                v = scratch[idx < n ? idx : n - 1];
            }
            put_sample(b, s, "", &f->objectives[q], v);
        }
    }
    /* Not one snapshot: an observe racing with this may show in one of _sum and _count. */
    uint64_t count = ch_metric_count(s);
    put_sample(b, s, "_sum", NULL, ch_metric_value(s));
    put_sample(b, s, "_count", NULL, (double)count);
}

static int cmp_family(const void *a, const void *b)
{
    const ch_metric_family *x = *(ch_metric_family *const *)a;
    const ch_metric_family *y = *(ch_metric_family *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_series(const void *a, const void *b)
{
    const ch_metric *x = *(ch_metric *const *)a;
    const ch_metric *y = *(ch_metric *const *)b;
    for (size_t i = 0; i < x->fam->nlabels; i++) {
        int c = strcmp(x->labels[i], y->labels[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

static const char *type_name(ch_metric_type t)
{
    switch (t) {
    case CH_METRIC_COUNTER:
        return "counter";
    case CH_METRIC_GAUGE:
        return "gauge";
    default:
        return "summary";
    }
}

static void put_family(ch_buf *b, ch_metric_family *f, double *scratch)
{
    size_t n = 0;
    for (ch_metric *s = atomic_load_explicit(&f->series, memory_order_acquire); s != NULL;
         s = atomic_load_explicit(&s->next, memory_order_acquire))
        n++;
    if (n == 0)
        return; /* as client_golang: a vector without series is not exposed */
    ch_metric **list = malloc(n * sizeof(*list));
    if (list == NULL) {
        b->failed = true;
        return;
    }
    size_t i = 0;
    for (ch_metric *s = atomic_load_explicit(&f->series, memory_order_acquire); s != NULL && i < n;
         s = atomic_load_explicit(&s->next, memory_order_acquire))
        list[i++] = s;
    qsort(list, n, sizeof(*list), cmp_series);

    ch_buf_printf(b, "# HELP %s ", f->name);
    put_escaped(b, f->help, false);
    ch_buf_printf(b, "\n# TYPE %s %s\n", f->name, type_name(f->type));
    for (i = 0; i < n; i++) {
        if (f->type == CH_METRIC_SUMMARY)
            put_summary(b, list[i], scratch);
        else
            put_sample(b, list[i], "", NULL, ch_metric_value(list[i]));
    }
    free(list);
}

ch_status ch_metrics_render(ch_metrics *m, ch_buf *out, ch_error *err)
{
    if (m == NULL || out == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no registry");
    ch_status st = CH_OK;
    double *scratch = malloc(CH_METRICS_WINDOW * sizeof(*scratch));

    pthread_mutex_lock(&m->mu);
    ch_metric_family **fams = malloc((m->nfamilies > 0 ? m->nfamilies : 1) * sizeof(*fams));
    if (fams == NULL || scratch == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t n = 0;
    for (ch_metric_family *f = m->families; f != NULL; f = f->next)
        fams[n++] = f;
    qsort(fams, n, sizeof(*fams), cmp_family);
    for (size_t i = 0; i < n; i++)
        put_family(out, fams[i], scratch);
    if (out->failed)
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory rendering metrics");
out:
    pthread_mutex_unlock(&m->mu);
    free(fams);
    free(scratch);
    return st;
}

/* The existing family when name is already registered with the same shape (a second site in
 * one registry), else a new one. */
ch_status ch_metrics_family_get(ch_metrics *m, const char *name, const char *help,
                                ch_metric_type type, const char *const *labels, size_t nlabels,
                                ch_metric_family **out, ch_error *err)
{
    pthread_mutex_lock(&m->mu);
    ch_metric_family *f = find_family(m, name);
    pthread_mutex_unlock(&m->mu);
    if (f == NULL)
        return ch_metrics_family_add(m, name, help, type, labels, nlabels, NULL, 0, out, err);
    bool same = f->type == type && f->nlabels == nlabels;
    for (size_t i = 0; same && i < nlabels; i++)
        same = strcmp(f->label_names[i], labels[i]) == 0;
    if (!same)
        return ch_error_set(err, CH_ERR_INVALID, "metric %s registered with another type", name);
    *out = f;
    return CH_OK;
}
