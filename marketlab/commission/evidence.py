"""Is an evidence quote really in the proposal? Word for word, nearly word for word, or not at all.

Models invent quotes, the small built-in one often. A quote counts as evidence only when it can be
found in the proposal: exactly (ignoring case, punctuation and line breaks), or nearly so (a word
or two changed). A quote with "..." is checked piece by piece.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

EvidenceStatus = Literal["exact", "close", "not found", "too short", "none given"]
VERIFIED: tuple[str, ...] = ("exact", "close")
MIN_WORDS = 3  # "daily" or "yes" is found in almost any text: too short to be evidence
CLOSE_RATIO = 0.8  # share of matching words for "nearly word for word"

_WORD = re.compile(r"[a-z0-9%$€£]+(?:['’][a-z]+)?")
_ELLIPSIS = re.compile(r"\.\.\.+|…|\[\.\.\.\]")


@dataclass(frozen=True)
class EvidenceCheck:
    """The outcome for one quote: its status, and the closest passage of the proposal when there is one."""

    status: EvidenceStatus
    similarity: float = 0.0
    closest: str = ""

    @property
    def verified(self) -> bool:
        """True when the quote is in the proposal, exactly or nearly."""
        return self.status in VERIFIED


def words(text: str) -> list[str]:
    """The words of a text, lower-cased, without punctuation or Markdown marks."""
    return _WORD.findall(str(text or "").lower().replace("’", "'"))


def _best_window(quote: list[str], source: list[str]) -> tuple[float, int]:
    """The similarity of the closest run of words in source, and where it starts."""
    size = len(quote)
    best, at = 0.0, 0
    matcher = SequenceMatcher(autojunk=False)
    matcher.set_seq2(quote)
    for start in range(0, max(1, len(source) - size + 1)):
        matcher.set_seq1(source[start:start + size])
        ratio = matcher.ratio()
        if ratio > best:
            best, at = ratio, start
            if ratio == 1.0:
                break
    return best, at


def _contains(quote: list[str], source: list[str]) -> bool:
    joined = " " + " ".join(source) + " "
    return " " + " ".join(quote) + " " in joined


def verify_quote(quote: str | None, text: str) -> EvidenceCheck:
    """Check one evidence quote against the proposal text."""
    if quote is None or not str(quote).strip():
        return EvidenceCheck("none given")
    source = words(text)
    pieces = [words(piece) for piece in _ELLIPSIS.split(str(quote))]
    pieces = [piece for piece in pieces if piece]
    if sum(len(piece) for piece in pieces) < MIN_WORDS:
        return EvidenceCheck("too short")
    return min((_check_piece(piece, source) for piece in pieces), key=lambda found: found.similarity)


def _check_piece(piece: list[str], source: list[str]) -> EvidenceCheck:
    if _contains(piece, source):
        return EvidenceCheck("exact", 1.0, " ".join(piece))
    ratio, at = _best_window(piece, source)
    closest = " ".join(source[at:at + len(piece)])
    return EvidenceCheck("close" if ratio >= CLOSE_RATIO else "not found", round(ratio, 3), closest)
