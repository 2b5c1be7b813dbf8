"""Pictures in an Excel (XLSX) workbook, read straight from the package XML.

Sheets come in workbook order (`xl/workbook.xml` `sheets/sheet`, resolved through the workbook's
relationships). For each worksheet, its drawings (`xl/drawings/drawingN.xml`, found through the sheet's
relationships, so the possibly huge sheet XML is never parsed) give pictures per anchor
(`xdr:twoCellAnchor`, `xdr:oneCellAnchor`, `xdr:absoluteAnchor`, also inside groups and
`mc:AlternateContent`). `ExtractedImage.sheet` is the sheet name and `anchor_cell` the top-left cell from
`xdr:from` (0-based col/row -> "B3"); absolute anchors have no cell. A sheet background picture
(`<picture r:id>`) is reported with no anchor cell. Alt text comes from `xdr:cNvPr/@descr`, the title from
`@title`. File names are the media names. Not covered: pictures in cells (rich values), header/footer
pictures (VML), and chart sheets.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from imageextract.extract.documents.ooxml import (
    Package,
    PictureRef,
    alternate,
    child,
    find_pictures,
    local,
    ns_attr,
    picture_image,
)
from imageextract.extract.types import ExtractedImage, ExtractError, ExtractOptions

_ANCHORS = ("twoCellAnchor", "oneCellAnchor", "absoluteAnchor")


def extract_xlsx(pkg: Package, main: str, options: ExtractOptions) -> list[ExtractedImage]:
    root = pkg.xml(main)
    rels = pkg.rels(main)
    sheets_el = child(root, "sheets")
    sheets: list[tuple[str, str]] = []
    for sheet in sheets_el if sheets_el is not None else []:
        rel = rels.get(ns_attr(sheet, "id") or "")
        if rel is None or rel.external or rel.type != "worksheet" or not pkg.has(rel.target):
            continue
        sheets.append((sheet.get("name") or "", rel.target))
    if len(sheets) > options.max_pages:
        raise ExtractError("page_limit_exceeded", f"the workbook has {len(sheets)} sheets; the limit is {options.max_pages}")
    images: list[ExtractedImage] = []
    for name, part in sheets:
        for rel in pkg.rels(part).values():
            if rel.external or not pkg.has(rel.target):
                continue
            if rel.type == "drawing":
                images.extend(_drawing(pkg, rel.target, name, options))
            elif rel.type == "image":  # the sheet background
                image = picture_image(pkg, part, PictureRef(rel.id), options, sheet=name)
                if image is not None:
                    images.append(image)
    return images


def _drawing(pkg: Package, part: str, sheet: str, options: ExtractOptions) -> list[ExtractedImage]:
    out = []
    for anchor in _anchors(pkg.xml(part)):
        cell = _cell(child(anchor, "from"))
        for ref in find_pictures(anchor):
            image = picture_image(pkg, part, ref, options, sheet=sheet, anchor_cell=cell)
            if image is not None:
                out.append(image)
    return out


def _anchors(root: Element) -> list[Element]:
    out: list[Element] = []
    for el in root:
        name = local(el.tag)
        if name == "AlternateContent":
            out.extend(a for a in alternate(el) if local(a.tag) in _ANCHORS)
        elif name in _ANCHORS:
            out.append(el)
    return out


def _cell(frm: Element | None) -> str | None:
    if frm is None:
        return None
    col_el, row_el = child(frm, "col"), child(frm, "row")
    try:
        col = int((col_el.text or "").strip()) if col_el is not None else -1
        row = int((row_el.text or "").strip()) if row_el is not None else -1
    except ValueError:
        return None
    if col < 0 or row < 0:
        return None
    return f"{column_letters(col)}{row + 1}"


def column_letters(index: int) -> str:
    """0 -> "A", 25 -> "Z", 26 -> "AA"."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters
