"""Checks for Lab 1 (the brief): lint sections, build_messages on any product, saved artifacts."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from marketlab.brief import RULE_IDS, Brief, BriefError, is_missing, lint, split_list
from marketlab.brief.messages import as_record
from marketlab.evaluate.facts import claims
from marketlab.evaluate.text import squash

from ..grading.harness import Harness, LocalHarness
from ._report import CheckResult, describe_error, finish

# What a saved lab01_messages.py provides besides the function itself (see marketlab.artifacts).
SAVED_MODULE_HEADER = "from marketlab.brief import Brief"

# Which lint rules each section of the Lab 1 brief must satisfy.
SECTION_RULES: dict[str, tuple[str, ...]] = {
    "objective": ("objective-stated", "objective-measurable", "audience-specific"),
    "inputs": ("inputs-have-source", "inputs-have-owner", "inputs-have-freshness"),
    "output": ("output-contract-fields", "brand-voice", "banned-claims", "acceptance-measurable"),
    "operations": ("budget-set", "monitoring-as-rates", "review-cadence", "owner-named",
                   "retrain-trigger", "failure-handling"),
}
OPTIONAL_FIELDS = ("weight_g", "materials", "certifications", "not_true", "persona", "channel_focus")
_NEGATION = re.compile(
    r"\b(?:do not|don't|never|must not|mustn't|avoid|false|not allowed|not true|limits?|opposite)\b", re.I
)
_LEAKED_EMPTY = re.compile(r"(?<![\w-])(?:nan|None|NaN|<NA>|NaT)(?![\w-])")


def _number_forms(value: Any) -> list[str]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return [str(value)]
    forms = {f"{number:.2f}", f"{number:g}", str(value)}
    if number.is_integer():
        forms.add(str(int(number)))
    return sorted(forms)


def record_facts(record: Any) -> list[tuple[str, list[str]]]:
    """The facts a message about this record must contain: (label, accepted spellings) pairs."""
    row = as_record(record)
    facts: list[tuple[str, list[str]]] = []
    for field in ("name", "category", "persona", "channel_focus"):
        if field in row and not is_missing(row[field]):
            facts.append((field, [str(row[field]).strip()]))
    for field in ("price_usd", "weight_g"):
        if field in row and not is_missing(row[field]):
            facts.append((field, _number_forms(row[field])))
    for field in ("materials", "certifications"):
        for item in split_list(row.get(field)):
            facts.append((f"{field} '{item}'", [item]))
    for spec in split_list(row.get("key_specs")):
        name, _, value = spec.partition(":")
        facts.append((f"key spec '{spec}'", [value.strip() or name.strip()]))
    return facts


def missing_facts(text: str, record: Any) -> list[str]:
    """Labels of the record's facts that the text does not contain."""
    squashed = squash(text)
    return [label for label, forms in record_facts(record) if not any(squash(f) in squashed for f in forms)]


def unmarked_limits(text: str, record: Any) -> list[str]:
    """not_true items that are missing from the text, or not introduced as something not to claim."""
    problems = []
    lowered = text.lower()
    for item in split_list(as_record(record).get("not_true")):
        at = lowered.find(item.lower())
        if at < 0:
            problems.append(f"limit '{item}' (from not_true) is missing")
        elif not _NEGATION.search(text[max(0, at - 300):at]):
            problems.append(f"limit '{item}' is not introduced as something not to claim")
    return problems


def _messages_text(messages: Any) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages)


def _shape_problem(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return f"returned {type(messages).__name__}, not a list of messages"
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            return "every message must be a dict with role 'system', 'user' or 'assistant'"
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            return f"a {m.get('role')} message has no text content"
    if messages[-1]["role"] != "user":
        return "the last message must be the user message with the product"
    return None


def _variant_brief(brief: Brief) -> Brief:
    """The same brief with a different objective, reader, voice and length, to see whether fn uses it."""
    data = brief.model_dump()
    data["objective"]["statement"] = "Write a short catalogue caption for the printed winter catalogue."
    data["audience"]["who"] = "Scout group leaders buying in bulk"
    data["constraints"]["brand_voice"] = "Brisk and cheerful, like a radio advert."
    data["output"]["max_words"] = 33
    data["output"]["min_words"] = None
    return Brief.model_validate(data)


def _with_missing(record: dict[str, Any], empty: Any) -> dict[str, Any]:
    row = dict(record)
    for field in OPTIONAL_FIELDS:
        if field in row:
            row[field] = empty
    return row


def _reference_brief() -> Brief:
    from marketlab import reference

    return reference.load_brief()


def check_build_messages(fn: Callable[..., Any], products: pd.DataFrame, brief: Brief | None = None, *,
                         foreign_names: Iterable[str] = (), strict: bool = True,
                         quiet: bool = False) -> CheckResult:
    """Check fn(brief, record) on every product: all facts in, no other product's name, brief used, NaN-safe."""
    result = CheckResult("build-messages", f"build_messages works on {len(products)} products: every fact "
                                           "included, nothing from other products, empty fields handled")
    if not isinstance(brief, Brief):
        brief = _reference_brief()
    records = [as_record(row) for _, row in products.iterrows()]
    names = [str(r.get("name", "")) for r in records] + [str(n) for n in foreign_names]
    hints: list[str] = []
    texts: list[str] = []
    outside = _notebook_names_used(fn, brief, records[0]) if records else None
    if outside:
        result.fail(f"build_messages uses {outside!r}, a name defined elsewhere in the notebook; saved on its "
                    "own (as the next lab and the grader use it) it stops with NameError")
        result.hint = (f"Inside build_messages use only its two arguments, brief and record, and marketlab. If you "
                       f"need {outside!r}, take it from the brief (e.g. brief.constraints) or from record.")
        return finish(result, strict=strict, quiet=quiet)
    for record in records:
        label = record.get("name", "a product")
        try:
            messages = fn(brief, record)
        except Exception as err:  # learner code may fail in any way
            result.fail(f"{label}: stopped with {describe_error(err)}")
            hints.append("Use only the two arguments, brief and record; brief.to_messages(record) is a safe start.")
            continue
        shape = _shape_problem(messages)
        if shape:
            result.fail(f"{label}: {shape}")
            hints.append("Return a list like [{'role': 'system', 'content': ...}, {'role': 'user', 'content': ...}].")
            continue
        text = _messages_text(messages)
        texts.append(text)
        missing = missing_facts(text, record)
        if missing:
            result.fail(f"{label}: facts missing from the messages: {', '.join(missing)}")
            hints.append("Put every field of the product into the user message; the model cannot use a fact "
                         "it is not given.")
        limits = unmarked_limits(text, record)
        if limits:
            result.fail(f"{label}: {'; '.join(limits)}")
            hints.append("List the not_true items under a line such as 'Do not claim the opposite of these'.")
        own = squash(label)
        leaked = sorted({n for n in names if n and squash(n) not in own and squash(n) in squash(text)})
        if leaked:
            result.fail(f"{label}: mentions other products: {', '.join(leaked)}")
            hints.append("Do not write product names or specs into the function or the brief; take them from "
                         "record. For an example, invent a product.")
    if len(texts) > 1 and len(set(texts)) < len(texts):
        result.fail("two different products got identical messages")
        hints.append("Build the user message from record, so each product gets its own.")
    if records and result.passed:
        _check_brief_used(fn, brief, records[0], result, hints)
        _check_missing_fields(fn, brief, records[0], result, hints)
        _check_sdk_accepts(fn, brief, records[0], result)
    result.hint = " ".join(dict.fromkeys(hints))
    return finish(result, strict=strict, quiet=quiet)


def _notebook_names_used(fn: Any, brief: Brief, record: dict[str, Any]) -> str | None:
    """The first notebook variable fn needs beyond what its saved module would have, or None.

    Runs a copy of fn whose globals are only those of the saved lab01_messages.py. Only for real
    Python functions (in grading the function runs elsewhere and this is checked there by saving).
    """
    import builtins
    import types

    code = getattr(fn, "__code__", None)
    if code is None or not isinstance(fn, types.FunctionType):
        return None
    clean: dict[str, Any] = {"__builtins__": builtins, "__name__": "lab01_messages"}
    exec(SAVED_MODULE_HEADER, clean)  # noqa: S102 - our own fixed import line
    copy = types.FunctionType(code, clean, fn.__name__, fn.__defaults__, fn.__closure__)
    try:
        copy(brief, dict(record))
    except NameError as err:
        return err.name or str(err)
    except Exception:  # noqa: BLE001 - other failures are reported by the checks that follow
        return None
    return None


def _check_brief_used(fn: Callable[..., Any], brief: Brief, record: dict[str, Any], result: CheckResult,
                      hints: list[str]) -> None:
    try:
        same = _messages_text(fn(brief, record)) == _messages_text(fn(_variant_brief(brief), record))
    except Exception as err:  # learner code may fail in any way
        result.fail(f"with a different brief, build_messages stopped with {describe_error(err)}")
        return
    if same:
        result.fail("changing the brief (objective, reader, voice, length) did not change the messages")
        hints.append("Use the brief argument, e.g. brief.system_prompt() or brief.to_messages(record).")


def _check_missing_fields(fn: Callable[..., Any], brief: Brief, record: dict[str, Any], result: CheckResult,
                          hints: list[str]) -> None:
    for empty, shown in ((float("nan"), "NaN"), (None, "None"), ("", "blank")):
        row = _with_missing(record, empty)
        try:
            text = _messages_text(fn(brief, row))
        except Exception as err:  # learner code may fail in any way
            result.fail(f"with optional fields left empty ({shown}), stopped with {describe_error(err)}")
            hints.append("Skip empty fields: marketlab.brief.is_missing(value) tells you when a field is empty.")
            return
        if _LEAKED_EMPTY.search(text) and not _LEAKED_EMPTY.search(_messages_text(fn(brief, record))):
            result.fail(f"with optional fields left empty ({shown}), the messages show '{shown}' to the model")
            hints.append("Leave empty fields out instead of printing them.")
            return


def _check_sdk_accepts(fn: Callable[..., Any], brief: Brief, record: dict[str, Any], result: CheckResult) -> None:
    from marketlab.llm.testing import scripted_client

    try:
        scripted_client(max_retries=0).chat.completions.create(model="scripted", messages=fn(brief, record))
    except Exception as err:  # the SDK rejects what an API would reject
        result.fail(f"the openai SDK rejected the messages: {describe_error(err)}")


def check_rules(brief: Any, rule_ids: Sequence[str] = RULE_IDS, what: str = "the brief",
                *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """Check that a brief passes the given lint rules; each failure says why and how to fix it."""
    rules = f"all {len(rule_ids)} lint rules" if set(rule_ids) == set(RULE_IDS) else ", ".join(rule_ids)
    result = CheckResult("brief-rules", f"{what} passes {rules}")
    try:
        if not isinstance(brief, Brief):
            brief = Brief.from_dict(brief) if isinstance(brief, dict) else Brief.from_yaml(str(brief))
    except BriefError as err:
        result.fail(str(err).splitlines()[0])
        result.hint = "Fix the YAML shape first: the error above names the line or the field."
        return finish(result, strict=strict, quiet=quiet)
    report = lint(brief, rule_ids)
    for failed in report.failed:
        result.fail(f"{failed.rule.id}: {failed.detail}. Fix: {failed.rule.fix}")
    if not result.passed:
        result.hint = "Edit the section named in each line and run the cell again; each line says what is missing."
    return finish(result, strict=strict, quiet=quiet)


def check_section(brief: Any, section: str, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """Check the lint rules that belong to one part of the Lab 1 brief (see SECTION_RULES).

    The output part must also give both word limits: Lab 2's rules take min_words and max_words
    from it, and a brief without a lower limit lets a one-line description pass as fine.
    """
    result = check_rules(brief, SECTION_RULES[section], f"the {section} part of the brief", strict=False, quiet=True)
    output = getattr(brief, "output", None)
    if section == "output" and isinstance(brief, Brief) and output is not None:
        if not output.min_words or not output.max_words:
            missing = " and ".join(n for n in ("min_words", "max_words") if not getattr(output, n))
            result.fail(f"output: {missing} is empty; the workflow's rules take both word limits from here")
            result.hint = ("Fill in min_words and max_words under output with the brand voice's limits for the "
                           "channel (e.g. the web description's 40 and 120).")
    return finish(result, strict=strict, quiet=quiet)


def check_brief(brief: Any, *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """Check that a brief reaches 'engineering spec': every lint rule passes."""
    return check_rules(brief, RULE_IDS, "the whole brief (engineering spec)", strict=strict, quiet=quiet)


def check_saved_artifacts(products: pd.DataFrame, here: str | Path | None = None, *,
                          foreign_names: Iterable[str] = (), harness: Harness | None = None, strict: bool = True,
                          quiet: bool = False) -> CheckResult:
    """Check that brief.yaml and lab01_messages.py were saved, read back, and work on the products.

    Both are read in a fresh Python through the harness (a plain process in the notebook, the
    grading sandbox in grading); the products and the judging stay here.
    """
    result = CheckResult("artifacts", "brief.yaml and lab01_messages.py are saved and work on their own")
    folder = Path(here or Path.cwd())
    harness = harness or LocalHarness()
    with harness.module(folder, "lab01_messages.py") as served:
        if served.load_error is not None:
            result.fail(f"lab01_messages.py could not be loaded: {describe_error(served.load_error)}")
            result.hint = "Run the artifact cell at the end of the notebook; it saves both files next to the notebook."
            return finish(result, strict=strict, quiet=quiet)
        brief: Brief | None = None
        try:
            saved = served.request({"op": "brief_file", "name": "brief.yaml"})
            brief = Brief.model_validate(saved["__brief_data__"])
        except Exception as err:  # noqa: BLE001 - a missing or broken file is the learner's answer
            result.fail(f"brief.yaml could not be read: {describe_error(err)}")
        if not result.passed:
            result.hint = "Run the artifact cell at the end of the notebook; it saves both files next to the notebook."
            return finish(result, strict=strict, quiet=quiet)
        briefing = check_brief(brief, strict=False, quiet=True)
        inner = check_build_messages(served.function("build_messages"), products,
                                     brief if briefing.passed else None, foreign_names=foreign_names,
                                     strict=False, quiet=True)
    for sub in (briefing, inner):
        for problem in sub.problems:
            result.fail(f"saved {sub.name}: {problem}")
    if not result.passed:
        result.hint = "Fix the notebook cells above, then run the artifact cell again to save the new versions."
    return finish(result, strict=strict, quiet=quiet)


def invented_numbers(text: str, record: Any) -> list[str]:
    """Figures in the text that the record's facts do not give: specs the model made up.

    The numbers of marketlab.evaluate's faithfulness check (units converted, so "1320 g" matches
    "1.32 kg"; codes such as IPX7 and the product's own name are not figures).
    """
    found = [c.text for c in claims(str(text), as_record(record)) if c.kind == "number" and not c.supported]
    return [number.group() if (number := _LEADING_NUMBER.search(c)) else c for c in found]


_LEADING_NUMBER = re.compile(r"[-−+$]?\d[\d,]*(?:\.\d+)?")


def limit_conflicts(text: str, record: Any) -> list[str]:
    """Limits (not_true items such as 'not waterproof') that the text claims the opposite of.

    The not_true rules of marketlab.evaluate's faithfulness check ("waterproof" against "not
    waterproof", "sustainable" against "no eco certification", "includes a rain cover" against
    "rain cover not included"); a limit the text only repeats ("not waterproof") is not a conflict.
    """
    found = {c.rule for c in claims(str(text), as_record(record)) if c.kind == "not_true"}
    return [item for item in split_list(as_record(record).get("not_true")) if item in found]


def compare_outputs(products: pd.DataFrame, before: Sequence[str], after: Sequence[str],
                    max_words: int | None = None) -> pd.DataFrame:
    """A before/after table per product: words, key specs used, invented numbers, broken limits, length."""
    rows = []
    for (_, product), old, new in zip(products.iterrows(), before, after):
        specs = [s.partition(":")[2].strip() for s in split_list(product.get("key_specs"))]
        row: dict[str, Any] = {"product": product["name"]}
        for tag, text in (("before", old), ("after", new)):
            squashed = squash(text)
            row[f"words_{tag}"] = len(str(text).split())
            row[f"specs_used_{tag}"] = f"{sum(squash(s) in squashed for s in specs)} of {len(specs)}"
            row[f"invented_numbers_{tag}"] = ", ".join(invented_numbers(text, product)) or "none"
            row[f"breaks_limits_{tag}"] = "; ".join(limit_conflicts(text, product)) or "none"
            if max_words:
                row[f"over_{max_words}_words_{tag}"] = len(str(text).split()) > max_words
        rows.append(row)
    return pd.DataFrame(rows)
