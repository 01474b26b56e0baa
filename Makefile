# keyescrow — build, test and demo. Every target installs what it needs.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: build test demo bench deps tools-s3 tools-azurite tools-staticcheck vet fmt fuzz windows release-check clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o .tools/bin/keyescrow ./cmd/keyescrow

# The whole test suite: unit, conformance (also against versitygw and MinIO
# over HTTPS), stand-in, FreeTDS cross-check and black-box tests of the
# built binary. No AWS_*/KEYESCROW_* variable of the
# machine leaks into the tests (a real SQL Server is used only when
# KEYESCROW_TEST_SQLSERVER_DSN is passed on purpose, see docs/testing.md).
test: deps tools-s3 tools-azurite
	env -u AWS_CA_BUNDLE -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_REGION \
	  -u AZURE_CLIENT_ID -u AZURE_TENANT_ID -u AZURE_CLIENT_SECRET -u AZURE_FEDERATED_TOKEN_FILE -u AZURE_AUTHORITY_HOST \
	  $(GO) test -race -count=1 -timeout 30m ./...

# The main job: `keyescrow backup` against the TDS stand-in, versitygw (S3
# with Object Lock over HTTPS) and a local folder, all started here by PID;
# prints the receipt and checks it, then verify and restore. Installs
# versitygw only; removes its temporary folder unless DEMO_KEEP=1.
demo:
	bash deploy/dev/demo.sh

# The performance benchmark (docs/performance.md), run by hand only: installs
# hyperfine, awscli, rclone and GNU time when missing, starts versitygw and
# MinIO over HTTPS, the TDS stand-in and a counting proxy, and prints one
# table of keyescrow against the limit program, awscli and rclone.
bench:
	bash deploy/dev/bench.sh

# Debian packages the suite uses (FreeTDS tsql, systemd-analyze, Wine and
# mingw for the Windows build), installed only when missing; Go modules.
deps:
	bash deploy/dev/debian-deps.sh
	$(GO) mod download

# Azurite 3.37.0 (pinned by deploy/dev/azurite/package-lock.json) into
# .tools/azurite with npm ci; installs Debian's nodejs/npm when node is
# missing. The Azure Blob tests start and stop it themselves.
tools-azurite:
	bash deploy/dev/azurite.sh install

# versitygw v1.8.0 and MinIO (pinned) into .tools/bin for the S3 tests;
# a no-op when the pinned versions are there already.
tools-s3:
	bash deploy/dev/s3-servers.sh install

# go vet and staticcheck, for Linux and Windows. staticcheck (pinned) is
# installed into .tools/bin on first use.
STATICCHECK_VERSION := v0.8.2
vet: tools-staticcheck
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...
	.tools/bin/staticcheck ./...
	GOOS=windows .tools/bin/staticcheck ./...

tools-staticcheck:
	@v=$$($(GO) version -m .tools/bin/staticcheck 2>/dev/null | awk '$$1 == "mod" { print $$3 }'); \
	if [ "$$v" != "$(STATICCHECK_VERSION)" ]; then \
	  echo "staticcheck $(STATICCHECK_VERSION): installing into .tools/bin"; \
	  GOBIN="$$PWD/.tools/bin" GOFLAGS=-mod=mod $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	fi

fmt:
	@out=$$(gofmt -l cmd internal); [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }

# Short fuzz runs of the T-SQL quoting through the stand-in's parser. The
# budgets are counts, not durations: Go 1.26's fuzz coordinator can report
# "context deadline exceeded" when a duration ends on a loaded machine
# (golang/go#75804, fixed in Go 1.27), which is no finding at all.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzBackupStatementRoundTrip$$' -fuzztime 200000x ./internal/sqlserver/
	$(GO) test -run '^$$' -fuzz '^FuzzRemoteStatementsRoundTrip$$' -fuzztime 200000x ./internal/sqlserver/
	$(GO) test -run '^$$' -fuzz '^FuzzRestoreStatementRoundTrip$$' -fuzztime 200000x ./internal/sqlserver/
	$(GO) test -run '^$$' -fuzz '^FuzzHierarchyStatementsRoundTrip$$' -fuzztime 200000x ./internal/sqlserver/
	$(GO) test -run '^$$' -fuzz '^FuzzParseBackupServiceMasterKey$$' -fuzztime 200000x ./internal/mssqltest/

windows:
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o .tools/bin/keyescrow.exe ./cmd/keyescrow

# GoReleaser: check the config, build the three release archives twice as a
# snapshot and prove them reproducible (dist/SHA256SUMS).
release-check:
	bash deploy/dev/release-check.sh

clean:
	rm -rf .tools/bin dist
