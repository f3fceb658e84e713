# Entry points (README): `make demo` and `make test`; both run the idempotent `make setup` first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint demo bench clean distclean

setup:
	@scripts/setup.sh

test: setup
	scripts/test.sh

lint: setup
	$(VENV)/bin/ruff check .

# Extra demo flags: make demo ARGS=--keep
demo: setup
	$(PY) -m mininet_topos.demo $(ARGS)

# Measurements with same-run baselines (bench/); not part of `make test`.
bench: setup
	$(PY) -m bench.bench_spine
	$(PY) -m bench.bench_security_groups
	$(PY) -m bench.bench_datapath

# Our own state only: the default state dir, caches and build output (not OVS, not other bridges).
clean:
	rm -rf state build .pytest_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
