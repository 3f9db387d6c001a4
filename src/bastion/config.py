"""The one Settings model, loaded once at start (env prefix BASTION_, optional .env file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bastion.core.grants import parse_networks
from bastion.core.ratelimit import Defaults, parse_rate


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
    registry_refresh_interval: float = Field(
        default=3600.0, gt=0, description="Seconds between refreshes of MCP Registry sources' cached listings"
    )
    registry_timeout: float = Field(default=30.0, gt=0, description="Total deadline for one MCP Registry request, s")
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
    allow_private_upstreams: bool = Field(
        default=False,
        description="Let upstream URLs resolve to loopback and private addresses (on with --demo); "
        "off by default so a registered URL cannot reach internal services (SSRF)",
    )
    upstream_allowed_networks: tuple[str, ...] = Field(
        default=(), description="CIDRs upstream URLs may resolve to even though private, loopback or link-local"
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="Trust access tokens (JWTs) from this OpenID Connect / OAuth issuer for the MCP endpoints",
    )
    oidc_jwks_url: str | None = Field(default=None, description="Its JWKS; default: discovered from the issuer")
    oidc_audience: str | None = Field(
        default=None,
        description="A gateway-wide audience its tokens may carry (reach: every virtual server); without it "
        "a token must name one virtual server's MCP URL as its audience (RFC 8707 resource indicator)",
    )
    oidc_required_scopes: tuple[str, ...] = Field(default=("mcp",), description="Scopes every token must carry")
    oidc_user_claim: str = Field(default="email", description="Claim naming the user (falls back to sub)")
    oidc_teams_claim: str = Field(default="groups", description="Claim listing the user's teams")
    oidc_jwks_refetch: float = Field(
        default=30.0, ge=0, description="A token with an unknown key id refetches the JWKS at most this often, s"
    )
    oidc_role_claim: str = Field(default="bastion_role", description="Claim with the user's role (admin|developer|viewer)")
    oauth_server: bool = Field(
        default=True,
        description="Bastion's own OAuth 2.1 authorization server for MCP clients (issuer: the public URL); "
        "off whenever BASTION_OIDC_ISSUER names an external one",
    )
    oauth_access_token_ttl: float = Field(default=600.0, gt=0, le=86400, description="Access token lifetime, s")
    oauth_refresh_token_ttl: float = Field(default=30 * 86400.0, gt=0, description="Refresh token lifetime, s")
    oauth_code_ttl: float = Field(default=60.0, gt=0, le=600, description="Authorization code lifetime, s")
    oauth_consent_ttl: float = Field(default=600.0, gt=0, description="How long a sign-in/consent page stays valid, s")
    oauth_key_rotation: float = Field(
        default=30 * 86400.0, gt=0, description="Age after which the token signing key is replaced, s"
    )
    shutdown_grace: float = Field(default=30.0, ge=0, description="On SIGTERM, how long in-flight calls may finish, s")
    session_idle_ttl: float = Field(
        default=1800.0, gt=0, description="Seconds a 2025-11-25 session may go unused before it expires, s"
    )
    log_level: str = "INFO"
    vault_key: SecretStr | None = Field(
        default=None,
        description="Base64 of 32 bytes: the key that wraps stored upstream credentials (same on every replica)",
    )
    vault_key_file: Path = Field(
        default=Path("./bastion.vault.key"),
        description="File holding the vault key when BASTION_VAULT_KEY is unset; generated (0600) on first start "
        "only with the embedded SQLite database",
    )
    vault_previous_keys: tuple[SecretStr, ...] = Field(
        default=(), description="Earlier vault keys (JSON list of base64) that still open secrets until a rotation"
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://host:port/db shared by every replica (change feed, revocations, rate limits, "
        "leader lease). Unset: in-process state, for one replica.",
    )
    redis_prefix: str = Field(default="bastion", min_length=1, description="Prefix of every Redis key and channel")
    leader_lease: float = Field(default=15.0, gt=0, description="Leader lease, s: how soon another replica takes over")
    rate_limit_token: str | None = Field(default=None, description='Calls per API token, e.g. "600/minute"')
    rate_limit_user: str | None = Field(default=None, description="Calls per caller (user, else principal)")
    rate_limit_server: str | None = Field(default=None, description="Calls per virtual server, all callers")

    admin_email: str | None = Field(default=None, description="First admin user, created on start if missing")
    admin_password: SecretStr | None = Field(default=None, description="Password of BASTION_ADMIN_EMAIL's user")
    session_ttl: float = Field(default=12 * 3600.0, gt=0, description="Lifetime of a login session, s")
    login_max_failures: int = Field(default=5, ge=1, description="Failed logins in a row before an account locks")
    login_max_ip_failures: int = Field(default=50, ge=1, description="Failed logins before a client address locks")
    login_lockout: float = Field(default=30.0, gt=0, description="First lockout, s; doubles per further failure")

    @field_validator("rate_limit_token", "rate_limit_user", "rate_limit_server")
    @classmethod
    def _valid_rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)
        return value

    @property
    def rate_limits(self) -> Defaults:
        return Defaults(
            token=parse_rate(self.rate_limit_token) if self.rate_limit_token else None,
            user=parse_rate(self.rate_limit_user) if self.rate_limit_user else None,
            server=parse_rate(self.rate_limit_server) if self.rate_limit_server else None,
        )

    @field_validator("upstream_allowed_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(value)
        return value

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"
