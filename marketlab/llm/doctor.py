"""`marketlab doctor`: is a model reachable, and if not, what exactly to do."""

from __future__ import annotations

import time
from typing import Any

import openai

from . import config
from .errors import LLMSetupError
from .selftest import engine_info

OPENAI_URL = "https://api.openai.com/v1"


def endpoint_of(backend: config.Backend) -> str:
    """The address requests of this backend go to (the local server's even before it runs)."""
    if backend.name == "local":
        from .local import expected_url

        return expected_url()
    return backend.base_url or OPENAI_URL


def _fix_for(exc: Exception, backend: config.Backend) -> tuple[str, str]:
    """(problem, fix) in plain words for an exception raised by a test request."""
    if isinstance(exc, LLMSetupError):
        return exc.problem, exc.fix
    if isinstance(exc, openai.AuthenticationError):
        return ("The endpoint rejected the API key (401).",
                "Check OPENAI_API_KEY: copy the key again from your provider's dashboard, with no spaces; "
                "or unset it to use the built-in local model.")
    if isinstance(exc, openai.PermissionDeniedError):
        return ("The key works but is not allowed to use this model (403).",
                "Ask your administrator for access, or set MARKETLAB_MODEL to a model your key may use.")
    if isinstance(exc, openai.NotFoundError):
        return (f"The endpoint does not know the model '{backend.model}' or the URL is wrong (404).",
                "Set MARKETLAB_MODEL to a model the endpoint serves, and check OPENAI_BASE_URL ends in /v1.")
    if isinstance(exc, openai.APITimeoutError):
        return ("The endpoint did not answer in time.", "Check the endpoint is running and not overloaded.")
    if isinstance(exc, openai.APIConnectionError):
        if backend.name == "local":
            from .local import expected_url, last_crash

            crash = last_crash()
            if crash is not None:  # say how it died; restarting would only repeat that
                return crash.problem(), crash.fix()
            return (f"The built-in model server does not answer at {expected_url()}.",
                    "Run `marketlab serve --stop`, then `marketlab serve` (or run the cell again).")
        where = backend.base_url or OPENAI_URL
        return (f"Nothing answers at {where}.",
                "Check OPENAI_BASE_URL (and that the server behind it is running), or unset it.")
    if isinstance(exc, openai.RateLimitError):
        return ("The endpoint says you are over your rate limit or out of credit (429).",
                "Wait a minute and retry; if it persists, check billing and limits with your provider.")
    if isinstance(exc, openai.APIStatusError):
        return (f"The endpoint answered with an error ({exc.status_code}).",
                "Run again; if it persists, check the provider's status page or use the local backend.")
    return (f"Unexpected failure: {type(exc).__name__}: {exc}", "Report this to your instructor with this output.")


def diagnose() -> dict[str, Any]:
    """Checks of the active backend, as a dict (what `marketlab doctor --json` prints)."""
    from . import client, local

    report: dict[str, Any] = {"ok": False, "backend": None, "model": None, "base_url": None,
                              "ledger": str(config.ledger_path()), "server": None, "engine": None,
                              "test_request": None, "problem": None, "fix": None}
    try:
        backend = config.resolve_backend()
        report.update(backend=backend.name, model=backend.model, base_url=endpoint_of(backend))
    except LLMSetupError as exc:
        report.update(problem=exc.problem, fix=exc.fix)
        return report
    if backend.name == "local":
        report["engine"] = engine_info() or None
    started = time.perf_counter()
    try:
        api = client(timeout=60.0, max_retries=0)
        if backend.name == "local":
            report["server"] = local.status()
            report["base_url"] = str(api.base_url).rstrip("/")
        reply = api.chat.completions.create(model=backend.model, max_tokens=5, temperature=0,
                                            messages=[{"role": "user", "content": "Say OK."}])
        report["test_request"] = {"ok": True, "seconds": round(time.perf_counter() - started, 3),
                                  "reply": (reply.choices[0].message.content or "")[:40]}
        report["ok"] = True
    except Exception as exc:  # every failure becomes a diagnosis, never a traceback
        problem, fix = _fix_for(exc, backend)
        report["test_request"] = {"ok": False, "seconds": round(time.perf_counter() - started, 3)}
        report.update(problem=problem, fix=fix)
    return report


def render(report: dict[str, Any]) -> str:
    """The report as lines for people."""
    mark = "OK " if report["ok"] else "FAIL"
    lines = [f"[{mark}] marketlab doctor",
             f"  backend      {report['backend'] or '?'}",
             f"  model        {report['model'] or '?'}",
             f"  endpoint     {report['base_url'] or '?'}"]
    if report.get("engine"):
        lines.append(f"  engine       {report['engine'].get('target', '?')} build of llama-cpp-python "
                     f"{report['engine'].get('version', '?')}")
    if report.get("server"):
        lines.append(f"  local server pid {report['server'].get('pid')} on port {report['server'].get('port')}")
    test = report.get("test_request")
    if test:
        verdict = "succeeded" if test["ok"] else "failed"
        lines.append(f"  test request {verdict} in {test['seconds']:.2f} s")
    lines.append(f"  usage ledger {report['ledger']}")
    if report.get("problem"):
        lines += [f"  problem      {report['problem']}", f"  fix          {report['fix']}"]
    return "\n".join(lines)
