# ferry: build, test, cross-compile. `make help` lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Remote write and scraping speak HTTP/1.1; leaving out net/http's bundled
# HTTP/2 saves ~450 KiB of flash on every target.
TAGS     := nethttpomithttp2
# Packages off the per-sample paths (config, flags and protobuf
# registration, TLS certificates, URLs, formatting) are compiled without
# inlining: ~600 KiB less flash, while the hot paths keep it (make bench-go
# gives the same figures either way). goreleaser.yaml lists the same.
COLD_PKGS := google.golang.org/protobuf/... github.com/gogo/protobuf/... gopkg.in/yaml.v3 \
	github.com/spf13/pflag encoding/json regexp/... github.com/grafana/regexp/... crypto/x509 \
	crypto/internal/fips140/nistec/... crypto/internal/fips140/rsa crypto/rsa crypto/ecdsa \
	vendor/golang.org/x/text/... vendor/golang.org/x/net/idna math/big encoding/asn1 \
	github.com/prometheus/client_model/... github.com/prometheus/prometheus/prompb/... \
	go/token reflect net/http fmt
GCFLAGS  := $(foreach p,$(COLD_PKGS),-gcflags=$(p)=-l)
# 32-bit ARM kernels use 4 KiB pages only: segments aligned to 4 KiB
# instead of the linker's 64 KiB leave ~40 KiB less zero padding in the file.
ARM_LDFLAGS := $(LDFLAGS) -R 0x1000
BIN      := bin

# Where `make run` keeps its buffer, and where it sends (empty: buffer only).
DATA     ?= ./data
REMOTE_WRITE_URL ?=

# Cross targets: GOOS/GOARCH[/GOARM]
CROSS    := linux/amd64 linux/arm64 linux/arm/7 linux/arm/6

.PHONY: help build run test test-model test-cross test-cross-full test-fleet test-fleet-scale thanos test-packaging test-release size cross lint bench bench-go bench-compare peers fuzz clean

help:
	@echo "make build       build bin/ferry for this machine"
	@echo "make run         run ferry with the embedded defaults (REMOTE_WRITE_URL=... to send)"
	@echo "make test        install test dependencies, run every test (unit, e2e, armv7/arm64 under qemu)"
	@echo "make test-model  the buffer's model test with new random seeds for MODEL_DURATION (default 5m)"
	@echo "make test-release  goreleaser snapshot build into dist/, packages checked, arm64 run under qemu"
	@echo "make test-fleet  the fleet's side alone: status page in Chromium, alert rules (promtool), dashboard queries, METRICS.md"
	@echo "make test-fleet-scale  FLEET_DEVICES ferry processes (120) against a Thanos Receive hashring: cut off, reconnected, a node killed (~9 min; FLEET_DEVICES=20 FLEET_OFFLINE=1m: ~6 min; building Thanos the first time: ~3-30 min)"
	@echo "make test-cross-full  the whole suite without -short as armv7 and arm64 under qemu-user (~10 min)"
	@echo "make cross       static binaries for linux amd64, arm64, armv7, armv6; prints stripped sizes"
	@echo "make size        the stripped armv7 binary against its 10 MiB budget"
	@echo "make lint        gofmt and go vet"
	@echo "make bench       bench-go, then bench-compare (~22 min; the first time ~8 min more to build the peers)"
	@echo "make bench-go    Go benchmarks: buffer bytes per sample, hot paths with allocations"
	@echo "make bench-compare  ferry vs vmagent and Prometheus 3 agent mode, side by side, two workloads (~20 min; bench/RESULTS-compare.md)"
	@echo "make peers       build the pinned vmagent and Prometheus that bench-compare runs into .tools/peers/ (once)"
	@echo "make fuzz        every fuzz target for FUZZTIME each (default 1m)"
	@echo "make powercut    20 power cuts under ferry in a VM per sync policy, 1m and FLASH_SYNC (~13 min; not in make test)"

build:
	CGO_ENABLED=0 $(GO) build $(GCFLAGS) -tags $(TAGS) -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ferry ./cmd/ferry

run: build
	$(BIN)/ferry --storage.path=$(DATA) $(if $(REMOTE_WRITE_URL),--remote-write.url=$(REMOTE_WRITE_URL))

# Every test twice: quick (-short) under the race detector, then in full
# (100 crash kills, the larger caps, the end-to-end run) at normal speed.
test:
	scripts/test-deps.sh
	$(MAKE) lint
	$(GO) test -race -short -count=1 ./...
	$(GO) test -count=1 ./...
	$(MAKE) test-cross
	$(MAKE) size
	$(MAKE) test-packaging
	$(MAKE) test-release

# The buffer's model-based test (buffer/model_test.go) with new random
# seeds until MODEL_DURATION has passed, MODEL_STEPS steps each; stops at
# the first failing seed (MODEL_SEED=n reruns it verbosely). The defects it
# found are regression tests in buffer/accounting_test.go.
MODEL_DURATION ?= 5m
MODEL_STEPS    ?= 3000
test-model:
	MODEL_DURATION=$(MODEL_DURATION) MODEL_STEPS=$(MODEL_STEPS) $(GO) test -count=1 -timeout 0 -v -run '^TestModelConservesEverySample$$' ./buffer/

# Every test also runs as an armv7 and an arm64 binary under qemu-user
# (-short), and the end-to-end tests in full as armv7: ferry built for
# 32-bit ARM, run under the emulator against the real receivers. 32-bit ARM
# is where ferry lives.
test-cross:
	scripts/test-cross.sh ./...
	CROSS_FULL=1 CROSS_ARCHS=arm scripts/test-cross.sh ./cmd/ferry

# The whole suite, without -short, as armv7 and arm64 binaries under
# qemu-user: ~10 min on 2 cores.
test-cross-full:
	CROSS_FULL=1 scripts/test-cross.sh ./...

# The flash budget: the stripped armv7 binary must stay within 10 MiB.
SIZE_BUDGET := 10485760
size:
	@mkdir -p $(BIN)
	@CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build $(GCFLAGS) -tags $(TAGS) -trimpath -ldflags '$(ARM_LDFLAGS)' -o $(BIN)/ferry-linux-armv7 ./cmd/ferry
	@qemu-arm-static $(BIN)/ferry-linux-armv7 version >/dev/null || { echo "the armv7 binary does not run under qemu-arm-static"; exit 1; }
	@size=$$(stat -c %s $(BIN)/ferry-linux-armv7); xz=$$(xz -9 -c $(BIN)/ferry-linux-armv7 | wc -c); \
	echo "linux/armv7 stripped: $$size bytes (budget $(SIZE_BUDGET)), xz -9: $$xz bytes"; \
	[ $$size -le $(SIZE_BUDGET) ] || { echo "over the flash budget"; exit 1; }

# What the people who run the fleet use: the status page in headless
# Chromium, the alert rules with promtool, the fleet dashboard's queries
# against a Prometheus fed by the real ferry, and docs/METRICS.md against
# the code. `go test ./...` in `make test` runs these too; this runs them
# alone (~30 s).
test-fleet:
	$(GO) test -count=1 -run '^(TestStatusPage|TestStatusPageInChromium|TestMetricsReference|TestAlertRules|TestFleetDashboard)$$' ./agent ./cmd/ferry

# A fleet into a distributed receiver (bench/fleet): FLEET_DEVICES ferry
# processes on loopback against Thanos Receive (3 nodes, replication factor
# 2), built once at a pinned version into .tools/thanos/ (~10 min the first
# time); all cut off for FLEET_OFFLINE, reconnected at once, a receiver
# node killed during the drain and restarted; every sample checked through
# Thanos Query. Twice: ferry's reconnect tuning off, then on. The figures
# go to $(BIN)/fleet-results.md (bench/RESULTS.md has a run's). Not in
# make test: ~9 min with 120 devices offline for 2 minutes on 2 cores
# (the number this shared machine carried; more on more cores).
FLEET_DEVICES ?= 120
FLEET_OFFLINE ?= 2m
THANOS = $(shell scripts/build-thanos.sh --print)
thanos:
	GO=$(GO) scripts/build-thanos.sh

test-fleet-scale: build thanos
	$(GO) build -o $(BIN)/fleet ./bench/fleet
	FLEET_DEVICES=$(FLEET_DEVICES) FLEET_OFFLINE=$(FLEET_OFFLINE) nice -n 10 $(BIN)/fleet \
		-thanos $(THANOS) -ferry $(BIN)/ferry -out $(BIN)/fleet-results.md

# The OpenWrt init script under busybox sh with procd and UCI stubbed, and
# the systemd unit with systemd-analyze; both check their flags against ferry.
test-packaging: build
	FERRY=$(BIN)/ferry sh scripts/test-openwrt-init.sh
	FERRY=$(BIN)/ferry sh scripts/test-systemd-unit.sh

# The release as goreleaser builds it (snapshot, into dist/): binaries,
# archives, deb, rpm and ipk checked, the deb's scripts run, the arm64 binary
# run under qemu against a Prometheus. goreleaser is pinned in the script and
# installed into .tools/ once.
test-release:
	scripts/test-release.sh

cross:
	@mkdir -p $(BIN)
	@for t in $(CROSS); do \
		os=$${t%%/*}; rest=$${t#*/}; arch=$${rest%%/*}; arm=$${rest#*/}; [ "$$arm" = "$$arch" ] && arm=; \
		out=$(BIN)/ferry-$$os-$$arch$${arm:+v$$arm}; ldflags='$(LDFLAGS)'; [ "$$arch" = arm ] && ldflags='$(ARM_LDFLAGS)'; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm $(GO) build $(GCFLAGS) -tags $(TAGS) -trimpath -ldflags "$$ldflags" -o $$out ./cmd/ferry || exit 1; \
		printf '%-28s %9d bytes stripped\n' $$out $$(stat -c %s $$out); \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The Go benchmarks (buffer bytes per sample, hot paths with allocations,
# one whole collection of a 10k-series target per sample), then the
# side-by-side run of the agents: ~22 min in all.
bench: bench-go bench-compare

bench-go:
	$(GO) test -run '^$$' -bench 'BytesPerSample|HistoryAtCap' -benchtime 1x ./bench/
	$(GO) test -run '^$$' -bench 'ParseScrapeBody|BufferAppend|HostCollection' -benchmem ./bench/
	$(GO) test -run '^$$' -bench 'EncodeWriteRequest' -benchmem ./agent/remotewrite/codec/
	$(GO) test -run '^$$' -bench 'CollectTarget' -benchmem ./agent/

# The peers as users pick them today, at pinned versions, built from the Go
# module proxy into .tools/peers/ when not there yet (~8 min the first time).
# The versions are pinned in the script.
VMAGENT    := $(shell scripts/build-peers.sh --print vmagent)
PROMETHEUS := $(shell scripts/build-peers.sh --print prometheus)
peers:
	GO=$(GO) scripts/build-peers.sh

# ferry, vmagent and Prometheus 3 in agent mode side by side, each at its
# defaults, in one run on this machine for each workload, one after the
# other: the typical device (1k series and node_exporter every 15 s), then a
# heavy one (10k every 5 s). ~20 min on 2 cores.
bench-compare: build peers
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build $(GCFLAGS) -tags $(TAGS) -trimpath -ldflags '$(ARM_LDFLAGS)' -o $(BIN)/ferry-linux-armv7 ./cmd/ferry
	$(GO) run ./bench/compare -ferry $(BIN)/ferry -ferry-armv7 $(BIN)/ferry-linux-armv7 \
		-vmagent $(VMAGENT) -prometheus $(PROMETHEUS) -workloads typical,heavy -out bench/RESULTS-compare.md

# Every decoder of outside input has a fuzz target: buffer blocks, labels and
# files; scrape bodies; the config file.
FUZZTIME ?= 1m
FUZZ_TARGETS := ./buffer:FuzzDecodeBlock ./buffer:FuzzDecodeLabels ./buffer:FuzzCheckFile ./buffer:FuzzReplayJournal \
	./collectors/scrape:FuzzParse ./collectors/scrape:FuzzParseLimits ./agent/config:FuzzConfigFile \
	./agent/remotewrite/carry:FuzzReader ./agent/remotewrite/codec:FuzzDecodeRequest
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($${t%%:*}) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) $${t%%:*} || exit 1; \
	done

# Real power cuts (bench/powercut/README.md): ferry in a qemu VM whose disk
# loses what the guest did not flush; SIGKILL at random moments, boot, check.
# Once with the default sync interval (1m), once with the flash-friendly
# FLASH_SYNC; both tables go to $(BIN)/powercut/results.md. ~13 min on 2
# cores under software emulation.
POWERCUT_CUTS ?= 20
FLASH_SYNC    ?= 5m
powercut: build
	sh bench/powercut/setup.sh $(BIN)/powercut/kernel
	$(GO) build -o $(BIN)/powercut-rig ./bench/powercut
	rm -f $(BIN)/powercut/results.md
	rc=0; \
	$(BIN)/powercut-rig -ferry $(BIN)/ferry -kernel $(BIN)/powercut/kernel -work $(BIN)/powercut/default -cuts $(POWERCUT_CUTS) \
		-sync-interval 1m -min-delay 20s -max-delay 4m -report $(BIN)/powercut/results.md || rc=1; \
	$(BIN)/powercut-rig -ferry $(BIN)/ferry -kernel $(BIN)/powercut/kernel -work $(BIN)/powercut/flash -cuts $(POWERCUT_CUTS) \
		-sync-interval $(FLASH_SYNC) -min-delay 30s -max-delay 12m -report $(BIN)/powercut/results.md || rc=1; \
	exit $$rc

clean:
	rm -rf $(BIN) dist
