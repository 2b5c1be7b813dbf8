"""A streaming ZIP writer: STORED entries (images are already compressed), CRC computed on the fly and sent in
data descriptors, ZIP64 records where sizes or offsets pass 4 GiB or entries pass 65,535. Memory stays flat:
one chunk of one entry at a time, plus one small central-directory record per entry.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import struct
import unicodedata
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

ZIP64_LIMIT = 0xFFFFFFFF
ZIP64_COUNT_LIMIT = 0xFFFF
_FLAGS = 0x0008 | 0x0800  # sizes and CRC in a data descriptor; UTF-8 names
_VERSION_ZIP64 = 45
_VERSION_PLAIN = 20


@dataclass
class ZipEntry:
    name: str
    size: int | None  # expected size; None when unknown (then the entry is written as ZIP64)
    chunks: Callable[[], AsyncIterator[bytes]]  # called once, when the entry's turn comes
    modified: dt.datetime | None = None


class ZipSizeError(RuntimeError):
    """An entry produced more bytes than its declared size allows in a non-ZIP64 record."""


def _dos_time(when: dt.datetime | None) -> tuple[int, int]:
    when = when or dt.datetime.now(dt.UTC)
    year = min(max(when.year, 1980), 2107)
    date = ((year - 1980) << 9) | (when.month << 5) | when.day
    time = (when.hour << 11) | (when.minute << 5) | (when.second // 2)
    return time, date


@dataclass
class _Written:
    name: bytes
    crc: int
    size: int
    offset: int
    time: int
    date: int


def _local_header(name: bytes, time: int, date: int, zip64: bool) -> bytes:
    extra = struct.pack("<HHQQ", 0x0001, 16, 0, 0) if zip64 else b""
    version = _VERSION_ZIP64 if zip64 else _VERSION_PLAIN
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, version, _FLAGS, 0, time, date, 0, 0, 0,
                       len(name), len(extra)) + name + extra


def _central_record(w: _Written) -> bytes:
    zip64_fields: list[int] = []
    size32 = w.size
    offset32 = w.offset
    if w.size >= ZIP64_LIMIT:
        zip64_fields += [w.size, w.size]
        size32 = ZIP64_LIMIT
    if w.offset >= ZIP64_LIMIT:
        zip64_fields.append(w.offset)
        offset32 = ZIP64_LIMIT
    extra = struct.pack(f"<HH{len(zip64_fields)}Q", 0x0001, 8 * len(zip64_fields), *zip64_fields) if zip64_fields else b""
    version = _VERSION_ZIP64 if zip64_fields else _VERSION_PLAIN
    return struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | version, version, _FLAGS, 0, w.time, w.date, w.crc,
        size32, size32, len(w.name), len(extra), 0, 0, 0, 0o100644 << 16, offset32,
    ) + w.name + extra


def _end_records(count: int, cd_offset: int, cd_size: int) -> bytes:
    out = b""
    if count >= ZIP64_COUNT_LIMIT or cd_offset >= ZIP64_LIMIT or cd_size >= ZIP64_LIMIT:
        zip64_eocd_offset = cd_offset + cd_size
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, _VERSION_ZIP64, _VERSION_ZIP64, 0, 0, count, count,
                           cd_size, cd_offset)
        out += struct.pack("<IIQI", 0x07064B50, 0, zip64_eocd_offset, 1)
        count16 = min(count, ZIP64_COUNT_LIMIT)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count16, count16, min(cd_size, ZIP64_LIMIT),
                           min(cd_offset, ZIP64_LIMIT), 0)
        return out
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, cd_offset, 0)


async def zip_stream(entries: Iterable[ZipEntry]) -> AsyncIterator[bytes]:
    """Yield the bytes of one ZIP archive holding `entries`, in order."""
    written: list[_Written] = []
    offset = 0
    for entry in entries:
        name = entry.name.encode("utf-8")
        time, date = _dos_time(entry.modified)
        zip64 = entry.size is None or entry.size >= ZIP64_LIMIT - 1024
        header = _local_header(name, time, date, zip64)
        yield header
        crc = 0
        size = 0
        async for chunk in entry.chunks():
            if not chunk:
                continue
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            if not zip64 and size >= ZIP64_LIMIT:
                raise ZipSizeError(f"{entry.name}: more than 4 GiB in an entry declared as {entry.size} bytes")
            yield chunk
        if zip64:
            descriptor = struct.pack("<IIQQ", 0x08074B50, crc, size, size)
        else:
            descriptor = struct.pack("<IIII", 0x08074B50, crc, size, size)
        yield descriptor
        written.append(_Written(name=name, crc=crc, size=size, offset=offset, time=time, date=date))
        offset += len(header) + size + len(descriptor)
    cd_offset = offset
    cd_size = 0
    for w in written:
        record = _central_record(w)
        cd_size += len(record)
        yield record
    yield _end_records(len(written), cd_offset, cd_size)


_UNSAFE = re.compile(r"[^\w.\- ()+,=@]+", re.UNICODE)


def safe_name(name: str, default: str = "image") -> str:
    """A file name that is safe in any archive tool: no directories, no control characters, no leading dots."""
    name = unicodedata.normalize("NFC", name or "")
    name = posixpath.basename(name.replace("\\", "/"))
    name = _UNSAFE.sub("_", name).strip(" ._")
    if not name:
        return default
    stem, dot, ext = name.rpartition(".")
    if dot and len(ext) <= 10:
        return f"{stem[:140].rstrip(' ._') or default}.{ext}"
    return name[:150]


def safe_unique_names(names: Iterable[str]) -> list[str]:
    """Safe names, made unique (case-insensitively) by a ` (2)`, ` (3)` ... before the extension."""
    seen: set[str] = set()
    out: list[str] = []
    for raw in names:
        name = safe_name(raw)
        candidate = name
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        n = 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})"
        seen.add(candidate.lower())
        out.append(candidate)
    return out
