"""PPTX, DOCX and XLSX extraction on real packages (python-pptx / python-docx / openpyxl, then edited)."""

from __future__ import annotations

from typing import Any

import pytest

from imageextract.extract.documents import extract_document
from imageextract.extract.types import ExtractedImage, ExtractError
from tests.extract.docfixtures import (
    DOCX_NS,
    add_relationship,
    build_docx,
    build_pptx,
    build_xlsx,
    doc_options,
    edit_zip,
    emf,
    pixel,
    read_entry,
    rewrite_zip,
    sha,
)


def extract(data: bytes, filename: str | None = None, **overrides: Any) -> list[ExtractedImage]:
    return extract_document(data, filename=filename, options=doc_options(**overrides))


def keyed(images: list[ExtractedImage], sources: dict[str, bytes]) -> list[str]:
    by_hash = {sha(v): k for k, v in sources.items()}
    return [by_hash.get(i.document_asset_hash or "", "?") for i in images]


# PPTX ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pptx() -> tuple[bytes, dict[str, bytes]]:
    return build_pptx()


def test_pptx_slides_layers_groups_placeholders_backgrounds(pptx: tuple[bytes, dict[str, bytes]]) -> None:
    data, sources = pptx
    images = extract(data, "deck.pptx")
    assert [(i.document_slide, i.construct, k) for i, k in zip(images, keyed(images, sources), strict=True)] == [
        (1, "document", "red"),
        (1, "document", "green"),
        (2, "document", "background"),
        (2, "document", "blue"),
        (2, "document", "red"),
        (3, "document", "svg"),
        (None, "master", "master_logo"),
        (None, "layout", "layout_badge"),
    ], "template pictures once each, after the slides; a layout's picture placeholder is a prompt, not content"
    assert [i.filename for i in images[:3]] == ["slide-1-image-1.png", "slide-1-image-2.png", "slide-2-image-1.png"]
    assert [i.filename for i in images[-2:]] == ["master-1-image-1.png", "layout-7-image-1.png"]
    counts = {k: i.document_occurrence_count for i, k in zip(images, keyed(images, sources), strict=True)}
    assert counts == {"master_logo": 1, "layout_badge": 1, "red": 2, "green": 1, "background": 1, "blue": 1, "svg": 1}
    red = images[0]
    assert (red.alt_text, red.title) == ("Red square", "Red")
    assert images[1].alt_text == "Nested green", "the group's own descr is not lent to its members"
    assert red.data == sources["red"] and red.content_hash == sha(sources["red"])
    assert (red.width, red.height, red.format, red.color_space, red.has_alpha) == (27, 19, "png", "srgb", False)
    for image in images:
        assert (image.source_kind, image.document_page) == ("document", None)


def test_potx_template_without_slides_reports_master_layout_and_notes_pictures_once() -> None:
    import io

    from pptx import Presentation
    from pptx.oxml.shapes.picture import CT_Picture
    from pptx.util import Emu

    from tests.extract.docfixtures import png

    logo, badge, notes_logo = png((10, 20, 30), (40, 30)), png((200, 100, 0), (20, 12)), png((0, 90, 0), (18, 18))
    prs = Presentation()

    def put(owner, data: bytes, shape_id: int) -> None:  # noqa: ANN001
        _, rid = owner.part.get_or_add_image_part(io.BytesIO(data))
        owner.shapes._spTree.append(CT_Picture.new_pic(shape_id, "Logo", "logo", rid, Emu(0), Emu(0), Emu(9144), Emu(9144)))

    put(prs.slide_master, logo, 90)
    for layout in prs.slide_layouts:  # the same badge on every layout: one image per layout, no slides needed
        put(layout, badge, 91)
    put(prs.notes_master, notes_logo, 92)
    slide = prs.slides.add_slide(prs.slide_layouts[6])
    put(slide.notes_slide, notes_logo, 93)
    out = io.BytesIO()
    prs.save(out)
    deck = out.getvalue()
    images = extract(deck, "deck.pptx")
    assert [(i.construct, i.document_slide) for i in images][:2] == [("notes", 1), ("master", None)]
    assert [i.construct for i in images].count("layout") == len(prs.slide_layouts)
    assert images[-1].construct == "notes" and images[-1].data == notes_logo and images[-1].filename == "notes-master-image-1.png"
    master = next(i for i in images if i.construct == "master")
    assert master.data == logo and master.document_slide is None

    # The same deck as a template (POTX) with no slides at all: the master's logo is still there, once.
    template = edit_zip(
        deck,
        "[Content_Types].xml",
        "presentationml.presentation.main+xml",
        "presentationml.template.main+xml",
    )
    template = edit_zip(template, "ppt/presentation.xml", read_entry(template, "ppt/presentation.xml").split("<p:sldIdLst>")[1].split("</p:sldIdLst>")[0], "")
    images = extract(template, "template.potx")
    assert [i.construct for i in images].count("master") == 1
    assert {i.construct for i in images} == {"master", "layout", "notes"}
    assert all(i.document_slide is None for i in images)


def test_pptx_svg_is_the_picture_and_png_fallback_is_a_variant(pptx: tuple[bytes, dict[str, bytes]]) -> None:
    data, sources = pptx
    svg_image = [i for i in extract(data) if i.document_slide == 3][-1]
    assert (svg_image.format, svg_image.width, svg_image.height, svg_image.filename) == ("svg", 120, 80, "slide-3-image-1.svg")
    assert svg_image.alt_text == "Vector logo" and svg_image.data == sources["svg"]
    (fallback,) = svg_image.variants
    assert fallback["role"] == "fallback" and fallback["type"] == "image/png"
    assert fallback["content_hash"] == sha(sources["fallback"]) and (fallback["width"], fallback["height"]) == (31, 23)


def test_pptx_unsafe_svg_gives_way_to_its_png_fallback(pptx: tuple[bytes, dict[str, bytes]]) -> None:
    data, sources = pptx
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&b;</text></svg>'
    )
    image = [i for i in extract(rewrite_zip(data, {"ppt/media/vector1.svg": laughs})) if i.document_slide == 3][-1]
    assert image.format == "png" and image.data == sources["fallback"] and image.variants == []


def test_pptx_linked_and_escaping_pictures_are_not_fetched(pptx: tuple[bytes, dict[str, bytes]]) -> None:
    data, _ = pptx
    rels = "ppt/slides/_rels/slide1.xml.rels"
    slide = read_entry(data, "ppt/slides/slide1.xml")
    rid = slide.split('r:embed="', 2)[1].split('"')[0]  # the first picture on the slide (the red one)
    rel_text = read_entry(data, rels)
    start = rel_text.index(f'Id="{rid}"')
    target_start = rel_text.index('Target="', start) + len('Target="')
    target_end = rel_text.index('"', target_start)
    linked = edit_zip(data, rels, rel_text[target_start:target_end] + '"', 'http://169.254.169.254/x.png" TargetMode="External"')
    assert "red" not in keyed(extract(linked), {"red": b""}) and len(extract(linked)) == 7
    escaping = edit_zip(data, rels, rel_text[target_start:target_end] + '"', '../../../../etc/passwd"')
    assert len(extract(escaping)) == 7


def test_pptx_slide_limit(pptx: tuple[bytes, dict[str, bytes]]) -> None:
    with pytest.raises(ExtractError) as err:
        extract(pptx[0], max_pages=2)
    assert err.value.code == "page_limit_exceeded" and "3 slides" in err.value.message


# DOCX ------------------------------------------------------------------------------------------


def test_docx_inline_anchor_alternate_content_vml_headers_footers() -> None:
    data, sources = build_docx()
    images = extract(data, "report.docx")
    assert keyed(images, sources) == ["inline", "anchored", "choice", "fallback_only", "vml", "header", "footer"]
    texts = [(i.alt_text, i.title) for i in images]
    assert texts == [
        ("A red square", "Red"),
        ("Floating green", None),  # the picture's own cNvPr when wp:docPr has none
        ("Choice blue", None),  # the Choice, not the Fallback: counted once
        ("Orange fallback", "orange"),  # the Choice held no picture
        ("Legacy teal", "teal"),
        (None, None),
        (None, None),
    ]
    assert [i.filename for i in images] == [f"image{n}.png" for n in range(1, 8)]
    assert all(i.document_occurrence_count == 1 and i.document_page is None and i.document_slide is None for i in images)
    assert pixel(images[0].data or b"") == (255, 0, 0) and images[0].width == 20


def test_docx_same_picture_twice_and_emf() -> None:
    data, sources = build_docx()
    body = read_entry(data, "word/document.xml")
    first = body.index("<w:p>", body.index("<w:body>")) if "<w:p>" in body else body.index("<w:p ", body.index("<w:body>"))
    end = body.index("</w:p>", first) + len("</w:p>")
    doubled = edit_zip(data, "word/document.xml", body[first:end], body[first:end] * 2)
    images = extract(doubled)
    assert keyed(images, sources)[:2] == ["inline", "inline"]
    assert images[0].document_occurrence_count == images[1].document_occurrence_count == 2
    assert images[0].filename == "image1.png" and images[1].filename == "image1-2.png"

    with_emf = add_relationship(data, "word/_rels/document.xml.rels", "rIdEmf", "image", "media/chart.emf")
    with_emf = rewrite_zip(with_emf, {"word/media/chart.emf": emf(40, 30)})
    paragraph = f'<w:p {DOCX_NS}><w:r><w:pict><v:shape><v:imagedata r:id="rIdEmf"/></v:shape></w:pict></w:r></w:p>'
    with_emf = edit_zip(with_emf, "word/document.xml", "<w:sectPr", paragraph + "<w:sectPr")
    emf_image = [i for i in extract(with_emf) if i.format == "emf"]
    assert [(i.format, i.width, i.height, i.filename, i.media_type) for i in emf_image] == [
        ("emf", 40, 30, "chart.emf", "image/emf")
    ]


# XLSX ------------------------------------------------------------------------------------------


def test_xlsx_sheets_anchor_cells_and_alt_text() -> None:
    data, sources = build_xlsx()
    images = extract(data, "book.xlsx")
    assert [(k, i.sheet, i.anchor_cell) for i, k in zip(images, keyed(images, sources), strict=True)] == [
        ("red", "Data", "B3"),
        ("green", "Charts & Pics", "D10"),
        ("red", "Charts & Pics", "AA100"),
    ]
    assert [i.document_occurrence_count for i in images] == [2, 1, 2]
    assert (images[2].alt_text, images[2].title) == ("Red again", "Again")
    assert (images[1].width, images[1].height) == (12, 40)
    assert all(i.document_page is None and i.document_slide is None for i in images)


def test_xlsx_absolute_anchor_and_alternate_content() -> None:
    data, sources = build_xlsx()
    drawing = read_entry(data, "xl/drawings/drawing1.xml")
    start = drawing.index("<oneCellAnchor>")
    end = drawing.index("</oneCellAnchor>") + len("</oneCellAnchor>")
    anchor = drawing[start:end]
    absolute = anchor.replace("oneCellAnchor", "absoluteAnchor").split("<from>")[0] + anchor.split("</from>")[1].replace(
        "oneCellAnchor", "absoluteAnchor"
    )
    wrapped = (
        '<mc:AlternateContent xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006">'
        f'<mc:Choice Requires="a14">{anchor}</mc:Choice><mc:Fallback>{anchor}</mc:Fallback></mc:AlternateContent>'
    )
    changed = edit_zip(data, "xl/drawings/drawing1.xml", anchor, absolute + wrapped)
    images = [i for i in extract(changed) if i.sheet == "Data"]
    assert [(i.anchor_cell, i.document_occurrence_count) for i in images] == [(None, 3), ("B3", 3)], "Choice and Fallback count once"


def test_xlsx_sheet_limit() -> None:
    with pytest.raises(ExtractError) as err:
        extract(build_xlsx()[0], max_pages=1)
    assert err.value.code == "page_limit_exceeded"
