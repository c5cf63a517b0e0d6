/* `choria election view` and `evict` against real JetStream: GOLDEN.md's block on a 3-broker
 * cluster (peer names, `*` on the stream leader) and on one broker (`Replicas: 1`), and
 * eviction with and without confirmation. */
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

#include "choria/leader.h"
#include "choria/util.h"
#include "harness.h"

static const char TABLE[] = "╭─────────────────────────────────────────╮\n"
                            "│            Active Elections             │\n"
                            "├─────────────┬───────────────────────────┤\n"
                            "│ Election    │ Leader                    │\n"
                            "├─────────────┼───────────────────────────┤\n"
                            "│ provisioner │ provisioner1.choria.local │\n"
                            "╰─────────────┴───────────────────────────╯\n"
                            "\n";

/* Creates the bucket with replicas and one election through url. */
static void create_bucket(const char *url, int replicas, kvStore **kv, jsCtx **js,
                          natsConnection **nc)
{
    ch_error err;
    CHT_CHECK(cht_nats_connect(url, 5000, nc, &err), &err);
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = CH_LEADER_DEFAULT_BUCKET;
    kc.History = 1;
    kc.TTL = 60LL * 1000000000;
    kc.Replicas = replicas;
    assert_int_equal(natsConnection_JetStream(js, *nc, NULL), NATS_OK);
    natsStatus s = NATS_ERR;
    for (int i = 0; i < 50 && (s = js_CreateKeyValue(kv, *js, &kc)) != NATS_OK; i++)
        usleep(200000); /* a fresh cluster may still be electing its meta leader */
    assert_int_equal(s, NATS_OK);
    uint64_t rev = 0;
    assert_int_equal(kvStore_PutString(&rev, *kv, "provisioner", "provisioner1.choria.local"),
                     NATS_OK);
}

static char *run_choria(const char *url, const char *const *args, const char *input, int *rc)
{
    char bin[512], path[] = "/tmp/ch-elect-out-XXXXXX", cmd[2048];
    ch_error err;
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    int fd = mkstemp(path);
    close(fd);
    snprintf(cmd, sizeof(cmd), "printf '%s' | %s", input != NULL ? input : "", bin);
    for (; *args != NULL; args++)
        snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), " %s", *args);
    snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), " --server %s > %s 2>&1", url, path);
    int st = system(cmd);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    char *text = NULL;
    size_t len = 0;
    CHT_CHECK(ch_read_file(path, 1024 * 1024, &text, &len, &err), &err);
    unlink(path);
    return text;
}

/* Everything of GOLDEN's block except the creation time, which is checked for its layout. */
static void check_view(const char *out, const char *replicas_line)
{
    const char *head = "Election bucket information for CHORIA_LEADER_ELECTION\n\n       Created: ";
    assert_int_equal(strncmp(out, head, strlen(head)), 0);
    const char *created = out + strlen(head);
    int dd, yy, hh, mm, tz;
    char mon[4];
    assert_int_equal(sscanf(created, "%2d %3s %2d %2d:%2d %5d", &dd, mon, &yy, &hh, &mm, &tz), 6);
    const char *rest = strchr(created, '\n') + 1;
    char expect[2048];
    snprintf(expect, sizeof(expect),
             "       Storage: File\n  Maximum Time: 1m0s\n%s\n     Elections: 1\n\n%s",
             replicas_line, TABLE);
    assert_string_equal(rest, expect);
}

static void view_on_one_broker_says_one_replica(void **state)
{
    (void)state;
    cht_broker *b = NULL;
    ch_error err;
    CHT_CHECK(cht_broker_start(NULL, &b, &err), &err);
    kvStore *kv = NULL;
    jsCtx *js = NULL;
    natsConnection *nc = NULL;
    create_bucket(cht_broker_url(b), 1, &kv, &js, &nc);
    int rc = 0;
    const char *args[] = {"election", "view", "provisioner", NULL};
    char *out = run_choria(cht_broker_url(b), args, NULL, &rc);
    assert_int_equal(rc, 0);
    check_view(out, "      Replicas: 1");
    free(out);

    /* evict: "n" keeps the leader, --force removes it */
    const char *evict[] = {"election", "evict", "provisioner", NULL};
    out = run_choria(cht_broker_url(b), evict, "n\\n", &rc);
    assert_non_null(strstr(out, "Evict the current leader from election provisioner in bucket "
                                "CHORIA_LEADER_ELECTION"));
    free(out);
    kvEntry *e = NULL;
    assert_int_equal(kvStore_Get(&e, kv, "provisioner"), NATS_OK);
    kvEntry_Destroy(e);
    const char *force[] = {"election", "evict", "provisioner", "--force", NULL};
    out = run_choria(cht_broker_url(b), force, NULL, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "Evicted the leader from election provisioner in bucket "
                             "CHORIA_LEADER_ELECTION\n");
    free(out);
    assert_int_not_equal(kvStore_Get(&e, kv, "provisioner"), NATS_OK);

    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
    cht_broker_free(b);
}

static void view_on_a_3_broker_cluster_names_the_peers_and_the_leader(void **state)
{
    (void)state;
    cht_cluster *c = NULL;
    ch_error err;
    CHT_CHECK(cht_cluster_start(NULL, &c, &err), &err);
    kvStore *kv = NULL;
    jsCtx *js = NULL;
    natsConnection *nc = NULL;
    create_bucket(cht_cluster_url(c, 0), 3, &kv, &js, &nc);
    jsStreamInfo *si = NULL;
    assert_int_equal(js_GetStreamInfo(&si, js, "KV_CHORIA_LEADER_ELECTION", NULL, NULL), NATS_OK);
    char line[256];
    snprintf(line, sizeof(line), "      Replicas: 3 on hosts %s*", si->Cluster->Leader);
    for (int i = 0; i < si->Cluster->ReplicasLen; i++)
        snprintf(line + strlen(line), sizeof(line) - strlen(line), ", %s",
                 si->Cluster->Replicas[i]->Name);
    jsStreamInfo_Destroy(si);
    int rc = 0;
    const char *args[] = {"election", "info", NULL};
    char *out = run_choria(cht_cluster_url(c, 1), args, NULL, &rc);
    assert_int_equal(rc, 0);
    check_view(out, line);
    free(out);
    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
    cht_cluster_free(c);
}

/* `election file` keeps its file while leader and removes it at exit; `--check` says so;
 * `election run` runs the command once leader and exits with its exit code. */
static void file_and_run_campaign_from_the_command_line(void **state)
{
    (void)state;
    cht_broker *b = NULL;
    ch_error err;
    CHT_CHECK(cht_broker_start(NULL, &b, &err), &err);
    kvStore *kv = NULL;
    jsCtx *js = NULL;
    natsConnection *nc = NULL;
    create_bucket(cht_broker_url(b), 1, &kv, &js, &nc);
    char bin[512], path[] = "/tmp/ch-elect-file-XXXXXX";
    CHT_CHECK(cht_bin_path("choria", bin, sizeof(bin), &err), &err);
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    const char *argv[] = {bin,        "election",        "file", path, "filetest",
                          "--server", cht_broker_url(b), NULL};
    cht_proc_opts o = {.argv = argv};
    cht_proc *p = NULL;
    CHT_CHECK(cht_proc_spawn(&o, &p, &err), &err);
    for (int i = 0; i < 100 && access(path, R_OK) != 0; i++)
        usleep(100000);
    char *text = NULL;
    size_t len = 0;
    CHT_CHECK(ch_read_file(path, 4096, &text, &len, &err), &err);
    assert_non_null(strstr(text, "{\"count\":"));
    assert_non_null(strstr(text, "\"timestamp\":\""));
    free(text);
    int rc = 0;
    const char *check[] = {"election", "file", path, "--check", NULL};
    free(run_choria(cht_broker_url(b), check, NULL, &rc));
    assert_int_equal(rc, 0);
    int ws = 0;
    CHT_CHECK(cht_proc_signal(p, SIGTERM, &err), &err);
    CHT_CHECK(cht_proc_wait(p, 10000, &ws, &err), &err);
    cht_proc_free(p);
    assert_int_not_equal(access(path, F_OK), 0);
    free(run_choria(cht_broker_url(b), check, NULL, &rc));
    assert_int_equal(rc, 1);

    const char *run[] = {"election", "run", "runtest", "'sh -c \"exit 7\"'", NULL};
    char *out = run_choria(cht_broker_url(b), run, NULL, &rc);
    assert_int_equal(rc, 7);
    free(out);

    kvStore_Destroy(kv);
    jsCtx_Destroy(js);
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
    cht_broker_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(view_on_one_broker_says_one_replica),
        cmocka_unit_test(view_on_a_3_broker_cluster_names_the_peers_and_the_leader),
        cmocka_unit_test(file_and_run_campaign_from_the_command_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
