# orgstream: `make demo` (install + run the stack on a simulated WeCom), `make test` (lint, types,
# tests). Everything installs into .venv from PyPI; nothing else is needed on the machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install demo dev test lint typecheck unit integration convergence bench wheel-demo clean \
	browser screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "orgstream needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: install
	$(BIN)/orgstream --log-level warning demo

dev: install
	$(BIN)/orgstream dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -m "not integration"

integration: install
	$(BIN)/pytest -m integration

# The randomized convergence test at a chosen size: make convergence CHANGES=5000 [SEED=7]
CHANGES ?= 5000
convergence: install
	ORGSTREAM_CONVERGENCE_CHANGES=$(CHANGES) $(if $(SEED),ORGSTREAM_CONVERGENCE_SEED=$(SEED)) \
		$(BIN)/pytest -m integration --timeout 3600 tests/integration/test_convergence.py

# Benchmarks (not tests: nothing here asserts a timing). Writes tests/benchmarks/results.md/json.
bench: install
	$(BIN)/python -m tests.benchmarks.run

# The demo as a user gets it: the wheel, a fresh virtualenv, `orgstream[demo]`, run elsewhere.
wheel-demo: install
	rm -rf .orgstream/wheel-demo && mkdir -p .orgstream/wheel-demo
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir .orgstream/wheel-demo .
	$(PYTHON) -m venv .orgstream/wheel-demo/venv
	.orgstream/wheel-demo/venv/bin/pip install --quiet "$$(ls .orgstream/wheel-demo/orgstream-*.whl)[demo]"
	cd "$$(mktemp -d)" && $(CURDIR)/.orgstream/wheel-demo/venv/bin/orgstream --log-level warning demo

# Debian's Chromium, which the console's browser tests drive (apt, as root or through sudo).
browser:
	@command -v chromium >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The console's pages photographed by its browser test, kept in docs/console/ for the README
# (with a CJK font, so that Chinese names are drawn).
screenshots: install browser
	@fc-list :lang=zh | grep -q . || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-zenhei; }
	ORGSTREAM_SCREENSHOTS=docs/console $(BIN)/pytest -p no:cacheprovider -m integration \
		tests/integration/test_console_browser.py

# Two pytest workers (pytest-xdist): the suite is mostly waiting on the processes it starts.
test: lint typecheck browser
	$(BIN)/pytest -n 2 --dist worksteal

clean:
	rm -rf $(VENV) .orgstream .mypy_cache .ruff_cache .pytest_cache
