"""Submissions that come from an LMS as one zip, collected with nbgrader's own ZipCollectApp.

An LMS (Moodle, Canvas, Blackboard, ...) hands the instructor one zip of flat file names:

    <lab>_<student>_attempt_<YYYY-MM-DD-HH-MM-SS>_<notebook>.ipynb

`collect_zip` puts the zip's files of each lab into `downloaded/<lab>/archive/<zip>` and runs nbgrader's
ZipCollectApp with its FileNameCollectorPlugin (configured with `named_regexp(lab)`), so every notebook
lands in `submitted/<student>/<lab>/` with nbgrader's `timestamp.txt` beside it. Names that fit no lab
are reported, never silently dropped. `make_lms_zip` writes such a zip from a `<student>/<lab>/` folder tree
(a synthetic cohort, or a course's own submitted/ folder).
"""

from __future__ import annotations

import logging
import re
import warnings
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from .layout import Course, CourseError

LOG = logging.getLogger(__name__)
TIMESTAMP_FORMAT = "%Y-%m-%d-%H-%M-%S"
VALID_EXT = (".ipynb", ".json")  # notebooks, and the learner's marketlab-usage.json that travels with them
SKIPPED_FILES = ("timestamp.txt",)  # nbgrader's own bookkeeping, carried in the file name instead
# The student id starts with a letter, digit or underscore (never "." or ".."), so a crafted name cannot
# make nbgrader write outside submitted/; the notebook name cannot start with a dot either.
_STUDENT = r"(?P<student_id>[A-Za-z0-9_][A-Za-z0-9_.@+-]*?)"
# Blackboard-style attempt times (2026-11-23-09-42-52), or ISO basic (20261123T094252Z), both UTC.
_REST = r"_attempt_(?P<timestamp>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d|\d{8}T\d{6}Z?)_(?P<file_id>[^/.][^/]*)$"
_DASHED = re.compile(r"(\d{4}-\d\d-\d\d)-(\d\d)-(\d\d)-(\d\d)$")


class Collected(dict[str, list[str]]):
    """lab -> students whose files were collected.

    `unmatched`: zip entries not named like an LMS submission of any lab (reported, never collected);
    `other_labs`: submissions of labs not asked for; `log`: nbgrader's ZipCollectApp log.
    """

    def __init__(self, collected: dict[str, list[str]], unmatched: list[str], other_labs: list[str],
                 log: str = "") -> None:
        super().__init__(collected)
        self.unmatched = unmatched
        self.other_labs = other_labs
        self.log = log


def _collector_plugin() -> type:
    """nbgrader's FileNameCollectorPlugin, reading Blackboard-style attempt times correctly.

    nbgrader parses the timestamp with dateutil, which reads the "-09-42-52" of
    "2026-11-23-09-42-52" as a time zone offset and fails; this subclass hands it "2026-11-23 09:42:52".
    """
    from nbgrader.plugins.zipcollect import FileNameCollectorPlugin

    class LmsFileNameCollectorPlugin(FileNameCollectorPlugin):
        """FileNameCollectorPlugin that turns YYYY-MM-DD-HH-MM-SS into a time dateutil reads."""

        def collect(self, submitted_file: str) -> dict | None:
            info = super().collect(submitted_file)
            if info and isinstance(info.get("timestamp"), str):
                info["timestamp"] = _DASHED.sub(r"\1 \2:\3:\4", info["timestamp"])
            return info

    return LmsFileNameCollectorPlugin


def named_regexp(lab: str | None = None) -> str:
    """FileNameCollectorPlugin.named_regexp for the LMS names of one lab (of any lab without "_" if None).

    nbgrader matches it against the extracted file's absolute path, hence the leading `.*/`.
    """
    prefix = re.escape(lab) if lab else r"[^/_]+"
    return rf".*/{prefix}_{_STUDENT}{_REST}"


def lms_name(lab: str, student: str, timestamp: datetime, filename: str) -> str:
    """The flat file name an LMS gives one submitted file."""
    return f"{lab}_{student}_attempt_{timestamp.strftime(TIMESTAMP_FORMAT)}_{filename}"


def make_lms_zip(submissions_dir: Path, zip_path: Path) -> Path:
    """Write an LMS-style zip of every <student>/<lab>/<file> under `submissions_dir`; returns its path.

    The attempt time is the one in nbgrader's timestamp.txt when the folder has one, else the newest
    modification time of the folder's files (UTC).
    """
    submissions_dir, zip_path = Path(submissions_dir), Path(zip_path)
    if not submissions_dir.is_dir():
        raise CourseError(f"{submissions_dir} is not a folder. Pass the folder that holds <student>/<lab>/.")
    entries: list[tuple[str, Path, datetime]] = []
    for student in sorted(p for p in submissions_dir.iterdir() if p.is_dir()):
        for lab in sorted(p for p in student.iterdir() if p.is_dir()):
            files = sorted(p for p in lab.iterdir()
                           if p.is_file() and p.suffix in VALID_EXT and p.name not in SKIPPED_FILES)
            if not files:
                continue
            stamp = _attempt_time(lab, files)
            entries += [(lms_name(lab.name, student.name, stamp, path.name), path, stamp) for path in files]
    if not entries:
        raise CourseError(f"No submissions under {submissions_dir}: expected <student>/<lab>/<notebook>.ipynb.")
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path, stamp in entries:
            info = zipfile.ZipInfo(name, date_time=max(stamp, datetime(1980, 1, 1)).timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return zip_path


def collect_zip(course: Course, zip_path: Path, lab: str | None = None) -> Collected:
    """Collect an LMS zip into submitted/<student>/<lab>/ with nbgrader's ZipCollectApp.

    With `lab` None every lab of the course that has files in the zip is collected. Each lab's files
    go into downloaded/<lab>/archive/<zip name>.zip under their flat LMS names (so nbgrader never sees
    a folder path from the zip, nor another lab's files), and ZipCollectApp extracts and collects them.
    Zips collected earlier stay in the archive folder and are collected again with it, so nbgrader keeps
    each learner's newest attempt. Returns lab -> students collected; names that match no lab are in
    `unmatched` of the result, and logged.
    """
    zip_path = Path(zip_path)
    names = _zip_names(zip_path)
    known = course.labs()
    if lab and known and lab not in known:
        raise CourseError(f"{lab} is not a lab of this course (labs: {', '.join(known)}). "
                          "Pass one of those, or leave the lab out to collect every lab in the zip.")
    labs = [lab] if lab else known
    by_lab, unmatched = _sort_names(names, sorted(set(labs) | set(known)))
    other_labs: list[str] = []
    for name in [name for name in sorted(by_lab) if lab and name != lab]:
        other_labs += [member for member, _, _ in by_lab.pop(name)]
    if unmatched:
        shown = ", ".join(unmatched[:10]) + (f" and {len(unmatched) - 10} more" if len(unmatched) > 10 else "")
        LOG.warning("%d file(s) in %s are not named <lab>_<student>_attempt_<time>_<file> for a lab of the "
                    "course and were not collected: %s", len(unmatched), zip_path.name, shown)
    if not by_lab:
        example = lms_name(labs[0] if labs else "01-brief", "ana", datetime(2026, 11, 23, 10), "01-brief.ipynb")
        raise CourseError(
            f"No file in {zip_path} is named like an LMS submission of "
            f"{', '.join(labs) or 'a lab in source/'} (expected e.g. {example}). Download the submissions "
            "again with the LMS's 'download all' so the names keep lab, student and attempt time, or pass "
            "the right lab.")

    logs: list[str] = []
    collected: dict[str, list[str]] = {}
    for name in sorted(by_lab):
        archive = course.folder("downloaded") / name / "archive"
        archive.mkdir(parents=True, exist_ok=True)
        # nbgrader extracts only names ending in .zip; an LMS may save "submissions.ZIP" or no suffix
        _subset_zip(zip_path, [member for member, _, _ in by_lab[name]], archive / f"{zip_path.stem}.zip")
        logs.append(_run_zip_collect(course, name))
        students = sorted({student for _, student, _ in by_lab[name]})
        missing = [f"{student}/{file}" for _, student, file in by_lab[name]
                   if not (course.folder("submitted") / student / name / file).is_file()]
        if missing:
            raise CourseError(f"nbgrader's zip collect left out {', '.join(missing)} of {name}. Its log:\n"
                              f"{logs[-1].strip()}")
        collected[name] = students
    return Collected(collected, unmatched, other_labs, "\n".join(logs))


def _run_zip_collect(course: Course, lab: str) -> str:
    """Run ZipCollectApp for one lab on downloaded/<lab>/archive/; returns its log, raises CourseError on failure."""
    from nbgrader.apps.zipcollectapp import ZipCollectApp
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    config = course.config()
    config.ZipCollectApp.collector_plugin = _collector_plugin()
    config.ZipCollectApp.force = True
    config.ExtractorPlugin.force = True
    config.FileNameCollectorPlugin.named_regexp = named_regexp(lab)
    config.FileNameCollectorPlugin.valid_ext = list(VALID_EXT)
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id = lab
    app = ZipCollectApp(coursedir=coursedir, config=config)
    quiet = app.log.handlers[:]  # the app's own console handler: its log is returned instead
    for handler in quiet:
        app.log.removeHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"nbgrader\..*")
            outcome = capture_log(app)
    finally:
        for handler in quiet:
            app.log.addHandler(handler)
    log = str(outcome.get("log", ""))
    if not outcome["success"]:
        detail = log.strip() or str(outcome.get("error", "")).strip()
        raise CourseError(f"nbgrader's zip collect failed for {lab}: {detail.splitlines()[-1] if detail else '?'}. "
                          f"Check the files in {course.folder('downloaded') / lab / 'archive'} and run again.")
    return log


def _zip_names(zip_path: Path) -> list[str]:
    """The file names inside a zip, or a CourseError that says what to do."""
    if not zip_path.is_file():
        raise CourseError(f"{zip_path} does not exist. Pass the zip you downloaded from the LMS.")
    if not zipfile.is_zipfile(zip_path):
        raise CourseError(f"{zip_path} is not a zip file. Download the submissions from the LMS as one zip "
                          "('download all submissions') and pass that file.")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            return [info.filename for info in archive.infolist() if not info.is_dir()]
    except zipfile.BadZipFile as exc:
        raise CourseError(f"{zip_path} is a damaged zip ({exc}). Download it from the LMS again.") from exc


def _subset_zip(source: Path, members: list[str], target: Path) -> None:
    """Copy some members of a zip into a new zip, each under its base name only."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as subset:
        for member in members:
            info = original.getinfo(member)
            copy = zipfile.ZipInfo(member.rsplit("/", 1)[-1], date_time=info.date_time)
            copy.compress_type = zipfile.ZIP_DEFLATED
            copy.external_attr = 0o644 << 16
            subset.writestr(copy, original.read(member))


def _sort_names(names: list[str], labs: list[str]) -> tuple[dict[str, list[tuple[str, str, str]]], list[str]]:
    """lab -> [(member, student, file)] of names matching a lab's LMS pattern, and the names matching none."""
    patterns = [(lab, re.compile(named_regexp(lab))) for lab in sorted(labs, key=len, reverse=True)]
    if not patterns:
        patterns = [("", re.compile(named_regexp(None)))]
    by_lab: dict[str, list[tuple[str, str, str]]] = {}
    unmatched: list[str] = []
    for name in names:
        base = name.rsplit("/", 1)[-1]
        if base.startswith("._") or "__MACOSX/" in name:
            continue  # macOS resource forks, not submissions
        for lab, pattern in patterns:
            match = pattern.match("/" + base)
            if match and Path(base).suffix in VALID_EXT:
                lab = lab or base.split("_", 1)[0]
                by_lab.setdefault(lab, []).append((name, match["student_id"], match["file_id"]))
                break
        else:
            unmatched.append(name)
    return by_lab, unmatched


def _attempt_time(folder: Path, files: list[Path]) -> datetime:
    """When a submission was made: nbgrader's timestamp.txt if present, else its newest file (UTC)."""
    stamp_file = folder / "timestamp.txt"
    if stamp_file.is_file():
        from nbgrader.utils import parse_utc

        try:
            return parse_utc(stamp_file.read_text().strip()).replace(microsecond=0)
        except (ValueError, OverflowError):
            pass
    newest = max(path.stat().st_mtime for path in files)
    return datetime.fromtimestamp(newest, tz=UTC).replace(tzinfo=None, microsecond=0)
