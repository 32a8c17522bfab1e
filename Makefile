# marketlab: `make lab` to learn, `make test` to check everything. Both set up on first run.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.marketlab-installed

.PHONY: lab test test-fast lint setup engine engine-native serve stop doctor bench demo hub clean

lab: $(STAMP)
	$(BIN)/marketlab lab

# Everything: every tier (pyproject.toml's markers), the lint and type gate included (tests/test_lint.py).
# The slowest fifteen tests are listed at the end, so every run (CI's too) says where the time went.
test: $(STAMP) $(VENV)/.marketlab-part-test
	$(BIN)/python -m pytest --durations=15

# What a developer runs after every change (under two minutes): the tests that need no live model,
# nbgrader, sandbox, root, PostgreSQL, hub or browser, and the lint and type gate.
FAST := not (model or nbgrader or sandbox or root or postgres or hub or browser)
test-fast: $(STAMP) $(VENV)/.marketlab-part-test
	$(BIN)/python -m pytest -q -n auto -m "$(FAST)"

# The lint and type gate alone (configured in pyproject.toml).
lint: $(STAMP) $(VENV)/.marketlab-part-test
	$(BIN)/ruff check marketlab
	$(BIN)/mypy marketlab

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh scripts/engine.sh
	@VENV=$(VENV) bash scripts/setup.sh

# What only grading, the hub or the tests need (system packages, the hub's proxy): installed by the
# command that needs it, on first use; `make lab` never installs or waits for any of it.
$(VENV)/.marketlab-part-%: pyproject.toml scripts/setup.sh instructor/hub/package-lock.json | $(STAMP)
	@VENV=$(VENV) bash scripts/setup.sh $*

# The built-in model's engine, again: the portable build (reused from ~/.cache/marketlab/engine when
# one with the same settings was built before), self-tested. ENGINE_TARGET=x86-64 picks the baseline
# build for a processor that faults even on that one.
ENGINE_TARGET ?=
engine: | $(STAMP)
	@VENV=$(VENV) ENGINE_TARGET=$(ENGINE_TARGET) bash scripts/engine.sh --reinstall
# Opt-in: an engine compiled for this exact processor, self-tested before it replaces the portable one.
engine-native: $(STAMP)
	@VENV=$(VENV) bash scripts/engine.sh native

serve: $(STAMP)
	$(BIN)/marketlab serve

stop: $(STAMP)
	$(BIN)/marketlab serve --stop

doctor: $(STAMP)
	$(BIN)/marketlab doctor

bench: $(STAMP)
	$(BIN)/python -m bench

# The cohort's JupyterHub on this machine, started as root: `sudo make hub INSTRUCTOR=ana` (more options:
# HUB_ARGS="--ip 0.0.0.0 --daily-tokens 100000"; see `marketlab hub start --help`).
INSTRUCTOR ?= instructor
HUB_ARGS ?=
hub: $(STAMP) $(VENV)/.marketlab-part-hub
	$(BIN)/marketlab hub start --instructor $(INSTRUCTOR) $(HUB_ARGS)

# A synthetic cohort of about 30 learners through init, build, release, collect, autograde, feedback, report.
demo: $(STAMP) $(VENV)/.marketlab-part-grading
	$(BIN)/python -m marketlab.course.demo $(CURDIR)/demo

clean:
	-$(BIN)/marketlab serve --stop
	rm -rf $(VENV) .pytest_cache
