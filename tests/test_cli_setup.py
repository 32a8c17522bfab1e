"""`make lab` / `make test` set-up, in parts: the labs need no system package beyond the build tools,
grading, the hub and the tests add theirs on first use, and a second run does nothing.

scripts/setup.sh runs for real, in a sandbox PATH and a copy of the checkout's set-up files:
`apt-get` and `id` are stand-ins that log what they were asked, `bwrap` and `npm` are hidden (or
replaced by one that fails), and the venv's python is a shim that logs every call, answers pip with
"done" and passes everything else to the real interpreter. Nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HIDDEN = {"bwrap", "apt-get", "id", "npm", "setfacl", "chromium", "initdb"}


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
    # The set-up works in its own checkout: a copy of what it reads (no node_modules from a developer's run).
    checkout = tmp_path / "checkout"
    for name in ("scripts/setup.sh", "scripts/engine.sh", "pyproject.toml", "instructor/hub/package.json",
                 "instructor/hub/package-lock.json"):
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, checkout / name)
    return {"bin": bin_dir, "venv": venv, "engine_cache": cache, "checkout": checkout, **logs}


def _setup(sandbox: dict[str, Path], uid: int, *part: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(sandbox["bin"]), "HOME": os.environ.get("HOME", "/root"), "FAKE_UID": str(uid),
           "VENV": str(sandbox["venv"]), "PYTHON": sys._base_executable,
           "MARKETLAB_ENGINE_CACHE": str(sandbox["engine_cache"])}
    return subprocess.run(["bash", str(sandbox["checkout"] / "scripts" / "setup.sh"), *part], capture_output=True,
                          text=True, env=env, cwd=sandbox["checkout"], timeout=300)


def _installed(sandbox: dict[str, Path]) -> set[str]:
    return {word for line in _lines(sandbox["apt"]) if line.startswith("install") for word in line.split()[1:]
            if not word.startswith("-")}


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_the_labs_set_up_installs_no_part_of_grading_the_hub_or_the_tests(sandbox):
    done = _setup(sandbox, uid=0)
    assert done.returncode == 0, done.stderr
    assert not _installed(sandbox) & {"bubblewrap", "postgresql", "npm", "acl", "chromium"}, _installed(sandbox)
    assert not (sandbox["venv"] / ".marketlab-part-test").exists()
    extras = [line for line in _lines(sandbox["python"]) if "pip install" in line and "[" in line]
    assert not extras, f"the labs' set-up installed an extra (the hub's or the tests'): {extras}"


def test_the_test_part_installs_its_packages_as_root_and_a_second_run_does_nothing(sandbox):
    first = _setup(sandbox, 0, "test")
    # npm is a stand-in that installs nothing, so the proxy is missing: the tests that need it will skip,
    # the rest run, and the next `make test` tries again (no stamp).
    assert first.returncode == 0 and "tests that need them are skipped" in first.stderr, first.stderr
    assert not (sandbox["venv"] / ".marketlab-part-test").exists()
    assert {"bubblewrap", "npm", "acl", "chromium"} <= _installed(sandbox)  # (PostgreSQL: found in /usr/lib here)
    assert (sandbox["venv"] / ".marketlab-installed").read_text().strip(), "the labs' part is set up regardless"
    (sandbox["checkout"] / "instructor/hub/node_modules/.bin").mkdir(parents=True)
    (sandbox["checkout"] / "instructor/hub/node_modules/.bin/configurable-http-proxy").write_text("")
    (sandbox["checkout"] / "instructor/hub/node_modules/.bin/configurable-http-proxy").chmod(0o755)
    first = _setup(sandbox, 0, "test")
    assert first.returncode == 0, first.stderr
    assert any(line.startswith("-m pip install") and "-e ." in line for line in _lines(sandbox["python"]))
    assert any(".[hub]" in line for line in _lines(sandbox["python"])), "the tests need the hub extra too"
    engine_installs = [n for n, line in enumerate(_lines(sandbox["python"])) if "llama_cpp_python-" in line]
    package_install = next(n for n, line in enumerate(_lines(sandbox["python"])) if "-e ." in line)
    assert engine_installs and engine_installs[0] < package_install, "the portable engine goes in before the package"
    assert any("marketlab.llm.selftest" in line for line in _lines(sandbox["python"])), "set-up ran no self-test"
    stamp = sandbox["venv"] / ".marketlab-installed"
    assert stamp.read_text().strip()

    apt_before, python_before = len(_lines(sandbox["apt"])), len(_lines(sandbox["python"]))
    second = _setup(sandbox, 0, "test")
    assert second.returncode == 0, second.stderr
    assert "already set up" in _setup(sandbox, uid=0).stdout
    assert len(_lines(sandbox["apt"])) == apt_before, "the second run called apt-get"
    assert not [line for line in _lines(sandbox["python"])[python_before:] if "pip" in line], "the second run ran pip"

    # and make itself: the stamp is up to date, so `make lab` goes straight to `marketlab lab`
    shutil.copy(REPO / "Makefile", sandbox["checkout"] / "Makefile")
    make = ["make", "--no-print-directory", "-C", str(sandbox["checkout"]), f"VENV={sandbox['venv']}"]
    assert subprocess.run([*make, "-q", "setup"], capture_output=True).returncode == 0
    planned = subprocess.run([*make, "-n", "lab"], capture_output=True, text=True).stdout.strip().splitlines()
    assert planned[-1] == f"{sandbox['venv']}/bin/marketlab lab" and not any("setup.sh" in p for p in planned)


def test_without_root_a_missing_package_stops_only_the_part_that_needs_it(sandbox):
    labs = _setup(sandbox, uid=1000)
    assert labs.returncode == 0, labs.stderr  # the learner's set-up needs none of them
    grading = _setup(sandbox, 1000, "grading")
    assert grading.returncode == 1 and "sudo apt-get install bubblewrap" in grading.stderr
    assert "the labs themselves are set up" in grading.stderr
    assert _lines(sandbox["apt"]) == []
    assert "already set up" in _setup(sandbox, uid=1000).stdout, "the labs' part is not repeated"


def test_an_npm_that_fails_stops_the_hub_part_only_and_says_what_to_check(sandbox):
    (sandbox["bin"] / "npm").write_text('#!/bin/bash\necho "npm error code SELF_SIGNED_CERT_IN_CHAIN" >&2\nexit 1\n')
    (sandbox["bin"] / "npm").chmod(0o755)
    assert _setup(sandbox, uid=1000).returncode == 0
    hub = _setup(sandbox, 1000, "hub")
    assert hub.returncode == 1 and "Installing the hub's proxy with npm failed" in hub.stderr
    assert "npm config get cafile" in hub.stderr and not (sandbox["venv"] / ".marketlab-part-hub").exists()
    python_before = len(_lines(sandbox["python"]))
    assert "already set up" in _setup(sandbox, uid=1000).stdout
    assert not [line for line in _lines(sandbox["python"])[python_before:] if "pip" in line]
