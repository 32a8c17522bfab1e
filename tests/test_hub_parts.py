"""The hub's parts that need no running hub: allowances, the progress grid, what a check shares, the home filler."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from marketlab.checks._report import CheckResult
from marketlab.checks.sharing import attempt
from marketlab.hub.gateway import estimate_prompt_tokens
from marketlab.hub.progress import Attempt, Attempts, grid, per_exercise
from marketlab.hub.settings import Allowance, HubError, HubSettings, check_username, load
from marketlab.hub.singleuser import copy_missing
from marketlab.hub.usage import Allowances, Call, Ledger, Refused


def _allowances(tmp_path: Path, **limits: int) -> Allowances:
    return Allowances(Allowance(**limits), Ledger(tmp_path / "usage.sqlite"))


def test_the_allowance_caps_a_reply_to_what_is_left_and_counts_requests_in_flight(tmp_path: Path) -> None:
    allowances = _allowances(tmp_path, daily_tokens=1000, max_completion_tokens=600)
    first = allowances.admit("bea", 100, None)
    assert first == 600
    second = allowances.admit("bea", 100, 500)  # 1000 - (100 + 600) reserved - 100 prompt = 200 left for the reply
    assert second == 200
    with pytest.raises(Refused) as refused:
        allowances.admit("bea", 100, None)
    assert refused.value.kind == "budget" and "daily allowance of 1,000 tokens is used" in refused.value.message
    assert allowances.admit("cai", 100, 10) == 10, "another learner's allowance is their own"
    allowances.release("bea", 700)
    allowances.ledger.record(Call("bea", "m", 200, 100, 50))
    assert allowances.admit("bea", 100, 1000) == 1000 - 150 - 300 - 100


def test_the_rate_limit_says_how_long_to_wait(tmp_path: Path) -> None:
    allowances = _allowances(tmp_path, requests_per_minute=3)
    for _ in range(3):
        allowances.admit("bea", 10, 1)
    with pytest.raises(Refused) as refused:
        allowances.admit("bea", 10, 1)
    assert refused.value.kind == "rate_limit" and 1 <= refused.value.retry_after <= 60
    allowances.admit("cai", 10, 1)


def test_the_ledger_refuses_an_unknown_refusal_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Ledger(tmp_path / "l.sqlite").record(Call("bea", None, 429, refused="whatever"))


def test_a_prompt_estimate_is_never_below_its_text_and_template() -> None:
    short = estimate_prompt_tokens([{"role": "user", "content": "Hi"}])
    long = estimate_prompt_tokens([{"role": "system", "content": "x" * 3000}, {"role": "user", "content": "Hi"}])
    assert short >= 64 and long >= 1000 + short
    emoji = estimate_prompt_tokens([{"role": "user", "content": "😀" * 100}])
    assert emoji >= 400 + short - 1, "text outside plain English counts a token per byte"
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"properties": {"a" * 300: {}}}}}
    assert estimate_prompt_tokens([{"role": "user", "content": "Hi"}], schema) >= short + 100


def test_the_grid_puts_the_most_failed_recent_check_on_top_and_marks_stuck_learners(tmp_path: Path) -> None:
    store = Attempts(tmp_path / "attempts.sqlite")
    for _ in range(3):
        store.add("bea", Attempt(lab="lab02", exercise="schema", passed=False))
    store.add("cai", Attempt(lab="lab02", exercise="schema", passed=False))
    store.add("cai", Attempt(lab="lab01", exercise="brief", passed=False))
    store.add("cai", Attempt(lab="lab02", exercise="schema", passed=True))
    data = grid(store.rows())
    assert data["hot"][0] == {"lab": "lab02", "exercise": "schema", "fails": 4, "learners": ["bea", "cai"]}
    rows = {row["learner"]: row for row in data["rows"]}
    assert rows["bea"]["stuck"] == 1 and rows["cai"]["stuck"] == 0
    old = grid(store.rows(), now=10**10)  # long after: nothing failed in the last ten minutes
    assert old["hot"] == []
    totals = {(e["lab"], e["exercise"]): e for e in per_exercise(store.rows())}
    assert totals[("lab02", "schema")] == {"lab": "lab02", "exercise": "schema", "attempts": 5, "failed": 4,
                                           "tried": 2, "passed": 1}


def test_an_attempt_carries_no_free_text() -> None:
    with pytest.raises(ValidationError):
        Attempt(lab="lab00", exercise="x", passed=True, learner="cai")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Attempt(lab="lab00", exercise="my answer is <script>", passed=True)
    result = CheckResult("batch-cost", "what")
    result.fail("batch_cost(1000) returned 'my secret prompt'")
    result.hint = "Use estimate_cost"
    sent = attempt(result, "lab00")
    assert set(sent) == {"lab", "exercise", "passed", "problems", "hint"}
    assert "secret" not in repr(sent) and len(sent["hint"]) == 12
    Attempt.model_validate(sent)


def test_names_that_cannot_be_accounts_are_refused() -> None:
    for bad in ("Root", "a", "ana lopez", "-ana", "ana/../root", "x" * 40, "ana\n"):
        with pytest.raises(HubError):
            check_username(bad)
    with pytest.raises(ValidationError):
        HubSettings(instructors=("Bad Name",))
    assert check_username("ana-lopez2") == "ana-lopez2"


def test_settings_missing_or_broken_say_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(HubError, match="marketlab hub start"):
        load(tmp_path)
    (tmp_path / "hub.json").write_text("{not json")
    with pytest.raises(HubError, match="not valid hub settings"):
        load(tmp_path)
    HubSettings(root=tmp_path, instructors=("ana",)).save()
    assert load(tmp_path).instructors == ("ana",)


def test_the_home_filler_never_overwrites_and_never_writes_through_a_link(tmp_path: Path) -> None:
    source, home, outside = tmp_path / "student", tmp_path / "home", tmp_path / "outside"
    for path in ("01-brief/01-brief.ipynb", "02-workflow/02-workflow.ipynb", "take-home/README.md", ".hidden/x"):
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_text(f"student {path}")
    home.mkdir()
    outside.mkdir()
    (home / "01-brief").mkdir()
    (home / "01-brief" / "01-brief.ipynb").write_text("my work")
    (home / "02-workflow").symlink_to(outside)
    created = copy_missing(source, home)
    assert (home / "01-brief" / "01-brief.ipynb").read_text() == "my work"
    assert not any(outside.iterdir()), "the filler wrote through a link the learner made"
    assert (home / "take-home" / "README.md").read_text() == "student take-home/README.md"
    assert not (home / ".hidden").exists()
    assert created == [home / "take-home" / "README.md"]
    os.remove(home / "take-home" / "README.md")
    assert copy_missing(source, home) == [home / "take-home" / "README.md"]


def test_the_gateways_model_state_says_since_when_and_why() -> None:
    from marketlab.hub.service import ModelState

    state = ModelState()
    assert state.as_dict()["model"] == "starting"
    state.came_up()
    assert state.as_dict() == {"model": "ready", "since": state.as_dict()["since"]}
    state.went_down("killed (signal 9): it was killed (often: the machine ran out of memory, or someone ran kill -9)")
    first = state.since
    state.went_down("it stopped answering")  # still down: the time it went down stays
    shown = state.as_dict()
    assert shown["model"] == "down" and state.since == first and shown["because"] == "it stopped answering"
    assert "restarting" in state.message() and "Run the cell again" in state.message()


def test_only_the_labs_real_check_names_reach_the_grid(tmp_path) -> None:
    from marketlab.hub.progress import is_known, known_checks

    assert "batch-cost" in known_checks()["lab00"] and "package" in known_checks()["capstone"]
    assert is_known("lab02", "schema") and not is_known("lab02", "batch-cost") and not is_known("other", "x")
    store = Attempts(tmp_path / "attempts.sqlite")
    for _ in range(5):  # a learner posting made-up text as a check name, failing, to headline the grid
        store.add("mallory", Attempt(lab="lab03", exercise="FREE PIZZA in room 4", passed=False))
    store.add("bea", Attempt(lab="lab03", exercise="trust", passed=False))
    data = grid(store.rows())
    assert data["hot"][0]["exercise"] == "trust" and len(data["hot"]) == 1
    assert data["exercises"] == [{"lab": "lab03", "exercise": "trust"}]


@pytest.fixture
def stopped_hub(tmp_path: Path) -> HubSettings:
    """A hub folder with its (empty) state, for `marketlab hub stop`, which runs as root."""
    if os.geteuid() != 0:
        pytest.skip("`marketlab hub stop` runs as root")
    settings = HubSettings(root=tmp_path / "hub")
    settings.state.mkdir(parents=True)
    return settings


@pytest.mark.root
def test_hub_stop_signals_only_processes_that_are_the_hubs(stopped_hub: HubSettings) -> None:
    """A pid file naming another program (the hub died, the pid was reused) never gets that program stopped."""
    import subprocess
    import sys

    from marketlab.hub.stop import stop

    settings = stopped_hub
    (settings.gateway / "home").mkdir(parents=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        for pid_file in (settings.state / "jupyterhub.pid", settings.state / "proxy.pid", settings.gateway / "service.pid"):
            pid_file.write_text(str(bystander.pid))
        (settings.gateway / "home" / "server.json").write_text(f'{{"pid": {bystander.pid}, "token": "t0k3n"}}')
        report = stop(settings)
        assert report.lines == ["the hub was not running"] and not report.failed
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.root
def test_hub_stop_takes_back_only_the_grants_and_accounts_its_record_names(stopped_hub: HubSettings,
                                                                           tmp_path: Path) -> None:
    import grp
    import subprocess

    from marketlab.hub import record
    from marketlab.hub.stop import stop

    if subprocess.run(["which", "setfacl"], capture_output=True).returncode != 0:
        pytest.skip("needs setfacl")
    settings = stopped_hub
    folder = tmp_path / "above-python"
    folder.mkdir(mode=0o700)
    group = grp.getgrgid(0).gr_name  # an existing group, granted on purpose by this test
    subprocess.run(["setfacl", "-m", f"g:{group}:x", str(folder)], check=True)
    subprocess.run(["setfacl", "-m", "g:nogroup:x", str(folder)], check=True)  # not the hub's: must stay
    record.add(settings.state, "grants", {"folder": str(folder), "group": group})
    record.add(settings.state, "grants", {"folder": str(folder), "group": group})  # noted once
    assert record.read(settings.state)["grants"] == [{"folder": str(folder), "group": group}]
    report = stop(settings, undo_grants=True)
    acl = subprocess.run(["getfacl", "-cp", str(folder)], capture_output=True, text=True).stdout
    assert f"group:{group}:" not in acl and "group:nogroup:--x" in acl, acl
    assert not report.failed and any("took back" in line for line in report.lines)
    assert record.read(settings.state)["grants"] == []


def test_an_operator_sets_spawner_traits_in_the_hubs_own_config_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 28: `c.MarketlabSpawner.sandbox_learners = False` in <hub>/jupyterhub_config.py reaches the command."""
    import shutil

    from jupyterhub.app import JupyterHub

    from marketlab.hub.spawner import MarketlabSpawner
    from marketlab.hub.start import config_file

    if shutil.which("bwrap") is None:
        pytest.skip("learners' view needs bubblewrap (make test installs it)")
    settings = HubSettings(root=tmp_path / "hub", instructors=("ana",))
    settings.root.mkdir()
    settings.save()
    monkeypatch.setenv("MARKETLAB_HUB_ROOT", str(settings.root))

    def spawner() -> MarketlabSpawner:
        app = JupyterHub()
        app.load_config_file(str(config_file()))  # JupyterHub's own loading of the hub's config file
        return MarketlabSpawner(config=app.config)

    default = spawner()
    assert default.hub_root == str(settings.root) and default.sandbox_learners
    home = settings.homes / "bea"
    assert default.command(settings, home, instructor=False)[0].endswith("bwrap")
    (settings.root / "jupyterhub_config.py").write_text("c.MarketlabSpawner.sandbox_learners = False\n")
    operated = spawner()
    assert operated.sandbox_learners is False
    command = operated.command(settings, home, instructor=False)
    assert not any(part.endswith("bwrap") for part in command) and command[-1] == "marketlab.hub.singleuser"


@pytest.mark.root
def test_hub_stop_keeps_the_shared_groups_and_gateway_account_while_another_hub_runs(stopped_hub: HubSettings,
                                                                                    tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from marketlab.hub import record
    from marketlab.hub.settings import GATEWAY_ACCOUNT, LEARNER_SYSTEM_GROUP
    from marketlab.hub.stop import _other_running_hubs, stop

    settings = stopped_hub
    record.add(settings.state, "accounts", GATEWAY_ACCOUNT)
    record.add(settings.state, "groups", LEARNER_SYSTEM_GROUP)
    # Another hub on this machine, as `marketlab hub start` runs one: "jupyterhub" with its root in the environment.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "jupyterhub"],
                             env={**os.environ, "MARKETLAB_HUB_ROOT": str(tmp_path / "other-hub")})
    try:
        # Seen before stop() runs (a busy machine once ran stop first, which then removed the real gateway account).
        deadline = time.monotonic() + 30
        while tmp_path / "other-hub" not in _other_running_hubs(settings):
            assert time.monotonic() < deadline and other.poll() is None, "the stand-in hub never showed in /proc"
            time.sleep(0.1)
        report = stop(settings, remove_accounts=True)
    finally:
        other.kill()
        other.wait()
    assert any("kept" in line and "other-hub" in line for line in report.lines), report.lines
    made = record.read(settings.state)
    assert made["accounts"] == [GATEWAY_ACCOUNT] and made["groups"] == [LEARNER_SYSTEM_GROUP]
