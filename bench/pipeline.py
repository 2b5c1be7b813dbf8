"""Service benchmarks on the embedded default, each beside an anchor measured in the same run:

- latency of a one-page URL job with 20 images (submission to the terminal SSE event) against the bare
  engine extracting the same page (`extract_url`);
- throughput of 200 concurrent one-image jobs against the bare engine doing the same 200 extractions with
  the service's worker-thread count as its concurrency;
- fan-out to 1,000 GraphQL subscribers of one job (first to last delivery of each event) against the same
  1,000 websocket clients receiving a broadcast from a bare Starlette websocket server.
Pages and images are served from loopback. `--quick` shrinks the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import websockets

REPO = Path(__file__).resolve().parents[1]
SUBSCRIPTION = "subscription($id: ID!) { jobProgress(jobId: $id) { kind status progress item { id status } } }"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def service(tmp: Path) -> Iterator[tuple[str, str]]:
    """`imageextract serve` on a fresh data dir; yields (base_url, api_key of an agency account)."""
    env = dict(os.environ) | {
        "IMAGEEXTRACT_DATA_DIR": str(tmp / "data"), "IMAGEEXTRACT_CREATE_DEMO_ACCOUNT": "false",
        "IMAGEEXTRACT_SSRF_ALLOW": "127.0.0.0/8,::1/128", "IMAGEEXTRACT_LOG_LEVEL": "WARNING",
    }
    cli = [sys.executable, "-m", "imageextract.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, cwd=REPO, capture_output=True)
    out = subprocess.run([*cli, "admin", "create-account", "--name", "Bench", "--email", "bench@example.com",
                          "--plan", "agency", "--credits", "1000000", "--json"],
                         env=env, check=True, cwd=REPO, capture_output=True, text=True)
    key = json.loads(out.stdout)["api_key"]
    port = _free_port()
    log = tmp / "server.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"],
                                env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/healthz", proc, log)
        yield base, key
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _until_terminal_sse(client: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> str:
    async with client.stream("GET", f"/api/v1/jobs/{job_id}/stream", headers=headers) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event.get("status") in ("done", "failed", "cancelled") and "item" not in event:
                    return str(event["status"])
    raise RuntimeError("stream ended without a terminal event")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


async def bench_latency(base: str, key: str, site: str, runs: int) -> None:
    from imageextract.config import Settings
    from imageextract.extract.engine import extract_url

    h = {"Authorization": f"Bearer {key}"}
    url = f"{site}/page/20"
    ours: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for _ in range(runs + 1):
            started = time.perf_counter()
            r = await client.post("/api/v1/jobs", headers=h, json={"type": "url", "input": url})
            r.raise_for_status()
            status = await _until_terminal_sse(client, r.json()["job_id"], h)
            assert status == "done", status
            ours.append(time.perf_counter() - started)
    ours = ours[1:]  # the first run warms connections and caches
    options = Settings(ssrf_allow=["127.0.0.0/8"]).extract_options()
    bare: list[float] = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        result = await extract_url(url, options)
        assert result.status == "done" and len(result.images) == 20, result.error_message
        bare.append(time.perf_counter() - started)
    bare = bare[1:]
    p50, b50 = statistics.median(ours), statistics.median(bare)
    print(f"url job (20 images, {runs} runs): pipeline p50 {p50 * 1000:.0f} ms, p95 {_pct(ours, 0.95) * 1000:.0f} ms"
          f" | bare engine p50 {b50 * 1000:.0f} ms | ratio {p50 / b50:.2f}x")


async def bench_throughput(base: str, key: str, site: str, jobs: int, threads: int) -> None:
    from imageextract.config import Settings
    from imageextract.extract.engine import extract_url

    h = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        started = time.perf_counter()
        posted = await asyncio.gather(*(client.post("/api/v1/jobs", headers=h, json={
            "type": "url", "input": f"{site}/page/1"}) for _ in range(jobs)))
        ids = [p.json()["job_id"] for p in posted if p.status_code == 202]
        assert len(ids) == jobs, [p.text for p in posted if p.status_code != 202][:3]
        submitted = time.perf_counter() - started
        pending = set(ids)
        while pending:  # the dashboard list, newest first: two requests a round, not one per job
            await asyncio.sleep(0.1)
            for page in range(1, (jobs + 99) // 100 + 1):
                listing = (await client.get("/api/dashboard/jobs", headers=h,
                                            params={"page": page, "limit": 100})).json()["jobs"]
                for row in listing:
                    if row["id"] in pending and row["status"] in ("done", "failed", "cancelled"):
                        assert row["status"] == "done", row
                        pending.discard(row["id"])
        ours = time.perf_counter() - started
    options = Settings(ssrf_allow=["127.0.0.0/8"]).extract_options()
    gate = asyncio.Semaphore(threads)

    async def one(i: int) -> None:
        async with gate:
            result = await extract_url(f"{site}/page/1", options)
            assert result.status == "done"

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(jobs)))
    bare = time.perf_counter() - started
    print(f"throughput ({jobs} concurrent 1-image jobs): pipeline {jobs / ours:.1f} jobs/s ({ours:.1f} s, submission "
          f"{submitted:.1f} s) | bare engine x{threads} {jobs / bare:.1f} jobs/s ({bare:.1f} s) | ratio "
          f"{ours / bare:.2f}x the time")


async def _collect(ws_url: str, n: int, init: dict[str, Any] | None, subscribe: dict[str, Any] | None,
                   ready: asyncio.Event, stop_after: float, arrivals: list[list[tuple[float, str]]],
                   subscribed: list[int]) -> None:
    """One client: connect, (init, subscribe), record (arrival time, payload) until closed or timeout."""
    record: list[tuple[float, str]] = []
    arrivals.append(record)
    protocols = ["graphql-transport-ws"] if init is not None else None
    async with websockets.connect(ws_url, subprotocols=protocols, max_queue=None,  # type: ignore[arg-type]
                                  open_timeout=120, ping_interval=None) as ws:
        if init is not None:
            await ws.send(json.dumps(init))
            await ws.recv()  # connection_ack
            await ws.send(json.dumps(subscribe))
        subscribed[0] += 1
        if subscribed[0] == n:
            ready.set()
        deadline = time.perf_counter() + stop_after
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            while True:
                raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.perf_counter()))
                message = json.loads(raw)
                if message.get("type") == "complete":
                    return
                record.append((time.perf_counter(), json.dumps(message.get("payload", message), sort_keys=True)))


def _spreads(arrivals: list[list[tuple[float, str]]], after: float, n: int) -> tuple[list[float], int]:
    firsts: dict[str, float] = {}
    lasts: dict[str, float] = {}
    counts: dict[str, int] = {}
    for record in arrivals:
        for t, payload in record:
            if t < after:
                continue
            firsts[payload] = min(firsts.get(payload, t), t)
            lasts[payload] = max(lasts.get(payload, t), t)
            counts[payload] = counts.get(payload, 0) + 1
    full = [p for p, c in counts.items() if c == n]
    return [lasts[p] - firsts[p] for p in full], sum(counts.values())


_BROADCAST_SERVER = """
import asyncio, json, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
clients = set()
async def ws(websocket):
    await websocket.accept()
    clients.add(websocket)
    try:
        while True:
            await websocket.receive_text()
    except Exception:
        clients.discard(websocket)
async def fire(request):
    n = request.query_params["n"]
    text = json.dumps({"n": n})
    await asyncio.gather(*(c.send_text(text) for c in list(clients)), return_exceptions=True)
    return PlainTextResponse(str(len(clients)))
app = Starlette(routes=[WebSocketRoute("/ws", ws), Route("/fire", fire, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", ws="websockets-sansio")
"""


async def bench_fanout(base: str, key: str, site: str, subscribers: int, tmp: Path) -> None:
    h = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        r = await client.post("/api/v1/jobs", headers=h, json={"type": "bulk", "input": [
            f"{site}/slow/{8 if subscribers > 300 else 4}/1", f"{site}/slow/{9 if subscribers > 300 else 5}/2"]})
        job_id = r.json()["job_id"]
    ws_url = base.replace("http://", "ws://") + "/graphql"
    arrivals: list[list[tuple[float, str]]] = []
    ready = asyncio.Event()
    count = [0]
    init = {"type": "connection_init", "payload": {"Authorization": h["Authorization"]}}
    sub = {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION, "variables": {"id": job_id}}}
    started = time.perf_counter()
    tasks = [asyncio.create_task(_collect(ws_url, subscribers, init, sub, ready, 60, arrivals, count))
             for _ in range(subscribers)]
    await asyncio.wait_for(ready.wait(), 120)
    all_in = time.perf_counter()
    await asyncio.gather(*tasks, return_exceptions=True)
    spreads, deliveries = _spreads(arrivals, all_in + 0.2, subscribers)
    if not spreads:
        print(f"fan-out: no event reached all {subscribers} subscribers after they were all subscribed "
              f"(subscribing took {all_in - started:.1f} s; use fewer subscribers or a slower page)")
        return

    port = _free_port()
    log = tmp / "broadcast.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", _BROADCAST_SERVER, str(port)], stdout=fh,
                                stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/fire?n=warm", proc, log)
        a_arrivals: list[list[tuple[float, str]]] = []
        a_ready = asyncio.Event()
        a_count = [0]
        a_tasks = [asyncio.create_task(_collect(f"ws://127.0.0.1:{port}/ws", subscribers, None, None, a_ready, 15,
                                                a_arrivals, a_count)) for _ in range(subscribers)]
        await asyncio.wait_for(a_ready.wait(), 120)
        a_in = time.perf_counter()
        async with httpx.AsyncClient(timeout=60) as client:
            for i in range(max(3, len(spreads))):
                await client.post(f"http://127.0.0.1:{port}/fire?n={i}")
                await asyncio.sleep(0.5)
        for t in a_tasks:
            t.cancel()
        await asyncio.gather(*a_tasks, return_exceptions=True)
        anchor, _ = _spreads(a_arrivals, a_in, subscribers)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    ours, theirs = statistics.median(spreads), statistics.median(anchor) if anchor else float("nan")
    print(f"fan-out ({subscribers} GraphQL subscribers, {len(spreads)} events, {deliveries} deliveries): first-to-last "
          f"p50 {ours * 1000:.0f} ms, max {max(spreads) * 1000:.0f} ms | bare Starlette broadcast p50 "
          f"{theirs * 1000:.0f} ms | ratio {ours / theirs:.2f}x (subscribing took {all_in - started:.1f} s)")


async def _run(quick: bool, tmp: Path) -> None:
    sys.path.insert(0, str(REPO))
    from tests.pages import base_url, serve_pages

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    from imageextract.config import Settings

    threads = Settings().worker_threads
    with serve_pages() as site_server, service(tmp) as (base, key):
        site = base_url(site_server)
        await bench_latency(base, key, site, 5 if quick else 15)
        await bench_throughput(base, key, site, 50 if quick else 200, threads)
        await bench_fanout(base, key, site, 200 if quick else 1000, tmp)


def main(flags: list[str]) -> int:
    quick = "--quick" in flags
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; embedded default (SQLite, "
          f"in-process broker and pub/sub), worker threads from IMAGEEXTRACT_WORKER_THREADS")
    tmp = Path(tempfile.mkdtemp(prefix="ie-bench-pipeline-"))
    try:
        asyncio.run(_run(quick, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
