"""shoal's one settings object, read from ``SHOAL_*`` environment variables.

The Fish key may also come from ``FISH_API_KEY``, as the official SDK reads it.
Nothing is built at import time: call :func:`get_settings` (cached), and
``get_settings.cache_clear()`` in tests that change the environment.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Where the provider lives when no Fish key is set: ``make run``'s local_tts.
LOCAL_PROVIDER_URL = "http://127.0.0.1:8765"
FISH_PROVIDER_URL = "https://api.fish.audio"


class TenantConfig(BaseModel):
    """One tenant of the API: its keys (SHA-256 hex of each, never the key itself),
    its webhook signing secret and its limits."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    key_sha256: list[str] = Field(min_length=1)
    webhook_secret: SecretStr | None = None  # "whsec_<base64>", Standard Webhooks style
    requests_per_minute: int = Field(600, ge=1)
    max_jobs_in_flight: int = Field(1000, ge=1)


class Settings(BaseSettings):
    """Every knob of shoal; each field is ``SHOAL_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="SHOAL_", extra="ignore")

    # -- Redis: broker, results, job store, governor --------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "shoal"  # every Redis key shoal writes starts with "<prefix>:"
    job_ttl_seconds: int = Field(7 * 24 * 3600, ge=60)  # retention of finished job records

    # -- provider (Fish Audio or local_tts) ------------------------------------
    fish_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SHOAL_FISH_API_KEY", "FISH_API_KEY")
    )
    fish_base_url: str | None = None  # default: Fish Audio with a key, else local_tts
    fish_model: str = "s2.1-pro"
    provider_slots: int = Field(5, ge=1)  # concurrent sessions the account allows, all workers
    provider_lease_seconds: float = Field(30.0, gt=0)  # a crashed worker's slot frees after this
    connect_timeout: float = Field(10.0, gt=0)
    first_audio_timeout: float = Field(60.0, gt=0)
    silence_timeout: float = Field(30.0, gt=0)  # longest gap between audio events
    ping_interval: float = Field(20.0, gt=0)
    ping_timeout: float = Field(20.0, gt=0)
    # The provider serves timings (POST /v1/tts/stream/with-timestamp): Fish Audio and
    # local_tts do; false for one that does not, so `timestamps` is refused at submission.
    provider_timestamps: bool = True
    # Voices (/v1/voices) are also made private provider models (POST /model) and jobs
    # send the model's id; None: only with a Fish key.  local_tts can too (set true).
    voice_models: bool | None = None
    voice_model_timeout: float = Field(60.0, gt=0)  # seconds for one /model call

    # -- jobs ------------------------------------------------------------------
    segment_max_chars: int = Field(1500, ge=50)
    job_parallel_segments: int = Field(3, ge=1)
    paragraph_silence_ms: int = Field(0, ge=0, le=10_000)
    max_text_bytes: int = Field(2_000_000, ge=1)
    max_attempts: int = Field(5, ge=1)
    retry_base_delay: float = Field(2.0, ge=0)
    retry_max_delay: float = Field(120.0, ge=0)
    job_lease_seconds: float = Field(30.0, gt=0)  # a job whose worker died is re-queued after this
    price_per_million_bytes_usd: float = Field(15.0, ge=0)

    # -- API -------------------------------------------------------------------
    tenants: list[TenantConfig] = Field(default_factory=list)  # SHOAL_TENANTS, a JSON list
    allow_private_callbacks: bool = False  # allow callback URLs on private/loopback addresses
    idempotency_ttl_seconds: int = Field(24 * 3600, ge=60)  # how long an Idempotency-Key holds

    # -- Celery ----------------------------------------------------------------
    worker_concurrency: int = Field(8, ge=1)  # jobs one worker process runs at once (threads)
    visibility_timeout: int = Field(3600, ge=10)  # seconds; longer than the longest segment

    # -- storage (S3-compatible) ----------------------------------------------
    s3_endpoint_url: str | None = None  # None: AWS; set for MinIO, R2, B2, local servers
    # The endpoint presigned download URLs name, as clients reach the store (compose:
    # http://localhost:9000 while workers use http://minio:9000); None: s3_endpoint_url.
    s3_public_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_bucket: str = "shoal"
    s3_path_style: bool = False
    s3_checksum_when_required: bool = False  # for servers that reject boto3's default checksums
    s3_key_template: str = "{tenant}/{job_id}.{ext}"
    s3_staging_prefix: str = "_staging"
    s3_multipart_chunk_bytes: int = Field(8 << 20, ge=5 << 20)
    presign_expiry_seconds: int = Field(3600, ge=1, le=7 * 24 * 3600)
    # Incomplete multipart uploads under shoal's prefixes are aborted once this old (the
    # workers' reaper sweeps them): keep it well above the longest upload, see
    # docs/operations.md ("Storage lifecycle").
    s3_incomplete_upload_max_age_seconds: int = Field(24 * 3600, ge=1)
    # The segment cache (worker.jobs.cache): finished segments under the address of their
    # sound, per tenant, under this prefix; one unused this many days is swept (0: no cache).
    s3_cache_prefix: str = "_cache"
    segment_cache_days: float = Field(30.0, ge=0)
    spool_dir: Path = Path(tempfile.gettempdir()) / "shoal-spool"

    @model_validator(mode="after")
    def _limits(self) -> Settings:
        if self.retry_max_delay < self.retry_base_delay:
            raise ValueError("retry_max_delay must be at least retry_base_delay")
        return self

    def tenant(self, tenant_id: str) -> TenantConfig | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)

    @property
    def provider_url(self) -> str:
        """Base URL of the provider: explicit, else Fish Audio with a key, else local_tts."""
        if self.fish_base_url:
            return self.fish_base_url.rstrip("/")
        return FISH_PROVIDER_URL if self.fish_api_key else LOCAL_PROVIDER_URL

    @property
    def provider_ws_url(self) -> str:
        base = self.provider_url
        scheme, sep, rest = base.partition("://")
        ws = {"https": "wss", "http": "ws"}.get(scheme, scheme)
        return f"{ws}{sep}{rest}/v1/tts/live"

    @property
    def provider_timestamp_url(self) -> str:
        """The provider's timestamped TTS (Server-Sent Events), beside its live WebSocket."""
        return f"{self.provider_url}/v1/tts/stream/with-timestamp"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
