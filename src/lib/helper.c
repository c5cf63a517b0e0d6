/* Running the provisioning helper: argument splitting, spawn, pipes, timeout, reply decoding. */
#include "choria/helper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "choria/json.h"

extern char **environ;

/* ---- splitting ---------------------------------------------------------------------- */

void ch_helper_argv_free(char **argv)
{
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
        free(argv[i]);
    free(argv);
}

ch_status ch_helper_split(const char *cmd, char ***argv, size_t *argc, ch_error *err)
{
    *argv = NULL;
    if (argc != NULL)
        *argc = 0;
    if (cmd == NULL)
        return ch_error_set(err, CH_ERR_INVALID, "empty");
    size_t n = strlen(cmd);
    if (n > CH_HELPER_MAX_COMMAND)
        return ch_error_set(err, CH_ERR_TOO_LARGE, "command longer than %d bytes",
                            CH_HELPER_MAX_COMMAND);
    char **words = calloc(CH_HELPER_MAX_ARGS + 1, sizeof(*words));
    char *word = malloc(n + 1); /* a word is never longer than the command */
    size_t count = 0, wl = 0;
    ch_status st = CH_OK;
    if (words == NULL || word == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t i = 0;
    while (i < n) {
        while (i < n && (cmd[i] == ' ' || cmd[i] == '\t' || cmd[i] == '\n'))
            i++;
        if (i >= n)
            break;
        bool have = false; /* '' makes an empty word */
        wl = 0;
        while (i < n && cmd[i] != ' ' && cmd[i] != '\t' && cmd[i] != '\n') {
            char c = cmd[i++];
            if (c == '\\') {
                if (i >= n) {
                    st = ch_error_set(err, CH_ERR_INVALID, "Unterminated backslash-escape");
                    goto done;
                }
                c = cmd[i++];
                if (c != '\n')
                    word[wl++] = c;
                have = true;
            } else if (c == '\'') {
                const char *end = memchr(cmd + i, '\'', n - i);
                if (end == NULL) {
                    st = ch_error_set(err, CH_ERR_INVALID, "Unterminated single-quoted string");
                    goto done;
                }
                memcpy(word + wl, cmd + i, (size_t)(end - (cmd + i)));
                wl += (size_t)(end - (cmd + i));
                i = (size_t)(end - cmd) + 1;
                have = true;
            } else if (c == '"') {
                for (;;) {
                    if (i >= n) {
                        st = ch_error_set(err, CH_ERR_INVALID, "Unterminated double-quoted string");
                        goto done;
                    }
                    c = cmd[i++];
                    if (c == '"')
                        break;
                    if (c == '\\' && i < n && strchr("$`\"\\\n", cmd[i]) != NULL) {
                        c = cmd[i++];
                        if (c == '\n')
                            continue;
                    }
                    word[wl++] = c;
                }
                have = true;
            } else {
                word[wl++] = c;
                have = true;
            }
        }
        if (!have)
            continue;
        if (count >= CH_HELPER_MAX_ARGS) {
            st = ch_error_set(err, CH_ERR_TOO_LARGE, "more than %d arguments", CH_HELPER_MAX_ARGS);
            goto done;
        }
        if ((words[count] = strndup(word, wl)) == NULL) {
            st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
            goto done;
        }
        count++;
    }
    if (count == 0)
        st = ch_error_set(err, CH_ERR_INVALID, "empty");
done:
    free(word);
    if (st != CH_OK) {
        ch_helper_argv_free(words);
        return st;
    }
    *argv = words;
    if (argc != NULL)
        *argc = count;
    return CH_OK;
}

/* ---- input ---------------------------------------------------------------------------- */

static void put_str(ch_buf *b, const char *s)
{
    s = s != NULL ? s : "";
    ch_buf_append_json_string(b, s, strlen(s));
}

char *ch_helper_input_encode(const ch_helper_input *in, size_t *len)
{
    ch_buf b;
    ch_buf_init(&b);
    ch_buf_append_str(&b, "{\"identity\":");
    put_str(&b, in->identity);
    ch_buf_append_str(&b, ",\"csr\":");
    if (in->csr != NULL) {
        ch_buf_append_str(&b, "{\"csr\":");
        put_str(&b, in->csr->csr);
        ch_buf_append_str(&b, ",\"public_key\":");
        put_str(&b, in->csr->public_key);
        ch_buf_append_str(&b, ",\"ssldir\":");
        put_str(&b, in->csr->ssldir);
        ch_buf_append_str(&b, "}");
    } else {
        ch_buf_append_str(&b, "null");
    }
    ch_buf_append_str(&b, ",\"ed25519_pubkey\":");
    if (in->ed25519 != NULL) {
        ch_buf_append_str(&b, "{\"public_key\":");
        put_str(&b, in->ed25519->public_key);
        ch_buf_append_str(&b, ",\"directory\":");
        put_str(&b, in->ed25519->directory);
        ch_buf_append_str(&b, ",\"signature\":");
        put_str(&b, in->ed25519->signature);
        ch_buf_append_str(&b, "}");
    } else {
        ch_buf_append_str(&b, "null");
    }
    ch_buf_append_str(&b, ",\"inventory\":");
    put_str(&b, in->inventory);
    ch_buf_append_str(&b, ",\"jwt\":");
    if (in->jwt != NULL && !json_is_null(in->jwt)) {
        char *j = ch_json_encode(in->jwt, NULL);
        if (j == NULL) {
            ch_buf_free(&b);
            return NULL;
        }
        ch_buf_append_str(&b, j);
        free(j);
    } else {
        ch_buf_append_str(&b, "null");
    }
    ch_buf_append_str(&b, "}");
    return ch_buf_steal(&b, len);
}

/* ---- reply ---------------------------------------------------------------------------- */

void ch_helper_reply_free(ch_helper_reply *r)
{
    if (r == NULL)
        return;
    free(r->msg);
    free(r->key);
    free(r->certificate);
    free(r->ca);
    free(r->ssldir);
    free(r->upgrade);
    ch_helper_kv *maps[] = {r->configuration, r->action_policies, r->opa_policies};
    size_t counts[] = {r->configuration_count, r->action_policies_count, r->opa_policies_count};
    for (int m = 0; m < 3; m++) {
        for (size_t i = 0; i < counts[m]; i++) {
            free(maps[m][i].key);
            free(maps[m][i].value);
        }
        free(maps[m]);
    }
    json_decref(r->server_claims);
    free(r);
}

static ch_status type_err(ch_error *err, const json_t *v, const char *key, const char *type)
{
    return ch_error_set(err, CH_ERR_INVALID,
                        "json: cannot unmarshal %s into Go struct field %s of type %s",
                        ch_json_go_type(v), key, type);
}

static bool nul_free(const json_t *s)
{
    return strlen(json_string_value(s)) == json_string_length(s);
}

static ch_status get_string(const json_t *v, const char *key, char **dst, ch_error *err)
{
    if (json_is_null(v))
        return CH_OK;
    if (!json_is_string(v))
        return type_err(err, v, key, "string");
    if (!nul_free(v))
        return ch_error_set(err, CH_ERR_INVALID, "%s contains a NUL byte", key);
    char *s = strdup(json_string_value(v));
    if (s == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    free(*dst);
    *dst = s;
    return CH_OK;
}

static ch_status get_map(const json_t *v, const char *key, const char *suffix, ch_helper_kv **dst,
                         size_t *count, ch_error *err)
{
    if (json_is_null(v))
        return CH_OK;
    if (!json_is_object(v))
        return type_err(err, v, key, "map[string]string");
    size_t n = json_object_size(v), i = 0;
    ch_helper_kv *kv = calloc(n ? n : 1, sizeof(*kv));
    if (kv == NULL)
        return ch_error_set(err, CH_ERR_NOMEM, "out of memory");
    ch_status st = CH_OK;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)v, k, val)
    {
        if (!json_is_string(val)) {
            st = ch_error_set(err, CH_ERR_INVALID,
                              "json: cannot unmarshal %s into Go value of type string (%s.%.64s)",
                              ch_json_go_type(val), key, k);
            break;
        }
        size_t kl = strlen(k), sl = suffix != NULL ? strlen(suffix) : 0;
        if (kl == 0 || !nul_free(val) ||
            (suffix != NULL &&
             (kl <= sl || strcmp(k + kl - sl, suffix) != 0 || strchr(k, '/') != NULL))) {
            st = ch_error_set(err, CH_ERR_INVALID, "%s: invalid name or value for %.64s%s%s", key,
                              k, suffix != NULL ? ", names must end in " : "",
                              suffix != NULL ? suffix : "");
            break;
        }
        kv[i].key = strdup(k);
        kv[i].value = strdup(json_string_value(val));
        i++;
        if (kv[i - 1].key == NULL || kv[i - 1].value == NULL) {
            st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
            break;
        }
    }
    if (st != CH_OK) {
        for (size_t j = 0; j < i; j++) {
            free(kv[j].key);
            free(kv[j].value);
        }
        free(kv);
        return st;
    }
    *dst = kv;
    *count = i;
    return CH_OK;
}

static ch_status check_str_list(const json_t *v, const char *key, ch_error *err)
{
    if (json_is_null(v))
        return CH_OK;
    if (!json_is_array(v))
        return type_err(err, v, key, "[]string");
    for (size_t i = 0; i < json_array_size(v); i++)
        if (!json_is_string(json_array_get(v, i)) && !json_is_null(json_array_get(v, i)))
            return type_err(err, json_array_get(v, i), key, "string");
    return CH_OK;
}

/* The honoured server claims (spec 8.3) must have the types go-choria decodes them into. */
static ch_status check_claims(const json_t *v, ch_error *err)
{
    if (!json_is_object(v))
        return type_err(err, v, "server_claims", "tokens.ServerClaims");
    const char *k;
    json_t *x;
    ch_status st = CH_OK;
    json_object_foreach((json_t *)v, k, x)
    {
        if (json_is_null(x))
            continue;
        if (strcasecmp(k, "ou") == 0 && !json_is_string(x))
            st = type_err(err, x, "server_claims.ou", "string");
        else if (strcasecmp(k, "exp") == 0 && !json_is_integer(x))
            st = type_err(err, x, "server_claims.exp", "int64");
        else if (strcasecmp(k, "collectives") == 0 || strcasecmp(k, "pub_subjects") == 0)
            st = check_str_list(x, "server_claims list", err);
        else if (strcasecmp(k, "permissions") == 0) {
            if (!json_is_object(x)) {
                st = type_err(err, x, "server_claims.permissions", "tokens.ServerPermissions");
            } else {
                const char *pk;
                json_t *pv;
                json_object_foreach(x, pk, pv)
                {
                    if (st == CH_OK && !json_is_boolean(pv) && !json_is_null(pv))
                        st = type_err(err, pv, "server_claims.permissions", "bool");
                }
            }
        }
        if (st != CH_OK)
            return st;
    }
    return CH_OK;
}

ch_status ch_helper_reply_parse(const char *buf, size_t len, size_t max_size, ch_helper_reply **out,
                                ch_error *err)
{
    *out = NULL;
    if (max_size == 0)
        max_size = CH_HELPER_MAX_OUTPUT;
    json_t *doc = ch_json_parse(buf, len, max_size, CH_MAX_JSON_DEPTH, err);
    if (doc == NULL)
        return err != NULL && err->code != CH_OK ? err->code : CH_ERR_INVALID;
    ch_status st = CH_OK;
    ch_helper_reply *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (!json_is_object(doc)) {
        st = ch_error_set(err, CH_ERR_INVALID,
                          "json: cannot unmarshal %s into Go value of type "
                          "provisioner.ConfigResponse",
                          ch_json_go_type(doc));
        goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v)
    {
        char **sp = NULL;
        bool *bp = NULL;
        const char *name = NULL;
        if (strcasecmp(k, "defer") == 0)
            bp = &r->defer, name = "defer";
        else if (strcasecmp(k, "shutdown") == 0)
            bp = &r->shutdown, name = "shutdown";
        else if (strcasecmp(k, "msg") == 0)
            sp = &r->msg, name = "msg";
        else if (strcasecmp(k, "key") == 0)
            sp = &r->key, name = "key";
        else if (strcasecmp(k, "certificate") == 0)
            sp = &r->certificate, name = "certificate";
        else if (strcasecmp(k, "ca") == 0)
            sp = &r->ca, name = "ca";
        else if (strcasecmp(k, "ssldir") == 0)
            sp = &r->ssldir, name = "ssldir";
        else if (strcasecmp(k, "upgrade") == 0)
            sp = &r->upgrade, name = "upgrade";
        if (bp != NULL) {
            if (!json_is_boolean(v) && !json_is_null(v))
                st = type_err(err, v, name, "bool");
            else if (json_is_boolean(v))
                *bp = json_is_true(v);
        } else if (sp != NULL) {
            st = get_string(v, name, sp, err);
        } else if (strcasecmp(k, "configuration") == 0) {
            if (r->configuration != NULL)
                st = ch_error_set(err, CH_ERR_INVALID, "configuration given twice");
            else
                st = get_map(v, "configuration", NULL, &r->configuration, &r->configuration_count,
                             err);
        } else if (strcasecmp(k, "action_policies") == 0) {
            if (r->action_policies != NULL)
                st = ch_error_set(err, CH_ERR_INVALID, "action_policies given twice");
            else
                st = get_map(v, "action_policies", ".policy", &r->action_policies,
                             &r->action_policies_count, err);
        } else if (strcasecmp(k, "opa_policies") == 0) {
            if (r->opa_policies != NULL)
                st = ch_error_set(err, CH_ERR_INVALID, "opa_policies given twice");
            else
                st = get_map(v, "opa_policies", ".rego", &r->opa_policies, &r->opa_policies_count,
                             err);
        } else if (strcasecmp(k, "server_claims") == 0 && !json_is_null(v)) {
            st = check_claims(v, err);
            if (st == CH_OK) {
                json_decref(r->server_claims);
                r->server_claims = json_deep_copy(v);
                if (r->server_claims == NULL)
                    st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
            }
        }
        if (st != CH_OK)
            goto done;
    }
    char **strs[] = {&r->msg, &r->key, &r->certificate, &r->ca, &r->ssldir, &r->upgrade};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (*strs[i] == NULL && (*strs[i] = strdup("")) == NULL) {
            st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
            goto done;
        }
done:
    json_decref(doc);
    if (st != CH_OK)
        ch_helper_reply_free(r);
    else
        *out = r;
    return st;
}

/* ---- running -------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ch_helper_result_clear(ch_helper_result *res)
{
    if (res == NULL)
        return;
    free(res->out);
    free(res->errout);
    memset(res, 0, sizeof(*res));
}

/* Moves fd above the standard descriptors (keeping O_CLOEXEC) so the child's dup2 onto 0-2
 * can never be a no-op that leaves the close-on-exec flag set. */
static int above_std(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return n;
}

static bool make_pipe(int p[2])
{
    if (pipe2(p, O_CLOEXEC) != 0)
        return false;
    p[0] = above_std(p[0]);
    p[1] = above_std(p[1]);
    return p[0] >= 0 && p[1] >= 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Appends up to what the bound allows; returns false on no memory. */
static bool grow_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < *len + n + 1)
            nc *= 2;
        char *b = realloc(*buf, nc);
        if (b == NULL)
            return false;
        *buf = b;
        *cap = nc;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

/* Writes to the stdin pipe with SIGPIPE blocked in this thread only; a SIGPIPE this write
 * raised is consumed so it is never delivered. Returns bytes written or -1 (errno). */
static ssize_t write_nosig(int fd, const char *p, size_t n)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    ssize_t w = write(fd, p, n);
    int saved = errno;
    if (w < 0 && saved == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return w;
}

static void kill_group(pid_t pid)
{
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL); /* in case setpgid failed */
}

ch_status ch_helper_exec(const char *command, const char *input, size_t input_len,
                         const ch_helper_opts *opts, ch_helper_result *res, ch_error *err)
{
    memset(res, 0, sizeof(*res));
    res->exit_code = -1;
    int64_t timeout =
        opts != NULL && opts->timeout_ms > 0 ? opts->timeout_ms : CH_HELPER_DEFAULT_TIMEOUT_MS;
    size_t max_out = opts != NULL && opts->max_output > 0 ? opts->max_output : CH_HELPER_MAX_OUTPUT;
    size_t max_err = opts != NULL && opts->max_stderr > 0 ? opts->max_stderr : CH_HELPER_MAX_STDERR;
    int in[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
    char **argv = NULL;
    pid_t pid = -1;
    bool reaped = false, fa_init = false, attr_init = false;
    size_t out_cap = 0, err_cap = 0, written = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    ch_error e;
    ch_status st = CH_OK;
    int64_t start = now_ms(), deadline = start + timeout;

    if (ch_helper_split(command, &argv, NULL, &e) != CH_OK) {
        st = ch_error_set(err, CH_ERR_INVALID, "cannot parse helper command: %s", e.msg);
        goto done;
    }
    if (!make_pipe(in) || !make_pipe(outp) || !make_pipe(errp)) {
        st = ch_error_set(err, CH_ERR_IO, "cannot start %s: pipe: %s", argv[0], strerror(errno));
        goto done;
    }
    if (posix_spawn_file_actions_init(&fa) != 0 || !(fa_init = true) ||
        posix_spawnattr_init(&attr) != 0 || !(attr_init = true)) {
        st = ch_error_set(err, CH_ERR_NOMEM, "cannot start %s: out of memory", argv[0]);
        goto done;
    }
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    /* default dispositions and an empty mask: the daemon may ignore SIGPIPE or block signals
     * in its threads, and a helper must not inherit that; its own process group so a timeout
     * kills what it started too */
    sigset_t none, defs;
    sigemptyset(&none);
    sigemptyset(&defs);
    int defsig[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof(defsig) / sizeof(defsig[0]); i++)
        sigaddset(&defs, defsig[i]);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defs);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    if (rc != 0) {
        pid = -1;
        st = ch_error_set(err, CH_ERR_IO, "cannot start %s: %s", argv[0], strerror(rc));
        goto done;
    }
    close_fd(&in[0]);
    close_fd(&outp[1]);
    close_fd(&errp[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    if (input_len == 0)
        close_fd(&in[1]);

    char chunk[65536];
    while (outp[0] >= 0 || errp[0] >= 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            st = ch_error_set(err, CH_ERR_TIMEOUT, "%s timed out after %lld ms", argv[0],
                              (long long)timeout);
            goto done;
        }
        if (opts != NULL && opts->cancel != NULL && atomic_load(opts->cancel)) {
            st = ch_error_set(err, CH_ERR_EXPIRED, "%s cancelled", argv[0]);
            goto done;
        }
        struct pollfd pf[3];
        int np = 0, iw = -1, io = -1, ie = -1;
        if (in[1] >= 0)
            iw = np, pf[np++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
        if (outp[0] >= 0)
            io = np, pf[np++] = (struct pollfd){.fd = outp[0], .events = POLLIN};
        if (errp[0] >= 0)
            ie = np, pf[np++] = (struct pollfd){.fd = errp[0], .events = POLLIN};
        int pr = poll(pf, (nfds_t)np, left > 100 ? 100 : (int)left);
        if (pr < 0 && errno != EINTR) {
            st = ch_error_set(err, CH_ERR_IO, "cannot read %s output: poll: %s", argv[0],
                              strerror(errno));
            goto done;
        }
        if (pr <= 0)
            continue;
        if (iw >= 0 && pf[iw].revents != 0) {
            ssize_t w = write_nosig(in[1], input + written, input_len - written);
            if (w > 0)
                written += (size_t)w;
            /* EPIPE: the helper does not want (more) input, which Go does not count as an
             * error either */
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input_len)
                close_fd(&in[1]);
        }
        if (io >= 0 && pf[io].revents != 0) {
            ssize_t r = read(outp[0], chunk, sizeof(chunk));
            if (r > 0) {
                if (res->out_len + (size_t)r > max_out) {
                    st = ch_error_set(err, CH_ERR_TOO_LARGE, "helper output exceeds %zu bytes",
                                      max_out);
                    goto done;
                }
                if (!grow_append(&res->out, &res->out_len, &out_cap, chunk, (size_t)r)) {
                    st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
                    goto done;
                }
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close_fd(&outp[0]);
            }
        }
        if (ie >= 0 && pf[ie].revents != 0) {
            ssize_t r = read(errp[0], chunk, sizeof(chunk));
            if (r > 0) {
                size_t keep = res->errout_len < max_err ? max_err - res->errout_len : 0;
                if (keep > (size_t)r)
                    keep = (size_t)r;
                if (keep < (size_t)r)
                    res->errout_truncated = true;
                if (keep > 0 &&
                    !grow_append(&res->errout, &res->errout_len, &err_cap, chunk, keep)) {
                    st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
                    goto done;
                }
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close_fd(&errp[0]);
            }
        }
    }
    close_fd(&in[1]);
    /* Both streams ended; the helper may still run (it closed them itself), so the wait is
     * bounded by the same deadline. */
    int status = 0;
    for (long nap_us = 200;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            reaped = true;
            break;
        }
        if (w < 0 && errno != EINTR) {
            reaped = true; /* nothing left to reap */
            st =
                ch_error_set(err, CH_ERR_IO, "could not wait for %s: %s", argv[0], strerror(errno));
            goto done;
        }
        if (now_ms() >= deadline) {
            st = ch_error_set(err, CH_ERR_TIMEOUT, "%s timed out after %lld ms", argv[0],
                              (long long)timeout);
            goto done;
        }
        struct timespec ts = {0, nap_us * 1000};
        nanosleep(&ts, NULL);
        if (nap_us < 10000)
            nap_us *= 2;
    }
    if (WIFEXITED(status)) {
        res->exit_code = WEXITSTATUS(status);
        if (res->exit_code != 0)
            st = ch_error_set(err, CH_ERR_IO, "could not wait for %s: exit status %d", argv[0],
                              res->exit_code);
    } else if (WIFSIGNALED(status)) {
        res->term_signal = WTERMSIG(status);
        st = ch_error_set(err, CH_ERR_IO, "could not wait for %s: signal: %s", argv[0],
                          strsignal(res->term_signal));
    }
done:
    if (pid > 0 && !reaped) {
        kill_group(pid);
        int status2 = 0;
        while (waitpid(pid, &status2, 0) < 0 && errno == EINTR) {
        }
        if (WIFSIGNALED(status2))
            res->term_signal = WTERMSIG(status2);
    }
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&outp[0]);
    close_fd(&outp[1]);
    close_fd(&errp[0]);
    close_fd(&errp[1]);
    if (fa_init)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_init)
        posix_spawnattr_destroy(&attr);
    ch_helper_argv_free(argv);
    res->duration_ms = now_ms() - start;
    return st;
}

ch_status ch_helper_run(const char *command, const ch_helper_input *in, const ch_helper_opts *opts,
                        ch_helper_reply **reply, ch_helper_result *res, ch_error *err)
{
    *reply = NULL;
    size_t len = 0;
    char *input = ch_helper_input_encode(in, &len);
    if (input == NULL) {
        memset(res, 0, sizeof(*res));
        return ch_error_set(err, CH_ERR_NOMEM, "could not encode the helper input");
    }
    ch_status st = ch_helper_exec(command, input, len, opts, res, err);
    free(input);
    if (st != CH_OK)
        return st;
    char **argv = NULL;
    const char *prog = command;
    if (ch_helper_split(command, &argv, NULL, NULL) == CH_OK)
        prog = argv[0];
    ch_error e;
    if (res->out_len == 0) {
        st = ch_error_set(err, CH_ERR_INVALID, "cannot read %s output: zero bytes received", prog);
    } else if ((st = ch_helper_reply_parse(res->out, res->out_len,
                                           opts != NULL ? opts->max_output : 0, reply, &e)) !=
               CH_OK) {
        st = ch_error_set(err, st, "cannot decode output from %s: %s", prog, e.msg);
    }
    ch_helper_argv_free(argv);
    return st;
}
