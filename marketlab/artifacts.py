"""Where lab artifacts go: next to the notebook, and copied to $MARKETLAB_HOME/artifacts for later labs.

    save_brief(brief)                          # Lab 1: brief.yaml here and in the shared folder
    save_function(build_messages, "lab01_messages")
    load_brief()                               # Lab 2: the learner's brief, else the reference one
    load_function("lab01_messages", "build_messages")

Labs 2 to 4 save a whole file the same way (ModuleFile): workflow.py, evaluate.py, monitor.py are
each written next to the notebook and into the shared folder, imported back on their own and
checked for their one function, then loaded again by path in a later lab, a job or the grader.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from marketlab.brief import Brief
from marketlab.errors import ArtifactError, ArtifactNotFoundError
from marketlab.llm.config import home

BRIEF_FILE = "brief.yaml"


def shared_dir() -> Path:
    """The per-user folder every lab can read: $MARKETLAB_ARTIFACTS, else $MARKETLAB_HOME/artifacts."""
    configured = os.environ.get("MARKETLAB_ARTIFACTS")
    path = Path(configured) if configured else home() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_text(name: str, text: str, here: str | Path | None = None) -> list[Path]:
    """Write a text artifact next to the notebook (the working folder) and into the shared folder."""
    local = Path(here or Path.cwd()) / name
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(text, encoding="utf-8")
    shared = shared_dir() / name
    if shared.resolve() != local.resolve():
        shutil.copyfile(local, shared)
    return [local, shared]


def find(name: str, here: str | Path | None = None, *, shared: bool = True) -> Path | None:
    """The artifact next to the notebook if present, else (if shared) the shared copy, else None."""
    folders = [Path(here or Path.cwd())] + ([shared_dir()] if shared else [])
    for folder in folders:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def save_brief(brief: Brief, name: str = BRIEF_FILE, here: str | Path | None = None) -> list[Path]:
    """Save a brief as YAML next to the notebook and in the shared folder."""
    Brief.from_yaml(brief.to_yaml())  # the file must read back, or the next lab breaks
    paths = save_text(name, brief.to_yaml(), here)
    print(f"Saved your brief to {paths[0]} (and a copy in {paths[1].parent}).")
    return paths


def load_brief(name: str = BRIEF_FILE, here: str | Path | None = None) -> Brief:
    """The learner's saved brief, or the reference brief (with a note) when there is none."""
    path = find(name, here)
    if path is None:
        from marketlab import reference

        print(f"No {name} from an earlier lab was found, so the reference brief is used instead.")
        return reference.load_brief()
    return Brief.load(path)


def function_source(fn: Callable[..., Any]) -> str:
    """Source code of a function defined in a notebook cell or a module."""
    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as err:
        raise ArtifactError(f"Could not read the code of {getattr(fn, '__name__', fn)!r}: {err}.",
                            "Run the cell that defines it again, then run this cell.") from None


def import_file(path: str | Path, name: str) -> ModuleType:
    """Import a Python file as a module (a fresh copy every time, never cached in sys.modules)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"marketlab_artifact_{name}", path)
    if spec is None or spec.loader is None:
        raise ArtifactError(f"{path} cannot be imported as Python.", "Save it again from its notebook.")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def check_module(path: Path, check: Callable[[ModuleType], Any] | None = None) -> ModuleType:
    """Import a written Python file on its own and run `check` on it; an ArtifactError says what failed."""
    try:
        loaded = import_file(path, path.stem)
        if check is not None:
            check(loaded)
    except Exception as err:  # a learner's module can fail in any way; report it plainly
        raise ArtifactError(
            f"{path.name} was written but cannot be imported on its own: {type(err).__name__}: {err}.",
            "Make sure the function only uses its arguments and marketlab, not other notebook variables "
            "(define or import what it needs inside it).") from None
    return loaded


def save_module(filename: str, text: str, here: str | Path | None = None,
                check: Callable[[ModuleType], Any] | None = None) -> list[Path]:
    """Write Python code next to the notebook and in the shared folder, then import it back and check it.

    A module that depends on something only defined in the notebook fails here, with a message,
    rather than in the next lab or at grading.
    """
    paths = save_text(filename, text, here)
    check_module(paths[0], check)
    return paths


@dataclass(frozen=True)
class ModuleFile:
    """One kind of importable file a lab saves: its name, the function it must define, how it is named.

    The one "save, import back, load" of workflow.py (Lab 2), evaluate.py (Lab 3) and monitor.py
    (Lab 4); each package keeps what is its own, the text of the file.
    """

    filename: str  # "workflow.py"
    function: str  # the function every saved file defines: "run"
    noun: str  # how messages name it: "Saved your workflow to ...", "No workflow file at ..."
    made_by: str  # where a missing file comes from: "the notebook's save cell"

    def save(self, text: str, here: str | Path | None = None) -> list[Path]:
        """Write the file next to the notebook (and to the shared folder) and import it back to check it."""
        paths = save_module(self.filename, text, here, check=self._has_function)
        print(f"Saved your {self.noun} to {paths[0]} (and a copy in {paths[1].parent}).")
        return paths

    def load(self, path: str | Path | None = None) -> ModuleType:
        """Import a saved file (default: the one next to the notebook) as a module, a fresh copy each time."""
        path = Path(path) if path is not None else Path.cwd() / self.filename
        if not path.is_file():
            raise ArtifactNotFoundError(f"No {self.noun} file at {path}.", f"Run {self.made_by} first.")
        return import_file(path, f"{self.noun}_{abs(hash(str(path.resolve())))}")

    def _has_function(self, module: ModuleType) -> None:
        # Raised inside check_module, which reports it as an ArtifactError ("...: AttributeError: no run function").
        if not callable(getattr(module, self.function, None)):
            raise AttributeError(f"no {self.function} function")


def save_function(fn: Callable[..., Any], module: str, here: str | Path | None = None,
                  header: str = "from marketlab.brief import Brief  # noqa: F401") -> list[Path]:
    """Write a function's source to `<module>.py` next to the notebook and in the shared folder."""
    source = function_source(fn)
    # annotations stay unevaluated, so type hints that name notebook imports do not break the module
    text = (f'"""Saved from a marketlab notebook: {fn.__name__}."""\n\nfrom __future__ import annotations\n\n'
            f"{header}\n\n\n{source}")
    paths = save_module(f"{module}.py", text, here, check=lambda loaded: getattr(loaded, fn.__name__))
    print(f"Saved {fn.__name__} to {paths[0]} (and a copy in {paths[1].parent}).")
    return paths


def load_function(module: str, name: str, here: str | Path | None = None,
                  fallback: Callable[..., Any] | None = None, *, shared: bool = True) -> Callable[..., Any]:
    """A function saved by an earlier lab, else `fallback` (with a note) when the module is missing."""
    path = find(f"{module}.py", here, shared=shared)
    if path is None:
        if fallback is None:
            where = f" or in {shared_dir()}" if shared else ""
            raise ArtifactNotFoundError(f"No {module}.py found in {Path(here or Path.cwd())}{where}.",
                                        "Run the save cell of the lab that makes it.")
        print(f"No {module}.py from an earlier lab was found, so the reference version is used instead.")
        return fallback
    return getattr(import_file(path, module), name)


def load_build_messages(here: str | Path | None = None) -> Callable[..., Any]:
    """Lab 1's build_messages(brief, record), or the reference version when it was never saved."""
    from marketlab import reference

    return load_function("lab01_messages", "build_messages", here, fallback=reference.build_messages)
