"""SQLAlchemy tables. The schema itself is created by the Alembic migrations."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

upstreams = Table(
    "upstreams",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("transport", String(20), nullable=False),
    Column("url", Text),
    Column("command", Text),
    Column("args", JSON, nullable=False),
    # Plain `env`/`headers` are always {} since migration 0003 (kept for older rows until sealed on start);
    # the values live sealed by the vault in `*_sealed`.
    Column("env", JSON, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("env_sealed", Text),
    Column("headers_sealed", Text),
    Column("auth_sealed", Text),  # OAuthClientCredentials as sealed JSON (its client_secret is a secret)
    Column("openapi", JSON),  # OpenApiSource of a transport-openapi upstream (no secrets: those are in auth/headers)
    Column("isolation", String(16), nullable=False),
    Column("protocol", String(16), nullable=False, server_default="auto"),
    Column("enabled", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text),
    Column("last_seen", DateTime(timezone=True)),
    Column("server_name", Text),
    Column("server_version", Text),
    Column("protocol_version", String(32)),
    Column("team", String(63)),
    Column("owner", String(36)),
    Column("visibility", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("pin", String(8), nullable=False),  # off | warn | block (core/pinning.py)
    Column("pin_trust_next", Boolean, nullable=False, default=False),  # approve the next discovery as it comes
    Column("origin", JSON),  # the MCP Registry entry it was installed from: {source, server, version}
    Column("destinations", JSON),  # origins approved for its credentials (core/destinations.py); null: none yet
    # Counted up by every write of the spec: a change is saved only where the row is still as it was read.
    Column("revision", Integer, nullable=False, server_default="0"),
)

catalog_items = Table(
    "catalog_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("upstream_id", Integer, ForeignKey("upstreams.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("key", Text, nullable=False),
    Column("gateway_name", String(200), nullable=False, index=True),
    Column("definition", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("name_override", String(128)),
    Column("description_override", Text),
    Column("discovered_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("upstream_id", "kind", "key", name="uq_catalog_item"),
)

pin_records = Table(
    "pin_records",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("upstream_id", Integer, ForeignKey("upstreams.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("key", Text, nullable=False),
    Column("approved", JSON),  # the pinned fields of the approved definition
    Column("approved_hash", String(64)),
    Column("rejected_hash", String(64)),
    Column("decided_by", String(100)),
    Column("decided_at", DateTime(timezone=True)),
    UniqueConstraint("upstream_id", "kind", "key", name="uq_pin_record"),
)

registry_sources = Table(
    "registry_sources",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("url", Text),
    Column("path", Text),
    Column("refreshed_at", DateTime(timezone=True)),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

registry_entries = Table(
    "registry_entries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(63), ForeignKey("registry_sources.name", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("version", String(255), nullable=False),
    Column("latest", Boolean, nullable=False),
    Column("document", JSON, nullable=False),
    Column("updated_at", String(64)),
    Column("status", String(32)),
    UniqueConstraint("source", "name", "version", name="uq_registry_entry"),
)

virtual_servers = Table(
    "virtual_servers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("description", Text),
    Column("prefix", String(8), nullable=False),
    Column("tools", JSON, nullable=False),
    Column("prompts", JSON, nullable=False),
    Column("resources", JSON, nullable=False),
    Column("upstreams", JSON, nullable=False),
    Column("policy", JSON, nullable=True),
    Column("rate_limits", JSON),
    Column("transforms", JSON),  # per exposed tool (core/transforms.py), null for none
    Column("discovery", String(8), nullable=False, default="list"),  # list | search
    Column("team", String(63)),
    Column("owner", String(36)),
    Column("visibility", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("revision", Integer, nullable=False, server_default="0"),  # as upstreams.revision
)

secrets = Table(
    "secret_hashes",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("servers", JSON, nullable=False),
    Column("permissions", JSON, nullable=False),
    Column("ip_allow", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("last_used_ip", String(64)),
    Column("user_id", String(36), index=True),  # no FK: see migration 0004
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

teams = Table(
    "teams",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team", String(63), ForeignKey("teams.name", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

user_sessions = Table(
    "user_sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

# The audit log (migration 0011): one hash chain per writer (gateway process), times as fixed-format
# ISO strings so a record's hash recomputes exactly from what is stored.
audit_records = Table(
    "audit_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chain", String(40), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("at", String(32), nullable=False, index=True),
    Column("replica", String(40), nullable=False),
    Column("action", String(200), nullable=False, index=True),
    Column("target", Text, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("actor_user", String(320)),  # an OpenID Connect user is named by its email (migration 0014)
    Column("actor_token", String(64)),
    Column("actor_client", String(320)),
    Column("actor_address", String(64)),
    Column("server", String(63)),
    Column("latency_ms", Float),
    Column("args_hmac", String(64)),
    Column("result_hmac", String(64)),
    Column("detail", Text),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("chain", "seq", name="uq_audit_chain_seq"),
)

# Signed chain heads and retention checkpoints.
audit_marks = Table(
    "audit_marks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chain", String(40), nullable=False, index=True),
    Column("kind", String(12), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("at", String(32), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(128), nullable=False),
)

# Usage per item and time bucket; each writer owns its rows (`row_key` hashes the whole key).
usage_buckets = Table(
    "usage_buckets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("row_key", String(64), nullable=False, unique=True),
    Column("granularity", String(8), nullable=False),
    Column("start", String(32), nullable=False),
    Column("writer", String(40), nullable=False),
    Column("server", String(63), nullable=False),
    Column("upstream", String(63), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("item", Text, nullable=False),
    Column("calls", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("latency", JSON, nullable=False),
    Column("callers", JSON, nullable=False),
    Column("last_used", String(32), nullable=False),
    Index("ix_usage_granularity_start", "granularity", "start"),
)
