# xvs — build, test, demo. `make test` is what CI runs (.ci/run); the end-to-end tests build
# network namespaces and need root.
CARGO ?= cargo

.PHONY: all deps build test lint fmt demo bench-lab bench-scaling deb clean

all: build

deps:
	scripts/install-deps

build:
	$(CARGO) build --release

test: deps
	$(CARGO) test --release --all-targets
	$(MAKE) --no-print-directory lint

lint:
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) fmt --check
	@if command -v shellcheck >/dev/null 2>&1; then \
		shellcheck scripts/lab scripts/bench-lab scripts/demo scripts/install-deps scripts/build-deb .ci/run; \
	fi

fmt:
	$(CARGO) fmt

demo: deps build
	scripts/demo

# The lab load benchmark (root, a few minutes): kernel nftables DNAT vs xvs NAT/DR vs the AF_XDP
# floor, medians of alternating rounds; exits non-zero when xvs misses its targets. Not part of
# `make test`. Settings: BENCH_ROUNDS, BENCH_T, BENCH_FLOWS, GEN_CPU (see the script's header).
bench-lab: deps
	CARGO=$(CARGO) scripts/bench-lab

# The in-process scaling bench (about a minute, both CPUs free): one and two threads running
# process() over one shared connection table, in interleaved rounds; prints each pairing's
# two-thread / one-thread ratio and exits non-zero when a shared-table pairing is under 1.8x.
# Not part of `make test`. SCALING=ROUNDS:MS (rounds of MS ms per thread count and pairing).
SCALING ?= 1001:10
bench-scaling: deps
	XVS_SCALING=$(SCALING) $(CARGO) bench --bench process

# The Debian package xvs_<version>_<arch>.deb of the release binary, with dpkg-deb (see the
# README, "Installing the Debian package"; scripts/build-deb lists the contents).
deb: build
	scripts/build-deb

clean:
	$(CARGO) clean
