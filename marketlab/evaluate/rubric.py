"""A rubric judge: a model scores each text against written criteria, through the batch runner.

    from marketlab.evaluate import TONE_RUBRIC, judge
    verdicts = judge(outputs, TONE_RUBRIC)          # cached, budgeted and retried like any workflow run
    verdicts[["judge_score", "judge_pass", "judge_reason", "judge_status"]]

Every row records the judge's model, a short id of the prompt and the rubric's version, so a
verdict can always be traced to what produced it. A row the judge could not answer (the service
kept failing, the reply never fitted the verdict's shape) has judge_pass NA and says why in
judge_status and judge_error: it never counts as a pass.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import openai
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from marketlab.workflow import run_batch

from .errors import EvaluateInputError

RUBRIC_VERSION = "1"
# Short replies: the built-in model rambles in any free-text field, and its JSON grammar keeps a
# string within maxLength (it ignores numeric limits, hence the score is an enum).
FINDINGS_CHARS = 80
REASON_CHARS = 100
JUDGE_DEFAULTS: dict[str, Any] = {"max_tokens": 120, "show_summary": False}
ANSWERED = ("ok", "repaired")
NO_TEXT = "no_text"
PLACEHOLDER = "{text}"


class JudgeVerdict(BaseModel):
    """The judge's structured reply for one text."""

    findings: str = Field(description="what the steps found, in a few words: the words quoted, or none",
                          max_length=FINDINGS_CHARS)
    score: Literal[1, 2, 3, 4, 5] = Field(description="1 to 5: 5 meets every point, 1 fails most")
    passed: bool = Field(description="true when the score reaches the pass mark")
    reason: str = Field(description="one short sentence for the writer", max_length=REASON_CHARS)


class PairVerdict(BaseModel):
    """The judge's structured reply when it compares two texts."""

    findings: str = Field(description="how the two texts differ on the points, in a few words",
                          max_length=FINDINGS_CHARS)
    better: Literal["first", "second", "tie"] = Field(description="which text meets the points better")
    reason: str = Field(description="one short sentence", max_length=REASON_CHARS)


class Rubric(BaseModel):
    """Written criteria, the steps a judge follows, and the score (1-5) a text needs to pass."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    criteria: list[str] = Field(min_length=1)
    steps: list[str] = Field(min_length=1)
    pass_mark: int = Field(4, ge=1, le=5)
    system: str = "You check marketing copy against a rubric. Follow the steps. Be brief."

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            item = err.errors(include_url=False)[0]
            where = ".".join(str(p) for p in item.get("loc", ())) or "value"
            raise EvaluateInputError(f"The rubric's '{where}' is not usable: {item.get('msg', 'not valid')}.",
                                     "Give name and version as text, criteria and steps as lists of sentences, "
                                     "and pass_mark as a whole number from 1 to 5.") from None

    def _points(self) -> str:
        criteria = "\n".join(f"- {c}" for c in self.criteria)
        steps = "\n".join(f"{i}. {s}" for i, s in enumerate(self.steps, 1))
        return f"Rubric: {self.name}. Good copy is:\n{criteria}\nSteps:\n{steps}"

    def prompt(self, text: str) -> list[dict[str, str]]:
        """The messages that ask a model to score one text against this rubric."""
        user = (f"{self._points()}\nScore 1 to 5. passed is true when the score is {self.pass_mark} or more.\n\n"
                f'Text:\n"""\n{text}\n"""')
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def pairwise_prompt(self, first: str, second: str) -> list[dict[str, str]]:
        """The messages that ask a model which of two texts meets this rubric better."""
        user = (f"{self._points()}\nCompare the two texts on these points and say which is better, or tie.\n\n"
                f'First text:\n"""\n{first}\n"""\n\nSecond text:\n"""\n{second}\n"""')
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    @property
    def prompt_id(self) -> str:
        """A short id of the scoring prompt template (sha256, 12 characters): it changes when the wording does."""
        return _short_hash(self.prompt(PLACEHOLDER))

    @property
    def pairwise_prompt_id(self) -> str:
        """A short id of the pairwise prompt template."""
        return _short_hash(self.pairwise_prompt("{first}", "{second}"))


def _short_hash(messages: list[dict[str, str]]) -> str:
    raw = json.dumps(messages, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:12]


def tone_rubric(voice: Mapping[str, Any] | None = None) -> Rubric:
    """The tone rubric built from a brand voice's tone section (default: the course's brand_voice.yaml)."""
    if voice is None:
        from marketlab import data

        voice = data.load_brand_voice()
    tone = voice.get("tone") if isinstance(voice, Mapping) else None
    if not isinstance(tone, Mapping):
        raise EvaluateInputError("The brand voice has no 'tone' section.",
                                 "Pass the brand voice dict, e.g. marketlab.data.load_brand_voice().")
    words = [str(w) for w in tone.get("words", [])][:3] or ["practical", "warm", "plain-spoken"]
    jargon = [str(w) for w in tone.get("jargon_to_avoid", [])][:3] or ["leverage", "synergy", "paradigm"]
    brand = voice.get("brand", "the brand")
    return Rubric(
        name=f"{brand} tone",
        version=f"{RUBRIC_VERSION}-voice{voice.get('version', '?')}",
        criteria=[f"{', '.join(words)}: specific, honest about limits, never pushy",
                  "no hype: no words in CAPITALS, no '!!', no 'you NEED it'",
                  f"no corporate jargon ({', '.join(jargon)})",
                  "no slang that will date (lit, on fleek, vibes)"],
        steps=["Quote any hype, jargon or slang in the text, or write none.",
               "Score it: 5 if none, 3 for one slip, 1 for a lot."],
        pass_mark=4,
    )


def __getattr__(name: str) -> Any:
    # TONE_RUBRIC reads brand_voice.yaml, so it is built on first use rather than at import.
    if name == "TONE_RUBRIC":
        value = tone_rubric()
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _texts(frame: Any, text: str, what: str = "texts") -> list[str | None]:
    """The text column of a table, checked; a blank or non-text cell becomes None (not sent)."""
    if not isinstance(frame, pd.DataFrame):
        raise EvaluateInputError(f"{what} is a {type(frame).__name__}, not a table.",
                                 "Pass a DataFrame with one text per row, e.g. data.load('rated_outputs').")
    if text not in frame.columns:
        raise EvaluateInputError(f"The {what} table has no '{text}' column.",
                                 f"Its columns are {list(frame.columns)}; pass text='your column' or rename it.")
    if frame.empty:
        raise EvaluateInputError(f"The {what} table has no rows, so there is nothing to judge.",
                                 "Check the filter or the file you loaded.")
    return [c if isinstance(c, str) and c.strip() else None for c in frame[text].tolist()]


def _check_rubric(rubric: Any) -> None:
    if not isinstance(rubric, Rubric):
        raise EvaluateInputError(f"rubric is a {type(rubric).__name__}, not a Rubric.",
                                 "Pass TONE_RUBRIC, or build one: Rubric(name=..., version=..., criteria=[...], "
                                 "steps=[...]).")


def _client_and_model(client: openai.OpenAI | None, model: str | None) -> tuple[openai.OpenAI, str]:
    from marketlab import llm

    return (client if client is not None else llm.client()), (model or llm.model_name())


class _Answers:
    """The runner's outcome per row position: status, error, calls and the verdict's fields (or None)."""

    def __init__(self, rows: int) -> None:
        self.status = [NO_TEXT] * rows
        self.error = ["the text is empty, so it was not sent to the judge"] * rows
        self.calls = [0] * rows
        self.fields: list[dict[str, Any] | None] = [None] * rows

    def column(self, name: str, dtype: str, index: pd.Index) -> pd.Series:
        """One verdict field for every row, NA where the judge gave no usable answer."""
        values = [pd.NA if f is None else f[name] for f in self.fields]
        return pd.Series(values, index=index, dtype=object).astype(dtype)

    def meta(self, index: pd.Index) -> dict[str, pd.Series]:
        """judge_status, judge_error and judge_calls for every row."""
        return {"judge_status": pd.Series(self.status, index=index, dtype="string"),
                "judge_error": pd.Series(self.error, index=index, dtype="string"),
                "judge_calls": pd.Series(self.calls, index=index, dtype="int64")}


def _run(prompts: list[list[dict[str, str]] | None], schema: type[BaseModel], client: openai.OpenAI, model: str,
         options: Mapping[str, Any]) -> _Answers:
    """The runner over the rows that have messages (None: not sent); answers by row position."""
    answers = _Answers(len(prompts))
    sent = [i for i, p in enumerate(prompts) if p is not None]
    if not sent:
        return answers
    frame = pd.DataFrame({"judge_messages": [prompts[i] for i in sent]})

    def build_messages(record: Mapping[str, Any]) -> list[dict[str, str]]:
        return record["judge_messages"]

    out = run_batch(frame, build_messages, schema, client, model, **{**JUDGE_DEFAULTS, **options})
    for position, row in zip(sent, out.to_dict("records")):
        answers.status[position], answers.calls[position] = str(row["status"]), int(row["calls"])
        answered = row["status"] in ANSWERED
        answers.error[position] = "" if answered else str(row["error"])
        if answered:
            answers.fields[position] = {name: row[name] for name in schema.model_fields}
    return answers


def judge(texts: pd.DataFrame, rubric: Rubric, client: openai.OpenAI | None = None, model: str | None = None, *,
          text: str = "text", **run_options: Any) -> pd.DataFrame:
    """Score every text against the rubric with a model; one verdict row per text, same index as `texts`.

    Runs through marketlab.workflow.run_batch, so replies are cached, the budget holds and failed
    requests are retried; run_options go to it (workers=4, token_budget=20_000, cache=False...).
    judge_pass is True when the score reaches rubric.pass_mark, NA when the judge gave no usable answer.
    """
    _check_rubric(rubric)
    cells = _texts(texts, text)
    client, model = _client_and_model(client, model)
    answers = _run([rubric.prompt(c) if c is not None else None for c in cells], JudgeVerdict, client, model,
                   run_options)
    index = texts.index
    score = answers.column("score", "Int64", index)
    judge_pass = (score >= rubric.pass_mark).astype("boolean")
    return pd.DataFrame({
        "judge_score": score,
        "judge_pass": judge_pass,
        "judge_reason": answers.column("reason", "string", index),
        "judge_findings": answers.column("findings", "string", index),
        # the model's own pass/fail beside its score: a small model often contradicts itself
        "judge_consistent": (answers.column("passed", "boolean", index) == judge_pass).astype("boolean"),
        **answers.meta(index),
        "judge_model": model,
        "judge_prompt": rubric.prompt_id,
        "rubric_version": rubric.version,
        "rubric_name": rubric.name,
    }, index=index)


def pairwise(a: pd.DataFrame, b: pd.DataFrame, rubric: Rubric, client: openai.OpenAI | None = None,
             model: str | None = None, *, text: str = "text", seed: int = 0, **run_options: Any) -> pd.DataFrame:
    """Ask the judge which of two texts on the same input is better, showing them in a seeded random order.

    One row per pair (the index of `a`): winner is "a", "b", "tie", or NA when the judge gave no usable
    answer; shown_first records which one the judge saw first, so an order bias can be measured.
    """
    from .compare import check_same_inputs

    _check_rubric(rubric)
    left, right = _texts(a, text, "a"), _texts(b, text, "b")
    check_same_inputs(a, b)
    client, model = _client_and_model(client, model)
    first = ["a" if flip else "b" for flip in np.random.default_rng(seed).random(len(a)) < 0.5]
    prompts = [None if x is None or y is None else
               rubric.pairwise_prompt(x, y) if shown == "a" else rubric.pairwise_prompt(y, x)
               for x, y, shown in zip(left, right, first)]
    answers = _run(prompts, PairVerdict, client, model, run_options)
    other = {"a": "b", "b": "a"}
    winner = [pd.NA if f is None else {"first": shown, "second": other[shown]}.get(f["better"], "tie")
              for f, shown in zip(answers.fields, first)]
    meta = answers.meta(a.index)
    return pd.DataFrame({
        "winner": pd.Series(winner, index=a.index, dtype="string"),
        "shown_first": pd.Series(first, index=a.index, dtype="string"),
        "reason": answers.column("reason", "string", a.index),
        "judge_status": meta["judge_status"], "judge_error": meta["judge_error"],
        "judge_model": model,
        "judge_prompt": rubric.pairwise_prompt_id,
        "rubric_version": rubric.version,
        "rubric_name": rubric.name,
    }, index=a.index)


__all__ = ["JudgeVerdict", "PairVerdict", "Rubric", "TONE_RUBRIC", "judge", "pairwise",  # noqa: F822  # __getattr__
           "tone_rubric"]
