"""`make lab` on a fresh copy, as an ordinary user, on a machine without npm: JupyterLab starts.

Nothing is faked: the real Makefile runs the real scripts/setup.sh, which creates a venv, installs
marketlab and its dependencies from PyPI, installs the engine and self-tests it, then `marketlab lab`
starts the built-in model and JupyterLab. The PATH has no npm, node, apt-get or sudo, so any step of
the labs' set-up that reached for the hub's proxy or a system package would fail here. As root the
test runs it as `nobody` (setpriv); as an ordinary user, as that user.

One thing is given that a new user would not have: the portable engine wheel this machine already
built, copied into the user's engine cache (a cold compile takes minutes and is what set-up itself
does on CI's first run). Without one here, the set-up compiles it, as it would for the user.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.model, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
NOT_THERE = {"npm", "npx", "node", "nodejs", "apt-get", "apt", "sudo", "configurable-http-proxy"}
NOBODY = 65534


def _as_user() -> list[str]:
    """The prefix that runs a command as the ordinary user."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


@pytest.fixture
def user_home() -> Iterator[Path]:
    """A folder the ordinary user owns, outside pytest's root-only temp folder."""
    folder = Path(tempfile.mkdtemp(prefix="marketlab-make-lab-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _copy_checkout(target: Path) -> None:
    """The files git knows (tracked or new, not ignored), as a fresh clone of this work tree would have them."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _path_without_npm(folder: Path) -> str:
    folder.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                link = folder / name
                if name not in NOT_THERE and not link.exists() and not link.is_symlink():
                    link.symlink_to(os.path.join(directory, name))
    return str(folder)


def _wheel_folder(cache: Path | None = None) -> Path:
    """Where scripts/engine.sh keeps the portable engine wheel (in this user's cache, or in `cache`)."""
    env = {**os.environ, **({"MARKETLAB_ENGINE_CACHE": str(cache)} if cache else {})}
    printed = subprocess.run(["bash", str(REPO / "scripts" / "engine.sh"), "--print-settings"], capture_output=True,
                             text=True, check=True, env=env).stdout
    return Path(dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)["wheel_folder"])


def _kept_engine_wheel(cache: Path) -> None:
    """Copy this machine's portable engine wheel (if built) into the user's engine cache."""
    folder = _wheel_folder()
    if any(folder.glob("*.whl")):
        shutil.copytree(folder, _wheel_folder(cache))


def test_make_lab_as_an_ordinary_user_without_npm_opens_jupyterlab(user_home: Path) -> None:
    checkout, home = user_home / "marketlab", user_home / "home"
    checkout.mkdir()
    home.mkdir()
    _copy_checkout(checkout)
    _kept_engine_wheel(home / ".cache" / "marketlab" / "engine")
    path = _path_without_npm(user_home / "bin")
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(user_home)], check=True)
    # No PYTHON: set-up finds the python3.11 on the user's PATH, as it would for them.
    env = {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8",
           "MARKETLAB_ENGINE_CACHE": str(home / ".cache" / "marketlab" / "engine")}
    log = user_home / "make-lab.log"
    with open(log, "wb") as out:
        make = subprocess.Popen([*_as_user(), "make", "lab"], cwd=checkout, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = _wait_for_jupyterlab(make, log, seconds=900)
        with urllib.request.urlopen(url, timeout=30) as reply:
            page = reply.read().decode("utf-8", "replace")
        assert reply.status == 200 and "JupyterLab" in page, page[:500]
        said = log.read_text(errors="replace")
        assert "Local model ready at" in said, said[-3000:]
        assert not re.search(r"\bnpm\b|apt-get|proxy", said), said[-3000:]
        assert (checkout / "workspace").is_dir() and any((checkout / "workspace").iterdir())
        if os.geteuid() == 0:
            assert (checkout / ".venv").stat().st_uid == NOBODY
    finally:
        _stop_group(make)
        venv_marketlab = checkout / ".venv" / "bin" / "marketlab"
        if venv_marketlab.exists():  # the model server `marketlab lab` started runs on its own: stop it by its pid
            subprocess.run([*_as_user(), str(venv_marketlab), "serve", "--stop"], cwd=checkout, env=env,
                           capture_output=True, timeout=120)


def _stop_group(make: subprocess.Popen[bytes]) -> None:
    """Stop make and what it started (marketlab lab, now JupyterLab): the process group this test made."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(make.pid, sig)
        except ProcessLookupError:
            break
        try:
            make.wait(timeout=30)
            break
        except subprocess.TimeoutExpired:
            continue
    make.wait()


def _wait_for_jupyterlab(make: subprocess.Popen[bytes], log: Path, seconds: float) -> str:
    """The /lab URL (with its token) once JupyterLab prints it; fails with the log's end if make stops first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        said = log.read_text(errors="replace")
        found = re.search(r"(http://127\.0\.0\.1:\d+/lab\?token=\w+)", said)
        if found:
            return found.group(1)
        if make.poll() is not None:
            pytest.fail(f"`make lab` stopped (exit {make.returncode}) before JupyterLab started:\n{said[-4000:]}")
        time.sleep(2)
    pytest.fail(f"JupyterLab did not start within {seconds:.0f} s:\n{log.read_text(errors='replace')[-4000:]}")
