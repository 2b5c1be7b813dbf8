"""The engine's data types: what goes in (options) and what comes out (images, per-source results).

This module is the contract between the pure engine (`imageextract.extract`) and everything that
calls it (the CLI, the Dramatiq job pipeline). It imports nothing from the database or web layers.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

# Stable per-source error codes. Callers store these on job items and show them to users.
ErrorCode = Literal[
    "ssrf_blocked",
    "fetch_failed",
    "timeout",
    "unsupported_input",
    "document_too_large",
    "page_limit_exceeded",
    "extraction_failed",
]
ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)

# Where an image was found on a web page.
# In documents: "document" (on a page or slide), "layout" / "master" / "notes" (PPTX templates and notes pages).
Construct = Literal[
    "img", "srcset", "picture", "css", "meta", "icon", "svg", "data-uri", "video", "document", "file", "layout",
    "master", "notes",
]


class ExtractError(Exception):
    """A per-source failure with a stable code. Never a crash: the caller records it as data.

    `transient` says whether trying the same source again later may succeed (a connection reset, a DNS server
    that did not answer, HTTP 503); it is decided where the failure happens, from the exception's type or the
    HTTP status, never from message text.
    """

    def __init__(self, code: ErrorCode, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class ExtractOptions:
    """Limits and switches for one extraction. Built from Settings by the caller; never read from env here."""

    # Network
    ssrf_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_redirects: int = 5
    max_page_bytes: int = 10 * 1024 * 1024
    max_image_bytes: int = 50 * 1024 * 1024
    max_images_per_page: int = 1000
    image_fetch_concurrency: int = 8
    user_agent: str = "ImageExtract/0.1 (+https://imageextract.example/bot)"
    # Documents
    document_max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 1000
    max_zip_entries: int = 10_000
    max_zip_uncompressed_bytes: int = 1024 * 1024 * 1024
    max_zip_ratio: float = 200.0
    max_image_pixels: int = 178_956_970  # Pillow's default bomb threshold
    # Sandbox (child process for untrusted parsing)
    sandbox: bool = True
    sandbox_memory_bytes: int = 2 * 1024 * 1024 * 1024
    sandbox_cpu_seconds: int = 120
    sandbox_wall_seconds: float = 180.0
    sandbox_max_tasks: int = 10_000  # a backstop; children are recycled by memory (sandbox_recycle_bytes)
    sandbox_recycle_bytes: int = 512 * 1024 * 1024  # a child whose RSS passes this after a task is replaced
    page_seconds: float = 30.0  # per-page budget inside one document: a page past it is cut short (a warning)
    # Filters
    min_width: int = 0
    min_height: int = 0


@dataclass
class ExtractedImage:
    """One image found in a source, with the ImageResult fields of /api/v1/jobs/:id/result plus provenance.

    `data` holds the image bytes when they were fetched or extracted; it is never serialised by `to_dict`.
    """

    source_url: str | None  # absolute URL for web images; None for document assets and data: URIs
    source_kind: Literal["web", "document", "file"]
    filename: str
    width: int | None = None
    height: int | None = None
    aspect_ratio: float | None = None
    format: str | None = None  # jpeg, png, gif, webp, svg, avif, bmp, tiff, ico, emf, wmf, ...
    file_size: int | None = None
    color_space: str | None = None  # srgb, grayscale, cmyk, indexed, lab, ...
    has_alpha: bool | None = None
    alt_text: str | None = None
    title: str | None = None
    aria_label: str | None = None
    is_lazy_loaded: bool = False
    document_page: int | None = None
    document_slide: int | None = None
    document_asset_hash: str | None = None  # SHA-256 hex of the bytes
    document_occurrence_count: int | None = None
    content_hash: str | None = None  # SHA-256 hex of `data` (web and document alike)
    # Provenance
    construct: str | None = None  # one of Construct
    page_url: str | None = None  # the page the image was found on
    variants: list[dict[str, Any]] = field(default_factory=list)  # other srcset candidates {url, descriptor, width, density, media, type}
    sheet: str | None = None  # XLSX sheet name
    anchor_cell: str | None = None  # XLSX anchor, e.g. "B3"
    media_type: str | None = None  # MIME type as served/declared
    error: str | None = None  # a per-image probe problem (the image is still reported)
    data: bytes | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "data"}
        return out


class ImageList(list[ExtractedImage]):
    """The images of one document plus its document-level `warnings` (stable codes such as
    "document_repaired", "page_unreadable", "jpx_not_decoded"): the document was read, with reservations."""

    def __init__(self, images: Any = (), *, warnings: list[str] | None = None) -> None:
        super().__init__(images)
        self.warnings: list[str] = list(warnings or [])


@dataclass
class SourceResult:
    """The outcome of one source (URL or document): `done` with images, or `failed` with a code."""

    source: str
    status: Literal["done", "failed"]
    images: list[ExtractedImage] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    duration_ms: int | None = None
    transient: bool = False  # a failure that may pass if the source is tried again later (ExtractError.transient)
    warnings: list[str] = field(default_factory=list)  # e.g. "document_repaired": done, but the source was damaged

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "status": self.status,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "transient": self.transient,
            "warnings": list(self.warnings),
            "duration_ms": self.duration_ms,
            "images": [i.to_dict() for i in self.images],
        }
