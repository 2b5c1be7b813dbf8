"""Exports through the REST door: create, convert in the worker, status, per-file and ZIP downloads, credits."""

from __future__ import annotations

import hashlib
import io
import zipfile
from typing import Any

import httpx

from imageextract.models import Export, ExportFile, LedgerEntry
from imageextract.services import ledger
from tests.exports.helpers import animated_gif, decode, logo_png, photo_jpeg, upload_job, wait_for_export


async def test_export_converts_names_and_downloads(client: httpx.AsyncClient, account: dict[str, Any], db: Any) -> None:
    h = account["headers"]
    job_id, images = await upload_job(client, h, [("photo.jpg", photo_jpeg(), "image/jpeg"),
                                                  ("logo.png", logo_png(), "image/png"),
                                                  ("spinner.gif", animated_gif(), "image/gif")])
    by_name = {i["filename"].rsplit(".", 1)[0]: i for i in images}
    assert set(by_name) == {"photo", "logo", "spinner"}, images
    photo_id = by_name["photo"]["id"]
    body = {"filenames": {photo_id: "Golden Gate / Sunset?.JPG"},
            "settings": {"format": "webp", "preset": "high", "responsive": True, "responsive_sizes": [256, {"width": 100}, 4000]}}
    r = await client.post(f"/api/v1/jobs/{job_id}/exports", headers=h, json=body)
    assert r.status_code == 202, r.text
    export_id = r.json()["export_id"]
    assert list(r.json()) == ["export_id"]
    export = await wait_for_export(client, export_id, h)
    assert export["status"] == "done" and export["failed_images"] == 0 and export["credits_used"] == 3, export
    assert export["settings"] == {"format": "webp", "preset": "high", "responsive": True,
                                  "responsive_sizes": [4000, 256, 100], "strip_metadata": True}
    results = {i["image_id"]: i for i in export["images"]}
    assert results[photo_id]["filename"] == "Golden-Gate-Sunset.webp"
    base = str(client.base_url).rstrip("/")
    for image in export["images"]:
        source = next(i for i in images if i["id"] == image["image_id"])
        names = [v["name"] for v in image["variants"]]
        # never upscaled: 4000 is wider than every source, 256 only where the source is wider than 256
        assert names == ["full"] + [f"{w}w" for w in (256, 100) if w < source["width"]], image
        for v in image["variants"]:
            assert v["url"] == f"{base}/api/v1/exports/{export_id}/files/{v['filename']}"
            got = await client.get(v["url"], headers=h)
            assert got.status_code == 200 and got.headers["content-type"] == "image/webp"
            assert len(got.content) == v["size"] == int(got.headers["content-length"])
            im = decode(got.content)
            assert im.format == "WEBP" and im.size == (v["width"], v["height"])
            want_w = source["width"] if v["name"] == "full" else int(v["name"][:-1])
            assert v["width"] == want_w and abs(v["height"] - source["height"] * want_w / source["width"]) <= 1
            if image["image_id"] == by_name["logo"]["id"]:
                assert im.mode == "RGBA" and im.getchannel("A").getextrema()[0] == 0, "alpha kept"
            else:
                assert im.mode == "RGB"
            if image["image_id"] == by_name["spinner"]["id"]:
                assert getattr(im, "n_frames", 1) == 6 and v["frames"] == 6, "animation kept in WebP"

    # The ZIP holds exactly the same files, byte for byte.
    r = await client.get(f"/api/v1/exports/{export_id}/download", headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    files = [v for i in export["images"] for v in i["variants"]]
    assert sorted(archive.namelist()) == sorted(v["filename"] for v in files)
    for v in files:
        single = await client.get(f"/api/v1/exports/{export_id}/download", params={"filename": v["filename"]}, headers=h)
        assert single.status_code == 200 and archive.read(v["filename"]) == single.content

    # Stored content-addressed, once per distinct output.
    rows = await ExportFile.filter(export_id=export_id)
    assert len(rows) == len(files)
    settings = db.settings()
    for row in rows:
        data = (settings.files_dir / row.storage_key).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        assert row.storage_key == f"exports/{digest[:2]}/{digest[2:4]}/{digest}.webp" and len(data) == row.size

    # Credits: 3 for the job's sources, 3 for the export in one entry; the ledger sums to the balance.
    entries = await LedgerEntry.filter(account_id=account["account_id"], entry_type="export_debit")
    assert [e.amount for e in entries] == [-3]
    balance = await ledger.balance_of(account["account_id"])
    assert balance == 5000 - 3 - 3 == await ledger.ledger_sum(account["account_id"])
    assert (await Export.get(id=export_id)).status == "done"
