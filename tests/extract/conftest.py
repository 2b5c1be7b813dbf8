"""Shared fixtures for the extraction engine tests."""

from __future__ import annotations

from tests.extract.webfixtures import web_options, web_server, web_server_factory  # noqa: F401
