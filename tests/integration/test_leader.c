/* Leader election against a real JetStream KV bucket: one leader among candidates, a graceful
 * stop hands over within 3 s, a dead leader's key is taken over within TTL + 3 s, a missing
 * bucket is an error at start, and the choria_election_* metrics are kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/json.h"
#include "choria/leader.h"
#include "choria/util.h"
#include "harness.h"

#define TTL_S 3

typedef struct {
    atomic_int won, lost;
} counts;

typedef struct {
    cht_broker *broker;
    natsConnection *nc[3];
    jsCtx *js;
    kvStore *kv;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (cht_broker_start(NULL, &f->broker, NULL) != CH_OK)
        return -1;
    for (int i = 0; i < 3; i++)
        if (cht_nats_connect(cht_broker_url(f->broker), 5000, &f->nc[i], NULL) != CH_OK)
            return -1;
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = CH_LEADER_DEFAULT_BUCKET;
    kc.History = 1;
    kc.TTL = (int64_t)TTL_S * 1000000000;
    if (natsConnection_JetStream(&f->js, f->nc[2], NULL) != NATS_OK ||
        js_CreateKeyValue(&f->kv, f->js, &kc) != NATS_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    kvStore_Destroy(f->kv);
    jsCtx_Destroy(f->js);
    for (int i = 0; i < 3; i++) {
        natsConnection_Close(f->nc[i]);
        natsConnection_Destroy(f->nc[i]);
    }
    cht_broker_free(f->broker);
    free(f);
    return 0;
}

static void on_won(void *c)
{
    atomic_fetch_add(&((counts *)c)->won, 1);
}

static void on_lost(void *c)
{
    atomic_fetch_add(&((counts *)c)->lost, 1);
}

static ch_leader *candidate(fixture *f, int i, const char *identity, counts *c, ch_metrics *m)
{
    ch_leader_opts o = {.nc = f->nc[i],
                        .key = "provisioner",
                        .identity = identity,
                        .won = on_won,
                        .lost = on_lost,
                        .closure = c,
                        .metrics = m};
    ch_leader *l = NULL;
    ch_error err;
    CHT_CHECK(ch_leader_start(&o, &l, &err), &err);
    return l;
}

/* ms until one of a, b is a confirmed leader; -1 after timeout_ms. */
static int64_t wait_leader(ch_leader *a, ch_leader *b, int64_t timeout_ms)
{
    int64_t t0 = ch_now_mono_ms();
    while (ch_now_mono_ms() - t0 < timeout_ms) {
        if (ch_leader_is_leader(a) || ch_leader_is_leader(b))
            return ch_now_mono_ms() - t0;
        usleep(20000);
    }
    return -1;
}

static void one_of_two_candidates_leads_and_hands_over_on_stop(void **state)
{
    fixture *f = *state;
    counts ca = {0}, cb = {0};
    ch_metrics *m = ch_metrics_new();
    ch_leader *a = candidate(f, 0, "a.example.net", &ca, m);
    ch_leader *b = candidate(f, 1, "b.example.net", &cb, NULL);
    assert_in_range(wait_leader(a, b, 5000), 0, INT64_MAX);
    usleep(1500000);
    assert_int_not_equal(ch_leader_is_leader(a), ch_leader_is_leader(b));
    assert_int_equal(atomic_load(&ca.won) + atomic_load(&cb.won), 1);
    assert_int_equal(ch_leader_ttl_ms(a), TTL_S * 1000);

    ch_buf out;
    ch_buf_init(&out);
    assert_int_equal(ch_metrics_render(m, &out, NULL), CH_OK);
    assert_non_null(strstr(out.data, "choria_election_campaigns{election=\"provisioner\","
                                     "identity=\"a.example.net\",state="));
    assert_non_null(strstr(out.data, "choria_election_leader{election=\"provisioner\","
                                     "identity=\"a.example.net\"} "));
    ch_buf_free(&out);

    /* A graceful stop deletes the key: the other takes over within 3 s. */
    ch_leader **leader = ch_leader_is_leader(a) ? &a : &b, *other = *leader == a ? b : a;
    counts *lc = *leader == a ? &ca : &cb;
    int64_t t0 = ch_now_mono_ms();
    ch_leader_stop(*leader);
    *leader = NULL;
    assert_int_equal(atomic_load(&lc->lost), 1);
    while (!ch_leader_is_leader(other) && ch_now_mono_ms() - t0 < 5000)
        usleep(20000);
    int64_t took = ch_now_mono_ms() - t0;
    fprintf(stderr, "graceful hand-over took %lld ms\n", (long long)took);
    assert_true(ch_leader_is_leader(other));
    assert_in_range(took, 0, 3000);
    ch_leader_stop(a);
    ch_leader_stop(b);
    ch_metrics_free(m);
}

/* A leader that died leaves its key until the bucket TTL; a candidate wins right after. */
static void a_dead_leaders_key_is_taken_over_within_ttl_plus_3s(void **state)
{
    fixture *f = *state;
    uint64_t rev = 0;
    assert_int_equal(kvStore_CreateString(&rev, f->kv, "provisioner", "dead.example.net"), NATS_OK);
    int64_t t0 = ch_now_mono_ms();
    counts c = {0};
    ch_leader *l = candidate(f, 0, "alive.example.net", &c, NULL);
    usleep(1000000);
    assert_false(ch_leader_is_leader(l));
    while (!ch_leader_is_leader(l) && ch_now_mono_ms() - t0 < (TTL_S + 5) * 1000)
        usleep(20000);
    int64_t took = ch_now_mono_ms() - t0;
    fprintf(stderr, "take-over after a dead leader: %lld ms (TTL %d s)\n", (long long)took, TTL_S);
    assert_true(ch_leader_is_leader(l));
    assert_in_range(took, 0, (TTL_S + 3) * 1000);
    kvEntry *e = NULL;
    assert_int_equal(kvStore_Get(&e, f->kv, "provisioner"), NATS_OK);
    assert_string_equal(kvEntry_ValueString(e), "alive.example.net");
    kvEntry_Destroy(e);
    ch_leader_stop(l);
}

/* Someone else updating the key (an eviction, a split brain) makes the leader lose. */
static void an_evicted_leader_loses_at_once(void **state)
{
    fixture *f = *state;
    counts c = {0};
    ch_leader *l = candidate(f, 0, "a.example.net", &c, NULL);
    for (int i = 0; i < 250 && !ch_leader_is_leader(l); i++)
        usleep(20000);
    assert_true(ch_leader_is_leader(l));
    /* An eviction (the key deleted, as `choria election evict` does) is noticed at once
     * through the key watch, not at the next refresh. */
    int64_t t0 = ch_now_mono_ms();
    assert_int_equal(kvStore_Delete(f->kv, "provisioner"), NATS_OK);
    for (int i = 0; i < 250 && atomic_load(&c.lost) == 0; i++)
        usleep(5000);
    int64_t took = ch_now_mono_ms() - t0;
    fprintf(stderr, "eviction noticed after %lld ms\n", (long long)took);
    assert_int_equal(atomic_load(&c.lost), 1);
    assert_in_range(took, 0, 499);
    uint64_t rev = 0;
    assert_int_equal(kvStore_CreateString(&rev, f->kv, "provisioner", "other"), NATS_OK);
    assert_false(ch_leader_is_leader(l));
    ch_leader_stop(l);
}

static void a_missing_bucket_is_an_error_at_start(void **state)
{
    fixture *f = *state;
    ch_leader_opts o = {
        .nc = f->nc[0], .bucket = "NO_SUCH_BUCKET", .key = "provisioner", .identity = "a"};
    ch_leader *l = NULL;
    ch_error err;
    assert_int_not_equal(ch_leader_start(&o, &l, &err), CH_OK);
    assert_null(l);
    assert_non_null(strstr(err.msg, "cannot access KV Bucket NO_SUCH_BUCKET"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(one_of_two_candidates_leads_and_hands_over_on_stop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_dead_leaders_key_is_taken_over_within_ttl_plus_3s, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_evicted_leader_loses_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(a_missing_bucket_is_an_error_at_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
