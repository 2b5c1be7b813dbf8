"""Safe, unique file names for extracted images, and the per-image bookkeeping every source gets.

Names contain only ASCII letters, digits, '.', '-' and '_', never start with a dot, are at most 100
characters, and carry the extension of the probed format ("hero.jpg", "inline-svg-1.svg", "data-uri-2.png").
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from imageextract.extract.probe import EXTENSIONS
from imageextract.extract.types import ExtractedImage

MAX_NAME = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXT = re.compile(r"[A-Za-z0-9]{1,10}")
_KNOWN_EXTENSIONS = frozenset({*EXTENSIONS.values(), "jpeg", "jpe", "tiff", "svgz", "jfif", "cur"})


def safe_filename(name: str, *, extension: str | None = None, default: str = "image") -> str:
    """A file-system-safe version of `name`. With `extension`, a known image extension is replaced by it
    (any other suffix stays part of the stem: "photo.php" -> "photo.php.png")."""
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    name = name.replace("/", "_").replace("\\", "_")
    stem, dot, ext = name.rpartition(".")
    if not dot or not _EXT.fullmatch(ext) or not stem.strip("._-"):
        stem, ext = name, ""
    if extension is not None:
        if ext and ext.lower() not in _KNOWN_EXTENSIONS:
            stem = name
        ext = extension
    stem = _UNSAFE.sub("-", stem).strip("-._") or default
    ext = _UNSAFE.sub("", ext).strip(".").lower()[:10]
    stem = stem[: MAX_NAME - len(ext) - 1] if ext else stem[:MAX_NAME]
    return f"{stem}.{ext}" if ext else stem


def name_from_url(url: str, extension: str | None) -> str:
    path = unquote(urlsplit(url).path)
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return safe_filename(last, extension=extension)


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name-2`, `name-3`... whichever is not yet in `taken` (compared case-insensitively)."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    candidate, n = name, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
    taken.add(candidate.lower())
    return candidate


def finalise_images(images: Iterable[ExtractedImage]) -> None:
    """Fill content_hash, file_size and a unique safe filename on every image (in place)."""
    taken: set[str] = set()
    counters: dict[str, int] = {}
    for image in images:
        if image.data is not None:
            image.content_hash = image.content_hash or hashlib.sha256(image.data).hexdigest()
            image.file_size = len(image.data)
        ext = EXTENSIONS.get(image.format or "", None)
        if image.filename:
            name = safe_filename(image.filename, extension=ext)
        elif image.construct in ("svg", "data-uri") or not image.source_url:
            kind = _kind(image)
            counters[kind] = counters.get(kind, 0) + 1
            name = f"{kind}-{counters[kind]}" + (f".{ext}" if ext else ("" if kind != "inline-svg" else ".svg"))
        else:
            name = name_from_url(image.source_url, ext)
        image.filename = unique_name(name, taken)


def _kind(image: ExtractedImage) -> str:
    if image.construct == "svg":
        return "inline-svg"
    if image.construct == "data-uri":
        return "data-uri"
    if image.document_page is not None:
        return f"page-{image.document_page}-image"
    if image.document_slide is not None:
        return f"slide-{image.document_slide}-image"
    if image.sheet:
        return safe_filename(image.sheet, default="sheet") + "-image"
    return "image"
