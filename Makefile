# Writeback — see README.md. `make run` builds and serves; `make test` runs every test
# against real services it starts itself (Samba AD, OpenLDAP, SMTP sink, Chromium).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO       ?= go
BIN      := bin/writeback
AGENT_BIN := bin/writeback-agent
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
export CGO_ENABLED ?= 0
export WRITEBACK_TEST_OUTPUT ?= $(CURDIR)/test-output
# Only for the manual test bed of `make testbed-up`/`testbed-down`; `make test` and `make bench` always make their
# own per run (testbed/with.sh), whatever this says.
WRITEBACK_TESTBED_DIR ?= /tmp/writeback-testbed
# Flags for `make run`, passed to `writeback serve`: make run ARGS="--listen 0.0.0.0:8080".
ARGS ?=
# How long `make fuzz` runs each Fuzz target; `make test` runs each for FUZZTIME_TEST.
FUZZTIME ?= 60s
FUZZTIME_TEST ?= 5s

.PHONY: all build run generate lint test fuzz testbed-up testbed-down testbed-selftest bench clean

all: build

# Both programs: the portal and the writeback agent that runs inside the company network.
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/writeback
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(AGENT_BIN) ./cmd/writeback-agent

# Build and serve (default 127.0.0.1:8080 with ./data); prints a one-time setup link on first start.
run: build
	./$(BIN) serve $(ARGS)

# templ's *_templ.go and the gzip/brotli variants of static/ (static/internal/compress); both are committed.
generate:
	$(GO) tool templ generate
	$(GO) generate ./static/

# gofmt, go vet, templ output that matches the .templ sources, precompressed static assets that hold their assets,
# go.mod/go.sum tidy, and the committed-file hygiene
# (no binary at the root, nothing secret or bulky sent into an image build).
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_templ.go$$')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool templ generate >/dev/null
	@git diff --exit-code -- '*_templ.go' || { echo "templ output is stale: run 'make generate' and commit it"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- '*_templ.go'); if [ -n "$$untracked" ]; then echo "uncommitted templ output: $$untracked"; exit 1; fi
	$(GO) run ./static/internal/compress -check -dir static
	@untracked=$$(git ls-files --others --exclude-standard -- 'static/*.gz' 'static/*.br'); if [ -n "$$untracked" ]; then echo "uncommitted precompressed assets: $$untracked"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null 2>&1 || { $(GO) mod tidy -diff; echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit the result"; exit 1; }
	@for b in writeback writeback-agent; do if git ls-files --error-unmatch $$b >/dev/null 2>&1; then echo "a built binary '$$b' is committed at the root: git rm --cached $$b"; exit 1; fi; done
	@for p in .git data agent-data bin test-output '**/writeback.key' '**/agent-identity.json' '**/*.test'; do \
	  grep -qxF -- "$$p" .dockerignore || { echo ".dockerignore must exclude $$p"; exit 1; }; done

testbed-up:
	WRITEBACK_TESTBED_DIR=$(WRITEBACK_TESTBED_DIR) bash testbed/up.sh

testbed-down:
	WRITEBACK_TESTBED_DIR=$(WRITEBACK_TESTBED_DIR) bash testbed/down.sh

# Checks that testbed/with.sh keeps concurrent runs apart and cleans up on failure and Ctrl-C (root, a few minutes).
testbed-selftest:
	bash testbed/selftest.sh

# Everything: lint, then all tests with the race detector against a test bed of this run's own (state dir and
# loopback addresses chosen per run by testbed/with.sh, stopped whatever the outcome), then every fuzz target for
# FUZZTIME_TEST.
test: lint
	CI=$${CI:-} CGO_ENABLED=1 bash testbed/with.sh $(GO) test -race -count=1 -timeout 12m ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME_TEST)

# Every `func FuzzX(f *testing.F)` in the repository (found by `go test -list`), fuzzed for FUZZTIME each. A crash
# fails the run and leaves its input under the package's testdata/fuzz/FuzzX/: fix the bug and commit that file as
# a seed. See testbed/fuzz.sh.
fuzz:
	@GO=$(GO) bash testbed/fuzz.sh $(FUZZTIME)

# Speed targets live here, never in timed tests. Every benchmark prints its figures beside their floor (the bare
# directory operation, a static file) measured in the same run, with the target and a verdict, as lines starting
# with "BENCH " (testbed/bench); the summary at the end gathers them. Packages run one at a time (-p 1) so that one
# benchmark's load is not another's noise. WRITEBACK_BENCH_EVENTS sizes the audit log benchmark (store).
WRITEBACK_BENCH_EVENTS ?= 1000000
bench:
	@mkdir -p $(WRITEBACK_TEST_OUTPUT)
	WRITEBACK_BENCH=1 WRITEBACK_BENCH_EVENTS=$(WRITEBACK_BENCH_EVENTS) \
	  bash testbed/with.sh $(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./... 2>&1 | tee $(WRITEBACK_TEST_OUTPUT)/bench.txt
	@echo; echo "Summary (also in $(WRITEBACK_TEST_OUTPUT)/bench.txt):"; grep '^BENCH ' $(WRITEBACK_TEST_OUTPUT)/bench.txt || true
	@met=$$(grep -c '^BENCH .*│ met$$' $(WRITEBACK_TEST_OUTPUT)/bench.txt || true); all=$$(grep -c '^BENCH ' $(WRITEBACK_TEST_OUTPUT)/bench.txt || true); \
	  echo "$$met of $$all targets met"

clean:
	rm -rf bin test-output
