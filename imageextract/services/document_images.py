"""A document item's images, streamed to storage as they are found: memory follows a page, not the document.

`extract(runtime, item, options)` takes the upload's file (the stored file itself on local storage, else a
temporary copy made in chunks), checks what arrived (size and magic bytes, `staged_files.arrival_problem` on
the file's head), and runs the engine on the file (`engine.extract_document_file`: the sandbox child opens it; this process never holds the document).
Each distinct image is handed to `_Sink` as its page arrives, on the extraction thread; the sink derives the
image's content-addressed key from its bytes, passes the write to the event loop and drops the bytes. Writes
in flight are bounded (`STORE_CONCURRENCY` writes, `IN_FLIGHT_BYTES` bytes): when storage is slower than the
parser, the parser waits. The result (`StreamedResult`) keeps every image's metadata and the key of its
bytes, never the bytes.

Deletion race (see `stored_objects`): bytes written before the completing transaction references them may be
deleted by a concurrent release that committed first; a URL item puts them back from memory
(`stored_objects.ensure_stored`). A streamed document no longer has them, so `ensure_stored` here finds the
keys that vanished after that commit and extracts the upload again, writing only those keys. The race needs
a job sharing the same bytes to be deleted in that window, so the second extraction is rare; it is correct
because the completing commit (touching every key's row) serialised against every release that could still
delete them, and parsing the same bytes yields the same images.

A document that fails, or a storage write that fails, releases the keys this attempt wrote (only unreferenced
bytes are deleted), so a failed attempt leaves no orphans; a storage failure is raised, as before streaming,
so the message is delivered again rather than the item failing for a reason of ours.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imageextract.extract import engine
from imageextract.extract.types import ExtractedImage, ExtractOptions, SourceResult
from imageextract.extract.web import filter_by_size
from imageextract.services import stored_objects
from imageextract.services.staged_files import HEAD_BYTES, arrival_problem
from imageextract.storage import StorageNotFound, content_key

log = logging.getLogger("imageextract.pipeline")

STORE_CONCURRENCY = 16  # image writes in flight per item (each is a thread hop locally, a request on S3)
IN_FLIGHT_BYTES = 32 * 1024 * 1024  # image bytes handed to storage and not yet written; one bigger image still goes
_EXT = {"jpeg": "jpg", "svg": "svg", "png": "png", "gif": "gif", "webp": "webp", "avif": "avif", "bmp": "bmp",
        "tiff": "tif", "ico": "ico", "emf": "emf", "wmf": "wmf"}


def image_key(data: bytes, format: str | None) -> str:
    """The content-addressed storage key of an image's bytes."""
    return content_key(data, namespace="images", ext=_EXT.get((format or "").lower()))


@dataclass
class StreamedResult(SourceResult):
    """A document's result whose image bytes are already in storage: `keys` maps an image's content_hash to
    the key of its bytes (an image without one has no bytes: its `error` says why)."""

    keys: dict[str, str] = field(default_factory=dict)

    def stored(self) -> list[tuple[ExtractedImage, str | None]]:
        """(image, storage key) in the images' order, as the pipeline stores them in the database."""
        return [(img, self.keys.get(img.content_hash or "")) for img in self.images]


class _StoreFailed(Exception):
    """Raised on the extraction thread to stop the parser once a storage write has failed."""


class _Sink:
    """`on_image` for the engine: runs on the extraction thread, hands each image's write to `loop`."""

    def __init__(self, storage: Any, loop: asyncio.AbstractEventLoop, options: ExtractOptions,
                 only: set[str] | None = None) -> None:
        self.storage = storage
        self.loop = loop
        self.options = options
        self.only = only  # repair: write only these keys
        self.keys: dict[str, str] = {}
        self.written: list[str] = []  # keys this sink put (the event loop appends; read after `drain`)
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        self.pending: set[concurrent.futures.Future[None]] = set()
        self.pending_bytes = 0

    def __call__(self, image: ExtractedImage) -> None:
        data = image.data
        if self.error is not None:
            raise _StoreFailed("a storage write failed") from self.error
        if not data or not image.content_hash or not filter_by_size([image], self.options):
            return  # no bytes, or an image the engine drops (min_width/min_height): nothing to store
        key = image_key(data, image.format)  # hashed here, off the event loop
        self.keys[image.content_hash] = key
        if self.only is not None and key not in self.only:
            return
        with self.cond:
            while self.pending and (len(self.pending) >= STORE_CONCURRENCY
                                    or self.pending_bytes + len(data) > IN_FLIGHT_BYTES):
                self.cond.wait(1.0)
                if self.loop.is_closed():
                    raise _StoreFailed("the event loop closed")
            self.pending_bytes += len(data)
            future = asyncio.run_coroutine_threadsafe(self._store(key, data, image.media_type), self.loop)
            self.pending.add(future)
        future.add_done_callback(functools.partial(self._done, size=len(data)))

    async def _store(self, key: str, data: bytes, media_type: str | None) -> None:
        if not await self.storage.exists(key):
            await self.storage.put(key, data, content_type=media_type)
            self.written.append(key)

    def _done(self, future: concurrent.futures.Future[None], *, size: int) -> None:
        with self.cond:
            self.pending.discard(future)
            self.pending_bytes -= size
            if not future.cancelled() and future.exception() is not None and self.error is None:
                self.error = future.exception()
            self.cond.notify_all()

    async def drain(self) -> None:
        """Wait for the writes still in flight (after the extraction thread has returned)."""
        with self.cond:
            pending = list(self.pending)
        if pending:
            await asyncio.gather(*(asyncio.wrap_future(f) for f in pending), return_exceptions=True)


async def extract(runtime: Any, item: Any, options: ExtractOptions) -> SourceResult:
    """Extract the document item `item` (its upload), its images' bytes written to storage as they arrive."""
    storage = runtime.storage
    options = _document_options(options, item)
    with _upload_file(storage, item.upload_key) as (path, copy):
        try:
            head, size = await (_copy_upload(storage, item.upload_key, path, item.upload_size) if copy
                                else _head_and_size(path))
        except Exception as exc:
            log.exception("upload %s missing for item %s", item.upload_key, item.id)
            return SourceResult(source=item.source_label, status="failed",
                                error_code="upload_missing" if isinstance(exc, StorageNotFound) else "extraction_failed",
                                error_message=f"uploaded file is not available: {exc}")
        problem = arrival_problem(head, item.upload_size, size=size)  # a presigned upload is checked only now
        if problem is not None:
            return SourceResult(source=item.source_label, status="failed", error_code=problem[0],
                                error_message=problem[1])
        sink = _Sink(storage, asyncio.get_running_loop(), options)
        try:
            result = await engine.extract_document_file(path, options, filename=item.source_label, on_image=sink)
        finally:
            await sink.drain()
    if sink.error is not None:
        await _release_quietly(storage, sink.written)
        raise sink.error
    if result.status != "done":
        await _release_quietly(storage, sink.written)
        return result
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(SourceResult)}
    return StreamedResult(**fields, keys=sink.keys)


async def ensure_stored(runtime: Any, item: Any, stored: list[tuple[ExtractedImage, str | None]]) -> int:
    """After the commit that referenced `stored`: put back bytes a concurrent release removed. Images that
    carry their bytes (URL items) are put back from memory; streamed ones by extracting the upload again."""
    storage = runtime.storage
    blobs = {key: img.data for img, key in stored if key and img.data is not None}
    restored = await stored_objects.ensure_stored(storage, blobs, content_types={
        key: img.media_type for img, key in stored if key and img.data is not None})
    streamed = {key for img, key in stored if key and img.data is None}
    missing = await storage.missing(streamed) if streamed else set()
    if missing:
        restored += await _restore(runtime, item, missing)
    return restored


async def _restore(runtime: Any, item: Any, missing: set[str]) -> int:
    """Extract the upload again and write the images whose keys are in `missing`."""
    log.warning("item %s: %d stored image(s) were released by a concurrent delete; extracting again to restore",
                item.id, len(missing))
    storage = runtime.storage
    options = _document_options(runtime.settings.extract_options(), item)
    with _upload_file(storage, item.upload_key) as (path, copy):
        try:
            await (_copy_upload(storage, item.upload_key, path, None) if copy else _head_and_size(path))
        except Exception:
            log.exception("item %s: could not restore %d image(s): the upload is gone", item.id, len(missing))
            return 0
        sink = _Sink(storage, asyncio.get_running_loop(), options, only=missing)
        try:
            result = await engine.extract_document_file(path, options, filename=item.source_label, on_image=sink)
        finally:
            await sink.drain()
    left = missing - set(sink.keys.values())  # keys the second extraction did not find again
    if sink.error is not None or result.status != "done" or left:
        log.error("item %s: could not restore %d image(s): %s", item.id, len(left) or len(missing),
                  sink.error or result.error_message or "not found again")
    return len(set(sink.written))


def _document_options(options: ExtractOptions, item: Any) -> ExtractOptions:
    """The plan capped the upload's size at submission (and `arrival_problem` holds it to that): the engine's
    own document cap (50 MB by default) must not refuse what the plan allowed."""
    if item.upload_size and item.upload_size > options.document_max_bytes:
        return dataclasses.replace(options, document_max_bytes=item.upload_size)
    return options


@contextlib.contextmanager
def _upload_file(storage: Any, key: str) -> Iterator[tuple[Path, bool]]:
    """Where the sandbox child reads the upload: the stored file itself when storage is a local directory
    (objects are written once, atomically, and never changed), else a temporary file to copy it to first
    (`copy` True)."""
    local = getattr(storage, "local_path", None)
    if local is not None:
        yield local(key), False
        return
    with tempfile.TemporaryDirectory(prefix="imageextract-doc-") as tmp:
        yield Path(tmp) / "document", True


async def _head_and_size(path: Path) -> tuple[bytes, int]:
    """(its first HEAD_BYTES, its size) of a file already on disk; StorageNotFound when it is not there."""

    def read() -> tuple[bytes, int]:
        try:
            with path.open("rb") as fh:
                return fh.read(HEAD_BYTES), os.fstat(fh.fileno()).st_size
        except FileNotFoundError:
            raise StorageNotFound(path.name) from None

    return await asyncio.to_thread(read)


async def _copy_upload(storage: Any, key: str, path: Path, declared: int | None) -> tuple[bytes, int]:
    """Copy the object `key` to `path` in chunks; (its first HEAD_BYTES, its size). Stops reading once the
    size passes `declared` (the arrival check then refuses it)."""
    head = bytearray()
    size = 0
    with path.open("wb") as fh:
        async with contextlib.aclosing(storage.stream(key)) as chunks:
            async for chunk in chunks:
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                size += len(chunk)
                await asyncio.to_thread(fh.write, chunk)
                if declared is not None and size > declared:
                    break
    return bytes(head), size


async def _release_quietly(storage: Any, keys: Iterable[str]) -> None:
    """Free what a failed attempt wrote (unreferenced bytes only); a failure here leaves orphans, logged."""
    try:
        await stored_objects.release(storage, keys)
    except Exception:
        log.exception("could not release the images of a failed document")
