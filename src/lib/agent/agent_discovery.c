/* The discovery agent (go-choria providers/agent/mcorpc/golang/discovery): a raw agent that
 * answers the bare string "pong" to any body containing "ping" (broadcast discovery sends
 * base64("ping"), which the pipeline has already decoded) and nothing otherwise. */
#include <stdlib.h>
#include <string.h>

#include "choria/agent.h"

static ch_status discovery_raw(ch_node *node, const unsigned char *body, size_t len, char **reply)
{
    (void)node;
    *reply = NULL;
    if (body == NULL || memmem(body, len, "ping", 4) == NULL)
        return CH_ERR_NO_MATCH; /* go-choria logs "unknown request" and sends nothing */
    *reply = strdup("pong");
    return *reply != NULL ? CH_OK : CH_ERR_NOMEM;
}

const ch_agent ch_agent_discovery = {
    .name = "discovery",
    .timeout_seconds = 2,
    .actions = NULL,
    .n_actions = 0,
    .raw = discovery_raw,
    .active = NULL,
};
