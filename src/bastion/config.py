"""The one Settings model, loaded once at start (env prefix BASTION_, optional .env file)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASTION_", env_file=".env", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = 4444
    database_url: str = "sqlite+aiosqlite:///./bastion.db"
    database_pool_size: int = 10
    admin_token: SecretStr | None = None
    public_url: str | None = Field(default=None, description="Base URL clients use, for printed links")
    call_timeout: float = Field(default=60.0, gt=0, description="Deadline for one upstream request, seconds")
    connect_timeout: float = Field(default=15.0, gt=0, description="Deadline to connect to an upstream")
    health_interval: float = Field(default=30.0, gt=0, description="Seconds between upstream health checks")
    reconnect_backoff: float = Field(default=0.5, gt=0, description="First reconnect delay; doubles to 30 s")
    allowed_origins: tuple[str, ...] = Field(
        default=(), description="Browser origins allowed on the MCP endpoints besides localhost ones"
    )
    max_body_bytes: int = 4 * 1024 * 1024
    state_key: SecretStr | None = Field(
        default=None,
        description="Base64 of 32 bytes sealing the state clients carry between calls (requestState); "
        "set the same value on every replica. Unset: a random key per process.",
    )
    held_call_ttl: float = Field(default=300.0, gt=0, description="How long a call waiting for a client's input is held, s")
    page_size: int = Field(default=500, ge=1, le=10000, description="Entries per page of tools/prompts/resources lists")
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Addresses of reverse proxies whose X-Forwarded-For Bastion believes (for ip_allow); "
        "none by default, so no local process can claim another client address",
    )
    shutdown_grace: float = Field(default=30.0, ge=0, description="On SIGTERM, how long in-flight calls may finish, s")
    redis_url: str | None = Field(
        default=None, description="Redis shared by all replicas (redis://host:6379/0); unset: in-process state only"
    )
    redis_prefix: str = Field(default="bastion", description="Prefix of every Redis key and channel Bastion uses")
    session_idle_ttl: float = Field(
        default=1800.0, gt=0, description="Seconds a 2025-11-25 session may go unused before it expires, s"
    )
    log_level: str = "INFO"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"
