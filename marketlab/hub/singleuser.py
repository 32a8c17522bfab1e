"""A hub server's start command (run as the person, in their view): fill the home, then start jupyterhub-singleuser.

The student version of every lab that is not yet in the home is copied in; nothing the person has
is ever overwritten, and a deleted lab comes back on the next start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .settings import load
from .spawner import ROOT_VARIABLE


def copy_missing(source: Path, home: Path) -> list[Path]:
    """Copy each regular file under `source` that `home` lacks; never follow a link, never overwrite."""
    created: list[Path] = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part.startswith(".") for part in relative.parts) or path.is_symlink() or not path.is_file():
            continue
        target = home / relative
        if any(parent.is_symlink() for parent in [target, *target.parents] if parent.is_relative_to(home)):
            continue  # a link the person made: not the hub's to write through
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as out:
            out.write(path.read_bytes())
        created.append(target)
    return created


def main() -> None:
    """Prepare the home, then replace this process with jupyterhub-singleuser (same arguments)."""
    settings = load(os.environ[ROOT_VARIABLE])
    home = Path(os.environ.get("HOME") or Path.cwd())
    created = copy_missing(settings.student, home)
    if created:
        print(f"marketlab: added {len(created)} lab files to {home}", file=sys.stderr)
    course = os.environ.get("MARKETLAB_COURSE")
    if course:  # an instructor: what they write in the course, the other instructors may change too
        os.umask(0o007)
        if not os.path.lexists(home / "course"):
            os.symlink(course, home / "course")
    singleuser = Path(sys.executable).parent / "jupyterhub-singleuser"
    os.execv(str(singleuser), [str(singleuser), *sys.argv[1:]])


if __name__ == "__main__":
    main()
