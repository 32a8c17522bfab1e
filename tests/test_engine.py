"""The built-in model's engine on any processor: a portable build, a self-test before "ready", crashes named.

The crash tests use a stand-in engine (tests/support/faulty_engine.py): the real llama-cpp-python,
except that its first computation kills the process with SIGILL, as a build for another processor
does. It reaches the server and the self-test's child process through PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from marketlab import llm
from marketlab.llm import local
from marketlab.llm.errors import ModelStoppedDuringCallError, ModelStoppedError
from marketlab.llm.exits import Ending
from marketlab.llm.selftest import engine_info
from marketlab.workflow.runner import run_batch
from tests.support.faulty_engine import arm, disarm, faulty_engine

# The built-in model's engine: built, self-tested and served (faulty builds included).
pytestmark = pytest.mark.model

REPO = Path(__file__).resolve().parent.parent
ENGINE_SH = REPO / "scripts" / "engine.sh"
SIGILL_WORDS = "illegal instruction (signal 4)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _settings(tmp_path: Path, flags: str, arch_note: str = "") -> dict[str, str]:
    cpuinfo = tmp_path / f"cpuinfo-{abs(hash(flags))}"
    cpuinfo.write_text(f"model name\t: Test CPU {arch_note}\nflags\t\t: {flags}\n")
    done = subprocess.run(["bash", str(ENGINE_SH), "--print-settings"], capture_output=True, text=True,
                          env={**os.environ, "ENGINE_CPUINFO": str(cpuinfo), "VENV": str(tmp_path / "no-venv")})
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


# -- the build ------------------------------------------------------------------------------------

@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the x86-64 targets")
def test_the_build_targets_named_instruction_sets_never_this_machine(tmp_path):
    amx_machine = _settings(tmp_path, "fpu sse2 sse4_2 avx avx2 fma f16c bmi2 avx512f avx512bw amx_tile amx_int8 "
                                      "amx_bf16 avx512_vnni")
    assert amx_machine["target"] == "x86-64-v3"
    args = amx_machine["cmake_args"].split()
    assert "-DGGML_NATIVE=OFF" in args and "-DGGML_NATIVE=ON" not in args and "-march=native" not in args
    for feature in ("AVX2", "FMA", "F16C", "BMI2"):
        assert f"-DGGML_{feature}=ON" in args
    for feature in ("AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_TILE", "AMX_INT8", "AMX_BF16",
                    "AVX_VNNI"):
        assert f"-DGGML_{feature}=OFF" in args, f"{feature} must be off whatever the processor advertises"
    # The same settings, so the same kept wheel, on a processor of another generation with AVX2:
    older = _settings(tmp_path, "fpu sse2 sse4_2 avx avx2 fma f16c bmi2", "older")
    assert older == amx_machine
    # Without AVX2 the baseline target, kept in another folder: a wheel is only reused where it runs.
    baseline = _settings(tmp_path, "fpu sse2 sse4_2", "old")
    assert baseline["target"] == "x86-64" and "-DGGML_AVX2=OFF" in baseline["cmake_args"].split()
    assert baseline["wheel_folder"] != amx_machine["wheel_folder"]


def test_pip_never_reads_or_writes_its_own_wheel_cache_for_the_engine():
    script = ENGINE_SH.read_text()
    build = re.search(r'-m pip wheel[^\n]*\n[^\n]*\n', script)
    assert build, "engine.sh builds with pip wheel"
    assert "--no-cache-dir" in build.group(0) and "--no-binary llama-cpp-python" in build.group(0)
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert setup.index("scripts/engine.sh") < setup.index("pip install --progress-bar on -e ."), \
        "the engine is installed before the package, so pip never compiles it with llama.cpp's defaults"


def test_the_installed_engine_has_no_instruction_beyond_its_target():
    info = engine_info()
    if info.get("target") != "x86-64-v3":
        pytest.skip(f"the installed engine is {info.get('target') or 'not from scripts/engine.sh'}")
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    import llama_cpp

    libraries = sorted((Path(llama_cpp.__file__).parent / "lib").glob("libggml-cpu.so*"))
    assert libraries, "no libggml-cpu in the installed engine"
    code = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(libraries[0])], capture_output=True, text=True,
                          check=True).stdout
    assert "%ymm" in code, "an x86-64-v3 build uses AVX2"
    beyond = re.findall(r"%zmm\d+|\btile(?:loadd|zero|stored|release)\b|\btdpb\w+", code)
    assert not beyond, f"AVX-512 or AMX instructions in the portable engine: {sorted(set(beyond))[:5]}"


# -- how a process ended, in words ------------------------------------------------------------------

def test_endings_are_named_with_their_meaning_and_fix():
    sigill = Ending(-signal.SIGILL)
    assert sigill.describe() == SIGILL_WORDS and sigill.engine_fault and not sigill.requested
    assert "cannot run" in sigill.sentence() and "make engine" in sigill.fix()
    assert Ending(-signal.SIGTERM).requested and not Ending(-signal.SIGTERM).engine_fault
    assert "memory" in Ending(-signal.SIGKILL).sentence()
    assert Ending(3).describe() == "exit code 3" and Ending(0).requested


# -- the self-test and the crash named wherever it shows -----------------------------------------------

@pytest.fixture
def faulty(tmp_path, monkeypatch):
    """A private home and port, and the stand-in engine first on PYTHONPATH (armed)."""
    folder = faulty_engine(tmp_path / "engine")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MARKETLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MARKETLAB_PORT", str(_free_port()))
    yield folder
    state = local.read_state()
    if state and local._alive(int(state["pid"])):
        os.kill(int(state["pid"]), signal.SIGKILL)


def _marketlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "marketlab", *args], capture_output=True, text=True, timeout=300)


def test_the_selftest_passes_on_the_installed_engine():
    done = subprocess.run([sys.executable, "-m", "marketlab.llm.selftest"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "self-test passed" in done.stdout


def test_the_selftest_names_an_illegal_instruction_and_the_rebuild(faulty):
    done = subprocess.run([sys.executable, "-m", "marketlab.llm.selftest"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert SIGILL_WORDS in done.stderr and "cannot run" in done.stderr
    assert "make engine" in done.stderr and "Traceback" not in done.stderr


def test_serve_never_says_ready_when_the_engine_faults(faulty):
    served = _marketlab("serve")
    assert served.returncode == 2
    assert "ready" not in served.stdout.lower()
    assert SIGILL_WORDS in served.stderr and "make engine" in served.stderr and "Traceback" not in served.stderr

    status = _marketlab("serve", "--status")
    assert status.returncode == 1
    assert SIGILL_WORDS in status.stdout and "make engine" in status.stdout

    doctor = _marketlab("doctor")
    assert doctor.returncode == 1 and SIGILL_WORDS in doctor.stdout
    fix = next(line for line in doctor.stdout.splitlines() if line.strip().startswith("fix"))
    assert "make engine" in fix and "marketlab serve" not in fix, "doctor advised a restart it just saw fail"
    assert re.search(r"engine\s+x86-64|engine\s+\S+ build", doctor.stdout) or not engine_info()


def test_a_crash_after_ready_is_named_in_the_call_the_status_and_a_workflow_run(faulty):
    disarm(faulty)
    api = llm.client(max_retries=2, timeout=120)
    first = api.chat.completions.create(model=llm.model_name(), max_tokens=3, temperature=0,
                                        messages=[{"role": "user", "content": "Hi"}])
    assert first.choices[0].message.content is not None
    arm(faulty)  # the next computation dies, as the first learner's request did on the AMX machine
    with pytest.raises(ModelStoppedDuringCallError) as caught:
        api.chat.completions.create(model=llm.model_name(), max_tokens=3, temperature=0,
                                    messages=[{"role": "user", "content": "Hi again"}])
    error = caught.value
    assert isinstance(error, openai.OpenAIError) and isinstance(error, ModelStoppedError)
    assert SIGILL_WORDS in error.problem and "make engine" in error.fix
    shown = error._render_traceback_()  # what IPython prints in the notebook instead of a traceback
    assert shown[0] == ModelStoppedError.headline and any(SIGILL_WORDS in line for line in shown)

    status = _marketlab("serve", "--status")
    assert status.returncode == 1 and SIGILL_WORDS in status.stdout
    stop = _marketlab("serve", "--stop")
    assert SIGILL_WORDS in stop.stdout and "already stopped" in stop.stdout

    # A workflow run stops at the first row that meets the dead engine and says why, on every row.
    import pandas as pd
    from pydantic import BaseModel

    class Line(BaseModel):
        text: str

    arm(faulty)
    rows = pd.DataFrame({"sku": ["A", "B", "C"], "name": ["tent", "lamp", "boot"]})
    with pytest.raises(ModelStoppedError):  # the client restarts the server, and its self-test dies
        llm.client()
    out = run_batch(rows, lambda row: [{"role": "user", "content": f"One line about a {row['name']}."}], Line,
                    api, show_summary=False, workers=1)  # the kernel's client from before the crash
    assert (out["status"] == "failed").all()
    assert out["error"].str.contains("illegal instruction", regex=False).all(), out["error"].tolist()


def test_a_server_killed_outright_is_reported_as_killed(faulty):
    disarm(faulty)
    local.ensure_server()
    state = local.read_state()
    os.kill(int(state["pid"]), signal.SIGKILL)
    # Asked the moment the process is gone (as the hub's watch asks), the answer waits for the record.
    while local.server_alive():
        time.sleep(0.01)
    ended = local.why_it_ended()
    assert ended is not None and "signal 9" in ended.ending.sentence(), ended
    deadline = time.monotonic() + 120  # polls the supervisor's record; the limit is for a busy machine
    while local.last_crash() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    status = _marketlab("serve", "--status")
    assert status.returncode == 1 and "killed (signal 9)" in status.stdout and "memory" in status.stdout
    record = json.loads(local.ending_path().read_text())
    assert record["pid"] == state["pid"] and record["returncode"] == -signal.SIGKILL
    # The next start works again and clears the record: the crash is history once a server answers.
    assert local.ensure_server() and local.last_crash() is None and not local.ending_path().exists()
    local.stop_server()
