# Writeback — see README.md. `make run` builds and serves; `make test` runs every test
# against real services it starts itself (Samba AD, OpenLDAP, SMTP sink, Chromium).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO       ?= go
BIN      := bin/writeback
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
export CGO_ENABLED ?= 0
export WRITEBACK_TESTBED_DIR ?= /tmp/writeback-testbed
export WRITEBACK_TEST_OUTPUT ?= $(CURDIR)/test-output

.PHONY: all build run generate lint test testbed-up testbed-down bench clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/writeback

# Build and serve on 127.0.0.1:8080 with ./data; prints a one-time setup link on first start.
run: build
	./$(BIN) serve

generate:
	$(GO) tool templ generate

# gofmt, go vet, and templ output that matches the .templ sources.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_templ.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool templ generate >/dev/null
	@git diff --exit-code -- '*_templ.go' || { echo "templ output is stale: run 'make generate' and commit it"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- '*_templ.go'); if [ -n "$$untracked" ]; then echo "uncommitted templ output: $$untracked"; exit 1; fi

testbed-up:
	bash testbed/up.sh

testbed-down:
	bash testbed/down.sh

# Everything: lint, then all tests with the race detector against the real test bed.
# The test bed is stopped whatever the outcome.
test: lint
	bash testbed/up.sh
	rc=0; CI=$${CI:-} WRITEBACK_TESTBED_ENV=$(WRITEBACK_TESTBED_DIR)/env CGO_ENABLED=1 \
	  $(GO) test -race -count=1 -timeout 12m ./... || rc=$$?; \
	bash testbed/down.sh; exit $$rc

# Speed targets live here, never in timed tests: writeback reset latency and rate at 1 and 8
# callers against the test DC beside a bare LDAP modify (services/directory), and the audit log
# with WRITEBACK_BENCH_EVENTS generated events: pages, CSV export, 8 concurrent writers (store).
WRITEBACK_BENCH_EVENTS ?= 1000000
bench:
	bash testbed/up.sh
	rc=0; WRITEBACK_TESTBED_ENV=$(WRITEBACK_TESTBED_DIR)/env WRITEBACK_BENCH=1 WRITEBACK_BENCH_EVENTS=$(WRITEBACK_BENCH_EVENTS) \
	  $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./... || rc=$$?; \
	bash testbed/down.sh; exit $$rc

clean:
	rm -rf bin test-output
