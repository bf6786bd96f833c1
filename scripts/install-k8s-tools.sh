#!/usr/bin/env bash
# Builds the local Kubernetes control plane the chart tests install into (deploy/helm, issue 15):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok (a simulated node:
# pods become Running without a container runtime) and helm v4, all from the Go module proxy.
#
# About 15 minutes of compiling on 2 cores from nothing, so the binaries are cached once per
# machine OUTSIDE the clone (like ~/.m2 holds the Kafka jars): $PKI_K8S_TOOLS_CACHE, by default
# ~/.cache/citizen-pki/k8s-tools-<versions>. A fresh clone links var/tools/k8s to that folder; a
# fresh machine builds it once. Two clones bootstrapping at once build it once (a lock).
# shared/design/toolchain.md ("Kubernetes / Helm") has how each recipe was found.
# scripts/bootstrap.sh --with-kafka calls it (make test).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/var/tools

GO_VERSION=1.26.8
ETCD_VERSION=v3.7.3
K8S_VERSION=v1.37.2
# The staging modules (k8s.io/api, client-go, ...) are published as v0.<minor>.<patch>.
K8S_STAGING_VERSION=v0.37.2
KWOK_VERSION=v0.8.0
HELM_VERSION=v4.3.1
# prometheus-operator's CRDs (ServiceMonitor, PrometheusRule), so that the chart's monitoring
# objects are validated by their real schemas in the test cluster. From the Go module proxy: the
# operator's module carries them under example/prometheus-operator-crd.
PROMETHEUS_OPERATOR_VERSION=v0.85.0
RECIPE_REV=1  # bump when the recipe below changes in a way that changes the binaries
NAME="k8s-tools-etcd${ETCD_VERSION}-k8s${K8S_VERSION}-kwok${KWOK_VERSION}-helm${HELM_VERSION}-r${RECIPE_REV}"
CACHE_ROOT=${PKI_K8S_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/citizen-pki}
CACHE=$CACHE_ROOT/$NAME
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)

log() { printf '[install-k8s-tools] %s\n' "$*" >&2; }

link_into_clone() {
  mkdir -p "$TOOLS"
  ln -sfn "$CACHE" "$TOOLS/k8s"
}

# A module's source folder in the Go module cache (downloaded from the proxy when missing).
module_dir() {
  (cd "$(mktemp -d)" && GOFLAGS=-mod=mod GOTOOLCHAIN=local "$1" mod download -json "$2" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
}

# The CRDs go beside the binaries (their own stamp: a cache built before they were added gets them).
fetch_crds() {
  local dest=$1 go_cmd=$2
  [ -f "$dest/crds/.done-$PROMETHEUS_OPERATOR_VERSION" ] && return 0
  local dir
  dir=$(module_dir "$go_cmd" "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
  [ -d "$dir/example/prometheus-operator-crd" ] || { log "prometheus-operator $PROMETHEUS_OPERATOR_VERSION has no example/prometheus-operator-crd"; return 1; }
  mkdir -p "$dest/crds"
  for crd in servicemonitors prometheusrules; do
    cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$crd.yaml" "$dest/crds/"
  done
  chmod -R u+w "$dest/crds"
  touch "$dest/crds/.done-$PROMETHEUS_OPERATOR_VERSION"
}

# Bare kwok exits with "no stages found": its own Stage objects (kustomize/stage in its module)
# make the node Ready and pods Running, Ready, and (Jobs' pods) Succeeded, at once.
KWOK_STAGES=(node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml)
fetch_kwok_stages() {
  local dest=$1 go_cmd=$2
  [ -f "$dest/kwok-stages/.done-$KWOK_VERSION" ] && return 0
  local dir
  dir=$(module_dir "$go_cmd" "sigs.k8s.io/kwok@$KWOK_VERSION")
  rm -rf "$dest/kwok-stages"; mkdir -p "$dest/kwok-stages"
  for f in "${KWOK_STAGES[@]}"; do
    [ -f "$dir/kustomize/stage/$f" ] || { log "kwok $KWOK_VERSION has no kustomize/stage/$f"; return 1; }
    cp "$dir/kustomize/stage/$f" "$dest/kwok-stages/"
  done
  chmod -R u+w "$dest/kwok-stages"
  touch "$dest/kwok-stages/.done-$KWOK_VERSION"
}

if [ -f "$CACHE/.done" ] && [ -f "$CACHE/crds/.done-$PROMETHEUS_OPERATOR_VERSION" ] && [ -f "$CACHE/kwok-stages/.done-$KWOK_VERSION" ]; then
  link_into_clone
  exit 0
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/$NAME.lock"
if ! flock -n 9; then
  log "another clone is building the control plane binaries; waiting for it"
  flock 9
fi
# --- Go ------------------------------------------------------------------------------------------
# The Kubernetes modules need Go >= 1.26. The Go toolchain is itself published on the module proxy
# (golang.org/toolchain, what GOTOOLCHAIN downloads), so a machine without a recent Go gets one
# from the same place as everything else here, into the cache.
go_ok() {
  local v
  v=$("$1" env GOVERSION 2>/dev/null) || return 1
  v=${v#go}
  [ "$(printf '%s\n%s\n' "$GO_VERSION" "$v" | sort -V | head -n1)" = "$GO_VERSION" ]
}
GO=""
for candidate in "$(command -v go || true)" /usr/local/go/bin/go; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && go_ok "$candidate"; then GO=$candidate; break; fi
done
if [ -z "$GO" ]; then
  GOROOT_DIR=$CACHE_ROOT/go$GO_VERSION
  if [ ! -x "$GOROOT_DIR/bin/go" ]; then
    log "installing Go $GO_VERSION from the Go module proxy (golang.org/toolchain)"
    arch=$(uname -m); case "$arch" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
    tmp=$(mktemp -d)
    curl -fsSL -o "$tmp/go.zip" "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-$arch.zip"
    (cd "$tmp" && python3 -m zipfile -e go.zip x)
    rm -rf "$GOROOT_DIR"
    mv "$tmp/x/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-$arch" "$GOROOT_DIR"
    chmod -R u+w "$GOROOT_DIR"; chmod +x "$GOROOT_DIR"/bin/* "$GOROOT_DIR"/pkg/tool/*/*
    rm -rf "$tmp"
  fi
  GO=$GOROOT_DIR/bin/go
fi
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
if [ -f "$CACHE/.done" ]; then
  fetch_crds "$CACHE" "$GO"
  fetch_kwok_stages "$CACHE" "$GO"
  link_into_clone
  exit 0
fi
log "building etcd $ETCD_VERSION, Kubernetes $K8S_VERSION, kwok $KWOK_VERSION and helm $HELM_VERSION with $("$GO" env GOVERSION) into $CACHE (about 15 min on 2 cores, once per machine)"
started=$(date +%s)

BUILD=$CACHE.build
rm -rf "$BUILD" "$CACHE"
mkdir -p "$BUILD/bin" "$BUILD/etcd" "$BUILD/k8s"
# Compiling is a background chore on a shared machine: let tests and editors go first.
NICE=(nice -n 10)

# --- etcd: `go install go.etcd.io/etcd/server/v3@...` is refused (its go.mod has replace
# directives), so a wrapper module requires it and builds it.
(
  cd "$BUILD/etcd"
  "$GO" mod init pki.local/etcd-wrapper >/dev/null 2>&1
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  "$GO" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  "$GO" mod tidy
  "${NICE[@]}" "$GO" build -trimpath -ldflags '-s -w' -o "$BUILD/bin/etcd" go.etcd.io/etcd/server/v3
)
log "etcd built ($(( $(date +%s) - started )) s)"

# --- Kubernetes: the same refusal; the wrapper pins every staging module k8s.io/kubernetes's own
# go.mod replaces with a local path to its published v0.x version (the two samples are not
# published at that version and nothing here needs them).
(
  cd "$BUILD/k8s"
  gomod=$("$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$gomod" ] || { log "cannot find k8s.io/kubernetes@$K8S_VERSION's go.mod"; exit 1; }
  {
    echo "module pki.local/k8s-wrapper"
    echo
    echo "go $("$GO" env GOVERSION | sed 's/^go//')"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$gomod" |
      grep -v -E '^k8s.io/sample-(cli-plugin|controller)$' |
      while read -r m; do echo "replace $m => $m $K8S_STAGING_VERSION"; done
  } > go.mod
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    printf ')\n'
  } > tools.go
  "$GO" mod tidy
  # Without the stamp /version answers v0.0.0-master and helm's kubeVersion checks misjudge it.
  major=${K8S_VERSION#v}; major=${major%%.*}
  minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  "${NICE[@]}" "$GO" build -trimpath -ldflags "$ldflags" -o "$BUILD/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
)
log "Kubernetes built ($(( $(date +%s) - started )) s)"

# --- kwok and helm install directly.
GOBIN="$BUILD/bin" "${NICE[@]}" "$GO" install -trimpath -ldflags '-s -w' "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
GOBIN="$BUILD/bin" "${NICE[@]}" "$GO" install -trimpath "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
log "kwok and helm built ($(( $(date +%s) - started )) s)"

# Prove each binary runs before the cache is declared complete.
for b in "${BINARIES[@]}"; do
  [ -x "$BUILD/bin/$b" ] || { log "$b was not built"; exit 1; }
done
"$BUILD/bin/kube-apiserver" --version | grep -q "$K8S_VERSION"
"$BUILD/bin/etcd" --version >/dev/null
"$BUILD/bin/helm" version >/dev/null
fetch_crds "$BUILD" "$GO"
fetch_kwok_stages "$BUILD" "$GO"
rm -rf "$BUILD/etcd" "$BUILD/k8s"
echo "built in $(( $(date +%s) - started )) s with $("$GO" env GOVERSION) on $(date -u +%FT%TZ)" > "$BUILD/.done"
mv "$BUILD" "$CACHE"
link_into_clone
log "done in $(( $(date +%s) - started )) s"
