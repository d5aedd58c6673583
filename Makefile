# ferry: build, test, cross-compile. `make help` lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# -s -w: no symbol table, no DWARF (the release ships stripped binaries).
STRIP_LDFLAGS := -s -w
LDFLAGS  := $(STRIP_LDFLAGS) -X main.version=$(VERSION) -X main.commit=$(COMMIT)
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
# On MIPS (soft float, no assembly for most of crypto: the largest binary)
# these too, all per connection, per request or per collection, none per
# sample: TLS and the rest of crypto, HTTP header parsing, logging,
# address parsing, sockets and files, Prometheus' config types, the
# buffer's database (bbolt: per block, not per sample) and its system calls,
# and ferry's configuration, command line, status page, file_sd, carry
# files and HTTP client setup, URLs, relabeling (per new series: the
# label cache keeps what it made), gzip (per scrape body, inflated at
# a fraction of the parse's cost), and time (per collection and per
# request: clocks, timers, formats; samples carry int64 milliseconds).
# And one per sample: the buffer, 25 KiB; a collected sample costs 7-15 %
# more (BenchmarkCollectTarget on amd64: 394-402 → 430-453 ns), which a
# router's thousand series every 15 s do not feel.
# ~375 KiB less on mips; the other targets keep their inlining.
MIPS_COLD_PKGS := crypto/... log/slog net/textproto mime/... net/netip net os/... syscall encoding/csv \
	github.com/prometheus/common/... go.etcd.io/bbolt/... golang.org/x/sys/... \
	github.com/ferry-agent/ferry/agent/config/... github.com/ferry-agent/ferry/cmd/ferry \
	github.com/ferry-agent/ferry/agent/web github.com/ferry-agent/ferry/agent/filesd github.com/ferry-agent/ferry/internal/httpclient \
	github.com/ferry-agent/ferry/agent/remotewrite/carry github.com/prometheus/prometheus/model/relabel net/url \
	compress/flate compress/gzip hash/crc32 time github.com/ferry-agent/ferry/buffer
MIPS_GCFLAGS := $(foreach p,$(MIPS_COLD_PKGS),-gcflags=$(p)=-l)
# --- release flags per architecture (packaging reads these: make release-flags) ---
# 32-bit ARM kernels use 4 KiB pages only, and so do the 32-bit MIPS kernels
# of routers (OpenWrt's ath79, ramips, lantiq): segments aligned to 4 KiB
# instead of the linker's 64 KiB leave ~35-40 KiB less zero padding in the
# file. The kernel maps a segment only if its alignment is a multiple of the
# page size: a MIPS kernel built with 16 KiB pages would refuse such a binary.
PAGE4K_ARCHS   := arm mips mipsle
PAGE4K_LDFLAGS := -R 0x1000
ARM_LDFLAGS := $(LDFLAGS) $(PAGE4K_LDFLAGS)
# Router MIPS cores have no FPU (the kernel's FPU emulator is slow): Go's soft float.
GOMIPS   := softfloat
BIN      := bin

# Where `make run` keeps its buffer, and where it sends (empty: buffer only).
DATA     ?= ./data
REMOTE_WRITE_URL ?=

# Cross targets: GOOS/GOARCH[/GOARM]. mips is big-endian (ath79, lantiq),
# mipsle little-endian (ramips); both GOMIPS=$(GOMIPS).
CROSS    := linux/amd64 linux/arm64 linux/arm/7 linux/arm/6 linux/mips linux/mipsle

.PHONY: help build run test test-rw2 test-model test-cross test-cross-mips test-cross-mips-full test-cross-full test-fleet test-fleet-scale thanos test-packaging test-openwrt-build test-yocto test-release size cross release-flags lint bench bench-go bench-compare peers fuzz clean

help:
	@echo "make build       build bin/ferry for this machine"
	@echo "make run         run ferry with the embedded defaults (REMOTE_WRITE_URL=... to send)"
	@echo "make test        install test dependencies, run every test (unit, e2e, armv7/arm64 under qemu)"
	@echo "make test-rw2    ferry at its defaults against Prometheus 3.16: every series' type, help, unit and start stored; a partial write after a lost answer counted right (~1.5 min; ~8 min more to build Prometheus the first time)"
	@echo "make test-model  the buffer's model test with new random seeds for MODEL_DURATION (default 5m)"
	@echo "make test-release  goreleaser snapshot build into dist/, packages checked, arm64 run under qemu"
	@echo "make test-fleet  the fleet's side alone: status page in Chromium, alert rules (promtool), dashboard queries, METRICS.md"
	@echo "make test-fleet-scale  FLEET_DEVICES ferry processes (120) against a Thanos Receive hashring: cut off, reconnected, a node killed (~9 min; FLEET_DEVICES=20 FLEET_OFFLINE=1m: ~6 min; building Thanos the first time: ~3-30 min)"
	@echo "make test-cross-full  the whole suite without -short as armv7 and arm64 under qemu-user (~10 min)"
	@echo "make test-cross-mips  byte-order and word-size packages as mips and mipsle under qemu-user (in make test)"
	@echo "make test-cross-mips-full  the whole -short suite as mips and mipsle under qemu-user (slow)"
	@echo "make test-openwrt-build  the OpenWrt package's build (golang-package.mk's flags) for armv7, mips, mipsle"
	@echo "make test-yocto  the Yocto recipe's generated flags, modules and licenses against the Makefile and go.sum"
	@echo "make release-flags  the release's build flags, for the packaging's generators"
	@echo "make cross       static binaries for linux amd64, arm64, armv7, armv6, mips, mipsle; prints stripped sizes"
	@echo "make size        every cross binary runs (qemu) and is within the 10 MiB budget; stripped and xz sizes"
	@echo "make lint        gofmt and go vet"
	@echo "make bench       bench-go, then bench-compare (~22 min; the first time ~8 min more to build the peers)"
	@echo "make bench-go    Go benchmarks: buffer bytes per sample, hot paths with allocations"
	@echo "make bench-compare  ferry vs vmagent and Prometheus 3 agent mode, side by side, two workloads (~20 min; bench/RESULTS-compare.md)"
	@echo "make peers       build the pinned vmagent and Prometheus that bench-compare runs into .tools/peers/ (once)"
	@echo "make fuzz        every fuzz target for FUZZTIME each (default 1m)"
	@echo "make powercut    20 power cuts under ferry in a VM per sync policy, 30s and FLASH_SYNC (~13 min; not in make test)"

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
	$(MAKE) test-packaging
	$(MAKE) test-release
# (The flash budget is checked by test-release, on every release binary (the
# same bytes as make cross's), and by test-openwrt-build; `make size` adds the
# xz sizes, ~50 s of CPU, and is left out of make test for its time.)

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
	$(MAKE) test-cross-mips

# MIPS (GOMIPS=softfloat) under qemu-user, big- and little-endian: the
# packages where byte order and the 32-bit word matter (the buffer's file,
# block and journal formats, the wire codec, carry files, /proc parsing,
# units), -short. The whole -short suite takes ~8 min per architecture
# here under emulated soft float, most of it the buffer's page packing and
# file verification tests (~5.5 min): make test-cross-mips-full.
MIPS_BUFFER_TESTS := ^(TestBlockRoundTrip|TestBlockDetectsDamage|TestCommittedDataSurvivesReopenAndAckedDataIsGone|TestLargeLabelSetsSurviveReopen|TestJournalReplayStopsAtDamage|TestJournalKeepsTheHeadAcrossAProcessCrash|TestSalvageKeepsWhatDecodesAndCountsTheRest|TestCapBeyond32BitAddressSpaceIsRefused|TestTimestampsOutOfBoundsAreCountedNotStored|TestDamagedBlockCostsOnlyItsSamplesCounted)$$
MIPS_PKGS := ./agent/remotewrite/codec ./agent/remotewrite/carry ./collectors ./collectors/host ./internal/units
test-cross-mips:
	CROSS_ARCHS="mips mipsle" CROSS_RUN='$(MIPS_BUFFER_TESTS)' scripts/test-cross.sh ./buffer
	CROSS_ARCHS="mips mipsle" scripts/test-cross.sh $(MIPS_PKGS)

test-cross-mips-full:
	CROSS_ARCHS="mips mipsle" scripts/test-cross.sh ./...

# The whole suite, without -short, as armv7 and arm64 binaries under
# qemu-user: ~10 min on 2 cores.
test-cross-full:
	CROSS_FULL=1 scripts/test-cross.sh ./...

# The flash budget: every target's stripped binary (make cross) must stay
# within 10 MiB, and must run (`ferry version`, under qemu-user off amd64).
# Prints each one's stripped and xz -9 size (what a squashfs/ipk costs,
# roughly); fails after the table if any is over.
SIZE_BUDGET := 10485760
size: cross
	@over=""; rm -f $(BIN)/*.xz-size; \
	bins=$$(ls $(BIN)/ferry-linux-amd64 $(BIN)/ferry-linux-arm64 $(BIN)/ferry-linux-armv6 $(BIN)/ferry-linux-armv7 $(BIN)/ferry-linux-mips $(BIN)/ferry-linux-mipsle); \
	printf '%s\n' $$bins | xargs -P2 -I{} sh -c 'xz -9 -c {} | wc -c >{}.xz-size' & \
	for b in $$bins; do \
		case $${b##*-} in \
		amd64) q= ;; arm64) q=qemu-aarch64-static ;; armv7|armv6) q=qemu-arm-static ;; \
		mips) q=qemu-mips-static ;; mipsle) q=qemu-mipsel-static ;; \
		esac; \
		$$q $$b version >/dev/null || { echo "$$b does not run$${q:+ under $$q}"; exit 1; }; \
	done; \
	wait; \
	for b in $$bins; do \
		size=$$(stat -c %s $$b); \
		awk -v a=$${b##*-} -v s=$$size -v x=$$(cat $$b.xz-size) \
			'BEGIN { printf "linux/%-7s stripped: %9d bytes (%.2f MiB), xz -9: %8d bytes\n", a, s, s / 1048576, x }'; \
		rm -f $$b.xz-size; \
		[ $$size -le $(SIZE_BUDGET) ] || over="$$over $${b##*-}"; \
	done; \
	[ -z "$$over" ] || { echo "over the flash budget of $(SIZE_BUDGET) bytes:$$over"; exit 1; }

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
	$(MAKE) test-openwrt-build
	$(MAKE) test-yocto

# --- OpenWrt and Yocto packages built as the release ---
# The OpenWrt feed package's build, evaluated as golang-package.mk would
# (scripts/testdata/openwrt-sdk/ stands in for the SDK), for armv7, mips
# and mipsle: the flags, the binary under qemu, its size against the budget.
test-openwrt-build:
	scripts/test-openwrt-build.sh

# The Yocto recipe's generated files: its release flags (from this Makefile),
# and the module list and licenses against the go.sum of the recipe's SRCREV.
test-yocto:
	scripts/yocto-flags.sh --check
	scripts/yocto-modules.py --check

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
		out=$(BIN)/ferry-$$os-$$arch$${arm:+v$$arm}; ldflags='$(LDFLAGS)'; \
		case " $(PAGE4K_ARCHS) " in *" $$arch "*) ldflags='$(LDFLAGS) $(PAGE4K_LDFLAGS)';; esac; \
		gcflags='$(GCFLAGS)'; case $$arch in mips|mipsle) gcflags='$(GCFLAGS) $(MIPS_GCFLAGS)';; esac; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm GOMIPS=$(GOMIPS) $(GO) build $$gcflags -tags $(TAGS) -trimpath -ldflags "$$ldflags" -o $$out ./cmd/ferry || exit 1; \
		printf '%-28s %9d bytes stripped\n' $$out $$(stat -c %s $$out); \
	done

# The release's build flags, one NAME=VALUE a line, for the packaging that
# must build as the release does (scripts/openwrt-flags.sh writes them into
# the OpenWrt feed Makefile; scripts/test-openwrt-build.sh checks that).
release-flags:
	@echo 'tags=$(TAGS)'
	@echo 'cold_pkgs=$(strip $(COLD_PKGS))'
	@echo 'mips_cold_pkgs=$(strip $(MIPS_COLD_PKGS))'
	@echo 'ldflags=$(STRIP_LDFLAGS)'
	@echo 'ldflags_x=main.version main.commit'
	@echo 'page4k_archs=$(PAGE4K_ARCHS)'
	@echo 'page4k_ldflags=$(PAGE4K_LDFLAGS)'
	@echo 'gomips=$(GOMIPS)'
	@echo 'cgo_enabled=0'
	@echo 'trimpath=1'

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
# The proof of Remote-Write 2.0's metadata: ferry at its defaults against
# Prometheus 3.16 (built by scripts/build-peers.sh when missing, once;
# PROMETHEUS=path uses another build of v0.316.0), whose WAL must hold the
# type, help, unit and start time of every series ferry sent; and of its
# partial writes: after a lost answer, what it refuses of a request sent
# again is counted duplicate, and the rest arrives (cmd/ferry/rw2_test.go).
# Not in make test: building Prometheus takes ~8 min.
test-rw2:
	test -x $(PROMETHEUS) || GO=$(GO) scripts/build-peers.sh
	FERRY_RW2_PROMETHEUS=$(PROMETHEUS) $(GO) test -count=1 -v -run '^TestRemoteWrite2' ./cmd/ferry/

bench-compare: build peers
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build $(GCFLAGS) -tags $(TAGS) -trimpath -ldflags '$(ARM_LDFLAGS)' -o $(BIN)/ferry-linux-armv7 ./cmd/ferry
	$(GO) run ./bench/compare -ferry $(BIN)/ferry -ferry-armv7 $(BIN)/ferry-linux-armv7 \
		-vmagent $(VMAGENT) -prometheus $(PROMETHEUS) -workloads typical,heavy -out bench/RESULTS-compare.md

# Every decoder of outside input has a fuzz target: buffer blocks, labels and
# files; scrape bodies; the config file.
FUZZTIME ?= 1m
FUZZ_TARGETS := ./buffer:FuzzDecodeBlock ./buffer:FuzzDecodeLabels ./buffer:FuzzCheckFile ./buffer:FuzzReplayJournal \
	./collectors/scrape:FuzzParse ./collectors/scrape:FuzzParseLimits ./collectors/exposition:FuzzSameAsPrometheus ./collectors/exposition:FuzzKnownSeries ./collectors/exposition:FuzzWindowsAreTheWholeBody ./collectors/exposition:FuzzParseDecimal ./agent/config:FuzzConfigFile \
	./agent/remotewrite/carry:FuzzReader ./agent/remotewrite/codec:FuzzDecodeRequest
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($${t%%:*}) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) $${t%%:*} || exit 1; \
	done

# Real power cuts (bench/powercut/README.md): ferry in a qemu VM whose disk
# loses what the guest did not flush; SIGKILL at random moments, boot, check.
# Once with the default sync interval (30s), once with the flash-friendly
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
		-sync-interval 30s -min-delay 20s -max-delay 4m -report $(BIN)/powercut/results.md || rc=1; \
	$(BIN)/powercut-rig -ferry $(BIN)/ferry -kernel $(BIN)/powercut/kernel -work $(BIN)/powercut/flash -cuts $(POWERCUT_CUTS) \
		-sync-interval $(FLASH_SYNC) -min-delay 30s -max-delay 12m -report $(BIN)/powercut/results.md || rc=1; \
	exit $$rc

clean:
	rm -rf $(BIN) dist
