"""Finding claim words in copy quickly, and telling when the copy denies them.

A Finder is a lower-case regex searched in lower-cased text that matches only at the start of a
word, with the words one of which every match contains, tested as plain substrings first: most
texts mention few of the many claim words, so most regexes never run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .units import singular


def _top_level(regex: str) -> list[str]:
    """The alternatives of a regex at the top level ('a|b(c|d)' -> ['a', 'b(c|d)'])."""
    parts, depth, current, escaped, in_class = [], 0, "", False, False
    for char in regex:
        if escaped:
            escaped, current = False, current + char
            continue
        if char == "\\":
            escaped, current = True, current + char
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def leading_words(regex: str) -> tuple[str, ...]:
    """Lower-case text that every match of the regex contains (one per alternative), or () when unknown."""
    out = []
    for branch in _top_level(regex):
        literal = re.match(r"[A-Za-z]+", branch)
        word = literal.group() if literal else ""
        if word and branch[len(word):len(word) + 1] in ("?", "*", "{"):
            word = word[:-1]  # "crampons?": the s is optional
        if len(word) < 3:
            return ()
        out.append(word.lower())
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Finder:
    """A lower-case regex searched in lower-cased text, matching only at the start of a word, and the
    words one of which every match contains: a cheap substring test before the regex runs."""

    pattern: re.Pattern[str]
    keys: tuple[str, ...] = ()  # () = always search

    def spans(self, lowered: str) -> Iterator[tuple[int, int]]:
        """(start, end) of every match in lower-cased text."""
        if self.keys and not any(key in lowered for key in self.keys):
            return iter(())
        return self.all_spans(lowered)

    def all_spans(self, lowered: str) -> Iterator[tuple[int, int]]:
        """Every match that starts a word (not after a letter, digit or hyphen), without the key test."""
        # Searching lower-cased text with a case-sensitive regex that starts with a plain word, and
        # testing the word start here rather than with a look-behind, is many times faster.
        return (m.span() for m in self.pattern.finditer(lowered)
                if m.start() == 0 or not _word_char(lowered[m.start() - 1]))


def _word_char(char: str) -> bool:
    return char.isalnum() or char in "_-"


def finder(regex: str, keys: Iterable[str] | None = None) -> Finder:
    """A Finder for a lower-case regex (keys: text every match contains; default: read from the regex)."""
    return Finder(re.compile(regex), tuple(keys) if keys is not None else leading_words(regex))


_NEGATION_BEFORE = re.compile(r"(?:\b(?:not|no|non|never|without|nor|neither|lacks?|isn't|aren't|doesn't|don't|"
                              r"won't|cannot|can't)\b|n't\b)(?!\s+only\b)[^.!?;:,\n]{0,40}$", re.I)
# Denials right after the words: "rain cover not included", "a rain cover, sold separately", "is not",
# "Eco-certified: no". A later clause ("waterproof, rain cover not included") denies something else.
_NEGATION_AFTER = re.compile(r"^\s*,?\s*(?:(?:is|are)\s+)?(?:not included|sold separately|not supplied|not provided|"
                             r"available separately|optional)\b|^\s+(?:(?:is|are)\s+not(?!\s+only\b)|isn't|aren't)\b"
                             r"|^[\w-]*\s*:\s*(?:no|none|not)\b", re.I)
_NEGATION_INSIDE = re.compile(r"\b(?:not|no|never|isn't|aren't)\b|n't\b", re.I)  # "seams are not taped"


def negated(text: str, start: int, end: int) -> bool:
    """True when the words at text[start:end] are denied in their sentence ("not waterproof", "X not included")."""
    return bool(_NEGATION_BEFORE.search(text[max(0, start - 60):start])
                or _NEGATION_AFTER.search(text[end:end + 40]) or _NEGATION_INSIDE.search(text, start, end))


def stem(word: str) -> str:
    """A word without its ending ('loading' -> 'load', 'tents' -> 'tent'); short words are kept whole."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def word_forms(token: str) -> tuple[str, str]:
    """(regex, literal start) for a word and its endings: 'batteries' -> battery, batteries; 'loading' -> loads."""
    base = stem(singular(token))
    if base.endswith("y") and len(base) > 3:
        return re.escape(base[:-1]) + r"(?:y|ies|ied)", base[:-1]
    return re.escape(base) + r"\w*", base


def phrase_finder(phrase: str) -> Finder:
    """Find a phrase with plurals and endings ("snow loading" also finds "snow loads")."""
    forms = [word_forms(t) for t in re.split(r"[\s-]+", phrase.lower().strip()) if t]
    return finder(r"[\s-]+".join(regex for regex, _ in forms), (forms[0][1],))


def trigger_finder(words: Iterable[str]) -> Finder:
    """Claim words as whole words with their endings: "waterproof" also finds "waterproofed", "waterproofing"."""
    parts = sorted({str(w).strip().lower() for w in words if str(w).strip()}, key=len, reverse=True)
    body = "|".join(r"[\s-]+".join(re.escape(t) for t in re.split(r"[\s-]+", p)) for p in parts)
    keys = [re.split(r"[\s-]+", p)[0] for p in parts]
    return finder(rf"(?:{body})(?:s|ed|ing)?(?![\w])", keys)


def sentence_at(text: str, at: int) -> str:
    """The sentence (or line) of text that contains position at."""
    start = max(text.rfind(".", 0, at), text.rfind("\n", 0, at), text.rfind("!", 0, at), text.rfind("?", 0, at))
    ends = [i for i in (text.find(".", at), text.find("\n", at), text.find("!", at), text.find("?", at)) if i >= 0]
    return text[start + 1:min(ends, default=len(text))]


def clause_at(text: str, at: int) -> str:
    """The part of the sentence between commas (or semicolons) that contains position at."""
    start = max(text.rfind(mark, 0, at) for mark in ".,;:\n!?")
    ends = [i for i in (text.find(mark, at) for mark in ".,;:\n!?") if i >= 0]
    return text[start + 1:min(ends, default=len(text))]
