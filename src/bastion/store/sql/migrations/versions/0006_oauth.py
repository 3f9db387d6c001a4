"""Bastion's own authorization server: signing keys, registered clients, pending authorization
requests, authorization codes and refresh tokens (families for reuse detection).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "oauth_signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.JSON, nullable=False),
        sa.Column("private_sealed", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("retired_at", TZ),
    )
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("secret_hash", sa.String(64)),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "oauth_pending",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("expires_at", TZ, nullable=False, index=True),
    )
    op.create_table(
        "oauth_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("grant", sa.JSON, nullable=False),
        sa.Column("expires_at", TZ, nullable=False, index=True),
    )
    op.create_table(
        "oauth_refresh_families",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("revoked_at", TZ),
    )
    op.create_table(
        "oauth_refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("family", sa.String(64), nullable=False, index=True),
        sa.Column("grant", sa.JSON, nullable=False),
        sa.Column("expires_at", TZ, nullable=False, index=True),
        sa.Column("used_at", TZ),
    )


def downgrade() -> None:
    for table in (
        "oauth_refresh_tokens",
        "oauth_refresh_families",
        "oauth_codes",
        "oauth_pending",
        "oauth_clients",
        "oauth_signing_keys",
    ):
        op.drop_table(table)
