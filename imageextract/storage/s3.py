"""S3 storage through aioboto3: one client per process, opened by the runtime, streamed reads.

Requests and presigned URLs are signed with Signature Version 4: SigV4 signs the headers it lists
(`X-Amz-SignedHeaders`), so a presigned PUT can bind the body's Content-Length, which SigV2 cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from imageextract.storage import CHUNK_SIZE, StorageNotFound, check_key

_MISSING = {"404", "NoSuchKey", "NotFound"}
HEADS_AT_ONCE = 8  # `missing`: HEAD requests in flight at a time


def _is_missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code")) in _MISSING


class S3Storage:
    def __init__(self, *, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str = "us-east-1",
                 access_key_id: str | None = None, secret_access_key: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._client_args: dict[str, Any] = {"endpoint_url": endpoint_url, "region_name": region}
        if access_key_id:
            self._client_args.update(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None

    async def open(self) -> None:
        import aioboto3
        from aiobotocore.config import AioConfig

        self._stack = contextlib.AsyncExitStack()
        self._client = await self._stack.enter_async_context(aioboto3.Session().client(
            "s3", config=AioConfig(signature_version="s3v4"), **self._client_args))

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = self._client = None

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3Storage is not open")
        return self._client

    async def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        await self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)

    async def size(self, key: str) -> int | None:
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise
        return int(head["ContentLength"])

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    async def missing(self, keys: Iterable[str]) -> set[str]:
        wanted = sorted(set(keys))
        gate = asyncio.Semaphore(HEADS_AT_ONCE)

        async def absent(key: str) -> bool:
            async with gate:
                return not await self.exists(key)

        found = await asyncio.gather(*(absent(key) for key in wanted))
        return {key for key, gone in zip(wanted, found, strict=True) if gone}

    async def _get_object(self, key: str) -> Any:
        try:
            return await self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _is_missing(exc):
                raise StorageNotFound(key) from None
            raise

    async def get(self, key: str) -> bytes:
        obj = await self._get_object(key)
        body = obj["Body"]
        try:
            return await body.read()
        finally:
            body.close()

    async def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        obj = await self._get_object(key)
        body = obj["Body"]  # aiobotocore StreamingBody; closing it releases the connection even mid-stream
        try:
            async for chunk in body.iter_chunks(chunk_size):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    async def delete_prefix(self, prefix: str) -> int:
        """Every object under `prefix/`, listed and deleted a thousand at a time."""
        folder = self._key(prefix) + "/"
        deleted = 0
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                await self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        return deleted

    async def presign_put(self, key: str, *, expires_in: int, content_length: int) -> str:
        """A presigned PUT URL for `key`: the client sends the bytes to S3 directly, never through us.

        Content-Length is one of the signed headers, so S3 refuses (403 SignatureDoesNotMatch) a body of any
        other size: the client must send exactly `content_length` bytes."""
        return str(await self.client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": self._key(key), "ContentLength": content_length},
            ExpiresIn=expires_in))

    async def presign_get(self, key: str, *, expires_in: int, content_type: str, disposition: str,
                          cache_control: str | None = None) -> str:
        """A presigned GET URL for `key`: the client reads the bytes from S3, never through us. S3 answers
        with the given Content-Type and Content-Disposition (response-* overrides, covered by the signature)."""
        params = {"Bucket": self.bucket, "Key": self._key(key), "ResponseContentType": content_type,
                  "ResponseContentDisposition": disposition}
        if cache_control:
            params["ResponseCacheControl"] = cache_control
        return str(await self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in))

    def describe(self, key: str) -> str | None:
        return f"s3://{self.bucket}/{self._key(key)}"
