# Two commands for a fresh machine: `make demo` (the base install: HMI and OPC UA server included)
# and `make test` (every extra, the system test peers). See README.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TEST_EXTRAS := dev,genicam,aravis,plot,tensorrt-rtx

.PHONY: demo test test-busy lint typecheck clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml tests/setup/install-system-deps.sh tests/node/package.json tests/browser/package.json | $(VENV)/bin/python
	bash tests/setup/install-system-deps.sh
	$(PIP) install -q -e ".[$(TEST_EXTRAS)]"
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: $(VENV)/.demo-installed
	$(VENV)/bin/linecheck demo $(ARGS)

test: lint
	$(PY) -m pytest -rA $(PYTEST_ARGS)

# `make test` while stress-ng keeps the cores busy (BUSY_CPUS workers, default 2), as a loaded
# production PC or a shared CI runner would; the run starts and stops stress-ng
test-busy: $(VENV)/.test-installed
	bash tests/busy/run-busy.sh $(MAKE) test

# ruff, mypy and the layering contract (pyproject [tool.importlinter]): tools -> line ->
# camera | inference | plc, never the other way and never among those three
lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check line camera inference plc tools tests
	$(VENV)/bin/mypy line camera inference plc tools
	$(VENV)/bin/lint-imports

clean:
	rm -rf var artifacts .mypy_cache .ruff_cache .grimp_cache .import_linter_cache .hypothesis
