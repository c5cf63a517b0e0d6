/* Server side request pipeline (go-choria server/processor.go, providers/agent/mcorpc):
 * decode, collective, filter, TTL, agent lookup, mcorpc body, action, reply. */
#include "choria/agent.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "choria/json.h"
#include "choria/util.h"

static const ch_agent *const standard_agents[] = {
    &ch_agent_discovery,
    &ch_agent_rpcutil,
    &ch_agent_choria_provision,
};

const ch_agent_set ch_agent_set_standard = {
    .agents = standard_agents,
    .n_agents = sizeof(standard_agents) / sizeof(standard_agents[0]),
};

void ch_rpc_reply_fail(ch_rpc_reply *reply, ch_rpc_status code, const char *fmt, ...)
{
    va_list ap;
    reply->statuscode = code;
    va_start(ap, fmt);
    vsnprintf(reply->statusmsg, sizeof(reply->statusmsg), fmt, ap);
    va_end(ap);
}

void ch_agent_result_clear(ch_agent_result *r)
{
    if (r == NULL)
        return;
    free(r->payload);
    memset(r, 0, sizeof(*r));
}

static const ch_agent_set *node_agents(const ch_node *node)
{
    return node->agents != NULL ? node->agents : &ch_agent_set_standard;
}

static bool agent_active(const ch_node *node, const ch_agent *a)
{
    return a != NULL && a->name != NULL && (a->active == NULL || a->active(node));
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t ch_agent_active_names(const ch_node *node, const char **out, size_t max)
{
    const ch_agent_set *set = node_agents(node);
    size_t n = 0;
    for (size_t i = 0; i < set->n_agents && i < CH_AGENT_MAX_AGENTS && n < max; i++)
        if (agent_active(node, set->agents[i]))
            out[n++] = set->agents[i]->name;
    qsort(out, n, sizeof(*out), cmp_names);
    return n;
}

static const ch_agent *find_agent(const ch_node *node, const char *name)
{
    const ch_agent_set *set = node_agents(node);
    for (size_t i = 0; i < set->n_agents && i < CH_AGENT_MAX_AGENTS; i++) {
        const ch_agent *a = set->agents[i];
        if (a != NULL && a->name != NULL && strcmp(a->name, name) == 0)
            return a;
    }
    return NULL;
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] != NULL && strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* A subject we may publish to: dot-separated non-empty tokens of printable ASCII without
 * wildcards, shorter than CH_MAX_SUBJECT_LEN. */
static bool publish_subject_valid(const char *s)
{
    size_t n = 0, token = 0;
    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n + 1 >= CH_MAX_SUBJECT_LEN || c <= ' ' || c >= 0x7f || c == '*' || c == '>')
            return false;
        if (c == '.') {
            if (token == 0)
                return false;
            token = 0;
        } else {
            token++;
        }
    }
    return n > 0 && token > 0;
}

/* ---- mcorpc request bodies --------------------------------------------------------- */

/* The fields of go-choria's mcorpc.Request that json.Unmarshal fills from a body; only action
 * and data are used, the others are type-checked as Go checks them. */
typedef struct {
    const char *action;
    json_t *data;
    const char *other; /* agent, requestid, senderid, callerid, collective, time */
    int64_t ttl;
} mcorpc_request;

/* time.Time's UnmarshalJSON: an RFC 3339 string. */
static ch_status decode_time(const ch_json_field *f, const json_t *v, void *dst, const char *path,
                             ch_error *err)
{
    int64_t t;
    if (!json_is_string(v))
        return ch_error_set(err, CH_ERR_INVALID, "Time.UnmarshalJSON: input is not a JSON string");
    if (ch_parse_rfc3339(json_string_value(v), &t) != CH_OK)
        return ch_error_set(err, CH_ERR_INVALID, "parsing time \"%.64s\": not an RFC 3339 time",
                            json_string_value(v));
    *(const char **)dst = json_string_value(v);
    return CH_OK;
}

#define RF(key, kind, member) CH_JSON_FIELD(mcorpc_request, key, kind, member)
static const ch_json_field request_fields[] = {
    RF("agent", CH_JSON_BSTRING, other),
    RF("action", CH_JSON_BSTRING, action),
    RF("data", CH_JSON_VALUE, data),
    RF("requestid", CH_JSON_BSTRING, other),
    RF("senderid", CH_JSON_BSTRING, other),
    RF("callerid", CH_JSON_BSTRING, other),
    RF("collective", CH_JSON_BSTRING, other),
    RF("ttl", CH_JSON_INT, ttl),
    {.name = "time",
     .kind = CH_JSON_BSTRING,
     .offset = offsetof(mcorpc_request, other),
     .decode = decode_time},
};
#undef RF
static const ch_json_struct mcorpc_request_struct = {
    "mcorpc.Request", request_fields, sizeof(request_fields) / sizeof(request_fields[0])};

typedef struct {
    json_t *root; /* the parsed body */
    json_t *data; /* borrowed from root, or owned_data */
    json_t *owned_data;
    const char *action; /* borrowed from root, or "" */
} rpc_body;

static void rpc_body_clear(rpc_body *b)
{
    json_decref(b->root);
    json_decref(b->owned_data);
    memset(b, 0, sizeof(*b));
}

/* Parses an mcorpc request body as go-choria's parseIncomingMessage does: CH_ERR_INVALID with
 * the reason (without go-choria's prefix), or CH_ERR_NOMEM. */
static ch_status parse_rpc_body(const unsigned char *body, size_t len, rpc_body *out, ch_error *err)
{
    memset(out, 0, sizeof(*out));
    out->action = "";
    if (ch_json_depth((const char *)body, len, CH_MAX_JSON_DEPTH) > CH_MAX_JSON_DEPTH)
        return ch_error_set(err, CH_ERR_INVALID, "JSON nesting exceeds the limit of %d",
                            CH_MAX_JSON_DEPTH);
    json_error_t jerr;
    /* No JSON_REJECT_DUPLICATES: like Go, the last of two equal keys wins. Strings with
     * \u0000 are refused (no JSON_ALLOW_NUL), so action and data keys are C strings. */
    out->root = json_loadb((const char *)body, len, JSON_DECODE_ANY, &jerr);
    if (out->root == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "%s at line %d column %d", jerr.text, jerr.line,
                            jerr.column);
    mcorpc_request r = {.action = ""};
    ch_status st = ch_json_decode(out->root, &mcorpc_request_struct, &r, err);
    if (st != CH_OK)
        return st;
    out->action = r.action != NULL ? r.action : "";
    out->data = r.data;
    if (out->data == NULL) {
        /* absent data is {} in go-choria; null unmarshals into a struct as a no-op */
        if ((out->owned_data = json_object()) == NULL)
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing a request body");
        out->data = out->owned_data;
    }
    return CH_OK;
}

/* {"action":..,"statuscode":..,"statusmsg":..,"data":..} in mcorpc.Reply's field order. */
static char *encode_reply_body(const char *action, const ch_rpc_reply *reply)
{
    ch_buf b;
    char *data = reply->data != NULL ? ch_json_encode(reply->data, NULL) : strdup("{}");
    if (data == NULL)
        return NULL;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"action\":");
    ch_buf_append_json_string(&b, action, strlen(action));
    ch_buf_printf(&b, ",\"statuscode\":%d,\"statusmsg\":", (int)reply->statuscode);
    ch_buf_append_json_string(&b, reply->statusmsg, strlen(reply->statusmsg));
    ch_buf_append_str(&b, ",\"data\":");
    ch_buf_append_str(&b, data);
    ch_buf_append_str(&b, "}");
    free(data);
    return ch_buf_steal(&b, NULL);
}

/* Runs an mcorpc agent on body; *reply_body is the malloc'd reply body, action[] the action
 * the body named. */
static ch_status run_mcorpc(ch_node *node, const ch_agent *agent, const ch_request *request,
                            const unsigned char *body, size_t len, char **reply_body,
                            char action_out[CH_AGENT_MAX_ACTION_LEN], ch_error *err)
{
    rpc_body rb;
    ch_error why;
    ch_rpc_reply reply = {.statuscode = CH_RPC_OK, .statusmsg = "OK", .data = json_object()};
    const char *action = "";
    ch_status s = CH_OK;
    *reply_body = NULL;
    if (reply.data == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");

    s = parse_rpc_body(body, len, &rb, &why);
    if (s == CH_ERR_NOMEM) {
        ch_error_set(err, s, "%s", why.msg);
        goto out;
    }
    if (s != CH_OK) {
        s = CH_OK;
        ch_rpc_reply_fail(&reply, CH_RPC_INVALID_DATA,
                          "Could not process request: could not parse incoming message as a "
                          "MCollective SimpleRPC Request: %s",
                          why.msg);
    } else {
        action = rb.action;
        snprintf(action_out, CH_AGENT_MAX_ACTION_LEN, "%s", action);
        const ch_agent_action *act = NULL;
        for (size_t i = 0; i < agent->n_actions && act == NULL; i++)
            if (agent->actions[i].name != NULL && strcmp(agent->actions[i].name, action) == 0)
                act = &agent->actions[i];
        if (act == NULL || act->fn == NULL) {
            ch_rpc_reply_fail(&reply, CH_RPC_UNKNOWN_ACTION, "Unknown action %s for agent %s",
                              action, agent->name);
        } else {
            ch_rpc_request req = {.agent = agent->name,
                                  .action = action,
                                  .data = rb.data,
                                  .envelope = &request->envelope};
            act->fn(node, &req, &reply);
        }
    }
    *reply_body = encode_reply_body(action, &reply);
    if (*reply_body == NULL)
        s = ch_error_set(err, CH_ERR_INTERNAL, "could not encode the %s#%s reply", agent->name,
                         action);
out:
    rpc_body_clear(&rb);
    json_decref(reply.data);
    return s;
}

/* The reply to a request that did not verify: statuscode 1 as upstream's authorization
 * refusal, with the reason, and no action (the body was not trusted enough to read). */
static char *refusal_body(const char *why)
{
    ch_rpc_reply reply = {.data = json_object()};
    ch_rpc_reply_fail(&reply, CH_RPC_ABORTED,
                      "You are not authorized to call this agent or action: %s", why);
    char *body = reply.data != NULL ? encode_reply_body("", &reply) : NULL;
    json_decref(reply.data);
    return body;
}

/* ---- the pipeline ------------------------------------------------------------------ */

/* A request that gets no reply: the reason in the result, and CH_OK for the caller. */
static ch_status drop(ch_agent_result *r, ch_status why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ch_status drop(ch_agent_result *r, ch_status why, const char *fmt, ...)
{
    va_list ap;
    r->dropped = why;
    va_start(ap, fmt);
    vsnprintf(r->drop_reason, sizeof(r->drop_reason), fmt, ap);
    va_end(ap);
    return CH_OK;
}

/* refusal: why the request did not verify, NULL when it did (or was not checked). given_body:
 * the message body the caller decoded (borrowed), NULL to decode it here. */
static ch_status handle_decoded(ch_node *node, const ch_request_payload *req,
                                const unsigned char *given_body, size_t given_len, int64_t now,
                                const char *refusal, ch_agent_result *result, ch_error *err)
{
    const ch_request_envelope *env = &req->request.envelope;
    const char *names[CH_AGENT_MAX_AGENTS];
    unsigned char *body = NULL; /* decoded here: freed at the end */
    const unsigned char *use = given_body;
    size_t body_len = given_len;
    char *reply_body = NULL;
    ch_error e;
    ch_status s = CH_OK;

    memset(result, 0, sizeof(*result));
    if (refusal != NULL) {
        result->refused = true;
        snprintf(result->refusal, sizeof(result->refusal), "%s", refusal);
    }
    ch_error_clear(err);
    if (node == NULL || node->identity == NULL || env->collective == NULL || env->agent == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no node or no request");

    if (!in_list(env->collective, node->collectives, node->n_collectives))
        return drop(result, CH_ERR_NO_MATCH, "request %s for collective %s is not for this node",
                    env->requestid, env->collective);
    size_t n_names = ch_agent_active_names(node, names, CH_AGENT_MAX_AGENTS);
    s = ch_filter_match(&env->filter, node->identity, names, n_names, node->classes,
                        node->n_classes, node->facts, &e);
    if (s == CH_ERR_NOMEM)
        return ch_error_set(err, s, "matching the filter of %s: %s", env->requestid, e.msg);
    if (s != CH_OK)
        return drop(result, s, "request %s does not match: %s", env->requestid, e.msg);
    if ((s = ch_protocol_ttl_check(env, now, &e)) != CH_OK)
        return drop(result, s, "%s", e.msg);
    const ch_agent *agent = find_agent(node, env->agent);
    if (agent == NULL || !agent_active(node, agent))
        return drop(result, CH_ERR_NOT_FOUND, "request %s for %s agent %s discarded",
                    env->requestid, agent == NULL ? "unknown" : "inactive", env->agent);
    const char *reply_to = req->transport.headers.reply_to;
    if (!publish_subject_valid(reply_to))
        return drop(result, CH_ERR_INVALID, "request %s has %s reply-to subject", env->requestid,
                    reply_to == NULL || reply_to[0] == '\0' ? "no" : "an invalid");

    if (result->refused) {
        if (agent->raw != NULL)
            return drop(result, CH_ERR_INVALID, "request %s refused: %s", env->requestid,
                        result->refusal);
        if ((reply_body = refusal_body(result->refusal)) == NULL)
            return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto reply;
    }
    if (use == NULL) {
        if ((s = ch_protocol_message_body(req->request.message, &body, &body_len, &e)) != CH_OK) {
            ch_error_set(err, s, "request %s: %s", env->requestid, e.msg);
            goto out;
        }
        use = body;
    }
    if (agent->raw != NULL) {
        s = agent->raw(node, use, body_len, &reply_body);
        if (s == CH_ERR_NOMEM) {
            ch_error_set(err, s, "out of memory in agent %s", agent->name);
            goto out;
        }
        if (s != CH_OK || reply_body == NULL || reply_body[0] == '\0') {
            s = drop(result, CH_ERR_NO_MATCH, "agent %s did not reply to request %s", agent->name,
                     env->requestid);
            goto out;
        }
    } else if ((s = run_mcorpc(node, agent, &req->request, use, body_len, &reply_body,
                               result->action, err)) != CH_OK) {
        goto out;
    }

reply:;
    ch_reply_params rp = {.body = reply_body,
                          .request = env,
                          .identity = node->identity,
                          .time = now,
                          .federation = req->transport.headers.federation};
    s = ch_protocol_encode_reply(node->protocol, node->security, &rp, &result->payload,
                                 &result->payload_len, &e);
    if (s != CH_OK) {
        ch_error_set(err, s, "could not encode the reply to %s: %s", env->requestid, e.msg);
        goto out;
    }
    snprintf(result->subject, sizeof(result->subject), "%s", reply_to);
out:
    free(body);
    free(reply_body);
    if (s != CH_OK)
        ch_agent_result_clear(result);
    return s;
}

ch_status ch_agent_handle_decoded(ch_node *node, const ch_request_payload *req, int64_t now,
                                  ch_agent_result *result, ch_error *err)
{
    return handle_decoded(node, req, NULL, 0, now, NULL, result, err);
}

ch_status ch_agent_handle_body(ch_node *node, const ch_request_payload *req,
                               const unsigned char *body, size_t body_len, int64_t now,
                               ch_agent_result *result, ch_error *err)
{
    if (body == NULL)
        body = (const unsigned char *)"";
    return handle_decoded(node, req, body, body_len, now, NULL, result, err);
}

/* True when payload is a Choria request of the version this node does not speak. */
static bool other_protocol(const ch_node *node, const char *payload, size_t len)
{
    const ch_protocol_ops *p = ch_protocol_detect(payload, len);
    return p != NULL && p != (node->protocol != NULL ? node->protocol : ch_protocol_v1());
}

ch_status ch_agent_handle(ch_node *node, const char *payload, size_t len, int64_t now,
                          ch_agent_result *result, ch_error *err)
{
    ch_request_payload req;
    ch_error e;
    memset(result, 0, sizeof(*result));
    ch_error_clear(err);
    if (node == NULL || payload == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "no node or no payload");
    /* Decoded first and verified after, so that a refused request can be told why.
     * node->security is NULL in provisioning mode: such a server never verifies, as
     * upstream's provisioning mode does not. */
    ch_status s = ch_protocol_decode_request(node->protocol, NULL, payload, len, &req, &e);
    if (s == CH_ERR_NOMEM)
        return ch_error_set(err, s, "could not decode the request: %s", e.msg);
    if (s != CH_OK && other_protocol(node, payload, len))
        return drop(result, CH_ERR_UNSUPPORTED,
                    "a request in protocol %s, but this node speaks %s (%s)",
                    ch_protocol_detect(payload, len)->name,
                    (node->protocol != NULL ? node->protocol : ch_protocol_v1())->name,
                    node->provision_mode ? "its provisioning JWT's v2 claim decides"
                                         : "plugin.security.provider choria decides");
    if (s != CH_OK)
        return drop(result, s, "could not decode the request: %s", e.msg);
    bool refused =
        node->security != NULL &&
        ch_security_verify(node->security, req.secure.message, strlen(req.secure.message),
                           req.secure.signature, req.secure.pubcert, req.request.envelope.callerid,
                           &e) != CH_OK;
    s = handle_decoded(node, &req, NULL, 0, now, refused ? e.msg : NULL, result, err);
    ch_protocol_request_payload_clear(&req);
    return s;
}
