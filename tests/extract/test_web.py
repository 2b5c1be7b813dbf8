"""Web extraction end to end against a real loopback server, plus the parsers it is built from."""

from __future__ import annotations

import hashlib
import sys
import types
from typing import Any

import pytest

from imageextract.extract.css import urls_in_style_attribute, urls_in_stylesheet
from imageextract.extract.discover import decode_data_uri, decode_html, discover
from imageextract.extract.engine import extract_source, extract_url
from imageextract.extract.naming import safe_filename
from imageextract.extract.srcset import parse_srcset, pick_best
from imageextract.extract.types import ExtractedImage
from tests.extract.webfixtures import PIXEL_GIF, LocalServer, build_fixture_site, make_image, options

# path -> (construct, format, width, height, color_space, has_alpha, alt_text, title, aria_label, lazy)
EXPECTED: dict[str, tuple[Any, ...]] = {
    "/img/og.jpg": ("meta", "jpeg", 120, 63, "srgb", False, "Open graph alt", None, None, False),
    "/img/og-secure.png": ("meta", "png", 22, 22, "srgb", False, "Open graph alt", None, None, False),
    "/img/twitter.png": ("meta", "png", 23, 23, "srgb", False, None, None, None, False),
    "/img/itemprop.png": ("meta", "png", 24, 24, "srgb", False, None, None, None, False),
    "/img/favicon.ico": ("icon", "ico", 16, 16, "srgb", True, None, None, None, False),
    "/img/touch.png": ("icon", "png", 25, 25, "srgb", False, None, None, None, False),
    "/img/image-src.jpg": ("meta", "jpeg", 26, 26, "srgb", False, None, None, None, False),
    "/img/style-bg.png": ("css", "png", 17, 17, "srgb", False, None, None, None, False),
    "/site/img/print-bg.gif": ("css", "gif", 18, 18, "indexed", False, None, None, None, False),
    "/site/plain.png": ("img", "png", 101, 51, "srgb", False, "Plain PNG", "plain title", "Plain again", False),
    "/img/large.jpg": ("srcset", "jpeg", 100, 80, "srgb", False, "Retina", None, None, False),
    "/img/w800.webp": ("srcset", "webp", 80, 20, "srgb", True, "Widths", None, None, False),
    "/img/pic@2x.avif": ("picture", "avif", 64, 32, "srgb", False, "Picture alt", None, None, False),
    "/img/lazy.png": ("img", "png", 33, 22, "srgb", True, "Lazy noscript", "from noscript", None, True),
    "/img/lazyset-2x.jpg": ("srcset", "jpeg", 44, 22, "grayscale", False, "Lazy set", None, None, True),
    "/img/lazy2.gif": ("img", "gif", 12, 12, "indexed", False, None, None, None, True),
    "/img/orig.webp": ("img", "webp", 13, 13, "srgb", False, None, None, None, True),
    "/img/ls.png": ("srcset", "png", 14, 14, "grayscale", False, None, None, None, True),
    "/img/native-lazy.png": ("img", "png", 15, 15, "srgb", False, "Native lazy", None, None, True),
    "/img/noscript-only.png": ("img", "png", 16, 9, "srgb", False, "Only in noscript", None, None, False),
    "/img/inline-bg.jpg": ("css", "jpeg", 16, 16, "srgb", False, None, "div title", None, False),
    "/img/poster.jpg": ("video", "jpeg", 27, 27, "srgb", False, None, None, "Clip", False),
    "inline-svg": ("svg", "svg", 40, 30, "srgb", True, None, "Icon title", "Inline icon", False),
    "data-uri": ("data-uri", "png", 10, 10, "srgb", True, "Data PNG", None, None, False),
    "/img/cmyk.jpg": ("img", "jpeg", 28, 28, "cmyk", False, "CMYK", None, None, False),
    "/img/palette.png": ("img", "png", 29, 29, "indexed", True, "Palette", None, None, False),
    "/img/missing.png": ("img", None, None, None, None, None, "Missing", None, None, False),
    "/img/broken.png": ("img", None, None, None, None, None, None, None, None, False),
    "metadata": ("img", None, None, None, None, None, "Metadata", None, None, False),
    "/img/tiny.png": ("img", "png", 2, 2, "srgb", False, None, None, None, False),
    "/img/css-bg.png": ("css", "png", 19, 19, "srgb", False, None, None, None, False),
    "/img/set-1x.png": ("css", "png", 20, 20, "srgb", False, None, None, None, False),
    "/img/set-2x.png": ("css", "png", 40, 40, "srgb", False, None, None, None, False),
    "/css/imp-bg.png": ("css", "png", 21, 21, "srgb", False, None, None, None, False),
}


def _key(image: ExtractedImage, server: LocalServer) -> str:
    if image.construct == "svg":
        return "inline-svg"
    if image.construct == "data-uri":
        return "data-uri"
    assert image.source_url is not None
    if image.source_url.startswith("http://169.254.169.254/"):
        return "metadata"
    assert image.source_url.startswith(server.origin)
    return image.source_url[len(server.origin) :]


async def test_fixture_page_every_construct(web_server: LocalServer, web_options) -> None:
    page_url = build_fixture_site(web_server)
    result = await extract_url(page_url, web_options)
    assert result.status == "done", result.error_message
    by_key = {_key(i, web_server): i for i in result.images}
    assert len(by_key) == len(result.images)  # deduped
    assert set(by_key) == set(EXPECTED)
    assert list(by_key)[:3] == ["/img/og.jpg", "/img/og-secure.png", "/img/twitter.png"]  # document order
    for key, expected in EXPECTED.items():
        image = by_key[key]
        actual = (
            image.construct, image.format, image.width, image.height, image.color_space, image.has_alpha,
            image.alt_text, image.title, image.aria_label, image.is_lazy_loaded,
        )
        assert actual == expected, key
        assert image.source_kind == "web" and image.page_url == page_url
        if image.format is not None:
            assert image.error is None
            assert image.data is not None
            assert image.file_size == len(image.data)
            assert image.content_hash == hashlib.sha256(image.data).hexdigest()
            assert image.aspect_ratio == round(image.width / image.height, 3)
        else:
            assert image.error and image.data is None and image.content_hash is None

    def variants(key: str) -> list[tuple[Any, ...]]:
        return [
            (v["url"].replace(web_server.origin, "") if v["url"].startswith("http") else v["url"][:22], v["descriptor"], v["width"], v["density"], v["media"], v["type"])
            for v in by_key[key].variants
        ]

    assert variants("/img/large.jpg") == [("/img/small.jpg", "1x", None, 1.0, None, None)]
    assert variants("/img/w800.webp") == [("/img/w400.webp", "400w", 400, None, None, None), ("data:image/gif;base64,", "10w", 10, None, None, None)]
    assert next(v["url"] for v in by_key["/img/w800.webp"].variants if v["url"].startswith("data:")) == PIXEL_GIF
    assert variants("/img/pic@2x.avif") == [
        ("/img/pic.avif", "1x", None, 1.0, "(min-width: 800px)", "image/avif"),
        ("/img/pic.webp", None, None, None, None, "image/webp"),
        ("/img/pic.jpg", None, None, None, None, None),
    ]
    assert variants("/img/lazyset-2x.jpg") == [("/img/lazyset-1x.jpg", "1x", None, 1.0, None, None)]
    assert all(not by_key[k].variants for k in EXPECTED if k not in ("/img/large.jpg", "/img/w800.webp", "/img/pic@2x.avif", "/img/lazyset-2x.jpg"))

    # Errors are per image, with stable code prefixes.
    assert by_key["/img/missing.png"].error == "fetch_failed: HTTP 404"
    assert by_key["/img/broken.png"].error.startswith("unsupported_input:")
    assert by_key["metadata"].error.startswith("ssrf_blocked:")
    # Names, media types and the inline SVG's bytes.
    assert by_key["/img/pic@2x.avif"].filename == "pic-2x.avif"
    assert by_key["inline-svg"].filename == "inline-svg-1.svg"
    assert by_key["data-uri"].filename == "data-uri-1.png"
    assert by_key["inline-svg"].source_url is None and by_key["data-uri"].source_url is None
    assert by_key["inline-svg"].data.startswith(b'<svg xmlns="http://www.w3.org/2000/svg"')
    assert by_key["/img/favicon.ico"].media_type == "image/vnd.microsoft.icon"
    assert len({i.filename for i in result.images}) == len(result.images)

    # Only what the page references was fetched: placeholders, srcset losers, templates, comments, fonts,
    # cross-origin stylesheets and blocked addresses never were.
    fetched = set(web_server.paths())
    for path in ("/img/small.jpg", "/img/w400.webp", "/img/pic.avif", "/img/pic.jpg", "/img/template.png", "/img/lazyset-1x.jpg"):
        assert path not in fetched
    assert {"/css/site.css", "/css/imported.css"} <= fetched
    assert all(not p.startswith("/img/not-background") and not p.startswith("/img/commented") for p in fetched)


async def test_min_size_filter_drops_small_images_but_keeps_unknown_sizes(web_server: LocalServer) -> None:
    page_url = build_fixture_site(web_server)
    result = await extract_url(page_url, options(min_width=30, min_height=25))
    keys = {_key(i, web_server) for i in result.images}
    assert keys == {
        "/img/og.jpg", "/site/plain.png", "/img/large.jpg", "/img/pic@2x.avif", "inline-svg", "/img/set-2x.png",
        "/img/missing.png", "/img/broken.png", "metadata",  # unknown sizes are kept
    }


async def test_max_images_per_page(web_server: LocalServer) -> None:
    page_url = build_fixture_site(web_server)
    result = await extract_url(page_url, options(max_images_per_page=3))
    assert [_key(i, web_server) for i in result.images] == ["/img/og.jpg", "/img/og-secure.png", "/img/twitter.png"]


async def test_url_that_is_an_image_is_one_file(web_server: LocalServer, web_options) -> None:
    url = web_server.add("/photo.jpeg", make_image("JPEG", (64, 48)), "image/jpeg")
    result = await extract_url(url, web_options)
    assert result.status == "done"
    [image] = result.images
    assert (image.construct, image.source_url, image.filename, image.format, image.width, image.height) == (
        "file", url, "photo.jpg", "jpeg", 64, 48,
    )
    assert image.page_url is None and image.file_size == len(image.data)


async def test_redirected_page_resolves_relative_urls_against_the_final_url(web_server: LocalServer, web_options) -> None:
    web_server.add("/deep/dir/page.html", '<img src="pic.png" alt="rel">')
    web_server.add("/deep/dir/pic.png", make_image("PNG", (9, 8)), "image/png")
    start = web_server.redirect("/start", "/deep/dir/page.html")
    result = await extract_url(start, web_options)
    [image] = result.images
    assert image.source_url == web_server.url("/deep/dir/pic.png")
    assert image.page_url == web_server.url("/deep/dir/page.html")
    assert (image.width, image.height) == (9, 8)


@pytest.mark.parametrize(
    ("path", "setup", "code"),
    [
        ("/missing", None, "fetch_failed"),
        ("/doc.pdf", (b"%PDF-1.7", "application/pdf"), "unsupported_input"),
        ("/fake.png", (b"not really", "image/png"), "unsupported_input"),
        ("/huge.html", (b"<html>" + b"x" * 3000, "text/html"), "fetch_failed"),
    ],
)
async def test_failed_pages_are_results_with_codes(web_server: LocalServer, path: str, setup: Any, code: str) -> None:
    if setup:
        web_server.add(path, setup[0], setup[1])
    result = await extract_url(web_server.url(path), options(max_page_bytes=2000))
    assert (result.status, result.error_code) == ("failed", code)
    assert result.images == [] and result.error_message and result.duration_ms is not None


async def test_page_timeout_is_a_failed_result(web_server: LocalServer) -> None:
    from tests.extract.webfixtures import stall_handler

    url = web_server.handle("/slow", stall_handler(web_server))
    result = await extract_url(url, options(read_timeout=0.3, total_timeout=1))
    assert (result.status, result.error_code) == ("failed", "timeout")


async def test_charset_from_meta_is_honoured(web_server: LocalServer, web_options) -> None:
    html = '<meta charset="windows-1252"><img src="/a.png" alt="caf\xe9">'.encode("cp1252")
    web_server.add("/latin", html, "text/html")
    web_server.add("/a.png", make_image("PNG", (3, 3)), "image/png")
    result = await extract_url(web_server.url("/latin"), web_options)
    assert result.images[0].alt_text == "café"


async def test_extract_source_dispatch(tmp_path, web_server: LocalServer, web_options, monkeypatch) -> None:
    assert (await extract_source("ftp://example.com/x", web_options)).error_code == "ssrf_blocked"
    assert (await extract_source("gopher://127.0.0.1/", web_options)).error_code == "ssrf_blocked"
    assert (await extract_source(str(tmp_path / "nope.pdf"), web_options)).error_code == "unsupported_input"
    assert (await extract_source(str(tmp_path), web_options)).error_code == "unsupported_input"
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF" + b"0" * 2000)
    result = await extract_source(str(big), options(document_max_bytes=1000))
    assert (result.status, result.error_code) == ("failed", "document_too_large")

    calls: list[tuple[int, str | None]] = []

    def extract_document(data: bytes, *, filename: str | None, options: Any) -> list[ExtractedImage]:
        calls.append((len(data), filename))
        png = make_image("PNG", (5, 4))
        return [ExtractedImage(source_url=None, source_kind="document", filename="", format="png", width=5, height=4, document_page=1, data=png)]

    fake = types.ModuleType("imageextract.extract.documents")
    fake.extract_document = extract_document  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "imageextract.extract.documents", fake)
    doc = tmp_path / "report.pdf"
    doc.write_bytes(b"%PDF-1.7 tiny")
    result = await extract_source(str(doc), web_options)
    assert result.status == "done" and calls == [(13, "report.pdf")]
    [image] = result.images
    assert image.filename == "page-1-image-1.png" and image.file_size == len(image.data)
    assert image.content_hash == hashlib.sha256(image.data).hexdigest()

    def explode(data: bytes, **kwargs: Any) -> list[ExtractedImage]:
        raise RuntimeError("parser crashed")

    fake.extract_document = explode  # type: ignore[attr-defined]
    result = await extract_source(str(doc), web_options)
    assert (result.status, result.error_code) == ("failed", "extraction_failed")

    web_server.add("/p", "<img src='/i.gif'>")
    web_server.add("/i.gif", make_image("GIF", (6, 6), "P"), "image/gif")
    result = await extract_source(web_server.url("/p"), web_options)
    assert [i.format for i in result.images] == ["gif"]


# The parsers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("srcset", "expected", "best"),
    [
        ("a.png 1x, b.png 2x", [("a.png", None, 1.0), ("b.png", None, 2.0)], "b.png"),
        ("a.png 100w,b.png 800w , c.png 400w", [("a.png", 100, None), ("b.png", 800, None), ("c.png", 400, None)], "b.png"),
        ("data:image/png;base64,iVBO,RK5C, b.png 2x", [("data:image/png;base64,iVBO,RK5C", None, None), ("b.png", None, 2.0)], "b.png"),
        ("data:image/svg+xml;utf8,<svg></svg> 3x,x.png", [("data:image/svg+xml;utf8,<svg></svg>", None, 3.0), ("x.png", None, None)], "data:image/svg+xml;utf8,<svg></svg>"),
        ("  a.png,, ,b.png 1.5x  ", [("a.png", None, None), ("b.png", None, 1.5)], "b.png"),
        ("a.png 1x 2x, b.png 0w, c.png foo, d.png 10h, e.png 10w 5h", [("e.png", 10, None)], "e.png"),
        ("a,b.png 2x", [("a,b.png", None, 2.0)], "a,b.png"),
        ("x.png 10w (max-width: 1px, 2)", [], None),
    ],
)
def test_srcset_parsing(srcset: str, expected: list[tuple[Any, ...]], best: str | None) -> None:
    candidates = parse_srcset(srcset)
    assert [(c.url, c.width, c.density) for c in candidates] == expected
    if best:
        assert pick_best(candidates)[0].url == best


def test_css_url_extraction() -> None:
    assert urls_in_style_attribute("background:url( 'a b.png' ) , url(c.png); color:red; background-image:url(\"d.png\")") == ["a b.png", "c.png", "d.png"]
    assert urls_in_style_attribute("content: url(x.png); border-image: url(y.png)") == []
    sheet = urls_in_stylesheet(
        "@charset 'utf-8'; @import url('a.css') screen; @import 'b.css';\n"
        "/* .c { background: url(comment.png) } */\n"
        ".x { background: url(esc\\)aped.png) }\n"
        "@supports (display:grid) { @media (min-width: 1px) { .y { background-image: -webkit-image-set(url(n1.png) 1x, 'n2.png' 2x) } } }\n"
        ".p { & .q { background: url(nested.png) } }\n"
        ".d { background: url(data:image/png;base64,AAAA) }\n"
        "@font-face { src: url(font.woff2) }"
    )
    assert sheet.imports == ["a.css", "b.css"]
    assert sheet.images == ["esc)aped.png", "n1.png", "n2.png", "nested.png", "data:image/png;base64,AAAA"]


def test_noscript_fallbacks_are_parsed_as_markup() -> None:
    found = discover(
        '<head><noscript><img src="/head-pixel.gif"></noscript><link rel="icon" href="/fav.png"></head>'
        '<body>text <noscript>before <img src="x.png" alt="fallback"><p>after</noscript>'
        '<noscript>&lt;img src="escaped.png"&gt;</noscript></body>',
        "http://example.com/dir/",
    )
    assert [(f.url, f.construct, f.alt_text) for f in found.images] == [
        ("http://example.com/head-pixel.gif", "img", None),
        ("http://example.com/fav.png", "icon", None),  # the noscript in <head> did not end <head>
        ("http://example.com/dir/x.png", "img", "fallback"),
    ]  # escaped markup inside noscript is text, not an image


def test_base_href_and_url_resolution() -> None:
    found = discover(
        '<base href="https://cdn.example/assets/"><img src=" a.png\n"><img src="//other.example/b.png">'
        '<img src="../c.png#frag"><img src="javascript:x"><img src="mailto:a@b"><img src="HTTPS://CDN.EXAMPLE/assets/a.png">',
        "http://example.com/page/",
    )
    assert [f.url for f in found.images] == ["https://cdn.example/assets/a.png", "https://other.example/b.png", "https://cdn.example/c.png"]


def test_decode_helpers() -> None:
    assert decode_data_uri("data:image/png;base64,aGVs bG8=") == ("image/png", b"hello")
    assert decode_data_uri("data:,a%20b") == ("text/plain", b"a b")
    assert decode_data_uri("data:image/svg+xml;charset=utf-8,%3Csvg%3E") == ("image/svg+xml", b"<svg>")
    with pytest.raises(ValueError):
        decode_data_uri("data:image/png;base64")
    assert decode_html(b"\xef\xbb\xbfhi") == "hi"
    assert decode_html("é".encode("latin-1"), "iso-8859-1") == "é"
    assert decode_html(b"\xff\xff", "no-such-charset") == "\ufffd\ufffd"


@pytest.mark.parametrize(
    ("name", "ext", "expected"),
    [("hero.jpeg", "jpg", "hero.jpg"), ("../../etc/passwd", None, "etc_passwd"), (".htaccess", "png", "htaccess.png"), ("a b?.PNG", "png", "a-b.png"), ("", "gif", "image.gif")],
)
def test_safe_filenames(name: str, ext: str | None, expected: str) -> None:
    assert safe_filename(name, extension=ext) == expected
