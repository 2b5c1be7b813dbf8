"""Sources for export tests: real photos shipped with scikit-image, graphics drawn here, and jobs made of them."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import httpx
import skimage
from PIL import Image, ImageDraw

from tests.jobs.helpers import wait_for_job

SKIMAGE_DATA = Path(skimage.__file__).parent / "data"
TERMINAL = ("done", "failed", "partial")


def photo_jpeg(name: str = "astronaut.png", quality: int = 92) -> bytes:
    """A real photo (scikit-image's sample data) saved as a camera-like JPEG."""
    im = Image.open(SKIMAGE_DATA / name).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def logo_png(size: tuple[int, int] = (300, 200)) -> bytes:
    """A graphic with real transparency: an opaque-ish shape on a transparent canvas."""
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(im)
    draw.ellipse((20, 20, size[0] - 20, size[1] - 20), fill=(30, 90, 200, 255))
    draw.rectangle((size[0] // 3, size[1] // 3, size[0] // 2, size[1] // 2), fill=(250, 200, 0, 128))
    draw.text((30, size[1] // 2), "ImageExtract", fill=(255, 255, 255, 255))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def animated_gif(frames: int = 6, size: tuple[int, int] = (120, 90)) -> bytes:
    images = []
    for i in range(frames):
        im = Image.new("RGB", size, (255, 255, 255))
        ImageDraw.Draw(im).rectangle((i * 15, 10, i * 15 + 20, 70), fill=(220, 30, 30))
        images.append(im)
    buf = io.BytesIO()
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=90, loop=0)
    return buf.getvalue()


async def upload_job(client: httpx.AsyncClient, headers: dict[str, str], files: list[tuple[str, bytes, str]]
                     ) -> tuple[str, list[dict[str, Any]]]:
    """A finished document job made of `files`; its job id and its images (from /result)."""
    r = await client.post("/api/v1/jobs", headers=headers,
                          files=[("files", (name, data, ctype)) for name, data, ctype in files])
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    job = await wait_for_job(client, job_id, headers)
    assert job["status"] == "done", job
    result = (await client.get(f"/api/v1/jobs/{job_id}/result", headers=headers)).json()
    return job_id, result["images"]


async def wait_for_export(client: httpx.AsyncClient, export_id: str, headers: dict[str, str],
                          timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(f"/api/v1/exports/{export_id}", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in TERMINAL:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"export {export_id} not finished in {timeout}s: {body}")
        await asyncio.sleep(0.1)


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def bomb_png() -> bytes:
    """120 megapixels (1-bit) in about 15 KB: over the export's pixel limit."""
    buf = io.BytesIO()
    Image.new("1", (12000, 10000)).save(buf, "PNG")
    return buf.getvalue()


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
