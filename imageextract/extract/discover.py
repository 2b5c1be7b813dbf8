"""Image discovery in an HTML document: pure, synchronous, no network.

`discover(html, page_url)` walks the document once in order (selectolax/lexbor) and returns every image
reference it can see: <img> src/srcset and lazy-load attributes, <picture>/<source>, <noscript> fallbacks,
inline style and <style> background images, Open Graph / Twitter / itemprop images, icons, video posters,
inline <svg> and data: URIs, all resolved against <base href>. It also returns the same-origin stylesheets the
caller should fetch (`Discovery.stylesheets`). Duplicates are merged by absolute URL (see `merge`).

Speed: lexbor selects the elements that can hold an image in one `:is()` pass (document order, each element
once) instead of Python visiting every node, and that one list also gives <base> and the og/twitter alts;
inline <svg> content is skipped per <svg>; <noscript> fallbacks that are only <img> tags are parsed together
in one document; CSS goes through `css.urls_in_stylesheet`'s scan rather than the full tokenizer; plain URLs
(also protocol-relative ones) are resolved without urljoin; a UTF-8 page is parsed from its bytes
(`html_for_parser`), not decoded and re-encoded. `discover(..., reference=True)` is the slow,
obviously complete walk (every node, every stylesheet tokenized, every fallback parsed alone) that tests and
the benchmark check the fast one against: it finds nothing more.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_to_bytes, urljoin, urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from imageextract.extract.css import (
    urls_in_style_attribute,
    urls_in_style_attribute_tokenized,
    urls_in_stylesheet,
    urls_in_stylesheet_tokenized,
)
from imageextract.extract.srcset import SrcCandidate, best_index, parse_srcset

LAZY_SRC_ATTRS = ("data-src", "data-lazy-src", "data-original")
LAZY_SRCSET_ATTRS = ("data-srcset", "data-lazy-srcset")
_IMG_EXTRAS = frozenset(("srcset", *LAZY_SRC_ATTRS, *LAZY_SRCSET_ATTRS))
_SRCSET_ATTRS = frozenset(("srcset", *LAZY_SRCSET_ATTRS))
_SOURCE_SRCSET_ATTRS = (*LAZY_SRCSET_ATTRS, "srcset")  # the order <source> reads them in
META_IMAGE_KEYS = ("og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src")
META_ALT_KEYS = {"og:image:alt", "twitter:image:alt"}
ICON_RELS = frozenset({"icon", "apple-touch-icon", "apple-touch-icon-precomposed", "mask-icon"})
# Which construct wins when one image is found several ways (a richer, more specific provenance first).
CONSTRUCT_RANK = {"picture": 0, "srcset": 1, "img": 2, "svg": 3, "data-uri": 4, "video": 5, "meta": 6, "css": 7, "icon": 8}
_TAB_NL = re.compile(r"[\t\n\r]")
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_PLAIN_ABSOLUTE = re.compile(r"^[hH][tT][tT][pP][sS]?://[A-Za-z0-9.\-]+(?::\d+)?(?:/|$)")  # no userinfo, no IPv6
_ODD_QUERY = re.compile(r"\?(?:#|$)|^[^?#]*#.*\?")  # an empty query or a "?" after the fragment: urljoin's job
_PLAIN_RELATIVE = re.compile(r"^[A-Za-z0-9_~%!$&*+,=@-][^:?#\\]*(?:[?#].*)?$")  # "img/a.jpg", no scheme


@lru_cache(maxsize=256)
def _origin(base: str) -> tuple[str, str] | None:
    parts = urlsplit(base)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        return None
    return scheme, parts.netloc.lower()


@lru_cache(maxsize=256)
def _directory(base: str) -> str | None:
    """The normalised base up to its last "/" ("https://h/a/b?q" -> "https://h/a/"), or None if not http(s)."""
    parts = urlsplit(base)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        return None
    path = parts.path or "/"
    if "/." in path:
        return None  # dot segments: urljoin normalises them
    return f"{scheme}://{parts.netloc.lower()}{path[: path.rfind('/') + 1]}"


def _odd_query(value: str) -> bool:
    """`_ODD_QUERY.search(value)`, without the regex engine trying every position of a long CDN URL."""
    if "\n" in value:
        return _ODD_QUERY.search(value) is not None
    if "?#" in value or value.endswith("?"):
        return True
    fragment = value.find("#")
    return fragment >= 0 and value.find("?", 0, fragment) < 0 and value.find("?", fragment) >= 0


def _absolute(base: str, value: str) -> str | None:
    """`value` resolved against `base` as an http(s) URL without fragment, or None. Plain root-relative,
    document-relative, protocol-relative and absolute http(s) URLs without dot segments (most of a page's
    images) skip urljoin, which dominates discovery time; everything else goes through it."""
    try:
        if ("/." not in value and "\\" not in value and value[:1] != "."
                and ("?" not in value or not _odd_query(value))):
            if value[:2] == "//" and ";" not in value:  # protocol-relative: the base's scheme, then as an
                origin = _origin(base)  # absolute URL (urljoin drops an empty ";params" that one keeps)
                if origin is not None:
                    value = f"{origin[0]}:{value}"
            if value[:1] == "/":
                if value[1:2] not in ("", "/"):  # root-relative ("/" alone and any "//..." left: urljoin)
                    origin = _origin(base)
                    if origin is not None:
                        return f"{origin[0]}://{origin[1]}{value.partition('#')[0]}"
            elif _PLAIN_ABSOLUTE.match(value):
                scheme, _, rest = value.partition("://")
                host, slash, path = rest.partition("/")
                path = path.partition("#")[0]
                return f"{scheme.lower()}://{host.lower()}/{path}" if slash or not path else None
            elif _PLAIN_RELATIVE.match(value):
                directory = _directory(base)
                if directory is not None:
                    return directory + value.partition("#")[0]
        parts = urlsplit(urljoin(base, value))
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)


@dataclass
class Found:
    """One image reference on a page (before fetching)."""

    url: str  # absolute http(s) URL, a data: URI, or "inline-svg:<sha256>" for inline <svg>
    construct: str
    order: int
    alt_text: str | None = None
    title: str | None = None
    aria_label: str | None = None
    is_lazy_loaded: bool = False
    media_type: str | None = None  # declared (source type, link type, data: URI type)
    variants: list[dict[str, Any]] = field(default_factory=list)
    data: bytes | None = None  # inline SVG markup

    @property
    def is_remote(self) -> bool:
        return self.url.startswith(("http://", "https://"))

    def to_dict(self) -> dict[str, Any]:
        """What was discovered, without fetching: URL (as written when it could not be resolved), provenance,
        labels and the srcset group (`variants`); inline SVG markup is summarised by its length."""
        return {
            "url": self.url,
            "resolved": self.is_remote or self.url.startswith(("data:", "inline-svg:")),
            "construct": self.construct,
            "alt_text": self.alt_text,
            "title": self.title,
            "aria_label": self.aria_label,
            "is_lazy_loaded": self.is_lazy_loaded,
            "media_type": self.media_type,
            "variants": list(self.variants),
            "inline_bytes": len(self.data) if self.data is not None else None,
        }

    def richness(self) -> tuple[int, int]:
        filled = bool(self.alt_text) + bool(self.title) + bool(self.aria_label)
        return (filled, -CONSTRUCT_RANK.get(self.construct, 99))


@dataclass
class Discovery:
    page_url: str
    base_url: str
    images: list[Found]
    stylesheets: list[str]  # absolute same-origin stylesheet URLs, in document order


def decode_html(data: bytes, charset: str | None = None) -> str:
    """Decode page bytes: BOM, then the HTTP charset, then <meta charset>, then UTF-8 (with replacement)."""
    for bom, bom_enc in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                         (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return data[len(bom) :].decode(bom_enc, errors="replace")
    for enc in _declared(data, charset):
        try:
            return data.decode(enc, errors="replace")
        except LookupError:
            continue
    return data.decode("utf-8", errors="replace")


def _declared(data: bytes, charset: str | None) -> list[str]:
    """The encodings the page names, in the order decode_html tries them: the HTTP charset, <meta charset>."""
    candidates = [charset] if charset else []
    m = _META_CHARSET.search(data[:2048])
    if m and m.group(1):
        candidates.append(m.group(1).decode("ascii", "replace"))
    return candidates


def html_for_parser(data: bytes, charset: str | None = None) -> str | bytes:
    """What `discover` should parse: `data` itself when it already is the UTF-8 form of
    `decode_html(data, charset)` (no byte-order mark, UTF-8 by the same rules, valid), else that text. The
    parser gets the same bytes either way (selectolax encodes text to UTF-8 before lexbor parses it); this
    saves decoding the page and encoding it again."""
    if data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return decode_html(data, charset)
    encoding = "utf-8"
    for enc in _declared(data, charset):
        try:
            b"".decode(enc)  # what decode_html's data.decode(enc) would do: LookupError for a non-text codec
        except LookupError:
            continue
        encoding = codecs.lookup(enc).name
        break
    if encoding != "utf-8":
        return decode_html(data, charset)
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:  # decode_html would put U+FFFD in: the parser must see that
            return decode_html(data, charset)
    return data


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """(media type, bytes) of a data: URI; raises ValueError when malformed."""
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise ValueError("data: URI without a comma")
    params = [p.strip() for p in header.split(";")]
    is_base64 = bool(params) and params[-1].lower() == "base64"
    if is_base64:
        params = params[:-1]
    media = (params[0].lower() if params and params[0] else "text/plain") or "text/plain"
    raw = unquote_to_bytes(payload)
    if is_base64:
        cleaned = re.sub(rb"[\t\n\f\r ]", b"", raw)
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            raw = base64.b64decode(cleaned, validate=True)
        except ValueError as exc:
            raise ValueError(f"bad base64 in data: URI: {exc}") from None
    return media, raw


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    return value or None


_WS = r"[\t\n\f\r ]"
# Text that is only complete <img> tags (quoted values without "<"): the common <noscript> fallback.
_IMG_TAGS_ONLY = re.compile(
    rf"""(?:{_WS}*<img(?:{_WS}+[^\t\n\f\r "'<>/=]+(?:{_WS}*={_WS}*(?:"[^"<]*"|'[^'<]*'|[^\t\n\f\r "'<=>`]+))?)*{_WS}*/?>)+{_WS}*""",
    re.I,
)
# lexbor filters on attributes what `visit` would only look at and drop, so the thousands of
# style="color:...", <meta name="description"> and <link rel="preconnect"> never reach Python: a style
# attribute matters only with "url(" in it; a <meta> only with "image" in its property or name (every key in
# META_IMAGE_KEYS and META_ALT_KEYS holds it) or an itemprop; a <link> only with "stylesheet", "icon" (in
# every ICON_RELS) or "image_src" in its rel. Substrings, ASCII case-insensitive: a superset of the values
# lower() then matches, since no other character lower-cases to those letters.
_INTERESTING = (
    ':is(base[href], img, picture, noscript, style, video, svg, [style*="url(" i], [itemprop], '
    'meta[property*="image" i], meta[name*="image" i], '
    'link[rel*="stylesheet" i], link[rel*="icon" i], link[rel*="image_src" i])'
)
_SVG_INSIDE = _INTERESTING[:-1] + ", title)"  # one query per <svg>: what to skip, and its <title>


class _Walker:
    def __init__(self, page_url: str, base_url: str | None = None, *, reference: bool = False) -> None:
        self.reference = reference
        self.page_url = page_url
        self.base_url = base_url or page_url
        self.fixed_base = base_url is not None  # a caller's base wins over the page's <base href>
        self.found: list[Found] = []
        self.stylesheets: list[str] = []
        self._meta_alt: dict[str, str] = {}
        self.fallbacks: dict[int, list[LexborNode]] = {}  # see parse_fallbacks
        self._fallback_trees: list[LexborHTMLParser] = []

    # URL helpers -----------------------------------------------------------------------------

    def resolve(self, value: str | None, base: str | None = None) -> str | None:
        if value is None:
            return None
        if "\t" in value or "\n" in value or "\r" in value:
            value = _TAB_NL.sub("", value)
        value = value.strip(" \x0c")
        if not value or value.startswith("#"):
            return None
        if value[0] in "dD" and value[:5].lower() == "data:":
            return "data:" + value[5:]
        base = base or self.base_url
        if not base:  # a saved page with no base URL: keep relative references as written (not fetchable)
            absolute = _absolute("http://unresolved.invalid/", value)
            if absolute is None or _URL_SCHEME.match(value) or value.startswith("//"):
                return absolute  # absolute http(s) references are still usable; other schemes are not images
            return value
        return _absolute(base, value)

    def add(self, url: str | None, construct: str, **fields: Any) -> Found | None:
        if url is None:
            return None
        if url.startswith("data:"):
            construct = "data-uri"
            if not fields.get("media_type"):
                fields["media_type"] = url[5:].split(",", 1)[0].split(";", 1)[0].strip().lower() or None
        f = Found(url=url, construct=construct, order=len(self.found), **fields)
        self.found.append(f)
        return f

    # The walk --------------------------------------------------------------------------------

    def walk(self, tree: LexborHTMLParser, *, from_noscript: bool = False) -> None:
        if self.reference:  # every node, in order (the reference walk)
            self.walk_reference(tree, from_noscript=from_noscript)
            return
        # Only the elements `visit` acts on (and <base>), matched by lexbor in one pass in document order: the
        # same visits, far fewer Python calls (a page has thousands of <div>, <a> and <span> that can hold no
        # image). `:is()` yields each element once even when it matches several selectors.
        nodes = tree.css(_INTERESTING)
        tags = [node.tag for node in nodes]
        if not from_noscript:
            self.head(nodes, tags)
            self.fallbacks = self.parse_fallbacks(nodes, tags)
        in_svg: set[int] = set()
        for node, tag in zip(nodes, tags, strict=True):
            if in_svg and node.mem_id in in_svg:
                continue
            if tag == "svg":
                # Descendants of inline <svg> are part of the SVG image, and follow it in document order.
                # (<template> content is not in the tree at all.)
                inside = node.css(_SVG_INSIDE)
                in_svg.update(n.mem_id for n in inside)
                self.inline_svg(node, inside)
            elif tag != "base" or ("style" in (attrs := node.attributes) or "itemprop" in attrs):
                self.visit(node, tag, from_noscript=from_noscript, checked=True)

    def head(self, nodes: list[LexborNode], tags: list[str | None]) -> None:
        """What applies to the whole page before any image: the first <base href> and the og/twitter image alts."""
        base: LexborNode | None = None
        for node, tag in zip(nodes, tags, strict=True):
            if tag == "meta":
                self.meta_alt(node)
            elif tag == "base" and base is None and "href" in node.attributes:
                base = node
        if base is not None and not self.fixed_base:
            self.apply_base(base)

    def parse_fallbacks(self, nodes: list[LexborNode], tags: list[str | None]) -> dict[int, list[LexborNode]]:
        """The <img> elements of every <noscript> whose text is nothing but <img> tags (the usual lazy-load
        fallback), by the <noscript>'s mem_id. Parsing each fallback as its own document costs more than
        the images in it; a run of complete <img> tags (void elements, no text between) parses to the same
        elements alone or concatenated, so all of them go through the parser once."""
        simple = [(node.mem_id, text) for node, tag in zip(nodes, tags, strict=True) if tag == "noscript"
                  and "<" in (text := node.text(deep=True) or "") and _IMG_TAGS_ONLY.fullmatch(text)]
        if not simple:
            return {}
        tree = _parse("".join(text for _, text in simple))
        self._fallback_trees.append(tree)  # its nodes live as long as the tree
        images = tree.css("img")
        if len(images) != sum(text.count("<") for _, text in simple):  # cannot happen; then parse one by one
            return {}
        out: dict[int, list[LexborNode]] = {}
        at = 0
        for mem_id, text in simple:
            count = text.count("<")  # one "<" per tag: names and values hold none
            out[mem_id] = images[at : at + count]
            at += count
        return out

    def walk_reference(self, tree: LexborHTMLParser, *, from_noscript: bool) -> None:
        if not from_noscript:
            base = None if self.fixed_base else tree.css_first("base[href]")
            if base is not None:
                self.apply_base(base)
            for meta in tree.css("meta"):
                self.meta_alt(meta)
        root = tree.root
        if root is None:
            return
        for node in root.traverse(include_text=False):
            self.visit(node, node.tag, from_noscript=from_noscript)

    def apply_base(self, base: LexborNode) -> None:
        resolved = self.resolve(base.attributes.get("href"), self.page_url or None)
        if resolved and resolved.startswith(("http://", "https://")):
            self.base_url = resolved

    def meta_alt(self, meta: LexborNode) -> None:
        a = meta.attributes
        key = (a.get("property") or a.get("name") or "").strip().lower()
        if key in META_ALT_KEYS and a.get("content"):
            self._meta_alt.setdefault(key.split(":")[0], a.get("content") or "")

    def visit(self, node: LexborNode, tag: str | None, *, from_noscript: bool, checked: bool = False) -> None:
        """Every image `node` itself holds. `checked`: the caller knows `node` is not inside an inline <svg>."""
        if tag is None or tag.startswith("-"):
            return
        if tag == "svg":
            if checked or not _has_ancestor(node, {"svg"}):
                self.inline_svg(node)
            return
        if not checked and _has_ancestor(node, {"svg", "template"}):
            return
        attrs = node.attributes
        style = attrs.get("style")
        if style and "(" in style and "url(" in style.lower():
            for u in (urls_in_style_attribute_tokenized if self.reference else urls_in_style_attribute)(style):
                self.add(self.resolve(u), "css", **_labels(attrs))
        if tag == "img":
            parent = node.parent
            if parent is None or parent.tag != "picture":
                self.img(node, attrs)
        elif tag == "picture":
            self.picture(node)
        elif tag == "noscript":
            # Parsed as a browser running scripts does, <noscript> holds raw text: the fallback markup.
            images = self.fallbacks.get(node.mem_id)
            if images is not None:  # plain <img> tags, already parsed with the page's other such fallbacks
                for img in images:
                    self.visit(img, "img", from_noscript=True, checked=True)
            elif not from_noscript and "<" in (inner := node.text(deep=True) or ""):
                self.walk(_parse(inner), from_noscript=True)
        elif tag == "style":
            parse = urls_in_stylesheet_tokenized if self.reference else urls_in_stylesheet
            css = parse(node.text(deep=True) or "")
            for u in css.images:
                self.add(self.resolve(u), "css")
            for imp in css.imports:
                self.stylesheet(self.resolve(imp))
        elif tag == "link":
            self.link(node, attrs)
        elif tag == "meta":
            self.meta(node, attrs)
        elif tag == "video":
            self.add(self.resolve(attrs.get("poster")), "video", **_labels(attrs))
        itemprop = attrs.get("itemprop")
        if itemprop and tag not in ("img", "meta") and "image" in itemprop.lower().split():
            self.add(self.resolve(attrs.get("href") or attrs.get("src")), "meta", **_labels(attrs))

    def img(self, node: LexborNode, attrs: dict[str, str | None] | None = None) -> None:
        a = node.attributes if attrs is None else attrs
        if _IMG_EXTRAS.isdisjoint(a):  # the common <img src>: one candidate, no srcset
            url = self.resolve(a.get("src"))
            if url:
                self.add(url, "img", is_lazy_loaded=(a.get("loading") or "").strip().lower() == "lazy",
                         alt_text=_clean(a.get("alt")), title=_clean(a.get("title")),
                         aria_label=_clean(a.get("aria-label")))
            return
        cands, lazy = _img_candidates(node, a)
        self.group(cands, "img", a, lazy=lazy)

    def picture(self, node: LexborNode) -> None:
        cands: list[SrcCandidate] = []
        lazy = False
        img_node: LexborNode | None = None
        for child in node.iter(include_text=False):
            if child.tag == "source":
                a = child.attributes
                media, typ = _clean(a.get("media")), _clean(a.get("type"))
                for attr in _SOURCE_SRCSET_ATTRS:
                    if a.get(attr):
                        lazy = lazy or attr != "srcset"
                        cands.extend(parse_srcset(a.get(attr) or "", media=media, type=typ, attribute=attr))
                        break
            elif child.tag == "img" and img_node is None:
                img_node = child
                img_cands, img_lazy = _img_candidates(child)
                cands.extend(img_cands)
                lazy = lazy or img_lazy
        self.group(cands, "picture", img_node or node, lazy=lazy)

    def group(self, cands: list[SrcCandidate], construct: str, node: LexborNode | dict[str, str | None], *,
              lazy: bool) -> None:
        resolved = [(c, u) for c in cands if (u := self.resolve(c.url))]
        if not resolved:
            return
        at = best_index([c for c, _ in resolved])
        best, best_url = resolved[at]
        if construct == "img" and best.attribute in _SRCSET_ATTRS:
            construct = "srcset"
        variants: list[dict[str, Any]] = []
        seen = {best_url}
        for i, (c, u) in enumerate(resolved):  # the others, in document order, each URL once
            if i != at and u not in seen:
                seen.add(u)
                variants.append(c.as_variant(u))
        self.add(best_url, construct, is_lazy_loaded=lazy, variants=variants, media_type=best.type, **_labels(node))

    def link(self, node: LexborNode, attrs: dict[str, str | None] | None = None) -> None:
        a = node.attributes if attrs is None else attrs
        rels = set((a.get("rel") or "").lower().split())
        href = a.get("href")
        if "stylesheet" in rels and "alternate" not in rels:
            self.stylesheet(self.resolve(href))
        if rels & ICON_RELS:
            self.add(self.resolve(href), "icon", media_type=_clean(a.get("type")), **_labels(a))
        if "image_src" in rels:
            self.add(self.resolve(href), "meta", media_type=_clean(a.get("type")))

    def meta(self, node: LexborNode, attrs: dict[str, str | None] | None = None) -> None:
        a = node.attributes if attrs is None else attrs
        content = a.get("content")
        key = (a.get("property") or a.get("name") or "").strip().lower()
        if key in META_IMAGE_KEYS:
            alt = self._meta_alt.get(key.split(":")[0])
            self.add(self.resolve(content), "meta", alt_text=_clean(alt))
        elif "image" in (a.get("itemprop") or "").lower().split():
            self.add(self.resolve(content), "meta")

    def inline_svg(self, node: LexborNode, inside: list[LexborNode] | None = None) -> None:
        """The <svg> as an image. `inside`: its descendants matching _SVG_INSIDE, when the caller has them."""
        markup = node.html or ""
        if not markup:
            return
        head = markup[: markup.find(">") + 1]
        if "xmlns=" not in head:
            markup = markup.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
        if "xlink:" in markup and "xmlns:xlink" not in head:
            markup = markup.replace("<svg", '<svg xmlns:xlink="http://www.w3.org/1999/xlink"', 1)
        data = markup.encode("utf-8")
        if inside is None:
            title_node = node.css_first("title")
        else:
            title_node = next((n for n in inside if n.tag == "title"), None)
        labels = _labels(node)
        if not labels.get("title") and title_node is not None:
            labels["title"] = _clean(title_node.text(deep=True))
        digest = hashlib.sha256(data).hexdigest()
        self.add(f"inline-svg:{digest}", "svg", data=data, media_type="image/svg+xml", **labels)

    def stylesheet(self, url: str | None) -> None:
        if url and same_origin(url, self.page_url) and url not in self.stylesheets:
            self.stylesheets.append(url)


def _parse(html: str | bytes) -> LexborHTMLParser:
    """Parse like a browser with scripting on: <head> stays intact and <noscript> content is raw text."""
    return LexborHTMLParser(html, scripting=True)


def _img_candidates(node: LexborNode, a: dict[str, str | None] | None = None) -> tuple[list[SrcCandidate], bool]:
    a = node.attributes if a is None else a
    lazy = (a.get("loading") or "").strip().lower() == "lazy"
    cands: list[SrcCandidate] = []
    lazy_src = _first_filled(a, LAZY_SRC_ATTRS)
    lazy_srcset = _first_filled(a, LAZY_SRCSET_ATTRS)
    if lazy_srcset:
        cands.extend(parse_srcset(a.get(lazy_srcset) or "", attribute=lazy_srcset))
    elif (a.get("srcset") or "").strip():
        cands.extend(parse_srcset(a.get("srcset") or "", attribute="srcset"))
    src = (a.get("src") or "").strip()
    placeholder = bool(lazy_src or lazy_srcset) and (not src or src.lower().startswith("data:"))
    if lazy_src:
        cands.append(SrcCandidate(url=a.get(lazy_src) or "", attribute=lazy_src))
    if src and not placeholder:
        cands.append(SrcCandidate(url=src, attribute="src"))
    return cands, lazy or bool(lazy_src or lazy_srcset)


def _first_filled(a: dict[str, str | None], names: tuple[str, ...]) -> str | None:
    """The first of `names` that `a` holds with more than whitespace."""
    for name in names:
        value = a.get(name)
        if value and value.strip():
            return name
    return None


def _labels(node: LexborNode | dict[str, str | None]) -> dict[str, Any]:
    a = node if isinstance(node, dict) else node.attributes  # callers pass the dict they already built
    return {"alt_text": _clean(a.get("alt")), "title": _clean(a.get("title")), "aria_label": _clean(a.get("aria-label"))}


def _has_ancestor(node: LexborNode, tags: set[str]) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag in tags:
            return True
        parent = parent.parent
    return False


def same_origin(a: str, b: str) -> bool:
    return _origin_key(a) == _origin_key(b)


@lru_cache(maxsize=1024)  # the page URL is asked about once per stylesheet link
def _origin_key(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def merge(found: list[Found]) -> list[Found]:
    """Dedupe by URL. The richest occurrence (most labels, then most specific construct) gives the construct;
    missing labels are filled from the others; variants are united; lazy if any occurrence was lazy."""
    groups: dict[str, list[Found]] = {}
    for f in found:
        groups.setdefault(f.url, []).append(f)
    merged: list[Found] = []
    for items in groups.values():
        if len(items) == 1:  # most images appear once: nothing to merge
            merged.append(items[0])
            continue
        first = items[0]
        primary = max(items, key=lambda f: (f.richness(), -f.order))
        out = Found(
            url=first.url,
            construct=primary.construct,
            order=first.order,
            alt_text=primary.alt_text,
            title=primary.title,
            aria_label=primary.aria_label,
            is_lazy_loaded=any(f.is_lazy_loaded for f in items),
            media_type=primary.media_type or next((f.media_type for f in items if f.media_type), None),
            data=first.data,
        )
        seen = {out.url}
        for f in sorted(items, key=lambda f: f is not primary):
            for name in ("alt_text", "title", "aria_label"):
                if getattr(out, name) is None and getattr(f, name):
                    setattr(out, name, getattr(f, name))
            for v in f.variants:
                if v["url"] not in seen:
                    seen.add(v["url"])
                    out.variants.append(v)
        merged.append(out)
    return merged


def discover(html: str | bytes, page_url: str, *, base_url: str | None = None, reference: bool = False) -> Discovery:
    """Every image reference in `html` (text, or UTF-8 bytes from `html_for_parser`). Relative references resolve against `base_url` when given, else the
    page's `<base href>`, else `page_url`; with none of them (a saved page, `page_url=""`) they are kept as
    written. `reference=True` is the slow walk the fast one is checked against: every node visited, every
    stylesheet through the full tokenizer."""
    walker = _Walker(page_url, base_url, reference=reference)
    walker.walk(_parse(html))
    return Discovery(page_url=page_url, base_url=walker.base_url, images=merge(walker.found), stylesheets=walker.stylesheets)


def css_images(css: bytes, css_url: str, *, charset: str | None, order_start: int) -> tuple[list[Found], list[str]]:
    """Images (construct "css", resolved against the stylesheet's URL) and @import URLs in a fetched stylesheet."""
    walker = _Walker(css_url)
    parsed = urls_in_stylesheet(css, charset=charset)
    out: list[Found] = []
    for u in parsed.images:
        resolved = walker.resolve(u)
        if resolved:
            out.append(Found(url=resolved, construct="data-uri" if resolved.startswith("data:") else "css", order=order_start + len(out)))
    imports = [r for r in (walker.resolve(u) for u in parsed.imports) if r]
    return out, imports
