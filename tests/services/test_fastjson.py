"""Both doors' JSON encoder: orjson, with the standard library as fallback, writing the same bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from imageextract.fastjson import dumps
from imageextract.rest_compat.common import iso
from imageextract.services.job_views import ItemView

WHEN = [datetime(2026, 12, 2, 11, 56, 49, 24043, tzinfo=UTC), datetime(2026, 12, 2, 11, 56, 49, tzinfo=UTC),
        datetime(2026, 12, 2, 11, 56, 49, 5), datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))]


def test_datetimes_as_iso_writes_them() -> None:
    for when in WHEN:
        assert json.loads(dumps({"t": when})) == {"t": iso(when)}


def test_items_encode_as_their_fields_on_both_paths() -> None:
    items = [ItemView(id="i1", position=0, kind="url", source_label="https://example.com/é", status="done",
                      image_count=3, failed_image_count=1, duration_ms=12, error_code=None, error_message=None,
                      attempts=1, updated_at=when, warnings=("document_repaired",)) for when in WHEN]
    expected = [{"id": "i1", "position": 0, "kind": "url", "source_label": "https://example.com/é", "status": "done",
                 "image_count": 3, "failed_image_count": 1, "duration_ms": 12, "error_code": None,
                 "error_message": None, "attempts": 1, "updated_at": iso(when), "warnings": ["document_repaired"]}
                for when in WHEN]
    fast = dumps({"items": items})
    slow = dumps({"items": items, "big": 2 ** 70})  # beyond 64 bits: orjson refuses, the fallback encodes
    assert json.loads(fast) == {"items": expected}
    assert json.loads(slow) == {"items": expected, "big": 2 ** 70}
    assert slow.startswith(fast[:-1])  # the same bytes, key for key
