"""What every benchmark shares: flags for ports and database names, and ratios printed with the load.

Flags (also as environment variables, for `make bench`):
  --api-port=N       IMAGEEXTRACT_BENCH_API_PORT      the service under test (default: a free port)
  --site-port=N      IMAGEEXTRACT_BENCH_SITE_PORT     the loopback page site (default: a free port)
  --anchor-port=N    IMAGEEXTRACT_BENCH_ANCHOR_PORT   the anchor servers (default: a free port)
  --db-name=NAME     IMAGEEXTRACT_BENCH_DB_NAME       the Postgres database created for a run (default: a
                                                      random ie_bench_* name; dropped afterwards either way)
Postgres and Redis themselves: IMAGEEXTRACT_BENCH_DATABASE_URL and IMAGEEXTRACT_BENCH_REDIS_URL.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

_FLAGS: dict[str, str] = {}


def set_flags(flags: list[str]) -> None:
    """Remember `--name=value` flags (the suites' own `--quick`/`--redis` are left to them)."""
    for flag in flags:
        if flag.startswith("--") and "=" in flag:
            name, value = flag[2:].split("=", 1)
            _FLAGS[name] = value


def option(name: str) -> str | None:
    return _FLAGS.get(name) or os.environ.get(f"IMAGEEXTRACT_BENCH_{name.upper().replace('-', '_')}") or None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port(name: str, offset: int = 0) -> int:
    """The configured `--<name>-port` (plus `offset`, for a second server of the same role), else a free one."""
    configured = option(f"{name}-port")
    return int(configured) + offset if configured else free_port()


def db_name() -> str:
    return option("db-name") or f"ie_bench_{secrets.token_hex(5)}"


def load() -> str:
    """The 1-minute load average now (the machine is shared: read every ratio with it)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


def ratio(ours: float, anchor: float) -> str:
    """`ours / anchor` as printed by every benchmark, with the load average at the time."""
    value = ours / anchor if anchor else float("inf")
    return f"{value:.2f}x (load {load()})"


def run_reported(name: str, body: Callable[[Path], None], *, prefix: str) -> int:
    """Run `body(tmp)` in a scratch folder; a failure prints one line (and its traceback when it is not a
    RuntimeError, which the benches raise with a message of their own) and answers 1; the folder goes."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        body(tmp)
        print(f"load average after the run {load()}", flush=True)
    except Exception as exc:
        if not isinstance(exc, RuntimeError):
            traceback.print_exc()
        print(f"{name} benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0
