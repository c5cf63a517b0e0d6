/* The daemons under valgrind: choria-provisioner provisions a small fleet through the whole
 * pipeline (JWT verification, CSR checks, the openssl CA helper, key-less configure,
 * restart) and stops on SIGTERM; `choria server run` starts in provisioning mode and stops.
 * Neither may leak or touch invalid memory. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/util.h"
#include "harness.h"

#define VALGRIND_ERROR 97

typedef struct {
    cht_broker *broker;
    cht_proc *daemon, *fleet;
    char dir[256];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (cht_temp_dir("vg-test", f->dir, sizeof(f->dir), NULL) != CH_OK ||
        cht_broker_start(NULL, &f->broker, NULL) != CH_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_proc_free(f->fleet);
    cht_proc_free(f->daemon);
    cht_broker_free(f->broker);
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

/* Starts argv under valgrind with leak checking that fails with VALGRIND_ERROR. */
static void start_under_valgrind(fixture *f, const char *const *argv)
{
    const char *full[24] = {"valgrind",
                            "--quiet",
                            "--leak-check=full",
                            "--errors-for-leak-kinds=definite,indirect",
                            "--show-leak-kinds=definite,indirect",
                            "--error-exitcode=97"};
    int n = 6;
    for (; *argv != NULL && n < 23; argv++)
        full[n++] = *argv;
    full[n] = NULL;
    cht_proc_opts o = {.argv = full};
    ch_error err;
    CHT_CHECK(cht_proc_spawn(&o, &f->daemon, &err), &err);
}

static void stop_and_check(fixture *f)
{
    ch_error err;
    int ws = 0;
    CHT_CHECK(cht_proc_signal(f->daemon, SIGTERM, &err), &err);
    if (cht_proc_wait(f->daemon, 60000, &ws, &err) != CH_OK)
        fail_msg("did not stop under valgrind");
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
        fail_msg("exit status %d under valgrind:\n%s", WIFEXITED(ws) ? WEXITSTATUS(ws) : -1,
                 cht_proc_stderr(f->daemon));
}

static void provisioner_provisions_a_fleet_without_leaks(void **state)
{
    fixture *f = *state;
    char bin[512], prov[512], src[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    CHT_CHECK(cht_bin_path("choria-provisioner", prov, sizeof(prov), &err), &err);
    snprintf(src, sizeof(src), "%s",
             getenv("CH_SOURCE_DIR") != NULL ? getenv("CH_SOURCE_DIR") : ".");
    const char *d = f->dir;
    const char *url = cht_broker_url(f->broker);
    CHT_SH("openssl genrsa -out %s/k.pem 2048 2>/dev/null && openssl rsa -in %s/k.pem -pubout -out "
           "%s/pub.pem 2>/dev/null",
           d, d, d);
    CHT_SH("%s jwt provisioning %s/p.jwt %s/k.pem --token t --urls %s >/dev/null", bin, d, d,
           url + 7);
    CHT_SH(
        "printf 'identity = prov.example.net\\nplugin.choria.middleware_hosts = %s\\n' > %s/c.conf",
        url, d);
    CHT_SH("printf 'workers: 4\\nsite: vg\\nhelper: %s/contrib/helpers/openssl-ca-helper %s/ca\\n"
           "token: t\\njwt_verify_cert: %s/pub.pem\\nlogfile: %s/p.log\\nfeatures:\\n  jwt: true\\n"
           "  pki: true\\n' > %s/p.yaml",
           src, d, d, d, d);
    char conf[300], client[300];
    snprintf(conf, sizeof(conf), "%s/p.yaml", d);
    snprintf(client, sizeof(client), "%s/c.conf", d);
    const char *argv[] = {prov, "run", "--config", conf, "--choria-config", client, NULL};
    start_under_valgrind(f, argv);
    usleep(2000000);

    char jwt[300], summary[300];
    snprintf(jwt, sizeof(jwt), "%s/p.jwt", d);
    snprintf(summary, sizeof(summary), "%s/s.json", d);
    const char *fargv[] = {bin,       "tool",
                           "fleet",   "--server",
                           url,       "--count",
                           "8",       "--token",
                           "t",       "--provisioning-jwt",
                           jwt,       "--exit-when-provisioned",
                           "--quiet", "--summary-json",
                           summary,   NULL};
    cht_proc_opts o = {.argv = fargv};
    CHT_CHECK(cht_proc_spawn(&o, &f->fleet, &err), &err);
    int ws = 0;
    if (cht_proc_wait(f->fleet, 120000, &ws, &err) != CH_OK)
        fail_msg("fleet not provisioned under valgrind: %s", cht_proc_stderr(f->daemon));
    char *text = NULL;
    size_t len = 0;
    CHT_CHECK(ch_read_file(summary, 1024 * 1024, &text, &len, &err), &err);
    assert_non_null(strstr(text, "\"provisioned\":8"));
    free(text);
    stop_and_check(f);
}

static void server_in_provisioning_mode_has_no_leaks(void **state)
{
    fixture *f = *state;
    char bin[512], conf[300], jwt[300];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    const char *d = f->dir;
    CHT_SH("openssl genrsa -out %s/k.pem 2048 2>/dev/null", d);
    CHT_SH("%s jwt provisioning %s/p.jwt %s/k.pem --token t --urls %s >/dev/null", bin, d, d,
           cht_broker_url(f->broker) + 7);
    CHT_SH("printf 'identity = s1.example.net\\nplugin.choria.server.provision = "
           "true\\nplugin.choria.server.provision.tls = false\\n' > "
           "%s/server.conf",
           d);
    snprintf(conf, sizeof(conf), "%s/server.conf", d);
    snprintf(jwt, sizeof(jwt), "%s/p.jwt", d);
    const char *argv[] = {bin, "server", "run", "--config", conf, "--provisioning-jwt", jwt, NULL};
    start_under_valgrind(f, argv);
    usleep(3000000);
    stop_and_check(f);
}

int main(void)
{
    if (system("command -v valgrind >/dev/null 2>&1") != 0) {
        fprintf(stderr, "valgrind is not installed (scripts/install-deps installs it)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(provisioner_provisions_a_fleet_without_leaks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(server_in_provisioning_mode_has_no_leaks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
