"""Where everything of a course lives, and how to reach nbgrader for it.

A course folder made by `marketlab course init`:

    nbgrader_config.py          nbgrader's configuration (course id, gradebook, exchange, timeouts)
    marketlab-course.json       marketlab's settings: where the labs and graders are
    source/<lab>/<lab>.ipynb    symbolic links to the instructor notebooks in labs/
    graders/                    hidden graders and holdout data (instructor side only)
    release/<lab>/              student versions, made by `course build`
    exchange/                   nbgrader's exchange: outbound releases, inbound submissions
    submitted/<student>/<lab>/  collected submissions
    autograded/<student>/<lab>/ graded copies of the notebooks (nbgrader's)
    grading/<student>/<lab>.json the grading record of each submission (marketlab.grading.records)
    feedback/<student>/         HTML feedback per learner
    reports/                    grades.csv and report.html
    gradebook.db                the SQLite gradebook, unless another SQLAlchemy URL is configured
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketlab.errors import MarketlabError
from marketlab.grading.records import GradingRecord, read, record_path

SETTINGS_FILE = "marketlab-course.json"
# A graded lab is a folder named NN-name (00-first-steps, 90-attack) or capstone; others (take-home/) are not graded.
LAB_FOLDER = re.compile(r"^(\d{2}-[A-Za-z0-9_-]+|capstone)$")


def graders_module(lab: str) -> str:
    """The name of a lab's graders file in graders/: lab02 for 02-workflow, capstone for capstone."""
    prefix = lab.split("-", 1)[0]
    return f"lab{prefix}" if prefix.isdigit() else re.sub(r"[^A-Za-z0-9_]", "_", lab)


def lab_notebooks(labs_dir: str | Path) -> list[Path]:
    """The notebooks of the graded labs under labs_dir: labs/NN-name/*.ipynb, in order."""
    return sorted(nb for nb in Path(labs_dir).glob("*/*.ipynb") if LAB_FOLDER.match(nb.parent.name))
CONFIG_FILE = "nbgrader_config.py"
GRADING_RECORD = "marketlab-grading.json"
USAGE_FILE = "marketlab-usage.json"
GRADEBOOK_ENV = "MARKETLAB_GRADEBOOK_URL"


class CourseError(MarketlabError):
    """A course folder is missing or inconsistent; the message says how to fix it."""


@dataclass(frozen=True)
class Course:
    """One course folder; every `marketlab course` command works on one of these."""

    root: Path

    @classmethod
    def find(cls, path: str | Path | None = None) -> Course:
        """The course at `path`, else $MARKETLAB_COURSE, else the nearest folder up from here that has one."""
        start = Path(path or os.environ.get("MARKETLAB_COURSE") or Path.cwd()).resolve()
        for folder in (start, *start.parents):
            if (folder / SETTINGS_FILE).is_file():
                return cls(folder)
        raise CourseError(
            f"No marketlab course found at or above {start}. Create one with "
            "`marketlab course init DIR`, then run commands inside DIR or pass --course DIR."
        )

    # --- settings ---------------------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        """The contents of marketlab-course.json."""
        try:
            return json.loads((self.root / SETTINGS_FILE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CourseError(f"{self.root / SETTINGS_FILE} cannot be read ({exc}). "
                              "Run `marketlab course init` again on this folder to rewrite it.") from exc

    @property
    def course_id(self) -> str:
        """nbgrader's course id (used in the exchange)."""
        return str(self.settings.get("course_id", "marketlab"))

    @property
    def labs_dir(self) -> Path:
        """The folder the instructor notebooks come from."""
        return Path(self.settings["labs_dir"])

    @property
    def graders_dir(self) -> Path:
        """The hidden graders and holdout data, never released."""
        return self.root / "graders"

    @property
    def db_url(self) -> str:
        """The gradebook's SQLAlchemy URL: $MARKETLAB_GRADEBOOK_URL wins, so a password never sits in a file."""
        return os.environ.get(GRADEBOOK_ENV) or str(self.settings["db_url"])

    # --- folders ----------------------------------------------------------------------------
    def folder(self, name: str) -> Path:
        """A top-level folder of the course (source, release, submitted, autograded, feedback, reports, exchange)."""
        return self.root / name

    def labs(self) -> list[str]:
        """Names of the labs in source/, in order."""
        source = self.folder("source")
        return sorted(p.name for p in source.iterdir() if p.is_dir()) if source.is_dir() else []

    def notebooks(self, lab: str) -> list[Path]:
        """The instructor notebooks of one lab."""
        return sorted((self.folder("source") / lab).glob("*.ipynb"))

    def students(self) -> list[str]:
        """Everyone with at least one collected submission."""
        submitted = self.folder("submitted")
        return sorted(p.name for p in submitted.iterdir() if p.is_dir()) if submitted.is_dir() else []

    def submissions(self, labs: list[str] | None = None) -> list[tuple[str, str]]:
        """(student, lab) of every collected submission, optionally only of some labs."""
        wanted = set(labs or self.labs())
        return [(student, lab) for student in self.students()
                for lab in sorted(p.name for p in (self.folder("submitted") / student).iterdir() if p.is_dir())
                if lab in wanted]

    def grading_record_path(self, student: str, lab: str) -> Path:
        """Where autograde writes what happened to one submission (a folder no grading kernel sees)."""
        return record_path(self, student, lab)

    def grading_record(self, student: str, lab: str) -> GradingRecord | None:
        """The typed GradingRecord of one submission, or None if it has not been graded."""
        return read(self, student, lab)

    # --- nbgrader ---------------------------------------------------------------------------
    def config(self) -> Any:
        """nbgrader's traitlets Config, read from nbgrader_config.py, with the gradebook URL applied."""
        from traitlets.config.loader import PyFileConfigLoader

        path = self.root / CONFIG_FILE
        if not path.is_file():
            raise CourseError(f"{path} is missing. Run `marketlab course init {self.root}` to recreate it.")
        config = PyFileConfigLoader(CONFIG_FILE, path=str(self.root)).load_config()
        config.CourseDirectory.root = str(self.root)
        config.CourseDirectory.db_url = self.db_url
        return config

    def api(self, config: Any = None) -> Any:
        """nbgrader's NbGraderAPI for this course."""
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        scripts_on_path()
        config = config or self.config()
        return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)

    def gradebook(self) -> Any:
        """nbgrader's Gradebook on this course's database (use it in a `with` block)."""
        from nbgrader.api import Gradebook

        scripts_on_path()
        return Gradebook(self.db_url, course_id=self.course_id)


def scripts_on_path() -> None:
    """nbgrader runs the `alembic` command: find it beside this Python even when the venv is not activated."""
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([scripts, path])
