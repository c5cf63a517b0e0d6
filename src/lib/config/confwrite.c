/* go-choria writeConfig and atomic file writes (see confwrite.h). */
#include "choria/confwrite.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "choria/config.h"
#include "choria/json.h"

void ch_confwrite_format_time(int64_t now_ns, char *out, size_t out_size)
{
    time_t secs = (time_t)(now_ns / 1000000000);
    long frac = (long)(now_ns % 1000000000);
    if (frac < 0) {
        frac += 1000000000;
        secs--;
    }
    struct tm tm;
    char date[32] = "", zone[32] = "", fs[16] = "";
    if (localtime_r(&secs, &tm) != NULL) {
        strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
        strftime(zone, sizeof(zone), "%z %Z", &tm);
    }
    /* Go's ".999999999": nine digits with trailing zeros dropped, nothing when zero. */
    if (frac != 0) {
        snprintf(fs, sizeof(fs), ".%09ld", frac);
        size_t n = strlen(fs);
        while (n > 1 && fs[n - 1] == '0')
            fs[--n] = '\0';
    }
    snprintf(out, out_size, "%s%s %s", date, fs, zone);
}

/* Appends s with control characters replaced, so it cannot end the comment line. */
static void append_clean(ch_buf *b, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        char c = (unsigned char)*s < 0x20 || *s == 0x7f ? '_' : *s;
        ch_buf_append(b, &c, 1);
    }
}

static const char *key_problem(const char *key)
{
    if (key == NULL || key[0] == '\0')
        return "is empty";
    for (const char *p = key; *p != '\0'; p++) {
        if (*p == '=')
            return "contains '='";
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return "contains white space or a control character";
    }
    return NULL;
}

ch_status ch_confwrite_render(const ch_confwrite_origin *origin, const char *const *keys,
                              const char *const *values, size_t n, int64_t now_ns, char **text,
                              size_t *text_len, size_t *lines, ch_error *err)
{
    *text = NULL;
    ch_buf b;
    char when[96];
    ch_error perr = {0};
    ch_config *cfg = NULL;
    ch_status st = CH_OK;

    ch_buf_init(&b);
    ch_confwrite_format_time(now_ns, when, sizeof(when));
    ch_buf_append_str(&b, "# configuration file written in request ");
    append_clean(&b, origin != NULL ? origin->requestid : NULL);
    ch_buf_append_str(&b, " from ");
    append_clean(&b, origin != NULL ? origin->callerid : NULL);
    ch_buf_append_str(&b, " (");
    append_clean(&b, origin != NULL ? origin->senderid : NULL);
    ch_buf_append_str(&b, ") at ");
    ch_buf_append_str(&b, when);
    ch_buf_append_str(&b, "\n");

    for (size_t i = 0; i < n; i++) {
        const char *why = key_problem(keys[i]);
        if (why != NULL) {
            st = ch_error_set(err, CH_ERR_INVALID, "configuration key \"%.64s\" %s",
                              keys[i] != NULL ? keys[i] : "", why);
            goto out;
        }
        const char *v = values[i] != NULL ? values[i] : "";
        if (strpbrk(v, "\r\n") != NULL) {
            st = ch_error_set(err, CH_ERR_INVALID,
                              "the value of configuration key \"%.64s\" contains a line break",
                              keys[i]);
            goto out;
        }
        ch_buf_printf(&b, "%s=%s\n", keys[i], v);
    }
    if (b.failed) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto out;
    }

    /* go-choria validates the temp file with config.NewConfig; we check the same text
     * before anything is written. */
    if ((cfg = ch_config_new()) == NULL) {
        st = ch_error_set(err, CH_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (ch_config_parse(cfg, "generated configuration", b.data, b.len, &perr) != CH_OK) {
        st = ch_error_set(err, CH_ERR_INVALID, "generated configuration could not be parsed: %s",
                          perr.msg);
        goto out;
    }
    *lines = n + 1;
    *text = ch_buf_steal(&b, text_len);
out:
    ch_config_free(cfg);
    ch_buf_free(&b);
    return st;
}

/* Directory part of path ("." when there is none). out must hold PATH_MAX bytes. */
static ch_status dir_of(const char *path, char *out, ch_error *err)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        strcpy(out, ".");
        return CH_OK;
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= PATH_MAX)
        return ch_error_set(err, CH_ERR_INVALID, "path %.64s... is too long", path);
    memcpy(out, path, n);
    out[n] = '\0';
    return CH_OK;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

/* Writes data to a fresh temp file named prefixXXXXXX in dir, fsynced, with mode, then
 * renames it to target and fsyncs dir. CH_CONFWRITE_NO_SYNC leaves out both fsyncs: the
 * rename still makes the change atomic for readers, only durability across a crash goes. */
static ch_status replace_file(const char *dir, const char *prefix, const char *target,
                              const void *data, size_t len, unsigned mode, unsigned flags,
                              ch_error *err)
{
    bool sync = (flags & CH_CONFWRITE_NO_SYNC) == 0;
    char tmp[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%sXXXXXX", dir, prefix) >= sizeof(tmp))
        return ch_error_set(err, CH_ERR_INVALID, "path in %.64s... is too long", dir);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return ch_error_set(err, CH_ERR_IO, "cannot create a temp file in %s: %s", dir,
                            strerror(errno));
    ch_status st = CH_OK;
    if (fchmod(fd, mode) != 0 || !write_all(fd, data, len) || (sync && fsync(fd) != 0)) {
        st = ch_error_set(err, CH_ERR_IO, "could not write to temp file %s: %s", tmp,
                          strerror(errno));
        close(fd);
        goto out;
    }
    if (close(fd) != 0) {
        st = ch_error_set(err, CH_ERR_IO, "could not close temp file %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, target) != 0) {
        st = ch_error_set(err, CH_ERR_IO, "could not rename temp file %s to %s: %s", tmp, target,
                          strerror(errno));
        goto out;
    }
    if (sync)
        fsync_dir(dir);
out:
    if (st != CH_OK)
        unlink(tmp);
    return st;
}

ch_status ch_confwrite_install(const char *path, const char *text, size_t len, unsigned flags,
                               ch_error *err)
{
    char real[PATH_MAX], dir[PATH_MAX];
    const char *target = path;
    struct stat sb;
    if (path == NULL || path[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "no configuration file given");
    /* As go-choria: when the file exists, replace the file its symlinks lead to. */
    if (stat(path, &sb) == 0) {
        if (realpath(path, real) == NULL)
            return ch_error_set(err, CH_ERR_IO, "cannot determine full path to config file %s: %s",
                                path, strerror(errno));
        target = real;
    }
    ch_status st = dir_of(target, dir, err);
    if (st != CH_OK)
        return st;
    return replace_file(dir, "provision", target, text, len, 0600, flags, err);
}

ch_status ch_confwrite_file(const char *path, const void *data, size_t len, unsigned mode,
                            unsigned flags, ch_error *err)
{
    char dir[PATH_MAX];
    if (path == NULL || path[0] == '\0')
        return ch_error_set(err, CH_ERR_INVALID, "no file name given");
    ch_status st = dir_of(path, dir, err);
    if (st != CH_OK)
        return st;
    return replace_file(dir, ".provision", path, data, len, mode, flags, err);
}

ch_status ch_confwrite_mkdir_p(const char *path, unsigned mode, ch_error *err)
{
    char buf[PATH_MAX];
    size_t len = path != NULL ? strlen(path) : 0;
    if (len == 0)
        return ch_error_set(err, CH_ERR_INVALID, "no directory given");
    if (len >= sizeof(buf))
        return ch_error_set(err, CH_ERR_INVALID, "directory %.64s... is too long", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/')
            continue; /* repeated or trailing slash */
        char saved = buf[i];
        buf[i] = '\0';
        struct stat sb;
        if (mkdir(buf, mode) == 0) {
            if (chmod(buf, mode) != 0)
                return ch_error_set(err, CH_ERR_IO, "could not set the mode of %s: %s", buf,
                                    strerror(errno));
        } else if (errno != EEXIST) {
            return ch_error_set(err, CH_ERR_IO, "mkdir %s: %s", buf, strerror(errno));
        } else if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            return ch_error_set(err, CH_ERR_IO, "mkdir %s: not a directory", buf);
        }
        buf[i] = saved;
    }
    return CH_OK;
}
