# Earth Embeddings: make setup | test | install | uninstall | package | lint | demo | bench
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE_DIR ?=
PYTEST_ARGS ?=
export QT_QPA_PLATFORM ?= offscreen
export PROJ_DATA ?= /usr/share/proj
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test test-fast install uninstall package lint format demo bench clean

setup:
	@VENV=$(VENV) sh scripts/setup.sh

test: setup
	@mkdir -p test-output
	$(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS) tests

install:
	@/usr/bin/env python3 scripts/install_plugin.py $(if $(PROFILE_DIR),--profile-dir "$(PROFILE_DIR)")

uninstall:
	@/usr/bin/env python3 scripts/install_plugin.py --uninstall $(if $(PROFILE_DIR),--profile-dir "$(PROFILE_DIR)")

package:
	@/usr/bin/env python3 scripts/package.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	@mkdir -p bench-results
	@set -e; for b in scripts/bench_*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf build dist test-output .qgis-settings
