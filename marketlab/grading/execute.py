"""nbgrader's Execute step, redone for hostile submissions: learner cells in the sandbox, checks outside.

`SandboxedExecute` replaces nbgrader's `Execute` in the autograde pipeline. It runs the learner's
cells in a kernel inside the sandbox (kernelspec `marketlab-sandbox`) and never sends a check
cell there: when the notebook reaches an autograded check cell, the lab's grader
(`graders/<lab>.py`, `GRADERS[grade_id]`) runs here, in the grading worker, and may only ask the
kernel for the learner's objects as data or call the learner's functions with inputs. The verdict
is written into the cell's outputs by this step, so nbgrader's SaveAutoGrades scores what the
grader decided; nothing the kernel prints or raises can change it.

`NormalizeCells` runs first in nbgrader's sanitize pass: honest copy/paste mistakes (a duplicated
answer or check cell, an extra cell carrying grade metadata) are made harmless, with a note.

Both steps find the job they grade (its sandbox, graders, clock, and where verdicts go) in the
`resources` nbgrader hands every preprocessor, under `JOB_RESOURCE`: the grading converter puts it
there (grading.SandboxedAutograde). Nothing about a job is kept at module level.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor

from marketlab.checks import CheckResult

from . import sandbox, wire
from .harness import Harness, RemoteFunction, unpack
from .job import SandboxJob

Grader = Callable[["Submission"], CheckResult]
MAX_LEARNER_LINES = 10


@dataclass
class Verdict:
    """What the grader decided for one check cell (decided here, outside the sandbox)."""

    grade_id: str
    check: str
    what: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    hint: str = ""
    reason: str = ""  # a catalogue kind when the check could not run (time_limit, kernel_died, no_grader)


@dataclass
class JobContext:
    """The grading job the worker is running now, handed to nbgrader's steps in their resources."""

    job: SandboxJob
    graders: dict[str, Grader]
    deadline: float
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)
    source_ids: set[str] = field(default_factory=set)
    test_ids: set[str] = field(default_factory=set)
    output_cut: bool = False
    learner_output: list[str] = field(default_factory=list)  # the learner's own errors: theirs, untrusted
    detail: str = ""  # for the instructor only: what went wrong on the grading side

    def note(self, kind: str, cell: str | None = None, **values: Any) -> None:
        """Record a problem kind (from the catalogue in records.py) for this submission."""
        if not any(n["kind"] == kind and n.get("cell") == cell for n in self.notes):
            self.notes.append({"kind": kind, "cell": cell, **values})

    def remaining(self) -> float:
        """Seconds left on this submission's clock."""
        return self.deadline - time.monotonic()

    def __deepcopy__(self, memo: dict[int, Any]) -> JobContext:
        """The job itself, never a copy: nbconvert deep-copies the resources before its steps run, and what
        the steps note and decide must reach the grader that reads this context afterwards."""
        return self


JOB_RESOURCE = "marketlab_job"  # the key of the JobContext in nbgrader's resources


def job_context(resources: Any) -> JobContext:
    """The job these resources belong to (put there by grading.SandboxedAutograde)."""
    ctx = (resources or {}).get(JOB_RESOURCE)
    if not isinstance(ctx, JobContext):
        raise RuntimeError(f"No grading job in nbgrader's resources ({JOB_RESOURCE!r}): the sandboxed steps run "
                           "only under marketlab.grading.grading.SandboxedAutograde.")
    return ctx


class SandboxHarness(Harness):
    """Learner files run in a fresh sandbox with the submission's copy read-only."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx

    def start(self, folder: Path, argv: list[str]) -> Any:
        job = self._ctx.job
        view = job.view(writable=False)
        command = [sys.executable, "-I", *argv]
        if job.sandboxed:
            command = sandbox.command(view, command)
        return subprocess.Popen(command, env=dict(view.env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=None if job.sandboxed else str(job.workdir),
                                **sandbox.spawn_options(view))

    def stop(self, process: Any) -> None:
        sandbox.stop(process)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream:
                stream.close()

    def socket_dir(self) -> Path:
        job = self._ctx.job
        return job.private_dir if job.private_dir is not None else job.runtime_dir

    def inside(self, path: Path) -> str:
        job = self._ctx.job
        path = Path(path)
        if path.is_relative_to(job.workdir):
            return str(Path(job.inside) / path.relative_to(job.workdir))
        return str(path)

    def deadline(self) -> float:
        return max(1.0, self._ctx.remaining())


class Submission:
    """What a grader may ask of one submission: data about its objects, calls to its functions, its files."""

    def __init__(self, executor: SandboxedExecute, ctx: JobContext) -> None:
        self._executor, self._ctx = executor, ctx
        self.harness: Harness = SandboxHarness(ctx)

    @property
    def folder(self) -> Path:
        """The submission's copy (host path). Read files in it with marketlab.grading.harness.read_text only."""
        return self._ctx.job.workdir

    def describe(self, name: str, kind: str) -> Any:
        """A plain-data description of a notebook variable (marketlab.checks.extract), or raises RemoteError."""
        return self._executor.ask({"op": "describe", "name": name, "kind": kind})

    def ask(self, request: dict[str, Any]) -> Any:
        """Any request of marketlab.grading.wire.answer_request, answered by the learner's kernel."""
        return self._executor.ask(request)

    def function(self, name: str) -> Callable[..., Any]:
        """The learner's notebook function `name`, called in their kernel with data in and data out."""
        return RemoteFunction(self._executor.ask, name)

    def module(self, filename: str) -> Any:
        """A saved module of the submission, in a fresh sandboxed Python (a context manager)."""
        return self.harness.module(self.folder, filename)


class SandboxedExecute(Execute):
    """Run learner cells in the sandboxed kernel; grade check cells outside it."""

    _ctx: JobContext
    _probe_index: int | None = None  # the index of the cell that carries a check's request, while it runs

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        from nbclient import NotebookClient

        ctx = self._ctx = job_context(resources)
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._used_output = 0
        self._submission = Submission(self, ctx)
        started = False
        try:
            with self.setup_kernel():
                assert self.kc
                self.wait_for_reply(self.kc.kernel_info())
                started = True
                self._run_cells(nb, resources, ctx)
        except DeadKernelError:
            ctx.note("kernel_died")
            self._fail_rest(nb, ctx, "kernel_died")
        except Exception as exc:  # noqa: BLE001 - a kernel that never started or went away
            # Once the kernel answered, its going away is the submission's doing (its output or memory took
            # it down, and nbclient may then fail in its own way); only a kernel that never answered is a
            # set-up problem for the instructor.
            ctx.note("kernel_died" if started else "kernel_failed")
            ctx.detail = f"the grading kernel failed: {type(exc).__name__}: {str(exc)[:500]}"
            self._fail_rest(nb, ctx, "kernel_died")
        self._fail_rest(nb, ctx, "not_run")
        return self.nb, self.resources

    # --- the cells -------------------------------------------------------------------------------
    def _run_cells(self, nb: NotebookNode, resources: Any, ctx: JobContext) -> None:
        for index, cell in enumerate(nb.cells):
            if ctx.remaining() <= 0:
                ctx.note("time_limit")
                self._fail_rest(nb, ctx, "time_limit")
                return
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if cell.cell_type == "code" and grade_id in ctx.test_ids:
                self._grade(cell, grade_id, ctx)
                continue
            if cell.cell_type != "code":
                continue
            self.timeout = max(1, int(min(self.timeout_for_cell(), ctx.remaining())))
            try:
                self.execute_cell(cell, index, store_history=True)
            except CellTimeoutError:
                ctx.note("timeout", cell=grade_id or f"cell {index + 1}")
                if not self._responsive():
                    # The interrupt did not stop it (a loop that ignores Ctrl-C): every later cell and check
                    # would wait out its own limit in the queue behind it. Stop here; the kernel goes down.
                    self._fail_rest(nb, ctx, "timeout")
                    return
            self._name_errors(cell, grade_id or f"cell {index + 1}", ctx)

    def _responsive(self, seconds: int = 5) -> bool:
        """True when the kernel answers a kernel_info request within a few seconds."""
        assert self.kc
        self.timeout = seconds
        try:
            self.wait_for_reply(self.kc.kernel_info())
            return True
        except Exception:  # noqa: BLE001 - no answer in time, or the kernel went away
            return False

    def timeout_for_cell(self) -> int:
        """The per-cell limit from the job."""
        return self._ctx.job.limits.cell_timeout

    def _name_errors(self, cell: NotebookNode, name: str, ctx: JobContext) -> None:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                kind = {"CellTimeoutError": "timeout", "KeyboardInterrupt": "timeout", "MemoryError": "memory",
                        "SystemExit": "exit"}.get(str(output.get("ename")))
                if kind:
                    ctx.note(kind, cell=name)
                # The learner's own error never decides a score; it is kept, short, as theirs.
                if len(ctx.learner_output) < MAX_LEARNER_LINES:
                    text = f"{name}: {str(output.get('ename', ''))[:60]}: {str(output.get('evalue', ''))[:240]}"
                    ctx.learner_output.append(text)

    def _grade(self, cell: NotebookNode, grade_id: str, ctx: JobContext) -> None:
        grader = ctx.graders.get(grade_id)
        if grader is None:
            verdict = Verdict(grade_id, grade_id, "", False, reason="no_grader")
        else:
            try:
                result = grader(self._submission)
                verdict = Verdict(grade_id, result.name, result.what, bool(result.passed), list(result.problems),
                                  result.hint)
            except (CellTimeoutError, TimeoutError):
                verdict = Verdict(grade_id, grade_id, "", False, reason="time_limit")
            except wire.RemoteError as err:  # the notebook lacks what the check needs, or its code raised
                from marketlab.checks._report import describe_error

                verdict = Verdict(grade_id, grade_id, "", False,
                                  problems=[f"the check could not use your notebook's answer: {describe_error(err)}"],
                                  hint="Run every cell of the notebook from the top, then save and submit again.")
            except DeadKernelError:
                raise
            except Exception as exc:  # noqa: BLE001 - a grader bug must cost one check, not the batch
                verdict = Verdict(grade_id, grade_id, "", False, reason="grader_error",
                                  problems=[f"{type(exc).__name__} in the grader"])
            if ctx.remaining() <= 0 and not verdict.passed:
                verdict.reason = verdict.reason or "time_limit"
            verdict.problems = verdict.problems[:20]
        ctx.verdicts[grade_id] = verdict
        cell.outputs = [_verdict_output(verdict)]
        cell.execution_count = None

    def _fail_rest(self, nb: NotebookNode, ctx: JobContext, reason: str) -> None:
        for cell in nb.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if cell.cell_type == "code" and grade_id in ctx.test_ids and grade_id not in ctx.verdicts:
                verdict = Verdict(grade_id, grade_id, "", False, reason=reason)
                ctx.verdicts[grade_id] = verdict
                cell.outputs = [_verdict_output(verdict)]

    # --- asking the kernel -----------------------------------------------------------------------
    def ask(self, request: dict[str, Any]) -> Any:
        """Send one request to the learner's kernel; its answer, decoded, or RemoteError."""
        ctx = self._ctx
        if ctx.remaining() <= 0:
            raise TimeoutError("the submission's time is used up")
        nonce = secrets.token_hex(8)
        text = json.dumps(wire.encode(request), allow_nan=True)
        code = f"__import__('marketlab.grading.wire').grading.wire.kernel_answer({nonce!r}, {text!r})"
        probe = NotebookNode(cell_type="code", source=code, metadata={}, outputs=[], execution_count=None)
        self.timeout = max(1, int(min(self.timeout_for_cell(), ctx.remaining())))
        # nbclient stores the executed cell at its index: run the request as a cell appended for the
        # purpose, then take it away again.
        self.nb.cells.append(probe)
        index = len(self.nb.cells) - 1
        self._probe_index = index
        try:
            self.execute_cell(probe, index, store_history=False)
        except CellTimeoutError:
            raise wire.RemoteError("Timeout", "it did not answer in time (an endless loop?)") from None
        finally:
            self.nb.cells.pop()
            self._probe_index = None
        for output in probe.outputs:
            data = output.get("data", {}) if output.get("output_type") == "display_data" else {}
            answer = data.get(wire.MIME)
            if isinstance(answer, dict) and answer.get("nonce") == nonce:
                reply = wire.loads(str(answer.get("reply", "")))
                if isinstance(reply, dict):
                    return unpack(reply)
        raise wire.RemoteError("NoAnswer", "the notebook did not answer the check")

    # --- output limits ----------------------------------------------------------------------------
    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None,
               cell_index: int) -> NotebookNode | None:
        """Keep at most output_kb of output per notebook; drop the rest with one note."""
        content = msg.get("content", {})
        size = len(json.dumps(content, default=str)) if isinstance(content, dict) else 0
        ctx = self._ctx
        limit = ctx.job.limits.output_kb * 1024
        if cell_index == getattr(self, "_probe_index", None):
            # A check's request: only the answer is kept (one display of the wire's type, at most
            # wire.MAX_TEXT); whatever the learner's function prints meanwhile is dropped, not held.
            data = content.get("data") if isinstance(content, dict) else None
            answer = isinstance(data, dict) and wire.MIME in data and size <= 2 * wire.MAX_TEXT
            if answer and not any(wire.MIME in out.get("data", {}) for out in outs):
                return super().output(outs, msg, display_id, cell_index)
            if size > limit and not ctx.output_cut:
                ctx.output_cut = True
                ctx.note("huge_output")
            return None
        self._used_output += size
        if self._used_output > limit:
            if not ctx.output_cut:
                ctx.output_cut = True
                ctx.note("huge_output")
                outs.append(NotebookNode(output_type="stream", name="stderr",
                                         text=f"[marketlab: output cut after {limit // 1024} KB]\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)


def _verdict_output(verdict: Verdict) -> NotebookNode:
    """The cell output nbgrader scores: an error output when the check did not pass."""
    what = verdict.what or verdict.grade_id
    if verdict.passed:
        return NotebookNode(output_type="stream", name="stdout", text=f"✅ {what}\n")
    lines = [f"❌ Not yet: {what}", *(f"   - {p}" for p in verdict.problems[:5])]
    if verdict.hint:
        lines.append(f"   Hint: {verdict.hint}")
    return NotebookNode(output_type="error", ename="CheckFailed", evalue=what, traceback=lines)


class NormalizeCells(NbGraderPreprocessor):
    """Sanitize-pass step: cells with grade metadata the lab does not have lose it, with a note."""

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        ctx = job_context(resources)
        seen: set[str] = set()
        for index, cell in enumerate(nb.cells):
            meta = cell.get("metadata", {}).get("nbgrader")
            if not meta:
                continue
            grade_id = meta.get("grade_id")
            if grade_id not in ctx.source_ids:
                del cell.metadata["nbgrader"]
                ctx.note("extra_cell", cell=str(grade_id or f"cell {index + 1}")[:60])
            elif grade_id in seen:
                del cell.metadata["nbgrader"]  # graded from the first copy; this one runs as plain code
                if grade_id in ctx.test_ids:
                    cell.source = ""  # a pasted copy of a check cell has nothing of the learner's
                ctx.note("duplicate_cell", cell=str(grade_id))
            else:
                seen.add(grade_id)
        return nb, resources

