#!/usr/bin/env bash
# Onboards an agency application system on a running `make up` and calls the identity
# confirmation as that system (mTLS + a signed body, JSON and XML), then reads the statistics.
# Every step is what an agency and a programme supervisor would type (README: "Agency application
# systems"). Usage: scripts/agency-example.sh [system id]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
endpoints=${PKI_DEV_STATE_DIR:-$root/var/dev}/endpoints.json
node=$root/var/tools/bin/node
[ -f "$endpoints" ] || { echo "no $endpoints: start the PKI with 'make up' first" >&2; exit 1; }
field() { "$node" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(process.argv[1].split(".").reduce((o,k)=>o?.[k],JSON.parse(s))))' "$1"; }
endpoint() { field "$1" < "$endpoints"; }
SYSTEM=${1:-DEMO-$(date +%s)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. The agency makes its key pair and a certificate request (any subject: ra sets the subject).
openssl req -new -newkey rsa:2048 -nodes -keyout "$work/agency.key" -subj "/CN=$SYSTEM" -out "$work/agency.csr" 2>/dev/null

# 2. A supervisor onboards the system; ca-signer issues its certificate (agencyClient profile).
BODY=$("$node" -e 'const fs=require("fs");console.log(JSON.stringify({id:process.argv[1],agency:"財政部財政資訊中心",name:"綜合所得稅結算申報",sector:"GOVERNMENT",contact:{name:"Service desk",email:"desk@example.gov.tw"},csr:fs.readFileSync(process.argv[2],"utf8")}))' "$SYSTEM" "$work/agency.csr")
scripts/ra-call.sh supervisor POST /v1/agency-systems "$BODY" > "$work/system.json"
field credentials.0.certificate < "$work/system.json" > "$work/agency.crt"
SIGNER="$(field credentials.0.issuerKeyId < "$work/system.json"):$(field credentials.0.serialHex < "$work/system.json")"
openssl x509 -in "$work/agency.crt" -noout -subject -nameopt utf8,sep_comma_plus_space

# 3. Identity confirmation: the body signed with the system's key (detached, SHA-256), sent over
#    mutual TLS with the system's certificate. Unknown people answer code 2.
RA=$(endpoint http.ra)
confirm() { # <body file> <content type>
  openssl dgst -sha256 -sign "$work/agency.key" -out "$work/body.sig" "$1"
  curl --silent --show-error --cacert "$(endpoint serviceCa)" --cert "$work/agency.crt" --key "$work/agency.key" \
    -H "content-type: $2" -H "Pki-Signer: $SIGNER" -H "Pki-Signature: $(base64 -w0 "$work/body.sig")" \
    --data-binary @"$1" "$RA/v1/identity-confirmations"
  echo
}
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cat > "$work/request.json" <<JSON
{"nonce":"$(openssl rand -hex 16)","requestTime":"$NOW","records":[{"seq":1,"serialNumber":"1234567890123456","nationalId":"A123456789"},{"seq":2,"serialNumber":"1234567890123457","nationalId":"B223456782","birthDate":"1980-02-29"}]}
JSON
confirm "$work/request.json" application/json
cat > "$work/request.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<IdentityConfirmationRequest><nonce>$(openssl rand -hex 16)</nonce><requestTime>$NOW</requestTime><records><record><seq>1</seq><serialNumber>1234567890123456</serialNumber><nationalId>A123456789</nationalId></record></records></IdentityConfirmationRequest>
XML
confirm "$work/request.xml" application/xml
# The same bytes again: refused as a replay (409, REPLAYED_NONCE).
confirm "$work/request.xml" application/xml

# 4. The usage statistics (officers) and the open data (anyone).
scripts/ra-call.sh supervisor GET "/v1/statistics/usage?year=$(date -u +%Y)" | field totals
scripts/ra-call.sh public GET /v1/public/open-data/usage-by-year.csv
echo "chart page: $RA/v1/public/statistics/charts.html"
