"""The project's set-up promises: one dependency list, two commands, CI runs the tests."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parent.parent


def _normalise(requirement: str) -> str:
    parsed = Requirement(requirement)
    name = re.sub(r"[-_.]+", "-", parsed.name).lower()
    return f"{name}{''.join(sorted(str(parsed.specifier).split(',')))}{parsed.marker or ''}"


def test_environment_yml_mirrors_pyproject_dependencies():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    environment = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    mirrored = [line for line in pip_section if not line.startswith("-e")]
    assert sorted(map(_normalise, mirrored)) == sorted(map(_normalise, declared))
    assert "python=3.11" in environment["dependencies"]


def test_openai_major_version_is_pinned():
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    openai = Requirement(next(d for d in declared if d.startswith("openai")))
    assert "3.0.0" in openai.specifier and "3.99" in openai.specifier and "4.0.0" not in openai.specifier


def test_reading_a_notebook_builds_no_iri_parsers():
    """jsonschema 4.25 on imports rfc3987-syntax, which builds its parsers at once: 1.2 core-seconds in
    every grading worker, CLI and server process that imports nbformat (hence the pin below 4.25)."""
    code = ("import sys, nbformat, nbgrader.apps\n"
            "print(sorted(m for m in ('rfc3987_syntax', 'lark') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert found == "[]", f"importing nbformat and nbgrader loaded {found}: see the jsonschema pin in pyproject.toml"


def test_readme_opens_with_the_two_commands():
    readme = (REPO_ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make lab" in first_block and "make test" in first_block


TEST_ONLY = ("pytest", "pytest-timeout", "nbval", "playwright", "ruff", "mypy")


def test_test_tools_are_an_extra_not_a_runtime_dependency():
    """`make lab` installs the runtime dependencies only: nothing only the tests use."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    runtime = {Requirement(r).name.lower() for r in project["dependencies"]}
    test = {Requirement(r).name.lower() for r in project["optional-dependencies"]["test"]}
    assert not runtime & set(TEST_ONLY)
    assert set(TEST_ONLY) <= test
    setup = (REPO_ROOT / "scripts" / "setup.sh").read_text()
    assert "pip_extra test " in setup, "the test part of the set-up installs the test extra"


def test_the_hub_is_an_extra_that_make_lab_never_installs():
    """The hub's packages come with `make hub` (and the tests), not with the labs."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    runtime = {Requirement(r).name.lower() for r in project["dependencies"]}
    hub = {Requirement(r).name.lower() for r in project["optional-dependencies"]["hub"]}
    assert {"jupyterhub", "jupyterhub-nativeauthenticator"} <= hub and not runtime & hub
    setup = (REPO_ROOT / "scripts" / "setup.sh").read_text()
    hub_part = setup[setup.index("if wants hub; then"):setup.index("if wants test; then")]
    assert "pip_extra hub " in hub_part, "the hub part (make hub, make test) installs the hub extra"


def test_ci_runs_make_test():
    assert re.search(r"^make test$", (REPO_ROOT / ".ci" / "run").read_text(), re.MULTILINE)
