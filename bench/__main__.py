"""`python -m bench [engine|pipeline|reads ...] [--quick] [--redis] [--api-port=N ...]`: run the named benchmark
suites (all by default). Ports and database names: see bench/common.py."""

from __future__ import annotations

import importlib
import sys

from bench.common import set_flags

SUITES = {
    "engine": "bench.engine",  # extraction engine: PDF vs the fair PyMuPDF anchor, HTML MB/s, probing, memory
    "pipeline": "bench.pipeline",  # the service: URL job latency, 200 concurrent jobs, 1,000-subscriber fan-out
    "result-exports": "bench.result_exports",  # result files: time and peak memory, 1,000 and 100,000 images
    "reads": "bench.reads",  # the read path: /result, /items, GraphQL images against plain JSON responses
    "image-export": "bench.image_export",  # image export: conversion per format and preset vs bare Pillow
    "batch": "bench.batch",  # the batch lane: 10,000 documents staged, submitted, run, walked; both shapes
}


def main(argv: list[str]) -> int:
    valued = {"--corpus"}  # flags that take a value: `--corpus DIR`
    names: list[str] = []
    flags: list[str] = []
    it = iter(argv)
    for a in it:
        if a.startswith("-"):
            flags.append(a)
            if a in valued:
                flags.append(next(it, ""))
        else:
            names.append(a)
    names = names or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(SUITES)}", file=sys.stderr)
        return 2
    set_flags(flags)  # --api-port=, --site-port=, --anchor-port=, --db-name= (see bench/common.py)
    status = 0
    for name in names:
        print(f"== {name} ==", flush=True)
        status |= importlib.import_module(SUITES[name]).main(flags) or 0
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
