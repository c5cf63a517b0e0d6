/* A minimal HTTP/1.0 GET client for 127.0.0.1 (monitoring endpoints, /metrics), so tests
 * need no curl. HTTP/1.0 makes the server close the connection after the body. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Waits for ev on fd until the deadline; false on timeout or error. */
static bool wait_fd(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - cht__now_ms();
        if (left <= 0)
            return false;
        struct pollfd pf = {.fd = fd, .events = ev};
        int r = poll(&pf, 1, (int)left);
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
}

ch_status cht_http_get(int port, const char *path, int timeout_ms, int *status, char **body,
                       ch_error *err)
{
    int64_t deadline = cht__now_ms() + (timeout_ms > 0 ? timeout_ms : 1);
    char req[1024];
    char *resp = NULL;
    size_t len = 0;
    ch_status st = CH_OK;
    *status = 0;
    if (body != NULL)
        *body = NULL;
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n\r\n", path, port);
    if (n < 0 || (size_t)n >= sizeof(req) || path[0] != '/')
        return ch_error_set(err, CH_ERR_INVALID, "bad HTTP path");

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return ch_error_set(err, CH_ERR_IO, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int soerr = errno;
        socklen_t sl = sizeof(soerr);
        if (soerr == EINPROGRESS && wait_fd(fd, POLLOUT, deadline))
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        else if (soerr == EINPROGRESS)
            soerr = ETIMEDOUT;
        if (soerr != 0 && soerr != EINPROGRESS) {
            st = ch_error_set(err, CH_ERR_CONNECTION, "connect 127.0.0.1:%d: %s", port,
                              strerror(soerr));
            goto out;
        }
    }
    for (size_t sent = 0; sent < (size_t)n;) {
        ssize_t w = send(fd, req + sent, (size_t)n - sent, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR) && wait_fd(fd, POLLOUT, deadline))
            continue;
        st = ch_error_set(err, CH_ERR_CONNECTION, "send to 127.0.0.1:%d failed", port);
        goto out;
    }
    resp = malloc(CHT_HTTP_MAX + 1);
    if (resp == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t r = recv(fd, resp + len, CHT_HTTP_MAX - len, 0);
        if (r == 0)
            break;
        if (r > 0) {
            len += (size_t)r;
            if (len == CHT_HTTP_MAX) {
                st = ch_error_set(err, CH_ERR_TOO_LARGE, "GET %s: response over %d bytes", path,
                                  CHT_HTTP_MAX);
                goto out;
            }
            continue;
        }
        if ((errno == EAGAIN || errno == EINTR) && wait_fd(fd, POLLIN, deadline))
            continue;
        st = ch_error_set(err, errno == EAGAIN ? CH_ERR_TIMEOUT : CH_ERR_CONNECTION,
                          "GET 127.0.0.1:%d%s: %s", port, path,
                          errno == EAGAIN ? "timed out" : strerror(errno));
        goto out;
    }
    resp[len] = '\0';
    int code = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1 || code < 100 || code > 999) {
        st = ch_error_set(err, CH_ERR_INVALID, "GET %s: not an HTTP response", path);
        goto out;
    }
    *status = code;
    if (body != NULL) {
        const char *b = strstr(resp, "\r\n\r\n");
        b = b != NULL ? b + 4 : resp + len;
        *body = strdup(b);
        if (*body == NULL)
            st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    }
out:
    free(resp);
    close(fd);
    return st;
}
