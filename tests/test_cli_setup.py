"""`make lab` / `make test` set-up: system packages (bubblewrap too), and a second run that does nothing.

scripts/setup.sh runs for real, in a sandbox PATH: `apt-get` and `id` are stand-ins that log what
they were asked, `bwrap` is hidden, and the venv's python is a shim that logs every call, answers
pip with "done" and passes everything else to the real interpreter. Nothing is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HIDDEN = {"bwrap", "apt-get", "id"}


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin", "/sbin"):
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            target = bin_dir / name
            if name not in HIDDEN and not target.exists() and not target.is_symlink():
                target.symlink_to(os.path.join(folder, name))
    logs = {name: tmp_path / f"{name}.log" for name in ("apt", "python")}
    (bin_dir / "apt-get").write_text(f'#!/bin/bash\necho "$*" >> {logs["apt"]}\n')
    (bin_dir / "id").write_text('#!/bin/bash\n[ "$1" = -u ] && echo "$FAKE_UID"\n')
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(
        f'#!/bin/bash\necho "$*" >> {logs["python"]}\n'
        '[ "$1" = -m ] && [ "$2" = pip ] && exit 0\n'
        f'exec {sys.executable} "$@"\n')
    for script in (bin_dir / "apt-get", bin_dir / "id", venv / "bin" / "python"):
        script.chmod(0o755)
    # pip is a stand-in here, so the engine's wheel is one too, where engine.sh keeps a built one.
    cache = tmp_path / "engine-cache"
    printed = subprocess.run(["bash", str(REPO / "scripts" / "engine.sh"), "--print-settings"], capture_output=True,
                             text=True, check=True, env={**os.environ, "MARKETLAB_ENGINE_CACHE": str(cache)}).stdout
    folder = Path(dict(line.split("=", 1) for line in printed.splitlines())["wheel_folder"])
    folder.mkdir(parents=True)
    version = folder.parent.name.removeprefix("llama-cpp-python-")
    (folder / f"llama_cpp_python-{version}-py3-none-linux_x86_64.whl").write_bytes(b"stand-in")
    return {"bin": bin_dir, "venv": venv, "engine_cache": cache, **logs}


def _setup(sandbox: dict[str, Path], uid: int) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(sandbox["bin"]), "HOME": os.environ.get("HOME", "/root"), "FAKE_UID": str(uid),
           "VENV": str(sandbox["venv"]), "PYTHON": sys._base_executable,
           "MARKETLAB_ENGINE_CACHE": str(sandbox["engine_cache"])}
    return subprocess.run(["bash", str(REPO / "scripts" / "setup.sh")], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_setup_installs_bubblewrap_as_root_and_a_second_run_does_nothing(sandbox):
    first = _setup(sandbox, uid=0)
    assert first.returncode == 0, first.stderr
    assert any(line.startswith("install") and "bubblewrap" in line.split() for line in _lines(sandbox["apt"]))
    assert any(line.startswith("-m pip install") and "-e ." in line for line in _lines(sandbox["python"]))
    engine_installs = [n for n, line in enumerate(_lines(sandbox["python"])) if "llama_cpp_python-" in line]
    package_install = next(n for n, line in enumerate(_lines(sandbox["python"])) if "-e ." in line)
    assert engine_installs and engine_installs[0] < package_install, "the portable engine goes in before the package"
    assert any("marketlab.llm.selftest" in line for line in _lines(sandbox["python"])), "set-up ran no self-test"
    stamp = sandbox["venv"] / ".marketlab-installed"
    assert stamp.read_text().strip()

    apt_before, python_before = len(_lines(sandbox["apt"])), len(_lines(sandbox["python"]))
    second = _setup(sandbox, uid=0)
    assert second.returncode == 0, second.stderr
    assert "already set up" in second.stdout
    assert len(_lines(sandbox["apt"])) == apt_before, "the second run called apt-get"
    assert not [line for line in _lines(sandbox["python"])[python_before:] if "pip" in line], "the second run ran pip"

    # and make itself: the stamp is up to date, so `make lab` goes straight to `marketlab lab`
    make = ["make", "--no-print-directory", "-C", str(REPO), f"VENV={sandbox['venv']}"]
    assert subprocess.run([*make, "-q", "setup"], capture_output=True).returncode == 0
    planned = subprocess.run([*make, "-n", "lab"], capture_output=True, text=True).stdout.strip().splitlines()
    assert planned[-1] == f"{sandbox['venv']}/bin/marketlab lab" and not any("setup.sh" in p for p in planned)


def test_setup_without_root_names_the_command_for_bubblewrap(sandbox):
    done = _setup(sandbox, uid=1000)
    assert done.returncode == 0, done.stderr  # only grading needs it: the learner's set-up goes on
    assert "sudo apt-get install bubblewrap" in done.stderr
    assert _lines(sandbox["apt"]) == []
