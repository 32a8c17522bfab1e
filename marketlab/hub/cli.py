"""`marketlab hub`: start the cohort's JupyterHub on this machine."""

from __future__ import annotations

import argparse
from typing import Any

from .settings import DEFAULT_ROOT, Allowance


def add_commands(commands: Any) -> None:
    """Register `marketlab hub start` on the main parser."""
    hub = commands.add_parser("hub", help="the self-paced JupyterHub for a cohort (start as root)")
    steps = hub.add_subparsers(dest="step", required=True)
    start = steps.add_parser("start", help="prepare the hub's folder and accounts, then run JupyterHub")
    start.add_argument("--root", default=str(DEFAULT_ROOT), help=f"the hub's folder (default {DEFAULT_ROOT})")
    start.add_argument("--instructor", action="append", default=None, required=True,
                       help="hub name of an instructor (repeatable); the first signs up as the admin")
    start.add_argument("--ip", default="127.0.0.1", help="address learners reach (0.0.0.0 for every interface)")
    start.add_argument("--port", type=int, default=8000, help="the hub's public port")
    start.add_argument("--hub-port", type=int, default=8081, help="the hub's internal API port")
    start.add_argument("--service-port", type=int, default=8090, help="the gateway service's internal port")
    start.add_argument("--proxy-api-port", type=int, default=8001, help="the proxy's internal API port")
    start.add_argument("--model-port", type=int, default=8432, help="the built-in model server's port")
    start.add_argument("--daily-tokens", type=int, default=Allowance().daily_tokens,
                       help="tokens each learner may use per day (UTC)")
    start.add_argument("--rate-per-minute", type=int, default=Allowance().requests_per_minute,
                       help="model requests each learner may send per minute")
    start.add_argument("--upstream-url", default=None,
                       help="an OpenAI-compatible endpoint instead of the built-in model; its key is read from "
                            "MARKETLAB_UPSTREAM_KEY and kept for the gateway only")
    start.add_argument("--upstream-model", default=None, help="the upstream model learners get")
    start.add_argument("--upstream-key-file", default=None,
                       help="a file (readable by root) holding the upstream's key: keeps it off command lines")
    start.add_argument("--no-sandbox-learners", action="store_true",
                       help="run learners' servers without their bubblewrap view (only where they may read everything)")
    start.set_defaults(func=_start)

    stop = steps.add_parser("stop", help="stop the hub and everything it started; optionally undo what it made")
    stop.add_argument("--root", default=str(DEFAULT_ROOT), help=f"the hub's folder (default {DEFAULT_ROOT})")
    stop.add_argument("--undo-grants", action="store_true",
                      help="also take back the pass-through (ACL) grants the hub made on folders above Python")
    stop.add_argument("--remove-accounts", action="store_true",
                      help="also remove the system accounts and groups the hub made (their homes are kept)")
    stop.set_defaults(func=_stop)


def _require_hub_packages() -> None:
    """JupyterHub comes with the hub extra (`make hub`), not with the labs: say so instead of an ImportError."""
    import importlib.util

    from .settings import HubError

    if importlib.util.find_spec("jupyterhub") is None or importlib.util.find_spec("nativeauthenticator") is None:
        raise HubError("JupyterHub is not installed here: the hub's packages are not part of the labs' set-up.",
                       "Run `sudo make hub`, which installs them first (or `.venv/bin/pip install -e '.[hub]'`).")


def _start(args: argparse.Namespace) -> int:
    import os

    _require_hub_packages()
    from .start import KEY_FILE_VARIABLE, settings_from_args, start

    if args.upstream_key_file:
        os.environ[KEY_FILE_VARIABLE] = args.upstream_key_file
    return start(settings_from_args(args))


def _stop(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .settings import SETTINGS_FILE, HubSettings, load
    from .stop import stop

    _require_hub_packages()
    root = Path(args.root).resolve()
    # A hub whose first start failed half-way has a state folder but no settings yet: its defaults apply.
    settings = load(root) if (root / SETTINGS_FILE).exists() else HubSettings(root=root)
    report = stop(settings, undo_grants=args.undo_grants, remove_accounts=args.remove_accounts)
    for line in report.lines:
        print(f"  - {line}")
    return 1 if report.failed else 0
