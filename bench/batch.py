"""The batch lane, each figure beside an anchor measured in the same run on the same machine:

    python -m bench batch [--quick] [--items N] [--embedded-only | --redis-only]

N small local documents (one-page PDFs with one distinct image each; 10,000 by default, 1,000 with --quick)
go through the whole lane: staged (`POST /api/v1/files` + a PUT to the signed URL each, 16 at a time),
submitted as one batch, run to completion, then walked with the cursor. On two shapes: the embedded default
(one process: API + 4 worker threads, SQLite) and Postgres + Redis (one API process, two `imageextract worker`
processes with 2 threads each). Files on local disk in both.

- Submission: `POST /api/v1/batches` with N file ids, answered; anchor: the same N item rows inserted by the
  database driver alone (`executemany` into a scratch table of the same columns, in one transaction).
- Scheduling overhead per item: (batch wall time from submission to the terminal status - the bare engine's
  wall time for the same N documents) / N. The anchor is `extract_document_bytes` on the same bytes with the
  same settings (sandboxed parsing), as many at a time as the service has worker threads, in this process:
  the extraction work and nothing else (no queue, no database, no storage).
- Peak memory: VmHWM (peak RSS) of the API and each worker process, and VmRSS when 10% of the items were done
  beside VmRSS at the end (flat: memory does not grow with the number of items processed).
- Cursor walk: time per page of `GET /api/v1/batches/{id}?limit=100&cursor=...` over all N items; anchor: the
  same keyset query ((updated_at, id) > cursor, 100 rows) through the database driver alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import port, ratio
from bench.pipeline import (
    REPO,
    Child,
    _cpu_seconds,
    _ms,
    _pct,
    _scaled_backing,
    _spawn,
    _wait_http,
)

THREADS = 4  # worker threads in total, in both shapes
UPLOADS_AT_ONCE = 16


def _documents(n: int) -> list[bytes]:
    import io

    import pymupdf
    from PIL import Image

    docs = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (24 + i % 50, 16 + i // 50 % 50), (i % 256, i // 256 % 256, 90)).save(buf, format="PNG")
        doc = pymupdf.open()
        doc.new_page(width=200, height=200).insert_image(pymupdf.Rect(10, 10, 90, 90), stream=buf.getvalue())
        docs.append(bytes(doc.tobytes()))
    return docs


def _mem(pid: int, field_name: str) -> float:
    """A /proc/<pid>/status memory field in MB (nan when unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@dataclass
class Shape:
    name: str
    base: str
    key: str
    env: dict[str, str]
    api: Child
    workers: list[Child] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def processes(self) -> list[Child]:
        return [self.api, *self.workers]


@contextlib.contextmanager
def shape(tmp: Path, *, scaled: bool) -> Iterator[Shape]:
    env = dict(os.environ) | {
        "IMAGEEXTRACT_DATA_DIR": str(tmp / "data"), "IMAGEEXTRACT_CREATE_DEMO_ACCOUNT": "false",
        "IMAGEEXTRACT_LOG_LEVEL": "WARNING", "IMAGEEXTRACT_WORKER_THREADS": str(THREADS),
        "PYTHONUNBUFFERED": "1",
    }
    with contextlib.ExitStack() as stack:
        if scaled:
            extra, backing, _ = _scaled_backing(stack)
            env |= extra
            name = f"{backing}: one API process, two worker processes x {THREADS // 2} threads"
        else:
            env.pop("IMAGEEXTRACT_DATABASE_URL", None)
            env.pop("IMAGEEXTRACT_REDIS_URL", None)
            name = f"embedded default: one process (API + {THREADS} worker threads), SQLite"
        cli = [sys.executable, "-m", "imageextract.cli"]
        subprocess.run([*cli, "migrate"], env=env, check=True, cwd=REPO, capture_output=True)
        out = subprocess.run([*cli, "admin", "create-account", "--name", "Bench", "--email", "bench@example.com",
                              "--plan", "agency", "--credits", "10000000", "--json"],
                             env=env, check=True, cwd=REPO, capture_output=True, text=True)
        api_port = port("api")
        api = _spawn("api", [*cli, "serve", "--host", "127.0.0.1", "--port", str(api_port), "--no-migrate"], tmp,
                     env)
        s = Shape(name=name, base=f"http://127.0.0.1:{api_port}", key=json.loads(out.stdout)["api_key"], env=env, api=api)
        stack.callback(lambda: [c.stop() for c in s.processes()])
        if scaled:
            for i in range(2):
                s.workers.append(_spawn(f"worker-{i}", [*cli, "worker", "--processes", "1", "--threads",
                                                        str(THREADS // 2)], tmp, env))
        _wait_http(f"{s.base}/healthz", api)
        yield s


async def _stage_all(client: httpx.AsyncClient, s: Shape, docs: list[bytes]) -> list[str]:
    sem = asyncio.Semaphore(UPLOADS_AT_ONCE)

    async def one(i: int, data: bytes) -> str:
        async with sem:
            r = await client.post("/api/v1/files", headers=s.headers,
                                  json={"filename": f"doc-{i}.pdf", "size_bytes": len(data)})
            r.raise_for_status()
            staged = r.json()
            up = staged["upload"]
            put = await client.request(up["method"], up["url"], content=data, headers=up["headers"])
            put.raise_for_status()
            return str(staged["id"])

    return list(await asyncio.gather(*(one(i, d) for i, d in enumerate(docs))))


async def _run_shape(s: Shape, docs: list[bytes]) -> dict[str, Any]:
    n = len(docs)
    result: dict[str, Any] = {"shape": s.name}
    limits = httpx.Limits(max_connections=UPLOADS_AT_ONCE * 2)
    async with httpx.AsyncClient(base_url=s.base, timeout=300, limits=limits) as client:
        started = time.perf_counter()
        file_ids = await _stage_all(client, s, docs)
        result["staging_s"] = time.perf_counter() - started

        cpu0 = _cpu_seconds([c.proc.pid for c in s.processes()])
        started = time.perf_counter()
        r = await client.post("/api/v1/batches", headers=s.headers,
                              json={"source": {"type": "files", "file_ids": file_ids}})
        r.raise_for_status()
        submitted_at = time.perf_counter()
        result["submit_s"] = submitted_at - started
        batch_id = r.json()["id"]
        rss_10: dict[str, float] = {}
        while True:
            body = (await client.get(f"/api/v1/batches/{batch_id}", headers=s.headers, params={"limit": 1})).json()
            finished = body["counts"]["succeeded"] + body["counts"]["failed"]
            if not rss_10 and finished >= n / 10:
                rss_10 = {c.name: _mem(c.proc.pid, "VmRSS") for c in s.processes()}
            if body["status"] in ("completed", "partially_failed", "failed", "cancelled"):
                break
            for c in s.processes():
                if c.proc.poll() is not None:
                    raise RuntimeError(f"{c.name} exited:\n{c.tail()}")
            await asyncio.sleep(0.2)
        result["run_s"] = time.perf_counter() - submitted_at
        result["cpu_s"] = _cpu_seconds([c.proc.pid for c in s.processes()]) - cpu0
        result["counts"] = body["counts"]
        result["rss_10"] = rss_10
        result["rss_end"] = {c.name: _mem(c.proc.pid, "VmRSS") for c in s.processes()}
        result["hwm"] = {c.name: _mem(c.proc.pid, "VmHWM") for c in s.processes()}

        await asyncio.sleep(1.1)  # past the cursor's settle window
        pages: list[float] = []
        cursor = None
        walked = 0
        while True:
            t0 = time.perf_counter()
            params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            page = (await client.get(f"/api/v1/batches/{batch_id}", headers=s.headers, params=params)).json()
            pages.append(time.perf_counter() - t0)
            walked += len(page["items"])
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        result["walk_pages"] = pages
        result["walked"] = walked
        result["batch_id"] = batch_id
    return result


async def _anchor_db(s: Shape, batch_id: str, n: int) -> tuple[float, list[float]]:
    """The database alone: N item rows inserted in one transaction, and the keyset pages of the walk."""
    import uuid
    from datetime import UTC, datetime

    rows = [(str(uuid.uuid4()), batch_id, i, "document", f"doc-{i}.pdf", f"staged/file_{i}", 1000, "pending",
             datetime.now(UTC), datetime.now(UTC)) for i in range(n)]
    url = s.env.get("IMAGEEXTRACT_DATABASE_URL")
    pages: list[float] = []
    if url is None:
        import sqlite3

        conn = sqlite3.connect(Path(s.env["IMAGEEXTRACT_DATA_DIR"]) / "imageextract.sqlite3")
        try:
            conn.execute("CREATE TEMP TABLE scratch AS SELECT id, job_id, position, kind, source_label, upload_key, "
                         "upload_size, status, created_at, updated_at FROM job_items WHERE 0")
            t0 = time.perf_counter()
            with conn:
                conn.executemany("INSERT INTO scratch VALUES (?,?,?,?,?,?,?,?,?,?)",
                                 [(*r[:8], r[8].isoformat(), r[9].isoformat()) for r in rows])
            insert = time.perf_counter() - t0
            last: tuple[Any, Any] | None = None
            while True:
                t0 = time.perf_counter()
                if last is None:
                    got = conn.execute("SELECT id, status, updated_at FROM job_items WHERE job_id = ? "
                                       "ORDER BY updated_at, id LIMIT 101", (batch_id,)).fetchall()
                else:
                    got = conn.execute("SELECT id, status, updated_at FROM job_items WHERE job_id = ? AND "
                                       "(updated_at > ? OR (updated_at = ? AND id > ?)) ORDER BY updated_at, id "
                                       "LIMIT 101", (batch_id, last[0], last[0], last[1])).fetchall()
                pages.append(time.perf_counter() - t0)
                if len(got) <= 100:
                    break
                last = (got[99][2], got[99][0])
        finally:
            conn.close()
        return insert, pages
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute("CREATE TEMP TABLE scratch AS SELECT id, job_id, position, kind, source_label, upload_key, "
                           "upload_size, status, created_at, updated_at FROM job_items WITH NO DATA")
        t0 = time.perf_counter()
        async with conn.transaction():
            await conn.executemany("INSERT INTO scratch VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
                                   [(uuid.UUID(r[0]), uuid.UUID(r[1]), *r[2:]) for r in rows])
        insert = time.perf_counter() - t0
        last_pg: tuple[Any, Any] | None = None
        bid = uuid.UUID(batch_id)
        while True:
            t0 = time.perf_counter()
            if last_pg is None:
                got = await conn.fetch("SELECT id, status, updated_at FROM job_items WHERE job_id = $1 "
                                       "ORDER BY updated_at, id LIMIT 101", bid)
            else:
                got = await conn.fetch("SELECT id, status, updated_at FROM job_items WHERE job_id = $1 AND "
                                       "(updated_at, id) > ($2, $3) ORDER BY updated_at, id LIMIT 101",
                                       bid, last_pg[0], last_pg[1])
            pages.append(time.perf_counter() - t0)
            if len(got) <= 100:
                break
            last_pg = (got[99]["updated_at"], got[99]["id"])
    finally:
        await conn.close()
    return insert, pages


async def _bare_engine(docs: list[bytes]) -> tuple[float, float]:
    """The same extractions with the same settings, THREADS at a time, nothing else."""
    from imageextract.config import Settings
    from imageextract.extract import engine

    options = Settings().extract_options()
    sem = asyncio.Semaphore(THREADS)
    failures = 0

    async def one(i: int, data: bytes) -> None:
        nonlocal failures
        async with sem:
            res = await engine.extract_document_bytes(data, options, filename=f"doc-{i}.pdf")
            failures += res.status != "done"

    import resource

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)  # this process only: parsing runs in sandbox children
        return usage.ru_utime + usage.ru_stime

    cpu0, t0 = cpu(), time.perf_counter()
    await asyncio.gather(*(one(i, d) for i, d in enumerate(docs)))
    elapsed, used = time.perf_counter() - t0, cpu() - cpu0
    if failures:
        raise RuntimeError(f"the bare engine failed {failures} documents")
    return elapsed, used


def _report(r: dict[str, Any], n: int, bare: tuple[float, float], insert_s: float, anchor_pages: list[float]) -> None:
    bare_s, bare_cpu = bare
    print(f"-- {r['shape']}", flush=True)
    print(f"   staging {n} files: {r['staging_s']:.1f} s ({r['staging_s'] / n * 1000:.1f} ms per file, "
          f"{UPLOADS_AT_ONCE} at a time: POST /files + PUT)")
    print(f"   submission of {n} entries: {_ms(r['submit_s'])}   anchor (driver executemany of the same rows): "
          f"{_ms(insert_s)}   ratio {ratio(r['submit_s'], insert_s)}   target < 5 s")
    overhead = (r["run_s"] - bare_s) / n
    print(f"   run to completion: {r['run_s']:.1f} s ({r['counts']})   anchor (bare engine, {THREADS} at a time): "
          f"{bare_s:.1f} s   ratio {ratio(r['run_s'], bare_s)}")
    print(f"   scheduling overhead per item (wall): {overhead * 1000:.2f} ms   target < 10 ms")
    print(f"   CPU per item in our processes (API + workers, from submission to the end; parsing runs in sandbox "
          f"children in both): {r['cpu_s'] / n * 1000:.2f} ms   anchor (the bare engine's own process): "
          f"{bare_cpu / n * 1000:.2f} ms   overhead {(r['cpu_s'] - bare_cpu) / n * 1000:.2f} ms per item")
    for name, hwm in r["hwm"].items():
        print(f"   memory {name}: peak {hwm:.0f} MB; RSS at 10% done {r['rss_10'].get(name, float('nan')):.0f} MB, "
              f"at the end {r['rss_end'][name]:.0f} MB")
    ours = r["walk_pages"]
    print(f"   cursor walk: {len(ours)} pages of 100 ({r['walked']} items): median {_ms(statistics.median(ours))}, "
          f"p95 {_ms(_pct(ours, 0.95))} per page   anchor (the keyset query alone): median "
          f"{statistics.median(anchor_pages) * 1000:.2f} ms   ratio "
          f"{ratio(statistics.median(ours), statistics.median(anchor_pages))}", flush=True)


def main(flags: list[str]) -> int:
    n = 1000 if "--quick" in flags else 10_000
    for f in flags:
        if f.startswith("--items="):
            n = int(f.split("=", 1)[1])
    shapes = [False, True]
    if "--embedded-only" in flags:
        shapes = [False]
    if "--redis-only" in flags:
        shapes = [True]
    print(f"batch lane: {n} one-page PDFs, {os.cpu_count()} CPUs", flush=True)
    docs = _documents(n)
    bare = asyncio.run(_bare_engine(docs))
    status = 0
    for scaled in shapes:
        tmp = Path(tempfile.mkdtemp(prefix="ie-bench-batch-"))
        try:
            with shape(tmp, scaled=scaled) as s:
                result = asyncio.run(_run_shape(s, docs))
                insert_s, anchor_pages = asyncio.run(_anchor_db(s, result["batch_id"], n))
                _report(result, n, bare, insert_s, anchor_pages)
        except Exception:
            traceback.print_exc()
            status = 1
        finally:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return status
