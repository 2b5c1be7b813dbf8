"""Peak memory of the engine on a long image-heavy PDF, beside a bare PyMuPDF loop (each run in a fresh process),
and of the streaming path (`extract_document_file` with a sink) on a 10,000-image PDF.

Used by `bench.engine`; `_memory_child` is the entry point of the measured processes.
"""

from __future__ import annotations

import asyncio
import json
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
    if mode == "bare":
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


def many_images_pdf(path: Path, images: int, per_page: int = 20) -> int:
    """A PDF of `images` distinct small photo-like JPEGs; returns its size."""
    import io
    import random

    from PIL import Image

    from bench.engine_pdfs import RawPdf, draw

    rng = random.Random(10)
    pdf = RawPdf()
    for p in range(images // per_page):
        names = {}
        for k in range(per_page):
            im = Image.frombytes("RGB", (20, 15), rng.randbytes(20 * 15 * 3)).resize((200, 150))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=85)
            names[f"I{p}_{k}"] = pdf.image(200, 150, buf.getvalue(), extra="/Filter /DCTDecode")
        pdf.page(b"".join(draw(n, 10 + 30 * (k % 20), 10 + 30 * (k // 20), 25, 25) for k, n in enumerate(names)), names)
    data = pdf.tobytes()
    path.write_bytes(data)
    return len(data)


def bench_streaming(tmp: Path, quick: bool) -> None:
    """10,000 images (2,000 with --quick) streamed from the file, through the sandbox, to files on disk."""
    count = 2_000 if quick else 10_000
    started = time.perf_counter()
    path = tmp / "many.pdf"
    size = many_images_pdf(path, count)
    made = time.perf_counter() - started
    run = _run_child("stream", path, tmp)
    if run is None:
        return
    child = max(run["sandbox_kb"], default=0)
    worst = max(run["peak_kb"], child)
    print(
        f"memory, streamed: {count:,}-image PDF ({size / 1e6:.0f} MB, built in {made:.1f} s) read by the sandbox "
        f"child from the file, each image written to disk as its page arrives: peak RSS {run['peak_kb'] / 1024:.0f} MB "
        f"in the caller + {child / 1024:.0f} MB in the child, {run['seconds']:.1f} s, {run['images']:,} images, "
        f"{run['held'] / 1e6:.0f} MB written (target < {RSS_TARGET_MB} MB per process: "
        f"{_verdict(worst < RSS_TARGET_MB * 1024)}; memory follows one page of images plus per-image metadata, not "
        "the document; a 2 GB file was not generated here)"
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
