# make demo   install into .venv and run the embedded demo (no servers)
# make test   install, start local Redis/PostgreSQL if needed, run the whole test suite
# make bench  run the benchmarks in bench/
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install demo test lint services browser bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# torch first: on machines with a local CPU wheel this avoids a multi-GB CUDA download.
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0 || $(PIP) install -q "torch>=2.4"
	$(PIP) install -q -e ".[dev]"
	touch $@

demo: install
	$(VENV)/bin/ffqueue demo

services:
	bash scripts/services.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

browser:
	bash scripts/install-browser.sh

test: install services browser lint
	$(PY) -m pytest

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) ffqueue-demo ffqueue-data .pytest_cache .mypy_cache .ruff_cache
