"""Defects found where the two doors disagreed (issue 8), each shown through the running service."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from standardwebhooks import Webhook, WebhookVerificationError

from tests.factories import make_account
from tests.jobs.helpers import wait_for_job
from tests.pages import base_url, serve_pages
from tests.receiver import Receiver, run_receiver
from tests.support import Backend, ServerProcess, create_pg_database, drop_pg_database, migrate


@pytest.fixture(scope="module")
def pages() -> Iterator[ThreadingHTTPServer]:
    with serve_pages() as server:
        yield server


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with run_receiver() as r:
        yield r


SUBMIT = 'mutation($u: String!) { submitJob(input: {type: "url", url: $u}) { jobId } }'


async def test_a_guest_job_from_graphql_belongs_to_that_guest(client: httpx.AsyncClient, db: Any,
                                                              pages: ThreadingHTTPServer) -> None:
    async with httpx.AsyncClient(base_url=client.base_url, timeout=30) as guest:
        r = await guest.post("/graphql", json={"query": SUBMIT, "variables": {"u": f"{base_url(pages)}/page/1"}})
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        job_id = r.json()["data"]["submitJob"]["jobId"]
        cookie = r.cookies.get("ie_guest")
        assert cookie, "GraphQL mints the guest identity as REST does"
        assert "HttpOnly" in r.headers["set-cookie"] and "samesite=lax" in r.headers["set-cookie"].lower()
        job = await wait_for_job(guest, job_id, {})
        assert job["status"] == "done"
        g = await guest.post("/graphql", json={"query": "query($j: ID!) { job(id: $j) { status imageCount } }",
                                               "variables": {"j": job_id}})
        assert g.json()["data"]["job"] == {"status": "done", "imageCount": 1}
        # A second submission from the same guest keeps the same identity (no new cookie).
        again = await guest.post("/graphql", json={"query": SUBMIT, "variables": {"u": f"{base_url(pages)}/page/2"}})
        assert "ie_guest" not in again.headers.get("set-cookie", "")
    async with httpx.AsyncClient(base_url=client.base_url, timeout=30) as stranger:
        r = await stranger.get(f"/api/v1/jobs/{job_id}", cookies=None)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


async def test_images_that_could_not_be_fetched_are_counted_apart(client: httpx.AsyncClient, db: Any,
                                                                  pages: ThreadingHTTPServer) -> None:
    acc = await make_account()
    r = await client.post("/api/v1/jobs", headers=acc["headers"],
                          json={"type": "url", "input": f"{base_url(pages)}/broken/2"})
    job_id = r.json()["job_id"]
    job = await wait_for_job(client, job_id, acc["headers"])
    assert (job["status"], job["image_count"], job["failed_image_count"]) == ("done", 2, 1)
    assert job["groups"][0]["image_count"] == 2 and job["groups"][0]["failed_image_count"] == 1
    result = (await client.get(f"/api/v1/jobs/{job_id}/result", headers=acc["headers"])).json()
    assert result["image_count"] == len(result["images"]) == 2
    assert [f["source_url"] for f in result["failed_images"]] == [f"{base_url(pages)}/status/404"]
    manifest = (await client.get(f"/api/v1/jobs/{job_id}/downloads", headers=acc["headers"])).json()
    assert len(manifest["images"]) == 2
    for image in manifest["images"]:  # every listed download works
        assert (await client.get(image["download_url"], headers=acc["headers"])).status_code == 200
    usage = (await client.get("/api/v1/account/usage", headers=acc["headers"])).json()
    assert usage["images_extracted"] == 2
    g = await client.post("/graphql", headers=acc["headers"], json={
        "query": "query($j: ID!) { job(id: $j) { imageCount failedImageCount images { nodes { id } } "
                 "failedImages { nodes { sourceUrl error } } } }", "variables": {"j": job_id}})
    data = g.json()["data"]["job"]
    assert (data["imageCount"], data["failedImageCount"], len(data["images"]["nodes"])) == (2, 1, 2)
    assert data["failedImages"]["nodes"][0]["sourceUrl"] == f"{base_url(pages)}/status/404"


async def test_default_webhook_deliveries_verify_with_the_secret_shown_once(
        client: httpx.AsyncClient, db: Any, pages: ThreadingHTTPServer, receiver: Receiver) -> None:
    acc = await make_account()
    path = f"/default-{acc['account_id']}"
    r = await client.post("/api/v1/projects", headers=acc["headers"],
                          json={"name": "Hooked", "default_webhook_url": receiver.url + path})
    assert r.status_code == 201
    project, secret = r.json(), r.json()["default_webhook_secret"]
    assert secret.startswith("whsec_")
    read = (await client.get(f"/api/v1/projects/{project['id']}", headers=acc["headers"])).json()
    assert "default_webhook_secret" not in read and secret not in json.dumps(read)

    async def delivered(n: int) -> list[Any]:
        for _ in range(200):
            got = receiver.for_path(path)
            if len(got) >= n:
                return got
            await asyncio.sleep(0.05)
        raise AssertionError("no delivery")

    async def run_job() -> None:
        j = await client.post("/api/v1/jobs", headers=acc["headers"],
                              json={"type": "url", "input": f"{base_url(pages)}/page/1", "project_id": project["id"]})
        await wait_for_job(client, j.json()["job_id"], acc["headers"])

    await run_job()
    first = (await delivered(1))[0]
    Webhook(secret).verify(first.body, first.headers)  # the standard-webhooks reference verifier
    rotated = await client.post(f"/api/v1/projects/{project['id']}/webhook-secret/rotate", headers=acc["headers"])
    new_secret = rotated.json()["default_webhook_secret"]
    assert rotated.status_code == 200 and new_secret != secret
    await run_job()
    second = (await delivered(2))[1]
    Webhook(new_secret).verify(second.body, second.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(second.body, second.headers)
    g = await client.post("/graphql", headers=acc["headers"], json={
        "query": "mutation($p: ID!) { rotateProjectWebhookSecret(id: $p) { defaultWebhookSecret } }",
        "variables": {"p": project["id"]}})
    assert g.json()["data"]["rotateProjectWebhookSecret"]["defaultWebhookSecret"].startswith("whsec_")
    q = await client.post("/graphql", headers=acc["headers"], json={
        "query": "query($p: ID!) { project(id: $p) { defaultWebhookSecret } }", "variables": {"p": project["id"]}})
    assert q.json()["data"]["project"]["defaultWebhookSecret"] is None


async def test_graphql_caps_its_body_before_parsing(client: httpx.AsyncClient, db: Any) -> None:
    big = json.dumps({"query": "{ limits { plan } }", "variables": {"pad": "x" * (2 * 1024 * 1024)}})
    r = await client.post("/graphql", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["errors"][0]["extensions"]["code"] == "payload_too_large"

    async def chunks() -> Any:  # no Content-Length: the cap counts what arrives
        for _ in range(40):
            yield b" " * 65536
    r = await client.post("/graphql", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    # Multipart: anonymous callers get the JSON cap; an account gets its plan's document size.
    files = {"0": ("a.pdf", b"%PDF-1.4" + b"0" * (2 * 1024 * 1024), "application/pdf")}
    ops = json.dumps({"query": "mutation($f: [Upload!]!) { uploadDocuments(files: $f) { jobId } }",
                      "variables": {"f": [None]}})
    form = {"operations": ops, "map": json.dumps({"0": ["variables.f.0"]})}
    r = await client.post("/graphql", data=form, files=files)
    assert r.status_code == 413
    acc = await make_account(plan="pro")
    r = await client.post("/graphql", data=form, files=files, headers=acc["headers"])
    assert r.status_code == 200  # under the plan's 50 MB; the service then judges the document itself
    # The server stays responsive for everyone else.
    assert (await client.get("/healthz")).status_code == 200


INTROSPECT = "{ __schema { queryType { name } } }"


def test_introspection_and_suggestions_follow_the_production_switch(tmp_path: Path) -> None:
    backend = Backend(name="sqlite", data_dir=tmp_path, database_url=None)
    migrate(backend)
    prod = ServerProcess(backend, extra_env={"IMAGEEXTRACT_GRAPHIQL": "false"})
    try:
        r = httpx.post(f"{prod.base_url}/graphql", json={"query": INTROSPECT})
        assert "errors" in r.json() and "introspection" in r.json()["errors"][0]["message"].lower()
        typo = httpx.post(f"{prod.base_url}/graphql", json={"query": "{ limitz { plan } }"}).json()
        assert "Did you mean" not in typo["errors"][0]["message"]
        assert httpx.get(f"{prod.base_url}/graphql", headers={"Accept": "text/html"}).status_code != 200
    finally:
        prod.stop()
    dev = ServerProcess(backend, extra_env={"IMAGEEXTRACT_GRAPHIQL": "false",
                                            "IMAGEEXTRACT_GRAPHQL_INTROSPECTION": "true"})
    try:
        r = httpx.post(f"{dev.base_url}/graphql", json={"query": INTROSPECT})
        assert r.json()["data"]["__schema"]["queryType"]["name"] == "Query"
        typo = httpx.post(f"{dev.base_url}/graphql", json={"query": "{ limitz { plan } }"}).json()
        assert "Did you mean" in typo["errors"][0]["message"]
    finally:
        dev.stop()


async def _login(client: httpx.AsyncClient) -> str:
    acc = await make_account(password="correct horse battery")
    r = await client.post("/api/auth/login", json={"email": acc["email"], "password": "correct horse battery"})
    return str(r.cookies["ie_session"])


async def test_a_browser_websocket_from_the_apps_own_origin_is_accepted(client: httpx.AsyncClient,
                                                                       db: Any) -> None:
    """What a browser sends for `new WebSocket("ws://host/graphql")` from a page on http://host: the session
    cookie and `Origin: http://host`. A forged `ws://` or a foreign origin is refused."""
    session = await _login(client)
    host = str(client.base_url).removeprefix("http://").rstrip("/")
    ws_url = f"ws://{host}/graphql"

    async def init(origin: str) -> Any:
        try:
            async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                                          additional_headers={"Cookie": f"ie_session={session}"},
                                          origin=origin) as ws:  # type: ignore[arg-type]
                await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
                try:
                    return json.loads(await asyncio.wait_for(ws.recv(), 10))["type"]
                except websockets.ConnectionClosed as closed:
                    return closed.rcvd.code if closed.rcvd else -1
        except websockets.InvalidStatus as refused:  # refused at the handshake, before any cookie is used
            return refused.response.status_code

    assert await init(f"http://{host}") == "connection_ack"
    assert await init(f"ws://{host}") in (403, 4403)
    assert await init("http://evil.example") in (403, 4403)


class _Proxy:
    """A TCP proxy on loopback that the test can cut and restore: the database 'goes away' for real."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def cut(self) -> None:
        self.up = False
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conns.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_an_unreachable_database_answers_503_with_retry_after(tmp_path: Path) -> None:
    url = create_pg_database()
    if url is None:
        pytest.skip("Postgres not configured")
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    proxy = _Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxied = url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    backend = Backend(name="postgres", data_dir=tmp_path, database_url=proxied)
    server = None
    try:
        migrate(backend)
        server = ServerProcess(backend)
        key = asyncio.run(_account_key(backend))
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(f"{server.base_url}/api/v1/account", headers=headers).status_code == 200
        proxy.cut()
        for _ in range(3):
            r = httpx.get(f"{server.base_url}/api/v1/account", headers=headers, timeout=30)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "service_unavailable" and int(r.headers["Retry-After"]) > 0
        g = httpx.post(f"{server.base_url}/graphql", headers=headers, json={"query": "{ account { id } }"},
                       timeout=30)
        assert g.status_code == 503 and g.json()["errors"][0]["extensions"]["code"] == "service_unavailable"
        assert httpx.get(f"{server.base_url}/healthz", timeout=30).status_code == 503
        proxy.restore()
        for _ in range(50):  # the pool reconnects on its own
            if httpx.get(f"{server.base_url}/api/v1/account", headers=headers, timeout=30).status_code == 200:
                break
        else:
            raise AssertionError("did not recover after the database came back")
    finally:
        if server is not None:
            server.stop()
        proxy.close()
        drop_pg_database(url)


async def _account_key(backend: Backend) -> str:
    from tortoise import Tortoise

    from imageextract.db import tortoise_config

    await Tortoise.init(config=tortoise_config(backend.settings()))
    try:
        return str((await make_account())["api_key"])
    finally:
        await Tortoise.close_connections()
