"""Which failed items are retried: the engine's structured classification, never the message text."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from imageextract.extract.types import SourceResult
from imageextract.services.pipeline import is_transient


def _failed(code: str, message: str, *, transient: bool) -> SourceResult:
    return SourceResult(source="u", status="failed", error_code=code, error_message=message, transient=transient)


def test_retry_follows_the_engine_classification_not_the_message() -> None:
    url: Any = SimpleNamespace(kind="url")
    # A DNS "name not known" failure whose message happens to contain words the old regexes matched.
    dns = _failed("fetch_failed", "DNS lookup for x.test failed: [Errno -2] Name or service not known (ConnectError)",
                  transient=False)
    assert is_transient(url, dns) is False
    assert is_transient(url, _failed("fetch_failed", "HTTP 503 from http://x.test/", transient=True)) is True
    assert is_transient(url, _failed("fetch_failed", "HTTP 503 from http://x.test/", transient=False)) is False
    assert is_transient(url, _failed("timeout", "took too long", transient=True)) is True


def test_documents_are_never_retried() -> None:
    document: Any = SimpleNamespace(kind="document")
    assert is_transient(document, _failed("timeout", "sandbox deadline", transient=True)) is False
