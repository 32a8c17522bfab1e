"""Checks for Lab 4 (six months later): the weekly rate, when the decline began and why, alert rules
that fire on a real decline and stay quiet on noise, and the saved monitor.py.

Alert checks judge alert tables (plain data): in the notebook they come from the learner's kernel,
in grading from the learner's `monitor` run inside the sandbox on the holdout series. Where the
change really began, and which series is stable, stays with the checking side.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..grading import wire
from ..grading.harness import Harness, LocalHarness
from ._report import CheckResult, describe_error, finish, saved_file_missing

MONITOR_FILE = "monitor.py"
WEEKS_ALLOWED = 4          # an alert within four weeks of the change's start
DECLINE_SLACK_DAYS = 14    # a start date read off a chart may be two weeks out
ACTIONS = ("review", "retrain", "rewrite the prompt", "switch off")
WORKFLOW_ACTIONS = ("review", "rewrite the prompt", "switch off")  # nobody retrains a prompt workflow


# -- 1. rates, not counts --------------------------------------------------------------------

def check_rate(fn: Callable[..., Any], tables: Sequence[pd.DataFrame], *, strict: bool = True,
               quiet: bool = False) -> CheckResult:
    """weekly_rate(weekly) returns effective recommendations / recommendations served, week by week."""
    result = CheckResult("rate", "weekly_rate gives effective recommendations / recommendations served, every week")
    for table in tables:
        expected = (table["effective_recommendations"] / table["recommendations_served"]).to_numpy(dtype=float)
        try:
            got = fn(table.copy())
        except Exception as err:  # noqa: BLE001 - the learner's function may raise anything
            result.fail(f"it stopped with {describe_error(err)}")
            break
        values = _numbers(got)
        if values is None or len(values) != len(expected):
            result.fail(f"it returned {type(got).__name__} of {len(values) if values is not None else '?'} values "
                        f"for {len(expected)} weeks; return one rate per week")
            break
        if not np.allclose(values, expected, atol=1e-6, equal_nan=False):
            worst = int(np.nanargmax(np.abs(values - expected)))
            result.fail(f"week {worst + 1}: {values[worst]:.4f}, expected {expected[worst]:.4f}")
            break
    result.hint = ("Divide the two columns: weekly['effective_recommendations'] / weekly['recommendations_served']. "
                   "Clicks are a count of traffic, not a rate of success.")
    return finish(result, strict=strict, quiet=quiet)


def _numbers(value: Any) -> np.ndarray | None:
    try:
        array = np.asarray(list(value.values()) if isinstance(value, dict) else value, dtype=float).ravel()
    except (TypeError, ValueError):
        return None
    return array if array.size else None


# -- 2. when, and why ------------------------------------------------------------------------

def reference_start(weekly: pd.DataFrame) -> pd.Timestamp:
    """The week the decline began, as the monitor dates it (CUSUM behind the default rules)."""
    from marketlab.monitor import run_monitor

    began = run_monitor(weekly).alerts_table()["began"].dropna()
    return pd.Timestamp(began.min())


def check_decline(answer: Any, weekly: pd.DataFrame, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """DECLINE_BEGAN is within two weeks of the week the rate really started to fall."""
    result = CheckResult("decline", "DECLINE_BEGAN names the week the rate started to fall (within two weeks)")
    truth = reference_start(weekly)
    try:
        said = pd.Timestamp(str(answer))
    except (ValueError, TypeError):
        said = None
    if said is None or pd.isna(said):
        result.fail(f"DECLINE_BEGAN is {str(answer)[:40]!r}, not a date such as '2024-03-04'")
    elif abs((said - truth).days) > DECLINE_SLACK_DAYS:
        direction = "late" if said > truth else "early"
        result.fail(f"{said:%Y-%m-%d} is more than two weeks {direction}")
    result.hint = ("Read the control chart: find the first week of the run of weeks below the centre line, not "
                   "the week the first alert fired.")
    return finish(result, strict=strict, quiet=quiet)


def biggest_changes(weekly: pd.DataFrame) -> set[str]:
    """The column of each mix that changed most between the reference and the current window."""
    from marketlab.monitor import drift

    report = drift(weekly)
    found = set()
    for mix in report.contributions.values():
        table = mix if isinstance(mix, pd.DataFrame) else pd.DataFrame(mix)
        found.add(str(table.sort_values("psi_share", ascending=False).iloc[0]["segment"]))
    return found


def check_segment(answer: Any, weekly: pd.DataFrame, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """GROWING_SEGMENT names the share column whose change explains most of the drift."""
    result = CheckResult("segment", "GROWING_SEGMENT names the share that changed most (the drift report's top row)")
    expected = biggest_changes(weekly)
    said = str(answer).strip()
    prefixed = {column.split("_", 1)[1]: column for column in expected if "_" in column}
    if said in expected:
        pass
    elif said in prefixed:
        result.fail(f"{said[:40]!r} is the right group, but the column's name is {prefixed[said]!r}: "
                    f"add the '{prefixed[said].split('_', 1)[0]}_' prefix")
    else:
        result.fail(f"{said[:40]!r} is not the biggest change of either mix")
    result.hint = ("Run the drift report cell and read its contributions: the column with the biggest share of the "
                   "PSI, e.g. 'share_...'. Write it with quotes.")
    return finish(result, strict=strict, quiet=quiet)


# -- 3. alert rules on a real decline and on noise -------------------------------------------

def alert_problems(changed: Any, stable: Any, start: Any, *, actions: Sequence[str] = ACTIONS,
                   label: str = "") -> list[str]:
    """Problems of two alert tables: the changed series alerts in time, the stable one never, every alert owned."""
    problems = []
    for name, table in (("changed", changed), ("stable", stable)):
        if not isinstance(table, pd.DataFrame):
            return [f"the monitor returned a {type(table).__name__} for the {name} series, not a table of alerts"]
        missing = [c for c in ("week", "owner", "action") if c not in table.columns]
        if missing:
            return [f"the alerts table has no column(s) {', '.join(missing)}"]
        unowned = table[table["owner"].astype(str).str.strip().isin(["", "nan", "None"])]
        if len(unowned):
            problems.append(f"{len(unowned)} alert(s) name no owner")
        odd = sorted(set(table["action"].astype(str)) - set(actions))
        if odd:
            problems.append(f"action(s) {odd[:3]} are not one of {', '.join(repr(a) for a in actions)}")
    start = pd.Timestamp(start)
    weeks = pd.to_datetime(changed["week"], errors="coerce").dropna()
    after = weeks[weeks >= start - pd.Timedelta(days=7)]
    too_early = weeks[weeks < start - pd.Timedelta(days=7)]
    if after.empty:
        problems.append(f"no alert on the {label}series that changed from {start:%Y-%m-%d}")
    elif (after.min() - start).days > 7 * WEEKS_ALLOWED:
        problems.append(f"the first alert came {(after.min() - start).days // 7} weeks after the change began "
                        f"({after.min():%Y-%m-%d}); it should come within {WEEKS_ALLOWED}")
    if len(too_early):
        problems.append(f"{len(too_early)} alert(s) before anything changed (first {too_early.min():%Y-%m-%d}): noise")
    if len(stable):
        first = pd.to_datetime(stable["week"], errors="coerce").min()
        problems.append(f"{len(stable)} alert(s) on the {label}series where nothing changed (first "
                        f"{first:%Y-%m-%d}): a rule fires on noise")
    return problems


def check_rules(monitor: Callable[..., Any], changed: pd.DataFrame, stable: pd.DataFrame, start: Any = None, *,
                rule_count: int | None = None, strict: bool = True, quiet: bool = False) -> CheckResult:
    """monitor(weekly) alerts within four weeks of a real decline, never on a stable series, with owners."""
    result = CheckResult("rules", f"your rules alert within {WEEKS_ALLOWED} weeks of the decline, stay quiet where "
                                  "nothing changed, and every alert names an owner and an action")
    if rule_count is not None and rule_count < 2:
        result.fail(f"RULES has {rule_count} rule(s); write at least two: one for a sharp drop, one for a slow one")
    try:
        alerts = monitor(changed.copy()), monitor(stable.copy())
    except Exception as err:  # noqa: BLE001
        result.fail(f"the monitor stopped with {describe_error(err)}")
    else:
        for problem in alert_problems(*alerts, reference_start(changed) if start is None else start):
            result.fail(problem)
    result.hint = ("A rule on one bad week fires on noise; use patterns: Trigger.beyond(sigmas=2, weeks=2, out_of=3) "
                   "for a sharp drop and Trigger.run(weeks=8) for a sustained one.")
    return finish(result, strict=strict, quiet=quiet)


# -- 4. the same monitor on a workflow ---------------------------------------------------------

def simulated_weekly_runs(products: pd.DataFrame, *, weeks: int = 16, change_week: int = 10, per_week: int = 15,
                          seed: int = 0) -> pd.DataFrame:
    """Weekly runs of a copy workflow against a scripted model; from `change_week` (1-based) the simulated
    provider's new model version starts adding claims the facts do not support.

    The runs go through the real runner with the faithfulness, banned-word and required-fact checks;
    the replies are written here from the product facts, so the simulation is the same every time.
    """
    from pydantic import BaseModel

    from marketlab import reference
    from marketlab.evaluate.checks import banned_words, required_facts
    from marketlab.evaluate.facts import faithfulness
    from marketlab.llm.testing import ScriptedEndpoint
    from marketlab.workflow import run_batch

    class Copy(BaseModel):
        headline: str
        description: str

    rng = np.random.default_rng(seed)
    brief = reference.load_brief()
    names = {str(r["name"]): r for r in products.to_dict("records")}
    state = {"week": 0}

    def respond(body: dict[str, Any]) -> str:
        text = json.dumps(body.get("messages", []))
        record = next((r for name, r in names.items() if name in text), None)
        return json.dumps({"headline": str(record["name"]) if record else "New in",
                           "description": _reply(record, state["week"] >= change_week, rng)})

    endpoint = ScriptedEndpoint(responder=respond)
    checks = [faithfulness(), banned_words(), required_facts()]
    frames = []
    for week in range(1, weeks + 1):
        state["week"] = week
        batch = products.sample(per_week, random_state=seed * 1000 + week).reset_index(drop=True)
        out = run_batch(batch, lambda b, r: b.to_messages(r), Copy, endpoint.client(), "scripted", brief=brief,
                        checks=checks, check_text="description", include=["sku"], workers=1, cache=False,
                        checkpoint=False, progress=False,
                        show_summary=False)
        frames.append(out.assign(week=week))
    return pd.concat(frames, ignore_index=True)


def _reply(record: dict[str, Any] | None, changed: bool, rng: np.random.Generator) -> str:
    if record is None:
        return "A useful piece of kit for the trail."
    first_spec = str(record["key_specs"]).split(";")[0].strip()
    material = str(record.get("materials") or "").split(";")[0].strip()
    parts = [f"The {record['name']} is made for a day on the hill.", f"{first_spec}."]
    if material and material != "nan":
        parts.append(f"Made with {material}.")
    parts.append("Check the product page for sizes and colours.")
    if rng.random() < 0.08:  # an occasional slip, as any model makes: the headline spec left out
        parts.pop(1)
    if changed and rng.random() < 0.6:  # the new model version adds what the facts never said
        parts.insert(2, "It is fully waterproof and eco-friendly, so it suits any storm.")
    return " ".join(parts)


def workflow_alert_problems(table: Any, quiet_table: Any, start_week: int) -> list[str]:
    """Problems of a workflow monitor's alerts: in time after the change, none before or on stable runs, owned."""
    problems = []
    for name, t in (("changed", table), ("stable", quiet_table)):
        if not isinstance(t, pd.DataFrame) or not {"week", "owner", "action"} <= set(t.columns):
            problems.append(f"for the {name} runs it returned no alerts table (week, owner, action)")
    if problems:
        return problems
    unowned = [t for t in (table, quiet_table) if t["owner"].astype(str).str.strip().isin(["", "nan", "None"]).any()]
    if unowned:
        problems.append("an alert names no owner")
    odd = sorted(set(table["action"].astype(str)) | set(quiet_table["action"].astype(str)))
    odd = [a for a in odd if a not in WORKFLOW_ACTIONS]
    if odd:
        problems.append(f"action(s) {odd[:3]}: nobody retrains a prompt workflow; use "
                        f"{', '.join(repr(a) for a in WORKFLOW_ACTIONS)}")
    weeks = pd.to_numeric(table["week"], errors="coerce").dropna()
    if weeks[weeks >= start_week].empty or weeks[weeks >= start_week].min() > start_week + 2:
        problems.append(f"no alert within 3 weeks of week {start_week}, when the checks started failing")
    if len(weeks[weeks < start_week]):
        problems.append("an alert before anything changed: noise")
    if len(quiet_table):
        problems.append(f"{len(quiet_table)} alert(s) on runs where nothing changed")
    return problems


def check_workflow_rules(monitor_workflow: Callable[..., Any], changed: pd.DataFrame, stable: pd.DataFrame,
                         start_week: int, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """monitor_workflow(weekly_runs) alerts within three weeks of the model change, not on stable runs."""
    result = CheckResult("workflow-rules", "your workflow rules alert within 3 weeks when the checks start failing, "
                                           "stay quiet otherwise, and name an owner and an action")
    try:
        alerts = monitor_workflow(changed.copy()), monitor_workflow(stable.copy())
    except Exception as err:  # noqa: BLE001
        result.fail(f"monitor_workflow stopped with {describe_error(err)}")
    else:
        for problem in workflow_alert_problems(*alerts, start_week):
            result.fail(problem)
    result.hint = ("Watch 'pass_rate' with Trigger.beyond(sigmas=2, weeks=2, out_of=3); name the workflow's owner "
                   "from your brief and the action 'rewrite the prompt'.")
    return finish(result, strict=strict, quiet=quiet)


# -- 5. the saved monitor.py ----------------------------------------------------------------

def check_monitor(changed: pd.DataFrame, stable: pd.DataFrame, start: Any = None, here: str | Path | None = None, *,
                  harness: Harness | None = None, strict: bool = True, quiet: bool = False) -> CheckResult:
    """monitor.py, imported in a fresh Python, alerts on the changed series in time and never on the stable one."""
    result = CheckResult("monitor", "monitor.py runs in a fresh Python: alerts in time on a decline, none on a "
                                    "stable series, every alert with an owner and an action")
    folder = Path(here or Path.cwd())
    harness = harness or LocalHarness()
    if saved_file_missing(result, folder, MONITOR_FILE):
        return finish(result, strict=strict, quiet=quiet)
    with harness.module(folder, MONITOR_FILE) as served:
        try:
            alerts = [served.request({"op": "call", "name": "monitor", "args": [t]}) for t in (changed, stable)]
        except (wire.RemoteError, wire.WireError) as err:
            result.fail(f"monitor.py could not run on its own: {describe_error(err)}")
            result.hint = "Save it again with the save cell; keep RULES to AlertRule(...) with marketlab's triggers."
            return finish(result, strict=strict, quiet=quiet)
    for problem in alert_problems(*alerts, reference_start(changed) if start is None else start):
        result.fail(problem)
    if not result.passed:
        result.hint = "Pass the rules check above, then run the save cell again."
    return finish(result, strict=strict, quiet=quiet)
