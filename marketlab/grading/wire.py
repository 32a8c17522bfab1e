"""Values across the sandbox wall, as data: JSON with a few tagged types, never pickle.

A grader outside the sandbox asks for a learner's object or calls a learner's function; the
learner's side answers with plain data. Whatever comes back is the learner's answer, untrusted:
it is decoded into plain values (and DataFrames) and judged outside, never executed.

Tagged values: {"__frame__": split-JSON} a DataFrame; {"__brief__": {...}} a Brief;
{"__client__": {"socket": path}} an OpenAI client to the grader's scripted endpoint (built on the
learner's side); {"__object__": type name, "repr": ...} anything that has no data form.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

from marketlab.errors import MarketlabError

MAX_TEXT = 2_000_000  # largest answer the grader reads, in characters
MIME = "application/vnd.marketlab.answer+json"


@dataclass(frozen=True)
class ClientSpec:
    """Stands for an OpenAI client to the grader's endpoint; it is built on the learner's side."""

    socket: str
    max_retries: int = 0
    timeout: float = 2.0


class RemoteError(MarketlabError):
    """The learner's code raised: `kind` is the exception's type name, `text` its message (theirs)."""

    def __init__(self, kind: str, text: str) -> None:
        self.kind, self.text = str(kind)[:60], str(text)[:300]
        super().__init__(f"{self.kind}: {self.text}" if self.text else self.kind,
                         "Run the notebook from the top and fix the cell that defines it.")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.kind, self.text))


class WireError(MarketlabError):
    """An answer from the learner's side could not be read."""


def encode(value: Any, depth: int = 0) -> Any:
    """A JSON-ready form of value (learner side, and grader side for arguments)."""
    import numpy as np
    import pandas as pd

    if depth > 40:
        return {"__object__": "nested too deep"}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.DataFrame):
        return {"__frame__": value.to_json(orient="split", date_format="iso", default_handler=str)}
    if isinstance(value, pd.Series):
        return encode(value.tolist(), depth + 1)
    if isinstance(value, ClientSpec):
        return {"__client__": {"socket": value.socket, "max_retries": value.max_retries, "timeout": value.timeout}}
    if type(value).__name__ == "Brief" and hasattr(value, "model_dump"):
        return {"__brief__": value.model_dump(mode="json")}
    if isinstance(value, dict):
        return {str(k): encode(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [encode(v, depth + 1) for v in value]
    if hasattr(value, "model_dump") and not isinstance(value, type):
        try:
            return encode(value.model_dump(mode="json"), depth + 1)
        except Exception:  # noqa: BLE001 - a learner's model may fail to dump; then it has no data form
            pass
    return {"__object__": type(value).__name__, "repr": repr(value)[:200]}


def decode(value: Any, *, learner_side: bool = False) -> Any:
    """The value back from its JSON form; clients and briefs become real objects only on the learner's side."""
    if isinstance(value, list):
        return [decode(v, learner_side=learner_side) for v in value]
    if not isinstance(value, dict):
        return value
    if "__frame__" in value and len(value) == 1:
        import pandas as pd

        return pd.read_json(io.StringIO(str(value["__frame__"])), orient="split")
    if learner_side and "__client__" in value and len(value) == 1:
        return _client(value["__client__"])
    if learner_side and "__brief__" in value and len(value) == 1:
        from marketlab.brief import Brief

        return Brief.model_validate(value["__brief__"])
    return {k: decode(v, learner_side=learner_side) for k, v in value.items()}


def dumps(value: Any) -> str:
    """JSON text of an encoded value (NaN allowed: product rows have empty fields)."""
    return json.dumps(encode(value), allow_nan=True, ensure_ascii=False)


def loads(text: str) -> Any:
    """Decode an answer from the learner's side, refusing oversized or broken text."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise WireError("the answer was too large to read")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"the answer was not readable ({type(exc).__name__})") from exc


def _client(spec: dict[str, Any]) -> Any:
    import httpx2
    import openai

    transport = httpx2.HTTPTransport(uds=str(spec["socket"]))
    return openai.OpenAI(api_key="grading", base_url="http://grader/v1", http_client=httpx2.Client(transport=transport),
                         max_retries=int(spec.get("max_retries", 0)), timeout=float(spec.get("timeout", 2.0)))


# --- the learner's side ------------------------------------------------------------------------

def answer_request(namespace: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Carry out one request against a namespace: look a name up, describe it, or call it."""
    from marketlab.checks import extract

    op, name = request.get("op"), str(request.get("name", ""))
    if op in ("sections", "brief_file"):
        return _brief_request(namespace, request)
    if name not in namespace:
        return {"ok": False, "missing": True}
    target = namespace[name]
    try:
        if op == "describe":
            result = extract.describe(target, str(request.get("kind", "")))
        elif op == "call":
            if not callable(target):
                return {"ok": False, "error": {"kind": "NotCallable", "text": f"{name} is a {type(target).__name__}"}}
            args = decode(request.get("args", []), learner_side=True)
            kwargs = decode(request.get("kwargs", {}), learner_side=True)
            result = target(*args, **kwargs)
        else:
            return {"ok": False, "error": {"kind": "BadRequest", "text": str(op)}}
        return {"ok": True, "value": encode(result)}
    except BaseException as exc:  # noqa: BLE001 - the learner's code may raise anything, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {"ok": False, "error": {"kind": type(exc).__name__, "text": str(exc)[:300]}}


def _brief_request(namespace: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Build a Brief where the learner's text lives (YAML is parsed here, never by the grader)."""
    from pathlib import Path

    from marketlab.brief import Brief

    try:
        if request.get("op") == "sections":
            names = [str(n) for n in request.get("names", [])]
            absent = [n for n in names if n not in namespace]
            if absent:
                return {"ok": False, "error": {"kind": "NameError", "text": f"{absent[0]} is not defined"}}
            brief = Brief.from_sections(**{n: namespace[n] for n in names})
        else:
            name = Path(str(request.get("name", ""))).name
            brief = Brief.from_yaml(Path(name).read_text(encoding="utf-8"), origin=name)
        return {"ok": True, "value": {"__brief_data__": brief.model_dump(mode="json")}}
    except BaseException as exc:  # noqa: BLE001 - a broken brief is the learner's answer, reported as such
        if isinstance(exc, KeyboardInterrupt):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return {"ok": False, "error": {"kind": type(exc).__name__, "text": first[:300]}}


def kernel_answer(nonce: str, request_text: str) -> None:
    """Called in the grading kernel: answer one request as a display message of our own type."""
    from IPython import get_ipython
    from IPython.display import display

    shell = get_ipython()
    reply = answer_request(shell.user_ns if shell else {}, json.loads(request_text))
    display({MIME: {"nonce": nonce, "reply": json.dumps(reply, allow_nan=True, default=str)}}, raw=True)


def finite(number: Any) -> bool:
    """True for a real, finite number (not bool, not NaN)."""
    return isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number)
