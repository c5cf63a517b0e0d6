/* Fuzzes facts documents: the input as JSON and as YAML (libfyaml -> JSON conversion, alias
 * expansion bound, scalar resolution). Whatever parses must be an object that encodes, with
 * keys sorted at every level so it encodes identically after another sorted copy. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choria/facts.h"
#include "choria/json.h"

static void check(const json_t *facts)
{
    if (!json_is_object(facts))
        abort();
    char *a = ch_json_encode(facts, NULL);
    json_t *again = ch_json_sorted_copy(facts);
    char *b = again != NULL ? ch_json_encode(again, NULL) : NULL;
    if (a == NULL || b == NULL || strcmp(a, b) != 0)
        abort();
    free(a);
    free(b);
    json_decref(again);
}

/* libfyaml 0.7.12 leaks a buffer for some anchored flow sequences holding long quoted
 * scalars (e.g. "&a ['...']"), even when only parsed and destroyed. Not ours; leaks
 * of our own allocations are still reported. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfyaml.so\n";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int yaml = 0; yaml < 2; yaml++) {
        json_t *facts = NULL;
        ch_error err;
        if (ch_facts_parse((const char *)data, size, yaml, &facts, &err) == CH_OK) {
            check(facts);
            json_decref(facts);
        } else if (facts != NULL) {
            abort();
        }
    }
    return 0;
}
