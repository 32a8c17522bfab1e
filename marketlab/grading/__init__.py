"""The grading boundary: everything that runs a learner's code, or talks to it, when a submission is graded.

Threat model. A submission is hostile code and everything it prints is untrusted data. It runs only
under bubblewrap (`sandbox`): new user, pid, network, ipc, uts and mount namespaces, no network at
all, an allowlisted environment, Python in isolated mode, a view of the disk that holds the system,
Python and marketlab read-only plus one private copy of the submission (never the course, the
graders, the holdout data, the gradebook or other learners), and as root a throw-away user id. The
sandbox's first process is the `guard` (pid 1 of its namespace, beyond the learner's reach): it
holds the process and disk limits over everything inside and ends it all when it ends. What the
grader touches that a sandbox could reach (the submission's files, the kernel's connection file,
record folders) is opened through descriptors that do not follow links, in folders only the grader
may change. Scores are decided outside the sandbox: a check cell is never sent to the learner's
kernel; the lab's grader runs in the grading worker (`execute`) and asks the kernel only for plain
data or for calls with inputs (`wire`), and a saved workflow's probe (`harness`, `run_probe`,
`workflow_probe`, `serve_module`) runs in a second sandbox against a scripted endpoint that stays
with the grader, so what it sent and what it cost are observed, not reported. Reasons come from a
fixed catalogue (`records`); the learner's own output is kept short and shown only as theirs. The
instructor's account of it is "What a learner's code can reach" in instructor/README.md. The tests
that prove it: tests/test_grading_boundary.py, tests/test_grading_attacks.py,
tests/test_sandbox_limits.py, tests/test_course_pipeline.py and tests/test_check_harness.py.

The modules, from the learner's process outwards:

    guard.py            the sandbox's first process: process and disk limits (standard library only)
    sandbox.py          the bwrap command line, the view, the allowlisted environment, the limits
    kernel.py           the grading kernel, started inside the sandbox
    kernel_launcher.py  the `marketlab-sandbox` kernelspec's command: starts the kernel in its sandbox
    job.py              one submission's job file: its copy, its folders, its limits
    wire.py             the data-only protocol between a check and the learner's kernel or process
    harness.py          runs a learner's saved files in a fresh process (a sandbox when grading)
    serve_module.py, workflow_probe.py, run_probe.py   what those processes run
    execute.py          nbgrader's Execute step for hostile submissions, and the NormalizeCells step
    grading.py          one submission through nbgrader's Autograde, in a grading worker
    records.py          the grading record and its catalogue of reasons
    notebook_values.py  how graders read a notebook's values across the wire

Nothing is imported here: the grading kernel and the learners' checks import single modules of
this package, and each import here would be paid by every one of them.
"""
