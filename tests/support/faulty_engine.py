"""A stand-in engine that dies as a build for another processor does: SIGILL on its first computation.

`faulty_engine(folder)` writes a package named `llama_cpp` into `folder` that is the installed
llama-cpp-python in every way but one: while the file `folder/armed` exists, `llama_decode` (the
first call that computes anything) kills its process with SIGILL, as an engine compiled for
instructions the processor lacks does. Put `folder` first on the PYTHONPATH of the processes under
test; `arm(folder)` and `disarm(folder)` switch the fault on and off while they run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SHIM = '''\
# Stand-in written by tests/support/faulty_engine.py: the real llama_cpp, but computing dies on SIGILL.
import os as _os
import resource as _resource
import signal as _signal

__path__ = [{real!r}]
__file__ = {init!r}
exec(compile(open(__file__).read(), __file__, "exec"))
_real_decode = llama_decode


def llama_decode(ctx, batch):
    if _os.path.exists({armed!r}):
        _resource.setrlimit(_resource.RLIMIT_CORE, (0, 0))  # no core file left behind
        _os.kill(_os.getpid(), _signal.SIGILL)
    return _real_decode(ctx, batch)
'''


def faulty_engine(folder: Path, *, armed: bool = True) -> Path:
    """Write the stand-in into `folder` (armed or not) and return `folder`."""
    spec = importlib.util.find_spec("llama_cpp")
    assert spec is not None and spec.origin and spec.submodule_search_locations, "llama-cpp-python is not installed"
    package = folder / "llama_cpp"
    package.mkdir(parents=True, exist_ok=True)
    real = list(spec.submodule_search_locations)[0]
    (package / "__init__.py").write_text(_SHIM.format(real=real, init=spec.origin, armed=str(folder / "armed")))
    (arm if armed else disarm)(folder)
    return folder


def arm(folder: Path) -> None:
    (folder / "armed").touch()


def disarm(folder: Path) -> None:
    (folder / "armed").unlink(missing_ok=True)
