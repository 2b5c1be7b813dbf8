"""The GraphQL contract: the committed schema.graphql is exactly what the server serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from imageextract.schema import sdl

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_committed_sdl_matches_the_schema() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == sdl(), (
        "schema.graphql drifted from the code: run `imageextract export-schema` and review the diff")


def test_export_schema_command_prints_the_same_sdl() -> None:
    out = subprocess.run([sys.executable, "-m", "imageextract.cli", "export-schema", "-o", "-"],
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout == sdl()
    for name in ("type Query", "type Mutation", "type Subscription", "jobProgress(jobId: ID!)", "submitJob"):
        assert name in out.stdout
