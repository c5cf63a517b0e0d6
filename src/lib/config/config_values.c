/* Configuration values as go-choria reads them: booleans, integers and comma lists. */
#include "choria/config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "choria/util.h"

/* ---- value parsers ---- */

static bool word_in(const char *s, size_t len, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strlen(*words) == len && strncasecmp(s, *words, len) == 0)
            return true;
    return false;
}

ch_status ch_config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "yes", "true", "y", "t", NULL};
    static const char *const no[] = {"0", "no", "false", "n", "f", NULL};
    if (s == NULL)
        return CH_ERR_INVALID;
    size_t len = strlen(s);
    ch_trim(&s, &len);
    if (word_in(s, len, yes))
        *out = true;
    else if (word_in(s, len, no))
        *out = false;
    else
        return CH_ERR_INVALID;
    return CH_OK;
}

ch_status ch_config_parse_int(const char *s, int64_t *out)
{
    if (s == NULL)
        return CH_ERR_INVALID;
    size_t len = strlen(s);
    ch_trim(&s, &len);
    bool neg = false;
    if (len > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        s++;
        len--;
    }
    if (len == 0)
        return CH_ERR_INVALID;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return CH_ERR_INVALID;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return CH_ERR_INVALID;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return CH_OK;
}

void ch_config_list_free(ch_config_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

ch_status ch_config_split_list(const char *s, ch_config_list *out)
{
    out->items = NULL;
    out->count = 0;
    if (s == NULL)
        return CH_OK;
    size_t cap = 1;
    for (const char *p = s; *p != '\0'; p++)
        cap += *p == ',';
    char **items = calloc(cap, sizeof(*items));
    if (items == NULL)
        return CH_ERR_NOMEM;
    size_t count = 0;
    const char *p = s;
    for (;;) {
        size_t n = strcspn(p, ",");
        const char *item = p;
        size_t len = n;
        ch_trim(&item, &len);
        if (len > 0 && (items[count++] = strndup(item, len)) == NULL) {
            out->items = items;
            out->count = count - 1;
            ch_config_list_free(out);
            return CH_ERR_NOMEM;
        }
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    out->items = items;
    out->count = count;
    return CH_OK;
}
