"""What a document is, by its bytes. The filename is advisory: it only helps recognise SVG text.

`sniff(data, filename)` returns "pdf", "ooxml" (any zip; the package says which Office format it is), or
"image" (a plain image file: PNG, JPEG, GIF, WebP, BMP, TIFF, ICO/CUR, AVIF, JPEG 2000, SVG, EMF, WMF), and
raises ExtractError("unsupported_input") with a clear message for everything else.
"""

from __future__ import annotations

import re
from typing import Literal

from imageextract.extract.types import ExtractError

Kind = Literal["pdf", "ooxml", "image"]

_IMAGE_MAGIC: tuple[bytes, ...] = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
    b"\x00\x00\x01\x00",  # ICO
    b"\x00\x00\x02\x00",  # CUR
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",  # JPEG 2000 (JP2)
    b"\xff\x4f\xff\x51",  # JPEG 2000 codestream
    b"\xd7\xcd\xc6\x9a",  # placeable WMF
    b"\x01\x00\x09\x00\x00\x03",  # WMF
    b"\x02\x00\x09\x00\x00\x03",  # WMF
)
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SVG = re.compile(rb"<svg[\s>/]", re.I)


def sniff(data: bytes, filename: str | None = None) -> Kind:
    if not data:
        raise ExtractError("unsupported_input", "the document is empty")
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "ooxml"
    if head.startswith(_OLE):
        raise ExtractError(
            "unsupported_input",
            "legacy binary Office files (.doc, .ppt, .xls) and password-protected Office documents are not "
            "supported; save the document as .docx, .pptx or .xlsx without a password",
        )
    if is_image(data, filename):
        return "image"
    if head.startswith(b"PK\x05\x06"):
        raise ExtractError("unsupported_input", "the document is an empty zip archive")
    raise ExtractError("unsupported_input", "not a PDF, Word, PowerPoint or Excel document, nor a supported image")


def is_image(data: bytes, filename: str | None = None) -> bool:
    head = data[:64]
    if head.startswith(_IMAGE_MAGIC):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if head[:2] == b"BM" and len(data) >= 26:
        return True
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return True
    if head[:4] == b"\x01\x00\x00\x00" and data[40:44] == b" EMF":
        return True
    text = data[:8192].lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<"):
        if _SVG.search(text):
            return True
        if filename and filename.lower().endswith(".svg") and _SVG.search(data[: 1024 * 1024]):
            return True
    return False
