"""`python -m bench [engine|pipeline|batch ...]`: run the named benchmark suites (all by default)."""

from __future__ import annotations

import importlib
import sys

SUITES = {
    "engine": "bench.engine",  # extraction engine: PDF vs bare PyMuPDF and pdfimages, HTML MB/s, probing, memory
    "pipeline": "bench.pipeline",  # the service: URL job latency, 200 concurrent jobs, 1,000-subscriber fan-out
    "batch": "bench.batch",  # the batch lane: 10,000 documents staged, submitted, run, walked; both shapes
}


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(SUITES)}", file=sys.stderr)
        return 2
    flags = [a for a in argv if a.startswith("-")]
    status = 0
    for name in names:
        print(f"== {name} ==", flush=True)
        status |= importlib.import_module(SUITES[name]).main(flags) or 0
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
