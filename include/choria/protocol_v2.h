/* Choria RPC wire protocol v2 (go-choria protocol/v2), used with the choria (ed25519 + JWT)
 * security provider and by provisioning nodes whose JWT says v2:
 *
 *   NATS payload = Transport {protocol, data = base64(SecureRequest|SecureReply JSON),
 *                             headers{reply, sender, trace, federation{request,reply,targets}}}
 *   SecureRequest {protocol, request = base64(Request JSON), signature = base64(ed25519),
 *                  caller = the caller's JWT, signer (delegation; refused when verifying)}
 *   SecureReply   {protocol, reply = base64(Reply JSON), hash = base64(sha256(Reply JSON)),
 *                  signature, sender = the server's JWT (both omitempty)}
 *   Request {protocol, message = base64(RPC body), id, sender, caller, collective, agent,
 *            ttl (>= 1), time (unix nanoseconds), filter (omitempty)}
 *   Reply   {protocol, message = base64(agent reply), request, sender, agent, time (ns)}
 *
 * The codec is ch_protocol_v2() (include/choria/protocol.h); it fills the same decoded structs
 * as v1 so that no caller names a version:
 * - request params: body is the message as v1 carries it, so a body that is valid base64 (as
 *   discovery's "cGluZw==") already is the base64 of the bytes and goes in unchanged;
 * - request payload: secure.message = the Request JSON (the signed bytes), secure.signature =
 *   the base64 signature as sent, secure.pubcert = the caller JWT; request.message = the
 *   base64 text of the body (ch_protocol_message_body decodes it, as for v1 discovery);
 *   envelope times are whole seconds (nanoseconds / 10^9), so the TTL check is shared;
 * - reply payload: reply.message = the decoded reply body text (no NUL bytes).
 * With the insecure provider a request carries base64("insecure") as its signature and the
 * caller "insecure" (upstream leaves the caller empty, which its own schema refuses). */
#ifndef CHORIA_PROTOCOL_V2_H
#define CHORIA_PROTOCOL_V2_H

#include "choria/protocol.h"

#define CH_PROTOCOL_TRANSPORT_V2 "io.choria.protocol.v2.transport"
#define CH_PROTOCOL_SECURE_REQUEST_V2 "io.choria.protocol.v2.secure_request"
#define CH_PROTOCOL_SECURE_REPLY_V2 "io.choria.protocol.v2.secure_reply"
#define CH_PROTOCOL_REQUEST_V2 "io.choria.protocol.v2.request"
#define CH_PROTOCOL_REPLY_V2 "io.choria.protocol.v2.reply"

#define CH_PROTOCOL_V2_MIN_TTL 1 /* schema minimum */

/* base64("insecure"): the signature of an unsigned v2 request. */
#define CH_PROTOCOL_V2_INSECURE_SIGNATURE "aW5zZWN1cmU="

/* The Request JSON a v2 request payload signs, exactly as go-choria writes it (the filter is
 * always present, as go-choria's NewRequest sets one). *out is malloc'd. */
ch_status ch_protocol_v2_request_json(const ch_request_params *p, char **out, size_t *out_len,
                                      ch_error *err);

#endif
