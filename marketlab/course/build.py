"""`marketlab course build`: the student version of every lab, generated and proven safe to release."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .layout import Course, CourseError
from .validate import ValidationResult, _last_line, _leaks, validate_lab

SECRET_WORDS = ("graders", "holdout", "BEGIN HIDDEN TESTS", "BEGIN SOLUTION")


@dataclass
class BuildResult:
    """What `build` found for one lab; `ok` when it may be released."""

    lab: str
    generated: bool = False
    validation: ValidationResult | None = None
    leaks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Generated, validated (when asked) and nothing leaks."""
        return (self.generated and not self.leaks and not self.problems
                and (self.validation is None or self.validation.ok))

    def summary(self) -> str:
        """Readable lines for the instructor."""
        lines = [f"{self.lab}: {'ready to release' if self.ok else 'NOT ready'}"]
        if self.validation is not None:
            lines += ["  " + line for line in self.validation.summary().splitlines()]
        lines += [f"  leak: {leak}" for leak in self.leaks]
        lines += [f"  problem: {problem}" for problem in self.problems]
        return "\n".join(lines)


def build(course: Course, labs: list[str] | None = None, *, validate: bool = True,
          timeout: int = 300) -> list[BuildResult]:
    """Generate the student version of each lab with nbgrader, then validate and leak-scan it."""
    labs = labs or course.labs()
    unknown = set(labs) - set(course.labs())
    if unknown:
        raise CourseError(f"Unknown lab(s) {sorted(unknown)}; the course has {course.labs()}.")
    api = course.api()
    secrets = _grader_fingerprints(course.graders_dir)
    results = []
    for lab in labs:
        result = BuildResult(lab)
        outcome = api.generate_assignment(lab, force=True, create=True)
        result.generated = bool(outcome["success"])
        if not result.generated:
            result.problems.append(f"nbgrader generate_assignment failed: {_last_line(outcome)}")
            results.append(result)
            continue
        release = course.folder("release") / lab
        result.leaks = scan_release(course, lab, release, secrets)
        if validate:
            result.validation = validate_lab(course.folder("source") / lab, timeout=timeout,
                                             graders_dir=course.graders_dir, backend="scripted")
        results.append(result)
    return results


def scan_release(course: Course, lab: str, release: Path, secrets: dict[str, str]) -> list[str]:
    """Everything in a release folder that must not reach learners."""
    leaks: list[str] = []
    for source in course.notebooks(lab):
        target = release / source.name
        if not target.exists():
            leaks.append(f"{source.name} is missing from the release")
            continue
        leaks += _leaks(nbformat.read(source, as_version=4), nbformat.read(target, as_version=4), source.name)
    for path in sorted(release.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(release)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in secrets:
            leaks.append(f"{name} is a copy of the instructor's {secrets[digest]}")
        elif path.suffix != ".ipynb":
            leaks.append(f"{name} is not a notebook; only notebooks are released")
    return leaks


def _grader_fingerprints(graders: Path) -> dict[str, str]:
    """sha256 -> name of every grader and holdout file, to recognise copies under any name."""
    prints = {}
    for path in sorted(graders.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            prints[hashlib.sha256(path.read_bytes()).hexdigest()] = f"graders/{path.relative_to(graders)}"
    return prints

