/* Fuzzes what the provisioner checks before it trusts a node: the provisioning JWT (signature,
 * claims, chain rule) against a fixed ed25519 key, and the CSR policy. The first byte picks
 * the target. Nothing may crash; a JWT that verifies must carry a token. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choria/jwt.h"
#include "csr.h"

static ch_jwt_key *key;
static prov_csr_deny *deny;

/* The public key of the seed 0x01 * 32, the key the corpus tokens are signed with. */
static void init(void)
{
    static const char PUB[] = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
    static char *const PATTERNS[] = {"\\.privileged.mcollective$", "\\.privileged.choria$",
                                     "\\.mcollective$", "\\.choria$"};
    if (ch_jwt_key_load(PUB, &key, NULL) != CH_OK ||
        prov_csr_deny_compile(PATTERNS, 4, &deny, NULL) != CH_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (key == NULL)
        init();
    if (size == 0)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    ch_error err = {0};
    if (data[0] & 1) {
        (void)prov_csr_check(text, len, "n1.example.net", deny, &err);
        return 0;
    }
    ch_provjwt *claims = NULL;
    json_t *j = NULL;
    if (ch_jwt_verify_provisioning(key, text, len, 1900000000, &claims, &j, &err) == CH_OK) {
        if (claims == NULL || claims->token == NULL || !json_is_object(j))
            abort();
    } else if (claims != NULL || j != NULL || err.msg[0] == '\0') {
        abort();
    }
    (void)ch_jwt_verify_signature(key, text, len, &err);
    ch_provjwt_free(claims);
    json_decref(j);
    return 0;
}
