/* plugin.choria.middleware_hosts: broker addresses into URLs. */
#include "choria/config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "choria/util.h"

/* ---- middleware hosts ---- */

void ch_config_servers_free(ch_config_server *servers, size_t count)
{
    if (servers == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        free(servers[i].host);
        free(servers[i].url);
    }
    free(servers);
}

static bool all_chars_in(const char *s, size_t len, const char *allowed_extra, bool alnum)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (alnum &&
                   ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) ||
                  (c != '\0' && strchr(allowed_extra, c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

/* An entry cut into its parts, borrowed from the entry. */
typedef struct {
    const char *host, *port;
    size_t hlen, plen;
    bool v6, tls;
} server_parts;

/* The scheme, if any: nats:// or tls://; *rest is what follows it. NULL or why not. */
static const char *cut_scheme(const char *entry, const char **rest, bool *tls)
{
    const char *sep = strstr(entry, "://");
    *rest = entry;
    *tls = false;
    if (sep == NULL)
        return NULL;
    size_t n = (size_t)(sep - entry);
    if (!((n == 4 && strncasecmp(entry, "nats", 4) == 0) ||
          (n == 3 && strncasecmp(entry, "tls", 3) == 0)))
        return "only nats:// and tls:// are supported";
    *tls = n == 3;
    *rest = sep + 3;
    return NULL;
}

/* [v6addr] and an optional :port. */
static const char *cut_v6(const char *p, size_t len, server_parts *sp)
{
    const char *close = memchr(p, ']', len);
    if (close == NULL)
        return "missing ']'";
    sp->host = p + 1;
    sp->hlen = (size_t)(close - sp->host);
    const char *rest = close + 1;
    size_t rlen = len - (size_t)(rest - p);
    if (rlen > 0 && rest[0] != ':')
        return "junk after ']'";
    if (rlen > 0) {
        sp->port = rest + 1;
        sp->plen = rlen - 1;
    }
    if (sp->hlen == 0 || memchr(sp->host, ':', sp->hlen) == NULL ||
        !all_chars_in(sp->host, sp->hlen, "0123456789abcdefABCDEF:.", false))
        return "not an IPv6 address";
    return NULL;
}

/* host and an optional :port. */
static const char *cut_name(const char *p, size_t len, server_parts *sp)
{
    const char *colon = memchr(p, ':', len);
    sp->host = p;
    sp->hlen = colon != NULL ? (size_t)(colon - p) : len;
    if (colon != NULL) {
        sp->port = colon + 1;
        sp->plen = len - sp->hlen - 1;
        if (memchr(sp->port, ':', sp->plen) != NULL)
            return "IPv6 addresses must be written in brackets";
    }
    if (sp->hlen == 0 || sp->hlen > CH_MAX_IDENTITY_LEN ||
        !all_chars_in(sp->host, sp->hlen, "._-", true))
        return "bad host name";
    return NULL;
}

/* The port, 4222 when none was given. */
static const char *parse_port(const server_parts *sp, unsigned long *out)
{
    *out = 4222;
    if (sp->port == NULL)
        return NULL;
    if (sp->plen == 0 || sp->plen > 5 || !all_chars_in(sp->port, sp->plen, "0123456789", false))
        return "bad port";
    *out = 0;
    for (size_t i = 0; i < sp->plen; i++)
        *out = *out * 10 + (unsigned long)(sp->port[i] - '0');
    return *out == 0 || *out > 65535 ? "port out of range" : NULL;
}

/* Cuts entry into sp; NULL or why it is not a broker address. */
static const char *cut_server(const char *entry, server_parts *sp)
{
    const char *p;
    const char *why = cut_scheme(entry, &p, &sp->tls);
    size_t len = strlen(p);
    if (why != NULL)
        return why;
    if (len > 0 && p[len - 1] == '/')
        len--;
    if (memchr(p, '@', len) != NULL)
        return "user names and passwords belong in plugin.nats.user and plugin.nats.pass";
    if (strcspn(p, "/?#") < len)
        return "a broker address has no path";
    sp->v6 = p[0] == '[';
    return sp->v6 ? cut_v6(p, len, sp) : cut_name(p, len, sp);
}

/* One `[scheme://]host[:port]` entry. */
static ch_status parse_server(const char *entry, ch_config_server *out, ch_error *err)
{
    server_parts sp = {0};
    unsigned long port = 0;
    const char *why = cut_server(entry, &sp);
    if (why == NULL)
        why = parse_port(&sp, &port);
    if (why != NULL)
        return ch_error_set(err, CH_ERR_INVALID, "invalid middleware host '%.100s': %s", entry,
                            why);
    out->tls = sp.tls;
    out->port = (uint16_t)port;
    out->host = strndup(sp.host, sp.hlen);
    if (out->host == NULL ||
        asprintf(&out->url, sp.v6 ? "nats://[%s]:%lu" : "nats://%s:%lu", out->host, port) < 0) {
        free(out->host);
        out->host = out->url = NULL;
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing middleware hosts");
    }
    return CH_OK;
}

ch_status ch_config_parse_servers(const char *list, ch_config_server **out, size_t *count,
                                  ch_error *err)
{
    ch_config_list items;
    ch_status s = CH_OK;
    *out = NULL;
    *count = 0;
    if (ch_config_split_list(list, &items) != CH_OK)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing middleware hosts");
    if (items.count == 0)
        goto out;
    ch_config_server *servers = calloc(items.count, sizeof(*servers));
    if (servers == NULL) {
        s = ch_error_set(err, CH_ERR_NOMEM, "out of memory parsing middleware hosts");
        goto out;
    }
    size_t n = 0;
    for (; n < items.count; n++)
        if ((s = parse_server(items.items[n], &servers[n], err)) != CH_OK)
            break;
    if (s != CH_OK) {
        ch_config_servers_free(servers, n);
        goto out;
    }
    *out = servers;
    *count = n;

out:
    ch_config_list_free(&items);
    return s;
}
