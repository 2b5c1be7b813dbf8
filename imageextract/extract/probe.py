"""Image probing: dimensions, format, colour space and alpha from headers, never a full decode.

`probe_image` is the one entry point, shared by web discovery and document extraction. Raster formats go
through Pillow's lazy `Image.open` restricted to an allowlist of plugins (the pixel data is never loaded);
SVG is parsed with defusedxml; EMF/WMF are recognised by their magic numbers and sized from their headers.

Contract: `probe_image(data, *, media_type=None, options=None) -> ProbeInfo`, raising `ProbeError` (an
`ExtractError` with code "unsupported_input") when the bytes are not an allowed image or look like a
decompression bomb.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from PIL import Image

from imageextract.extract.types import ExtractError, ExtractOptions

# Pillow plugin name -> our format name. Only these plugins are ever tried by Image.open.
PILLOW_FORMATS: dict[str, str] = {
    "JPEG": "jpeg",
    "MPO": "jpeg",  # multi-picture JPEG (camera files): a JPEG to every consumer
    "PNG": "png",
    "GIF": "gif",
    "WEBP": "webp",
    "AVIF": "avif",
    "BMP": "bmp",
    "DIB": "bmp",
    "TIFF": "tiff",
    "ICO": "ico",
    "CUR": "ico",
    "JPEG2000": "jp2",
}

# Every format probe_image can report.
ALLOWED_FORMATS: frozenset[str] = frozenset({*PILLOW_FORMATS.values(), "svg", "emf", "wmf"})

MEDIA_TYPES: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "ico": "image/vnd.microsoft.icon",
    "jp2": "image/jp2",
    "svg": "image/svg+xml",
    "emf": "image/emf",
    "wmf": "image/wmf",
}

EXTENSIONS: dict[str, str] = {
    "jpeg": "jpg",
    "png": "png",
    "gif": "gif",
    "webp": "webp",
    "avif": "avif",
    "bmp": "bmp",
    "tiff": "tif",
    "ico": "ico",
    "jp2": "jp2",
    "svg": "svg",
    "emf": "emf",
    "wmf": "wmf",
}

# Pillow mode -> (color_space, has_alpha). Modes not listed fall back to "unknown".
_MODES: dict[str, tuple[str, bool]] = {
    "1": ("grayscale", False),
    "L": ("grayscale", False),
    "LA": ("grayscale", True),
    "La": ("grayscale", True),
    "I": ("grayscale", False),
    "I;16": ("grayscale", False),
    "I;16L": ("grayscale", False),
    "I;16B": ("grayscale", False),
    "I;16N": ("grayscale", False),
    "F": ("grayscale", False),
    "P": ("indexed", False),
    "PA": ("indexed", True),
    "RGB": ("srgb", False),
    "RGBX": ("srgb", False),
    "RGBA": ("srgb", True),
    "RGBa": ("srgb", True),
    "CMYK": ("cmyk", False),
    "YCbCr": ("ycbcr", False),
    "LAB": ("lab", False),
    "HSV": ("hsv", False),
}

_SVG_MAX_BYTES = 8 * 1024 * 1024
_open_lock = threading.Lock()  # Image.MAX_IMAGE_PIXELS and the warnings filters are process globals


class ProbeError(ExtractError):
    """The bytes are not an image we accept (unknown, disallowed, corrupt header, or a decompression bomb)."""

    def __init__(self, message: str, *, reason: str = "unrecognized") -> None:
        super().__init__("unsupported_input", message)
        self.reason = reason  # unrecognized | not_allowed | corrupt | bomb


@dataclass(frozen=True)
class ProbeInfo:
    width: int | None
    height: int | None
    format: str  # one of ALLOWED_FORMATS
    color_space: str | None
    has_alpha: bool | None
    media_type: str
    has_icc_profile: bool = False
    frame_count: int = 1

    @property
    def aspect_ratio(self) -> float | None:
        return aspect_ratio(self.width, self.height)

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.format, self.format)


def aspect_ratio(width: int | None, height: int | None) -> float | None:
    if not width or not height:
        return None
    return round(width / height, 3)


def probe_image(data: bytes, *, media_type: str | None = None, options: ExtractOptions | None = None) -> ProbeInfo:
    """Identify `data` and read its dimensions and colour information from headers only.

    `media_type` is the declared type (Content-Type, data: URI, document metadata); it is a hint only —
    the bytes decide. Raises ProbeError for anything that is not an allowed image.
    """
    options = options or ExtractOptions()
    if not data:
        raise ProbeError("empty image data")
    head = data[:64]
    if head[:4] == b"\x01\x00\x00\x00" and data[40:44] == b" EMF":
        return _probe_emf(data)
    if head[:4] == b"\xd7\xcd\xc6\x9a" or head[:6] in (b"\x01\x00\x09\x00\x00\x03", b"\x02\x00\x09\x00\x00\x03"):
        return _probe_wmf(data)
    if _looks_like_svg(data, media_type):
        return _probe_svg(data)
    return _probe_raster(data, options)


# Raster ----------------------------------------------------------------------------------------


def _probe_raster(data: bytes, options: ExtractOptions) -> ProbeInfo:
    limit = options.max_image_pixels
    with _open_lock, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            im = Image.open(io.BytesIO(data), formats=_pillow_formats())
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ProbeError(f"decompression bomb: {exc}", reason="bomb") from None
        except Image.UnidentifiedImageError:
            known = _magic_format(data)
            if known:
                raise ProbeError(f"corrupt or truncated {known} header", reason="corrupt") from None
            raise ProbeError("not a recognised image format") from None
        except Exception as exc:  # corrupt headers raise all sorts (OSError, SyntaxError, struct.error...)
            raise ProbeError(f"corrupt image header: {exc}", reason="corrupt") from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with im:
        fmt = PILLOW_FORMATS.get(im.format or "")
        if fmt is None:
            raise ProbeError(f"image format {im.format!r} is not allowed", reason="not_allowed")
        width, height = im.size
        if limit and width * height > limit:  # belt and braces: plugins that size after open
            raise ProbeError(f"decompression bomb: {width}x{height} pixels", reason="bomb")
        mode = im.mode
        info: dict[Any, Any] = dict(im.info)
        frames = int(getattr(im, "n_frames", 1) or 1)
    color_space, has_alpha = _MODES.get(mode, ("unknown", False))
    if "transparency" in info:  # palette or single-colour transparency (tRNS, GIF transparent index)
        has_alpha = True
    return ProbeInfo(
        width=width,
        height=height,
        format=fmt,
        color_space=color_space,
        has_alpha=has_alpha,
        media_type=MEDIA_TYPES[fmt],
        has_icc_profile=bool(info.get("icc_profile")),
        frame_count=frames,
    )


def _magic_format(data: bytes) -> str | None:
    """The allowed format whose signature `data` starts with (used to tell corrupt from unknown)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "avif"
    return None


def _pillow_formats() -> list[str]:
    Image.init()
    return [f for f in PILLOW_FORMATS if f in Image.OPEN]  # MPO is opened by the JPEG plugin


# SVG -------------------------------------------------------------------------------------------

_SVG_TAG = re.compile(rb"<svg[\s>/]", re.I)
_LENGTH = re.compile(r"^\s*([+]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(px|pt|pc|mm|cm|in|em|ex|%)?\s*$")
_UNITS = {None: 1.0, "px": 1.0, "pt": 96 / 72, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0, "em": 16.0, "ex": 8.0}


def _looks_like_svg(data: bytes, media_type: str | None) -> bool:
    """Markup (starts with '<' after BOM/whitespace) holding an <svg element near the top."""
    text = data[:8192].lstrip(b"\xef\xbb\xbf").lstrip()
    if not text.startswith(b"<"):
        return False
    if _SVG_TAG.search(text):
        return True
    declared = (media_type or "").split(";")[0].strip().lower()
    return declared == "image/svg+xml" and _SVG_TAG.search(data[:_SVG_MAX_BYTES]) is not None


def _svg_length(value: str | None) -> float | None:
    if value is None:
        return None
    m = _LENGTH.match(value)
    if not m or m.group(2) == "%":
        return None
    n = float(m.group(1)) * _UNITS[m.group(2)]
    return n if n > 0 else None


def _probe_svg(data: bytes) -> ProbeInfo:
    if len(data) > _SVG_MAX_BYTES:
        raise ProbeError("SVG too large to probe", reason="corrupt")
    try:
        root = SafeET.fromstring(data)
    except DefusedXmlException as exc:
        raise ProbeError(f"unsafe SVG rejected: {exc}", reason="not_allowed") from None
    except Exception as exc:
        raise ProbeError(f"malformed SVG: {exc}", reason="corrupt") from None
    if str(root.tag).rsplit("}", 1)[-1].lower() != "svg":
        raise ProbeError("XML document is not an SVG")
    width = _svg_length(root.get("width"))
    height = _svg_length(root.get("height"))
    vb_w = vb_h = None
    view_box = root.get("viewBox") or root.get("viewbox")
    if view_box:
        parts = [p for p in re.split(r"[\s,]+", view_box.strip()) if p]
        try:
            if len(parts) == 4 and float(parts[2]) > 0 and float(parts[3]) > 0:
                vb_w, vb_h = float(parts[2]), float(parts[3])
        except ValueError:
            pass
    if vb_w and vb_h:
        if width is None and height is None:
            width, height = vb_w, vb_h
        elif width is None and height is not None:
            width = height * vb_w / vb_h
        elif height is None and width is not None:
            height = width * vb_h / vb_w
    return ProbeInfo(
        width=_px(width),
        height=_px(height),
        format="svg",
        color_space="srgb",
        has_alpha=True,  # an SVG canvas is transparent unless it paints a background
        media_type=MEDIA_TYPES["svg"],
    )


def _px(value: float | None) -> int | None:
    if value is None:
        return None
    return max(1, int(round(value)))


# EMF / WMF -------------------------------------------------------------------------------------


def _probe_emf(data: bytes) -> ProbeInfo:
    # EMR_HEADER: type, size, rclBounds (device pixels: left, top, right, bottom), rclFrame, " EMF" at 40.
    try:
        left, top, right, bottom = struct.unpack_from("<4i", data, 8)
    except struct.error:
        raise ProbeError("truncated EMF header", reason="corrupt") from None
    width, height = right - left, bottom - top
    return ProbeInfo(
        width=width if width > 0 else None,
        height=height if height > 0 else None,
        format="emf",
        color_space="srgb",
        has_alpha=None,
        media_type=MEDIA_TYPES["emf"],
    )


def _probe_wmf(data: bytes) -> ProbeInfo:
    width = height = None
    if data[:4] == b"\xd7\xcd\xc6\x9a":  # placeable WMF: bbox in logical units, `inch` units per inch
        try:
            left, top, right, bottom, inch = struct.unpack_from("<4hH", data, 6)
        except struct.error:
            raise ProbeError("truncated WMF header", reason="corrupt") from None
        if inch:
            width = abs(right - left) * 72 // inch or None  # 72 dpi, as Pillow's WMF plugin does
            height = abs(bottom - top) * 72 // inch or None
    return ProbeInfo(
        width=width,
        height=height,
        format="wmf",
        color_space="srgb",
        has_alpha=None,
        media_type=MEDIA_TYPES["wmf"],
    )
