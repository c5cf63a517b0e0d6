/* Leader election in a JetStream KV bucket, as go-choria's streams election (go-choria
 * providers/election/streams, used by choria-io/provisioner hosts/election.go): campaign with KV
 * create, hold with an update at the last revision, lose on a failed update; "won" only after one
 * confirmed update.
 *
 * Unlike upstream: the leader refreshes at a quarter of the bucket TTL (not every 0.5 s), it
 * confirms its win 200 ms after the create instead of at the next tick, candidates campaign
 * every campaign_ms (default 1 s) so a crashed leader is replaced within TTL + about 1.5 s, a
 * leader that stops deletes its key so a standby takes over within about 1.5 s, the key is
 * watched so an evicted leader steps down at once and candidates campaign as soon as the key
 * is freed, and a missing
 * bucket, no JetStream or no permission is an error from ch_leader_start (upstream stays
 * paused silently). */
#ifndef CHORIA_LEADER_H
#define CHORIA_LEADER_H

#include <nats/nats.h>

#include "choria/common.h"
#include "choria/metrics.h"

#define CH_LEADER_DEFAULT_BUCKET "CHORIA_LEADER_ELECTION"
#define CH_LEADER_DEFAULT_CAMPAIGN_MS 1000

typedef void (*ch_leader_fn)(void *closure);

typedef struct {
    natsConnection *nc;     /* borrowed */
    const char *bucket;     /* NULL = CH_LEADER_DEFAULT_BUCKET */
    const char *key;        /* the election name, e.g. "provisioner" */
    const char *identity;   /* the value written while leader */
    const char *api_prefix; /* JetStream API prefix, NULL or "" = $JS.API */
    ch_leader_fn won, lost; /* called on the election thread */
    void *closure;
    ch_metrics *metrics; /* optional: choria_election_* */
    int64_t campaign_ms; /* candidate retry period; 0 = CH_LEADER_DEFAULT_CAMPAIGN_MS */
} ch_leader_opts;

typedef struct ch_leader ch_leader;

/* Binds the bucket, checks its TTL (1 s .. 1 h) and starts campaigning. */
ch_status ch_leader_start(const ch_leader_opts *o, ch_leader **out, ch_error *err);

bool ch_leader_is_leader(const ch_leader *l);

/* The bucket's TTL in ms. */
int64_t ch_leader_ttl_ms(const ch_leader *l);

/* Stops campaigning; a leader deletes its key and gets its lost callback. NULL is fine. */
void ch_leader_stop(ch_leader *l);

#endif
