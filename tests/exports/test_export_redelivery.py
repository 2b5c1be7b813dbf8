"""At-least-once delivery: a message delivered again changes nothing; an image whose worker died (lease
expired) is taken over, finished once, and neither its files nor its refund are doubled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from imageextract.events import MemoryPubSub
from imageextract.models import Export, ExportFile, ExportImage, LedgerEntry
from imageextract.runtime import Runtime
from imageextract.services import exports, ledger
from imageextract.storage import build_storage
from tests.exports.helpers import SVG, photo_jpeg, upload_job, wait_for_export


class Sent(list[tuple[str, tuple[Any, ...]]]):
    def __call__(self, actor: str, *args: Any, delay: int | None = None) -> None:
        self.append((actor, args))


@pytest.fixture
async def runtime(db: Any) -> AsyncIterator[Runtime]:
    """The real services of a worker process (storage, pub/sub) on the test's database; messages are recorded."""
    rt = Runtime(settings=db.settings())
    rt.storage = build_storage(rt.settings)
    await rt.storage.open()
    rt.events = MemoryPubSub()
    sent = Sent()
    rt.enqueue = sent  # type: ignore[method-assign,assignment]
    yield rt
    await rt.storage.close()


async def test_redelivery_and_takeover_change_nothing_twice(client: httpx.AsyncClient, account: dict[str, Any],
                                                            runtime: Runtime) -> None:
    h = account["headers"]
    job_id, _ = await upload_job(client, h, [("a.jpg", photo_jpeg(), "image/jpeg"), ("v.svg", SVG, "image/svg+xml")])
    export_id = (await client.post(f"/api/v1/jobs/{job_id}/exports", headers=h, json={})).json()["export_id"]
    first = await wait_for_export(client, export_id, h)
    assert first["status"] == "partial"
    rows = await ExportImage.filter(export_id=export_id).order_by("position")
    balance = await ledger.balance_of(account["account_id"])
    files = sorted(await ExportFile.filter(export_id=export_id).values_list("filename", "storage_key"))

    # The same messages again: skipped, nothing written.
    for row in rows:
        assert await exports.process_image(runtime, row.id) == "skipped"
    assert await ledger.balance_of(account["account_id"]) == balance

    # A worker died mid-image: the row is processing with an expired lease. The reconciler re-sends it and the
    # next delivery takes it over; the finished state is the same, files replaced, not added.
    past = datetime.now(UTC) - timedelta(seconds=5)
    for row in rows:
        await ExportImage.filter(id=row.id).update(status="processing", lease_expires_at=past)
    await Export.filter(id=export_id).update(status="processing", completed_images=0, failed_images=0,
                                             credits_refunded=0, finished_at=None)
    # The server's own reconciler races ours for the takeover (as two worker processes would): whoever claims
    # first does the work, the other one is skipped.
    await exports.reconcile(runtime)
    resent = {args[0] for actor, args in runtime.enqueue if actor == exports.ACTOR}  # type: ignore[attr-defined]
    assert resent <= {r.id for r in rows}
    outcomes = [await exports.process_image(runtime, row.id) for row in rows]
    assert outcomes[0] in ("done", "skipped") and outcomes[1] in ("failed", "skipped"), outcomes
    assert (await wait_for_export(client, export_id, h))["status"] == "partial"
    export = await Export.get(id=export_id)
    assert export.status == "partial" and export.completed_images == 2 and export.credits_refunded == 1
    assert sorted(await ExportFile.filter(export_id=export_id).values_list("filename", "storage_key")) == files
    refunds = await LedgerEntry.filter(account_id=account["account_id"], entry_type="export_refund")
    assert [r.amount for r in refunds] == [1], "the failed image is refunded once, however often it fails"
    assert await ledger.balance_of(account["account_id"]) == balance == await ledger.ledger_sum(account["account_id"])
    # A lost finalize is recovered too.
    assert await exports.maybe_finalize(runtime, export_id) is False, "already final: exactly one caller wins"
