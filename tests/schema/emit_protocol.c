/* Writes every protocol v1 document libchoria encodes into the directory argv[1] as
 * <schema>-<n>.json, plus hand-written documents that break one schema rule each as
 * <schema>-invalid-<n>.json, for run-schema-check to validate with ajv against go-choria's
 * schemas. The invalid ones must also be refused by our own decoders; the program exits
 * non-zero if one is accepted or if anything cannot be encoded or written. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "choria/protocol.h"

#define ID "a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define CALLER "choria=provisioner.mcollective"
#define URL "nats://broker.example.net:4222"
#define BODY                                                                                       \
    "{\"agent\":\"choria_provision\",\"action\":\"gen25519\",\"data\":{\"nonce\":"                 \
    "\"0f1e2d3c4b5a69788796a5b4c3d2e1f0\",\"token\":\"s3cret\"}}"
#define REPLY_BODY                                                                                 \
    "{\"action\":\"gen25519\",\"statuscode\":0,\"statusmsg\":\"OK\",\"data\":{\"public_key\":"     \
    "\"<hex>\",\"directory\":\"/etc/choria\",\"signature\":\"<hex>\"}}"

static const char *dir;
static int failures;
static int counts[5];
static const char *const schemas[] = {"transport", "secure_request", "secure_reply", "request",
                                      "reply"};

enum { TRANSPORT, SECURE_REQUEST, SECURE_REPLY, REQUEST, REPLY };

static void write_doc(int schema, const char *kind, int n, const char *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s-%s%d.json", dir, schemas[schema], kind, n);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "emit_protocol: cannot write %s: %s\n", path, strerror(errno));
        failures++;
    }
}

/* Writes an encoder's output, or records the failure. */
static void emit(int schema, ch_status s, char *doc, size_t len, const ch_error *err)
{
    if (s != CH_OK) {
        fprintf(stderr, "emit_protocol: cannot encode %s: %s\n", schemas[schema], err->msg);
        failures++;
        return;
    }
    write_doc(schema, "", ++counts[schema], doc, len);
    free(doc);
}

/* Emits the transport, and the secure and inner layers it carries. */
static void emit_request_payload(const ch_request_params *p)
{
    char *doc = NULL;
    size_t len = 0;
    ch_error err;
    ch_request_payload d;
    ch_status s = ch_protocol_request_payload_build(p, NULL, &doc, &len, &err);
    if (s != CH_OK) {
        emit(TRANSPORT, s, doc, len, &err);
        return;
    }
    if (ch_protocol_request_payload_decode(doc, len, NULL, &d, &err) != CH_OK) {
        fprintf(stderr, "emit_protocol: own request payload refused: %s\n", err.msg);
        failures++;
        free(doc);
        return;
    }
    write_doc(SECURE_REQUEST, "", ++counts[SECURE_REQUEST], (const char *)d.transport.data,
              d.transport.data_len);
    write_doc(REQUEST, "", ++counts[REQUEST], d.secure.message, strlen(d.secure.message));
    ch_protocol_request_payload_clear(&d);
    emit(TRANSPORT, CH_OK, doc, len, &err);
}

static void emit_reply_payload(const ch_reply_params *p)
{
    char *doc = NULL;
    size_t len = 0;
    ch_error err;
    ch_reply_payload d;
    ch_status s = ch_protocol_reply_payload_build(p, &doc, &len, &err);
    if (s != CH_OK) {
        emit(TRANSPORT, s, doc, len, &err);
        return;
    }
    if (ch_protocol_reply_payload_decode(doc, len, &d, &err) != CH_OK) {
        fprintf(stderr, "emit_protocol: own reply payload refused: %s\n", err.msg);
        failures++;
        free(doc);
        return;
    }
    write_doc(SECURE_REPLY, "", ++counts[SECURE_REPLY], (const char *)d.transport.data,
              d.transport.data_len);
    write_doc(REPLY, "", ++counts[REPLY], d.secure.message, strlen(d.secure.message));
    ch_protocol_reply_payload_clear(&d);
    emit(TRANSPORT, CH_OK, doc, len, &err);
}

static void emit_valid(void)
{
    ch_error err;
    char *doc = NULL;
    size_t len = 0;

    /* 1. the worked example: empty filter, seen-by */
    ch_request_params p = {.body = BODY,
                           .agent = "choria_provision",
                           .collective = "provisioning",
                           .callerid = CALLER,
                           .senderid = "provisioner.example.net",
                           .requestid = ID,
                           .ttl = 60,
                           .time = 1718000000,
                           .connected_url = URL};
    emit_request_payload(&p);

    /* 2. every filter section and operator, federation headers */
    ch_fact_filter facts[] = {
        {"os.family", CH_FACT_OP_EQ, "debian"}, {"os.family", CH_FACT_OP_NE, "redhat"},
        {"count", CH_FACT_OP_LT, "100"},        {"count", CH_FACT_OP_LE, "42"},
        {"load", CH_FACT_OP_GT, "1.5"},         {"load", CH_FACT_OP_GE, "3.7"},
        {"name", CH_FACT_OP_RE, "/^n1/"},
    };
    const char *classes[] = {"base", "/^role::/"};
    const char *agents[] = {"choria_provision", "rpcutil"};
    const char *ids[] = {"n1.example.net", "/^n2\\./", "<&>"};
    ch_filter filter = {.facts = facts,
                        .n_facts = sizeof(facts) / sizeof(facts[0]),
                        .classes = classes,
                        .n_classes = 2,
                        .agents = agents,
                        .n_agents = 2,
                        .identities = ids,
                        .n_identities = 3};
    const char *targets[] = {"n1.example.net", "n2.example.net"};
    ch_federation fed = {.req = ID,
                         .reply_to = "provisioning.reply.344aa967e9f3339639bf1c959876175b." ID,
                         .targets = targets,
                         .n_targets = 2};
    p.filter = &filter;
    p.federation = &fed;
    p.reply_to = "choria.federation.collective.federation";
    emit_request_payload(&p);

    /* 3. broadcast discovery: base64 "ping", agent filter only, no seen-by */
    const char *provision[] = {"choria_provision"};
    ch_filter discovery = {.agents = provision, .n_agents = 1};
    ch_request_params ping = {.body = "cGluZw==",
                              .agent = "discovery",
                              .collective = "provisioning",
                              .callerid = CALLER,
                              .senderid = "provisioner.example.net",
                              .requestid = "0123456789abcdef0123456789abcdef",
                              .ttl = 30,
                              .time = 1718000000,
                              .filter = &discovery};
    emit_request_payload(&ping);

    /* 4. a compound filter as received, re-encoded (keys sorted) */
    const char *compound = "{\"protocol\":\"choria:request:1\",\"message\":\"{}\",\"envelope\":{"
                           "\"requestid\":\"" ID "\",\"senderid\":\"\",\"callerid\":\"c=x\","
                           "\"collective\":\"c\",\"agent\":\"a\",\"ttl\":3600,\"time\":0,"
                           "\"filter\":{\"fact\":[],\"cf_class\":[],\"identity\":[],\"compound\":"
                           "[[{\"z\":\"1\",\"expr\":\"with('x')\"}],[]]}}}";
    ch_request r;
    ch_status s = ch_protocol_request_decode(compound, strlen(compound), &r, &err);
    if (s == CH_OK) {
        s = ch_protocol_request_encode(&r, &doc, &len, &err);
        ch_protocol_request_clear(&r);
    }
    emit(REQUEST, s, doc, len, &err);

    /* replies: the worked example, and discovery's bare "pong" with federation copied */
    ch_request_envelope env = {.requestid = ID, .agent = "choria_provision"};
    ch_reply_params rp = {.body = REPLY_BODY,
                          .request = &env,
                          .identity = "n1.example.net",
                          .time = 1718000001,
                          .connected_url = URL};
    emit_reply_payload(&rp);
    ch_request_envelope denv = {.requestid = ping.requestid, .agent = "discovery"};
    ch_reply_params pong = {.body = "pong",
                            .request = &denv,
                            .identity = "n1.example.net",
                            .time = 1718000001,
                            .federation = &fed};
    emit_reply_payload(&pong);

    /* a transport with no headers at all */
    ch_transport bare = {.data = (const unsigned char *)"{}", .data_len = 2};
    s = ch_protocol_transport_encode(&bare, &doc, &len, &err);
    emit(TRANSPORT, s, doc, len, &err);
}

typedef struct {
    int schema;
    const char *doc;
} invalid_doc;

#define ENV "\"senderid\":\"s\",\"callerid\":\"c=x\",\"collective\":\"c\",\"agent\":\"a\""
#define FILTER "\"filter\":{\"fact\":[],\"cf_class\":[],\"identity\":[],\"compound\":[]}"

static const invalid_doc invalid[] = {
    {TRANSPORT, "{\"protocol\":\"choria:transport:2\",\"data\":\"e30=\",\"headers\":{}}"},
    {TRANSPORT, "{\"protocol\":\"choria:transport:1\",\"data\":7,\"headers\":{}}"},
    {SECURE_REQUEST, "{\"protocol\":\"choria:secure:request:1\",\"message\":\"{}\","
                     "\"signature\":\"\",\"pubcert\":\"insecure\"}"},
    {SECURE_REQUEST, "{\"protocol\":\"choria:secure:request:1\",\"message\":\"{}\","
                     "\"signature\":\"insecure\"}"},
    {SECURE_REPLY, "{\"protocol\":\"choria:secure:reply:1\",\"message\":\"{}\"}"},
    {SECURE_REPLY, "{\"protocol\":\"choria:secure:reply:1\",\"message\":\"\",\"hash\":\"x\"}"},
    {REQUEST, "{\"protocol\":\"choria:request:1\",\"message\":\"m\",\"envelope\":{\"requestid\":"
              "\"a1b2c3d4e5f60718293a4b5c6d7e8f9\"," ENV ",\"ttl\":60,\"time\":1," FILTER "}}"},
    {REQUEST, "{\"protocol\":\"choria:request:1\",\"message\":\"m\",\"envelope\":{\"requestid\":"
              "\"" ID "\"," ENV ",\"ttl\":29,\"time\":1," FILTER "}}"},
    {REQUEST, "{\"protocol\":\"choria:request:1\",\"message\":\"m\",\"envelope\":{\"requestid\":"
              "\"" ID "\"," ENV ",\"ttl\":60,\"time\":1,\"filter\":{\"fact\":[{\"fact\":\"a\","
              "\"operator\":\"~=\",\"value\":\"b\"}],\"cf_class\":[],\"identity\":[],"
              "\"compound\":[]}}}"},
    {REQUEST, "{\"protocol\":\"choria:request:1\",\"message\":\"m\",\"envelope\":{\"requestid\":"
              "\"" ID "\"," ENV ",\"ttl\":60,\"time\":1,\"filter\":{\"fact\":[],\"cf_class\":[],"
              "\"identity\":[]}}}"},
    {REPLY, "{\"protocol\":\"choria:reply:1\",\"message\":\"pong\",\"envelope\":{\"requestid\":"
            "\"" ID "\",\"senderid\":\"n1\",\"agent\":\"discovery\",\"time\":\"1\"}}"},
    {REPLY, "{\"protocol\":\"choria:reply:1\",\"message\":\"pong\",\"envelope\":{\"requestid\":"
            "\"" ID "\",\"senderid\":\"n1\",\"agent\":\"\",\"time\":1}}"},
};

/* Our decoder for a schema; secure_reply is checked without the hash (ajv cannot know it). */
static ch_status decode(int schema, const char *doc, ch_error *err)
{
    size_t len = strlen(doc);
    ch_status s = CH_ERR_INTERNAL;
    union {
        ch_transport t;
        ch_secure_request sr;
        ch_secure_reply srep;
        ch_request r;
        ch_reply rep;
    } u;
    switch (schema) {
    case TRANSPORT:
        s = ch_protocol_transport_decode(doc, len, &u.t, err);
        ch_protocol_transport_clear(&u.t);
        break;
    case SECURE_REQUEST:
        s = ch_protocol_secure_request_decode(doc, len, &u.sr, err);
        ch_protocol_secure_request_clear(&u.sr);
        break;
    case SECURE_REPLY:
        s = ch_protocol_secure_reply_decode(doc, len, &u.srep, err);
        ch_protocol_secure_reply_clear(&u.srep);
        /* a hash mismatch alone would not prove the schema rule is enforced */
        if (s == CH_ERR_INVALID && strstr(err->msg, "reply hash mismatch") != NULL)
            s = CH_OK;
        break;
    case REQUEST:
        s = ch_protocol_request_decode(doc, len, &u.r, err);
        ch_protocol_request_clear(&u.r);
        break;
    case REPLY:
        s = ch_protocol_reply_decode(doc, len, &u.rep, err);
        ch_protocol_reply_clear(&u.rep);
        break;
    }
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "emit_protocol: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    emit_valid();
    int n_invalid[5] = {0};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        ch_error err;
        const invalid_doc *d = &invalid[i];
        if (decode(d->schema, d->doc, &err) == CH_OK) {
            fprintf(stderr, "emit_protocol: our %s decoder accepts an invalid document: %s\n",
                    schemas[d->schema], d->doc);
            failures++;
        }
        write_doc(d->schema, "invalid-", ++n_invalid[d->schema], d->doc, strlen(d->doc));
    }
    int total = 0;
    for (int i = 0; i < 5; i++)
        total += counts[i] + n_invalid[i];
    printf("emit_protocol: wrote %d documents (%d transport, %d secure_request, %d secure_reply, "
           "%d request, %d reply) to %s\n",
           total, counts[0] + n_invalid[0], counts[1] + n_invalid[1], counts[2] + n_invalid[2],
           counts[3] + n_invalid[3], counts[4] + n_invalid[4], dir);
    return failures == 0 ? 0 : 1;
}
