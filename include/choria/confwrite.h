/* Writing a Choria server config the way go-choria's provisioning agent does (writeConfig), and
 * small atomic file helpers for the other files provisioning writes.
 *
 * A config is rendered to text first, with the go-choria header line
 *   # configuration file written in request <id> from <callerid> (<senderid>) at <time>
 * and one `key=value` line per setting, and that text is validated with ch_config_parse
 * before anything touches the disk. Installing it writes a temp file `provisionXXXXXX` in
 * the target's directory (mode 0600), fsyncs it, renames it over the target (over the real
 * file when the target is a symlink) and fsyncs the directory.
 *
 * The writers take flags; 0 is the durable default described above. */
#ifndef CHORIA_CONFWRITE_H
#define CHORIA_CONFWRITE_H

#include "choria/common.h"

/* Who asked for the config (the header line names them). NULL reads as "". */
typedef struct {
    const char *requestid;
    const char *callerid;
    const char *senderid;
} ch_confwrite_origin;

/* Renders n settings (keys[i]=values[i], in this order) into a malloc'd *text, with
 * *lines = 1 header line + n. now_ns is wall-clock nanoseconds since the epoch for the
 * header (Go's time.Now().String() form, local time, without the monotonic part).
 * CH_ERR_INVALID when a key is empty or holds '=', white space or a control character,
 * when a value holds CR, LF or NUL, or when the result does not parse as a Choria config
 * ("generated configuration could not be parsed: ..."). Control characters in the origin
 * are replaced by '_' so they cannot break out of the comment line. */
ch_status ch_confwrite_render(const ch_confwrite_origin *origin, const char *const *keys,
                              const char *const *values, size_t n, int64_t now_ns, char **text,
                              size_t *text_len, size_t *lines, ch_error *err);

/* Go's time.Time.String() for now_ns in the local zone into out:
 * "2024-06-10 14:35:46.123456789 +0000 UTC" (trailing zeros of the fraction dropped). */
void ch_confwrite_format_time(int64_t now_ns, char *out, size_t out_size);

/* Leave out both fsyncs (file and directory). Readers still see the old or the new file,
 * never a partial one (the rename is atomic), but after a crash the file may be lost or
 * empty. Only for simulated nodes in benchmarks (`choria tool fleet --no-sync`), where two
 * fsyncs per configure cost more CPU than the rest of the node; never for a real server. */
#define CH_CONFWRITE_NO_SYNC 0x01u

/* Atomically installs text as the config at path (see above); flags: CH_CONFWRITE_*. */
ch_status ch_confwrite_install(const char *path, const char *text, size_t len, unsigned flags,
                               ch_error *err);

/* Atomically writes data to path with exactly mode (temp file in the same directory, fsync,
 * fchmod, rename, directory fsync). Unlike ch_confwrite_install it replaces a symlink at
 * path rather than following it. flags: CH_CONFWRITE_*. */
ch_status ch_confwrite_file(const char *path, const void *data, size_t len, unsigned mode,
                            unsigned flags, ch_error *err);

/* mkdir -p path; directories it creates get exactly mode (umask ignored). Existing
 * directories keep theirs. CH_ERR_IO naming the failing component. */
ch_status ch_confwrite_mkdir_p(const char *path, unsigned mode, ch_error *err);

#endif
