# Earth Embeddings: make setup | test | test-host | test-qgis340 | install | uninstall | package | lint | demo | bench
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE_DIR ?=
PYTEST_ARGS ?=
# make test also runs the suite on QGIS 3.40 (Debian 13 chroot) when it can: auto | 0 (skip) | 1 (required)
QGIS340 ?= auto
export PYTEST_ARGS QGIS340
export QT_QPA_PLATFORM ?= offscreen
export PROJ_DATA ?= /usr/share/proj
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test test-host test-qgis340 test-fast install uninstall package lint format demo models bench clean

setup:
	@VENV=$(VENV) sh scripts/setup.sh

test: setup
	@VENV=$(VENV) bash scripts/test_all.sh

test-host: setup
	@mkdir -p test-output
	$(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS) tests

# Debian 13 chroot (QGIS 3.40, Python 3.13, NumPy 2) built once under /var/cache/earth-embeddings
test-qgis340:
	@bash scripts/qgis340.sh test

install:
	@/usr/bin/env python3 scripts/install_plugin.py $(if $(PROFILE_DIR),--profile-dir "$(PROFILE_DIR)")

uninstall:
	@/usr/bin/env python3 scripts/install_plugin.py --uninstall $(if $(PROFILE_DIR),--profile-dir "$(PROFILE_DIR)")

package:
	@/usr/bin/env python3 scripts/package.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	MYPYPATH=build/pkgpath $(VENV)/bin/mypy --config-file pyproject.toml -p earth_embeddings.core

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# make demo [SOURCE=... EXTENT="xmin,xmax,ymin,ymax [EPSG:4326]" YEAR_A= YEAR_B= YEAR= EXEMPLARS= ZONES= TRAINING=]
# SOURCE not given = the sample collection; SOURCE= (given, empty) = the public product.
demo: setup
	@$(PY) scripts/demo.py \
	    $(if $(filter undefined,$(origin SOURCE)),,--source "$(SOURCE)") \
	    $(if $(EXTENT),--extent "$(EXTENT)") $(if $(YEAR_A),--year-a "$(YEAR_A)") \
	    $(if $(YEAR_B),--year-b "$(YEAR_B)") $(if $(YEAR),--year "$(YEAR)") \
	    $(if $(EXEMPLARS),--exemplars "$(EXEMPLARS)") $(if $(ZONES),--zones "$(ZONES)") \
	    $(if $(TRAINING),--training "$(TRAINING)")

# Regenerate resources/models/*.model3 from scripts/make_models.py
models: setup
	@$(PY) scripts/make_models.py

# Benchmarks (about 27 min on 2 shared cores; the first run also builds build/bench-data, ~12 min)
BENCHES ?= workloads memory network kernels topk qgis_process zonal learn trajectory dask
bench: setup
	@mkdir -p bench-results
	@set -e; start=$$(date +%s); $(PY) scripts/benchlib.py collection; \
	for b in $(BENCHES); do echo "== scripts/bench_$$b.py"; $(PY) scripts/bench_$$b.py; done; \
	$(PY) scripts/benchlib.py summary; echo "make bench: $$(( $$(date +%s) - start )) s"

clean:
	rm -rf build dist test-output demo-output .qgis-settings
