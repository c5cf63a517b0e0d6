/* The example configurations shipped in contrib/examples (installed under
 * /usr/share/doc/choria-provisioner/examples) work together as they are: `choria broker run`
 * with broker.conf, choria-provisioner with choria-provisioner.yaml and choria.cfg, and a
 * `choria server run` node with server.conf are provisioned end to end. Only what must differ
 * on a test machine is changed: ports, directories, the helper and the JWT key; the passwords
 * and the token are the examples' own, so they must agree with each other. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "choria/util.h"
#include "harness.h"

#define EXAMPLES CH_SOURCE_TREE "/contrib/examples"
#define MAX_TEXT (64 * 1024)

typedef struct {
    cht_proc *broker, *provisioner, *server;
    char dir[256], choria[512];
    int client_port, stats_port, monitor_port;
} fixture;

static char *read_example(const char *name)
{
    char path[512], *text = NULL;
    ch_error err;
    snprintf(path, sizeof(path), "%s/%s", EXAMPLES, name);
    CHT_CHECK(ch_read_file(path, MAX_TEXT, &text, NULL, &err), &err);
    return text;
}

/* Replaces the line that starts with prefix (which must exist) by line; returns new text. */
static char *replace_line(char *text, const char *prefix, const char *line)
{
    char *at = text;
    while (at != NULL && strncmp(at, prefix, strlen(prefix)) != 0) {
        at = strchr(at, '\n');
        at = at != NULL ? at + 1 : NULL;
    }
    if (at == NULL)
        fail_msg("the example has no line starting with '%s'", prefix);
    const char *end = strchr(at, '\n');
    end = end != NULL ? end : at + strlen(at);
    char *out = NULL;
    assert_in_range(asprintf(&out, "%.*s%s%s", (int)(at - text), text, line, end), 1, INT_MAX);
    free(text);
    return out;
}

static void write_text(fixture *f, const char *name, const char *text, char *path, size_t size)
{
    ch_error err;
    snprintf(path, size, "%s/%s", f->dir, name);
    CHT_CHECK(cht_write_file(path, &err, "%s", text), &err);
}

static void run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    if (cht_temp_dir("examples-test", f->dir, sizeof(f->dir), NULL) != CH_OK ||
        cht_bin_path("choria", f->choria, sizeof(f->choria), NULL) != CH_OK) {
        cht_temp_dir_remove(f->dir, NULL);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cht_proc_free(f->server);
    cht_proc_free(f->provisioner);
    cht_proc_free(f->broker);
    cht_temp_dir_remove(f->dir, NULL);
    free(f);
    return 0;
}

static void start_broker(fixture *f)
{
    char line[512], conf[512];
    char *text = read_example("broker.conf");
    f->client_port = cht_free_port();
    f->stats_port = cht_free_port();
    text = replace_line(text, "plugin.choria.network.listen_address",
                        "plugin.choria.network.listen_address = 127.0.0.1");
    snprintf(line, sizeof(line), "plugin.choria.network.client_port = %d", f->client_port);
    text = replace_line(text, "plugin.choria.network.client_port", line);
    snprintf(line, sizeof(line), "plugin.choria.stats_port = %d", f->stats_port);
    text = replace_line(text, "plugin.choria.stats_port", line);
    snprintf(line, sizeof(line), "plugin.choria.network.stream.store = %s/store", f->dir);
    text = replace_line(text, "plugin.choria.network.stream.store", line);
    write_text(f, "broker.conf", text, conf, sizeof(conf));
    free(text);
    const char *argv[] = {f->choria, "broker", "run", "--config", conf, NULL};
    cht_proc_opts o = {.argv = argv};
    ch_error err;
    CHT_CHECK(cht_proc_spawn(&o, &f->broker, &err), &err);
    for (int i = 0; i < 150 && strstr(cht_proc_stderr(f->broker), "ready: election") == NULL; i++)
        usleep(100000);
    if (strstr(cht_proc_stderr(f->broker), "ready: election") == NULL)
        fail_msg("the example broker did not start: %s", cht_proc_stderr(f->broker));
}

/* Started without waiting: the test waits for the node to be provisioned. */
static void start_provisioner(fixture *f)
{
    char line[1024], helper[512];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria-demo-helper", helper, sizeof(helper), &err), &err);

    char *client = read_example("choria.cfg");
    snprintf(line, sizeof(line), "plugin.choria.middleware_hosts = nats://127.0.0.1:%d",
             f->client_port);
    client = replace_line(client, "plugin.choria.middleware_hosts", line);

    char *text = read_example("choria-provisioner.yaml");
    snprintf(line, sizeof(line), "helper: %s", helper);
    text = replace_line(text, "helper:", line);
    snprintf(line, sizeof(line), "jwt_verify_cert: %s/signer.pem", f->dir);
    text = replace_line(text, "jwt_verify_cert:", line);
    /* cht_provisioner_start appends a free monitor_port and monitor_bind: 127.0.0.1 */
    text = replace_line(text, "monitor_port:", "# monitor_port: set by the test harness");

    char broker_env[128];
    snprintf(broker_env, sizeof(broker_env), "CHORIA_DEMO_BROKER=nats://127.0.0.1:%d",
             f->client_port);
    const char *env[] = {broker_env, NULL};
    cht_provisioner_opts o = {.dir = f->dir,
                              .config = text,
                              .config_name = "choria-provisioner.yaml",
                              .client_config = client,
                              .client_name = "choria.cfg",
                              .env = env,
                              .no_wait = true};
    ch_status st = cht_provisioner_start(&o, &f->provisioner, &f->monitor_port, &err);
    free(text);
    free(client);
    CHT_CHECK(st, &err);
}

/* A node with the example server.conf and a provisioning JWT made as the README says, with the
 * token of the provisioner example and the node password of the broker example. */
static void start_node(fixture *f, char *conf, size_t size)
{
    run("openssl genrsa -out %s/signer.key 2048 2>/dev/null && "
        "openssl rsa -in %s/signer.key -pubout -out %s/signer.pem 2>/dev/null",
        f->dir, f->dir, f->dir);
    run("%s jwt provisioning %s/provisioning.jwt %s/signer.key --token CHANGE-ME "
        "--urls 127.0.0.1:%d --username provisioning --password CHANGE-ME-THREE >/dev/null",
        f->choria, f->dir, f->dir, f->client_port);
    char *text = read_example("server.conf");
    text = replace_line(text, "# identity =", "identity = n1.example.net");
    /* the harness broker speaks plain NATS */
    text = replace_line(text, "# plugin.choria.server.provision.tls =", PLAIN_PROVISIONING);
    char node_dir[300];
    snprintf(node_dir, sizeof(node_dir), "%s/node", f->dir);
    assert_int_equal(mkdir(node_dir, 0700), 0);
    write_text(f, "node/server.conf", text, conf, size);
    free(text);
    char jwt[300];
    snprintf(jwt, sizeof(jwt), "%s/provisioning.jwt", f->dir);
    const char *argv[] = {f->choria, "server", "run", "--config", conf, "--provisioning-jwt",
                          jwt,       NULL};
    cht_proc_opts o = {.argv = argv};
    ch_error err;
    CHT_CHECK(cht_proc_spawn(&o, &f->server, &err), &err);
}

static void the_examples_provision_a_node_through_their_broker(void **state)
{
    fixture *f = *state;
    char conf[512];
    start_broker(f);
    start_node(f, conf, sizeof(conf));
    start_provisioner(f);

    const char *provisioned = "choria_provisioner_provisioned{site=\"dc1\"}";
    for (int i = 0; i < 300 && cht_metric(f->monitor_port, provisioned) != 1; i++)
        usleep(100000);
    if (cht_metric(f->monitor_port, provisioned) != 1)
        fail_msg("not provisioned\nprovisioner: %s\nnode: %s\nbroker: %s",
                 cht_proc_stderr(f->provisioner), cht_proc_stderr(f->server),
                 cht_proc_stderr(f->broker));
    assert_int_equal(cht_metric(f->monitor_port, "choria_election_leader{election=\"provisioner\","
                                                 "identity=\"provisioner1.example.net\"}"),
                     1);
    /* The node's configuration is now the helper's: out of provisioning mode. */
    char *text = NULL;
    ch_error err;
    for (int i = 0; i < 50; i++) {
        free(text);
        text = NULL;
        CHT_CHECK(ch_read_file(conf, MAX_TEXT, &text, NULL, &err), &err);
        if (strstr(text, "plugin.choria.server.provision=false") != NULL)
            break;
        usleep(100000);
    }
    assert_non_null(strstr(text, "plugin.choria.server.provision=false"));
    free(text);
    assert_null(strstr(cht_proc_stderr(f->broker), "Violation"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_examples_provision_a_node_through_their_broker, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
