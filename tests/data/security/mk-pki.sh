#!/bin/sh
# The test PKI of the project's security specification (section 6.0, tool T1), for
# tests/unit/test_security_x509.c: roots ca and otherca; clients rip, provisioner, admin
# (privileged), n1, bob, serveronly (serverAuth only), stranger (issued by otherca), expired
# (2020-01-01..02), ec (P-256), chained (issued by the intermediate inter; chained-bundle.pem is
# leaf + intermediate); broker. Test material only.
#
# Usage: mk-pki.sh OUTPUT_DIR. Everything, temporary files included, is written into
# OUTPUT_DIR (created when missing), never into the source tree.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUTPUT_DIR" >&2; exit 2; }
mkdir -p "$1"
cd "$1"
days=30
ca() { openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout "$1.key" -out "$1.pem" \
        -subj "$2" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null; }
leaf() { # name CN SAN EKU [issuer]
  cak=${5:-ca}
  openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\nsubjectAltName=%s\n' "$4" "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$cak.pem" -CAkey "$cak.key" -CAcreateserial -days $days -sha256 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"; }
ca ca "/CN=Choria Test CA"
ca otherca "/CN=Other CA"
leaf broker localhost "DNS:localhost,IP:127.0.0.1" "serverAuth,clientAuth"
leaf rip rip.mcollective "DNS:rip.mcollective" clientAuth
leaf provisioner provisioner.mcollective "DNS:provisioner.mcollective" clientAuth
leaf admin admin.privileged.mcollective "DNS:admin.privileged.mcollective" clientAuth
leaf n1 n1.example.net "DNS:n1.example.net" "serverAuth,clientAuth"
leaf bob bob.example.net "DNS:bob.example.net" clientAuth
leaf serveronly srv.mcollective "DNS:srv.mcollective" serverAuth
leaf stranger rip.mcollective "DNS:rip.mcollective" clientAuth otherca
mkdir -p ca.db && : > ca.db/index.txt && echo 1000 > ca.db/serial          # expired: openssl ca can back-date
cat > ca.cnf <<CNF
[ ca ]
default_ca = d
[ d ]
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
default_md = sha256
policy = p
unique_subject = no
[ p ]
commonName = supplied
[ x ]
basicConstraints=CA:FALSE
extendedKeyUsage=clientAuth
subjectAltName=DNS:rip.mcollective
CNF
openssl req -new -newkey rsa:2048 -nodes -keyout expired.key -out expired.csr -subj "/CN=rip.mcollective" 2>/dev/null
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -extensions x \
  -startdate 20200101000000Z -enddate 20200102000000Z -in expired.csr -out expired.pem 2>/dev/null
rm -rf expired.csr ca.db ca.cnf
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ec.key -out ec.csr -subj "/CN=ec.mcollective" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nsubjectAltName=DNS:ec.mcollective\n' > ec.ext
openssl x509 -req -in ec.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days $days -sha256 -extfile ec.ext -out ec.pem 2>/dev/null
rm -f ec.csr ec.ext
openssl req -new -newkey rsa:2048 -nodes -keyout inter.key -out inter.csr -subj "/CN=Choria Test Intermediate" 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' > inter.ext
openssl x509 -req -in inter.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -sha256 -extfile inter.ext -out inter.pem 2>/dev/null
rm -f inter.csr inter.ext
leaf chained chained.mcollective "DNS:chained.mcollective" clientAuth inter
cat chained.pem inter.pem > chained-bundle.pem
