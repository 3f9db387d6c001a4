"""The one Settings model, loaded once at start (env prefix BASTION_, optional .env file)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bastion.core.grants import parse_networks
from bastion.core.launch import parse_rules
from bastion.core.ratelimit import Defaults, parse_rate

CENTURY_DAYS = 36500.0
"""The longest lifetime or retention: each is added to or taken from today's date, and past the
calendar's end (year 9999) that is an OverflowError where it is used (every sign-in a 500, a
pruning task dead), not a refusal at start."""
CENTURY = CENTURY_DAYS * 86400


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
    allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="Host names (JSON list) this gateway answers to besides its public URL's, loopback and the "
        "bind address; others get 421 (DNS rebinding). '*' answers any Host",
    )
    max_body_bytes: int = 4 * 1024 * 1024
    root_key: SecretStr | None = Field(
        default=None,
        description="Base64 of 32+ random bytes from which every key is derived (state, sessions, vault KEK, "
        "audit signing); the same on every replica. Required with Redis or a shared database unless "
        "BASTION_STATE_KEY and BASTION_VAULT_KEY are both given.",
    )
    previous_root_keys: tuple[SecretStr, ...] = Field(
        default=(), description="Earlier root keys (JSON list of base64): their vault keys still open secrets until a rotation"
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="A request's line and headers must arrive within this, s (slow clients)"
    )
    body_timeout: float = Field(default=30.0, gt=0, description="A request's body must arrive within this, s")
    state_key: SecretStr | None = Field(
        default=None,
        description="Base64 of 32 bytes sealing the state clients carry between calls (requestState) and sessions; "
        "wins over the key derived from BASTION_ROOT_KEY. Unset and no root key: a random key per process "
        "(refused with Redis or a shared database).",
    )
    held_call_ttl: float = Field(default=300.0, gt=0, description="How long a call waiting for a client's input is held, s")
    agent_task_ttl: float = Field(
        default=7 * 24 * 3600.0, gt=0, le=366 * 24 * 3600.0,
        description="How long after its last use an A2A task or conversation stays its caller's to continue, s",
    )
    upstream_max_items: int = Field(
        default=5000, ge=1, le=1_000_000, description="Most tools (or prompts, resources, templates; or OpenAPI operations) one upstream may list"
    )
    upstream_max_pages: int = Field(default=100, ge=1, le=100_000, description="Most pages one upstream list may take")
    page_size: int = Field(default=500, ge=1, le=10000, description="Entries per page of tools/prompts/resources lists")
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Addresses of reverse proxies whose X-Forwarded-For Bastion believes (for ip_allow); "
        "none by default, so no local process can claim another client address",
    )
    stdio_commands: tuple[str, ...] = Field(
        default=(),
        description="Command lines (JSON list) non-admins may run as stdio upstreams: the command and its "
        "leading arguments must match exactly; a trailing ' *' allows further plain arguments (core/launch.py)",
    )
    allow_private_upstreams: bool = Field(
        default=False,
        description="Let upstream URLs resolve to loopback and private addresses (on with --demo); "
        "off by default so a registered URL cannot reach internal services (SSRF)",
    )
    oauth_client_metadata_allow_private: bool = Field(
        default=False,
        description="Fetch Client ID Metadata Documents from loopback and private addresses, and over plain http "
        "on loopback: for local development and tests only, since anyone who can reach /authorize chooses that "
        "URL (BASTION_ALLOW_PRIVATE_UPSTREAMS and BASTION_UPSTREAM_ALLOWED_NETWORKS do not apply to it)",
    )
    upstream_allowed_networks: tuple[str, ...] = Field(
        default=(), description="CIDRs upstream URLs may resolve to even though private, loopback or link-local"
    )
    upstream_max_response_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest answer a REST (OpenAPI) upstream may give one call"
    )
    upstream_max_message_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest single message (a JSON body, one SSE event or one stdio line) Bastion reads from an upstream, bytes",
    )
    upstream_max_result_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Most bytes one upstream answer may carry in total (its result and the progress and log "
        "messages streamed with it)",
    )
    outbound_untrusted_timeout: float = Field(
        default=5.0, gt=0, le=60, description="Total deadline of a fetch a client chose (a client metadata document), s"
    )
    outbound_untrusted_concurrency: int = Field(
        default=16, ge=1, le=1000, description="Such fetches at once; more are refused, not queued"
    )
    held_calls_per_caller: int = Field(
        default=8, ge=1, description="Calls one caller may have held waiting for its input (era bridge)"
    )
    held_calls_total: int = Field(default=1000, ge=1, description="Calls held waiting for input, all callers")
    facade_calls_per_caller: int = Field(
        default=32,
        ge=1,
        description="Async REST facade calls (Prefer: respond-async) one caller may have on a replica, running "
        "or finished and not yet forgotten; past it the caller's oldest finished call is forgotten, or 429",
    )
    facade_calls_total: int = Field(default=10_000, ge=1, description="Async REST facade calls on a replica, all callers")
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
    oidc_client_id: str | None = Field(
        default=None,
        description="Client id registered at BASTION_OIDC_ISSUER for the admin UI; set, the sign-in page offers "
        "'Sign in with <provider>' (authorization code + PKCE; redirect URI <public URL>/admin/oidc/callback)",
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="That client's secret; unset: a public client (PKCE only)"
    )
    oidc_client_auth: str = Field(
        default="client_secret_basic",
        pattern="^(client_secret_basic|client_secret_post)$",
        description="How the secret goes to the token endpoint: client_secret_basic or client_secret_post",
    )
    oidc_ui_scopes: str = Field(default="openid email profile", description="Scopes the admin UI's sign-in asks for")
    oidc_provider_name: str = Field(
        default="single sign-on", max_length=60, description="The provider's name on the sign-in button"
    )
    oidc_ui_create_users: bool = Field(
        default=True,
        description="Create a Bastion account at first sign-in for a verified email without one (role from "
        "BASTION_OIDC_ROLE_CLAIM when developer or viewer, else viewer); off: only existing accounts sign in",
    )
    oidc_ui_allow_admin: bool = Field(
        default=False, description="Let a created account be admin when the role claim says admin (else viewer)"
    )
    oidc_ui_require_verified_email: bool = Field(
        default=True, description="Refuse a sign-in whose ID token does not say email_verified: true"
    )
    oauth_server: bool = Field(
        default=True,
        description="Bastion's own OAuth 2.1 authorization server for MCP clients (issuer: the public URL); "
        "off whenever BASTION_OIDC_ISSUER names an external one",
    )
    oauth_access_token_ttl: float = Field(default=600.0, gt=0, le=86400, description="Access token lifetime, s")
    oauth_refresh_token_ttl: float = Field(default=30 * 86400.0, gt=0, le=CENTURY, description="Refresh token lifetime, s")
    oauth_code_ttl: float = Field(default=60.0, gt=0, le=600, description="Authorization code lifetime, s")
    oauth_consent_ttl: float = Field(default=600.0, gt=0, le=CENTURY, description="How long a sign-in/consent page stays valid, s")
    oauth_registration_rate: str = Field(
        default="20/hour", description="Dynamic client registrations per client address (RFC 7591)"
    )
    oauth_authorize_rate: str = Field(
        default="60/minute",
        description="Authorization requests (/authorize) per client address: each keeps a pending sign-in until "
        "answered or expired",
    )
    oauth_pending_per_client: int = Field(
        default=1000, ge=1, description="Pending authorization requests kept per client; past it the oldest go first"
    )
    oauth_client_unused_ttl: float = Field(
        default=86400.0, gt=0, le=CENTURY, description="A registered client that never obtained a token is forgotten after, s"
    )
    oauth_client_idle_ttl: float = Field(
        default=90 * 86400.0, gt=0, le=CENTURY, description="A registered client not used for this long is forgotten, s"
    )
    oauth_key_rotation: float = Field(
        default=30 * 86400.0, gt=0, le=CENTURY, description="Age after which the token signing key is replaced, s"
    )
    shutdown_grace: float = Field(default=30.0, ge=0, description="On SIGTERM, how long in-flight calls may finish, s")
    session_idle_ttl: float = Field(
        default=1800.0, gt=0, description="Seconds a 2025-11-25 session may go unused before it expires, s"
    )
    mcp_sessions_per_caller: int = Field(
        default=100,
        ge=1,
        description="2025-11-25 MCP sessions and HTTP+SSE streams one caller (its user, else its token) may hold open on a replica, all "
        "virtual servers together; past it the caller's least recently used idle session is closed, or 429",
    )
    mcp_sessions_per_server: int = Field(
        default=10_000,
        ge=2,
        description="2025-11-25 MCP sessions and HTTP+SSE streams open on one virtual server on a replica, all callers",
    )
    stream_recheck_interval: float = Field(
        default=60.0,
        gt=0,
        description="Seconds between checks of the credentials behind open MCP streams (an expired token's end), s",
    )
    upstream_sessions_per_upstream: int = Field(
        default=1000, ge=1, description="Callers' own upstream sessions open at once per HTTP/SSE upstream"
    )
    upstream_sessions_per_user: int = Field(
        default=100, ge=1, description="Callers' own upstream sessions open at once per user, per upstream"
    )
    upstream_processes_per_upstream: int = Field(
        default=16, ge=1, description="Processes of a stdio upstream with isolation per_session"
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

    log_format: str = Field(default="auto", pattern="^(auto|json|text)$", description="Log lines: json, text, or auto (text on a terminal)")
    observe_calls: bool = Field(
        default=True,
        description="Count, log, audit and measure usage of every MCP call; off only to measure what that costs",
    )
    metrics_token: SecretStr | None = Field(default=None, description="Bearer token that may read /metrics (besides admins)")
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="Also serve /metrics, without a token, on this port")
    metrics_host: str = Field(default="127.0.0.1", description="Address of the metrics port (loopback by default)")
    metrics_per_item: bool = Field(default=True, description="Label request counts by catalog item (tool/prompt/resource)")
    audit_key: SecretStr | None = Field(
        default=None,
        description="Base64 secret from which the audit HMAC and signing keys derive (same on every replica); "
        "unset: derived from the vault key",
    )
    audit_previous_keys: tuple[SecretStr, ...] = Field(default=(), description="Earlier audit keys, to verify older heads")
    audit_flush_interval: float = Field(default=1.0, gt=0, le=60, description="Seconds between audit batch writes")
    audit_sign_interval: float = Field(default=10.0, gt=0, description="Seconds between signed audit chain heads")
    audit_queue: int = Field(default=100_000, ge=100, description="Audit records held in memory before dropping (counted)")
    audit_retention_days: float | None = Field(default=None, gt=0, le=CENTURY_DAYS, description="Delete audit records older than this")
    audit_export_file: Path | None = Field(default=None, description="Append every audit record to this file (JSON lines)")
    audit_export_url: str | None = Field(default=None, description="POST audit records in batches (JSON lines) to this URL")
    audit_export_token: SecretStr | None = Field(default=None, description="Bearer token for BASTION_AUDIT_EXPORT_URL")
    audit_export_queue: int = Field(default=10_000, ge=10, description="Audit records waiting for export before dropping")
    usage_flush_interval: float = Field(default=5.0, gt=0, le=300, description="Seconds between usage writes")
    usage_retention_minute_days: float = Field(default=2.0, gt=0, le=CENTURY_DAYS, description="Keep per-minute usage this many days")
    usage_retention_hour_days: float = Field(default=31.0, gt=0, le=CENTURY_DAYS, description="Keep per-hour usage this many days")
    usage_retention_day_days: float = Field(default=400.0, gt=0, le=CENTURY_DAYS, description="Keep per-day usage this many days")

    admin_email: str | None = Field(default=None, description="First admin user, created on start if missing")
    admin_password: SecretStr | None = Field(default=None, description="Password of BASTION_ADMIN_EMAIL's user")
    session_ttl: float = Field(default=12 * 3600.0, gt=0, le=CENTURY, description="Lifetime of a login session, s")
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed logins for one account from one address before that pair locks"
    )
    login_max_ip_failures: int = Field(default=50, ge=1, description="Failed logins before a client address locks")
    login_lockout: float = Field(default=30.0, gt=0, description="First lockout, s; doubles per further failure")
    login_max_account_failures: int = Field(
        default=100, ge=1, description="Failed logins for one account from all addresses before it locks briefly"
    )
    login_account_lockout: float = Field(
        default=60.0, gt=0, description="How long that account-wide lock lasts, s (short: it must not be an outage)"
    )

    @field_validator(
        "rate_limit_token", "rate_limit_user", "rate_limit_server", "oauth_registration_rate", "oauth_authorize_rate"
    )
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

    @field_validator("stdio_commands")
    @classmethod
    def _stdio_commands(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_rules(value)
        return value

    @field_validator("upstream_allowed_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(value)
        return value

    @field_validator("oidc_ui_scopes")
    @classmethod
    def _openid_scope(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError("the admin UI's sign-in needs the 'openid' scope")
        return value

    @model_validator(mode="after")
    def _client_needs_issuer(self) -> Settings:
        if self.oidc_client_id is not None and self.oidc_issuer is None:
            raise ValueError("BASTION_OIDC_CLIENT_ID needs BASTION_OIDC_ISSUER (the provider people sign in with)")
        return self

    @model_validator(mode="after")
    def _one_caller_cannot_fill_a_server(self) -> Settings:
        if self.mcp_sessions_per_caller >= self.mcp_sessions_per_server:
            raise ValueError("BASTION_MCP_SESSIONS_PER_CALLER must be less than BASTION_MCP_SESSIONS_PER_SERVER")
        return self

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"
