"""Checks for Lab 0 (first steps): the cost of a batch, and a creative but repeatable call."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from marketlab.llm import estimate_cost
from marketlab.llm.config import LOCAL_MODEL

from ..grading.harness import Harness
from ._report import CheckResult, describe_error, finish

# (rows, prompt_tokens, completion_tokens, model): the notebook's numbers; graders pass others.
COST_CASES: tuple[tuple[int, int, int, str], ...] = (
    (1000, 300, 120, "gpt-4o-mini"),
    (500, 800, 60, "gpt-4o-mini"),
    (1000, 300, 120, LOCAL_MODEL),
)
ASK_CASES: tuple[tuple[str, int], ...] = (
    ("Write a six-word tagline for a lightweight tent.", 7),
    ("Name one benefit of a down sleeping bag.", 42),
)
MAX_TOKENS_LIMIT = 120
MIN_CREATIVE_TEMPERATURE = 0.7


def check_batch_cost(fn: Callable[..., Any], cases: Sequence[tuple[int, int, int, str]] = COST_CASES,
                     *, strict: bool = True, quiet: bool = False) -> CheckResult:
    """Check that fn(rows, prompt_tokens, completion_tokens, model) returns the batch cost in dollars."""
    result = CheckResult("batch-cost", "batch_cost gives the dollar cost of running a call on many rows")
    for rows, prompt_tokens, completion_tokens, model in cases:
        per_call = estimate_cost(model, prompt_tokens, completion_tokens) or 0.0
        expected = rows * per_call
        call = f"batch_cost({rows}, {prompt_tokens}, {completion_tokens}, {model!r})"
        try:
            got = fn(rows, prompt_tokens, completion_tokens, model)
        except Exception as err:  # learner code may fail in any way
            result.fail(f"{call} stopped with {describe_error(err)}")
            continue
        if not isinstance(got, (int, float)) or isinstance(got, bool) or math.isnan(got):
            result.fail(f"{call} returned {got!r}, not a number of dollars")
            continue
        if not math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9):
            result.fail(f"{call} returned {got:.6f}, expected {expected:.6f}")
            if per_call and math.isclose(got, per_call, rel_tol=1e-6):
                result.hint = "That is the cost of one call. Multiply it by the number of rows."
            elif any(math.isclose(got, round(expected, digits), abs_tol=1e-12) for digits in range(0, 5)):
                result.hint = ("Your number is rounded. Return the exact cost and round only when you print it, "
                               "e.g. f\"${cost:.2f}\": a fraction of a cent per call adds up over many rows.")
    if not result.passed and not result.hint:
        result.hint = ("Use estimate_cost(model, prompt_tokens, completion_tokens) for one call, "
                       "multiply by rows, and return the number. Use the arguments, not fixed numbers.")
    return finish(result, strict=strict, quiet=quiet)


def _scripted_reply(body: dict[str, Any]) -> str:
    # Depends on the request only, like a seeded model: same request, same reply.
    user = next((m.get("content", "") for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    return f"[reply to '{str(user)[:24]}' with seed {body.get('seed')}]"


def check_ask(fn: Callable[..., Any], cases: Sequence[tuple[str, int]] = ASK_CASES,
              *, harness: Harness | None = None, strict: bool = True, quiet: bool = False) -> CheckResult:
    """Check that fn(prompt, seed, client=...) makes one creative, seeded, short call and returns its text.

    With a harness (grading), fn runs elsewhere and reaches the scripted endpoint, which stays
    here, through a socket: what it was sent is observed here, not reported by fn's side.
    """
    from marketlab.llm.testing import ScriptedEndpoint

    from ..grading.harness import serve

    result = CheckResult("ask", "ask sends your prompt with a temperature, a seed and a token limit, "
                                "and returns the reply text")
    hints: list[str] = []
    for prompt, seed in cases:
        endpoint = ScriptedEndpoint(responder=_scripted_reply)
        try:
            if harness is None:
                got = fn(prompt, seed, client=endpoint.client(max_retries=0))
            else:
                with serve(endpoint, harness) as client:
                    got = fn(prompt, seed, client=client)
        except TypeError as err:
            result.fail(f"ask({prompt!r}, {seed}, client=...) stopped with {describe_error(err)}")
            hints.append("Keep the first line as given: def ask(prompt, seed, client=client):")
            continue
        except Exception as err:  # learner code may fail in any way
            result.fail(f"ask({prompt!r}, {seed}) stopped with {describe_error(err)}")
            continue
        if endpoint.calls != 1:
            result.fail(f"ask made {endpoint.calls} calls to the model for one prompt; expected exactly 1")
            hints.append("Call client.chat.completions.create(...) once, with the client passed in.")
            continue
        body = endpoint.requests[0]
        sent = " ".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")
        if prompt not in sent:
            result.fail(f"the prompt {prompt!r} was not sent in a user message")
            hints.append("Put the prompt argument in the message: {'role': 'user', 'content': prompt}.")
        if body.get("seed") != seed:
            result.fail(f"seed sent was {body.get('seed')!r}, expected the seed argument {seed}")
            hints.append("In the settings line, set seed=seed.")
        temperature = body.get("temperature")
        if not isinstance(temperature, (int, float)) or temperature < MIN_CREATIVE_TEMPERATURE:
            result.fail(f"temperature sent was {temperature!r}; a creative call needs at least "
                        f"{MIN_CREATIVE_TEMPERATURE}")
            hints.append("In the settings line, set temperature=1.0.")
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
        if not isinstance(limit, int) or not 0 < limit <= MAX_TOKENS_LIMIT:
            result.fail(f"max_tokens sent was {limit!r}; set a limit between 1 and {MAX_TOKENS_LIMIT}")
            hints.append("In the settings line, set max_tokens=40 so a rambling model cannot run up the bill.")
        expected = _scripted_reply(body)
        if got != expected:
            result.fail(f"ask returned {str(got)[:60]!r} instead of the reply text")
            hints.append("Return response.choices[0].message.content, the text of the reply.")
    result.hint = " ".join(dict.fromkeys(hints)) or result.hint
    return finish(result, strict=strict, quiet=quiet)
