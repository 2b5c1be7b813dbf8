"""PDF fidelity on PDFs written byte by byte (bench.engine_pdfs.RawPdf): every colour space keeps its truth,
stencils (scanned pages) are 1-bit images, damaged files say so, undecodable JPX keeps its stored bytes."""

from __future__ import annotations

import asyncio
import io
import random
import re
from typing import Any

import pymupdf
import pytest
from PIL import Image

from bench.engine_pdfs import RawPdf, add_image, draw, encoded, raw_document, single_image_pdf, smooth
from imageextract.extract.documents import extract_document
from imageextract.extract.engine import extract_document_bytes
from imageextract.extract.types import ExtractedImage, ExtractError
from tests.extract.docfixtures import doc_options


def extract(data: bytes, **overrides: Any) -> list[ExtractedImage]:
    return extract_document(data, filename="doc.pdf", options=doc_options(**overrides))


def mupdf_rgb(data: bytes) -> Image.Image:
    """What MuPDF itself shows for the first image of the first page, as RGB."""
    with pymupdf.open(stream=data, filetype="pdf") as doc:
        xref = doc[0].get_images(full=True)[0][0]
        pix = pymupdf.Pixmap(doc, xref)
        if pix.alpha:
            pix = pymupdf.Pixmap(pix, 0)
        if pix.colorspace is None or pix.colorspace.n != 3 or "Lab" in pix.colorspace.name:
            pix = pymupdf.Pixmap(pymupdf.csRGB, pix)
        return Image.frombytes("RGB", (pix.width, pix.height), pix.samples)


def as_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        if im.mode == "LAB":
            from PIL import ImageCms

            lab, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
            out = ImageCms.applyTransform(im, ImageCms.buildTransform(lab, srgb, "LAB", "RGB"))
            assert out is not None
            return out
        return im.convert("RGB")


def max_diff(a: Image.Image, b: Image.Image) -> int:
    assert a.size == b.size
    return max(abs(x - y) for x, y in zip(a.tobytes(), b.tobytes(), strict=True))


@pytest.mark.parametrize(
    ("kind", "fmt", "color_space", "mode", "tolerance"),
    [
        ("flate-gray", "png", "grayscale", "L", 0),
        ("flate-rgb", "png", "srgb", "RGB", 0),
        ("flate-rgb-predictor", "png", "srgb", "RGB", 0),
        ("indexed-8", "png", "indexed", "P", 0),
        ("indexed-4", "png", "indexed", "P", 0),
        ("icc-rgb", "png", "srgb", "RGB", 2),
        ("ccitt-gray", "png", "grayscale", "1", 0),
        ("flate-cmyk", "tiff", "cmyk", "CMYK", 80),  # MuPDF converts CMYK through ICC profiles, Pillow naively
        ("lab", "tiff", "lab", "LAB", 40),  # MuPDF and LittleCMS adapt the white point differently
        ("dct-gray", "jpeg", "grayscale", "L", 0),
        ("dct-cmyk", "jpeg", "cmyk", "CMYK", 255),  # stored as is (Adobe-inverted): only the colour space is checked
    ],
)
def test_colour_space_is_kept_and_pixels_match_what_mupdf_shows(kind: str, fmt: str, color_space: str, mode: str,
                                                               tolerance: int) -> None:
    data = single_image_pdf(kind, (40, 24))
    (image,) = extract(data)
    assert (image.format, image.color_space, image.width, image.height) == (fmt, color_space, 40, 24)
    with Image.open(io.BytesIO(image.data or b"")) as im:
        assert im.mode == mode
    if tolerance < 255:
        assert max_diff(as_rgb(image.data or b""), mupdf_rgb(data)) <= tolerance


def test_icc_profile_travels_with_the_image() -> None:
    from bench.engine_pdfs import srgb_icc

    (image,) = extract(single_image_pdf("icc-rgb"))
    with Image.open(io.BytesIO(image.data or b"")) as im:
        assert im.info.get("icc_profile") == srgb_icc()


def test_calibrated_and_16_bit_grey_stay_grey() -> None:
    rng = random.Random(4)
    grey = smooth(rng, (16, 8), "L").tobytes()
    pdf = RawPdf()
    import zlib

    cal = pdf.image(16, 8, zlib.compress(grey), cs="[/CalGray << /WhitePoint [0.9505 1 1.089] /Gamma 2.2 >>]",
                    extra="/Filter /FlateDecode")
    deep = pdf.image(16, 8, zlib.compress(bytes(b for v in grey for b in (v, 7))), cs="/DeviceGray", bpc=16,
                     extra="/Filter /FlateDecode")
    pdf.page(draw("A", 0, 0, 50, 50) + draw("B", 60, 0, 50, 50), {"A": cal, "B": deep})
    cal_image, deep_image = extract(pdf.tobytes())
    assert (cal_image.format, cal_image.color_space) == ("png", "grayscale")
    with Image.open(io.BytesIO(cal_image.data or b"")) as im:
        assert im.mode == "L" and im.tobytes() == grey
    with Image.open(io.BytesIO(deep_image.data or b"")) as im:
        assert deep_image.color_space == "grayscale" and im.mode.startswith("I") and im.getpixel((0, 0)) == grey[0] * 256 + 7


@pytest.mark.parametrize("kind", ["stencil-ccitt", "stencil-flate"])
def test_a_scanned_page_is_a_1_bit_image(kind: str) -> None:
    rng = random.Random(9)
    pdf = RawPdf()
    xref = add_image(pdf, kind, rng, (816, 1056))
    pdf.page(b"0 0 0 rg " + draw("Scan", 0, 0, 612, 792), {"Scan": xref})
    data = pdf.tobytes()
    (image,) = extract(data)
    assert (image.format, image.color_space, image.width, image.height, image.has_alpha) == ("png", "grayscale", 816, 1056, False)
    with pymupdf.open(stream=data, filetype="pdf") as doc:
        alpha = pymupdf.Pixmap(doc, doc[0].get_images()[0][0]).samples  # the stencil: 255 where it paints
    with Image.open(io.BytesIO(image.data or b"")) as im:
        assert im.mode == "1"
        ours = im.convert("L").tobytes()
    assert ours == bytes(255 - a for a in alpha), "black exactly where the stencil paints"
    assert 0 < ours.count(0) < len(ours)


def test_damaged_pdf_that_mupdf_repairs_says_so_and_one_it_cannot_read_fails() -> None:
    whole = raw_document(5)
    broken_xref = re.sub(rb"startxref\n\d+", b"startxref\n12345", whole)
    result = asyncio.run(extract_document_bytes(broken_xref, doc_options(), filename="broken.pdf"))
    assert result.status == "done" and result.warnings == ["document_repaired"] and result.images
    assert result.to_dict()["warnings"] == ["document_repaired"]
    intact = asyncio.run(extract_document_bytes(whole, doc_options(), filename="whole.pdf"))
    assert intact.warnings == [] and len(intact.images) == len(result.images)
    truncated = asyncio.run(extract_document_bytes(whole[: len(whole) // 2], doc_options(), filename="cut.pdf"))
    assert (truncated.status, truncated.error_code) == ("failed", "extraction_failed")


def test_repair_warning_crosses_the_sandbox() -> None:
    broken = re.sub(rb"startxref\n\d+", b"startxref\n999", single_image_pdf("flate-gray"))
    result = asyncio.run(extract_document_bytes(broken, doc_options(sandbox=True), filename="broken.pdf"))
    assert result.status == "done" and result.warnings == ["document_repaired"] and len(result.images) == 1


def test_jpx_mupdf_cannot_decode_is_returned_as_stored_with_a_warning() -> None:
    import zlib

    rng = random.Random(3)
    jp2 = encoded(smooth(rng, (64, 48)), "JPEG2000")
    sot = jp2.find(b"\xff\x90")
    broken = jp2[: sot + 10]  # the header is intact, the tile data is cut
    pdf = RawPdf()
    mask = pdf.image(64, 48, zlib.compress(bytes(64 * 48)), cs="/DeviceGray", extra="/Filter /FlateDecode")
    xref = pdf.image(64, 48, broken, cs="", extra=f"/Filter /JPXDecode /SMask {mask} 0 R")  # needs decoding to merge
    pdf.page(draw("J", 0, 0, 100, 100), {"J": xref})
    result = extract_document(pdf.tobytes(), filename="doc.pdf", options=doc_options())
    (image,) = result
    assert image.data == broken and image.format == "jp2" and image.error is None
    assert (image.width, image.height) == (64, 48)
    assert result.warnings == ["jpx_not_decoded"]


def test_unreadable_pdf_still_fails() -> None:
    with pytest.raises(ExtractError) as err:
        extract(b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF")
    assert err.value.code == "extraction_failed"


def test_a_slow_page_is_cut_at_its_budget_and_the_others_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from imageextract.extract.documents import pdf as pdf_module

    rng = random.Random(2)
    pdf = RawPdf()
    slow = {f"S{i}": add_image(pdf, "flate-rgb", rng, (20, 20)) for i in range(4)}
    fast = {f"F{i}": add_image(pdf, "flate-gray", rng, (20, 20)) for i in range(3)}
    pdf.page(b"".join(draw(n, 10 * i, 10, 10, 10) for i, n in enumerate(slow)), slow)
    pdf.page(b"".join(draw(n, 10 * i, 10, 10, 10) for i, n in enumerate(fast)), fast)
    load = pdf_module._Extractor._load_xref

    def slow_load(self, row, stem):  # noqa: ANN001
        if row[5] == "DeviceRGB":  # the hostile page's images take 0.3 s each
            time.sleep(0.3)
        return load(self, row, stem)

    monkeypatch.setattr(pdf_module._Extractor, "_load_xref", slow_load)
    result = extract_document(pdf.tobytes(), filename="doc.pdf", options=doc_options(page_seconds=0.2))
    assert [i.document_page for i in result] == [1, 2, 2, 2], "page 1 stops after its budget; page 2 is whole"
    assert result.warnings == ["page_time_budget"]
