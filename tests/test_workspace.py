"""`make lab` opens the learner's copies: student versions generated once, never overwritten."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import nbformat
import pytest

from marketlab.course.layout import LAB_FOLDER
from marketlab.course.workspace import (INSTRUCTOR_LAB_PLUGINS, NEWS_LAB_PLUGINS, learner_jupyter,
                                        prepare_workspace)

REPO = Path(__file__).resolve().parent.parent
LABS = sorted(p for p in (REPO / "labs").iterdir() if p.is_dir() and list(p.glob("*.ipynb")))
GRADED = [lab for lab in LABS if LAB_FOLDER.match(lab.name)]
TAKE_HOME = REPO / "labs" / "take-home"
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def _copy_labs(target: Path, labs: list[Path]) -> Path:
    """The labs' notebooks (and take-home's briefs and README), plus files that must never reach a workspace."""
    for lab in labs:
        (target / lab.name).mkdir(parents=True)
        for notebook in lab.glob("*.ipynb"):
            shutil.copy2(notebook, target / lab.name / notebook.name)
        if lab == TAKE_HOME:
            shutil.copy2(lab / "README.md", target / lab.name / "README.md")
            shutil.copytree(lab / "briefs", target / lab.name / "briefs")
        (target / lab.name / "secret_grader.py").write_text("ANSWER = 42\n")
        (target / lab.name / "data").mkdir()
        (target / lab.name / "data" / "holdout.csv").write_text("a,b\n1,2\n")
    return target


def _hidden_lines(instructor: nbformat.NotebookNode) -> set[str]:
    """Code lines that only appear between the hidden-test markers of the instructor notebook."""
    hidden: set[str] = set()
    visible: set[str] = set()
    for cell in instructor.cells:
        inside = False
        for line in cell.source.splitlines():
            stripped = line.strip()
            if "### BEGIN HIDDEN TESTS" in stripped:
                inside = True
            elif "### END HIDDEN TESTS" in stripped:
                inside = False
            elif stripped:
                (hidden if inside else visible).add(stripped)
    return hidden - visible


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    root = tmp_path_factory.mktemp("ws")
    labs = _copy_labs(root / "labs", LABS)
    workspace = root / "workspace"
    created = prepare_workspace(labs, workspace)
    return labs, workspace, created


def test_first_run_creates_the_student_versions(prepared: tuple[Path, Path, list[Path]]) -> None:
    labs, workspace, created = prepared
    expected = sorted(workspace / lab.name / nb.name for lab in GRADED for nb in lab.glob("*.ipynb"))
    ready = sorted(workspace / "take-home" / path.relative_to(TAKE_HOME)
                   for path in [*TAKE_HOME.glob("*.ipynb"), TAKE_HOME / "README.md", *TAKE_HOME.glob("briefs/*.yaml")])
    assert sorted(created) == sorted(expected + ready) and len(expected) >= 6 and len(ready) >= 8
    # graded labs: notebooks only; take-home: its notebooks, README and briefs; never graders or data
    assert sorted(p for p in workspace.rglob("*") if p.is_file()) == sorted(expected + ready)
    for path in ready:  # ready workflows have nothing to hide: copied byte for byte
        assert path.read_bytes() == (labs / "take-home" / path.relative_to(workspace / "take-home")).read_bytes()
    for path in expected:
        instructor = nbformat.read(labs / path.parent.name / path.name, as_version=4)
        text = path.read_text(encoding="utf-8")
        student = nbformat.read(path, as_version=4)
        nbformat.validate(student)
        for marker in MARKERS:
            assert marker not in text, f"{path.name} contains {marker!r}"
        assert "use_graders" not in text and "from graders" not in text
        leaked = [line for line in _hidden_lines(instructor) if line in text]
        assert not leaked, f"{path.name} contains hidden test code: {leaked}"
        assert "YOUR CODE HERE" in text, "solutions are replaced by stubs"
        assert not any(c.get("outputs") for c in student.cells if c.cell_type == "code")
        assert [c.metadata["nbgrader"]["grade_id"] for c in student.cells if "nbgrader" in c.metadata] == [
            c.metadata["nbgrader"]["grade_id"] for c in instructor.cells if "nbgrader" in c.metadata]
        assert "export_usage(" in student.cells[-1].source, "the usage-saving cell reaches the learner"


def test_learner_work_survives_and_deleted_notebooks_come_back(tmp_path: Path) -> None:
    labs = _copy_labs(tmp_path / "labs", LABS[:2])
    workspace = tmp_path / "workspace"
    first, second = (workspace / lab.name / f"{lab.name}.ipynb" for lab in LABS[:2])
    assert sorted(prepare_workspace(labs, workspace)) == sorted([first, second])

    nb = nbformat.read(first, as_version=4)
    nb.cells[0].source += "\n\nMy notes: ask the team about budgets."
    nbformat.write(nb, first)
    edited = first.read_bytes()
    (first.parent / "my_notes.txt").write_text("mine\n")

    assert prepare_workspace(labs, workspace) == []  # nothing missing, nothing written
    assert first.read_bytes() == edited
    assert (first.parent / "my_notes.txt").read_text() == "mine\n"

    second.unlink()
    assert prepare_workspace(labs, workspace) == [second]
    assert "YOUR CODE HERE" in second.read_text(encoding="utf-8")
    assert first.read_bytes() == edited

    # a lab added to the course later appears too, without touching the others
    _copy_labs(labs, LABS[2:3])
    third = workspace / LABS[2].name / f"{LABS[2].name}.ipynb"
    assert prepare_workspace(labs, workspace) == [third]
    assert first.read_bytes() == edited


def test_edited_take_home_files_are_kept_and_deleted_ones_come_back(tmp_path: Path) -> None:
    labs = _copy_labs(tmp_path / "labs", [TAKE_HOME])
    (labs / "take-home" / ".hidden.md").write_text("not for learners\n")
    (labs / "take-home" / "scratch.py").write_text("print('not for learners')\n")
    workspace = tmp_path / "workspace"
    prepare_workspace(labs, workspace)
    brief = workspace / "take-home" / "briefs" / "lead-notes.yaml"
    brief.write_text("title: our own lead notes\n")
    notebook = workspace / "take-home" / "lead-notes.ipynb"
    notebook.unlink()
    assert prepare_workspace(labs, workspace) == [notebook]
    assert brief.read_text() == "title: our own lead notes\n"
    assert not (workspace / "take-home" / ".hidden.md").exists() and not (workspace / "take-home" / "scratch.py").exists()


def test_marketlab_lab_help_still_works() -> None:
    done = subprocess.run([sys.executable, "-m", "marketlab.cli", "lab", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--dir" in done.stdout and "--port" in done.stdout and "workspace" in done.stdout

    from marketlab.cli import build_parser

    assert Path(build_parser().parse_args(["lab"]).dir) == REPO / "workspace"
    assert build_parser().parse_args(["lab", "--dir", "elsewhere"]).dir == "elsewhere"


def test_marketlab_lab_prepares_the_folder_before_starting_jupyter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from marketlab import cli
    from marketlab.llm import local

    started: list[list[str]] = []

    class Exec(BaseException):  # exec never returns: nothing in the command may catch it either
        pass

    def fake_exec(path: str, command: list[str], env: dict[str, str]) -> None:
        started.append(command)
        raise Exec

    monkeypatch.setattr(local, "ensure_server", lambda: "http://127.0.0.1:1/v1")
    monkeypatch.setattr(cli.os, "execvpe", fake_exec)
    workspace = tmp_path / "mine"
    with pytest.raises(Exec):
        cli.main(["lab", "--dir", str(workspace)])
    out = capsys.readouterr().out
    assert "Added to your workspace" in out and all(lab.name in out for lab in LABS)
    assert f"--notebook-dir={workspace.resolve()}" in started[0]
    assert sorted({p.parent.name for p in workspace.glob("*/*.ipynb")}) == [lab.name for lab in LABS]
    assert (workspace / "take-home" / "briefs" / "lead-notes.yaml").is_file(), "take-home notebooks find their briefs"

    with pytest.raises(Exec):
        cli.main(["lab", "--dir", str(workspace)])
    assert "already has every lab" in capsys.readouterr().out


# -- the learner's JupyterLab, started for real ----------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _page_config(html: str) -> dict:
    found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
    assert found, "JupyterLab's page has no page config"
    return json.loads(found.group(1))


@pytest.mark.parametrize("uid, root", [(0, True), (1000, False)])
def test_jupyterlab_gets_allow_root_only_as_root(tmp_path, monkeypatch, uid, root):
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    launch = learner_jupyter(tmp_path / "ws", tmp_path / "cfg", "jupyter", 8999, environ={"JUPYTER_CONFIG_PATH": "/x"})
    assert launch.as_root is root and ("--allow-root" in launch.argv) is root
    assert launch.env["JUPYTER_CONFIG_PATH"] == os.pathsep.join([str(tmp_path / "cfg"), "/x"])
    assert "--no-browser" in launch.argv and "--ip=127.0.0.1" in launch.argv and "--port=8999" in launch.argv


@pytest.mark.nbgrader
def test_marketlab_lab_serves_the_learner_view_without_instructor_tools_or_news(
        local_base_url: str, prepared: tuple[Path, Path, list[Path]], tmp_path: Path) -> None:
    _, workspace, _ = prepared
    port, token = _free_port(), "learner-test-token"
    env = {**os.environ, "JUPYTER_TOKEN": token, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "user-config"), "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    log = (tmp_path / "lab.log").open("w")
    # exactly what `make lab` runs; JupyterLab replaces this process, so its pid is JupyterLab's
    lab = subprocess.Popen([sys.executable, "-m", "marketlab", "lab", "--dir", str(workspace), "--port", str(port)],
                           stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert lab.poll() is None, (tmp_path / "lab.log").read_text()[-2000:]
            try:
                if httpx2.get(f"{base}/api/status", params={"token": token}, timeout=2).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            assert time.monotonic() < deadline, "JupyterLab did not start"
            time.sleep(0.2)

        page = _page_config(httpx2.get(f"{base}/lab", params={"token": token}, timeout=30).text)
        disabled = page["disabledExtensions"]
        disabled = set(disabled) if isinstance(disabled, list) else {k for k, v in disabled.items() if v}
        assert set(INSTRUCTOR_LAB_PLUGINS) | set(NEWS_LAB_PLUGINS) <= disabled
        assert not disabled & {"@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:validate-assignment"}
        assert "@jupyter/nbgrader" in {ext["name"] for ext in page["federated_extensions"]}
        assert page["news"] == {"disabled": True}

        def status(path: str) -> int:
            return httpx2.get(f"{base}/{path}", params={"token": token}, timeout=30).status_code

        assert status("formgrader") == 404 and status("formgraders") == 404  # instructor server extensions off
        assert status("assignments") == 400  # the learner's assignment list answers (it wants a course id)
        assert httpx2.get(f"{base}/lab/api/news", params={"token": token}, timeout=30).json() == {"news": []}
        out = (tmp_path / "lab.log").read_text()
        assert "already has every lab" in out
        if os.geteuid() == 0:
            assert "running as root" in out and "--allow-root" in out
    finally:
        os.kill(lab.pid, signal.SIGTERM)
        try:
            lab.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(lab.pid, signal.SIGKILL)
            lab.wait()
        log.close()


@pytest.mark.nbgrader
def test_validate_in_the_learners_jupyter_gives_cells_time_for_the_built_in_model(tmp_path) -> None:
    """Issue 26: Validate timed out at nbgrader's 30-second default on cells that call the model."""
    import os
    import subprocess
    import sys

    from marketlab.course.workspace import VALIDATE_CELL_TIMEOUT_S

    launch = learner_jupyter(tmp_path / "ws", tmp_path / "cfg", "jupyter")
    code = "from nbgrader.apps.baseapp import NbGrader\napp = NbGrader()\napp.load_config_file()\n" \
           "print(app.config.Execute.timeout)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "JUPYTER_CONFIG_PATH": launch.env["JUPYTER_CONFIG_PATH"]})
    assert done.stdout.strip() == str(VALIDATE_CELL_TIMEOUT_S), done.stderr[-500:]
