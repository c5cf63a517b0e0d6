/* Process-wide logging: levels, text or JSON lines, stderr or a file that can be reopened. */
#ifndef CHORIA_LOG_H
#define CHORIA_LOG_H

#include "choria/common.h"

typedef enum { CH_LOG_DEBUG = 0, CH_LOG_INFO, CH_LOG_WARN, CH_LOG_ERROR, CH_LOG_OFF } ch_log_level;

/* "debug", "info", "warn"/"warning", "error", "fatal" (as error); CH_ERR_INVALID otherwise. */
ch_status ch_log_level_parse(const char *name, ch_log_level *level);

void ch_log_set_level(ch_log_level level);
ch_log_level ch_log_get_level(void);
void ch_log_set_json(bool json);

/* Logs to path (appending), or to stderr when path is NULL or empty. Keeps the path so
 * ch_log_reopen() can reopen it after rotation (SIGHUP). */
ch_status ch_log_set_file(const char *path, ch_error *err);
ch_status ch_log_reopen(ch_error *err);

void ch_log(ch_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ch_debug(...) ch_log(CH_LOG_DEBUG, __VA_ARGS__)
#define ch_info(...) ch_log(CH_LOG_INFO, __VA_ARGS__)
#define ch_warn(...) ch_log(CH_LOG_WARN, __VA_ARGS__)
#define ch_error(...) ch_log(CH_LOG_ERROR, __VA_ARGS__)

#endif
