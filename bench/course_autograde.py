"""`marketlab course autograde` beside plain sequential `nbgrader autograde`, on the same submissions.

Three measurements, in one run, on synthetic learners (correct, partial and broken work; no hostile ones):
- same submissions: K learners (default 8) x every lab, graded once by `nbgrader autograde LAB --force`
  (one command per lab, all students, sequential) and once by `marketlab course autograde --force`
  (parallel sandboxed kernels); notebooks per minute of each and the ratio (target: at least 2x),
  and no submission may score less with marketlab (honest work loses nothing in the sandbox). It may
  score more: marketlab's graders call a learner's function with the grader's own inputs, where
  nbgrader's check cell also needs notebook variables that an earlier broken cell never defined;
- core-seconds per graded notebook, lab by lab: each lab graded again by each side alone, the processor
  time of the whole process tree (target: marketlab at most half of nbgrader's, on average over the labs);
- the target run: 40 learners x every lab with `marketlab course autograde` only (target: under 5 minutes).

Both sides are timed as the command an instructor types (process start included), each on its own
course folder and gradebook. Everything lives in a temporary folder under /var/tmp, not /tmp, so the
sandbox mounts its private /tmp as it does on a real course.

    python -m bench course_autograde [--learners 8] [--cohort 40] [--workers N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

LEARNERS = 8
COHORT = 40
TARGET_RATIO = 2.0  # issue 21 (it was 1.8)
TARGET_SECONDS = 300.0
BIN = Path(sys.executable).parent


def _course(root: Path) -> Any:
    """A fresh course folder with the student versions built (no validation run)."""
    from marketlab.course.build import build
    from marketlab.course.init import init_course

    course = init_course(root)
    results = build(course, validate=False)
    bad = [r.summary() for r in results if not r.generated or r.leaks or r.problems]
    if bad:
        raise SystemExit("course build failed:\n" + "\n".join(bad))
    return course


def _hand_in(cohort_dir: Path, *courses: Any) -> list[tuple[str, str]]:
    """Copy every learner's lab folders into submitted/<student>/<lab>/, as `collect` leaves them."""
    for course in courses:
        for student in sorted(p for p in cohort_dir.iterdir() if p.is_dir()):
            for lab in sorted(p for p in student.iterdir() if p.is_dir()):
                shutil.copytree(lab, course.folder("submitted") / student.name / lab.name)
    return courses[0].submissions()


def _notebooks(course: Any, submissions: list[tuple[str, str]]) -> int:
    return sum(len(list((course.folder("submitted") / s / lab).glob("*.ipynb"))) for s, lab in submissions)


def _env(course: Any, **extra: str) -> dict[str, str]:
    """Environment of the grading commands: scripted model, this course's graders, the venv's tools."""
    env = dict(os.environ)
    env.update(MARKETLAB_BACKEND="scripted", MARKETLAB_GRADERS=str(course.graders_dir), PYTHONWARNINGS="ignore",
               PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]), **extra)
    env.pop("MARKETLAB_GRADEBOOK_URL", None)  # each course keeps its own gradebook
    env.pop("MARKETLAB_COURSE", None)
    return env


CORE_SECONDS: list[float] = []  # processor time of each command's whole process tree, in order (sampled)
WAITED: list[float] = []  # the same, as the wait-based account (RUSAGE_CHILDREN) has it
PARTS: list[dict[str, float]] = []  # each command's sampled core-seconds by kind of process
TICK = os.sysconf("SC_CLK_TCK")


class _Sampler:
    """Processor time of every process below this one, read from /proc every `every_s` while a command runs.

    The wait-based account (RUSAGE_CHILDREN) is not enough for marketlab: nbgrader ends each kernel with
    SIGKILL on its launcher, and the sandboxed kernel's time then never reaches this process's account
    (Lab 4, 2 notebooks: 11.5 core-seconds of kernels sampled here, 10.1 for the whole tree by the wait-based
    account). Each process's last sample counts, so a process misses at most its last `every_s` seconds, and
    one that lives less than that may be missed whole; both sides are measured the same way, and the
    wait-based figure is printed beside it.
    """

    def __init__(self, every_s: float = 0.05) -> None:
        import threading

        self.every_s, self.stop = every_s, threading.Event()
        self.seen: dict[tuple[int, int], tuple[float, str]] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Sampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self.stop.wait(self.every_s):
                self.sample()
                return

    def sample(self) -> None:
        me, table = os.getpid(), {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                command = _program(Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0"))
            except (OSError, ValueError):
                continue
            table[int(entry)] = (int(fields[1]), int(fields[19]), (int(fields[11]) + int(fields[12])) / TICK, command)
        mine, grew = {me}, True
        while grew:
            grew = False
            for pid, (parent, *_rest) in table.items():
                if pid not in mine and parent in mine:
                    mine.add(pid)
                    grew = True
        for pid in mine - {me}:
            _, start, cpu, command = table[pid]
            old = self.seen.get((pid, start))
            self.seen[(pid, start)] = (max(cpu, old[0] if old else 0.0), command or (old[1] if old else ""))

    def parts(self) -> dict[str, float]:
        """Core-seconds by kind of process (by the program each process last ran, see _program)."""
        kinds = (("marketlab.grading.kernel_launcher", "kernel launchers"),
                 ("marketlab.grading.kernel", "sandboxed kernels (Python, imports, the lab's cells)"),
                 ("ipykernel_launcher", "kernels (Python, imports, the lab's cells)"),
                 ("marketlab.grading.serve_module", "probes"), ("marketlab.grading.run_probe", "probes"),
                 ("marketlab.grading.workflow_probe", "probes"), ("guard.py", "sandbox guards"),
                 ("bwrap", "bwrap and setpriv"), ("setpriv", "bwrap and setpriv"),
                 ("forkserver", "grading workers (nbgrader's steps, graders' checks) and their fork server"),
                 ("marketlab", "coordinator"),
                 ("nbgrader", "nbgrader's own process (its steps; the hidden tests run in the kernels)"))
        found: dict[str, float] = {}
        for cpu, program in self.seen.values():
            kind = next((name for key, name in kinds if program == key or (key == "forkserver" and key in program)),
                        "other")
            found[kind] = found.get(kind, 0.0) + cpu
        return found


def _program(argv: list[str]) -> str:
    """What a process runs: the module after -m, the code after -c, the script Python runs, else the
    executable's own name (bwrap, setpriv, a console script such as marketlab or nbgrader)."""
    argv = [arg for arg in argv if arg]
    if not argv:
        return ""
    if not Path(argv[0]).name.startswith("python"):
        return Path(argv[0]).name
    for index, arg in enumerate(argv[1:], start=1):
        if arg in ("-m", "-c"):
            return argv[index + 1] if index + 1 < len(argv) else ""
        if not arg.startswith("-"):
            return Path(arg).name
    return ""


def _tree_cpu() -> float:
    """User + system time of every descendant this process has waited for (children reap theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _become_subreaper() -> None:
    """Descendants orphaned by their parent come to this process, so their time is counted too.

    marketlab's grading workers are children of multiprocessing's fork server, which outlives the
    command by a moment and is then nobody's child: without this its workers' time would be lost.
    """
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        print("  ! could not become a subreaper: orphaned processes' time will be missing", flush=True)


def _reap_orphans(limit_s: float = 120.0) -> None:
    """Wait for every descendant left after a command ended (its time joins RUSAGE_CHILDREN)."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                print(f"  ! processes still running {limit_s:.0f} s after the command ended", flush=True)
                return
            time.sleep(0.05)


def _command(argv: list[str], course: Any, env: dict[str, str], log: Path, sample: bool = False) -> float:
    """Run one grading command in the course folder; its wall time in seconds. Its core-seconds (kernels,
    sandboxes, workers and the command itself) go to CORE_SECONDS: sampled from /proc when `sample` (see
    _Sampler), else the wait-based account, which WAITED always has."""
    started, cpu = time.perf_counter(), _tree_cpu()
    with log.open("ab") as out, contextlib.ExitStack() as stack:
        sampler = stack.enter_context(_Sampler()) if sample else None
        done = subprocess.run(argv, cwd=course.root, env=env, stdout=out, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - started
        _reap_orphans()
    WAITED.append(_tree_cpu() - cpu)
    PARTS.append(sampler.parts() if sampler else {})
    CORE_SECONDS.append(sum(PARTS[-1].values()) if sampler else WAITED[-1])
    if done.returncode != 0:
        print(f"  ! `{' '.join(argv[:3])} ...` exited with {done.returncode}; see the tail of {log.name}:")
        print("    " + "\n    ".join(log.read_text(errors="replace").splitlines()[-15:]))
    return seconds


def grade_nbgrader(course: Any, log: Path) -> float:
    """Plain nbgrader: `nbgrader autograde LAB --force`, one lab after the other, all students.

    Labs hand artifacts on to later labs through $MARKETLAB_HOME/artifacts. With one shared folder the
    last learner graded in lab 1 would lend their brief and prompt to everyone's lab 2 (a correct lab 2
    then loses 3 of 7 points, and grades faster). Relative paths resolve in each kernel's working folder,
    the submission's own, which is what marketlab's sandbox gives each kernel.
    """
    env = _env(course, MARKETLAB_HOME=".marketlab", MARKETLAB_ARTIFACTS=".artifacts")
    return sum(_command([str(BIN / "nbgrader"), "autograde", lab, "--force"], course, env, log)
               for lab in course.labs())


def grade_marketlab(course: Any, home: Path, log: Path, workers: int | None) -> float:
    """`marketlab course autograde --force` on the whole course."""
    argv = [str(BIN / "marketlab"), "course", "autograde", "--force", "--course", str(course.root)]
    if workers:
        argv += ["--workers", str(workers)]
    return _command(argv, course, _env(course, MARKETLAB_HOME=str(home)), log)


def nbgrader_scores(course: Any, submissions: list[tuple[str, str]]) -> dict[tuple[str, str], float | None]:
    """Total autograded score of each submission in the gradebook (what marketlab's records add up)."""
    from nbgrader.api import MissingEntry

    from marketlab.grading.grading import _cell_ids

    scores: dict[tuple[str, str], float | None] = {}
    with course.gradebook() as gradebook:
        for student, lab in submissions:
            tests = _cell_ids(course, lab)[1]
            try:
                submission = gradebook.find_submission(lab, student)
            except MissingEntry:
                scores[student, lab] = None
                continue
            points = [g.auto_score or 0 for nb in submission.notebooks for g in nb.grades if g.name in tests]
            scores[student, lab] = round(sum(points), 2) if points else None
    return scores


def marketlab_records(course: Any, submissions: list[tuple[str, str]]) -> dict[tuple[str, str], dict | None]:
    found = {(s, lab): course.grading_record(s, lab) for s, lab in submissions}
    return {key: record.as_dict() if record is not None else None for key, record in found.items()}


def _per_notebook(records: dict[tuple[str, str], dict | None]) -> str:
    """Seconds a worker spent per submission, by lab (from the grading records)."""
    by_lab: dict[str, list[float]] = {}
    for (_, lab), record in records.items():
        if record:
            by_lab.setdefault(lab, []).append(float(record.get("seconds") or 0))
    return ", ".join(f"{lab} {sum(v) / len(v):.1f} s (max {max(v):.1f})" for lab, v in sorted(by_lab.items()))


def _busy() -> str:
    """Load average, and a warning when another grading run shares the machine (and its grading user ids)."""
    others = 0
    for entry in Path("/proc").iterdir():
        try:
            others += entry.name.isdigit() and b"marketlab.grading.kernel_launcher" in (entry / "cmdline").read_bytes()
        except OSError:
            continue
    text = "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    if others:
        text += f"; WARNING: {others} grading kernel(s) of another run are active, the figures will be noisy"
    return text


def sandbox_startup(rounds: int = 7) -> dict[str, float]:
    """Median seconds (and core-seconds) to start Python and import the kernel's modules, with and without the
    sandbox, alternating."""
    import statistics

    from marketlab.grading import sandbox

    code = "import ipykernel.kernelapp, marketlab.grading.wire"
    with tempfile.TemporaryDirectory(prefix="marketlab-bench-sandbox-", dir="/var/tmp") as tmp:
        os.chmod(tmp, 0o755)
        view = sandbox.View(workdir=Path(tmp), inside="/home/learner/bench", writable=False,
                            env=sandbox.allowed_env("/home/learner/bench"), uid=61999 if os.geteuid() == 0 else None)
        plain, boxed, boxed_core = [], [], []
        for _ in range(rounds):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-I", "-c", code], env=dict(view.env), check=True, cwd=tmp)
            plain.append(time.perf_counter() - started)
            started, core = time.perf_counter(), _tree_cpu()
            done = sandbox.run(view, [sys.executable, "-I", "-c", code], timeout=60)
            boxed.append(time.perf_counter() - started)
            boxed_core.append(_tree_cpu() - core)
            if done.returncode != 0:
                raise SystemExit(f"the sandbox did not start: {done.stderr.decode(errors='replace')[-300:]}")
    return {"plain_s": statistics.median(plain), "sandbox_s": statistics.median(boxed),
            "cost_s": statistics.median(boxed) - statistics.median(plain),
            "start_core_s": statistics.median(boxed_core)}


def core_seconds_per_lab(ours: Any, theirs: Any, submissions: list[tuple[str, str]], work: Path,
                         workers: int | None) -> dict[str, tuple[float, float]]:
    """Each lab graded again, once by each side, alone: core-seconds per notebook (nbgrader, marketlab).

    Issue 21's target: marketlab at most half of plain nbgrader's core-seconds per notebook, on average
    over the labs. Core-seconds, not wall time: the processor time of the whole process tree.
    """
    per_lab: dict[str, tuple[float, float]] = {}
    env_theirs = _env(theirs, MARKETLAB_HOME=".marketlab", MARKETLAB_ARTIFACTS=".artifacts")
    for lab in ours.labs():
        of_lab = [(student, name) for student, name in submissions if name == lab]
        notebooks = max(1, _notebooks(ours, of_lab))
        _command([str(BIN / "nbgrader"), "autograde", lab, "--force"], theirs, env_theirs, work / "nbgrader.log",
                 sample=True)
        theirs_core = CORE_SECONDS[-1] / notebooks  # sampled: see _Sampler
        argv = [str(BIN / "marketlab"), "course", "autograde", lab, "--force", "--course", str(ours.root)]
        if workers:
            argv += ["--workers", str(workers)]
        _command(argv, ours, _env(ours, MARKETLAB_HOME=str(work / "home-marketlab")), work / "marketlab.log",
                 sample=True)
        per_lab[lab] = (theirs_core, CORE_SECONDS[-1] / notebooks)
        print(f"  {lab:22s} core-seconds per notebook: nbgrader {theirs_core:5.2f}, marketlab "
              f"{per_lab[lab][1]:5.2f} ({per_lab[lab][1] / theirs_core:.2f}x)")
        theirs_parts, ours_parts = PARTS[-2], PARTS[-1]
        print(f"  {'':22s}   wait-based account: nbgrader {WAITED[-2] / notebooks:5.2f}, marketlab "
              f"{WAITED[-1] / notebooks:5.2f}")
        for side, parts in (("nbgrader", theirs_parts), ("marketlab", ours_parts)):
            print(f"  {'':22s}   {side}'s, per notebook: " + "; ".join(
                f"{kind} {cpu / notebooks:.2f}" for kind, cpu in sorted(parts.items(), key=lambda kv: -kv[1])))
    return per_lab


def run(learners: int = LEARNERS, cohort: int = COHORT, workers: int | None = None) -> dict[str, Any]:
    """Measure both comparisons; print as it goes and return the figures."""
    from marketlab.course.autograde import default_workers
    from marketlab.course.cohort import make_cohort

    _become_subreaper()
    figures: dict[str, Any] = {"learners": learners, "cohort": cohort,
                               "workers": workers or default_workers(), "cores": os.cpu_count()}
    figures.update(sandbox_startup())
    print(f"sandbox start-up: python + kernel imports {figures['plain_s'] * 1000:.0f} ms plain, "
          f"{figures['sandbox_s'] * 1000:.0f} ms in bwrap: {figures['cost_s'] * 1000:.0f} ms per kernel; "
          f"{figures['start_core_s']:.2f} core-seconds in bwrap")
    with tempfile.TemporaryDirectory(prefix="marketlab-bench-autograde-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        # mkdtemp makes the folder 0700; grading kernels run as another user and must reach their folder,
        # as they do in a course kept in an ordinary place.
        work.chmod(0o755)
        os.environ["MARKETLAB_HOME"] = str(work / "home")
        os.environ["MARKETLAB_BACKEND"] = "scripted"
        os.environ.pop("MARKETLAB_GRADEBOOK_URL", None)

        # 1. the same submissions, graded by both
        ours, theirs = _course(work / "marketlab-course"), _course(work / "nbgrader-course")
        make_cohort(ours.folder("source"), ours.folder("release"), work / "cohort", size=learners, seed=0,
                    hostile=False)
        submissions = _hand_in(work / "cohort", ours, theirs)
        notebooks = _notebooks(ours, submissions)
        print(f"machine before grading: {_busy()}")
        print(f"same submissions: {learners} learners x {len(ours.labs())} labs = {len(submissions)} submissions, "
              f"{notebooks} notebooks; {figures['workers']} workers on {figures['cores']} cores")
        nbgrader_s = grade_nbgrader(theirs, work / "nbgrader.log")
        print(f"  nbgrader autograde, sequential : {nbgrader_s:7.1f} s")
        marketlab_s = grade_marketlab(ours, work / "home-marketlab", work / "marketlab.log", workers)
        print(f"  marketlab course autograde     : {marketlab_s:7.1f} s")
        records = marketlab_records(ours, submissions)
        baseline = nbgrader_scores(theirs, submissions)
        mismatches = []
        for key in submissions:
            record = records[key]
            score = record["score"] if record and record.get("status") == "graded" else None
            if score is None or baseline[key] is None or abs(score - baseline[key]) > 1e-6:
                mismatches.append((key, baseline[key], score, (record or {}).get("reason", "no record")))
        print(f"  per-submission worker seconds  : {_per_notebook(records)}")
        lower = [m for m in mismatches if m[1] is None or m[2] is None or m[2] < m[1]]
        print(f"  scores, nbgrader vs marketlab  : {len(submissions) - len(mismatches)}/{len(submissions)} equal, "
              f"{len(lower)} lower with marketlab")
        for (student, lab), theirs_score, ours_score, reason in mismatches:
            kind = "LOWER" if (student, lab) in {m[0] for m in lower} else "higher"
            print(f"    {kind} {student}/{lab}: nbgrader {theirs_score}, marketlab {ours_score}"
                  + (f" ({reason})" if reason else ""))
        figures.update(notebooks=notebooks, submissions=len(submissions), nbgrader_s=nbgrader_s,
                       marketlab_s=marketlab_s, nbgrader_rate=notebooks / nbgrader_s * 60,
                       marketlab_rate=notebooks / marketlab_s * 60, mismatches=len(mismatches), lower=len(lower))
        figures["ratio"] = figures["marketlab_rate"] / figures["nbgrader_rate"]
        figures["per_lab"] = core_seconds_per_lab(ours, theirs, submissions, work, workers)

        # 2. the target run: a whole cohort, marketlab only
        big = _course(work / "cohort-course")
        make_cohort(big.folder("source"), big.folder("release"), work / "cohort-big", size=cohort, seed=0,
                    hostile=False)
        big_submissions = _hand_in(work / "cohort-big", big)
        big_notebooks = _notebooks(big, big_submissions)
        print(f"target run: {cohort} learners x {len(big.labs())} labs = {len(big_submissions)} submissions, "
              f"{big_notebooks} notebooks")
        cohort_s = grade_marketlab(big, work / "home-cohort", work / "cohort.log", workers)
        big_records = marketlab_records(big, big_submissions)
        graded = sum(1 for r in big_records.values() if r and r.get("status") == "graded")
        print(f"  marketlab course autograde     : {cohort_s:7.1f} s, {graded}/{len(big_submissions)} graded")
        print(f"  per-submission worker seconds  : {_per_notebook(big_records)}")
        print(f"machine after grading: {_busy()}")
        figures.update(cohort_notebooks=big_notebooks, cohort_s=cohort_s, cohort_graded=graded,
                       cohort_submissions=len(big_submissions), cohort_rate=big_notebooks / cohort_s * 60)
    return figures


def main(argv: list[str] | None = None) -> None:
    """Run both measurements and print the summary with PASS/MISS against the two targets."""
    parser = argparse.ArgumentParser(prog="python -m bench course_autograde", description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=LEARNERS, help="learners graded by both (default 8)")
    parser.add_argument("--cohort", type=int, default=COHORT, help="learners of the target run (default 40)")
    parser.add_argument("--workers", type=int, default=None, help="marketlab workers (default: 2 per core)")
    args = parser.parse_args(argv or [])
    warnings.filterwarnings("ignore")
    f = run(args.learners, args.cohort, args.workers)

    speed_ok = f["ratio"] >= TARGET_RATIO
    time_ok = f["cohort_s"] < TARGET_SECONDS and f["cohort_graded"] == f["cohort_submissions"]
    print(f"\nsummary ({f['cores']} cores, marketlab with {f['workers']} workers; "
          "wall times on a shared machine, so expect noise)")
    print(f"  same {f['notebooks']} notebooks ({f['learners']} learners x every lab):")
    print(f"    nbgrader autograde, sequential : {f['nbgrader_s']:7.1f} s  {f['nbgrader_rate']:6.1f} notebooks/min")
    print(f"    marketlab course autograde     : {f['marketlab_s']:7.1f} s  {f['marketlab_rate']:6.1f} notebooks/min")
    print(f"    speed-up marketlab / nbgrader  : {f['ratio']:6.2f}x  (target >= {TARGET_RATIO}x)  "
          f"{'PASS' if speed_ok else 'MISS'}")
    print(f"    same total score per submission: {f['submissions'] - f['mismatches']}/{f['submissions']}; "
          f"lower with marketlab: {f['lower']}  {'PASS' if not f['lower'] else 'MISS'}")
    ratios = [ours / theirs for theirs, ours in f["per_lab"].values() if theirs > 0]
    mean = sum(ratios) / max(1, len(ratios))
    print(f"  core-seconds per notebook, marketlab / nbgrader, mean over {len(ratios)} labs: {mean:.2f}  "
          f"(target <= 0.5)  {'PASS' if mean <= 0.5 else 'MISS'}")
    print(f"  sandbox start-up cost per kernel : {f['cost_s'] * 1000:6.0f} ms "
          f"({f['sandbox_s'] * 1000:.0f} ms in bwrap vs {f['plain_s'] * 1000:.0f} ms plain, median)")
    print(f"  target run, {f['cohort']} learners x every lab ({f['cohort_notebooks']} notebooks):")
    print(f"    marketlab course autograde     : {f['cohort_s']:7.1f} s  {f['cohort_rate']:6.1f} notebooks/min, "
          f"{f['cohort_graded']}/{f['cohort_submissions']} graded  (target < {TARGET_SECONDS / 60:.0f} min)  "
          f"{'PASS' if time_ok else 'MISS'}")


if __name__ == "__main__":
    main(sys.argv[1:])
