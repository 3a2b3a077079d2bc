# Two entry points, both self-installing (see README):
#   make demo   the main job: serve a live liquidation heatmap of a simulated market, no network
#   make test   every test: Rust, Python, stubs, typing
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.deps-stamp

.PHONY: test demo build deps sysdeps rust-test py-test typecheck bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Reinstall only when the pinned requirements change.
$(STAMP): requirements/dev.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements/dev.txt
	touch $@

deps: $(STAMP)

# System packages of the serving tests and benchmark (Debian): headless Chromium for the page
# test, wrk for `bench serve`. Installed only when missing.
sysdeps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    echo "installing$$missing (apt-get)"; \
	    $$SUDO apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "make: please install$$missing (browser test / serve benchmark)" >&2; fi; \
	fi

# Release build of the extension, installed into the venv (maturin skips unchanged sources).
build: deps
	$(BIN)/maturin develop --release -q

rust-test:
	cargo test -q --workspace

py-test: build sysdeps
	$(BIN)/python -m pytest -q

typecheck: build
	$(BIN)/python -m mypy.stubtest liqfast._core --allowlist tests/stubtest-allowlist.txt
	$(BIN)/python -m mypy

test: rust-test typecheck py-test

demo: build
	$(BIN)/liqfast serve --demo

bench: build sysdeps
	$(BIN)/python -m bench

lint:
	cargo fmt --check
	cargo clippy -q --workspace --all-targets -- -D warnings
	cargo clippy -q --workspace --all-targets --features python -- -D warnings

clean:
	rm -rf $(VENV) target
