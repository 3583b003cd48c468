#!/bin/sh
# Regenerates the TLS test fixtures (ECDSA P-256, valid 100 years). Run from this directory.
set -eu
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -sha256 -days 36500 -subj "/CN=Rustcore Test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
leaf() { # name, SAN list, key format (pkcs8|sec1)
  openssl ecparam -name prime256v1 -genkey -noout -out "$1.sec1.key"
  if [ "$3" = pkcs8 ]; then openssl pkcs8 -topk8 -nocrypt -in "$1.sec1.key" -out "$1.key"; rm "$1.sec1.key";
  else mv "$1.sec1.key" "$1.key"; fi
  openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 36500 -sha256 -extfile "$1.ext" -out "$1.leaf.pem"
  cat "$1.leaf.pem" ca.pem > "$1.chain.pem"
  rm "$1.csr" "$1.ext" "$1.leaf.pem"
}
leaf default "DNS:localhost,DNS:s3.rustcore.test" pkcs8
leaf bucket "DNS:*.bucket.rustcore.test" sec1
leaf rotated "DNS:localhost,DNS:s3.rustcore.test" pkcs8
rm -f ca.srl
# A signature made by OpenSSL, for the ECDSA verify known-answer test.
printf 'rustcore ecdsa kat' > ecdsa-msg.bin
openssl dgst -sha256 -sign default.key -out ecdsa-msg.sig ecdsa-msg.bin
openssl ec -in default.key -pubout -conv_form uncompressed -outform DER 2>/dev/null | tail -c 65 > default.pub.sec1
