"""Initial schema: upstreams, catalog items, virtual servers, secret hashes.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "upstreams",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("transport", sa.String(20), nullable=False),
        sa.Column("url", sa.Text),
        sa.Column("command", sa.Text),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("env", sa.JSON, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("isolation", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text),
        sa.Column("last_seen", TZ),
        sa.Column("server_name", sa.Text),
        sa.Column("server_version", sa.Text),
        sa.Column("protocol_version", sa.String(32)),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "catalog_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("upstream_id", sa.Integer, sa.ForeignKey("upstreams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("gateway_name", sa.String(200), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("name_override", sa.String(128)),
        sa.Column("description_override", sa.Text),
        sa.Column("discovered_at", TZ, nullable=False),
        sa.UniqueConstraint("upstream_id", "kind", "key", name="uq_catalog_item"),
    )
    op.create_index("ix_catalog_items_gateway_name", "catalog_items", ["gateway_name"])
    op.create_table(
        "virtual_servers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("description", sa.Text),
        sa.Column("prefix", sa.String(8), nullable=False),
        sa.Column("tools", sa.JSON, nullable=False),
        sa.Column("prompts", sa.JSON, nullable=False),
        sa.Column("resources", sa.JSON, nullable=False),
        sa.Column("upstreams", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "secret_hashes",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("secret_hashes")
    op.drop_table("virtual_servers")
    op.drop_index("ix_catalog_items_gateway_name", "catalog_items")
    op.drop_table("catalog_items")
    op.drop_table("upstreams")
