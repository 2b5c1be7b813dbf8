"""Documents read from a file by the parser and their images streamed page by page: the same result as in
memory, each distinct image handed over once, and memory that does not grow with the number of images."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from bench.engine_pdfs import RawPdf, draw, raw_document
from imageextract.extract import sandbox
from imageextract.extract.documents import extract_document, extract_document_file
from imageextract.extract.engine import extract_document_file as engine_extract_file
from imageextract.extract.types import ExtractedImage
from tests.extract.docfixtures import build_pptx, doc_options


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    sandbox.shutdown_sandbox()
    yield
    sandbox.shutdown_sandbox()


@pytest.mark.parametrize("sandboxed", [True, False])
def test_file_extraction_matches_in_memory_extraction(tmp_path: Path, sandboxed: bool) -> None:
    for name, data in (("doc.pdf", raw_document(21)), ("deck.pptx", build_pptx()[0])):
        path = tmp_path / name
        path.write_bytes(data)
        options = doc_options(sandbox=sandboxed)
        from_file = extract_document_file(path, filename=name, options=options)
        in_memory = extract_document(data, filename=name, options=doc_options())
        assert [i.to_dict() for i in from_file] == [i.to_dict() for i in in_memory]
        assert [i.data for i in from_file] == [i.data for i in in_memory]
        assert from_file.warnings == in_memory.warnings


def test_each_distinct_image_is_handed_over_once_and_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(raw_document(22))  # a logo on every page, unique images, maybe scans
    received: list[tuple[str | None, bytes | None]] = []
    result = asyncio.run(engine_extract_file(path, doc_options(sandbox=True),
                                             on_image=lambda i: received.append((i.content_hash, i.data))))
    assert result.status == "done" and result.images
    digests = [d for d, _ in received]
    assert len(digests) == len(set(digests)), "each distinct image once"
    assert {i.content_hash for i in result.images if i.content_hash} == set(digests)
    assert all(hashlib.sha256(data or b"").hexdigest() == d for d, data in received)
    assert all(i.data is None for i in result.images), "the result keeps metadata, not bytes"
    logo = [i for i in result.images if i.document_occurrence_count and i.document_occurrence_count > 1]
    assert logo, "the shared logo is reported on every page, its bytes handed over once"


def _many_images_pdf(path: Path, images: int, per_page: int = 10) -> int:
    """A PDF of `images` distinct photo-like JPEGs (about 30 KB each); returns the image bytes in total."""
    rng = random.Random(4)
    pdf = RawPdf()
    total = 0
    for p in range(images // per_page):
        names = {}
        for k in range(per_page):
            im = Image.frombytes("RGB", (40, 30), rng.randbytes(40 * 30 * 3)).resize((320, 240))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=90)
            total += len(buf.getvalue())
            names[f"I{p}_{k}"] = pdf.image(320, 240, buf.getvalue(), extra="/Filter /DCTDecode")
        pdf.page(b"".join(draw(n, 10, 10 + 70 * k, 60, 60) for k, n in enumerate(names)), names)
    path.write_bytes(pdf.tobytes())
    return total


def _hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def test_memory_stays_flat_while_images_stream_to_a_sink(tmp_path: Path) -> None:
    path = tmp_path / "big.pdf"
    image_bytes = _many_images_pdf(path, 1500)
    assert image_bytes > 30 * 1024 * 1024
    options = doc_options(sandbox=True, document_max_bytes=1 << 30)
    sandbox._debug_task("__pid__", None, options)
    (child,) = sandbox.worker_pids()
    before = _hwm_kb(child)
    stored = 0

    def sink(image: ExtractedImage) -> None:
        nonlocal stored
        stored += len(image.data or b"")

    tracemalloc.start()
    try:
        result = extract_document_file(path, filename="big.pdf", options=options, on_image=sink)
        _, parent_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result) == 1500 and stored == image_bytes
    growth_mb = (_hwm_kb(child) - before) / 1024
    assert growth_mb < 25, f"the child grew by {growth_mb:.0f} MB for {image_bytes / 2**20:.0f} MB of images"
    assert parent_peak < 20 * 1024 * 1024, f"the parent peaked at {parent_peak / 2**20:.0f} MB of Python objects"
