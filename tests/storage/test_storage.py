"""Both storage backends against one contract: the local directory and S3 through moto's server over HTTP."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from imageextract.config import Settings
from imageextract.storage import StorageKeyError, StorageNotFound, build_storage, content_key
from imageextract.storage.local import LocalStorage
from tests.support import moto_server


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def _s3_settings(endpoint: str, bucket: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, storage_url=f"s3://{bucket}/prefix", s3_endpoint_url=endpoint,
                    s3_access_key_id="test", s3_secret_access_key="test")


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "local":
        store = build_storage(Settings(data_dir=tmp_path))
    else:
        import boto3

        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = f"st-{secrets.token_hex(4)}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                     aws_secret_access_key="test").create_bucket(Bucket=bucket)
        store = build_storage(_s3_settings(endpoint, bucket, tmp_path))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_round_trip(storage: Any) -> None:
    data = secrets.token_bytes(700_000)
    key = content_key(data, namespace="images", ext="PNG")
    assert key.endswith(".png") and key.startswith("images/")
    assert not await storage.exists(key) and await storage.size(key) is None
    await storage.put(key, data, content_type="image/png")
    assert await storage.exists(key)
    assert await storage.size(key) == len(data)
    assert await storage.get(key) == data
    chunks = [c async for c in storage.stream(key, chunk_size=65536)]
    assert b"".join(chunks) == data and max(len(c) for c in chunks) <= 65536 and len(chunks) > 5
    await storage.put(key, data)  # writing the same content again is harmless
    assert await storage.get(key) == data
    await storage.delete(key)
    assert not await storage.exists(key)
    await storage.delete(key)  # deleting what is gone is not an error


async def test_missing_keys(storage: Any) -> None:
    with pytest.raises(StorageNotFound):
        await storage.get("images/none.png")
    with pytest.raises(StorageNotFound):
        async for _ in storage.stream("images/none.png"):
            pass


async def test_missing_answers_the_keys_not_stored(storage: Any) -> None:
    stored = [f"images/ab/cd/{i}.png" for i in range(12)]  # more than S3's HEADs at a time
    for key in stored[::2]:
        await storage.put(key, key.encode())
    assert await storage.missing(stored) == set(stored[1::2])
    assert await storage.missing(stored[::2] + stored[::2]) == set()  # repeats are asked once
    assert await storage.missing([]) == set()
    await storage.delete(stored[0])
    assert await storage.missing(stored[:1]) == {stored[0]}
    with pytest.raises(StorageKeyError):
        await storage.missing(["images/ok.png", "../etc/passwd"])


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/key", "a//b", "a/../b", "a/./b", "", "a/b\x00c", "a b/c"])
async def test_unsafe_keys_rejected(storage: Any, key: str) -> None:
    with pytest.raises(StorageKeyError):
        await storage.put(key, b"x")
    with pytest.raises(StorageKeyError):
        await storage.get(key)


async def test_delete_prefix(storage: Any) -> None:
    inside = [f"batch-results/b1/{i}.json" for i in range(3)] + ["batch-results/b1/deeper/x.json"]
    outside = ["batch-results/b10/0.json", "batch-results/b2/0.json", "batch-results/b1.json"]
    for key in inside + outside:
        await storage.put(key, key.encode(), content_type="application/json")
    assert await storage.delete_prefix("batch-results/b1") == len(inside)
    assert not any([await storage.exists(k) for k in inside])
    assert all([await storage.get(k) == k.encode() for k in outside]), "only what is under the prefix/ goes"
    assert await storage.delete_prefix("batch-results/b1") == 0  # nothing left is not an error
    assert await storage.delete_prefix("batch-results/never") == 0
    with pytest.raises(StorageKeyError):
        await storage.delete_prefix("../etc")


def test_content_key_is_content_addressed() -> None:
    a = content_key(b"same", namespace="uploads")
    assert a == content_key(b"same", namespace="uploads")
    assert a != content_key(b"other", namespace="uploads")
    assert a.rsplit("/", 1)[1] == "0967115f2813a3541eaef77de9d9d5773f1c0c04314b0bbfe4ff3b3b1c55b5d5"


async def test_local_layout_and_no_partial_files(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "files")
    await store.open()
    key = content_key(b"abc", namespace="images", ext="jpg")
    await store.put(key, b"abc")
    stored = [p for p in (tmp_path / "files").rglob("*") if p.is_file()]
    assert [p.relative_to(tmp_path / "files").as_posix() for p in stored] == [key]
    assert store.describe(key) is None


async def test_s3_describe_and_prefix(moto_endpoint: str, tmp_path: Path) -> None:
    import boto3

    bucket = f"st-{secrets.token_hex(4)}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    s3.create_bucket(Bucket=bucket)
    store = build_storage(_s3_settings(moto_endpoint, bucket, tmp_path))
    await store.open()
    try:
        await store.put("images/aa/x.png", b"png", content_type="image/png")
        head = s3.head_object(Bucket=bucket, Key="prefix/images/aa/x.png")
        assert head["ContentLength"] == 3 and head["ContentType"] == "image/png"
        assert store.describe("images/aa/x.png") == f"s3://{bucket}/prefix/images/aa/x.png"
    finally:
        await store.close()


@pytest.mark.parametrize("url", ["s3://", "ftp://bucket", "bucket"])
def test_bad_storage_url(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_storage(Settings(data_dir=tmp_path, storage_url=url))
