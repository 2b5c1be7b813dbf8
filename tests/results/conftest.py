"""Helpers for the results API tests: jobs seeded with exact states, and GraphQL through the `gql` client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport

from imageextract.models import Job, JobItem
from tests.pages import serve_pages


@pytest.fixture(scope="session")
def pages() -> Iterator[ThreadingHTTPServer]:
    with serve_pages() as server:
        yield server


async def seed_job(account_id: str, *, project_id: str | None, type: str = "url", status: str = "done",
                   created_at: datetime, updated_at: datetime | None = None,
                   finished_at: datetime | None = None) -> str:
    """A job row in a given state and time (listing and retention need exact timestamps a real run
    cannot give). Its one item mirrors the status."""
    job_id = uuid.uuid4()
    url = f"https://example.com/{job_id}"
    await Job.create(id=job_id, account_id=account_id, project_id=project_id, type=type, status=status,
                     input={"value": url}, total_items=1, completed_items=1 if status in ("done", "failed") else 0)
    await JobItem.create(job_id=job_id, position=0, kind="url", source_label=url, source_url=url, status=status)
    await Job.filter(id=job_id).update(created_at=created_at, updated_at=updated_at or created_at,
                                       finished_at=finished_at)
    return str(job_id)


async def graphql(base_url: str, headers: dict[str, str], query: str,
                  variables: dict[str, Any] | None = None) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """(data, errors) of one operation sent by the gql client."""
    transport = HTTPXAsyncTransport(url=f"{base_url}/graphql", headers=headers, timeout=30)
    async with Client(transport=transport) as session:
        try:
            return await session.execute(GraphQLRequest(query, variable_values=variables or {})), None
        except TransportQueryError as exc:
            return exc.data, exc.errors


def unique_pdf(pages: int = 2) -> bytes:
    """A PDF whose page images no other test makes (random colours): its stored bytes are its own."""
    import io
    import secrets

    import pymupdf
    from PIL import Image as PILImage

    doc = pymupdf.open()
    for p in range(pages):
        page = doc.new_page()
        colour = tuple(secrets.token_bytes(3))
        buf = io.BytesIO()
        PILImage.new("RGB", (30 + p, 20), colour).save(buf, format="PNG")  # type: ignore[arg-type]
        page.insert_image(pymupdf.Rect(10, 10, 110, 110), stream=buf.getvalue())
    data = bytes(doc.tobytes())
    doc.close()
    return data
