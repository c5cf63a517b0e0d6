/* The RPC client against a real nats-server, with responders written here in plain nats.c
 * (requests decoded with ch_protocol_request_payload_decode, replies built with
 * ch_protocol_reply_payload_build): direct calls, go-choria's request wire format, the
 * broker's "no responders" answer on a non-_INBOX reply subject, timeouts, dropped bad
 * replies, concurrent calls, late and unknown replies, a closed connection, broadcast
 * discovery with filters and the sliding window, and 50,000 discovery replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "choria/json.h"
#include "choria/protocol.h"
#include "choria/rpc.h"
#include "choria/util.h"
#include "harness.h"

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

#define COLLECTIVE "provisioning"
#define CALLERID "choria=provisioner.mcollective"
#define CLIENT_ID "provisioner.example.net"
#define MANY_NODES 50000
#define MAX_RESPONDERS 8

/* --------------------------------------------------------------------------------------
 * Responders: one subscription each, answering on its own nats.c delivery thread. */

typedef enum {
    R_ECHO,          /* mcorpc reply echoing action and data */
    R_ABORT,         /* statuscode 1 "Could not obtain provisioning lock" */
    R_SILENT,        /* subscribed, never answers */
    R_SLOW,          /* echoes after 300 ms */
    R_BAD_HASH,      /* a reply whose SecureReply hash does not match */
    R_WRONG_THEN_OK, /* a reply for another request id, then the right one */
    R_DISCOVERY,     /* "pong" when the filter matches its agents */
    R_CANNED,        /* publishes prebuilt payloads to the reply subject */
} rmode;

typedef struct {
    rmode mode;
    char identity[64];
    const char *agents[4];
    size_t n_agents;
    char **canned;
    size_t *canned_len;
    size_t n_canned;
    natsConnection *nc;
    natsSubscription *sub;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    atomic_int handled;
    /* the last request, as seen on the wire */
    char nats_reply[CH_MAX_SUBJECT_LEN];
    char header_reply[CH_MAX_SUBJECT_LEN];
    char body[512];
    char envelope_agent[64];
    char senderid[128];
    char callerid[128];
    int64_t ttl;
    bool filter_empty;
} responder;

static void publish_reply(responder *r, const ch_request_envelope *env, const char *reply_to,
                          const char *body, const char *identity)
{
    ch_reply_params p = {.body = body,
                         .request = env,
                         .identity = identity,
                         .time = ch_now_unix(),
                         .connected_url = "nats://127.0.0.1:4222"};
    char *out = NULL;
    size_t len = 0;
    ch_error err;
    if (ch_protocol_reply_payload_build(&p, &out, &len, &err) == CH_OK)
        natsConnection_Publish(r->nc, reply_to, out, (int)len);
    free(out);
}

/* A reply whose hash was computed over other bytes than the message it carries. */
static void publish_bad_hash(responder *r, const ch_request_envelope *env, const char *reply_to)
{
    ch_reply rep = {.message =
                        "{\"action\":\"x\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{}}",
                    .envelope = {.requestid = env->requestid,
                                 .senderid = r->identity,
                                 .agent = env->agent,
                                 .time = ch_now_unix()}};
    char *reply = NULL, *transport = NULL, hash[CH_PROTOCOL_HASH_LEN + 1];
    size_t len = 0;
    assert_int_equal(ch_protocol_reply_encode(&rep, &reply, NULL, NULL), CH_OK);
    ch_protocol_reply_hash("something else", 14, hash);
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"protocol\":\"choria:secure:reply:1\",\"message\":");
    ch_buf_append_json_string(&b, reply, strlen(reply));
    ch_buf_printf(&b, ",\"hash\":\"%s\"}", hash);
    size_t slen;
    char *secure = ch_buf_steal(&b, &slen);
    ch_transport t = {.data = (const unsigned char *)secure,
                      .data_len = slen,
                      .headers = {.mc_sender = r->identity}};
    assert_int_equal(ch_protocol_transport_encode(&t, &transport, &len, NULL), CH_OK);
    natsConnection_Publish(r->nc, reply_to, transport, (int)len);
    free(transport);
    free(secure);
    free(reply);
}

static char *echo_body(const char *rpc_body, const char *identity)
{
    json_t *req = json_loads(rpc_body, 0, NULL);
    json_t *data = json_object_get(req, "data");
    json_t *reply =
        json_pack("{s:s, s:i, s:s, s:{s:O, s:s}}", "action",
                  json_string_value(json_object_get(req, "action")), "statuscode", 0, "statusmsg",
                  "OK", "data", "echo", data ? data : json_null(), "identity", identity);
    char *out = ch_json_encode(reply, NULL);
    json_decref(reply);
    json_decref(req);
    return out;
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    responder *r = closure;
    ch_request_payload p;
    ch_error err;
    if (ch_protocol_request_payload_decode(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
                                           NULL, &p, &err) != CH_OK) {
        fprintf(stderr, "responder %s: %s\n", r->identity, err.msg);
        natsMsg_Destroy(msg);
        return;
    }
    const ch_request_envelope *env = &p.request.envelope;
    const char *reply_to = p.transport.headers.reply_to;
    pthread_mutex_lock(&r->mu);
    snprintf(r->nats_reply, sizeof(r->nats_reply), "%s",
             natsMsg_GetReply(msg) ? natsMsg_GetReply(msg) : "");
    snprintf(r->header_reply, sizeof(r->header_reply), "%s", reply_to ? reply_to : "");
    snprintf(r->body, sizeof(r->body), "%s", p.request.message);
    snprintf(r->envelope_agent, sizeof(r->envelope_agent), "%s", env->agent);
    snprintf(r->senderid, sizeof(r->senderid), "%s", env->senderid);
    snprintf(r->callerid, sizeof(r->callerid), "%s", env->callerid);
    r->ttl = env->ttl;
    r->filter_empty = ch_filter_is_empty(&env->filter);
    pthread_mutex_unlock(&r->mu);

    char *body = NULL;
    switch (r->mode) {
    case R_ECHO:
    case R_SLOW:
        if (r->mode == R_SLOW)
            usleep(300 * 1000);
        body = echo_body(p.request.message, r->identity);
        publish_reply(r, env, reply_to, body, r->identity);
        break;
    case R_ABORT:
        publish_reply(r, env, reply_to,
                      "{\"action\":\"jwt\",\"statuscode\":1,\"statusmsg\":\"Could not obtain "
                      "provisioning lock\",\"data\":{}}",
                      r->identity);
        break;
    case R_SILENT:
        break;
    case R_BAD_HASH:
        publish_bad_hash(r, env, reply_to);
        break;
    case R_WRONG_THEN_OK: {
        ch_request_envelope other = *env;
        other.requestid = "00000000000000000000000000000000";
        body = echo_body(p.request.message, r->identity);
        publish_reply(r, &other, reply_to, body, r->identity);
        publish_reply(r, env, reply_to, body, r->identity);
        break;
    }
    case R_DISCOVERY: {
        unsigned char *ping = NULL;
        size_t n = 0;
        ch_error e;
        if (strcmp(env->agent, "discovery") == 0 &&
            ch_protocol_message_body(p.request.message, &ping, &n, &e) == CH_OK &&
            strstr((char *)ping, "ping") != NULL &&
            ch_filter_match(&env->filter, r->identity, r->agents, r->n_agents, NULL, 0, NULL, &e) ==
                CH_OK)
            publish_reply(r, env, reply_to, "pong", r->identity);
        free(ping);
        break;
    }
    case R_CANNED:
        for (size_t i = 0; i < r->n_canned; i++)
            natsConnection_Publish(r->nc, reply_to, r->canned[i], (int)r->canned_len[i]);
        natsConnection_Flush(r->nc);
        break;
    }
    free(body);
    atomic_fetch_add(&r->handled, 1);
    ch_protocol_request_payload_clear(&p);
    natsMsg_Destroy(msg);
}

static void on_responder_done(void *closure)
{
    responder *r = closure;
    pthread_mutex_lock(&r->mu);
    r->done = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

/* Subscribes to subject (a node subject when NULL) and waits until the broker has it. */
static responder *responder_start(natsConnection *nc, rmode mode, const char *identity,
                                  const char *subject)
{
    responder *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->mode = mode;
    r->nc = nc;
    snprintf(r->identity, sizeof(r->identity), "%s", identity);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    char node[CH_MAX_SUBJECT_LEN];
    if (subject == NULL) {
        assert_int_equal(ch_protocol_node_subject(COLLECTIVE, identity, node, sizeof(node), NULL),
                         CH_OK);
        subject = node;
    }
    assert_int_equal(natsConnection_Subscribe(&r->sub, nc, subject, on_request, r), NATS_OK);
    assert_int_equal(natsSubscription_SetOnCompleteCB(r->sub, on_responder_done, r), NATS_OK);
    assert_int_equal(natsConnection_FlushTimeout(nc, 5000), NATS_OK);
    return r;
}

static responder *discovery_responder(natsConnection *nc, const char *identity,
                                      const char *const *agents, size_t n_agents)
{
    char subject[CH_MAX_SUBJECT_LEN];
    assert_int_equal(
        ch_protocol_broadcast_subject(COLLECTIVE, "discovery", subject, sizeof(subject), NULL),
        CH_OK);
    responder *r = responder_start(nc, R_DISCOVERY, identity, subject);
    for (size_t i = 0; i < n_agents && i < 4; i++)
        r->agents[r->n_agents++] = agents[i];
    return r;
}

static void responder_free(responder *r)
{
    if (r == NULL)
        return;
    natsSubscription_Unsubscribe(r->sub);
    int64_t deadline = ch_now_mono_ms() + 5000;
    pthread_mutex_lock(&r->mu);
    while (!r->done && ch_now_mono_ms() < deadline) {
        pthread_mutex_unlock(&r->mu);
        usleep(1000);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    natsSubscription_Destroy(r->sub);
    for (size_t i = 0; i < r->n_canned; i++)
        free(r->canned[i]);
    free(r->canned);
    free(r->canned_len);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
    free(r);
}

/* A discovery reply transport from identity, built as a node would (the request id inside is
 * a placeholder: discoverers read only the transport's mc_sender, as go-choria's does). */
static char *discovery_reply(const char *identity, size_t *len)
{
    static const ch_request_envelope env = {.requestid = "0123456789abcdef0123456789abcdef",
                                            .agent = "discovery"};
    ch_reply_params p = {.body = "pong",
                         .request = &env,
                         .identity = identity,
                         .time = ch_now_unix(),
                         .connected_url = "nats://127.0.0.1:4222"};
    char *out = NULL;
    ch_error err;
    CHT_CHECK(ch_protocol_reply_payload_build(&p, &out, len, &err), &err);
    return out;
}

static void canned_add(responder *r, char *payload, size_t len)
{
    r->canned[r->n_canned] = payload;
    r->canned_len[r->n_canned++] = len;
}

static void canned_alloc(responder *r, size_t n)
{
    r->canned = calloc(n, sizeof(*r->canned));
    r->canned_len = calloc(n, sizeof(*r->canned_len));
    assert_non_null(r->canned);
    assert_non_null(r->canned_len);
}

/* --------------------------------------------------------------------------------------
 * Fixtures: the broker lives for the whole group; connections, client and responders per
 * test, freed in teardown even after a failed assertion. */

typedef struct {
    cht_broker *broker;
} group;

typedef struct {
    group *g;
    natsConnection *nc;  /* the client's */
    natsConnection *rnc; /* the responders': SendAsap, as one reply at a time wants */
    natsConnection *bnc; /* buffered, for responders that send thousands of replies */
    ch_rpc_client *client;
    responder *r[MAX_RESPONDERS];
    int n_r;
} fixture;

static group *the_group;

static int group_setup(void **state)
{
    ch_error err;
    cht_broker_opts o;
    cht_broker_opts_init(&o);
    o.jetstream = false;
    the_group = calloc(1, sizeof(*the_group));
    if (the_group == NULL || cht_broker_start(&o, &the_group->broker, &err) != CH_OK) {
        fprintf(stderr, "group setup: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    if (the_group != NULL)
        cht_broker_free(the_group->broker);
    free(the_group);
    nats_CloseAndWait(2000); /* frees nats.c's library state, so ASan sees no leaks */
    return 0;
}

static int setup(void **state)
{
    ch_error err;
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    *state = f;
    f->g = the_group;
    const char *url = cht_broker_url(f->g->broker);
    natsOptions *ro = NULL;
    if (cht_nats_options(url, 5000, &ro, &err) != CH_OK)
        return -1;
    /* responders answer one request at a time: without SendAsap nats.c's flusher holds
     * every reply back for up to 1 ms */
    natsOptions_SetSendAsap(ro, true);
    natsStatus ns = natsConnection_Connect(&f->rnc, ro);
    natsOptions_Destroy(ro);
    if (ns != NATS_OK) {
        fprintf(stderr, "setup: responder connection: %s\n", natsStatus_GetText(ns));
        return -1;
    }
    if (cht_nats_connect(url, 5000, &f->nc, &err) != CH_OK ||
        cht_nats_connect(url, 5000, &f->bnc, &err) != CH_OK ||
        ch_rpc_client_new(f->nc, COLLECTIVE, CLIENT_ID, CALLERID, 0, &f->client, &err) != CH_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f == NULL)
        return 0;
    ch_rpc_client_free(f->client);
    for (int i = 0; i < f->n_r; i++)
        responder_free(f->r[i]);
    natsConnection_Destroy(f->nc);
    natsConnection_Destroy(f->rnc);
    natsConnection_Destroy(f->bnc);
    free(f);
    return 0;
}

static responder *add(fixture *f, responder *r)
{
    assert_in_range(f->n_r, 0, MAX_RESPONDERS - 1);
    f->r[f->n_r++] = r;
    return r;
}

static ch_rpc_client_stats stats(fixture *f)
{
    ch_rpc_client_stats s;
    ch_rpc_client_stats_get(f->client, &s);
    return s;
}

/* --------------------------------------------------------------------------------------
 * Direct requests */

static void call_returns_the_nodes_reply_and_sends_go_choria_wire_format(void **state)
{
    fixture *f = *state;
    responder *r = add(f, responder_start(f->rnc, R_ECHO, "n1.example.net", NULL));
    ch_rpc_result res;
    ch_error err;
    json_t *data = json_pack("{s:s, s:s}", "nonce", "0f1e", "token", "s3cret");
    ch_status s = ch_rpc_call(f->client, "n1.example.net", "choria_provision", "gen25519", data,
                              2000, &res, &err);
    json_decref(data);
    if (s != CH_OK)
        fail_msg("call: %s", err.msg);
    assert_int_equal(res.statuscode, 0);
    assert_string_equal(res.statusmsg, "OK");
    assert_string_equal(res.action, "gen25519");
    assert_string_equal(res.sender, "n1.example.net");
    assert_false(res.no_responders);
    assert_string_equal(json_string_value(json_object_get(res.data, "identity")), "n1.example.net");
    json_t *echo = json_object_get(res.data, "echo");
    assert_string_equal(json_string_value(json_object_get(echo, "nonce")), "0f1e");
    assert_string_equal(json_string_value(json_object_get(echo, "token")), "s3cret");
    assert_in_range(res.elapsed_ms, 0, 1999); /* within the call's 2000 ms */
    ch_rpc_result_clear(&res);

    /* the request as the node saw it */
    assert_string_equal(r->body, "{\"agent\":\"choria_provision\",\"action\":\"gen25519\",\"data\":"
                                 "{\"nonce\":\"0f1e\",\"token\":\"s3cret\"}}");
    assert_string_equal(r->envelope_agent, "choria_provision");
    assert_string_equal(r->senderid, CLIENT_ID);
    assert_string_equal(r->callerid, CALLERID);
    assert_int_equal(r->ttl, 60);
    assert_true(r->filter_empty);
    /* the NATS reply subject is the transport's reply-to, inside the client's one inbox */
    assert_string_equal(r->nats_reply, r->header_reply);
    const char *inbox = ch_rpc_client_inbox(f->client);
    assert_string_equal(inbox, "provisioning.reply.344aa967e9f3339639bf1c959876175b.>");
    assert_memory_equal(r->header_reply, inbox, strlen(inbox) - 1);
    assert_int_equal(strlen(r->header_reply), strlen(inbox) - 1 + CH_PROTOCOL_REQUEST_ID_LEN);

    ch_rpc_client_stats st = stats(f);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.replies, 1);
    assert_int_equal(st.invalid, 0);
}

static void call_with_no_data_sends_an_empty_data_object(void **state)
{
    fixture *f = *state;
    responder *r = add(f, responder_start(f->rnc, R_ECHO, "n1.example.net", NULL));
    ch_rpc_result res;
    ch_error err;
    CHT_CHECK(
        ch_rpc_call(f->client, "n1.example.net", "rpcutil", "inventory", NULL, 2000, &res, &err),
        &err);
    assert_string_equal(r->body, "{\"agent\":\"rpcutil\",\"action\":\"inventory\",\"data\":{}}");
    assert_true(json_is_object(json_object_get(res.data, "echo")));
    ch_rpc_result_clear(&res);
}

static void call_returns_ok_with_the_nodes_failure_status(void **state)
{
    fixture *f = *state;
    add(f, responder_start(f->rnc, R_ABORT, "n1.example.net", NULL));
    ch_rpc_result res;
    ch_error err;
    CHT_CHECK(
        ch_rpc_call(f->client, "n1.example.net", "choria_provision", "jwt", NULL, 2000, &res, &err),
        &err);
    assert_int_equal(res.statuscode, 1);
    assert_string_equal(res.statusmsg, "Could not obtain provisioning lock");
    ch_rpc_result_clear(&res);
}

static void call_to_a_node_with_no_subscriber_fails_at_once_with_no_responders(void **state)
{
    fixture *f = *state;
    ch_rpc_result res;
    ch_error err;
    /* warm the connection so the figure is the broker's answer, not the first write */
    ch_status s = ch_rpc_call(f->client, "gone.example.net", "choria_provision", "jwt", NULL, 10000,
                              &res, &err);
    ch_rpc_result_clear(&res);
    int64_t t0 = ch_now_mono_ms();
    s = ch_rpc_call(f->client, "gone.example.net", "choria_provision", "jwt", NULL, 10000, &res,
                    &err);
    int64_t took = ch_now_mono_ms() - t0;
    assert_int_equal(s, CH_ERR_NOT_FOUND);
    assert_true(res.no_responders);
    assert_string_equal(err.msg, "no responders for provisioning.node.gone.example.net");
    printf("no responders answer after %lld ms (call reported %lld ms)\n", (long long)took,
           (long long)res.elapsed_ms);
    assert_in_range(took, 0, 4999); /* the broker's answer, not the 10 s timeout */
    ch_rpc_result_clear(&res);
    ch_rpc_client_stats st = stats(f);
    assert_int_equal(st.no_responders, 2);
    assert_int_equal(st.timeouts, 0);
}

static void call_honours_its_timeout_when_the_node_stays_silent(void **state)
{
    fixture *f = *state;
    responder *r = add(f, responder_start(f->rnc, R_SILENT, "n1.example.net", NULL));
    ch_rpc_result res;
    ch_error err;
    int64_t t0 = ch_now_mono_ms();
    ch_status s =
        ch_rpc_call(f->client, "n1.example.net", "choria_provision", "jwt", NULL, 300, &res, &err);
    int64_t took = ch_now_mono_ms() - t0;
    assert_int_equal(s, CH_ERR_TIMEOUT);
    assert_false(res.no_responders);
    assert_non_null(strstr(err.msg, "no reply from n1.example.net"));
    assert_in_range(took, 300, 2299); /* the 300 ms timeout, not the default */
    assert_int_equal(atomic_load(&r->handled), 1);
    assert_int_equal(stats(f).timeouts, 1);
    ch_rpc_result_clear(&res);
}

static void call_drops_a_reply_with_a_wrong_hash_and_times_out(void **state)
{
    fixture *f = *state;
    add(f, responder_start(f->rnc, R_BAD_HASH, "n1.example.net", NULL));
    ch_rpc_result res;
    ch_error err;
    ch_status s =
        ch_rpc_call(f->client, "n1.example.net", "choria_provision", "jwt", NULL, 500, &res, &err);
    assert_int_equal(s, CH_ERR_TIMEOUT);
    ch_rpc_client_stats st = stats(f);
    assert_int_equal(st.replies, 1);
    assert_int_equal(st.invalid, 1);
    ch_rpc_result_clear(&res);
}

static void call_drops_a_reply_for_another_request_id_and_takes_the_right_one(void **state)
{
    fixture *f = *state;
    add(f, responder_start(f->rnc, R_WRONG_THEN_OK, "n1.example.net", NULL));
    ch_rpc_result res;
    ch_error err;
    CHT_CHECK(
        ch_rpc_call(f->client, "n1.example.net", "choria_provision", "jwt", NULL, 2000, &res, &err),
        &err);
    assert_string_equal(res.sender, "n1.example.net");
    ch_rpc_client_stats st = stats(f);
    assert_int_equal(st.replies, 2);
    assert_int_equal(st.invalid, 1);
    ch_rpc_result_clear(&res);
}

static void call_drops_a_reply_from_another_identity(void **state)
{
    fixture *f = *state;
    /* subscribed as n1's subject but answering as n2 */
    char node[CH_MAX_SUBJECT_LEN];
    ch_protocol_node_subject(COLLECTIVE, "n1.example.net", node, sizeof(node), NULL);
    add(f, responder_start(f->rnc, R_ECHO, "n2.example.net", node));
    ch_rpc_result res;
    ch_error err;
    assert_int_equal(
        ch_rpc_call(f->client, "n1.example.net", "rpcutil", "ping", NULL, 400, &res, &err),
        CH_ERR_TIMEOUT);
    assert_int_equal(stats(f).invalid, 1);
    ch_rpc_result_clear(&res);
}

static void call_reports_a_reply_body_that_is_not_an_rpc_reply(void **state)
{
    fixture *f = *state;
    char node[CH_MAX_SUBJECT_LEN];
    ch_protocol_node_subject(COLLECTIVE, "n1.example.net", node, sizeof(node), NULL);
    responder *r = add(f, responder_start(f->rnc, R_DISCOVERY, "n1.example.net", node));
    ch_rpc_result res;
    ch_error err;
    ch_status s = ch_rpc_call_body(f->client, "n1.example.net", "discovery", CH_RPC_DISCOVERY_BODY,
                                   2000, &res, &err);
    assert_int_equal(s, CH_ERR_INVALID);
    assert_string_equal(res.body, "pong");
    assert_string_equal(res.sender, "n1.example.net");
    assert_string_equal(r->body, CH_RPC_DISCOVERY_BODY);
    ch_rpc_result_clear(&res);
}

/* 8 threads x 25 calls over 4 nodes: every reply reaches the call that asked for it. */
#define CALL_THREADS 8
#define CALLS_PER_THREAD 25

typedef struct {
    ch_rpc_client *client;
    int thread;
    int ok;
    int mismatched;
    char error[256];
} caller_arg;

static void *caller(void *arg)
{
    caller_arg *a = arg;
    for (int i = 0; i < CALLS_PER_THREAD; i++) {
        char identity[64];
        int seq = a->thread * 1000 + i;
        snprintf(identity, sizeof(identity), "n%d.example.net", (a->thread + i) % 4);
        json_t *data = json_pack("{s:i, s:s}", "seq", seq, "for", identity);
        ch_rpc_result res;
        ch_error err;
        ch_status s =
            ch_rpc_call(a->client, identity, "choria_provision", "jwt", data, 5000, &res, &err);
        json_decref(data);
        if (s != CH_OK) {
            snprintf(a->error, sizeof(a->error), "%s", err.msg);
        } else {
            json_t *echo = json_object_get(res.data, "echo");
            if (json_integer_value(json_object_get(echo, "seq")) == seq &&
                strcmp(json_string_value(json_object_get(echo, "for")), identity) == 0 &&
                strcmp(res.sender, identity) == 0)
                a->ok++;
            else
                a->mismatched++;
        }
        ch_rpc_result_clear(&res);
    }
    return NULL;
}

static void concurrent_calls_from_many_threads_each_get_their_own_reply(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 4; i++) {
        char id[64];
        snprintf(id, sizeof(id), "n%d.example.net", i);
        add(f, responder_start(f->rnc, R_ECHO, id, NULL));
    }
    pthread_t th[CALL_THREADS];
    caller_arg args[CALL_THREADS];
    int64_t t0 = ch_now_mono_ms();
    for (int i = 0; i < CALL_THREADS; i++) {
        args[i] = (caller_arg){.client = f->client, .thread = i};
        assert_int_equal(pthread_create(&th[i], NULL, caller, &args[i]), 0);
    }
    for (int i = 0; i < CALL_THREADS; i++)
        pthread_join(th[i], NULL);
    int64_t took = ch_now_mono_ms() - t0;
    int ok = 0;
    for (int i = 0; i < CALL_THREADS; i++) {
        if (args[i].error[0] != '\0')
            fail_msg("thread %d: %s", i, args[i].error);
        assert_int_equal(args[i].mismatched, 0);
        ok += args[i].ok;
    }
    assert_int_equal(ok, CALL_THREADS * CALLS_PER_THREAD);
    ch_rpc_client_stats st = stats(f);
    assert_int_equal(st.requests, CALL_THREADS * CALLS_PER_THREAD);
    assert_int_equal(st.replies, CALL_THREADS * CALLS_PER_THREAD);
    assert_int_equal(st.unknown, 0);
    assert_int_equal(st.invalid, 0);
    printf("%d concurrent calls from %d threads in %lld ms (%.0f calls/s)\n", ok, CALL_THREADS,
           (long long)took, took > 0 ? ok * 1000.0 / (double)took : 0.0);
}

static void on_raw_echo(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    natsConnection_Publish(nc, natsMsg_GetReply(msg), natsMsg_GetData(msg),
                           natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
}

/* Runs n calls one after another; returns microseconds per call. */
static double sequential_calls(ch_rpc_client *c, int n)
{
    json_t *data = json_pack("{s:s}", "nonce", "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
    int64_t t0 = ch_now_mono_ms();
    for (int i = 0; i < n; i++) {
        ch_rpc_result res;
        ch_error err;
        ch_status s = ch_rpc_call(c, "n1.example.net", "rpcutil", "ping", data, 2000, &res, &err);
        ch_rpc_result_clear(&res);
        if (s != CH_OK) {
            json_decref(data);
            fail_msg("call %d: %s", i, err.msg);
        }
    }
    json_decref(data);
    return (double)(ch_now_mono_ms() - t0) * 1000.0 / n;
}

/* One call after another, on a flushing client and on a SendAsap connection, all succeed;
 * the figures are printed next to a bare nats.c request/reply of the same size through
 * the same broker (bench_node measures it properly). */
static void sequential_calls_cost_little_more_than_a_bare_nats_request(void **state)
{
    fixture *f = *state;
    const int n = SANITIZED ? 200 : 2000;
    ch_error err;
    add(f, responder_start(f->rnc, R_ECHO, "n1.example.net", NULL));
    natsSubscription *raw = NULL;
    assert_int_equal(natsConnection_Subscribe(&raw, f->rnc, "bench.echo", on_raw_echo, NULL),
                     NATS_OK);
    assert_int_equal(natsConnection_FlushTimeout(f->rnc, 2000), NATS_OK);

    double flushed_us = sequential_calls(f->client, n);

    natsOptions *o = NULL;
    natsConnection *asap = NULL;
    ch_rpc_client *fast = NULL;
    CHT_CHECK(cht_nats_options(cht_broker_url(f->g->broker), 5000, &o, &err), &err);
    natsOptions_SetSendAsap(o, true);
    natsStatus ns = natsConnection_Connect(&asap, o);
    natsOptions_Destroy(o);
    assert_int_equal(ns, NATS_OK);
    ch_rpc_client_opts co = {.nc = asap,
                             .collective = COLLECTIVE,
                             .identity = CLIENT_ID,
                             .callerid = "choria=other",
                             .send_asap = true};
    ch_status s = ch_rpc_client_new_opts(&co, &fast, &err);
    double asap_us = s == CH_OK ? sequential_calls(fast, n) : 0;
    ch_rpc_client_free(fast);
    natsConnection_Destroy(asap);
    CHT_CHECK(s, &err);

    char payload[900];
    memset(payload, 'x', sizeof(payload));
    int64_t t0 = ch_now_mono_ms();
    for (int i = 0; i < n && ns == NATS_OK; i++) {
        natsMsg *reply = NULL;
        ns = natsConnection_Request(&reply, f->nc, "bench.echo", payload, sizeof(payload), 2000);
        natsMsg_Destroy(reply);
    }
    double raw_us = (double)(ch_now_mono_ms() - t0) * 1000.0 / n;
    natsSubscription_Unsubscribe(raw);
    natsSubscription_Destroy(raw);
    assert_int_equal(ns, NATS_OK);
    printf("%d sequential calls: %.0f us each (flushed), %.0f us each (SendAsap connection); "
           "bare nats.c request/reply of %zu bytes: %.0f us%s\n",
           n, flushed_us, asap_us, sizeof(payload), raw_us, SANITIZED ? " (sanitized build)" : "");
    /* The speed is a benchmark's business (bench_node); here every call must succeed. */
    assert_true(flushed_us > 0 && asap_us > 0);
}

static void replies_for_unknown_or_finished_requests_are_counted_and_ignored(void **state)
{
    fixture *f = *state;
    add(f, responder_start(f->rnc, R_SLOW, "slow.example.net", NULL));
    add(f, responder_start(f->rnc, R_ECHO, "n1.example.net", NULL));
    ch_error err;
    char subject[CH_MAX_SUBJECT_LEN];
    /* foreign messages on the inbox: an id nobody asked for, and not an id at all */
    CHT_CHECK(ch_protocol_reply_subject(COLLECTIVE, CALLERID, "abababababababababababababababab",
                                        subject, sizeof(subject), &err),
              &err);
    CHT_CHECK(cht_nats_publish(f->rnc, subject, "garbage", 7, &err), &err);
    CHT_CHECK(cht_nats_publish(f->rnc, "provisioning.reply.344aa967e9f3339639bf1c959876175b.x",
                               "garbage", 7, &err),
              &err);
    /* a reply that arrives after its call gave up */
    ch_rpc_result res;
    assert_int_equal(
        ch_rpc_call(f->client, "slow.example.net", "rpcutil", "ping", NULL, 100, &res, &err),
        CH_ERR_TIMEOUT);
    ch_rpc_result_clear(&res);
    int64_t deadline = ch_now_mono_ms() + 3000;
    while (stats(f).unknown < 3 && ch_now_mono_ms() < deadline)
        usleep(10 * 1000);
    assert_int_equal(stats(f).unknown, 3);
    /* and the client still works */
    CHT_CHECK(ch_rpc_call(f->client, "n1.example.net", "rpcutil", "ping", NULL, 2000, &res, &err),
              &err);
    assert_string_equal(res.sender, "n1.example.net");
    ch_rpc_result_clear(&res);
    assert_int_equal(stats(f).unknown, 3);
}

typedef struct {
    ch_rpc_client *client;
    int64_t timeout_ms;
    ch_status status;
    int64_t took;
    ch_error err;
} slow_call;

static void *call_silent(void *arg)
{
    slow_call *a = arg;
    ch_rpc_result res;
    int64_t t0 = ch_now_mono_ms();
    a->status = ch_rpc_call(a->client, "n1.example.net", "choria_provision", "jwt", NULL,
                            a->timeout_ms, &res, &a->err);
    a->took = ch_now_mono_ms() - t0;
    ch_rpc_result_clear(&res);
    return NULL;
}

static void closing_the_connection_ends_waiting_calls_at_once(void **state)
{
    fixture *f = *state;
    add(f, responder_start(f->rnc, R_SILENT, "n1.example.net", NULL));
    pthread_t th;
    slow_call a = {.client = f->client, .timeout_ms = 5000};
    assert_int_equal(pthread_create(&th, NULL, call_silent, &a), 0);
    usleep(200 * 1000);
    natsConnection_Close(f->nc);
    pthread_join(th, NULL);
    assert_int_equal(a.status, CH_ERR_CONNECTION);
    assert_in_range(a.took, 0, 1499);
    /* new calls fail at once too */
    ch_rpc_result res;
    ch_error err;
    assert_int_equal(
        ch_rpc_call(f->client, "n1.example.net", "rpcutil", "ping", NULL, 2000, &res, &err),
        CH_ERR_CONNECTION);
    ch_rpc_result_clear(&res);
}

static void pending_requests_are_bounded(void **state)
{
    fixture *f = *state;
    add(f, responder_start(f->rnc, R_SILENT, "n1.example.net", NULL));
    ch_rpc_client_free(f->client);
    f->client = NULL;
    ch_error err;
    ch_rpc_client_opts o = {.nc = f->nc,
                            .collective = COLLECTIVE,
                            .identity = CLIENT_ID,
                            .callerid = CALLERID,
                            .max_pending = 1};
    CHT_CHECK(ch_rpc_client_new_opts(&o, &f->client, &err), &err);
    pthread_t th;
    slow_call a = {.client = f->client, .timeout_ms = 500};
    assert_int_equal(pthread_create(&th, NULL, call_silent, &a), 0);
    int64_t deadline = ch_now_mono_ms() + 2000;
    while (stats(f).requests < 1 && ch_now_mono_ms() < deadline)
        usleep(5 * 1000);
    ch_rpc_result res;
    ch_status s =
        ch_rpc_call(f->client, "n1.example.net", "rpcutil", "ping", NULL, 100, &res, &err);
    ch_rpc_result_clear(&res);
    pthread_join(th, NULL);
    assert_int_equal(s, CH_ERR_TOO_LARGE);
    assert_int_equal(a.status, CH_ERR_TIMEOUT);
}

static void client_refuses_invalid_identities_and_options(void **state)
{
    fixture *f = *state;
    ch_rpc_client *c = NULL;
    ch_error err;
    static const char *bad_ids[] = {"", "bad identity", "node.>", "*", "a..b", ".a", NULL};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        assert_int_equal(ch_rpc_client_new(f->nc, COLLECTIVE, bad_ids[i], CALLERID, 0, &c, &err),
                         CH_ERR_INVALID);
        assert_null(c);
    }
    assert_int_equal(ch_rpc_client_new(NULL, COLLECTIVE, CLIENT_ID, CALLERID, 0, &c, &err),
                     CH_ERR_INVALID);
    assert_int_equal(ch_rpc_client_new(f->nc, "prov.x", CLIENT_ID, CALLERID, 0, &c, &err),
                     CH_ERR_INVALID);
    assert_int_equal(ch_rpc_client_new(f->nc, ">", CLIENT_ID, CALLERID, 0, &c, &err),
                     CH_ERR_INVALID);
    assert_int_equal(ch_rpc_client_new(f->nc, COLLECTIVE, CLIENT_ID, "", 0, &c, &err),
                     CH_ERR_INVALID);
    assert_int_equal(ch_rpc_client_new(f->nc, COLLECTIVE, CLIENT_ID, CALLERID, 29, &c, &err),
                     CH_ERR_INVALID);
    ch_rpc_client_free(NULL);

    /* targets that are not node names never reach a subject */
    ch_rpc_result res;
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        assert_int_equal(
            ch_rpc_call(f->client, bad_ids[i], "rpcutil", "ping", NULL, 1000, &res, &err),
            CH_ERR_INVALID);
        ch_rpc_result_clear(&res);
    }
    assert_int_equal(ch_rpc_call(f->client, "n1", "rpcutil", "ping", NULL, 0, &res, &err),
                     CH_ERR_INVALID);
    assert_int_equal(ch_rpc_call(f->client, "n1", "", "ping", NULL, 100, &res, &err),
                     CH_ERR_INVALID);
    assert_int_equal(ch_rpc_call(f->client, "n1", "rpcutil", NULL, NULL, 100, &res, &err),
                     CH_ERR_INVALID);
    assert_int_equal(stats(f).requests, 0);
}

/* --------------------------------------------------------------------------------------
 * Broadcast discovery */

static bool has(const ch_rpc_discovery *d, const char *identity)
{
    for (size_t i = 0; i < d->count; i++)
        if (strcmp(d->identities[i], identity) == 0)
            return true;
    return false;
}

static void start_three_nodes(fixture *f)
{
    static const char *prov[] = {"discovery", "rpcutil", "choria_provision"};
    static const char *plain[] = {"discovery", "rpcutil"};
    add(f, discovery_responder(f->rnc, "n1.example.net", prov, 3));
    add(f, discovery_responder(f->rnc, "n2.example.net", prov, 3));
    add(f, discovery_responder(f->rnc, "n3.example.net", plain, 2));
}

static void discovery_finds_the_nodes_its_filter_matches(void **state)
{
    fixture *f = *state;
    start_three_nodes(f);
    const char *agents[] = {"choria_provision"};
    ch_filter filter = {.agents = agents, .n_agents = 1};
    ch_rpc_discover_opts o = {.filter = &filter, .timeout_ms = 2000};
    ch_rpc_discovery d;
    ch_error err;
    CHT_CHECK(ch_rpc_discover(f->client, &o, &d, &err), &err);
    assert_int_equal(d.count, 2);
    assert_true(has(&d, "n1.example.net"));
    assert_true(has(&d, "n2.example.net"));
    assert_false(has(&d, "n3.example.net"));
    assert_int_equal(d.replies, 2);
    assert_false(d.no_responders);
    assert_false(d.from_filter);
    ch_rpc_discovery_clear(&d);
    /* the request went out as go-choria's: agent discovery, body cGluZw== */
    assert_string_equal(f->r[0]->envelope_agent, "discovery");
    assert_string_equal(f->r[0]->body, "cGluZw==");
    assert_string_equal(f->r[0]->nats_reply, f->r[0]->header_reply);

    o.filter = NULL;
    CHT_CHECK(ch_rpc_discover(f->client, &o, &d, &err), &err);
    assert_int_equal(d.count, 3);
    assert_true(has(&d, "n3.example.net"));
    ch_rpc_discovery_clear(&d);
    assert_int_equal(stats(f).discoveries, 2);
}

static void discovery_ends_a_window_after_the_last_reply_well_before_the_timeout(void **state)
{
    fixture *f = *state;
    start_three_nodes(f);
    ch_rpc_discover_opts o = {.timeout_ms = 5000, .window_ms = 300};
    ch_rpc_discovery d;
    ch_error err;
    CHT_CHECK(ch_rpc_discover(f->client, &o, &d, &err), &err);
    assert_int_equal(d.count, 3);
    assert_true(d.window_closed);
    assert_in_range(d.first_reply_ms, 0, INT64_MAX);
    assert_in_range(d.last_reply_ms, d.first_reply_ms, INT64_MAX);
    assert_in_range(d.elapsed_ms, d.last_reply_ms + 300, 4999); /* before the timeout */
    printf("3 nodes: last reply after %lld ms, discovery done after %lld ms (timeout 5000)\n",
           (long long)d.last_reply_ms, (long long)d.elapsed_ms);
    ch_rpc_discovery_clear(&d);

    /* without a window it runs to the timeout */
    o.timeout_ms = 700;
    o.window_ms = -1;
    CHT_CHECK(ch_rpc_discover(f->client, &o, &d, &err), &err);
    assert_int_equal(d.count, 3);
    assert_false(d.window_closed);
    assert_in_range(d.elapsed_ms, 700, 2699);
    ch_rpc_discovery_clear(&d);
}

static void discovery_with_no_subscriber_ends_at_once(void **state)
{
    fixture *f = *state;
    ch_rpc_discovery d;
    ch_error err;
    CHT_CHECK(ch_rpc_discover(f->client, NULL, &d, &err), &err);
    assert_true(d.no_responders);
    assert_int_equal(d.count, 0);
    assert_in_range(d.elapsed_ms, 0, CH_RPC_DEFAULT_DISCOVERY_TIMEOUT_MS / 2);
    assert_int_equal(d.first_reply_ms, -1);
    ch_rpc_discovery_clear(&d);
}

typedef struct {
    pthread_t thread;
    bool wrong_thread;
    int calls;
    char seen[4][64];
} discovered_log;

static void on_found(const char *identity, void *closure)
{
    discovered_log *l = closure;
    if (!pthread_equal(pthread_self(), l->thread))
        l->wrong_thread = true;
    if (l->calls < 4)
        snprintf(l->seen[l->calls], sizeof(l->seen[0]), "%s", identity);
    l->calls++;
}

static void discovery_refuses_invalid_and_duplicate_senders_and_calls_back_once_each(void **state)
{
    fixture *f = *state;
    char subject[CH_MAX_SUBJECT_LEN];
    ch_protocol_broadcast_subject(COLLECTIVE, "discovery", subject, sizeof(subject), NULL);
    responder *r = add(f, responder_start(f->bnc, R_CANNED, "canned", subject));
    canned_alloc(r, 8);
    size_t len;
    char *p;
    p = discovery_reply("n1.example.net", &len);
    canned_add(r, p, len);
    p = discovery_reply("n1.example.net", &len);
    canned_add(r, p, len);
    p = discovery_reply("n2.example.net", &len);
    canned_add(r, p, len);
    p = strdup("{\"protocol\":\"choria:transport:1\",\"data\":\"\",\"headers\":{\"mc_sender\":"
               "\"provisioning.node.>\"}}");
    canned_add(r, p, strlen(p));
    p = strdup("{\"protocol\":\"choria:transport:1\",\"data\":\"\",\"headers\":{\"mc_sender\":"
               "\"bad id\"}}");
    canned_add(r, p, strlen(p));
    p = strdup("not json at all");
    canned_add(r, p, strlen(p));
    p = strdup("{\"protocol\":\"choria:transport:1\",\"data\":\"\",\"headers\":{}}");
    canned_add(r, p, strlen(p));

    discovered_log log = {.thread = pthread_self()};
    ch_rpc_discover_opts o = {.timeout_ms = 2000, .on_identity = on_found, .closure = &log};
    ch_rpc_discovery d;
    ch_error err;
    CHT_CHECK(ch_rpc_discover(f->client, &o, &d, &err), &err);
    assert_int_equal(d.count, 2);
    assert_string_equal(d.identities[0], "n1.example.net");
    assert_string_equal(d.identities[1], "n2.example.net");
    assert_int_equal(d.replies, 7);
    assert_int_equal(d.duplicates, 1);
    assert_int_equal(d.invalid_identity, 2);
    assert_int_equal(d.malformed, 2);
    assert_int_equal(log.calls, 2);
    assert_false(log.wrong_thread);
    assert_string_equal(log.seen[0], "n1.example.net");
    assert_string_equal(log.seen[1], "n2.example.net");
    ch_rpc_discovery_clear(&d);
}

static void discovery_keeps_at_most_max_identities(void **state)
{
    fixture *f = *state;
    char subject[CH_MAX_SUBJECT_LEN];
    ch_protocol_broadcast_subject(COLLECTIVE, "discovery", subject, sizeof(subject), NULL);
    responder *r = add(f, responder_start(f->bnc, R_CANNED, "canned", subject));
    canned_alloc(r, 100);
    for (int i = 0; i < 100; i++) {
        char id[64];
        size_t len;
        snprintf(id, sizeof(id), "node-%03d.example.net", i);
        char *p = discovery_reply(id, &len);
        canned_add(r, p, len);
    }
    ch_rpc_discover_opts o = {.max_identities = 10};
    ch_rpc_discovery d;
    ch_error err;
    CHT_CHECK(ch_rpc_discover(f->client, &o, &d, &err), &err);
    assert_int_equal(d.count, 10);
    assert_int_equal(d.over_limit, 90);
    assert_int_equal(d.replies, 100);
    assert_string_equal(d.identities[9], "node-009.example.net");
    ch_rpc_discovery_clear(&d);
}

static void discovery_by_identities_only_sends_nothing(void **state)
{
    fixture *f = *state;
    const char *ids[] = {"n1.example.net", "n2.example.net", "n1.example.net", "bad>id"};
    ch_filter filter = {.identities = ids, .n_identities = 4};
    ch_rpc_discover_opts o = {.filter = &filter};
    ch_rpc_discovery d;
    ch_error err;
    CHT_CHECK(ch_rpc_discover(f->client, &o, &d, &err), &err);
    assert_true(d.from_filter);
    assert_int_equal(d.count, 2);
    assert_int_equal(d.duplicates, 1);
    assert_int_equal(d.invalid_identity, 1);
    ch_rpc_discovery_clear(&d);
    assert_int_equal(stats(f).discoveries, 0); /* answered from the filter, no network */

    /* a regex among them needs the network */
    const char *rx[] = {"n1.example.net", "/^n/"};
    filter = (ch_filter){.identities = rx, .n_identities = 2};
    o.timeout_ms = 200;
    CHT_CHECK(ch_rpc_discover(f->client, &o, &d, &err), &err);
    assert_false(d.from_filter);
    assert_true(d.no_responders);
    ch_rpc_discovery_clear(&d);
    assert_int_equal(stats(f).discoveries, 1);
}

static void discovery_collects_fifty_thousand_replies_quickly(void **state)
{
    fixture *f = *state;
    char subject[CH_MAX_SUBJECT_LEN];
    ch_protocol_broadcast_subject(COLLECTIVE, "discovery", subject, sizeof(subject), NULL);
    responder *r = add(f, responder_start(f->bnc, R_CANNED, "canned", subject));
    canned_alloc(r, MANY_NODES);
    int64_t t0 = ch_now_mono_ms();
    size_t bytes = 0;
    for (int i = 0; i < MANY_NODES; i++) {
        char id[64];
        size_t len;
        snprintf(id, sizeof(id), "node-%05d.example.net", i);
        char *p = discovery_reply(id, &len);
        canned_add(r, p, len);
        bytes += len;
    }
    int64_t built = ch_now_mono_ms() - t0;

    const char *agents[] = {"choria_provision"};
    ch_filter filter = {.agents = agents, .n_agents = 1};
    ch_rpc_discover_opts o = {.filter = &filter, .timeout_ms = 10000, .window_ms = 300};
    ch_rpc_discovery d;
    ch_error err;
    CHT_CHECK(ch_rpc_discover(f->client, &o, &d, &err), &err);
    printf("%d discovery replies (%zu bytes each, prepared in %lld ms): first after %lld ms, "
           "last after %lld ms (%.0f replies/s), discovery done after %lld ms with the %d ms "
           "window%s\n",
           MANY_NODES, bytes / MANY_NODES, (long long)built, (long long)d.first_reply_ms,
           (long long)d.last_reply_ms,
           d.last_reply_ms > 0 ? MANY_NODES * 1000.0 / (double)d.last_reply_ms : 0.0,
           (long long)d.elapsed_ms, 300, SANITIZED ? " (sanitized build)" : "");
    assert_int_equal(d.count, MANY_NODES);
    assert_int_equal(d.replies, MANY_NODES);
    assert_int_equal(d.duplicates + d.malformed + d.invalid_identity + d.over_limit, 0);
    assert_true(d.window_closed);
    assert_string_equal(d.identities[0], "node-00000.example.net");
    assert_string_equal(d.identities[MANY_NODES - 1], "node-49999.example.net");
    ch_rpc_discovery_clear(&d); /* the rate is bench_node's figure */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            call_returns_the_nodes_reply_and_sends_go_choria_wire_format, setup, teardown),
        cmocka_unit_test_setup_teardown(call_with_no_data_sends_an_empty_data_object, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(call_returns_ok_with_the_nodes_failure_status, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            call_to_a_node_with_no_subscriber_fails_at_once_with_no_responders, setup, teardown),
        cmocka_unit_test_setup_teardown(call_honours_its_timeout_when_the_node_stays_silent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(call_drops_a_reply_with_a_wrong_hash_and_times_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            call_drops_a_reply_for_another_request_id_and_takes_the_right_one, setup, teardown),
        cmocka_unit_test_setup_teardown(call_drops_a_reply_from_another_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(call_reports_a_reply_body_that_is_not_an_rpc_reply, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(concurrent_calls_from_many_threads_each_get_their_own_reply,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(sequential_calls_cost_little_more_than_a_bare_nats_request,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            replies_for_unknown_or_finished_requests_are_counted_and_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(closing_the_connection_ends_waiting_calls_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(pending_requests_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(client_refuses_invalid_identities_and_options, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(discovery_finds_the_nodes_its_filter_matches, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            discovery_ends_a_window_after_the_last_reply_well_before_the_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(discovery_with_no_subscriber_ends_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(
            discovery_refuses_invalid_and_duplicate_senders_and_calls_back_once_each, setup,
            teardown),
        cmocka_unit_test_setup_teardown(discovery_keeps_at_most_max_identities, setup, teardown),
        cmocka_unit_test_setup_teardown(discovery_by_identities_only_sends_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(discovery_collects_fifty_thousand_replies_quickly, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
