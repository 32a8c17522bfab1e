"""The self-paced hub, for real: JupyterHub on loopback, NativeAuthenticator, each person a system account.

One hub for the module (an instructor, two learners) carries a lab from fetch to autograde through
the model gateway; the same hub is then attacked: another learner's files, the course, the
graders, the gateway's folder, forged tokens and identities. A second hub with a tiny allowance and
an upstream that needs a key shows budgets, rate limits and that the key never reaches a learner.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from marketlab.grading.records import GradingRecord
from marketlab.hub.first_login import one_time_passwords
from marketlab.hub.settings import LEARNER_SYSTEM_GROUP, HubError, check_username, load
from tests.support.hub import REPO, Hub, run_code
from tests.support.upstream_relay import Relay

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the hub runs each person as a system account, so it starts as root"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="learners' servers run under bubblewrap (make test installs it)"),
]
PASSWORDS = {"ana": "Ana-long-password-1", "bea": "Bea-long-password-2", "cai": "Cai-long-password-3"}
LAB = "00-first-steps"


def _shell(hub: Hub, user: str, token: str, command: str, timeout: float = 600) -> tuple[int, str]:
    """Run a shell command in a kernel of `user`'s own server; its exit status and output."""
    code = ("import subprocess, sys\n"
            f"done = subprocess.run({command!r}, shell=True, capture_output=True, text=True)\n"
            "print(done.stdout[-6000:]); print(done.stderr[-6000:], file=sys.stderr); print('EXIT', done.returncode)")
    result = run_code(hub, user, token, code, timeout)
    output = result["output"]
    status = int(output.rsplit("EXIT", 1)[1].split()[0]) if "EXIT" in output else -1
    return status, output


def _python(hub: Hub, user: str, token: str, code: str, timeout: float = 300) -> str:
    result = run_code(hub, user, token, code, timeout)
    assert result["status"] == "ok", result["output"]
    return result["output"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A running hub with instructor ana and learners bea and cai, each logged in, servers running."""
    for name in PASSWORDS:
        try:
            pwd.getpwnam(name)
            pytest.skip(f"a system account {name!r} already exists on this machine")
        except KeyError:
            pass
    # People sign up and their servers start while the hub's built-in model is still starting (it takes
    # seconds); the fixture waits for the model at the end.
    hub = Hub.start(tmp_path_factory.mktemp("hub") / "root", instructors=["ana"], wait_for_model=False)
    try:
        sessions = {name: hub.session(name) for name in PASSWORDS}
        # Someone who signs up under the instructor's name first gets nothing: the hub made that account.
        impostor = hub.session("ana")
        impostor.signup("Impostor-password-9")
        assert "/hub/login" in str(impostor.login("Impostor-password-9").url)
        # The instructor's one-time password opens the hub, but no server starts until it is changed.
        once = one_time_passwords(load(hub.root))["ana"]
        assert "/hub/login" not in str(sessions["ana"].login(once).url)
        refused = hub.api(sessions["ana"].new_token("before the change"), "POST", "/users/ana/server")
        assert refused.status_code >= 400 and "change your one-time password" in refused.text, refused.text
        sessions["ana"].first_login(PASSWORDS["ana"])
        assert sessions["ana"].login(PASSWORDS["ana"]).status_code == 200
        for name in ("bea", "cai"):
            assert sessions[name].signup(PASSWORDS[name]).status_code == 200
        for learner in ("bea", "cai"):
            # NativeAuthenticator: a learner cannot log in before an instructor authorizes the sign-up.
            sessions[learner].login(PASSWORDS[learner])
            assert "/hub/login" in str(sessions[learner].client.get("/hub/home").url)
            assert sessions["ana"].authorize(learner).status_code == 200
            sessions[learner].login(PASSWORDS[learner])
        tokens = {name: session.new_token() for name, session in sessions.items()}
        hub.start_server(tokens["ana"], *PASSWORDS)  # all three at once, as a class logging in together
        hub.wait_ready()
        yield hub, sessions, tokens
    finally:
        hub.stop()


def test_a_learner_runs_a_lab_through_the_gateway_and_the_instructor_grades_it(cohort) -> None:  # type: ignore[no-untyped-def]
    hub, _, tokens = cohort
    home = hub.root / "homes" / "bea"
    assert (home / LAB / f"{LAB}.ipynb").is_file(), "the student labs are in the learner's home on first start"

    status, out = _shell(hub, "ana", tokens["ana"], f"cd ~/course && marketlab course build {LAB} && "
                                                     f"marketlab course release {LAB}")
    assert status == 0, out
    status, out = _shell(hub, "bea", tokens["bea"], f"cd ~ && rm -r {LAB} && nbgrader fetch_assignment {LAB}")
    assert status == 0 and (home / LAB / f"{LAB}.ipynb").is_file(), out
    # The learner's answers: the lab's solution, written into the fetched notebook as they would type it.
    target = home / LAB / f"{LAB}.ipynb"
    target.write_bytes((REPO / "labs" / LAB / f"{LAB}.ipynb").read_bytes())
    os.chown(target, pwd.getpwnam("bea").pw_uid, -1)
    status, out = _shell(hub, "bea", tokens["bea"],
                         f"cd ~/{LAB} && jupyter nbconvert --to notebook --execute --inplace {LAB}.ipynb "
                         f"&& cd ~ && nbgrader submit {LAB}")
    assert status == 0, out

    ledger = sqlite3.connect(hub.root / "gateway" / "usage.sqlite")
    answered = ledger.execute("SELECT COUNT(*), SUM(completion_tokens) FROM calls WHERE learner='bea' AND status=200").fetchone()
    assert answered[0] >= 5 and answered[1] > 0, "the lab's model calls went through the gateway, counted for bea"

    status, out = _shell(hub, "ana", tokens["ana"], f"cd ~/course && marketlab course collect {LAB} && "
                                                     f"marketlab course autograde {LAB}")
    assert status == 0, out
    record = GradingRecord.model_validate_json((hub.root / "course" / "grading" / "bea" / f"{LAB}.json").read_text())
    assert record.status == "graded" and record.auto_score == record.auto_max > 0, record


def test_first_start_never_overwrites_and_restores_a_deleted_lab(cohort) -> None:  # type: ignore[no-untyped-def]
    hub, _, tokens = cohort
    home = hub.root / "homes" / "cai"
    mine = home / "01-brief" / "01-brief.ipynb"
    uid = pwd.getpwnam("cai").pw_uid
    mine.write_text("my own work")
    os.chown(mine, uid, -1)
    shutil.rmtree(home / "02-workflow")
    (home / "capstone").rename(home / "capstone-link-target")
    (home / "capstone").symlink_to(hub.root / "course")  # a link where a lab goes: never written through
    hub.stop_server(tokens["ana"], "cai")  # until the hub has no server for cai, running or stopping
    hub.start_server(tokens["ana"], "cai")
    assert mine.read_text() == "my own work"
    assert (home / "02-workflow" / "02-workflow.ipynb").is_file()
    assert not any(p.name.endswith(".ipynb") for p in (hub.root / "course").iterdir())
    assert (home.stat().st_mode & 0o777) == 0o700


CONFINED = """
import os, pathlib
root = pathlib.Path({root!r})
seen = {{}}
for path in [root / "homes" / "cai", root / "homes" / "ana", root / "course", root / "gateway", root / "state",
             pathlib.Path({repo!r}) / "graders", pathlib.Path({repo!r}) / "labs" / "00-first-steps",
             root / "course" / "gradebook.db", pathlib.Path("/etc/shadow"), pathlib.Path("/root/.ssh")]:
    try:
        seen[str(path)] = sorted(os.listdir(path)) if path.is_dir() else path.read_bytes()[:20]
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        seen[str(path)] = type(exc).__name__
try:
    os.listdir(root / "exchange" / "marketlab" / "inbound")
    seen["inbound"] = "listed"
except PermissionError:
    seen["inbound"] = "PermissionError"
seen["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
import json, httpx2
port = json.loads((root / "hub.json").read_text())["model_port"]
seen["model_direct"] = httpx2.post(f"http://127.0.0.1:{{port}}/v1/chat/completions", timeout=30,
                                   json={{"model": "smollm2-135m-instruct", "messages": [{{"role": "user", "content": "Hi"}}]}}).status_code
seen["uid"] = os.getuid()
seen["env"] = sorted(os.environ)
print(repr(seen))
"""


def test_a_learner_sees_only_their_own_home_the_exchange_and_the_public_labs(cohort) -> None:  # type: ignore[no-untyped-def]
    hub, _, tokens = cohort
    out = _python(hub, "bea", tokens["bea"], CONFINED.format(root=str(hub.root), repo=str(REPO)))
    seen = eval(out.strip().splitlines()[-1])  # noqa: S307 (our own repr of plain data)
    for path, what in seen.items():
        if path.startswith("/") and path not in ("/etc/shadow",):
            assert what in ("FileNotFoundError", "PermissionError"), f"{path} is visible to a learner: {what!r}"
    assert seen["/etc/shadow"] in ("FileNotFoundError", "PermissionError")
    assert seen["inbound"] == "PermissionError", "a learner can list other learners' submissions"
    assert seen["model_direct"] == 401, "a learner reached the built-in model without the gateway"
    assert seen["uid"] == pwd.getpwnam("bea").pw_uid
    assert len(seen["pids"]) < 40 and 1 in seen["pids"], "the learner's server has its own pid namespace"
    leaked = [name for name in seen["env"] if name.startswith(("CONFIGPROXY", "JPY_COOKIE", "JUPYTERHUB_CRYPT",
                                                               "MARKETLAB_UPSTREAM", "OPENAI_API_KEY"))]
    assert not leaked, f"hub secrets in a learner's environment: {leaked}"


def test_tokens_decide_who_is_asking_and_a_learner_cannot_be_an_instructor(cohort) -> None:  # type: ignore[no-untyped-def]
    hub, sessions, tokens = cohort
    service = hub.service_url
    bea = {"Authorization": f"token {tokens['bea']}"}
    assert httpx2.get(f"{service}/progress.json", headers=bea).status_code == 403
    assert httpx2.get(f"{service}/report.json", headers=bea).status_code == 403
    assert httpx2.get(f"{service}/progress.json", headers={"Authorization": f"token {tokens['ana']}"}).status_code == 200
    forged = {"Authorization": f"token {tokens['bea'][:-4]}abcd"}
    reply = httpx2.post(f"{service}/v1/chat/completions", headers=forged, json={"model": "x", "messages": []})
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "invalid_api_key"
    # The hub itself: bea's token cannot read cai, start cai's server or act as admin.
    assert hub.api(tokens["bea"], "GET", "/users/cai").status_code in (403, 404)
    assert hub.api(tokens["bea"], "POST", "/users/cai/server").status_code in (403, 404)
    assert hub.api(tokens["bea"], "POST", "/users/bea/tokens", json={"scopes": ["admin:users"]}).status_code in (400, 403)
    # A claimed identity in the request changes nothing: the ledger and the upstream see bea.
    client = openai.OpenAI(api_key=tokens["bea"], base_url=f"{service}/v1", max_retries=0)
    client.chat.completions.create(model="smollm2-135m-instruct", user="cai", max_tokens=2,
                                   messages=[{"role": "user", "content": "Hi"}])
    ledger = sqlite3.connect(hub.root / "gateway" / "usage.sqlite")
    last = ledger.execute("SELECT learner FROM calls ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert last == "bea"
    attempt = httpx2.post(f"{service}/attempts", headers=bea,
                          json={"lab": "lab00", "exercise": "x", "passed": True, "learner": "cai"})
    assert attempt.status_code == 400, "an attempt naming its own learner is refused"
    # A browser cookie alone cannot spend a learner's allowance (no cross-site form can post).
    sessions["bea"].client.get("/services/marketlab/")
    cookie_only = sessions["bea"].client.post("/services/marketlab/v1/chat/completions",
                                              json={"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Hi"}]})
    assert cookie_only.status_code == 401


def test_checks_feed_the_instructors_live_grid_and_learners_see_what_is_collected(cohort) -> None:  # type: ignore[no-untyped-def]
    hub, sessions, tokens = cohort
    code = ("from marketlab.checks import lab00\n"
            "def batch_cost(rows, p, c, model='gpt-4o-mini'): return 0\n"
            "for _ in range(3):\n"
            "    try:\n"
            "        lab00.check_batch_cost(batch_cost)\n"
            "    except AssertionError:\n"
            "        pass\n"
            # The attempts go out on threads of their own: wait for those, not a guessed time, before the kernel ends.
            "import threading, time\n"
            "deadline = time.monotonic() + 30\n"
            "while any(t.name.endswith('(_post)') for t in threading.enumerate()) and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)\n")
    out = run_code(hub, "cai", tokens["cai"], code)["output"]
    assert "shared with your instructor" in out and "never your answers" in out
    grid = httpx2.get(f"{hub.service_url}/progress.json", headers={"Authorization": f"token {tokens['ana']}"}).json()
    row = next(r for r in grid["rows"] if r["learner"] == "cai")
    column = grid["exercises"].index({"lab": "lab00", "exercise": "batch-cost"})
    assert row["cells"][column]["attempts"] >= 3 and row["cells"][column]["passed"] is False
    assert row["stuck"] >= 1
    assert grid["hot"][0]["exercise"] == "batch-cost" and "cai" in grid["hot"][0]["learners"]
    stored = sqlite3.connect(hub.root / "gateway" / "attempts.sqlite").execute("SELECT * FROM attempts").fetchall()
    assert not any("return 0" in str(value) for row_ in stored for value in row_), "code reached the store"
    page = sessions["cai"].client.get("/services/marketlab/")
    assert page.status_code == 200 and "batch-cost" in page.text and "does not record your code" in page.text
    # The instructor's grid in a browser session goes through the hub's OAuth, and only for instructors.
    grid_page = sessions["ana"].client.get("/services/marketlab/progress")
    assert grid_page.status_code == 200 and "Most failed in the last 10 minutes" in grid_page.text
    assert sessions["bea"].client.get("/services/marketlab/progress").status_code == 403


def test_a_name_that_is_a_system_account_never_gets_that_account(cohort) -> None:  # type: ignore[no-untyped-def]
    hub, sessions, tokens = cohort
    intruder = hub.session("daemon")
    intruder.signup("Daemon-long-password-4")
    sessions["ana"].authorize("daemon")
    intruder.login("Daemon-long-password-4")
    reply = hub.api(tokens["ana"], "POST", "/users/daemon/server")
    hub.wait_for_log("same name as a system account")  # the spawn's refusal, not a guessed time
    model = hub.api(tokens["ana"], "GET", "/users/daemon").json()
    assert not (model.get("servers") or {}).get("", {}).get("ready"), reply.text
    daemon_uid = pwd.getpwnam("daemon").pw_uid
    running = subprocess.run(["ps", "-o", "uid=,args=", "-u", str(daemon_uid)], capture_output=True, text=True).stdout
    assert "jupyterhub-singleuser" not in running and "marketlab.hub.singleuser" not in running
    with pytest.raises(HubError):
        check_username("Root; rm -rf /")


def test_the_gateway_serves_thirty_learners_at_once(cohort) -> None:  # type: ignore[no-untyped-def]
    hub, _, tokens = cohort
    names = [f"sim{i:02d}" for i in range(30)]
    learner_tokens = {}
    for name in names:
        assert hub.api(tokens["ana"], "POST", f"/users/{name}").status_code in (201, 409)
        reply = hub.api(tokens["ana"], "POST", f"/users/{name}/tokens", json={"expires_in": 3600})
        assert reply.status_code in (200, 201), reply.text
        learner_tokens[name] = reply.json()["token"]

    def one(name: str) -> str:
        client = openai.OpenAI(api_key=learner_tokens[name], base_url=f"{hub.service_url}/v1", max_retries=0, timeout=600)
        reply = client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=16, temperature=0,
                                               messages=[{"role": "user", "content": f"Name a tent colour ({name})."}])
        return reply.choices[0].message.content or ""

    with ThreadPoolExecutor(30) as pool:
        replies = list(pool.map(one, names))
    assert all(replies), "every simulated learner got an answer"
    ledger = sqlite3.connect(hub.root / "gateway" / "usage.sqlite")
    learners = {r[0] for r in ledger.execute("SELECT learner FROM calls WHERE status=200 AND learner LIKE 'sim%'")}
    assert learners == set(names)


def test_a_dead_model_is_reported_restarted_and_refused_in_plain_words(cohort) -> None:  # type: ignore[no-untyped-def]
    """Issue 25: the gateway watches its built-in model, says why it stopped, and starts it again."""
    hub, _, tokens = cohort
    state = json.loads((hub.root / "gateway" / "home" / "server.json").read_text())
    os.kill(int(state["pid"]), signal.SIGKILL)  # the model server this hub started, by the pid it reported
    deadline = time.monotonic() + 60
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        health = httpx2.get(f"{hub.service_url}/health", timeout=5).json()
        if health.get("model") == "down":
            break
        time.sleep(0.2)
    assert health.get("model") == "down" and "signal 9" in health.get("because", ""), health
    client = openai.OpenAI(api_key=tokens["bea"], base_url=f"{hub.service_url}/v1", max_retries=0, timeout=60)
    try:
        client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=4,
                                       messages=[{"role": "user", "content": "Hello"}])
    except openai.APIStatusError as exc:
        assert exc.status_code == 503 and exc.code == "model_restarting", exc
        assert "restarting" in exc.message and "Traceback" not in exc.message
    while time.monotonic() < deadline + 120:  # back-off starts at 5 s; the model starts in seconds
        health = httpx2.get(f"{hub.service_url}/health", timeout=5).json()
        if health.get("model") == "ready":
            break
        time.sleep(0.5)
    assert health.get("model") == "ready", health
    reply = client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=4, temperature=0,
                                           messages=[{"role": "user", "content": "Hello"}])
    assert reply.choices[0].message.content is not None


def test_the_hub_refuses_to_start_without_root(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    done = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                           sys.executable, "-m", "marketlab", "hub", "start", "--root", str(tmp_path / "hub"),
                           "--instructor", "ana"], capture_output=True, text=True, cwd="/", timeout=60)
    assert done.returncode == 2 and "must be started as root" in done.stderr, done.stderr


# -- budgets, rate limits and the upstream key, on a hub in front of a keyed upstream ---------------------

UPSTREAM_KEY = "sk-upstream-test-" + "7" * 24


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, local_base_url: str):  # type: ignore[no-untyped-def]
    relay = Relay(UPSTREAM_KEY, local_base_url.rstrip("/")).start()
    hub = Hub.start(tmp_path_factory.mktemp("hub-keyed") / "root", instructors=["ana"], daily_tokens=400,
                    rate_per_minute=6, upstream_url=relay.url, upstream_model="smollm2-135m-instruct",
                    upstream_key=UPSTREAM_KEY)
    try:
        admin = hub.session("ana")
        admin.first_login(PASSWORDS["ana"])
        token = admin.new_token()
        learner_tokens = {}
        for name in ("dan", "eve"):
            assert hub.api(token, "POST", f"/users/{name}").status_code in (201, 409)
            learner_tokens[name] = hub.api(token, "POST", f"/users/{name}/tokens", json={}).json()["token"]
        yield hub, relay, token, learner_tokens
    finally:
        hub.stop()
        relay.stop()


# A prompt long enough that the 400-token allowance is used within three answers, whatever their length, so
# the budget runs out before the 6 requests a minute do (a rate-limit refusal would have the SDK wait out the
# minute first, then retry). The gateway estimates it at 162 tokens and lets a request through only while more
# than that is left.
TENT = ("Write a tagline for this tent. The Ridgeline 2 is a two-person backpacking tent that weighs 1.4 kg, "
        "pitches in three minutes, keeps two sleepers dry in a storm, packs down to the size of a water bottle, "
        "and comes with a footprint, stakes and a repair kit.")


def _ask(hub: Hub, token: str, max_tokens: int = 40) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(api_key=token, base_url=f"{hub.service_url}/v1", max_retries=2, timeout=300)
    return client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=max_tokens, temperature=0,
                                          messages=[{"role": "user", "content": TENT}])


def test_over_budget_is_refused_in_plain_words_and_spends_nothing_upstream(keyed) -> None:  # type: ignore[no-untyped-def]
    hub, relay, _, tokens = keyed
    spent = 0
    with pytest.raises(openai.RateLimitError) as refused:
        for _ in range(12):
            spent += _ask(hub, tokens["dan"]).usage.total_tokens
    assert 0 < spent <= 400
    error = refused.value.body
    assert refused.value.status_code == 429 and refused.value.code == "insufficient_quota"
    assert "daily allowance of 400 tokens is used; it resets at" in error["message"]
    before = relay.requests["/chat/completions"]
    with pytest.raises(openai.RateLimitError):
        _ask(hub, tokens["dan"], max_tokens=1)
    assert relay.requests["/chat/completions"] == before, "a refused request reached the upstream"
    # Another learner's allowance is their own.
    assert _ask(hub, tokens["eve"], max_tokens=5).choices[0].message.content is not None
    assert set(relay.users_seen) <= {"dan", "eve"} and relay.keys_seen == {UPSTREAM_KEY}


def test_a_burst_is_rate_limited_with_a_wait_time(keyed) -> None:  # type: ignore[no-untyped-def]
    hub, _, admin, _ = keyed
    hub.api(admin, "POST", "/users/fay")
    token = hub.api(admin, "POST", "/users/fay/tokens", json={}).json()["token"]
    client = openai.OpenAI(api_key=token, base_url=f"{hub.service_url}/v1", max_retries=0, timeout=300)
    with pytest.raises(openai.RateLimitError) as limited:
        for _ in range(8):
            client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=1,
                                           messages=[{"role": "user", "content": "Hi"}])
    assert limited.value.code == "rate_limit_exceeded"
    assert int(limited.value.response.headers["retry-after"]) >= 1
    assert "requests in the last minute" in limited.value.body["message"]


def test_the_upstream_key_lives_only_in_the_gateway(keyed) -> None:  # type: ignore[no-untyped-def]
    hub, _, _, _ = keyed
    key_file = hub.root / "gateway" / "upstream.key"
    assert key_file.read_text() == UPSTREAM_KEY
    assert key_file.stat().st_uid == pwd.getpwnam("marketlab-gw").pw_uid and (key_file.stat().st_mode & 0o077) == 0
    assert UPSTREAM_KEY not in (hub.root / "hub.json").read_text()
    assert UPSTREAM_KEY not in hub.log()
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        assert UPSTREAM_KEY.encode() not in cmdline, f"the key is on process {pid}'s command line"
        if UPSTREAM_KEY.encode() in environ:  # only the test process itself may hold it
            assert int(pid) == os.getpid(), f"the key is in process {pid}'s environment"
    import grp

    learners = grp.getgrnam(LEARNER_SYSTEM_GROUP).gr_gid  # as any account in the learners' group
    peek = subprocess.run(["setpriv", f"--reuid={pwd.getpwnam('nobody').pw_uid}", f"--regid={learners}",
                           "--clear-groups", "cat", str(key_file)], capture_output=True, text=True)
    assert peek.returncode != 0 and UPSTREAM_KEY not in peek.stdout


# -- in a real browser: headless Debian chromium, driven by Playwright (no browser download) ------------

CHROMIUM = "/usr/bin/chromium"
BATCH_COST = ('def batch_cost(rows, prompt_tokens, completion_tokens, model="gpt-4o-mini"):\n'
              '    """Dollar cost of running one call per row, for `rows` rows."""\n'
              '    return rows * estimate_cost(model, prompt_tokens, completion_tokens)\n')


@pytest.fixture()
def browser():  # type: ignore[no-untyped-def]
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make test installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"])
        try:
            yield launched
        finally:
            launched.close()


def _log_in(browser, hub: Hub, name: str, password: str | None = None):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password or PASSWORDS[name])
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{name}/**")
    return page


def test_browser_a_learner_runs_lab0_and_sees_the_instant_check_pass(cohort, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hub, _, _ = cohort
    page = _log_in(browser, hub, "cai")
    page.goto(f"{hub.url}/user/cai/lab/tree/{LAB}/{LAB}.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    exercise = page.locator(".jp-CodeCell", has_text="def batch_cost").first
    exercise.scroll_into_view_if_needed()
    exercise.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(BATCH_COST)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    passed = page.locator(".jp-OutputArea-output", has_text="✅ batch_cost gives the dollar cost")
    passed.first.wait_for(timeout=300_000)
    passed.first.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "learner-lab0.png"))


def test_browser_the_instructor_opens_the_live_grid_and_the_cohort_report(cohort, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hub, _, tokens = cohort
    client = openai.OpenAI(api_key=tokens["cai"], base_url=f"{hub.service_url}/v1", max_retries=0)
    client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=3, messages=[{"role": "user", "content": "Hi"}])
    status, out = _shell(hub, "ana", tokens["ana"], "cd ~/course && marketlab course report")
    assert status == 0, out
    page = _log_in(browser, hub, "ana")
    page.goto(f"{hub.service_url}/progress")
    page.wait_for_selector("#hot")
    assert "Who is stuck" in page.inner_text("h1")
    assert page.locator("#grid").count() == 1, page.content()[:3000]
    assert "cai" in page.inner_text("#grid")
    page.screenshot(path=str(tmp_path / "instructor-grid.png"))
    # In the instructor's JupyterLab, as they would open it from the file browser (its HTML viewer).
    page.goto(f"{hub.url}/user/ana/lab/tree/course/reports/report.html")
    report = page.frame_locator(".jp-HTMLViewer iframe")
    report.locator("h2").first.wait_for()
    text = report.locator("body").inner_text()
    assert "Practice on the hub: attempts per check" in text and "batch-cost" in text
    assert "Model usage counted by the hub's gateway" in text and "cai" in text
    page.screenshot(path=str(tmp_path / "instructor-report.png"), full_page=True)


def test_browser_an_instructor_releases_a_lab_from_the_formgrader(cohort, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 25: the formgrader opens for an instructor, lists the course's labs and releases one."""
    hub, _, _ = cohort
    lab = "04-monitor"
    page = _log_in(browser, hub, "ana")
    page.goto(f"{hub.url}/user/ana/formgrader/manage_assignments")
    row = page.locator("tbody tr", has_text=lab).first
    row.wait_for()
    assert "encountered an error" not in page.content()
    listed = page.inner_text("tbody")
    assert all(name in listed for name in ("00-first-steps", "03-evaluate", "capstone")), listed
    row.locator(".assign a").click()
    page.locator(".modal", has_text=f"Successfully created the student version of '{lab}'").wait_for(timeout=300_000)
    page.goto(f"{hub.url}/user/ana/formgrader/manage_assignments")
    row = page.locator("tbody tr", has_text=lab).first
    row.locator(".release a").click()
    page.locator(".modal", has_text=f"Successfully released '{lab}'").wait_for(timeout=120_000)
    page.screenshot(path=str(tmp_path / "formgrader-released.png"))
    assert (hub.root / "exchange" / "marketlab" / "outbound" / lab / f"{lab}.ipynb").exists()


# No retries in this cell: the SDK's own two retries of a 503 (Retry-After: 30) would only wait a minute and
# get the same refusal while the model keeps dying; the line a learner reads is the same either way.
MODEL_CELL = ("from marketlab import llm\n"
              "llm.client(max_retries=0).chat.completions.create(model=llm.model_name(), max_tokens=4, messages=[\n"
              "    {'role': 'user', 'content': 'Hello'}])\n")


def _run_a_new_cell(page, code: str):  # type: ignore[no-untyped-def]
    """A cell of the learner's own below the first one (the lab's first cells are locked), run from the menu."""
    page.locator(".jp-Cell").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.insert_text(code)
    page.keyboard.press("Escape")  # the new cell stays selected
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run Selected Cell").first.click()
    return page.locator(".jp-CodeCell", has_text=code.splitlines()[-1].strip()).first


def _open_the_lab(page, hub, name: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{hub.url}/user/{name}/lab/tree/{LAB}/{LAB}.ipynb")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)


def _refusal_read(page, code: str, status: int, screenshot: Path, seconds: float) -> str:  # type: ignore[no-untyped-def]
    """Run `code` in a new cell; once its output shows the refusal with this status, the output's text."""
    cell = _run_a_new_cell(page, code)
    refusal = cell.locator(".jp-OutputArea-output", has_text=f"The model refused this request ({status})")
    try:
        refusal.first.wait_for(timeout=seconds * 1000)
    finally:
        page.screenshot(path=str(screenshot))
    return cell.locator(".jp-OutputArea").inner_text()


def test_browser_a_learner_reads_one_line_while_the_model_restarts(cohort, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 25: with the built-in model down, the notebook says so in one line, then the model comes back."""
    import threading

    hub, _, _ = cohort
    page = _log_in(browser, hub, "bea")
    _open_the_lab(page, hub, "bea")
    state_file = hub.root / "gateway" / "home" / "server.json"
    stop = threading.Event()

    def keep_killing() -> None:  # every model the gateway starts dies at once, until the learner has read why
        while not stop.is_set():
            try:
                os.kill(int(json.loads(state_file.read_text())["pid"]), signal.SIGKILL)
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)

    killer = threading.Thread(target=keep_killing, daemon=True)
    killer.start()
    try:
        deadline = time.monotonic() + 60
        while httpx2.get(f"{hub.service_url}/health", timeout=5).json().get("model") != "down":
            assert time.monotonic() < deadline, "the gateway never noticed its model died"
            time.sleep(0.2)
        text = _refusal_read(page, MODEL_CELL, 503, tmp_path / "model-down.png", seconds=120)
        assert "restarting" in text and "Run the cell again" in text, text
        assert "Traceback" not in text and "InternalServerError" not in text, text
    finally:
        stop.set()
        killer.join()
    deadline = time.monotonic() + 400  # the watch's back-off grew while the model kept dying
    while httpx2.get(f"{hub.service_url}/health", timeout=5).json().get("model") != "ready":
        assert time.monotonic() < deadline, "the model did not come back after the failures stopped"
        time.sleep(0.2)


ALLOWANCE_CELL = ("from marketlab import llm\n"
                  "client = llm.client()\n"
                  f"prompt = {TENT!r}\n"
                  "for _ in range(12):\n"
                  "    client.chat.completions.create(model=llm.model_name(), max_tokens=40, messages=[\n"
                  "        {'role': 'user', 'content': prompt}])\n")


def test_browser_a_learner_over_a_limit_reads_one_plain_line(keyed, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 25: the gateway's refusal shows in the notebook as one line with when it resets, not a traceback."""
    hub, _, _, _ = keyed
    gil = hub.session("gil")
    assert gil.signup("Gil-long-password-4").status_code == 200
    instructor = hub.session("ana")
    instructor.login(PASSWORDS["ana"])
    assert instructor.authorize("gil").status_code == 200
    page = _log_in(browser, hub, "gil", "Gil-long-password-4")  # the first login starts the server
    _open_the_lab(page, hub, "gil")
    # 400 tokens a day and 6 requests a minute: whichever runs out first, the learner reads one line.
    text = _refusal_read(page, ALLOWANCE_CELL, 429, tmp_path / "allowance.png", seconds=300)
    assert ("daily allowance of 400 tokens is used; it resets at" in text
            or "requests in the last minute" in text and "run the cell again" in text), text
    assert "Traceback" not in text and "RateLimitError" not in text, text
    assert len(text.strip().splitlines()) <= 4, text
