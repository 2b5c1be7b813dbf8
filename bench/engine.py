"""Engine benchmarks: each figure beside an anchor measured in the same run on the same inputs.

- PDF: the engine (sandboxed, as the service runs it, and in-process) against a bare PyMuPDF loop
  (`get_images` + `extract_image` per page) and poppler's `pdfimages -all`. Targets: within 1.3x of the
  bare loop, faster than pdfimages.
- HTML discovery in MB/s against a bare selectolax parse that reads every <img> src.
- Metadata probing in images/s against Pillow's lazy `Image.open(...).size`.
- Peak RSS extracting a 500-page image-heavy PDF, in a child process of its own, against the bare loop's.
  Target: under 300 MB.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymupdf
from PIL import Image


def _noise_jpeg(rng: random.Random, size: tuple[int, int], mode: str = "RGB", quality: int = 85) -> bytes:
    small = (max(1, size[0] // 8), max(1, size[1] // 8))  # smooth, photo-like content, unique per image
    im = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3)).resize(size, Image.Resampling.BICUBIC)
    if mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _alpha_png(rng: random.Random, size: tuple[int, int]) -> bytes:
    im = Image.new("RGBA", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256), 255))
    alpha = Image.linear_gradient("L").resize(size)
    im.putalpha(alpha)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def make_pdf(pages: int, seed: int, *, per_page: int = 4, size: tuple[int, int] = (320, 240)) -> bytes:
    """`pages` pages, each with unique JPEGs (RGB and CMYK), a PNG with alpha (an SMask) and a shared logo."""
    rng = random.Random(seed)
    doc = pymupdf.open()
    logo = _alpha_png(rng, (64, 64))
    for _ in range(pages):
        page = doc.new_page(width=612, height=792)
        for i in range(per_page - 1):
            mode = "CMYK" if i == 1 else "RGB"
            data = _alpha_png(rng, (96, 96)) if i == 2 else _noise_jpeg(rng, size, mode)
            y = 40 + i * 180
            page.insert_image(pymupdf.Rect(40, y, 40 + size[0] * 0.6, y + size[1] * 0.6), stream=data)
        page.insert_image(pymupdf.Rect(500, 20, 560, 80), stream=logo)
    out = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return out


def bare_pymupdf(data: bytes) -> int:
    """The anchor: what a script would write with PyMuPDF alone."""
    count = 0
    with pymupdf.open(stream=data, filetype="pdf") as doc:
        for page in doc:
            for row in page.get_images(full=True):
                info = doc.extract_image(row[0])
                if info and info.get("image"):
                    count += 1
    return count


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def _ratio(ours: float, anchor: float) -> str:
    return f"{ours / anchor:.2f}x" if anchor > 0 else "n/a"


def bench_pdf(tmp: Path, quick: bool) -> None:
    from imageextract.config import Settings
    from imageextract.extract.documents import extract_unsandboxed
    from imageextract.extract.engine import extract_document_bytes
    from imageextract.extract.sandbox import shutdown_sandbox

    docs = [make_pdf(20 if quick else 40, seed) for seed in range(3 if quick else 5)]
    total_mb = sum(len(d) for d in docs) / 1e6
    options = Settings(data_dir=tmp).extract_options()
    in_process = Settings(data_dir=tmp).extract_options(sandbox=False)
    repeat = 2 if quick else 3

    def engine_sandboxed() -> int:
        async def run() -> int:
            n = 0
            for i, d in enumerate(docs):
                result = await extract_document_bytes(d, options, filename=f"doc{i}.pdf")
                assert result.status == "done", result.error_message
                n += len(result.images)
            return n
        return asyncio.run(run())

    engine_sandboxed()  # warm the sandbox pool (process start is not extraction)
    t_box, n_box = _best(engine_sandboxed, repeat)
    t_in, n_in = _best(lambda: sum(len(extract_unsandboxed(d, filename="d.pdf", options=in_process)) for d in docs), repeat)
    t_bare, n_bare = _best(lambda: sum(bare_pymupdf(d) for d in docs), repeat)
    shutdown_sandbox()
    print(f"pdf corpus: {len(docs)} documents, {total_mb:.1f} MB")
    print(f"pdf: engine (sandboxed) {t_box:.3f} s ({n_box} images) | bare PyMuPDF {t_bare:.3f} s ({n_bare} images)"
          f" | ratio {_ratio(t_box, t_bare)} (target <= 1.3x)")
    print(f"pdf: engine (in-process) {t_in:.3f} s ({n_in} images) | bare PyMuPDF {t_bare:.3f} s"
          f" | ratio {_ratio(t_in, t_bare)}")
    pdfimages = shutil.which("pdfimages")
    if pdfimages is None:
        print("pdf: pdfimages: not installed (apt-get install poppler-utils) — no poppler anchor in this run")
        return
    paths = []
    for i, d in enumerate(docs):
        p = tmp / f"doc{i}.pdf"
        p.write_bytes(d)
        paths.append(p)

    def run_pdfimages() -> int:
        n = 0
        for i, p in enumerate(paths):
            out = tmp / f"pi{i}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            subprocess.run([pdfimages, "-all", str(p), str(out / "img")], check=True)
            n += len(list(out.iterdir()))
        return n

    t_pi, n_pi = _best(run_pdfimages, repeat)
    print(f"pdf: engine (sandboxed) {t_box:.3f} s ({n_box} images) | pdfimages -all {t_pi:.3f} s ({n_pi} files,"
          f" masks as separate files) | ratio {_ratio(t_box, t_pi)} (target < 1x)")


def make_html(target_bytes: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    parts = ["<!doctype html><html><head><base href='https://example.com/'>",
             "<meta property='og:image' content='/og.jpg'><link rel='icon' href='/favicon.ico'>",
             "<style>.hero{background-image:url(/hero.jpg)}</style></head><body>"]
    size = sum(len(p) for p in parts)
    i = 0
    while size < target_bytes:
        i += 1
        kind = i % 5
        if kind == 0:
            s = f"<img src='/img/{i}.jpg' alt='image {i}' width='{rng.randrange(50, 900)}'>"
        elif kind == 1:
            s = (f"<img src='/img/{i}-s.jpg' srcset='/img/{i}-1x.jpg 1x, /img/{i}-2x.jpg 2x' "
                 f"data-src='/lazy/{i}.jpg' loading='lazy'>")
        elif kind == 2:
            s = (f"<picture><source type='image/webp' srcset='/p/{i}.webp 480w, /p/{i}-l.webp 960w'>"
                 f"<img src='/p/{i}.jpg' alt='p{i}'></picture>")
        elif kind == 3:
            s = f"<div style=\"background-image:url('/bg/{i}.png')\"><p>{'lorem ipsum ' * 8}</p></div>"
        else:
            s = f"<section><h2>Heading {i}</h2><p>{'text ' * 30}</p><a href='/x/{i}'>link</a></section>"
        parts.append(s)
        size += len(s)
    parts.append("</body></html>")
    return "".join(parts)


def bench_html(quick: bool) -> None:
    from selectolax.lexbor import LexborHTMLParser

    from imageextract.extract.discover import discover

    html = make_html(1_000_000 if quick else 3_000_000)
    mb = len(html.encode()) / 1e6
    repeat = 3 if quick else 5
    t_ours, found = _best(lambda: discover(html, "https://example.com/page"), repeat)

    def bare() -> int:
        tree = LexborHTMLParser(html)
        return sum(1 for node in tree.css("img") if node.attributes.get("src"))

    t_bare, n_bare = _best(bare, repeat)
    print(f"html discovery: {mb / t_ours:.1f} MB/s ({len(found.images)} images from {mb:.1f} MB) | bare selectolax "
          f"img[src] {mb / t_bare:.1f} MB/s ({n_bare}) | ratio {_ratio(t_ours, t_bare)} of the bare time")


def bench_probe(quick: bool) -> None:
    from imageextract.extract.probe import probe_image

    rng = random.Random(3)
    images: list[bytes] = []
    for i in range(60 if quick else 200):
        w, h = rng.randrange(200, 1600), rng.randrange(200, 1200)
        im = Image.new("RGB", (w, h), (rng.randrange(256), 0, 0))
        buf = io.BytesIO()
        im.save(buf, ("JPEG", "PNG", "WEBP", "GIF")[i % 4])
        images.append(buf.getvalue())
    repeat = 3 if quick else 5
    t_ours, _ = _best(lambda: [probe_image(d) for d in images], repeat)

    def pillow_lazy() -> list[tuple[int, int]]:
        out = []
        for d in images:
            with Image.open(io.BytesIO(d)) as im:
                out.append(im.size)
        return out

    def pillow_decode() -> None:
        for d in images:
            with Image.open(io.BytesIO(d)) as im:
                im.load()

    t_lazy, _ = _best(pillow_lazy, repeat)
    t_full, _ = _best(pillow_decode, 1)
    n = len(images)
    print(f"probe: {n / t_ours:.0f} images/s | Pillow lazy open {n / t_lazy:.0f} images/s | ratio "
          f"{_ratio(t_ours, t_lazy)} of the lazy time (a full decode runs at {n / t_full:.0f} images/s)")


_RSS_CHILD = """
import sys, time
from pathlib import Path
data = Path(sys.argv[2]).read_bytes()
started = time.perf_counter()
if sys.argv[1] == "engine":
    from imageextract.config import Settings
    from imageextract.extract.documents import extract_unsandboxed
    options = Settings(data_dir=sys.argv[3]).extract_options(sandbox=False)
    n = len(extract_unsandboxed(data, filename="big.pdf", options=options))
else:
    from bench.engine import bare_pymupdf
    n = bare_pymupdf(data)
# VmHWM is this process image's own peak (ru_maxrss would carry the parent's peak across fork + exec).
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(n, time.perf_counter() - started, hwm)
"""


def bench_memory(tmp: Path, quick: bool) -> None:
    pages = 500
    data = make_pdf(pages, 99, per_page=3, size=(320, 240))
    path = tmp / "big.pdf"
    path.write_bytes(data)
    rows = {}
    for kind in ("engine", "bare"):
        out = subprocess.run([sys.executable, "-c", _RSS_CHILD, kind, str(path), str(tmp)], check=False,
                             capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if out.returncode != 0:
            print(f"memory: the {kind} run failed: {out.stderr.strip().splitlines()[-1:]}")
            return
        n, seconds, rss_kb = out.stdout.split()
        rows[kind] = (int(n), float(seconds), int(rss_kb) / 1024)
    (n_e, s_e, m_e), (n_b, s_b, m_b) = rows["engine"], rows["bare"]
    print(f"memory: {pages}-page PDF ({len(data) / 1e6:.0f} MB, {n_e} images): engine peak RSS {m_e:.0f} MB in "
          f"{s_e:.1f} s | bare PyMuPDF loop {m_b:.0f} MB in {s_b:.1f} s ({n_b} images) | ratio "
          f"{_ratio(m_e, m_b)} (target < 300 MB: {'met' if m_e < 300 else 'MISSED'})")


def main(flags: list[str]) -> int:
    quick = "--quick" in flags
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, PyMuPDF {pymupdf.VersionBind}")
    with tempfile.TemporaryDirectory(prefix="ie-bench-") as d:
        tmp = Path(d)
        bench_pdf(tmp, quick)
        bench_html(quick)
        bench_probe(quick)
        bench_memory(tmp, quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
