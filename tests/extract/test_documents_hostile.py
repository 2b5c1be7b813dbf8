"""Detection by bytes, plain image files, and hostile inputs: zip bombs of every shape, unsafe XML, pixel
bombs, random bytes. Each must end as a stable error code (or a reported per-image error), never a crash."""

from __future__ import annotations

import os
import zipfile
from typing import Any

import pytest

from imageextract.extract import engine
from imageextract.extract.documents import extract_document
from imageextract.extract.types import ExtractedImage, ExtractError
from tests.extract.docfixtures import (
    bomb_png,
    build_docx,
    doc_options,
    emf,
    jpeg,
    overlapping_zip,
    png,
    raw_zip,
    read_entry,
    rewrite_zip,
    sha,
    simple_pdf,
    svg,
)
from tests.extract.webfixtures import make_image


def extract(data: bytes, filename: str | None = None, **overrides: Any) -> list[ExtractedImage]:
    return extract_document(data, filename=filename, options=doc_options(**overrides))


def error_of(data: bytes, filename: str | None = None, **overrides: Any) -> ExtractError:
    with pytest.raises(ExtractError) as err:
        extract(data, filename, **overrides)
    return err.value


# Detection -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (png((1, 2, 3), (7, 5)), "png"),
        (jpeg((1, 2, 3), (7, 5)), "jpeg"),
        (make_image("GIF", (7, 5), "P"), "gif"),
        (make_image("WEBP", (7, 5)), "webp"),
        (make_image("BMP", (7, 5)), "bmp"),
        (make_image("TIFF", (7, 5)), "tiff"),
        (make_image("ICO", (16, 16), "RGBA"), "ico"),
        (svg(7, 5), "svg"),
        (emf(7, 5), "emf"),
    ],
)
def test_plain_images_are_one_file_image(data: bytes, fmt: str) -> None:
    (image,) = extract(data, "upload.bin")
    assert (image.format, image.source_kind, image.construct, image.document_occurrence_count) == (fmt, "file", "file", 1)
    assert image.data == data and image.content_hash == image.document_asset_hash == sha(data)
    assert image.filename.startswith("upload.bin.") or image.filename.startswith("upload.")
    if fmt != "ico":
        assert (image.width, image.height) == (7, 5)


def test_wmf_and_named_svg() -> None:
    placeable = b"\xd7\xcd\xc6\x9a\x00\x00" + (0).to_bytes(2, "little") * 2 + (144).to_bytes(2, "little") * 2
    placeable += (1440).to_bytes(2, "little") + b"\x00" * 6 + b"\x01\x00\x09\x00\x00\x03" + b"\x00" * 12
    (wmf,) = extract(placeable, "drawing.wmf")
    assert (wmf.format, wmf.width, wmf.height, wmf.filename) == ("wmf", 7, 7, "drawing.wmf")
    commented = b"<!--" + b"x" * 10_000 + b"-->" + svg(9, 4)
    (named,) = extract(commented, "logo.svg")
    assert (named.format, named.width, named.height, named.filename) == ("svg", 9, 4, "logo.svg")
    assert error_of(commented, "logo.txt").code == "unsupported_input", "without the hint it is just markup"


def test_the_bytes_decide_not_the_filename() -> None:
    assert [i.document_page for i in extract(simple_pdf(1), "slides.pptx")] == [1]
    docx, _ = build_docx()
    assert len(extract(docx, "scan.pdf")) == 7


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (os.urandom(4096).replace(b"%PDF-", b"xxxxx"), "not a PDF"),
        (b"", "empty"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "legacy"),
        (b"__crash__", "not a PDF"),
        (raw_zip([("mimetype", b"application/epub+zip"), ("content.opf", b"<package/>")]), "not a Word"),
        (b"PK\x05\x06" + b"\x00" * 18, "empty zip"),
    ],
    ids=["random", "empty", "ole", "task-name", "epub", "empty-zip"],
)
def test_unsupported_inputs(data: bytes, needle: str) -> None:
    err = error_of(data, "x.docx")
    assert err.code == "unsupported_input" and needle in err.message


def test_pillow_decompression_bomb() -> None:
    err = error_of(bomb_png(), "huge.png")
    assert err.code == "unsupported_input" and "bomb" in err.message
    docx, _ = build_docx()
    with_bomb = rewrite_zip(docx, {"word/media/image1.png": bomb_png()})
    first = extract(with_bomb)[0]
    assert first.data is None and first.content_hash is None and "bomb" in (first.error or "")
    assert first.document_asset_hash == sha(bomb_png()), "still identified, never decoded"


# Zip bombs and broken archives -----------------------------------------------------------------


def test_overlapping_entries_are_rejected() -> None:
    data = overlapping_zip()
    with zipfile.ZipFile(__import__("io").BytesIO(data)) as zf:
        assert zf.testzip() is None, "each entry on its own is valid"
    err = error_of(data)
    assert err.code == "extraction_failed" and "overlap" in err.message


def test_duplicate_entry_names_are_rejected() -> None:
    docx, _ = build_docx()
    content_types = read_entry(docx, "[Content_Types].xml").encode()
    entries = [("[Content_Types].xml", content_types), ("[content_types].xml", content_types)]
    err = error_of(raw_zip(entries))
    assert err.code == "extraction_failed" and "duplicate" in err.message
    exact = raw_zip([("word/document.xml", b"<a/>"), ("word/document.xml", b"<b/>")])
    assert "duplicate" in error_of(exact).message


def test_too_many_entries() -> None:
    docx, _ = build_docx()
    err = error_of(docx, max_zip_entries=5)
    assert err.code == "document_too_large" and "entries" in err.message


def test_high_ratio_entry_is_a_zip_bomb() -> None:
    docx, _ = build_docx()
    bomb = rewrite_zip(docx, {"word/media/zeros.bin": b"\x00" * (2 * 1024 * 1024)})
    err = error_of(bomb)
    assert err.code == "extraction_failed" and "zip bomb" in err.message
    assert len(extract(bomb, max_zip_ratio=5000)) == 7, "the ratio limit is the options' to set"


def test_total_uncompressed_size_limit() -> None:
    docx, _ = build_docx()
    err = error_of(docx, max_zip_uncompressed_bytes=10_000)
    assert err.code == "document_too_large"


def test_unsupported_compression_and_truncated_zip() -> None:
    docx, _ = build_docx()
    entries = [("[Content_Types].xml", read_entry(docx, "[Content_Types].xml").encode())]
    assert "compression" in error_of(raw_zip(entries, compression=zipfile.ZIP_BZIP2)).message
    err = error_of(docx[: len(docx) // 2])
    assert err.code == "extraction_failed" and "zip" in err.message


def test_unsafe_and_deeply_nested_xml() -> None:
    docx, _ = build_docx()
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>&b;</w:body></w:document>'
    )
    err = error_of(rewrite_zip(docx, {"word/document.xml": laughs}))
    assert err.code == "extraction_failed" and "unsafe XML" in err.message
    deep = b"<w:document xmlns:w='w'>" + b"<w:p>" * 5000 + b"</w:p>" * 5000 + b"</w:document>"
    assert error_of(rewrite_zip(docx, {"word/document.xml": deep})).code == "extraction_failed"
    broken = b"<w:document xmlns:w='w'><w:body>"
    assert "malformed XML" in error_of(rewrite_zip(docx, {"word/document.xml": broken})).message


# Through the engine ----------------------------------------------------------------------------


async def test_engine_runs_documents_through_this_module() -> None:
    result = await engine.extract_document_bytes(simple_pdf(2), doc_options(), filename="report.pdf")
    assert result.status == "done"
    assert [(i.document_page, i.filename, i.source_kind) for i in result.images] == [
        (1, "page-1-image-1.png", "document"),
        (2, "page-2-image-1.png", "document"),
    ]
    failed = await engine.extract_document_bytes(overlapping_zip(), doc_options(), filename="x.docx")
    assert (failed.status, failed.error_code) == ("failed", "extraction_failed")


def test_images_over_max_image_bytes_are_reported_without_bytes() -> None:
    docx, _ = build_docx()
    images = extract(docx, max_image_bytes=50)
    assert len(images) == 7
    assert all(i.data is None and "limit is 50" in (i.error or "") and (i.file_size or 0) > 50 for i in images)
    (pdf_image,) = extract(simple_pdf(1), max_image_bytes=50)
    assert pdf_image.data is None and pdf_image.width == 40 and "limit is 50" in (pdf_image.error or "")
