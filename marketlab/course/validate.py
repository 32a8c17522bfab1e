"""Validate a lab with nbgrader itself: the solution passes, the student version fails, nothing leaks.

    result = validate_lab("labs/01-brief")
    print(result.summary())
    assert result.ok

Steps, each done by nbgrader's own API in a temporary course directory:
generate the student version, autograde the instructor notebook as one submission and the
generated student notebook as another, then compare the scores and search the student version
for solution or hidden-test text.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from .. import environment, paths
from .layout import scripts_on_path

SOLUTION_STUDENT = "solution"
BLANK_STUDENT = "student"
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
_REGIONS = (("### BEGIN SOLUTION", "### END SOLUTION"), ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"))
MIN_SECRET_LINE = 12  # shorter lines ("return x", '"""') are too common to count as a leak


@dataclass(frozen=True)
class CellScore:
    """One graded cell of one autograded submission."""

    notebook: str
    grade_id: str
    score: float | None
    max_score: float
    autograded: bool

    @property
    def full(self) -> bool:
        """True when the cell got all its points."""
        return self.score is not None and self.score >= self.max_score


@dataclass
class ValidationResult:
    """What validate_lab found; `ok` is True only if every requirement holds."""

    lab: str
    solution_scores: list[CellScore] = field(default_factory=list)
    student_scores: list[CellScore] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)

    @property
    def solution_failures(self) -> list[CellScore]:
        """Autograded cells that the instructor's solution does not pass."""
        return [s for s in self.solution_scores if s.autograded and not s.full]

    @property
    def student_passes(self) -> list[CellScore]:
        """Autograded cells that the untouched student version passes (it should fail them all)."""
        return [s for s in self.student_scores if s.autograded and (s.score or 0) > 0]

    @property
    def ok(self) -> bool:
        """True when the solution passes, the student version fails, and nothing leaks."""
        autograded = [s for s in self.solution_scores if s.autograded]
        return (bool(autograded) and not self.solution_failures and not self.student_passes
                and not self.leaks and not self.problems)

    def summary(self) -> str:
        """A readable account of the validation."""
        graded = [s for s in self.solution_scores if s.autograded]
        lines = [f"{self.lab}: {'OK' if self.ok else 'FAILED'} "
                 f"({len(graded)} autograded cells, {sum(s.max_score for s in graded):g} points)"]
        lines += [f"  solution fails {s.notebook}:{s.grade_id} ({s.score}/{s.max_score:g})"
                  for s in self.solution_failures]
        lines += [f"  student version passes {s.notebook}:{s.grade_id} ({s.score}/{s.max_score:g})"
                  for s in self.student_passes]
        lines += [f"  leak: {leak}" for leak in self.leaks]
        lines += [f"  problem: {problem}" for problem in self.problems]
        return "\n".join(lines)


def validate_lab(lab_dir: str | Path, *, workdir: str | Path | None = None, timeout: int = 600,
                 graders_dir: str | Path | None = None, backend: str | None = None) -> ValidationResult:
    """Generate, autograde and leak-check one lab folder (its *.ipynb) with nbgrader's API.

    `backend` (e.g. "scripted") is passed to the grading kernels as MARKETLAB_BACKEND, so a lab's
    Try cells can run without any model; by default the kernels use whatever the environment selects.
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    lab_dir = Path(lab_dir).resolve()
    lab = lab_dir.name
    result = ValidationResult(lab)
    notebooks = sorted(lab_dir.glob("*.ipynb"))
    if not notebooks:
        result.problems.append(f"no notebooks in {lab_dir}")
        return result
    for path in notebooks:
        if _has_outputs(nbformat.read(path, as_version=4)):
            result.problems.append(f"{path.name} is stored with outputs; clear them before committing")

    scripts_on_path()
    with _workspace(workdir) as root, warnings.catch_warnings():
        # nbgrader's gradebook trips SQLAlchemy autoflush warnings that say nothing about the lab
        warnings.filterwarnings("ignore", module=r"nbgrader\..*")
        source = root / "source" / lab
        source.mkdir(parents=True)
        # Notebooks only: files a lab run leaves behind (brief.yaml, labNN_*.py) must never be released.
        for path in notebooks:
            shutil.copy2(path, source / path.name)
        config = Config()
        config.CourseDirectory.root = str(root)
        config.Execute.timeout = timeout
        config.Execute.allow_errors = True
        api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)

        generated = api.generate_assignment(lab, force=True, create=True)
        result.logs["generate_assignment"] = generated.get("log", "")
        if not generated["success"]:
            result.problems.append(f"generate_assignment failed: {_last_line(generated)}")
            return result
        release = root / "release" / lab
        for path in notebooks:
            result.leaks += _leaks(nbformat.read(path, as_version=4),
                                   nbformat.read(release / path.name, as_version=4), path.name)

        course = _validation_course(root, lab_dir.parent, graders_dir)
        versions = ((SOLUTION_STUDENT, source), (BLANK_STUDENT, release))
        for student, origin in versions:
            submitted = root / "submitted" / student / lab
            submitted.mkdir(parents=True)
            for path in notebooks:
                shutil.copy2(origin / path.name, submitted / path.name)
        records = _autograde(course, lab, [student for student, _ in versions], timeout)
        for student, _ in versions:  # the solution's problems are reported first, as they matter most
            graded = records.get(student) or {"status": "failed", "instructor_detail": "nothing was graded"}
            result.logs[f"autograde {student}"] = graded.get("instructor_detail", "")
            if graded.get("status") != "graded":
                detail = graded.get("instructor_detail") or graded.get("reason") or "no detail"
                result.problems.append(f"autograde of the {student} version failed: {detail[-300:]}")
                return result
            scores = _scores(course.db_url, lab, student, _test_cells(notebooks))
            if student == SOLUTION_STUDENT:
                result.solution_scores = scores
            else:
                result.student_scores = scores
    return result


def _validation_course(root: Path, labs_dir: Path, graders_dir: str | Path | None) -> Any:
    """The temporary folder as a course of its own, so the lab is graded exactly as a cohort is."""
    import json

    from .layout import CONFIG_FILE, SETTINGS_FILE, Course

    graders = Path(graders_dir).resolve() if graders_dir else paths.graders()
    (root / "graders").symlink_to(graders, target_is_directory=True)
    (root / SETTINGS_FILE).write_text(json.dumps({"course_id": "validate", "labs_dir": str(labs_dir),
                                                  "db_url": f"sqlite:///{root / 'gradebook.db'}"}))
    (root / CONFIG_FILE).write_text("c = get_config()  # noqa: F821\nc.CourseDirectory.course_id = 'validate'\n")
    return Course(root)


def _autograde(course: Any, lab: str, students: list[str], timeout: int) -> dict[str, dict[str, Any]]:
    """Grade these submissions with the course pipeline, side by side (sandboxed where this machine can
    sandbox); their records by student."""
    from ..grading import sandbox
    from .autograde import autograde
    from .layout import GRADEBOOK_ENV

    limits = sandbox.Limits(cell_timeout=timeout, wall_seconds=max(timeout * 4, 600))
    # The validation course keeps its own SQLite gradebook, whatever gradebook the instructor's course uses.
    with environment.changed({GRADEBOOK_ENV: None}):
        graded = autograde(course, labs=[lab], students=students, workers=len(students), limits=limits,
                           force=True, sandboxed=sandbox.unavailable_reason() is None, progress=False)
    return {record["student"]: record for record in graded}


@contextlib.contextmanager
def _workspace(workdir: str | Path | None) -> Iterator[Path]:
    if workdir is not None:
        path = Path(workdir).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="marketlab-validate-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def _kernel_env(artifacts_dir: Path, graders_dir: str | Path | None, backend: str | None) -> Iterator[None]:
    """Environment the grading kernels inherit: a private artifacts folder, graders, backend."""
    changes = {"MARKETLAB_ARTIFACTS": str(artifacts_dir)}
    if graders_dir is not None:
        changes["MARKETLAB_GRADERS"] = str(Path(graders_dir).resolve())
    if backend is not None:
        changes["MARKETLAB_BACKEND"] = backend
    with environment.changed(changes):
        yield


def _test_cells(notebooks: list[Path]) -> set[tuple[str, str]]:
    """(notebook, grade_id) of autograder test cells: graded, not an answer a person marks."""
    cells = set()
    for path in notebooks:
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                cells.add((path.stem, meta["grade_id"]))
    return cells


def _scores(db_url: str, lab: str, student: str, tests: set[tuple[str, str]]) -> list[CellScore]:
    from nbgrader.api import Gradebook

    scores = []
    with Gradebook(db_url) as gradebook:
        submission = gradebook.find_submission(lab, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                scores.append(CellScore(notebook.name, grade.name, grade.auto_score, grade.max_score,
                                        (notebook.name, grade.name) in tests))
    return scores


def _has_outputs(nb: nbformat.NotebookNode) -> bool:
    return any(cell.get("outputs") or cell.get("execution_count") for cell in nb.cells if cell.cell_type == "code")


def _split_regions(source: str) -> tuple[list[str], list[str]]:
    """(lines outside solution/hidden regions, lines inside them), stripped."""
    public: list[str] = []
    secret: list[str] = []
    end: str | None = None
    for line in source.splitlines():
        stripped = line.strip()
        if end is None:
            starts = [e for b, e in _REGIONS if b in stripped]
            if starts:
                end = starts[0]
            else:
                public.append(stripped)
        elif end in stripped:
            end = None
        else:
            secret.append(stripped)
    return public, secret


def _leaks(source: nbformat.NotebookNode, release: nbformat.NotebookNode, name: str) -> list[str]:
    """Solution or hidden-test text that made it into the student version, and outputs left in it."""
    public: set[str] = set()
    secret: set[str] = set()
    for cell in source.cells:
        outside, inside = _split_regions(cell.source)
        public.update(outside)
        secret.update(line for line in inside if len(line) >= MIN_SECRET_LINE)
    secret -= public
    leaks: list[str] = []
    for index, cell in enumerate(release.cells):
        where = f"{name} cell {index} ({cell.metadata.get('nbgrader', {}).get('grade_id', cell.cell_type)})"
        for marker in MARKERS:
            if marker in cell.source:
                leaks.append(f"{where} still contains '{marker}'")
        for line in cell.source.splitlines():
            if line.strip() in secret:
                leaks.append(f"{where} contains hidden text: {line.strip()[:70]!r}")
    if _has_outputs(release):
        leaks.append(f"{name}: the student version has outputs")
    return leaks


def _last_line(outcome: dict[str, object]) -> str:
    text = str(outcome.get("error") or outcome.get("log") or "no log").strip()
    return text.splitlines()[-1] if text else "no log"
