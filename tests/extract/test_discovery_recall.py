"""The fast discovery (selector walk, CSS scanned without the full tokenizer where it can decide, plain <noscript>
fallbacks parsed together, srcset and the CSS mask read by runs) finds every image the reference discovery
(every node visited, every stylesheet tokenized by tinycss2, every fallback parsed alone, srcset one character
at a time) finds."""

from __future__ import annotations

import random

import pytest

from bench.engine_html import PAGE_URL, make_pages
from imageextract.extract.css import (
    _MASK,
    _mask,
    masked_text,
    urls_in_style_attribute,
    urls_in_style_attribute_tokenized,
    urls_in_stylesheet,
    urls_in_stylesheet_tokenized,
)
from imageextract.extract.discover import _absolute, decode_html, discover, html_for_parser
from imageextract.extract.srcset import parse_srcset, parse_srcset_reference
from tests.extract.webfixtures import build_fixture_site

CSS_CASES = [
    "a{background:url(a.png)}",
    "a{background:URL( 'b.png' ) no-repeat;color:red}",
    "/* a{background:url(c.png)} */ b{background-image:url(d.png)}",
    "a{content:'url(e.png)';background:url(f.png)}",
    "@import url(imp.css); @import 'imp2.css' screen; a{background:url(g.png)}",
    "@media (min-width:1px){a{background:url(h.png)} b{background:image-set('i1.png' 1x, url(i2.png) 2x)}}",
    "a{background:-webkit-image-set(url(j.png) 1x)}",
    ".md\\:flex{display:flex}.x{background:url(k\\).png)}",
    "a{backgr\\6f und:url(l.png)}",
    "a{background:\\75 rl(m.png)}",
    "a{background:u\\72l(m2.png)}",
    "@\\69mport url(escaped-import.css);",
    "a{background:url(n;o.png)}",
    'a{background:url("p.png"}',
    'a{font-family:"x;y";background:url(q.png)}',
    "a{background:url(data:image/svg+xml;charset=utf8,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27%3E%3C/svg%3E)}",
    "a{background:url(\"data:image/svg+xml,%3csvg xmlns='http://www.w3.org/2000/svg'%3e%3c/svg%3e\")}",
    "a{&:hover{background:url(r.png)}}",
    "@supports (x:y){@media print{a{background:url(s.png)}}}",
    "a{list-style-image:url(t.png);background:url(u.png)}",
    "@font-face{src:url(f.woff2) format('woff2')}",
    "a{background:url(v.png)",
    'a{content:"\\f101";background:url(w.png)}',
    "a{background:url( x.png )}",
    "a{--bg:url(y.png);background:var(--bg)}",
    "a{background:src('z.png')}",
    "a { b: c } @IMPORT url(upper.css);",
    "a{background:url(aa.png)} @import url(late.css);",
    "'unterminated\na{background:url(bb.png)}",
    'a{background:image-set("/img/l.avif" type("image/avif"),"/img/l.png" 1x)}',
    "a{background:linear-gradient(red, blue), url(z1.png), url('z2.png')}",
    "a{background:var(--x, url(fb.png))}",
    "a{background:url(a\\ b.png)}",
    "a{background:url(a b.png)}",
    "/* unterminated comment a{background:url(cc.png)}",
    "a{background:url('dd.png' )}",
    'a{background:url("quo\\"te.png")}',
    "/* \u0130stanbul */ a{background:url(after-long-lowercase.png)}",
    'a{background:url("abc\n) url("def")}',
    "a{background:image-set('x\n' 1x, 'y.png' 2x)}",
    "<!-- a{BACKGROUND : URL(cdo.png) !important} -->",
]


@pytest.mark.parametrize("css", CSS_CASES)
def test_stylesheet_fast_path_finds_what_the_tokenizer_finds(css: str) -> None:
    fast, ref = urls_in_stylesheet(css), urls_in_stylesheet_tokenized(css)
    assert fast.images == ref.images and fast.imports == ref.imports
    as_bytes = urls_in_stylesheet(css.encode(), charset="utf-8")
    assert as_bytes.images == ref.images


@pytest.mark.parametrize(
    "style",
    ["background:url(a.png);color:red", "background-image: url('b.png') ; x:url(c.png)", "background:\\75 rl(d.png)",
     "background:image-set('e.png' 1x)", "color:red", "/* url(x.png) */background:url(f.png)", "background:url(g;h.png)"],
)
def test_style_attribute_fast_path(style: str) -> None:
    assert urls_in_style_attribute(style) == urls_in_style_attribute_tokenized(style)


def test_random_stylesheets_from_fragments_agree() -> None:
    rng = random.Random(13)
    fragments = [c for c in CSS_CASES if "unterminated" not in c and "\n" not in c] + [
        ".a{color:red}", "@media print{", "}", "/* c */", ".b\\:c{top:0}", "x{content:'}'}", "y{content:\"{\"}"]
    for _ in range(300):
        css = "".join(rng.choice(fragments) for _ in range(rng.randrange(1, 8)))
        fast, ref = urls_in_stylesheet(css), urls_in_stylesheet_tokenized(css)
        assert set(ref.images) <= set(fast.images), css
        assert set(ref.imports) <= set(fast.imports), css


def test_pages_with_real_world_css_lose_nothing() -> None:
    pages = make_pages(600_000, seed=5)
    for raw in pages:
        html = decode_html(raw)
        fast = {f.url: f for f in discover(html, PAGE_URL).images}
        ref = discover(html, PAGE_URL, reference=True).images
        assert {f.url for f in ref} <= set(fast)
        for f in ref:  # the same provenance and labels, not just the same URLs
            g = fast[f.url]
            assert (g.construct, g.alt_text, g.title, g.is_lazy_loaded, g.variants) == (
                f.construct, f.alt_text, f.title, f.is_lazy_loaded, f.variants)


def test_the_fixture_site_is_discovered_identically(web_server) -> None:  # noqa: ANN001
    import urllib.request

    url = build_fixture_site(web_server)
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback fixture
        html = decode_html(response.read())
    fast = [(f.url, f.construct, f.alt_text, f.variants) for f in discover(html, url).images]
    ref = [(f.url, f.construct, f.alt_text, f.variants) for f in discover(html, url, reference=True).images]
    assert fast == ref


def test_fast_url_resolution_matches_urljoin() -> None:
    from urllib.parse import urljoin, urlsplit, urlunsplit

    def reference(base: str, value: str) -> str | None:
        parts = urlsplit(urljoin(base, value))
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            return None
        return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))

    bases = ["https://www.Example.com/news/article", "http://h/", "https://h/a/b/", "https://h", "https://h/a/../b/c",
             "https://h/p?q=1", "HTTPS://H:8443/x/y"]
    values = ["/img/a.jpg", "img/a.jpg", "a.jpg?x=1", "a.jpg#f", "a.jpg?#", "a.jpg?", "https://cdn.Example.net/t.png?w=2",
              "https://h", "https://h?x", "https://h#f", "HTTP://H/X", "//cdn/x.png", "../a.png", "./a.png", "a/./b.png",
              "a b.png", "@x/y.png", "%20.png", "mailto:x", "javascript:a", "?q=1", "#frag", "a.png#f?x", "https://u@h/x",
              "img\\a.png", "~user/a.png", "https://h:80/x", "https://h/a/../b.png"]
    for base in bases:
        for value in values:
            assert _absolute(base, value) == reference(base, value), (base, value)


SRCSETS = [
    "a.png", "a.png 1x, b.png 2x", " a.png  480w ,b.png 960w,, c.png", "a.png,b.png", "a.png,, ,b.png 2x,",
    "data:image/png;base64,AA,BB 1x, c.png 2x", "a.png 1x 2x", "a.png 100w 50h, b.png 50h", "a.png (x, y) 1x, b.png",
    "a.png 1x (unclosed, b.png", "a.png\t2x\n,\x0cb.png\r3x", "a.png 0w, b.png -1x, c.png 1.5e1x", ",,,", "",
    "//cdn.example/r/extract=0,0,1959,1306_resize=140,93_.jpg?h=4 1x, //cdn.example/r/resize=280,186_.jpg 2x",
    "a.png 1X, b.png 10W", "a.png x, b.png w", "a.png 1x,b.png 2x,c.png 3x", "a.png \u0661w, b.png \u00b2w, c.png 007w",
]


@pytest.mark.parametrize("srcset", SRCSETS)
def test_srcset_parser_matches_the_standard_step_by_step(srcset: str) -> None:
    assert parse_srcset(srcset, media="m", type="t", attribute="data-srcset") == parse_srcset_reference(
        srcset, media="m", type="t", attribute="data-srcset")


def test_random_srcsets_agree() -> None:
    rng = random.Random(17)
    pieces = ["a.png", "b.png", " ", ",", "(", ")", "1x", "2x", "100w", "50h", "\t", "\n", "data:image/png;base64,AA,BB",
              "0w", "-1x", "1.5x", "x", ",,", "  ", "480W", "01w", "\u0661w", "\u00b2w", "w", "2h", "+1w"]
    for _ in range(5000):
        srcset = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 12)))
        assert parse_srcset(srcset) == parse_srcset_reference(srcset), srcset


def test_stylesheet_mask_by_find_is_the_regex_mask() -> None:
    rng = random.Random(19)
    pieces = ['"', "'", "\\", "/*", "*/", "/", "*", "\n", "a", "\r\n", "\\41 ", "\\\n", "{", "}", ";", "url(", "x"]
    samples = list(CSS_CASES) + ["".join(rng.choice(pieces) for _ in range(rng.randrange(0, 14))) for _ in range(5000)]
    for css in samples:
        assert masked_text(css) == _MASK.sub(_mask, css), css


NOSCRIPT_PAGE = """<html><head><noscript><img src="/head.gif"></noscript><link rel=icon href=/f.png>
<meta property="OG:Image" content="/og.png"><meta name="Twitter:Image:Alt" content="Alt text"><meta name=description content=x>
<meta property="og:title" name="twitter:image" content="/not-an-image.png"><meta property="" name="og:image" content="/og2.png">
<meta itemprop="thumbnail image" content="/itemprop-meta.png"><link rel="Apple-Touch-Icon" href="/touch.png">
<link rel="alternate stylesheet" href="/alt.css"><link rel="STYLESHEET" href="/main.css"><link rel=preload href=/pre.png as=image>
<link rel="IMAGE_SRC" href="/image-src.png"><link rel=preconnect href="https://cdn.example/"></head><body>
<noscript><img src="/a.jpg" alt="A &amp; B" title='t'></noscript>
<noscript>
  <IMG SRC=/b.jpg ALT=upper>  <img src="/c.jpg"/><img data-src="/lazy.jpg" src="data:image/gif;base64,R0lGOD" loading=lazy>
</noscript>
<noscript><img src="/d.jpg" srcset="/d-1.jpg 1x, /d-2.jpg 2x" style="background:url(/d-bg.png)" itemprop=image></noscript>
<noscript>text <img src="/e.jpg" alt="with text"></noscript>
<noscript><img src="/f.jpg" alt="<img src=/g.jpg>"></noscript>
<noscript><image src="/h.jpg"></noscript>
<noscript><img src="/i.jpg"><p style="background:url(/i-bg.png)">x</p></noscript>
<noscript><img src="/j.jpg" alt="unclosed</noscript>
<noscript><img src=/k.jpg alt=x/></noscript>
<noscript><picture><source srcset="/l.webp"><img src="/l.jpg"></picture></noscript>
<noscript>&lt;img src="/escaped.jpg"&gt;</noscript>
<noscript></noscript>
<svg><image href="/svg-image.png" style="background:url(/svg-bg.png)"/><noscript>&lt;img src="/in-svg.jpg"></noscript>
  <svg><title>Nested title</title><style>a{background:url(/nested-svg.png)}</style><a itemprop=image href="/svg-a.png"/></svg>
  <title>Outer title</title></svg>
<svg aria-label="Labelled"><title> Own
 title </title><path d="M0 0"/></svg>
<img src="/m.jpg" style="background:url(/m-bg.png)" itemprop="image" alt="matched by three selectors">
<base href="/ignored-late-base/" style="background:url(/base-bg.png)">
<noscript><img src="/n.jpg" alt="last"></noscript>
<p style="BACKGROUND:URL(/upper-bg.png)" title="upper">x</p><p style="color:red">y</p><p style="background:Url (/no.png)">
<span style="background:u\\72l(/escaped-url.png)">z</span><div itemprop="image" src="/itemprop.png" style="color:blue"></div>
</body></html>"""


def test_noscript_fallbacks_svg_and_repeated_matches_are_walked_as_the_reference_walks_them() -> None:
    """Plain-<img> fallbacks are parsed together (the others one by one), inline <svg> content is skipped
    per <svg>, an element several selectors match is visited once, and only style attributes holding
    "url(", metas naming an image and links with an image or stylesheet rel are selected (in any case):
    the same images, labels and stylesheets as the reference."""
    from imageextract.extract.discover import _IMG_TAGS_ONLY, _parse, _Walker

    for page_url in ("https://example.com/dir/page", ""):
        fast = discover(NOSCRIPT_PAGE, page_url)
        ref = discover(NOSCRIPT_PAGE, page_url, reference=True)
        assert [f.to_dict() for f in fast.images] == [f.to_dict() for f in ref.images]
        assert fast.stylesheets == ref.stylesheets
    assert discover(NOSCRIPT_PAGE, "https://example.com/").stylesheets == ["https://example.com/main.css"]
    urls = [f.url for f in discover(NOSCRIPT_PAGE, "https://example.com/").images]
    assert {"https://example.com/og.png", "https://example.com/og2.png", "https://example.com/touch.png",
            "https://example.com/image-src.png", "https://example.com/itemprop-meta.png"} <= set(urls)
    assert "https://example.com/b.jpg" in urls and "https://example.com/d-bg.png" in urls
    assert "https://example.com/upper-bg.png" in urls and "https://example.com/itemprop.png" in urls
    assert not [u for u in urls if "svg" in u and not u.startswith("inline-svg:")]  # all part of the SVG images
    walker = _Walker("https://example.com/")
    walker.walk(_parse(NOSCRIPT_PAGE))  # the batched path is really taken, and only for plain <img> runs
    batched = sum(len(images) for images in walker.fallbacks.values())
    assert batched == 9  # one of them inside the <svg>: parsed, never visited
    assert _IMG_TAGS_ONLY.fullmatch('<img src="/f.jpg" alt="<img src=/g.jpg>">') is None
    assert _IMG_TAGS_ONLY.fullmatch("text <img src=x>") is None


def test_import_hits_are_found_by_their_at_sign() -> None:
    css = "@media print{a{b:c}} @IMPORT 'a.css'; @importx 'no.css'; @import url(b.css) print; x{y:z}@import 'c.css';"
    assert urls_in_stylesheet(css).imports == urls_in_stylesheet_tokenized(css).imports == ["a.css", "b.css", "c.css"]


@pytest.mark.parametrize(
    ("data", "charset"),
    [
        (b"<p>ascii</p>", None), ("<p>caf\u00e9 \u2014 \U0001f600</p>".encode(), None), (b"<p>bad \xff\xfe utf-8</p>", None),
        (b"\xef\xbb\xbf<p>bom</p>", None), ("<p>\u00e9</p>".encode("utf-16"), None), (b"<p>\xe9</p>", "latin-1"),
        (b"<meta charset=windows-1251><p>\xcf\xf0</p>", None), (b"<meta charset=UTF8><p>\xc3\xa9</p>", None),
        (b"<meta charset=base64><p>\xc3\xa9</p>", None), (b"<meta charset=nonsense><p>\xc3\xa9</p>", "utf-8"),
        (b"<p>ascii</p>", "latin-1"), (b"<meta charset=latin-1><p>\xc3\xa9</p>", "utf-8"), (b"", None),
    ],
)
def test_html_for_parser_hands_over_bytes_only_when_they_are_the_decoded_text(data: bytes, charset: str | None) -> None:
    text = decode_html(data, charset)
    given = html_for_parser(data, charset)
    if isinstance(given, bytes):
        assert given == text.encode("utf-8")  # exactly what selectolax would have made of the text
    else:
        assert given == text
    assert [f.to_dict() for f in discover(given, "https://example.com/").images] == [
        f.to_dict() for f in discover(text, "https://example.com/").images]


def test_html_for_parser_takes_the_bytes_path_for_utf8_pages() -> None:
    assert isinstance(html_for_parser("<p>caf\u00e9</p>".encode()), bytes)
    assert isinstance(html_for_parser(b"<p>\xe9</p>", "latin-1"), str)
    for raw in make_pages(200_000, seed=7):
        assert html_for_parser(raw) is raw


@pytest.mark.parametrize(
    ("name", "with_ignorecase"),
    [("_URL_OPEN", r"(?i)url\([ \t\n\r\f]*"), ("_NEEDS_TOKENIZER", r"(?i)src\(|\x01"),
     ("_VALUE_TOKEN", r"(?i)(url\()[ \t\n\r\f]*|([\w-]*)\(|(\))|([\"'])")],
)
def test_case_classes_match_what_ignorecase_matched(name: str, with_ignorecase: str) -> None:
    """The CSS scan's patterns spell case out ([uU][rR][lL]) instead of (?i), which is slow; they must match
    exactly what (?i) did, Unicode case folds included (the long s folds to s; the Kelvin sign, dotted and
    dotless i are there to show nothing else does)."""
    import re

    from imageextract.extract import css

    pattern, reference = getattr(css, name), re.compile(with_ignorecase)
    rng = random.Random(31)
    pieces = ["s", "S", "\u017f", "r", "R", "c", "C", "(", "u", "U", "l", "L", "\x01", "K", "\u212a", " ", '"', "'",
              ")", "x", "-", "_", "\u0130", "\u0131", "i", "url(", "SRC("]
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 10)))
        assert [(m.span(), m.groups()) for m in pattern.finditer(text)] == [
            (m.span(), m.groups()) for m in reference.finditer(text)], text
