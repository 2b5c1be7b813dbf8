"""The scaled-out shape on one machine: Postgres, Redis, S3 (moto's server over HTTP), two API processes
and separate worker processes, all on loopback."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import (
    Backend,
    ServerProcess,
    create_pg_database,
    drop_pg_database,
    free_port,
    migrate,
    require_redis,
)


@dataclass
class Stack:
    backend: Backend
    env: dict[str, str]
    apis: list[ServerProcess]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    bucket: str = ""
    s3_endpoint: str = ""

    def start_worker(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ) | self.env
        with open(self.backend.data_dir / f"worker-{len(self.workers)}.log", "wb") as log:  # the child keeps its copy
            proc = subprocess.Popen([sys.executable, "-m", "imageextract.cli", "worker", "--processes", "1",
                                     "--threads", "4"], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def worker_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in sorted(self.backend.data_dir.glob("worker-*.log")))

    def stop(self) -> None:
        for w in self.workers:
            if w.poll() is None:
                w.terminate()
                try:
                    w.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.wait()
        for api in self.apis:
            api.stop()


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    redis_url = require_redis()
    url = create_pg_database()
    if url is None:
        pytest.skip("Postgres not reachable")
    from moto.server import ThreadedMotoServer

    s3_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    moto.start()
    bucket = f"ie-test-{secrets.token_hex(4)}"
    import boto3

    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}", region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    s3.create_bucket(Bucket=bucket)
    data_dir = Path(tempfile.mkdtemp(prefix="ie-scaled-"))
    env = {
        "IMAGEEXTRACT_REDIS_URL": redis_url,
        "IMAGEEXTRACT_REDIS_NAMESPACE": f"ie-test-{secrets.token_hex(4)}",
        "IMAGEEXTRACT_STORAGE_URL": f"s3://{bucket}/files",
        "IMAGEEXTRACT_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "IMAGEEXTRACT_S3_ACCESS_KEY_ID": "test",
        "IMAGEEXTRACT_S3_SECRET_ACCESS_KEY": "test",
        "IMAGEEXTRACT_ITEM_STUCK_SECONDS": "3",
        "IMAGEEXTRACT_RECONCILE_INTERVAL_SECONDS": "1",
        "IMAGEEXTRACT_SSRF_ALLOW": "127.0.0.0/8,::1/128",
        "IMAGEEXTRACT_WEBHOOK_RETRY_SCHEDULE": "0,0.3,0.3,0.3,0.3",
        "IMAGEEXTRACT_WEBHOOK_RESEND_AFTER_SECONDS": "1",
        "IMAGEEXTRACT_DATABASE_URL": url,
        "IMAGEEXTRACT_DATA_DIR": str(data_dir),
        "IMAGEEXTRACT_CREATE_DEMO_ACCOUNT": "false",
    }
    backend = Backend(name="scaled", data_dir=data_dir, database_url=url, env=env)
    migrate(backend)
    apis = [ServerProcess(backend), ServerProcess(backend)]
    st = Stack(backend=backend, env=env, apis=apis, bucket=bucket, s3_endpoint=f"http://127.0.0.1:{s3_port}")
    st.start_worker()
    time.sleep(1.0)
    try:
        yield st
    finally:
        st.stop()
        moto.stop()
        drop_pg_database(url)
        shutil.rmtree(data_dir, ignore_errors=True)
