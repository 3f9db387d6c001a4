"""Tool pinning: each upstream's pin mode, and the approved (or rejected) definition of each item.
MCP Registry: registry sources, their cached entries, and the entry an upstream was installed from.
Tool transforms and discovery mode (list | search) of virtual servers.

Existing upstreams get `warn` (they keep working, changes are flagged) and their current catalog
is approved as it stands, so upgrading does not flag every item at once. New upstreams default to
`block` (the application sets it).

Revision ID: 0012
Revises: 0009
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from bastion.core.pinning import definition_hash, pinned_view

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): rebuilding `upstreams` on SQLite would cascade-delete its
    # catalog items (see 0004).
    op.add_column("upstreams", sa.Column("pin", sa.String(8), nullable=False, server_default="warn"))
    op.add_column("upstreams", sa.Column("pin_trust_next", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("upstreams", sa.Column("origin", sa.JSON, nullable=True))
    op.add_column("virtual_servers", sa.Column("transforms", sa.JSON, nullable=True))
    op.add_column("virtual_servers", sa.Column("discovery", sa.String(8), nullable=False, server_default="list"))
    op.create_table(
        "registry_sources",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("url", sa.Text),
        sa.Column("path", sa.Text),
        sa.Column("refreshed_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "registry_entries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "source", sa.String(63), sa.ForeignKey("registry_sources.name", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("latest", sa.Boolean, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.String(64)),
        sa.Column("status", sa.String(32)),
        sa.UniqueConstraint("source", "name", "version", name="uq_registry_entry"),
    )
    pins = op.create_table(
        "pin_records",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("upstream_id", sa.Integer, sa.ForeignKey("upstreams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("approved", sa.JSON, nullable=True),
        sa.Column("approved_hash", sa.String(64), nullable=True),
        sa.Column("rejected_hash", sa.String(64), nullable=True),
        sa.Column("decided_by", sa.String(100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("upstream_id", "kind", "key", name="uq_pin_record"),
    )
    items = sa.table(
        "catalog_items",
        sa.column("upstream_id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("key", sa.Text),
        sa.column("definition", sa.JSON),
    )
    now = datetime.now(UTC)
    rows = op.get_bind().execute(sa.select(items.c.upstream_id, items.c.kind, items.c.key, items.c.definition))
    seeded = [
        {
            "upstream_id": r.upstream_id,
            "kind": r.kind,
            "key": r.key,
            "approved": pinned_view(r.kind, r.definition),
            "approved_hash": definition_hash(r.kind, r.definition),
            "decided_by": "migration 0012",
            "decided_at": now,
        }
        for r in rows
    ]
    if seeded:
        op.bulk_insert(pins, seeded)


def downgrade() -> None:
    op.drop_table("registry_entries")
    op.drop_table("registry_sources")
    op.drop_column("upstreams", "origin")
    op.drop_column("virtual_servers", "transforms")
    op.drop_column("virtual_servers", "discovery")
    op.drop_table("pin_records")
    op.drop_column("upstreams", "pin_trust_next")
    op.drop_column("upstreams", "pin")
