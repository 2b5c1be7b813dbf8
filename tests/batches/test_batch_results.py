"""Item results and staged uploads on both storage backends, through real HTTP.

Result: `GET /api/v1/batches/:id/items/:itemId/result` answers 302; a plain client (no API key) follows it to
the stored result document: on S3 (moto's server over HTTP) a presigned GET of the bucket, on local storage
the API's signed URL. The same document either way, reused once written, gone with the batch.

Uploads: the presigned PUT signs the declared Content-Length. moto does not verify presigned signatures, so
`tests/batches/sigv4.py` checks what S3 would (and the worker's arrival check is tested to hold the line).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from botocore.exceptions import ClientError

from imageextract.errors import NotFound
from imageextract.models import Batch, JobItem
from imageextract.runtime import Runtime
from imageextract.services import batch_results, batch_runs
from imageextract.storage import build_storage
from tests.batches.conftest import S3Server
from tests.batches.helpers import all_items, slow_urls, stage, stage_and_upload, wait_for_batch
from tests.batches.sigv4 import s3_accepts
from tests.extract.docfixtures import png, simple_pdf
from tests.factories import make_account
from tests.support import Backend

DOCUMENT_KEYS = {"batch_id", "item_id", "source", "status", "image_count", "failed_image_count", "images",
                 "failed_images"}


async def _runtime(settings: Any) -> Runtime:
    rt = Runtime(settings=settings)
    rt.storage = build_storage(settings)
    await rt.storage.open()
    return rt


@pytest.fixture
async def runtime(db: Backend) -> AsyncIterator[Runtime]:
    """This process's view of the local server's storage (the same directory)."""
    rt = await _runtime(db.settings())
    try:
        yield rt
    finally:
        await rt.storage.close()


@pytest.fixture
async def s3_runtime(s3db: S3Server) -> AsyncIterator[Runtime]:
    """This process's view of the S3 server's storage (the same bucket and prefix)."""
    rt = await _runtime(s3db.settings())
    try:
        yield rt
    finally:
        await rt.storage.close()


async def _finished_batch(api: httpx.AsyncClient, h: dict[str, str], n: int = 2) -> tuple[str, list[dict[str, Any]]]:
    """A completed batch of `n` distinct PNGs: its id and its items in upload order."""
    ids = [await stage_and_upload(api, h, png(tuple(secrets.token_bytes(3)), (40, 30)), f"p{i}.png") for i in range(n)]
    r = await api.post("/api/v1/batches", headers=h, json={"source": {"type": "files", "file_ids": ids}})
    assert r.status_code == 201, r.text
    batch_id = r.json()["id"]
    final = await wait_for_batch(api, batch_id, h)
    assert final["status"] == "completed", final
    items = sorted((await all_items(api, batch_id, h)).values(), key=lambda i: i["position"])
    return batch_id, items


async def _check_document(api: httpx.AsyncClient, h: dict[str, str], got: httpx.Response, batch_id: str,
                          item: dict[str, Any]) -> None:
    """The one document shape on both backends: the item, and its images exactly as the job result lists them."""
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/json"
    assert got.headers["content-disposition"] == f'attachment; filename="{item["id"]}.json"'
    assert got.headers["cache-control"] == "private, no-store"
    doc = got.json()
    assert set(doc) == DOCUMENT_KEYS
    assert (doc["batch_id"], doc["item_id"], doc["source"], doc["status"]) == (
        batch_id, item["id"], item["source"], "succeeded")
    job_result = (await api.get(f"/api/v1/jobs/{batch_id}/result", headers=h)).json()
    mine = [img for img in job_result["images"] if img["group_id"] == item["id"]]
    assert mine and doc["images"] == mine
    assert doc["image_count"] == item["image_count"] == len(mine)
    assert doc["failed_images"] == [f for f in job_result["failed_images"] if f["group_id"] == item["id"]]


async def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body


# Local storage ----------------------------------------------------------------------------------------


async def test_local_result_is_a_stored_document_behind_a_signed_url(
        client: httpx.AsyncClient, db: Backend, runtime: Runtime) -> None:
    acc = await make_account()
    h = acc["headers"]
    batch_id, items = await _finished_batch(client, h)
    item = items[0]
    r = await client.get(item["result_url"], headers=h)
    assert r.status_code == 302, r.text
    signed = r.headers["location"]
    assert signed.startswith(f"{client.base_url}/api/v1/batch-results?") and "signature=" in signed
    assert r.headers["cache-control"] == "no-store"
    async with httpx.AsyncClient(timeout=30) as raw:  # no API key: the URL is the credential
        got = await raw.get(signed)
    await _check_document(client, h, got, batch_id, item)
    key = batch_results.result_key(batch_id, item["id"])
    assert (db.data_dir / "files" / key).read_bytes() == got.content, "served from the stored document"
    assert not await runtime.storage.exists(batch_results.result_key(batch_id, items[1]["id"])), \
        "written when first asked for, not before"
    followed = await client.get(item["result_url"], headers=h, follow_redirects=True)  # the spec's client
    assert followed.content == got.content and followed.history[0].status_code == 302

    # Reused once written: the stored bytes are what the next signed URL serves.
    await runtime.storage.put(key, b'{"reused":true}', content_type="application/json")
    async with httpx.AsyncClient(timeout=30) as raw:
        again = await raw.get((await client.get(item["result_url"], headers=h)).headers["location"])
        assert again.json() == {"reused": True}
        await runtime.storage.put(key, got.content, content_type="application/json")

        # The batch expires: the document goes with it; the URL already handed out stops working.
        assert await batch_runs.expire_batch(runtime, batch_id) is True
        assert not await runtime.storage.exists(key)
        await _error(await raw.get(signed), 404, "not_found")
    await _error(await client.get(item["result_url"], headers=h), 404, "result_expired")


async def test_a_document_written_as_the_batch_expires_is_removed(client: httpx.AsyncClient, db: Backend,
                                                                  runtime: Runtime) -> None:
    """The writer's check after the write: the sweep marked the batch (and listed its documents) between the
    request's checks and the write; the late document must not outlive the batch."""
    acc = await make_account()
    batch_id, items = await _finished_batch(client, acc["headers"], n=1)
    row = (await JobItem.filter(id=items[0]["id"]).values("id", "job_id", "status", "source_label", "image_count",
                                                        "failed_image_count"))[0]
    await Batch.filter(id=batch_id).update(expired_at=datetime.now(UTC))
    ctx = runtime.context()
    with pytest.raises(NotFound) as raised:
        await batch_results._ensure_document(ctx, row)
    assert raised.value.code == "result_expired"
    assert not await runtime.storage.exists(batch_results.result_key(batch_id, row["id"]))


async def test_deleting_a_batch_removes_its_result_documents(client: httpx.AsyncClient, db: Backend,
                                                             runtime: Runtime) -> None:
    acc = await make_account()
    h = acc["headers"]
    batch_id, items = await _finished_batch(client, h)
    for item in items:
        assert (await client.get(item["result_url"], headers=h)).status_code == 302
    keys = [batch_results.result_key(batch_id, i["id"]) for i in items]
    assert all([await runtime.storage.exists(k) for k in keys])
    r = await client.delete(f"/api/v1/jobs/{batch_id}", headers=h)
    assert r.status_code in (200, 204), r.text
    assert not any([await runtime.storage.exists(k) for k in keys])
    assert not (db.data_dir / "files" / batch_results.results_prefix(batch_id)).exists()


# S3 storage (moto's server over HTTP) -----------------------------------------------------------------


async def test_s3_result_is_a_302_to_a_presigned_get(s3db: S3Server, s3_runtime: Runtime) -> None:
    acc = await make_account()
    h = acc["headers"]
    s3 = s3db.s3()
    async with httpx.AsyncClient(base_url=s3db.server.base_url, timeout=30) as api:
        batch_id, items = await _finished_batch(api, h)
        item = items[1]
        r = await api.get(item["result_url"], headers=h)
        assert r.status_code == 302, r.text
        location = r.headers["location"]
        object_key = f"{s3db.prefix}/{batch_results.result_key(batch_id, item['id'])}"
        assert location.startswith(f"{s3db.endpoint}/{s3db.bucket}/{object_key}?"), "bytes never transit the API"
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert query["X-Amz-Expires"] == str(s3db.settings().result_url_ttl_seconds)
        assert query["response-content-type"] == "application/json"
        assert query["response-content-disposition"] == f'attachment; filename="{item["id"]}.json"'
        assert s3_accepts(location, method="GET", headers={}, secret="test")
        assert not s3_accepts(location.replace("application%2Fjson", "text%2Fhtml"), method="GET", headers={},
                              secret="test"), "the overrides are covered by the signature"

        async with httpx.AsyncClient(timeout=30) as raw:  # a plain client: no API key, straight to S3
            got = await raw.get(location)
        await _check_document(api, h, got, batch_id, item)
        stored = s3.get_object(Bucket=s3db.bucket, Key=object_key)
        assert stored["Body"].read() == got.content and stored["ContentType"] == "application/json"
        listed = s3.list_objects_v2(Bucket=s3db.bucket, Prefix=f"{s3db.prefix}/batch-results/{batch_id}/")
        assert [o["Key"] for o in listed["Contents"]] == [object_key], "written when first asked for, not before"
        followed = await api.get(item["result_url"], headers=h, follow_redirects=True)  # the spec's client
        assert followed.content == got.content
        assert followed.history[0].status_code == 302 and str(followed.url).startswith(s3db.endpoint)

        # Reused once written: the next presigned GET reads the stored object.
        s3.put_object(Bucket=s3db.bucket, Key=object_key, Body=b'{"reused":true}', ContentType="application/json")
        async with httpx.AsyncClient(timeout=30) as raw:
            again = await raw.get((await api.get(item["result_url"], headers=h)).headers["location"])
        assert again.json() == {"reused": True}

        # The batch expires: its documents go from the bucket; the presigned URL handed out finds nothing.
        assert await batch_runs.expire_batch(s3_runtime, batch_id) is True
        with pytest.raises(ClientError):
            s3.head_object(Bucket=s3db.bucket, Key=object_key)
        async with httpx.AsyncClient(timeout=30) as raw:
            # S3 answers 404 for a missing key (403 without list permission); moto answers 403 here.
            assert (await raw.get(location)).status_code in (403, 404)
        await _error(await api.get(item["result_url"], headers=h), 404, "result_expired")


async def test_s3_result_bad_inputs(s3db: S3Server, site: ThreadingHTTPServer) -> None:
    acc, other = await make_account(), await make_account()
    h = acc["headers"]
    s3 = s3db.s3()
    async with httpx.AsyncClient(base_url=s3db.server.base_url, timeout=30) as api:
        batch_id, items = await _finished_batch(api, h, n=1)
        mine_too, _ = await _finished_batch(api, h, n=1)
        item = items[0]
        base = f"/api/v1/batches/{batch_id}/items"
        await _error(await api.get(f"{base}/00000000-0000-0000-0000-000000000000/result", headers=h), 404, "not_found")
        await _error(await api.get(f"{base}/not-an-id/result", headers=h), 404, "not_found")
        other_item = next(iter((await all_items(api, mine_too, h)).values()))
        await _error(await api.get(f"{base}/{other_item['id']}/result", headers=h), 404, "not_found")
        await _error(await api.get(item["result_url"], headers=other["headers"]), 404, "not_found")
        await _error(await api.get(item["result_url"]), 401, "unauthorized")

        # Junk bytes (refused by the worker) and a page that answers slowly (still running when asked).
        junk = await stage_and_upload(api, h, b"MZ" + b"\x00" * 300, "junk.pdf")
        r = await api.post("/api/v1/batches", headers=h, json={"source": {"type": "files", "file_ids": [junk]}})
        failed_batch = r.json()["id"]
        await wait_for_batch(api, failed_batch, h)
        failed = next(iter((await all_items(api, failed_batch, h)).values()))
        await _error(await api.get(f"/api/v1/batches/{failed_batch}/items/{failed['id']}/result", headers=h),
                     422, "item_failed")
        r = await api.post("/api/v1/batches", headers=h, json={"source": {"type": "urls",
                                                                         "urls": slow_urls(site, 1, 4.0)}})
        slow_batch = r.json()["id"]
        slow_item = (await JobItem.filter(job_id=slow_batch).values_list("id", flat=True))[0]
        r = await api.get(f"/api/v1/batches/{slow_batch}/items/{slow_item}/result", headers=h)
        await _error(r, 202, "not_ready")
        assert r.json()["error"]["details"]["status"] in ("pending", "running")
        # Nothing was written for the items that have no result.
        for b in (failed_batch, slow_batch):
            listed = s3.list_objects_v2(Bucket=s3db.bucket, Prefix=f"{s3db.prefix}/batch-results/{b}/")
            assert listed.get("KeyCount", 0) == 0
        await wait_for_batch(api, slow_batch, h)


async def test_s3_deleting_a_batch_removes_its_result_documents(s3db: S3Server) -> None:
    acc = await make_account()
    h = acc["headers"]
    s3 = s3db.s3()
    async with httpx.AsyncClient(base_url=s3db.server.base_url, timeout=30) as api:
        batch_id, items = await _finished_batch(api, h)
        for item in items:
            assert (await api.get(item["result_url"], headers=h)).status_code == 302
        prefix = f"{s3db.prefix}/batch-results/{batch_id}/"
        assert s3.list_objects_v2(Bucket=s3db.bucket, Prefix=prefix)["KeyCount"] == 2
        r = await api.delete(f"/api/v1/jobs/{batch_id}", headers=h)
        assert r.status_code in (200, 204), r.text
        assert s3.list_objects_v2(Bucket=s3db.bucket, Prefix=prefix).get("KeyCount", 0) == 0


# Presigned uploads ------------------------------------------------------------------------------------


async def test_s3_presigned_put_signs_the_declared_size(s3db: S3Server) -> None:
    acc = await make_account()
    h = acc["headers"]
    s3 = s3db.s3()
    data = simple_pdf(1)
    async with httpx.AsyncClient(base_url=s3db.server.base_url, timeout=30) as api:
        staged = await stage(api, h, data, "exact.pdf")
        up = staged["upload"]
        assert up["method"] == "PUT" and up["headers"]["Content-Length"] == str(len(data))
        query = {k: v[0] for k, v in parse_qs(urlsplit(up["url"]).query).items()}
        assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert "content-length" in query["X-Amz-SignedHeaders"].split(";")
        # What S3 checks: the declared size passes; any other size, or none, fails the signature.
        assert s3_accepts(up["url"], method="PUT", headers=up["headers"], secret="test")
        for size in (len(data) + 1, len(data) - 1, 150 * 1024 * 1024):
            assert not s3_accepts(up["url"], method="PUT", headers=up["headers"] | {"Content-Length": str(size)},
                                  secret="test"), size
        assert not s3_accepts(up["url"], method="PUT", headers={"Content-Type": "application/octet-stream"},
                              secret="test")
        async with httpx.AsyncClient(timeout=30) as raw:  # a plain client sending the headers it was given
            r = await raw.request(up["method"], up["url"], content=data, headers=up["headers"])
            assert r.status_code == 200, r.text
            # ... and one that ignores them, as the spec's example does (Content-Type only): the right size
            # is all the signature asks for.
            spec_style = await stage(api, h, data, "spec.pdf")
            r = await raw.put(spec_style["upload"]["url"], content=data,
                              headers={"Content-Type": "application/octet-stream"})
            assert r.status_code == 200, r.text
        key = f"{s3db.prefix}/staged/{staged['id']}"
        assert s3.head_object(Bucket=s3db.bucket, Key=key)["ContentLength"] == len(data)

        # moto stores a wrong-size body that S3 would refuse (it does not verify presigned signatures), so the
        # worker's arrival check is what refuses it here: too large, or incomplete.
        big, short = await stage(api, h, data, "big.pdf"), await stage(api, h, data, "short.pdf")
        async with httpx.AsyncClient(timeout=30) as raw:
            assert (await raw.put(big["upload"]["url"], content=data + b"x" * 4096)).status_code == 200
            assert (await raw.put(short["upload"]["url"], content=data[: len(data) // 2])).status_code == 200
        r = await api.post("/api/v1/batches", headers=h,
                           json={"source": {"type": "files", "file_ids": [staged["id"], big["id"], short["id"]]}})
        assert r.status_code == 201, r.text
        batch_id = r.json()["id"]
        final = await wait_for_batch(api, batch_id, h)
        assert final["status"] == "partially_failed", final
        by_source = {i["source"]: i for i in (await all_items(api, batch_id, h)).values()}
        assert by_source["exact.pdf"]["status"] == "succeeded"
        assert by_source["big.pdf"]["error"]["code"] == "document_too_large"
        assert by_source["short.pdf"]["error"]["code"] == "upload_missing"


async def test_local_upload_headers_carry_the_declared_size(client: httpx.AsyncClient, account: dict[str, Any]) -> None:
    h = account["headers"]
    data = png((9, 9, 9))
    staged = await stage(client, h, data, "x.png")
    up = staged["upload"]
    assert up["headers"] == {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}
    async with httpx.AsyncClient(timeout=30) as raw:  # the same headers work on the API's own signed URL
        r = await raw.request(up["method"], up["url"], content=data, headers=up["headers"])
        assert r.status_code == 200, r.text
