"""Storage: where upload bytes and extracted images live, behind one small protocol.

Keys are content-addressed (`content_key`): the same bytes get the same key, so one asset is stored once
whatever how many jobs find it. Two backends: a local directory (the embedded default) and S3 (aioboto3).
Nothing connects at import time; `open()` is called by the runtime.

S3 has two more methods the protocol leaves out because a local directory cannot have them: `presign_put`
and `presign_get`, URLs that let a client move bytes to or from the bucket without the API in between.
Callers look for them (`getattr`) and fall back to the API's own signed URLs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

CHUNK_SIZE = 256 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class StorageNotFound(LookupError):
    """The key is not stored (never written, or deleted)."""


class StorageKeyError(ValueError):
    """A key that is not a safe relative path (`..`, absolute, odd characters)."""


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/") or len(key) > 512:
        raise StorageKeyError(f"unsafe storage key: {key[:80]!r}")
    return key


def content_key(data: bytes, *, namespace: str, ext: str | None = None) -> str:
    """`namespace/ab/cd/<sha256>[.ext]`: the same bytes always map to the same key."""
    digest = hashlib.sha256(data).hexdigest()
    suffix = f".{ext.lstrip('.').lower()}" if ext else ""
    return check_key(f"{namespace}/{digest[:2]}/{digest[2:4]}/{digest}{suffix}")


@runtime_checkable
class Storage(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None: ...
    async def exists(self, key: str) -> bool: ...
    async def missing(self, keys: Iterable[str]) -> set[str]:
        """Those of `keys` that are not stored: what a job's images still need written, in one call (a
        local directory looks in one thread hop, S3 asks several at a time)."""
    async def size(self, key: str) -> int | None:
        """Byte size, or None when the key is not stored."""
    async def get(self, key: str) -> bytes:
        """The whole object; raises StorageNotFound."""
    def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The object in chunks (memory stays flat); raises StorageNotFound on first iteration."""
    async def delete(self, key: str) -> None: ...
    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix/` (a key's leading folders); returns how many went."""
    def describe(self, key: str) -> str | None:
        """A URL for the object meaningful to the caller (s3://...), or None when there is none to give."""


def build_storage(settings: Any) -> Storage:
    """The backend the settings ask for: S3 for `s3://bucket[/prefix]`, else a local directory."""
    url = settings.storage_url
    if url and url.startswith("s3://"):
        from imageextract.storage.s3 import S3Storage

        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket:
            raise ValueError("IMAGEEXTRACT_STORAGE_URL s3://... needs a bucket name")
        return S3Storage(bucket=bucket, prefix=prefix.strip("/"), endpoint_url=settings.s3_endpoint_url,
                         region=settings.s3_region, access_key_id=settings.s3_access_key_id,
                         secret_access_key=settings.s3_secret_access_key)

    from imageextract.storage.local import LocalStorage

    if url and url.startswith("file://"):
        return LocalStorage(Path(url[len("file://"):]))
    if url:
        raise ValueError(f"IMAGEEXTRACT_STORAGE_URL must be s3://bucket[/prefix] or file:///path, not {url!r}")
    return LocalStorage(settings.files_dir)


__all__ = ["CHUNK_SIZE", "Storage", "StorageKeyError", "StorageNotFound", "build_storage", "check_key", "content_key"]
