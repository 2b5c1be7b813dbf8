"""Peak memory of the engine on a long image-heavy PDF, beside a bare PyMuPDF loop (each run in a fresh process),
and of the worker's streaming document path on a 2 GB PDF of 10,000 images (`bench_streaming`).

Used by `bench.engine`; `_memory_child` is the entry point of the measured processes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RSS_TARGET_MB = 300
MEMORY_PAGES = 500
MEMORY_PHOTO_SIZES = ((400, 300), (480, 360), (320, 240))  # keeps the 500 pages under the 50 MB document limit


def bare_pymupdf(data: bytes) -> int:
    """Bare PyMuPDF over every page's images: the engine bench's previous anchor (bench.engine.old_anchor)."""
    from bench.engine import old_anchor

    return old_anchor(data)


def _ratio(ours: float, anchor: float) -> str:
    return f"{ours / anchor:.2f}x" if anchor > 0 else "n/a"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# Memory ----------------------------------------------------------------------------------------


def _status_kb(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _memory_child(argv: list[str]) -> None:
    """Run in a fresh interpreter: extract one PDF one way and print what it cost as JSON.

    Only what the run needs is imported: the sandboxed engine's caller never loads PyMuPDF, as in the service.
    VmHWM is this process image's own peak (ru_maxrss would carry the parent's peak across fork + exec); the
    sandbox child's is read from /proc before it is stopped.
    """
    mode, path, data_dir = argv
    out: dict[str, Any] = {}
    if mode == "bare-file":  # the fair anchor on the file: each distinct image xref extracted once, bytes dropped
        import pymupdf  # noqa: F401  # loaded before the baseline, as in the bare mode

        out["baseline_kb"] = _status_kb("self", "VmRSS")
        started = time.perf_counter()
        out["images"], out["held"] = _fair_anchor_file(Path(path))
    elif mode == "service":  # the worker's document path: the stored upload read in place by the sandbox -> storage
        from types import SimpleNamespace

        from imageextract.config import Settings
        from imageextract.extract.sandbox import shutdown_sandbox, worker_pids
        from imageextract.services.document_images import extract
        from imageextract.storage.local import LocalStorage

        out["baseline_kb"] = _status_kb("self", "VmRSS")
        settings = Settings(data_dir=Path(data_dir))
        storage = LocalStorage(Path(data_dir) / "files")
        key = str(Path(path).relative_to(storage.root))
        item = SimpleNamespace(id="bench", upload_key=key, upload_size=Path(path).stat().st_size, source_label="big.pdf")

        async def run() -> Any:
            await storage.open()
            return await extract(SimpleNamespace(storage=storage, settings=settings), item, settings.extract_options())

        started = time.perf_counter()
        result = asyncio.run(run())
        if result.status != "done":
            raise SystemExit(f"{result.error_code}: {result.error_message}")
        out["images"] = len(result.images)
        out["held"] = sum(p.stat().st_size for p in (storage.root / "images").rglob("*") if p.is_file())
        out["sandbox_kb"] = [_status_kb(pid, "VmHWM") for pid in worker_pids()]
        shutdown_sandbox()
    elif mode == "bare":
        import pymupdf  # noqa: F401  # the bare loop's only dependency, loaded before the baseline

        out["baseline_kb"] = _status_kb("self", "VmRSS")
        data = Path(path).read_bytes()
        started = time.perf_counter()
        out["images"] = bare_pymupdf(data)
        out["held"] = 0
    elif mode == "stream":  # the file read by the child, each image written to disk (storage) as it arrives
        import dataclasses

        from imageextract.config import Settings
        from imageextract.extract.engine import extract_document_file
        from imageextract.extract.sandbox import shutdown_sandbox, worker_pids
        from imageextract.extract.types import ExtractedImage

        out["baseline_kb"] = _status_kb("self", "VmRSS")
        options = dataclasses.replace(Settings(data_dir=data_dir).extract_options(sandbox=True), document_max_bytes=1 << 40)
        store = Path(data_dir) / "stored"
        store.mkdir(exist_ok=True)
        written = 0

        def sink(image: ExtractedImage) -> None:
            nonlocal written
            (store / str(image.content_hash)).write_bytes(image.data or b"")
            written += len(image.data or b"")

        started = time.perf_counter()
        result = asyncio.run(extract_document_file(Path(path), options, filename="big.pdf", on_image=sink))
        if result.status != "done":
            raise SystemExit(f"{result.error_code}: {result.error_message}")
        out["images"] = len(result.images)
        out["held"] = written
        out["sandbox_kb"] = [_status_kb(pid, "VmHWM") for pid in worker_pids()]
        shutdown_sandbox()
    else:
        from imageextract.config import Settings
        from imageextract.extract.engine import extract_document_bytes
        from imageextract.extract.sandbox import shutdown_sandbox, worker_pids

        out["baseline_kb"] = _status_kb("self", "VmRSS")
        data = Path(path).read_bytes()
        options = Settings(data_dir=data_dir).extract_options(sandbox=mode == "engine")
        started = time.perf_counter()
        result = asyncio.run(extract_document_bytes(data, options, filename="big.pdf"))
        if result.status != "done":
            raise SystemExit(f"{result.error_code}: {result.error_message}")
        out["images"] = len(result.images)
        unique = {id(i.data): len(i.data) for i in result.images if i.data is not None}
        out["held"] = sum(unique.values())
        out["sandbox_kb"] = [_status_kb(pid, "VmHWM") for pid in worker_pids()]
        shutdown_sandbox()
    out["seconds"] = time.perf_counter() - started
    out["peak_kb"] = _status_kb("self", "VmHWM")
    out["pymupdf_loaded"] = "pymupdf" in sys.modules
    print(json.dumps(out))


def _run_child(mode: str, path: Path, tmp: Path) -> dict[str, Any] | None:
    code = "import sys; from bench.engine_memory import _memory_child; _memory_child(sys.argv[1:])"
    proc = subprocess.run(
        [sys.executable, "-c", code, mode, str(path), str(tmp)], capture_output=True, text=True, cwd=REPO, check=False
    )
    if proc.returncode != 0:
        print(f"memory: the {mode} run failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fair_anchor_file(path: Path) -> tuple[int, int]:
    """Bare PyMuPDF on the file (never read whole): each distinct image xref a page draws extracted once with
    `extract_image`, its bytes dropped at once. (images, bytes)."""
    import pymupdf

    from bench.engine import fair_images

    count = total = 0
    with pymupdf.open(path) as doc:
        for data in fair_images(doc, shrink=True):
            count += 1
            total += len(data)
    return count, total


BIG_IMAGES, BIG_IMAGE_BYTES = 10_000, 200_000  # 2 GB
QUICK_IMAGES, QUICK_IMAGE_BYTES = 2_000, 100_000  # 200 MB


def bench_streaming(tmp: Path, quick: bool) -> None:
    """A 2 GB PDF of 10,000 distinct JPEGs (200 MB and 2,000 with --quick) through the worker's document path
    (`document_images.extract`: the upload copied from storage to a temporary file in chunks, parsed by the
    sandbox child from that file, each distinct image written to storage as its page arrives), beside the fair
    PyMuPDF anchor reading the same file. The PDF and everything stored are deleted afterwards."""
    from bench.big_pdf import write_image_pdf

    count, size = (QUICK_IMAGES, QUICK_IMAGE_BYTES) if quick else (BIG_IMAGES, BIG_IMAGE_BYTES)
    work = tmp / "streaming"
    path = work / "files" / "uploads" / "big.pdf"  # where LocalStorage keeps the upload's key
    path.parent.mkdir(parents=True)
    try:
        started = time.perf_counter()
        written = write_image_pdf(path, images=count, per_page=20, image_bytes=size)
        made = time.perf_counter() - started
        runs = {mode: _run_child(mode, path, work) for mode in ("bare-file", "service")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bare, service = runs["bare-file"], runs["service"]
    if bare is None or service is None:
        return
    child = max(service["sandbox_kb"], default=0)
    worst = max(service["peak_kb"], child)

    def mb(kb: float) -> str:
        return f"{kb / 1024:.0f} MB"

    print(
        f"memory, streamed: {count:,}-image PDF ({written.size / 1e9:.2f} GB, {written.pages} pages, "
        f"{written.image_bytes / 1e9:.2f} GB of distinct JPEGs, written in {made:.1f} s) through the worker's "
        f"document path (the stored upload read in place by the sandbox child, images -> storage): peak RSS {mb(service['peak_kb'])} in "
        f"the worker + {mb(child)} in the sandbox child, {service['seconds']:.1f} s, {service['images']:,} images, "
        f"{service['held'] / 1e9:.2f} GB stored | fair PyMuPDF anchor on the file (each xref once, bytes dropped) "
        f"{mb(bare['peak_kb'])}, {bare['seconds']:.1f} s, {bare['images']:,} images | target < {RSS_TARGET_MB} MB "
        f"per process: {_verdict(worst < RSS_TARGET_MB * 1024)}"
    )


def bench_memory(tmp: Path, quick: bool) -> None:
    from bench.engine_corpus import make_pdf

    started = time.perf_counter()
    data = make_pdf(MEMORY_PAGES, 99, "heavy", photo_sizes=MEMORY_PHOTO_SIZES)
    path = tmp / "big.pdf"
    path.write_bytes(data)
    made = time.perf_counter() - started
    runs: dict[str, dict[str, Any]] = {}
    for mode in ("engine", "in-process", "bare", "stream"):
        run = _run_child(mode, path, tmp)
        if run is None:
            return
        runs[mode] = run

    def mb(kb: float) -> str:
        return f"{kb / 1024:.0f} MB"

    engine, inproc, bare = runs["engine"], runs["in-process"], runs["bare"]
    child = max(engine["sandbox_kb"], default=0)
    worst = max(engine["peak_kb"], child, inproc["peak_kb"])
    print(
        f"memory: {MEMORY_PAGES}-page PDF ({len(data) / 1e6:.0f} MB, {engine['images']} images, built in {made:.1f} s): "
        f"engine peak RSS {mb(engine['peak_kb'])} in the caller + {mb(child)} in the sandbox child, "
        f"{engine['seconds']:.1f} s | bare PyMuPDF loop {mb(bare['peak_kb'])}, {bare['seconds']:.1f} s "
        f"({bare['images']} images) | ratio {_ratio(max(engine['peak_kb'], child), bare['peak_kb'])} "
        f"(target < {RSS_TARGET_MB} MB per process: {_verdict(worst < RSS_TARGET_MB * 1024)})"
    )
    print(
        f"memory: engine in-process (sandbox=False) peak RSS {mb(inproc['peak_kb'])} in {inproc['seconds']:.1f} s "
        f"| bare PyMuPDF loop {mb(bare['peak_kb'])} | ratio {_ratio(inproc['peak_kb'], bare['peak_kb'])}"
    )
    print(
        f"memory: where it goes: interpreter + imports {mb(engine['baseline_kb'])} in the engine's caller (PyMuPDF "
        f"{'loaded' if engine['pymupdf_loaded'] else 'not loaded'}), {mb(bare['baseline_kb'])} with PyMuPDF alone; "
        f"the document {len(data) / 1e6:.0f} MB; the result holds {engine['held'] / 1e6:.0f} MB of image bytes "
        "(the engine returns every image's bytes; the bare loop keeps none)"
    )
    stream = runs["stream"]
    print(
        f"memory: the same PDF streamed (file read by the child, images to disk as they arrive): peak RSS "
        f"{mb(stream['peak_kb'])} in the caller + {mb(max(stream['sandbox_kb'], default=0))} in the child, "
        f"{stream['seconds']:.1f} s"
    )
    bench_streaming(tmp, quick)
