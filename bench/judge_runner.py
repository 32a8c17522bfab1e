"""The rubric judge through the batch runner against a scripted endpoint that answers after 200 ms.

Figures, measured in one run on 100 texts of rated_outputs.csv:
- the judge (marketlab.evaluate.judge, so through run_batch) with 8 workers beside a plain
  sequential loop that sends the very same requests one after another (target: at least 6x faster);
- the judge's efficiency against the ideal time, texts x endpoint latency / workers;
- an unchanged re-run served from the response cache (target: zero model calls).
"""

from __future__ import annotations

import json
import os
import tempfile
import time

TEXTS = 100
WORKERS = 8
LATENCY_S = 0.2


def _verdict(body: dict) -> str:
    return json.dumps({"findings": "none", "score": 4, "passed": True, "reason": "Plain and calm."})


def main() -> None:
    """Judge the texts through the runner and in a sequential loop; print both timings and the ratio."""
    os.environ["MARKETLAB_HOME"] = tempfile.mkdtemp(prefix="marketlab-bench-")
    from openai.lib._pydantic import to_strict_json_schema

    from marketlab import data
    from marketlab.evaluate.rubric import JUDGE_DEFAULTS, TONE_RUBRIC, JudgeVerdict, judge
    from marketlab.llm.testing import ScriptedEndpoint
    from marketlab.workflow import schema_instruction

    texts = data.load("rated_outputs").head(TEXTS)
    endpoint = ScriptedEndpoint(responder=_verdict, delay_s=LATENCY_S)
    client = endpoint.client(max_retries=0)

    # 1. a plain sequential loop of the same requests the runner sends
    schema = to_strict_json_schema(JudgeVerdict)
    response_format = {"type": "json_schema", "json_schema": {"name": "JudgeVerdict", "schema": schema,
                                                              "strict": True}}
    started = time.perf_counter()
    for text in texts["text"]:
        messages = TONE_RUBRIC.prompt(text)
        messages[-1]["content"] += "\n\n" + schema_instruction(schema)
        reply = client.chat.completions.create(model="bench", messages=messages, response_format=response_format,
                                               max_tokens=JUDGE_DEFAULTS["max_tokens"], temperature=0)
        JudgeVerdict.model_validate_json(reply.choices[0].message.content)
    loop_s = time.perf_counter() - started
    loop_calls = endpoint.calls

    # 2. the judge through the runner, then the same run again from the cache
    cache = os.path.join(os.environ["MARKETLAB_HOME"], "bench-cache")
    options = dict(workers=WORKERS, progress=False, cache=cache, checkpoint=False)
    started = time.perf_counter()
    verdicts = judge(texts, TONE_RUBRIC, client, "bench", **options)
    runner_s = time.perf_counter() - started
    runner_calls = endpoint.calls - loop_calls
    started = time.perf_counter()
    again = judge(texts, TONE_RUBRIC, client, "bench", **options)
    cached_s = time.perf_counter() - started
    cached_calls = endpoint.calls - loop_calls - runner_calls

    ideal_s = TEXTS * LATENCY_S / WORKERS
    answered = int(verdicts["judge_status"].isin(["ok", "repaired"]).sum())
    print(f"endpoint: scripted OpenAI endpoint behind the real SDK, answers after {LATENCY_S * 1000:.0f} ms; "
          f"{TEXTS} texts, rubric '{TONE_RUBRIC.name}' v{TONE_RUBRIC.version}")
    print(f"sequential loop              : {loop_s:6.2f} s, {loop_calls} calls")
    print(f"judge via runner, {WORKERS} workers  : {runner_s:6.2f} s, {runner_calls} calls, {answered} verdicts")
    print(f"speed-up runner / loop       : {loop_s / runner_s:6.2f}x  (target >= 6x)")
    print(f"efficiency ideal / runner    : {ideal_s / runner_s:6.2f}   (ideal {ideal_s:.1f} s = {TEXTS} texts x "
          f"{LATENCY_S * 1000:.0f} ms / {WORKERS} workers)")
    print(f"cached re-run                : {cached_s:6.2f} s, {cached_calls} model calls, "
          f"{int((again['judge_calls'] == 0).sum())} verdicts from the cache  (target: 0 calls)")


if __name__ == "__main__":
    main()
