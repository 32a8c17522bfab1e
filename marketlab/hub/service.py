"""The hub's `marketlab` service (run by JupyterHub as the gateway account): the model gateway and live progress.

    python -m marketlab.hub.service      # JupyterHub starts it with JUPYTERHUB_* set
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import openai
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from tornado import web

from . import gateway, progress
from .identity import Instructors
from .settings import HubSettings, load, served_model
from .spawner import ROOT_VARIABLE
from .start import KEY_FILE, KEY_VARIABLE
from .usage import Allowances, Ledger

TOKEN_CACHE_S = 60  # a revoked hub token stops working within a minute
MODEL_SLOTS = 32    # requests the built-in model decodes together (a class at once; about 45 MB each, below)
# A slot's context and the memory kept for reused prompt starts (instructor/hub/README.md, "Sizing"): the
# course's longest request and its reply fit in 2,048 tokens, half the memory of the laptop's 4,096 per slot.
# An operator's own MARKETLAB_SERVER_CONTEXT or MARKETLAB_PREFIX_CACHE_MB in the hub's environment wins.
MODEL_CONTEXT = "2048"
MODEL_PREFIX_CACHE_MB = "1024"
LOCAL_TIMEOUT_S = 600
UPSTREAM_TIMEOUT_S = 120


WATCH_S = 5.0               # how often the gateway checks that the built-in model still answers
MAX_RESTART_WAIT_S = 300.0  # the longest wait between two restarts of a model that keeps failing


class ModelState:
    """What the gateway knows of its model: starting, ready or down (since when, and why)."""

    def __init__(self) -> None:
        self.state, self.since, self.because = "starting", time.time(), ""

    def came_up(self) -> None:
        self.state, self.since, self.because = "ready", time.time(), ""

    def went_down(self, because: str) -> None:
        if self.state != "down":
            self.since = time.time()
        self.state, self.because = "down", because

    def as_dict(self) -> dict[str, str]:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.since))
        return {"model": self.state, "since": since, **({"because": self.because} if self.because else {})}

    def message(self) -> str:
        """For a learner whose request arrives while the model is down."""
        at = time.strftime("%H:%M UTC", time.gmtime(self.since))
        why = f" ({self.because})" if self.because else ""
        return f"The hub's model stopped at {at}{why} and is restarting. Run the cell again in a minute."


class Service:
    """Everything the handlers share: hub auth, the ledger, allowances, attempts and the upstream client."""

    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        # The one instance the OAuth callback handler uses too (it keeps the pending logins in memory).
        self.hub_auth = HubOAuth.instance(cache_max_age=TOKEN_CACHE_S)
        self.instructors = Instructors(self.hub_auth)
        self.ledger = Ledger(settings.gateway / "usage.sqlite")
        self.allowances = Allowances(settings.allowance, self.ledger)
        self.attempts = progress.Attempts(settings.gateway / "attempts.sqlite")
        self.model_name = served_model(settings)
        self.upstream_model = settings.upstream.model or self.model_name
        self.local_model = settings.upstream.url is None
        self.upstream: openai.AsyncOpenAI | None = None  # set by connect() once the model answers
        self.model = ModelState()

    def connect(self) -> None:
        """Start (or find) the model and make the upstream client; the service already listens meanwhile."""
        try:
            self.upstream = self._upstream_client()
        except Exception as exc:  # noqa: BLE001 - the watch says why and tries again with back-off
            self.model.went_down(str(getattr(exc, "problem", exc)))
            return
        self.model.came_up()

    async def watch_model(self, every_s: float = WATCH_S) -> None:
        """Keep the built-in model running: notice when it stops, say why, start it again with back-off.

        Down means the server's process is gone (a busy model that answers /health slowly is not down);
        restarts that fail wait longer each time, while the check itself stays every `every_s`.
        """
        if not self.local_model:
            return
        from ..llm import local

        loop = asyncio.get_running_loop()
        wait, next_try = every_s, 0.0
        while True:
            await asyncio.sleep(every_s)
            if await loop.run_in_executor(None, self._model_process_alive):
                if self.model.state == "down" and await loop.run_in_executor(None, local.status) is not None:
                    self.model.came_up()
                wait = every_s
                continue
            if self.model.state != "down":
                crash = await loop.run_in_executor(None, local.why_it_ended)
                self.model.went_down(crash.ending.sentence() if crash else "its process ended")
                next_try = 0.0
            if time.monotonic() >= next_try:
                await loop.run_in_executor(None, self.connect)
                if self.model.state != "ready":
                    wait = min(wait * 2, MAX_RESTART_WAIT_S)
                    next_try = time.monotonic() + wait

    def _model_process_alive(self) -> bool:
        """Whether the built-in server this service started still runs (by the pid it reported)."""
        from ..llm import local

        return local.server_alive()

    def _upstream_client(self) -> openai.AsyncOpenAI:
        if self.local_model:
            home = self.settings.gateway / "home"
            home.mkdir(mode=0o700, exist_ok=True)
            key = _server_key(home)
            # The built-in server answers only requests with this key: learners share the loopback network.
            os.environ.update(MARKETLAB_HOME=str(home), MARKETLAB_PORT=str(self.settings.model_port),
                              MARKETLAB_SERVER_KEY=key, MARKETLAB_SERVER_SLOTS=str(MODEL_SLOTS))
            os.environ.setdefault("MARKETLAB_SERVER_CONTEXT", MODEL_CONTEXT)
            os.environ.setdefault("MARKETLAB_PREFIX_CACHE_MB", MODEL_PREFIX_CACHE_MB)
            from ..llm.local import ensure_server

            url = ensure_server()
        else:
            assert self.settings.upstream.url is not None  # local_model is False only with an upstream
            url = self.settings.upstream.url
            # `marketlab hub start` keeps the key in the gateway's folder; on Kubernetes a Secret gives it.
            key_path = self.settings.gateway / KEY_FILE
            key = (key_path.read_text().strip() if key_path.exists()
                   else os.environ.pop(KEY_VARIABLE, "") or "not-needed")
        # No retries here: a retried request would spend upstream what the learner's allowance reserved once.
        # The built-in model queues a class's requests on a few cores: the gateway waits as long as a
        # patient learner would, not less.
        return openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0,
                                  timeout=LOCAL_TIMEOUT_S if self.local_model else UPSTREAM_TIMEOUT_S)

    def stop(self) -> None:
        """Stop the built-in model server this service started (by the pid it reported)."""
        if self.local_model:
            from ..llm.local import stop_server

            stop_server()


def _server_key(home: Path) -> str:
    """The built-in server's key, made once and kept in the gateway's home (0600)."""
    path = home / "server.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def application(service: Service) -> web.Application:
    """The tornado application under JUPYTERHUB_SERVICE_PREFIX."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/marketlab/")
    routes: list[Any] = [(rf"{prefix}oauth_callback", HubOAuthCallbackHandler),
              *gateway.handlers(prefix, service), *progress.handlers(prefix, service)]
    return web.Application(routes, cookie_secret=secrets.token_bytes(32), xsrf_cookies=False)


async def serve() -> None:
    """Run until SIGTERM, then stop what this service started."""
    service = Service(load(os.environ[ROOT_VARIABLE]))
    # `marketlab hub stop` finds a service that its hub left behind by this pid (and checks it is this hub's).
    (service.settings.gateway / "service.pid").write_text(str(os.getpid()))
    where = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    # Tornado's own limit sits above the gateway's, so a body just over it gets the gateway's 413 in
    # OpenAI's shape (with what to do) rather than tornado's bare 400.
    server = application(service).listen(where.port or 80, address=where.hostname or "127.0.0.1",
                                         max_body_size=8 * gateway.MAX_BODY, max_buffer_size=8 * gateway.MAX_BODY)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Listen first (JupyterHub gives a managed service 10 s to answer), then start the model, then watch it.
    await loop.run_in_executor(None, service.connect)
    watch = asyncio.create_task(service.watch_model())
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    try:
        await stopped.wait()
    finally:
        watch.cancel()
        server.stop()
        service.stop()


def main() -> None:
    """Entry point of `python -m marketlab.hub.service`."""
    os.umask(0o077)  # the ledger and the model's files: the gateway account's alone
    asyncio.run(serve())


if __name__ == "__main__":
    main()
