"""The learner's workspace: student versions of the labs, generated once and then left alone.

    created = prepare_workspace(Path("labs"), Path("workspace"))

For each lab folder in `labs_dir`, nbgrader's own API generates the student version (solutions
replaced by stubs, hidden tests and outputs removed) in one temporary course folder, and each
generated notebook is copied to `workspace/<lab>/<name>.ipynb` only if that file does not exist
yet. A learner's work is never overwritten; a lab added later, or a notebook the learner deleted,
appears on the next run. Only notebooks are copied: nothing else of a lab folder (graders, files a
lab run leaves behind) reaches the workspace.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path



class WorkspaceError(RuntimeError):
    """Some labs could not be generated; `created` lists the notebooks that were written anyway."""

    def __init__(self, problems: list[str], created: list[Path]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.created = created


def _missing(labs_dir: Path, workspace: Path) -> dict[str, list[Path]]:
    """Lab name -> its instructor notebooks that have no copy in the workspace yet."""
    missing: dict[str, list[Path]] = {}
    for lab in sorted(p for p in labs_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        notebooks = [nb for nb in sorted(lab.glob("*.ipynb")) if not (workspace / lab.name / nb.name).exists()]
        if notebooks:
            missing[lab.name] = notebooks
    return missing


def prepare_workspace(labs_dir: Path, workspace: Path) -> list[Path]:
    """Copy the student version of every lab notebook missing from `workspace`; return those created.

    Existing files in `workspace` are never touched. Raises WorkspaceError (after writing every lab
    that could be generated) if nbgrader fails on some lab.
    """
    labs_dir, workspace = Path(labs_dir).resolve(), Path(workspace).resolve()
    missing = _missing(labs_dir, workspace)
    if not missing:
        return []  # nothing to do: no nbgrader start-up at all

    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    created: list[Path] = []
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
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with target.open("xb") as out:  # "x": fails rather than overwrite a learner's file
                        out.write(generated.read_bytes())
                except FileExistsError:
                    continue
                created.append(target)
    if problems:
        raise WorkspaceError(problems, created)
    return created


def _last_line(outcome: dict[str, object]) -> str:
    text = str(outcome.get("error") or outcome.get("log") or "no log").strip()
    return text.splitlines()[-1] if text else "no log"
