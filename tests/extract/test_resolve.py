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


def test_random_references_match_urljoin() -> None:
    """Seeded random references against urljoin, except the two places where the fast path keeps what a
    browser keeps and CPython's urljoin drops (see the next test)."""
    import random

    rng = random.Random(23)
    pieces = ["/", "//", ".", "..", "a", "B.png", "?", "#", "\\", ":", "@", "%20", "http:", "https:", "HTTP://",
              "h.example", ":8080", " ", "~", "x=1", "&", ";", "[", "]", "-", "cdn.x", "CDN.X"]
    checked = 0
    for _ in range(20000):
        value = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 8)))
        path = value.split("?")[0].split("#")[0]
        if ";" in path or ("//" in path and not value.startswith("/") and "://" not in path):
            continue
        base = rng.choice(BASES)
        assert _absolute(base, value) == _reference(base, value), (base, value)
        checked += 1
    assert checked > 10000


def test_empty_segments_and_params_are_kept_as_browsers_keep_them() -> None:
    """urljoin drops empty path segments of a relative reference and an empty ";" parameter; browsers (and
    the fast path, as before this test was written) keep both."""
    assert _absolute("https://ex.com/x", "a//b.png") == "https://ex.com/a//b.png"
    assert _absolute("https://ex.com/x", "/a;") == "https://ex.com/a;"
    assert _reference("https://ex.com/x", "a//b.png") == "https://ex.com/a/b.png"
    assert _absolute("https://ex.com/x", "//cdn.ex.com/a;") == _reference("https://ex.com/x", "//cdn.ex.com/a;")


def test_odd_query_check_is_the_regex() -> None:
    import random

    from imageextract.extract.discover import _ODD_QUERY, _odd_query

    rng = random.Random(29)
    for _ in range(20000):
        value = "".join(rng.choice(["?", "#", "a", "\n", "/", "?#"]) for _ in range(rng.randrange(0, 9)))
        assert _odd_query(value) == (_ODD_QUERY.search(value) is not None), value
