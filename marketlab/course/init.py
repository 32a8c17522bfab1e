"""`marketlab course init`: a course folder wired to the labs, graders and a gradebook."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from .. import paths
from .layout import CONFIG_FILE, GRADEBOOK_ENV, SETTINGS_FILE, Course, CourseError, lab_notebooks

FOLDERS = ("source", "release", "submitted", "autograded", "feedback", "reports", "exchange")

CONFIG_TEMPLATE = "nbgrader_config.py.template"  # in the checkout's instructor/; placeholders in {braces}


def init_course(directory: str | Path, *, labs_dir: str | Path | None = None,
                graders_dir: str | Path | None = None, db_url: str | None = None,
                course_id: str = "marketlab", timeout: int = 60, exchange: str | Path | None = None) -> Course:
    """Create (or refresh) a course folder; existing submissions and grades are kept.

    `exchange` is nbgrader's exchange folder (default: exchange/ in the course; a hub passes its own).
    """
    root = Path(directory).resolve()
    labs = Path(labs_dir or paths.labs()).resolve()
    graders = Path(graders_dir or paths.graders()).resolve()
    if not lab_notebooks(labs):
        raise CourseError(f"No lab notebooks found under {labs}. Pass --labs pointing at the folder "
                          "that holds one sub-folder per lab (e.g. labs/01-brief/01-brief.ipynb).")
    if not graders.is_dir():
        raise CourseError(f"The graders folder {graders} does not exist. Pass --graders with the folder "
                          "that holds graders/labNN.py and holdout/.")
    if root.is_relative_to(labs) or labs.is_relative_to(root):
        raise CourseError(f"The course folder {root} must be outside the labs folder {labs} (and not contain it), "
                          "so student work never mixes with the sources.")
    url = db_url or f"sqlite:///{root / 'gradebook.db'}?timeout=60"
    stored_url = _without_password(url)

    root.mkdir(parents=True, exist_ok=True)
    for name in FOLDERS:
        root.joinpath(name).mkdir(exist_ok=True)
    # The exchange is shared by learners on one machine: they must be able to drop submissions in.
    if exchange is None:
        os.chmod(root / "exchange", 0o777)
    _link(root / "graders", graders)
    for notebook in lab_notebooks(labs):
        lab = notebook.parent.name
        (root / "source" / lab).mkdir(exist_ok=True)
        # Notebooks only: whatever a lab run leaves beside them (brief.yaml, workflow.py) is never released.
        _link(root / "source" / lab / notebook.name, notebook)

    settings = {"course_id": course_id, "labs_dir": str(labs), "graders_dir": str(graders),
                "db_url": stored_url}
    (root / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    config = root / CONFIG_FILE
    if not config.exists():
        template = (paths.instructor() / CONFIG_TEMPLATE).read_text()
        config.write_text(template.format(course_id=course_id, root=str(root), env=GRADEBOOK_ENV,
                                                 db_url=stored_url, exchange=str(exchange or root / "exchange"),
                                                 timeout=timeout))
    course = Course(root)
    if stored_url != url:
        os.environ.setdefault(GRADEBOOK_ENV, url)  # this process may use it; nothing writes it down
    with course.gradebook():
        pass  # creates the tables, and proves the database answers
    return course


def _without_password(url: str) -> str:
    """The URL with any password removed (libpq still finds it in PGPASSWORD or ~/.pgpass)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise CourseError(f"{url!r} is not a database URL ({exc}). Use e.g. sqlite:////path/gradebook.db "
                          "or postgresql+psycopg2://user@host/dbname.") from exc
    if parsed.password is None:
        return url
    # URL.set(password=None) keeps the old password; build the URL again without it.
    return URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database,
                      parsed.query).render_as_string(hide_password=False)


def _link(link: Path, target: Path) -> None:
    """Point `link` at `target`, replacing an older link but never a real file or folder."""
    if link.is_symlink():
        if link.resolve() == target:
            return
        link.unlink()
    elif link.exists():
        if link.is_dir() and not any(link.iterdir()):
            link.rmdir()
        else:
            raise CourseError(f"{link} exists and is not a link made by marketlab; move it away and run init again.")
    link.symlink_to(target)
