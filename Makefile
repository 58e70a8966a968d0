# The README's commands are these targets.
GO        ?= go
BIN       := $(CURDIR)/.bin
TESTFLAGS ?=

.PHONY: all build demo test check lint unit race bench fuzz tools clean

all: build

build:
	$(GO) build -o $(BIN)/ckpt ./cmd/ckpt

## demo: the main job on a generated sample, killed and resumed along the way.
demo:
	./scripts/demo.sh

tools:
	./scripts/tools.sh

## test: everything CI runs: formatting, vet, staticcheck, unit and crash tests.
test: check unit

check: tools
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

unit:
	$(GO) test -race -count=1 -timeout 30m $(TESTFLAGS) ./...

## bench: the benchmark table of docs/BENCHMARKS.md.
bench:
	./scripts/bench.sh

## fuzz: run each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecodeManifest -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz=FuzzDecodeBlob -fuzztime=$(FUZZTIME) .

clean:
	rm -rf $(BIN)
