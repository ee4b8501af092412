# xvs — build, test, demo. `make test` is what CI runs (.ci/run); the end-to-end tests build
# network namespaces and need root.
CARGO ?= cargo

.PHONY: all deps build test lint fmt demo clean

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
		shellcheck scripts/lab scripts/demo scripts/install-deps .ci/run; \
	fi

fmt:
	$(CARGO) fmt

demo: deps build
	scripts/demo

clean:
	$(CARGO) clean
