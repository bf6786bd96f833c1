#!/usr/bin/env bash
# card-mgmt at the counter against a running `make up`, as the README walks it: a chip from the
# supplier (a SoftHSM token of its own, never the CA's), the card centre's batch and the office's
# stock, personalisation through the workstation client (keys generated on the card, both
# certificates issued by ra and ca-signer and written to the card), OpenSSL's check, hand-over,
# activation with a new PIN, PIN unlock with the subscriber code, a phone bound through the card,
# a reported loss, and the day's reconciliation.
set -euo pipefail
cd "$(dirname "$0")/.."
state=$(realpath "${PKI_DEV_STATE_DIR:-var/dev}")
node=var/tools/bin/node
ws() { "$node" packages/workstation/dist/cli.js "$@"; }
call() { PKI_API=cardMgmt scripts/ra-call.sh "$@"; }
endpoint() { "$node" -e 'console.log(process.argv[2].split(".").reduce((o, k) => o?.[k], require(process.argv[1])))' "$state/endpoints.json" "$1"; }
json() { "$node" -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { const v = process.argv[1].split(".").reduce((o, k) => o?.[k], JSON.parse(s)); console.log(typeof v === "string" ? v : JSON.stringify(v)); })' "$1"; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
step() { printf '\n== %s\n' "$*"; }
officer=(--api "$(endpoint http.cardMgmt)" --ca "$(endpoint serviceCa)" --cert "$(endpoint officers.registrar.certFile)" --key "$(endpoint officers.registrar.keyFile)")
card=DEMO$(date +%s)

step "1. the supplier makes a blank chip into card $card (its own SoftHSM token) and lists it in its manifest"
mkdir -p "$work/chip/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/chip/tokens" > "$work/chip/softhsm2.conf"
export SOFTHSM2_CONF=$work/chip/softhsm2.conf
ws supply --card "$card" --transport-key-file "$state/secrets/card-mgmt-transport.key" > "$work/manifest.json"
cat "$work/manifest.json" | cut -c1-120

step "2. the card centre receives the batch and supplies office 63000000"
call card-centre POST /v1/batches "{\"batchId\":\"B-$card\",\"supplier\":\"Chip Co\",\"cards\":[$(cat "$work/manifest.json")]}"
call card-centre POST /v1/assignments "{\"office\":\"63000000\",\"cardNumbers\":[\"$card\"]}" | json cards.0.state

step "3. the registrar registers the citizen in ra"
national_id=$("$node" -e 'const { withCheckDigit } = require("./services/ra/dist"); const n = String(Math.floor(Math.random() * 1e7)).padStart(7, "0"); console.log(withCheckDigit("F2" + n))')
subscriber=$(scripts/ra-call.sh registrar POST /v1/subscribers "{\"nationalId\":\"$national_id\",\"name\":\"林美𠀋\",\"birthDate\":\"1985-07-14\",\"subscriberCode\":\"lin2024code\",\"publicationConsent\":false}" | json subscriberId)
echo "subscriber $subscriber"

step "4. personalisation at the counter: the card generates its keys, ra issues both certificates, the client writes them to the card"
ws personalise "${officer[@]}" --card "$card" --subscriber "$subscriber" --birth-date 1985-07-14 --out "$work/out" | json certificates

step "5. OpenSSL checks both certificates against the chain; the keys on the card are not extractable"
for slot in SIGN KEYX; do
  "$node" -e 'const c = require("fs").readFileSync(process.argv[1], "utf8").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g); require("fs").writeFileSync(process.argv[2], c.at(-1)); require("fs").writeFileSync(process.argv[3], c.slice(0, -1).join(""))' "$work/out/$card-$slot-chain.pem" "$work/root.pem" "$work/untrusted.pem"
  openssl verify -CAfile "$work/root.pem" -untrusted "$work/untrusted.pem" "$work/out/$card-$slot.pem"
done
PKI_CARD_PIN=19850714 ws show --card "$card" | json SIGN.privateKey

step "6. hand-over, and activation once the citizen has chosen a new PIN"
ws hand-over "${officer[@]}" --card "$card" | json state
PKI_CARD_PIN=19850714 PKI_CARD_NEW_PIN=246813 ws activate "${officer[@]}" --card "$card" | json state

step "7. PIN unlock: the subscriber code releases the card's administrative secret; the PIN is reset on the card"
PKI_SUBSCRIBER_CODE=lin2024code PKI_CARD_NEW_PIN=975310 ws unlock "${officer[@]}" --card "$card"
PKI_CARD_PIN=975310 ws show --card "$card" | json pinWorks

step "8. a phone (its P-256 key) bound through the card and the subscriber code"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/phone.pem" 2>/dev/null
PKI_CARD_PIN=975310 PKI_SUBSCRIBER_CODE=lin2024code ws mobile-enrol --api "$(endpoint http.cardMgmt)" --ca "$(endpoint serviceCa)" --card "$card" --device-key "$work/phone.pem" --device-name "my phone" | json serialHex
call registrar GET "/v1/cards/$card/devices" | json devices

step "9. the card is reported lost: ra suspends its certificates at once"
ws report-lost "${officer[@]}" --card "$card" | json state
scripts/ra-call.sh registrar GET "/v1/cards/$card" | json status

step "10. the office's inventory and today's reconciliation (Taipei's day)"
call registrar GET /v1/inventory
call auditor GET "/v1/reports/daily?date=$(TZ=Asia/Taipei date +%F)&office=63000000"
