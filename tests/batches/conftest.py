from __future__ import annotations

from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.pages import serve_pages
from tests.receiver import Receiver, run_receiver


@pytest.fixture(scope="session")
def site() -> Iterator[ThreadingHTTPServer]:
    with serve_pages() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with run_receiver() as r:
        yield r


from tests.scaled.conftest import stack  # noqa: E402, F401  (Postgres + Redis + S3 through moto's server)
