"""A synthetic cohort of learners' submissions, for demos, tests and benchmarks of the grading pipeline.

    learners = make_cohort(course.folder("source"), course.folder("release"), Path("cohort"), size=30)
    for learner in learners:
        print(learner.student_id, learner.profile, learner.kind, learner.note)

Every learner gets one notebook per lab notebook, made from nbgrader's student version (release/):

- "correct": every answer cell filled as a learner who got it right would fill it;
- "partial": some answer cells filled, the rest left as the release stub;
- "broken": every answer filled, with one plausible mistake per lab that costs points (kind
  syntax_error, name_error, wrong_type), or nothing filled at all (kind empty);
- "hostile": one learner per kind in HOSTILE_KINDS, whose notebook of the first lab attacks the grader
  (endless loops, memory, killing the kernel, reading hidden tests, ...); their other labs are correct.

`size` counts the ordinary learners, split 40:30:15 into correct, partial and broken (30 gives 14, 11
and 5; the broken kinds take turns, so all four appear once 4 learners are broken). The hostile
learners, one per kind, come on top of them when `hostile` is True. The same seed gives byte-identical files; the output
folder must be empty or hold the same cohort, so no stale hostile notebook is ever zipped with it.

NEVER execute the hostile notebooks outside a sandbox: fork_bomb and memory_bomb take the machine down.
"""

from __future__ import annotations

import builtins
import copy
import keyword
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .layout import CourseError

PROFILE_SHARES = {"correct": 40, "partial": 30, "broken": 15}  # of the ordinary learners, largest remainder
BROKEN_KINDS = ("syntax_error", "name_error", "wrong_type", "empty")
HOSTILE_KINDS = (
    "infinite_loop", "memory_bomb", "sys_exit", "killed_kernel", "corrupt_json", "deleted_cells",
    "reordered_cells", "edited_tests", "read_holdout", "read_graders", "huge_output", "fork_bomb",
    "network", "write_outside",
)
HOSTILE_NOTES = {
    "infinite_loop": "a solution cell ends in `while True: pass`",
    "memory_bomb": "a solution cell allocates 8 GiB, then keeps appending 512 MiB blocks",
    "sys_exit": "a solution cell calls sys.exit(3)",
    "killed_kernel": "a solution cell sends SIGKILL to its own kernel",
    "corrupt_json": "the .ipynb file is cut to half its bytes, so it is not JSON",
    "deleted_cells": "the first autograded test cell is deleted",
    "reordered_cells": "two solution cells are swapped",
    "edited_tests": "every autograded test cell is replaced by print(\"all good\")",
    "read_holdout": "a solution cell prints every file under grader_path()/holdout",
    "read_graders": "a solution cell imports graders.lab00 and prints its source",
    "huge_output": "a solution cell prints 200 MB in one line, then 500 lines of 1 MB",
    "fork_bomb": "a solution cell forks processes in an endless loop",
    "network": "a solution cell opens connections to 127.0.0.1:1 and pypi.org:443",
    "write_outside": "a solution cell writes files to /tmp, the home folder and ../../",
}
NAMES = (
    "ana", "ben", "chloe", "dev", "emma", "farid", "gina", "hugo", "ines", "jon", "kira", "leo", "maya",
    "nils", "omar", "priya", "quinn", "rosa", "sam", "tara", "uma", "vik", "wen", "xavi", "yara", "zoe",
)
SOLUTION_BEGIN = "### BEGIN SOLUTION"
SOLUTION_END = "### END SOLUTION"


@dataclass(frozen=True)
class Learner:
    """One synthetic learner: who, what kind of work, and where their notebooks are."""

    student_id: str
    profile: str  # correct, partial, broken, hostile
    kind: str  # the profile for correct/partial; the mistake or attack otherwise
    note: str  # one line: what the learner's notebooks do
    labs: dict[str, Path] = field(default_factory=dict)  # lab -> the learner's folder of that lab


def make_cohort(source_dir: Path, release_dir: Path, out_dir: Path, *, size: int = 30, seed: int = 0,
                hostile: bool = True) -> list[Learner]:
    """Write out_dir/<student>/<lab>/<nb>.ipynb for a synthetic cohort and return its learners."""
    source_dir, release_dir, out_dir = Path(source_dir), Path(release_dir), Path(out_dir)
    labs = _labs(source_dir, release_dir)
    rng = random.Random(f"marketlab-cohort:{seed}")
    plan: list[tuple[str, str, str]] = []  # (student_id, profile, kind)
    profiles = [p for p, n in _split(size, PROFILE_SHARES).items() for _ in range(n)]
    rng.shuffle(profiles)
    names = list(NAMES)
    rng.shuffle(names)
    broken = 0
    for index, profile in enumerate(profiles, start=1):
        kind = profile
        if profile == "broken":
            kind = BROKEN_KINDS[broken % len(BROKEN_KINDS)]
            broken += 1
        plan.append((f"{names[(index - 1) % len(names)]}_{index:02d}", profile, kind))
    if hostile:
        plan += [(f"x_{kind}", "hostile", kind) for kind in HOSTILE_KINDS]

    strangers = sorted(p.name for p in out_dir.iterdir() if p.name not in {sid for sid, _, _ in plan}) \
        if out_dir.is_dir() else []
    if strangers:
        raise CourseError(f"{out_dir} already holds {', '.join(strangers[:5])}, which are not learners of this "
                          "cohort; write the cohort to an empty folder (or the folder of the same cohort).")
    hostile_lab = next(iter(labs))
    learners = []
    for student, profile, kind in plan:
        notes: list[str] = []
        folders: dict[str, Path] = {}
        for lab, notebooks in labs.items():
            folder = out_dir / student / lab
            folder.mkdir(parents=True, exist_ok=True)
            folders[lab] = folder
            for name, (source, release) in notebooks.items():
                cell_rng = random.Random(f"marketlab-cohort:{seed}:{student}:{lab}:{name}")
                if profile == "hostile" and lab == hostile_lab:
                    data = _hostile(kind, source, release, student)
                else:
                    nb, note = _ordinary(profile if profile != "hostile" else "correct", kind,
                                         source, release, cell_rng)
                    if note:
                        notes.append(f"{note} in {name}")
                    data = nbformat.writes(nb).encode() + b"\n"
                (folder / f"{name}.ipynb").write_bytes(data)
        learners.append(Learner(student, profile, kind, _note(profile, kind, notes, hostile_lab), folders))
    return learners


def expected_full_marks(source_dir: Path) -> dict[str, float]:
    """Points of the autograded test cells per lab, from the instructor notebooks' nbgrader metadata."""
    marks: dict[str, float] = {}
    for lab in sorted(p for p in Path(source_dir).iterdir() if p.is_dir()):
        notebooks = sorted(lab.glob("*.ipynb"))
        if not notebooks:
            continue
        marks[lab.name] = float(sum(
            float(_meta(cell).get("points", 0) or 0)
            for path in notebooks for cell in nbformat.read(path, as_version=4).cells
            if cell.cell_type == "code" and _meta(cell).get("grade") and not _meta(cell).get("solution")))
    return marks


def completed_source(instructor_source: str, cell_type: str = "code") -> str:
    """The answer cell as a learner who got it right would leave it: the stub replaced by the solution.

    A solution region inside a function keeps the lines around it (the `def` line and docstring);
    a top-level code region replaces the stub above it (as in `objective`), so only the solution
    and what follows it remain. Markdown keeps the question above the answer.
    """
    lines = instructor_source.splitlines()
    starts = [i for i, line in enumerate(lines) if SOLUTION_BEGIN in line]
    if not starts:
        return instructor_source
    first = lines[starts[0]]
    top_level_code = cell_type == "code" and first == first.lstrip()
    out: list[str] = []
    kept = 0  # lines up to the end of the previous region
    for line in lines:
        if SOLUTION_BEGIN in line:
            if top_level_code:
                del out[kept:]  # the stub above a top-level region is what the learner rewrites
        elif SOLUTION_END in line:
            kept = len(out)
        else:
            out.append(line)
    return "\n".join(out).strip("\n")


# --- ordinary learners ------------------------------------------------------------------------


def _ordinary(profile: str, kind: str, source: nbformat.NotebookNode, release: nbformat.NotebookNode,
              rng: random.Random) -> tuple[nbformat.NotebookNode, str]:
    """A learner notebook of the given profile, and a short note of what is in it."""
    nb = copy.deepcopy(release)
    answers = _answer_cells(nb)
    solutions = _solutions(source)
    if profile == "correct" or (profile == "broken" and kind != "empty"):
        fill = answers
    elif profile == "partial":
        count = rng.randint(1, len(answers) - 1) if len(answers) > 1 else 0
        fill = sorted(rng.sample(answers, count))
    else:  # broken/empty
        fill = []
    for index in fill:
        grade_id = _meta(nb.cells[index]).get("grade_id")
        if grade_id in solutions:
            nb.cells[index].source = solutions[grade_id]
    note = ""
    if profile == "partial":
        note = f"{len(fill)} of {len(answers)} answers"
    elif profile == "broken" and kind != "empty":
        note = _break(kind, nb, rng)
    return nb, note


def _break(kind: str, nb: nbformat.NotebookNode, rng: random.Random) -> str:
    """Put one plausible learner mistake into a filled notebook; says which cell."""
    code = [i for i in _answer_cells(nb) if nb.cells[i].cell_type == "code"]
    if not code:
        return "no code answers to break"
    if kind == "wrong_type":
        returning = [i for i in code if _returns(nb.cells[i].source)]
        if returning:
            index = rng.choice(returning)
            lines = nb.cells[index].source.splitlines()
            last, (indent, value) = _returns(nb.cells[index].source)[-1]
            lines[last] = f"{indent}print({value})"  # prints instead of returning, so it returns None
            nb.cells[index].source = "\n".join(lines)
            return f"wrong_type: {_grade_id(nb, index)} prints its result and returns None"
        kind = "name_error"  # nothing returns a value in this notebook
    index = rng.choice(code)
    source = nb.cells[index].source
    if kind == "syntax_error":
        nb.cells[index].source = source + '\nprint("done"'
        return f"syntax_error: unclosed parenthesis in {_grade_id(nb, index)}"
    misspelt = _misspell(source)
    if misspelt:
        nb.cells[index].source, name = misspelt
        return f"name_error: {_grade_id(nb, index)} misspells {name} as {_typo(name)}"
    name = _defined_name(source) or "answer"
    nb.cells[index].source = source + f"\nprint({_typo(name)})"
    return f"name_error: {_grade_id(nb, index)} prints the misspelt {_typo(name)}"


def _misspell(source: str) -> tuple[str, str] | None:
    """The cell with one name misspelt where it costs points, and that name; None if nothing fits.

    In a function, the first use of a parameter in the body (calling it raises NameError);
    at top level, the first class or assignment target (the check cell below raises NameError).
    """
    lines = source.splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"\s*def \w+\((.*)\)", line)
        if not match:
            continue
        params = [m.group(1) for m in (re.match(r"\s*\*{0,2}(\w+)", p) for p in match.group(1).split(","))
                  if m and m.group(1) != "self"]
        for param in params:
            for body in range(number + 1, len(lines)):
                if lines[body].strip().startswith(('"""', "'''", "#")):
                    continue  # a docstring or comment may name the parameter too
                if re.search(rf"\b{param}\b", lines[body]):
                    lines[body] = re.sub(rf"\b{param}\b", _typo(param), lines[body], count=1)
                    return "\n".join(lines), param
    for number, line in enumerate(lines):
        match = re.match(r"class\s+([A-Za-z_]\w*)|([A-Za-z_]\w*)\s*=(?!=)", line)
        if match:
            group = 1 if match.group(1) else 2
            start, end = match.span(group)
            lines[number] = line[:start] + _typo(match.group(group)) + line[end:]
            return "\n".join(lines), match.group(group)
    return None


def _returns(source: str) -> list[tuple[int, tuple[str, str]]]:
    """(line number, (indent, value)) of one-line `return value` statements in a cell."""
    found = []
    for number, line in enumerate(source.splitlines()):
        match = re.match(r"(\s+)return (\S.*)$", line)
        if match:
            try:
                compile(match.group(2), "<return>", "eval")
            except SyntaxError:
                continue  # a value spread over several lines
            found.append((number, (match.group(1), match.group(2))))
    return found


def _defined_name(source: str) -> str | None:
    """The first function, class or variable a cell defines at top level."""
    match = re.search(r"^(?:def|class)\s+([A-Za-z_]\w*)|^([A-Za-z_]\w*)\s*=", source, re.M)
    return (match.group(1) or match.group(2)) if match else None


def _typo(name: str) -> str:
    """A misspelling a learner might make (the last two letters swapped), never a keyword or builtin."""
    swapped = name[:-2] + name[-1] + name[-2] if len(name) > 2 else name
    for typo in (swapped, name + name[-1], name + "s", name + "_"):
        if typo != name and not keyword.iskeyword(typo) and not hasattr(builtins, typo):
            return typo
    return name + "_x"


# --- hostile learners -------------------------------------------------------------------------


def _payload(kind: str, student: str) -> str:
    """The code a hostile learner appends to a solution cell."""
    if kind == "infinite_loop":
        return "while True:\n    pass"
    if kind == "memory_bomb":
        return ("hog = bytearray(8 * 1024**3)\nblocks = []\nwhile True:\n"
                "    blocks.append(bytearray(512 * 1024**2))")
    if kind == "sys_exit":
        return "import sys\nsys.exit(3)"
    if kind == "killed_kernel":
        return "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    if kind == "read_holdout":
        return ("import pandas as pd\nfrom marketlab.checks import grader_path\n"
                "for path in sorted((grader_path() / \"holdout\").rglob(\"*\")):\n"
                "    if not path.is_file():\n        continue\n"
                "    print(\"=====\", path)\n"
                "    if path.suffix == \".csv\":\n        print(pd.read_csv(path).to_string())\n"
                "    else:\n        print(open(path, encoding=\"utf-8\", errors=\"replace\").read())")
    if kind == "read_graders":
        return ("import marketlab.checks as c\nc.use_graders()\nimport graders.lab00, inspect\n"
                "print(inspect.getsource(graders.lab00))")
    if kind == "huge_output":
        return "print(\"x\" * 200_000_000)\nfor _ in range(500):\n    print(\"y\" * 1024 * 1024)"
    if kind == "fork_bomb":
        return "import os\nwhile True:\n    os.fork()"
    if kind == "network":
        return ("import socket\nimport urllib.request\n"
                "try:\n    urllib.request.urlopen(\"http://127.0.0.1:1/\", timeout=3)\n"
                "except OSError as exc:\n    print(\"local:\", exc)\n"
                "try:\n    socket.create_connection((\"pypi.org\", 443), timeout=3).close()\n"
                "    print(\"reached pypi.org\")\n"
                "except OSError as exc:\n    print(\"pypi.org:\", exc)")
    if kind == "write_outside":
        return ("from pathlib import Path\n"
                f"for target in (Path(\"/tmp/marketlab-escape-{student}\"), Path.home() / \"escape.txt\",\n"
                "               Path(\"../../escape.txt\")):\n"
                "    try:\n"
                f"        target.write_text(\"{student} was here\\n\")\n"
                "        print(\"wrote\", target)\n"
                "    except OSError as exc:\n"
                "        print(\"could not write\", target, exc)")
    raise ValueError(f"no payload for {kind!r}")


def hostile_payload(kind: str, student: str = "student") -> str:
    """The code a hostile kind appends to a solution cell; "" for kinds that change the file or its cells."""
    try:
        return _payload(kind, student)
    except ValueError:
        return ""


def _hostile(kind: str, source: nbformat.NotebookNode, release: nbformat.NotebookNode, student: str) -> bytes:
    """The bytes of a hostile learner's notebook: a correct one with the attack in it."""
    nb, _ = _ordinary("correct", "correct", source, release, random.Random(0))
    code = [i for i in _answer_cells(nb) if nb.cells[i].cell_type == "code"]
    tests = [i for i, cell in enumerate(nb.cells) if _is_test(cell)]
    if kind == "corrupt_json":
        data = nbformat.writes(nb).encode() + b"\n"
        return data[: len(data) // 2]
    if kind == "deleted_cells":
        if tests:
            del nb.cells[tests[0]]
    elif kind == "reordered_cells":
        if len(code) >= 2:
            a, b = code[0], code[1]
            nb.cells[a], nb.cells[b] = nb.cells[b], nb.cells[a]
    elif kind == "edited_tests":
        for index in tests:
            nb.cells[index].source = 'print("all good")'
    else:
        index = code[0]
        nb.cells[index].source = nb.cells[index].source.rstrip("\n") + "\n\n" + _payload(kind, student)
    return nbformat.writes(nb).encode() + b"\n"


# --- helpers ----------------------------------------------------------------------------------


def _labs(source_dir: Path, release_dir: Path) -> dict[str, dict[str, tuple[nbformat.NotebookNode,
                                                                               nbformat.NotebookNode]]]:
    """lab -> notebook name -> (instructor notebook, release notebook), for labs in both folders."""
    labs: dict[str, dict[str, tuple[nbformat.NotebookNode, nbformat.NotebookNode]]] = {}
    if not source_dir.is_dir():
        raise CourseError(f"{source_dir} is not a folder: pass the course's source/ folder.")
    for lab in sorted(p for p in source_dir.iterdir() if p.is_dir()):
        notebooks = {}
        for path in sorted(lab.glob("*.ipynb")):
            release = release_dir / lab.name / path.name
            if not release.is_file():
                raise CourseError(f"{release} is missing: generate the student versions first "
                                  "(`marketlab course build` or NbGraderAPI.generate_assignment).")
            notebooks[path.stem] = (nbformat.read(path, as_version=4), nbformat.read(release, as_version=4))
        if notebooks:
            labs[lab.name] = notebooks
    if not labs:
        raise CourseError(f"No lab notebooks in {source_dir}/<lab>/*.ipynb: pass the course's source/ folder.")
    return labs


def _split(size: int, shares: dict[str, int]) -> dict[str, int]:
    """Split `size` by integer shares with the largest-remainder method (deterministic)."""
    total = sum(shares.values())
    exact = {key: size * share / total for key, share in shares.items()}
    counts = {key: int(value) for key, value in exact.items()}
    by_remainder = sorted(shares, key=lambda key: (-(exact[key] - counts[key]), list(shares).index(key)))
    for key in by_remainder[: size - sum(counts.values())]:
        counts[key] += 1
    return counts


def _solutions(source: nbformat.NotebookNode) -> dict[str, str]:
    """grade_id -> completed answer, for every solution cell of an instructor notebook."""
    return {_meta(cell)["grade_id"]: completed_source(cell.source, cell.cell_type)
            for cell in source.cells if _meta(cell).get("solution") and _meta(cell).get("grade_id")}


def _answer_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [i for i, cell in enumerate(nb.cells) if _meta(cell).get("solution")]


def _is_test(cell: nbformat.NotebookNode) -> bool:
    meta = _meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _meta(cell: nbformat.NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _grade_id(nb: nbformat.NotebookNode, index: int) -> str:
    return str(_meta(nb.cells[index]).get("grade_id", f"cell {index}"))


def _note(profile: str, kind: str, notes: list[str], hostile_lab: str) -> str:
    if profile == "hostile":
        return f"{HOSTILE_NOTES[kind]} (in {hostile_lab}; other labs correct)"
    if profile == "correct":
        return "every answer filled with the instructor's solution"
    if kind == "empty":
        return "nothing filled in: every answer is still the release stub"
    if profile == "partial":
        return "filled " + "; ".join(notes)
    return "; ".join(notes)
