"""`marketlab hub start`: prepare the hub's folder, accounts and student labs, then run JupyterHub."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from .. import paths
from ..course.workspace import learner_config_dir, prepare_workspace
from .accounts import ensure_gateway_account, ensure_group, grant_traversal
from .hubconfig import proxy_command
from .settings import (
    COURSE_ID,
    GATEWAY_ACCOUNT,
    INSTRUCTOR_SYSTEM_GROUP,
    LEARNER_SYSTEM_GROUP,
    Allowance,
    HubError,
    HubSettings,
    Upstream,
)
from .spawner import ROOT_VARIABLE

PACKAGE = Path(__file__).resolve().parents[1]  # marketlab itself, which every account of the hub imports
KEY_VARIABLE = "MARKETLAB_UPSTREAM_KEY"
KEY_FILE = "upstream.key"
KEY_FILE_VARIABLE = "MARKETLAB_UPSTREAM_KEY_FILE"  # set by --upstream-key-file


def _own(path: Path, uid: int, gid: int, mode: int) -> bool:
    """Set owner and mode through a descriptor opened without following a link; False for a link (left alone).

    Root runs this over folders others can write to: a path checked and then changed by name could
    be swapped for a link in between, and root would change the link's target instead.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return False
        raise
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return True


def _folder(path: Path, mode: int, uid: int = 0, gid: int = 0) -> None:
    """A folder with exactly this owner and mode (a link or a file in its place is an error)."""
    path.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or not path.is_dir() or not _own(path, uid, gid, mode):
        raise HubError(f"{path} is not a folder.", "Remove it: the hub makes it itself.")


def _nbgrader_config(folder: Path, settings: HubSettings, course_root: Path | None) -> None:
    lines = ["# Written by `marketlab hub start`: where nbgrader finds the course's exchange.",
             "c = get_config()  # noqa: F821",
             f"c.CourseDirectory.course_id = {COURSE_ID!r}",
             f"c.Exchange.root = {str(settings.exchange)!r}"]
    if course_root is not None:
        lines.append(f"c.CourseDirectory.root = {str(course_root)!r}")
    else:  # a learner fetches to and submits from ~/<lab>, where the hub put the lab on first start
        lines.append("c.Exchange.path_includes_course = False")
    (folder / "nbgrader_config.py").write_text("\n".join(lines) + "\n")


def prepare(settings: HubSettings) -> list[str]:
    """Make every folder, account and file the hub needs; return what was done, for the start-up message."""
    if os.geteuid() != 0:
        raise HubError("The hub must be started as root: it runs each person's JupyterLab as their own system account.",
                       "Run `sudo make hub` (or `sudo .venv/bin/marketlab hub start`).")
    if not proxy_command().exists():
        raise HubError(f"The proxy is not installed ({proxy_command()} is missing).",
                       "Run `make hub`, which installs it with npm first.")
    done: list[str] = []
    root = settings.root
    _folder(root, 0o755)  # first: on a fresh machine it does not exist yet, and its parents are checked below
    _folder(settings.state, 0o700)  # root's alone: it holds the record of what the hub makes from here on
    ensure_group(LEARNER_SYSTEM_GROUP, settings.state)
    instructors_gid = ensure_group(INSTRUCTOR_SYSTEM_GROUP, settings.state)
    gateway_uid, gateway_gid = ensure_gateway_account(settings.state)
    # Each path's parents get passed through: "/x" below the root makes the root itself one of them.
    passed = grant_traversal([Path(sys.base_prefix), Path(sys.prefix), PACKAGE, settings.root / "x"],
                             [LEARNER_SYSTEM_GROUP, INSTRUCTOR_SYSTEM_GROUP, GATEWAY_ACCOUNT], settings.state)
    if passed:
        done.append(f"the hub's accounts may pass through {', '.join(map(str, passed))} to reach Python and the hub "
                    "(x only; `marketlab hub stop --undo-grants` takes this back)")
    _folder(settings.homes, 0o711)  # passable to one's own home, not listable
    _folder(settings.gateway, 0o700, gateway_uid, gateway_gid)
    for config in (settings.learner_config, settings.instructor_config):
        _folder(config, 0o755)
    learner_config_dir(settings.learner_config)
    _nbgrader_config(settings.learner_config, settings, None)
    _nbgrader_config(settings.instructor_config, settings, settings.course)

    # nbgrader's exchange: learners may read releases and drop submissions in, never list or change others'.
    exchange_course = settings.exchange / COURSE_ID
    # nbgrader wants its root open to all (0777); sticky, so no one removes what others made.
    _folder(settings.exchange, 0o1777)
    _folder(exchange_course, 0o2775, 0, instructors_gid)
    _folder(exchange_course / "outbound", 0o2775, 0, instructors_gid)
    _folder(exchange_course / "inbound", 0o3773, 0, instructors_gid)
    _folder(exchange_course / "feedback", 0o2771, 0, instructors_gid)

    # The course: instructors' group only; graders and holdout stay where learners' servers cannot see.
    from ..course.init import init_course

    course = init_course(settings.course, exchange=settings.exchange, course_id=COURSE_ID)
    config = course.root / "nbgrader_config.py"
    shared = "c.CourseDirectory.groupshared = True"
    if shared not in config.read_text():  # several instructors share the course and its exchange folders
        config.write_text(config.read_text() + f"\n# On the hub the instructors' group shares the course.\n{shared}\n")
    for path in [settings.course, *settings.course.rglob("*")]:
        if not path.is_symlink():
            _own(path, 0, instructors_gid, 0o2770 if path.is_dir() else 0o660)
    done.append(f"course folder {settings.course} (group {INSTRUCTOR_SYSTEM_GROUP})")

    # The student versions every learner gets on first start (no solutions, no hidden tests).
    _folder(settings.student, 0o755)
    created = prepare_workspace(paths.labs(), settings.student)
    for path in [settings.student, *settings.student.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    done.append(f"student labs in {settings.student} ({len(created)} files new)")

    key = os.environ.pop(KEY_VARIABLE, "")
    if key_file := os.environ.pop(KEY_FILE_VARIABLE, ""):
        try:
            key = Path(key_file).read_text().strip()
        except OSError as exc:
            raise HubError(f"The upstream key file {key_file} cannot be read ({exc.strerror}).",
                           "Pass --upstream-key-file with a file that holds only the key, readable by root.") from None
    if key:
        key_path = settings.gateway / KEY_FILE
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.fchown(fd, gateway_uid, gateway_gid)
        with os.fdopen(fd, "w") as out:
            out.write(key)
        done.append("upstream key stored for the gateway only")
    settings.save()
    from .first_login import FIRST_LOGIN_FILE, seed_instructors

    seeded = seed_instructors(settings)
    if seeded:
        done.append(f"accounts for {', '.join(seeded)} with one-time passwords in "
                    f"{settings.state / FIRST_LOGIN_FILE} (readable by root only)")
    return done


def start(settings: HubSettings) -> int:
    """Prepare, print the URL and the first step, then replace this process with JupyterHub."""
    for line in prepare(settings):
        print(f"  - {line}")
    first = settings.instructors[0] if settings.instructors else "<instructor>"
    print(f"\nThe hub is starting at {settings.public_url}\n"
          f"First login: as root, read the one-time password of {first!r} with\n"
          f"    sudo cat {settings.state / 'first-login.txt'}\n"
          f"log in at {settings.public_url}/hub/login and change it at {settings.public_url}/hub/change-password.\n"
          f"Learners sign up at {settings.public_url}/hub/signup; approve each at {settings.public_url}/hub/authorize.")
    jupyterhub = Path(sys.executable).parent / "jupyterhub"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MARKETLAB_", "OPENAI_"))}
    env[ROOT_VARIABLE] = str(settings.root)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    sys.stdout.flush()
    os.chdir(settings.state)
    os.execve(str(jupyterhub), [str(jupyterhub), "-f", str(config_file())], env)
    return 0  # not reached


def config_file() -> Path:
    """JupyterHub's configuration file of the hub, in the checkout (it reads the hub's folder)."""
    return paths.instructor() / "hub" / "jupyterhub_config.py"


def settings_from_args(args: object) -> HubSettings:
    """HubSettings from `marketlab hub start`'s arguments; a HubError naming the option that is wrong."""
    values = vars(args)
    try:
        return HubSettings(
            root=Path(values["root"]).resolve(), ip=values["ip"], port=values["port"], hub_port=values["hub_port"],
            service_port=values["service_port"], model_port=values["model_port"],
            proxy_api_port=values["proxy_api_port"], instructors=tuple(values["instructor"] or ()),
            upstream=Upstream(url=values["upstream_url"], model=values["upstream_model"]),
            allowance=Allowance(daily_tokens=values["daily_tokens"], requests_per_minute=values["rate_per_minute"]),
            sandbox_learners=not values["no_sandbox_learners"])
    except ValidationError as exc:
        first = exc.errors()[0]
        option = str(first["loc"][-1]).replace("_", "-") if first["loc"] else "an option"
        raise HubError(f"--{option}: {first['msg']}",
                       "Change that option and start the hub again (see `marketlab hub start --help`).") from None
