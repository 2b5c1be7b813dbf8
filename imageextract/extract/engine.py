"""The engine's front door: one source (URL or document) in, one SourceResult out. Never raises.

- `extract_url(url, options)`: fetch the page through a SafeFetcher. HTML is searched for images
  (`web.extract_page`); a URL that is itself an image is one image of construct "file".
- `extract_document_bytes(data, options, *, filename)`: hand document bytes to
  `imageextract.extract.documents.extract_document` (synchronous; it runs its own sandbox) in a thread.
- `extract_source(source, options, *, filename=None)`: dispatch an http(s) URL or a local file path.

Every failure becomes `SourceResult(status="failed", error_code=<stable code>)`; every image with bytes gets
`content_hash`, `file_size` and a unique safe `filename`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable
from pathlib import Path

from imageextract.extract.fetcher import SafeFetcher
from imageextract.extract.naming import finalise_images
from imageextract.extract.ssrf import parse_url
from imageextract.extract.types import ERROR_CODES, ExtractedImage, ExtractError, ExtractOptions, SourceResult
from imageextract.extract.web import ACCEPT_PAGE, HTML_TYPES, extract_page, filter_by_size, probe_into

log = logging.getLogger(__name__)

_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


async def extract_url(url: str, options: ExtractOptions) -> SourceResult:
    """Every image on the web page at `url` (or the image at `url`)."""
    return await _run(url, _extract_url(url, options))


async def extract_document_bytes(data: bytes, options: ExtractOptions, *, filename: str | None = None) -> SourceResult:
    """Every image in a document given as bytes (an upload); `filename` helps detect the format."""
    return await _run(filename or "document", _extract_document(data, options, filename))


async def extract_source(source: str, options: ExtractOptions, *, filename: str | None = None) -> SourceResult:
    """Dispatch `source`: an http(s) URL, or a path to a local file (a document or an image)."""
    if _URL_SCHEME.match(source) and not _WINDOWS_DRIVE.match(source):
        if source.split(":", 1)[0].lower() in ("http", "https"):
            return await extract_url(source, options)
        return await _run(source, _refuse_url(source))
    return await _run(source, _extract_path(Path(source), options, filename))


# Internals -------------------------------------------------------------------------------------


async def _run(source: str, work: Awaitable[list[ExtractedImage]]) -> SourceResult:
    started = time.monotonic()
    try:
        images = await work
        finalise_images(images)
        return SourceResult(source=source, status="done", images=images, duration_ms=_ms(started))
    except ExtractError as exc:
        code = exc.code if exc.code in ERROR_CODES else "extraction_failed"
        return _failed(source, code, exc.message, started)
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
            raise ExtractError("fetch_failed", f"HTTP {page.status} from {page.url[:200]}")
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


async def _extract_path(path: Path, options: ExtractOptions, filename: str | None) -> list[ExtractedImage]:
    try:
        if not path.is_file():
            raise ExtractError("unsupported_input", f"{path} is not a readable file")
        size = path.stat().st_size
        if size > options.document_max_bytes:
            raise ExtractError("document_too_large", f"{path.name} is {size} bytes; the limit is {options.document_max_bytes}")
        data = await asyncio.to_thread(_read_capped, path, options.document_max_bytes)
    except OSError as exc:
        raise ExtractError("unsupported_input", f"cannot read {path}: {exc.strerror or exc}") from None
    return await _extract_document(data, options, filename or path.name)


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
    return filter_by_size(list(images), options)
