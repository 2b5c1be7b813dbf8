"""Local directory storage (the embedded default): atomic writes, chunked reads, blocking I/O off the loop
(but for a look at a few files: a stat is microseconds, a trip to a thread costs more than the stats)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from imageextract.storage import CHUNK_SIZE, StorageNotFound, check_key

# `missing` looks at this many files on the loop (a page's images, mostly); more go to a thread.
INLINE_STATS = 64


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    async def open(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def local_path(self, key: str) -> Path:
        """The file that holds `key` (it may not exist): readers that need a path, not bytes, open it in place."""
        return self._path(key)

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # readers see the old file or the whole new one, never half
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    async def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def missing(self, keys: Iterable[str]) -> set[str]:
        # Plain string paths: a page's 20 keys, looked at twice per item, cost 0.5 ms as Path objects.
        root = str(self.root)
        paths = {key: f"{root}/{check_key(key)}" for key in keys}
        if len(paths) <= INLINE_STATS:  # the pipeline looks twice per item, mostly at one or a few keys
            return {key for key, path in paths.items() if not os.path.isfile(path)}
        return await asyncio.to_thread(lambda: {key for key, path in paths.items() if not os.path.isfile(path)})

    async def size(self, key: str) -> int | None:
        path = self._path(key)

        def stat() -> int | None:
            try:
                return path.stat().st_size
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(stat)

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            raise StorageNotFound(key) from None

    async def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            fh = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise StorageNotFound(key) from None
        try:
            while chunk := await asyncio.to_thread(fh.read, chunk_size):
                yield chunk
        finally:
            fh.close()

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(key).unlink)

    async def delete_prefix(self, prefix: str) -> int:
        folder = self._path(prefix)

        def remove() -> int:
            count = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
            shutil.rmtree(folder, ignore_errors=True)
            return count

        return await asyncio.to_thread(remove)

    def describe(self, key: str) -> str | None:
        return None  # a server-local path means nothing to an API client
