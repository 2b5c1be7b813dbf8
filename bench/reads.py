"""Read-path benchmarks, each figure beside an anchor measured in the same run:

    python -m bench reads [--quick] [--redis]

- `GET /api/v1/jobs/:id/result` of a job with 1,000 images, and `GET /api/v1/jobs/:id/items` of a job with
  1,000 sources, against a plain Starlette `JSONResponse` of the same data (the very JSON our endpoint
  returned, loaded once into Python objects in the anchor process): the anchor serialises and sends the same
  body over the same kind of server (uvicorn, loopback, keep-alive), and does no more. Ours also
  authenticates the key, checks access, and reads the rows from the database: that is what the ratio
  prices.
- `GET /api/v1/jobs/:id/export/json` of the same 1,000 images (the results API's JSON file, streamed)
  against a plain `JSONResponse` of the same document.
- GraphQL `job(id) { images(first: 100, after:) { nodes { 15 fields } pageInfo } }` walked over its 10 pages
  of the same 1,000 images (a connection serves at most 100 a page), against the anchor sending the same 10
  JSON bodies, one request each.
- Growth: `/result` for 1, 10, 100 and 1,000 images (time per request, and the API process's peak RSS).

Requests are sequential on one keep-alive connection, ours and the anchor's alternating so both see the same
background load; the first few of each are warm-up. The service is `imageextract serve` on a fresh data
directory (`--redis`: on Postgres, with Redis and a worker process beside it, as bench.pipeline starts it).
The jobs read are written straight into its database before the timing starts; on Postgres the tables are
then analysed, as autovacuum would do within a minute of such a load, so the planner works from the same
statistics in every run (fresh tables without them made the figures depend on when autovacuum ran).
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import port, ratio, run_reported
from bench.pipeline import Child, _machine, _spawn, _wait_http, service

IMAGES = 1000
GROWTH = (1, 10, 100, 1000)
FIELDS = ("id url filename width height format fileSize altText sourceUrl sourceKind contentHash groupId "
          "isLazyLoaded aspectRatio storageUrl")  # 15 fields
PAGE = 100  # the most a connection page holds
GQL_IMAGES = ("query($id: ID!, $after: String) { job(id: $id) { images(first: " + str(PAGE) + ", after: $after) { "
              "nodes { " + FIELDS + " } pageInfo { hasNextPage endCursor } } } }")

_ANCHOR_SERVER = """
import json, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

with open(sys.argv[2]) as fh:
    DATA = json.load(fh)

async def serve(request):
    return JSONResponse(DATA[request.path_params["name"]])

app = Starlette(routes=[Route("/json/{name}", serve)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", log_config=None)
"""


# Seeding -----------------------------------------------------------------------------------------


async def _seed(env: dict[str, str], account_id: str, project_id: str | None) -> dict[str, str]:
    """Finished jobs straight into the service's database: one per size in GROWTH (one source, n images)
    and one bulk job of IMAGES sources with an image each. Returns {name: job id}."""
    from tortoise import Tortoise

    from imageextract.config import Settings
    from imageextract.db import tortoise_config
    from imageextract.models import Image, Job, JobItem

    settings = Settings(data_dir=Path(env["IMAGEEXTRACT_DATA_DIR"]),
                        database_url=env.get("IMAGEEXTRACT_DATABASE_URL") or None)
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
    now = datetime.now(UTC)
    jobs: dict[str, str] = {}

    def image(job_id: uuid.UUID, item_id: uuid.UUID, i: int, position: int) -> Image:
        return Image(job_id=job_id, item_id=item_id, account_id_ref=account_id, position=position,
                     filename=f"image-{i}.png", source_url=f"https://example.com/assets/img/{i}.png",
                     source_kind="img", storage_key=f"images/{uuid.uuid4().hex}.png", content_hash=uuid.uuid4().hex,
                     width=100 + i % 900, height=50 + i % 700, aspect_ratio=round((100 + i % 900) / (50 + i % 700), 4),
                     format="png", file_size=1000 + i * 7, color_space="RGB", has_alpha=bool(i % 2),
                     alt_text=f"Product photo number {i}", title=None, aria_label=None, is_lazy_loaded=bool(i % 3),
                     provenance="img", page_url="https://example.com/catalogue", variants=None,
                     media_type="image/png")

    try:
        for n in GROWTH:
            job_id, item_id = uuid.uuid4(), uuid.uuid4()
            await Job.create(id=job_id, account_id=account_id, project_id=project_id, type="url", status="done",
                             input={"value": "https://example.com/catalogue"}, credits_used=1, credits_reserved=1,
                             image_count=n, total_items=1, completed_items=1, started_at=now, finished_at=now)
            await JobItem.create(id=item_id, job_id=job_id, position=0, kind="url", status="done", attempts=1,
                                 source_label="https://example.com/catalogue", image_count=n, duration_ms=100,
                                 finished_at=now)
            await Image.bulk_create([image(job_id, item_id, i, i) for i in range(n)], batch_size=500)
            jobs[f"result-{n}"] = str(job_id)
        job_id = uuid.uuid4()
        await Job.create(id=job_id, account_id=account_id, project_id=project_id, type="bulk", status="done",
                         input={"value": [f"https://example.com/p/{i}" for i in range(IMAGES)]}, credits_used=IMAGES,
                         credits_reserved=IMAGES, image_count=IMAGES, total_items=IMAGES, completed_items=IMAGES,
                         started_at=now, finished_at=now)
        items = [JobItem(id=uuid.uuid4(), job_id=job_id, position=i, kind="url", status="done", attempts=1,
                         source_label=f"https://example.com/p/{i}", source_url=f"https://example.com/p/{i}",
                         image_count=1, duration_ms=80 + i % 50, finished_at=now) for i in range(IMAGES)]
        await JobItem.bulk_create(items, batch_size=500)
        await Image.bulk_create([image(job_id, it.id, i, 0) for i, it in enumerate(items)], batch_size=500)
        jobs["bulk"] = str(job_id)
        connection = Tortoise.get_connection("default")
        if connection.capabilities.dialect != "sqlite":
            await connection.execute_script("ANALYZE")
    finally:
        await Tortoise.close_connections()
    return jobs


# Timing ------------------------------------------------------------------------------------------


async def _pair(client: httpx.AsyncClient, anchor: httpx.AsyncClient, ours: Any, name: str | list[str],
                runs: int) -> tuple[float, float, int]:
    """p50 seconds of `ours()` (a coroutine making our request(s), answering the bytes received) and of the
    anchor's /json/<name> (each of the names in turn, one request each), alternating."""
    mine: list[float] = []
    theirs: list[float] = []
    size = 0
    names = [name] if isinstance(name, str) else name
    for i in range(runs + 3):
        started = time.perf_counter()
        size = await ours()
        elapsed = time.perf_counter() - started
        started = time.perf_counter()
        for each in names:
            a = await anchor.get(f"/json/{each}")
            a.raise_for_status()
        anchor_elapsed = time.perf_counter() - started
        if i >= 3:
            mine.append(elapsed)
            theirs.append(anchor_elapsed)
    return statistics.median(mine), statistics.median(theirs), size


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _get(client: httpx.AsyncClient, url: str) -> Any:
    async def one() -> int:
        r = await client.get(url)
        r.raise_for_status()
        return len(r.content)

    return one


async def _graphql_pages(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    """Every page of job.images, walked as a client does (first 100, then after the end cursor)."""
    pages: list[dict[str, Any]] = []
    after = None
    while True:
        r = await client.post("/graphql", json={"query": GQL_IMAGES, "variables": {"id": job_id, "after": after}})
        r.raise_for_status()
        body = r.json()
        assert "errors" not in body, body
        pages.append(body)
        info = body["data"]["job"]["images"]["pageInfo"]
        if not info["hasNextPage"]:
            return pages
        after = info["endCursor"]


# The walk reads the next cursor from the end of each body (where the query puts `pageInfo`) instead of
# parsing the whole page: the anchor's client parses nothing either, so neither side pays the measuring
# client's JSON decoding (about 2 ms of the 10 pages).
_PAGE_INFO = re.compile(rb'"pageInfo":\{"hasNextPage":(true|false),"endCursor":(null|"[^"]*")\}\}\}\}\}$')


def _walk(client: httpx.AsyncClient, job_id: str) -> Any:
    async def walk() -> int:
        size, after = 0, None
        while True:
            r = await client.post("/graphql", json={"query": GQL_IMAGES, "variables": {"id": job_id, "after": after}})
            r.raise_for_status()
            size += len(r.content)
            info = _PAGE_INFO.search(r.content)
            if info is None:
                raise RuntimeError(f"no pageInfo at the end of the page: {r.content[-300:]!r}")
            if info.group(1) == b"false":
                return size
            after = json.loads(info.group(2))

    return walk


async def _run(svc: Any, jobs: dict[str, str], tmp: Path, runs: int) -> None:
    headers = svc.headers
    async with httpx.AsyncClient(base_url=svc.base, timeout=60, headers=headers) as client:
        # The bodies the anchor will serve: exactly what our endpoints return.
        data: dict[str, Any] = {}
        for n in GROWTH:
            data[f"result-{n}"] = (await client.get(f"/api/v1/jobs/{jobs[f'result-{n}']}/result")).json()
        data["items"] = (await client.get(f"/api/v1/jobs/{jobs['bulk']}/items")).json()
        exported = await client.get(f"/api/v1/jobs/{jobs[f'result-{IMAGES}']}/export/json")
        exported.raise_for_status()
        data["export-json"] = exported.json()
        pages = await _graphql_pages(client, jobs[f"result-{IMAGES}"])
        for i, page in enumerate(pages):
            data[f"graphql-{i}"] = page
        assert sum(len(p["data"]["job"]["images"]["nodes"]) for p in pages) == IMAGES, len(pages)
        assert len(data[f"result-{IMAGES}"]["images"]) == IMAGES and len(data["items"]["items"]) == IMAGES
        data_path = tmp / "anchor.json"
        data_path.write_text(json.dumps(data))
        anchor_port = port("anchor", 1)
        child: Child = _spawn("anchor", [sys.executable, "-c", _ANCHOR_SERVER, str(anchor_port), str(data_path)], tmp)
        try:
            await asyncio.to_thread(_wait_http, f"http://127.0.0.1:{anchor_port}/json/items", child)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{anchor_port}", timeout=60) as anchor:
                api_pid = svc.children[0].proc.pid
                rows: list[tuple[str, float, float, int]] = []
                result = jobs[f"result-{IMAGES}"]
                o, a, size = await _pair(client, anchor, _get(client, f"/api/v1/jobs/{result}/result"),
                                         f"result-{IMAGES}", runs)
                rows.append((f"GET /result, {IMAGES} images", o, a, size))
                o, a, size = await _pair(client, anchor, _get(client, f"/api/v1/jobs/{jobs['bulk']}/items"), "items",
                                         runs)
                rows.append((f"GET /items, {IMAGES} sources", o, a, size))
                o, a, size = await _pair(client, anchor, _get(client, f"/api/v1/jobs/{result}/export/json"),
                                         "export-json", runs)
                rows.append((f"GET /export/json, {IMAGES} images", o, a, size))
                o, a, size = await _pair(client, anchor, _walk(client, result),
                                         [f"graphql-{i}" for i in range(len(pages))], runs)
                rows.append((f"GraphQL job.images, {IMAGES} images x 15 fields in {len(pages)} pages of {PAGE}", o, a,
                             size))
                for label, o, a, size in rows:
                    print(f"{label} ({size / 1024:.0f} KB, p50 of {runs}): ours {o * 1000:.1f} ms | plain Starlette "
                          f"JSONResponse of the same data {a * 1000:.1f} ms | ratio {ratio(o, a)}", flush=True)
                print(f"growth of GET /result (p50 of {runs}; API process RSS after, peak):", flush=True)
                for n in GROWTH:
                    job = jobs[f"result-{n}"]
                    o, a, size = await _pair(client, anchor, _get(client, f"/api/v1/jobs/{job}/result"),
                                             f"result-{n}", runs)
                    print(f"  {n:>5} images ({size / 1024:7.1f} KB): ours {o * 1000:6.1f} ms | anchor "
                          f"{a * 1000:6.1f} ms | ratio {ratio(o, a)} | RSS {_rss_mb(api_pid):.0f} MB, peak "
                          f"{_peak_rss_mb(api_pid):.0f} MB", flush=True)
        finally:
            child.stop()


def main(flags: list[str]) -> int:
    quick, scaled = "--quick" in flags, "--redis" in flags
    print(_machine(), flush=True)
    def body(tmp: Path) -> None:
        with service(tmp, scaled=scaled, threads=2) as svc:
            print(f"service: {svc.shape}", flush=True)
            jobs = asyncio.run(_seed(svc.env, svc.account["account_id"], svc.account.get("project_id")))
            asyncio.run(_run(svc, jobs, tmp, 15 if quick else 60))

    return run_reported("reads", body, prefix="ie-bench-reads-")

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
