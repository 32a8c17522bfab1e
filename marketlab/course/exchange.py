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
    """Copy the newest submission of every learner from the exchange into submitted/; lab -> students.

    nbgrader's own collect, with two changes (SafeCollect): a submission folder not owned by the
    learner it names is refused, and only plain files are copied (see intake). What was refused
    is listed in `refused_submissions(course)` and printed by the CLI.
    """
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory

    collected: dict[str, list[str]] = {}
    refusals: list[dict[str, str]] = []
    for lab in labs or course.labs():
        config = course.config()
        config.CourseDirectory.assignment_id = lab
        config.ExchangeCollect.update = True
        app = _safe_collect_class()(coursedir=CourseDirectory(config=config),
                                    authenticator=Authenticator(config=config), config=config)
        app.course = course
        app.refusals = refusals
        try:
            app.start()
        except Exception as exc:  # nbgrader's ExchangeError carries the reason
            raise CourseError(f"nbgrader could not collect {lab}: {exc}") from exc
        collected[lab] = sorted(s for s, _ in course.submissions([lab]))
    _write_refusals(course, refusals)
    return collected


def refused_submissions(course: Course) -> list[dict[str, str]]:
    """Submissions the last collect refused: student, lab, why."""
    import json

    try:
        return json.loads((course.root / "grading" / "refused.json").read_text())
    except (OSError, ValueError):
        return []


def _write_refusals(course: Course, refusals: list[dict[str, str]]) -> None:
    import json

    folder = course.root / "grading"
    folder.mkdir(exist_ok=True)
    (folder / "refused.json").write_text(json.dumps(refusals, indent=2))


def expected_owner(course: Course, student: str) -> int:
    """The user id that must own a learner's inbound submission.

    On a multi-user exchange (a hub) each learner is a system user of that name; otherwise (one
    machine, an LMS import, the demo) submissions are made by the course's owner.
    """
    import pwd

    try:
        return pwd.getpwnam(student).pw_uid
    except KeyError:
        return course.root.stat().st_uid


def _safe_collect_class() -> type:
    import datetime
    import os
    import stat

    from nbgrader.exchange.default.collect import ExchangeCollect
    from nbgrader.utils import parse_utc

    OLDEST = datetime.datetime.min  # nbgrader's submission times are naive UTC

    from . import intake

    class SafeCollect(ExchangeCollect):
        """nbgrader's collect that refuses submissions owned by someone else, and copies plain files only."""

        course: Course
        refusals: list[dict[str, str]]
        src_records: list[dict[str, object]]  # nbgrader's, set by init_src()

        def _path_to_record(self, path: str) -> dict[str, object]:
            """nbgrader's record of one inbound folder, checked before nbgrader picks each learner's newest.

            A refused entry (a link or file, someone else's, a name that is no timestamp) is never a
            learner's newest, so a folder planted under another learner's name, however new it claims
            to be, never hides that learner's real submission, and a malformed name never stops the collect.
            """
            filename = os.path.split(path)[1]
            parts = filename.rsplit("+", 3)
            username = parts[0]
            info = os.lstat(path)
            why = ""
            if not stat.S_ISDIR(info.st_mode):
                why = "not a folder (a link or a file)"
            elif info.st_uid != expected_owner(self.course, username):
                why = "its owner is not the learner it names"
            try:
                timestamp = parse_utc(parts[2])
            except Exception:  # dateutil raises several kinds on a made-up name
                timestamp, why = None, why or "its name holds no submission time"
            if why:
                self.refusals.append({"student": username, "lab": self.coursedir.assignment_id, "why": why})
                return {"username": username, "filename": filename, "timestamp": OLDEST, "refused": True}
            return {"username": username, "filename": filename, "timestamp": timestamp}

        def _sort_by_timestamp(self, records: list[dict[str, object]]) -> list[dict[str, object]]:
            """Newest first among a learner's acceptable entries; refused ones only when there is nothing else."""
            kept = [record for record in records if not record.get("refused")]
            return super()._sort_by_timestamp(kept) if kept else records

        def init_src(self) -> None:
            super().init_src()
            self.src_records = [record for record in self.src_records if not record.get("refused")]

        def do_copy(self, src: str, dest: str) -> None:
            refused = intake.copy_tree(Path(src), Path(dest))
            for item in refused:
                self.refusals.append({"student": Path(dest).parent.name, "lab": Path(dest).name,
                                      "why": f"file {item.name!r} refused ({item.why})"})

    return SafeCollect

