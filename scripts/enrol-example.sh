#!/usr/bin/env bash
# Enrols one citizen signature certificate against a running `make up` and checks it with OpenSSL.
# A software key pair stands in for the card's on-card key.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/var/tools/bin:$PATH"
endpoints=var/dev/endpoints.json
[ -f "$endpoints" ] || { echo "no $endpoints: start the PKI with 'make up' first" >&2; exit 1; }
ra=$(node -p "require('./$endpoints').http.ra")
chain=$(node -p "require('./$endpoints').caCertificates.chain")
root=$(node -p "require('./$endpoints').caCertificates.root")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

serial=$(printf '%016d' $((RANDOM * RANDOM)))
openssl req -new -newkey rsa:2048 -nodes -keyout "$work/card.key" -utf8 \
  -subj "/C=TW/CN=王小明/serialNumber=$serial" -out "$work/card.csr" 2>/dev/null
body=$(node -e 'process.stdout.write(JSON.stringify({ csr: require("fs").readFileSync(process.argv[1], "utf8"), profile: "citizen-signature" }))' "$work/card.csr")
curl -sS -o "$work/response.json" -w '%{http_code}\n' -H 'content-type: application/json' \
  -H "idempotency-key: example-$serial" --data "$body" "$ra/v1/enrolments" > "$work/status"
status=$(cat "$work/status")
if [ "$status" != "201" ]; then echo "enrolment failed (HTTP $status):" >&2; cat "$work/response.json" >&2; echo >&2; exit 1; fi
node -e 'const r = require(process.argv[1]); require("fs").writeFileSync(process.argv[2], r.certificate); console.log(`serial ${r.serialHex}, issuer key ${r.issuerKeyId}, valid until ${r.notAfter}`)' "$work/response.json" "$work/cert.pem"
openssl x509 -in "$work/cert.pem" -noout -subject -issuer -nameopt utf8,sep_comma_plus_space
openssl verify -CAfile "$root" -untrusted "$chain" "$work/cert.pem"
