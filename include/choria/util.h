/* Small helpers: base64, hex, digests, ids, time, identities, back-off. */
#ifndef CHORIA_UTIL_H
#define CHORIA_UTIL_H

#include <pthread.h>

#include "choria/common.h"

/* Standard base64 with padding. Returns a malloc'd NUL-terminated string, NULL on no memory. */
char *ch_base64_encode(const void *data, size_t len);

/* Strict standard base64 (padding required, no whitespace except CR/LF which Go's decoder
 * skips). On success *out is malloc'd (NUL-terminated for convenience) and *out_len set.
 * Returns CH_ERR_INVALID when the input is not valid base64. */
ch_status ch_base64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);

/* Unpadded base64url (RFC 4648 section 5, as JWT segments; CR and LF are skipped as Go
 * does). Decode: *out malloc'd; CH_ERR_INVALID for padding or a character outside the
 * alphabet. Encode: malloc'd NUL-terminated, NULL on no memory. */
ch_status ch_base64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);
char *ch_base64url_encode(const void *data, size_t len);

/* Lower-case hex of len bytes into out, which must hold 2*len+1 bytes. */
void ch_hex_encode(const void *data, size_t len, char *out);

/* Hex MD5 of a string into out[33]. */
void ch_md5_hex(const void *data, size_t len, char out[33]);

/* 64-bit FNV-1a of data[0..len), for hash tables keyed by short strings (ids, identities,
 * config keys). Not for anything an attacker must not steer. */
uint64_t ch_hash_fnv1a(const void *data, size_t len);

/* Raw SHA-256 into out[32]. */
void ch_sha256(const void *data, size_t len, unsigned char out[32]);

/* Random bytes from the OS CSPRNG; falls back to nothing: returns false on failure. */
bool ch_random_bytes(void *buf, size_t len);

/* RFC 4122 v4 UUID with dashes into out[37]. */
void ch_uuid_v4(char out[37]);

/* Choria v1 request id: 32 lower-case hex chars (a v4 UUID without dashes) into out[33]. */
void ch_request_id(char out[33]);

/* Seconds since the epoch (wall clock). */
int64_t ch_now_unix(void);

/* Monotonic milliseconds, for timeouts and rates. */
int64_t ch_now_mono_ms(void);

/* A condition variable that waits on the monotonic clock, so that a step of the wall clock
 * neither stretches nor cuts a wait. Returns pthread_cond_init's result. */
int ch_cond_init_monotonic(pthread_cond_t *cond);

/* Waits on cond (made by ch_cond_init_monotonic) with mu held until deadline_ms of
 * ch_now_mono_ms(); false once the deadline has passed, true when woken before it (or
 * spuriously: callers re-check their condition). */
bool ch_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t deadline_ms);

/* RFC 3339 UTC without fraction ("2018-08-24T10:36:13Z") into out[21+]. */
void ch_format_rfc3339(int64_t unix_seconds, char *out, size_t out_size);

/* Parses RFC 3339 ("2018-08-24T10:36:13Z", fractions and offsets allowed). */
ch_status ch_parse_rfc3339(const char *s, int64_t *unix_seconds);

/* A valid node identity is a DNS-like name: labels of [A-Za-z0-9_-], separated by single
 * dots, 1..253 chars; no '*', '>', spaces or empty labels, so it is safe in a subject. */
bool ch_identity_valid(const char *identity);

/* The host's fully qualified name (getaddrinfo AI_CANONNAME, else gethostname). */
ch_status ch_fqdn(char *out, size_t out_size);

/* Jittered back-off: base * 2^attempt capped at max, then uniform in [d/2, 3d/2). ms. */
int64_t ch_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms);

/* ASCII white space as Go's unicode.IsSpace sees it below 0x80: space, \t \n \v \f \r. */
bool ch_is_space(char c);

/* Narrows [*s, *s + *len) to drop leading and trailing ASCII white space. */
void ch_trim(const char **s, size_t *len);

/* rm -rf of path, never following symbolic links; a path that does not exist is fine.
 * CH_ERR_IO names what could not be removed; "" and "/" are refused. */
ch_status ch_remove_tree(const char *path, ch_error *err);

/* Reads a whole file, refusing more than max bytes. *out is malloc'd and NUL-terminated. */
ch_status ch_read_file(const char *path, size_t max, char **out, size_t *out_len, ch_error *err);

#endif
