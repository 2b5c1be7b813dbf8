"""`imageextract extract SOURCE... [--out DIR] [--json] [--min-size WxH] [--base-url URL] [--no-fetch]`

`main(argv)` takes the arguments after `extract`. Sources (URLs or local files: documents, images, saved web
pages) are processed one after another. With --json, stdout gets one JSON object per source
(SourceResult.to_dict(), plus `saved_as` per image when --out is given); otherwise a short human summary. With
--out, image bytes are written to DIR under unique safe names. --base-url resolves a saved page's relative
references. --no-fetch lists what discovery finds on web pages as JSON Lines, one object per image, without
downloading any image. A progress bar goes to stderr only when stderr is a terminal.

Exit status (also in --help): 0 every source succeeded, 1 at least one source failed (or results could not be
written), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from imageextract.config import Settings
from imageextract.extract.engine import discover_source, extract_source
from imageextract.extract.naming import safe_filename, unique_name
from imageextract.extract.types import ExtractOptions, SourceResult


def _min_size(value: str) -> tuple[int, int]:
    text = value.lower().strip()
    try:
        if "x" in text:
            w, h = text.split("x", 1)
            width, height = int(w or 0), int(h or 0)
        else:
            width = height = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH (e.g. 200x100), got {value!r}") from None
    if width < 0 or height < 0:
        raise argparse.ArgumentTypeError("sizes must not be negative")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imageextract extract",
        description="Extract every image from web pages (URLs or saved .html files) and documents.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="http(s) URL or path to a local file")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write the image files into DIR")
    parser.add_argument("--json", action="store_true", help="print one JSON object per source (JSON Lines)")
    parser.add_argument("--min-size", type=_min_size, metavar="WxH", help="skip images smaller than this")
    parser.add_argument(
        "--base-url",
        type=_base_url,
        metavar="URL",
        help="resolve a saved page's relative references against URL (default: the page's own <base href>, "
        "else they stay unresolved)",
    )
    parser.add_argument(
        "--no-fetch",
        action="store_true",
        help="only discover: print every image reference found on web pages (URL, provenance, attributes, srcset "
        "group) as JSON Lines, one per image, without downloading any image; documents are listed likewise",
    )
    return parser


EXIT_STATUS_HELP = """exit status:
  0  every source succeeded
  1  at least one source failed (its error is in the output), or the results could not be written
  2  usage error (bad arguments)"""


def _base_url(value: str) -> str:
    if not value.lower().startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected an http(s) URL, got {value!r}")
    return value


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream = total, stream
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())

    def show(self, done: int, label: str = "") -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(1, self.total))
        label = label if len(label) <= 50 else "..." + label[-47:]
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {label:<50}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def save_images(result: SourceResult, out_dir: Path, taken: set[str]) -> dict[int, str]:
    """Write every image with bytes into `out_dir`; return {index in result.images: path written}."""
    saved: dict[int, str] = {}
    for index, image in enumerate(result.images):
        if image.data is None:
            continue
        name = unique_name(safe_filename(image.filename or "image"), taken)
        path = out_dir / name
        with open(path, "xb") as fh:  # never overwrite: names are unique within this run
            fh.write(image.data)
        saved[index] = str(path)
    return saved


def _existing_names(out_dir: Path) -> set[str]:
    return {p.name.lower() for p in out_dir.iterdir()} if out_dir.is_dir() else set()


def _summary(result: SourceResult) -> str:
    if result.status == "done":
        broken = sum(1 for i in result.images if i.error)
        extra = f" ({broken} with errors)" if broken else ""
        return f"done    {result.source}  {len(result.images)} images{extra}  {result.duration_ms} ms"
    return f"failed  {result.source}  {result.error_code}: {result.error_message}"


async def run(args: argparse.Namespace, options: ExtractOptions, stdout: TextIO, stderr: TextIO) -> int:
    taken: set[str] = set()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        taken = _existing_names(args.out)
    progress = Progress(len(args.sources), stderr)
    progress.show(0)
    failed = 0
    for done, source in enumerate(args.sources, start=1):
        progress.show(done - 1, source)
        if args.no_fetch:
            failed += await _discover_only(source, args, options, stdout)
            progress.show(done, source)
            continue
        result = await extract_source(source, options, base_url=args.base_url)
        failed += result.status != "done"
        saved = save_images(result, args.out, taken) if args.out is not None else {}
        if args.json:
            payload: dict[str, Any] = result.to_dict()
            if args.out is not None:
                for index, path in saved.items():
                    payload["images"][index]["saved_as"] = path
            stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")
        else:
            stdout.write(_summary(result) + "\n")
        stdout.flush()
        progress.show(done, source)
    progress.close()
    return 1 if failed else 0


async def _discover_only(source: str, args: argparse.Namespace, options: ExtractOptions, stdout: TextIO) -> bool:
    """--no-fetch: one JSON line per discovered image (a failed source gets one line with its error)."""

    result, found = await discover_source(source, options, base_url=args.base_url)
    if result.status == "done" and found is None:  # not a web page: a document has nothing to fetch
        result = await extract_source(source, options, base_url=args.base_url)
        records = [{k: v for k, v in i.to_dict().items() if v not in (None, [])} for i in result.images]
    else:
        records = [f.to_dict() for f in found or []]
    if result.status != "done":
        out = {"source": source, "status": "failed", "error_code": result.error_code, "error_message": result.error_message}
        stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return True
    for record in records:
        stdout.write(json.dumps({"source": source, **record}, ensure_ascii=False, default=str) + "\n")
    stdout.flush()
    return False


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run `imageextract extract` with `argv` (the arguments after `extract`); return the exit status."""

    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    overrides: dict[str, Any] = {}
    if args.min_size:
        overrides["min_width"], overrides["min_height"] = args.min_size
    options = Settings().extract_options(**overrides)
    try:
        return asyncio.run(run(args, options, stdout, stderr))
    except OSError as exc:
        stderr.write(f"imageextract extract: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
