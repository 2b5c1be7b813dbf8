"""Image URLs in CSS: `url(...)` (and `image-set(...)` strings) in background declarations, plus @import.

Parsing is tinycss2's (a CSS Syntax Level 3 tokenizer), so comments, escapes, quoted and unquoted url()
forms, nested @media/@supports blocks and CSS nesting are all handled the way a browser tokenizes them.
URLs are returned as written; the caller resolves them against the stylesheet's own URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import tinycss2

IMAGE_PROPERTIES = frozenset({"background", "background-image"})
_IMAGE_SET = frozenset({"image-set", "-webkit-image-set"})
_NESTING_AT_RULES = frozenset({"media", "supports", "document", "-moz-document", "layer", "container", "scope", "starting-style"})


@dataclass
class CssUrls:
    images: list[str] = field(default_factory=list)  # in source order, duplicates removed
    imports: list[str] = field(default_factory=list)

    def add_image(self, url: str) -> None:
        url = url.strip()
        if url and url not in self.images:
            self.images.append(url)


def urls_in_style_attribute(style: str) -> list[str]:
    """Background image URLs in an inline `style="..."` attribute."""
    out = CssUrls()
    _declarations(tinycss2.parse_blocks_contents(style, skip_comments=True, skip_whitespace=True), out)
    return out.images


def urls_in_stylesheet(css: str | bytes, *, charset: str | None = None) -> CssUrls:
    """Background image URLs and @import targets in a stylesheet (text, or bytes with an optional charset)."""
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
