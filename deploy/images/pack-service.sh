#!/usr/bin/env bash
# Packs one service for production into a folder: its compiled code, its migrations and its
# production dependencies only (pnpm deploy --prod), without sources, tests or build files.
# The image build (deploy/images/Dockerfile) runs it, and so does the test that starts each packed
# service and asks its health endpoint (packages/deploy/test/images.test.ts), so that what CI
# proves is what the image holds.
#   deploy/images/pack-service.sh <service> <output folder>     (after `make build`)
set -euo pipefail
service=${1:?usage: pack-service.sh <service> <output folder>}
out=$(realpath -m "${2:?usage: pack-service.sh <service> <output folder>}")
cd "$(dirname "$0")/../.."
[ -f "services/$service/dist/main.js" ] || { echo "pack-service: services/$service/dist/main.js is missing: build first (make build)" >&2; exit 1; }
rm -rf "$out"
# --legacy: pnpm 10 deploys injected workspaces only otherwise; this workspace links its packages.
pnpm --filter "@pki/$service" deploy --legacy --prod --config.confirmModulesPurge=false "$out" >/dev/null
out=$(cd "$out" && pwd -P)
# pnpm's hoisted links can point back into the workspace (the deployed package itself): a link
# leading out of the pack would dangle in the image, and nothing below may follow one.
while IFS= read -r -d '' link; do
  case "$(readlink -f "$link" || true)" in
    "$out"/*) ;;
    *) rm -f "$link" ;;
  esac
done < <(find "$out" -type l -print0)
# The packed workspace packages: real folders inside the pack, stripped of sources and build files.
for dir in "$out" "$out"/node_modules/.pnpm/@pki+*/node_modules/@pki/*; do
  [ -d "$dir" ] && [ ! -L "$dir" ] || continue
  case "$(readlink -f "$dir")" in "$out"|"$out"/*) ;; *) continue ;; esac
  rm -rf "$dir/src" "$dir/test" "$dir"/tsconfig*.json "$dir"/*.tsbuildinfo
done
test -f "$out/dist/main.js"
