/* choria-demo-helper: the demo helper (contrib/helpers/demo-helper) as a small static program,
 * for benchmarks where spawning a shell and its dynamic linker per node costs more than the
 * provisioner itself. Same contract and reply: the request's first key is the identity; every
 * node gets the same broker (CHORIA_DEMO_BROKER, default nats://127.0.0.1:4222); anything
 * unexpected is a defer.
 *
 *   choria-demo-helper                one request on stdin, one reply (helper_mode: exec)
 *   choria-demo-helper --persistent   one request per line, one reply line each, until the end
 *                                     of stdin (helper_mode: persistent)
 *
 * Only the first 4 KiB of a request are looked at; the rest is read and dropped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PREFIX "{\"identity\":\""
#define MAX_IDENTITY 253
#define HEAD 4096

static void reply_defer(const char *why)
{
    printf("{\"defer\":true,\"shutdown\":false,\"msg\":\"demo helper: %s\"}\n", why);
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

/* The reply to one request, head[] its first bytes (NUL-terminated, modified), on one line. */
static void answer(char *head, const char *broker)
{
    if (!valid_chars(broker, ".:/,_@%+=~-")) {
        reply_defer("CHORIA_DEMO_BROKER contains unsupported characters");
        return;
    }
    if (strncmp(head, PREFIX, strlen(PREFIX)) != 0) {
        reply_defer("cannot find the identity in the request");
        return;
    }
    char *id = head + strlen(PREFIX), *end = strchr(id, '"');
    if (end == NULL) {
        reply_defer("cannot find the identity in the request");
        return;
    }
    *end = '\0';
    size_t idlen = (size_t)(end - id);
    if (idlen == 0 || idlen > MAX_IDENTITY || !valid_chars(id, "._-") || id[0] == '.' ||
        id[idlen - 1] == '.' || strstr(id, "..") != NULL) {
        reply_defer("invalid identity");
        return;
    }
    printf("{\"defer\":false,\"shutdown\":false,\"msg\":\"demo helper\",\"configuration\":{"
           "\"identity\":\"%s\",\"plugin.choria.server.provision\":\"false\","
           "\"plugin.choria.middleware_hosts\":\"%s\","
           /* no certificates in the demo: the provisioned node accepts unsigned requests */
           "\"plugin.choria.security.insecure\":\"true\"}}\n",
           id, broker);
}

/* exec mode: the whole of stdin is the request. */
static int answer_once(const char *broker)
{
    char head[HEAD];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(head) - 1 && (n = read(0, head + len, sizeof(head) - 1 - len)) > 0)
        len += (size_t)n;
    head[len] = '\0';
    char drain[4096];
    while (read(0, drain, sizeof(drain)) > 0) {
    }
    answer(head, broker);
    return 0;
}

/* persistent mode: a request per line, each reply flushed at once. */
static int answer_lines(const char *broker)
{
    char head[HEAD];
    size_t len = 0;
    int c;
    while ((c = getchar_unlocked()) != EOF) {
        if (c != '\n') {
            if (len < sizeof(head) - 1)
                head[len++] = (char)c;
            continue;
        }
        head[len] = '\0';
        len = 0;
        answer(head, broker);
        if (fflush(stdout) != 0)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *broker = getenv("CHORIA_DEMO_BROKER");
    if (broker == NULL || broker[0] == '\0')
        broker = "nats://127.0.0.1:4222";
    if (argc == 2 && strcmp(argv[1], "--persistent") == 0)
        return answer_lines(broker);
    if (argc > 1) {
        fprintf(stderr, "usage: choria-demo-helper [--persistent]\n");
        return 2;
    }
    return answer_once(broker);
}
