/* What the provisioner checks in the CSR a node sends before a helper may sign it: its own
 * signature, a common name equal to the node's identity, and no name (CN or DNS SAN) on the
 * cert_deny_list. OpenSSL 3 only; no state besides a compiled deny list, which is read-only
 * after prov_csr_deny_compile and may be shared by every worker. */
#ifndef PROV_CSR_H
#define PROV_CSR_H

#include "choria/common.h"

#define PROV_CSR_MAX_DENY_PATTERN 1024

typedef struct prov_csr_deny prov_csr_deny;

/* Compiles cert_deny_list: POSIX extended regular expressions, unanchored as Go's
 * MatchString; a pattern written /re/ loses its slashes. Go's RE2 syntax beyond POSIX ERE
 * (\d, (?i), ...) is refused with an error naming the pattern. */
ch_status prov_csr_deny_compile(char *const *patterns, size_t n, prov_csr_deny **out,
                                ch_error *err);
void prov_csr_deny_free(prov_csr_deny *d);

/* The node's CSR, as upstream validateCSR plus a signature check: "no CSR received", "invalid
 * CSR: not a PEM certificate request", "CSR signature does not verify", "common name %s does
 * not match identity %s", "%s matches denied certificate pattern" (CN and every DNS SAN).
 * deny may be NULL. */
ch_status prov_csr_check(const char *pem, size_t len, const char *identity,
                         const prov_csr_deny *deny, ch_error *err);

#endif
