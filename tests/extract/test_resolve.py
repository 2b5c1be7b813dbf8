"""URL resolution in discovery: the fast path for root-relative URLs gives exactly what urljoin gives."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit, urlunsplit

import pytest

from imageextract.extract.discover import _absolute

BASES = ["https://Example.com/page", "http://example.com:8080/a/b/", "https://user@ex.com/x?y=1#z", "ftp://x/y",
         "https://ex.com", "https://[::1]:8443/p"]
VALUES = ["/img/1.jpg", "/img/1.jpg?x=1#frag", "/a b/c.png", "/ünï.png", "/%20x.png", "/?q", "/#f", "/a/./b",
          "/a/../b", "/a/..", "//cdn.x/y", "/x\\y", "/", "/img;p=1", "/x?y#z?w", "rel/x.png", "../up.png",
          "https://Other.org/i.png", "javascript:alert(1)", "http://[bad", "//CDN.x:8080/y.png?w=1#f", "//cdn.x",
          "//cdn.x?q", "//u@cdn.x/y", "///y.png", "//cdn.x/a/../b.png", "//[::1]/y", "//cdn.x#f"]


def _reference(base: str, value: str) -> str | None:
    try:
        parts = urlsplit(urljoin(base, value))
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))


@pytest.mark.parametrize("base", BASES)
def test_fast_path_matches_urljoin(base: str) -> None:
    for value in VALUES:
        assert _absolute(base, value) == _reference(base, value), (base, value)


def test_examples() -> None:
    assert _absolute("https://Example.com/page", "/img/1.jpg#x") == "https://example.com/img/1.jpg"
    assert _absolute("https://example.com/a/b", "/a/../c.png") == "https://example.com/c.png"
    assert _absolute("ftp://example.com/", "/x.png") is None
