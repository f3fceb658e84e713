# Entry points (README): `make demo` and `make test`; both run the idempotent `make setup` first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint demo bench bench-faucet faucet-venv clean distclean

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
	$(PY) -m bench.bench_startup
	$(PY) -m bench.bench_spine
	$(PY) -m bench.bench_security_groups
	$(PY) -m bench.bench_datapath
	$(PY) -m bench.bench_scale
	$(PY) -m bench.bench_rest
	$(PY) -m bench.bench_routing
	$(PY) -m bench.bench_load_balancing
	$(PY) -m bench.bench_flood
	$(PY) -m bench.bench_counters
	$(PY) -m bench.bench_validation

# Our controller against Faucet on the same bridge (about 5 min; not part of `bench`). Extra flags:
# make bench-faucet ARGS='--sizes 10 100 --json faucet.json'
bench-faucet: setup faucet-venv
	$(PY) -m bench.bench_faucet $(ARGS)

# Faucet (pinned in bench/bench_faucet.py) in its own virtualenv bench/.faucet-venv: it pins its own os-ken.
faucet-venv:
	@$(PY) -c 'from bench.bench_faucet import faucet_executable; print("faucet:", faucet_executable())'

# Our own state only: the default state dir, caches and build output (not OVS, not other bridges).
clean:
	rm -rf state artifacts build .pytest_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) bench/.faucet-venv
