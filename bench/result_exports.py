"""Result exports: time and peak Python memory to stream a job's images as CSV, XLSX, JSON and XML, for 1,000
and 100,000 images (SQLite in a temporary directory; rows seeded directly).

Anchor, measured in the same run: the same rows read with ONE `values()` query into a list and written with
`csv.writer` in one go, the way an export without paging would (same columns, same bytes for CSV; no more
work). Our figure is printed beside it as a ratio. Memory is the tracemalloc peak of the export alone (the
timing run is a separate pass without tracemalloc). Flat memory shows as our peak staying about the same from
1,000 to 100,000 images while the anchor's grows with the job.

    python -m bench result-exports [--images=1000,100000] [--formats=csv,xlsx,json,xml]
"""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any


async def _seed(n: int) -> str:
    from imageextract.models import Account, Image, Job, JobItem

    account = await Account.create(name=f"bench {n}", slug=f"bench-{uuid.uuid4().hex[:8]}")
    job = await Job.create(id=uuid.uuid4(), account=account, type="url", status="done", input={"value": "x"},
                           total_items=1, completed_items=1, image_count=n)
    item = await JobItem.create(job=job, position=0, kind="url", source_label="https://example.com/",
                                status="done")
    batch = 5000
    for start in range(0, n, batch):
        await Image.bulk_create([
            Image(job_id=job.id, item_id=item.id, position=i, filename=f"image-{i}.png",
                  source_url=f"https://cdn.example.com/{i}.png", source_kind="img",
                  storage_key=f"images/{i % 256:02x}/00/{uuid.uuid4().hex}.png", content_hash=uuid.uuid4().hex,
                  width=640, height=480, aspect_ratio=1.3333, format="png", file_size=12345 + i, has_alpha=False,
                  alt_text=f"alt text number {i}", title=None, is_lazy_loaded=bool(i % 2),
                  variants=[{"url": f"https://cdn.example.com/{i}@2x.png", "descriptor": "2x"}])
            for i in range(start, min(n, start + batch))])
    return str(job.id)


async def _drain(chunks: AsyncIterator[bytes]) -> int:
    size = 0
    async for chunk in chunks:
        size += len(chunk)
    return size


async def _anchor_csv(job_id: str) -> int:
    """Everything in memory at once: one query, one list, one CSV string."""
    from imageextract.models import Image
    from imageextract.services.job_views import _IMAGE_COLUMNS, _image_view
    from imageextract.services.result_exports import COLUMNS, csv_cell, flat_row

    rows = await Image.filter(job_id=job_id).order_by("item__position", "position").values(*_IMAGE_COLUMNS)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        flat = flat_row(dict(_image_view(row, "http://bench", None)))
        writer.writerow([csv_cell(flat[c]) for c in COLUMNS])
    return len(buffer.getvalue().encode())


async def _measure(run: Callable[[], Awaitable[int]]) -> tuple[float, float, int]:
    """(seconds, peak MiB, bytes written)."""
    started = time.perf_counter()
    size = await run()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    try:
        await run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seconds, peak / (1024 * 1024), size


async def _main(counts: list[int], formats: list[str]) -> None:
    from tortoise import Tortoise

    from imageextract.config import Settings
    from imageextract.context import Context
    from imageextract.db import migrate, tortoise_config
    from imageextract.services import result_exports

    tmp = Path(tempfile.mkdtemp(prefix="ie-bench-exports-"))
    try:
        settings = Settings(data_dir=tmp, create_demo_account=False)
        await migrate(settings)
        await Tortoise.init(config=tortoise_config(settings))
        try:
            ctx = Context(settings=settings, base_url="http://bench")
            print(f"{'images':>8} {'format':>6} {'ours s':>8} {'ours MiB':>9} {'anchor s':>9} {'anchor MiB':>11}"
                  f" {'time x':>7} {'mem x':>7} {'MB out':>8}")
            for n in counts:
                job_id = await _seed(n)
                view = await _job_view(job_id)
                a_s, a_mib, _ = await _measure(lambda job_id=job_id: _anchor_csv(job_id))
                for fmt in formats:
                    writer = result_exports._WRITERS[fmt]
                    o_s, o_mib, size = await _measure(lambda writer=writer, view=view: _drain(writer(view, ctx)))
                    print(f"{n:>8} {fmt:>6} {o_s:>8.2f} {o_mib:>9.1f} {a_s:>9.2f} {a_mib:>11.1f}"
                          f" {o_s / a_s:>7.2f} {o_mib / a_mib:>7.2f} {size / 1e6:>8.1f}", flush=True)
        finally:
            await Tortoise.close_connections()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _job_view(job_id: str) -> Any:
    from imageextract.models import Job
    from imageextract.services.job_views import job_view

    return job_view(await Job.get(id=job_id))


def main(flags: list[str]) -> int:
    counts, formats = [1000, 100_000], ["csv", "xlsx", "json", "xml"]
    for flag in flags:
        if flag.startswith("--images="):
            counts = [int(x) for x in flag.split("=", 1)[1].split(",")]
        elif flag.startswith("--formats="):
            formats = flag.split("=", 1)[1].split(",")
    print("anchor: one values() query into a list + csv.writer in one go (the same rows and CSV bytes, unpaged)")
    asyncio.run(_main(counts, formats))
    return 0
