"""Release and collect through nbgrader's exchange on one machine; submit on a learner's behalf."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .layout import Course, CourseError
from .validate import _last_line


def release(course: Course, labs: list[str] | None = None) -> list[str]:
    """Put the built student versions in the exchange's outbound folder; returns the labs released."""
    api = course.api()
    released = []
    for lab in labs or course.labs():
        if not (course.folder("release") / lab).is_dir():
            raise CourseError(f"{lab} has not been built. Run `marketlab course build` first.")
        outbound = course.folder("exchange") / course.course_id / "outbound" / lab
        if outbound.exists():
            api.unrelease(lab)  # re-releasing replaces the old version
        outcome = api.release_assignment(lab)
        if not outcome["success"]:
            raise CourseError(f"nbgrader could not release {lab}: {_last_line(outcome)}")
        released.append(lab)
    return released


def submit(course: Course, student: str, folder: Path) -> None:
    """Submit a learner's lab folder (named after the lab) into the exchange, as nbgrader submit does."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange.default.submit import ExchangeSubmit

    folder = Path(folder).resolve()
    config = course.config()
    with tempfile.TemporaryDirectory(prefix="marketlab-submit-cache-") as cache:
        config.Exchange.cache = cache
        config.CourseDirectory.student_id = student
        config.CourseDirectory.assignment_id = folder.name
        config.ExchangeSubmit.strict = False
        config.Exchange.path_includes_course = False  # the folder is given directly
        coursedir = CourseDirectory(config=config)
        app = ExchangeSubmit(coursedir=coursedir, authenticator=Authenticator(config=config), config=config)
        app.assignment_dir = str(folder.parent)
        try:
            app.start()
        except Exception as exc:  # nbgrader's ExchangeError carries the reason
            raise CourseError(f"Submitting {folder} for {student} failed: {exc}") from exc


def collect(course: Course, labs: list[str] | None = None) -> dict[str, list[str]]:
    """Copy the newest submission of every learner from the exchange into submitted/; lab -> students."""
    api = course.api()
    collected: dict[str, list[str]] = {}
    for lab in labs or course.labs():
        outcome = api.collect(lab, update=True)
        if not outcome["success"]:
            raise CourseError(f"nbgrader could not collect {lab}: {_last_line(outcome)}")
        collected[lab] = sorted(s for s, l in course.submissions([lab]))
    return collected

