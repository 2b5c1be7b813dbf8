"""ImageExtract: every image from web pages and documents, with its metadata."""

from __future__ import annotations

__version__ = "0.1.0"
