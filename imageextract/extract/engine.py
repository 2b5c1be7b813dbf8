"""The engine's front door: one source (URL or document) in, one SourceResult out. Never raises.

- `extract_url(url, options)`: fetch the page through a SafeFetcher. HTML is searched for images
  (`web.extract_page`); a URL that is itself an image is one image of construct "file".
- `extract_document_bytes(data, options, *, filename)`: hand document bytes to
  `imageextract.extract.documents.extract_document` (synchronous; it runs its own sandbox) in a thread.
- `extract_source(source, options, *, filename=None, base_url=None)`: dispatch an http(s) URL or a local file
  path (a document, an image, or a saved web page whose relative references resolve against `base_url`).
- `discover_source(source, options, *, base_url=None)`: discovery only, no image fetched (`--no-fetch`).

Every failure becomes `SourceResult(status="failed", error_code=<stable code>, transient=<may pass later>)`;
every image with bytes gets `content_hash`, `file_size` and a unique safe `filename`; a document read with
reservations carries `SourceResult.warnings` ("document_repaired", ...).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from imageextract.extract.discover import Found, html_for_parser
from imageextract.extract.fetcher import TRANSIENT_STATUSES, SafeFetcher
from imageextract.extract.naming import finalise_images
from imageextract.extract.ssrf import parse_url
from imageextract.extract.types import (
    ERROR_CODES,
    ExtractedImage,
    ExtractError,
    ExtractOptions,
    ImageList,
    SourceResult,
)
from imageextract.extract.web import (
    ACCEPT_PAGE,
    HTML_TYPES,
    discover_page,
    extract_page,
    fetch_images,
    filter_by_size,
    probe_into,
)

log = logging.getLogger(__name__)

_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


async def extract_url(url: str, options: ExtractOptions) -> SourceResult:
    """Every image on the web page at `url` (or the image at `url`)."""
    return await _run(url, _extract_url(url, options))


async def extract_document_bytes(data: bytes, options: ExtractOptions, *, filename: str | None = None) -> SourceResult:
    """Every image in a document given as bytes (an upload); `filename` helps detect the format."""
    return await _run(filename or "document", _extract_document(data, options, filename))


async def extract_document_file(
    path: Path,
    options: ExtractOptions,
    *,
    filename: str | None = None,
    on_image: Callable[[ExtractedImage], None] | None = None,
) -> SourceResult:
    """Every image in the document file at `path`, read by the parser itself (never loaded here); with
    `on_image`, each distinct image's bytes are handed over as they arrive and not kept
    (`documents.extract_document_file`): a large document costs a page's images of memory, not all of them."""
    return await _run(str(filename or path.name), _extract_file(path, options, filename, on_image))


async def extract_source(
    source: str, options: ExtractOptions, *, filename: str | None = None, base_url: str | None = None
) -> SourceResult:
    """Dispatch `source`: an http(s) URL, or a path to a local file (a document, an image or a saved web page;
    a saved page's relative references resolve against `base_url`, else its own `<base href>`)."""
    if _URL_SCHEME.match(source) and not _WINDOWS_DRIVE.match(source):
        if source.split(":", 1)[0].lower() in ("http", "https"):
            return await extract_url(source, options)
        return await _run(source, _refuse_url(source))
    return await _run(source, _extract_path(Path(source), options, filename, base_url))


async def discover_source(
    source: str, options: ExtractOptions, *, base_url: str | None = None
) -> tuple[SourceResult, list[Found] | None]:
    """Image references on a web page (a URL, fetched, or a saved page), without fetching any image or
    stylesheet: (result, found). A URL that answers with an image is one reference (construct "file"). `found`
    is None for a local file that is not a web page (a document or an image: the caller extracts it instead);
    a failure is in `result`."""
    started = time.monotonic()
    try:
        if _URL_SCHEME.match(source) and not _WINDOWS_DRIVE.match(source):
            if source.split(":", 1)[0].lower() not in ("http", "https"):
                await _refuse_url(source)
            async with SafeFetcher(options) as fetcher:
                page = await fetcher.get(source, max_bytes=options.max_page_bytes, headers=ACCEPT_PAGE)
            if not page.ok:
                raise ExtractError("fetch_failed", f"HTTP {page.status} from {page.url[:200]}",
                                   transient=page.status in TRANSIENT_STATUSES)
            if not (page.content_type in HTML_TYPES or _looks_like_html(page.content)):  # the URL is the image
                found = [Found(url=page.url, construct="file", order=0, media_type=page.content_type)]
                return SourceResult(source=source, status="done", duration_ms=_ms(started)), found
            html, page_url = html_for_parser(page.content, page.charset), page.url
        else:
            data = await _read_path(Path(source), options)
            if not _is_html(Path(source), data):
                return SourceResult(source=source, status="done", duration_ms=_ms(started)), None
            html, page_url = html_for_parser(data), base_url or ""
        found = await discover_page(None, html, page_url, base_url=base_url)
        return SourceResult(source=source, status="done", duration_ms=_ms(started)), found
    except ExtractError as exc:
        failed = _failed(source, exc.code, exc.message, started)
        failed.transient = exc.transient
        return failed, None


# Internals -------------------------------------------------------------------------------------


async def _run(source: str, work: Awaitable[list[ExtractedImage]]) -> SourceResult:
    started = time.monotonic()
    try:
        images = await work
        finalise_images(images)
        warnings = list(getattr(images, "warnings", []))
        return SourceResult(source=source, status="done", images=list(images), duration_ms=_ms(started), warnings=warnings)
    except ExtractError as exc:
        code = exc.code if exc.code in ERROR_CODES else "extraction_failed"
        failed = _failed(source, code, exc.message, started)
        failed.transient = exc.transient
        return failed
    except Exception as exc:  # the contract: a source fails as data, never as a crash
        log.exception("extraction of %s failed", source[:200])
        return _failed(source, "extraction_failed", f"{type(exc).__name__}: {exc}", started)


def _failed(source: str, code: str, message: str, started: float) -> SourceResult:
    return SourceResult(source=source, status="failed", error_code=code, error_message=message, duration_ms=_ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


async def _refuse_url(source: str) -> list[ExtractedImage]:
    parse_url(source)  # raises ssrf_blocked / unsupported_input with the precise reason
    raise ExtractError("unsupported_input", f"cannot extract from {source[:200]!r}")


async def _extract_url(url: str, options: ExtractOptions) -> list[ExtractedImage]:
    def limit(media_type: str | None) -> int:
        if media_type and (media_type.startswith("image/") or media_type == "application/octet-stream"):
            return options.max_image_bytes
        return options.max_page_bytes

    async with SafeFetcher(options) as fetcher:
        page = await fetcher.get(url, max_bytes=limit, headers=ACCEPT_PAGE)
        if not page.ok:
            raise ExtractError(
                "fetch_failed", f"HTTP {page.status} from {page.url[:200]}", transient=page.status in TRANSIENT_STATUSES
            )
        media = page.content_type
        if media in HTML_TYPES or (media in (None, "text/plain") and _looks_like_html(page.content)):
            return await extract_page(fetcher, page, options)
        if media is None or media.startswith("image/") or media == "application/octet-stream":
            image = ExtractedImage(
                source_url=page.url,
                source_kind="web",
                filename="",
                construct="file",
                page_url=None,
                media_type=media,
            )
            await probe_into(image, page.content, media, options)
            if image.error is not None:
                raise ExtractError("unsupported_input", f"{page.url[:200]} is not a supported image: {image.error}")
            return filter_by_size([image], options)
        raise ExtractError("unsupported_input", f"{page.url[:200]} is {media}, neither a web page nor an image")


def _looks_like_html(data: bytes) -> bool:
    head = data[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<body" in head or b"<head" in head


_HTML_SUFFIXES = (".html", ".htm", ".xhtml", ".shtml")


def _is_html(path: Path, data: bytes) -> bool:
    return path.suffix.lower() in _HTML_SUFFIXES or _looks_like_html(data)


async def _extract_path(
    path: Path, options: ExtractOptions, filename: str | None, base_url: str | None = None
) -> list[ExtractedImage]:
    data = await _read_path(path, options)
    if _is_html(path, data):
        return await _extract_saved_page(data, options, base_url)
    return await _extract_document(data, options, filename or path.name)


async def _extract_saved_page(data: bytes, options: ExtractOptions, base_url: str | None) -> list[ExtractedImage]:
    page_url = base_url or ""
    async with SafeFetcher(options) as fetcher:
        found = await discover_page(fetcher if base_url else None, html_for_parser(data), page_url, base_url=base_url)
        found = found[: max(0, options.max_images_per_page)]
        images = await fetch_images(fetcher, found, page_url=page_url or None, options=options)
    return filter_by_size(images, options)


async def _read_path(path: Path, options: ExtractOptions) -> bytes:
    try:
        if not path.is_file():
            raise ExtractError("unsupported_input", f"{path} is not a readable file")
        size = path.stat().st_size
        if size > options.document_max_bytes:
            raise ExtractError("document_too_large", f"{path.name} is {size} bytes; the limit is {options.document_max_bytes}")
        return await asyncio.to_thread(_read_capped, path, options.document_max_bytes)
    except OSError as exc:
        raise ExtractError("unsupported_input", f"cannot read {path}: {exc.strerror or exc}") from None


async def _extract_file(
    path: Path, options: ExtractOptions, filename: str | None, on_image: Callable[[ExtractedImage], None] | None
) -> list[ExtractedImage]:
    try:
        from imageextract.extract.documents import extract_document_file
    except ImportError as exc:
        raise ExtractError("unsupported_input", f"document extraction is not available: {exc}") from None
    try:
        images = await asyncio.to_thread(extract_document_file, path, filename=filename, options=options, on_image=on_image)
    except OSError as exc:
        raise ExtractError("unsupported_input", f"cannot read {path}: {exc.strerror or exc}") from None
    return ImageList(filter_by_size(list(images), options), warnings=images.warnings)


def _read_capped(path: Path, cap: int) -> bytes:
    with path.open("rb") as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:  # the file grew after stat()
        raise ExtractError("document_too_large", f"{path.name} is larger than {cap} bytes")
    return data


async def _extract_document(data: bytes, options: ExtractOptions, filename: str | None) -> list[ExtractedImage]:
    if len(data) > options.document_max_bytes:
        raise ExtractError("document_too_large", f"document is {len(data)} bytes; the limit is {options.document_max_bytes}")
    try:
        from imageextract.extract.documents import extract_document
    except ImportError as exc:
        raise ExtractError("unsupported_input", f"document extraction is not available: {exc}") from None
    images = await asyncio.to_thread(extract_document, data, filename=filename, options=options)
    return ImageList(filter_by_size(list(images), options), warnings=getattr(images, "warnings", None))
