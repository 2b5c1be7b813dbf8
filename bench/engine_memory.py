"""Peak memory of the engine on a long image-heavy PDF, beside a bare PyMuPDF loop (each run in a fresh process).

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
    import pymupdf

    count = 0
    with pymupdf.open(stream=data, filetype="pdf") as doc:
        for page in doc:
            for row in page.get_images(full=True):
                info = doc.extract_image(row[0])
                if info and info.get("image"):
                    count += 1
    return count


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


def bench_memory(tmp: Path, quick: bool) -> None:
    from bench.engine_corpus import make_pdf

    started = time.perf_counter()
    data = make_pdf(MEMORY_PAGES, 99, "heavy", photo_sizes=MEMORY_PHOTO_SIZES)
    path = tmp / "big.pdf"
    path.write_bytes(data)
    made = time.perf_counter() - started
    runs: dict[str, dict[str, Any]] = {}
    for mode in ("engine", "in-process", "bare"):
        code = "import sys; from bench.engine_memory import _memory_child; _memory_child(sys.argv[1:])"
        proc = subprocess.run(
            [sys.executable, "-c", code, mode, str(path), str(tmp)], capture_output=True, text=True, cwd=REPO, check=False
        )
        if proc.returncode != 0:
            print(f"memory: the {mode} run failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
            return
        runs[mode] = json.loads(proc.stdout.strip().splitlines()[-1])

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
