"""WHATWG `srcset` parsing and best-candidate selection.

`parse_srcset(value)` follows the HTML standard's "parse a srcset attribute" algorithm, so a data: URI keeps
the commas inside it (only trailing commas end a URL) and descriptors may hold parenthesised commas.
Invalid candidates (bad or duplicate descriptors) are dropped, as browsers do. It reads runs of URL and
descriptor characters with a regex each; `parse_srcset_reference` is the algorithm one character at a time,
which tests hold it to.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

_WS = " \t\n\r\x0c"
_INT = re.compile(r"^[0-9]+$")
_FLOAT = re.compile(r"^-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


class SrcCandidate(NamedTuple):
    """One candidate (immutable; a tuple because a page builds thousands and a frozen dataclass is slow to
    create)."""

    url: str  # as written (relative URLs are resolved by the caller)
    width: int | None = None  # the "w" descriptor
    density: float | None = None  # the "x" descriptor
    media: str | None = None  # from <source media>
    type: str | None = None  # from <source type>
    attribute: str = "srcset"  # where it came from: srcset, data-srcset, src, data-src, ...

    @property
    def descriptor(self) -> str | None:
        if self.width is not None:
            return f"{self.width}w"
        if self.density is not None:
            return f"{self.density:g}x"
        return None

    def sort_key(self) -> tuple[int, float]:
        """Largest "w" first, then largest "x" (no descriptor counts as 1x)."""
        return (self.width if self.width is not None else -1, self.density if self.density is not None else 1.0)

    def as_variant(self, absolute_url: str) -> dict[str, Any]:
        return {
            "url": absolute_url,
            "descriptor": self.descriptor,
            "width": self.width,
            "density": self.density,
            "media": self.media,
            "type": self.type,
        }


def parse_srcset(value: str, *, media: str | None = None, type: str | None = None, attribute: str = "srcset") -> list[SrcCandidate]:
    """The candidates of a srcset attribute, as `parse_srcset_reference` (the standard's algorithm one
    character at a time) finds them, with each run of URL or descriptor characters taken by one regex match
    instead of a Python step per character (real srcsets hold several URLs of 100-300 characters)."""
    out: list[SrcCandidate] = []
    pos, n = 0, len(value)
    while True:
        pos = _SEPARATORS.match(value, pos).end()  # type: ignore[union-attr]  # matches the empty string
        if pos >= n:
            return out
        start = pos
        pos = _URL_RUN.match(value, pos).end()  # type: ignore[union-attr]
        url = value[start:pos]
        descriptors: list[str] = []
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            pos, descriptors = _descriptors(value, pos)
        cand = _apply_descriptors(url, descriptors, media, type, attribute)
        if cand is not None and url:
            out.append(cand)


_SEPARATORS = re.compile(r"[ \t\n\r\x0c,]*")
_URL_RUN = re.compile(r"[^ \t\n\r\x0c]*")
_SPACES = re.compile(r"[ \t\n\r\x0c]*")
_DESCRIPTOR_RUN = re.compile(r"[^ \t\n\r\x0c,(]*")


def _descriptors(value: str, pos: int) -> tuple[int, list[str]]:
    """`_tokenize_descriptors` by runs: the descriptors after a URL, up to and past the comma that ends them."""
    n = len(value)
    descriptors: list[str] = []
    pos = _SPACES.match(value, pos).end()  # type: ignore[union-attr]
    current = ""
    while True:
        end = _DESCRIPTOR_RUN.match(value, pos).end()  # type: ignore[union-attr]
        current += value[pos:end]
        pos = end
        if pos >= n:
            if current:
                descriptors.append(current)
            return pos, descriptors
        c = value[pos]
        if c == ",":
            if current:
                descriptors.append(current)
            return pos + 1, descriptors
        if c == "(":
            close = value.find(")", pos + 1)
            if close < 0:  # unclosed: everything left is this descriptor
                descriptors.append(current + value[pos:])
                return n, descriptors
            current += value[pos : close + 1]
            pos = close + 1
            continue
        # whitespace: the descriptor ends; more may follow after the spaces
        if current:
            descriptors.append(current)
        current = ""
        pos = _SPACES.match(value, pos).end()  # type: ignore[union-attr]
        if pos >= n:
            return pos, descriptors


def parse_srcset_reference(
    value: str, *, media: str | None = None, type: str | None = None, attribute: str = "srcset"
) -> list[SrcCandidate]:
    """The HTML standard's "parse a srcset attribute", one character at a time: what `parse_srcset` is
    tested against."""
    out: list[SrcCandidate] = []
    pos, n = 0, len(value)
    while True:
        while pos < n and (value[pos] in _WS or value[pos] == ","):
            pos += 1
        if pos >= n:
            return out
        start = pos
        while pos < n and value[pos] not in _WS:
            pos += 1
        url = value[start:pos]
        descriptors: list[str] = []
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            pos, descriptors = _tokenize_descriptors(value, pos)
        cand = _apply_descriptors_reference(url, descriptors, media, type, attribute)
        if cand is not None and url:
            out.append(cand)


def _tokenize_descriptors(value: str, pos: int) -> tuple[int, list[str]]:
    n = len(value)
    while pos < n and value[pos] in _WS:
        pos += 1
    descriptors: list[str] = []
    current = ""
    state = "in"
    while True:
        c = value[pos] if pos < n else ""
        if state == "in":
            if c and c in _WS:
                if current:
                    descriptors.append(current)
                current, state = "", "after"
            elif c == ",":
                pos += 1
                if current:
                    descriptors.append(current)
                return pos, descriptors
            elif c == "(":
                current += c
                state = "parens"
            elif c == "":
                if current:
                    descriptors.append(current)
                return pos, descriptors
            else:
                current += c
        elif state == "parens":
            if c == ")":
                current += c
                state = "in"
            elif c == "":
                descriptors.append(current)
                return pos, descriptors
            else:
                current += c
        else:  # after a descriptor
            if c == "":
                return pos, descriptors
            if c not in _WS:
                state = "in"
                continue  # reconsume
        pos += 1


def _apply_descriptors(
    url: str, descriptors: list[str], media: str | None, type: str | None, attribute: str
) -> SrcCandidate | None:
    if not descriptors:
        return SrcCandidate(url, None, None, media, type, attribute)
    if len(descriptors) == 1 and descriptors[0][-1:] in ("w", "W"):  # the usual "480w", as the loop reads it
        value = descriptors[0][:-1]
        if value.isascii() and value.isdigit():  # what _INT accepts
            width = int(value)
            return SrcCandidate(url, width, None, media, type, attribute) if width else None
        return None
    return _apply_descriptors_reference(url, descriptors, media, type, attribute)


def _apply_descriptors_reference(
    url: str, descriptors: list[str], media: str | None, type: str | None, attribute: str
) -> SrcCandidate | None:
    """The standard's descriptor rules: one "w" or "x" (or "w" with "h"), each a valid number, else nothing."""
    width: int | None = None
    density: float | None = None
    height: int | None = None
    for d in descriptors:
        value, kind = d[:-1], d[-1:].lower()
        if kind == "w" and _INT.match(value) and width is None and density is None:
            width = int(value)
            if width == 0:
                return None
        elif kind == "x" and _FLOAT.match(value) and width is None and density is None and height is None:
            density = float(value)
            if density < 0:
                return None
        elif kind == "h" and _INT.match(value) and height is None and density is None:
            height = int(value)
            if height == 0:
                return None
        else:
            return None
    if height is not None and width is None:
        return None
    return SrcCandidate(url=url, width=width, density=density, media=media, type=type, attribute=attribute)


def best_index(candidates: list[SrcCandidate]) -> int:
    """Where the largest candidate is (by "w", then "x"; the first wins ties)."""
    best, best_key = 0, candidates[0].sort_key()
    for i in range(1, len(candidates)):
        key = candidates[i].sort_key()
        if key > best_key:
            best, best_key = i, key
    return best


def pick_best(candidates: list[SrcCandidate]) -> tuple[SrcCandidate, list[SrcCandidate]]:
    """The largest candidate (by "w", then "x"; the first wins ties) and the others in document order."""
    i = best_index(candidates)
    return candidates[i], candidates[:i] + candidates[i + 1 :]
