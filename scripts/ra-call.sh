#!/usr/bin/env bash
# Calls ra's REST API on a running `make up`, as one of its development officers or as a citizen,
# with a fresh idempotency key on every call (set IDEMPOTENCY_KEY to replay one).
#
#   scripts/ra-call.sh <who> <METHOD> <path> [json body]
#   PKI_API=cardMgmt scripts/ra-call.sh ...   calls card-mgmt's REST API instead (same officers)
#
#   who: registrar, registrar-2, supervisor, card-centre, auditor (officers, client certificates
#        from var/dev/officers), household (the household-registration system), or citizen /
#        public (no client certificate).
# Prints the JSON answer; exits non-zero (after printing it) when ra answers with an error.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
endpoints=${PKI_DEV_STATE_DIR:-$root/var/dev}/endpoints.json
node=$root/var/tools/bin/node
[ -f "$endpoints" ] || { echo "no $endpoints: start the PKI with 'make up' first" >&2; exit 1; }
[ $# -ge 3 ] || { sed -n '2,12p' "$0" >&2; exit 64; }
who=$1 method=$2 path=$3 body=${4:-}
read_endpoint() { "$node" -e 'const v = process.argv[2].split(".").reduce((o, k) => o?.[k], require(process.argv[1])); if (v === undefined) process.exit(1); console.log(v)' "$endpoints" "$1"; }
# A 503 (a dependency not ready yet: right after `make up` restarts on earlier state, ca-signer
# refuses issuance until the audit log has confirmed its earlier events) is retried as Retry-After
# says; a retry carries the same idempotency key, so a POST is never done twice.
args=(--silent --show-error --fail-with-body --retry 6 --retry-max-time 120 --cacert "$(read_endpoint serviceCa)" -X "$method" -H "idempotency-key: ${IDEMPOTENCY_KEY:-$(openssl rand -hex 12)}")
case $who in
  citizen|public) ;;
  *)
    cert=$(read_endpoint "officers.$who.certFile") || { echo "unknown officer '$who' (see officers in $endpoints)" >&2; exit 64; }
    args+=(--cert "$cert" --key "$(read_endpoint "officers.$who.keyFile")") ;;
esac
[ -n "$body" ] && args+=(-H 'content-type: application/json' --data "$body")
status=0
# The answer goes to a file first: curl empties it before a retry, where standard output would
# carry every attempt's body.
answer=$(mktemp)
trap 'rm -f "$answer"' EXIT
curl "${args[@]}" --output "$answer" "$(read_endpoint "http.${PKI_API:-ra}")$path" || status=$?
cat "$answer"
echo
exit $status
