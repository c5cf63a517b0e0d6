/* Fuzzes x509 request verification: arbitrary bytes as pubcert, signature and callerid of a
 * fixed message (the specification's worked example) against the fixture CA of the
 * specification's Appendix A, at a fixed time inside its validity. The input is split at NUL
 * bytes: pubcert, then signature, then callerid (default "choria=rip.mcollective"). Nothing may
 * crash, and every refusal must say why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "choria/security_x509.h"

/* tests/data/security/ca.pem: fuzz targets are built without CH_TEST_DATA. */
static const char CA_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIC8jCCAdqgAwIBAgICEAAwDQYJKoZIhvcNAQELBQAwGTEXMBUGA1UEAwwOQ2hv\n"
                             "cmlhIFRlc3QgQ0EwIBcNMjUwMTAxMDAwMDAwWhgPMjEyNTAxMDEwMDAwMDBaMBkx\n"
                             "FzAVBgNVBAMMDkNob3JpYSBUZXN0IENBMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n"
                             "MIIBCgKCAQEAyaxE4LPH8dYJHyC0fWVIqh2u1GfQGB3gUYPwPRtY0F5n7MHMK3F1\n"
                             "D9RtKJdttSr8KTUH57Gr+NBUK0u9iAL5C27ECMWLZma8jgS0ZLy7AewHTxjDQ2zw\n"
                             "BPEYUaPurncJA5TTDFYMlkTdssK7V5kuWRplDNFJPZGwbc72EvH3DOdW7/b8udJN\n"
                             "QBDRGLgLqFTnBmtmTbZuzQszguVhwOu0QUrZDrGSogxUXzpEJheCqNj0fgZ6WoJt\n"
                             "HM7FhF0kFZm5l64Ew9II/6IV7Bbw2lJktlzc3j3Hks7eXIochmXmd6BxMZS4qGjP\n"
                             "S50PfC+QJefa+wADik2ihOxg0401RV6HNwIDAQABo0IwQDAPBgNVHRMBAf8EBTAD\n"
                             "AQH/MA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQUdgh9xsIE0fjFBq1zmU5KsJnB\n"
                             "AkQwDQYJKoZIhvcNAQELBQADggEBAJNcb6yjlqVcXZOa8yVCwNj5K2UImCoGhoNq\n"
                             "QkpTWkykdg3siMJpquxc8L43y31vhOJVBxfvUQ2N2yl6ZoWt6TQQgAE63t5vhH6H\n"
                             "7CMHJVq6yT95o9RGDMVRDI/et5P/bVg/wzOVKIqEoGSXnZEBoEkWl8lbS/1fzqA3\n"
                             "gv6Zhs+kyIU/yK508rFjMZOUn+r7zN/qswxl2B1sGG6LeeNTDfKEbE+Eior5HqZ/\n"
                             "mLGyaaKXwOFyTjcdpdPQr4WjosxXx6PXRTd7rj8ttI73wVI7drOuFt5NHHUNuO/e\n"
                             "yesK+NAtFft+UfQkekNoWDlTXAmXms0EGlmqQ9mPT/V/v1MfMgk=\n"
                             "-----END CERTIFICATE-----\n";

static const char MESSAGE[] =
    "{\"protocol\":\"choria:request:1\",\"message\":\"{\\\"agent\\\":\\\"rpcutil\\\","
    "\\\"action\\\":"
    "\\\"ping\\\",\\\"data\\\":{}}\",\"envelope\":{\"requestid\":\"0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    "\",\"senderid\":\"admin.example.net\",\"callerid\":\"choria=rip.mcollective\",\"collective\":"
    "\"mcollective\",\"agent\":\"rpcutil\",\"ttl\":60,\"time\":1750000000,\"filter\":{\"fact\":[],"
    "\"cf_class\":[],\"agent\":[],\"identity\":[],\"compound\":[]}}}";

static ch_security *sec;

static int64_t fixed_clock(void)
{
    return 1750000000;
}

/* The provider reads its CA file once, at creation; the file goes again at once. */
static void init(void)
{
    char path[] = "/tmp/fuzz-x509-ca-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, CA_PEM, sizeof(CA_PEM) - 1) != (ssize_t)(sizeof(CA_PEM) - 1))
        abort();
    close(fd);
    ch_security_x509_opts o = {.ca_file = path, .verify = true, .now = fixed_clock};
    ch_error err;
    ch_status st = ch_security_x509_new(&o, &sec, &err);
    unlink(path);
    if (st != CH_OK)
        abort();
}

/* The next NUL-terminated part of data[*pos..size), malloc'd; NULL when none is left. */
static char *next_part(const uint8_t *data, size_t size, size_t *pos)
{
    if (*pos > size)
        return NULL;
    const uint8_t *start = data + *pos, *nul = memchr(start, 0, size - *pos);
    size_t len = nul != NULL ? (size_t)(nul - start) : size - *pos;
    *pos += len + 1;
    char *s = malloc(len + 1);
    if (s == NULL)
        abort();
    memcpy(s, start, len);
    s[len] = '\0';
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sec == NULL)
        init();
    size_t pos = 0;
    char *pubcert = next_part(data, size, &pos);
    char *signature = next_part(data, size, &pos);
    char *callerid = next_part(data, size, &pos);
    ch_error err = {0};
    ch_status st =
        ch_security_verify(sec, MESSAGE, sizeof(MESSAGE) - 1, signature != NULL ? signature : "",
                           pubcert, callerid != NULL ? callerid : "choria=rip.mcollective", &err);
    if (st != CH_OK && (err.msg[0] == '\0' || (st != CH_ERR_INVALID && st != CH_ERR_NOMEM)))
        abort();
    free(pubcert);
    free(signature);
    free(callerid);
    return 0;
}
