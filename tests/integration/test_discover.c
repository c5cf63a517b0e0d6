/* The provisioner's discoverer against a real broker and `choria tool fleet`: broadcast
 * discovery, startup events, on-demand discovery, and pause. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/util.h"
#include "discover.h"
#include "harness.h"

#define MAX_FOUND 1024

typedef struct {
    cht_broker *broker;
    natsConnection *nc;
    ch_rpc_client *rpc;
    cht_proc *fleets[3];
    pthread_mutex_t lock;
    char *found[MAX_FOUND];
    int n_found, by_event;
    atomic_bool paused;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ch_error err;
    pthread_mutex_init(&f->lock, NULL);
    if (cht_broker_start(NULL, &f->broker, &err) != CH_OK ||
        cht_nats_connect(cht_broker_url(f->broker), 5000, &f->nc, &err) != CH_OK ||
        ch_rpc_client_new(f->nc, "provisioning", "provisioner.example.net", "choria=provisioner",
                          60, &f->rpc, &err) != CH_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 3; i++)
        cht_proc_free(f->fleets[i]);
    ch_rpc_client_free(f->rpc);
    natsConnection_Close(f->nc);
    natsConnection_Destroy(f->nc);
    cht_broker_free(f->broker);
    for (int i = 0; i < f->n_found; i++)
        free(f->found[i]);
    free(f);
    return 0;
}

/* Records distinct identities. */
static void found(const char *identity, prov_found_by how, void *closure)
{
    fixture *f = closure;
    pthread_mutex_lock(&f->lock);
    bool seen = false;
    for (int i = 0; i < f->n_found && !seen; i++)
        seen = strcmp(f->found[i], identity) == 0;
    if (!seen && f->n_found < MAX_FOUND)
        f->found[f->n_found++] = strdup(identity);
    f->by_event += how == PROV_FOUND_BY_EVENT;
    pthread_mutex_unlock(&f->lock);
}

static int found_count(fixture *f)
{
    pthread_mutex_lock(&f->lock);
    int n = f->n_found;
    pthread_mutex_unlock(&f->lock);
    return n;
}

static bool wait_found(fixture *f, int want, int timeout_ms)
{
    for (int64_t t0 = ch_now_mono_ms(); ch_now_mono_ms() - t0 < timeout_ms;) {
        if (found_count(f) >= want)
            return true;
        usleep(20 * 1000);
    }
    return found_count(f) >= want;
}

static void start_fleet(fixture *f, int slot, const char *prefix, const char *count)
{
    char bin[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[] = {bin,       "tool",    "fleet",    "--server", cht_broker_url(f->broker),
                          "--count", count,     "--prefix", prefix,     "--duration",
                          "60",      "--quiet", NULL};
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->fleets[slot], &err), &err);
    char *line = NULL;
    assert_int_equal(
        cht_proc_read_until(f->fleets[slot], "nodes in provisioning mode", 20000, &line),
        CHT_READ_LINE);
    free(line);
}

static prov_discoverer *start_discoverer(fixture *f)
{
    prov_discoverer_opts o = {.nc = f->nc,
                              .rpc = f->rpc,
                              .interval_ms = 600000, /* only the first and triggered ones */
                              .paused = &f->paused,
                              .found = found,
                              .closure = f};
    prov_discoverer *d = NULL;
    ch_error err;
    CHT_CHECK(prov_discoverer_start(&o, &d, &err), &err);
    return d;
}

static void discovery_at_start_finds_every_node(void **state)
{
    fixture *f = *state;
    start_fleet(f, 0, "d", "50");
    prov_discoverer *d = start_discoverer(f);
    assert_true(wait_found(f, 50, 10000));
    assert_int_equal(prov_discoverer_stats_get(d)->cycles, 1);
    assert_int_equal(prov_discoverer_stats_get(d)->discovered, 50);
    prov_discoverer_stop(d);
    assert_int_equal(found_count(f), 50);
}

static void startup_events_find_new_nodes_between_discoveries(void **state)
{
    fixture *f = *state;
    prov_discoverer *d = start_discoverer(f);
    sleep(1); /* the first discovery (nothing there) is over */
    start_fleet(f, 0, "e", "7");
    assert_true(wait_found(f, 7, 10000));
    assert_int_equal(f->by_event, 7);
    assert_int_equal(prov_discoverer_stats_get(d)->event_discovered, 7);
    prov_discoverer_stop(d);
}

static void paused_discoverer_finds_nothing_until_resumed(void **state)
{
    fixture *f = *state;
    atomic_store(&f->paused, true);
    prov_discoverer *d = start_discoverer(f);
    start_fleet(f, 0, "p", "5");
    prov_discoverer_trigger(d);
    sleep(3);
    assert_int_equal(found_count(f), 0);
    atomic_store(&f->paused, false);
    prov_discoverer_trigger(d); /* on demand, as after winning an election */
    assert_true(wait_found(f, 5, 10000));
    prov_discoverer_stop(d);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(discovery_at_start_finds_every_node),
        T(startup_events_find_new_nodes_between_discoveries),
        T(paused_discoverer_finds_nothing_until_resumed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
