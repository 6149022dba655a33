# The README's commands. `make test` is what CI runs (.ci/run) on a clean clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Everything: the tests drive the embedded model and llama.cpp's server too. The first
# install compiles llama.cpp for a portable CPU baseline (scripts/build-llama.sh, about
# 7 minutes on 2 cores, with progress); the wheel is kept, so later venvs take seconds.
EXTRAS ?= dev,local,server,report,fast
LLAMA_CPP_VERSION ?= 0.3.36
export LLAMA_CPP_VERSION

.PHONY: test test-fast demo lint bench-rpm bench-rouge bench-chaos bench-llama llama-rebuild clean

$(STAMP): pyproject.toml scripts/build-llama.sh
	@echo "==> Creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	scripts/build-llama.sh $(PY)
	@echo "==> Installing selfinstruct-async[$(EXTRAS)] and its dependencies"
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

# Build llama.cpp again (after changing LLAMA_CMAKE_ARGS or on a SIGILL report).
llama-rebuild: $(STAMP)
	rm -f $(VENV)/.llama-build-*
	SELFINSTRUCT_LLAMA_FORCE=1 scripts/build-llama.sh $(PY)

test: $(STAMP)
	$(PY) -m pytest -q

# Everything except the tests marked slow (llama.cpp, kill -9 chaos, 100 MB answers, the
# example plugin's install): for the edit-test loop. CI runs `make test`.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# The main job on the embedded default: a short real generation into runs/demo.
demo: $(STAMP)
	$(VENV)/bin/selfinstruct run --config configs/local-demo.toml
	$(VENV)/bin/selfinstruct stats runs/demo

# mypy checks what [tool.mypy] files lists: the package, plugins/, examples/, bench/,
# scripts/ and tests/, all strict.
lint: $(STAMP)
	$(VENV)/bin/ruff check selfinstruct_async plugins examples tests bench scripts
	$(VENV)/bin/mypy

bench-rpm: $(STAMP)
	$(PY) bench/rpm.py

bench-rouge: $(STAMP)
	$(PY) bench/rouge.py

bench-chaos: $(STAMP)
	$(PY) bench/chaos.py

bench-llama: $(STAMP)
	$(PY) bench/llama_cpu.py

clean:
	rm -rf $(VENV) build *.egg-info
