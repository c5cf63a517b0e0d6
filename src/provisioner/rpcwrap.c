/* Retries of one provisioning RPC; see rpcwrap.h. */
#include "rpcwrap.h"

#include <stdio.h>
#include <string.h>

#include "choria/util.h"

static const int64_t five_sec_ms[] = {500,  750,  1000, 1500, 2000, 2500,
                                      3000, 3500, 4000, 4500, 5000};

int64_t prov_rpcwrap_backoff_ms(int n, int percent)
{
    size_t count = sizeof(five_sec_ms) / sizeof(five_sec_ms[0]);
    size_t i = n < 0 ? 0 : (size_t)n >= count ? count - 1 : (size_t)n;
    int64_t base = five_sec_ms[i] * (percent > 0 ? percent : 100) / 100;
    uint64_t r = 0;
    ch_random_bytes(&r, sizeof(r));
    return base / 2 + (base > 0 ? (int64_t)(r % (uint64_t)base) : 0);
}

static bool paused(const prov_rpcwrap *w)
{
    return w->paused != NULL && atomic_load(w->paused);
}

/* Sleeps ms in short slices so a pause cuts the wait short; false when paused. */
static bool backoff_sleep(const prov_rpcwrap *w, int64_t ms)
{
    int64_t end = ch_now_mono_ms() + ms;
    while (ch_now_mono_ms() < end) {
        if (paused(w))
            return false;
        int64_t left = end - ch_now_mono_ms();
        nats_Sleep(left < 50 ? (left > 0 ? left : 1) : 50);
    }
    return !paused(w);
}

/* One attempt. Returns CH_OK on success; *final tells whether retrying is pointless. */
static ch_status attempt(const prov_rpcwrap *w, const char *label, const char *identity,
                         const char *agent, const char *action, const json_t *data,
                         int64_t timeout_ms, ch_rpc_result *r, bool *final, ch_error *err)
{
    int64_t t0 = ch_now_mono_ms();
    ch_status st = ch_rpc_call(w->rpc, identity, agent, action, data, timeout_ms, r, err);
    if (w->observe != NULL)
        w->observe(w->closure, label, (double)(ch_now_mono_ms() - t0) / 1000.0);
    *final = false;
    if (st == CH_OK && r->statuscode == 0)
        return CH_OK;
    if (st == CH_OK) {
        *final = r->statuscode == 1 && strcmp(r->statusmsg, CH_PROVISION_LOCK_BUSY) == 0;
        return ch_error_set(err, CH_ERR_INVALID, "invalid response from %s: %s (%d)", identity,
                            r->statusmsg, r->statuscode);
    }
    if (r->no_responders) {
        *final = true; /* nothing subscribes to the node's subject: it is gone */
        return ch_error_set(err, CH_ERR_NOT_FOUND, "no responders for %s", identity);
    }
    if (st == CH_ERR_TIMEOUT)
        return ch_error_set(err, st, "received 0 responses while expecting a response from %s",
                            identity);
    return st;
}

ch_status prov_rpcwrap_call(const prov_rpcwrap *w, const char *identity, const char *agent,
                            const char *action, const json_t *data, int tries, int64_t timeout_ms,
                            ch_rpc_result *result, ch_error *err)
{
    char label[128];
    snprintf(label, sizeof(label), "%s#%s", agent, action);
    memset(result, 0, sizeof(*result));
    ch_error last;
    ch_error_clear(&last);
    ch_status st = CH_ERR_INVALID;
    for (int n = 1; n <= tries; n++) {
        if (paused(w))
            return ch_error_set(err, CH_ERR_UNSUPPORTED, "%s failed: provisioner is paused", label);
        bool final = false;
        ch_rpc_result_clear(result);
        st = attempt(w, label, identity, agent, action, data, timeout_ms, result, &final, &last);
        if (st == CH_OK)
            return CH_OK;
        if (final || n == tries)
            break;
        if (!backoff_sleep(w, prov_rpcwrap_backoff_ms(n, w->backoff_percent)))
            return ch_error_set(err, CH_ERR_UNSUPPORTED, "%s failed: provisioner is paused", label);
    }
    if (w->failed != NULL)
        w->failed(w->closure, label);
    return ch_error_set(err, st, "%s failed: %s", label, last.msg);
}
