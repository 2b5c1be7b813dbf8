from __future__ import annotations

from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.pages import serve_pages


@pytest.fixture(scope="session")
def pages() -> Iterator[ThreadingHTTPServer]:
    with serve_pages() as server:
        yield server
