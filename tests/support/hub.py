"""A real JupyterHub for the tests: started by `marketlab hub start` on loopback, driven over HTTP.

    hub = Hub.start(tmp_path / "hub", instructors=["ana"])
    ana = hub.session("ana"); ana.signup("a-long-password-1")
    ...
    hub.stop()            # `marketlab hub stop --undo-grants --remove-accounts`, then checks nothing is left

Learners sign up through NativeAuthenticator's own form and an instructor authorizes them through
its own page; code runs in a person's own JupyterLab through the Jupyter server's REST and
WebSocket API, as a browser's notebook would.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

REPO = Path(__file__).resolve().parents[2]
MARKETLAB = Path(sys.executable).parent / "marketlab"
START_S = 120
POLL_S = 0.2  # how often a wait asks again: a wait ends within this of what it waits for


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Session:
    """One person's browser-like session on the hub (cookies, xsrf)."""

    hub: Hub
    name: str
    client: httpx2.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx2.Client(base_url=self.hub.url, follow_redirects=True, timeout=60)

    def _xsrf(self, page: str) -> str:
        self.client.get(page)
        token = self.client.cookies.get("_xsrf")
        assert token, f"the hub set no _xsrf cookie on {page}"
        return token

    def signup(self, password: str) -> httpx2.Response:
        """NativeAuthenticator's sign-up form."""
        xsrf = self._xsrf("/hub/signup")
        return self.client.post("/hub/signup", data={"username": self.name, "signup_password": password,
                                                      "signup_password_confirmation": password, "_xsrf": xsrf})

    def login(self, password: str) -> httpx2.Response:
        """The hub's login form."""
        xsrf = self._xsrf("/hub/login")
        return self.client.post("/hub/login", data={"username": self.name, "password": password, "_xsrf": xsrf})

    def change_password(self, old: str, new: str) -> httpx2.Response:
        """NativeAuthenticator's change-password form (after logging in)."""
        xsrf = self._xsrf("/hub/change-password")
        return self.client.post("/hub/change-password", data={"old_password": old, "new_password": new,
                                                               "new_password_confirmation": new, "_xsrf": xsrf})

    def first_login(self, new_password: str) -> None:
        """An instructor's first login: the one-time password from the hub's root-only file, then a new one."""
        from marketlab.hub.first_login import one_time_passwords
        from marketlab.hub.settings import load

        once = one_time_passwords(load(self.hub.root))[self.name]
        assert "/hub/login" not in str(self.login(once).url), f"{self.name} could not log in with the one-time password"
        reply = self.change_password(once, new_password)
        assert reply.status_code == 200 and "changed" in reply.text.lower(), reply.text[-2000:]

    def authorize(self, other: str) -> httpx2.Response:
        """As an admin: NativeAuthenticator's authorize toggle for another person."""
        return self.client.get(f"/hub/authorize/{other}")

    def new_token(self, note: str = "tests") -> str:
        """An API token of this person's own, made through the hub's REST API with the login cookie."""
        xsrf = self.client.cookies.get("_xsrf") or self._xsrf("/hub/home")
        reply = self.client.post(f"/hub/api/users/{self.name}/tokens", json={"note": note, "expires_in": 3600},
                                 headers={"X-XSRFToken": xsrf})
        assert reply.status_code in (200, 201), reply.text
        return reply.json()["token"]


@dataclass
class Hub:
    """A hub this test run started (and only stops by its own pid)."""

    root: Path
    port: int
    process: subprocess.Popen  # type: ignore[type-arg]
    log_path: Path
    instructors: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def service_url(self) -> str:
        return f"{self.url}/services/marketlab"

    @classmethod
    def start(cls, root: Path, *, instructors: list[str], daily_tokens: int = 200_000, rate_per_minute: int = 30,
              upstream_url: str | None = None, upstream_model: str | None = None,
              upstream_key: str | None = None, wait_for_model: bool = True) -> Hub:
        """Start `marketlab hub start` as a child and wait until its service answers, and its model is ready.

        With `wait_for_model=False` it returns once the service answers, while the built-in model is still
        starting: a caller can sign people up and start their servers meanwhile, then call `wait_ready()`.
        The hub's root is not made here: on a fresh machine it does not exist either (issue 25).
        """
        port = free_port()
        argv = [str(MARKETLAB), "hub", "start", "--root", str(root), "--port", str(port),
                "--hub-port", str(free_port()), "--service-port", str(free_port()),
                "--model-port", str(free_port()), "--proxy-api-port", str(free_port()),
                "--daily-tokens", str(daily_tokens), "--rate-per-minute", str(rate_per_minute)]
        for name in instructors:
            argv += ["--instructor", name]
        if upstream_url:
            argv += ["--upstream-url", upstream_url]
        if upstream_model:
            argv += ["--upstream-model", upstream_model]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MARKETLAB_", "OPENAI_", "JUPYTER"))}
        if upstream_key:
            env["MARKETLAB_UPSTREAM_KEY"] = upstream_key
        log_path = root.parent / f"{root.name}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                   start_new_session=True)
        hub = cls(root, port, process, log_path, list(instructors))
        try:
            hub.wait_ready(model=wait_for_model)
        except BaseException:
            hub.stop()  # a hub that did not come up still stops what it started
            raise
        return hub

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, model: bool = True) -> None:
        """Wait until the hub routes to its service and the service says its model is ready (or, with
        `model=False`, says anything at all: the service answers before its model has started)."""
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the hub exited ({self.process.returncode}):\n{self.log()[-4000:]}")
            try:
                state = httpx2.get(f"{self.service_url}/health", timeout=2).json().get("model")
                if state == "ready" or (state and not model):
                    return
            except (httpx2.HTTPError, ValueError):  # not routed yet: the hub's own 404 page
                pass
            time.sleep(POLL_S)
        raise AssertionError(f"the hub did not answer within {START_S} s:\n{self.log()[-4000:]}")

    def session(self, name: str) -> Session:
        return Session(self, name)

    def api(self, token: str, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        """A call to the hub's REST API with a token."""
        return httpx2.request(method, f"{self.url}/hub/api{path}", headers={"Authorization": f"token {token}"},
                              timeout=60, **kwargs)

    def start_server(self, admin_token: str, *names: str) -> None:
        """Start these people's servers at once (as JupyterHub would for people logging in together) and wait
        until every one is ready."""
        for name in names:
            reply = self.api(admin_token, "POST", f"/users/{name}/server")
            assert reply.status_code in (201, 202, 400), reply.text
        waiting = set(names)
        deadline = time.monotonic() + START_S
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                model = self.api(admin_token, "GET", f"/users/{name}").json()
                server = (model.get("servers") or {}).get("")
                if server and server.get("ready"):
                    waiting.discard(name)
            if waiting:
                time.sleep(POLL_S)
        assert not waiting, f"{', '.join(sorted(waiting))}'s server did not start:\n{self.log()[-4000:]}"

    def stop_server(self, admin_token: str, name: str) -> None:
        """Stop a person's server and wait until the hub has no server for them, running or stopping."""
        reply = self.api(admin_token, "DELETE", f"/users/{name}/server")
        assert reply.status_code in (202, 204), reply.text
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            model = self.api(admin_token, "GET", f"/users/{name}").json()
            if not (model.get("servers") or {}).get("") and not model.get("pending"):
                return
            time.sleep(POLL_S)
        raise AssertionError(f"{name}'s server did not stop:\n{self.log()[-4000:]}")

    def wait_for_log(self, text: str, seconds: float = 60) -> None:
        """Wait until the hub's log says `text` (what a spawn that failed leaves, for one)."""
        deadline = time.monotonic() + seconds
        while text not in self.log():
            assert time.monotonic() < deadline, f"the hub's log never said {text!r}:\n{self.log()[-4000:]}"
            time.sleep(POLL_S)

    def stop(self) -> None:
        """Stop the hub as an administrator would, then check that nothing it started or granted is left.

        `marketlab hub stop` finds every part by the pids the hub's own files name and takes back what
        the hub's record says it made (grants, accounts, groups). Only if that fails is the hub this run
        started killed here, by its pid, and the failure reported.
        """
        leftovers = self._parts()
        record = self._record()
        done = subprocess.run([str(MARKETLAB), "hub", "stop", "--root", str(self.root), "--undo-grants",
                               "--remove-accounts"], capture_output=True, text=True, timeout=300)
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise AssertionError(f"`marketlab hub stop` left the hub running:\n{done.stdout}{done.stderr}")
        if not (self.root / "state").is_dir():
            return  # the hub stopped before it made anything
        assert done.returncode == 0, f"`marketlab hub stop` failed:\n{done.stdout}{done.stderr}"
        alive = {what: pid for what, pid in leftovers.items() if pid and _alive(pid)}
        assert not alive, f"`marketlab hub stop` left these running: {alive}\n{done.stdout}"
        for name in record.get("accounts", []):
            try:
                pwd.getpwnam(name)
                raise AssertionError(f"the system account {name!r} the hub made is still there")
            except KeyError:
                pass
        for grant in record.get("grants", []):
            if f"kept {grant['group']}'s pass-through on {grant['folder']}:" in done.stdout:
                continue  # another hub of this test run still runs and needs it; its stop takes it back
            acl = subprocess.run(["getfacl", "-cp", grant["folder"]], capture_output=True, text=True).stdout
            assert f"group:{grant['group']}:" not in acl, f"the grant on {grant['folder']} was not taken back"

    def _record(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / "state" / "made.json").read_text())
        except (OSError, ValueError):
            return {}

    def _parts(self) -> dict[str, int | None]:
        """The pids of the hub's parts as its files name them (read before the stop removes any file)."""
        def pid_in(path: Path, key: str | None = None) -> int | None:
            try:
                text = path.read_text()
                return int(json.loads(text)[key]) if key else int(text.strip())
            except (OSError, ValueError, KeyError):
                return None

        return {"hub": self.process.pid, "proxy": pid_in(self.root / "state" / "proxy.pid"),
                "service": pid_in(self.root / "gateway" / "service.pid"),
                "model": pid_in(self.root / "gateway" / "home" / "server.json", "pid")}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def run_code(hub: Hub, user: str, token: str, code: str, timeout: float = 300) -> dict[str, Any]:
    """Run `code` in a new kernel of `user`'s server (as their notebook would); return its output and status."""
    from concurrent.futures import ThreadPoolExecutor

    # A thread of its own: the caller may be inside an event loop (Playwright's sync API runs one).
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _run_code(hub, user, token, code, timeout)).result()


async def _run_code(hub: Hub, user: str, token: str, code: str, timeout: float) -> dict[str, Any]:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    headers = {"Authorization": f"token {token}"}
    base = f"{hub.url}/user/{user}/api"
    async with httpx2.AsyncClient(timeout=60) as client:
        reply = await client.post(f"{base}/kernels", headers=headers, json={"name": "python3"})
        assert reply.status_code == 201, reply.text
        kernel = reply.json()["id"]
        try:
            ws_url = f"ws://127.0.0.1:{hub.port}/user/{user}/api/kernels/{kernel}/channels"
            connection = await websocket_connect(HTTPRequest(ws_url, headers=headers))
            msg_id = uuid.uuid4().hex
            connection.write_message(json.dumps({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user, "session": uuid.uuid4().hex,
                           "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True}}))
            out: list[str] = []
            status, idle = None, False
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                raw = await asyncio.wait_for(connection.read_message(), timeout=deadline - time.monotonic())
                if raw is None:
                    break
                message = json.loads(raw)
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    out.append(content["text"])
                elif kind in ("execute_result", "display_data"):
                    out.append(content["data"].get("text/plain", ""))
                elif kind == "error":
                    out.append("\n".join(content.get("traceback", [])) or content.get("evalue", ""))
                elif kind == "execute_reply":
                    status = content["status"]
                elif kind == "status" and content.get("execution_state") == "idle":
                    idle = True
                if status is not None and idle:
                    break
            connection.close()
        finally:
            await client.delete(f"{base}/kernels/{kernel}", headers=headers)
    return {"status": status, "output": "".join(out)}
