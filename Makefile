# Two entry points, both self-installing (see README):
#   make demo   the main job: serve liquidation maps on the embedded data, no network
#   make test   every test: Rust, Python, stubs, typing
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.deps-stamp

.PHONY: test demo build deps rust-test py-test typecheck bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Reinstall only when the pinned requirements change.
$(STAMP): requirements/dev.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements/dev.txt
	touch $@

deps: $(STAMP)

# Release build of the extension, installed into the venv (maturin skips unchanged sources).
build: deps
	$(BIN)/maturin develop --release -q

rust-test:
	cargo test -q --workspace

py-test: build
	$(BIN)/python -m pytest -q

typecheck: build
	$(BIN)/python -m mypy.stubtest liqfast._core --allowlist tests/stubtest-allowlist.txt
	$(BIN)/python -m mypy

test: rust-test typecheck py-test

demo: build
	$(BIN)/liqfast map --sample

bench: build
	$(BIN)/python -m bench

lint:
	cargo fmt --check
	cargo clippy -q --workspace --all-targets -- -D warnings

clean:
	rm -rf $(VENV) target
