"""Reading copy the way the brand voice counts it: words, characters, sentences and bullet lines."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A word starts with a letter or digit and may carry apostrophes, dots, slashes, plus signs and
# hyphens inside ("it's", "1.32", "g/m2", "20+", "two-way"); a lone dash or bullet mark is not a word.
WORD = re.compile(r"[A-Za-z0-9\u00C0-\u024F][A-Za-z0-9\u00C0-\u024F'’./+-]*")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+")
_BULLET = re.compile(r"^\s*(?:[-*•·–]|\d+[.)])\s+")


def words(text: str) -> list[str]:
    """The words of a text, in order."""
    return WORD.findall(text)


def word_count(text: str) -> int:
    """How many words a text has (the count the brand voice's word limits use)."""
    return sum(1 for _ in WORD.finditer(text))


def char_count(text: str) -> int:
    """How many characters a text has, spaces and line breaks included (the count for character limits)."""
    return len(text)


def lines(text: str) -> list[str]:
    """The non-blank lines of a text, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def bullets(text: str) -> list[str]:
    """The bullet lines of a text ("- ...", "* ...", "• ...", "1. ..."), without their bullet marks."""
    return [_BULLET.sub("", line) for line in lines(text) if _BULLET.match(line)]


def sentences(text: str) -> list[str]:
    """The sentences of a text: each line split after '.', '!' or '?'; a bullet line counts as one sentence."""
    out: list[str] = []
    for line in lines(text):
        if _BULLET.match(line):
            out.append(_BULLET.sub("", line))
            continue
        out += [part.strip() for part in _SENTENCE_END.split(line) if part.strip()]
    return out


_NOT_WORD = re.compile(r"[^\w\s]+")


def normalise(text: str) -> str:
    """Lower case, words only, single spaces: for comparing two sentences regardless of punctuation."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


def phrase_pattern(phrases: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern that finds any of these words or phrases as whole words (None: no phrases).

    "cheap" matches "Cheap" and "cheap," but not "cheaper"; longer phrases are tried first.
    """
    unique = sorted({str(p).strip() for p in phrases if str(p).strip()}, key=len, reverse=True)
    if not unique:
        return None
    body = "|".join(r"\s+".join(re.escape(part) for part in phrase.split()) for phrase in unique)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


def squash(text: str) -> str:
    """Lower case with spaces and thousands separators removed, so '750 ml' matches '750ml' and '1,500' '1500'."""
    return re.sub(r"[\s,]+", "", str(text).lower())
