"""The sandbox: real child processes killed at the wall deadline, by the CPU limit, out of memory or by a
crash; the pool recovering, keeping children warm and recycling them by memory (and after max_tasks, a
backstop), and serving several threads at once."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from imageextract.extract import sandbox
from imageextract.extract.documents import extract_document
from imageextract.extract.types import ExtractError, ExtractOptions
from tests.extract.docfixtures import build_docx, simple_pdf


def options(**overrides: Any) -> ExtractOptions:
    return ExtractOptions(**{"sandbox": True, **overrides})


def pid(opts: ExtractOptions) -> int:
    return int(sandbox._debug_task("__pid__", None, opts))


def gone(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    sandbox.shutdown_sandbox()
    yield
    sandbox.shutdown_sandbox()


def test_a_hang_is_sigkilled_at_the_wall_deadline_and_the_pool_recovers() -> None:
    opts = options(sandbox_wall_seconds=0.5)
    first = pid(opts)
    started = time.monotonic()
    with pytest.raises(ExtractError) as err:
        sandbox._debug_task("__sleep__", 60, opts)
    elapsed = time.monotonic() - started
    assert err.value.code == "timeout" and "0.5 s" in err.value.message
    assert 0.5 <= elapsed < 1.5, elapsed
    assert gone(first) and first not in sandbox.worker_pids()
    second = pid(opts)
    assert second != first, "a fresh child replaces the killed one"


def test_a_crash_is_extraction_failed_and_the_pool_recovers() -> None:
    opts = options()
    first = pid(opts)
    with pytest.raises(ExtractError) as err:
        sandbox._debug_task("__crash__", None, opts)
    assert err.value.code == "extraction_failed" and "SIGSEGV" in err.value.message
    assert gone(first)
    assert [i.document_page for i in extract_document(simple_pdf(1), filename=None, options=opts)] == [1]


def test_the_cpu_limit_is_a_timeout() -> None:
    opts = options(sandbox_cpu_seconds=1, sandbox_wall_seconds=30)
    started = time.monotonic()
    with pytest.raises(ExtractError) as err:
        sandbox._debug_task("__spin__", 60, opts)
    assert err.value.code == "timeout" and "CPU" in err.value.message
    assert time.monotonic() - started < 10


def test_the_memory_limit_fails_the_task_and_replaces_the_child() -> None:
    opts = options(sandbox_memory_bytes=1024 * 1024 * 1024)
    first = pid(opts)
    with pytest.raises(ExtractError) as err:
        sandbox._debug_task("__alloc__", 3 * 1024 * 1024 * 1024, opts)
    assert err.value.code == "extraction_failed" and "memory" in err.value.message
    assert sandbox._debug_task("__alloc__", 50 * 1024 * 1024, opts) == 50 * 1024 * 1024
    assert pid(opts) != first, "a child that ran out of memory is not reused"


def test_children_are_recycled_after_max_tasks() -> None:
    opts = options(sandbox_max_tasks=3)
    pids = [pid(opts) for _ in range(7)]
    assert pids[0] == pids[1] == pids[2] and pids[3] == pids[4] == pids[5]
    assert len({pids[0], pids[3], pids[6]}) == 3
    assert gone(pids[0]) and gone(pids[3])


def test_children_stay_warm_and_are_recycled_by_memory() -> None:
    opts = options(sandbox_recycle_bytes=200 * 1024 * 1024)
    first = pid(opts)
    for _ in range(60):  # more tasks than the old count-based limit (50): the same warm child
        assert pid(opts) == first
    pdf = simple_pdf(2)
    for _ in range(5):
        assert len(extract_document(pdf, filename=None, options=opts)) == 2
    assert pid(opts) == first
    assert sandbox._debug_task("__hold__", 250 * 1024 * 1024, opts) == 250 * 1024 * 1024
    second = pid(opts)
    assert second != first and gone(first), "a child past sandbox_recycle_bytes is replaced after its task"
    assert pid(opts) == second


def test_documents_and_their_errors_cross_the_pipe() -> None:
    docx, _ = build_docx()
    here = extract_document(docx, filename=None, options=options(sandbox=False))
    there = extract_document(docx, filename=None, options=options())
    assert [i.to_dict() for i in there] == [i.to_dict() for i in here]
    assert [i.data for i in there] == [i.data for i in here]
    with pytest.raises(ExtractError) as err:
        extract_document(simple_pdf(3), filename=None, options=options(max_pages=2))
    assert err.value.code == "page_limit_exceeded"


def test_several_threads_share_the_pool() -> None:
    opts = options()
    results: dict[int, list[int | None]] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            images = extract_document(simple_pdf(n), filename=None, options=opts)
            results[n] = [i.document_page for i in images]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert results == {n: list(range(1, n + 1)) for n in range(1, 7)}
    assert 1 <= len(sandbox.worker_pids()) <= sandbox.POOL_SIZE


def test_shutdown_stops_children_and_later_calls_start_new_ones() -> None:
    opts = options()
    first = pid(opts)
    sandbox.shutdown_sandbox()
    assert sandbox.worker_pids() == [] and gone(first)
    assert pid(opts) != first


def test_only_debug_kinds_are_reachable_from_the_test_hook() -> None:
    with pytest.raises(ValueError):
        sandbox._debug_task("document", None, options())
