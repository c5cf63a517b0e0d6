/* Fuzzes the unverified provisioning JWT parser. Whatever parses must satisfy go-choria's
 * rules: a token, exactly one of brokers and SRV domain, an organisation unit, a known alg. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choria/provjwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ch_provjwt *j = NULL;
    ch_error err = {0};
    if (ch_provjwt_parse((const char *)data, size, &j, &err) == CH_OK) {
        if (j == NULL || j->token == NULL || j->token[0] == '\0' || j->org_unit == NULL ||
            j->alg == NULL || (j->urls == NULL) == (j->srv_domain == NULL))
            abort();
        if (j->extensions != NULL && !json_is_object(j->extensions))
            abort();
        (void)ch_provjwt_expired(j, 0);
    } else if (j != NULL || err.msg[0] == '\0') {
        abort();
    }
    ch_provjwt_free(j);
    return 0;
}
