"""Exports in the scaled-out shape: created on one API process, converted by a separate worker process (Redis
broker), followed live on the other API process (Redis pub/sub), files stored in S3 by content."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from imageextract.db import tortoise_config
from imageextract.models import ExportFile
from tests.exports.helpers import animated_gif, logo_png, photo_jpeg, upload_job, wait_for_export
from tests.factories import make_account
from tests.scaled.conftest import Stack


@pytest.fixture
async def sdb(stack: Stack) -> AsyncIterator[Stack]:
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(stack.backend.settings()), _enable_global_fallback=True)
    try:
        yield stack
    finally:
        await Tortoise.close_connections()


async def test_export_across_processes_with_s3(sdb: Stack) -> None:
    acc = await make_account()
    h = acc["headers"]
    a, b = sdb.apis
    async with httpx.AsyncClient(base_url=a.base_url, timeout=60) as api_a, \
            httpx.AsyncClient(base_url=b.base_url, timeout=60) as api_b:
        job_id, _ = await upload_job(api_a, h, [("photo.jpg", photo_jpeg(), "image/jpeg"),
                                                ("logo.png", logo_png(), "image/png"),
                                                ("spin.gif", animated_gif(), "image/gif")])
        r = await api_a.post(f"/api/v1/jobs/{job_id}/exports", headers=h,
                             json={"settings": {"format": "avif", "responsive_sizes": [128]}})
        assert r.status_code == 202, r.text
        export_id = r.json()["export_id"]
        names = []
        async with api_b.stream("GET", f"/api/v1/exports/{export_id}/stream", headers=h) as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    names.append(line[7:])
                elif line.startswith("data: ") and names[-1] == "complete":
                    complete = json.loads(line[6:])
        assert names[-1] == "complete" and complete["status"] == "done", names
        export = await wait_for_export(api_b, export_id, h)
        assert export["credits_used"] == 3
        r = await api_a.get(f"/api/v1/exports/{export_id}/download", headers=h)
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            for name in zf.namelist():
                im = Image.open(io.BytesIO(zf.read(name)))
                assert im.format == "AVIF", name
            assert len(zf.namelist()) == sum(len(i["variants"]) for i in export["images"]) == 5  # the GIF is narrower than 128
    import boto3

    s3 = boto3.client("s3", endpoint_url=sdb.s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=sdb.bucket, Prefix="files/exports/").get("Contents", [])}
    stored = {f"files/{k}" for k in await ExportFile.filter(export_id=export_id).values_list("storage_key", flat=True)}
    assert stored and stored <= keys
