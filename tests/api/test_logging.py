"""Logs: one JSON object per line with a request id; no API key, password, session token or webhook secret."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.support import Backend, ServerProcess


@pytest.fixture
def logged_server(backend: Backend) -> Iterator[ServerProcess]:
    """A server of its own, so its log holds exactly this test's traffic."""
    proc = ServerProcess(backend, extra_env={"IMAGEEXTRACT_LOG_LEVEL": "DEBUG"})
    yield proc
    proc.stop()


async def test_json_lines_with_request_ids_and_no_secrets(logged_server: ServerProcess, db: Any) -> None:
    password = f"Pw-{secrets.token_urlsafe(12)}"
    email = f"log-{secrets.token_hex(4)}@example.com"
    async with httpx.AsyncClient(base_url=logged_server.base_url, timeout=30) as client:
        r = await client.post("/api/auth/signup", json={"email": email, "password": password, "name": "Logger"})
        assert r.status_code == 201, r.text
        session = r.cookies["ie_session"]
        r = await client.post("/api/auth/login", json={"email": email, "password": password},
                              headers={"X-Request-Id": "trace-abc.123"})
        assert r.headers["X-Request-Id"] == "trace-abc.123", "a caller's sane request id is kept"
        login_session = r.cookies["ie_session"]
        bad = await client.post("/api/auth/login", json={"email": email, "password": password + "x"},
                                headers={"X-Request-Id": "no spaces; allowed"})
        assert bad.status_code == 401 and bad.headers["X-Request-Id"].startswith("req-")
        r = await client.post("/api/dashboard/keys", json={"label": "k"},
                              headers={"Origin": logged_server.base_url})
        assert r.status_code == 200, r.text  # the spec documents 200 for this create
        key = r.json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        projects = (await client.get("/api/v1/projects", headers=auth)).json()["projects"]
        pid = projects[0]["id"]
        r = await client.post(f"/api/v1/projects/{pid}/webhooks", headers=auth,
                              json={"url": "http://127.0.0.1:9/hook"})
        assert r.status_code == 201, r.text
        webhook_secret = r.json()["secret"]
        assert (await client.get("/api/v1/account", headers={"Authorization": f"Bearer {key}x"})).status_code == 401
        assert (await client.get("/api/v1/nope", headers=auth)).status_code == 404
        ws_url = logged_server.base_url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
    logged_server.stop()
    text = logged_server.log_path.read_text()
    for secret in (password, session, login_session, key, key[12:], webhook_secret, webhook_secret.removeprefix("whsec_")):
        assert secret not in text, f"a secret leaked into the log: {secret[:10]}..."
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(line["request_id"], str) and line["request_id"] for line in lines)
    access = [line for line in lines if line["logger"] == "imageextract.access"]
    by_path = {(a["method"], a["path"]): a for a in access}
    assert any(a["request_id"] == "trace-abc.123" and a["path"] == "/api/auth/login" for a in access)
    assert by_path[("GET", "/api/v1/nope")]["status"] == 404
    assert by_path[("WEBSOCKET", "/graphql")]["status"] == 101
    assert len({a["request_id"] for a in access}) == len(access), "one id per request"
