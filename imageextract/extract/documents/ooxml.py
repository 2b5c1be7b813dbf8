"""Safe reading of OOXML packages (DOCX, PPTX, XLSX): the zip container, its XML parts and relationships.

Safety contract of `open_package(data, options)`, checked before any entry is decompressed:

- at most `options.max_zip_entries` entries, declared uncompressed total at most
  `options.max_zip_uncompressed_bytes` (both -> "document_too_large");
- no entry larger than 1 MiB that expands more than `options.max_zip_ratio` times (-> "extraction_failed");
- no duplicate entry names (compared case-insensitively, as OPC part names are), no encrypted entries, only
  stored/deflated entries, and no overlapping entries: each entry's local header + name + extra field +
  compressed data (+ data descriptor) must end before the next entry starts and before the central directory
  (the overlapping-entry zip bomb; CPython's own check arrived after the 3.11 we run on) (-> "extraction_failed").

Reads are bounded by the declared sizes (zipfile never returns more than an entry's declared size) and by a
running total, so lying headers cannot make us inflate more than the limit. XML is parsed with defusedxml
(no DTDs, no entities). Element names are compared by local name so Transitional and Strict namespaces work.
"""

from __future__ import annotations

import io
import posixpath
import struct
import zipfile
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from imageextract.extract.documents.assets import document_image, failed_image, sha256
from imageextract.extract.types import ExtractedImage, ExtractError, ExtractOptions

RATIO_FLOOR = 1024 * 1024  # entries smaller than this are never a bomb, whatever their ratio
MAX_XML_BYTES = 64 * 1024 * 1024
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_SVG_EXT_URI = "{96DAC541-7B7A-43D3-8B79-37D633B846F1}"


def local(tag: Any) -> str:
    """`{namespace}name` -> `name` (comments and processing instructions have non-str tags)."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def ns_attr(el: Element, name: str) -> str | None:
    """The namespaced attribute with local name `name` (r:embed, r:id, o:relid, o:title), any namespace."""
    suffix = "}" + name
    for key, val in el.attrib.items():
        if key.endswith(suffix):
            return val
    return None


def child(el: Element, name: str) -> Element | None:
    for c in el:
        if local(c.tag) == name:
            return c
    return None


@dataclass(frozen=True)
class Relationship:
    id: str
    type: str  # the last segment of the type URI: "image", "slide", "header", "drawing"...
    target: str  # a part name ("ppt/media/image1.png") or, when external, the raw target
    external: bool


class Package:
    """A checked OOXML zip: bounded part reads, safe XML, relationships and content types."""

    def __init__(self, data: bytes, options: ExtractOptions) -> None:
        self._options = options
        _check_declared_count(data, options)
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as exc:
            raise ExtractError("extraction_failed", f"not a readable zip archive: {exc}") from None
        _check_archive(data, self._zip, infos, options)
        self._names = {info.filename.lower(): info for info in infos}
        self._read_total = 0
        self._cache: dict[str, bytes] = {}
        self._rels: dict[str, dict[str, Relationship]] = {}
        self._types: tuple[dict[str, str], dict[str, str]] | None = None

    def close(self) -> None:
        self._zip.close()

    def has(self, part: str) -> bool:
        return part.lstrip("/").lower() in self._names

    def size(self, part: str) -> int:
        info = self._names.get(part.lstrip("/").lower())
        return info.file_size if info else 0

    def read(self, part: str) -> bytes:
        """The bytes of `part` (cached). Missing parts raise KeyError."""
        key = part.lstrip("/").lower()
        if key in self._cache:
            return self._cache[key]
        info = self._names[key]
        if self._read_total + info.file_size > self._options.max_zip_uncompressed_bytes:
            raise ExtractError("document_too_large", "the document expands beyond the uncompressed size limit")
        try:
            with self._zip.open(info) as fh:
                data = fh.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
            raise ExtractError("extraction_failed", f"corrupt zip entry {info.filename!r}: {exc}") from None
        if len(data) != info.file_size:
            raise ExtractError("extraction_failed", f"zip entry {info.filename!r} does not match its declared size")
        self._read_total += len(data)
        self._cache[key] = data
        return data

    def xml(self, part: str) -> Element:
        """`part` parsed with defusedxml; raises ExtractError for unsafe, oversized or malformed XML."""
        if self.size(part) > MAX_XML_BYTES:
            raise ExtractError("document_too_large", f"XML part {part!r} is larger than {MAX_XML_BYTES} bytes")
        data = self.read(part)
        self._cache.pop(part.lstrip("/").lower(), None)  # parsed trees are not re-read; free the bytes
        try:
            return SafeET.fromstring(data, forbid_dtd=True)
        except DefusedXmlException as exc:
            raise ExtractError("extraction_failed", f"unsafe XML in {part!r} rejected: {exc}") from None
        except Exception as exc:  # ParseError and friends
            raise ExtractError("extraction_failed", f"malformed XML in {part!r}: {exc}") from None

    def rels(self, part: str) -> dict[str, Relationship]:
        """Relationships of `part` by id, targets resolved to part names. Missing .rels -> {}."""
        part = part.lstrip("/")
        if part in self._rels:
            return self._rels[part]
        folder, name = posixpath.split(part)
        rels_part = posixpath.join(folder, "_rels", name + ".rels")
        out: dict[str, Relationship] = {}
        if self.has(rels_part):
            for el in self.xml(rels_part):
                if local(el.tag) != "Relationship":
                    continue
                rid, target, rtype = el.get("Id"), el.get("Target"), el.get("Type") or ""
                if not rid or target is None:
                    continue
                external = (el.get("TargetMode") or "").lower() == "external"
                resolved = target if external else resolve_target(folder, target)
                if resolved is None:
                    continue
                out[rid] = Relationship(rid, rtype.rstrip("/").rsplit("/", 1)[-1], resolved, external)
        self._rels[part] = out
        return out

    def content_type(self, part: str) -> str | None:
        if self._types is None:
            defaults: dict[str, str] = {}
            overrides: dict[str, str] = {}
            if self.has("[Content_Types].xml"):
                for el in self.xml("[Content_Types].xml"):
                    name = local(el.tag)
                    if name == "Default" and el.get("Extension"):
                        defaults[el.get("Extension", "").lower()] = el.get("ContentType", "")
                    elif name == "Override" and el.get("PartName"):
                        overrides[el.get("PartName", "").lstrip("/").lower()] = el.get("ContentType", "")
            self._types = (defaults, overrides)
        defaults, overrides = self._types
        key = part.lstrip("/").lower()
        if key in overrides:
            return overrides[key]
        return defaults.get(posixpath.splitext(key)[1].lstrip("."))

    def main_part(self) -> str | None:
        """The officeDocument part named by the package relationships (e.g. "word/document.xml")."""
        for rel in self.rels("").values():
            if rel.type == "officeDocument" and not rel.external and self.has(rel.target):
                return rel.target
        for fallback in ("word/document.xml", "ppt/presentation.xml", "xl/workbook.xml"):
            if self.has(fallback):
                return fallback
        return None

    def kind(self) -> tuple[str, str]:
        """("docx" | "pptx" | "xlsx", main part name); unsupported_input for any other zip."""
        main = self.main_part()
        if main is not None:
            ctype = (self.content_type(main) or "").lower()
            name = main.lower()
            if "wordprocessingml" in ctype or "ms-word" in ctype or (not ctype and name.startswith("word/")):
                return "docx", main
            if "presentationml" in ctype or "ms-powerpoint" in ctype or (not ctype and name.startswith("ppt/")):
                return "pptx", main
            if "spreadsheetml" in ctype or "ms-excel" in ctype or (not ctype and name.startswith("xl/")):
                return "xlsx", main
        raise ExtractError("unsupported_input", "zip archive is not a Word, PowerPoint or Excel (OOXML) document")


def open_package(data: bytes, options: ExtractOptions) -> Package:
    return Package(data, options)


def resolve_target(folder: str, target: str) -> str | None:
    """A relationship target relative to `folder` as a package part name; None if it escapes the package."""
    target = target.split("#", 1)[0].replace("\\", "/")
    if not target:
        return None
    path = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
    norm = posixpath.normpath(path)
    if norm in (".", "..") or norm.startswith(("../", "/")):
        return None
    return norm


def _check_declared_count(data: bytes, options: ExtractOptions) -> None:
    """Refuse a huge entry count from the end record, before zipfile builds an object per entry."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end >= 0 and len(data) >= end + 22:
        (total,) = struct.unpack_from("<H", data, end + 10)
        if total != 0xFFFF and total > options.max_zip_entries:
            raise ExtractError(
                "document_too_large", f"the archive has {total} entries; the limit is {options.max_zip_entries}"
            )


def _check_archive(data: bytes, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], options: ExtractOptions) -> None:
    if len(infos) > options.max_zip_entries:
        raise ExtractError(
            "document_too_large", f"the archive has {len(infos)} entries; the limit is {options.max_zip_entries}"
        )
    seen: set[str] = set()
    total = 0
    for info in infos:
        key = info.filename.lower()
        if key in seen:
            raise ExtractError("extraction_failed", f"the archive has duplicate entries named {info.filename!r}")
        seen.add(key)
        if info.flag_bits & 0x1:
            raise ExtractError("extraction_failed", f"the archive entry {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ExtractError(
                "extraction_failed", f"the archive entry {info.filename!r} uses unsupported compression {info.compress_type}"
            )
        total += info.file_size
        if info.file_size > RATIO_FLOOR and info.file_size > options.max_zip_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise ExtractError(
                "extraction_failed",
                f"the archive entry {info.filename!r} expands {ratio:.0f}x (limit {options.max_zip_ratio:g}x): "
                "a possible zip bomb",
            )
    if total > options.max_zip_uncompressed_bytes:
        raise ExtractError(
            "document_too_large",
            f"the archive expands to {total} bytes; the limit is {options.max_zip_uncompressed_bytes}",
        )
    _check_overlaps(data, zf, infos)


def _check_overlaps(data: bytes, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Reject archives whose entries share bytes with each other or with the central directory."""
    central = int(getattr(zf, "start_dir", len(data)))
    spans: list[tuple[int, int, str]] = []
    for info in infos:
        start = info.header_offset
        header = data[start : start + _LOCAL_HEADER.size]
        if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
            raise ExtractError("extraction_failed", f"the archive entry {info.filename!r} has no local header")
        fields = _LOCAL_HEADER.unpack(header)
        name_len, extra_len = fields[10], fields[11]
        end = start + _LOCAL_HEADER.size + name_len + extra_len + info.compress_size
        if info.flag_bits & 0x8:  # data descriptor: [signature] crc, compressed size, size (4 or 8 bytes each)
            zip64 = info.file_size >= 0xFFFFFFFF or info.compress_size >= 0xFFFFFFFF
            end += (4 if data[end : end + 4] == b"PK\x07\x08" else 0) + (20 if zip64 else 12)
        spans.append((start, end, info.filename))
    spans.sort()
    for (_, end, name), (next_start, _, next_name) in zip(spans, spans[1:], strict=False):
        if end > next_start:
            raise ExtractError(
                "extraction_failed", f"the archive entries {name!r} and {next_name!r} overlap: a possible zip bomb"
            )
    if spans and spans[-1][1] > central:
        raise ExtractError("extraction_failed", f"the archive entry {spans[-1][2]!r} overlaps the central directory")


# Pictures in DrawingML / VML -------------------------------------------------------------------


@dataclass
class PictureRef:
    """One picture reference found in an XML part: relationship ids plus the shape's descriptive text."""

    rel_id: str
    svg_rel_id: str | None = None  # asvg:svgBlip: the SVG original; rel_id is then its PNG fallback
    alt_text: str | None = None
    title: str | None = None
    element: Element | None = None


@dataclass(frozen=True)
class _Props:
    alt_text: str | None
    title: str | None


def alternate(el: Element) -> list[Element]:
    """The children of an mc:AlternateContent to use: the first Choice, else the Fallback."""
    choices = [c for c in el if local(c.tag) == "Choice"]
    if choices:
        return list(choices[0])
    fallback = child(el, "Fallback")
    return list(fallback) if fallback is not None else []


def find_pictures(root: Element, *, skip_placeholders: bool = False) -> list[PictureRef]:
    """Every embedded picture under `root`, in document order.

    - a:blip r:embed (pictures, picture placeholders, shape and background picture fills, bullets), with the
      asvg:svgBlip extension noted; v:imagedata r:id / o:relid (legacy VML pictures).
    - mc:AlternateContent: the first Choice is walked; the Fallback only when the Choice holds no picture,
      so a picture with a VML fallback is counted once.
    - Alt text/title come from the nearest wp:docPr (Word drawings) or the shape's own cNvPr; a shape's own
      non-empty value wins over its drawing's. Group shapes do not lend theirs to their members.
    - `skip_placeholders` skips shapes that are placeholders (layouts and masters: prompts, not content).
    """
    out: list[PictureRef] = []
    _walk(root, None, out, skip_placeholders)
    return out


def _walk(el: Element, props: _Props | None, out: list[PictureRef], skip_ph: bool) -> None:
    name = local(el.tag)
    if name == "AlternateContent":
        choices = [c for c in el if local(c.tag) == "Choice"]
        if choices:
            found: list[PictureRef] = []
            for c in choices[0]:
                _walk(c, props, found, skip_ph)
            if found:
                out.extend(found)
                return
        fallback = child(el, "Fallback")
        if fallback is not None:
            for c in fallback:
                _walk(c, props, out, skip_ph)
        return
    if name == "blip":
        rid = ns_attr(el, "embed")
        if rid:
            out.append(PictureRef(rid, _svg_blip(el), *_texts(props), element=el))
        return
    if name == "imagedata":
        rid = ns_attr(el, "id") or ns_attr(el, "relid")
        if rid:
            title = ns_attr(el, "title") or (props.title if props else None)
            out.append(PictureRef(rid, None, props.alt_text if props else None, title or None, element=el))
        return
    if skip_ph and _is_placeholder(el):
        return
    if name in ("inline", "anchor"):
        doc_pr = child(el, "docPr")
        if doc_pr is not None:
            props = _merge(_props_of(doc_pr), None)
    elif name == "grpSp":
        props = None
    elif name == "shape" and el.get("alt") is not None:  # VML v:shape
        props = _Props(el.get("alt") or None, props.title if props else None)
    else:
        own = _own_cnvpr(el)
        if own is not None:
            props = _merge(_props_of(own), props)
    for c in el:
        _walk(c, props, out, skip_ph)


def _texts(props: _Props | None) -> tuple[str | None, str | None]:
    return (props.alt_text, props.title) if props else (None, None)


def _props_of(el: Element) -> _Props:
    return _Props(el.get("descr") or None, el.get("title") or None)


def _merge(own: _Props, inherited: _Props | None) -> _Props:
    if inherited is None:
        return own
    return _Props(own.alt_text or inherited.alt_text, own.title or inherited.title)


def _own_cnvpr(el: Element) -> Element | None:
    """The cNvPr of a shape (p:pic, p:sp, pic:pic, xdr:pic...): <nv*Pr><cNvPr descr title/></nv*Pr>."""
    for c in el:
        cname = local(c.tag)
        if cname.startswith("nv") and cname.endswith("Pr"):
            return child(c, "cNvPr")
    return None


def _is_placeholder(el: Element) -> bool:
    for c in el:
        cname = local(c.tag)
        if cname.startswith("nv") and cname.endswith("Pr"):
            nv_pr = child(c, "nvPr")
            return nv_pr is not None and child(nv_pr, "ph") is not None
    return False


def _svg_blip(blip: Element) -> str | None:
    ext_lst = child(blip, "extLst")
    if ext_lst is None:
        return None
    for ext in ext_lst:
        if local(ext.tag) == "ext" and (ext.get("uri") or "").upper() == _SVG_EXT_URI:
            svg = child(ext, "svgBlip")
            if svg is not None:
                return ns_attr(svg, "embed")
    return None


def picture_image(
    pkg: Package,
    part: str,
    ref: PictureRef,
    options: ExtractOptions,
    *,
    stem: str | None = None,
    **fields: Any,
) -> ExtractedImage | None:
    """The image a PictureRef in `part` points to, or None for a linked (external) or missing picture.

    With an asvg:svgBlip the SVG is the image and its PNG fallback is noted in `variants`
    ({"role": "fallback", "part", "type", "content_hash", "file_size", "width", "height"}); an SVG the probe
    refuses gives way to the fallback. Without `stem` the image keeps its media file name ("image3.png").
    """
    rels = pkg.rels(part)
    main = _internal(pkg, rels.get(ref.rel_id))
    svg = _internal(pkg, rels.get(ref.svg_rel_id)) if ref.svg_rel_id else None
    primary, fallback = (svg, main) if svg is not None else (main, None)
    if primary is None:
        return None
    fields.update(alt_text=ref.alt_text, title=ref.title)
    image = _part_image(pkg, primary, options, stem, fields)
    if fallback is None:
        return image
    if image.error is not None:
        return _part_image(pkg, fallback, options, stem, fields)
    data = pkg.read(fallback)
    note = _part_image(pkg, fallback, options, None, {})
    image.variants.append(
        {
            "role": "fallback",
            "part": fallback,
            "type": note.media_type,
            "content_hash": sha256(data),
            "file_size": len(data),
            "width": note.width,
            "height": note.height,
        }
    )
    return image


def _internal(pkg: Package, rel: Relationship | None) -> str | None:
    if rel is None or rel.external or not pkg.has(rel.target):
        return None
    return rel.target


def _part_image(pkg: Package, target: str, options: ExtractOptions, stem: str | None, fields: dict[str, Any]) -> ExtractedImage:
    size = pkg.size(target)
    if size > options.max_image_bytes:  # not even inflated
        name = posixpath.basename(target)
        return failed_image(
            f"image is {size} bytes; the limit is {options.max_image_bytes}", stem=stem or name, file_size=size, **fields
        )
    return document_image(
        pkg.read(target),
        options=options,
        stem=stem,
        original_name=None if stem else posixpath.basename(target),
        media_type=pkg.content_type(target),
        **fields,
    )
