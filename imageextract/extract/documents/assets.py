"""From extracted bytes to `ExtractedImage` records: probing, hashes, file names and occurrence counts.

Every document image gets `document_asset_hash` (SHA-256 hex of the asset bytes, also set when the bytes could
not be probed), `file_size`, and, when the bytes are a probed, allowed image under `options.max_image_bytes`,
`data` and `content_hash` (equal to the asset hash) plus the probed dimensions, format and colour data. Bytes
that fail the probe are reported with `error` set and no `data`, as the web half does.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections import Counter
from typing import Any

from imageextract.extract.naming import safe_filename, unique_name
from imageextract.extract.probe import ProbeError, aspect_ratio, probe_image
from imageextract.extract.types import ExtractedImage, ExtractOptions

# File-name extensions inside documents -> our format names (used only when the probe cannot tell).
_EXT_FORMATS = {
    "jpg": "jpeg",
    "jpeg": "jpeg",
    "jpe": "jpeg",
    "png": "png",
    "gif": "gif",
    "bmp": "bmp",
    "tif": "tiff",
    "tiff": "tiff",
    "webp": "webp",
    "svg": "svg",
    "emf": "emf",
    "wmf": "wmf",
    "emz": "emz",
    "wmz": "wmz",
    "wdp": "jxr",
    "jxr": "jxr",
    "ico": "ico",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document_image(
    data: bytes,
    *,
    options: ExtractOptions,
    stem: str | None = None,
    original_name: str | None = None,
    media_type: str | None = None,
    source_kind: str = "document",
    construct: str | None = None,
    **fields: Any,
) -> ExtractedImage:
    """An ExtractedImage for `data`, named `<stem>.<ext>` or after `original_name` with the probed extension."""
    digest = sha256(data)
    image = ExtractedImage(
        source_url=None,
        source_kind=source_kind,  # type: ignore[arg-type]
        filename="",
        construct=construct or ("file" if source_kind == "file" else "document"),
        document_asset_hash=digest,
        file_size=len(data),
        **fields,
    )
    original_ext = posixpath.splitext(original_name or "")[1].lstrip(".").lower()
    try:
        info = probe_image(data, media_type=media_type, options=options)
    except ProbeError as exc:
        image.error = f"{exc.code}: {exc.message}"
        image.media_type = media_type
        image.format = _EXT_FORMATS.get(original_ext)
        extension = original_ext or "bin"
    else:
        image.width, image.height = info.width, info.height
        image.aspect_ratio = aspect_ratio(info.width, info.height)
        image.format = info.format
        image.color_space = info.color_space
        image.has_alpha = info.has_alpha
        image.media_type = info.media_type
        extension = info.extension
        if len(data) > options.max_image_bytes:
            image.error = f"image is {len(data)} bytes; the limit is {options.max_image_bytes}"
        else:
            image.data = data
            image.content_hash = digest
    if original_name:
        image.filename = safe_filename(posixpath.basename(original_name), extension=extension)
    else:
        image.filename = safe_filename(f"{stem or 'image'}.{extension}")
    return image


def failed_image(message: str, *, stem: str, construct: str | None = None, **fields: Any) -> ExtractedImage:
    """A picture we know is there but could not turn into bytes (too many pixels, undecodable stream)."""
    return ExtractedImage(
        source_url=None,
        source_kind="document",
        filename=safe_filename(stem),
        construct=construct or "document",
        error=message,
        **fields,
    )


def finish(images: list[ExtractedImage]) -> list[ExtractedImage]:
    """Set `document_occurrence_count` (occurrences of the same asset hash) and make file names unique."""
    counts = Counter(i.document_asset_hash for i in images if i.document_asset_hash)
    taken: set[str] = set()
    for image in images:
        image.document_occurrence_count = counts[image.document_asset_hash] if image.document_asset_hash else 1
        image.filename = unique_name(image.filename or "image", taken)
    return images
