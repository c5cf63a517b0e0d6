/* The rpcutil agent (go-choria providers/agent/mcorpc/golang/rpcutil), the cheap actions:
 * ping, inventory, agent_inventory, collective_info, get_fact and get_facts. daemon_stats,
 * get_config_item and get_data are not provided (they answer "Unknown action"). Replies
 * carry go-choria's keys in its struct field order. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "choria/json.h"
#include "choria/agent.h"
#include "choria/facts.h"
#include "choria/filter.h"
#include "choria/util.h"

#define AGENT_NAME "rpcutil"
#define LICENSE "Apache-2.0"
#define AUTHOR "R.I.Pienaar <rip@devco.net>"

/* Agent metadata go-choria reports in agent_inventory, for the agents we host. */
static const struct {
    const char *name;
    const char *description;
    const char *url;
} known_metadata[] = {
    {"choria_provision", "Choria Provisioner", "https://choria.io"},
    {"discovery", "Discovery Agent", "http://choria.io"},
    {"rpcutil", "Choria RPC Utilities", "http://choria.io"},
};

static const char *S(const char *s)
{
    return s != NULL ? s : "";
}

/* Adds a new value to obj; false (with statuscode 5) when out of memory. */
static bool put(ch_rpc_reply *reply, json_t *obj, const char *key, json_t *v)
{
    if (v != NULL && json_object_set_new(obj, key, v) == 0)
        return true;
    ch_rpc_reply_fail(reply, CH_RPC_UNKNOWN_ERROR, "out of memory");
    return false;
}

static json_t *string_array(const char *const *list, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        if (json_array_append_new(arr, json_string(S(list[i]))) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* mcorpc.ParseRequestData into go-choria's `type input struct { X string }`, X being field:
 * data must be an object whose member field (matched as Go matches names) is a string or
 * null. *out is "" when absent. */
static bool parse_string_input(const ch_rpc_request *req, ch_rpc_reply *reply, const char *field,
                               const char **out)
{
    typedef struct {
        const char *value;
    } input;
    const ch_json_field fields[] = {CH_JSON_FIELD(input, field, CH_JSON_BSTRING, value)};
    const ch_json_struct input_struct = {"rpcutil.input", fields, 1};
    input in = {.value = ""};
    ch_error e;
    if (ch_json_decode(req->data, &input_struct, &in, &e) != CH_OK) {
        ch_rpc_reply_fail(reply, CH_RPC_INVALID_DATA, "Could not parse request data for %s#%s: %s",
                          req->agent, req->action, e.msg);
        return false;
    }
    *out = in.value;
    return true;
}

/* The value of one fact as go-choria's getFactValue gives it: null when missing. */
static json_t *fact_value(const ch_node *node, const char *name)
{
    json_t *v = node->facts != NULL ? ch_filter_fact_lookup(node->facts, name) : NULL;
    return v != NULL ? ch_json_sorted_copy(v) : json_null();
}

static void act_ping(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply)
{
    (void)node;
    (void)req;
    put(reply, reply->data, "pong", json_integer(ch_now_unix()));
}

static void act_inventory(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply)
{
    const char *names[CH_AGENT_MAX_AGENTS];
    size_t n = ch_agent_active_names(node, names, CH_AGENT_MAX_AGENTS);
    json_t *d = reply->data;
    (void)req;
    /* node->facts is shared, not copied: ch_facts_load() already sorted its keys. */
    json_t *facts = node->facts != NULL ? json_incref(node->facts) : json_object();
    if (put(reply, d, "agents", string_array(names, n)) &&
        put(reply, d, "classes", string_array(node->classes, node->n_classes)) &&
        put(reply, d, "collectives", string_array(node->collectives, node->n_collectives)) &&
        put(reply, d, "data_plugins", json_array()) && put(reply, d, "facts", facts) &&
        put(reply, d, "machines", json_array()) &&
        put(reply, d, "main_collective", json_string(S(node->main_collective))) &&
        put(reply, d, "version", json_string(S(node->version))))
        put(reply, d, "upgradable", json_boolean(node->allow_update));
}

static void act_agent_inventory(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply)
{
    const char *names[CH_AGENT_MAX_AGENTS];
    size_t n = ch_agent_active_names(node, names, CH_AGENT_MAX_AGENTS);
    const ch_agent_set *set = node->agents != NULL ? node->agents : &ch_agent_set_standard;
    json_t *list = json_array();
    (void)req;
    if (!put(reply, reply->data, "agents", list))
        return;
    for (size_t i = 0; i < n; i++) {
        int timeout = 0;
        const char *description = "", *url = "", *author = "";
        for (size_t j = 0; j < set->n_agents; j++)
            if (set->agents[j] != NULL && set->agents[j]->name == names[i])
                timeout = set->agents[j]->timeout_seconds;
        for (size_t j = 0; j < sizeof(known_metadata) / sizeof(known_metadata[0]); j++) {
            if (strcmp(known_metadata[j].name, names[i]) == 0) {
                description = known_metadata[j].description;
                url = known_metadata[j].url;
                author = AUTHOR;
            }
        }
        /* AgentInventoryInfoReply: agent, then the embedded agents.Metadata fields */
        json_t *a = json_object();
        if (a == NULL || json_array_append_new(list, a) != 0) {
            ch_rpc_reply_fail(reply, CH_RPC_UNKNOWN_ERROR, "out of memory");
            return;
        }
        if (!put(reply, a, "agent", json_string(names[i])) ||
            !put(reply, a, "license", json_string(LICENSE)) ||
            !put(reply, a, "author", json_string(author)) ||
            !put(reply, a, "timeout", json_integer(timeout)) ||
            !put(reply, a, "name", json_string(names[i])) ||
            !put(reply, a, "version", json_string(S(node->version))) ||
            !put(reply, a, "url", json_string(url)) ||
            !put(reply, a, "description", json_string(description)))
            return;
    }
}

static void act_collective_info(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply)
{
    (void)req;
    if (put(reply, reply->data, "main_collective", json_string(S(node->main_collective))))
        put(reply, reply->data, "collectives",
            string_array(node->collectives, node->n_collectives));
}

static void act_get_fact(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply)
{
    const char *fact;
    if (!parse_string_input(req, reply, "fact", &fact))
        return;
    if (put(reply, reply->data, "fact", json_string(fact)))
        put(reply, reply->data, "value", fact_value(node, fact));
}

static void act_get_facts(ch_node *node, const ch_rpc_request *req, ch_rpc_reply *reply)
{
    const char *list;
    if (!parse_string_input(req, reply, "facts", &list))
        return;
    /* Go fills a map (keys sorted when encoded) from strings.Split(facts, ",") with each
     * name strings.TrimSpace'd. */
    json_t *values = json_object();
    const char *p = list;
    while (values != NULL) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        const char *start = p, *end = p + n;
        while (start < end && (*start == ' ' || (*start >= '\t' && *start <= '\r')))
            start++;
        while (end > start && (end[-1] == ' ' || (end[-1] >= '\t' && end[-1] <= '\r')))
            end--;
        char *name = strndup(start, (size_t)(end - start));
        if (name == NULL || json_object_set_new(values, name, fact_value(node, name)) != 0) {
            json_decref(values);
            values = NULL;
        }
        free(name);
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    json_t *sorted = values != NULL ? ch_json_sorted_copy(values) : NULL;
    json_decref(values);
    put(reply, reply->data, "values", sorted);
}

static const ch_agent_action rpcutil_actions[] = {
    {"agent_inventory", act_agent_inventory},
    {"collective_info", act_collective_info},
    {"get_fact", act_get_fact},
    {"get_facts", act_get_facts},
    {"inventory", act_inventory},
    {"ping", act_ping},
};

const ch_agent ch_agent_rpcutil = {
    .name = AGENT_NAME,
    .timeout_seconds = 2,
    .actions = rpcutil_actions,
    .n_actions = sizeof(rpcutil_actions) / sizeof(rpcutil_actions[0]),
    .raw = NULL,
    .active = NULL,
};
