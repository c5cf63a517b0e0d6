/* Logging: one mutex-protected sink; logging is never on a hot path. */
#include "choria/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "choria/json.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static ch_log_level log_level = CH_LOG_INFO;
static bool log_json = false;
static FILE *log_file = NULL; /* NULL means stderr */
static char *log_path = NULL;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

ch_status ch_log_level_parse(const char *name, ch_log_level *level)
{
    if (name == NULL)
        return CH_ERR_INVALID;
    if (strcasecmp(name, "debug") == 0)
        *level = CH_LOG_DEBUG;
    else if (strcasecmp(name, "info") == 0)
        *level = CH_LOG_INFO;
    else if (strcasecmp(name, "warn") == 0 || strcasecmp(name, "warning") == 0)
        *level = CH_LOG_WARN;
    else if (strcasecmp(name, "error") == 0 || strcasecmp(name, "fatal") == 0)
        *level = CH_LOG_ERROR;
    else
        return CH_ERR_INVALID;
    return CH_OK;
}

void ch_log_set_level(ch_log_level level)
{
    __atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

ch_log_level ch_log_get_level(void)
{
    return __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void ch_log_set_json(bool json)
{
    pthread_mutex_lock(&log_lock);
    log_json = json;
    pthread_mutex_unlock(&log_lock);
}

static ch_status open_locked(ch_error *err)
{
    if (log_path == NULL)
        return CH_OK;
    FILE *f = fopen(log_path, "ae");
    if (f == NULL)
        return ch_error_set(err, CH_ERR_IO, "cannot open log file %s: %s", log_path,
                            strerror(errno));
    setvbuf(f, NULL, _IOLBF, 0);
    if (log_file != NULL)
        fclose(log_file);
    log_file = f;
    return CH_OK;
}

ch_status ch_log_set_file(const char *path, ch_error *err)
{
    pthread_mutex_lock(&log_lock);
    free(log_path);
    log_path = (path != NULL && path[0] != '\0') ? strdup(path) : NULL;
    if (log_path == NULL && log_file != NULL) {
        fclose(log_file);
        log_file = NULL;
    }
    ch_status s = open_locked(err);
    pthread_mutex_unlock(&log_lock);
    return s;
}

ch_status ch_log_reopen(ch_error *err)
{
    pthread_mutex_lock(&log_lock);
    ch_status s = open_locked(err);
    pthread_mutex_unlock(&log_lock);
    return s;
}

void ch_log(ch_log_level level, const char *fmt, ...)
{
    if (level < ch_log_get_level() || level >= CH_LOG_OFF)
        return;

    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", (long)(tv.tv_usec / 1000));

    pthread_mutex_lock(&log_lock);
    FILE *out = log_file != NULL ? log_file : stderr;
    if (log_json) {
        ch_buf b;
        ch_buf_init(&b);
        ch_buf_printf(&b, "{\"level\":\"%s\",\"msg\":", level_names[level]);
        ch_buf_append_json_string(&b, msg, strlen(msg));
        ch_buf_printf(&b, ",\"time\":\"%s\"}\n", ts);
        if (!b.failed)
            fputs(b.data, out);
        ch_buf_free(&b);
    } else {
        fprintf(out, "%s %-5s %s\n", ts, level_names[level], msg);
    }
    pthread_mutex_unlock(&log_lock);
}
