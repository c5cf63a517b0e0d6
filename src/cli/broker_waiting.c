/* `choria broker waiting`: the nodes connected to the provisioning account, i.e. waiting to
 * be provisioned, read from the broker's monitoring endpoint (/connz), without the
 * provisioner's and the broker's own connections. */
#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "choria/json.h"
#include "cli.h"

#define MAX_RESPONSE (64 * 1024 * 1024)

/* HTTP/1.0 GET of path from host:port; the body (malloc'd) or NULL. */
static char *http_get(const char *host, const char *port, const char *path)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return NULL;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    bool ok = fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    freeaddrinfo(ai);
    ch_buf b;
    ch_buf_init(&b);
    if (ok) {
        char req[512];
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
        ok = write(fd, req, (size_t)n) == n;
    }
    char chunk[65536];
    ssize_t r;
    while (ok && (r = read(fd, chunk, sizeof(chunk))) > 0 && b.len < MAX_RESPONSE)
        ch_buf_append(&b, chunk, (size_t)r);
    if (fd >= 0)
        close(fd);
    char *text = ch_buf_steal(&b, NULL);
    char *body = text != NULL ? strstr(text, "\r\n\r\n") : NULL;
    char *out = body != NULL && strncmp(text, "HTTP/1.", 7) == 0 && strstr(text, " 200 ") != NULL
                    ? strdup(body + 4)
                    : NULL;
    free(text);
    return out;
}

static const char *str(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v != NULL ? v : "";
}

int cli_broker_waiting(int argc, char **argv)
{
    static const struct option longopts[] = {{"host", required_argument, NULL, 'H'},
                                             {"port", required_argument, NULL, 'p'},
                                             {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1", *port = "8222";
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'H')
            host = optarg;
        else if (c == 'p')
            port = optarg;
        else {
            fprintf(stderr, "choria: invalid flag, try 'choria broker waiting --help'\n");
            return 1;
        }
    }
    char *body = http_get(host, port, "/connz?acc=provisioning&auth=true&limit=100000");
    json_t *j = body != NULL ? ch_json_parse(body, strlen(body), MAX_RESPONSE, 16, NULL) : NULL;
    free(body);
    json_t *conns = json_object_get(j, "connections");
    if (!json_is_array(conns)) {
        fprintf(stderr, "choria: cannot read connections from http://%s:%s/connz\n", host, port);
        json_decref(j);
        return 1;
    }
    size_t i, shown = 0;
    json_t *conn;
    printf("%-40s %-22s %-28s %s\n", "Name", "Address", "Connected", "Idle");
    json_array_foreach(conns, i, conn)
    {
        const char *user = str(conn, "authorized_user");
        if (strcmp(user, "provisioner") == 0 || strncmp(user, "choria-broker", 13) == 0)
            continue;
        char addr[64];
        snprintf(addr, sizeof(addr), "%s:%lld", str(conn, "ip"),
                 (long long)json_integer_value(json_object_get(conn, "port")));
        printf("%-40s %-22s %-28.28s %s\n", str(conn, "name"), addr, str(conn, "start"),
               str(conn, "idle"));
        shown++;
    }
    printf("\n%zu connection(s) waiting for provisioning\n", shown);
    json_decref(j);
    return 0;
}
