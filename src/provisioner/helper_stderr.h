/* The stderr of long-lived helper processes, to the log line by line.
 *
 * One thread polls every stream it was given and hands each complete line to a callback: a
 * line is cut at PROV_STDERR_MAX_LINE bytes (the rest up to its newline is dropped and the
 * line is marked cut), control bytes become spaces, and each stream may log at most
 * PROV_STDERR_LINES_PER_SECOND lines a second; the lines over that are counted and reported
 * once the second is over, so a helper that floods its stderr neither blocks (its pipe is
 * always drained) nor floods the log. The pump owns the descriptors it is given and closes
 * each at its end. Thread-safe: _add from any thread. */
#ifndef PROV_HELPER_STDERR_H
#define PROV_HELPER_STDERR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "choria/common.h"

#define PROV_STDERR_MAX_LINE 1024 /* and the log line still has room for its prefix */
#define PROV_STDERR_LINES_PER_SECOND 100
#define PROV_STDERR_MAX_STREAMS 8192

/* One line of stream `slot` (the helper process of pid): line[0..len) has no NUL or control
 * bytes; cut when the helper wrote more. suppressed > 0 (and line empty) reports the lines
 * that were over the rate limit in the last second. Called on the pump's thread. */
typedef void (*prov_stderr_line_fn)(void *closure, int slot, pid_t pid, const char *line,
                                    size_t len, bool cut, uint64_t suppressed);

typedef struct prov_stderr_pump prov_stderr_pump;

ch_status prov_stderr_pump_start(prov_stderr_pump **out, prov_stderr_line_fn fn, void *closure,
                                 ch_error *err);

/* Hands fd (the read end of a helper's stderr) to the pump, which closes it at its end (or when
 * the pump stops); closes fd itself on failure. */
ch_status prov_stderr_pump_add(prov_stderr_pump *p, int fd, int slot, pid_t pid, ch_error *err);

/* Reads on until every stream has ended or drain_ms has passed, logs what is left of an
 * unterminated line, closes the rest and frees p. NULL is fine. */
void prov_stderr_pump_stop(prov_stderr_pump *p, int64_t drain_ms);

#endif
