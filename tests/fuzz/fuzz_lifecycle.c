/* Fuzzes lifecycle event parsing; whatever parses must encode in both formats and parse
 * back to the same Choria-format bytes, and the viewer's path must agree with parse. */
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

/* The viewer's path must accept what parse accepts, fail as it fails and show the line the
 * parsed event displays. */
static void check_viewer_path(const uint8_t *data, size_t size, ch_status want,
                              const ch_error *want_err, const ch_lifecycle_event *ev)
{
    ch_buf out;
    ch_error err;
    bool shown = false;
    ch_buf_init(&out);
    ch_status s =
        ch_lifecycle_display_append(data, size, NULL, CH_LIFECYCLE_UNKNOWN, &out, &shown, &err);
    if (s != want || shown != (s == CH_OK))
        abort();
    if (s != CH_OK && strcmp(err.msg, want_err->msg) != 0)
        abort();
    if (s == CH_OK) {
        char *line = ch_lifecycle_event_display(ev);
        if (line == NULL || out.data == NULL || strcmp(line, out.data) != 0)
            abort();
        free(line);
    }
    ch_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ch_lifecycle_event *ev = NULL;
    ch_error err;
    ch_status parsed = ch_lifecycle_parse(data, size, &ev, &err);
    check_viewer_path(data, size, parsed, &err, ev);
    if (parsed != CH_OK) {
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
