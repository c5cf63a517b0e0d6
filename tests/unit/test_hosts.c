/* hosts: dedupe, bound, generations, staleness, hold, pause, shutdown, concurrency. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <pthread.h>

#include "hosts.h"

static int64_t fake_clock(void *ctx)
{
    return *(int64_t *)ctx;
}

static prov_hosts *mk(size_t cap, int64_t interval, int64_t hold, int64_t *clk)
{
    prov_hosts_opts o = {.capacity = cap, .interval_ms = interval, .hold_ms = hold};
    if (clk) {
        o.clock = fake_clock;
        o.clock_ctx = clk;
    }
    prov_hosts *h = NULL;
    assert_int_equal(prov_hosts_new(&o, &h, NULL), CH_OK);
    return h;
}

static void queue_is_fifo_and_dedupes_queued_and_busy(void **state)
{
    (void)state;
    prov_hosts *h = mk(10, 0, 0, NULL);
    char id[CH_MAX_IDENTITY_LEN + 1];
    uint64_t gen;
    assert_int_equal(prov_hosts_add(h, "a.example"), PROV_HOSTS_ADDED);
    assert_int_equal(prov_hosts_add(h, "b.example"), PROV_HOSTS_ADDED);
    assert_int_equal(prov_hosts_add(h, "a.example"), PROV_HOSTS_DUPLICATE);
    assert_int_equal(prov_hosts_take(h, 0, id, &gen), CH_OK);
    assert_string_equal(id, "a.example");
    assert_int_equal(prov_hosts_add(h, "a.example"), PROV_HOSTS_DUPLICATE); /* busy */
    prov_hosts_stats st;
    prov_hosts_stats_get(h, &st);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.busy, 1);
    assert_int_equal(st.known, 2);
    assert_int_equal(st.duplicates, 2);
    prov_hosts_done(h, "a.example", gen, false); /* failure: forgotten at once */
    assert_int_equal(prov_hosts_add(h, "a.example"), PROV_HOSTS_ADDED);
    assert_int_equal(prov_hosts_take(h, 0, id, &gen), CH_OK);
    assert_string_equal(id, "b.example");
    assert_int_equal(prov_hosts_take(h, 0, id, &gen), CH_OK);
    assert_string_equal(id, "a.example");
    assert_int_equal(prov_hosts_take(h, 10, id, &gen), CH_ERR_TIMEOUT);
    prov_hosts_free(h);
}

static void invalid_identities_are_refused_and_counted(void **state)
{
    (void)state;
    prov_hosts *h = mk(10, 0, 0, NULL);
    assert_int_equal(prov_hosts_add(h, "a.*"), PROV_HOSTS_INVALID);
    assert_int_equal(prov_hosts_add(h, "x >"), PROV_HOSTS_INVALID);
    assert_int_equal(prov_hosts_add(h, ""), PROV_HOSTS_INVALID);
    assert_int_equal(prov_hosts_add(h, "a..b"), PROV_HOSTS_INVALID);
    assert_int_equal(prov_hosts_add(h, NULL), PROV_HOSTS_INVALID);
    prov_hosts_stats st;
    prov_hosts_stats_get(h, &st);
    assert_int_equal(st.invalid, 5);
    assert_int_equal(st.known, 0);
    prov_hosts_free(h);
}

static void full_queue_refuses_and_counts(void **state)
{
    (void)state;
    prov_hosts *h = mk(2, 0, 0, NULL);
    assert_int_equal(prov_hosts_add(h, "a"), PROV_HOSTS_ADDED);
    assert_int_equal(prov_hosts_add(h, "b"), PROV_HOSTS_ADDED);
    assert_int_equal(prov_hosts_add(h, "c"), PROV_HOSTS_FULL);
    prov_hosts_stats st;
    prov_hosts_stats_get(h, &st);
    assert_int_equal(st.full, 1);
    assert_int_equal(st.known, 2);
    prov_hosts_free(h);
}

static void removed_and_readded_host_skips_stale_entry(void **state)
{
    (void)state;
    prov_hosts *h = mk(10, 0, 0, NULL);
    char id[CH_MAX_IDENTITY_LEN + 1];
    uint64_t g1 = 0, g2 = 0;
    assert_int_equal(prov_hosts_add(h, "a"), PROV_HOSTS_ADDED);
    assert_int_equal(prov_hosts_add(h, "b"), PROV_HOSTS_ADDED);
    assert_true(prov_hosts_remove(h, "a"));
    assert_false(prov_hosts_remove(h, "a"));
    assert_int_equal(prov_hosts_add(h, "a"), PROV_HOSTS_ADDED); /* new generation, queued last */
    assert_int_equal(prov_hosts_take(h, 0, id, &g1), CH_OK);
    assert_string_equal(id, "b");
    assert_int_equal(prov_hosts_take(h, 0, id, &g2), CH_OK);
    assert_string_equal(id, "a");
    assert_in_range(g2, g1 + 1, UINT64_MAX);
    assert_int_equal(prov_hosts_take(h, 0, id, &g1), CH_ERR_TIMEOUT);
    prov_hosts_stats st;
    prov_hosts_stats_get(h, &st);
    assert_int_equal(st.skipped_generation, 1);
    /* done with an old generation is ignored */
    prov_hosts_done(h, "a", g2 - 1, false);
    prov_hosts_stats_get(h, &st);
    assert_int_equal(st.busy, 2);
    prov_hosts_free(h);
}

static void host_waiting_more_than_two_intervals_is_dropped(void **state)
{
    (void)state;
    int64_t clk = 1000;
    prov_hosts *h = mk(10, 100, 0, &clk);
    char id[CH_MAX_IDENTITY_LEN + 1];
    assert_int_equal(prov_hosts_add(h, "old"), PROV_HOSTS_ADDED);
    clk += 150;
    assert_int_equal(prov_hosts_add(h, "new"), PROV_HOSTS_ADDED);
    clk += 60; /* old waited 210 > 200, new waited 60 */
    assert_int_equal(prov_hosts_take(h, 0, id, NULL), CH_OK);
    assert_string_equal(id, "new");
    prov_hosts_stats st;
    prov_hosts_stats_get(h, &st);
    assert_int_equal(st.dropped_stale_wait, 1);
    assert_int_equal(st.known, 1);
    assert_int_equal(prov_hosts_add(h, "old"), PROV_HOSTS_ADDED); /* forgotten, so re-addable */
    prov_hosts_free(h);
}

static void provisioned_host_is_held_then_released(void **state)
{
    (void)state;
    int64_t clk = 0;
    prov_hosts *h = mk(10, 0, 60000, &clk);
    char id[CH_MAX_IDENTITY_LEN + 1];
    uint64_t gen;
    assert_int_equal(prov_hosts_add(h, "n1"), PROV_HOSTS_ADDED);
    assert_int_equal(prov_hosts_take(h, 0, id, &gen), CH_OK);
    prov_hosts_done(h, "n1", gen, true);
    prov_hosts_stats st;
    prov_hosts_stats_get(h, &st);
    assert_int_equal(st.held, 1);
    assert_int_equal(st.busy, 0);
    clk += 59999;
    assert_int_equal(prov_hosts_add(h, "n1"), PROV_HOSTS_DUPLICATE);
    clk += 1;
    assert_int_equal(prov_hosts_add(h, "n1"), PROV_HOSTS_ADDED);
    prov_hosts_stats_get(h, &st);
    assert_int_equal(st.held, 0);
    assert_int_equal(st.known, 1);
    prov_hosts_free(h);
}

static void pause_empties_queue_but_keeps_busy(void **state)
{
    (void)state;
    prov_hosts *h = mk(10, 0, 0, NULL);
    char id[CH_MAX_IDENTITY_LEN + 1];
    uint64_t gen;
    assert_int_equal(prov_hosts_add(h, "a"), PROV_HOSTS_ADDED);
    assert_int_equal(prov_hosts_add(h, "b"), PROV_HOSTS_ADDED);
    assert_int_equal(prov_hosts_add(h, "c"), PROV_HOSTS_ADDED);
    assert_true(prov_hosts_remove(h, "c")); /* a dead slot pause must free */
    assert_int_equal(prov_hosts_take(h, 0, id, &gen), CH_OK);
    assert_int_equal(prov_hosts_pause(h), 1);
    prov_hosts_stats st;
    prov_hosts_stats_get(h, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.known, 1);
    assert_int_equal(st.busy, 1);
    assert_int_equal(prov_hosts_take(h, 0, id, NULL), CH_ERR_TIMEOUT);
    assert_int_equal(prov_hosts_add(h, "b"), PROV_HOSTS_ADDED);
    prov_hosts_free(h);
}

static void *blocked_taker(void *arg)
{
    char id[CH_MAX_IDENTITY_LEN + 1];
    return (void *)(intptr_t)prov_hosts_take(arg, -1, id, NULL);
}

static void shutdown_wakes_blocked_workers(void **state)
{
    (void)state;
    prov_hosts *h = mk(10, 0, 0, NULL);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, blocked_taker, h);
    prov_hosts_shutdown(h);
    for (int i = 0; i < 2; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        assert_int_equal((intptr_t)rv, CH_ERR_EXPIRED);
    }
    assert_int_equal(prov_hosts_add(h, "a"), PROV_HOSTS_CLOSED);
    prov_hosts_free(h);
}

#define NPROD 4
#define NCONS 4
#define NIDS 20000

typedef struct {
    prov_hosts *h;
    int part;
    _Atomic int *seen;
} targ;

static void *producer(void *arg)
{
    targ *a = arg;
    char id[32];
    /* each producer adds every identity of its part twice; dedupe must absorb the repeats */
    for (int round = 0; round < 2; round++)
        for (int i = a->part; i < NIDS; i += NPROD) {
            snprintf(id, sizeof(id), "node-%d.example", i);
            while (prov_hosts_add(a->h, id) == PROV_HOSTS_FULL)
                ;
        }
    return NULL;
}

static void *consumer(void *arg)
{
    targ *a = arg;
    char id[CH_MAX_IDENTITY_LEN + 1];
    uint64_t gen;
    while (prov_hosts_take(a->h, 50, id, &gen) != CH_ERR_EXPIRED) {
        if (strncmp(id, "node-", 5) != 0)
            continue;
        int n = atoi(id + 5);
        a->seen[n]++;
        prov_hosts_done(a->h, id, gen, true); /* held: never taken again within the test */
        id[0] = 0;
    }
    return NULL;
}

static void concurrent_producers_and_consumers_process_each_identity_once(void **state)
{
    (void)state;
    prov_hosts *h = mk(1000, 0, 3600000, NULL);
    _Atomic int *seen = calloc(NIDS, sizeof(*seen));
    pthread_t p[NPROD], c[NCONS];
    targ pa[NPROD], ca[NCONS];
    for (int i = 0; i < NCONS; i++) {
        ca[i] = (targ){h, i, seen};
        pthread_create(&c[i], NULL, consumer, &ca[i]);
    }
    for (int i = 0; i < NPROD; i++) {
        pa[i] = (targ){h, i, seen};
        pthread_create(&p[i], NULL, producer, &pa[i]);
    }
    for (int i = 0; i < NPROD; i++)
        pthread_join(p[i], NULL);
    prov_hosts_stats st;
    for (int tries = 0; tries < 2000; tries++) {
        prov_hosts_stats_get(h, &st);
        if (st.held == NIDS)
            break;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    prov_hosts_shutdown(h);
    for (int i = 0; i < NCONS; i++)
        pthread_join(c[i], NULL);
    for (int i = 0; i < NIDS; i++)
        assert_int_equal(seen[i], 1);
    prov_hosts_stats_get(h, &st);
    assert_int_equal(st.added, NIDS);
    assert_int_equal(st.duplicates, NIDS);
    assert_int_equal(st.held, NIDS);
    assert_int_equal(st.busy, 0);
    free(seen);
    prov_hosts_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(queue_is_fifo_and_dedupes_queued_and_busy),
        cmocka_unit_test(invalid_identities_are_refused_and_counted),
        cmocka_unit_test(full_queue_refuses_and_counts),
        cmocka_unit_test(removed_and_readded_host_skips_stale_entry),
        cmocka_unit_test(host_waiting_more_than_two_intervals_is_dropped),
        cmocka_unit_test(provisioned_host_is_held_then_released),
        cmocka_unit_test(pause_empties_queue_but_keeps_busy),
        cmocka_unit_test(shutdown_wakes_blocked_workers),
        cmocka_unit_test(concurrent_producers_and_consumers_process_each_identity_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
