#!/usr/bin/env bash
# Build llama-cpp-python once for a portable CPU baseline and install it into a venv.
#
#   scripts/build-llama.sh VENV_PYTHON
#
# pip builds llama.cpp from source with -march=native by default (GGML_NATIVE): a wheel made
# on one machine then dies with SIGILL on another, and on Intel Xeons that advertise AMX
# the build machine itself can crash. This script pins the instruction set instead: x86-64
# with AVX2, FMA, F16C and BMI2 (every x86 server CPU since 2013-2015), no AVX-512, no AMX.
# The wheel is kept in a wheelhouse keyed by version and flags, outside pip's own cache, so
# a wheel built with other flags is never picked up by mistake and later venvs install in
# seconds. Override with LLAMA_CMAKE_ARGS (e.g. "-DGGML_NATIVE=ON" for a local-only build).
set -euo pipefail

PY="$1"
VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
# mtmd (the multimodal helper library) is loaded lazily by llama-cpp-python and unused
# here; leaving it out cuts the build by about a third.
COMMON="-DLLAVA_BUILD=OFF"
case "$(uname -m)" in
  x86_64|amd64)
    PORTABLE="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ;;
  *)
    PORTABLE="-DGGML_NATIVE=OFF" ;;
esac
FLAGS="${LLAMA_CMAKE_ARGS:-$PORTABLE} $COMMON"
TAG="$(printf '%s %s' "$VERSION" "$FLAGS" | sha256sum | cut -c1-12)"
WHEELHOUSE="${SELFINSTRUCT_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/selfinstruct-async/wheels}/llama-cpp-python-$VERSION-$TAG"

if "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama-cpp-python') != '$VERSION')" 2>/dev/null \
   && [ -f "$("$PY" -c 'import sys; print(sys.prefix)')/.llama-build-$TAG" ]; then
  exit 0
fi

if [ -n "${SELFINSTRUCT_LLAMA_FORCE:-}" ]; then rm -rf "$WHEELHOUSE"; fi
if ! ls "$WHEELHOUSE"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  jobs="$(nproc 2>/dev/null || echo 2)"
  echo "==> Building llama.cpp (llama-cpp-python $VERSION) for a portable CPU baseline"
  echo "    flags: $FLAGS"
  echo "    about 7 minutes on 2 cores; once only: the wheel is kept in $WHEELHOUSE"
  mkdir -p "$WHEELHOUSE.partial"
  log="$WHEELHOUSE.partial/build.log"
  start=$(date +%s)
  # pip -v prints the compiler lines; show only ninja's [step/total] counter and file name.
  if ! CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="$jobs" \
      "$PY" -m pip wheel --no-cache-dir --no-deps -v -w "$WHEELHOUSE.partial" \
      "llama-cpp-python==$VERSION" 2>&1 | tee "$log" \
      | sed -nu -E 's#^ *\[([0-9]+/[0-9]+)\] .* -c (/[^ ]*/)?([^ /]+)$#    llama.cpp [\1] \3#p; s#^(Collecting|Downloading|Building wheel|Successfully built).*#    &#p'; then
    echo "llama.cpp build failed; the full log is $log" >&2
    exit 1
  fi
  rm -rf "$WHEELHOUSE"
  mv "$WHEELHOUSE.partial" "$WHEELHOUSE"
  echo "==> llama.cpp built in $(( $(date +%s) - start )) s"
fi
echo "==> Installing the portable llama.cpp wheel from $WHEELHOUSE"
"$PY" -m pip install --quiet --force-reinstall --no-deps "$WHEELHOUSE"/llama_cpp_python-"$VERSION"-*.whl
touch "$("$PY" -c 'import sys; print(sys.prefix)')/.llama-build-$TAG"
