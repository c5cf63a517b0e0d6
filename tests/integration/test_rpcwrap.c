/* The provisioner's RPC retry wrapper against `choria tool fleet` nodes on a real broker:
 * success, tries with back-off on errors, and giving up at once on dead nodes and on a
 * provisioning lock held by another provisioner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "choria/util.h"
#include "harness.h"
#include "rpcwrap.h"

typedef struct {
    cht_broker *broker;
    natsConnection *nc;
    ch_rpc_client *rpc, *other;
    cht_proc *fleet;
    int observed, failed;
    char failed_label[128];
    atomic_bool paused;
} fixture;

static void observe(void *closure, const char *rpc, double seconds)
{
    fixture *f = closure;
    f->observed++;
    assert_true(seconds >= 0);
}

static void failed(void *closure, const char *rpc)
{
    fixture *f = closure;
    f->failed++;
    snprintf(f->failed_label, sizeof(f->failed_label), "%s", rpc);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ch_error err;
    if (cht_broker_start(NULL, &f->broker, &err) != CH_OK ||
        cht_nats_connect(cht_broker_url(f->broker), 5000, &f->nc, &err) != CH_OK ||
        ch_rpc_client_new(f->nc, "provisioning", "p1.example.net", "choria=p1", 60, &f->rpc,
                          &err) != CH_OK ||
        ch_rpc_client_new(f->nc, "provisioning", "p2.example.net", "choria=p2", 60, &f->other,
                          &err) != CH_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_proc_free(f->fleet);
    ch_rpc_client_free(f->rpc);
    ch_rpc_client_free(f->other);
    natsConnection_Close(f->nc);
    natsConnection_Destroy(f->nc);
    cht_broker_free(f->broker);
    free(f);
    return 0;
}

static void start_fleet(fixture *f, const char *fault, const char *pct)
{
    char bin[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *argv[] = {bin,       "tool", "fleet",      "--server", cht_broker_url(f->broker),
                          "--count", "2",    "--duration", "60",       "--quiet",
                          fault,     pct,    NULL};
    if (fault == NULL)
        argv[10] = NULL;
    cht_proc_opts o = {.argv = argv};
    CHT_CHECK(cht_proc_spawn(&o, &f->fleet, &err), &err);
    char *line = NULL;
    assert_int_equal(cht_proc_read_until(f->fleet, "nodes in provisioning mode", 20000, &line),
                     CHT_READ_LINE);
    free(line);
}

static prov_rpcwrap wrapper(fixture *f, ch_rpc_client *rpc)
{
    return (prov_rpcwrap){.rpc = rpc,
                          .paused = &f->paused,
                          .observe = observe,
                          .failed = failed,
                          .closure = f,
                          .backoff_percent = 10};
}

static void success_is_one_attempt_and_no_error(void **state)
{
    fixture *f = *state;
    start_fleet(f, NULL, NULL);
    prov_rpcwrap w = wrapper(f, f->rpc);
    ch_rpc_result r;
    ch_error err;
    CHT_CHECK(
        prov_rpcwrap_call(&w, "n1.fleet.local", "rpcutil", "inventory", NULL, 5, 4000, &r, &err),
        &err);
    assert_non_null(json_object_get(r.data, "agents"));
    ch_rpc_result_clear(&r);
    assert_int_equal(f->observed, 1);
    assert_int_equal(f->failed, 0);
}

static void errors_are_retried_then_counted_once(void **state)
{
    fixture *f = *state;
    start_fleet(f, "--error", "100");
    prov_rpcwrap w = wrapper(f, f->rpc);
    ch_rpc_result r;
    ch_error err;
    int64_t t0 = ch_now_mono_ms();
    assert_int_equal(
        prov_rpcwrap_call(&w, "n1.fleet.local", "rpcutil", "inventory", NULL, 3, 4000, &r, &err),
        CH_ERR_INVALID);
    ch_rpc_result_clear(&r);
    assert_int_equal(f->observed, 3);
    assert_int_equal(f->failed, 1);
    assert_string_equal(f->failed_label, "rpcutil#inventory");
    assert_non_null(strstr(err.msg, "invalid response from n1.fleet.local: fleet: injected "
                                    "failure (5)"));
    /* two back-off sleeps of >= 37 and 50 ms */
    assert_in_range(ch_now_mono_ms() - t0, 50, INT64_MAX);
}

static void dead_node_is_given_up_at_once(void **state)
{
    fixture *f = *state;
    prov_rpcwrap w = wrapper(f, f->rpc);
    ch_rpc_result r;
    ch_error err;
    int64_t t0 = ch_now_mono_ms();
    assert_int_equal(prov_rpcwrap_call(&w, "gone.fleet.local", "choria_provision", "jwt", NULL, 3,
                                       22000, &r, &err),
                     CH_ERR_NOT_FOUND);
    ch_rpc_result_clear(&r);
    assert_in_range(ch_now_mono_ms() - t0, 0, 999);
    assert_int_equal(f->observed, 1);
    assert_int_equal(f->failed, 1);
}

static void lock_held_by_another_provisioner_is_given_up_at_once(void **state)
{
    fixture *f = *state;
    start_fleet(f, NULL, NULL);
    ch_rpc_result r;
    ch_error err;
    prov_rpcwrap other = wrapper(f, f->other);
    CHT_CHECK(prov_rpcwrap_call(&other, "n2.fleet.local", "choria_provision", "jwt", NULL, 1, 5000,
                                &r, &err),
              &err);
    ch_rpc_result_clear(&r);
    f->observed = 0;
    prov_rpcwrap w = wrapper(f, f->rpc);
    assert_int_equal(
        prov_rpcwrap_call(&w, "n2.fleet.local", "choria_provision", "jwt", NULL, 3, 5000, &r, &err),
        CH_ERR_INVALID);
    ch_rpc_result_clear(&r);
    assert_int_equal(f->observed, 1);
    assert_non_null(strstr(err.msg, CH_PROVISION_LOCK_BUSY));
}

static void paused_wrapper_fails_without_counting(void **state)
{
    fixture *f = *state;
    atomic_store(&f->paused, true);
    prov_rpcwrap w = wrapper(f, f->rpc);
    ch_rpc_result r;
    ch_error err;
    assert_int_not_equal(
        prov_rpcwrap_call(&w, "n1.fleet.local", "rpcutil", "ping", NULL, 3, 4000, &r, &err), CH_OK);
    ch_rpc_result_clear(&r);
    assert_int_equal(f->observed, 0);
    assert_int_equal(f->failed, 0);
    assert_non_null(strstr(err.msg, "paused"));
}

static void backoff_follows_five_sec_with_jitter(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        int64_t d1 = prov_rpcwrap_backoff_ms(1, 100), d10 = prov_rpcwrap_backoff_ms(20, 100);
        assert_in_range(d1, 375, 1124);
        assert_in_range(d10, 2500, 7499);
    }
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(success_is_one_attempt_and_no_error),
        T(errors_are_retried_then_counted_once),
        T(dead_node_is_given_up_at_once),
        T(lock_held_by_another_provisioner_is_given_up_at_once),
        T(paused_wrapper_fails_without_counting),
        cmocka_unit_test(backoff_follows_five_sec_with_jitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
