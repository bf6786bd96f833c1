#!/usr/bin/env bash
# Installs pkilint (DigiCert's independent X.509 / CRL / OCSP linter, from PyPI) into a
# project-local virtual environment, var/tools/pkilint, and links the CLIs the tests use into
# var/tools/bin. Idempotent: a second run with the same pinned version does nothing.
# Tests use it as the checker that does not share code with the CA (docs/pkilint.md);
# scripts/bootstrap.sh --with-kafka calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/var/tools
VENV=$TOOLS/pkilint
# Pinned: a new pkilint release may add validators, and the dispositions in docs/pkilint.md are
# for this version. Bump deliberately and re-read the findings.
PKILINT_VERSION=0.13.3
STAMP=$VENV/.done-$PKILINT_VERSION
PYTHON=${PYTHON:-python3}

log() { printf '[install-pkilint] %s\n' "$*" >&2; }

if [ ! -f "$STAMP" ]; then
  if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' 2>/dev/null; then
    log "pkilint $PKILINT_VERSION needs Python 3.9 or later ($PYTHON is missing or too old)"
    exit 1
  fi
  log "installing pkilint $PKILINT_VERSION into var/tools/pkilint"
  rm -rf "$VENV"
  mkdir -p "$TOOLS/bin"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "pkilint==$PKILINT_VERSION"
  # Prove the install works before stamping it.
  "$VENV/bin/lint_pkix_cert" --help >/dev/null
  touch "$STAMP"
fi

mkdir -p "$TOOLS/bin"
for cli in lint_pkix_cert lint_pkix_signer_signee_cert_chain lint_crl lint_ocsp_response; do
  ln -sf "$VENV/bin/$cli" "$TOOLS/bin/$cli"
done
