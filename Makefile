# siplb — see README.md. Targets stay thin; longer recipes live in scripts/.
GO       ?= go
FUZZTIME ?= 30s
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BIN      ?= bin
LDFLAGS  := -ldflags "-X main.version=$(VERSION)"
export GOFLAGS := -buildvcs=false

.PHONY: all build test bench bench-flood bench-cross bench-capture fuzz lint demo demo-cluster deps clean pgo

all: build

build:
	CGO_ENABLED=0 $(GO) build $(LDFLAGS) -o $(BIN)/siplb ./cmd/siplb
	cd benchmarks && CGO_ENABLED=0 $(GO) build -o ../$(BIN)/ ./cmd/...

deps:
	scripts/deps.sh

test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	# the allocation and memory assertions are built without -race (it allocates)
	$(GO) test -count=1 -run 'Allocs|TLSIdleMemory' ./...
	cd benchmarks && $(GO) vet ./... && $(GO) test -race -count=1 ./...

bench: build
	scripts/bench.sh

bench-flood: build
	scripts/bench-flood.sh

bench-cross: build
	scripts/bench-cross.sh

bench-capture: build
	scripts/bench-capture.sh

fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

lint:
	test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet ./...
	cd benchmarks && $(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	cd benchmarks && $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

demo: build
	scripts/demo.sh

# refresh cmd/siplb/default.pgo, the profile `go build` optimizes siplb with
pgo: build
	scripts/pgo.sh

demo-cluster: build
	scripts/demo-cluster.sh

clean:
	rm -rf $(BIN)
