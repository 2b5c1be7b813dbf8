"""Real documents for the document-extraction tests: PDFs built with PyMuPDF (raw objects where a construct
needs it), PPTX/DOCX/XLSX built with python-pptx/python-docx/openpyxl and then edited in the zip for
constructs those libraries cannot write (svgBlip, backgrounds, AlternateContent, anchors, VML), and hostile
zips crafted byte by byte.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zipfile
import zlib
from typing import Any

import pymupdf
from PIL import Image

from imageextract.extract.types import ExtractOptions

# Images --------------------------------------------------------------------------------------------


def png(color: tuple[int, ...], size: tuple[int, int] = (30, 20), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def jpeg(color: tuple[int, ...], size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def svg(width: int = 120, height: int = 80, color: str = "#800080") -> bytes:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<rect width="{width}" height="{height}" fill="{color}"/></svg>'
    ).encode()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header declares width x height pixels (10 gigapixels by default)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def emf(width: int = 40, height: int = 30) -> bytes:
    header = struct.pack("<II4i4i", 1, 88, 0, 0, width, height, 0, 0, width * 26, height * 26)
    return header + b" EMF" + b"\x00" * 44


def pixel(data: bytes, xy: tuple[int, int] = (1, 1)) -> Any:
    with Image.open(io.BytesIO(data)) as im:
        return im.getpixel(xy)


def rgb_pixel(data: bytes, xy: tuple[int, int] = (1, 1)) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB").getpixel(xy)  # type: ignore[return-value]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def doc_options(**overrides: Any) -> ExtractOptions:
    """Options for in-process extraction (the sandbox has its own tests)."""
    values: dict[str, Any] = {"sandbox": False}
    values.update(overrides)
    return ExtractOptions(**values)


# PDF -----------------------------------------------------------------------------------------------


class PdfBuilder:
    """Raw PDF objects and pages whose content streams and resources we write ourselves."""

    def __init__(self) -> None:
        self.doc = pymupdf.open()

    def obj(self, text: str, stream: bytes | None = None, *, filter: str | None = None) -> int:
        xref = self.doc.get_new_xref()
        self.doc.update_object(xref, text)
        if stream is not None:
            self.doc.update_stream(xref, stream, compress=filter is None)
            if filter:
                self.doc.xref_set_key(xref, "Filter", filter)
        return xref

    def image(self, width: int, height: int, samples: bytes, colorspace: str = "/DeviceRGB", extra: str = "") -> int:
        return self.obj(
            f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace {colorspace} "
            f"/BitsPerComponent 8 {extra} >>",
            samples,
        )

    def page(self, content: bytes, *, xobjects: dict[str, int] | None = None, patterns: dict[str, int] | None = None) -> Any:
        page = self.doc.new_page(width=300, height=300)
        contents = self.obj("<< >>", content)
        self.doc.xref_set_key(page.xref, "Contents", f"{contents} 0 R")
        res = ""
        if xobjects:
            res += "/XObject << " + " ".join(f"/{k} {v} 0 R" for k, v in xobjects.items()) + " >> "
        if patterns:
            res += "/Pattern << " + " ".join(f"/{k} {v} 0 R" for k, v in patterns.items()) + " >> "
        self.doc.xref_set_key(page.xref, "Resources", f"<< {res}>>")
        return page

    def tobytes(self, **kwargs: Any) -> bytes:
        return bytes(self.doc.tobytes(**kwargs))


def draw(name: str, x: int = 10, y: int = 10, w: int = 50, h: int = 50) -> bytes:
    return f"q {w} 0 0 {h} {x} {y} cm /{name} Do Q\n".encode()


def simple_pdf(pages: int = 2) -> bytes:
    """One distinct RGB PNG per page (what the platform's job tests upload)."""
    doc = pymupdf.open()
    for p in range(pages):
        page = doc.new_page()
        page.insert_image(pymupdf.Rect(10, 10, 110, 110), stream=png((200, 10 * p, 10), (40 + p, 30)))
    return bytes(doc.tobytes())


# Zip / OOXML ---------------------------------------------------------------------------------------


def rewrite_zip(data: bytes, changes: dict[str, bytes | None] | None = None, **edits: Any) -> bytes:
    """A copy of the zip `data` with entries replaced, added (`changes`) or removed (value None)."""
    changes = dict(changes or {})
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename in changes:
                new = changes.pop(info.filename)
                if new is not None:
                    dst.writestr(info.filename, new)
            else:
                dst.writestr(info.filename, src.read(info.filename))
        for name, new in changes.items():
            if new is not None:
                dst.writestr(name, new)
    return out.getvalue()


def edit_zip(data: bytes, name: str, old: str, new: str, count: int = 1) -> bytes:
    """Replace text in one XML entry (asserting it was there)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        text = zf.read(name).decode()
    assert old in text, f"{old!r} not in {name}"
    return rewrite_zip(data, {name: text.replace(old, new, count).encode()})


def read_entry(data: bytes, name: str) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read(name).decode()


def add_relationship(data: bytes, rels_part: str, rid: str, rtype: str, target: str) -> bytes:
    rel = f'<Relationship Id="{rid}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/{rtype}" Target="{target}"/>'
    return edit_zip(data, rels_part, "</Relationships>", rel + "</Relationships>")


def add_default_content_type(data: bytes, extension: str, content_type: str) -> bytes:
    return edit_zip(
        data, "[Content_Types].xml", "<Default ", f'<Default Extension="{extension}" ContentType="{content_type}"/><Default '
    )


def raw_zip(entries: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which some tests want
        with zipfile.ZipFile(out, "w", compression) as zf:
            for name, body in entries:
                zf.writestr(name, body)
    return out.getvalue()


def overlapping_zip() -> bytes:
    """Two entries whose bytes overlap: entry "b"'s local header and data lie inside entry "a"'s data.

    Both central-directory records are individually valid (correct names, sizes and CRCs), the shape of the
    overlapping-entry zip bomb.
    """
    inner_data = b"<x/>" * 10
    b_name = b"[Content_Types].xml"
    b_local = _local_header(b_name, inner_data) + b_name + inner_data
    a_name = b"a.bin"
    a_data = b"\x00" * 16 + b_local + b"\x00" * 16
    a_local = _local_header(a_name, a_data) + a_name
    archive = a_local + a_data
    b_offset = len(a_local) + 16
    central = _central(a_name, a_data, 0) + _central(b_name, inner_data, b_offset)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 2, 2, len(central), len(archive), 0)
    return archive + central + end


def _local_header(name: bytes, data: bytes) -> bytes:
    return struct.pack(
        "<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(data), len(data), len(data), len(name), 0
    )


def _central(name: bytes, data: bytes, offset: int) -> bytes:
    return (
        struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            20,
            20,
            0,
            0,
            0,
            0,
            zlib.crc32(data),
            len(data),
            len(data),
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        + name
    )


# PPTX ----------------------------------------------------------------------------------------------

SVG_EXT = (
    '<a:extLst><a:ext uri="{{96DAC541-7B7A-43D3-8B79-37D633B846F1}}">'
    '<asvg:svgBlip xmlns:asvg="http://schemas.microsoft.com/office/drawing/2016/SVG/main" r:embed="{rid}"/>'
    "</a:ext></a:extLst>"
)
PPTX_COLORS = {
    "master_logo": (10, 10, 10),
    "layout_badge": (20, 20, 200),
    "layout_prompt": (90, 90, 90),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "background": (255, 255, 0),
    "fallback": (128, 0, 128),
}


def build_pptx() -> tuple[bytes, dict[str, bytes]]:
    """A three-slide deck exercising every construct the PPTX reader knows. Returns (pptx, images by key).

    slide 1 (layout "Blank"): master logo, layout badge (the layout's picture placeholder is a prompt, not
        content), red picture with alt text and title, green picture two group levels deep;
    slide 2 (layout "Picture with Caption"): yellow background picture fill, master logo, blue picture in
        the picture placeholder, the red picture again;
    slide 3 (layout "Blank", showMasterSp="0"): an SVG picture with a PNG fallback only.
    """
    from pptx import Presentation
    from pptx.oxml.shapes.picture import CT_Picture
    from pptx.util import Emu, Inches

    images = {key: png(color, (24 + i, 16 + i)) for i, (key, color) in enumerate(PPTX_COLORS.items())}
    images["svg"] = svg()
    prs = Presentation()
    blank, captioned = prs.slide_layouts[6], prs.slide_layouts[8]

    def template_pic(part_owner: Any, key: str, shape_id: int, placeholder: bool = False) -> None:
        _, rid = part_owner.part.get_or_add_image_part(io.BytesIO(images[key]))
        pic = CT_Picture.new_pic(shape_id, f"Template {key}", key, rid, Emu(0), Emu(0), Emu(914400), Emu(914400))
        if placeholder:
            nv_pr = pic.nvPicPr.nvPr
            nv_pr.append(nv_pr.makeelement("{http://schemas.openxmlformats.org/presentationml/2006/main}ph", {"type": "pic", "idx": "13"}))
        part_owner.shapes._spTree.append(pic)

    template_pic(prs.slide_master, "master_logo", 90)
    template_pic(blank, "layout_badge", 91)
    template_pic(blank, "layout_prompt", 92, placeholder=True)

    s1 = prs.slides.add_slide(blank)
    red = s1.shapes.add_picture(io.BytesIO(images["red"]), Inches(1), Inches(1))
    red._element.nvPicPr.cNvPr.set("descr", "Red square")
    red._element.nvPicPr.cNvPr.set("title", "Red")
    outer = s1.shapes.add_group_shape()
    outer._element.nvGrpSpPr.cNvPr.set("descr", "group text is not picture text")
    inner = outer.shapes.add_group_shape()
    green = inner.shapes.add_picture(io.BytesIO(images["green"]), Inches(3), Inches(3))
    green._element.nvPicPr.cNvPr.set("descr", "Nested green")

    s2 = prs.slides.add_slide(captioned)
    s2.placeholders[1].insert_picture(io.BytesIO(images["blue"]))
    s2.shapes.add_picture(io.BytesIO(images["red"]), Inches(5), Inches(1))
    _, bg_rid = s2.part.get_or_add_image_part(io.BytesIO(images["background"]))
    c_sld = s2._element.cSld
    bg = f"""<p:bg xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"
        xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"
        xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><p:bgPr>
        <a:blipFill dpi="0" rotWithShape="1"><a:blip r:embed="{bg_rid}"/><a:stretch><a:fillRect/></a:stretch></a:blipFill>
        <a:effectLst/></p:bgPr></p:bg>"""
    from pptx.oxml import parse_xml

    c_sld.insert(0, parse_xml(bg))

    s3 = prs.slides.add_slide(blank)
    s3._element.set("showMasterSp", "0")
    fallback = s3.shapes.add_picture(io.BytesIO(images["fallback"]), Inches(1), Inches(1))
    fallback._element.nvPicPr.cNvPr.set("descr", "Vector logo")
    out = io.BytesIO()
    prs.save(out)
    data = out.getvalue()
    # The SVG original: a media part, its content type, a relationship, and the svgBlip extension.
    data = rewrite_zip(data, {"ppt/media/vector1.svg": images["svg"]})
    data = add_default_content_type(data, "svg", "image/svg+xml")
    data = add_relationship(data, "ppt/slides/_rels/slide3.xml.rels", "rIdSvg1", "image", "../media/vector1.svg")
    slide3 = read_entry(data, "ppt/slides/slide3.xml")
    start = slide3.index("<a:blip ")
    end = slide3.index("/>", start)
    data = edit_zip(data, "ppt/slides/slide3.xml", slide3[start : end + 2], slide3[start:end] + ">" + SVG_EXT.format(rid="rIdSvg1") + "</a:blip>")
    return data, images


# DOCX ----------------------------------------------------------------------------------------------

DOCX_NS = (
    'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:pic="http://schemas.openxmlformats.org/drawingml/2006/picture" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office"'
)
DOCX_COLORS = {
    "inline": (255, 0, 0),
    "anchored": (0, 128, 0),
    "choice": (0, 0, 255),
    "fallback_only": (255, 128, 0),
    "vml": (0, 128, 128),
    "header": (128, 0, 0),
    "footer": (0, 0, 128),
}


def _pic_xml(rid: str, descr: str = "", title: str = "", inner_descr: str = "") -> str:
    return (
        f'<wp:docPr id="7" name="Picture" descr="{descr}" title="{title}"/>'
        '<a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/picture"><pic:pic>'
        f'<pic:nvPicPr><pic:cNvPr id="0" name="p.png" descr="{inner_descr}"/><pic:cNvPicPr/></pic:nvPicPr>'
        f'<pic:blipFill><a:blip r:embed="{rid}"/><a:stretch><a:fillRect/></a:stretch></pic:blipFill>'
        '<pic:spPr><a:prstGeom prst="rect"/></pic:spPr></pic:pic></a:graphicData></a:graphic>'
    )


def build_docx() -> tuple[bytes, dict[str, bytes]]:
    """A document with, in body order: an inline picture (alt text + title on wp:docPr), an anchored
    picture, AlternateContent whose Choice is a drawing and whose Fallback is VML of the same picture,
    AlternateContent whose Choice has no picture (Fallback VML is used), a bare VML picture; then a header
    picture and a footer picture."""
    import docx
    from docx.oxml import parse_xml

    images = {key: png(color, (20 + i, 10 + i)) for i, (key, color) in enumerate(DOCX_COLORS.items())}
    document = docx.Document()
    inline = document.add_paragraph().add_run().add_picture(io.BytesIO(images["inline"]))
    inline._inline.docPr.set("descr", "A red square")
    inline._inline.docPr.set("title", "Red")
    part = document.part
    rid = {key: part.get_or_add_image(io.BytesIO(images[key]))[0] for key in ("anchored", "choice", "fallback_only", "vml")}
    body = document.element.body
    paragraphs = [
        f'<w:p {DOCX_NS}><w:r><w:drawing><wp:anchor distT="0" distB="0" distL="0" distR="0" simplePos="0" '
        'relativeHeight="1" behindDoc="0" locked="0" layoutInCell="1" allowOverlap="1"><wp:simplePos x="0" y="0"/>'
        '<wp:positionH relativeFrom="column"><wp:posOffset>0</wp:posOffset></wp:positionH>'
        '<wp:positionV relativeFrom="paragraph"><wp:posOffset>0</wp:posOffset></wp:positionV>'
        '<wp:extent cx="914400" cy="914400"/><wp:wrapNone/>'
        + _pic_xml(rid["anchored"], descr="", inner_descr="Floating green")
        + "</wp:anchor></w:drawing></w:r></w:p>",
        f'<w:p {DOCX_NS}><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:inline>'
        '<wp:extent cx="914400" cy="914400"/>'
        + _pic_xml(rid["choice"], descr="Choice blue")
        + '</wp:inline></w:drawing></mc:Choice><mc:Fallback><w:pict><v:shape alt="Fallback blue">'
        f'<v:imagedata r:id="{rid["choice"]}" o:title="blue"/></v:shape></w:pict></mc:Fallback>'
        "</mc:AlternateContent></w:r></w:p>",
        f'<w:p {DOCX_NS}><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:inline>'
        '<wp:extent cx="914400" cy="914400"/><wp:docPr id="9" name="Shape"/><a:graphic>'
        '<a:graphicData uri="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"><wps:wsp>'
        '<wps:spPr><a:prstGeom prst="rect"/></wps:spPr></wps:wsp></a:graphicData></a:graphic></wp:inline>'
        '</w:drawing></mc:Choice><mc:Fallback><w:pict><v:shape alt="Orange fallback">'
        f'<v:imagedata r:id="{rid["fallback_only"]}" o:title="orange"/></v:shape></w:pict></mc:Fallback>'
        "</mc:AlternateContent></w:r></w:p>",
        f'<w:p {DOCX_NS}><w:r><w:pict><v:shape alt="Legacy teal"><v:imagedata r:id="{rid["vml"]}" o:title="teal"/>'
        "</v:shape></w:pict></w:r></w:p>",
    ]
    sect = body[-1]
    for xml in paragraphs:
        sect.addprevious(parse_xml(xml))
    section = document.sections[0]
    section.header.paragraphs[0].add_run().add_picture(io.BytesIO(images["header"]))
    section.footer.paragraphs[0].add_run().add_picture(io.BytesIO(images["footer"]))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue(), images


# XLSX ----------------------------------------------------------------------------------------------


def build_xlsx() -> tuple[bytes, dict[str, bytes]]:
    """Sheet "Data": red at B3. Sheet "Charts & Pics": green at D10, red again at AA100 (alt text set)."""
    import openpyxl
    from openpyxl.drawing.image import Image as XLImage

    images = {"red": png((255, 0, 0), (31, 21)), "green": png((0, 255, 0), (12, 40))}
    wb = openpyxl.Workbook()
    data_ws = wb.active
    data_ws.title = "Data"
    data_ws["A1"] = "numbers"
    data_ws.add_image(XLImage(io.BytesIO(images["red"])), "B3")
    pics = wb.create_sheet("Charts & Pics")
    pics.add_image(XLImage(io.BytesIO(images["green"])), "D10")
    pics.add_image(XLImage(io.BytesIO(images["red"])), "AA100")
    out = io.BytesIO()
    wb.save(out)
    data = out.getvalue()
    drawing = read_entry(data, "xl/drawings/drawing2.xml")
    last = drawing.rindex('descr="Picture"')
    changed = drawing[:last] + 'descr="Red again" title="Again"' + drawing[last + len('descr="Picture"') :]
    return rewrite_zip(data, {"xl/drawings/drawing2.xml": changed.encode()}), images
