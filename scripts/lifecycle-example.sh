#!/usr/bin/env bash
# The whole citizen-certificate lifecycle against a running `make up`, as the README walks it:
# register a citizen, apply with a card's two key pairs, issue, activate, suspend and resume (at
# the counter and by self-service), revoke under dual control, and look the card up in the public
# repository. OpenSSL checks the certificates. Key pairs made by OpenSSL stand in for the card.
set -euo pipefail
cd "$(dirname "$0")/.."
call=scripts/ra-call.sh
node=var/tools/bin/node
json() { "$node" -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { const v = process.argv[1].split(".").reduce((o, k) => o?.[k], JSON.parse(s)); console.log(typeof v === "string" ? v : JSON.stringify(v)); })' "$1"; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "1. a card's two key pairs (SIGN and KEYX) and their requests (OpenSSL stands in for the card)"
for slot in sign keyx; do
  openssl req -new -newkey rsa:2048 -nodes -keyout "$work/$slot.key" -subj "/CN=card" -out "$work/$slot.csr" 2>/dev/null
done
echo "made $work/sign.csr and $work/keyx.csr"

step "2. the registrar registers the citizen (personal data is encrypted at rest)"
# A valid national ID: the letter and nine digits, the last a check digit (A123456789 is the
# ministry's own example). Make a fresh one each run so the example can be repeated.
national_id=$("$node" -e 'const { withCheckDigit } = require("./services/ra/dist"); const n = String(Math.floor(Math.random() * 1e7)).padStart(7, "0"); console.log(withCheckDigit("F2" + n))')
subscriber=$($call registrar POST /v1/subscribers "{\"nationalId\":\"$national_id\",\"name\":\"林美𠀋\",\"birthDate\":\"1985-07-14\",\"email\":\"lin@example.tw\",\"subscriberCode\":\"lin2024code\",\"publicationConsent\":true}" | json subscriberId)
echo "subscriber $subscriber"

step "3. the application, with the card's requests (their subject is ignored: ra builds it)"
card=TP$(date +%s)$(printf '%04d' $((RANDOM % 10000)))
body=$("$node" -e 'const fs = require("fs"); console.log(JSON.stringify({ subscriberId: process.argv[1], cardNumber: process.argv[2], kind: "NEW", signingCsr: fs.readFileSync(process.argv[3], "utf8"), encryptionCsr: fs.readFileSync(process.argv[4], "utf8") }))' "$subscriber" "$card" "$work/sign.csr" "$work/keyx.csr")
application=$($call registrar POST /v1/applications "$body" | json id)
echo "application $application for card $card"

step "4. approval: ca-signer issues both certificates"
$call registrar POST "/v1/applications/$application/approval" > "$work/issued.json"
"$node" -e 'const r = require(process.argv[1]); const fs = require("fs"); for (const c of r.card.certificates) { fs.writeFileSync(`${process.argv[2]}/${c.keySlot}.pem`, c.certificate); fs.writeFileSync(`${process.argv[2]}/chain.pem`, c.chain[0]); fs.writeFileSync(`${process.argv[2]}/root.pem`, c.chain[1]); console.log(`${c.keySlot} ${c.serialHex} ${c.status} until ${c.notAfter}`); }' "$work/issued.json" "$work"
for slot in SIGN KEYX; do
  openssl x509 -in "$work/$slot.pem" -noout -subject -nameopt utf8,sep_comma_plus_space
  openssl verify -CAfile "$work/root.pem" -untrusted "$work/chain.pem" "$work/$slot.pem"
done

step "5. the citizen confirms receipt: the card is activated"
$call registrar POST "/v1/cards/$card/activation" '{}' | json status

step "6. suspension and resumption at the counter (both certificates move together)"
$call registrar POST "/v1/cards/$card/suspension" '{"comment":"reported lost"}' | json status
$call registrar POST "/v1/cards/$card/resumption" '{}' | json status

step "7. self-service: the citizen suspends and resumes with the card number and subscriber code"
$call citizen POST /v1/self-service/suspension "{\"cardNumber\":\"$card\",\"subscriberCode\":\"lin2024code\"}" | json status
$call citizen POST /v1/self-service/resumption "{\"cardNumber\":\"$card\",\"subscriberCode\":\"lin2024code\"}" | json status

step "8. revocation under dual control: one registrar requests, a second approves"
request=$($call registrar POST "/v1/cards/$card/revocation" '{"reason":"keyCompromise","comment":"card stolen"}' | json approvalRequestId)
echo "approval request $request"
$call registrar-2 POST "/v1/approvals/$request/decision" '{"decision":"approve"}' | json card.status

step "9. the public repository (the citizen consented to publication)"
$call public GET "/v1/public/cards/$card/certificates"
