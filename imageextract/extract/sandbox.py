"""Untrusted document parsing in child processes with hard limits.

A hang inside PyMuPDF's C code cannot be interrupted from Python, and a crash there would take the worker
with it, so documents are parsed in reusable child processes. A child is a fresh interpreter
(`python -I -c <bootstrap>`, the same executable and sys.path), never a fork of this threaded process. This
is what multiprocessing's "spawn" context does, minus re-running the parent's `__main__` in every child
(spawn does that, which breaks unguarded scripts and costs start-up time) and minus its resource tracker;
the pipe is a multiprocessing `Connection` over an inherited socket.

- each child sets RLIMIT_AS = `options.sandbox_memory_bytes` and no core dumps at start, and before each task
  a soft RLIMIT_CPU of `options.sandbox_cpu_seconds` more than it has used so far (SIGXCPU ends it);
- the parent waits at most `options.sandbox_wall_seconds` for the answer, then SIGKILLs the child;
- children are warm: each loads PyMuPDF once and serves task after task; after each task it reports its
  resident memory, and one past `options.sandbox_recycle_bytes` is replaced (also after a MemoryError or an
  unexpected exception inside it, whenever it died, and after `options.sandbox_max_tasks` tasks, a backstop);
- a pool of up to `POOL_SIZE` children serves callers from any number of threads; children are keyed by their
  limits, so calls with different limits never share a child;
- children die with the thread that started them (PR_SET_PDEATHSIG, Linux) and exit on EOF; starts happen on
  one long-lived launcher thread so that thread is the process lifetime.

Outcomes: a killed or crashed child becomes ExtractError("timeout") for the wall-clock deadline or the CPU
limit (SIGXCPU), ExtractError("extraction_failed") for anything else (out of memory, a signal, an exit).
Results come back as JSON plus raw byte blobs (never pickle), so a compromised child cannot run code in the
parent; identical image bytes travel once and are shared. Each image's SHA-256 is computed once, in the child,
and the parent takes it (after checking it is 64 hex digits) instead of hashing the bytes again: a child able
to lie about a digest could as well send other bytes, and nothing trusts `content_hash` to address stored
data (storage keys are derived from the bytes when they are written).

Public: `run_document(data, *, filename, options)`, `run_convert(data, *, spec, options)` (exports: one image
converted by `imageextract.extract.convert` under Pillow's bomb limits), `shutdown_sandbox()` (registered with
atexit), `worker_pids()`. Tests reach the private task kinds (sleep, crash, spin, alloc, hold, pid) through
`_debug_task`;
document content can never select a task kind.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import pickle
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from imageextract.extract.convert import convert_reply, convert_task
from imageextract.extract.documents import Collector
from imageextract.extract.types import ExtractedImage, ExtractError, ExtractOptions, ImageList

log = logging.getLogger(__name__)

POOL_SIZE = max(1, min(4, os.cpu_count() or 1))
START_TIMEOUT = 60.0
_MAX_HEADER = 64 * 1024 * 1024
_BOOTSTRAP = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from imageextract.extract.sandbox import _child_entry; _child_entry(sys.argv[2:])"
)
_DEBUG_KINDS = frozenset({"__sleep__", "__crash__", "__spin__", "__alloc__", "__hold__", "__pid__"})
_HELD: list[bytes] = []  # child side: what __hold__ keeps
_IMAGE_FIELDS = frozenset(f.name for f in dataclasses.fields(ExtractedImage)) - {"data"}
_OnChunk = Callable[[dict[str, Any], list[bytes]], None]
_DATA_KINDS = frozenset({"document", "convert"})  # task kinds whose input bytes follow the message


def run_document(
    data: bytes | None,
    *,
    filename: str | None,
    options: ExtractOptions,
    path: Path | None = None,
    on_image: Callable[[ExtractedImage], None] | None = None,
) -> ImageList:
    """`documents.extract_unsandboxed` in a sandbox child; the images with their bytes.

    The document is `data`, or the file at `path` (the child opens it; the parent never reads it). The child
    streams a PDF's images page by page; `on_image` (see `documents.extract_document_file`) receives each
    distinct image as its page arrives, after which its bytes are dropped."""

    collector = Collector(on_image)

    def on_frame(reply: dict[str, Any], blobs: list[bytes]) -> None:
        digests: dict[int, str] = {}  # blob index -> SHA-256, each blob hashed once however often it is used
        try:
            collector.add([_image_from(item, blobs, digests) for item in reply.get("images", [])])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ExtractError("extraction_failed", f"the sandbox returned a malformed result: {exc}") from None

    arg = {"path": str(path)} if path is not None else None
    reply, blobs = _POOL.run("document", arg, data or b"", filename, options, on_chunk=on_frame)
    on_frame(reply, blobs)
    return collector.result([str(w) for w in reply.get("warnings", [])][:20])


def run_convert(data: bytes, *, spec: Any, options: ExtractOptions) -> list[Any]:
    """`convert.convert(data, spec)` in a sandbox child: the variants, or ConvertError for a bad image."""

    reply, blobs = _POOL.run("convert", spec, data, None, options)
    return convert_reply(reply, blobs)


def shutdown_sandbox() -> None:
    """Stop every child (idle ones politely, busy ones with SIGKILL). Later calls start new children."""
    _POOL.shutdown()


def worker_pids() -> list[int]:
    """Process ids of the live children (idle and busy)."""
    return _POOL.pids()


def _debug_task(kind: str, arg: Any, options: ExtractOptions) -> Any:
    """Tests only: run a private task kind in a sandbox child and return its value."""
    if kind not in _DEBUG_KINDS:
        raise ValueError(f"unknown debug task {kind!r}")
    reply, _ = _POOL.run(kind, arg, b"", None, options)
    return reply.get("value")


# Parent side -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    memory_bytes: int
    cpu_seconds: int
    max_tasks: int
    recycle_bytes: int

    @classmethod
    def of(cls, options: ExtractOptions) -> _Limits:
        return cls(options.sandbox_memory_bytes, max(1, options.sandbox_cpu_seconds), max(1, options.sandbox_max_tasks),
                   max(0, options.sandbox_recycle_bytes))


class _Worker:
    def __init__(self, limits: _Limits, generation: int) -> None:
        self.limits = limits
        self.generation = generation
        self.tasks = 0
        self.killed = False
        parent, child = multiprocessing.Pipe(duplex=True)
        cpu_hard = limits.cpu_seconds * (min(limits.max_tasks, 1000) + 1) + 5  # the soft limit is set per task
        argv = [
            sys.executable,
            "-I",
            "-c",
            _BOOTSTRAP,
            json.dumps(sys.path),
            *(str(n) for n in (child.fileno(), os.getpid(), limits.memory_bytes, cpu_hard)),
        ]
        try:
            self.process = _launch(argv, child.fileno())
        except OSError as exc:
            parent.close()
            raise ExtractError("extraction_failed", f"the sandbox process could not be started: {exc}") from None
        finally:
            child.close()
        self.conn: Connection = parent
        try:
            ready = self.conn.poll(START_TIMEOUT) and self.conn.recv_bytes(64) == b"ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise ExtractError("extraction_failed", f"the sandbox process did not start (exit code {self.process.returncode})")

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.killed = True
        if self.process.poll() is None:
            self.process.kill()
        _wait(self.process, 10)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send_bytes(b"")  # "quit"
        except OSError:
            pass
        if _wait(self.process, 2) is None:
            self.kill()
        self.conn.close()

    def death(self, options: ExtractOptions) -> ExtractError:
        """The error for a child that went away in the middle of a task."""
        code = _wait(self.process, 5)
        self.kill()
        log.warning("sandbox child %d died during a task (exit code %s)", self.pid, code)
        if code == -signal.SIGXCPU:
            return ExtractError(
                "timeout", f"document processing exceeded the {options.sandbox_cpu_seconds} s CPU limit and was stopped"
            )
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = " (probably out of memory)" if code == -signal.SIGKILL else ""
            return ExtractError("extraction_failed", f"the document parser was killed by {name}{hint}")
        return ExtractError("extraction_failed", f"the document parser exited unexpectedly (exit code {code})")

    def exchange(
        self, message: bytes, data: bytes | None, options: ExtractOptions, on_chunk: _OnChunk | None = None
    ) -> tuple[dict[str, Any], list[bytes]]:
        """Send a task; return its final reply and blobs. Intermediate frames (`"chunk": true`, a PDF's pages)
        go to `on_chunk` as they arrive, all within the one wall-clock deadline."""
        deadline = time.monotonic() + options.sandbox_wall_seconds
        try:
            self.conn.send_bytes(message)
            if data is not None:
                self.conn.send_bytes(data)
        except OSError:
            raise self.death(options) from None
        while True:
            try:
                reply = json.loads(self._recv(deadline, _MAX_HEADER, options))
                if not isinstance(reply, dict):
                    raise ValueError("reply is not an object")
                limit = max(options.max_image_bytes, 1)
                blobs = [self._recv(deadline, limit, options) for _ in range(int(reply.get("blobs", 0)))]
            except (ValueError, UnicodeDecodeError) as exc:
                self.kill()
                raise ExtractError("extraction_failed", f"the sandbox returned a malformed reply: {exc}") from None
            if not reply.get("chunk"):
                return reply, blobs
            if on_chunk is not None:
                try:
                    on_chunk(reply, blobs)
                except BaseException:
                    self.kill()  # the child is mid-stream: it cannot serve another task
                    raise

    def _recv(self, deadline: float, maxlength: int, options: ExtractOptions) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self.conn.poll(remaining):
            log.warning("sandbox child %d passed the %.1f s deadline: killed", self.pid, options.sandbox_wall_seconds)
            self.kill()
            raise ExtractError(
                "timeout",
                f"document processing exceeded the {options.sandbox_wall_seconds:g} s time limit; "
                "the parser was killed",
            )
        try:
            return self.conn.recv_bytes(maxlength)
        except EOFError:
            raise self.death(options) from None
        except OSError as exc:  # message over maxlength, or the pipe broke
            if self.alive():
                self.kill()
                raise ExtractError("extraction_failed", f"the sandbox reply was refused: {exc}") from None
            raise self.death(options) from None


class _Pool:
    """Up to `size` children, each used by one thread at a time."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.cond = threading.Condition()
        self.idle: list[_Worker] = []
        self.busy: set[_Worker] = set()
        self.starting = 0
        self.generation = 0

    def run(
        self, kind: str, arg: Any, data: bytes, filename: str | None, options: ExtractOptions,
        on_chunk: _OnChunk | None = None,
    ) -> tuple[dict[str, Any], list[bytes]]:
        limits = _Limits.of(options)
        message = pickle.dumps((kind, arg, filename, options))
        worker = self.acquire(limits)
        reuse = False
        send = data if kind in _DATA_KINDS and not (isinstance(arg, dict) and arg.get("path")) else None
        try:
            reply, blobs = worker.exchange(message, send, options, on_chunk)
            worker.tasks += 1
            rss = reply.get("rss")
            too_big = isinstance(rss, int) and limits.recycle_bytes > 0 and rss > limits.recycle_bytes
            reuse = not reply.get("recycle") and not too_big and worker.tasks < limits.max_tasks
        finally:
            self.release(worker, reuse)
        if not reply.get("ok"):
            code = reply.get("code")
            raise ExtractError(code if code in _CODES else "extraction_failed", str(reply.get("message", "failed")))
        return reply, blobs

    def acquire(self, limits: _Limits) -> _Worker:
        stale: list[_Worker] = []
        with self.cond:
            while True:
                for worker in list(self.idle):
                    if not worker.alive():
                        self.idle.remove(worker)
                        stale.append(worker)
                    elif worker.limits == limits:
                        self.idle.remove(worker)
                        self.busy.add(worker)
                        _close_all(stale)
                        return worker
                if len(self.idle) + len(self.busy) + self.starting < self.size:
                    break
                if self.idle:  # full of children with other limits: replace the oldest idle one
                    stale.append(self.idle.pop(0))
                    break
                self.cond.wait()
            self.starting += 1
            generation = self.generation
        _close_all(stale)
        try:
            worker = _Worker(limits, generation)
        finally:
            with self.cond:
                self.starting -= 1
                self.cond.notify_all()
        with self.cond:
            self.busy.add(worker)
        return worker

    def release(self, worker: _Worker, reuse: bool) -> None:
        with self.cond:
            self.busy.discard(worker)
            keep = reuse and not worker.killed and worker.generation == self.generation
            if keep:
                self.idle.append(worker)
            self.cond.notify_all()
        if not keep and not worker.killed:
            worker.stop()

    def shutdown(self) -> None:
        with self.cond:
            self.generation += 1
            idle, busy = self.idle, list(self.busy)
            self.idle = []
            self.cond.notify_all()
        _close_all(idle)
        for worker in busy:
            if worker.alive():
                worker.process.kill()  # its caller sees the death and cleans up

    def pids(self) -> list[int]:
        with self.cond:
            return [w.pid for w in [*self.idle, *self.busy] if w.alive()]


def _close_all(workers: list[_Worker]) -> None:
    for worker in workers:
        worker.stop()


def _image_from(item: dict[str, Any], blobs: list[bytes], digests: dict[int, str]) -> ExtractedImage:
    blob = item.get("blob")
    image = ExtractedImage(**{k: v for k, v in item.items() if k in _IMAGE_FIELDS})
    if blob is not None:
        index = int(blob)
        data = blobs[index]
        digest = digests.get(index)
        if digest is None:  # the child's digest when it is well formed (see the module docstring), else ours
            claimed = item.get("content_hash")
            ok = isinstance(claimed, str) and len(claimed) == 64 and all(c in "0123456789abcdef" for c in claimed)
            digest = digests[index] = str(claimed) if ok else hashlib.sha256(data).hexdigest()
        image.data, image.file_size, image.content_hash, image.document_asset_hash = data, len(data), digest, digest
    return image


_CODES = frozenset({"timeout", "unsupported_input", "document_too_large", "page_limit_exceeded", "extraction_failed"})
_launcher: ThreadPoolExecutor | None = None
_launcher_lock = threading.Lock()


def _launch(argv: list[str], fd: int) -> subprocess.Popen[bytes]:
    """Start the child from one long-lived thread (PR_SET_PDEATHSIG follows the starting thread)."""
    global _launcher
    with _launcher_lock:
        if _launcher is None:
            _launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imageextract-sandbox")
        launcher = _launcher
    start = functools.partial(subprocess.Popen, argv, stdin=subprocess.DEVNULL, pass_fds=(fd,), close_fds=True)
    return launcher.submit(start).result()  # type: ignore[return-value]  # text=False: bytes pipes


def _wait(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def _after_fork() -> None:
    """A forked process must not share its parent's children or pipes: start with an empty pool."""
    global _POOL, _launcher, _launcher_lock
    _POOL = _Pool(POOL_SIZE)
    _launcher = None
    _launcher_lock = threading.Lock()


_POOL = _Pool(POOL_SIZE)
os.register_at_fork(after_in_child=_after_fork)
atexit.register(shutdown_sandbox)


# Child side ------------------------------------------------------------------------------------


def _child_entry(argv: list[str]) -> None:
    """The child's `main`: argv is [connection fd, parent pid, memory limit, CPU hard limit]."""
    fd, parent, memory_bytes, cpu_hard = (int(a) for a in argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    _child_main(Connection(fd), parent, memory_bytes, cpu_hard)


def _child_main(conn: Connection, parent: int, memory_bytes: int, cpu_hard: int) -> None:
    _die_with_parent(parent)
    _set_limit(resource.RLIMIT_CORE, 0)
    if memory_bytes > 0:
        _set_limit(resource.RLIMIT_AS, memory_bytes)
    _set_limit(resource.RLIMIT_CPU, cpu_hard)
    import pymupdf  # noqa: F401  # import the parsers before the first task, outside its deadline

    import imageextract.extract.documents as documents
    import imageextract.extract.documents.ooxml  # noqa: F401
    import imageextract.extract.documents.pdf  # noqa: F401

    conn.send_bytes(b"ready")
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not message:
            return
        kind, arg, filename, options = pickle.loads(message)  # from the parent, which we trust
        path = arg.get("path") if kind == "document" and isinstance(arg, dict) else None
        data = conn.recv_bytes() if kind in _DATA_KINDS and not path else b""
        _task_cpu_limit(options.sandbox_cpu_seconds, cpu_hard)
        blobs: list[bytes] = []
        try:
            if kind == "document":
                source: bytes | Path = Path(path) if path else data
                images = documents.extract_unsandboxed(
                    source, filename=filename, options=options, emit=functools.partial(_send_chunk, conn)
                )
                reply: dict[str, Any] = {"ok": True, "images": _pack(images, blobs), "warnings": images.warnings}
            elif kind == "convert":
                reply = convert_task(data, arg, blobs)
            else:
                reply = {"ok": True, "value": _child_debug(kind, arg)}
        except ExtractError as exc:
            reply = {"ok": False, "code": exc.code, "message": exc.message}
        except MemoryError:
            blobs = []
            reply = {
                "ok": False,
                "code": "extraction_failed",
                "message": f"the document needs more memory than the sandbox allows ({memory_bytes // 2**20} MiB)",
                "recycle": True,
            }
        except BaseException as exc:  # a parser bug: report it, then let the parent replace this child
            reply = {"ok": False, "code": "extraction_failed", "message": f"{type(exc).__name__}: {exc}", "recycle": True}
        del data
        reply["blobs"] = len(blobs)
        reply["rss"] = _rss_bytes()
        conn.send_bytes(json.dumps(reply).encode())
        for blob in blobs:
            conn.send_bytes(blob)


def _send_chunk(conn: Connection, images: list[ExtractedImage]) -> None:
    """One intermediate frame: a page's images and their bytes, sent as soon as the page is done."""
    blobs: list[bytes] = []
    header = {"chunk": True, "images": _pack(images, blobs), "blobs": len(blobs)}
    conn.send_bytes(json.dumps(header).encode())
    for blob in blobs:
        conn.send_bytes(blob)


def _rss_bytes() -> int | None:
    """This process's resident memory now (Linux), after returning what MuPDF's caches hold."""
    try:
        import pymupdf

        pymupdf.TOOLS.store_shrink(100)
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, ImportError):
        return None


def _pack(images: list[ExtractedImage], blobs: list[bytes]) -> list[dict[str, Any]]:
    index: dict[str, int] = {}
    out = []
    for image in images:
        item = image.to_dict()
        if image.data is not None:
            # documents.assets sets content_hash = SHA-256 of data; hashing again would cost as much as parsing
            # a JPEG-heavy PDF. The parent recomputes it per blob either way.
            key = image.content_hash or hashlib.sha256(image.data).hexdigest()
            if key not in index:
                index[key] = len(blobs)
                blobs.append(image.data)
            item["blob"] = index[key]
        out.append(item)
    return out


def _child_debug(kind: str, arg: Any) -> Any:
    if kind == "__pid__":
        return os.getpid()
    if kind == "__sleep__":
        time.sleep(float(arg))
        return "slept"
    if kind == "__crash__":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "__spin__":
        end = time.monotonic() + float(arg)
        while time.monotonic() < end:
            pass
        return "spun"
    if kind == "__alloc__":
        block = bytearray(int(arg))
        return len(block)
    if kind == "__hold__":  # allocate and keep (touched, so resident): a child that grew
        _HELD.append(b"\x01" * int(arg))
        return len(_HELD[-1])
    raise ValueError(f"unknown task kind {kind!r}")


def _set_limit(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _task_cpu_limit(seconds: int, hard: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = min(int(usage.ru_utime + usage.ru_stime) + 1 + max(1, seconds), hard)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ValueError, OSError):
        pass


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
