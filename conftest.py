"""Test session set-up: an isolated marketlab home, the local backend, one real model server.

Everything here runs before any test module or notebook kernel starts, and kernels inherit the
environment, so labs run under nbval talk to the same server the tests use.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.learner_workspace import LearnerWorkspace

REPO_ROOT = Path(__file__).resolve().parent
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="marketlab-test-home-"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pytest_configure(config: pytest.Config) -> None:
    """Point every test and kernel at a private home and the local backend."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MARKETLAB_BACKEND", "MARKETLAB_MODEL", "MARKETLAB_GRADEBOOK_URL",
                 "MARKETLAB_COURSE"):
        os.environ.pop(name, None)
    os.environ["MARKETLAB_HOME"] = str(_SESSION_HOME)
    os.environ["MARKETLAB_PORT"] = str(_free_port())


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the session's model server."""
    from marketlab.llm import local

    local.stop_server()


@pytest.fixture(scope="session")
def local_base_url() -> str:
    """Base URL of the session's real local model server (started on first use)."""
    from marketlab.llm.local import ensure_server

    return ensure_server()


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private MARKETLAB_HOME for one test, still using the session's server port."""
    import shutil

    home = tmp_path / "home"
    home.mkdir()
    state = _SESSION_HOME / "server.json"
    if state.exists():
        shutil.copy(state, home / "server.json")
    monkeypatch.setenv("MARKETLAB_HOME", str(home))
    yield home


@pytest.fixture(scope="session")
def learner_workspace(tmp_path_factory: pytest.TempPathFactory) -> LearnerWorkspace:
    """Labs' solutions run once per session in a learner's workspace (tests/support/learner_workspace.py)."""
    from tests.support.learner_workspace import LearnerWorkspace

    return LearnerWorkspace(tmp_path_factory.mktemp("learner-workspace"))


@pytest.fixture(autouse=True)
def _no_gradebook_url_leaks() -> Iterator[None]:
    """A gradebook URL one test puts in the environment (init_course does, for a password) ends with it."""
    before = os.environ.get("MARKETLAB_GRADEBOOK_URL")
    yield
    if before is None:
        os.environ.pop("MARKETLAB_GRADEBOOK_URL", None)
    else:
        os.environ["MARKETLAB_GRADEBOOK_URL"] = before


# ---- Tiers: what a test needs, as a marker (declared in pyproject.toml). `make test-fast` runs the tests
# that need none of them; `make test` runs everything. A test is marked by what it requests where that can
# be seen (a fixture, a notebook), and by its file's `pytestmark` where the whole file needs a resource.
TIERS = ("model", "nbgrader", "sandbox", "root", "postgres", "hub", "browser")
# Fixtures that bring a resource with them: any test requesting one (directly or through another fixture)
# gets the tier, so a new test is marked without a thought.
FIXTURE_TIERS = {
    "local_base_url": ("model",),
    "postgres": ("postgres",),
    "learner_workspace": ("nbgrader",),  # runs a lab's notebook in a real kernel
}
# Files whose owner marks them here rather than in the file (the hub's tests).
FILE_TIERS = {
    "test_hub.py": ("hub", "root", "sandbox", "browser", "nbgrader", "model"),
}


# Files whose every test needs a resource, and the tier each test there must carry: checked at every
# collection, so a heavy test that lost its marker stops the run instead of slipping into the fast tier.
HEAVY_FILES = {
    "tests/test_course_pipeline.py": "nbgrader",
    "tests/test_grading_attacks.py": "sandbox",
    "tests/test_grading_boundary.py": "sandbox",
    "tests/test_sandbox_limits.py": "sandbox",
    "tests/test_course_postgres.py": "postgres",
    "tests/test_course_cohort.py": "nbgrader",
    "tests/test_course_feedback_report.py": "nbgrader",
    "tests/test_engine.py": "model",
    "tests/test_llm_local.py": "model",
    "tests/test_llm_concurrency.py": "model",
    "tests/test_llm_refusals.py": "nbgrader",
    "tests/test_hub.py": "hub",
    "tests/test_make_lab_user.py": "model",
}


def unmarked_heavy_tests(items: list[pytest.Item]) -> list[str]:
    """Tests of HEAVY_FILES (and lab notebooks under nbval) without the tier their file needs."""
    missing = []
    for item in items:
        path = Path(str(item.path))
        name = path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else path.name
        tier = "model" if path.suffix == ".ipynb" else HEAVY_FILES.get(name)
        if tier and item.get_closest_marker(tier) is None:
            missing.append(f"{item.nodeid} (needs {tier})")
    return missing


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with the tiers its fixtures, its file or its kind (a lab notebook under nbval) need."""
    for item in items:
        path = Path(str(item.path))
        wanted: set[str] = set(FILE_TIERS.get(path.name, ()))
        if path.suffix == ".ipynb":  # nbval runs a lab on the live built-in model, through nbgrader's cells
            wanted |= {"model", "nbgrader"}
        for fixture in getattr(item, "fixturenames", ()):
            wanted |= set(FIXTURE_TIERS.get(fixture, ()))
        for tier in sorted(wanted):
            if item.get_closest_marker(tier) is None:
                item.add_marker(getattr(pytest.mark, tier))
    missing = unmarked_heavy_tests(items)
    if missing:
        raise pytest.UsageError("Tests that need a resource carry no tier marker (pytest.mark.<tier>), so "
                                "`make test-fast` would run them:\n  " + "\n  ".join(missing))


@pytest.fixture(autouse=True)
def _model_only_when_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test without the `model` marker that starts the built-in model fails, saying to mark it."""
    if request.node.get_closest_marker("model") is not None:
        return
    from marketlab.llm import local

    def refuse() -> str:
        pytest.fail(f"{request.node.nodeid} uses the built-in model: mark it `model` (pytest.mark.model), "
                    "or request the local_base_url fixture", pytrace=False)

    monkeypatch.setattr(local, "ensure_server", refuse)
