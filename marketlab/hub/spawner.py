"""The hub's spawner: each person's JupyterLab as their own system account, a learner's in its own view."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import Bool, Unicode

from .accounts import ensure_account
from .first_login import PasswordNotChangedError, require_changed_password
from .server_view import learner_view
from .settings import INSTRUCTORS_GROUP, HubSettings, load, served_model

ROOT_VARIABLE = "MARKETLAB_HUB_ROOT"


def server_environment(settings: HubSettings, *, instructor: bool) -> dict[str, str]:
    """What a server's environment adds to the hub's own (JUPYTERHUB_* come from the hub)."""
    config = settings.instructor_config if instructor else settings.learner_config
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MALLOC_ARENA_MAX": "2",
        "JUPYTER_CONFIG_PATH": str(config),
        ROOT_VARIABLE: str(settings.root),
        # marketlab.llm.client() finds the gateway from these, with the server's own hub token as key.
        "MARKETLAB_BACKEND": "hub",
        "OPENAI_BASE_URL": f"{settings.service_url}/v1",
        "MARKETLAB_MODEL": served_model(settings),
        "MARKETLAB_PROGRESS_URL": f"{settings.service_url}/attempts",
    }
    if instructor:
        env["MARKETLAB_COURSE"] = str(settings.course)
    return env


class MarketlabSpawner(LocalProcessSpawner):
    """LocalProcessSpawner with the hub's accounts, environment and, for learners, the bubblewrap view.

    Configured with traits, as any JupyterHub spawner: `marketlab hub start` sets them from the hub's
    settings (hubconfig.py), and an operator may override them in `<hub folder>/jupyterhub_config.py`,
    e.g. `c.MarketlabSpawner.sandbox_learners = False`.
    """

    hub_root = Unicode(help="The hub's folder (hub.json, homes, course, exchange).").tag(config=True)
    sandbox_learners = Bool(True, help="Run each learner's server in its bubblewrap view of the machine "
                                       "(turn off only where learners may read everything).").tag(config=True)

    def _settings(self) -> HubSettings:
        return load(self.hub_root or os.environ[ROOT_VARIABLE])

    def command(self, settings: HubSettings, home: Path, *, instructor: bool) -> list[str]:
        """The server's command: jupyterhub-singleuser through marketlab's start-up, in the view for a learner."""
        command = [sys.executable, "-I", "-m", "marketlab.hub.singleuser"]
        sandboxed = self.sandbox_learners and not instructor
        return (learner_view(settings, home) if sandboxed else []) + command

    def _is_instructor(self) -> bool:
        return INSTRUCTORS_GROUP in {group.name for group in self.user.groups}

    async def start(self) -> Any:
        """Make (or check) the account, then start the server as that account."""
        settings = self._settings()
        instructor = self._is_instructor()
        if instructor:
            try:
                require_changed_password(settings, self.user.name, self.authenticator)
            except PasswordNotChangedError as exc:  # relayed to the person as is, on the page and in the API
                refusal = web.HTTPError(403, str(exc).replace("%", "%%"))
                refusal.jupyterhub_message = str(exc)  # type: ignore[attr-defined]  # JupyterHub reads this optional attribute
                raise refusal from None
        account = ensure_account(self.user.name, settings, instructor=instructor)
        self.environment = server_environment(settings, instructor=instructor)
        # An instructor's server is rooted at the hub's folder, so the course (and the formgrader, which
        # only accepts a course inside the server's root) is in reach; it opens on the course.
        self.notebook_dir = str(settings.root if instructor else account.home)
        if instructor:
            self.default_url = "/lab/tree/course"
        self.popen_kwargs = {"cwd": str(account.home)}
        self.cmd = self.command(settings, account.home, instructor=instructor)
        return await super().start()
