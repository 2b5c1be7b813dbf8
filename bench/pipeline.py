"""Service benchmarks, each figure beside an anchor measured in the same run on the same machine:

    python -m bench pipeline [--quick] [--redis]

- Latency of a one-page URL job with 20 images, from the submitting POST to the job's terminal SSE event
  (read by a minimal HTTP/1.1 client; the same through httpx printed beside), against the bare engine
  (`extract_url`) extracting the same page in this process.
- Throughput of 200 one-image URL jobs submitted at once (until the last is `done`), against the bare engine
  doing the same 200 extractions with as many at a time as the service has worker threads; the two in turns,
  three rounds, and the median round's ratio (a shared machine's busy second lands in one round, not all).
- Growth: one URL job of a page with 1, 10, 100 and 1,000 images, and one job of 1, 25 and 100 one-image
  sources, each POST to terminal event against the bare engine doing the same extractions, with the
  service's resident memory after each (`--only=latency,throughput,fanout,growth` picks sections).
- Fan-out to 1,000 GraphQL `jobProgress` subscribers of one job: for each event, the time from its first to
  its last delivery across the subscribers (the publish time is not visible from outside; the first delivery
  stands in for it), against the same 1,000 websocket clients receiving the same messages from a bare
  Starlette broadcast server in another process. The pub/sub's own share (publish to the last of 1,000
  subscriptions, in this process) is printed beside it.

The service is a real `imageextract serve` process on a fresh data directory (`--redis`: Postgres and Redis,
one API process and one `imageextract worker` process, files on local disk). Its account is on the agency
plan: 40 items of one account at a time and no daily job cap, so neither throttles 200 jobs. Pages and
images come from `bench.pipeline_site`, a loopback server in a process of its own. The fan-out job's pages
are held at a gate until every subscriber is in, then released one by one; its fetch read timeout is raised
to 150 s for that (the other benchmarks never wait on a fetch). `--quick` shrinks the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import secrets
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.common import db_name, port, ratio, run_reported

REPO = Path(__file__).resolve().parents[1]
PLAN = "agency"
SUBSCRIPTION = "subscription($id: ID!) { jobProgress(jobId: $id) { kind status progress item { id status } } }"
COUNTS = ('{ done: jobs(first: 1, status: "done") { totalCount } '
          'failed: jobs(first: 1, status: "failed") { totalCount } }')
PHASE_PAUSE = 0.01  # seconds between the latency bench's timed phases
GATED_ITEMS = 4  # the fan-out job: one bulk job whose pages are released one at a time
FETCH_ENV = {"IMAGEEXTRACT_FETCH_READ_TIMEOUT": "150", "IMAGEEXTRACT_FETCH_TOTAL_TIMEOUT": "180"}
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/0"


# Processes ---------------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _spawn(name: str, args: list[str], tmp: Path, env: dict[str, str] | None = None) -> Child:
    log = tmp / f"{name}.log"
    with open(log, "wb") as fh:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    return Child(name, proc, log)


def _wait_http(url: str, child: Child, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n{child.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} not ready in {timeout:.0f} s:\n{child.tail()}")


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (all their threads) so far, from /proc; nan elsewhere."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


@contextlib.contextmanager
def page_site(tmp: Path) -> Iterator[str]:
    """`bench.pipeline_site` in a child process; yields its base URL."""
    with open(tmp / "site.log", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bench.pipeline_site", str(port("site"))], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=err)
    child = Child("page site", proc, tmp / "site.log")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise RuntimeError(f"page site did not start:\n{child.tail()}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        child.stop()
        if proc.stdout is not None:
            proc.stdout.close()


# The service -------------------------------------------------------------------------------------


@dataclass
class Service:
    base: str
    key: str
    threads: int  # items extracted at once (the worker threads)
    shape: str
    pubsub: dict[str, Any]  # Settings overrides that build the same pub/sub backend in this process
    env: dict[str, str] = field(default_factory=dict)  # the service's environment (its database, data dir)
    account: dict[str, Any] = field(default_factory=dict)  # `admin create-account --json`: ids and the key
    children: list[Child] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def cpu(self) -> float:
        return _cpu_seconds([c.proc.pid for c in self.children])

    def check(self) -> None:
        for c in self.children:
            if c.proc.poll() is not None:
                raise RuntimeError(f"{c.name} exited with {c.proc.returncode}:\n{c.tail()}")


def _env_url(*names: str, default: str) -> str:
    return next((os.environ[n] for n in names if os.environ.get(n)), default)


async def _pg(dsn: str, sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn.replace("postgres://", "postgresql://", 1), timeout=5)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _scaled_backing(stack: contextlib.ExitStack) -> tuple[dict[str, str], str, dict[str, Any]]:
    """A fresh Postgres database and Redis namespace, both removed when `stack` closes."""
    import redis

    admin = _env_url("IMAGEEXTRACT_BENCH_DATABASE_URL", "IMAGEEXTRACT_TEST_DATABASE_URL", default=PG_ADMIN)
    redis_url = _env_url("IMAGEEXTRACT_BENCH_REDIS_URL", "IMAGEEXTRACT_TEST_REDIS_URL", default=REDIS)
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3)
    try:
        pg_version = asyncio.run(_pg(admin, "SHOW server_version"))
        redis_version = client.info()["redis_version"]
    except (OSError, TimeoutError, redis.RedisError) as exc:
        client.close()
        raise RuntimeError(f"--redis needs Postgres at {admin} and Redis at {redis_url} (or set "
                           f"IMAGEEXTRACT_BENCH_DATABASE_URL and IMAGEEXTRACT_BENCH_REDIS_URL): {exc}") from exc
    name = db_name()
    namespace = f"ie-bench-{secrets.token_hex(4)}"
    asyncio.run(_pg(admin, f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        asyncio.run(_pg(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        with contextlib.suppress(redis.RedisError):
            for k in client.scan_iter(match=f"{namespace}*", count=500):
                client.delete(k)
        client.close()

    stack.callback(drop)
    env = {"IMAGEEXTRACT_DATABASE_URL": f"{admin.rsplit('/', 1)[0]}/{name}", "IMAGEEXTRACT_REDIS_URL": redis_url,
           "IMAGEEXTRACT_REDIS_NAMESPACE": namespace}
    shape = f"Postgres {str(pg_version).split()[0]} + Redis {redis_version}"
    return env, shape, {"redis_url": redis_url, "redis_namespace": namespace}


@contextlib.contextmanager
def service(tmp: Path, *, scaled: bool, threads: int) -> Iterator[Service]:
    """`imageextract serve` on a fresh data dir (and with `scaled`, an `imageextract worker` beside it), an
    agency account with an API key; every process, database and key removed on the way out."""
    env = dict(os.environ) | FETCH_ENV | {
        "IMAGEEXTRACT_DATA_DIR": str(tmp / "data"), "IMAGEEXTRACT_CREATE_DEMO_ACCOUNT": "false",
        "IMAGEEXTRACT_SSRF_ALLOW": "127.0.0.0/8,::1/128", "IMAGEEXTRACT_LOG_LEVEL": "WARNING",
        "IMAGEEXTRACT_WORKER_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
    }
    with contextlib.ExitStack() as stack:
        if scaled:
            extra, backing, pubsub = _scaled_backing(stack)
            env |= extra
            shape = (f"{backing}: one API process, one worker process with {threads} threads, files on local "
                     f"disk")
        else:
            env.pop("IMAGEEXTRACT_DATABASE_URL", None)
            env.pop("IMAGEEXTRACT_REDIS_URL", None)
            pubsub = {}
            shape = (f"embedded default: one process (API + {threads} worker threads), SQLite "
                     f"{sqlite3.sqlite_version}, in-process broker and pub/sub, files on local disk")
        cli = [sys.executable, "-m", "imageextract.cli"]
        subprocess.run([*cli, "migrate"], env=env, check=True, cwd=REPO, capture_output=True)
        out = subprocess.run([*cli, "admin", "create-account", "--name", "Bench", "--email", "bench@example.com",
                              "--plan", PLAN, "--credits", "1000000", "--json"],
                             env=env, check=True, cwd=REPO, capture_output=True, text=True)
        api_port = port("api")
        account = json.loads(out.stdout)
        svc = Service(base=f"http://127.0.0.1:{api_port}", key=account["api_key"], threads=threads,
                      shape=shape, pubsub=pubsub, env=env, account=account)
        stack.callback(lambda: [c.stop() for c in svc.children])
        svc.children.append(_spawn("api", [*cli, "serve", "--host", "127.0.0.1", "--port", str(api_port),
                                           "--no-migrate"], tmp, env))
        if scaled:
            svc.children.append(_spawn("worker", [*cli, "worker", "--processes", "1", "--threads", str(threads)],
                                       tmp, env))
        _wait_http(f"{svc.base}/healthz", svc.children[0])
        yield svc


# Helpers -----------------------------------------------------------------------------------------


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _bare_options() -> Any:
    from imageextract.config import Settings

    settings = Settings(ssrf_allow=["127.0.0.0/8", "::1/128"],  # and the service's fetch timeouts
                        fetch_read_timeout=float(FETCH_ENV["IMAGEEXTRACT_FETCH_READ_TIMEOUT"]),
                        fetch_total_timeout=float(FETCH_ENV["IMAGEEXTRACT_FETCH_TOTAL_TIMEOUT"]))
    return settings.extract_options()


async def _until_terminal_sse(client: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    async with client.stream("GET", f"/api/v1/jobs/{job_id}/stream", headers=headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if "item" not in event and event.get("status") in ("done", "failed", "cancelled"):
                    return dict(event)
    raise RuntimeError(f"job {job_id}: the stream ended without a terminal event")


# 1. Latency --------------------------------------------------------------------------------------


async def bench_latency(svc: Service, site: str, runs: int) -> None:
    """Each run: one job through a minimal HTTP client (`RawHTTP`: the POST, then the SSE stream read to its
    terminal event), the bare engine extracting the same page, and one job through httpx; the three in
    turns, so all see the same background load. The headline is the minimal client's: a round trip of
    `GET /api/v1/account` took 3.3 ms through httpx and 1.5 ms through this client against the same server
    here, and two requests lie on the path being timed, so httpx's figure times the client as well as the
    service. It is printed beside, against the same bare runs. The bare engine runs in this process with
    no HTTP in front of it: the service's whole HTTP side (parsing, auth, the response, the stream) counts
    as ours."""
    from imageextract.extract.engine import extract_url

    url = f"{site}/page/20"
    options = _bare_options()
    ours: list[float] = []
    via_httpx: list[float] = []
    inside: list[float] = []
    bare: list[float] = []
    raw = RawHTTP(svc.base, svc.headers)
    submit = raw.request("/api/v1/jobs", {"type": "url", "input": url})
    try:
        async with httpx.AsyncClient(base_url=svc.base, timeout=120) as client:
            # The first of each warms connections, imports and (--redis) the worker, and is not counted. Each
            # timed phase starts after a short pause, so none overlaps what the service still does for the
            # one before (closing the stream, its access log lines, answering /items).
            for _ in range(runs + 1):
                await asyncio.sleep(PHASE_PAUSE)
                started = time.perf_counter()
                status, body = await raw.send(submit)
                if status != 202:
                    raise RuntimeError(f"POST /api/v1/jobs answered {status}: {body[:300]!r}")
                job_id = json.loads(body)["job_id"]
                final, ended = await raw.until_terminal(job_id)
                ours.append(ended - started)
                assert final["status"] == "done" and final["image_count"] == 20, final
                items = (await client.get(f"/api/v1/jobs/{job_id}/items", headers=svc.headers)).json()["items"]
                inside.append(items[0]["duration_ms"] / 1000)

                await asyncio.sleep(PHASE_PAUSE)
                started = time.perf_counter()
                result = await extract_url(url, options)
                bare.append(time.perf_counter() - started)
                assert result.status == "done" and len(result.images) == 20, result.error_message

                await asyncio.sleep(PHASE_PAUSE)
                started = time.perf_counter()
                r = await client.post("/api/v1/jobs", headers=svc.headers, json={"type": "url", "input": url})
                r.raise_for_status()
                final = await _until_terminal_sse(client, r.json()["job_id"], svc.headers)
                via_httpx.append(time.perf_counter() - started)
                assert final["status"] == "done" and final["image_count"] == 20, final
    finally:
        await raw.close()
    ours, via_httpx, inside, bare = ours[1:], via_httpx[1:], inside[1:], bare[1:]
    p50, h50, b50 = statistics.median(ours), statistics.median(via_httpx), statistics.median(bare)
    print(f"url job (20 images, {runs} runs, POST to the terminal SSE event): pipeline p50 {_ms(p50)}, "
          f"p95 {_ms(_pct(ours, 0.95))} | bare engine p50 {_ms(b50)}, p95 {_ms(_pct(bare, 0.95))} | "
          f"ratio {ratio(p50, b50)}", flush=True)
    print(f"  inside the service the item's extraction and storage took p50 {_ms(statistics.median(inside))}; "
          f"the other ~{_ms(p50 - statistics.median(inside))} is submission, queueing, bookkeeping and events",
          flush=True)
    print(f"  the same jobs with httpx as the client: p50 {_ms(h50)}, p95 {_ms(_pct(via_httpx, 0.95))} "
          f"({h50 / b50:.2f}x the bare engine; the difference from the line above is the client's own time)",
          flush=True)


# 2. Throughput -----------------------------------------------------------------------------------


class RawHTTP:
    """POSTs of JSON over plain asyncio connections (HTTP/1.1, keep-alive), the request bytes encoded once.

    The throughput run sends 200 requests at once from this process, on a machine whose two cores it shares
    with the service. httpx spent about 5 ms of CPU per request here (a connection pool, anyio, h11), so the
    client took most of a core while the service worked and the run timed the client as much as the service.
    This client sends bytes and reads a status line, headers and a Content-Length body: the service still
    parses, authenticates and answers every request in full."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        host, _, port_text = base.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port_text)
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    def request(self, path: str, body: dict[str, Any]) -> bytes:
        payload = json.dumps(body).encode()
        return (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.headers}"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """An idle keep-alive connection, or a new one. A connection idle for longer than the server keeps
        one (uvicorn: 5 s) may be closed under us as we write on it, so one idle over 2 s (the rounds
        between throughput rounds) is dropped, not reused, as HTTP clients do."""
        while self.idle:
            reader, writer, since = self.idle.pop()
            if time.monotonic() - since < 2 and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        reader, writer = await self._connection()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.idle.append((reader, writer, time.monotonic()))
        return status, body

    async def until_terminal(self, job_id: str) -> tuple[dict[str, Any], float]:
        """GET the job's SSE stream and read its chunked body until the terminal job event: that event's data
        and the `perf_counter` it was read at. The stream ends there; its end is read too, and the
        connection goes back to the idle ones."""
        reader, writer = await self._connection()
        writer.write(f"GET /api/v1/jobs/{job_id}/stream HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                     f"{self.headers}Accept: text/event-stream\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if int(head.split(b" ", 2)[1]) != 200 or b"chunked" not in head.lower():
            raise RuntimeError(f"job {job_id}: the stream answered {head!r}")
        pending, final, at = b"", None, 0.0
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            pending += chunk[:-2]
            *events, pending = pending.split(b"\n\n")
            for event in events:
                if event.startswith(b"data: "):
                    data = json.loads(event[6:])
                    if "item" not in data and data.get("status") in ("done", "failed", "cancelled"):
                        final, at = data, time.perf_counter()
        if final is None:
            raise RuntimeError(f"job {job_id}: the stream ended without a terminal event")
        self.idle.append((reader, writer, time.monotonic()))
        return dict(final), at

    async def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def _terminal_counts(client: RawHTTP, request: bytes) -> tuple[int, int]:
    status, body = await client.send(request)
    assert status == 200, body[:300]
    data = json.loads(body)["data"]
    return int(data["done"]["totalCount"]), int(data["failed"]["totalCount"])


async def _throughput_ours(svc: Service, client: RawHTTP, counts: bytes, submit: bytes,
                           jobs: int) -> tuple[float, float, float]:
    """`jobs` one-image jobs posted at once; (seconds until the last is terminal, seconds until all were
    accepted, CPU seconds of the service's processes)."""
    done0, failed0 = await _terminal_counts(client, counts)
    cpu0 = svc.cpu()
    started = time.perf_counter()
    posted = await asyncio.gather(*(client.send(submit) for _ in range(jobs)))
    submitted = time.perf_counter() - started
    refused = [(status, body) for status, body in posted if status != 202]
    assert not refused, f"{len(refused)} refused, e.g. {refused[0][0]} {refused[0][1][:300]!r}"
    # Two COUNT queries every 50 ms tell when the last job is terminal without loading 200 jobs.
    deadline = started + 300
    while True:
        done, failed = await _terminal_counts(client, counts)
        if done - done0 + failed - failed0 >= jobs:
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"throughput: {done - done0 + failed - failed0}/{jobs} jobs finished in 300 s")
        svc.check()
        await asyncio.sleep(0.05)
    ours = time.perf_counter() - started
    assert failed == failed0, f"{failed - failed0} jobs failed"
    return ours, submitted, svc.cpu() - cpu0


async def bench_throughput(svc: Service, site: str, jobs: int, rounds: int) -> None:
    """Ours and the bare engine in turns, `rounds` times: on a shared machine one pair can land in a busy
    second of the other tenants, so the figure is the median of the rounds' ratios (each printed)."""
    from imageextract.extract.engine import extract_url

    url = f"{site}/page/1"
    options = _bare_options()
    gate = asyncio.Semaphore(svc.threads)

    async def one() -> None:
        async with gate:
            result = await extract_url(url, options)
            assert result.status == "done" and len(result.images) == 1, result.error_message

    client = RawHTTP(svc.base, svc.headers)
    counts = client.request("/graphql", {"query": COUNTS})
    submit = client.request("/api/v1/jobs", {"type": "url", "input": url})
    await client.send(counts)  # one connection open and warm, as an integrator's client keeps it
    await one()  # warm
    results: list[tuple[float, float, float, float, float, float]] = []
    try:
        for _ in range(rounds):
            ours, submitted, cpu = await _throughput_ours(svc, client, counts, submit, jobs)
            cpu_bare0 = time.process_time()
            started = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(jobs)))
            bare = time.perf_counter() - started
            results.append((ours / bare, ours, bare, submitted, cpu, time.process_time() - cpu_bare0))
            print(f"  round {len(results)}: pipeline {ours:.2f} s, bare engine {bare:.2f} s, ratio "
                  f"{ratio(ours, bare)}", flush=True)
    finally:
        await client.close()
    _, ours, bare, submitted, cpu, cpu_bare = sorted(results)[len(results) // 2]  # the median round
    print(f"throughput ({jobs} one-image URL jobs at once, until the last is done; median of {rounds} rounds): "
          f"pipeline {jobs / ours:.1f} jobs/s ({ours:.2f} s) | bare engine, {svc.threads} at a time, "
          f"{jobs / bare:.1f} jobs/s ({bare:.2f} s) | ratio {ratio(ours, bare)} the time", flush=True)
    print(f"  all {jobs} accepted (202) after {submitted:.2f} s, sent on {jobs} connections by a plain asyncio "
          f"HTTP/1.1 client; CPU per job: service processes {cpu / jobs * 1000:.1f} ms (Postgres/Redis not "
          f"counted), bare engine {cpu_bare / jobs * 1000:.1f} ms", flush=True)


# 3. Fan-out --------------------------------------------------------------------------------------


async def _graphql_subscriber(ws_url: str, svc: Service, job_id: str, record: list[tuple[float, str]],
                              on_first: Callable[[], None]) -> None:
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                                  max_queue=None, open_timeout=120, ping_interval=None, close_timeout=2) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": svc.headers}))
        ack = json.loads(await ws.recv())
        assert ack["type"] == "connection_ack", ack
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": SUBSCRIPTION, "variables": {"id": job_id}}}))
        first = True
        async for raw in ws:
            now = time.perf_counter()
            message = json.loads(raw)
            if first:  # the current state, sent after the subscription is registered
                on_first()
                first = False
            if message.get("type") == "complete":
                return
            if message.get("type") != "next" or "errors" in message.get("payload", {}):
                raise RuntimeError(f"subscription error: {str(raw)[:300]}")
            record.append((now, str(raw)))


async def _plain_subscriber(ws_url: str, record: list[tuple[float, str]]) -> None:
    async with websockets.connect(ws_url, max_queue=None, open_timeout=120, ping_interval=None,
                                  close_timeout=2) as ws:
        async for raw in ws:
            now = time.perf_counter()
            json.loads(raw)  # the same per-message work as a GraphQL subscriber
            record.append((now, str(raw)))


def _spreads(records: list[list[tuple[float, str]]], after: float) -> dict[str, float]:
    """Per distinct message received by every client after `after`: last arrival minus first arrival."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    seen: dict[str, int] = {}
    for record in records:
        for t, text in record:
            if t >= after:
                first[text] = min(first.get(text, t), t)
                last[text] = max(last.get(text, t), t)
                seen[text] = seen.get(text, 0) + 1
    return {text: last[text] - first[text] for text in sorted(first, key=first.__getitem__)
            if seen[text] == len(records)}


_BROADCAST_SERVER = """
import asyncio, sys
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
    text = (await request.body()).decode()
    await asyncio.gather(*(c.send_text(text) for c in list(clients)), return_exceptions=True)
    return PlainTextResponse(str(len(clients)))

async def count(request):
    return PlainTextResponse(str(len(clients)))

try:
    import uvicorn.protocols.websockets.websockets_sansio_impl  # noqa: F401  (what imageextract serve uses)
    impl = "websockets-sansio"
except ImportError:
    impl = "auto"
app = Starlette(routes=[WebSocketRoute("/ws", ws), Route("/fire", fire, methods=["POST"]), Route("/count", count)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", ws=impl)
"""


async def _bare_broadcast(tmp: Path, n: int, messages: list[str], gap: float) -> tuple[dict[str, float], float]:
    """The same n clients, the same messages at the same pace, from a bare Starlette broadcast loop; also
    how long the n clients took to connect."""
    anchor = port("anchor")
    child = _spawn("broadcast", [sys.executable, "-c", _BROADCAST_SERVER, str(anchor)], tmp)
    tasks: list[asyncio.Task[None]] = []
    try:
        await asyncio.to_thread(_wait_http, f"http://127.0.0.1:{anchor}/count", child)
        records: list[list[tuple[float, str]]] = [[] for _ in range(n)]
        started = time.perf_counter()
        tasks = [asyncio.create_task(_plain_subscriber(f"ws://127.0.0.1:{anchor}/ws", r)) for r in records]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{anchor}", timeout=60) as client:
            deadline = time.perf_counter() + 120
            while int((await client.get("/count")).text) < n:
                if time.perf_counter() > deadline or any(t.done() for t in tasks):
                    raise RuntimeError(f"broadcast anchor: not all {n} clients connected\n{child.tail()}")
                await asyncio.sleep(0.05)
            connecting = time.perf_counter() - started
            await asyncio.sleep(0.5)
            after = time.perf_counter()
            for text in messages:
                await client.post("/fire", content=text.encode())
                await asyncio.sleep(gap)
            deadline = time.perf_counter() + 60
            while any(len(r) < len(messages) for r in records) and time.perf_counter() < deadline:
                await asyncio.sleep(0.1)
        return _spreads(records, after), connecting
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        child.stop()


async def _pubsub_fanout(svc: Service, n: int, events: int) -> list[float]:
    """Publish to the last of n subscriptions on one channel, through the service's pub/sub backend here."""
    from imageextract.config import Settings
    from imageextract.events import build_pubsub

    pubsub = build_pubsub(Settings(**svc.pubsub))
    await pubsub.open()
    channel = f"bench:{secrets.token_hex(4)}"
    message = {"event": "job", "job_id": channel, "status": "processing", "progress": 50, "completed_items": 2,
               "total_items": 4, "image_count": 2, "credits_used": 0, "partial": False}
    spreads: list[float] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            subs = [await stack.enter_async_context(pubsub.subscribe(channel)) for _ in range(n)]
            for _ in range(events):
                waiting = [asyncio.create_task(s.get(timeout=30)) for s in subs]
                await asyncio.sleep(0.01)  # every consumer is waiting
                started = time.perf_counter()
                await pubsub.publish(channel, message)
                await asyncio.gather(*waiting)
                spreads.append(time.perf_counter() - started)
    finally:
        await pubsub.close()
    return spreads


async def bench_fanout(svc: Service, site: str, n: int, tmp: Path) -> None:
    gap = 1.5 if n >= 500 else 0.75
    run = secrets.token_hex(4)
    ws_url = svc.base.replace("http://", "ws://") + "/graphql"
    async with httpx.AsyncClient(base_url=svc.base, timeout=60) as client:
        r = await client.post("/api/v1/jobs", headers=svc.headers, json={
            "type": "bulk", "input": [f"{site}/gate/{run}-{i}/1" for i in range(GATED_ITEMS)]})
        r.raise_for_status()
        job_id = r.json()["job_id"]
        records: list[list[tuple[float, str]]] = [[] for _ in range(n)]
        subscribed = asyncio.Event()
        count = 0

        def on_first() -> None:
            nonlocal count
            count += 1
            if count == n:
                subscribed.set()

        started = time.perf_counter()
        tasks = [asyncio.create_task(_graphql_subscriber(ws_url, svc, job_id, rec, on_first)) for rec in records]
        try:
            waiter = asyncio.create_task(subscribed.wait())
            await asyncio.wait([waiter, *tasks], timeout=150, return_when=asyncio.FIRST_COMPLETED)
            if not subscribed.is_set():
                waiter.cancel()
                failed = [t for t in tasks if t.done()]
                raise RuntimeError(f"fan-out: {count}/{n} subscribed; "
                                   f"{failed[0].exception() if failed else 'timed out'}")
            subscribing = time.perf_counter() - started
            await asyncio.sleep(1.0)  # the current-state messages drain
            after = time.perf_counter()
            async with httpx.AsyncClient(base_url=site, timeout=30) as site_client:
                for i in range(GATED_ITEMS):
                    await site_client.get(f"/release/{run}-{i}")
                    await asyncio.sleep(gap)
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    ours = _spreads(records, after)
    deliveries = sum(len(r) for r in records)
    if not ours:
        raise RuntimeError("fan-out: no event reached every subscriber")
    statuses = [json.loads(t)["payload"]["data"]["jobProgress"]["status"] for t in ours]
    assert "done" in statuses, statuses
    anchor, connecting = await _bare_broadcast(tmp, n, list(ours), gap)
    pubsub = await _pubsub_fanout(svc, n, 5)
    o50, a50 = statistics.median(ours.values()), statistics.median(anchor.values())
    o99, a99 = _pct(list(ours.values()), 0.99), _pct(list(anchor.values()), 0.99)
    print(f"fan-out ({n} GraphQL subscribers on one job, {len(ours)} events each delivered to all {n}): first to "
          f"last delivery p50 {_ms(o50)}, p99 {_ms(o99)} | bare Starlette broadcast of the same messages p50 "
          f"{_ms(a50)}, p99 {_ms(a99)} | ratio p50 {ratio(o50, a50)}, p99 {ratio(o99, a99)}", flush=True)
    kind = "Redis" if svc.pubsub else "in-process"
    print(f"  opening the {n} subscriptions took {subscribing:.1f} s (the bare server's {n} websockets "
          f"{connecting:.1f} s); {deliveries} messages received in all; the {kind} pub/sub alone, publish to the "
          f"last of {n} subscriptions: p50 {_ms(statistics.median(pubsub))}", flush=True)


# 4. Growth ---------------------------------------------------------------------------------------


def _rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes now, in MB (VmRSS from /proc; nan elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            return float("nan")
        total += next((int(line.split()[1]) for line in lines if line.startswith("VmRSS:")), 0) / 1024
    return total


_INSIDE: list[float] = []  # the last job's items: extraction and storage time inside the service, seconds


async def _job_seconds(client: httpx.AsyncClient, svc: Service, body: dict[str, Any], images: int) -> float:
    started = time.perf_counter()
    r = await client.post("/api/v1/jobs", headers=svc.headers, json=body)
    r.raise_for_status()
    final = await _until_terminal_sse(client, r.json()["job_id"], svc.headers)
    elapsed = time.perf_counter() - started
    assert final["status"] == "done" and final["image_count"] == images, final
    items = (await client.get(f"/api/v1/jobs/{r.json()['job_id']}/items", headers=svc.headers)).json()["items"]
    _INSIDE[:] = [(i["duration_ms"] or 0) / 1000 for i in items]
    return elapsed


async def bench_growth(svc: Service, site: str, runs: int) -> None:
    """Time (POST to the terminal event, median of `runs`) and the service's resident memory after, as the
    work grows: images per page, then sources per job. The bare engine does the same extractions (the
    sources `svc.threads` at a time, as the service's worker threads would)."""
    from imageextract.extract.engine import extract_url
    from imageextract.services.plans import PLANS

    options = _bare_options()
    pids = [c.proc.pid for c in svc.children]
    tag = secrets.token_hex(3)
    async with httpx.AsyncClient(base_url=svc.base, timeout=600) as client:
        await _job_seconds(client, svc, {"type": "url", "input": f"{site}/page/2?warm={tag}"}, 2)  # warm-up
        await extract_url(f"{site}/page/2", options)
        print(f"growth, images per page (one URL job; median of {runs}; service RSS after):", flush=True)
        for n in (1, 10, 100, 1000):
            url = f"{site}/page/{n}"
            await extract_url(url, options)  # the site renders its PNGs once (cached): neither side pays that
            bare: list[float] = []
            for _ in range(runs):
                started = time.perf_counter()
                result = await extract_url(url, options)
                bare.append(time.perf_counter() - started)
                assert len(result.images) == n
            b = statistics.median(bare)
            ours = statistics.median([await _job_seconds(client, svc, {"type": "url", "input": f"{url}?r={tag}{i}"}, n)
                                      for i in range(runs)])
            print(f"  {n:>5} images: pipeline {_ms(ours):>8} (the item's extraction and storage inside: "
                  f"{_ms(sum(_INSIDE))}) | bare engine {_ms(b):>8} | ratio {ratio(ours, b)} | "
                  f"RSS {_rss_mb(pids):.0f} MB", flush=True)
        print(f"growth, sources per job (one bulk job of one-image pages; median of {runs}; service RSS after):",
              flush=True)
        points: list[tuple[int, float]] = []
        for n in (1, 25, PLANS[PLAN].bulk_max_urls):  # 50: the most one bulk job may have on the plan
            times = []
            for i in range(runs):
                urls = [f"{site}/page/1?s={tag}{i}-{k}" for k in range(n)]
                body: dict[str, Any] = {"type": "url", "input": urls[0]} if n == 1 else {"type": "bulk", "input": urls}
                times.append(await _job_seconds(client, svc, body, n))
            ours = statistics.median(times)
            gate = asyncio.Semaphore(svc.threads)

            async def one(url: str, gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    await extract_url(url, options)

            started = time.perf_counter()
            await asyncio.gather(*(one(f"{site}/page/1?b={k}") for k in range(n)))
            b = time.perf_counter() - started
            points.append((n, ours))
            print(f"  {n:>5} sources: pipeline {_ms(ours):>8} | bare engine {_ms(b):>8} | ratio {ratio(ours, b)} | "
                  f"RSS {_rss_mb(pids):.0f} MB", flush=True)
        (x0, y0), (x1, y1) = points[0], points[-1]
        per_source = (y1 - y0) / (x1 - x0)
        print(f"  fixed cost per job about {_ms(y0 - per_source * x0)} (a line through 1 and {x1} sources), "
              f"{_ms(per_source)} per further source", flush=True)


# Entry point -------------------------------------------------------------------------------------


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    mem = next((int(line.split()[1]) / 1024 / 1024 for line in _read("/proc/meminfo").splitlines()
                if line.startswith("MemTotal:")), float("nan"))
    load = " ".join(_read("/proc/loadavg").split()[:3]) or "?"
    return (f"machine: {os.cpu_count()} cores ({cpu}), {mem:.1f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; load average before the run {load}")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


async def _run(svc: Service, site: str, quick: bool, tmp: Path, only: set[str]) -> None:
    if not only or "latency" in only:
        await bench_latency(svc, site, 5 if quick else 20)
    if not only or "throughput" in only:
        await bench_throughput(svc, site, 50 if quick else 200, 1 if quick else 3)
    if not only or "fanout" in only:
        await bench_fanout(svc, site, 200 if quick else 1000, tmp)
    if not only or "growth" in only:
        await bench_growth(svc, site, 1 if quick else 3)


def main(flags: list[str]) -> int:
    from imageextract.config import Settings
    from imageextract.services.plans import PLANS

    quick, scaled = "--quick" in flags, "--redis" in flags
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft != resource.RLIM_INFINITY and soft < want:  # 1,000 websockets here and in the servers (inherited)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    threads = Settings().worker_threads
    print(_machine(), flush=True)
    def body(tmp: Path) -> None:
        with page_site(tmp) as site, service(tmp, scaled=scaled, threads=threads) as svc:
            plan = PLANS[PLAN]
            cap = "no daily job cap" if plan.jobs_per_day < 0 else f"{plan.jobs_per_day} jobs a day"
            print(f"service: {svc.shape}; plan {PLAN} ({plan.url_worker_concurrency} items of the account at a "
                  f"time, {cap}); the bare engine anchors run in the benchmark process", flush=True)
            only = {name for f in flags if f.startswith("--only=")  # e.g. --only=growth,fanout
                    for name in f[len("--only="):].split(",") if name}
            asyncio.run(_run(svc, site, quick, tmp, only))

    return run_reported("pipeline", body, prefix="ie-bench-pipeline-")

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
