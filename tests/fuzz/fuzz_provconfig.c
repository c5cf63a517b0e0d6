/* Fuzzes the provisioner config parser (YAML/JSON -> typed config with validation): anything
 * it accepts must be fully populated and within the documented bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* libfyaml 0.7.12 leaks a buffer for some anchored flow sequences (see fuzz_facts.c). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfyaml.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    prov_config *c = NULL;
    ch_error err;
    if (prov_config_parse((const char *)data, size, "fuzz", &c, &err) == CH_OK) {
        if (c == NULL || c->workers < 1 || c->workers > PROV_CONFIG_MAX_WORKERS ||
            c->interval_ns < 60LL * 1000000000LL || c->server_jwt_validity_ns <= 0 ||
            c->cert_deny_list.count == 0 || c->logfile[0] == '\0' || c->loglevel[0] == '\0' ||
            c->lifecycle_component[0] == '\0' || strpbrk(c->lifecycle_component, ".>*") ||
            c->monitor_port < 0 || c->monitor_port > 65535 ||
            (c->features.pki && c->features.ed25519) || (c->features.ed25519 && !c->features.jwt))
            abort();
        for (size_t i = 0; i < c->cert_deny_list.count; i++)
            if (c->cert_deny_list.items[i] == NULL)
                abort();
        prov_config_free(c);
    } else if (c != NULL || memchr(err.msg, '\n', strlen(err.msg)) != NULL) {
        abort();
    }
    return 0;
}
