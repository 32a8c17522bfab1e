"""One submission's grading job: where its copy lives, what its sandbox sees, and its limits.

The worker writes it to a grader-only folder; the kernel launcher reads it back. Nothing in it
comes from the submission.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .sandbox import INSIDE_HOME, Limits, Mount, View, allowed_env


@dataclass(frozen=True)
class SandboxJob:
    """Everything needed to start a sandbox for one submission."""

    workdir: Path          # the submission's private copy (host path), the only writable place
    lab: str
    runtime_dir: Path      # this job's own folder for the kernel's unix sockets (the kernel binds them: writable)
    log_path: Path         # where the kernel's raw output goes (capped)
    limits: Limits
    uid: int | None        # as root: the grading user of this worker's slot
    sandboxed: bool = True
    # The grader's own folder for what the sandbox may only read or connect to: the endpoint's socket and
    # the kernel's connection file. Owned by the grader, mode 0711, mounted read-only inside, so no
    # learner process can swap a name in it for a link before the grader touches it (issue 21).
    private_dir: Path | None = None

    @property
    def inside(self) -> str:
        """The folder as the learner's code sees it."""
        return f"{INSIDE_HOME}/{self.lab}" if self.sandboxed else str(self.workdir)

    def view(self, *, writable: bool = True) -> View:
        """The sandbox view of this job (the copy read-only when writable is False)."""
        mounts = [Mount(self.runtime_dir, str(self.runtime_dir), writable=True)]
        if self.private_dir is not None:
            mounts.append(Mount(self.private_dir, str(self.private_dir), writable=False))
        return View(workdir=self.workdir, inside=self.inside, writable=writable, mounts=tuple(mounts),
                    env=allowed_env(self.inside), limits=self.limits, uid=self.uid)

    def save(self, path: Path) -> None:
        """Write the job file (grader-only folder)."""
        data = asdict(self)
        data.update(workdir=str(self.workdir), runtime_dir=str(self.runtime_dir), log_path=str(self.log_path),
                    limits=asdict(self.limits), private_dir=str(self.private_dir) if self.private_dir else None)
        path.write_text(json.dumps(data))

    @classmethod
    def load(cls, path: Path) -> SandboxJob:
        """Read a job file."""
        data = json.loads(path.read_text())
        return cls(workdir=Path(data["workdir"]), lab=data["lab"], runtime_dir=Path(data["runtime_dir"]),
                   log_path=Path(data["log_path"]), limits=Limits(**data["limits"]), uid=data["uid"],
                   sandboxed=data["sandboxed"],
                   private_dir=Path(data["private_dir"]) if data.get("private_dir") else None)
