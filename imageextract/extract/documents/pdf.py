"""Images embedded in a PDF, with PyMuPDF: the original streams at native resolution, never a rendered crop.

What is reported, page by page (`document_page` is 1-based):

- Image XObjects the page (or a form XObject on it) actually draws with `Do`; an image that sits in a
  shared resource dictionary but is never drawn on the page is not reported for that page. The same xref
  drawn on many pages is reported once per page; drawn twice on one page, once.
- Inline images (`BI ... ID ... EI`) in the page's content or its forms, once per distinct image per page.
- Stencil masks (`/ImageMask true`: a scanned page is often one full-page 1-bit CCITT or JBIG2 stencil) are
  reported as 1-bit grey PNGs, black where they paint.
- Not reported: images that are another image's /SMask or /Mask, images that only paint tiling patterns, and
  images inside annotation appearances or Type 3 glyphs.

Bytes: JPEG and JPEG 2000 streams are returned exactly as stored (a CMYK JPEG stays CMYK, color_space
"cmyk"). Other images keep their colour space where a file format allows it (`pdf_images.SampleEncoder`):
grey and RGB (also calibrated and ICC-based, with the profile) as PNGs of the same bit depth, Indexed as
palette PNGs, CMYK and Lab as TIFFs. What needs MuPDF's rendering (a /Decode array, colour-key masks,
Separation/DeviceN) is rendered and stored as a grey or RGB PNG. An image with a soft mask or explicit mask
becomes an RGBA (or grey+alpha) PNG with the mask merged in. Images over `options.max_image_pixels` are
reported with `error` set and no bytes, without being decoded. A JPEG 2000 image MuPDF cannot decode is
returned as its stored bytes, with the warning "jpx_not_decoded".

Warnings (`ImageList.warnings`): "document_repaired" when MuPDF had to rebuild a damaged file (truncated,
broken cross-reference table), "page_unreadable" when a page was skipped, "page_time_budget" when a page ran
past `options.page_seconds` and its remaining images were skipped (checked between images: a single decode
that hangs in C is stopped by the sandbox's wall-clock and CPU limits instead).

PyMuPDF is not thread-safe: everything here runs under one lock (in the sandbox each child is single-threaded).
Memory: MuPDF's store (decoded images) is emptied after every page, so a long document costs its own bytes plus
the extracted images, not the decoded pixels of every page.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imageextract.extract.documents.assets import document_image, failed_image
from imageextract.extract.documents.pdf_images import SampleEncoder
from imageextract.extract.types import ExtractedImage, ExtractError, ExtractOptions, ImageList

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_DO = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s*Do(?![^\s/\[\]()<>{}%])")
_BI = re.compile(rb"(?<![^\s\[\]()<>{}/%])BI(?=[\s/])")
_REF = re.compile(r"(\d+)\s+0\s+R")
_HEX = re.compile(rb"#([0-9A-Fa-f]{2})")
_PLAIN_COLORSPACES = ("DeviceRGB", "DeviceGray", "DeviceCMYK", "ICCBased", "CalRGB", "CalGray")


def extract_pdf(data: bytes | Path, options: ExtractOptions, *, emit: Emit | None = None) -> ImageList:
    """The PDF's images. `data` may be a path (MuPDF then reads the file as it needs it). With `emit`, each
    page's images are handed to it as soon as the page is done and not kept: an image drawn again on a later
    page comes back without `data` (its `content_hash` names the bytes already emitted), so memory holds one
    page's images, not the document's."""
    import pymupdf

    with _LOCK:
        pymupdf.TOOLS.mupdf_display_errors(False)
        pymupdf.TOOLS.mupdf_display_warnings(False)
        try:
            return _Extractor(pymupdf, data, options, emit).run()
        finally:
            pymupdf.TOOLS.reset_mupdf_warnings()


Emit = Callable[[list[ExtractedImage]], None]


class _Extractor:
    def __init__(self, pymupdf: Any, data: bytes | Path, options: ExtractOptions, emit: Emit | None = None) -> None:
        self.fitz = pymupdf
        self.data = data
        self.options = options
        self.emit = emit
        self.cache: dict[int, ExtractedImage] = {}  # xref -> prototype (bytes + probe), shared by pages
        self.fresh: list[ExtractedImage] = []  # prototypes cached since the last emit (their bytes go out once)
        self.warnings: list[str] = []

    def run(self) -> ImageList:
        try:
            if isinstance(self.data, Path):
                doc = self.fitz.open(str(self.data), filetype="pdf")
            else:
                doc = self.fitz.open(stream=self.data, filetype="pdf")
        except Exception as exc:
            raise ExtractError("extraction_failed", f"the PDF is corrupted or truncated and cannot be opened: {exc}") from None
        try:
            if doc.is_repaired:
                self.warnings.append("document_repaired")
            return ImageList(self._run(doc), warnings=self.warnings)
        finally:
            doc.close()

    def _run(self, doc: Any) -> list[ExtractedImage]:
        if doc.needs_pass:
            raise ExtractError(
                "unsupported_input", "the PDF is encrypted with a password; remove the password and upload it again"
            )
        count = doc.page_count
        if count == 0:
            raise ExtractError("extraction_failed", "the PDF has no readable pages (corrupted or truncated)")
        if count > self.options.max_pages:
            raise ExtractError("page_limit_exceeded", f"the PDF has {count} pages; the limit is {self.options.max_pages}")
        self.doc = doc
        self.encoder = SampleEncoder(self.fitz, doc)
        rows_by_page: list[list[tuple[Any, ...]] | None] = []
        masks: set[int] = set()
        explicit: dict[int, int | None] = {}
        for pno in range(count):
            try:
                rows = [tuple(r) for r in doc.load_page(pno).get_images(full=True)]
            except Exception as exc:  # a damaged page: skip it, keep the others
                log.warning("PDF page %d unreadable: %s", pno + 1, exc)
                rows_by_page.append(None)
                self._warn("page_unreadable")
                continue
            rows_by_page.append(rows)
            masks.update(r[1] for r in rows if r[1])  # /SMask xrefs
            for r in rows:  # stencils used as another image's /Mask (looked up once per xref)
                if r[0] not in explicit:
                    explicit[r[0]] = self._explicit_mask(r[0])
                    if explicit[r[0]]:
                        masks.add(explicit[r[0]])  # type: ignore[arg-type]
        if all(r is None for r in rows_by_page):
            raise ExtractError("extraction_failed", "no page of the PDF could be read (corrupted or truncated)")
        images: list[ExtractedImage] = []
        for pno, page_rows in enumerate(rows_by_page):
            if page_rows is None:
                continue
            try:
                page_images = self._page(doc.load_page(pno), pno + 1, page_rows, masks)
                if self.emit is None:
                    images.extend(page_images)
                elif page_images:
                    self.emit(page_images)
                    for proto in self.fresh:  # sent: later pages refer to these bytes by their hash
                        proto.data = None
                    self.fresh.clear()
            except ExtractError:
                raise
            except Exception as exc:
                log.warning("PDF page %d failed: %s", pno + 1, exc)
                self._warn("page_unreadable")
            finally:
                # MuPDF's store keeps every decoded image (up to 256 MB) although `self.cache` already holds the
                # bytes we reuse: emptying it per page keeps memory flat across long documents (and is faster).
                self.fitz.TOOLS.store_shrink(100)
        return images

    # Page ------------------------------------------------------------------------------------------

    def _page(self, page: Any, page_no: int, rows: list[tuple[Any, ...]], masks: set[int]) -> list[ExtractedImage]:
        out: list[ExtractedImage] = []
        deadline = time.monotonic() + self.options.page_seconds
        content = self._page_content(page)
        forms = self._drawn_forms(page, content, rows)
        streams: dict[int, bytes | None] = {0: content, **(forms or {})}
        drawn: dict[int, set[bytes] | None] = {}
        seen: set[int] = set()
        for row in rows:
            xref, name, referencer = row[0], row[7], row[9]
            if xref in masks or xref in seen:
                continue
            if referencer and forms is not None and referencer not in forms:
                continue  # inside a form this page never paints
            if referencer not in drawn:
                if referencer not in streams:
                    streams[referencer] = self._stream(referencer)
                # Page-level names may also be painted by forms without their own /Resources.
                sources = [streams[referencer], *(forms or {}).values()] if referencer == 0 else [streams[referencer]]
                drawn[referencer] = _drawn_names(sources)
            names = drawn[referencer]
            if names is not None and name.encode("latin-1", "replace") not in names:
                continue  # in the resources, never painted
            if out and time.monotonic() > deadline:
                self._warn("page_time_budget")  # one hostile page must not spend the whole document's budget
                return out
            seen.add(xref)
            out.append(self._xref_image(row, page_no, len(out) + 1))
        if time.monotonic() > deadline:
            self._warn("page_time_budget")
            return out
        if any(s and _BI.search(s) for s in streams.values()):
            out.extend(self._inline_images(page, page_no, rows, len(out)))
        return out

    def _page_content(self, page: Any) -> bytes | None:
        try:
            return bytes(page.read_contents())
        except Exception:
            return None  # unreadable content: do not filter by Do names

    def _stream(self, xref: int) -> bytes | None:
        try:
            return bytes(self.doc.xref_stream(xref) or b"")
        except Exception:
            return None

    def _drawn_forms(
        self, page: Any, content: bytes | None, rows: list[tuple[Any, ...]]
    ) -> dict[int, bytes | None] | None:
        """Content streams, by xref, of the form XObjects the page paints (directly or through other forms);
        None when the page's forms cannot be listed."""
        if content is not None:  # the common page: every name it paints is one of its own images, so no forms
            images = {row[7].encode("latin-1", "replace") for row in rows if not row[9]}
            drawn = _drawn_names([content])
            if drawn is not None and drawn <= images:
                return {}
        try:
            listed = [(item[0], item[1], item[2]) for item in page.get_xobjects()]
        except Exception:
            return None
        streams = {xref: self._stream(xref) for xref, _, _ in listed}
        painted: dict[int, set[bytes] | None] = {0: _drawn_names([content])}
        changed = True
        while changed:
            changed = False
            for xref, name, invoker in listed:
                if xref in painted or invoker not in painted:
                    continue
                names = painted[invoker]
                if names is None or name.encode("latin-1", "replace") in names:
                    painted[xref] = _drawn_names([streams[xref]])
                    changed = True
        return {xref: streams[xref] for xref in painted if xref}

    def _is_stencil(self, xref: int) -> bool:
        try:
            return self.doc.xref_get_key(xref, "ImageMask") == ("bool", "true")
        except Exception:
            return False

    def _explicit_mask(self, xref: int) -> int | None:
        try:
            kind, value = self.doc.xref_get_key(xref, "Mask")
        except Exception:
            return None
        return int(value.split()[0]) if kind == "xref" else None

    def _warn(self, code: str) -> None:
        if code not in self.warnings:
            self.warnings.append(code)

    # Image XObjects --------------------------------------------------------------------------------

    def _xref_image(self, row: tuple[Any, ...], page_no: int, index: int) -> ExtractedImage:
        xref = row[0]
        stem = f"page-{page_no}-image-{index}"
        if xref not in self.cache:
            self.cache[xref] = self._load_xref(row, stem)
            self.fresh.append(self.cache[xref])
        proto = self.cache[xref]
        ext = proto.filename.rsplit(".", 1)[1] if "." in proto.filename else ""
        name = f"{stem}.{ext}" if ext else stem
        return dataclasses.replace(proto, document_page=page_no, filename=name, variants=list(proto.variants))

    def _load_xref(self, row: tuple[Any, ...], stem: str) -> ExtractedImage:
        xref, mask, width, height, bpc = row[0], row[1], row[2], row[3], row[4]
        too_big = self._too_many_pixels(width, height)
        if too_big:
            return failed_image(too_big, stem=stem, width=width, height=height)
        is_jpeg = False
        try:
            if self._is_stencil(xref):
                data = self.encoder.stencil(xref, width, height)
            elif mask:
                too_big = self._too_many_pixels(*self._size(mask))
                if too_big:
                    return failed_image(f"mask {too_big}", stem=stem, width=width, height=height)
                data = self._merge_mask(self.fitz.Pixmap(self.doc, xref), self.fitz.Pixmap(self.doc, mask))
            else:
                is_jpeg, stored = self._stored_jpeg(row)
                if stored:
                    image = document_image(stored, options=self.options, stem=stem)
                    if image.error is None:
                        return image
                encoded = None if is_jpeg else self.encoder.encode(xref, width, height, bpc)
                data = encoded or self._png(self.fitz.Pixmap(self.doc, xref))
        except Exception as exc:
            kept = self._undecoded_jpx(xref, stem, width, height)
            if kept is not None:
                return kept
            return failed_image(f"could not decode image xref {xref}: {exc}", stem=stem, width=width, height=height)
        return document_image(data, options=self.options, stem=stem)

    def _undecoded_jpx(self, xref: int, stem: str, width: int, height: int) -> ExtractedImage | None:
        """A JPEG 2000 stream MuPDF could not decode: its stored bytes, with a warning, rather than nothing."""
        try:
            kind, value = self.doc.xref_get_key(xref, "Filter")
            if "/JPXDecode" not in value:
                return None
            raw = bytes(self.doc.xref_stream_raw(xref) or b"")
        except Exception:
            return None
        if not raw:
            return None
        image = document_image(raw, options=self.options, stem=stem)
        if image.error is not None and len(raw) <= self.options.max_image_bytes:
            jp2 = raw[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n"
            image.data, image.content_hash, image.error = raw, image.document_asset_hash, None
            image.format, image.media_type = ("jp2", "image/jp2") if jp2 else ("j2k", "image/x-jp2-codestream")
            image.width, image.height = width, height
            image.filename = f"{stem}.{'jp2' if jp2 else 'j2k'}"
        self._warn("jpx_not_decoded")
        return image

    def _stored_jpeg(self, row: tuple[Any, ...]) -> tuple[bool, bytes | None]:
        """(is a JPEG / JPEG 2000 stream, its bytes exactly as stored if a viewer shows them in the PDF's colours).

        Kept: no /Decode, or Adobe-inverted CMYK (APP14 marker) that the PDF compensates with
        /Decode [1 0 1 0 1 0 1 0] (viewers apply the inversion themselves). Any other /Decode, filter chain or
        an exotic colour space (Separation, DeviceN, Lab, Indexed) is decoded by MuPDF and re-encoded as PNG.
        """
        xref, cs_name = row[0], row[5]
        kind, value = self.doc.xref_get_key(xref, "Filter")
        names = value.replace("[", " ").replace("]", " ").split() if kind in ("name", "array") else []
        if not {"/DCTDecode", "/JPXDecode", "/DCT"} & set(names):
            return False, None
        if names not in (["/DCTDecode"], ["/JPXDecode"]):
            return True, None
        if cs_name not in _PLAIN_COLORSPACES and names == ["/DCTDecode"]:
            return True, None
        raw = bytes(self.doc.xref_stream_raw(xref) or b"")
        decode_kind, decode = self.doc.xref_get_key(xref, "Decode")
        if decode_kind == "null":
            return True, raw
        inverted = "".join(decode.replace("[", " ").replace("]", " ").split()) == "10101010"
        if names == ["/DCTDecode"] and inverted and b"Adobe" in raw[:4096]:
            return True, raw  # Adobe-inverted CMYK, compensated in the PDF
        return True, None

    def _too_many_pixels(self, width: int, height: int) -> str | None:
        limit = self.options.max_image_pixels
        if limit and width * height > limit:
            return f"image is {width}x{height} pixels; the limit is {limit} (not decoded)"
        return None

    def _rgb_or_gray(self, pix: Any) -> Any:
        if pix.alpha:
            pix = self.fitz.Pixmap(pix, 0)
        cs = pix.colorspace
        if cs is None or cs.n != 1:  # CMYK, Lab, ICC, indexed bases -> sRGB; grey stays grey
            pix = self.fitz.Pixmap(self.fitz.csRGB, pix)
        return pix

    def _png(self, pix: Any) -> bytes:
        if pix.colorspace is None or pix.colorspace.n not in (1, 3) or "Lab" in (pix.colorspace.name or ""):
            pix = self.fitz.Pixmap(self.fitz.csRGB, pix)
        return bytes(pix.tobytes("png"))

    def _merge_mask(self, base: Any, mask: Any) -> bytes:
        """Base image + soft mask (grey) or stencil mask (alpha-only) -> PNG with alpha."""
        base = self._rgb_or_gray(base)
        if mask.colorspace is not None and mask.colorspace.n != 1:
            mask = self.fitz.Pixmap(self.fitz.csGRAY, mask)
        if (mask.width, mask.height) != (base.width, base.height):
            mask = self.fitz.Pixmap(mask, base.width, base.height, None)
        return bytes(self.fitz.Pixmap(base, mask).tobytes("png"))

    # Inline images ---------------------------------------------------------------------------------

    def _inline_images(self, page: Any, page_no: int, rows: list[tuple[Any, ...]], start: int) -> list[ExtractedImage]:
        """Images MuPDF draws on the page that are not XObjects we know: the inline ones.

        The text page (with images) lists every drawn image with an MD5 digest of its samples; the digests of
        the page's XObjects (and of pattern tiles) are computed the same way and excluded.
        """
        known: set[bytes] = set()
        for xref in [r[0] for r in rows] + self._pattern_images(page):
            try:
                if not self._too_many_pixels(*self._size(xref)):
                    known.add(self.fitz.Pixmap(self.doc, xref).digest)
            except Exception:
                continue
        textpage = page.get_textpage(flags=self.fitz.TEXT_PRESERVE_IMAGES)
        infos = textpage.extractIMGINFO(hashes=True)
        wanted: dict[Any, Any] = {}
        for info in infos:
            digest = info.get("digest")
            if info.get("colorspace", 0) == 0 or digest in known or digest in wanted.values():
                continue  # stencil, XObject, or an inline image already taken on this page
            wanted[info["number"]] = digest
        if not wanted:
            return []
        blocks = {b["number"]: b for b in textpage.extractDICT()["blocks"] if b.get("type") == 1}
        out: list[ExtractedImage] = []
        for number in wanted:
            block = blocks.get(number)
            if block is None:
                continue
            stem = f"page-{page_no}-image-{start + len(out) + 1}"
            width, height = block.get("width", 0), block.get("height", 0)
            too_big = self._too_many_pixels(width, height)
            if too_big:
                out.append(failed_image(too_big, stem=stem, width=width, height=height, document_page=page_no))
                continue
            try:
                data = bytes(block["image"])
                if block.get("mask"):
                    data = self._merge_mask(self.fitz.Pixmap(data), self.fitz.Pixmap(bytes(block["mask"])))
                elif block.get("ext") not in ("png", "jpeg"):
                    data = self._png(self.fitz.Pixmap(data))
            except Exception as exc:
                out.append(failed_image(f"could not decode inline image: {exc}", stem=stem, document_page=page_no))
                continue
            out.append(document_image(data, options=self.options, stem=stem, document_page=page_no))
        return out

    def _size(self, xref: int) -> tuple[int, int]:
        def num(key: str) -> int:
            kind, value = self.doc.xref_get_key(xref, key)
            return int(value) if kind == "int" else 0

        return num("Width"), num("Height")

    def _pattern_images(self, page: Any) -> list[int]:
        """Image xrefs in the page's tiling patterns (their resources' XObjects), looked up one level deep."""
        patterns = self._resource_refs(page.xref, "Pattern")
        out = []
        for pattern in patterns:
            try:
                kind, value = self.doc.xref_get_key(pattern, "Resources/XObject")
            except Exception:
                continue
            out.extend(self._refs(kind, value))
        return out

    def _resource_refs(self, xref: int, category: str) -> list[int]:
        for _ in range(32):  # Resources may be inherited from the page tree
            kind, value = self.doc.xref_get_key(xref, f"Resources/{category}")
            if kind != "null":
                return self._refs(kind, value)
            if self.doc.xref_get_key(xref, "Resources")[0] != "null":
                return []
            parent = self.doc.xref_get_key(xref, "Parent")
            if parent[0] != "xref":
                return []
            xref = int(parent[1].split()[0])
        return []

    def _refs(self, kind: str, value: str) -> list[int]:
        if kind == "xref":  # an indirect dictionary
            value = self.doc.xref_object(int(value.split()[0]), compressed=True)
        return [int(m) for m in _REF.findall(value or "")]


def _drawn_names(streams: list[bytes | None]) -> set[bytes] | None:
    """The XObject names `streams` paint (`/name Do`, #xx escapes decoded); None when one is unreadable."""
    names: set[bytes] = set()
    for stream in streams:
        if stream is None:
            return None
        for match in _DO.finditer(stream):
            raw = match.group(1)
            names.add(_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), raw) if b"#" in raw else raw)
    return names
