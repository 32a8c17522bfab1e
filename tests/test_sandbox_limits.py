"""The grading sandbox's limits leave an honest lab room to run.

A correct Lab 2 notebook was killed mid-lab, now and then, because the kernel's address space sat
at the memory limit: glibc reserved 64 MB per malloc arena for each of its threads. An honest
kernel's stack (pandas, pydantic, openai, ipykernel, a dozen threads that allocate) must finish
under the default limits with most of the limit to spare, as root (its own user) and not.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

from marketlab.grading import sandbox
from marketlab.grading.sandbox import Limits, View

pytestmark = [pytest.mark.sandbox,
              pytest.mark.skipif(sandbox.unavailable_reason() is not None,
                                 reason=f"no grading sandbox here: {sandbox.unavailable_reason()}")]

HONEST_KERNEL = """
import json, threading, time
import ipykernel, matplotlib.pyplot, openai, pandas, pydantic
import marketlab.workflow

def work():
    kept = [bytearray(2000) for _ in range(3000)]  # every thread allocates, as run_batch's workers do
    time.sleep(0.5)

threads = [threading.Thread(target=work) for _ in range(16)]
for t in threads:
    t.start()
time.sleep(0.2)
for t in threads:
    t.join()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"peak_kb": int(status["VmPeak"].split()[0])}))
"""


def test_an_honest_kernel_stack_has_room_under_the_default_memory_limit() -> None:
    limits = Limits()
    with tempfile.TemporaryDirectory(prefix="marketlab-limits-") as folder:
        os.chmod(folder, 0o755)
        view = View(workdir=Path(folder), inside="/submission", writable=False, env=sandbox.allowed_env("/submission"),
                    limits=limits, uid=61999 if os.geteuid() == 0 else None)
        done = sandbox.run(view, [sys.executable, "-I", "-c", HONEST_KERNEL], timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    peak_mb = json.loads(done.stdout.decode().strip().splitlines()[-1])["peak_kb"] / 1024
    assert peak_mb < 0.6 * limits.memory_mb, f"{peak_mb:.0f} MB of address space of a {limits.memory_mb} MB limit"

