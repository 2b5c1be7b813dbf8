"""A document's images go from the sandbox to storage as they are found (issue 13, item 4): a job over HTTP
with the embedded runtime stores every image with its metadata, and the worker's memory does not grow with
the document's image bytes.

The document (150 distinct 1 MB JPEGs, `bench.big_pdf`) is uploaded as a staged file first, so the upload's
own buffers are behind us when the measurement starts: the server's peak RSS is reset (/proc/PID/clear_refs)
after the upload is stored and before the batch that extracts it is submitted. The server runs in its own
process with a fixed malloc mmap threshold, so a freed buffer leaves RSS and the peak measures what was held,
not what the allocator kept from the upload. A pipeline holding the upload or every image's bytes grows by
at least the image total (150 MB); the streaming one by the bytes in flight to storage and one page.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.big_pdf import write_image_pdf
from imageextract.models import Image, JobItem
from tests.batches.helpers import stage_and_upload, wait_for_batch
from tests.factories import make_account
from tests.jobs.helpers import wait_for_job
from tests.support import Backend, ServerProcess

IMAGES, PER_PAGE, IMAGE_BYTES = 150, 5, 1_000_000

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


async def test_document_images_stream_to_storage_without_holding_them(db: Backend, tmp_path: Path) -> None:
    backend = db
    written = write_image_pdf(tmp_path / "many.pdf", images=IMAGES, per_page=PER_PAGE, image_bytes=IMAGE_BYTES)
    document = (tmp_path / "many.pdf").read_bytes()
    acct = await make_account(plan="agency")  # 200 MB documents
    h = acct["headers"]
    server = ServerProcess(backend, extra_env={"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"})
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            file_id = await stage_and_upload(client, h, document, "many.pdf")
            del document
            Path(f"/proc/{server.proc.pid}/clear_refs").write_text("5")  # peak RSS := RSS now
            baseline_kb = _status_kb(server.proc.pid, "VmRSS")
            r = await client.post("/api/v1/batches", headers=h, json={"source": {"type": "files", "file_ids": [file_id]}})
            assert r.status_code == 201, r.text
            final = await wait_for_batch(client, r.json()["id"], h)
            peak_kb = _status_kb(server.proc.pid, "VmHWM")
            assert final["status"] == "completed", final
    finally:
        server.stop()

    item = await JobItem.get(job_id=r.json()["id"])
    assert (item.status, item.image_count, item.failed_image_count) == ("done", IMAGES, 0)
    images = await Image.filter(item_id=item.id).order_by("position")
    assert len(images) == IMAGES
    root = backend.data_dir / "files"
    pages = []
    for image in images:
        assert image.storage_key and image.content_hash
        stored = (root / image.storage_key).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == image.content_hash == image.document_asset_hash
        assert image.storage_key.startswith(f"images/{image.content_hash[:2]}/") and image.storage_key.endswith(".jpg")
        assert len(stored) == image.file_size == IMAGE_BYTES
        assert (image.format, image.width, image.height, image.media_type) == ("jpeg", 32, 24, "image/jpeg")
        assert image.document_occurrence_count == 1 and image.source_kind == "document"
        pages.append(image.document_page)
    assert pages == [1 + i // PER_PAGE for i in range(IMAGES)]
    assert len({i.content_hash for i in images}) == IMAGES
    assert written.image_bytes == IMAGES * IMAGE_BYTES

    growth = (peak_kb - baseline_kb) * 1024
    # Holding the upload or the images would cost >= 150 MB; streaming costs the 32 MB in flight plus a page.
    assert growth < written.image_bytes // 3, (
        f"the server's RSS grew by {growth / 1e6:.0f} MB extracting {written.image_bytes / 1e6:.0f} MB of images")


async def test_streamed_images_a_concurrent_delete_released_are_extracted_again(
        client: httpx.AsyncClient, account: dict[str, Any], backend: Backend, tmp_path: Path) -> None:
    """The deletion race (`stored_objects`): a release that committed before the completing transaction may
    have removed bytes the job now references. A streamed document has no bytes left in memory, so
    `document_images.ensure_stored` extracts the upload again and writes back exactly the missing keys."""
    from imageextract.extract.types import ExtractedImage
    from imageextract.services import document_images
    from imageextract.storage.local import LocalStorage

    write_image_pdf(tmp_path / "few.pdf", images=6, per_page=2, image_bytes=20_000, seed=int.from_bytes(
        hashlib.sha256(str(tmp_path).encode()).digest()[:4], "big"))  # distinct from other runs' images
    h = account["headers"]
    files = [("files", ("few.pdf", (tmp_path / "few.pdf").read_bytes(), "application/pdf"))]
    r = await client.post("/api/v1/jobs", headers=h, files=files)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    job = await wait_for_job(client, job_id, h)
    assert job["status"] == "done" and job["image_count"] == 6, job
    item = await JobItem.get(job_id=job_id)
    rows = await Image.filter(item_id=item.id).order_by("position")
    storage = LocalStorage(backend.data_dir / "files")
    released = [rows[1].storage_key, rows[4].storage_key]
    for key in released:  # what a release that won the race does
        assert key and await storage.exists(key)
        await storage.delete(key)
    stored = [(ExtractedImage(source_url=None, source_kind="document", filename=row.filename, format=row.format,
                              content_hash=row.content_hash, media_type=row.media_type), row.storage_key)
              for row in rows]  # as the pipeline holds them after streaming: metadata and keys, no bytes

    runtime = _Runtime(storage=storage, settings=backend.settings())
    assert await document_images.ensure_stored(runtime, item, stored) == 2
    for row in rows:
        data = await storage.get(str(row.storage_key))
        assert hashlib.sha256(data).hexdigest() == row.content_hash and len(data) == row.file_size
    assert await document_images.ensure_stored(runtime, item, stored) == 0, "nothing missing: nothing extracted"


@dataclass
class _Runtime:
    """What `document_images` uses of the worker's runtime: its storage and settings (both real)."""

    storage: Any
    settings: Any
