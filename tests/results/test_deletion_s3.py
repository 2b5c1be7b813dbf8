"""Deletion against S3 (moto's server over HTTP): the bucket listed before and after."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.factories import make_account
from tests.jobs.helpers import wait_for_job
from tests.results.conftest import unique_pdf
from tests.results.test_deletion import job_keys, upload
from tests.support import Backend, ServerProcess, free_port, migrate


@pytest.fixture(scope="module")
def s3_server() -> Iterator[tuple[ServerProcess, Any, str]]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    bucket = f"ie-results-{secrets.token_hex(4)}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    s3.create_bucket(Bucket=bucket)
    data_dir = Path(tempfile.mkdtemp(prefix="ie-results-s3-"))
    backend = Backend(name="s3", data_dir=data_dir, database_url=None, env={
        "IMAGEEXTRACT_STORAGE_URL": f"s3://{bucket}/files", "IMAGEEXTRACT_S3_ENDPOINT_URL": endpoint,
        "IMAGEEXTRACT_S3_ACCESS_KEY_ID": "test", "IMAGEEXTRACT_S3_SECRET_ACCESS_KEY": "test",
    })
    migrate(backend)
    server = ServerProcess(backend)
    try:
        yield server, s3, bucket
    finally:
        server.stop()
        moto.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def s3_db(s3_server: tuple[ServerProcess, Any, str]) -> AsyncIterator[None]:
    from tortoise import Tortoise
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    from imageextract.db import tortoise_config

    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(s3_server[0].backend.settings()), _enable_global_fallback=True)
    try:
        yield
    finally:
        await Tortoise.close_connections()


def bucket_keys(s3: Any, bucket: str) -> set[str]:
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="files/"):
        keys |= {o["Key"].removeprefix("files/") for o in page.get("Contents", [])}
    return keys


async def test_delete_on_s3_keeps_shared_objects_until_the_last_job(
        s3_server: tuple[ServerProcess, Any, str], s3_db: None) -> None:
    server, s3, bucket = s3_server
    account = await make_account(plan="pro")
    h = account["headers"]
    pdf = unique_pdf(2)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        first, second = await upload(client, h, pdf), await upload(client, h, pdf)
        other = await upload(client, h, unique_pdf(1))
        for job_id in (first, second, other):
            assert (await wait_for_job(client, job_id, h))["status"] == "done"
        keys, other_keys = await job_keys(first), await job_keys(other)
        before = bucket_keys(s3, bucket)
        assert len(keys) == 3 and keys | other_keys <= before
        assert (await client.delete(f"/api/v1/jobs/{first}", headers=h)).status_code == 200
        assert bucket_keys(s3, bucket) == before
        assert (await client.delete(f"/api/v1/jobs/{second}", headers=h)).status_code == 200
        assert bucket_keys(s3, bucket) == before - keys
        assert (await client.delete(f"/api/v1/jobs/{second}", headers=h)).status_code == 404
        result = (await client.get(f"/api/v1/jobs/{other}/result", headers=h)).json()
        assert [(await client.get(i["url"], headers=h)).status_code for i in result["images"]] == [200]
        # Exports name the S3 object as /result does.
        exported = (await client.get(f"/api/v1/jobs/{other}/export/json", headers=h)).json()
        assert exported == result and result["images"][0]["storage_url"].startswith(f"s3://{bucket}/files/images/")
