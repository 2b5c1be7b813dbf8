"""Settings: the one place that reads the environment (prefix IMAGEEXTRACT_)."""

from __future__ import annotations

import functools
import ipaddress
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from imageextract.extract.types import ExtractOptions


class Settings(BaseSettings):
    """Every knob of the service. See the README table for what each one does."""

    model_config = SettingsConfigDict(env_prefix="IMAGEEXTRACT_", extra="ignore")

    # Where things live. The embedded default needs no server.
    data_dir: Path = Path("./data")
    database_url: str | None = None  # default: sqlite://{data_dir}/imageextract.sqlite3
    redis_url: str | None = None  # unset: in-process broker and pub/sub
    redis_namespace: str = "imageextract"  # prefix of broker keys (separate deployments on one Redis)
    storage_url: str | None = None  # unset: {data_dir}/files; s3://bucket[/prefix] for S3
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None

    # HTTP
    log_level: str = "INFO"  # JSON lines on stderr, a request id on each
    graphiql: bool = True  # the GraphiQL IDE on GET /graphql (turn off in production)
    # Schema introspection (and "Did you mean" suggestions); unset = follow `graphiql`.
    graphql_introspection: bool | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str | None = None  # absolute URLs in webhooks; default http://{host}:{port}
    secure_cookies: bool | None = None  # None: Secure only when the request is https
    session_ttl_hours: int = 24 * 14
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)  # extra origins allowed for cookie mutations

    # Worker
    embedded_worker: bool = True  # run the actors inside the API process, on its loop (in-process broker only)
    worker_threads: int = 4  # messages at once: a worker process's threads; embedded, tasks on the API's loop
    worker_processes: int = 2
    item_retry_delays: Annotated[list[float], NoDecode] = Field(default_factory=lambda: [2.0, 10.0])  # transient faults
    item_stuck_seconds: float = 600  # reconciler re-enqueues items running longer than this
    reconcile_interval_seconds: float = 30.0

    # Extraction engine
    ssrf_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)  # CIDRs exempt from the SSRF guard (tests only)
    fetch_connect_timeout: float = 10.0
    fetch_read_timeout: float = 20.0
    fetch_total_timeout: float = 60.0
    max_page_bytes: int = 10 * 1024 * 1024
    max_image_bytes: int = 50 * 1024 * 1024
    document_max_pages: int = 1000
    document_page_seconds: float = 30.0  # per-page time budget inside a document; a page past it is cut short
    sandbox: bool = True
    sandbox_recycle_bytes: int = 512 * 1024 * 1024  # a sandbox child resident past this after a task is replaced

    # Exports (converted images): the conversion child's limits
    export_memory_mb: int = 3072  # address-space cap (RLIMIT_AS) of the conversion child
    export_max_pixels: int = 100_000_000  # decoded pixels per image (all frames of an animation together)
    export_max_images: int = 1000  # source images per export
    export_cpu_seconds: int = 120  # CPU seconds per image
    export_wall_seconds: float = 180.0  # wall-clock seconds per image, then the child is killed

    # Webhooks
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    webhook_timeout_seconds: float = 10.0
    webhook_disable_after_days: float = 5.0
    webhook_resend_after_seconds: float = 30.0  # reconciler re-sends a delivery this long overdue (lost message)

    # Billing (Dodo Payments). Unset api key or product ids: checkout answers 503 billing_not_configured.
    dodo_api_key: str | None = None
    dodo_environment: Literal["test_mode", "live_mode"] = "test_mode"
    dodo_base_url: str | None = None  # overrides the environment's API URL (a loopback fake in tests)
    dodo_return_url: str | None = None  # where the checkout sends the buyer back; default {base_url}/
    dodo_timeout_seconds: float = 10.0  # per attempt; the whole checkout call is bounded by timeout x attempts
    dodo_max_retries: int = 1
    dodo_webhook_secret: str | None = None  # whsec_...; unset: POST /api/webhooks/payment answers 503
    # Rotation: the secret being replaced stays valid for 24 h after `dodo_webhook_secret_rotated_at`.
    dodo_webhook_secret_previous: str | None = None
    dodo_webhook_secret_rotated_at: datetime | None = None
    dodo_product_starter: str | None = None
    dodo_product_pro: str | None = None
    dodo_product_scale: str | None = None
    dodo_product_agency: str | None = None
    # Results API: retention and exports
    default_retention_days: int | None = None  # retention_days of new projects; unset keeps jobs forever
    retention_batch_size: int = 200  # jobs one retention sweep deletes at most (each worker, each round)
    retention_interval_seconds: float = 300.0  # how often workers sweep expired jobs
    # Batch lane (shared/spec/003)
    batch_max_items: int = 10_000  # entries per POST /api/v1/batches
    batch_submissions_per_minute: int = 60  # per account
    batch_retention_hours: float = 24.0  # results (and inputs) kept this long after a batch ends
    staged_file_ttl_hours: float = 24.0  # a staged file unused by any batch is swept after this
    upload_url_ttl_seconds: int = 3600  # presigned (S3) or signed (local) upload URLs
    result_url_ttl_seconds: int = 900  # signed item result URLs
    batch_cursor_settle_seconds: float = 1.0  # cursor walks stop this far behind now (late commits)
    batch_progress_interval_seconds: float = 0.25  # batchProgress sends at most one event per interval
    signing_key: str | None = None  # HMAC key of signed URLs; unset: a key kept in {data_dir}/signing.key

    # Guest and demo
    guest_daily_jobs: int = 3
    create_demo_account: bool = True

    @model_validator(mode="after")
    def _check_rotation(self) -> Settings:
        if self.dodo_webhook_secret_previous and self.dodo_webhook_secret_rotated_at is None:
            raise ValueError("IMAGEEXTRACT_DODO_WEBHOOK_SECRET_ROTATED_AT is required with "
                             "IMAGEEXTRACT_DODO_WEBHOOK_SECRET_PREVIOUS (the previous secret expires 24 h after it)")
        if self.dodo_webhook_secret_rotated_at is not None and self.dodo_webhook_secret_rotated_at.tzinfo is None:
            self.dodo_webhook_secret_rotated_at = self.dodo_webhook_secret_rotated_at.replace(tzinfo=UTC)
        return self

    @field_validator("ssrf_allow", "allowed_origins", mode="before")
    @classmethod
    def _split_csv(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):
                return json.loads(v)
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("ssrf_allow")
    @classmethod
    def _check_cidrs(cls, v: list[str]) -> list[str]:
        for cidr in v:
            ipaddress.ip_network(cidr, strict=False)
        return v

    @field_validator("webhook_retry_schedule", "item_retry_delays", mode="before")
    @classmethod
    def _split_floats(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v.strip().startswith("["):
                return json.loads(v)
            return [float(p) for p in v.split(",") if p.strip()]
        return v

    # Derived values -------------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite://{(self.data_dir / 'imageextract.sqlite3').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def files_dir(self) -> Path:
        return (self.data_dir / "files").resolve()

    def dodo_products(self) -> dict[str, str | None]:
        """Plan name -> the provider's product id configured for it."""
        return {"starter": self.dodo_product_starter, "pro": self.dodo_product_pro,
                "scale": self.dodo_product_scale, "agency": self.dodo_product_agency}

    @property
    def base_url(self) -> str:
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")

    def extract_options(self, **overrides: Any) -> Any:
        """The engine's options built from these settings (the engine never reads the environment)."""

        values: dict[str, Any] = {
            "ssrf_allow": _networks(tuple(self.ssrf_allow)),
            "connect_timeout": self.fetch_connect_timeout,
            "read_timeout": self.fetch_read_timeout,
            "total_timeout": self.fetch_total_timeout,
            "max_page_bytes": self.max_page_bytes,
            "max_image_bytes": self.max_image_bytes,
            "max_pages": self.document_max_pages,
            "page_seconds": self.document_page_seconds,
            "sandbox": self.sandbox,
            "sandbox_recycle_bytes": self.sandbox_recycle_bytes,
        }
        values.update(overrides)
        return ExtractOptions(**values)


@functools.lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[Any, ...]:
    """The SSRF allow-list as networks, parsed once: options are built for every item and every submitted URL."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
