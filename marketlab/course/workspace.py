"""The learner's workspace: student versions of the labs, generated once and then left alone.

    created = prepare_workspace(Path("labs"), Path("workspace"))

For each lab folder in `labs_dir`, nbgrader's own API generates the student version (solutions
replaced by stubs, hidden tests and outputs removed) in one temporary course folder, and each
generated notebook is copied to `workspace/<lab>/<name>.ipynb` only if that file does not exist
yet. A learner's work is never overwritten; a lab added later, or a notebook the learner deleted,
appears on the next run. Of a graded lab (`NN-name/`) only notebooks are copied: nothing else
(graders, files a lab run leaves behind) reaches the workspace. A folder of ready workflows
(`take-home/`) has no solutions to hide: its notebooks, README and briefs are copied as they are,
because its notebooks read their briefs from beside them.

`learner_jupyter(...)` is how `marketlab lab` starts JupyterLab on the workspace: with the learner's
view of nbgrader (assignment list and validate button; no instructor tools) and no news pop-up.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import MarketlabError
from .layout import LAB_FOLDER

# What a learner does not see: the instructor's nbgrader tools (as lab plugins and server extensions;
# create-assignment has no server part) and JupyterLab's news and update notices.
INSTRUCTOR_LAB_PLUGINS = ("@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                          "@jupyter/nbgrader:course-list")
NEWS_LAB_PLUGINS = ("@jupyterlab/apputils-extension:announcements",)
INSTRUCTOR_SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list")
# What a folder of ready workflows hands the learner: notebooks, their briefs and the README.
AS_IS_SUFFIXES = (".ipynb", ".md", ".yaml", ".yml")


class WorkspaceError(MarketlabError, RuntimeError):
    """Some labs could not be generated; `created` lists the notebooks that were written anyway."""

    def __init__(self, problems: list[str], created: list[Path] | None = None) -> None:
        super().__init__("; ".join(problems), "Run `make lab` again; if a lab still fails, tell your instructor "
                                              "which one (the message above names it).")
        self.problems = problems
        self.created = created or []

    def __reduce__(self) -> tuple[type, tuple[list[str], list[Path]]]:
        return (type(self), (self.problems, self.created))


def _folders(labs_dir: Path) -> list[Path]:
    return sorted(p for p in labs_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _missing(labs_dir: Path, workspace: Path) -> dict[str, list[Path]]:
    """Graded lab name -> its instructor notebooks that have no copy in the workspace yet."""
    missing: dict[str, list[Path]] = {}
    for lab in _folders(labs_dir):
        if not LAB_FOLDER.match(lab.name):
            continue
        notebooks = [nb for nb in sorted(lab.glob("*.ipynb")) if not (workspace / lab.name / nb.name).exists()]
        if notebooks:
            missing[lab.name] = notebooks
    return missing


def _as_is_files(folder: Path) -> list[Path]:
    """The learner-facing files of a folder of ready workflows (no hidden folders, no links)."""
    return sorted(p for p in folder.rglob("*")
                  if p.suffix in AS_IS_SUFFIXES and p.is_file() and not p.is_symlink()
                  and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts))


def _write_new(target: Path, content: bytes) -> bool:
    """Write `target` only if it does not exist ("x": fails rather than overwrite a learner's file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with target.open("xb") as out:
            out.write(content)
    except FileExistsError:
        return False
    return True


def _copy_ready_workflows(labs_dir: Path, workspace: Path) -> list[Path]:
    """Copy what is missing of every folder that is not a graded lab (take-home/); return what was written."""
    created: list[Path] = []
    for folder in _folders(labs_dir):
        if LAB_FOLDER.match(folder.name):
            continue
        for path in _as_is_files(folder):
            target = workspace / folder.name / path.relative_to(folder)
            if not target.exists() and _write_new(target, path.read_bytes()):
                created.append(target)
    return created


def prepare_workspace(labs_dir: Path, workspace: Path) -> list[Path]:
    """Copy the student version of every lab notebook missing from `workspace`; return those created.

    Existing files in `workspace` are never touched. Raises WorkspaceError (after writing every lab
    that could be generated) if nbgrader fails on some lab.
    """
    labs_dir, workspace = Path(labs_dir).resolve(), Path(workspace).resolve()
    ready = _copy_ready_workflows(labs_dir, workspace)
    missing = _missing(labs_dir, workspace)
    if not missing:
        return ready  # nothing to generate: no nbgrader start-up at all

    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    created: list[Path] = list(ready)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="marketlab-workspace-") as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"nbgrader\..*")
        root = Path(tmp)
        config = Config()
        config.CourseDirectory.root = str(root)
        # as `nbgrader generate_assignment --no-db`: a student version needs no gradebook (and no alembic)
        config.GenerateAssignment.no_database = True
        config.SaveCells.enabled = False
        api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
        for lab, notebooks in missing.items():
            source = root / "source" / lab
            source.mkdir(parents=True)
            for path in notebooks:  # notebooks only
                shutil.copy2(path, source / path.name)
            outcome = api.generate_assignment(lab, force=True, create=True)
            if not outcome["success"]:
                problems.append(f"{lab}: nbgrader could not generate the student version ({_last_line(outcome)})")
                continue
            for path in notebooks:
                generated = root / "release" / lab / path.name
                target = workspace / lab / path.name
                if _write_new(target, generated.read_bytes()):
                    created.append(target)
    if problems:
        raise WorkspaceError(problems, created)
    return created


def _last_line(outcome: dict[str, object]) -> str:
    text = str(outcome.get("error") or outcome.get("log") or "no log").strip()
    return text.splitlines()[-1] if text else "no log"


# -- the learner's JupyterLab -----------------------------------------------------------------

@dataclass(frozen=True)
class LabLaunch:
    """How to start the learner's JupyterLab: the command and the environment it runs with."""

    argv: list[str]
    env: dict[str, str]
    as_root: bool


VALIDATE_CELL_TIMEOUT_S = 900  # the slowest lab cell on the built-in model took 635 s on a busy 2-core machine


def learner_config_dir(folder: Path) -> Path:
    """Write the learner's Jupyter configuration into `folder` (made if missing) and return it.

    JupyterLab reads it first (JUPYTER_CONFIG_PATH), before the user's and the venv's own settings.
    """
    folder = Path(folder)
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    server = {
        "ServerApp": {"jpserver_extensions": {name: False for name in INSTRUCTOR_SERVER_EXTENSIONS}},
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"},
    }
    page = {"disabledExtensions": {name: True for name in INSTRUCTOR_LAB_PLUGINS + NEWS_LAB_PLUGINS}}
    _write_json(folder / "jupyter_server_config.json", server)
    _write_json(folder / "labconfig" / "page_config.json", page)
    # nbgrader's Validate button runs every cell with its Execute settings; its 30-second default
    # stops a cell that asks the built-in model for a dozen answers on a laptop's cores.
    _write_json(folder / "nbgrader_config.json", {"Execute": {"timeout": VALIDATE_CELL_TIMEOUT_S}})
    return folder


def _write_json(path: Path, data: object) -> None:
    text = json.dumps(data, indent=2) + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def learner_jupyter(notebook_dir: Path, config_dir: Path, jupyter: str, port: int | None = None,
                    environ: dict[str, str] | None = None) -> LabLaunch:
    """The `jupyter lab` command and environment for a learner: no browser, loopback only.

    As root (containers, cloud notebooks, CI) JupyterLab refuses to start without --allow-root.
    """
    env = dict(os.environ if environ is None else environ)
    extra = env.get("JUPYTER_CONFIG_PATH")
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join([str(learner_config_dir(config_dir)), *([extra] if extra else [])])
    argv = [jupyter, "lab", f"--notebook-dir={notebook_dir}", "--ip=127.0.0.1", "--no-browser"]
    if port:
        argv.append(f"--port={port}")
    as_root = os.geteuid() == 0
    if as_root:
        argv.append("--allow-root")
    return LabLaunch(argv, env, as_root)
