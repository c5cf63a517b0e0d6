/* Fuzzes lifecycle event parsing; whatever parses must encode in both formats and parse
 * back to the same Choria-format bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choria/lifecycle.h"

static void check_round_trip(const ch_lifecycle_event *ev, ch_lifecycle_format format,
                             const char *choria, size_t choria_len)
{
    char *doc = NULL, *again = NULL;
    size_t len = 0, again_len = 0;
    ch_lifecycle_event *back = NULL;
    if (ch_lifecycle_encode(ev, format, &doc, &len, NULL) != CH_OK)
        return; /* CloudEvents refuse blank ids and out-of-range times */
    if (ch_lifecycle_parse(doc, len, &back, NULL) != CH_OK)
        abort();
    if (back->format != format || back->type != ev->type)
        abort();
    if (ch_lifecycle_encode(back, CH_LIFECYCLE_FORMAT_CHORIA, &again, &again_len, NULL) != CH_OK)
        abort();
    if (again_len != choria_len || memcmp(again, choria, choria_len) != 0)
        abort();
    free(again);
    free(doc);
    ch_lifecycle_event_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ch_lifecycle_event *ev = NULL;
    ch_error err;
    if (ch_lifecycle_parse(data, size, &ev, &err) != CH_OK) {
        if (ev != NULL || err.msg[0] == '\0')
            abort();
        return 0;
    }
    char subject[CH_MAX_SUBJECT_LEN + 1];
    (void)ch_lifecycle_subject(ev, subject, sizeof(subject), NULL);
    free(ch_lifecycle_event_display(ev));
    if (!ch_lifecycle_event_matches(ev, ev->component, ev->type))
        abort();

    char *choria = NULL;
    size_t choria_len = 0;
    if (ch_lifecycle_encode(ev, CH_LIFECYCLE_FORMAT_CHORIA, &choria, &choria_len, NULL) != CH_OK)
        abort();
    check_round_trip(ev, CH_LIFECYCLE_FORMAT_CHORIA, choria, choria_len);
    check_round_trip(ev, CH_LIFECYCLE_FORMAT_CLOUDEVENT, choria, choria_len);
    free(choria);
    ch_lifecycle_event_free(ev);
    return 0;
}
