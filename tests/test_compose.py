"""docker-compose.yml: valid under the Compose specification's own JSON schema (no Docker engine needed) and
wired the way the service reads its settings.

The schema is the one the Compose specification publishes, as vendored by `check-jsonschema` (a `test` extra)
for its `check-compose-spec` hook; `jsonschema` validates against it here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema
from jsonschema import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from imageextract.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def validator() -> Validator:
    schema = get_builtin_schema("vendor.compose-spec")
    assert schema["title"] == "Compose Specification"
    cls = validator_for(schema)  # the draft the schema declares
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_file_is_valid_under_the_compose_specification(validator: Validator,
                                                           compose: dict[str, Any]) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors


@pytest.mark.parametrize("bad", [
    "services:\n  a:\n    image: x\n    bogus_key: 1\n",
    "services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: whenever}\n",
    "services:\n  a:\n    image: x\n    deploy: {replica: 2}\n",
    "services:\n  a b:\n    image: x\n",
    "servics:\n  a:\n    image: x\n",
    "services:\n  a:\n    image: x\n    healthcheck: {test: 1}\n",
    "services:\n  a:\n    image: x\n    volumes: [{type: nfs, target: /x}]\n",
])
def test_the_schema_refuses_invalid_files(validator: Validator, bad: str) -> None:
    with pytest.raises(ValidationError):
        validator.validate(yaml.safe_load(bad))


def test_services_references_and_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "minio", "api", "worker"} <= set(services)
    named_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for dep, rule in (depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)):
            assert dep in services, f"{name} depends on unknown service {dep}"
            if rule.get("condition") == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep}'s health, which has no check"
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source", "")
            if source and not source.startswith((".", "/", "~")):
                assert source in named_volumes, f"{name} mounts undeclared volume {source}"
    # Data that outlives the containers: Postgres and MinIO keep theirs on named volumes.
    for name in ("postgres", "minio"):
        assert any(str(v).split(":", 1)[0] in named_volumes for v in services[name].get("volumes") or []), name


def test_api_and_worker_run_the_same_code_on_postgres_redis_and_s3(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api, worker = services["api"], services["worker"]
    assert api["build"] == worker["build"] == "." and (ROOT / "Dockerfile").is_file()
    assert api["command"][:4] == ["imageextract", "serve", "--host", "0.0.0.0"]
    assert worker["command"] == ["imageextract", "worker"]
    assert api["ports"] == ["8000:8000"] and api["command"][api["command"].index("--port") + 1] == "8000"
    assert worker["deploy"]["replicas"] >= 1  # `docker compose up --scale worker=N` overrides it

    fields = {f"IMAGEEXTRACT_{name.upper()}" for name in Settings.model_fields}
    for service in (api, worker, services["migrate"]):
        env = service["environment"]
        assert env == api["environment"], "api, worker and migrate share one configuration"
        assert set(env) <= fields, f"unknown settings: {set(env) - fields}"
        assert re.fullmatch(r"postgres://[^@]+@postgres:5432/\w+", env["IMAGEEXTRACT_DATABASE_URL"])
        assert env["IMAGEEXTRACT_REDIS_URL"] == "redis://redis:6379/0"
        assert env["IMAGEEXTRACT_S3_ENDPOINT_URL"] == "http://minio:9000"
        settings = Settings(**{k.removeprefix("IMAGEEXTRACT_").lower(): v for k, v in env.items()})
        assert settings.redis_url and not settings.is_sqlite and not settings.embedded_worker

    env = api["environment"]
    postgres, minio = services["postgres"]["environment"], services["minio"]["environment"]
    user, password, db = re.fullmatch(r"postgres://(\w+):([^@]+)@postgres:5432/(\w+)",
                                      env["IMAGEEXTRACT_DATABASE_URL"]).groups()  # type: ignore[union-attr]
    assert (user, password, db) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"])
    assert env["IMAGEEXTRACT_S3_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert env["IMAGEEXTRACT_S3_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    bucket = re.fullmatch(r"s3://([a-z0-9.-]+)(/.*)?", env["IMAGEEXTRACT_STORAGE_URL"])
    assert bucket, env["IMAGEEXTRACT_STORAGE_URL"]
    assert f"mc mb -p s3/{bucket.group(1)}" in " ".join(services["minio-bucket"]["entrypoint"])
