/* Fuzzes the helper reply decoder: whatever it accepts has every string set, configuration
 * and policy entries that are non-NULL strings, policy names with the right suffix, and
 * server_claims that is an object. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "helper.h"

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && strcmp(s + n - m, suf) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    prov_helper_reply *r = NULL;
    ch_error err;
    if (prov_helper_reply_parse((const char *)data, size, 0, &r, &err) != CH_OK) {
        if (r != NULL)
            abort();
        return 0;
    }
    if (r->msg == NULL || r->key == NULL || r->certificate == NULL || r->ca == NULL ||
        r->ssldir == NULL || r->upgrade == NULL ||
        (r->server_claims != NULL && !json_is_object(r->server_claims)))
        abort();
    for (size_t i = 0; i < r->configuration.count; i++)
        if (r->configuration.items[i].key == NULL || r->configuration.items[i].value == NULL)
            abort();
    for (size_t i = 0; i < r->action_policies.count; i++)
        if (!ends_with(r->action_policies.items[i].key, ".policy") ||
            strchr(r->action_policies.items[i].key, '/') ||
            r->action_policies.items[i].value == NULL)
            abort();
    for (size_t i = 0; i < r->opa_policies.count; i++)
        if (!ends_with(r->opa_policies.items[i].key, ".rego") ||
            strchr(r->opa_policies.items[i].key, '/') || r->opa_policies.items[i].value == NULL)
            abort();
    prov_helper_reply_free(r);
    return 0;
}
