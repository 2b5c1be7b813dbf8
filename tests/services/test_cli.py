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
