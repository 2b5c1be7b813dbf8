"""Document extraction: every image in a PDF, PPTX, DOCX or XLSX, or a plain image file, as ExtractedImage.

    extract_document(data, *, filename, options) -> list[ExtractedImage]

The type comes from the bytes (`detect.sniff`); the filename is advisory. Plain images (PNG, JPEG, GIF,
WebP, BMP, TIFF, ICO, AVIF, JPEG 2000, SVG, EMF, WMF) give one image of source_kind/construct "file" and are
probed in this process (header-only, as web images are). Documents are parsed in the sandbox
(`imageextract.extract.sandbox`: a child process with memory, CPU and wall-clock limits) when
`options.sandbox` is true, otherwise in this process. Failures raise ExtractError with a stable code:

- unsupported_input: not a supported type, encrypted PDF, legacy/encrypted Office file, a plain image that
  is not an allowed image (or is a decompression bomb);
- document_too_large: over `document_max_bytes`, too many zip entries, or expanding beyond
  `max_zip_uncompressed_bytes`;
- page_limit_exceeded: more than `max_pages` PDF pages, slides or sheets;
- extraction_failed: corrupted or truncated files, zip bombs (overlapping entries, duplicate names,
  compression ratio), unsafe XML, a parser crash or running out of memory in the sandbox;
- timeout: the sandbox's CPU or wall-clock limit was hit.

Every image has `data` (unless its `error` says why not), `file_size`, `content_hash` and
`document_asset_hash` (SHA-256 hex), `document_occurrence_count` (how many reported images in this document
have the same asset hash), the probed width/height/aspect_ratio/format/color_space/has_alpha, and a unique
file name ("page-3-image-2.png", "slide-2-image-1.jpg", or the media name "image1.png").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from imageextract.extract.documents.assets import document_image, finish
from imageextract.extract.documents.detect import sniff
from imageextract.extract.documents.docx import extract_docx
from imageextract.extract.documents.ooxml import open_package
from imageextract.extract.documents.pdf import extract_pdf
from imageextract.extract.documents.pptx import extract_pptx
from imageextract.extract.documents.xlsx import extract_xlsx
from imageextract.extract.types import ExtractedImage, ExtractError, ExtractOptions, ImageList

log = logging.getLogger(__name__)
Emit = Callable[[list[ExtractedImage]], None]

__all__ = ["Collector", "extract_document", "extract_document_file", "extract_unsandboxed"]


def extract_document(data: bytes, *, filename: str | None, options: ExtractOptions) -> ImageList:
    """Every image in the document `data`. Synchronous; safe to call from several threads at once."""
    _check_size(data, options)
    kind = sniff(data, filename)
    if kind == "image":
        return ImageList(finish([_image_file(data, filename, options)]))
    if options.sandbox:
        from imageextract.extract.sandbox import run_document

        return run_document(data, filename=filename, options=options)
    return extract_unsandboxed(data, filename=filename, options=options)


def extract_document_file(
    path: Path, *, filename: str | None, options: ExtractOptions, on_image: Callable[[ExtractedImage], None] | None = None
) -> ImageList:
    """Every image in the document at `path`, which the parser reads itself (in the sandbox child when
    `options.sandbox`): the caller never holds the document in memory. With `on_image`, each distinct image
    is handed to it as soon as it arrives (page by page for a PDF) and its bytes are then dropped: the result
    keeps every image's metadata and `content_hash` but no `data`, so memory stays flat however many images
    the document holds."""
    filename = filename or path.name
    with path.open("rb") as fh:
        head = fh.read(4096)
    if path.stat().st_size > options.document_max_bytes:
        raise ExtractError(
            "document_too_large", f"the document is {path.stat().st_size} bytes; the limit is {options.document_max_bytes}"
        )
    if sniff(head, filename) == "image":
        images = extract_document(path.read_bytes(), filename=filename, options=options)
        collector = Collector(on_image)
        collector.add(list(images))
        return ImageList(collector.images, warnings=images.warnings)
    if options.sandbox:
        from imageextract.extract.sandbox import run_document

        return run_document(None, path=path, filename=filename, options=options, on_image=on_image)
    collector = Collector(on_image)
    rest = extract_unsandboxed(path, filename=filename, options=options, emit=collector.add)
    collector.add(list(rest))
    return collector.result(rest.warnings)


class Collector:
    """Gathers streamed images: bytes of an image seen before are re-attached from the first occurrence (or,
    with `on_image`, handed over once and dropped); `result` finishes the list (occurrences, unique names)."""

    def __init__(self, on_image: Callable[[ExtractedImage], None] | None = None) -> None:
        self.on_image = on_image
        self.images: list[ExtractedImage] = []
        self.known: dict[str, bytes | None] = {}

    def add(self, images: list[ExtractedImage]) -> None:
        for image in images:
            digest = image.content_hash
            if digest:
                if digest not in self.known and image.data is not None:
                    if self.on_image is not None:
                        self.on_image(image)
                        image.data = None
                    self.known[digest] = image.data
                elif digest in self.known:
                    image.data = self.known[digest]
            self.images.append(image)

    def result(self, warnings: list[str] | None = None) -> ImageList:
        return ImageList(finish(self.images), warnings=warnings)


def extract_unsandboxed(
    data: bytes | Path, *, filename: str | None, options: ExtractOptions, emit: Emit | None = None
) -> ImageList:
    """Parse `data` (bytes, or a path to the file) in this process. The sandbox child runs this; tests and
    benchmarks may call it directly.

    With `emit` (the sandbox child streaming its results), a PDF's images go to `emit` page by page and the
    returned list holds only what was not emitted; nothing is finished (`assets.finish`): the receiver, who
    sees every image, does that."""
    if isinstance(data, Path):
        size = data.stat().st_size
        if size > options.document_max_bytes:
            raise ExtractError(
                "document_too_large", f"the document is {size} bytes; the limit is {options.document_max_bytes}"
            )
        with data.open("rb") as fh:
            head = fh.read(4096)
        if sniff(head, filename) != "pdf":
            data = data.read_bytes()  # Office files and images are read whole (zip needs random access anyway)
    else:
        _check_size(data, options)
    kind = "pdf" if isinstance(data, Path) else sniff(data, filename)
    try:
        if kind == "image":
            assert isinstance(data, bytes)
            images = [_image_file(data, filename, options)]
        elif kind == "pdf":
            images = extract_pdf(data, options, emit=emit)
        else:
            assert isinstance(data, bytes)
            images = _extract_ooxml(data, options)
    except (ExtractError, MemoryError):
        raise
    except RecursionError:
        raise ExtractError("extraction_failed", "the document is nested too deeply to read") from None
    except Exception as exc:  # a parser bug or an input we did not foresee: a failed source, not a crash
        log.warning("document extraction failed", exc_info=True)
        raise ExtractError("extraction_failed", f"the document could not be read: {type(exc).__name__}: {exc}") from None
    if emit is not None:
        return ImageList(images, warnings=getattr(images, "warnings", None))
    return ImageList(finish(images), warnings=getattr(images, "warnings", None))


def _check_size(data: bytes, options: ExtractOptions) -> None:
    if len(data) > options.document_max_bytes:
        raise ExtractError(
            "document_too_large", f"the document is {len(data)} bytes; the limit is {options.document_max_bytes}"
        )


def _extract_ooxml(data: bytes, options: ExtractOptions) -> list[ExtractedImage]:
    pkg = open_package(data, options)
    try:
        kind, main = pkg.kind()
        handler = {"docx": extract_docx, "pptx": extract_pptx, "xlsx": extract_xlsx}[kind]
        return handler(pkg, main, options)
    finally:
        pkg.close()


def _image_file(data: bytes, filename: str | None, options: ExtractOptions) -> ExtractedImage:
    if len(data) > options.max_image_bytes:
        raise ExtractError("document_too_large", f"the image is {len(data)} bytes; the limit is {options.max_image_bytes}")
    declared = "image/svg+xml" if filename and filename.lower().endswith(".svg") else None
    image = document_image(
        data, options=options, original_name=filename or "image", media_type=declared, source_kind="file"
    )
    if image.error is not None or image.data is None:
        raise ExtractError("unsupported_input", f"not a supported image: {image.error or 'no data'}")
    return image
