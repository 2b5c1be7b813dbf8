"""The `imageextract` command: admin create-account prints one JSON object with a working key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import Backend, ServerProcess


def _run(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, IMAGEEXTRACT_DATA_DIR=str(data_dir))
    env.pop("IMAGEEXTRACT_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "imageextract.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_admin_create_account_json(tmp_path: Path) -> None:
    migrated = _run(["migrate"], tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    out = _run(["admin", "create-account", "--name", "Acme", "--email", "ops@acme.test", "--plan", "scale",
                "--credits", "77", "--json"], tmp_path)
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert set(created) >= {"account_id", "user_id", "project_id", "api_key"}
    assert created["api_key"].startswith("ie_live_") and created["credits"] == 77
    dup = _run(["admin", "create-account", "--name", "Acme", "--email", "ops@acme.test", "--json"], tmp_path)
    assert dup.returncode == 1 and json.loads(dup.stderr)["error"]["code"] == "conflict"
    bad = _run(["admin", "create-account", "--name", "X", "--email", "nope", "--json"], tmp_path)
    assert bad.returncode == 1 and json.loads(bad.stderr)["error"]["code"] == "validation_error"
    server = ServerProcess(Backend(name="sqlite", data_dir=tmp_path, database_url=None))
    try:
        import httpx

        r = httpx.get(f"{server.base_url}/api/v1/account/credits",
                      headers={"Authorization": f"Bearer {created['api_key']}"})
        assert r.json() == {"account_id": created["account_id"], "plan": "scale", "credits": 77}
        projects = httpx.get(f"{server.base_url}/api/v1/projects",
                             headers={"Authorization": f"Bearer {created['api_key']}"}).json()["projects"]
        assert [p["id"] for p in projects] == [created["project_id"]]
    finally:
        server.stop()


def test_first_start_creates_demo_account(tmp_path: Path) -> None:
    backend = Backend(name="sqlite", data_dir=tmp_path, database_url=None)
    server = ServerProcess(backend, extra_env={"IMAGEEXTRACT_CREATE_DEMO_ACCOUNT": "true"})
    try:
        log = server.log()
        key = next(line.strip() for line in log.splitlines() if line.strip().startswith("ie_live_"))
        import httpx

        r = httpx.get(f"{server.base_url}/api/v1/account", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["plan"] == "pro"
    finally:
        server.stop()
    again = ServerProcess(backend, extra_env={"IMAGEEXTRACT_CREATE_DEMO_ACCOUNT": "true"})
    try:
        assert "ie_live_" not in again.log(), "the key is printed on the first start only"
    finally:
        again.stop()


def test_worker_needs_redis(tmp_path: Path) -> None:
    out = _run(["worker"], tmp_path)
    assert out.returncode == 2 and "IMAGEEXTRACT_REDIS_URL" in out.stderr



def test_serve_with_the_port_taken_fails_before_creating_the_demo_account(tmp_path: Path) -> None:
    import socket

    from tests.support import free_port

    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        env = dict(os.environ, IMAGEEXTRACT_DATA_DIR=str(tmp_path), IMAGEEXTRACT_CREATE_DEMO_ACCOUNT="true")
        env.pop("IMAGEEXTRACT_DATABASE_URL", None)
        out = subprocess.run([sys.executable, "-m", "imageextract.cli", "serve", "--host", "127.0.0.1",
                              "--port", str(port)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "ie_live_" not in out.stdout + out.stderr
    assert not (tmp_path / "imageextract.sqlite3").exists(), "nothing created before the port was ours"
    # The next start, with the port free, creates the demo account and prints its key (the first start).
    backend = Backend(name="sqlite", data_dir=tmp_path, database_url=None)
    server = ServerProcess(backend, extra_env={"IMAGEEXTRACT_CREATE_DEMO_ACCOUNT": "true"})
    try:
        assert "ie_live_" in server.log()
    finally:
        server.stop()


def test_later_starts_say_how_to_get_a_demo_key(tmp_path: Path) -> None:
    import httpx

    backend = Backend(name="sqlite", data_dir=tmp_path, database_url=None)
    ServerProcess(backend, extra_env={"IMAGEEXTRACT_CREATE_DEMO_ACCOUNT": "true"}).stop()
    again = ServerProcess(backend, extra_env={"IMAGEEXTRACT_CREATE_DEMO_ACCOUNT": "true"})
    try:
        assert "imageextract admin demo-key" in again.log() and "ie_live_" not in again.log()
        out = _run(["admin", "demo-key", "--json"], tmp_path)
        assert out.returncode == 0, out.stderr
        key = json.loads(out.stdout)["api_key"]
        r = httpx.get(f"{again.base_url}/api/v1/account", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["membership_role"] == "owner"
    finally:
        again.stop()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _run(["migrate"], empty).returncode == 0
    none = _run(["admin", "demo-key"], empty)
    assert none.returncode == 1 and "no demo account" in none.stderr


def test_serve_sets_tcp_nodelay_on_accepted_connections(tmp_path: Path) -> None:
    """`serve` hands uvicorn its listening socket. Passed as a bare fd, uvicorn took it for AF_UNIX and no
    accepted connection got TCP_NODELAY: Nagle held every response body (and each SSE event) behind the
    previous write until the client's delayed ACK, ~40 ms per reused connection. Checked on the very socket
    the server accepted, found among this process's descriptors."""
    import socket
    import threading

    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from imageextract.cli import _listen, http_server, serve_on
    from imageextract.config import Settings

    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    sock = _listen("127.0.0.1", 0)
    server = http_server(app, Settings(data_dir=tmp_path))
    thread = threading.Thread(target=serve_on, args=(server, sock), daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=10) as client:
            for _ in range(200):
                try:
                    assert client.get("/").text == "ok"
                    break
                except httpx.ConnectError:
                    threading.Event().wait(0.05)
            client_end = client.get("/").extensions["network_stream"].get_extra_info("socket").getsockname()
            accepted = []
            for name in os.listdir("/proc/self/fd"):
                try:
                    candidate = socket.socket(fileno=os.dup(int(name)))
                except OSError:
                    continue
                with candidate:
                    try:
                        if candidate.type == socket.SOCK_STREAM and candidate.getpeername() == client_end:
                            accepted.append(candidate.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                    except OSError:
                        pass
        assert accepted == [1], f"the server's end of the connection: TCP_NODELAY={accepted}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
