# The README's commands. `make test` is what CI runs (.ci/run) on a clean clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: test lint bench-rpm bench-rouge clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check selfinstruct_async plugins tests bench
	$(VENV)/bin/mypy

bench-rpm: $(STAMP)
	$(PY) bench/rpm.py

bench-rouge: $(STAMP)
	$(PY) bench/rouge.py

clean:
	rm -rf $(VENV) build *.egg-info
