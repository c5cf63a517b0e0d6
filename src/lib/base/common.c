/* Status text and error detail helpers. */
#include "choria/common.h"

#include <stdarg.h>
#include <stdio.h>

const char *ch_status_text(ch_status s)
{
    switch (s) {
    case CH_OK:
        return "ok";
    case CH_ERR_INVALID:
        return "invalid input";
    case CH_ERR_TOO_LARGE:
        return "too large";
    case CH_ERR_NOMEM:
        return "out of memory";
    case CH_ERR_IO:
        return "i/o error";
    case CH_ERR_NOT_FOUND:
        return "not found";
    case CH_ERR_UNSUPPORTED:
        return "unsupported";
    case CH_ERR_EXPIRED:
        return "expired";
    case CH_ERR_NO_MATCH:
        return "no match";
    case CH_ERR_CONNECTION:
        return "connection error";
    case CH_ERR_TIMEOUT:
        return "timeout";
    case CH_ERR_INTERNAL:
        return "internal error";
    }
    return "unknown status";
}

ch_status ch_error_set(ch_error *err, ch_status code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

void ch_error_clear(ch_error *err)
{
    if (err != NULL) {
        err->code = CH_OK;
        err->msg[0] = '\0';
    }
}
