"""Checks for Lab 5 (commission it): hand scores, the extractor's messages, scoring rules against the
expert, the commissioned brief, the questions for the vendor, and the saved files.

Every check judges plain data or calls the learner's functions with data. In the notebook the lab's
six proposals are used; in grading the same functions run on the holdout proposals, with scripted
model replies and the expert's scores kept on the grader's side.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from marketlab import commission
from marketlab.errors import MarketlabError

from ..grading import wire
from ..grading.harness import Harness, LocalHarness
from ._report import CheckResult, describe_error, finish, saved_file_missing
from .lab01 import check_rules
from .lab03 import policy_criteria

MIN_CLEAR_AGREEMENT = 0.85
MIN_KAPPA = 0.6
MIN_QUESTIONS, MAX_QUESTIONS = 5, 12
BRIEF_FILE = "commission_brief.yaml"

_QUOTE_RULE = re.compile(r"\b(?:word[- ]for[- ]word|verbatim|exact(?:ly)?|cop(?:y|ies|ied))\b", re.I)
_MISSING_RULE = re.compile(r"not stated|not answered|no answer|does(?:n't| not) (?:say|answer|mention|cover)|"
                           r"\bnull\b|leave (?:it |them |the \w+ )?(?:empty|blank)", re.I)
_ONLY_RULE = re.compile(r"\bonly\b|(?:never|do(?:n't| not)) (?:invent|add|guess|make up)", re.I)


# -- 1. scoring one proposal by hand ---------------------------------------------------------

def check_hand_scores(scores: Any, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """Every one of the five questions has your score: 0, 1 or 2."""
    result = CheckResult("hand-scores", "each of the five questions has your score: 0, 1 or 2")
    if not isinstance(scores, Mapping):
        result.fail(f"MY_SCORES is a {type(scores).__name__}, not a dictionary of question -> score")
    else:
        missing = [q for q in commission.QUESTION_IDS if scores.get(q) is None]
        odd = [q for q in commission.QUESTION_IDS if scores.get(q) is not None
               and (isinstance(scores[q], bool) or scores[q] not in (0, 1, 2))]
        extra = [str(k) for k in scores if k not in commission.QUESTION_IDS]
        if missing:
            result.fail(f"no score yet for: {', '.join(missing)}")
        if odd:
            result.fail(f"score(s) that are not 0, 1 or 2: {', '.join(f'{q}={scores[q]!r}' for q in odd)}")
        if extra:
            result.fail(f"name(s) that are not one of the five questions: {', '.join(extra[:4])}")
    result.hint = "Replace each None with 0 (not answered, or only claims), 1 (partly) or 2 (specific and checkable)."
    return finish(result, strict=strict, quiet=quiet)


# -- 2. the extractor's messages, run with scripted replies -----------------------------------

def _squash(text: Any) -> str:
    return re.sub(r"\s+", " ", str(text or "")).strip().lower()


class _ScriptedExtractor:
    """Plays a careful model: answers with the reference extraction of the proposal found in the messages."""

    def __init__(self, proposals: pd.DataFrame, extractions: Mapping[str, Any]) -> None:
        self.texts = {str(p): _squash(t) for p, t in zip(proposals["proposal_id"], proposals["text"])}
        self.answers = commission.as_answers(extractions)
        self.schemas = {schema.__name__: q for q, schema in commission.SECTION_SCHEMAS.items()}

    def __call__(self, body: dict[str, Any]) -> str:
        from marketlab.llm.testing import default_reply

        name = ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
        sent = _squash(" ".join(str(m.get("content", "")) for m in body.get("messages", [])))
        found = [p for p, text in self.texts.items() if text and text in sent]
        question_id = self.schemas.get(str(name))
        if question_id is None or len(found) != 1 or found[0] not in self.answers:
            return str(default_reply(body))  # nothing to read from: a shape-valid reply with no real quote
        return json.dumps(self.answers[found[0]].section(question_id).model_dump())


def _instruction_problems(messages: list[dict[str, Any]], record: Mapping[str, Any]) -> list[str]:
    contents = [str(m.get("content", "")) for m in messages if isinstance(m, Mapping)]
    joined = "\n".join(contents)
    problems = []
    if _squash(record["text"]) not in _squash(joined):
        problems.append("the messages do not contain the whole proposal text, so the model cannot quote it "
                        "(use record['text'])")
    if _squash(record["question_text"]) not in _squash(joined):
        problems.append("the messages do not contain the question (use record['question_text'])")
    rules = _squash(joined).replace(_squash(record["text"]), " ")
    if not _QUOTE_RULE.search(rules):
        problems.append("your instructions do not tell the model to copy its evidence word for word")
    if not _MISSING_RULE.search(rules):
        problems.append("your instructions do not say what to write when the proposal does not answer "
                        "(for example 'not stated')")
    if not _ONLY_RULE.search(rules):
        problems.append("your instructions do not tell the model to use only what the proposal says")
    return problems


def check_extraction_messages(fn: Callable[..., Any], proposals: Any, extractions: Mapping[str, Any], *,
                              strict: bool = True, quiet: bool = False) -> CheckResult:
    """extraction_messages(record) gives the model the rules, the question and the whole proposal, and the
    extractor then returns the scorecard structure for every proposal (scripted, careful replies)."""
    from marketlab.llm.testing import ScriptedEndpoint

    frame = commission.proposal_frame(proposals)
    result = CheckResult("extraction", f"extraction_messages gives the model your rules, the question and the whole "
                                       f"proposal, and the extractor fills in all 5 answers for {len(frame)} "
                                       "proposals")
    sent: list[tuple[dict[str, Any], Any]] = []

    def builder(record: dict[str, Any]) -> Any:
        messages = fn(record)
        sent.append((record, messages))
        return messages

    endpoint = ScriptedEndpoint(responder=_ScriptedExtractor(frame, extractions))
    try:
        table = commission.extract(frame, endpoint.client(max_retries=0), "scripted", build_messages=builder,
                                   cache=False, checkpoint=False, request_timeout=30.0, show_summary=False)
    except MarketlabError as err:
        result.fail(f"the extractor could not use your messages: {err.problem}")
        result.hint = "Return a list like [{'role': 'system', 'content': ...}, {'role': 'user', 'content': ...}]."
        return finish(result, strict=strict, quiet=quiet)
    problems: dict[str, list[str]] = {}
    for record, messages in sent:
        if isinstance(messages, list):
            for problem in _instruction_problems(messages, record):
                problems.setdefault(problem, []).append(f"{record['proposal_id']}/{record['question']}")
    for problem, where in problems.items():
        result.fail(problem + (f" ({len(where)} of {len(sent)} requests)" if len(where) < len(sent) else ""))
    expected = len(frame) * len(commission.QUESTION_IDS)
    if len(table) != expected:
        result.fail(f"{expected} answers were expected ({len(frame)} proposals x 5 questions), {len(table)} came back")
    failed = table[~table["status"].isin(["ok", "repaired"])]
    if not failed.empty:
        row = failed.iloc[0]
        result.fail(f"{len(failed)} answer(s) failed, e.g. {row['proposal_id']}/{row['question']}: "
                    f"{str(row['error'])[:200]}")
    unverified = table[table["status"].isin(["ok", "repaired"]) & ~table["verified"]]
    if not unverified.empty and not problems:
        result.fail(f"{len(unverified)} answer(s) came back with a quote that is not in the proposal")
    result.hint = ("Keep the question and the proposal text in the user message, and write the rules in "
                   "EXTRACTOR_INSTRUCTIONS: use only the proposal, copy the evidence word for word, and write "
                   "'not stated' when the proposal does not answer.")
    return finish(result, strict=strict, quiet=quiet)


# -- 3. scoring rules against the expert -------------------------------------------------------

def check_scoring_rules(scorecard_fn: Callable[..., Any], extractions: Mapping[str, Any], expert: pd.DataFrame, *,
                        strict: bool = True, quiet: bool = False) -> CheckResult:
    """my_scorecard(extractions), your rules on reference extractions, agrees with the expert on clear-cut items."""
    result = CheckResult("scoring-rules", f"your rules agree with the expert on at least {MIN_CLEAR_AGREEMENT:.0%} "
                                          f"of the clear-cut items (expert 0 or 2), with kappa >= {MIN_KAPPA}")
    result.hint = ("Read the disagreements table, then change the rule of the question it names: each rule should "
                   "give 2 only for a specific, checkable answer and 0 when there is no answer or only a claim.")
    try:
        scorecard = scorecard_fn(extractions)
    except Exception as err:  # noqa: BLE001 - the learner's rules may raise anything
        result.fail(f"your rules stopped with {describe_error(err)}")
        result.hint = ("my_rules must return a dictionary with a score of 0, 1 or 2 for each of the five questions, "
                       "and use the field names in the table above the exercise (e.g. a.monitoring.alert_thresholds).")
        return finish(result, strict=strict, quiet=quiet)
    try:
        compared = commission.compare(scorecard, expert)
    except Exception as err:  # noqa: BLE001 - whatever the learner's side returned, it is judged, never trusted
        result.fail(err.problem if isinstance(err, MarketlabError) else
                    f"your scorecard could not be compared: {describe_error(err)}")
        return finish(result, strict=strict, quiet=quiet)
    clear = compared.clear_cut
    if clear.agreement < MIN_CLEAR_AGREEMENT or clear.kappa < MIN_KAPPA:
        result.fail(f"on the {clear.items} clear-cut items: agreement {clear.agreement:.0%} (needs "
                    f"{MIN_CLEAR_AGREEMENT:.0%}), kappa {clear.kappa:.2f} (needs {MIN_KAPPA})")
        wrong = compared.table[compared.table["clear_cut"] & ~compared.table["agree"]]
        counts = wrong["question"].value_counts()
        result.fail("clear-cut disagreements by question: " + ", ".join(f"{q} ({n})" for q, n in counts.items()))
    return finish(result, strict=strict, quiet=quiet)


# -- 4. the commissioned brief -----------------------------------------------------------------

def _lead_scoring_problems(brief: Any) -> list[str]:
    from marketlab.brief import Brief

    if not isinstance(brief, Brief):
        return []
    problems = []
    if not re.search(r"\blead", brief.objective.statement or "", re.I):
        problems.append("the objective does not say it scores leads")
    if not any(re.search(r"\blead|\bcrm\b", f"{i.name} {i.source or ''}", re.I) for i in brief.inputs):
        problems.append("no input is the leads data (name its source, e.g. the CRM export behind leads.csv)")
    if not any(re.search(r"conver", m, re.I) for m in brief.monitoring.metrics):
        problems.append("no monitoring metric follows conversion, the outcome a lead score predicts")
    return problems


def check_commission_brief(brief: Any, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """The brief for the commissioned lead-scoring system reaches engineering spec and is about leads."""
    from marketlab.brief import Brief, BriefError

    result = check_rules(brief, what="your commissioned brief (engineering spec)", strict=False, quiet=True)
    result.name = "commission-brief"
    try:
        parsed = (brief if isinstance(brief, Brief) else Brief.from_dict(brief) if isinstance(brief, dict)
                  else Brief.from_yaml(str(brief)))
    except BriefError:
        parsed = None
    for problem in _lead_scoring_problems(parsed):
        result.fail(problem)
    if not result.passed:
        result.hint = ("Edit the section each line names and run the lint cell again. For a scoring system, the "
                       "brand voice is the tone of the reason a rep reads, and banned claims are what it must never "
                       "say or use.")
    return finish(result, strict=strict, quiet=quiet)


# -- 5. the questions for the vendor -----------------------------------------------------------

_CLOSED = re.compile(r"(?i)(?:is|are|does|do|did|can|could|will|would|has|have|should)\b")
_SPECIFIC = re.compile(r"(?i)\b(?:how|which|what|when|who|whom|where|name|names|number|numbers|list|show|"
                       r"percent|per cent|example|examples|evidence)\b|%")


def check_vendor_questions(text: Any, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """5 to 12 questions, one per line, covering all five topics, each long enough to ask for specifics."""
    result = CheckResult("vendor-questions", f"{MIN_QUESTIONS} to {MAX_QUESTIONS} questions for the vendor, one per "
                                             "line, covering all five topics")
    lines = [line.lstrip("0123456789.) ").strip() for line in policy_criteria(text)]
    questions = [line for line in lines if line.endswith("?")]
    if not isinstance(text, str):
        result.fail(f"VENDOR_QUESTIONS is a {type(text).__name__}, not text")
    elif len(questions) < MIN_QUESTIONS:
        result.fail(f"{len(questions)} line(s) end with a question mark; write at least {MIN_QUESTIONS} questions")
    elif len(questions) > MAX_QUESTIONS:
        result.fail(f"{len(questions)} questions; keep to {MAX_QUESTIONS}, the ones whose answers decide")
    short = [q for q in questions if len(q.split()) < 6]
    if short:
        result.fail(f"too short to get a specific answer: {', '.join(repr(q) for q in short[:3])}")
    # "Is your AI good with our CRM?" gets a yes, whatever the wording: a yes/no question that asks for no
    # name, number or example has no checkable answer.
    closed = [q for q in questions if _CLOSED.match(q) and not _SPECIFIC.search(q)]
    if closed:
        result.fail(f"a yes/no question gets a yes, not a checkable answer: {', '.join(repr(q) for q in closed[:3])}; "
                    "ask how, which, how many, or for names and numbers")
    uncovered = [commission.BY_ID[q].title for q, found in commission.topics_covered(questions).items() if not found]
    if uncovered:
        result.fail(f"no question about: {', '.join(uncovered)}")
    result.hint = ("One question per line, ending with '?'. Cover data and freshness, monitoring as rates, retraining "
                   "and its owner, the CRM and other systems, and production references; ask for names and numbers.")
    return finish(result, strict=strict, quiet=quiet)


# -- 6. the saved files ------------------------------------------------------------------------

def check_saved_artifacts(extractions: Mapping[str, Any], expert: pd.DataFrame, here: str | Path | None = None, *,
                          harness: Harness | None = None, strict: bool = True, quiet: bool = False) -> CheckResult:
    """scoring_rules.py and commission_brief.yaml, read in a fresh Python: the rules agree with the expert on
    clear-cut items and the brief reaches engineering spec."""
    result = CheckResult("artifacts", f"{commission.RULES_FILE} and {BRIEF_FILE} are saved and work on their own")
    folder = Path(here or Path.cwd())
    harness = harness or LocalHarness()
    if saved_file_missing(result, folder, commission.RULES_FILE):
        return finish(result, strict=strict, quiet=quiet)
    result.hint = "Run the save cell above: it writes both files next to this notebook."
    with harness.module(folder, commission.RULES_FILE) as served:
        if served.load_error is not None:
            result.fail(f"{commission.RULES_FILE} could not be loaded: {describe_error(served.load_error)}")
            return finish(result, strict=strict, quiet=quiet)
        rules = check_scoring_rules(served.function("scorecard"), extractions, expert, strict=False, quiet=True)
        try:
            saved = served.request({"op": "brief_file", "name": BRIEF_FILE})
            briefing = check_commission_brief(saved["__brief_data__"], strict=False, quiet=True)
        except (wire.RemoteError, wire.WireError, KeyError, TypeError) as err:
            briefing = CheckResult("commission-brief", "the brief")
            briefing.fail(f"{BRIEF_FILE} could not be read: {describe_error(err)}")
    for inner in (rules, briefing):
        for problem in inner.problems:
            result.fail(f"saved {inner.name}: {problem}")
    if not result.passed:
        result.hint = "Pass the checks above, then run the save cell again to save the new versions."
    return finish(result, strict=strict, quiet=quiet)
