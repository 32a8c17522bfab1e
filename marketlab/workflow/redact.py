"""Keep secrets out of everything the runner writes: outputs, cache, checkpoint and summary."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

SECRET_VARIABLES = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "MARKETLAB_API_KEY", "OPENAI_ADMIN_KEY")
MASK = "[redacted]"
# Shapes of keys and tokens as providers issue them, plus credentials written into URLs.
_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9_\-*]{8,}"),
    re.compile(r"\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
    re.compile(r"\b(?:api[_-]?key|access[_-]?token|secret[_-]?key)\s*[=:]\s*[^\s,;'\"]{6,}", re.IGNORECASE),
)


class Redactor:
    """Masks known secret values (the client's key, secret environment variables) and key-shaped text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        values = {os.environ.get(name) for name in SECRET_VARIABLES} | set(secrets)
        # Very short values ("x", "local") would mask ordinary words; real keys are long.
        self._values = sorted((v for v in values if v and len(v) >= 8), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """The text with every secret masked."""
        for value in self._values:
            text = text.replace(value, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(MASK, text)
        return text

    def value(self, value: object) -> object:
        """Redact a string; other values pass through unchanged."""
        return self(value) if isinstance(value, str) else value
