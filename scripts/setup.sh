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

# --- PostgreSQL for the gradebook tests (they start their own throwaway server) -------------
# Debian keeps initdb off PATH, in /usr/lib/postgresql/<version>/bin. Only the tests need it, so
# without root we explain instead of stopping the set-up.
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "Installing PostgreSQL for the gradebook tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  else
    echo "PostgreSQL is not installed; the gradebook tests (tests/test_course_postgres.py) need it and will fail." >&2
    echo "Install it (e.g. sudo apt-get install postgresql) and run again." >&2
  fi
fi

# --- the virtual environment ---------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "Creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip wheel setuptools

if ! "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  say "Compiling llama.cpp for the built-in model. This takes about 6 minutes on two cores; it happens once."
fi
say "Installing marketlab and its dependencies into $VENV"
"$VENV/bin/python" -m pip install --progress-bar on -e . || { echo "Installation failed: see the messages above." >&2; exit 1; }
touch "$VENV/.marketlab-installed"
say "Set-up complete."
