"""A model endpoint's refusal (allowance used, rate limit, model restarting, request too large), shown in a
notebook as one plain line instead of the SDK's hundred-line traceback.

`marketlab.llm.client()` installs this in an IPython kernel. Only refusals are shortened: the error
is still raised (a cell that catches `openai.RateLimitError` works as before) and kept in
`sys.last_value` for a programmer; any other exception shows its usual traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import openai

# Refusals that a learner acts on by waiting, shortening, or telling the instructor.
SHORTENED_STATUS = (413, 429, 503)
_installed: set[int] = set()


def describe(exc: BaseException) -> str | None:
    """The one line a learner sees for a refusal, or None when this is not one."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in SHORTENED_STATUS:
        return None
    body = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("error") if isinstance(body.get("error"), dict) else body
    message = str((inner or {}).get("message") or exc.message or "").strip()
    if not message:
        return None
    return f"❌ The model refused this request ({exc.status_code}): {message}"


def _handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> Any:
    line = describe(value)
    if line is None:
        return shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb
    short = [line, "   (The full error is in sys.last_value, for anyone who needs it.)"]
    # As an error output of two lines: the cell still counts as failed, so "Run All" stops here.
    shell._showtraceback(etype, value, short)
    return None


def install() -> bool:
    """Show refusals in one line in this IPython kernel (once per shell); False outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "set_custom_exc"):
        return False
    if id(shell) not in _installed and not getattr(shell, "custom_exceptions", ()):  # never replace another's
        shell.set_custom_exc((openai.APIStatusError,), _handler)
        _installed.add(id(shell))
    return True
