/* choria-demo-helper: the demo helper (contrib/helpers/demo-helper) as a small static program,
 * for benchmarks where spawning a shell and its dynamic linker per node costs more than the
 * provisioner itself. Same contract and reply: the request's first key is the identity; every
 * node gets the same broker (CHORIA_DEMO_BROKER, default nats://127.0.0.1:4222); anything
 * unexpected is a defer. Reads at most the first 4 KiB of the request and drains the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PREFIX "{\"identity\":\""
#define MAX_IDENTITY 253

static int reply_defer(const char *why)
{
    printf("{\"defer\":true,\"shutdown\":false,\"msg\":\"demo helper: %s\"}\n", why);
    return 0;
}

static int valid_chars(const char *s, const char *allowed_extra)
{
    for (; *s; s++) {
        char c = *s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 strchr(allowed_extra, c) != NULL;
        if (!ok)
            return 0;
    }
    return 1;
}

int main(void)
{
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(buf) - 1 && (n = read(0, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    char drain[4096];
    while (read(0, drain, sizeof(drain)) > 0) {
    }
    const char *broker = getenv("CHORIA_DEMO_BROKER");
    if (broker == NULL || broker[0] == '\0')
        broker = "nats://127.0.0.1:4222";
    if (!valid_chars(broker, ".:/,_@%+=~-"))
        return reply_defer("CHORIA_DEMO_BROKER contains unsupported characters");
    if (strncmp(buf, PREFIX, strlen(PREFIX)) != 0)
        return reply_defer("cannot find the identity in the request");
    char *id = buf + strlen(PREFIX), *end = strchr(id, '"');
    if (end == NULL)
        return reply_defer("cannot find the identity in the request");
    *end = '\0';
    size_t idlen = (size_t)(end - id);
    if (idlen == 0 || idlen > MAX_IDENTITY || !valid_chars(id, "._-") || id[0] == '.' ||
        id[idlen - 1] == '.' || strstr(id, "..") != NULL)
        return reply_defer("invalid identity");
    printf("{\"defer\":false,\"shutdown\":false,\"msg\":\"demo helper\",\"configuration\":{"
           "\"identity\":\"%s\",\"plugin.choria.server.provision\":\"false\","
           "\"plugin.choria.middleware_hosts\":\"%s\","
           /* no certificates in the demo: the provisioned node accepts unsigned requests */
           "\"plugin.choria.security.insecure\":\"true\"}}\n",
           id, broker);
    return 0;
}
