/* RPC client, the parts that need no network: the pending-request table (routing by request
 * id, bounds, close, concurrent use), mcorpc reply body parsing, and the discovery fast path
 * that reads mc_sender from a reply transport (agreement with the full decoder, hostile input,
 * cost per reply). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>

#include "choria/json.h"
#include "choria/protocol.h"
#include "choria/rpc.h"
#include "choria/util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define ID_A "0123456789abcdef0123456789abcdef"
#define ID_B "fedcba9876543210fedcba9876543210"
#define INBOX "provisioning.reply.344aa967e9f3339639bf1c959876175b."

static natsMsg *msg_for(const char *subject, const char *data)
{
    natsMsg *m = NULL;
    assert_int_equal(natsMsg_Create(&m, subject, NULL, data, (int)strlen(data)), NATS_OK);
    return m;
}

/* Collects what the table hands a request. */
typedef struct {
    int msgs;
    int closes;
    char last[64];
} sink;

static void to_sink(void *closure, natsMsg *msg)
{
    sink *k = closure;
    if (msg == NULL) {
        k->closes++;
        return;
    }
    k->msgs++;
    snprintf(k->last, sizeof(k->last), "%.*s", natsMsg_GetDataLength(msg), natsMsg_GetData(msg));
    natsMsg_Destroy(msg);
}

/* ---- pending table ---- */

static void pending_routes_each_reply_to_its_request_by_the_last_subject_token(void **state)
{
    ch_rpc_pending *t;
    ch_error err;
    sink a = {0}, b = {0};
    assert_int_equal(ch_rpc_pending_new(8, &t, &err), CH_OK);
    assert_int_equal(ch_rpc_pending_add(t, ID_A, to_sink, &a, &err), CH_OK);
    assert_int_equal(ch_rpc_pending_add(t, ID_B, to_sink, &b, &err), CH_OK);
    assert_int_equal(ch_rpc_pending_count(t), 2);

    assert_int_equal(ch_rpc_pending_route(t, msg_for(INBOX ID_B, "for b")), CH_OK);
    assert_int_equal(ch_rpc_pending_route(t, msg_for(INBOX ID_A, "for a")), CH_OK);
    assert_int_equal(ch_rpc_pending_route(t, msg_for(INBOX ID_A, "again a")), CH_OK);
    assert_int_equal(a.msgs, 2);
    assert_string_equal(a.last, "again a");
    assert_int_equal(b.msgs, 1);
    assert_string_equal(b.last, "for b");
    assert_int_equal(ch_rpc_pending_unknown(t), 0);
    ch_rpc_pending_free(t);
}

static void pending_counts_and_drops_replies_for_unknown_or_malformed_ids(void **state)
{
    ch_rpc_pending *t;
    ch_error err;
    sink a = {0};
    assert_int_equal(ch_rpc_pending_new(8, &t, &err), CH_OK);
    assert_int_equal(ch_rpc_pending_add(t, ID_A, to_sink, &a, &err), CH_OK);
    assert_int_equal(ch_rpc_pending_route(t, msg_for(INBOX ID_B, "x")), CH_ERR_NOT_FOUND);
    /* 31 and 33 characters, a prefix of a pending id, a wildcard */
    assert_int_equal(ch_rpc_pending_route(t, msg_for(INBOX "0123456789abcdef0123456789abcde", "x")),
                     CH_ERR_NOT_FOUND);
    assert_int_equal(
        ch_rpc_pending_route(t, msg_for(INBOX "0123456789abcdef0123456789abcdef0", "x")),
        CH_ERR_NOT_FOUND);
    assert_int_equal(ch_rpc_pending_route(t, msg_for("nodots", "x")), CH_ERR_NOT_FOUND);
    assert_int_equal(ch_rpc_pending_route(t, msg_for(INBOX "*", "x")), CH_ERR_NOT_FOUND);
    /* the id alone (no dots) is still routed: only the last token counts */
    assert_int_equal(ch_rpc_pending_route(t, msg_for(ID_A, "bare")), CH_OK);
    assert_int_equal(ch_rpc_pending_unknown(t), 5);
    assert_int_equal(a.msgs, 1);
    ch_rpc_pending_free(t);
}

static void pending_refuses_bad_ids_duplicates_and_more_than_its_bound(void **state)
{
    ch_rpc_pending *t;
    ch_error err;
    sink a = {0};
    assert_int_equal(ch_rpc_pending_new(2, &t, &err), CH_OK);
    assert_int_equal(ch_rpc_pending_add(t, "short", to_sink, &a, &err), CH_ERR_INVALID);
    assert_int_equal(ch_rpc_pending_add(t, "0123456789abcdef0123456789abcde.", to_sink, &a, &err),
                     CH_ERR_INVALID);
    assert_int_equal(ch_rpc_pending_add(t, NULL, to_sink, &a, &err), CH_ERR_INVALID);
    assert_int_equal(ch_rpc_pending_add(t, ID_A, to_sink, &a, &err), CH_OK);
    assert_int_equal(ch_rpc_pending_add(t, ID_A, to_sink, &a, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "already pending"));
    assert_int_equal(ch_rpc_pending_add(t, ID_B, to_sink, &a, &err), CH_OK);
    assert_int_equal(ch_rpc_pending_add(t, "00000000000000000000000000000000", to_sink, &a, &err),
                     CH_ERR_TOO_LARGE);
    assert_true(ch_rpc_pending_remove(t, ID_A));
    assert_false(ch_rpc_pending_remove(t, ID_A));
    assert_int_equal(ch_rpc_pending_add(t, "00000000000000000000000000000000", to_sink, &a, &err),
                     CH_OK);
    assert_int_equal(ch_rpc_pending_count(t), 2);
    ch_rpc_pending_free(t);
    assert_int_equal(ch_rpc_pending_new(0, &t, &err), CH_ERR_INVALID);
    assert_null(t);
    ch_rpc_pending_free(NULL);
}

static void pending_forgets_a_removed_request(void **state)
{
    ch_rpc_pending *t;
    ch_error err;
    sink a = {0};
    assert_int_equal(ch_rpc_pending_new(4, &t, &err), CH_OK);
    assert_int_equal(ch_rpc_pending_add(t, ID_A, to_sink, &a, &err), CH_OK);
    assert_true(ch_rpc_pending_remove(t, ID_A));
    assert_int_equal(ch_rpc_pending_route(t, msg_for(INBOX ID_A, "late")), CH_ERR_NOT_FOUND);
    assert_int_equal(a.msgs, 0);
    assert_int_equal(ch_rpc_pending_count(t), 0);
    ch_rpc_pending_free(t);
}

static void pending_close_wakes_every_request_once_and_refuses_new_ones(void **state)
{
    ch_rpc_pending *t;
    ch_error err;
    sink a = {0}, b = {0};
    assert_int_equal(ch_rpc_pending_new(4, &t, &err), CH_OK);
    assert_int_equal(ch_rpc_pending_add(t, ID_A, to_sink, &a, &err), CH_OK);
    assert_int_equal(ch_rpc_pending_add(t, ID_B, to_sink, &b, &err), CH_OK);
    ch_rpc_pending_close(t);
    assert_int_equal(a.closes, 1);
    assert_int_equal(b.closes, 1);
    assert_int_equal(ch_rpc_pending_add(t, "00000000000000000000000000000000", to_sink, &a, &err),
                     CH_ERR_CONNECTION);
    assert_true(ch_rpc_pending_remove(t, ID_A));
    ch_rpc_pending_free(t); /* ID_B still present: dropped without a call */
    assert_int_equal(b.closes, 1);
    assert_int_equal(b.msgs, 0);
}

/* Several threads each add, route to and remove their own ids while routing to another's:
 * every message lands with the right request and nothing is lost or double counted. */
#define THREADS 4
#define ROUNDS 5000

typedef struct {
    ch_rpc_pending *t;
    int index;
    long received;
    long misrouted;
} worker_arg;

static void count_own(void *closure, natsMsg *msg)
{
    worker_arg *w = closure;
    if (msg == NULL)
        return;
    char want[8];
    snprintf(want, sizeof(want), "w%d", w->index);
    if (natsMsg_GetDataLength(msg) == (int)strlen(want) &&
        memcmp(natsMsg_GetData(msg), want, strlen(want)) == 0)
        w->received++;
    else
        w->misrouted++;
    natsMsg_Destroy(msg);
}

static void *pending_worker(void *arg)
{
    worker_arg *w = arg;
    char id[33], subject[128], data[8];
    snprintf(data, sizeof(data), "w%d", w->index);
    for (int i = 0; i < ROUNDS; i++) {
        ch_request_id(id);
        if (ch_rpc_pending_add(w->t, id, count_own, w, NULL) != CH_OK)
            continue;
        snprintf(subject, sizeof(subject), INBOX "%s", id);
        ch_rpc_pending_route(w->t, msg_for(subject, data));
        ch_rpc_pending_remove(w->t, id);
        ch_rpc_pending_route(w->t, msg_for(subject, data)); /* late: unknown */
    }
    return NULL;
}

static void pending_routes_correctly_under_concurrent_use(void **state)
{
    ch_rpc_pending *t;
    ch_error err;
    pthread_t th[THREADS];
    worker_arg args[THREADS];
    assert_int_equal(ch_rpc_pending_new(64, &t, &err), CH_OK);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_arg){.t = t, .index = i};
        assert_int_equal(pthread_create(&th[i], NULL, pending_worker, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(args[i].received, ROUNDS);
        assert_int_equal(args[i].misrouted, 0);
    }
    assert_int_equal(ch_rpc_pending_unknown(t), THREADS * ROUNDS);
    assert_int_equal(ch_rpc_pending_count(t), 0);
    ch_rpc_pending_free(t);
}

/* ---- reply bodies ---- */

static ch_status parse(const char *body, ch_rpc_result *r, ch_error *err)
{
    return ch_rpc_result_parse(body, strlen(body), r, err);
}

static void result_parses_go_choria_reply_bodies(void **state)
{
    ch_rpc_result r;
    ch_error err;
    assert_int_equal(parse("{\"action\":\"configure\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data"
                           "\":{\"message\":\"Wrote 14 lines\"}}",
                           &r, &err),
                     CH_OK);
    assert_int_equal(r.statuscode, 0);
    assert_string_equal(r.action, "configure");
    assert_string_equal(r.statusmsg, "OK");
    assert_string_equal(json_string_value(json_object_get(r.data, "message")), "Wrote 14 lines");
    assert_int_equal(r.body_len, strlen(r.body));
    assert_non_null(strstr(r.body, "Wrote 14 lines"));
    ch_rpc_result_clear(&r);
    assert_null(r.body);

    assert_int_equal(parse("{\"action\":\"nosuch\",\"statuscode\":2,\"statusmsg\":\"Unknown action"
                           " nosuch for agent choria_provision\",\"data\":{}}",
                           &r, &err),
                     CH_OK);
    assert_int_equal(r.statuscode, 2);
    assert_string_equal(r.statusmsg, "Unknown action nosuch for agent choria_provision");
    assert_true(json_is_object(r.data));
    ch_rpc_result_clear(&r);

    /* optional members: absent or null are "" / NULL, as Go's zero values */
    assert_int_equal(parse("{\"statuscode\":1,\"action\":null}", &r, &err), CH_OK);
    assert_int_equal(r.statuscode, 1);
    assert_string_equal(r.action, "");
    assert_string_equal(r.statusmsg, "");
    assert_null(r.data);
    ch_rpc_result_clear(&r);
    assert_int_equal(parse(" {\"statuscode\":255,\"data\":null} ", &r, &err), CH_OK);
    assert_int_equal(r.statuscode, 255);
    assert_true(json_is_null(r.data));
    ch_rpc_result_clear(&r);
}

static void result_refuses_bodies_that_are_not_mcorpc_replies(void **state)
{
    static const char *bad[] = {
        "pong", /* the discovery agent's raw answer */
        "",
        "[]",
        "{}",
        "{\"statuscode\":\"0\"}",
        "{\"statuscode\":0.5}",
        "{\"statuscode\":-1}",
        "{\"statuscode\":256}",
        "{\"statuscode\":99999999999999999999999}",
        "{\"statuscode\":0,\"statusmsg\":1}",
        "{\"statuscode\":0,\"action\":{}}",
        "{\"statuscode\":0,\"statuscode\":1}",
        "{\"statuscode\":0} x",
        "{\"statuscode\":0,\"data\":{\"a\":}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ch_rpc_result r;
        ch_error err;
        ch_status s = parse(bad[i], &r, &err);
        if (s == CH_OK)
            fail_msg("accepted %s", bad[i]);
        /* the raw body is still there for the caller to report */
        assert_non_null(r.body);
        assert_string_equal(r.body, bad[i]);
        ch_rpc_result_clear(&r);
    }
    ch_rpc_result r;
    ch_error err;
    assert_int_equal(parse("pong", &r, &err), CH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "not an RPC reply"));
    ch_rpc_result_clear(&r);
}

static void result_refuses_deep_nesting(void **state)
{
    char body[1024];
    size_t n = 0;
    n += (size_t)snprintf(body + n, sizeof(body) - n, "{\"statuscode\":0,\"data\":");
    for (int i = 0; i < 200; i++)
        body[n++] = '[';
    for (int i = 0; i < 200; i++)
        body[n++] = ']';
    body[n++] = '}';
    body[n] = '\0';
    ch_rpc_result r;
    ch_error err;
    assert_int_not_equal(parse(body, &r, &err), CH_OK);
    ch_rpc_result_clear(&r);
}

/* ---- mc_sender fast path ---- */

static const ch_request_envelope ENV = {.requestid = ID_A,
                                        .senderid = "provisioner.example.net",
                                        .callerid = "choria=provisioner.mcollective",
                                        .collective = "provisioning",
                                        .agent = "discovery",
                                        .ttl = 60,
                                        .time = 1718000000};

static char *reply_transport(const char *identity, size_t *len)
{
    ch_reply_params p = {.body = "pong",
                         .request = &ENV,
                         .identity = identity,
                         .time = 1718000001,
                         .connected_url = "nats://broker.example.net:4222"};
    char *out = NULL;
    ch_error err;
    assert_int_equal(ch_protocol_reply_payload_build(&p, &out, len, &err), CH_OK);
    return out;
}

static void sender_fast_path_agrees_with_the_full_decoder(void **state)
{
    static const char *ids[] = {"n1.example.net", "a", "node-00001.example.net",
                                "x_y-z.0.1.example"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        size_t len;
        char *payload = reply_transport(ids[i], &len);
        char sender[CH_MAX_IDENTITY_LEN + 1];
        ch_error err;
        ch_transport t;
        assert_int_equal(ch_rpc_transport_sender(payload, len, sender, &err), CH_OK);
        assert_int_equal(ch_protocol_transport_decode(payload, len, &t, &err), CH_OK);
        assert_string_equal(sender, t.headers.mc_sender);
        assert_string_equal(sender, ids[i]);
        ch_protocol_transport_clear(&t);
        free(payload);
    }
}

static ch_status sender_of(const char *payload, char *sender, ch_error *err)
{
    return ch_rpc_transport_sender(payload, strlen(payload), sender, err);
}

#define T_HEAD "{\"protocol\":\"choria:transport:1\",\"data\":\"cG9uZw==\",\"headers\":"

static void sender_fast_path_decodes_escapes_and_ignores_member_order(void **state)
{
    char sender[CH_MAX_IDENTITY_LEN + 1];
    ch_error err;
    assert_int_equal(sender_of(T_HEAD "{\"mc_sender\":\"\\u006e1.example.net\"}}", sender, &err),
                     CH_OK);
    assert_string_equal(sender, "n1.example.net");
    assert_int_equal(sender_of("{\"headers\":{\"seen-by\":[[\"a\",\"b\",\"c\"]],\"reply-to\":null,"
                               "\"mc_sender\":\"n2\"},\"data\":\"\",\"protocol\":\"choria:transpo"
                               "rt:1\"}",
                               sender, &err),
                     CH_OK);
    assert_string_equal(sender, "n2");
    assert_int_equal(
        sender_of(" \n" T_HEAD "{\"federation\":{},\"mc_sender\":\"n3\"}}\n ", sender, &err),
        CH_OK);
    assert_string_equal(sender, "n3");
}

static void sender_fast_path_refuses_what_is_not_a_transport(void **state)
{
    static const char *bad[] = {
        "",
        "null",
        "[]",
        "pong",
        "{\"protocol\":\"choria:transport:2\",\"data\":\"\",\"headers\":{\"mc_sender\":\"n1\"}}",
        "{\"data\":\"\",\"headers\":{\"mc_sender\":\"n1\"}}",
        "{\"protocol\":\"choria:transport:1\",\"headers\":{\"mc_sender\":\"n1\"}}",
        "{\"protocol\":\"choria:transport:1\",\"data\":1,\"headers\":{\"mc_sender\":\"n1\"}}",
        "{\"protocol\":\"choria:transport:1\",\"data\":\"\"}",
        T_HEAD "null}",
        T_HEAD "[]}",
        T_HEAD "{}}",
        T_HEAD "{\"mc_sender\":\"\"}}",
        T_HEAD "{\"mc_sender\":null}}",
        T_HEAD "{\"mc_sender\":7}}",
        T_HEAD "{\"mc_sender\":\"n1\",\"mc_sender\":\"n2\"}}",
        T_HEAD "{\"mc_sender\":\"n1\"},\"headers\":{\"mc_sender\":\"n2\"}}",
        T_HEAD "{\"mc_sender\":\"n1\",\"seen-by\":{}}}",
        T_HEAD "{\"mc_sender\":\"n1\",\"reply-to\":1}}",
        T_HEAD "{\"mc_sender\":\"n1\",\"federation\":[]}}",
        T_HEAD "{\"mc_sender\":\"n1\"}} trailing",
        T_HEAD "{\"mc_sender\":\"n1\"}",
        T_HEAD "{\"mc_sender\":\"n1\"}}}",
        T_HEAD "{\"mc_sender\":\"n1\\x\"}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char sender[CH_MAX_IDENTITY_LEN + 1];
        ch_error err;
        ch_status s = sender_of(bad[i], sender, &err);
        if (s != CH_ERR_INVALID)
            fail_msg("%s: got %s (%s)", bad[i], ch_status_text(s), err.msg);
        assert_string_equal(sender, "");
    }
}

static void sender_fast_path_refuses_senders_that_are_not_identities(void **state)
{
    char huge[400];
    snprintf(huge, sizeof(huge), T_HEAD "{\"mc_sender\":\"%0300d\"}}", 0);
    const char *bad[] = {
        T_HEAD "{\"mc_sender\":\"provisioning.node.>\"}}",
        T_HEAD "{\"mc_sender\":\"*\"}}",
        T_HEAD "{\"mc_sender\":\"a b\"}}",
        T_HEAD "{\"mc_sender\":\"a..b\"}}",
        T_HEAD "{\"mc_sender\":\".a\"}}",
        T_HEAD "{\"mc_sender\":\"n1\\u0000.evil\"}}",
        T_HEAD "{\"mc_sender\":\"n1\\n\"}}",
        T_HEAD "{\"mc_sender\":\"n\\u00e9\"}}",
        huge,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char sender[CH_MAX_IDENTITY_LEN + 1];
        ch_error err;
        ch_status s = sender_of(bad[i], sender, &err);
        if (s != CH_ERR_NO_MATCH)
            fail_msg("%s: got %s (%s)", bad[i], ch_status_text(s), err.msg);
        assert_string_equal(sender, "");
    }
}

static void sender_fast_path_handles_many_seen_by_hops_within_bounds(void **state)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_str(&b, T_HEAD "{\"mc_sender\":\"n1\",\"seen-by\":[");
    for (int i = 0; i < 1000; i++)
        ch_buf_append_str(&b, i ? ",[\"a\",\"b\",\"c\"]" : "[\"a\",\"b\",\"c\"]");
    ch_buf_append_str(&b, "]}}");
    size_t len;
    char *doc = ch_buf_steal(&b, &len);
    char sender[CH_MAX_IDENTITY_LEN + 1];
    ch_error err;
    assert_int_equal(ch_rpc_transport_sender(doc, len, sender, &err), CH_OK);
    assert_string_equal(sender, "n1");
    free(doc);

    /* far more tokens than any legitimate transport: refused, not allocated for */
    ch_buf_init(&b);
    ch_buf_append_str(&b, T_HEAD "{\"mc_sender\":\"n1\",\"seen-by\":[");
    for (int i = 0; i < 20000; i++)
        ch_buf_append_str(&b, i ? ",0" : "0");
    ch_buf_append_str(&b, "]}}");
    doc = ch_buf_steal(&b, &len);
    assert_int_equal(ch_rpc_transport_sender(doc, len, sender, &err), CH_ERR_TOO_LARGE);
    free(doc);
}

/* The point of the fast path: reading mc_sender must cost far less than the full transport
 * decode (jansson + base64). Prints both; the comparison is asserted without sanitizers. */
static void sender_fast_path_is_cheaper_than_the_full_decode(void **state)
{
    size_t len;
    char *payload = reply_transport("node-12345.example.net", &len);
    const int n = SANITIZED ? 2000 : 50000;
    char sender[CH_MAX_IDENTITY_LEN + 1];
    int64_t t0 = ch_now_mono_ms();
    for (int i = 0; i < n; i++)
        assert_int_equal(ch_rpc_transport_sender(payload, len, sender, NULL), CH_OK);
    int64_t t1 = ch_now_mono_ms();
    for (int i = 0; i < n; i++) {
        ch_transport t;
        assert_int_equal(ch_protocol_transport_decode(payload, len, &t, NULL), CH_OK);
        ch_protocol_transport_clear(&t);
    }
    int64_t t2 = ch_now_mono_ms();
    double fast_ns = (double)(t1 - t0) * 1e6 / n, full_ns = (double)(t2 - t1) * 1e6 / n;
    printf("mc_sender of a %zu-byte reply transport: fast path %.0f ns, full decode %.0f ns "
           "(%d runs%s)\n",
           len, fast_ns, full_ns, n, SANITIZED ? ", sanitized" : "");
    if (!SANITIZED)
        assert_true(fast_ns * 2 < full_ns);
    free(payload);
}

int main(void)
{
    nats_Open(-1); /* natsMsg_Destroy needs the library's state */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pending_routes_each_reply_to_its_request_by_the_last_subject_token),
        cmocka_unit_test(pending_counts_and_drops_replies_for_unknown_or_malformed_ids),
        cmocka_unit_test(pending_refuses_bad_ids_duplicates_and_more_than_its_bound),
        cmocka_unit_test(pending_forgets_a_removed_request),
        cmocka_unit_test(pending_close_wakes_every_request_once_and_refuses_new_ones),
        cmocka_unit_test(pending_routes_correctly_under_concurrent_use),
        cmocka_unit_test(result_parses_go_choria_reply_bodies),
        cmocka_unit_test(result_refuses_bodies_that_are_not_mcorpc_replies),
        cmocka_unit_test(result_refuses_deep_nesting),
        cmocka_unit_test(sender_fast_path_agrees_with_the_full_decoder),
        cmocka_unit_test(sender_fast_path_decodes_escapes_and_ignores_member_order),
        cmocka_unit_test(sender_fast_path_refuses_what_is_not_a_transport),
        cmocka_unit_test(sender_fast_path_refuses_senders_that_are_not_identities),
        cmocka_unit_test(sender_fast_path_handles_many_seen_by_hops_within_bounds),
        cmocka_unit_test(sender_fast_path_is_cheaper_than_the_full_decode),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    nats_CloseAndWait(2000);
    return failed;
}
