# The README's commands. `make test` is what CI runs (.ci/run) on a clean clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Everything: the tests drive the embedded model and llama.cpp's server too. The first
# build of llama-cpp-python compiles llama.cpp (about 10-25 minutes on 2 cores); pip
# caches the wheel, so later venvs on the same machine install it in seconds.
EXTRAS ?= dev,local,server,report

.PHONY: test demo lint bench-rpm bench-rouge bench-chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q

# The main job on the embedded default: a short real generation into runs/demo.
demo: $(STAMP)
	$(VENV)/bin/selfinstruct run --config configs/local-demo.toml
	$(VENV)/bin/selfinstruct stats runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check selfinstruct_async plugins tests bench
	$(VENV)/bin/mypy

bench-rpm: $(STAMP)
	$(PY) bench/rpm.py

bench-rouge: $(STAMP)
	$(PY) bench/rouge.py

bench-chaos: $(STAMP)
	$(PY) bench/chaos.py

clean:
	rm -rf $(VENV) build *.egg-info
