"""PDF extraction on real PDFs: native bytes, pages, occurrences, masks, colour spaces, inline images, and
what must not be reported (masks, stencils, pattern tiles, unused resources)."""

from __future__ import annotations

import io
from typing import Any

import pymupdf
import pytest
from PIL import Image

from imageextract.extract.documents import extract_document
from imageextract.extract.types import ExtractedImage, ExtractError
from tests.extract.docfixtures import (
    PdfBuilder,
    doc_options,
    draw,
    jpeg,
    pixel,
    png,
    rgb_pixel,
    sha,
    simple_pdf,
)


def extract(data: bytes, **overrides: Any) -> list[ExtractedImage]:
    return extract_document(data, filename="doc.pdf", options=doc_options(**overrides))


def is_red(rgb: tuple[int, ...]) -> bool:
    return rgb[0] > 200 and rgb[1] < 60 and rgb[2] < 60


PHOTO = jpeg((10, 200, 30), (64, 48))
CHART = png((0, 0, 255), (33, 21))


def photo_pdf() -> bytes:
    """Page 1: a JPEG shown at 300x200 pt and a PNG; page 2: the same JPEG xref twice; page 3: nothing."""
    doc = pymupdf.open()
    p1 = doc.new_page()
    xref = p1.insert_image(pymupdf.Rect(0, 0, 300, 200), stream=PHOTO)
    p1.insert_image(pymupdf.Rect(0, 300, 100, 400), stream=CHART)
    p2 = doc.new_page()
    p2.insert_image(pymupdf.Rect(0, 0, 100, 100), xref=xref)
    p2.insert_image(pymupdf.Rect(200, 200, 300, 300), xref=xref)
    doc.new_page()
    return bytes(doc.tobytes())


def test_embedded_images_keep_native_bytes_with_pages_and_occurrences() -> None:
    images = extract(photo_pdf())
    assert [(i.document_page, i.filename, i.format) for i in images] == [
        (1, "page-1-image-1.jpg", "jpeg"),
        (1, "page-1-image-2.png", "png"),
        (2, "page-2-image-1.jpg", "jpeg"),
    ]
    photo, chart, again = images
    assert photo.data == PHOTO and again.data == PHOTO, "the JPEG stream itself, not a re-encode or a render"
    assert (photo.width, photo.height, photo.aspect_ratio) == (64, 48, 1.333), "native size, not the 300x200 pt placement"
    assert photo.content_hash == photo.document_asset_hash == sha(PHOTO) and photo.file_size == len(PHOTO)
    assert photo.document_occurrence_count == again.document_occurrence_count == 2
    assert chart.document_occurrence_count == 1
    assert (chart.width, chart.height, chart.color_space, chart.has_alpha) == (33, 21, "srgb", False)
    assert pixel(chart.data or b"") == (0, 0, 255)
    for image in images:
        assert (image.source_kind, image.construct, image.source_url, image.document_slide) == ("document", "document", None, None)
        assert image.error is None and image.media_type in ("image/jpeg", "image/png")


def test_simple_pdf_like_the_platform_upload_test() -> None:
    images = extract(simple_pdf(2))
    assert sorted((i.document_page, i.width) for i in images) == [(1, 40), (2, 41)]
    assert all(i.document_occurrence_count == 1 and len(i.document_asset_hash or "") == 64 for i in images)


def test_soft_mask_is_merged_into_an_rgba_png_and_not_reported_alone() -> None:
    doc = pymupdf.open()
    doc.new_page().insert_image(pymupdf.Rect(0, 0, 100, 50), stream=png((0, 0, 255, 100), (20, 10), "RGBA"))
    (image,) = extract(bytes(doc.tobytes()))
    assert (image.format, image.has_alpha, image.width, image.height) == ("png", True, 20, 10)
    assert pixel(image.data or b"") == (0, 0, 255, 100)


def test_cmyk_jpeg_is_kept_as_stored_and_reports_cmyk() -> None:
    cmyk = jpeg((0, 255, 255, 0), (16, 8), "CMYK")
    doc = pymupdf.open()
    doc.new_page().insert_image(pymupdf.Rect(0, 0, 100, 50), stream=cmyk)
    (image,) = extract(bytes(doc.tobytes()))
    assert image.data == cmyk and (image.format, image.color_space) == ("jpeg", "cmyk")
    assert is_red(rgb_pixel(image.data)), "a viewer shows the CMYK red as red"


def lab_to_rgb(data: bytes, xy: tuple[int, int] = (0, 0)) -> tuple[int, int, int]:
    from PIL import ImageCms

    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "LAB"
        rgb = ImageCms.applyTransform(im, ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"))
        assert rgb is not None
        return rgb.getpixel(xy)  # type: ignore[return-value]


def test_cmyk_indexed_and_lab_keep_their_colour_space_and_inverted_decode_comes_out_right() -> None:
    pdf = PdfBuilder()
    red_cmyk = bytes([0, 255, 255, 0] * 4)
    xobjects = {
        "Cmyk": pdf.image(2, 2, red_cmyk, "/DeviceCMYK"),
        "IdxRgb": pdf.image(2, 1, bytes([0, 1]), "[/Indexed /DeviceRGB 1 <ff000000ff00>]"),
        "IdxCmyk": pdf.image(2, 2, bytes([0, 0, 0, 0]), "[/Indexed /DeviceCMYK 0 <00ffff00>]"),
        "Lab": pdf.image(2, 2, bytes([137, 208, 195] * 4), "[/Lab << /WhitePoint [0.9505 1 1.089] /Range [-128 127 -128 127] >>]"),
        "Inverted": pdf.obj(
            "<< /Type /XObject /Subtype /Image /Width 64 /Height 48 /ColorSpace /DeviceRGB /BitsPerComponent 8 "
            "/Decode [1 0 1 0 1 0] >>",
            PHOTO,
            filter="/DCTDecode",
        ),
    }
    pdf.page(b"".join(draw(name, y=20 * i) for i, name in enumerate(xobjects)), xobjects=xobjects)
    cmyk, idx_rgb, idx_cmyk, lab, inverted = extract(pdf.tobytes())
    assert (cmyk.format, cmyk.color_space) == ("tiff", "cmyk") and pixel(cmyk.data or b"", (0, 0)) == (0, 255, 255, 0)
    assert (idx_rgb.format, idx_rgb.color_space, idx_cmyk.color_space) == ("png", "indexed", "indexed")
    assert rgb_pixel(idx_rgb.data or b"", (0, 0)) == (255, 0, 0) and rgb_pixel(idx_rgb.data or b"", (1, 0)) == (0, 255, 0)
    assert is_red(rgb_pixel(idx_cmyk.data or b"", (0, 0)))
    assert (lab.format, lab.color_space) == ("tiff", "lab") and pixel(lab.data or b"", (0, 0)) == (137, 208, 195)
    assert is_red(lab_to_rgb(lab.data or b"")), "Lab (54, 80, 67) is a red"
    assert inverted.format == "png" and inverted.data != PHOTO, "a JPEG with an inverting /Decode is re-encoded"
    r, g, b = rgb_pixel(inverted.data or b"", (5, 5))
    assert r > 200 and g < 100 and b > 180, "inverted (10, 200, 30) is magenta-ish"


def test_inline_images_are_extracted_once_per_page_and_stencils_skipped() -> None:
    pdf = PdfBuilder()
    photo = pdf.image(3, 1, bytes([0, 0, 255] * 3))
    inline_red = b"BI /W 4 /H 3 /CS /RGB /BPC 8 /F /AHx ID " + (b"ff0000" * 12) + b"> EI"
    inline_stencil = b"BI /W 8 /H 1 /IM true ID \xaa EI"
    content = (
        draw("Photo")
        + b"q 40 0 0 30 100 10 cm " + inline_red + b" Q\n"
        + b"q 40 0 0 30 150 10 cm " + inline_red + b" Q\n"  # the same inline image again: one report
        + b"q 0 0 1 rg 20 0 0 20 200 10 cm " + inline_stencil + b" Q\n"
    )
    pdf.page(content, xobjects={"Photo": photo})
    pdf.page(b"q 40 0 0 30 10 10 cm BI /W 2 /H 2 /CS /G /BPC 8 /F /AHx ID 00ff00ff> EI Q\n")
    images = extract(pdf.tobytes())
    assert [(i.document_page, i.filename, i.width, i.height) for i in images] == [
        (1, "page-1-image-1.png", 3, 1),
        (1, "page-1-image-2.png", 4, 3),
        (2, "page-2-image-1.png", 2, 2),
    ]
    assert pixel(images[0].data or b"", (1, 0)) == (0, 0, 255)
    assert rgb_pixel(images[1].data or b"", (2, 2)) == (255, 0, 0)
    assert images[2].color_space == "grayscale" and pixel(images[2].data or b"", (1, 0)) == 255


def test_masks_patterns_and_unused_resources_are_not_pictures_but_stencils_are() -> None:
    pdf = PdfBuilder()
    stencil_mask = pdf.obj(
        "<< /Type /XObject /Subtype /Image /Width 8 /Height 1 /ImageMask true /BitsPerComponent 1 >>", bytes([0b10000000])
    )
    masked = pdf.image(8, 1, bytes([100] * 8), "/DeviceGray", f"/Mask {stencil_mask} 0 R")
    stencil = pdf.obj("<< /Type /XObject /Subtype /Image /Width 8 /Height 1 /ImageMask true /BitsPerComponent 1 >>", bytes([0xAA]))
    tile = pdf.image(3, 3, bytes([0, 0, 255] * 9))
    pattern = pdf.obj(
        f"<< /Type /Pattern /PatternType 1 /PaintType 1 /TilingType 1 /BBox [0 0 10 10] /XStep 10 /YStep 10 "
        f"/Resources << /XObject << /T {tile} 0 R >> >> >>",
        b"q 10 0 0 10 0 0 cm /T Do Q",
    )
    in_form = pdf.image(5, 5, bytes([0, 255, 0] * 25))
    form = pdf.obj(
        f"<< /Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << /G {in_form} 0 R >> >> >>",
        b"q 1 0 0 1 0 0 cm /G Do Q",
    )
    unused = pdf.image(6, 6, bytes([9, 9, 9] * 36))
    content = (
        draw("Masked")
        + draw("Stencil", x=70)
        + draw("Form", x=130)
        + draw("Form", x=190)
        + b"/Pattern cs /P1 scn 0 100 60 60 re f\n"
    )
    pdf.page(content, xobjects={"Masked": masked, "Stencil": stencil, "Form": form, "Unused": unused}, patterns={"P1": pattern})
    images = extract(pdf.tobytes())
    assert [(i.width, i.height) for i in images] == [(8, 1), (8, 1), (5, 5)], "the mask serving /Mask is not a picture"
    stencil_image = images[1]
    assert (stencil_image.format, stencil_image.color_space, stencil_image.has_alpha) == ("png", "grayscale", False)
    with Image.open(io.BytesIO(stencil_image.data or b"")) as im:
        assert im.mode == "1", "a stencil is stored as the 1-bit image it is"
        assert [im.getpixel((x, 0)) for x in range(8)] == [255, 0] * 4, "0xAA: black where the stencil paints (0 bits)"
    masked_image = images[0]
    assert masked_image.has_alpha and masked_image.format == "png"
    assert pixel(masked_image.data or b"", (0, 0))[1] == 0 and pixel(masked_image.data or b"", (1, 0)) == (100, 255)


def test_pixel_bomb_inside_a_pdf_is_reported_without_decoding() -> None:
    pdf = PdfBuilder()
    bomb = pdf.image(100_000, 100_000, b"\x00" * 30)
    pdf.page(draw("Bomb"), xobjects={"Bomb": bomb})
    (image,) = extract(pdf.tobytes())
    assert image.data is None and image.content_hash is None
    assert (image.width, image.height, image.document_page) == (100_000, 100_000, 1)
    assert "pixels" in (image.error or "")


def test_encrypted_pdfs() -> None:
    doc = pymupdf.open(stream=simple_pdf(1), filetype="pdf")
    locked = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")
    with pytest.raises(ExtractError) as err:
        extract(bytes(locked))
    assert err.value.code == "unsupported_input" and "password" in err.value.message
    owner_only = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="", owner_pw="owner")
    assert [i.width for i in extract(bytes(owner_only))] == [40], "no user password: it opens"


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.7\n" + bytes(range(256)) * 8, b"%PDF-", simple_pdf(1)[:20]],
    ids=["garbage-body", "header-only", "truncated-early"],
)
def test_corrupted_pdfs_fail_cleanly(data: bytes) -> None:
    with pytest.raises(ExtractError) as err:
        extract(data)
    assert err.value.code == "extraction_failed"


def test_truncated_pdf_is_repaired_or_fails_cleanly() -> None:
    whole = photo_pdf()
    try:
        images = extract(whole[: len(whole) // 2])
    except ExtractError as exc:
        assert exc.code == "extraction_failed"
    else:  # MuPDF rebuilt the xref: whatever survived, on pages that exist
        assert all(i.document_page in (1, 2, 3) for i in images) and len(images) <= 3


def test_page_and_size_limits() -> None:
    with pytest.raises(ExtractError) as err:
        extract(simple_pdf(3), max_pages=2)
    assert err.value.code == "page_limit_exceeded" and "3 pages" in err.value.message
    assert len(extract(simple_pdf(2), max_pages=2)) == 2
    with pytest.raises(ExtractError) as err:
        extract(simple_pdf(1), document_max_bytes=100)
    assert err.value.code == "document_too_large"


def test_sandboxed_extraction_matches_in_process() -> None:
    data = photo_pdf()
    here = extract(data)
    there = extract_document(data, filename="doc.pdf", options=doc_options(sandbox=True))
    assert [i.to_dict() for i in there] == [i.to_dict() for i in here]
    assert [i.data for i in there] == [i.data for i in here]
    assert there[0].data is there[2].data, "identical bytes cross the pipe once and are shared"


def test_probe_results_match_pillow() -> None:
    for image in extract(photo_pdf()):
        with Image.open(io.BytesIO(image.data or b"")) as im:
            assert im.size == (image.width, image.height)


def test_shared_resources_report_only_what_each_page_draws() -> None:
    pdf = PdfBuilder()
    a = pdf.image(2, 2, bytes([255, 0, 0] * 4))
    b = pdf.image(3, 3, bytes([0, 255, 0] * 9))
    c = pdf.image(4, 4, bytes([0, 0, 255] * 16))
    legacy_form = pdf.obj("<< /Type /XObject /Subtype /Form /BBox [0 0 1 1] >>", b"/C#20x Do")  # no /Resources
    shared = {"A": a, "B": b, "C#20x": c, "F": legacy_form}
    pdf.page(draw("A"), xobjects=shared)
    pdf.page(draw("B") + draw("F"), xobjects=shared)
    images = extract(pdf.tobytes())
    assert [(i.document_page, i.width) for i in images] == [(1, 2), (2, 3), (2, 4)], (
        "page 1 does not draw B or C; C is painted by a form that uses the page's resources (#20 escape)"
    )
