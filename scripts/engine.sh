#!/usr/bin/env bash
# The built-in model's engine (llama-cpp-python, which compiles llama.cpp): build it for a named
# processor target, never for "whatever this machine is", and install it into the venv.
#
#   scripts/engine.sh              the portable engine (what `make lab` and `make test` install)
#   scripts/engine.sh --reinstall  install it again even if the venv has it (`make engine`)
#   scripts/engine.sh --force      compile again even if a wheel with these settings is kept
#   scripts/engine.sh --wheel-only build or find the wheel, print its path, install nothing (bench)
#   scripts/engine.sh --print-settings   the target, CMake settings and wheel folder; builds nothing
#   scripts/engine.sh native       a build for this exact processor (`make engine-native`): opt-in,
#                                  self-tested in a child process before it replaces the portable one
#   ENGINE_TARGET=x86-64 scripts/engine.sh   choose the portable target (x86-64-v3, x86-64, armv8-a)
#
# Why: llama.cpp's default is -march=native. pip then caches that build as a generic
# py3-none-linux_x86_64 wheel, and a later set-up on a processor of another generation reuses it
# and dies with an illegal instruction on the first request. Here every target is spelled out
# (x86-64-v3 = AVX2, FMA, F16C, BMI2: every x86-64 processor since 2013-2015), pip's own wheel
# cache is never read or written for this package, and built wheels are kept in a folder named
# after the target and the exact build settings, so a kept wheel is only ever reused where it runs.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY="$VENV/bin/python"
VERSION=$(sed -n 's/.*"llama-cpp-python==\([^"]*\)".*/\1/p' pyproject.toml)
say() { printf '\n==> %s\n' "$*"; }

mode=portable force=0 reinstall=0 wheel_only=0 print_only=0
for arg in "$@"; do
  case "$arg" in
    portable|native) mode=$arg ;;
    --force) force=1 reinstall=1 ;;
    --reinstall) reinstall=1 ;;
    --wheel-only) wheel_only=1 ;;
    --print-settings) print_only=1 ;;
    *) echo "usage: scripts/engine.sh [portable|native] [--reinstall] [--force] [--wheel-only] [--print-settings]" >&2; exit 2 ;;
  esac
done
[ -x "$PY" ] || [ "$print_only" = 1 ] || { echo "No virtual environment at $VENV: run \`make setup\` first." >&2; exit 1; }
[ -n "$VERSION" ] || { echo "pyproject.toml pins no llama-cpp-python==VERSION." >&2; exit 1; }

# --- the target -------------------------------------------------------------------------------
# Options llama.cpp reads; everything not named is off. The multimodal library (mtmd) is not
# built: marketlab never loads it, and it is a third of the compile time.
common="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_CCACHE=OFF"
CPUINFO=${ENGINE_CPUINFO:-/proc/cpuinfo}  # another file only in the tests of the target choice
cpu_flags=" $(grep -m1 -E '^(flags|Features)' "$CPUINFO" 2>/dev/null | cut -d: -f2) "
has() { for f in "$@"; do case "$cpu_flags" in *" $f "*) ;; *) return 1 ;; esac; done; }
arch=$(uname -m)
target=${ENGINE_TARGET:-}
if [ "$mode" = native ]; then
  target=native
elif [ -z "$target" ]; then
  case "$arch" in
    x86_64) if has avx2 fma f16c bmi2; then target=x86-64-v3; else
              # Some Atom, Celeron and Pentium models lack AVX2: plain x86-64 runs there, more slowly.
              echo "This processor has no AVX2/FMA: building the baseline x86-64 engine (slower)." >&2
              target=x86-64; fi ;;
    aarch64|arm64) target=armv8-a ;;
    *) echo "marketlab's engine has no portable target for $arch; building for this processor." >&2
       target=native ;;
  esac
fi
off512="-DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
case "$target" in
  x86-64-v3) cmake_args="-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON $off512 $common" ;;
  x86-64) cmake_args="-DGGML_NATIVE=OFF -DGGML_SSE42=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF $off512 $common" ;;
  armv8-a) cmake_args="-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8-a $common" ;;
  native)
    # Named after this processor's model and flags: a native wheel is never reused on another one.
    target="native-$( { grep -m1 -E '^(model name|CPU part)' "$CPUINFO"; echo "$cpu_flags"; } | sha256sum | cut -c1-12)"
    cmake_args="-DGGML_NATIVE=ON $common" ;;
  *) echo "ENGINE_TARGET=$target is not a target marketlab knows: use x86-64-v3, x86-64 or armv8-a." >&2; exit 2 ;;
esac

settings_hash=$(printf '%s|%s|%s' "$VERSION" "$target" "$cmake_args" | sha256sum | cut -c1-12)
cache_root=${MARKETLAB_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/marketlab/engine}
keep="$cache_root/llama-cpp-python-$VERSION/$target-$settings_hash"
record="$VENV/.marketlab-engine"
if [ "$print_only" = 1 ]; then
  printf 'target=%s\ncmake_args=%s\nwheel_folder=%s\n' "$target" "$cmake_args" "$keep"
  exit 0
fi

installed_settings() { [ -f "$record" ] && sed -n 's/^settings=//p' "$record"; }
if [ "$reinstall" = 0 ] && [ "$wheel_only" = 0 ] && [ "$(installed_settings)" = "$settings_hash" ] \
   && "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama_cpp_python') != '$VERSION')" 2>/dev/null; then
  echo "The $target engine (llama-cpp-python $VERSION) is already installed in $VENV."
  exit 0
fi

# --- build (or reuse a kept wheel built with exactly these settings) ----------------------------
wheel=$(ls "$keep"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -1 || true)
if [ "$force" = 1 ] || [ -z "$wheel" ]; then
  say "Compiling llama.cpp for the built-in model ($target). This takes about 5 minutes on two cores; it happens once."
  mkdir -p "$keep"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # No CFLAGS from the environment: a -march=native there would undo the target.
  env -u CFLAGS -u CXXFLAGS -u CPPFLAGS CMAKE_ARGS="$cmake_args" FORCE_CMAKE=1 \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc 2>/dev/null || echo 2)" \
    "$PY" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
      --progress-bar off --quiet -w "$work" "llama-cpp-python==$VERSION" \
    || { echo "Compiling llama.cpp failed: see the messages above. Check that cmake, g++ and make are installed, then run \`make engine\`." >&2; exit 1; }
  rm -f "$keep"/*.whl
  mv "$work"/llama_cpp_python-*.whl "$keep"/
  wheel=$(ls "$keep"/llama_cpp_python-"$VERSION"-*.whl | head -1)
fi
if [ "$wheel_only" = 1 ]; then echo "$wheel"; exit 0; fi

# --- install --------------------------------------------------------------------------------------
write_record() {
  { echo "target=$target"; echo "settings=$settings_hash"; echo "version=$VERSION"
    echo "cmake_args=$cmake_args"; echo "wheel=$wheel"; echo "built_on=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  } > "$record"
}
if [ "$mode" = native ]; then
  # Self-test the native engine in a child process from a side folder; only then replace the portable one.
  trial=$(mktemp -d)
  "$PY" -m pip install --no-deps --no-index --quiet --target "$trial" "$wheel"
  say "Self-testing the native engine before it replaces the installed one"
  if ! "$PY" -m marketlab.llm.selftest --engine-path "$trial"; then
    rm -rf "$trial"
    echo "The native engine failed its self-test on this processor; the installed engine was kept." >&2
    exit 1
  fi
  rm -rf "$trial"
fi
"$PY" -m pip install --no-deps --no-index --force-reinstall --quiet "$wheel"
write_record
echo "Installed the $target engine (llama-cpp-python $VERSION) from $wheel."
# setup.sh runs the self-test itself once marketlab is installed (ENGINE_SELFTEST=later).
if [ "${ENGINE_SELFTEST:-now}" != later ]; then
  "$PY" -m marketlab.llm.selftest
fi
