"""The grading kernel, as started inside the sandbox: `python -I -m marketlab.grading.kernel -f FILE`.

Python runs in isolated mode (-I): no PYTHON* variables, no user site-packages, and neither the
script's folder nor the working folder on the import path, so a `json.py` or a `marketlab/` folder
beside the notebook cannot run before the learner's own cells. ipykernel would add the working
folder at start; here it is added only once the kernel has finished importing what it needs,
so `import workflow` in a learner's cell still works as it does in Jupyter.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    """Start an IPython kernel whose start-up imports come only from Python and the venv."""
    from ipykernel.kernelapp import IPKernelApp

    class IsolatedKernelApp(IPKernelApp):
        def init_path(self) -> None:  # ipykernel puts "" first on sys.path here; not at start
            return None

    app = IsolatedKernelApp.instance()
    app.initialize(["-f", argv[argv.index("-f") + 1], "--HistoryManager.hist_file=:memory:",
                    "--IPKernelApp.quiet=True"])
    import marketlab.grading.wire  # noqa: F401 - imported before the working folder joins the path

    sys.path.insert(0, "")
    app.start()


if __name__ == "__main__":
    main(sys.argv[1:])
