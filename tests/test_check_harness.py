"""The learner's instant-feedback harness cleans up after itself."""

from __future__ import annotations

import gc
import sys

from marketlab.grading.harness import LocalHarness


def test_local_harness_folder_goes_with_it(tmp_path):
    harness = LocalHarness()
    folder = harness.socket_dir()
    (folder / "home").mkdir()
    (folder / "home" / "cache.json").write_text("{}")
    process = harness.start(tmp_path, ["-c", "print('hi')"])
    out, _ = process.communicate(timeout=60)
    harness.stop(process)
    assert out.strip() == b"hi"
    assert folder.is_dir()
    del harness
    gc.collect()
    assert not folder.exists(), "every check a learner runs would leave a folder in the temporary directory"


def test_local_harness_folder_removed_at_exit(tmp_path):
    import subprocess

    code = ("from marketlab.grading.harness import LocalHarness\n"
            "h = LocalHarness()\nprint(h.socket_dir())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    from pathlib import Path

    assert not Path(out.stdout.strip()).exists()
