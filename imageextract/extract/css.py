"""Image URLs in CSS: `url(...)` (and `image-set(...)` strings) in background declarations, plus @import.

Parsing is tinycss2's (a CSS Syntax Level 3 tokenizer), so comments, escapes, quoted and unquoted url()
forms, nested @media/@supports blocks and CSS nesting are all handled the way a browser tokenizes them.
URLs are returned as written; the caller resolves them against the stylesheet's own URL.

Tokenizing a whole stylesheet in Python is slow (real pages carry 50-300 KB of inline CSS), so
`urls_in_stylesheet` runs the tokenizer only where an image can be: it masks comments, strings and escapes
(`masked_text`: str.find from one to the next, lengths kept; the `_MASK` regex is its reference), finds
`url(` / `image-set(` / `@import` in what is left, and reads the declaration (or @import rule) around each
one, cut at the `{` `;` `}` the mask leaves visible (unquoted url() bodies stepped over), directly when it
is plain and through tinycss2 when not. When an escape could spell a function or at-rule name (`\75 rl(`), the fast path cannot
decide and the whole stylesheet goes through the tokenizer (`urls_in_stylesheet_tokenized`, the reference).
The fast path finds everything the reference finds; it may find more: a background image inside
@keyframes or @font-face, which the reference skips.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import tinycss2
from tinycss2.bytes import decode_stylesheet_bytes

IMAGE_PROPERTIES = frozenset({"background", "background-image"})
_IMAGE_SET = frozenset({"image-set", "-webkit-image-set"})
_NESTING_AT_RULES = frozenset({"media", "supports", "document", "-moz-document", "layer", "container", "scope", "starting-style"})


@dataclass
class CssUrls:
    images: list[str] = field(default_factory=list)  # in source order, duplicates removed
    imports: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, repr=False, compare=False)

    def add_image(self, url: str) -> None:
        url = url.strip()
        if url and url not in self._seen:
            self._seen.add(url)
            self.images.append(url)


def urls_in_style_attribute_tokenized(style: str) -> list[str]:
    """The reference for `urls_in_style_attribute`: the whole attribute through the tokenizer."""
    out = CssUrls()
    _declarations(tinycss2.parse_blocks_contents(style, skip_comments=True, skip_whitespace=True), out)
    return out.images


def urls_in_style_attribute(style: str) -> list[str]:
    """Background image URLs in an inline `style="..."` attribute."""
    masked = _MASK.sub(_mask, style)
    out = CssUrls()
    if _escaped_name(style):
        _declarations(tinycss2.parse_blocks_contents(style, skip_comments=True, skip_whitespace=True), out)
        return out.images
    lowered = style.lower()
    if len(lowered) != len(style):
        return urls_in_style_attribute_tokenized(style)
    done_until = -1
    for at in _hits(lowered):
        if at < done_until or masked[at] != style[at] or masked[at] == "@":
            continue
        start = max(masked.rfind("{", 0, at), masked.rfind("}", 0, at), masked.rfind(";", 0, at)) + 1
        done_until = _end(masked, at)
        _declaration(style, masked, start, done_until, out)
    return out.images


# Comments, strings (also unterminated ones, which end at a newline) and escapes. (Unquoted url() bodies,
# which may hold ; { and }, are stepped over by `_end`.)
_MASK = re.compile(
    r"""/\*.*?(?:\*/|\Z)"""
    r"""|"[^"\\\n]*(?:\\.[^"\\\n]*)*(?:"|(?=\n)|\Z)"""
    r"""|'[^'\\\n]*(?:\\.[^'\\\n]*)*(?:'|(?=\n)|\Z)"""
    r"""|\\[0-9a-fA-F]{1,6}(?:\r\n|[ \t\n\r\f])?|\\.|\\\Z""",
    re.S,
)
_HITS = ("url(", "image-set(", "src(", "@import")
# An escape inside a function or at-rule name ("\\75 rl(", "@\\69mport"): only the tokenizer reads those. Both
# patterns start with a literal character, so the regex engine skips ahead at memchr speed.
_ESC = r"\\(?:[0-9a-fA-F]{1,6}(?:\r\n|[ \t\n\r\f])?|[^\n\r\f0-9a-fA-F])"
_ESCAPED_FUNCTION = re.compile(_ESC + r"(?:[\w-]|" + _ESC + r")*\(")
_ESCAPED_AT_RULE = re.compile(r"@[\w-]*\\")


def _escaped_name(css: str) -> bool:
    return "\\" in css and bool(_ESCAPED_FUNCTION.search(css) or _ESCAPED_AT_RULE.search(css))


def _hits(lowered: str) -> list[int]:
    """Positions of url( / image-set( / src( / @import in the lower-cased text, in order (str.find is far
    faster than a case-insensitive regex alternation, which tests every position). @import is found by its
    "@" (a one-character find is memchr, several times faster than a multi-character one, and a stylesheet
    has a few "@" per kilobyte at most)."""
    found: list[int] = []
    for needle in _HITS:
        if needle == "@import":
            at = lowered.find("@")
            while at >= 0:
                if lowered.startswith("@import", at) and not lowered[at + 7 : at + 8].isalnum():
                    found.append(at)
                at = lowered.find("@", at + 1)
            continue
        at = lowered.find(needle)
        while at >= 0:
            found.append(at)
            at = lowered.find(needle, at + 1)
    found.sort()
    return found


_STRING = {
    '"': re.compile(r"""[^"\\\n]*(?:\\.[^"\\\n]*)*(?:"|(?=\n)|\Z)""", re.S),
    "'": re.compile(r"""[^'\\\n]*(?:\\.[^'\\\n]*)*(?:'|(?=\n)|\Z)""", re.S),
}
_ESCAPE = re.compile(r"""\\(?:[0-9a-fA-F]{1,6}(?:\r\n|[ \t\n\r\f])?|.|\Z)""", re.S)


def masked_text(css: str) -> str:
    """`_MASK.sub(_mask, css)`, found by jumping from one comment, quote or backslash to the next with
    str.find (memchr speed) instead of the regex engine testing every character: the same text, in a third
    of the time on real stylesheets (a few thousand such constructs in 100 KB)."""
    n = len(css)
    far = n + 1

    def find(needle: str, start: int) -> int:
        at = css.find(needle, start)
        return far if at < 0 else at

    comment, double, single, backslash = find("/*", 0), find('"', 0), find("'", 0), find("\\", 0)
    pieces: list[str] = []
    last = 0
    while True:
        at = min(comment, double, single, backslash)
        if at == far:
            break
        if at == comment:
            close = css.find("*/", at + 2)
            end = n if close < 0 else close + 2
            replacement = " " * (end - at)
        elif at == backslash:
            end = _ESCAPE.match(css, at).end()  # type: ignore[union-attr]  # always matches at a backslash
            replacement = "\x01" * (end - at)
        else:
            quote = css[at]
            string = _STRING[quote].match(css, at + 1)
            if string is None:  # `"abc\` at the very end: no string token; the regex scan moves on too
                if quote == '"':
                    double = find('"', at + 1)
                else:
                    single = find("'", at + 1)
                continue
            end = string.end()
            closed = end - at > 1 and css[end - 1] == quote
            replacement = quote + "\x00" * (end - at - (2 if closed else 1)) + (quote if closed else "")
        pieces.append(css[last:at])
        pieces.append(replacement)
        last = end
        if comment < end:
            comment = find("/*", end)
        if double < end:
            double = find('"', end)
        if single < end:
            single = find("'", end)
        if backslash < end:
            backslash = find("\\", end)
    if not pieces:
        return css
    pieces.append(css[last:])
    return "".join(pieces)


def _mask(match: re.Match[str]) -> str:
    text = match.group()
    first = text[0]
    if first == "/" and text.startswith("/*"):
        return " " * len(text)
    if first in "\"'":
        closed = len(text) > 1 and text[-1] == first
        return first + "\x00" * (len(text) - (2 if closed else 1)) + (first if closed else "")
    return "\x01" * len(text)  # an escape


def urls_in_stylesheet(css: str | bytes, *, charset: str | None = None) -> CssUrls:
    """Background image URLs and @import targets in a stylesheet (text, or bytes with an optional charset)."""
    if isinstance(css, bytes):
        css, _encoding = decode_stylesheet_bytes(css, protocol_encoding=charset)
    assert isinstance(css, str)
    lowered = css.lower()
    if len(lowered) != len(css):  # a character whose lower case is longer ("İ"): positions would not line up
        return urls_in_stylesheet_tokenized(css)
    hits = _hits(lowered)
    if _escaped_name(css):
        return urls_in_stylesheet_tokenized(css)
    if not hits:
        return CssUrls()  # no url(, image-set(, src(, @import, nor an escape that could spell one: nothing
    masked = masked_text(css)
    out = CssUrls()
    done_until = -1
    for at in hits:
        if at < done_until or masked[at] != css[at]:  # already read, or inside a comment, string or escape
            continue  # a second url() in a declaration already read
        if masked[at] == "@":
            if not _top_level(masked, at):
                continue  # @import only counts at the top level
            end = _end(masked, at)
            _rules(tinycss2.parse_stylesheet(css[at:end] + ";", skip_comments=True, skip_whitespace=True), out,
                   top_level=True)
        else:
            start = max(masked.rfind("{", 0, at), masked.rfind("}", 0, at), masked.rfind(";", 0, at)) + 1
            end = _end(masked, at)
            _declaration(css, masked, start, end, out, lowered)
        done_until = end
    return out


_PROPERTY = re.compile(r"[ \t\n\r\f]*(-?[A-Za-z_][A-Za-z0-9_-]*)[ \t\n\r\f]*:")
# Case-insensitive by explicit classes, not (?i): with (?i) the regex engine folds case at every position it
# tries (~25 ns a character over data: URIs), without it it skips ahead by the first character. The classes
# are what (?i) matches: for these letters only "s" has another fold, the long s.
_URL_OPEN = re.compile(r"[uU][rR][lL]\([ \t\n\r\f]*")
_NEEDS_TOKENIZER = re.compile("[sS\u017f][rR][cC]\\(|\x01")
_VALUE_TOKEN = re.compile(r"([uU][rR][lL]\()[ \t\n\r\f]*|([\w-]*)\(|(\))|([\"'])")
_CSS_SPACE = " \t\n\r\f"
_BAD_STRING = re.compile(r"[\\\n\r\f]")
_BAD_URL = re.compile(r"[\"'(\\ \t\n\r\f]")


def _declaration(css: str, masked: str, start: int, end: int, out: CssUrls, lowered: str | None = None) -> None:
    """The image URLs of the declaration css[start:end]: read directly when it is plain (a property name and
    url() values without escapes), else through the tokenizer."""
    name = _PROPERTY.match(masked, start, end)
    if name is not None:
        if name.group(1).lower() not in IMAGE_PROPERTIES:
            return  # font src, list-style-image, custom properties...: not a background
        value_start = name.end()
        if not _NEEDS_TOKENIZER.search(masked, value_start, end):
            urls = _plain_urls(css, masked, value_start, end, lowered)
            if urls is not None:
                for url in urls:
                    out.add_image(url)
                return
    _declarations(tinycss2.parse_blocks_contents(css[start:end], skip_comments=True, skip_whitespace=True), out)


def _plain_urls(css: str, masked: str, start: int, end: int, lowered: str | None = None) -> list[str] | None:
    """url() values (and image-set() strings) in masked[start:end], read without the tokenizer; None when
    something needs it (an escape, an unterminated string, a bad url token). `lowered`: css.lower(), when the
    caller has it (an "image-set(" it shows inside a string or comment only takes the longer, exact path)."""
    urls: list[str] = []
    if "image-set(" not in (masked[start:end].lower() if lowered is None else lowered[start:end]):
        for opener in _URL_OPEN.finditer(masked, start, end):
            url, _ = _url_at(css, masked, opener.end(), end)
            if url is None:
                return None
            urls.append(url)
        return urls
    stack: list[bool] = []  # per open function or block: are strings directly inside it images (image-set)?
    pos = start
    while True:
        m = _VALUE_TOKEN.search(masked, pos, end)
        if m is None:
            return urls
        if m.group(1):
            url, pos = _url_at(css, masked, m.end(), end)
            if url is None:
                return None
            urls.append(url)
        elif m.group(3):
            if stack:
                stack.pop()
            pos = m.end()
        elif m.group(4):
            close = masked.find(m.group(4), m.end(), end)
            if close < 0:
                return None
            if stack and stack[-1]:
                if _BAD_STRING.search(css, m.end(), close):
                    return None
                urls.append(css[m.end() : close])
            pos = close + 1
        else:
            name = m.group(2).lower()
            stack.append(name in _IMAGE_SET if name else bool(stack and stack[-1]))
            pos = m.end()


def _url_at(css: str, masked: str, at: int, end: int) -> tuple[str | None, int]:
    """The URL of the url( opened just before `at`, and the position after its closing parenthesis."""
    quote = masked[at] if at < end else ""
    if quote in ("\"", "'"):
        close = masked.find(quote, at + 1, end)
        if close < 0:
            return None, end
        value = css[at + 1 : close]
        if "\\" in value or "\n" in value or "\r" in value or "\f" in value:
            return None, end  # an escape or a bad (unterminated) string: the tokenizer decides
        after = masked.find(")", close, end)
        return value, (after + 1 if after >= 0 else end)
    close = masked.find(")", at, end)
    if close < 0:
        return None, end
    body = css[at:close].strip(_CSS_SPACE)
    if _BAD_URL.search(body):
        return None, end  # a bad url token: let the tokenizer decide
    return body, close + 1


def _top_level(masked: str, at: int) -> bool:
    """Whether `at` is outside every {} block (a stray } at the top level closes nothing)."""
    if masked.count("{", 0, at) == 0:
        return True
    depth = 0
    for brace in _BRACES.finditer(masked, 0, at):
        depth = depth + 1 if brace.group() == "{" else max(0, depth - 1)
    return depth == 0


_BRACES = re.compile(r"[{}]")


def _end(masked: str, at: int) -> int:
    """Where the declaration (or @import rule) holding `at` ends: the next ; or } outside an unquoted url()."""
    pos = at
    while True:
        semi, brace = masked.find(";", pos), masked.find("}", pos)
        if semi < 0:
            end = brace if brace >= 0 else len(masked)
        else:
            end = semi if brace < 0 or semi < brace else brace
        url = _URL_BODY.search(masked, pos, end)
        if url is None:
            return end
        close = masked.find(")", url.end())
        if close < 0:
            return len(masked)
        pos = close + 1


_URL_BODY = re.compile(r"[uU][rR][lL]\([ \t\n\r\f]*(?=[^\"' \t\n\r\f)])")


def urls_in_stylesheet_tokenized(css: str | bytes, *, charset: str | None = None) -> CssUrls:
    """The reference: the whole stylesheet through tinycss2's tokenizer."""
    if isinstance(css, bytes):
        rules, _encoding = tinycss2.parse_stylesheet_bytes(
            css, protocol_encoding=charset, skip_comments=True, skip_whitespace=True
        )
    else:
        rules = tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True)
    out = CssUrls()
    _rules(rules, out, top_level=True)
    return out


def _rules(rules: Iterable[Any], out: CssUrls, *, top_level: bool = False) -> None:
    for rule in rules:
        if rule.type == "qualified-rule":
            _declarations(tinycss2.parse_blocks_contents(rule.content, skip_comments=True, skip_whitespace=True), out)
        elif rule.type == "at-rule":
            keyword = rule.lower_at_keyword
            if keyword == "import" and top_level:
                target = _first_url(rule.prelude)
                if target and target not in out.imports:
                    out.imports.append(target)
            elif keyword in _NESTING_AT_RULES and rule.content is not None:
                _rules(tinycss2.parse_blocks_contents(rule.content, skip_comments=True, skip_whitespace=True), out)


def _declarations(items: Iterable[Any], out: CssUrls) -> None:
    for item in items:
        if item.type == "declaration":
            if item.lower_name in IMAGE_PROPERTIES:
                _urls_in_tokens(item.value, out, in_image_set=False)
        elif item.type in ("qualified-rule", "at-rule"):  # CSS nesting inside a rule
            _rules([item], out)


def _urls_in_tokens(tokens: Iterable[Any], out: CssUrls, *, in_image_set: bool) -> None:
    for token in tokens:
        if token.type == "url":
            out.add_image(token.value)
        elif token.type == "function":
            name = token.lower_name
            if name == "url" or name == "src":
                target = next((t.value for t in token.arguments if t.type == "string"), None)
                if target is not None:
                    out.add_image(target)
            else:
                _urls_in_tokens(token.arguments, out, in_image_set=name in _IMAGE_SET)
        elif token.type == "string" and in_image_set:
            out.add_image(token.value)
        elif token.type in ("() block", "[] block", "{} block"):
            _urls_in_tokens(token.content, out, in_image_set=in_image_set)


def _first_url(tokens: Iterable[Any]) -> str | None:
    for token in tokens:
        if token.type in ("url", "string"):
            return str(token.value)
        if token.type == "function" and token.lower_name == "url":
            return next((str(t.value) for t in token.arguments if t.type == "string"), None)
    return None
