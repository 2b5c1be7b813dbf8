"""The streaming ZIP writer: readable by zipfile and Info-ZIP, ZIP64 past 4 GiB and 65,535 entries, flat memory."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
import tracemalloc
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imageextract.zipstream import (
    ZipEntry,
    ZipSizeError,
    safe_name,
    safe_unique_names,
    zip_stream,
)


def _source(data: bytes, chunk: int = 1000) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(data), chunk):
            yield data[i:i + chunk]
    return gen()


async def _collect(entries: list[ZipEntry]) -> bytes:
    return b"".join([c async for c in zip_stream(entries)])


async def test_archive_round_trip(tmp_path: Path) -> None:
    files = {"hero.jpg": b"\xff\xd8" + bytes(range(256)) * 300, "ümlaut photo.png": b"\x89PNG" * 1000, "empty.gif": b""}
    when = dt.datetime(2026, 4, 5, 12, 30, 44, tzinfo=dt.UTC)
    entries = [ZipEntry(name=n, size=len(d), chunks=lambda d=d: _source(d), modified=when) for n, d in files.items()]
    data = await _collect(entries)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        assert [i.filename for i in z.infolist()] == list(files)
        for info in z.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            assert z.read(info) == files[info.filename]
            assert info.date_time == (2026, 4, 5, 12, 30, 44)
    if shutil.which("unzip"):
        path = tmp_path / "a.zip"
        path.write_bytes(data)
        result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


async def test_empty_archive_is_valid() -> None:
    with zipfile.ZipFile(io.BytesIO(await _collect([]))) as z:
        assert z.infolist() == []


async def test_more_than_65535_entries_uses_zip64_records() -> None:
    n = 65_600
    entries = [ZipEntry(name=f"{i}.png", size=1, chunks=lambda: _source(b"x")) for i in range(n)]
    data = await _collect(entries)
    assert b"PK\x06\x06" in data[-200:], "ZIP64 end of central directory record"
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = z.namelist()
        assert len(names) == n and names[-1] == f"{n - 1}.png"
        assert z.read(names[-1]) == b"x"


async def test_entry_past_4_gib_streams_in_flat_memory(tmp_path: Path) -> None:
    """One 4.1 GiB entry between two small ones, written to disk: ZIP64 sizes and offsets, memory stays flat."""
    block = b"\0" * (8 << 20)
    blocks = 525  # 525 * 8 MiB = 4.1 GiB

    async def big() -> AsyncIterator[bytes]:
        for _ in range(blocks):
            yield block

    entries = [ZipEntry(name="first.png", size=3, chunks=lambda: _source(b"one")),
               ZipEntry(name="huge.tiff", size=blocks * len(block), chunks=big),
               ZipEntry(name="last.png", size=3, chunks=lambda: _source(b"end"))]
    path = tmp_path / "big.zip"
    tracemalloc.start()
    try:
        with path.open("wb") as fh:
            async for chunk in zip_stream(entries):
                fh.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, f"the writer itself held {peak} bytes"  # the 8 MiB block is allocated before tracing
    assert path.stat().st_size > 4 << 30
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("huge.tiff")
        assert info.file_size == blocks * len(block) and info.file_size > 0xFFFFFFFF
        assert z.read("first.png") == b"one"
        assert z.read("last.png") == b"end"  # its local header sits past the 4 GiB offset
        assert z.getinfo("last.png").header_offset > 0xFFFFFFFF


async def test_undeclared_growth_past_4_gib_is_refused() -> None:
    block = b"\0" * (64 << 20)

    async def liar() -> AsyncIterator[bytes]:
        for _ in range(65):
            yield block

    with pytest.raises(ZipSizeError):
        async for _ in zip_stream([ZipEntry(name="a.png", size=10, chunks=liar)]):
            pass


@pytest.mark.parametrize(("raw", "safe"), [
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\x\\photo.jpg", "photo.jpg"),
    (".htaccess", "htaccess"),
    ("", "image"),
    ("...", "image"),
    ("a\x00b\r\n.png", "a_b.png"),
    ("ok name (1).webp", "ok name (1).webp"),
    ("x" * 300 + ".png", "x" * 140 + ".png"),
])
def test_safe_name(raw: str, safe: str) -> None:
    assert safe_name(raw) == safe


def test_unique_names_case_insensitive() -> None:
    assert safe_unique_names(["a.png", "A.png", "a.png", "b", "b"]) == ["a.png", "A (2).png", "a (3).png", "b", "b (2)"]
