/* The provisioner's host set and work queue: a bounded FIFO of identities, deduplicated by
 * identity, with a generation number per entry so a queue slot whose host was removed (or
 * removed and re-added) since it was queued is recognised and skipped by the dequeuer.
 * Unlike upstream's hosts/hosts.go (whose dedupe compares the wrong timestamp), a queued or busy
 * identity is never queued twice, a full queue is reported to the caller, and the counts are exact
 * at all times. Thread-safe: one mutex, one condition variable; workers block in prov_hosts_take().
 */
#ifndef PROV_HOSTS_H
#define PROV_HOSTS_H

#include "choria/common.h"

#define PROV_HOSTS_DEFAULT_CAPACITY 50000
#define PROV_HOSTS_DEFAULT_HOLD_MS 60000

typedef struct prov_hosts prov_hosts;

typedef struct {
    size_t capacity; /* queue bound; 0 = PROV_HOSTS_DEFAULT_CAPACITY */
    int64_t
        interval_ms; /* discovery interval; a host waiting > 2 intervals is dropped; 0 = never */
    int64_t hold_ms; /* a provisioned host is held this long; 0 = PROV_HOSTS_DEFAULT_HOLD_MS,
                      * negative = not held */
    /* Monotonic clock in ms, for tests; NULL = ch_now_mono_ms. */
    int64_t (*clock)(void *ctx);
    void *clock_ctx;
} prov_hosts_opts;

typedef enum {
    PROV_HOSTS_ADDED = 0,
    PROV_HOSTS_DUPLICATE, /* already queued, busy or held: nothing done */
    PROV_HOSTS_INVALID,   /* not a valid identity (ch_identity_valid) */
    PROV_HOSTS_FULL,      /* the queue is at capacity */
    PROV_HOSTS_CLOSED,    /* shut down */
} prov_hosts_add_result;

/* Monotonic counters and current sizes, for metrics. */
typedef struct {
    size_t queued; /* entries waiting in the queue (work_queue_entries) */
    size_t known;  /* identities queued, busy or held (waiting_nodes) */
    size_t busy;   /* identities taken by a worker and not yet done */
    size_t held;   /* provisioned identities held back */
    uint64_t added;
    uint64_t duplicates;
    uint64_t invalid;
    uint64_t full;
    uint64_t dropped_stale_wait; /* waited more than two intervals */
    uint64_t skipped_generation; /* queue entries whose host was removed since */
} prov_hosts_stats;

/* opts may be NULL for the defaults. */
ch_status prov_hosts_new(const prov_hosts_opts *opts, prov_hosts **out, ch_error *err);
void prov_hosts_free(prov_hosts *h);

prov_hosts_add_result prov_hosts_add(prov_hosts *h, const char *identity);

/* Takes the oldest live entry, waiting up to timeout_ms (< 0 = forever). Stale entries are
 * skipped and hosts that waited more than two intervals dropped (both counted). On CH_OK the
 * identity is copied to out (CH_MAX_IDENTITY_LEN + 1 bytes), *gen set and the host is busy.
 * CH_ERR_TIMEOUT when nothing came, CH_ERR_EXPIRED after prov_hosts_shutdown(). */
ch_status prov_hosts_take(prov_hosts *h, int64_t timeout_ms, char *out, uint64_t *gen);

/* A worker finished identity (taken with gen). provisioned holds it for hold_ms so it is not
 * taken again while it restarts; otherwise it is forgotten at once (retried on the next
 * discovery). A gen that no longer matches (paused/removed meanwhile) is ignored. */
void prov_hosts_done(prov_hosts *h, const char *identity, uint64_t gen, bool provisioned);

/* Forgets identity whatever its state; a queued entry becomes stale. True if it was known. */
bool prov_hosts_remove(prov_hosts *h, const char *identity);

/* Empties the queue (its hosts are forgotten); busy and held hosts are kept. Returns how many
 * queued entries were discarded. */
size_t prov_hosts_pause(prov_hosts *h);

/* Wakes every prov_hosts_take(), which then returns CH_ERR_EXPIRED; later adds are refused. */
void prov_hosts_shutdown(prov_hosts *h);

void prov_hosts_stats_get(prov_hosts *h, prov_hosts_stats *out);

#endif
