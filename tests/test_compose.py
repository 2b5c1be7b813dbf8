"""docker-compose.yml: valid under the Compose specification (the compose_spec parser, no Docker engine needed)
and wired the way the service reads its settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from compose_spec import PyCompose

from imageextract.config import Settings

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return PyCompose.from_yaml(COMPOSE_FILE.read_text()).to_dict()


def test_the_validator_refuses_invalid_files() -> None:
    for bad in ("services:\n  a:\n    image: x\n    bogus_key: 1\n",
                "services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: whenever}\n",
                "services:\n  a:\n    image: x\n    ports: ['8000-8001:8000']\n"):
        with pytest.raises(ValueError):
            PyCompose.from_yaml(bad)


def test_services_and_references(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "minio", "api", "worker"} <= set(services)
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for dep, rule in (depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)):
            assert dep in services, f"{name} depends on unknown service {dep}"
            if rule.get("condition") == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep}'s health, which has no check"


def test_api_and_worker_run_the_same_code_on_postgres_redis_and_s3(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api, worker = services["api"], services["worker"]
    assert api["build"] == worker["build"] == "."
    assert api["command"][:4] == ["imageextract", "serve", "--host", "0.0.0.0"]
    assert worker["command"] == ["imageextract", "worker"]
    assert api["ports"] == ["8000:8000"]
    fields = {f"IMAGEEXTRACT_{name.upper()}" for name in Settings.model_fields}
    for service in (api, worker, services["migrate"]):
        env = service["environment"]
        assert set(env) <= fields, f"unknown settings: {set(env) - fields}"
        assert env["IMAGEEXTRACT_DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env[
            "IMAGEEXTRACT_DATABASE_URL"]
        assert env["IMAGEEXTRACT_REDIS_URL"] == "redis://redis:6379/0"
        assert env["IMAGEEXTRACT_STORAGE_URL"].startswith("s3://")
        assert env["IMAGEEXTRACT_S3_ENDPOINT_URL"] == "http://minio:9000"
        settings = Settings(**{k.removeprefix("IMAGEEXTRACT_").lower(): v for k, v in env.items()})
        assert settings.redis_url and not settings.is_sqlite
    assert env["IMAGEEXTRACT_S3_SECRET_ACCESS_KEY"] == services["minio"]["environment"]["MINIO_ROOT_PASSWORD"]
    assert worker["deploy"]["replicas"] >= 1
