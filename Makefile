# armstack — `make demo` and `make test` set up what they need first (see scripts/setup.sh).
PY      := .venv/bin/python
PYTEST  := .venv/bin/pytest
ARCH    ?= arm64
# The quick e2e set boots one armv7 device too.
TEST_ARCHES ?= arm64,armv7
# Parallel pytest-xdist workers for the e2e targets (JOBS=2): each worker runs its own devices.
JOBS    ?=
XDIST   := $(if $(JOBS),-n $(JOBS))
export TESTCONTAINERS_RYUK_DISABLED := true
# What actionlint checks (named: it finds them by itself only inside a git checkout).
WORKFLOWS := $(wildcard .github/workflows/*.yml .github/workflows/*.yaml)

.PHONY: setup images demo soak test test-unit test-integration test-e2e test-full lint typecheck bench bench-quick clean

setup:
	@bash scripts/setup.sh

images: setup
	$(PY) -m harness.cli build --arch $(ARCH) --kind engine,python,debian,runtime

demo: images
	$(PY) -m harness.demo --arch $(ARCH)

# The long chaos soak: 200 seeded faults against the ledger stack on arm64 (reports/chaos/).
SOAK_FAULTS ?= 200
SOAK_SEED   ?= 20261202
soak: images
	$(PY) -m harness.cli chaos --arch $(ARCH) --faults $(SOAK_FAULTS) --seed $(SOAK_SEED) --out reports/chaos

# Lint (ruff, actionlint), types, then unit + the quick e2e set (arm64, one armv7 boot) + integration: what CI
# runs. Device tests right after the unit tier: on a cold machine they start as soon as the images are there.
test: setup
	.venv/bin/ruff check runtime harness tests bench
	.venv/bin/actionlint $(WORKFLOWS)
	.venv/bin/mypy runtime harness tests/e2e/test_scenarios.py
	$(PY) -m harness.cli build --arch $(TEST_ARCHES) --kind engine,python,debian,runtime
	$(PYTEST) -m "not full" -p no:cacheprovider --junitxml=reports/junit.xml tests/unit tests/e2e tests/integration

test-unit: setup
	$(PYTEST) -m unit tests/unit

test-integration: setup
	$(PYTEST) tests/integration

test-e2e: images
	$(PYTEST) $(XDIST) -m "e2e and not full" tests/e2e

# The whole matrix: every stack x fault, arm64 and armv7.
test-full: setup
	$(PY) -m harness.cli build --arch arm64,armv7 --kind engine,python,debian,runtime
	$(PYTEST) $(XDIST) --arch arm64,armv7 tests

lint: setup
	.venv/bin/ruff check runtime harness tests bench
	.venv/bin/actionlint $(WORKFLOWS)

typecheck: setup
	.venv/bin/mypy runtime harness tests/e2e/test_scenarios.py

bench: setup
	$(PY) -m bench --all

bench-quick: setup
	$(PY) -m bench --quick

clean:
	rm -rf reports .pytest_cache
