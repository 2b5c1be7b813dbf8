"""The GraphQL contract: the committed schema.graphql is exactly what the server serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from imageextract.graphql_app import sdl

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


def test_graphiql_is_a_setting(tmp_path: Path) -> None:
    import httpx

    from tests.support import Backend, ServerProcess, migrate

    backend = Backend(name="sqlite", data_dir=tmp_path, database_url=None)
    migrate(backend)
    for enabled, expected in (("true", 200), ("false", 404)):
        proc = ServerProcess(backend, extra_env={"IMAGEEXTRACT_GRAPHIQL": enabled})
        try:
            r = httpx.get(f"{proc.base_url}/graphql", headers={"Accept": "text/html"}, timeout=10)
            assert r.status_code == expected, (enabled, r.status_code)
            assert ("graphiql" in r.text.lower()) is (enabled == "true")
            api = httpx.post(f"{proc.base_url}/graphql", json={"query": "{ __typename }"}, timeout=10)
            assert api.json() == {"data": {"__typename": "Query"}}, "the API itself is served either way"
        finally:
            proc.stop()


async def test_depth_alias_and_token_limits() -> None:
    from imageextract.graphql_app import build_schema

    schema = build_schema()
    nested = "query { jobs { nodes { " + "items { nodes { job { items { nodes { job { " * 3 + "id" + " } } } } } }" * 3 + " } } }"
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"
    tokens = "{ " + " ".join("__typename" for _ in range(2001)) + " }"
    for query, needle in ((nested, "exceeds maximum operation depth"), (aliases, "aliases"),
                          (tokens, "token")):
        for _ in range(2):  # the second run is served by the parser and validation caches
            result = await schema.execute(query)
            assert result.errors and needle in result.errors[0].message.lower(), (needle, result.errors)
    ok = await schema.execute("{ a1: __typename a2: __typename }")
    assert ok.errors is None and ok.data == {"a1": "Query", "a2": "Query"}
