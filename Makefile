# The README's commands are these targets.
GO        ?= go
BIN       := $(CURDIR)/.bin
TESTFLAGS ?=

.PHONY: all build demo test check lint unit race bench fuzz tools clean

all: build

build:
	$(GO) build -o $(BIN)/ckpt ./cmd/ckpt

## demo: the main job on a generated sample, killed and resumed along the way.
## It removes its files (about 1 GB, under demo/) at the end: DEMO_KEEP=1 keeps them.
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

## fuzz: run every fuzz target for FUZZTIME (default 30s) each.
FUZZTIME ?= 30s
FUZZ_TARGETS := .:FuzzDecodeManifest .:FuzzDecodeBlob ./source:FuzzCSV ./source:FuzzLines \
	./internal/records:FuzzScan ./internal/records:FuzzAppendString ./internal/records:FuzzIsNumber \
	./internal/records:FuzzAppendCSVField ./aggregate:FuzzStateUnmarshal ./aggregate:FuzzFastDecimal \
	.:FuzzRun .:FuzzPlainJSONString ./aggregate:FuzzGroupKey ./aggregate:FuzzPartial \
	./parquetio:FuzzSource ./parquetio:FuzzPosition
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "fuzz $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

clean:
	rm -rf $(BIN) demo
