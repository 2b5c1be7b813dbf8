from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.pages import serve_pages
from tests.receiver import Receiver, run_receiver
from tests.support import (
    Backend,
    ServerProcess,
    drop_pg_database,
    migrate,
    moto_server,
    pg_database_or_skip,
)


@pytest.fixture(scope="session")
def site() -> Iterator[ThreadingHTTPServer]:
    with serve_pages() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with run_receiver() as r:
        yield r


from tests.scaled.conftest import stack  # noqa: E402, F401  (Postgres + Redis + S3 through moto's server)


@dataclass
class S3Server:
    """`imageextract serve` (embedded worker) on S3 storage through moto's server over HTTP."""

    server: ServerProcess
    backend: Backend
    endpoint: str
    bucket: str
    prefix: str = "files"

    def settings(self) -> Any:
        return self.backend.settings(storage_url=f"s3://{self.bucket}/{self.prefix}", s3_endpoint_url=self.endpoint,
                                     s3_access_key_id="test", s3_secret_access_key="test")

    def s3(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="test",
                            aws_secret_access_key="test")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def s3_server(request: pytest.FixtureRequest, moto_endpoint: str) -> Iterator[S3Server]:
    """A server on S3 storage with its own database (SQLite, or Postgres when reachable)."""
    import boto3

    url = None
    if request.param == "postgres":
        url = pg_database_or_skip()
    bucket = f"ie-results-{secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket=bucket)
    data_dir = Path(tempfile.mkdtemp(prefix=f"ie-s3-{request.param}-"))
    env = {"IMAGEEXTRACT_STORAGE_URL": f"s3://{bucket}/files", "IMAGEEXTRACT_S3_ENDPOINT_URL": moto_endpoint,
           "IMAGEEXTRACT_S3_ACCESS_KEY_ID": "test", "IMAGEEXTRACT_S3_SECRET_ACCESS_KEY": "test"}
    backend = Backend(name=f"s3-{request.param}", data_dir=data_dir, database_url=url, env=env)
    migrate(backend)
    proc = ServerProcess(backend)
    try:
        yield S3Server(server=proc, backend=backend, endpoint=moto_endpoint, bucket=bucket)
    finally:
        proc.stop()
        if url:
            drop_pg_database(url)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def s3db(s3_server: S3Server) -> AsyncIterator[S3Server]:
    """Tortoise on the S3 server's database inside the test's event loop."""
    from tortoise import Tortoise
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    from imageextract.db import tortoise_config

    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(s3_server.backend.settings()), _enable_global_fallback=True)
    try:
        yield s3_server
    finally:
        await Tortoise.close_connections()
