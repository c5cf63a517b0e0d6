/* Status codes, error detail and the size limits every decoder enforces. */
#ifndef CHORIA_COMMON_H
#define CHORIA_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    CH_OK = 0,
    CH_ERR_INVALID,   /* input is malformed or breaks a rule of the format */
    CH_ERR_TOO_LARGE, /* input exceeds one of the CH_MAX_* bounds */
    CH_ERR_NOMEM,
    CH_ERR_IO,          /* file or socket error */
    CH_ERR_NOT_FOUND,   /* a file, key or value that must exist does not */
    CH_ERR_UNSUPPORTED, /* valid input this implementation does not handle (yet) */
    CH_ERR_EXPIRED,     /* TTL or validity window passed */
    CH_ERR_NO_MATCH,    /* filter did not match */
    CH_ERR_CONNECTION,  /* broker connection failed */
    CH_ERR_TIMEOUT,
    CH_ERR_INTERNAL,
} ch_status;

/* Detail for the caller: the status plus a human readable message. */
typedef struct {
    ch_status code;
    char msg[256];
} ch_error;

/* Name of a status, e.g. "invalid input". */
const char *ch_status_text(ch_status s);

/* Fills err (if not NULL) and returns code, so callers can `return ch_error_set(...)`. */
ch_status ch_error_set(ch_error *err, ch_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err to CH_OK with an empty message. */
void ch_error_clear(ch_error *err);

/* Bounds on everything read from the network or a file. */
#define CH_MAX_MESSAGE_SIZE (8 * 1024 * 1024) /* one NATS payload */
#define CH_MAX_JSON_DEPTH 64
#define CH_MAX_IDENTITY_LEN 253 /* a DNS name */
#define CH_MAX_SUBJECT_LEN 512
#define CH_MAX_CONFIG_FILE_SIZE (1024 * 1024)
#define CH_MAX_CONFIG_LINE 8192

#endif
